"""Multi-scale sampling: a first pass at a reduced size, latent upsampling, a second (refining) pass at twice that
size, as in the official multi-scale pipeline."""
from __future__ import annotations

import torch
from torch import Tensor

from ..geometry import PIXELS_PER_LATENT
from .decode import tone_map
from .sampling_pass import module_device_dtype

SPATIAL_UPSAMPLER_HINT = "load a spatial x2 latent upsampler such as ltxv-spatial-upscaler-0.9.8.safetensors"


def first_pass_size(height: int, width: int, downscale_factor: float) -> tuple[int, int]:
    """int(size * factor), rounded down to a multiple of the VAE's 32-pixel grid."""
    h = int(height * downscale_factor)
    w = int(width * downscale_factor)
    h, w = h - h % PIXELS_PER_LATENT, w - w % PIXELS_PER_LATENT
    if h <= 0 or w <= 0:
        raise ValueError(f"downscale_factor {downscale_factor} leaves no first-pass size for {height}x{width} "
                         f"(needs at least {PIXELS_PER_LATENT} pixels per side)")
    return h, w


def check_upsampler(config, upsampler, missing_hint: str = SPATIAL_UPSAMPLER_HINT, name: str = "the upsampler",
                    recipe: str = "this config") -> None:
    """A multi-scale config needs a spatial x2 upsampler; `missing_hint` says how to add one."""
    if not config.is_multiscale:
        return
    if upsampler is None:
        raise ValueError(f"{recipe} is a multi-scale recipe: {missing_hint}")
    if getattr(upsampler, "spatial_scale", 2) != 2 or getattr(upsampler, "temporal_scale", 1) != 1:
        raise ValueError(f"{recipe} needs a spatial x2 latent upsampler, but {name} is temporal; "
                         f"{SPATIAL_UPSAMPLER_HINT}")


def channel_stats(vae) -> tuple[Tensor, Tensor]:
    """(std, mean) of the VAE's per-channel latent statistics, shaped (1, C, 1, 1, 1)."""
    stats = vae.per_channel_statistics
    std = stats.get_buffer("std-of-means")
    mean = stats.get_buffer("mean-of-means")
    return std.view(1, -1, 1, 1, 1), mean.view(1, -1, 1, 1, 1)


def upsample_latents(vae, upsampler, latents: Tensor, adain_factor: float = 1.0,
                     tone_map_compression: float = 0.0) -> Tensor:
    """Normalised latents -> un-normalise with the VAE's statistics -> upsampler -> normalise; then each channel's
    mean and spread pulled towards the input's by `adain_factor` (AdaIN; 1 = matched, as the multi-scale recipe
    does) and optional tone mapping."""
    std, mean = channel_stats(vae)
    std = std.to(latents.device, latents.dtype)
    mean = mean.to(latents.device, latents.dtype)
    device, dtype = module_device_dtype(upsampler)
    with torch.no_grad():
        up = upsampler((latents * std + mean).to(device=device, dtype=dtype))
    up = (up.to(device=latents.device, dtype=latents.dtype) - mean) / std
    if adain_factor >= 1.0:  # exactly AdaIN (a lerp by 1 would round differently)
        up = adain(up, latents)
    elif adain_factor > 0.0:
        up = torch.lerp(up, adain(up, latents), adain_factor)
    return tone_map(up, tone_map_compression) if tone_map_compression > 0 else up


def adain(latents: Tensor, reference: Tensor) -> Tensor:
    """Match each (sample, channel)'s mean and (unbiased) std to the reference latents'."""
    dims = tuple(range(2, latents.dim()))
    r_std, r_mean = torch.std_mean(reference, dim=dims, keepdim=True)
    i_std, i_mean = torch.std_mean(latents, dim=dims, keepdim=True)
    return (latents - i_mean) / i_std * r_std + r_mean
