"""Sampler node (official recipes by name, or custom settings) and the custom schedule/guidance settings node."""
from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import replace

import torch

from ..ltx_core import (
    DECODE_NOISE_SCALE,
    DECODE_TIMESTEP,
    FRAMES_PER_LATENT,
    PIXELS_PER_LATENT,
    SCHEDULES,
    STG_MODE_NAMES,
    DEFAULT_OVERLAP_FRAMES,
    DEFAULT_OVERLAP_STRENGTH,
    DEFAULT_TILE_FRAMES,
    MAX_PASS_FRAMES,
    Cancelled,
    GenerationRequest,
    TemporalTiling,
    PipelineConfig,
    VideoTarget,
    check_generation_memory,
    check_upsampler,
    generate,
    generate_long,
    load_pipeline_config,
    pixel_size,
    lora_bytes,
    preset_for_model,
    prepare_control_video,
    prepare_keyframes,
    preset_names,
)
from . import comfy_bridge as bridge
from .common import (
    CATEGORY,
    CONDITIONING,
    MAX_SEED,
    MAX_SIZE,
    MODEL,
    SETTINGS,
    UPSCALER,
    Conditioning,
    ModelHandle,
    SamplerSettings,
    UpscalerHandle,
    check_latent,
    latent_info,
    make_latent,
    node_error,
)

logger = logging.getLogger(__name__)

# "auto": the loaded model's own recipe (ltx_core.preset_for_model).
AUTO_PRESET = "auto"
UPSAMPLER_HINT = ("connect an LTX-Video Latent Upscale Model Loader with ltxv-spatial-upscaler-0.9.8.safetensors "
                  "to upscale_model, or pick a single-pass preset")

# Devices whose free memory is checked against the step estimate before sampling (on the CPU: RAM available without
# swapping; a larger run thrashes or is killed).
CHECKED_DEVICE_TYPES = ("cuda", "cpu")


def _items(conditioning: Conditioning, height: int, width: int, num_frames: int) -> list:
    """Keyframes and IC-LoRA control videos as the generation's conditioning items."""
    controls = [prepare_control_video(c, height, width, num_frames) for c in conditioning.controls]
    return prepare_keyframes(conditioning.keyframes, height, width, num_frames) + controls


def _recipe(preset: str, settings, model: ModelHandle) -> tuple[str, PipelineConfig, list[str]]:
    """(the recipe's name, its config, what the node shows about it: the recipe auto chose, or a warning where the
    preset chosen is not the checkpoint's own; the preset widget shows the rest)."""
    if settings is not None:
        if not isinstance(settings, SamplerSettings):
            raise ValueError("settings must come from LTX-Video Custom Sampler Settings")
        raw, name, notes = settings.config, "custom settings", ["recipe: custom settings"]
    else:
        if preset == AUTO_PRESET:
            preset, how = preset_for_model(model.name, model.module.config.num_layers,
                                           bool(model.allowed_inference_steps))
            logger.info("LTX-Video (stack): recipe for %s: %s", model.name, how)
            notes = [f"recipe: {preset} (auto)"]
        else:
            notes = [_preset_note(preset, model)]
        raw, name = load_pipeline_config(preset), f"preset {preset}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return name, PipelineConfig.from_dict(raw), notes


# Keys in which two official recipes may differ and still sample alike: the files they name, and the weight storage
# (the loader's weight_dtype decides that here).
_FILE_KEYS = ("checkpoint_path", "spatial_upscaler_model_path", "precision")


def _same_recipe(a: str, b: str) -> bool:
    try:
        ra, rb = load_pipeline_config(a), load_pipeline_config(b)
    except ValueError:
        return False
    return all(ra.get(k) == rb.get(k) for k in set(ra) | set(rb) if k not in _FILE_KEYS)


