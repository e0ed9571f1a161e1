"""The bad-input corpus: one row per bad (or merely odd) input, through both front ends: 80 CLI rows, 24 node rows.

- CLI (`python -m ltx_core generate`, in process, on tiny real model files and the real pipeline): every row ends
  in exit code 2 and exactly one `error: ...` line naming the input and what is allowed (progress lines before it
  are fine), never a traceback and never a file left in the output folder; the rows marked fine (odd sizes, odd
  frame counts, huge prompts, unusual images) succeed. Rows: sizes, seeds, strengths and scales, frame indices,
  prompts, media, model files, pipeline config files, output paths.
- Nodes (with the bridge's stand-ins): every row raises one ValueError starting with the node's display name.

Seeds: both front ends take seeds from 0 to 2**64 - 1 (torch's generator range) and refuse others, so a seed names
one video everywhere.
"""
import os
import struct

import numpy as np
import pytest
import yaml
from PIL import Image
from safetensors.torch import save_file

from ltx_core.video_io import write_mp4
from test_cli import _run_main, tiny_files  # noqa: F401  (tiny_files: a fixture)
from test_nodes import models  # noqa: F401  (a fixture)
from video_files import read_video_frames

OK = None  # a row that must succeed
TINY = ["--height", "32", "--width", "32", "--num_frames", "9", "--num_inference_steps", "1", "--device", "cpu",
        "--dtype", "float32", "--pipeline_config", "ltxv-2b-0.9.6-distilled"]


# ----------------------------------------------------------------------------------------------------------------
# CLI


def _media(d):
    """Odd and broken media files in folder d: name -> path."""
    d.mkdir(exist_ok=True)
    g = np.random.default_rng(0)
    rgb = g.integers(0, 255, (40, 40, 3), dtype=np.uint8)
    files = {"corrupt.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "empty.png": b""}
    for name, data in files.items():
        (d / name).write_bytes(data)
    Image.fromarray(rgb[..., 0]).save(d / "gray.png")
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(d / "rgba.png")
    Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)).save(d / "gray16.png")
    Image.fromarray(rgb[:1, :1]).save(d / "pixel.png")
    write_mp4(d / "one_frame.mp4", rgb[None], 24)
    (d / "folder.png").mkdir(exist_ok=True)
    return {p.name: str(p) for p in d.iterdir()} | {"missing.png": str(d / "missing.png")}


