"""One sampling pass: noise (or given latents) at one size -> denoised latents."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import torch
from torch import Tensor

from ..conditioning.items import ConditioningItem, resize_media
from ..conditioning.tokens import build_tokens
from ..geometry import latent_shape
from ..sampling.denoise import DenoiseContext, denoise
from ..sampling.guidance import guidance_schedule, skip_layer_mask
from ..sampling.noise import initial_noise
from ..sampling.schedule import SchedulerConfig, make_timesteps
from .config import PassConfig


def module_device_dtype(module) -> tuple[torch.device, torch.dtype]:
    for p in module.parameters():
        return p.device, (p.dtype if p.is_floating_point() else torch.float32)
    for b in module.buffers():
        return b.device, (b.dtype if b.is_floating_point() else torch.float32)
    return torch.device("cpu"), torch.float32


@dataclass(frozen=True)
class PassPlan:
    """One pass of a run: its settings, its pixel size (valid sizes), and how it starts."""

    config: PassConfig
    height: int
    width: int
    num_frames: int
    denoise_strength: float  # < 1: start from given latents re-noised to this timestep
    num_inference_steps: int | None = None  # overrides the config's count (passes without a timestep list)

    def latent_shape(self, batch: int, channels: int) -> tuple[int, int, int, int, int]:
        return latent_shape(batch, self.num_frames, self.height, self.width, channels)


@dataclass(frozen=True)
class PassContext:
    """What every pass of a generation shares."""

    denoise: DenoiseContext
    vae: torch.nn.Module
    scheduler: SchedulerConfig
    conditioning: Sequence[ConditioningItem]
    allowed_inference_steps: Sequence[float] | None = None  # a distilled checkpoint's list (metadata)
    on_step: Callable[[int, Tensor], None] | None = None  # (step index in the pass, video latents) after each step


def encode_media(vae, media: Tensor, height: int | None = None, width: int | None = None) -> Tensor:
    """Pixels (B, 3, f, h, w) in [-1, 1] -> normalised float32 latents, resized first to (height, width) if given."""
    if height is not None:
        media = resize_media(media, height, width)
    device, dtype = module_device_dtype(vae)
    with torch.no_grad():
        return vae.encode(media.to(device=device, dtype=dtype)).to(torch.float32)


def pass_timesteps(ctx: PassContext, plan: PassPlan, shape) -> Tensor:
    cfg = plan.config
    steps = cfg.num_inference_steps if plan.num_inference_steps is None else plan.num_inference_steps
    ts = make_timesteps(ctx.scheduler, steps, shape, cfg.timesteps, cfg.skip_initial_inference_steps,
                        cfg.skip_final_inference_steps, plan.denoise_strength)
    if ctx.allowed_inference_steps is not None:
        allowed = {round(float(v), 4) for v in ctx.allowed_inference_steps}
        bad = [round(v, 4) for v in ts.tolist() if round(v, 4) not in allowed]
        if bad:
            raise ValueError(f"timesteps {bad} are not among this checkpoint's allowed inference steps "
                             f"{sorted(allowed, reverse=True)} (a distilled model: use its config's timesteps)")
    return ts


def run_pass(ctx: PassContext, plan: PassPlan, latents: Tensor | None = None) -> Tensor:
    """Sample one pass. `latents`: normalised (B, 128, F, H, W) latents to start from (re-noised to the first
    timestep) instead of pure noise. Returns the denoised normalised latents, conditioning tokens removed."""
    model = ctx.denoise.model
    text = ctx.denoise.text
    shape = plan.latent_shape(text.batch, model.config.in_channels)
    timesteps = pass_timesteps(ctx, plan, shape)
    _check_start(plan, timesteps, shape, latents)
    cfg = plan.config
    steps = guidance_schedule(timesteps, cfg.guidance_scale, cfg.stg_scale, cfg.rescaling_scale, cfg.skip_block_list,
                              cfg.guidance_timesteps, cfg.cfg_star_rescale)
    for s in steps:  # fail before any work on a block index the model does not have
        skip_layer_mask(s, len(model.transformer_blocks), 1)

    device = text.embeds.device
    noise = initial_noise(shape, ctx.denoise.generator, device)
    t0 = timesteps[0]
    start = noise if latents is None else t0 * noise + (1 - t0) * latents.to(device=device, dtype=torch.float32)
    state = build_tokens(start, list(ctx.conditioning), lambda media: encode_media(ctx.vae, media),
                         model.config.causal_temporal_positioning, ctx.denoise.generator, plan.height, plan.width)
    on_step = None if ctx.on_step is None else (lambda i, tokens: ctx.on_step(i, state.video_latents(tokens)))
    run = replace(ctx.denoise, stochastic=cfg.stochastic_sampling, on_step=on_step)
    with torch.no_grad():
        tokens = denoise(run, state, timesteps, steps)
    return state.video_latents(tokens).contiguous()


def _check_start(plan: PassPlan, timesteps: Tensor, shape, latents: Tensor | None) -> None:
    cfg = plan.config
    if latents is None:
        if plan.denoise_strength < 1.0 or (cfg.timesteps is None and cfg.skip_initial_inference_steps > 0):
            raise ValueError("denoise_strength < 1 or skip_initial_inference_steps > 0 refine given latents: "
                             "pass latents")
        return
    if tuple(latents.shape) != tuple(shape):
        raise ValueError(f"latents must have shape {tuple(shape)} for this pass, got {tuple(latents.shape)}")
    if float(timesteps[0]) >= 1.0:
        raise ValueError("latents were given but the schedule starts at t=1, where they would be replaced by noise: "
                         "use denoise_strength < 1 (or a config that skips initial steps)")
