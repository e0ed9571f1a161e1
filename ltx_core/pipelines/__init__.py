"""Text/image/video-to-video generation with LTX-Video: the official base and multi-scale pipelines.

    from ltx_core.pipelines import PipelineConfig, ConditioningItem, generate
    cfg = PipelineConfig.from_dict(yaml.safe_load(open("ltxv-13b-0.9.8-distilled.yaml")))
    res = generate(ck.transformer, ck.vae, cfg, embeds, mask, neg_embeds, neg_mask, height=480, width=704,
                   num_frames=121, frame_rate=30, seed=171198, upsampler=up, scheduler_config=ck.config["scheduler"])
    res.video  # (B, 3, 121, 480, 704) in [0, 1]

For a seed, the results equal the official `ltx_video` pipelines run on the CPU with
`torch.Generator().manual_seed(seed)` (up to float rounding), on any device; see `ltx_core.sampling.noise` for which
random numbers come from where.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch
from torch import Tensor

from ..conditioning.items import ConditioningItem, resize_media, validate_items
from ..memory.estimate import decode_tiling_for, device_free_bytes
from ..model.video_vae import TilingConfig
from ..sampling.denoise import Cancelled
from ..sampling.guidance import stg_strategy
from ..sampling.noise import DECODE, STOCHASTIC, derived_generator, make_generator
from ..sampling.schedule import SchedulerConfig
from .base import (PassContext, decode, encode_media, latent_shape, module_device_dtype, pass_timesteps, run_pass,
                   to_unit_range)
from .config import PassConfig, PipelineConfig
from .multiscale import adain, first_pass_size, upsample_latents

__all__ = ["Cancelled", "ConditioningItem", "GenerationResult", "PassConfig", "PipelineConfig", "generate",
           "padded_size"]

OUTPUTS = ("video", "latents")


@dataclass
class GenerationResult:
    video: Tensor | None  # (B, 3, num_frames, height, width) float32 in [0, 1], or None for output="latents"
    latents: Tensor  # final normalised latents (B, 128, F, H, W) before decoding, conditioning tokens removed


def padded_size(height: int, width: int, num_frames: int) -> tuple[int, int, int]:
    """Sizes the model can generate: height/width up to multiples of 32, frames up to 8k+1."""
    return ((height - 1) // 32 + 1) * 32, ((width - 1) // 32 + 1) * 32, ((num_frames - 2) // 8 + 1) * 8 + 1


def _positive_int(name, v):
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return v


def _scheduler(cfg: PipelineConfig, scheduler_config) -> SchedulerConfig:
    if cfg.sampler != "from_checkpoint":
        return SchedulerConfig.for_sampler_name(cfg.sampler)
    if scheduler_config is None:
        raise ValueError("sampler 'from_checkpoint' needs the checkpoint's scheduler config: "
                         "pass scheduler_config=ck.config['scheduler']")
    if isinstance(scheduler_config, SchedulerConfig):
        return scheduler_config
    if not isinstance(scheduler_config, Mapping):
        raise ValueError(f"scheduler_config must be a dict or SchedulerConfig, got {type(scheduler_config).__name__}")
    return SchedulerConfig.from_dict(scheduler_config)


def _text(name, embeds, mask, batch=None):
    if not isinstance(embeds, Tensor) or embeds.dim() != 3:
        raise ValueError(f"{name} embeddings must be a (B, L, C) tensor, got "
                         f"{tuple(embeds.shape) if isinstance(embeds, Tensor) else type(embeds).__name__}")
    if not isinstance(mask, Tensor) or tuple(mask.shape) != tuple(embeds.shape[:2]):
        raise ValueError(f"{name} mask must be a (B, L) = {tuple(embeds.shape[:2])} tensor, got "
                         f"{tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__}")
    if batch is not None and embeds.shape[0] != batch:
        raise ValueError(f"{name} embeddings have batch {embeds.shape[0]}, the prompt has {batch}")


def generate(
    transformer,
    vae,
    cfg: PipelineConfig | Mapping,
    prompt_embeds: Tensor,
    prompt_mask: Tensor,
    negative_embeds: Tensor | None = None,
    negative_mask: Tensor | None = None,
    *,
    height: int,
    width: int,
    num_frames: int,
    frame_rate: float,
    seed: int,
    conditioning: Sequence[ConditioningItem] = (),
    upsampler=None,
    num_inference_steps: int | None = None,
    scheduler_config: Mapping | SchedulerConfig | None = None,
    image_cond_noise_scale: float = 0.15,
    latents: Tensor | None = None,
    input_media: Tensor | None = None,
    denoise_strength: float = 1.0,
    output: str = "video",
    progress: Callable[[int, int, Tensor], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    allowed_inference_steps: Sequence[float] | None = None,
    decode_tiling: TilingConfig | str | None = "auto",
) -> GenerationResult:
    """Generate a video (or its latents) for text embeddings (T5: (B, 256, 4096) + mask; negative: the encoded
    negative prompt, zeros when None).

    - Sizes are padded to valid ones (H, W to multiples of 32, frames to 8k+1) and the video is cropped back
      (centred) to the requested size; `latents` in and out are at the padded latent size (of the first and
      the last pass for a multi-scale config).
    - `conditioning`: ConditioningItems (media normally at the padded pixel size; other sizes are resized to each
      pass's size, as the official pipeline does).
    - `num_inference_steps` overrides the config's step count for passes without an explicit timestep list.
    - `latents` + `denoise_strength` < 1: refine given latents (re-noised to the first timestep <= strength).
    - `input_media` (video-to-video, the official `media_items`): (B or 1, 3, frames, H, W) pixels in [-1, 1] with
      the padded frame count, encoded (at the first pass's size) and then used as `latents`.
    - `progress(step, total, latents)` after each step (1-based, over all passes); `should_cancel()` is polled
      before each step and True raises `Cancelled`.
    - `allowed_inference_steps`: a distilled checkpoint's list (`ck.allowed_inference_steps`); any timestep not
      in it (rounded to 4 digits) is refused, as the official pipeline does.
    - `decode_tiling`: a TilingConfig, None (untiled), or "auto": on a GPU, the largest tiles that fit in its free
      memory (untiled when that fits), refusing with the sizes that would fit when nothing does; untiled elsewhere.
    """
    if not isinstance(cfg, PipelineConfig):
        cfg = PipelineConfig.from_dict(cfg)
    for name, v in (("height", height), ("width", width), ("num_frames", num_frames)):
        _positive_int(name, v)
    if isinstance(frame_rate, bool) or not isinstance(frame_rate, (int, float)) or not frame_rate > 0:
        raise ValueError(f"frame_rate must be a positive number, got {frame_rate!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if not (decode_tiling is None or decode_tiling == "auto" or isinstance(decode_tiling, TilingConfig)):
        raise ValueError(f"decode_tiling must be a TilingConfig, None or 'auto', got {decode_tiling!r}")
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {list(OUTPUTS)}, got {output!r}")
    if isinstance(image_cond_noise_scale, bool) or not isinstance(image_cond_noise_scale, (int, float)) \
            or image_cond_noise_scale < 0:
        raise ValueError(f"image_cond_noise_scale must be a number >= 0, got {image_cond_noise_scale!r}")
    if isinstance(denoise_strength, bool) or not isinstance(denoise_strength, (int, float)) \
            or not 0.0 < denoise_strength <= 1.0:
        raise ValueError(f"denoise_strength must be in (0, 1], got {denoise_strength!r}")
    if latents is not None and input_media is not None:
        raise ValueError("pass either latents or input_media, not both")
    if denoise_strength < 1.0 and latents is None and input_media is None:
        raise ValueError("denoise_strength < 1 refines given latents: pass latents or input_media")
    if num_inference_steps is not None:
        _positive_int("num_inference_steps", num_inference_steps)
    if cfg.is_multiscale:
        if upsampler is None:
            raise ValueError("a multi-scale config needs a latent upsampler (upsampler=load_upsampler(...))")
        if getattr(upsampler, "temporal_scale", 1) != 1 or getattr(upsampler, "spatial_scale", 2) != 2:
            raise ValueError("a multi-scale config needs a spatial x2 latent upsampler (e.g. ltxv-spatial-upscaler-0.9.8)")

    _text("prompt", prompt_embeds, prompt_mask)
    batch = prompt_embeds.shape[0]
    device, _ = module_device_dtype(transformer)
    if negative_embeds is None:
        negative_embeds = torch.zeros_like(prompt_embeds)
        negative_mask = torch.zeros_like(prompt_mask)
    _text("negative", negative_embeds, negative_mask, batch)
    if negative_embeds.shape != prompt_embeds.shape:
        raise ValueError(f"negative embeddings {tuple(negative_embeds.shape)} must match the prompt's "
                         f"{tuple(prompt_embeds.shape)}")

    hp, wp, fp = padded_size(height, width, num_frames)
    items = validate_items(conditioning, fp, batch, requested_frames=num_frames)
    if input_media is not None:
        if not isinstance(input_media, Tensor) or input_media.dim() != 5 or input_media.shape[1] != 3:
            raise ValueError(f"input_media must be a (B, 3, frames, H, W) tensor, got "
                             f"{tuple(input_media.shape) if isinstance(input_media, Tensor) else type(input_media).__name__}")
        if input_media.shape[2] != fp or input_media.shape[0] not in (1, batch):
            raise ValueError(f"input_media must have {fp} frames (the padded count) and batch 1 or {batch}, "
                             f"got shape {tuple(input_media.shape)}")
    scheduler = _scheduler(cfg, scheduler_config)

    passes: list[tuple[PassConfig, int, int]] = []
    if cfg.is_multiscale:
        h1, w1 = first_pass_size(hp, wp, cfg.downscale_factor)
        passes = [(cfg.first_pass, h1, w1), (cfg.second_pass, 2 * h1, 2 * w1)]
    else:
        passes = [(cfg.base, hp, wp)]

    ctx = PassContext(
        transformer=transformer,
        vae=vae,
        scheduler=scheduler,
        skip_layer_strategy=stg_strategy(cfg.stg_mode),
        context=prompt_embeds.to(device),
        context_mask=prompt_mask.to(device),
        negative_context=negative_embeds.to(device),
        negative_mask=negative_mask.to(device),
        frame_rate=float(frame_rate),
        generator=make_generator(seed),
        stochastic_generator=derived_generator(seed, STOCHASTIC),
        conditioning=items,
        image_cond_noise_scale=float(image_cond_noise_scale),
        autocast_dtype=torch.bfloat16 if cfg.precision == "mixed_precision" else None,
        should_cancel=should_cancel,
        allowed_inference_steps=allowed_inference_steps,
    )

    # Step counts of every pass, for progress over the whole run (and early errors on bad schedules).
    given = latents is not None or input_media is not None
    strengths = [denoise_strength if (i == 0 and given and denoise_strength < 1.0) else None
                 for i in range(len(passes))]
    counts = []
    for (pcfg, h, w), s in zip(passes, strengths):
        shape = latent_shape(batch, fp, h, w, transformer.config.in_channels)
        counts.append(len(pass_timesteps(ctx, pcfg, shape, num_inference_steps,
                                         pcfg.denoise_strength if s is None else s)))
    total = sum(counts)
    done = [0]
    if progress is not None:
        def on_step(i, n, video_latents):
            progress(done[0] + i + 1, total, video_latents)
        ctx.on_step = on_step

    current = latents
    if input_media is not None:
        current = encode_media(vae, input_media, passes[0][1], passes[0][2])
        if current.shape[0] != batch:
            current = current.expand(batch, *current.shape[1:]).contiguous()
    first_latents = None
    for n, ((pcfg, h, w), s) in enumerate(zip(passes, strengths)):
        if n == 1:
            first_latents = current
            current = adain(upsample_latents(vae, upsampler, current), first_latents)
        current = run_pass(ctx, pcfg, h, w, fp, latents=current, denoise_strength=s,
                           num_inference_steps=num_inference_steps)
        done[0] += counts[n]

    if output == "latents":
        return GenerationResult(None, current)
    last_cfg = passes[-1][0]
    if decode_tiling == "auto":
        decode_tiling = decode_tiling_for(vae, current.shape, device_free_bytes(module_device_dtype(vae)[0]))
    video = to_unit_range(decode(vae, current, last_cfg.decode_timestep, last_cfg.decode_noise_scale,
                                 last_cfg.tone_map_compression_ratio, derived_generator(seed, DECODE), decode_tiling))
    if cfg.is_multiscale:
        video = resize_media(video, hp, wp)
    top, left = (hp - height) // 2, (wp - width) // 2
    video = video[:, :, :num_frames, top: top + height, left: left + width].contiguous()
    return GenerationResult(video, current)
