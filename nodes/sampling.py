"""Sampler node (official recipes by name, or custom settings) and the custom schedule/guidance settings node."""
from __future__ import annotations

import contextlib
import logging
import warnings

import torch

from ..ltx_core.memory.estimate import (HEADROOM, latent_grid, resident_budget, step_refusal,
                                       transformer_activation_bytes)
from ..ltx_core.pipelines import Cancelled, PipelineConfig, generate, padded_size
from ..ltx_core.presets import load_pipeline_config, preset_names
from ..ltx_core.sampling.guidance import STG_MODES
from . import comfy_bridge as bridge
from .common import (
    CATEGORY,
    CONDITIONING,
    MAX_SEED,
    MAX_SIZE,
    MODEL,
    SETTINGS,
    SPATIAL_SCALE,
    TEMPORAL_SCALE,
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
from .conditioning import conditioning_items

logger = logging.getLogger(__name__)

DEFAULT_PRESET = "ltxv-2b-0.9.6-dev"
SCHEDULES = ("from_checkpoint", "linear-quadratic", "uniform")
STG_MODE_CHOICES = ("attention_values", "attention_skip", "residual", "transformer_block")


# Devices whose free memory is checked against the step estimate before sampling (the CPU has swap and no hard
# limit worth refusing on; tests widen this).
CHECKED_DEVICE_TYPES = ("cuda",)


def _working_memory(node: str, model: ModelHandle, cfg: PipelineConfig, batch: int, num_frames: int, height: int,
                    width: int, text_len: int, per_token: bool) -> int:
    """The activation memory of one step (what ComfyUI is asked to free next to the weights); a ValueError before
    sampling when the step would not fit on the device even with block streaming."""
    module = model.module
    device = model.managed.load_device
    rows = batch * cfg.max_conditions
    kw = dict(text_len=text_len, per_token_timestep=per_token)
    work = int(transformer_activation_bytes(module, rows, *latent_grid(num_frames, height, width),
                                            module.compute_dtype, device_type=device.type, **kw) * HEADROOM)
    free = bridge.free_memory_bytes(device) if device.type in CHECKED_DEVICE_TYPES else None
    if free is None:
        return work
    # Weights already on the device are memory the run can use (streaming would move them off).
    problem = step_refusal(module, rows, num_frames, height, width, resident_budget(module, free, device),
                           streaming=True, device=device, **kw)
    if problem:
        raise ValueError(f"{node}: {problem}")
    return work


def _recipe(preset: str, settings) -> tuple[str, PipelineConfig]:
    if settings is not None:
        if not isinstance(settings, SamplerSettings):
            raise ValueError("settings must come from LTX-Video Custom Sampler Settings")
        raw, name = settings.config, "custom settings"
    else:
        raw, name = load_pipeline_config(preset), f"preset {preset}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return name, PipelineConfig.from_dict(raw)


class Sampler:
    DESCRIPTION = ("Generates video latents with LTX-Video: text-to-video, image-to-video and keyframes (from the "
                   "conditioning), following an official recipe (schedule, guidance, single or multi-scale) or "
                   "custom settings. Decode the result with LTX-Video VAE Decode.")
    CATEGORY = f"{CATEGORY}/sampling"
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
                "preset": (preset_names(), {
                    "default": DEFAULT_PRESET,
                    "tooltip": "The official recipe (LTX-Video configs/*.yaml) for the checkpoint: steps, "
                               "schedule, CFG/STG guidance, single or multi-scale. Use the one named like your "
                               "checkpoint. Multi-scale (13B, 0.9.8 distilled) recipes need upscale_model. "
                               "Ignored when settings is connected."}),
                "width": ("INT", {"default": 768, "min": SPATIAL_SCALE, "max": MAX_SIZE, "step": SPATIAL_SCALE,
                                  "tooltip": "Video width in pixels (generated at the next multiple of 32 and "
                                             "cropped back). Ignored with an input latent."}),
                "height": ("INT", {"default": 512, "min": SPATIAL_SCALE, "max": MAX_SIZE, "step": SPATIAL_SCALE,
                                   "tooltip": "Video height in pixels (generated at the next multiple of 32 and "
                                              "cropped back). Ignored with an input latent."}),
                "num_frames": ("INT", {"default": 97, "min": 1, "max": MAX_SIZE, "step": TEMPORAL_SCALE,
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
                "image_cond_noise_scale": ("FLOAT", {"default": 0.15, "min": 0.0, "max": 1.0, "step": 0.01,
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

    def sample(self, model, conditioning, preset, width, height, num_frames, seed, steps, denoise,
               image_cond_noise_scale, upscale_model=None, settings=None, latent=None):
        node = "LTX-Video Sampler"
        if not isinstance(model, ModelHandle):
            raise ValueError(f"{node}: model must come from LTX-Video Checkpoint Loader")
        if not isinstance(conditioning, Conditioning):
            raise ValueError(f"{node}: conditioning must come from LTX-Video Text Encode")
        if upscale_model is not None and not isinstance(upscale_model, UpscalerHandle):
            raise ValueError(f"{node}: upscale_model must come from LTX-Video Latent Upsampler Loader")
        try:
            recipe, cfg = _recipe(preset, settings)
        except ValueError as e:
            raise node_error(node, e) from None

        upsampler = None
        if cfg.is_multiscale:
            if upscale_model is None:
                raise ValueError(f"{node}: {recipe} is a multi-scale recipe: connect an LTX-Video Latent Upsampler "
                                 "Loader with ltxv-spatial-upscaler-0.9.8.safetensors to upscale_model, or pick a "
                                 "single-pass preset")
            up = upscale_model.module
            if getattr(up, "spatial_scale", 2) != 2 or getattr(up, "temporal_scale", 1) != 1:
                raise ValueError(f"{node}: {recipe} needs a spatial x2 latent upsampler, but {upscale_model.name} is "
                                 "temporal; load ltxv-spatial-upscaler-0.9.8.safetensors")
            upsampler = upscale_model
        elif upscale_model is not None:
            logger.info("LTX-Video (stack): %s is single-pass; upscale_model is not used", recipe)

        start_latents, info = None, {}
        batch = 1
        if latent is not None:
            z = check_latent(latent, f"{node}: latent")
            if cfg.is_multiscale:
                raise ValueError(f"{node}: refining an input latent works with single-pass recipes; {recipe} is "
                                 "multi-scale. Pick a single-pass preset (e.g. ltxv-2b-0.9.6-distilled) or custom "
                                 "settings, or disconnect the latent")
            if denoise >= 1.0:
                raise ValueError(f"{node}: an input latent is refined with denoise below 1.0 (at 1.0 it would be "
                                 "replaced by noise); lower denoise (e.g. 0.4) or disconnect the latent")
            batch, _, lf, lh, lw = z.shape
            num_frames, height, width = (lf - 1) * TEMPORAL_SCALE + 1, lh * SPATIAL_SCALE, lw * SPATIAL_SCALE
            start_latents = z.float()
            info = latent_info(latent)
            info.pop("noise_mask", None)
        elif denoise < 1.0:
            raise ValueError(f"{node}: denoise below 1.0 refines an input latent: connect one to latent, or set "
                             "denoise to 1.0")

        if model.allowed_inference_steps and not any(p.timesteps for p in cfg.passes):
            logger.warning("LTX-Video (stack): %s is a distilled checkpoint; %s does not use its timesteps (pick the "
                           "matching distilled preset)", model.name, recipe)

        items = conditioning_items(conditioning.keyframes, height, width, num_frames, node)
        embeds, mask = conditioning.embeds, conditioning.mask
        neg, neg_mask = conditioning.negative_embeds, conditioning.negative_mask
        if batch > 1:
            embeds, mask, neg, neg_mask = (t.expand(batch, *t.shape[1:]) for t in (embeds, mask, neg, neg_mask))

        work = _working_memory(node, model, cfg, batch, num_frames, height, width, int(embeds.shape[1]), bool(items))
        others = [model.vae.managed] + ([upsampler.managed] if upsampler else [])
        if bridge.must_stream(model.managed, sum(m.size_bytes() for m in others), work):
            bridge.load_models(others, work)
            placement = bridge.streamed(model.managed, work)
        else:
            bridge.load_models([model.managed] + others, work)
            placement = contextlib.nullcontext()
        progress = bridge.Progress(1)
        try:
            with torch.no_grad(), placement:
                res = generate(
                    model.module, model.vae.module, cfg, embeds, mask, neg, neg_mask,
                    height=height, width=width, num_frames=num_frames, frame_rate=conditioning.frame_rate,
                    seed=int(seed), conditioning=items, upsampler=upsampler.module if upsampler else None,
                    num_inference_steps=int(steps) if steps > 0 else None, scheduler_config=model.scheduler_config,
                    image_cond_noise_scale=float(image_cond_noise_scale), latents=start_latents,
                    denoise_strength=float(denoise), output="latents", progress=progress,
                    should_cancel=bridge.interrupt_requested,
                )
        except Cancelled:
            bridge.raise_interrupted("LTX-Video Sampler interrupted")
        except ValueError as e:
            raise node_error(node, e) from None

        if latent is None:
            hp, wp, _ = padded_size(height, width, num_frames)
            info["target"] = {"height": height, "width": width, "num_frames": num_frames,
                              "padded_height": hp, "padded_width": wp}
        info["frame_rate"] = conditioning.frame_rate
        return (make_latent(res.latents, info),)


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
            "stg_mode": (list(STG_MODE_CHOICES), {"default": "attention_values",
                                                  "tooltip": "How STG perturbs a block (the official default: "
                                                             "attention_values)."}),
            "cfg_star": ("BOOLEAN", {"default": False,
                                     "tooltip": "CFG-star: rescale the unconditional prediction before CFG (the "
                                                "13B dev recipes use it)."}),
            "stochastic": ("BOOLEAN", {"default": False,
                                       "tooltip": "Stochastic sampling (fresh noise each step), recommended for "
                                                  "the 0.9.6 distilled model."}),
        }}

    def build(self, steps, schedule, timesteps, cfg, stg, rescale, stg_blocks, stg_mode, cfg_star, stochastic):
        node = "LTX-Video Custom Sampler Settings"
        if schedule not in SCHEDULES:
            raise ValueError(f"{node}: schedule must be one of {list(SCHEDULES)}, got {schedule!r}")
        if str(stg_mode).lower() not in STG_MODES:
            raise ValueError(f"{node}: stg_mode must be one of {list(STG_MODE_CHOICES)}, got {stg_mode!r}")
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
               "sampler": schedule, "decode_timestep": 0.05, "decode_noise_scale": 0.025}
        if ts:
            raw["timesteps"] = ts
        try:
            PipelineConfig.from_dict(raw)
        except ValueError as e:
            raise node_error(node, e) from None
        return (SamplerSettings(raw),)


NODE_CLASS_MAPPINGS = {"LTXVStackSampler": Sampler, "LTXVStackCustomSettings": CustomSettings}
NODE_DISPLAY_NAME_MAPPINGS = {"LTXVStackSampler": "LTX-Video Sampler",
                              "LTXVStackCustomSettings": "LTX-Video Custom Sampler Settings"}
