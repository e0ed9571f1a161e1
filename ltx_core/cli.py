"""`python -m ltx_core generate`: text/image/video-to-video from the command line, with the official `inference.py`
options under the same names and defaults. Model files are local paths, or, where a path is not given, the
pipeline config's files from the Hugging Face hub (its cache; `--offline` or HF_HUB_OFFLINE=1 use the cache only).

Every check that needs no model runs first (sizes, conditioning lists, the pipeline config, model files, media),
then the downloads; a failure prints one line on stderr and exits with code 2.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from . import (DEFAULT_FRAME_RATE, DEFAULT_HEIGHT, DEFAULT_NEGATIVE_PROMPT, DEFAULT_NUM_FRAMES, DEFAULT_OVERLAP_FRAMES,
               DEFAULT_OVERLAP_STRENGTH, DEFAULT_PIPELINE_CONFIG, DEFAULT_SEED, DEFAULT_TILE_FRAMES, DEFAULT_WIDTH,
               HF_REPO, HF_URL, IMAGE_COND_NOISE_SCALE, MAX_SEED, RELEASE_CHOICES, T5_SOURCES, WEIGHT_DTYPES)
from . import BACKENDS, OV_WEIGHTS

class UsageError(Exception):
    """A problem with the user's arguments or files: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block
        raise UsageError(f"{message} (see --help)")


def _bool(v) -> bool:
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "y", "on"):
        return True
    if s in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {v!r}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m ltx_core", description="LTX-Video from the command line.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    g = sub.add_parser("generate", help="generate a video (options as the official inference.py)",
                       description="Generate a video. The options are the official inference.py's, with the "
                                   "same defaults; a model file not given as a path is downloaded from the "
                                   "Hugging Face hub into its cache, as inference.py does.")
    g.add_argument("--prompt", required=True, help="the text prompt")
    g.add_argument("--negative_prompt", default=DEFAULT_NEGATIVE_PROMPT)
    g.add_argument("--output_path", default=None,
                   help="output folder (default outputs/<date>; files named as inference.py names them) or a "
                        "file name ending in .mp4 (.png for a single frame)")
    g.add_argument("--pipeline_config", default=DEFAULT_PIPELINE_CONFIG,
                   help="an official config name (e.g. ltxv-13b-0.9.8-distilled) or a path to a .yaml config")
    g.add_argument("--seed", type=int, default=DEFAULT_SEED)
    g.add_argument("--height", type=int, default=DEFAULT_HEIGHT)
    g.add_argument("--width", type=int, default=DEFAULT_WIDTH)
    g.add_argument("--num_frames", type=int, default=DEFAULT_NUM_FRAMES)
    g.add_argument("--frame_rate", type=float, default=DEFAULT_FRAME_RATE)
    g.add_argument("--offload_to_cpu", type=_bool, nargs="?", const=True, default=False,
                   help="keep the transformer in CPU memory and stream its blocks to the device one at a time "
                        "(prefetched on a side stream): device memory for weights drops to the non-block weights "
                        "plus two blocks. The text encoder is always freed before the transformer is loaded")
    g.add_argument("--compile", action="store_true",
                   help="torch.compile the transformer blocks (the first step pays the compilation)")
    g.add_argument("--fp8_matmul", action="store_true",
                   help="with float8_e4m3fn weights (--dtype, or an -fp8 config): multiply in fp8 (torch._scaled_mm; "
                        "fast on Ada/Hopper GPUs) instead of upcasting each layer to bf16; results differ by about "
                        "as much as fp8 storage itself")
    _add_conditioning_arguments(g)
    _add_long_video_arguments(g)
    _add_backend_arguments(g)
    _add_model_file_arguments(g)
    g.add_argument("--num_inference_steps", type=int, default=None, help="override the config's step count")
    g.add_argument("--device", default=None, help="cuda, cuda:1, cpu, mps (default: cuda when available)")
    g.add_argument("--dtype", default=None, choices=WEIGHT_DTYPES,
                   help="model weights dtype (default: from the config's precision)")
    g.add_argument("--output_latents", default=None, metavar="FILE.safetensors",
                   help="also save the final latents (tensor 'latents') to this file")
    return p


