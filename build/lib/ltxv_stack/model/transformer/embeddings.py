"""Timestep and caption embeddings feeding the blocks' adaptive norms and cross-attention."""
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import Linear

TIMESTEP_SINUSOID_CHANNELS = 256


def timestep_sinusoids(timesteps: Tensor, channels: int = TIMESTEP_SINUSOID_CHANNELS) -> Tensor:
    """(n,) -> (n, channels) float32: [cos | sin] of timestep times frequencies 1 .. 1/10000."""
    half = channels // 2
    exponents = -math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    angles = timesteps.float()[:, None] * torch.exp(exponents)[None, :]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class TwoLayerMLP(nn.Module):
    def __init__(self, in_features: int, hidden: int, activation):
        super().__init__()
        self.linear_1 = Linear(in_features, hidden)
        self.linear_2 = Linear(hidden, hidden)
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        return self.linear_2(self.activation(self.linear_1(x)))


def _gelu_tanh(x: Tensor) -> Tensor:
    return F.gelu(x, approximate="tanh")


class CaptionProjection(TwoLayerMLP):
    """Text-encoder features -> transformer width."""

    def __init__(self, caption_channels: int, dim: int):
        super().__init__(caption_channels, dim, _gelu_tanh)


class TimestepEmbedding(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.timestep_embedder = TwoLayerMLP(TIMESTEP_SINUSOID_CHANNELS, dim, F.silu)

    def forward(self, timesteps: Tensor, dtype: torch.dtype) -> Tensor:
        return self.timestep_embedder(timestep_sinusoids(timesteps).to(dtype))


class AdaLayerNormSingle(nn.Module):
    """adaLN-single (PixArt-alpha): one timestep embedding, projected once to every block's
    modulation values; each block then adds its own learned table."""

    def __init__(self, dim: int, num_values: int):
        super().__init__()
        self.emb = TimestepEmbedding(dim)
        self.linear = Linear(dim, num_values * dim)

    def forward(self, timesteps: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """(n,) -> (modulation (n, num_values*dim), embedding (n, dim)); the final norm uses the embedding."""
        embedded = self.emb(timesteps, dtype)
        return self.linear(F.silu(embedded)), embedded
