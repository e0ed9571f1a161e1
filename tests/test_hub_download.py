"""Model files from the Hugging Face hub: the table of what each recipe needs, and the real huggingface_hub download
path run against a local fake hub (tests/fake_hub.py) that serves tiny models under the official file names.

- first run downloads every file into the HF cache (HF_HUB_CACHE), second run reads no file body, offline uses the
  cache only; offline with an empty cache, an unreachable hub and a gated repo without a token: one-line errors that
  name the repo, the file, its URL and the cache folder;
- `python -m ltx_core generate` with no model path: downloads, writes a decodable MP4, then runs from the cache, and
  fails in one line when offline with an empty cache.
"""
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fake_hub import FakeHub
from ltx_core import DownloadError, fetch_model_files, files_for_config, load_pipeline_config, preset_names
from ltx_core.app import downloads as D
from ltx_core.defaults import HF_REPO
from video_files import read_video_frames

REPO = Path(__file__).resolve().parents[1]
PRESET = "ltxv-2b-0.9.8-distilled"  # multi-scale: a checkpoint, an upscaler, the T5 file and its tokenizer


# ----------------------------------------------------------------------------------------------------------------
# the table


@pytest.mark.parametrize("preset", preset_names())
def test_every_recipe_names_its_hub_files(preset):
    cfg = load_pipeline_config(preset)
    got = {(f.role, f.repo_id, f.filename) for f in files_for_config(cfg)}
    want = {("checkpoint", HF_REPO, cfg["checkpoint_path"]), ("text_encoder", D.T5_REPO, "t5xxl_fp16.safetensors"),
            ("tokenizer", D.TOKENIZER_REPO, "tokenizer/spiece.model"),
            ("tokenizer", D.TOKENIZER_REPO, "tokenizer/tokenizer_config.json"),
            ("tokenizer", D.TOKENIZER_REPO, "tokenizer/special_tokens_map.json")}
    if cfg["pipeline_type"] == "multi-scale":
        want.add(("upsampler", HF_REPO, cfg["spatial_upscaler_model_path"]))
    assert got == want
    # the tokenizer comes from the repo the official config names for its T5
    assert cfg["text_encoder_model_name_or_path"] == D.TOKENIZER_REPO


def test_the_downloaded_t5_is_a_file_the_loaders_know():
    from ltx_core.presets import OFFICIAL_TEXT_ENCODERS

    assert D.T5_FILE in OFFICIAL_TEXT_ENCODERS


def test_a_config_naming_unofficial_files_downloads_only_the_text_encoder():
    cfg = dict(load_pipeline_config(PRESET), checkpoint_path="/models/my-finetune.safetensors",
               spatial_upscaler_model_path="my-upscaler.safetensors")
    assert {f.role for f in files_for_config(cfg)} == {"text_encoder", "tokenizer"}
    cfg = dict(load_pipeline_config(PRESET), checkpoint_path="/anywhere/ltxv-2b-0.9.8-distilled.safetensors")
    assert [f.filename for f in files_for_config(cfg) if f.role == "checkpoint"] == [
        "ltxv-2b-0.9.8-distilled.safetensors"]  # an official name, wherever the yaml put it


# ----------------------------------------------------------------------------------------------------------------
# tiny files under the official names


