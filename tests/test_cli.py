"""`python -m ltx_core generate` and MP4 writing.

- Bad arguments: one line on stderr, exit code 2, no model loaded (in process, plus one real subprocess).
- The command's plumbing with real tiny model files and a recording stand-in for `ltx_core.pipelines.generate`
  : what reaches the pipeline (embeds, sizes, padded conditioning media) and what is written.
- The full run through the real pipeline (skipped until `ltx_core.pipelines.generate` exists): MP4 frame count,
  size and rate, and --output_latents equal to the Python API's latents.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from ltx_core import cli
from ltx_core.conditioning import media as M
from ltx_core.video_io import write_mp4
from ltx_core.pipelines.generation import PassInfo
from video_files import read_video_frames

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------------------------
# video_io


@pytest.mark.parametrize("shape,layout,fps", [((9, 32, 48), "fhwc-uint8", 24), ((5, 34, 46), "cfhw-float", 29.97),
                                               ((3, 21, 31), "bcfhw-float", 8)])
def test_write_mp4_decodes_back(tmp_path, shape, layout, fps):
    f, h, w = shape
    yy = torch.linspace(0, 1, h)[None, :, None, None]
    xx = torch.linspace(0, 1, w)[None, None, :, None]
    tt = torch.linspace(0, 1, f)[:, None, None, None]
    base = (0.2 + 0.3 * xx + 0.3 * yy + 0.1 * tt + torch.tensor([0.0, 0.05, 0.1])).expand(f, h, w, 3).contiguous()
    if layout == "fhwc-uint8":
        video = (base * 255).round().to(torch.uint8)
    elif layout == "cfhw-float":
        video = base.permute(3, 0, 1, 2)
    else:
        video = base.permute(3, 0, 1, 2)[None]
    p = write_mp4(tmp_path / "sub" / "out.mp4", video, fps)
    assert p.exists()
    with av.open(str(p)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
        assert abs(float(s.average_rate) - fps) < 1e-3
    frames, got_fps = read_video_frames(p)
    # yuv420p needs even sizes: odd ones are padded by one repeated row/column
    assert frames.shape == (f, h + h % 2, w + w % 2, 3) and frames.dtype == np.uint8
    assert abs(got_fps - fps) < 1e-3
    want = (base * 255).round().numpy()
    assert np.abs(frames[:, :h, :w].astype(float) - want).mean() < 3  # lossy, but the picture survives


def test_write_mp4_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError):
        write_mp4(tmp_path / "x.mp4", torch.zeros(2, 8, 8, 3), 0)
    with pytest.raises(ValueError):
        write_mp4(tmp_path / "x.mp4", torch.zeros(2, 8, 8), 24)


# ----------------------------------------------------------------------------------------------------------------
# argument errors


def _png(path, h=40, w=56):
    g = np.random.default_rng(0)
    Image.fromarray(g.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def fake_models(tmp_path):
    """Files that exist (their content is never read by the checks under test)."""
    d = tmp_path / "models"
    d.mkdir()
    for n in ("ck.safetensors", "te.safetensors", "up.safetensors"):
        (d / n).write_bytes(b"")
    return d


def _run_main(capsys, argv):
    rc = cli.main(argv)
    err = capsys.readouterr().err
    return rc, [line for line in err.splitlines() if line.strip()]


def _bad_cases(tmp_path, models):
    img = str(_png(tmp_path / "cond.png"))
    clip = str(write_mp4(tmp_path / "clip.mp4", np.zeros((12, 16, 16, 3), np.uint8), 24))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    lora = str(tmp_path / "lora.safetensors")
    save_file({"transformer.transformer_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(2, 8),
               "transformer.transformer_blocks.0.attn1.to_q.lora_B.weight": torch.zeros(8, 2)}, lora)
    (tmp_path / "lora.pt").write_bytes(b"pickle")
    gguf_file = tmp_path / "ltxv-2b-Q4_0.gguf"
    gguf_file.write_bytes(b"")
    ltx2 = str(tmp_path / "ltx2.safetensors")
    save_file({"diffusion_model.transformer_blocks.0.audio_attn1.to_q.lora_A.weight": torch.zeros(2, 8),
               "diffusion_model.transformer_blocks.0.audio_attn1.to_q.lora_B.weight": torch.zeros(8, 2)}, ltx2)
    not_lora = str(tmp_path / "not_lora.safetensors")
    save_file({"model.diffusion_model.transformer_blocks.0.attn1.to_q.weight": torch.zeros(8, 8)}, not_lora)
    base = ["generate", "--prompt", "a cat", "--pipeline_config", "ltxv-2b-0.9.6-distilled",
            "--checkpoint_path", str(models / "ck.safetensors"), "--text_encoder_path", str(models / "te.safetensors")]
    return {
        "no command": ([], "COMMAND"),
        "no prompt": (["generate"], "--prompt"),
        "unknown option": (base + ["--fps", "3"], "unrecognized"),
        "bad int": (base + ["--seed", "x"], "--seed"),
        "zero height": (base + ["--height", "0"], "--height"),
        "negative width": (base + ["--width", "-32"], "--width"),
        "zero frames": (base + ["--num_frames", "0"], "--num_frames"),
        "zero frame rate": (base + ["--frame_rate", "0"], "--frame_rate"),
        "zero steps": (base + ["--num_inference_steps", "0"], "--num_inference_steps"),
        "strength > 1": (base + ["--conditioning_media_paths", img, "--conditioning_start_frames", "0",
                                 "--conditioning_strengths", "1.5"], "between 0 and 1"),
        "negative strength": (base + ["--conditioning_media_paths", img, "--conditioning_start_frames", "0",
                                      "--conditioning_strengths", "-0.1"], "between 0 and 1"),
        "length mismatch": (base + ["--conditioning_media_paths", img, img, "--conditioning_start_frames", "0"],
                            "same length"),
        "no start frames": (base + ["--conditioning_media_paths", img], "--conditioning_start_frames"),
        "start beyond video": (base + ["--num_frames", "9", "--conditioning_media_paths", img,
                                       "--conditioning_start_frames", "9"], "outside the video"),
        "negative start": (base + ["--conditioning_media_paths", img, "--conditioning_start_frames", "-1"],
                           "outside the video"),
        "unreadable image": (base + ["--conditioning_media_paths", str(broken), "--conditioning_start_frames", "0"],
                             str(broken)),
        "missing image": (base + ["--conditioning_media_paths", str(tmp_path / "nope.png"),
                                  "--conditioning_start_frames", "0"], "no such file"),
        "clip at frame 3": (base + ["--num_frames", "33", "--conditioning_media_paths", clip,
                                    "--conditioning_start_frames", "3"], "multiple of 8"),
        "unknown preset": (base + ["--pipeline_config", "ltxv-99b"], "ltxv-13b-0.9.8-distilled"),
        "missing checkpoint": (["generate", "--prompt", "x", "--pipeline_config", "ltxv-13b-0.9.8-distilled",
                                "--text_encoder_path", str(models / "te.safetensors")],
                               "huggingface.co/Lightricks/LTX-Video"),
        "missing checkpoint flag": (base[:-4] + ["--checkpoint_path", str(models / "nope.safetensors"),
                                                 "--text_encoder_path", str(models / "te.safetensors")],
                                    "Lightricks/LTX-Video"),
        "no text encoder": (base[:-2], "cannot get t5xxl_fp16.safetensors of Hugging Face repo "
                                       "comfyanonymous/flux_text_encoders"),
        "missing upscaler": (base[:4] + ["ltxv-2b-0.9.8-distilled"] + base[5:], "ltxv-spatial-upscaler-0.9.8"),
        "bad latents name": (base + ["--output_latents", str(tmp_path / "l.pt")], ".safetensors"),
        "lora strengths alone": (base + ["--lora_strengths", "0.5"], "--lora_strengths given without --lora_paths"),
        "lora length mismatch": (base + ["--lora_paths", lora, lora, "--lora_strengths", "1"],
                                 "--lora_paths (2) and --lora_strengths (1) must have the same length"),
        "lora strength nan": (base + ["--lora_paths", lora, "--lora_strengths", "nan"], "finite"),
        "missing lora": (base + ["--lora_paths", str(tmp_path / "gone.safetensors")], "gone.safetensors: file not found"),
        "pickled lora": (base + ["--lora_paths", str(tmp_path / "lora.pt")], "only .safetensors"),
        "not a lora": (base + ["--lora_paths", not_lora], "not_lora.safetensors: this is not a LoRA but a full model"),
        "ltx-2 lora": (base + ["--lora_paths", ltx2], "ltx2.safetensors: this looks like an LTX-2 LoRA"),
        "control strength": (base + ["--lora_paths", lora, "--control_video_path", clip, "--control_strength", "2"],
                             "--control_strength must be between 0 and 1, got 2.0"),
        "missing control video": (base + ["--control_video_path", str(tmp_path / "nope.mp4")], "nope.mp4"),
        "gguf without vae": (base[:5] + ["--checkpoint_path", str(gguf_file)] + base[7:],
                             "holds only the transformer (no VAE): give the VAE released with it with --vae_path"),
        "missing vae": (base + ["--vae_path", str(tmp_path / "vae.safetensors")], "--vae_path not found"),
        "unknown release": (base + ["--model_release", "0.9.9"], "--model_release"),
        "tile not 8k+1": (base + ["--temporal_tile_frames", "80"],
                          "--temporal_tile_frames must be 8k+1 and at least 25, got 80: use 73 or 81"),
        "overlap too long": (base + ["--temporal_tile_frames", "33", "--temporal_overlap_frames", "32"],
                             "--temporal_overlap_frames must be a multiple of 8 from 16 to 24"),
        "overlap strength": (base + ["--temporal_overlap_strength", "2"], "--temporal_overlap_strength must be in [0, 1]"),
        "empty chunk prompt": (["generate", "--prompt", "a fox | | a cat"] + base[3:] + ["--num_frames", "300"],
                               "--prompt: prompt 2 of 3 (separated by '|') is empty"),
    }


def test_bad_arguments_one_line_exit_2(tmp_path, fake_models, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the config's file names are also looked up in the current folder
    # A file no path gives comes from the hub: here offline, with an empty cache (huggingface_hub reads
    # HF_HUB_OFFLINE and HF_HUB_CACHE once, when it is imported).
    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setattr(hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    loaded = []
    for name in ("load_checkpoint", "load_text_encoder", "load_upsampler"):
        monkeypatch.setattr(f"ltx_core.{name}", lambda *a, _n=name, **k: loaded.append(_n))
    for case, (argv, expect) in _bad_cases(tmp_path, fake_models).items():
        rc, lines = _run_main(capsys, argv)
        assert rc == 2, case
        assert len(lines) == 1, (case, lines)
        assert lines[0].startswith("error: ") and expect in lines[0], (case, lines[0])
        assert "Traceback" not in lines[0]
    assert loaded == []  # no model was touched
    assert not (tmp_path / "outputs").exists()


def test_bad_argument_subprocess(tmp_path):
    r = subprocess.run([sys.executable, "-m", "ltx_core", "generate", "--prompt", "x", "--height", "-5"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["error: --height and --width must be positive, got -5x1216"]
    assert r.stdout == ""


def test_defaults_are_inference_py_defaults():
    a = cli.build_parser().parse_args(["generate", "--prompt", "p"])
    assert (a.seed, a.height, a.width, a.num_frames, a.frame_rate) == (171198, 704, 1216, 121, 30)
    assert a.negative_prompt == "worst quality, inconsistent motion, blurry, jittery, distorted"
    assert a.image_cond_noise_scale == 0.15 and a.offload_to_cpu is False
    assert a.pipeline_config == "configs/ltxv-13b-0.9.7-dev.yaml"
    a = cli.build_parser().parse_args(["generate", "--prompt", "p", "--offload_to_cpu",
                                       "--conditioning_media_paths", "a.png", "b.mp4",
                                       "--conditioning_strengths", "0.5", "1", "--conditioning_start_frames", "0", "16"])
    assert a.offload_to_cpu is True and a.conditioning_strengths == [0.5, 1.0] and a.conditioning_start_frames == [0, 16]


def test_output_names_as_inference_py(tmp_path):
    assert cli.prompt_to_filename("A red fox, running through the deep snow!") == "a-red-fox-running-through-the-deep"
    p = cli.unique_output_path(tmp_path, "video_output_0", ".mp4", "A cat", 7, (64, 96, 9))
    assert p.name == "video_output_0_a-cat_7_64x96x9_0.mp4"
    p.write_bytes(b"")
    assert cli.unique_output_path(tmp_path, "video_output_0", ".mp4", "A cat", 7, (64, 96, 9)).name.endswith("_1.mp4")


# ----------------------------------------------------------------------------------------------------------------
# tiny model files


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory, t5_tokenizer_dir):
    pytest.importorskip("ltx_video")
    import tiny_t5
    import tiny_transformer
    import tiny_upsampler
    import tiny_vae

    d = tmp_path_factory.mktemp("tiny_models")
    te_model = tiny_t5.tiny_t5(seed=0)
    te_dir = tiny_t5.save_pixart(te_model, t5_tokenizer_dir, d / "t5")
    ref_t, t_cfg = tiny_transformer.tiny_reference("2b", seed=1, caption_channels=te_model.config.d_model)
    _, v_cfg, v_sd = tiny_vae.tiny_vae("0.9.5", seed=2)
    sd = {f"model.diffusion_model.{k}": v.contiguous() for k, v in ref_t.state_dict().items()}
    sd.update({f"vae.{k}": v.contiguous() for k, v in v_sd.items()})
    scheduler = {"_class_name": "RectifiedFlowScheduler", "num_train_timesteps": 1000, "shifting": None,
                 "base_resolution": None, "sampler": "LinearQuadratic"}
    ck = d / "tiny-ltxv.safetensors"
    save_file(sd, str(ck), metadata={"config": json.dumps({"transformer": t_cfg, "vae": v_cfg,
                                                            "scheduler": scheduler})})
    ref_up, up_cfg = tiny_upsampler.reference_upsampler(seed=3, in_channels=v_cfg.get("latent_channels", 128))
    up = tiny_upsampler.save_official(ref_up, up_cfg, d / "tiny-upscaler.safetensors")
    return {"checkpoint": ck, "text_encoder": te_dir, "upsampler": up, "dir": d}


class _Result:
    def __init__(self, video, latents):
        self.video, self.latents = video, latents


def _fake_generate(calls):
    """Stands in for ltx_core.generate: records what reached it, returns a recognisable video."""

    def generate(models, cfg, text, request, *, progress=None, should_cancel=None, on_pass=None):  # noqa: ARG001
        calls.append(dict(vars(request), cfg=cfg, embeds=text.embeds, mask=text.mask, neg=text.negative_embeds,
                          upsampler=models.upsampler, scheduler_config=models.scheduler_config))
        for number, steps_before in ((1, 0), (2, 3)):  # two passes of 3 steps; `progress` counts over the run
            on_pass(PassInfo(number, 2, 3, steps_before, request.height, request.width))
            for i in range(3):
                progress(steps_before + i + 1, 6, None)
        n, h, w = request.num_frames, request.height, request.width
        t = torch.linspace(0, 1, n)[None, None, :, None, None]
        video = (t * torch.ones(1, 3, n, h, w)).clamp(0, 1)
        return _Result(video, torch.full((1, 128, 2, 2, 3), float(request.seed)))

    return generate


def test_cli_plumbing_with_tiny_files(tiny_files, tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr("ltx_core.generate", _fake_generate(calls))
    img = _png(tmp_path / "first.png", 60, 80)
    frames = np.stack([np.full((30, 40, 3), 10 * i, np.uint8) for i in range(12)])
    clip = write_mp4(tmp_path / "clip.mp4", frames, 24)
    out = tmp_path / "out.mp4"
    lat = tmp_path / "lat" / "latents.safetensors"
    argv = ["generate", "--prompt", "a tiny fox", "--pipeline_config", "ltxv-2b-0.9.8-distilled",
            "--checkpoint_path", str(tiny_files["checkpoint"]), "--text_encoder_path", str(tiny_files["text_encoder"]),
            "--spatial_upscaler_model_path", str(tiny_files["upsampler"]), "--height", "40", "--width", "56",
            "--num_frames", "17", "--frame_rate", "12", "--seed", "5", "--device", "cpu", "--dtype", "float32",
            "--conditioning_media_paths", str(img), str(clip), "--conditioning_strengths", "1", "0.5",
            "--conditioning_start_frames", "0", "8", "--num_inference_steps", "3",
            "--output_path", str(out), "--output_latents", str(lat)]
    rc = cli.main(argv)
    err = capsys.readouterr().err
    assert rc == 0, err
    (c,) = calls
    assert (c["height"], c["width"], c["num_frames"], c["frame_rate"], c["seed"]) == (40, 56, 17, 12.0, 5)
    assert c["num_inference_steps"] == 3 and c["image_cond_noise_scale"] == 0.15 and c["upsampler"] is not None
    assert c["scheduler_config"]["sampler"] == "LinearQuadratic"
    assert c["cfg"].pipeline_type == "multi-scale"
    assert c["embeds"].shape[-1] == c["neg"].shape[-1] == 64 and c["mask"].shape == c["embeds"].shape[:2]
    # conditioning: just-cropped at the source size and padded by what pads 40x56 to 64x64, as inference.py
    # hands it over; the pipeline resizes it to each pass's size
    first, second = c["conditioning"]
    want_first = M.pad_media(M.load_media(img, 40, 56, just_crop=True), 40, 56)
    assert want_first.shape[-2:] != (64, 64)
    assert (first.start_frame, first.strength) == (0, 1.0) and torch.equal(first.media, want_first)
    # the 12-frame clip starting at frame 8 of 17: at most 9 frames, trimmed to 8k+1 -> 9
    want_second = M.pad_media(M.load_media(clip, 40, 56, max_frames=9, just_crop=True), 40, 56)
    assert (second.start_frame, second.strength) == (8, 0.5) and torch.equal(second.media, want_second)
    frames_out, fps = read_video_frames(out)
    assert frames_out.shape == (17, 40, 56, 3) and abs(fps - 12) < 1e-6
    assert load_file(str(lat))["latents"].eq(5.0).all()
    assert "output saved to" in err
    # a bar per pass, each labelled and run to its end (tqdm's "3/3")
    assert err.count("3/3") >= 2 and "pass 1/2" in err and "pass 2/2" in err, err


def test_cli_default_output_folder_and_png(tiny_files, tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr("ltx_core.generate", _fake_generate(calls))
    monkeypatch.chdir(tmp_path)
    argv = ["generate", "--prompt", "One frame", "--pipeline_config", "ltxv-2b-0.9.6-distilled",
            "--checkpoint_path", str(tiny_files["checkpoint"]), "--text_encoder_path", str(tiny_files["text_encoder"]),
            "--height", "32", "--width", "32", "--num_frames", "1", "--device", "cpu", "--dtype", "float32"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert calls[0]["upsampler"] is None and calls[0]["conditioning"] == []
    (png,) = list((tmp_path / "outputs").glob("*/image_output_0_one-frame_171198_32x32x1_0.png"))
    assert Image.open(png).size == (32, 32)


def test_cli_bad_checkpoint_file_one_line(tiny_files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("ltx_core.generate", _fake_generate([]))
    argv = ["generate", "--prompt", "x", "--pipeline_config", "ltxv-2b-0.9.6-distilled",
            "--checkpoint_path", str(tiny_files["upsampler"]), "--text_encoder_path", str(tiny_files["text_encoder"]),
            "--height", "32", "--width", "32", "--num_frames", "9", "--device", "cpu", "--dtype", "float32"]
    rc, lines = _run_main(capsys, argv)
    assert rc == 2 and lines[-1].startswith("error: ")  # progress notes, then the error
    assert sum(line.startswith("error") for line in lines) == 1 and not any("Traceback" in x for x in lines)
    assert str(tiny_files["upsampler"]) in lines[-1]


# ----------------------------------------------------------------------------------------------------------------
# the real pipeline


def _real_generate():
    try:
        from ltx_core.pipelines import generate  # noqa: F401
    except ImportError as e:
        pytest.skip(f"ltx_core.pipelines.generate is not available yet ({e})")
    return generate


def test_generate_end_to_end(tiny_files, tmp_path):
    generate = _real_generate()
    from ltx_core import load_checkpoint, load_text_encoder
    from ltx_core.pipelines import ConditioningItem, GenerationRequest, Models, PipelineConfig, TextConditioning
    from ltx_core.presets import load_pipeline_config

    out, lat = tmp_path / "video.mp4", tmp_path / "latents.safetensors"
    h, w, f, fps, seed, steps = 40, 56, 9, 24, 11, 2
    img = _png(tmp_path / "start.png", 50, 60)
    argv = ["generate", "--prompt", "a tiny fox", "--pipeline_config", "ltxv-2b-0.9.6-distilled",
            "--checkpoint_path", str(tiny_files["checkpoint"]), "--text_encoder_path", str(tiny_files["text_encoder"]),
            "--height", str(h), "--width", str(w), "--num_frames", str(f), "--frame_rate", str(fps),
            "--seed", str(seed), "--num_inference_steps", str(steps), "--device", "cpu", "--dtype", "float32",
            "--output_path", str(out), "--output_latents", str(lat),
            "--conditioning_media_paths", str(img), "--conditioning_start_frames", "0",
            "--conditioning_strengths", "0.9"]
    r = subprocess.run([sys.executable, "-m", "ltx_core", *argv], cwd=REPO, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    frames, got_fps = read_video_frames(out)
    assert frames.shape == (f, h, w, 3) and abs(got_fps - fps) < 1e-6

    te = load_text_encoder(str(tiny_files["text_encoder"]), device="cpu", dtype=torch.float32)
    pe, pm = te.encode(["a tiny fox"])
    ne, nm = te.encode([cli.DEFAULT_NEGATIVE_PROMPT])
    ck = load_checkpoint(str(tiny_files["checkpoint"]), device="cpu", dtype=torch.float32)
    cfg = PipelineConfig.from_dict(load_pipeline_config("ltxv-2b-0.9.6-distilled"))
    item = ConditioningItem(M.pad_media(M.load_media(img, h, w, just_crop=True), h, w), start_frame=0, strength=0.9)
    with torch.no_grad():
        res = generate(Models.from_checkpoint(ck), cfg, TextConditioning(pe, pm, ne, nm), GenerationRequest(
            height=h, width=w, num_frames=f, frame_rate=fps, seed=seed, num_inference_steps=steps,
            conditioning=[item], image_cond_noise_scale=0.15, output="video"))
    saved = load_file(str(lat))["latents"]
    assert saved.shape == res.latents.shape
    assert torch.equal(saved, res.latents.detach().cpu().to(saved.dtype))
    assert res.video.shape[2:] == (f, h, w)


def test_cli_compile_and_offload_give_the_same_latents(tiny_files, tmp_path, capsys, monkeypatch):
    """--compile compiles the transformer blocks (here with dynamo's "eager" backend: the same tracing as inductor,
    without its C++ build) and --offload_to_cpu streams them from CPU memory; neither changes the result."""
    _real_generate()
    from ltx_core.model.transformer import Transformer3D

    compiled = []
    original = Transformer3D.compile_blocks

    def compile_blocks(self, **options):
        compiled.append(self)
        original(self, backend="eager", fullgraph=True)

    monkeypatch.setattr(Transformer3D, "compile_blocks", compile_blocks)
    base = ["generate", "--prompt", "a tiny fox", "--pipeline_config", "ltxv-2b-0.9.6-distilled",
            "--checkpoint_path", str(tiny_files["checkpoint"]), "--text_encoder_path", str(tiny_files["text_encoder"]),
            "--height", "32", "--width", "32", "--num_frames", "9", "--num_inference_steps", "2", "--device", "cpu",
            "--dtype", "float32"]
    latents = {}
    for name, extra in {"plain": [], "compiled": ["--compile"], "offloaded": ["--offload_to_cpu"]}.items():
        lat = tmp_path / f"{name}.safetensors"
        rc = cli.main(base + extra + ["--output_path", str(tmp_path / f"{name}.mp4"), "--output_latents", str(lat)])
        assert rc == 0, capsys.readouterr().err
        latents[name] = load_file(str(lat))["latents"]
    assert len(compiled) == 1
    plain = latents["plain"]
    assert torch.equal(latents["offloaded"], plain)
    assert (latents["compiled"] - plain).norm() <= 1e-5 * plain.norm()


def test_cli_compile_without_a_compiler_fails_before_loading(tiny_files, tmp_path, capsys, monkeypatch):
    import shutil

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    loaded = []
    monkeypatch.setattr("ltx_core.load_text_encoder", lambda *a, **k: loaded.append(a))
    rc, lines = _run_main(capsys, [
        "generate", "--prompt", "a tiny fox", "--pipeline_config", "ltxv-2b-0.9.6-distilled", "--checkpoint_path",
        str(tiny_files["checkpoint"]), "--text_encoder_path", str(tiny_files["text_encoder"]), "--device", "cpu",
        "--compile", "--output_path", str(tmp_path / "x.mp4")])
    assert rc == 2 and loaded == []
    assert len(lines) == 1 and "--compile" in lines[0] and "C++ compiler" in lines[0]


def test_cli_refuses_a_step_that_cannot_fit_before_sampling(tiny_files, tmp_path, capsys, monkeypatch):
    """Where the device's free memory is known (a GPU; stood in for here), a step that cannot fit is refused before
    sampling with the sizes that would fit; out-of-memory errors become one line with what to change."""
    _real_generate()
    import ltx_core as estimate  # the CLI reads the device's free memory through the public API

    argv = ["generate", "--prompt", "a tiny fox", "--pipeline_config", "ltxv-2b-0.9.6-dev", "--checkpoint_path",
            str(tiny_files["checkpoint"]), "--text_encoder_path", str(tiny_files["text_encoder"]), "--height", "64",
            "--width", "96", "--num_frames", "17", "--num_inference_steps", "2", "--device", "cpu",
            "--dtype", "float32", "--output_path", str(tmp_path / "out.mp4")]
    monkeypatch.setattr(estimate, "device_free_bytes", lambda device: 0)
    rc, lines = _run_main(capsys, argv)
    errors = [line for line in lines if line.startswith("error: ")]
    assert rc == 2 and errors == lines[-1:], lines  # after the loading progress, one line
    assert "17 frames at 96x64 need about" in errors[0] and "3 batch rows" in errors[0]  # CFG + STG
    assert "free on cpu" in errors[0] and "--offload_to_cpu" in errors[0]
    assert not (tmp_path / "out.mp4").exists()

    monkeypatch.setattr(estimate, "device_free_bytes", lambda device: 8 << 30)
    argv[argv.index("ltxv-2b-0.9.6-dev")] = "ltxv-2b-0.9.6-distilled"  # the tiny model has no block 19 for STG
    rc, lines = _run_main(capsys, argv)
    assert rc == 0 and (tmp_path / "out.mp4").exists(), lines


@pytest.mark.parametrize("error", [
    torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    # newer torch raises some allocators' failures this way (ComfyUI's is_oom matches it too)
    torch.AcceleratorError("CUDA error: out of memory"),
], ids=["OutOfMemoryError", "AcceleratorError"])
def test_cli_out_of_memory_is_one_line(tiny_files, tmp_path, capsys, monkeypatch, error):
    def generate(*a, **k):
        raise error

    monkeypatch.setattr("ltx_core.generate", generate)
    rc, lines = _run_main(capsys, [
        "generate", "--prompt", "a tiny fox", "--pipeline_config", "ltxv-2b-0.9.6-distilled", "--checkpoint_path",
        str(tiny_files["checkpoint"]), "--text_encoder_path", str(tiny_files["text_encoder"]), "--device", "cpu",
        "--dtype", "float32", "--output_path", str(tmp_path / "out.mp4")])
    assert rc == 2 and [line for line in lines if line.startswith("error: ")] == lines[-1:], lines
    assert lines[-1].startswith("error: out of memory on cpu while generating: use --offload_to_cpu")


def test_cli_fp8_matmul(tiny_files, tmp_path, capsys):
    _real_generate()
    base = ["generate", "--prompt", "a tiny fox", "--pipeline_config", "ltxv-2b-0.9.6-distilled", "--checkpoint_path",
            str(tiny_files["checkpoint"]), "--text_encoder_path", str(tiny_files["text_encoder"]), "--height", "32",
            "--width", "32", "--num_frames", "9", "--num_inference_steps", "2", "--device", "cpu", "--fp8_matmul",
            "--output_path", str(tmp_path / "out.mp4")]
    rc, lines = _run_main(capsys, base + ["--dtype", "float32"])
    assert rc == 2 and lines[-1].startswith("error: --fp8_matmul: fp8 matmuls need fp8 weights")
    rc, lines = _run_main(capsys, base + ["--dtype", "float8_e4m3fn"])
    assert rc == 0, lines
    frames, _ = read_video_frames(tmp_path / "out.mp4")
    assert frames.shape == (9, 32, 32, 3)


def test_cli_loras_and_control_video_equal_the_python_api(tiny_files, tmp_path, capsys):
    """Two stacked LoRAs (one with a negative strength) and an IC-LoRA control video from the command line give
    the latents of the same generation through the Python API."""
    _real_generate()
    import tiny_lora as tl
    from ltx_core import (ControlVideo, GenerationRequest, LoraUse, Models, PipelineConfig, TextConditioning,
                          generate, load_checkpoint, load_pipeline_config, load_text_encoder, read_lora)

    ck = load_checkpoint(str(tiny_files["checkpoint"]), device="cpu", dtype=torch.float32)
    a = tl.write_lora(tmp_path / "style.safetensors", tl.random_lora(ck.transformer, rank=4, seed=1), "comfyui")
    b = tl.write_lora(tmp_path / "ic.safetensors", tl.random_lora(ck.transformer, tl.TARGETS[:6], rank=2, seed=2),
                      "diffusers", metadata={"reference_downscale_factor": "2"})
    control = np.stack([np.full((64, 64, 3), 12 * i, np.uint8) for i in range(20)])
    clip = write_mp4(tmp_path / "depth.mp4", control, 24)
    h = w = 64
    lat = tmp_path / "l.safetensors"
    argv = ["generate", "--prompt", "a tiny fox", "--pipeline_config", "ltxv-2b-0.9.6-distilled",
            "--checkpoint_path", str(tiny_files["checkpoint"]), "--text_encoder_path", str(tiny_files["text_encoder"]),
            "--height", str(h), "--width", str(w), "--num_frames", "9", "--num_inference_steps", "2",
            "--device", "cpu", "--dtype", "float32", "--output_path", str(tmp_path / "v.mp4"),
            "--output_latents", str(lat), "--lora_paths", str(a), str(b), "--lora_strengths", "0.8", "-0.5",
            "--control_video_path", str(clip), "--control_strength", "0.9"]
    rc, lines = _run_main(capsys, argv)
    assert rc == 0, lines
    assert any("LoRA style.safetensors: 12 low-rank layer(s) (strength 0.8)" in x for x in lines)

    te = load_text_encoder(str(tiny_files["text_encoder"]), device="cpu", dtype=torch.float32)
    pe, pm = te.encode(["a tiny fox"])
    ne, nm = te.encode([cli.DEFAULT_NEGATIVE_PROMPT])
    frames, _ = read_video_frames(clip)
    media = M.pad_media(M.prepare_frames(torch.from_numpy(frames[:9].copy()), h, w, just_crop=True, blur=False,
                                         crf=0), h, w)
    uses = [LoraUse(read_lora(a, ck.transformer), 0.8), LoraUse(read_lora(b, ck.transformer), -0.5)]
    with torch.no_grad():
        res = generate(Models.from_checkpoint(ck, loras=uses),
                       PipelineConfig.from_dict(load_pipeline_config("ltxv-2b-0.9.6-distilled")),
                       TextConditioning(pe, pm, ne, nm),
                       GenerationRequest(height=h, width=w, num_frames=9, frame_rate=cli.DEFAULT_FRAME_RATE, seed=cli.DEFAULT_SEED,
                                         num_inference_steps=2, conditioning=[ControlVideo(media, 0, 0.9)],
                                         output="latents"))
    torch.testing.assert_close(load_file(str(lat))["latents"], res.latents, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["13b-on-2b", "flux"])
def test_cli_a_lora_for_another_model_is_one_line(tiny_files, tmp_path, capsys, kind):
    import tiny_lora as tl
    import tiny_transformer

    lora = tmp_path / f"{kind}.safetensors"
    if kind == "flux":
        save_file({"diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight": torch.zeros(2, 8),
                   "diffusion_model.double_blocks.0.img_attn.qkv.lora_B.weight": torch.zeros(8, 2)}, str(lora))
        expect = "this LoRA matches nothing in this LTX-Video transformer: it looks like a FLUX LoRA"
    else:
        tl.write_lora(lora, tl.random_lora(tiny_transformer.tiny_reference("13b")[0], rank=2), "comfyui")
        expect = "this LoRA does not fit this transformer"
    argv = ["generate", "--prompt", "x", "--pipeline_config", "ltxv-2b-0.9.6-distilled",
            "--checkpoint_path", str(tiny_files["checkpoint"]), "--text_encoder_path", str(tiny_files["text_encoder"]),
            "--height", "32", "--width", "32", "--num_frames", "9", "--device", "cpu", "--dtype", "float32",
            "--output_path", str(tmp_path / "v.mp4"), "--lora_paths", str(lora)]
    rc, lines = _run_main(capsys, argv)
    assert rc == 2 and sum(line.startswith("error") for line in lines) == 1
    assert lines[-1].startswith(f"error: {lora}: {expect}")
    assert not (tmp_path / "v.mp4").exists()


def test_cli_gguf_with_a_vae_file_equals_the_python_api(tiny_files, tmp_path, capsys):
    _real_generate()
    import tiny_gguf
    import tiny_transformer
    import tiny_vae
    from ltx_core import (GenerationRequest, LoadOptions, Models, PipelineConfig, TextConditioning, generate,
                          load_pipeline_config, load_text_encoder, load_video_model)

    te = load_text_encoder(str(tiny_files["text_encoder"]), device="cpu", dtype=torch.float32)
    ref, _ = tiny_transformer.tiny_reference("2b", num_attention_heads=32, attention_head_dim=8, cross_attention_dim=256,
                                             caption_channels=te.model.config.d_model)
    model = tmp_path / "ltxv-2b-0.9.6-distilled-Q5_1.gguf"
    tiny_gguf.write_gguf(model, ref.state_dict(), "Q5_1")
    _, v_cfg, v_sd = tiny_vae.tiny_vae("0.9.5")
    vae = tmp_path / "vae.safetensors"
    save_file({f"vae.{k}": v.contiguous() for k, v in v_sd.items()}, str(vae),
              metadata={"config": json.dumps({"vae": v_cfg})})
    lat = tmp_path / "l.safetensors"
    argv = ["generate", "--prompt", "a tiny fox", "--pipeline_config", "ltxv-2b-0.9.6-distilled",
            "--checkpoint_path", str(model), "--vae_path", str(vae), "--text_encoder_path", str(tiny_files["text_encoder"]),
            "--height", "32", "--width", "64", "--num_frames", "9", "--num_inference_steps", "2", "--device", "cpu",
            "--dtype", "float32", "--output_path", str(tmp_path / "v.mp4"), "--output_latents", str(lat)]
    rc, lines = _run_main(capsys, argv)
    assert rc == 0, lines
    assert any("release 0.9.6 (from the file name)" in x for x in lines)
    frames, _ = read_video_frames(tmp_path / "v.mp4")
    assert frames.shape == (9, 32, 64, 3)

    pe, pm = te.encode(["a tiny fox"])
    ne, nm = te.encode([cli.DEFAULT_NEGATIVE_PROMPT])
    ck = load_video_model(model, LoadOptions(dtype=torch.float32), vae_path=vae)
    with torch.no_grad():
        res = generate(Models.from_checkpoint(ck), PipelineConfig.from_dict(load_pipeline_config("ltxv-2b-0.9.6-distilled")),
                       TextConditioning(pe, pm, ne, nm),
                       GenerationRequest(height=32, width=64, num_frames=9, frame_rate=cli.DEFAULT_FRAME_RATE,
                                         seed=cli.DEFAULT_SEED, num_inference_steps=2, output="latents"))
    torch.testing.assert_close(load_file(str(lat))["latents"], res.latents, rtol=1e-5, atol=1e-6)


def test_cli_long_video_with_chunk_prompts_equals_the_python_api(tiny_files, tmp_path, capsys):
    _real_generate()
    from ltx_core import (LoadOptions, Models, PipelineConfig, TemporalTiling, encode_chunk_prompts, generate_long,
                          load_pipeline_config, load_text_encoder, load_video_model)

    lat, out = tmp_path / "l.safetensors", tmp_path / "long.mp4"
    argv = ["generate", "--prompt", "a fox runs | the fox jumps", "--pipeline_config", "ltxv-2b-0.9.6-distilled",
            "--checkpoint_path", str(tiny_files["checkpoint"]), "--text_encoder_path", str(tiny_files["text_encoder"]),
            "--height", "32", "--width", "32", "--num_frames", "57", "--num_inference_steps", "2", "--device", "cpu",
            "--dtype", "float32", "--temporal_tile_frames", "33", "--temporal_overlap_frames", "16",
            "--adain_factor", "0.2", "--output_path", str(out), "--output_latents", str(lat)]
    rc, lines = _run_main(capsys, argv)
    assert rc == 0, lines
    frames, _ = read_video_frames(out)
    assert frames.shape == (57, 32, 32, 3)

    te = load_text_encoder(str(tiny_files["text_encoder"]), device="cpu", dtype=torch.float32)
    texts = encode_chunk_prompts(te, ["a fox runs", "the fox jumps"], cli.DEFAULT_NEGATIVE_PROMPT)
    ck = load_video_model(str(tiny_files["checkpoint"]), LoadOptions(dtype=torch.float32))
    from ltx_core import GenerationRequest

    with torch.no_grad():
        res = generate_long(Models.from_checkpoint(ck), PipelineConfig.from_dict(load_pipeline_config(
            "ltxv-2b-0.9.6-distilled")), texts, GenerationRequest(
                height=32, width=32, num_frames=57, frame_rate=cli.DEFAULT_FRAME_RATE, seed=cli.DEFAULT_SEED,
                num_inference_steps=2, output="latents"),
            TemporalTiling(tile_frames=33, overlap_frames=16, adain_factor=0.2))
    torch.testing.assert_close(load_file(str(lat))["latents"], res.latents, rtol=1e-5, atol=1e-6)
    assert res.latents.shape[2] == 8  # 57 frames in two chunks of 5 latent frames sharing 2


_RSS_WORKER = """
import resource, sys
sys.path.insert(0, sys.argv[1])
from ltx_core import cli
rc = cli.main(sys.argv[2:])
print("RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rc)
"""


def test_cli_long_video_memory_does_not_grow_with_the_video(tiny_files, tmp_path):
    """Peak RSS of the whole command for 65 frames (3 chunks) against 129 (6 chunks): the decoded video is written
    piece by piece, so the extra 64 frames' float32 (64 x 256 x 256 x 3 x 4 B = 50 MB) are never held: the
    difference stays far below what holding them would add."""
    _real_generate()
    peaks = {}
    for frames in (65, 129):
        argv = ["generate", "--prompt", "a fox", "--pipeline_config", "ltxv-2b-0.9.6-distilled",
                "--checkpoint_path", str(tiny_files["checkpoint"]), "--text_encoder_path",
                str(tiny_files["text_encoder"]), "--height", "256", "--width", "256", "--num_frames", str(frames),
                "--num_inference_steps", "1", "--device", "cpu", "--dtype", "float32", "--temporal_tile_frames", "33",
                "--temporal_overlap_frames", "16", "--output_path", str(tmp_path / f"{frames}.mp4")]
        # Large blocks from mmap, so freed memory leaves the process (as tests/test_memory_estimate.py measures).
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
        r = subprocess.run([sys.executable, "-c", _RSS_WORKER, str(REPO), *argv], capture_output=True, text=True,
                           timeout=600, env=env)
        line = [x for x in r.stdout.splitlines() if x.startswith("RSS_KB")]
        assert line and line[0].endswith(" 0"), r.stderr[-2000:]
        peaks[frames] = int(line[0].split()[1]) * 1024
        assert read_video_frames(tmp_path / f"{frames}.mp4")[0].shape == (frames, 256, 256, 3)
    held = (129 - 65) * 256 * 256 * 3 * 4
    assert peaks[129] - peaks[65] < held / 2, {k: v / 2**20 for k, v in peaks.items()}


def test_cli_refuses_a_video_larger_than_the_ram_in_one_line(tiny_files, tmp_path, capsys, monkeypatch):
    """On the CPU the step is checked against the RAM available without swapping, before any latent is made."""
    _real_generate()
    import ltx_core.pipelines.generation as generation

    called = []
    monkeypatch.setattr(generation, "run_pass", lambda *a, **k: called.append(a))
    argv = ["generate", "--prompt", "x", "--pipeline_config", "ltxv-2b-0.9.6-distilled",
            "--checkpoint_path", str(tiny_files["checkpoint"]), "--text_encoder_path", str(tiny_files["text_encoder"]),
            "--height", "100000", "--width", "100000", "--num_frames", "9", "--device", "cpu", "--dtype", "float32",
            "--output_path", str(tmp_path / "big.mp4")]
    rc, lines = _run_main(capsys, argv)
    assert rc == 2 and lines[-1].startswith("error: 9 frames at 100000x100000 need about ")
    assert "free on cpu" in lines[-1] and "What fits:" in lines[-1] and not called
    assert not (tmp_path / "big.mp4").exists()


def test_other_accelerator_errors_are_not_taken_for_out_of_memory():
    from ltx_core import is_out_of_memory

    assert is_out_of_memory(torch.AcceleratorError("CUDA error: out of memory"))
    assert not is_out_of_memory(torch.AcceleratorError("CUDA error: an illegal memory access was encountered"))
    assert not is_out_of_memory(RuntimeError("out of memory"))  # not an allocator error: a bug to report as such
