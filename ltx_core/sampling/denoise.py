"""The denoising loop: guided velocity per step, Euler step, conditioning mask (reference notes A3/A4)."""
from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, Sequence

import torch
from torch import Tensor

from ..conditioning.tokens import TokenState
from ..model.transformer.model import trim_text_padding
from .guidance import NEGATIVE, GuidanceStep, combine, skip_layer_mask
from .noise import randn
from .schedule import T_EPS, euler_step

# Tokens whose conditioning strength is this close to 1 count as hard-conditioned.
HARD_EPS = 1e-6


class Cancelled(RuntimeError):
    """Raised between denoising steps when the caller's `should_cancel()` returned True."""


def denoise(
    model,
    state: TokenState,
    timesteps: Tensor,
    steps: Sequence[GuidanceStep],
    context: Tensor,
    context_mask: Tensor,
    negative_context: Tensor,
    negative_mask: Tensor,
    frame_rate: float,
    generator: torch.Generator,
    skip_layer_strategy=None,
    stochastic: bool = False,
    stochastic_generator: torch.Generator | None = None,
    image_cond_noise_scale: float = 0.0,
    autocast_dtype: torch.dtype | None = None,
    on_step: Callable[[int, Tensor], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> Tensor:
    """Denoise `state.tokens` along `timesteps`; returns the final tokens (B, N, C), extra tokens included.

    - Each token's model timestep is min(t, 1 - strength); a token is only updated once t - 1e-6 < 1 - strength,
      so hard-conditioned tokens (strength 1) are never changed by a step.
    - With `image_cond_noise_scale` > 0 and conditioning present, hard-conditioned tokens are reset every step to
      their initial value plus scale * t^2 * noise (noise from `generator`, drawn every step like the reference).
    """
    if len(steps) != len(timesteps):
        raise ValueError(f"{len(steps)} guidance steps for {len(timesteps)} timesteps")
    tokens = state.tokens
    init_tokens = tokens.clone()
    mask = state.mask
    batch = tokens.shape[0]
    device = tokens.device
    coords = state.model_coords(frame_rate).to(device)
    timesteps = timesteps.to(device=device, dtype=torch.float32)
    num_layers = len(model.transformer_blocks)
    (context, context_mask), (negative_context, negative_mask) = trim_text_padding(
        context, context_mask, (negative_context, negative_mask)
    )
    rows_of = {"negative": (negative_context, negative_mask), "positive": (context, context_mask),
               "perturbed": (context, context_mask)}
    hard = None if mask is None else (mask > 1.0 - HARD_EPS).unsqueeze(-1)
    autocast = (torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None else nullcontext())

    for i, step in enumerate(steps):
        if should_cancel is not None and should_cancel():
            raise Cancelled(f"generation cancelled before step {i + 1} of {len(steps)}")
        t = timesteps[i]
        conds = step.conditions
        n = len(conds)

        if mask is not None and image_cond_noise_scale > 0.0:
            noise = randn(tokens.shape, generator, device, tokens.dtype)
            tokens = torch.where(hard, init_tokens + image_cond_noise_scale * noise * (t ** 2), tokens)

        model_in = torch.cat([tokens] * n) if n > 1 else tokens
        ts = t.expand(batch * n).unsqueeze(-1)
        if mask is not None:
            ts = torch.minimum(ts, 1.0 - torch.cat([mask] * n))
        ctx = torch.cat([rows_of[c][0] for c in conds])
        ctx_mask = _cat_masks([rows_of[c] for c in conds])
        with autocast:
            pred = model.forward_tokens(
                model_in,
                torch.cat([coords] * n),
                ts,
                ctx,
                ctx_mask,
                skip_layer_mask(step, num_layers, batch),  # on the CPU: see Transformer3D._layer_skips
                skip_layer_strategy,
            )
        velocity = combine(pred.to(tokens.dtype), step, batch)

        stepped = euler_step(tokens, velocity, ts[:1], timesteps, stochastic, stochastic_generator)
        if mask is not None:
            update = (t - T_EPS < (1.0 - mask)).unsqueeze(-1)
            stepped = torch.where(update, stepped, tokens)
        tokens = stepped
        if on_step is not None:
            on_step(i, tokens)
    return tokens


def uses_negative(steps: Sequence[GuidanceStep]) -> bool:
    return any(NEGATIVE in s.conditions for s in steps)


def _cat_masks(rows: list[tuple[Tensor, Tensor | None]]) -> Tensor | None:
    """The text masks of the rows stacked; None when no row masks anything (trimming removed all padding)."""
    if all(m is None for _, m in rows):
        return None
    return torch.cat([torch.ones(c.shape[:2], device=c.device, dtype=torch.long) if m is None else m for c, m in rows])
