"""Multi-head attention with query/key RMS normalisation over the full width (all heads together)."""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import Linear
from .rope import apply_rope
from .stg import SkipLayerStrategy

QK_NORM_EPS = 1e-5


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, self.weight.shape, self.weight.to(x.dtype), self.eps)


class Attention(nn.Module):
    def __init__(self, dim: int, context_dim: int, heads: int, head_dim: int, bias: bool):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = Linear(dim, inner, bias=bias)
        self.to_k = Linear(context_dim, inner, bias=bias)
        self.to_v = Linear(context_dim, inner, bias=bias)
        self.q_norm = RMSNorm(inner, QK_NORM_EPS)
        self.k_norm = RMSNorm(inner, QK_NORM_EPS)
        # A list so the checkpoint's key is `to_out.0` (the official model keeps a dropout at index 1).
        self.to_out = nn.ModuleList([Linear(inner, dim)])

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None) -> Tensor:
        b = q.shape[0]
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return out.transpose(1, 2).reshape(b, -1, q.shape[1] * q.shape[-1])

    def self_attention(
        self,
        x: Tensor,
        rope: tuple[Tensor, Tensor],
        skip: tuple[SkipLayerStrategy, Tensor] | None = None,
    ) -> Tensor:
        """`skip`: (strategy, mask (B, 1, 1)), mask 0 where the row is perturbed; it blends rather than
        selects, as the official model does, so fractional masks interpolate."""
        q = apply_rope(self.q_norm(self.to_q(x)), *rope)
        k = apply_rope(self.k_norm(self.to_k(x)), *rope)
        v = self.to_v(x)
        out = self._attend(q, k, v, None)
        if skip is not None:
            strategy, keep = skip
            if strategy is SkipLayerStrategy.AttentionSkip:
                out = out * keep + x * (1.0 - keep)
            elif strategy is SkipLayerStrategy.AttentionValues:
                out = out * keep + v * (1.0 - keep)
        return self.to_out[0](out)

    def cross_attention(self, x: Tensor, context: Tensor, bias: Tensor | None) -> Tensor:
        """`bias`: additive (B, 1, 1, L), broadcast over heads and queries."""
        q = self.q_norm(self.to_q(x))
        k = self.k_norm(self.to_k(context))
        return self.to_out[0](self._attend(q, k, self.to_v(context), bias))
