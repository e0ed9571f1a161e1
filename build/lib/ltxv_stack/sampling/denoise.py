"""The denoising loop: guided velocity per step, Euler step, conditioning mask."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor

from ..conditioning.text import TextConditioning
from ..conditioning.tokens import TokenState
from ..model.transformer.model import trim_text_padding
from .guidance import GuidanceStep, combine, skip_layer_mask
from .noise import randn
from .schedule import T_EPS, euler_step

# Tokens whose conditioning strength is this close to 1 count as hard-conditioned.
HARD_EPS = 1e-6


class Cancelled(RuntimeError):
    """Raised between denoising steps when the caller's `should_cancel()` returned True."""


@dataclass(frozen=True)
class DenoiseContext:
    """What every step of a denoising run shares."""

    model: torch.nn.Module
    text: TextConditioning
    frame_rate: float
    generator: torch.Generator  # the seed's main stream: conditioning re-noising
    stochastic_generator: torch.Generator | None = None
    skip_layer_strategy: object = None
    stochastic: bool = False
    image_cond_noise_scale: float = 0.0
    autocast_dtype: torch.dtype | None = None
    on_step: Callable[[int, Tensor], None] | None = None  # (step index, tokens) after each step
    should_cancel: Callable[[], bool] | None = None


def denoise(ctx: DenoiseContext, state: TokenState, timesteps: Tensor, steps: Sequence[GuidanceStep]) -> Tensor:
    """Denoise `state.tokens` along `timesteps`; returns the final tokens (B, N, C), extra tokens included.

    - Each token's model timestep is min(t, 1 - strength); a token is only updated once t - 1e-6 < 1 - strength,
      so hard-conditioned tokens (strength 1) are never changed by a step.
    - With `image_cond_noise_scale` > 0 and conditioning present, hard-conditioned tokens are reset every step to
      their initial value plus scale * t^2 * noise (noise from `generator`, drawn every step like the reference).
    - Guide tokens (`state.guides`) are set every step to their control noised to t * (1 - strength), which is
      also their model timestep.
    """
    if len(steps) != len(timesteps):
        raise ValueError(f"{len(steps)} guidance steps for {len(timesteps)} timesteps")
    tokens = state.tokens
    init_tokens = tokens.clone()
    mask = state.mask
    device = tokens.device
    coords = state.model_coords(ctx.frame_rate).to(device)
    timesteps = timesteps.to(device=device, dtype=torch.float32)
    rows = _condition_rows(ctx.text)
    hard = None if mask is None else (mask > 1.0 - HARD_EPS).unsqueeze(-1)
    scale = state.timestep_scale()

    for i, step in enumerate(steps):
        if ctx.should_cancel is not None and ctx.should_cancel():
            raise Cancelled(f"generation cancelled before step {i + 1} of {len(steps)}")
        t = timesteps[i]
        if mask is not None and ctx.image_cond_noise_scale > 0.0:
            noise = randn(tokens.shape, ctx.generator, device, tokens.dtype)
            tokens = torch.where(hard, init_tokens + ctx.image_cond_noise_scale * noise * (t ** 2), tokens)
        tokens = state.with_guides(tokens, t)
        velocity, ts = _guided_velocity(ctx, tokens, coords, t, (mask, scale), rows, step)
        stepped = euler_step(tokens, velocity, ts[:1], timesteps, ctx.stochastic, ctx.stochastic_generator)
        if mask is not None:
            update = (t - T_EPS < (1.0 - mask)).unsqueeze(-1)
            stepped = torch.where(update, stepped, tokens)
        tokens = stepped
        if ctx.on_step is not None:
            ctx.on_step(i, tokens)
    return tokens


def _condition_rows(text: TextConditioning) -> dict[str, tuple[Tensor, Tensor | None]]:
    """Text rows per condition, with the padding that every row masks trimmed once for the whole run."""
    (context, context_mask), (negative, negative_mask) = trim_text_padding(
        text.embeds, text.mask, (text.negative_embeds, text.negative_mask))
    return {"negative": (negative, negative_mask), "positive": (context, context_mask),
            "perturbed": (context, context_mask)}


def _guided_velocity(ctx: DenoiseContext, tokens, coords, t, token_timing, rows, step: GuidanceStep):
    """One batched model call over the step's conditions, combined into one velocity per sample; also returns
    the per-row model timesteps. `token_timing`: (conditioning mask, timestep scale), each (B, N) or None."""
    batch = tokens.shape[0]
    conds = step.conditions
    n = len(conds)
    mask, scale = token_timing
    ts = t.expand(batch * n).unsqueeze(-1)
    if mask is not None:
        ts = torch.minimum(ts, 1.0 - torch.cat([mask] * n))
    if scale is not None:
        ts = ts * torch.cat([scale] * n)
    autocast = torch.autocast(tokens.device.type, dtype=ctx.autocast_dtype) if ctx.autocast_dtype else nullcontext()
    with autocast:
        pred = ctx.model.forward_tokens(
            torch.cat([tokens] * n) if n > 1 else tokens,
            torch.cat([coords] * n),
            ts,
            torch.cat([rows[c][0] for c in conds]),
            _cat_masks([rows[c] for c in conds]),
            skip_layer_mask(step, len(ctx.model.transformer_blocks), batch),  # on the CPU: Transformer3D._layer_skips
            ctx.skip_layer_strategy,
        )
    return combine(pred.to(tokens.dtype), step, batch), ts


def _cat_masks(rows: list[tuple[Tensor, Tensor | None]]) -> Tensor | None:
    """The text masks of the rows stacked; None when no row masks anything (trimming removed all padding)."""
    if all(m is None for _, m in rows):
        return None
    return torch.cat([torch.ones(c.shape[:2], device=c.device, dtype=torch.long) if m is None else m for c, m in rows])
