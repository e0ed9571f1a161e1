"""Layers whose stored weight dtype may differ from the compute dtype.

fp8 checkpoints keep their weights as float8 in memory; torch has no general fp8 matmul, so each
layer upcasts its own weight just for the duration of its forward. Peak memory then grows by one
layer's weights, not the model's.
"""
import torch
import torch.nn.functional as F
from torch import nn


def _cast(t: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    if t is None or (t.dtype == like.dtype and t.device == like.device):
        return t
    return t.to(device=like.device, dtype=like.dtype)


class Linear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, _cast(self.weight, x), _cast(self.bias, x))