def _model_files(d, tiny):
    """Broken and wrong model files in folder d: name -> path."""
    d.mkdir(exist_ok=True)
    ck = tiny["checkpoint"].read_bytes()
    (d / "truncated.safetensors").write_bytes(ck[: len(ck) // 2])
    (d / "zero.safetensors").write_bytes(b"")
    (d / "header_only.safetensors").write_bytes(struct.pack("<Q", 1 << 40) + b"{")
    (d / "dir.safetensors").mkdir(exist_ok=True)
    for a, b in (("loop_a.safetensors", "loop_b.safetensors"), ("loop_b.safetensors", "loop_a.safetensors")):
        if not (d / a).is_symlink():
            os.symlink(d / b, d / a)
    import torch

    save_file({"transformer.transformer_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(2, 8),
               "transformer.transformer_blocks.0.attn1.to_q.lora_B.weight": torch.zeros(8, 2)},
              str(d / "lora.safetensors"))
    return {p.name: str(p) for p in d.iterdir()} | {"upsampler": str(tiny["upsampler"]),
                                                   "text_encoder": str(tiny["text_encoder"]),
                                                   "checkpoint": str(tiny["checkpoint"])}


def _configs(d):
    d.mkdir(exist_ok=True)
    good = {"pipeline_type": "base", "num_inference_steps": 1, "guidance_scale": 1, "stg_scale": 0,
            "rescaling_scale": 1, "sampler": "from_checkpoint", "precision": "float32", "decode_timestep": 0.05,
            "decode_noise_scale": 0.025}
    texts = {"broken.yaml": "pipeline_type: base\n  guidance_scale: [1,\n",
             "list.yaml": "- 1\n- 2\n",
             "unknown_key.yaml": yaml.safe_dump(good | {"guidance_sacle": 3}),
             "wrong_type.yaml": yaml.safe_dump(good | {"guidance_scale": "lots"}),
             "bad_steps.yaml": yaml.safe_dump(good | {"num_inference_steps": -3}),
             "binary.yaml": "\udcff"}
    for name, text in texts.items():
        (d / name).write_bytes(text.encode("utf-8", "surrogateescape"))
    return {name: str(d / name) for name in texts}


def _cli_rows():
    """(id, argv after the model paths (M: model files, X: media, C: configs, O: output folder), expected)."""
    return [
        # sizes
        ("height 0", lambda M, X, C, O: ["--height", "0"], "--height and --width must be positive, got 0x32"),
        ("width negative", lambda M, X, C, O: ["--width", "-32"], "--height and --width must be positive"),
        ("height huge", lambda M, X, C, O: ["--height", str(10**9)], "need about"),
        ("size not a multiple of 32", lambda M, X, C, O: ["--height", "40", "--width", "50"], OK),
        ("frames 0", lambda M, X, C, O: ["--num_frames", "0"], "--num_frames must be positive, got 0"),
        ("frames negative", lambda M, X, C, O: ["--num_frames", "-9"], "--num_frames must be positive, got -9"),
        ("frames not 8k+1", lambda M, X, C, O: ["--num_frames", "10"], OK),
        # seeds
        ("seed negative", lambda M, X, C, O: ["--seed", "-1"], "--seed must be from 0 to 18446744073709551615"),
        ("seed 2**64", lambda M, X, C, O: ["--seed", str(2**64)], "--seed must be from 0 to 18446744073709551615"),
        ("seed 2**64-1", lambda M, X, C, O: ["--seed", str(2**64 - 1)], OK),
        # strengths and scales
        *[(f"conditioning strength {v}", lambda M, X, C, O, v=v: [
            "--conditioning_media_paths", X["gray.png"], "--conditioning_start_frames", "0",
            "--conditioning_strengths", v], f"conditioning strengths must be between 0 and 1, got {float(v)}")
          for v in ("nan", "inf", "-0.5", "1.5")],
        *[(f"image_cond_noise_scale {v}", lambda M, X, C, O, v=v: ["--image_cond_noise_scale", v],
           f"--image_cond_noise_scale must be a finite number >= 0, got {float(v)}") for v in ("nan", "inf", "-1")],
        *[(f"lora strength {v}", lambda M, X, C, O, v=v: ["--lora_paths", M["lora.safetensors"], f"--lora_strengths={v}"],
           f"--lora_strengths must be finite numbers, got {float(v)}") for v in ("nan", "inf", "-inf")],
        *[(f"control strength {v}", lambda M, X, C, O, v=v: ["--control_video_path", X["one_frame.mp4"],
                                                             "--control_strength", v],
           f"--control_strength must be between 0 and 1, got {float(v)}") for v in ("nan", "inf", "-1", "2")],
        *[(f"overlap strength {v}", lambda M, X, C, O, v=v: ["--temporal_overlap_strength", v],
           f"--temporal_overlap_strength must be in [0, 1], got {float(v)}") for v in ("nan", "inf", "-1", "2")],
        *[(f"adain factor {v}", lambda M, X, C, O, v=v: ["--adain_factor", v],
           f"--adain_factor must be in [0, 1], got {float(v)}") for v in ("nan", "-1", "2")],
        # frame indices
        ("start frame beyond the video", lambda M, X, C, O: [
            "--conditioning_media_paths", X["gray.png"], "--conditioning_start_frames", "100"],
         "conditioning start frame 100 is outside the video: start frames must be between 0 and 8"),
        ("start frame negative", lambda M, X, C, O: [
            "--conditioning_media_paths", X["gray.png"], "--conditioning_start_frames", "-20"],
         "conditioning start frame -20 is outside the video"),
        # prompts
        ("prompt empty", lambda M, X, C, O: ["--prompt", ""], OK),  # T5 encodes it: an unconditioned video
        ("prompt blank", lambda M, X, C, O: ["--prompt", " \t"], OK),
        ("prompt 10000 words", lambda M, X, C, O: ["--prompt", " ".join(["fox"] * 10_000)], OK),
        ("prompt not UTF-8", lambda M, X, C, O: ["--prompt", "a cat \udcff"], "--prompt: not valid UTF-8 text"),
        ("negative prompt not UTF-8", lambda M, X, C, O: ["--negative_prompt", "\udcffblurry"],
         "--negative_prompt: not valid UTF-8 text"),
        ("prompt control characters", lambda M, X, C, O: ["--prompt", "a\x00cat\x07\x1b[31m"], OK),
        # media
        *[(f"conditioning {name}", lambda M, X, C, O, n=name: [
            "--conditioning_media_paths", X[n], "--conditioning_start_frames", "0"], expect)
          for name, expect in (("corrupt.png", "corrupt.png"), ("empty.png", "empty.png"),
                               ("folder.png", "folder.png"), ("missing.png", "missing.png: no such file"),
                               ("one_frame.mp4", OK), ("gray.png", OK), ("rgba.png", OK), ("gray16.png", OK),
                               ("pixel.png", OK))],
        *[(f"input media {name}", lambda M, X, C, O, n=name: ["--input_media_path", X[n]], expect)
          for name, expect in (("corrupt.png", "--input_media_path"), ("folder.png", "--input_media_path"),
                               ("missing.png", "--input_media_path"),
                               ("one_frame.mp4", "has 1 frame(s), video-to-video with --num_frames 9 needs at least 9"))],
        ("control video missing", lambda M, X, C, O: ["--control_video_path", X["missing.png"]], "missing.png"),
        # model files
        *[(f"checkpoint {name}", lambda M, X, C, O, n=name: ["--checkpoint_path", M[n]], expect)
          for name, expect in (("text_encoder", "t5"), ("upsampler", "tiny-upscaler.safetensors"),
                               ("lora.safetensors", "lora.safetensors"), ("truncated.safetensors", "truncated"),
                               ("zero.safetensors", "zero.safetensors"), ("header_only.safetensors", "header_only"),
                               ("dir.safetensors", "dir.safetensors"), ("loop_a.safetensors", "loop_a"))],
        *[(f"text encoder {name}", lambda M, X, C, O, n=name: ["--text_encoder_path", M[n]], expect)
          for name, expect in (("checkpoint", "tiny-ltxv.safetensors"), ("zero.safetensors", "zero.safetensors"),
                               ("dir.safetensors", "dir.safetensors"), ("loop_a.safetensors", "loop_a"))],
        *[(f"lora {name}", lambda M, X, C, O, n=name: ["--lora_paths", M[n]], expect)
          for name, expect in (("zero.safetensors", "zero.safetensors"), ("truncated.safetensors", "truncated"),
                               ("dir.safetensors", "dir.safetensors"), ("loop_a.safetensors", "loop_a"))],
        ("vae is a folder", lambda M, X, C, O: ["--vae_path", M["dir.safetensors"]], "--vae_path"),
        ("upscaler truncated", lambda M, X, C, O: ["--spatial_upscaler_model_path", M["truncated.safetensors"]],
         "truncated"),
        # config files
        *[(f"config {name}", lambda M, X, C, O, n=name: ["--pipeline_config", C[n]], expect)
          for name, expect in (("broken.yaml", "broken.yaml: not valid YAML"),
                               ("list.yaml", "list.yaml: a pipeline config must be a YAML mapping"),
                               ("unknown_key.yaml", OK), ("wrong_type.yaml", "guidance_scale"),
                               ("bad_steps.yaml", "num_inference_steps"), ("binary.yaml", "binary.yaml"))],
        # output paths
        ("output into an unwritable folder", lambda M, X, C, O: ["--output_path", _unwritable(O)], "cannot write"),
        ("output names an existing folder", lambda M, X, C, O: ["--output_path", _folder_named_mp4(O)],
         "is a folder"),
        ("latents into an unwritable folder", lambda M, X, C, O: [
            "--output_latents", _unwritable(O).replace(".mp4", ".safetensors")], "cannot write"),
    ]


def _unwritable(out):
    """A file name in a folder that cannot be written to; as root (where modes do not restrict), under a file."""
    if os.geteuid() == 0:
        (out / "file.txt").write_text("")
        return str(out / "file.txt" / "out.mp4")
    d = out / "locked"
    d.mkdir()
    d.chmod(0o500)
    return str(d / "out.mp4")


def _folder_named_mp4(out):
    (out / "existing.mp4").mkdir()
    return str(out / "existing.mp4") + os.sep


def _files_in(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != "file.txt")


@pytest.fixture(scope="module")
def inputs(tiny_files, tmp_path_factory):  # noqa: F811
    d = tmp_path_factory.mktemp("bad_inputs")
    return {"M": _model_files(d / "models", tiny_files), "X": _media(d / "media"), "C": _configs(d / "configs"),
            "tiny": tiny_files}


@pytest.mark.parametrize("row", _cli_rows(), ids=lambda r: r[0])
def test_cli_row(row, inputs, tmp_path, capsys, monkeypatch):
    _, extra, expect = row
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)  # the default output folder is relative
    tiny = inputs["tiny"]
    argv = ["generate", "--prompt", "a fox", "--checkpoint_path", str(tiny["checkpoint"]), "--text_encoder_path",
            str(tiny["text_encoder"]), *TINY, "--output_path", str(out / "video.mp4")]
    argv += extra(inputs["M"], inputs["X"], inputs["C"], out)
    try:
        rc, lines = _run_main(capsys, argv)
    finally:
        for p in out.rglob("*"):  # let pytest remove what a row locked
            if p.is_dir():
                p.chmod(0o700)
    assert not any("Traceback" in line for line in lines), lines
    if expect is OK:
        assert rc == 0, lines
        written = [p for p in _files_in(out) if p.endswith((".mp4", ".png"))]
        assert len(written) == 1, written
        frames, _ = read_video_frames(out / written[0])
        assert frames.shape[0] in (1, 9, 10)
        return
    errors = [line for line in lines if line.startswith("error")]
    assert rc == 2 and errors == lines[-1:], lines
    assert expect in errors[0], errors[0]
    assert _files_in(out) == [], "a failed run left files behind"


# ----------------------------------------------------------------------------------------------------------------
# nodes


def _node_rows():
    """(id, display name, a call of the node on the `models` fixture's stand-ins, a word the message must hold)."""
    import test_nodes as tn

    nan, inf = float("nan"), float("inf")
    rows = [(f"sampler {k}={v}", "LTX-Video Sampler", lambda m, k=k, v=v: tn.sample(m, **{k: v}), k)
            for k, v in (("width", 0), ("height", -32), ("width", 10**9), ("num_frames", 0), ("num_frames", -9),
                         ("seed", -1), ("seed", 2**64), ("image_cond_noise_scale", nan),
                         ("image_cond_noise_scale", inf), ("image_cond_noise_scale", -1.0), ("denoise", nan))]
    rows += [(f"add image strength={v}", "LTX-Video Add Image / Clip", lambda m, v=v: tn.run(
        "LTXVStackAddImage", conditioning=m["cond"], image=tn.image(1, 32, 32), frame_index=0, strength=v, crf=0,
        blur=False), "strength") for v in (nan, inf, -0.5, 1.5)]
    rows += [(f"control {k}={v}", "LTX-Video Add Control Video", lambda m, k=k, v=v: tn.run(
        "LTXVStackAddControlVideo", **{"conditioning": m["cond"], "control_video": tn.image(9, 32, 32),
                                       "strength": 1.0, "start_frame": 0, k: v}), k)
             for k, v in (("strength", nan), ("strength", 2.0), ("start_frame", -8))]
    rows += [(f"lora strength={v}", "LTX-Video LoRA Loader", lambda m, v=v: tn.run(
        "LTXVStackLoraLoader", model=m["model"], lora_name="style.safetensors", strength=v), "strength")
             for v in (nan, inf)]
    rows += [(f"decode {k}={v}", "LTX-Video VAE Decode", lambda m, k=k, v=v: tn.decode(
        m, tn.sample(m, num_frames=1, width=32, height=32), **{k: v}), k)
             for k, v in (("decode_timestep", nan), ("decode_timestep", -1.0), ("decode_noise_scale", inf))]
    rows.append(("text encode not UTF-8", "LTX-Video Text Encode", lambda m: tn.run(
        "LTXVStackTextEncode", text_encoder=m["te"], prompt="a cat \udcff", negative_prompt="", frame_rate=24.0),
        "UTF-8"))
    return rows


@pytest.fixture(scope="module")
def node_models(request):
    import test_nodes as tn

    stand_ins = request.getfixturevalue("models")
    tn._lora_files(stand_ins)
    return stand_ins




@pytest.mark.parametrize("row", _node_rows(), ids=lambda r: r[0])
def test_node_row(row, node_models):
    _, display, call, needle = row
    needle = "need about" if row[0] == "sampler width=1000000000" else needle
    with pytest.raises(ValueError) as e:
        call(node_models)
    message = str(e.value)
    assert message.startswith(f"{display}: ") and needle in message and "\n" not in message, message
