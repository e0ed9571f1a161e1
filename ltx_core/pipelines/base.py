"""One sampling pass (noise or given latents -> denoised latents) and the decode step (reference notes A4)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor

from ..conditioning.items import ConditioningItem, resize_media
from ..conditioning.tokens import build_tokens
from ..model.transformer.coords import VAE_SCALE_FACTORS
from ..model.video_vae import TilingConfig
from ..sampling.denoise import denoise
from ..sampling.guidance import guidance_schedule, skip_layer_mask
from ..sampling.noise import initial_noise, randn
from ..sampling.schedule import SchedulerConfig, make_timesteps
from .config import PassConfig

LATENT_CHANNELS = 128


def module_device_dtype(module) -> tuple[torch.device, torch.dtype]:
    for p in module.parameters():
        return p.device, (p.dtype if p.is_floating_point() else torch.float32)
    for b in module.buffers():
        return b.device, (b.dtype if b.is_floating_point() else torch.float32)
    return torch.device("cpu"), torch.float32


def latent_shape(batch: int, num_frames: int, height: int, width: int, channels: int = LATENT_CHANNELS):
    ft, fy, fx = VAE_SCALE_FACTORS
    return (batch, channels, (num_frames - 1) // ft + 1, height // fy, width // fx)


@dataclass
class PassContext:
    """What every pass of a generation shares."""

    transformer: object
    vae: object
    scheduler: SchedulerConfig
    skip_layer_strategy: object
    context: Tensor
    context_mask: Tensor
    negative_context: Tensor
    negative_mask: Tensor
    frame_rate: float
    generator: torch.Generator  # the seed's main stream (initial noise, conditioning noise)
    stochastic_generator: torch.Generator
    conditioning: Sequence[ConditioningItem]
    image_cond_noise_scale: float
    autocast_dtype: torch.dtype | None = None
    on_step: Callable[[int, int, Tensor], None] | None = None  # (step in pass, steps in pass, video latents)
    should_cancel: Callable[[], bool] | None = None
    allowed_inference_steps: Sequence[float] | None = None  # a distilled checkpoint's list (metadata)


def encode_media(vae, media: Tensor, height: int | None = None, width: int | None = None) -> Tensor:
    """Pixels (B, 3, f, h, w) in [-1, 1] -> normalised float32 latents, resized first to (height, width) if given."""
    if height is not None:
        media = resize_media(media, height, width)
    device, dtype = module_device_dtype(vae)
    with torch.no_grad():
        return vae.encode(media.to(device=device, dtype=dtype)).to(torch.float32)


def pass_timesteps(ctx: PassContext, cfg: PassConfig, shape, num_inference_steps: int | None, strength: float) -> Tensor:
    steps = cfg.num_inference_steps if num_inference_steps is None else num_inference_steps
    ts = make_timesteps(ctx.scheduler, steps, shape, cfg.timesteps, cfg.skip_initial_inference_steps,
                        cfg.skip_final_inference_steps, strength)
    if ctx.allowed_inference_steps is not None:
        allowed = {round(float(v), 4) for v in ctx.allowed_inference_steps}
        bad = [round(v, 4) for v in ts.tolist() if round(v, 4) not in allowed]
        if bad:
            raise ValueError(f"timesteps {bad} are not among this checkpoint's allowed inference steps "
                             f"{sorted(allowed, reverse=True)} (a distilled model: use its config's timesteps)")
    return ts


def run_pass(
    ctx: PassContext,
    cfg: PassConfig,
    height: int,
    width: int,
    num_frames: int,
    latents: Tensor | None = None,
    denoise_strength: float | None = None,
    num_inference_steps: int | None = None,
) -> Tensor:
    """Sample one pass at (num_frames, height, width) pixels (already valid sizes). `latents`: normalised
    (B, 128, F, H, W) latents to start from (re-noised to the first timestep) instead of pure noise.
    Returns the denoised normalised latents, conditioning tokens removed."""
    model = ctx.transformer
    device = ctx.context.device
    batch = ctx.context.shape[0]
    shape = latent_shape(batch, num_frames, height, width, model.config.in_channels)
    strength = cfg.denoise_strength if denoise_strength is None else denoise_strength
    timesteps = pass_timesteps(ctx, cfg, shape, num_inference_steps, strength)
    t0 = timesteps[0]
    if latents is None:
        if strength < 1.0 or (cfg.timesteps is None and cfg.skip_initial_inference_steps > 0):
            raise ValueError("denoise_strength < 1 or skip_initial_inference_steps > 0 refine given latents: pass latents")
    else:
        if tuple(latents.shape) != tuple(shape):
            raise ValueError(f"latents must have shape {tuple(shape)} for this pass, got {tuple(latents.shape)}")
        if float(t0) >= 1.0:
            raise ValueError("latents were given but the schedule starts at t=1, where they would be replaced by noise: "
                             "use denoise_strength < 1 (or a config that skips initial steps)")
    steps = guidance_schedule(timesteps, cfg.guidance_scale, cfg.stg_scale, cfg.rescaling_scale, cfg.skip_block_list,
                              cfg.guidance_timesteps, cfg.cfg_star_rescale)
    num_layers = len(model.transformer_blocks)
    for s in steps:  # fail before any work on a block index the model does not have
        skip_layer_mask(s, num_layers, 1)

    noise = initial_noise(shape, ctx.generator, device)
    if latents is None:
        start = noise
    else:
        start = t0 * noise + (1 - t0) * latents.to(device=device, dtype=torch.float32)

    state = build_tokens(start, list(ctx.conditioning), lambda media: encode_media(ctx.vae, media),
                         model.config.causal_temporal_positioning, ctx.generator, height, width)

    def on_step(i, tokens):
        ctx.on_step(i, len(steps), state.video_latents(tokens))

    with torch.no_grad():
        tokens = denoise(
            model, state, timesteps, steps, ctx.context, ctx.context_mask, ctx.negative_context, ctx.negative_mask,
            ctx.frame_rate, ctx.generator, ctx.skip_layer_strategy, cfg.stochastic_sampling, ctx.stochastic_generator,
            ctx.image_cond_noise_scale, ctx.autocast_dtype, on_step if ctx.on_step else None, ctx.should_cancel,
        )
    return state.video_latents(tokens).contiguous()


def tone_map(latents: Tensor, compression: float) -> Tensor:
    """Soft compression of large latent values: z * (1 - 0.8 s sigmoid(4 s (|z| - 1))), s = 0.75 * compression."""
    if not 0.0 <= compression <= 1.0:
        raise ValueError(f"tone_map_compression_ratio must be in [0, 1], got {compression}")
    s = compression * 0.75
    return latents * (1.0 - 0.8 * s * torch.sigmoid(4.0 * s * (torch.abs(latents) - 1.0)))


def _per_sample(v, batch: int, name: str) -> list[float]:
    if isinstance(v, (list, tuple)):
        if len(v) != batch:
            raise ValueError(f"{name} has {len(v)} values for a batch of {batch}")
        return [float(x) for x in v]
    return [float(v)] * batch


def decode(vae, latents: Tensor, decode_timestep, decode_noise_scale, tone_map_compression: float,
           generator: torch.Generator, tiling: TilingConfig | None = None) -> Tensor:
    """Normalised latents -> video in [-1, 1]. A timestep-conditioned VAE first gets the latents mixed with
    `decode_noise_scale` (None: the timestep; a value or one per sample) of seeded noise and decodes at
    `decode_timestep`; tone mapping applies in any case. `tiling`: decode in overlapping tiles."""
    device, dtype = module_device_dtype(vae)
    latents = latents.to(device=device, dtype=torch.float32)
    b = latents.shape[0]
    timestep = None
    if getattr(vae, "timestep_conditioning", False):
        ts = _per_sample(decode_timestep, b, "decode_timestep")
        scales = ts if decode_noise_scale is None else _per_sample(decode_noise_scale, b, "decode_noise_scale")
        scale = torch.tensor(scales, device=device)[:, None, None, None, None]
        noise = randn(latents.shape, generator, device)
        latents = latents * (1 - scale) + noise * scale
        timestep = torch.tensor(ts, device=device)
    latents = tone_map(latents, float(tone_map_compression))
    with torch.no_grad():
        video = vae.decode(latents.to(dtype), timestep=timestep, generator=generator, tiling=tiling)
    return video.to(torch.float32)


def to_unit_range(video: Tensor) -> Tensor:
    return (video * 0.5 + 0.5).clamp(0, 1)