def _add_conditioning_arguments(g) -> None:
    """Media to condition on, LoRAs and an IC-LoRA's control video."""
    g.add_argument("--input_media_path", default=None, help="video (or image) to modify (video-to-video)")
    g.add_argument("--image_cond_noise_scale", type=float, default=IMAGE_COND_NOISE_SCALE)
    g.add_argument("--conditioning_media_paths", nargs="+", default=None, metavar="PATH",
                   help="images or videos to condition on, one item each")
    g.add_argument("--conditioning_strengths", nargs="+", type=float, default=None, metavar="S",
                   help="a strength in [0,1] per item (default 1.0 each)")
    g.add_argument("--conditioning_start_frames", nargs="+", type=int, default=None, metavar="F",
                   help="the frame each item starts at (required with --conditioning_media_paths)")
    g.add_argument("--lora_paths", nargs="+", default=None, metavar="PATH",
                   help="LoRA .safetensors files to apply (trainer/diffusers, ComfyUI, kohya or diff-patch keys), "
                        "stacked")
    g.add_argument("--lora_strengths", nargs="+", type=float, default=None, metavar="S",
                   help="a strength per LoRA (default 1.0 each; negative values push the other way)")
    g.add_argument("--control_video_path", default=None, metavar="PATH",
                   help="an IC-LoRA control video (depth, pose or edges; apply the IC-LoRA with --lora_paths)")
    g.add_argument("--control_strength", type=float, default=1.0,
                   help="in [0,1]: 1.0 shows the control to the model exactly, lower values through noise")


def _add_long_video_arguments(g) -> None:
    """Temporal chunks: used when one is given or --num_frames is longer than one pass takes."""
    g.add_argument("--temporal_tile_frames", type=int, default=None, metavar="N",
                   help=f"frames per chunk of a long video, 8k+1 (default {DEFAULT_TILE_FRAMES}); with --prompt "
                        "'first | second | ...' each chunk gets its prompt (the last repeats)")
    g.add_argument("--temporal_overlap_frames", type=int, default=None, metavar="M",
                   help=f"frames a chunk shares with the previous one, a multiple of 8 (default "
                        f"{DEFAULT_OVERLAP_FRAMES}): more carries motion better, costs more chunks")
    g.add_argument("--temporal_overlap_strength", type=float, default=None, metavar="S",
                   help=f"how strongly a chunk keeps the shared frames, 0-1 (default {DEFAULT_OVERLAP_STRENGTH})")
    g.add_argument("--adain_factor", type=float, default=None, metavar="A",
                   help="0-1: pull each chunk's colour statistics toward the first chunk's against drift (default 0; "
                        "0.1-0.3 is a usual range)")
    g.add_argument("--long_memory_strength", type=float, default=None, metavar="S",
                   help="0-1: show every later chunk a latent frame of the first chunk at its distance in the past, "
                        "against drift from the start (default 0: off)")
    g.add_argument("--long_memory_frame", type=int, default=None, metavar="K",
                   help="which latent frame of the first chunk the long memory shows (default 0: the first frame)")


def _add_backend_arguments(g) -> None:
    """Where the transformer runs: eager PyTorch or OpenVINO (the optional extra; CPUs and Intel GPUs)."""
    g.add_argument("--backend", default="torch", choices=BACKENDS,
                   help="torch (default) or openvino: the transformer and the T5 encoder converted once to OpenVINO "
                        "models (cached on disk, $LTX_OPENVINO_CACHE or ~/.cache/ltx_core/openvino) with "
                        "--ov_weights, run on --ov_device; the VAE stays torch; needs pip install -r "
                        "requirements-openvino.txt")
    g.add_argument("--ov_device", default="CPU", help="OpenVINO device: CPU, GPU (Intel; GPU.0, GPU.1) or AUTO")
    g.add_argument("--ov_weights", default="int8", choices=OV_WEIGHTS,
                   help="OpenVINO weights: fp32 (as eager fp32), int8 (NNCF weight compression: a quarter of the "
                        "memory, results within ~2%% of fp32) or int4 (an eighth, ~15%%)")


