"""Encoder/decoder building blocks. Module and parameter names follow the official checkpoints' keys."""
import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .chunks import tracing
from .convs import CausalConv3d
from .norms import ChannelLayerNorm, make_norm


def space_to_depth(x: torch.Tensor, stride: tuple[int, int, int]) -> torch.Tensor:
    return rearrange(x, "b c (d p1) (h p2) (w p3) -> b (c p1 p2 p3) d h w", p1=stride[0], p2=stride[1], p3=stride[2])


class _TimestepMLP(nn.Module):
    def __init__(self, in_features: int, dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_features, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


class TimestepEmbedder(nn.Module):
    """(B,) timesteps -> (B, dim): 256 sinusoidal features (cosines first, periods up to 10000), then an MLP."""

    FREQUENCIES = 128

    def __init__(self, dim: int):
        super().__init__()
        self.timestep_embedder = _TimestepMLP(2 * self.FREQUENCIES, dim)

    def forward(self, timestep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        exponent = -math.log(10000) * torch.arange(self.FREQUENCIES, dtype=torch.float32, device=timestep.device)
        freqs = torch.exp(exponent / self.FREQUENCIES)
        args = timestep[:, None].float() * freqs[None]
        return self.timestep_embedder(torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(dtype))


def modulate_(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x.mul_(1 + scale).add_(shift)


def _add_spatial_noise_(x: torch.Tensor, scale: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    # One (H, W) noise image shared by every batch item, frame and channel, scaled per channel (StyleGAN's
    # "explicit noise inputs"). Drawn on the generator's device so a seed means the same noise everywhere.
    noise = torch.randn(x.shape[-2:], generator=generator, device=generator.device, dtype=x.dtype).to(x.device)
    return x.add_((noise * scale)[None, :, None])


class ResnetBlock(nn.Module):
    """norm -> SiLU -> conv, twice, plus a shortcut (LayerNorm + 1x1x1 conv when the width changes).

    Optional per-timestep scale/shift after each norm (AdaLN) and learned-scale noise after each conv."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        norm_layer: str,
        padding_mode: str,
        inject_noise: bool = False,
        timestep_conditioning: bool = False,
    ):
        super().__init__()
        self.norm1 = make_norm(norm_layer, in_channels)
        self.conv1 = CausalConv3d(in_channels, out_channels, padding_mode=padding_mode)
        self.norm2 = make_norm(norm_layer, out_channels)
        self.conv2 = CausalConv3d(out_channels, out_channels, padding_mode=padding_mode)
        if inject_noise:
            self.per_channel_scale1 = nn.Parameter(torch.zeros(in_channels, 1, 1))
            self.per_channel_scale2 = nn.Parameter(torch.zeros(in_channels, 1, 1))
        if in_channels != out_channels:
            self.norm3 = ChannelLayerNorm(in_channels)
            self.conv_shortcut = nn.Conv3d(in_channels, out_channels, 1)
        if timestep_conditioning:
            self.scale_shift_table = nn.Parameter(torch.zeros(4, in_channels))

    def forward(
        self,
        x: torch.Tensor,
        causal: bool,
        time_embedding: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        h = self.norm1(x)
        if time_embedding is not None:
            # (B, 4C) -> shift1, scale1, shift2, scale2, each (B, C, 1, 1, 1)
            ada = self.scale_shift_table[None, :, :, None, None, None] + time_embedding.view(
                x.shape[0], 4, -1, 1, 1, 1
            )
            shift1, scale1, shift2, scale2 = ada.unbind(dim=1)
            modulate_(h, shift1, scale1)
        # h is ours, so every step below may overwrite it: the block then holds about two activations
        # (its input, kept for the shortcut, and h) instead of four or five.
        h = self.conv1(F.silu(h, inplace=True), causal, inplace=h.shape[1] == self.conv1.conv.out_channels)
        if hasattr(self, "per_channel_scale1"):
            _add_spatial_noise_(h, self.per_channel_scale1, generator)
        h = self.norm2(h, inplace=True)
        if time_embedding is not None:
            modulate_(h, shift2, scale2)
        h = self.conv2(F.silu(h, inplace=True), causal, inplace=True)
        if hasattr(self, "per_channel_scale2"):
            _add_spatial_noise_(h, self.per_channel_scale2, generator)
        if hasattr(self, "conv_shortcut"):
            x = self.conv_shortcut(self.norm3(x))
        return h.add_(x)


class ResStack(nn.Module):
    """`res_x`: num_layers same-width ResnetBlocks sharing one timestep embedding.

    The encoder and decoder run `res_blocks` themselves rather than through a forward here: each block's
    input is then released as soon as the next block has its output, where the reference to the stack's
    input held by a caller would keep one more activation alive throughout."""

    def __init__(
        self,
        channels: int,
        num_layers: int,
        norm_layer: str,
        padding_mode: str,
        inject_noise: bool = False,
        timestep_conditioning: bool = False,
    ):
        super().__init__()
        if timestep_conditioning:
            self.time_embedder = TimestepEmbedder(4 * channels)
        self.res_blocks = nn.ModuleList(
            ResnetBlock(channels, channels, norm_layer, padding_mode, inject_noise, timestep_conditioning)
            for _ in range(num_layers)
        )

    def embed(self, timestep: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
        return self.time_embedder(timestep, dtype) if hasattr(self, "time_embedder") else None


class SpaceToDepthDown(nn.Module):
    """`compress_*_res`: a conv to out/stride-volume channels folded into depth, plus the input folded the same
    way and averaged over groups of channels. Time compression first repeats frame 0, so 1 + 2k frames
    become 1 + k."""

    def __init__(self, in_channels: int, out_channels: int, stride: tuple[int, int, int], padding_mode: str):
        super().__init__()
        self.stride = stride
        volume = math.prod(stride)
        self.group_size = in_channels * volume // out_channels
        self.conv = CausalConv3d(in_channels, out_channels // volume, padding_mode=padding_mode)

    def forward(self, x: torch.Tensor, causal: bool = True) -> torch.Tensor:
        if self.stride[0] == 2:
            x = torch.cat([x[:, :, :1], x], dim=2)
        skip = space_to_depth(x, self.stride).unflatten(1, (-1, self.group_size)).mean(dim=2)
        return space_to_depth(self.conv(x, causal), self.stride).add_(skip)


class DepthToSpaceUp(nn.Module):
    """`compress_all` in the decoder: a conv to stride-volume x in/reduction channels unfolded into time and
    space, then the first frame dropped (1 + k frames become 1 + 2k); optionally plus the input unfolded the
    same way and tiled over channels."""

    def __init__(
        self, in_channels: int, stride: tuple[int, int, int], residual: bool, reduction: int, padding_mode: str
    ):
        super().__init__()
        self.stride = stride
        self.residual = residual
        self.conv = CausalConv3d(in_channels, math.prod(stride) * in_channels // reduction, padding_mode=padding_mode)

    def forward(self, x: torch.Tensor, causal: bool) -> torch.Tensor:
        p1, p2, p3 = self.stride
        if tracing():
            return self._unfold_whole(x, causal)[:, :, p1 - 1 :]
        b, _, d, h, w = x.shape
        c = self.conv.conv.out_channels // math.prod(self.stride)
        # Each slice of the conv output is unfolded straight into the result, seen in the conv output's
        # index order: a whole conv output, a shuffled copy and a tiled residual are never materialised.
        out = x.new_empty(b, c, d * p1, h * p2, w * p3)
        for start, stop, y in self.conv.chunks(x, causal):
            dest = out[:, :, start * p1 : stop * p1].unflatten(4, (w, p3)).unflatten(3, (h, p2)).unflatten(2, (-1, p1))
            dest = dest.permute(0, 1, 3, 5, 7, 2, 4, 6)  # b, c, p1, p2, p3, d, h, w
            src = y.unflatten(1, (-1, p1, p2, p3))
            if self.residual:
                # The input unfolded has fewer channels than the output; it repeats over channel groups.
                skip = x[:, :, start:stop].unflatten(1, (1, -1, p1, p2, p3))
                groups = skip.shape[2]
                torch.add(src.unflatten(1, (-1, groups)), skip, out=dest.unflatten(1, (-1, groups)))
            else:
                dest.copy_(src)
            del y, src
        # Time upsampling makes 2 frames of the first latent frame, which only stands for 1 pixel frame.
        return out[:, :, p1 - 1 :]

    def _unfold_whole(self, x: torch.Tensor, causal: bool) -> torch.Tensor:
        """What forward writes slice by slice, as whole-tensor ops (for tracing: sizes are symbolic there)."""
        p1, p2, p3 = self.stride
        unfold = "b (c p1 p2 p3) d h w -> b c (d p1) (h p2) (w p3)"
        out = rearrange(self.conv(x, causal), unfold, p1=p1, p2=p2, p3=p3)
        if self.residual:
            skip = rearrange(x, unfold, p1=p1, p2=p2, p3=p3)
            out = out + skip.repeat(1, out.shape[1] // skip.shape[1], 1, 1, 1)
        return out
