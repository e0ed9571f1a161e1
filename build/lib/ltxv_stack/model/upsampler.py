"""LTX-Video latent upsampler: doubles un-normalised VAE latents in space (H, W) or in time (F).

Parameter names follow the official files (`initial_conv`, `res_blocks.N`, `upsampler.0`,
`post_upsample_res_blocks.N`, `final_conv`) so their tensors load without renaming.
"""
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class UpsamplerConfig:
    in_channels: int = 128
    mid_channels: int = 512
    num_blocks_per_stage: int = 4
    dims: int = 3
    spatial_upsample: bool = True
    temporal_upsample: bool = False

    def __post_init__(self):
        if self.dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {self.dims}")
        if not (self.spatial_upsample or self.temporal_upsample):
            raise ValueError("spatial_upsample, temporal_upsample or both must be set")
        if self.dims == 2 and self.temporal_upsample:
            raise ValueError("temporal upsampling needs dims 3 (2-D convolutions see one frame at a time)")
        if self.in_channels < 1 or self.num_blocks_per_stage < 0:
            raise ValueError(f"invalid in_channels {self.in_channels} or num_blocks_per_stage "
                             f"{self.num_blocks_per_stage}")
        # Every norm is a GroupNorm with 32 groups.
        if self.mid_channels < 32 or self.mid_channels % 32:
            raise ValueError(f"mid_channels must be a positive multiple of 32, got {self.mid_channels}")


def _conv(dims: int, c_in: int, c_out: int) -> nn.Module:
    return (nn.Conv2d if dims == 2 else nn.Conv3d)(c_in, c_out, kernel_size=3, padding=1)


def _depth_to_space(x: torch.Tensor, n: int) -> torch.Tensor:
    """(B, C·2ⁿ, D1..Dn, *rest) -> (B, C, 2·D1..2·Dn, *rest); the factor index varies fastest in the
    channel dimension, in axis order, as in the official pixel shuffle."""
    b, c, *sizes = x.shape
    x = x.reshape(b, c >> n, *([2] * n), *sizes)
    order = [0, 1]
    for i in range(n):
        order += [2 + n + i, 2 + i]
    order += list(range(2 + 2 * n, x.dim()))
    return x.permute(order).reshape(b, c >> n, *(s * 2 for s in sizes[:n]), *sizes[n:])


class _DepthToSpace(nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def forward(self, x):
        return _depth_to_space(x, self.n)


class ResBlock(nn.Module):
    def __init__(self, channels: int, dims: int):
        super().__init__()
        self.conv1 = _conv(dims, channels, channels)
        self.norm1 = nn.GroupNorm(32, channels)
        self.conv2 = _conv(dims, channels, channels)
        self.norm2 = nn.GroupNorm(32, channels)
        self.activation = nn.SiLU()

    def forward(self, x):
        h = self.activation(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return self.activation(h + x)


class LatentUpsampler(nn.Module):
    def __init__(self, config: UpsamplerConfig):
        super().__init__()
        self.config = config
        c, mid, dims = config.in_channels, config.mid_channels, config.dims
        self.spatial_scale = 2 if config.spatial_upsample else 1
        self.temporal_scale = 2 if config.temporal_upsample else 1

        self.initial_conv = _conv(dims, c, mid)
        self.initial_norm = nn.GroupNorm(32, mid)
        self.initial_activation = nn.SiLU()
        self.res_blocks = nn.ModuleList(ResBlock(mid, dims) for _ in range(config.num_blocks_per_stage))
        if config.temporal_upsample:
            # With both flags set this shuffles all three axes at once (x8 channels).
            n = 3 if config.spatial_upsample else 1
            self.upsampler = nn.Sequential(nn.Conv3d(mid, mid * 2 ** n, kernel_size=3, padding=1), _DepthToSpace(n))
        else:
            # Spatial-only upsampling is per frame, with a 2-D conv, whatever `dims` is.
            self.upsampler = nn.Sequential(nn.Conv2d(mid, 4 * mid, kernel_size=3, padding=1), _DepthToSpace(2))
        self.post_upsample_res_blocks = nn.ModuleList(ResBlock(mid, dims) for _ in range(config.num_blocks_per_stage))
        self.final_conv = _conv(dims, mid, c)

    @property
    def dtype(self) -> torch.dtype:
        return self.final_conv.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.final_conv.weight.device

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, C, F, H, W) un-normalised latents -> (B, C, F·t - (t-1), H·s, W·s), with t/s the temporal/spatial
        scale. Computes in the model's dtype and returns the input's dtype."""
        if latents.dim() != 5 or latents.shape[1] != self.config.in_channels:
            raise ValueError(f"expected latents (B, {self.config.in_channels}, F, H, W), got {tuple(latents.shape)}")
        b, _, f, _, _ = latents.shape
        x = latents.to(self.dtype)
        per_frame = self.config.dims == 2
        if per_frame:
            x = _frames_to_batch(x)
        x = self.initial_activation(self.initial_norm(self.initial_conv(x)))
        for block in self.res_blocks:
            x = block(x)
        if self.config.temporal_upsample:
            # The first latent frame stands for a single video frame; its temporal copy has no counterpart.
            x = self.upsampler(x)[:, :, 1:]
        elif per_frame:
            x = self.upsampler(x)
        else:
            x = _batch_to_frames(self.upsampler(_frames_to_batch(x)), b, f)
        for block in self.post_upsample_res_blocks:
            x = block(x)
        x = self.final_conv(x)
        if per_frame:
            x = _batch_to_frames(x, b, f)
        return x.to(latents.dtype)


def _frames_to_batch(x: torch.Tensor) -> torch.Tensor:
    b, c, f, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)


def _batch_to_frames(x: torch.Tensor, b: int, f: int) -> torch.Tensor:
    _, c, h, w = x.shape
    return x.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)