def _validate_backend(a) -> None:
    """What the OpenVINO backend cannot do, refused before anything loads."""
    if a.backend != "openvino":
        return
    if a.offload_to_cpu:
        raise UsageError("--offload_to_cpu streams torch weights to a torch device; with --backend openvino the "
                         "weights stay with OpenVINO: drop --offload_to_cpu (use --ov_weights int8 or int4 to need "
                         "less memory)")
    if a.lora_paths or a.control_video_path:
        raise UsageError("LoRAs (and IC-LoRA control videos) are applied to torch weights: use --backend torch for "
                         "--lora_paths/--control_video_path")


def _add_model_file_arguments(g) -> None:
    """Where the model files are, and what a file without a config cannot say."""
    g.add_argument("--checkpoint_path", default=None,
                   help="the model .safetensors, or a transformer-only .gguf / .safetensors with --vae_path (default: "
                        "the config's checkpoint_path, looked up as given, else downloaded from Lightricks/LTX-Video)")
    g.add_argument("--vae_path", default=None, metavar="PATH",
                   help="a VAE .safetensors for a transformer-only --checkpoint_path (a GGUF file): the VAE released "
                        "with the model (e.g. LTXV-13B-0.9.8-distilled-VAE.safetensors; LTX-Video-VAE-BF16.safetensors "
                        "for 2B 0.9); with a full checkpoint it replaces the checkpoint's VAE")
    g.add_argument("--model_release", default="auto", choices=RELEASE_CHOICES,
                   help="the release of a checkpoint without a config (GGUF, transformer-only): auto reads it from "
                        "the file name")
    g.add_argument("--text_encoder_path", default=None,
                   help=f"a T5-XXL encoder: {T5_SOURCES} (default: t5xxl_fp16.safetensors and the PixArt tokenizer, "
                        "downloaded)")
    g.add_argument("--spatial_upscaler_model_path", default=None,
                   help="latent upsampler for multi-scale configs (default: the config's, looked up as given and "
                        "next to the checkpoint, else downloaded)")
    g.add_argument("--offline", action="store_true",
                   help="never contact the Hugging Face hub: files not given as paths must be in its cache "
                        "(as HF_HUB_OFFLINE=1)")


# ----------------------------------------------------------------------------------------------------------------
# validation (no models)


def _validate_numbers(a):
    if a.height < 1 or a.width < 1:
        raise UsageError(f"--height and --width must be positive, got {a.height}x{a.width}")
    if a.num_frames < 1:
        raise UsageError(f"--num_frames must be positive, got {a.num_frames}")
    if not a.frame_rate > 0:
        raise UsageError(f"--frame_rate must be positive, got {a.frame_rate}")
    if a.num_inference_steps is not None and a.num_inference_steps < 1:
        raise UsageError(f"--num_inference_steps must be positive, got {a.num_inference_steps}")
    if not 0 <= a.image_cond_noise_scale < math.inf:
        raise UsageError(f"--image_cond_noise_scale must be a finite number >= 0, got {a.image_cond_noise_scale}")
    if not 0 <= a.seed <= MAX_SEED:
        raise UsageError(f"--seed must be from 0 to {MAX_SEED}, got {a.seed}")
    if a.output_latents and not a.output_latents.lower().endswith(".safetensors"):
        raise UsageError(f"--output_latents must name a .safetensors file, got {a.output_latents!r}")
    if not 0.0 <= a.control_strength <= 1.0:
        raise UsageError(f"--control_strength must be between 0 and 1, got {a.control_strength}")


def _validate_text(a):
    from . import text_problem

    for flag, text in (("--prompt", a.prompt), ("--negative_prompt", a.negative_prompt)):
        problem = text_problem(text)  # argv bytes that were not UTF-8 arrive as lone surrogates
        if problem:
            raise UsageError(f"{flag}: {problem}")


