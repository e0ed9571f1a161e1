"""Latent (B, latent_channels, 1 + k, h, w) -> video (B, C, 1 + 8k, 32h, 32w) for the released layouts."""
import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .blocks import DepthToSpaceUp, ResnetBlock, ResStack, TimestepEmbedder, modulate_
from .config import VideoVAEConfig
from .convs import CausalConv3d
from .norms import make_norm


def unpatchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    return rearrange(x, "b (c r q) f h w -> b c f (h q) (w r)", q=patch_size, r=patch_size)


class Decoder(nn.Module):
    """Blocks run in reverse config order, each reversing its encoder counterpart. With timestep
    conditioning, the timestep (scaled by the learned `timestep_scale_multiplier`) drives an AdaLN
    scale/shift in every `res_x` block and before `conv_out`."""

    def __init__(self, cfg: VideoVAEConfig):
        super().__init__()
        self.patch_size = cfg.patch_size
        self.causal = cfg.causal_decoder
        self.timestep_conditioning = cfg.timestep_conditioning
        self.injects_noise = any(spec.inject_noise for spec in cfg.decoder_blocks)
        pad = cfg.spatial_padding_mode
        channels = cfg.decoder_base_channels * math.prod(spec.multiplier for spec in cfg.decoder_blocks)
        self.conv_in = CausalConv3d(cfg.latent_channels, channels, padding_mode=pad)
        self.up_blocks = nn.ModuleList()
        for spec in reversed(cfg.decoder_blocks):
            if spec.name == "res_x":
                block = ResStack(
                    channels, spec.num_layers, cfg.norm_layer, pad, spec.inject_noise, cfg.timestep_conditioning
                )
            elif spec.name == "res_x_y":
                block = ResnetBlock(channels, channels // spec.multiplier, cfg.norm_layer, pad)
            else:  # compress_all
                block = DepthToSpaceUp(channels, spec.stride, spec.residual, spec.multiplier, pad)
            channels //= spec.multiplier
            self.up_blocks.append(block)
        self.conv_norm_out = make_norm(cfg.norm_layer, channels)
        self.conv_out = CausalConv3d(channels, cfg.out_channels * cfg.patch_size**2, padding_mode=pad)
        if cfg.timestep_conditioning:
            self.timestep_scale_multiplier = nn.Parameter(torch.tensor(1000.0))
            self.last_time_embedder = TimestepEmbedder(2 * channels)
            self.last_scale_shift_table = nn.Parameter(torch.zeros(2, channels))

    def forward(
        self, z: torch.Tensor, timestep: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """timestep: (B,) float, required exactly when timestep-conditioned. generator: source of the noise
        that `inject_noise` blocks add, required when there are any."""
        x = self.conv_in(z, self.causal)
        if self.timestep_conditioning:
            timestep = timestep * self.timestep_scale_multiplier
        for block in self.up_blocks:
            if isinstance(block, ResStack):
                embedding = block.embed(timestep, x.dtype)
                for res_block in block.res_blocks:
                    x = res_block(x, self.causal, embedding, generator)
            else:
                x = block(x, self.causal)
        x = self.conv_norm_out(x, inplace=True)
        if self.timestep_conditioning:
            embedding = self.last_time_embedder(timestep, x.dtype).view(x.shape[0], 2, -1, 1, 1, 1)
            shift, scale = (self.last_scale_shift_table[None, :, :, None, None, None] + embedding).unbind(dim=1)
            modulate_(x, shift, scale)
        x = self.conv_out(F.silu(x, inplace=True), self.causal)
        return unpatchify(x, self.patch_size)
