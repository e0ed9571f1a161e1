"""One DiT block: modulated self-attention with RoPE, plain cross-attention to the text, modulated MLP."""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import Linear
from .attention import Attention
from .config import TransformerConfig
from .stg import SkipLayerStrategy

# shift/scale/gate for self-attention, then for the MLP: the rows of `scale_shift_table`.
NUM_MODULATIONS = 6


class GELUProjection(nn.Module):
    def __init__(self, dim: int, hidden: int, approximate: str):
        super().__init__()
        self.proj = Linear(dim, hidden)
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(self.proj(x), approximate=self.approximate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, approximate: str, mult: int = 4):
        super().__init__()
        # Index 1 stands where the official model keeps a dropout, so the keys are `net.0` and `net.2`.
        self.net = nn.Sequential(GELUProjection(dim, mult * dim, approximate), nn.Identity(), Linear(mult * dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def normalize(x: Tensor, kind: str, eps: float) -> Tensor:
    """The non-affine pre-norm."""
    if kind == "rms_norm":
        return F.rms_norm(x, x.shape[-1:], eps=eps)
    return F.layer_norm(x, x.shape[-1:], eps=eps)


class TransformerBlock(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        dim = cfg.inner_dim
        self.norm_kind = cfg.standardization_norm
        self.norm_eps = cfg.norm_eps
        self.attn1 = Attention(dim, dim, cfg.num_attention_heads, cfg.attention_head_dim, cfg.attention_bias)
        self.attn2 = Attention(
            dim, cfg.cross_attention_dim, cfg.num_attention_heads, cfg.attention_head_dim, cfg.attention_bias
        )
        self.ff = FeedForward(dim, cfg.gelu_approximate)
        self.scale_shift_table = nn.Parameter(torch.zeros(NUM_MODULATIONS, dim))

    def forward(
        self,
        x: Tensor,
        modulation: Tensor,
        context: Tensor,
        context_bias: Tensor | None,
        rope: tuple[Tensor, Tensor],
        skip: tuple[SkipLayerStrategy, Tensor] | None = None,
    ) -> Tensor:
        """x (B, N, D); modulation (B, 1 or N, 6*D) from the timestep; `skip` as in
        `Attention.self_attention`, TransformerBlock also handled here."""
        b, t, _ = modulation.shape
        values = self.scale_shift_table.to(x.dtype) + modulation.view(b, t, NUM_MODULATIONS, -1)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = values.unbind(dim=2)

        h = torch.addcmul(shift_msa, normalize(x, self.norm_kind, self.norm_eps), 1 + scale_msa)
        attn_skip = skip if skip is not None and skip[0] is not SkipLayerStrategy.TransformerBlock else None
        out = torch.addcmul(x, gate_msa, self.attn1.self_attention(h, rope, attn_skip))
        out = out + self.attn2.cross_attention(out, context, context_bias)
        h = torch.addcmul(shift_mlp, normalize(out, self.norm_kind, self.norm_eps), 1 + scale_mlp)
        out = torch.addcmul(out, gate_mlp, self.ff(h))

        if skip is not None and skip[0] is SkipLayerStrategy.TransformerBlock:
            keep = skip[1]
            out = out * keep + x * (1.0 - keep)
        return out