def _check_writable(path: Path, flag: str) -> None:
    """Before any model loads: the output file can be created (its folder exists or can be made, and is writable)."""
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder: give a file name (.mp4, .png or .safetensors) or a folder "
                         "without such an extension")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"{flag} {path}: cannot write there, {folder} is a file and not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: cannot write there, folder {folder} is not writable")


def _validate_conditioning(a) -> list[tuple[str, float, int]]:
    paths, strengths, starts = a.conditioning_media_paths, a.conditioning_strengths, a.conditioning_start_frames
    if not paths:
        if strengths or starts:
            raise UsageError("--conditioning_strengths/--conditioning_start_frames given without "
                             "--conditioning_media_paths")
        return []
    if not starts:
        raise UsageError("--conditioning_media_paths needs --conditioning_start_frames (one frame index per item)")
    strengths = strengths or [1.0] * len(paths)
    if not len(paths) == len(strengths) == len(starts):
        raise UsageError(f"--conditioning_media_paths ({len(paths)}), --conditioning_strengths ({len(strengths)}) "
                         f"and --conditioning_start_frames ({len(starts)}) must have the same length")
    for s in strengths:
        if not 0.0 <= s <= 1.0:
            raise UsageError(f"conditioning strengths must be between 0 and 1, got {s}")
    for f in starts:
        if f < 0 or f >= a.num_frames:
            raise UsageError(f"conditioning start frame {f} is outside the video: start frames must be between 0 "
                             f"and {a.num_frames - 1} (--num_frames {a.num_frames})")
    return list(zip(paths, strengths, starts, strict=True))


def _validate_loras(a) -> list[tuple[str, float]]:
    from . import ModelFileError, check_lora_file

    paths, strengths = a.lora_paths or [], a.lora_strengths
    if strengths and not paths:
        raise UsageError("--lora_strengths given without --lora_paths")
    strengths = strengths or [1.0] * len(paths)
    if len(strengths) != len(paths):
        raise UsageError(f"--lora_paths ({len(paths)}) and --lora_strengths ({len(strengths)}) must have the same "
                         "length")
    for s in strengths:
        if not math.isfinite(s):
            raise UsageError(f"--lora_strengths must be finite numbers, got {s}")
    for path in paths:
        try:
            check_lora_file(Path(path).expanduser())
        except ModelFileError as e:
            raise UsageError(f"--lora_paths {e}") from None
    return list(zip(paths, strengths, strict=True))


_TILING_FLAGS = {"tile_frames": "--temporal_tile_frames", "overlap_frames": "--temporal_overlap_frames",
                 "overlap_strength": "--temporal_overlap_strength", "adain_factor": "--adain_factor",
                 "long_memory_strength": "--long_memory_strength", "long_memory_frame": "--long_memory_frame"}


def _long_video(a):
    """(TemporalTiling or None, the prompt of each chunk)."""
    from . import TemporalTiling, chunk_prompts

    try:
        tiling = TemporalTiling.when_needed(a.num_frames, tile_frames=a.temporal_tile_frames,
                                            overlap_frames=a.temporal_overlap_frames,
                                            overlap_strength=a.temporal_overlap_strength, adain_factor=a.adain_factor,
                                            long_memory_strength=a.long_memory_strength,
                                            long_memory_frame=a.long_memory_frame)
    except ValueError as e:
        message = str(e)
        for field, flag in _TILING_FLAGS.items():
            message = message.replace(field, flag)
        raise UsageError(message) from None
    if tiling is None:
        return None, [a.prompt]
    try:
        return tiling, chunk_prompts(a.prompt)
    except ValueError as e:
        raise UsageError(f"--prompt: {e}") from None


def _precision_dtype(precision) -> str:
    p = str(precision or "bfloat16").lower()
    if p in ("float8_e4m3fn", "fp8", "float8"):
        return "float8_e4m3fn"
    if p in ("bfloat16", "bf16", "mixed_precision"):
        return "bfloat16"
    if p in ("float32", "fp32", "float16", "fp16"):
        return {"fp32": "float32", "fp16": "float16"}.get(p, p)
    raise UsageError(f"pipeline config: unknown precision {precision!r}")


