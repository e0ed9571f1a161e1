"""Seeded noise. Everything is drawn on the CPU from `torch.Generator`s seeded from the user's seed (never torch's
global RNG), then moved to the device: a seed gives the same video on every device.

The main generator (`seed` itself) draws, in the official pipeline's order: the initial latent noise, the noise of
conditioning tokens appended to the sequence, and the per-step re-noising of hard-conditioned tokens
(`image_cond_noise_scale`); a multi-scale run keeps drawing from it in its second pass. With those in the same
order the results equal the official pipeline's run on the CPU with `torch.Generator().manual_seed(seed)`.
The official code draws stochastic-sampling noise and decode noise from torch's global RNG; here they come from
their own generators, derived from the seed (`derived_generator`).
"""
from __future__ import annotations

import hashlib

import torch
from torch import Tensor

from ..defaults import MAX_SEED

# Purposes with their own generator stream.
STOCHASTIC = "stochastic_sampling"
DECODE = "decode_noise"


def make_generator(seed: int) -> torch.Generator:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be an integer from 0 to {MAX_SEED}, got {seed!r}")
    return torch.Generator(device="cpu").manual_seed(seed)


def derived_seed(seed: int, purpose: str) -> int:
    """A seed for `purpose`, independent of `seed`'s own streams but fixed by it."""
    digest = hashlib.sha256(f"{int(seed)}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def derived_generator(seed: int, purpose: str) -> torch.Generator:
    """A generator for `purpose`, independent of the main stream of `seed` but fixed by it."""
    return torch.Generator(device="cpu").manual_seed(derived_seed(seed, purpose))


def randn(shape, generator: torch.Generator, device=None, dtype=torch.float32) -> Tensor:
    """Standard normal noise drawn on the CPU in float32, then moved to `device`/`dtype`. For a GPU it is drawn
    into pinned memory and copied asynchronously: a copy from pageable memory would stall the host until the GPU
    has caught up, once per step where noise is drawn every step."""
    pinned = device is not None and torch.device(device).type == "cuda"
    noise = torch.randn(tuple(shape), generator=generator, dtype=torch.float32, pin_memory=pinned)
    return noise.to(device=device, dtype=dtype, non_blocking=pinned)


def initial_noise(latent_shape, generator: torch.Generator, device=None, dtype=torch.float32) -> Tensor:
    """The initial latent noise (b, c, f, h, w), drawn token-major as (b, f*h*w, c) like the official pipeline."""
    b, c, f, h, w = (int(s) for s in latent_shape)
    tokens = randn((b, f * h * w, c), generator, device, dtype)
    return tokens.transpose(1, 2).reshape(b, c, f, h, w)