def _other_recipe(preset: str, model: ModelHandle) -> str | None:
    """The checkpoint's own recipe when the preset picked explicitly is not it (a distilled checkpoint with a dev
    preset samples with the wrong steps and guidance, and nothing fails). None when they agree, when a distilled
    LoRA makes a dev checkpoint distilled, or when the file name does not tell the checkpoint's recipe."""
    try:
        own, _ = preset_for_model(model.name, model.module.config.num_layers, bool(model.allowed_inference_steps))
    except ValueError:
        return None
    distilled_lora = any("distilled" in use.lora.name.lower() for use in model.loras)
    if _same_recipe(preset, own) or (distilled_lora and _same_recipe(preset, own.replace("-dev", "-distilled"))):
        return None
    return own


def _preset_note(preset: str, model: ModelHandle) -> str:
    """What the node shows for a preset picked by name. Its text box shows two short lines before it scrolls: the
    warning names only what to pick; the log has the whole story."""
    own = _other_recipe(preset, model)
    if own is None:
        return f"recipe: {preset}"
    logger.warning("LTX-Video (stack): %s: preset %s is not the checkpoint's recipe (%s); it runs as chosen. Pick "
                   "%s or auto for the checkpoint's own.", model.name, preset, own, own)
    return f"WARNING: the checkpoint's recipe is {own}; pick it or auto"


def _progress(notes: list[str], model: ModelHandle, cfg: PipelineConfig, recipe: str) -> bridge.Progress:
    """The run's progress display, showing the recipe or a warning on the node from the start: a wrong recipe runs
    without failing, so a log line alone goes unseen."""
    if model.allowed_inference_steps and not any(p.timesteps for p in cfg.passes) and \
            not notes[0].startswith("WARNING"):
        logger.warning("LTX-Video (stack): %s is a distilled checkpoint; %s does not use its timesteps (pick the "
                       "matching distilled preset, or auto)", model.name, recipe)
        notes = ["WARNING: a distilled checkpoint: pick its distilled preset or auto"]
    progress = bridge.Progress(1, notes)
    progress.show_notes()
    return progress


def _start_latent(node: str, latent, recipe: str, cfg: PipelineConfig, denoise: float):
    """(latents to refine or None, their LATENT info, their (batch, num_frames, height, width) or None)."""
    if latent is None:
        if denoise < 1.0:
            raise ValueError(f"{node}: denoise below 1.0 refines an input latent: connect one to latent, or set "
                             "denoise to 1.0")
        return None, {}, None
    z = check_latent(latent, f"{node}: latent")
    if cfg.is_multiscale:
        raise ValueError(f"{node}: refining an input latent works with single-pass recipes; {recipe} is "
                         "multi-scale. Pick a single-pass preset (e.g. ltxv-2b-0.9.6-distilled) or custom "
                         "settings, or disconnect the latent")
    if denoise >= 1.0:
        raise ValueError(f"{node}: an input latent is refined with denoise below 1.0 (at 1.0 it would be "
                         "replaced by noise); lower denoise (e.g. 0.4) or disconnect the latent")
    info = latent_info(latent)
    info.pop("noise_mask", None)
    return z.float(), info, (z.shape[0], *pixel_size(*z.shape[2:]))


def _placement(model: ModelHandle, others: list, work: int):
    """Load the models for sampling; the transformer's blocks stream from CPU memory when it cannot sit whole on
    its GPU next to the others and the work."""
    if bridge.needs_block_streaming(model.managed, sum(m.size_bytes() for m in others), work):
        bridge.load_models(others, work)
        return bridge.streaming_blocks(model.managed, work)
    bridge.load_models([model.managed] + others, work)
    return contextlib.nullcontext()