def _find_model_file(given, config_value, search_dirs, what, flag, missing_hint, downloadable=False):
    """A user path (must exist) or the config's file name looked up as given, then in search_dirs; None when it
    is not here but `downloadable`."""
    if given:
        p = Path(given).expanduser()
        if not p.exists():
            raise UsageError(f"{what} not found: {given} ({missing_hint})")
        return p
    if config_value:
        cands = [Path(str(config_value)).expanduser()]
        cands += [Path(d) / Path(str(config_value)).name for d in search_dirs if d]
        for c in cands:
            if c.exists():
                return c
    if downloadable:
        return None
    if config_value:
        raise UsageError(f"{what} {config_value!r} (named by the pipeline config) not found; {missing_hint}, and "
                         f"pass its path with {flag}")
    raise UsageError(f"no {what}: pass {flag} ({missing_hint})")


def _transformer_only(path) -> bool:
    from . import ModelFileError, transformer_only

    try:
        return transformer_only(path)
    except ModelFileError:  # an unreadable file: loading it reports that, in one line
        return False


def _resolve_models(a, cfg, config_dir):
    """({role: local path or None} of the model files, [the hub files of those that no path gave and are not
    here]): the downloads wait until every other input has been checked."""
    from . import files_for_config

    hub = files_for_config(cfg)
    ck = _find_model_file(
        a.checkpoint_path, cfg.get("checkpoint_path"), [config_dir, os.getcwd()], "checkpoint", "--checkpoint_path",
        f"download the official file{' ' + repr(Path(str(cfg['checkpoint_path'])).name) if cfg.get('checkpoint_path') else ''} "
        f"from {HF_URL} (Hugging Face repo {HF_REPO}) into a folder of your choice",
        any(f.role == "checkpoint" for f in hub))
    if a.vae_path and not Path(a.vae_path).expanduser().is_file():
        raise UsageError(f"--vae_path not found: {a.vae_path}")
    if ck is not None and not a.vae_path and _transformer_only(ck):
        raise UsageError(f"{ck} holds only the transformer (no VAE): give the VAE released with it with --vae_path "
                         "(e.g. LTXV-13B-0.9.8-distilled-VAE.safetensors), or use a full checkpoint")
    te = _find_model_file(a.text_encoder_path, cfg.get("text_encoder_model_name_or_path"), [], "text encoder",
                          "--text_encoder_path", f"give a T5-XXL encoder: {T5_SOURCES}", downloadable=True)
    up = None
    if cfg.get("pipeline_type") == "multi-scale":
        up_name = cfg.get("spatial_upscaler_model_path")
        up = _find_model_file(
            a.spatial_upscaler_model_path, up_name, [ck and ck.parent, config_dir, os.getcwd()], "spatial upscaler",
            "--spatial_upscaler_model_path",
            f"download {repr(Path(str(up_name)).name) + ' ' if up_name else 'ltxv-spatial-upscaler-0.9.8.safetensors '}"
            f"from {HF_URL} (Hugging Face repo {HF_REPO}); multi-scale configs need it",
            any(f.role == "upsampler" for f in hub))
    elif a.spatial_upscaler_model_path:
        p = Path(a.spatial_upscaler_model_path).expanduser()
        if not p.exists():
            raise UsageError(f"spatial upscaler not found: {a.spatial_upscaler_model_path}")
        up = p
    pending = {"checkpoint": ck is None, "upsampler": up is None, "text_encoder": te is None, "tokenizer": te is None}
    return {"checkpoint": ck, "text_encoder": te, "upsampler": up, "tokenizer": None}, [f for f in hub if pending[f.role]]


_MODEL_FLAGS = {"checkpoint": "--checkpoint_path", "upsampler": "--spatial_upscaler_model_path",
                "text_encoder": "--text_encoder_path", "tokenizer": "--text_encoder_path"}


