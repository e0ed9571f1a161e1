"""Normalisations over the channel axis of (B, C, F, H, W) tensors.

Each takes `inplace`: callers pass True when they own the input, which lets the parameter-free pixel norm
reuse its memory; the affine norms cannot and ignore it.
"""
import torch
from torch import nn

from .chunks import frame_slices, tracing


class PixelNorm(nn.Module):
    """x / sqrt(mean over channels of x^2 + 1e-8)."""

    def forward(self, x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        if tracing():
            return x / torch.sqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-8)
        out = x if inplace else torch.empty_like(x, memory_format=torch.contiguous_format)
        # The official arithmetic, slice by slice so that its x**2 temporary stays small.
        for start, stop in frame_slices(x):
            piece = x[:, :, start:stop]
            torch.div(piece, torch.sqrt(torch.mean(piece**2, dim=1, keepdim=True) + 1e-8), out=out[:, :, start:stop])
        return out


class GroupNorm(nn.GroupNorm):
    def forward(self, x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        del inplace  # an affine norm cannot reuse its input
        return super().forward(x)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over channels; the official module nests it as `.norm`, which the key names keep."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        del inplace  # an affine norm cannot reuse its input
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "pixel_norm":
        return PixelNorm()
    if kind == "group_norm":
        return GroupNorm(32, channels, eps=1e-6)
    if kind == "layer_norm":
        return ChannelLayerNorm(channels)
    raise ValueError(f"unsupported norm_layer {kind!r}")