class Sampler:
    DESCRIPTION = ("Generates video latents with LTX-Video: text-to-video, image-to-video and keyframes (from the "
                   "conditioning), following an official recipe (schedule, guidance, single or multi-scale) or "
                   "custom settings. Decode the result with LTX-Video VAE Decode.")
    CATEGORY = f"{CATEGORY}/sampling"
    SEARCH_ALIASES = ["text to video", "image to video", "t2v", "i2v", "generate video", "ksampler", "sampler",
                      "video to video", "multi-scale", "keyframes"]
    FUNCTION = "sample"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("Denoised video latents (normalised, batch x 128 x frames/8+1 x height/32 x width/32).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL, {"tooltip": "From LTX-Video Checkpoint Loader."}),
                "conditioning": (CONDITIONING, {"tooltip": "From LTX-Video Text Encode (plus any Add Image / Clip)."}),
                "preset": ([AUTO_PRESET, *preset_names()], {
                    "default": AUTO_PRESET,
                    "tooltip": "The official recipe (LTX-Video configs/*.yaml) for the checkpoint: steps, "
                               "schedule, CFG/STG guidance, single or multi-scale. auto: the loaded model's own "
                               "(from its file name; the log says which). Multi-scale (13B, 0.9.8 distilled) "
                               "recipes need upscale_model. Ignored when settings is connected."}),
                "width": ("INT", {"default": 768, "min": PIXELS_PER_LATENT, "max": MAX_SIZE, "step": PIXELS_PER_LATENT,
                                  "tooltip": "Video width in pixels (generated at the next multiple of 32 and "
                                             "cropped back). Ignored with an input latent."}),
                "height": ("INT", {"default": 512, "min": PIXELS_PER_LATENT, "max": MAX_SIZE, "step": PIXELS_PER_LATENT,
                                   "tooltip": "Video height in pixels (generated at the next multiple of 32 and "
                                              "cropped back). Ignored with an input latent."}),
                "num_frames": ("INT", {"default": 97, "min": 1, "max": MAX_SIZE, "step": FRAMES_PER_LATENT,
                                       "tooltip": "Number of frames; the model makes 8k+1 (9, 17, ..., 97, 121), "
                                                  "others are generated at the next such count and cut. Ignored "
                                                  "with an input latent."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": MAX_SEED, "control_after_generate": True,
                                 "tooltip": "Random seed: the same seed and settings give the same video on any "
                                            "device."}),
                "steps": ("INT", {"default": 0, "min": 0, "max": 1000,
                                  "tooltip": "0 = the recipe's step count. Otherwise overrides it (passes with an "
                                             "explicit timestep list, as in the distilled recipes, keep theirs)."}),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 1.0, "step": 0.01,
                                      "tooltip": "With an input latent: how much to change it (below 1.0 refines, "
                                                 "e.g. 0.4). Must be 1.0 without one."}),
                "image_cond_noise_scale": ("FLOAT", {"display_name": "image noise", "default": 0.15, "min": 0.0, "max": 1.0, "step": 0.01,
                                                     "tooltip": "Noise added to hard-conditioned image frames at "
                                                                "each step (the official default 0.15); helps "
                                                                "motion start from a still image."}),
            },
            "optional": {
                "upscale_model": (UPSCALER, {"tooltip": "Spatial latent upsampler "
                                                        "(ltxv-spatial-upscaler-0.9.8.safetensors), required by "
                                                        "multi-scale recipes."}),
                "settings": (SETTINGS, {"tooltip": "Custom schedule and guidance from LTX-Video Custom Sampler "
                                                   "Settings; replaces the preset."}),
                "latent": ("LATENT", {"tooltip": "Latents to refine (video-to-video, a second pass after "
                                                 "upsampling) with denoise below 1; size and frames come from "
                                                 "them."}),
            },
        }

    # many parameters: ComfyUI passes each input of the node by name
    def sample(self, model, conditioning, preset, width, height, num_frames, seed, steps, denoise,
               image_cond_noise_scale, upscale_model=None, settings=None, latent=None, *, tiling=None):
        """`tiling` (not a node input): temporal chunks, from LTX-Video Long Video Sampler."""
        node = "LTX-Video Long Video Sampler" if tiling else "LTX-Video Sampler"
        if not isinstance(model, ModelHandle):
            raise ValueError(f"{node}: model must come from LTX-Video Checkpoint Loader")
        if not isinstance(conditioning, Conditioning):
            raise ValueError(f"{node}: conditioning must come from LTX-Video Text Encode")
        if upscale_model is not None and not isinstance(upscale_model, UpscalerHandle):
            raise ValueError(f"{node}: upscale_model must come from LTX-Video Latent Upscale Model Loader")
        try:
            recipe, cfg, notes = _recipe(preset, settings, model)
            check_upsampler(cfg, upscale_model and upscale_model.module, UPSAMPLER_HINT,
                            upscale_model.name if upscale_model else "", recipe)
        except ValueError as e:
            raise node_error(node, e) from None
        if upscale_model is not None and not cfg.is_multiscale:
            logger.info("LTX-Video (stack): %s is single-pass; upscale_model is not used", recipe)
            upscale_model = None
        start, info, size = _start_latent(node, latent, recipe, cfg, denoise)
        batch, num_frames, height, width = size or (1, num_frames, height, width)
        progress = _progress(notes, model, cfg, recipe)

        if conditioning.later_prompts and tiling is None:
            raise ValueError(f"{node}: the prompt has several parts separated by '|' (one per chunk of a long "
                             "video): use LTX-Video Long Video Sampler, or remove the '|'")
        texts = [t.expand(batch) for t in conditioning.texts]
        text = texts[0]
        device = model.managed.load_device
        others = [model.vae.managed] + ([upscale_model.managed] if upscale_model else [])
        try:
            request = GenerationRequest(
                height=height, width=width, num_frames=num_frames, frame_rate=conditioning.frame_rate,
                seed=int(seed), conditioning=_items(conditioning, height, width, num_frames),
                num_inference_steps=int(steps) if steps > 0 else None,
                image_cond_noise_scale=float(image_cond_noise_scale), latents=start, denoise_strength=float(denoise),
                output="latents")
            free = bridge.free_memory_bytes(device) if device.type in CHECKED_DEVICE_TYPES else None
            step = request if tiling is None else replace(request, num_frames=min(num_frames, tiling.tile_frames))
            work = check_generation_memory(model.module, cfg, text, step, device=device, free_bytes=free,
                                           streaming=True) + lora_bytes(model.loras, model.module.compute_dtype)
            hooks = dict(progress=progress, should_cancel=bridge.interrupt_requested, on_pass=progress.begin_pass)
            models = model.models(upscale_model and upscale_model.module)
            with torch.no_grad(), _placement(model, others, work):
                res = (generate(models, cfg, text, request, **hooks) if tiling is None
                       else generate_long(models, cfg, texts, request, tiling, **hooks))
        except Cancelled:
            bridge.raise_interrupted("LTX-Video Sampler interrupted")
        except ValueError as e:
            raise node_error(node, e) from None

        if latent is None:
            info["target"] = vars(VideoTarget.of_request(height, width, num_frames))
        info["frame_rate"] = conditioning.frame_rate
        return (make_latent(res.latents, info),)