def _download(a, files) -> dict:
    """{role: local path} of the model files that come from the Hugging Face hub (its cache when they are there)."""
    if not files:
        return {}
    from . import DownloadError, fetch_model_files

    try:  # huggingface_hub draws a progress bar per file it downloads; the load messages then name the cache paths
        return fetch_model_files(files, offline=a.offline)
    except DownloadError as e:
        raise UsageError(f"{e}; or pass a local file with {_MODEL_FLAGS[e.file.role]}") from None


# ----------------------------------------------------------------------------------------------------------------
# output names (as inference.py names its files)


def prompt_to_filename(prompt: str, max_len: int = 30) -> str:
    """Lower-case words of the prompt (letters only), as many as fit in max_len letters, joined by '-'."""
    words = "".join(c.lower() for c in prompt if c.isalpha() or c.isspace()).split()
    kept, n = [], 0
    for w in words:
        if n + len(w) > max_len:
            break
        kept.append(w)
        n += len(w)
    return "-".join(kept)


def unique_output_path(folder: Path, base: str, ext: str, prompt: str, seed: int, size: tuple[int, int, int]) -> Path:
    stem = f"{base}_{prompt_to_filename(prompt)}_{seed}_{size[0]}x{size[1]}x{size[2]}"
    for i in range(1000):
        p = folder / f"{stem}_{i}{ext}"
        if not p.exists():
            return p
    raise UsageError(f"no free output file name for {folder / stem}_*{ext}")


def _output_file(a, n_frames: int, height: int, width: int) -> Path:
    ext = ".png" if n_frames == 1 else ".mp4"
    out = a.output_path
    if out and Path(out).suffix.lower() in (".mp4", ".png"):
        return Path(out)
    folder = Path(out) if out else Path("outputs") / datetime.today().strftime("%Y-%m-%d")
    base = "image_output_0" if n_frames == 1 else "video_output_0"
    return unique_output_path(folder, base, ext, a.prompt, a.seed, (height, width, a.num_frames))


# ----------------------------------------------------------------------------------------------------------------


class _Progress:
    """tqdm bars on stderr: one per pass (and per chunk of a long video), labelled with the pass, its size and its
    steps, since `progress` counts steps over the whole run."""

    def __init__(self):
        self.bar, self.steps_before = None, 0

    def begin_pass(self, info) -> None:
        self.close()
        self.steps_before = info.steps_before
        self.bar = _bar(info.steps, info.label)

    def __call__(self, step, total, _latents=None):
        if self.bar is None:  # a run that announces no passes: one bar over all its steps
            self.bar = _bar(total, "denoising")
        self.bar.n = min(int(step) - self.steps_before, self.bar.total)
        self.bar.refresh()
        if self.bar.n >= self.bar.total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _bar(total: int, label: str):
    from tqdm import tqdm  # huggingface_hub's and transformers' dependency: the same bars as the downloads

    return tqdm(total=max(int(total), 1), desc=label, unit="step", file=sys.stderr, dynamic_ncols=True)


def _log(msg: str):
    print(msg, file=sys.stderr, flush=True)


