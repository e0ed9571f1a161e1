"""Video (B, C, 1 + 8k, H, W) -> latent means (B, latent_channels, 1 + k, H/32, W/32) for the released layouts."""
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .blocks import ResnetBlock, ResStack, SpaceToDepthDown
from .config import VideoVAEConfig
from .convs import CausalConv3d
from .norms import make_norm


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    # Folds width before height into channels: the official channel order.
    return rearrange(x, "b c f (h q) (w r) -> b (c r q) f h w", q=patch_size, r=patch_size)


class Encoder(nn.Module):
    """Always causal. Returns only the latent means: encode takes the mode of the latent distribution, so
    the log-variance channels that `conv_out` also computes are dropped."""

    def __init__(self, cfg: VideoVAEConfig):
        super().__init__()
        self.patch_size = cfg.patch_size
        self.latent_channels = cfg.latent_channels
        pad = cfg.spatial_padding_mode
        channels = cfg.encoder_base_channels
        self.conv_in = CausalConv3d(cfg.in_channels * cfg.patch_size**2, channels, padding_mode=pad)
        self.down_blocks = nn.ModuleList()
        for spec in cfg.encoder_blocks:
            if spec.name == "res_x":
                block = ResStack(channels, spec.num_layers, cfg.norm_layer, pad)
            elif spec.name == "res_x_y":
                block = ResnetBlock(channels, channels * spec.multiplier, cfg.norm_layer, pad)
            elif spec.name == "compress_all":
                block = CausalConv3d(channels, channels, stride=spec.stride, padding_mode=pad)
            else:  # compress_{all,space,time}_res
                block = SpaceToDepthDown(channels, channels * spec.multiplier, spec.stride, pad)
            channels *= spec.multiplier
            self.down_blocks.append(block)
        self.conv_norm_out = make_norm(cfg.norm_layer, channels)
        self.conv_out = CausalConv3d(channels, cfg.encoder_out_channels, padding_mode=pad)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(patchify(video, self.patch_size), causal=True)
        for block in self.down_blocks:
            for step in block.res_blocks if isinstance(block, ResStack) else (block,):
                x = step(x, causal=True)
        x = F.silu(self.conv_norm_out(x, inplace=True), inplace=True)
        return self.conv_out(x, causal=True)[:, : self.latent_channels]