class LongSampler(Sampler):
    DESCRIPTION = ("Generates a long video in temporal chunks that continue each other (LTX-Video 0.9.8 was made "
                   "for this): each chunk starts from the last frames of the one before, so memory stays that of "
                   "one chunk however long the video. One prompt per chunk with | in LTX-Video Text Encode (the "
                   "last repeats); keyframes land at their frames, a control video is cut per chunk. A video that "
                   "fits in one chunk is the same as LTX-Video Sampler's.")
    SEARCH_ALIASES = ["long video", "long", "extend", "chunks", "continuation", "20 seconds", "text to video",
                      "image to video"]

    @classmethod
    def INPUT_TYPES(cls):
        spec = Sampler.INPUT_TYPES()
        required = {k: v for k, v in spec["required"].items() if k != "denoise"}
        required["num_frames"] = ("INT", {**spec["required"]["num_frames"][1], "default": 481,
                                          "tooltip": "Number of frames of the whole video (481: 20 s at 24 fps); "
                                                     "made 8k+1 like the sampler's."})
        required.update({
            "tile_frames": ("INT", {"default": DEFAULT_TILE_FRAMES, "min": 25, "max": MAX_PASS_FRAMES,
                                    "step": FRAMES_PER_LATENT,
                                    "tooltip": "Frames per chunk, 8k+1: longer chunks drift less and need more "
                                               "memory."}),
            "overlap_frames": ("INT", {"default": DEFAULT_OVERLAP_FRAMES, "min": 16, "max": MAX_PASS_FRAMES,
                                       "step": FRAMES_PER_LATENT,
                                       "tooltip": "Frames a chunk shares with the one before (a multiple of 8): "
                                                  "more carries motion across better and costs more chunks."}),
            "overlap_strength": ("FLOAT", {"default": DEFAULT_OVERLAP_STRENGTH, "min": 0.0, "max": 1.0, "step": 0.01,
                                           "tooltip": "How strongly a chunk keeps the shared frames."}),
            "adain_factor": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                       "tooltip": "Pulls each chunk's colours toward the first chunk's against "
                                                  "drift; 0.1-0.3 is a usual range."}),
            "long_memory_strength": ("FLOAT", {"display_name": "memory strength", "default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                               "tooltip": "Shows every later chunk a frame of the first chunk at its "
                                                          "distance in the past, against drift from the start; 0: "
                                                          "off."}),
            "long_memory_frame": ("INT", {"display_name": "memory frame", "default": 0, "min": 0, "max": MAX_PASS_FRAMES,
                                          "tooltip": "Which latent frame of the first chunk the long memory shows "
                                                     "(0: the first frame, e.g. the input image)."}),
        })
        optional = {k: v for k, v in spec["optional"].items() if k != "latent"}
        return {"required": required, "optional": optional}

    # many parameters: ComfyUI passes each input of the node by name
    def sample(self, model, conditioning, preset, width, height, num_frames, seed, steps, image_cond_noise_scale,
               tile_frames, overlap_frames, overlap_strength, adain_factor, long_memory_strength, long_memory_frame,
               upscale_model=None, settings=None):
        try:
            tiling = TemporalTiling(int(tile_frames), int(overlap_frames), float(overlap_strength), float(adain_factor),
                                    float(long_memory_strength), int(long_memory_frame))
        except ValueError as e:
            raise node_error("LTX-Video Long Video Sampler", e) from None
        return super().sample(model, conditioning, preset, width, height, num_frames, seed, steps, 1.0,
                              image_cond_noise_scale, upscale_model, settings, tiling=tiling)