def prepare_inputs(a):
    """Everything that needs no model: returns a dict for `run_generation`."""
    from . import (Keyframe, MediaError, load_media, load_pipeline_config, pad_media, padded_frames,
                   prepare_control_video, prepare_keyframes)

    _validate_numbers(a)
    _validate_text(a)
    _check_writable(_output_file(a, a.num_frames, a.height, a.width), "--output_path")
    if a.output_latents:
        _check_writable(Path(a.output_latents).expanduser(), "--output_latents")
    _validate_backend(a)
    cond = _validate_conditioning(a)
    loras = _validate_loras(a)
    tiling, prompts = _long_video(a)
    try:
        cfg = load_pipeline_config(a.pipeline_config)
    except ValueError as e:
        raise UsageError(f"--pipeline_config: {e}") from None
    if not isinstance(cfg, dict) or "pipeline_type" not in cfg:
        raise UsageError(f"--pipeline_config {a.pipeline_config}: not an LTX-Video pipeline config "
                         "(no 'pipeline_type')")
    config_dir = Path(a.pipeline_config).expanduser().parent if Path(a.pipeline_config).is_file() else None
    models, downloads = _resolve_models(a, cfg, config_dir)
    try:
        keyframes = [Keyframe.from_file(path, start, strength, a.num_frames) for path, strength, start in cond]
        conditioning = prepare_keyframes(keyframes, a.height, a.width, a.num_frames)
        if a.control_video_path:
            control = Keyframe.from_file(a.control_video_path, 0, a.control_strength, a.num_frames)
            control = replace(control, name=f"--control_video_path {a.control_video_path}")
            conditioning.append(prepare_control_video(control, a.height, a.width, a.num_frames))
    except MediaError as e:
        raise UsageError(f"conditioning media {e}") from None
    except ValueError as e:  # the frame rules, naming the file
        raise UsageError(str(e)) from None
    input_media = None
    if a.input_media_path:
        try:
            media = load_media(a.input_media_path, a.height, a.width, max_frames=padded_frames(a.num_frames))
        except MediaError as e:
            raise UsageError(f"--input_media_path {e}") from None
        if media.shape[2] < padded_frames(a.num_frames):
            raise UsageError(f"--input_media_path {a.input_media_path}: has {media.shape[2]} frame(s), video-to-video "
                             f"with --num_frames {a.num_frames} needs at least {padded_frames(a.num_frames)}")
        input_media = pad_media(media, a.height, a.width)
    models.update(_download(a, downloads))
    return {"config": cfg, "dtype": a.dtype or _precision_dtype(cfg.get("precision")), **models,
            "conditioning": conditioning, "input_media": input_media, "loras": loras, "tiling": tiling,
            "prompts": prompts}


def _device(name):
    import torch

    if name:
        try:
            return torch.device(name)
        except RuntimeError as e:
            raise UsageError(f"--device: {e}") from None
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


_FLAGS = {"fp8_matmul": "--fp8_matmul", "compile": "--compile", "release": "--model_release", "dtype": "--dtype",
          "backend": "--backend", "ov_device": "--ov_device", "ov_weights": "--ov_weights"}
_SMALLER = ("use --offload_to_cpu, --dtype float8_e4m3fn, fewer --num_frames or a smaller --height/--width, or free "
            "the device's memory")


@contextlib.contextmanager
def _one_line(doing: str, device=None):
    """A ValueError from ltx_core (a wrong file, a setting that cannot work) or running out of memory while
    `doing`, as the one-line UsageError the command prints; anything else is a bug and keeps its traceback."""
    from . import is_out_of_memory

    try:
        yield
    except ValueError as e:
        raise UsageError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    except Exception as e:  # noqa: BLE001 - out of memory only; anything else is raised again
        if not is_out_of_memory(e):
            raise
        where = f" on {device}" if device is not None else ""
        raise UsageError(f"out of memory{where} while {doing}: {_SMALLER}") from None


def _load(a, prep, device):
    """Text first (the encoder is freed before the transformer loads: peak memory is the larger of the two, not
    their sum), then the video model and the upsampler."""

    from . import (LoadOptions, LoraUse, Models, OptionError, companion_dtype, encode_chunk_prompts,
                   load_text_encoder_on_backend, load_upsampler, load_video_model, read_lora)

    dtype = prep["dtype"]
    options = LoadOptions(dtype=dtype, device="cpu" if a.offload_to_cpu else device, compute_device=device,
                          fp8_matmul=a.fp8_matmul, compile=a.compile, release=a.model_release, backend=a.backend,
                          ov_device=a.ov_device, ov_weights=a.ov_weights)
    with _one_line("loading the models", device):
        try:
            options.check()  # before minutes of loading
            _log(f"loading text encoder {prep['text_encoder']}")
            text_encoder = load_text_encoder_on_backend(str(prep["text_encoder"]), options, device, dtype,
                                                        tokenizer_path=prep["tokenizer"])
            texts = encode_chunk_prompts(text_encoder, prep["prompts"], a.negative_prompt)
            _log(f"loading checkpoint {prep['checkpoint']}")
            vae_path = a.vae_path and Path(a.vae_path).expanduser()
            ck = load_video_model(str(prep["checkpoint"]), options, vae_path=vae_path)
            for note in ck.notes:
                _log(note)
            loras = [LoraUse(read_lora(Path(path).expanduser(), ck.transformer), s) for path, s in prep["loras"]]
            for use in loras:
                _log(f"LoRA {use.lora.summary()} (strength {use.strength})")
            ck.vae.to(device)
            upsampler = None
            if prep["upsampler"] is not None:
                _log(f"loading spatial upscaler {prep['upsampler']}")
                upsampler = load_upsampler(str(prep["upsampler"]), device=device, dtype=companion_dtype(dtype))
        except OptionError as e:
            raise UsageError(f"{_FLAGS[e.option]}: {e}") from None
    return Models.from_checkpoint(ck, upsampler, loras), texts


