"""Rotary position embedding over [t, y, x] token coordinates, rotating interleaved channel pairs."""
import math

import torch
from torch import Tensor


def rope_cos_sin(
    coords: Tensor, dim: int, theta: float, max_pos: tuple[int, int, int], dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """Rotation tables for `apply_rope`: cos (B, N, dim/2, 1) and signed sin (B, N, dim/2, 2) = (-sin, sin)
    of each channel pair's angle.

    Each axis position is taken as a fraction of `max_pos`, mapped to [-1, 1] and multiplied by
    dim // 6 frequencies spaced geometrically from pi/2 to theta*pi/2; the three axes interleave.
    `dim` is rarely a multiple of 6 (2048 and 4096 are not): the leftover leading pairs do not rotate.
    """
    # Angles in float32 whatever the compute dtype: positions reach thousands of pixels and bf16
    # would quantise them far too coarsely.
    fractions = coords.to(torch.float32).transpose(1, 2) / torch.tensor(
        max_pos, dtype=torch.float32, device=coords.device
    )
    freqs = theta ** torch.linspace(0.0, 1.0, dim // 6, dtype=torch.float32, device=coords.device)
    freqs = freqs * math.pi / 2
    angles = (freqs * (fractions.unsqueeze(-1) * 2 - 1)).transpose(-1, -2).flatten(2)
    still = (dim % 6) // 2
    angles = torch.cat([angles.new_zeros(*angles.shape[:2], still), angles], dim=-1)
    sin = angles.sin()
    return angles.cos().unsqueeze(-1).to(dtype), torch.stack((-sin, sin), dim=-1).to(dtype)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotates each channel pair (2i, 2i+1) of x (B, N, dim): (a, b) -> (a cos - b sin, b cos + a sin)."""
    pairs = x.unflatten(-1, (-1, 2))
    return torch.addcmul(pairs * cos, pairs.flip(-1), sin).flatten(-2)