def _floats(text: str, what: str) -> list[float] | None:
    parts = [p for p in text.replace(",", " ").split() if p]
    if not parts:
        return None
    try:
        return [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"{what}: expected numbers separated by commas, got {text!r}") from None


def _ints(text: str, what: str) -> list[int]:
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"{what}: expected block numbers separated by commas (e.g. 19 or 14, 19), got "
                         f"{text!r}") from None


class CustomSettings:
    DESCRIPTION = ("Explicit sampling settings for the LTX-Video Sampler instead of a preset: steps or a timestep "
                   "list, the schedule, CFG, STG (spatio-temporal guidance) and rescaling. Defaults are the 2B "
                   "0.9.6 dev recipe.")
    CATEGORY = f"{CATEGORY}/sampling"
    SEARCH_ALIASES = ["sampler settings", "cfg", "stg", "steps", "scheduler", "guidance", "timesteps"]
    FUNCTION = "build"
    RETURN_TYPES = (SETTINGS,)
    RETURN_NAMES = ("settings",)
    OUTPUT_TOOLTIPS = ("Connect to the settings input of LTX-Video Sampler.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "steps": ("INT", {"default": 40, "min": 1, "max": 1000,
                              "tooltip": "Denoising steps (unused when timesteps is set)."}),
            "schedule": (list(SCHEDULES), {"default": "from_checkpoint",
                                           "tooltip": "Timestep schedule: the checkpoint's own (from its "
                                                      "metadata, with the resolution shift), or plain "
                                                      "linear-quadratic / uniform."}),
            "timesteps": ("STRING", {"default": "", "multiline": False,
                                     "tooltip": "Optional explicit timesteps, decreasing in (0, 1], e.g. the "
                                                "distilled list 1.0, 0.9937, 0.9875, 0.9812, 0.975, 0.9094, "
                                                "0.725, 0.4219. Empty = use steps and schedule."}),
            "cfg": ("FLOAT", {"default": 3.0, "min": 1.0, "max": 30.0, "step": 0.1,
                              "tooltip": "Classifier-free guidance scale; 1.0 turns it off (distilled models)."}),
            "stg": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 30.0, "step": 0.1,
                              "tooltip": "Spatio-temporal guidance scale; 0 turns it off."}),
            "rescale": ("FLOAT", {"default": 0.7, "min": 0.0, "max": 1.0, "step": 0.01,
                                  "tooltip": "Guidance rescaling towards the conditional prediction's spread "
                                             "(1.0 = off); applies when stg > 0."}),
            "stg_blocks": ("STRING", {"default": "19",
                                      "tooltip": "Transformer blocks perturbed by STG, comma separated (2B: 0-27, "
                                                 "13B: 0-47); the 2B recipes use 19."}),
            "stg_mode": (list(STG_MODE_NAMES), {"default": "attention_values",
                                                  "tooltip": "How STG perturbs a block (the official default: "
                                                             "attention_values)."}),
            "cfg_star": ("BOOLEAN", {"default": False,
                                     "tooltip": "CFG-star: rescale the unconditional prediction before CFG (the "
                                                "13B dev recipes use it)."}),
            "stochastic": ("BOOLEAN", {"default": False,
                                       "tooltip": "Stochastic sampling (fresh noise each step), recommended for "
                                                  "the 0.9.6 distilled model."}),
        }}

    # many parameters: ComfyUI passes each input of the node by name
    def build(self, steps, schedule, timesteps, cfg, stg, rescale, stg_blocks, stg_mode, cfg_star, stochastic):
        node = "LTX-Video Custom Sampler Settings"
        try:
            ts = _floats(timesteps, "timesteps")
            blocks = _ints(stg_blocks, "stg_blocks")
        except ValueError as e:
            raise node_error(node, e) from None
        if stg > 0 and not blocks:
            raise ValueError(f"{node}: stg is {stg} but stg_blocks is empty; name the blocks to perturb (e.g. 19) "
                             "or set stg to 0")
        raw = {"pipeline_type": "base", "num_inference_steps": int(steps), "guidance_scale": float(cfg),
               "stg_scale": float(stg), "rescaling_scale": float(rescale), "skip_block_list": blocks,
               "stg_mode": stg_mode, "cfg_star_rescale": bool(cfg_star), "stochastic_sampling": bool(stochastic),
               "sampler": schedule, "decode_timestep": DECODE_TIMESTEP, "decode_noise_scale": DECODE_NOISE_SCALE}
        if ts:
            raw["timesteps"] = ts
        try:
            PipelineConfig.from_dict(raw)
        except ValueError as e:
            raise node_error(node, e) from None
        return (SamplerSettings(raw),)


NODE_CLASS_MAPPINGS = {"LTXVStackSampler": Sampler, "LTXVStackLongSampler": LongSampler,
                       "LTXVStackCustomSettings": CustomSettings}
NODE_DISPLAY_NAME_MAPPINGS = {"LTXVStackSampler": "LTX-Video Sampler (text/image to video)",
                              "LTXVStackLongSampler": "LTX-Video Long Video Sampler",
                              "LTXVStackCustomSettings": "LTX-Video Custom Sampler Settings"}
