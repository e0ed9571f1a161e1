"""Multi-head attention with query/key RMS normalisation over the full width (all heads together)."""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import Linear
from .rope import RopeTables, apply_rope_
from .stg import SkipLayerStrategy

QK_NORM_EPS = 1e-5


def plain_cpu(x: Tensor) -> bool:
    """Full-precision eager CPU arithmetic outside autocast: where the CPU-specific fast paths apply. Elsewhere
    (CUDA's fused kernels, reduced precision, autocast's dtype rules, torch.compile) the plain ops are used as is."""
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()  # a compiler fuses the plain ops itself
    )


def _fast_rms(x: Tensor) -> bool:
    # On CPU, F.rms_norm runs as five separate passes (pow, mean, add, rsqrt, mul) with a temporary for each;
    # one reduction plus scaling in place is several times faster.
    return plain_cpu(x)


def rms_scale(x: Tensor, eps: float) -> Tensor:
    """1 / sqrt(mean(x^2, last dim) + eps), shape (..., 1)."""
    ms = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return ms.square_().div_(x.shape[-1]).add_(eps).rsqrt_()


def rms_norm(x: Tensor, eps: float, weight: Tensor | None = None, inplace: bool = False) -> Tensor:
    """F.rms_norm over the last dim; with `inplace` x may be overwritten (use the result)."""
    if not _fast_rms(x):
        return F.rms_norm(x, x.shape[-1:], None if weight is None else weight.to(x.dtype), eps)
    scale = rms_scale(x, eps)
    out = x.mul_(scale) if inplace else x * scale
    return out if weight is None else out.mul_(weight.to(x.dtype))


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor, inplace: bool = False) -> Tensor:
        return rms_norm(x, self.eps, self.weight, inplace)


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
        rope: RopeTables,
        skip: tuple[SkipLayerStrategy, Tensor] | None = None,
    ) -> Tensor:
        """`skip`: (strategy, mask (B, 1, 1)), mask 0 where the row is perturbed; it blends rather than
        selects, as the official model does, so fractional masks interpolate."""
        # q and k are fresh projections: normalised and rotated in place.
        q = apply_rope_(self.q_norm(self.to_q(x), inplace=True), rope)
        k = apply_rope_(self.k_norm(self.to_k(x), inplace=True), rope)
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
        q = self.q_norm(self.to_q(x), inplace=True)
        k = self.k_norm(self.to_k(context), inplace=True)
        return self.to_out[0](self._attend(q, k, self.to_v(context), bias))