def run_generation(a, prep):
    import torch

    from . import (GenerationRequest, MemoryRefusal, PipelineConfig, check_generation_memory, decode_output_pieces,
                   device_free_bytes, generate, generate_long, lora_bytes, stream_blocks)

    try:
        cfg = PipelineConfig.from_dict(prep["config"])
    except (ValueError, TypeError, KeyError) as e:
        raise UsageError(f"--pipeline_config {a.pipeline_config}: {e}") from None
    device = _device(a.device)
    with _one_line("generating", device):
        try:
            models, texts = _load(a, prep, device)
            request = GenerationRequest(
                height=a.height, width=a.width, num_frames=a.num_frames, frame_rate=a.frame_rate, seed=a.seed,
                conditioning=prep["conditioning"],
                num_inference_steps=a.num_inference_steps, image_cond_noise_scale=a.image_cond_noise_scale,
                input_media=prep["input_media"])
            free = device_free_bytes(device)
            if free is not None:  # the LoRAs' matrices sit next to the weights
                free -= lora_bytes(models.loras, models.transformer.compute_dtype)
            tiling = prep["tiling"]
            step = request if tiling is None else replace(request, num_frames=min(a.num_frames, tiling.tile_frames))
            check_generation_memory(models.transformer, cfg, texts[0], step, device=device, free_bytes=free,
                                    streaming=a.offload_to_cpu)
            streaming = stream_blocks(models.transformer, device) if a.offload_to_cpu else contextlib.nullcontext()
            with torch.no_grad(), streaming:
                progress = _Progress()
                if tiling is None:
                    return generate(models, cfg, texts[0], request, progress=progress, on_pass=progress.begin_pass), None
                res = generate_long(models, cfg, texts, replace(request, output="latents"), tiling, progress=progress,
                                    on_pass=progress.begin_pass)
            # A long video is decoded and written piece by piece: it is never held decoded in float32.
            return res, decode_output_pieces(models.vae, cfg, request, res.latents)
        except MemoryRefusal as e:
            raise UsageError(str(e) + ("" if e.streaming else " Or add --offload_to_cpu.")) from None


def save_outputs(a, res, pieces=None) -> Path:
    """The video (decoded already, or `pieces` decoded as they are written) and the latents if asked for."""
    from . import save_latents, save_video, save_video_pieces

    with _one_line("decoding"):  # a VAE decode that fits in no tiling, or one that runs out of memory
        if pieces is None:
            _, _, n, h, w = res.video.shape
            out = save_video(_output_file(a, n, h, w), res.video, a.frame_rate)
        else:
            out = save_video_pieces(_output_file(a, a.num_frames, a.height, a.width), pieces, a.frame_rate)
    _log(f"output saved to {out}")
    if a.output_latents:
        meta = {"prompt": a.prompt, "seed": str(a.seed), "height": str(a.height), "width": str(a.width),
                "num_frames": str(a.num_frames), "frame_rate": str(a.frame_rate),
                "pipeline_config": str(a.pipeline_config)}
        save_latents(a.output_latents, res.latents, meta)
        _log(f"latents saved to {a.output_latents}")
    return out


def main(argv=None) -> int:
    try:
        a = build_parser().parse_args(argv)
        if a.command == "generate":
            prep = prepare_inputs(a)
            save_outputs(a, *run_generation(a, prep))
        return 0
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
