"""Rotary position embedding over [t, y, x] token coordinates, rotating interleaved channel pairs."""
import math
from typing import NamedTuple

import torch
from torch import Tensor

# Channel pairs viewed as complex numbers: one complex multiply rotates them in a single pass, in place.
_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}


class RopeTables(NamedTuple):
    """cos (B, N, dim/2, 1) and signed sin (B, N, dim/2, 2) = (-sin, sin) of each channel pair's angle; for
    float32/float64 instead `rotation` (B, N, dim/2) = cos + i sin (cos and sin are then None)."""

    cos: Tensor | None
    sin: Tensor | None
    rotation: Tensor | None = None


def rope_cos_sin(
    coords: Tensor, dim: int, theta: float, max_pos: tuple[int, int, int], dtype: torch.dtype, complex_ok: bool = True
) -> RopeTables:
    """Rotation tables for `apply_rope_`.

    Each axis position is taken as a fraction of `max_pos`, mapped to [-1, 1] and multiplied by
    dim // 6 frequencies spaced geometrically from pi/2 to theta*pi/2; the three axes interleave.
    `dim` is rarely a multiple of 6 (2048 and 4096 are not): the leftover leading pairs do not rotate.
    `complex_ok=False` keeps the tables real for every dtype (torch.compile generates no code for complex ops).
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
    cos, sin = angles.cos(), angles.sin()
    if complex_ok and dtype in _COMPLEX:
        return RopeTables(None, None, torch.complex(cos.to(dtype), sin.to(dtype)))
    return RopeTables(cos.unsqueeze(-1).to(dtype), torch.stack((-sin, sin), dim=-1).to(dtype))


def apply_rope_(x: Tensor, rope: RopeTables) -> Tensor:
    """Rotates each channel pair (2i, 2i+1) of x (B, N, dim): (a, b) -> (a cos - b sin, b cos + a sin).
    Overwrites x where it can (contiguous x and complex tables); use the result either way."""
    if rope.rotation is not None and _COMPLEX.get(x.dtype) == rope.rotation.dtype and x.is_contiguous():
        torch.view_as_complex(x.unflatten(-1, (-1, 2))).mul_(rope.rotation)
        return x
    cos, sin = (rope.cos, rope.sin) if rope.cos is not None else _real_tables(rope.rotation)
    pairs = x.unflatten(-1, (-1, 2))
    return torch.addcmul(pairs * cos, pairs.flip(-1), sin).flatten(-2)


def _real_tables(rotation: Tensor) -> tuple[Tensor, Tensor]:
    """The cos/sin tables (in the compute dtype, as `rope_cos_sin` makes them) for x of another dtype."""
    cos, sin = rotation.real, rotation.imag
    return cos.unsqueeze(-1), torch.stack((-sin, sin), dim=-1)
