"""Multi-scale sampling: a first pass at a reduced size, latent upsampling, a second (refining) pass at twice that
size (reference notes A4, "Multi-scale")."""
from __future__ import annotations

import torch
from torch import Tensor

from ..model.transformer.coords import VAE_SCALE_FACTORS
from .base import module_device_dtype


def first_pass_size(height: int, width: int, downscale_factor: float) -> tuple[int, int]:
    """int(size * factor), rounded down to a multiple of the VAE's 32-pixel grid."""
    step = VAE_SCALE_FACTORS[1]
    h = int(height * downscale_factor)
    w = int(width * downscale_factor)
    h, w = h - h % step, w - w % step
    if h <= 0 or w <= 0:
        raise ValueError(f"downscale_factor {downscale_factor} leaves no first-pass size for {height}x{width} "
                         f"(needs at least {step} pixels per side)")
    return h, w


def channel_stats(vae) -> tuple[Tensor, Tensor]:
    """(std, mean) of the VAE's per-channel latent statistics, shaped (1, C, 1, 1, 1)."""
    stats = vae.per_channel_statistics
    std = stats.get_buffer("std-of-means")
    mean = stats.get_buffer("mean-of-means")
    return std.view(1, -1, 1, 1, 1), mean.view(1, -1, 1, 1, 1)


def upsample_latents(vae, upsampler, latents: Tensor) -> Tensor:
    """Normalised latents -> un-normalise -> upsampler -> normalise."""
    std, mean = channel_stats(vae)
    std = std.to(latents.device, latents.dtype)
    mean = mean.to(latents.device, latents.dtype)
    device, dtype = module_device_dtype(upsampler)
    raw = latents * std + mean
    with torch.no_grad():
        up = upsampler(raw.to(device=device, dtype=dtype)).to(device=latents.device, dtype=latents.dtype)
    return (up - mean) / std


def adain(latents: Tensor, reference: Tensor) -> Tensor:
    """Match each (sample, channel)'s mean and (unbiased) std to the reference latents'."""
    dims = tuple(range(2, latents.dim()))
    r_std, r_mean = torch.std_mean(reference, dim=dims, keepdim=True)
    i_std, i_mean = torch.std_mean(latents, dim=dims, keepdim=True)
    return (latents - i_mean) / i_std * r_std + r_mean