def _tiny_tokenizer() -> dict[str, bytes]:
    """A T5-style SentencePiece tokenizer (pad 0, eos 1, unk 2, 100 extra ids) trained on a few lines, with the
    files the PixArt repo's tokenizer/ holds."""
    import sentencepiece as spm

    model = io.BytesIO()
    lines = ["a tiny fox jumps over the lazy dog", "worst quality, inconsistent motion, blurry, jittery, distorted",
             "the quick brown fox", "a cat sits on a mat"] * 10
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model, vocab_size=60,
                                   model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   hard_vocab_limit=False, minloglevel=2)
    special = {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
    config = {**special, "extra_ids": 100, "model_max_length": 512, "tokenizer_class": "T5Tokenizer"}
    return {"tokenizer/spiece.model": model.getvalue(), "tokenizer/tokenizer_config.json": json.dumps(config).encode(),
            "tokenizer/special_tokens_map.json": json.dumps(special).encode()}


@pytest.fixture(scope="module")
def hub_files(tmp_path_factory) -> dict[tuple[str, str], bytes]:
    """{(repo, file name): content} of every file PRESET needs, tiny, as the fake hub serves them."""
    pytest.importorskip("ltx_video")
    import official_files
    import tiny_t5
    import tiny_upsampler

    d = tmp_path_factory.mktemp("hub_files")
    name = {f.role: f.filename for f in _files()}
    te = tiny_t5.tiny_t5(seed=0)
    official_files.tiny_checkpoint(d / "ck", transformer_overrides={"caption_channels": te.config.d_model})
    up_model, up_cfg = tiny_upsampler.reference_upsampler(seed=3)
    tiny_upsampler.save_official(up_model, up_cfg, d / "up")
    tiny_t5.save_single(tiny_t5.encoder_state(te), d / "te")
    content = {name["checkpoint"]: (d / "ck").read_bytes(), name["upsampler"]: (d / "up").read_bytes(),
               name["text_encoder"]: (d / "te").read_bytes(), **_tiny_tokenizer()}
    return {(f.repo_id, f.filename): content[f.filename] for f in _files()}


def _files():
    return files_for_config(load_pipeline_config(PRESET))


def _one_line_error(e: DownloadError, f, cache: Path, hub_url: str) -> str:
    message = str(e)
    assert "\n" not in message
    for part in (f.repo_id, f.filename, f"{hub_url}/{f.repo_id}/resolve/main/{f.filename}", str(cache)):
        assert part in message, (part, message)
    return message


# ----------------------------------------------------------------------------------------------------------------
# fetch_model_files against the fake hub (in process)


def test_first_run_downloads_second_uses_the_cache(hub_files, tmp_path):
    cache = tmp_path / "hf_cache"
    with FakeHub(hub_files) as hub:
        first = fetch_model_files(_files(), cache_dir=cache, endpoint=hub.url)
        assert len(hub.body_gets()) == len(hub_files)
        n = len(hub.requests)
        second = fetch_model_files(_files(), cache_dir=cache, endpoint=hub.url)
        assert len(hub.body_gets()) == len(hub_files)  # no file body read again:
        assert {method for method, _ in hub.requests[n:]} == {"HEAD"}  # it only asked whether they changed
    assert first == second and set(first) == {"checkpoint", "upsampler", "text_encoder", "tokenizer"}
    for f in _files():
        local = first[f.role] if f.role != "tokenizer" else first["tokenizer"] / Path(f.filename).name
        assert local.read_bytes() == hub_files[(f.repo_id, f.filename)]
        # the hub cache's layout: models--{org}--{name}/snapshots/{commit}/{file}
        assert local.is_relative_to(cache / f"models--{f.repo_id.replace('/', '--')}" / "snapshots")
    # offline, with the hub gone: the same files, from the cache
    assert fetch_model_files(_files(), offline=True, cache_dir=cache, endpoint=hub.url) == first


def test_offline_with_an_empty_cache_is_one_line(hub_files, tmp_path):
    cache = tmp_path / "empty"
    with FakeHub(hub_files) as hub:
        with pytest.raises(DownloadError) as e:
            fetch_model_files(_files(), offline=True, cache_dir=cache, endpoint=hub.url)
        assert hub.requests == []
    message = _one_line_error(e.value, _files()[0], cache, hub.url)
    assert "offline" in message and f"hf download {HF_REPO} {_files()[0].filename} --cache-dir {cache}" in message


def test_an_unreachable_hub_is_one_line(hub_files, tmp_path, monkeypatch):
    hub = FakeHub(hub_files).start()
    hub.stop()  # the port is closed: connection refused
    monkeypatch.setattr("time.sleep", lambda s: None)  # huggingface_hub's back-off between its retries
    with pytest.raises(DownloadError) as e:
        fetch_model_files(_files(), cache_dir=tmp_path, endpoint=hub.url)
    assert "the hub cannot be reached" in _one_line_error(e.value, _files()[0], tmp_path, hub.url)


def test_a_gated_repo_needs_hf_token(hub_files, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no_token"))  # not a token the developer stored
    te = [f for f in _files() if f.role == "text_encoder"]
    with FakeHub(hub_files, gated={D.T5_REPO: "hf_secret"}) as hub:
        with pytest.raises(DownloadError) as e:
            fetch_model_files(te, cache_dir=tmp_path, endpoint=hub.url)
        assert "gated" in _one_line_error(e.value, te[0], tmp_path, hub.url) and "HF_TOKEN" in str(e.value)
        monkeypatch.setenv("HF_TOKEN", "hf_secret")
        got = fetch_model_files(te, cache_dir=tmp_path, endpoint=hub.url)
    assert got["text_encoder"].read_bytes() == hub_files[(D.T5_REPO, D.T5_FILE)]


def test_a_file_the_hub_lacks_is_one_line(hub_files, tmp_path):
    missing = D.HubFile("checkpoint", HF_REPO, "ltxv-99b.safetensors")
    with FakeHub(hub_files) as hub, pytest.raises(DownloadError) as e:
        fetch_model_files([missing], cache_dir=tmp_path, endpoint=hub.url)
    assert "no such file" in _one_line_error(e.value, missing, tmp_path, hub.url)


# ----------------------------------------------------------------------------------------------------------------
# the command line, in a subprocess: huggingface_hub reads HF_ENDPOINT, HF_HUB_CACHE and HF_HUB_OFFLINE from the
# environment, as a user sets them


def _cli(tmp_path, hub, out, cache, **env):
    argv = ["generate", "--prompt", "a tiny fox", "--pipeline_config", PRESET, "--height", "64", "--width", "64",
            "--num_frames", "9", "--frame_rate", "8", "--device", "cpu", "--dtype", "float32", "--output_path", str(out)]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    environ.update(HF_ENDPOINT=hub.url, HF_HUB_CACHE=str(cache), HF_TOKEN_PATH=str(tmp_path / "no_token"), **env)
    return subprocess.run([sys.executable, "-m", "ltx_core", *argv], cwd=REPO, env=environ, capture_output=True,
                          text=True, timeout=600)


def test_cli_without_model_paths_downloads_then_uses_the_cache(hub_files, tmp_path):
    cache = tmp_path / "hf_cache"
    with FakeHub(hub_files) as hub:
        first = _cli(tmp_path, hub, tmp_path / "first.mp4", cache)
        assert first.returncode == 0, first.stderr[-3000:]
        assert len(hub.body_gets()) == len(hub_files)
        second = _cli(tmp_path, hub, tmp_path / "second.mp4", cache)
        assert second.returncode == 0, second.stderr[-3000:]
        assert len(hub.body_gets()) == len(hub_files)  # the second run read every file from the cache
        n = len(hub.requests)
        r = _cli(tmp_path, hub, tmp_path / "offline.mp4", tmp_path / "empty_cache", HF_HUB_OFFLINE="1")
        assert hub.requests[n:] == []
    snapshots = cache / f"models--{HF_REPO.replace('/', '--')}" / "snapshots"
    assert f"loading checkpoint {snapshots}" in first.stderr and f"loading checkpoint {snapshots}" in second.stderr
    for name in ("first.mp4", "second.mp4"):
        frames, fps = read_video_frames(tmp_path / name)
        assert frames.shape == (9, 64, 64, 3) and fps == 8
    assert (read_video_frames(tmp_path / "first.mp4")[0] == read_video_frames(tmp_path / "second.mp4")[0]).all()
    assert r.returncode == 2 and r.stdout == ""
    (line,) = r.stderr.strip().splitlines()
    ck = _files()[0]
    assert line.startswith(f"error: cannot get {ck.filename} of Hugging Face repo {HF_REPO} ({hub.url}/")
    assert str(tmp_path / "empty_cache") in line and line.endswith("or pass a local file with --checkpoint_path")
