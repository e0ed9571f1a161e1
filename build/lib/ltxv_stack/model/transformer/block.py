"""One DiT block: modulated self-attention with RoPE, plain cross-attention to the text, modulated MLP."""
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import Linear, _cast
from .attention import Attention, plain_cpu, rms_norm
from .config import TransformerConfig
from .stg import SkipLayerStrategy

# shift/scale/gate for self-attention, then for the MLP: the rows of `scale_shift_table`.
NUM_MODULATIONS = 6


# On CPU the feed-forward runs over slices of tokens of about this many bytes of hidden (4x wide) activation:
# the slice stays in cache between the two matmuls and the GELU, and is never allocated at full size.
FF_CHUNK_BYTES = 8 << 20
_TANH_GELU_K = 2 * math.sqrt(2 / math.pi)


def _gelu_tanh_cpu_(x: Tensor, scratch: Tensor | None = None) -> Tensor:
    """F.gelu(x, approximate="tanh") in place, as x * sigmoid(2z) = 0.5 x (1 + tanh(z)),
    z = sqrt(2/pi) (x + 0.044715 x^3): the same function up to float rounding, but torch's CPU tanh is
    about three times slower than its sigmoid. `scratch`: x-sized memory to use for the temporary."""
    u = x * x if scratch is None else torch.mul(x, x, out=scratch)
    u.mul_(0.044715 * _TANH_GELU_K).add_(_TANH_GELU_K).mul_(x).sigmoid_()
    return x.mul_(u)


def _fast_gelu(x: Tensor, approximate: str) -> bool:
    return approximate == "tanh" and plain_cpu(x)


def _into(out: Tensor, *inputs: Tensor) -> bool:
    """Whether an elementwise op of `inputs` can write into `out` (one of them) without changing its result:
    same shape as the broadcast result, same dtype as every input (so no type promotion), no autocast."""
    return (
        all(t.dtype == out.dtype for t in inputs)
        and torch.broadcast_shapes(*(t.shape for t in inputs)) == out.shape
        and not torch.is_autocast_enabled(out.device.type)
    )


def _linear_into(x: Tensor, weight: Tensor, bias: Tensor | None, out: Tensor) -> Tensor:
    """F.linear(x, weight, bias) for 2-D x, written into `out`."""
    if bias is None:
        return torch.mm(x, weight.t(), out=out)
    return torch.addmm(bias, x, weight.t(), out=out)


class GELUProjection(nn.Module):
    def __init__(self, dim: int, hidden: int, approximate: str):
        super().__init__()
        self.proj = Linear(dim, hidden)
        self.approximate = approximate

    def activate_(self, y: Tensor, scratch: Tensor | None = None) -> Tensor:
        """GELU of a fresh projection `y`, overwriting it where that gives the same result (use the result)."""
        if _fast_gelu(y, self.approximate):
            return _gelu_tanh_cpu_(y, scratch)
        if torch.is_autocast_enabled(y.device.type):
            return F.gelu(y, approximate=self.approximate)
        return torch.ops.aten.gelu_(y, approximate=self.approximate)

    def forward(self, x: Tensor) -> Tensor:
        # In place on the fresh projection: the widest activation of the block is not allocated twice.
        return self.activate_(self.proj(x))


class FeedForward(nn.Module):
    def __init__(self, dim: int, approximate: str, mult: int = 4):
        super().__init__()
        # Index 1 stands where the official model keeps a dropout, so the keys are `net.0` and `net.2`.
        self.net = nn.Sequential(GELUProjection(dim, mult * dim, approximate), nn.Identity(), Linear(mult * dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        up, down = self.net[0], self.net[2]
        if not plain_cpu(x):
            return self.net(x)
        # CPU: slices of tokens through both matmuls and the GELU, reusing one hidden buffer (and one scratch
        # buffer for the GELU): it stays in cache, and no fresh (page-faulting) memory is taken per slice.
        rows, width = x.numel() // x.shape[-1], up.proj.out_features
        step = max(1, FF_CHUNK_BYTES // (width * x.element_size()))
        step = -(-rows // -(-rows // step))  # equal slices
        flat = x.reshape(rows, x.shape[-1])
        out = x.new_empty(rows, down.out_features)
        w1, b1 = up.proj.dense_weight(x), _cast(up.proj.bias, x)
        w2, b2 = down.dense_weight(x), _cast(down.bias, x)
        hidden = x.new_empty(step, width)
        scratch = x.new_empty(step, width) if _fast_gelu(x, up.approximate) else None
        for start in range(0, rows, step):
            n = min(step, rows - start)
            rows_in = flat[start : start + n]
            h = _linear_into(rows_in, w1, b1, hidden[:n])
            if up.proj.lora is not None:
                h.add_(up.proj.lora(rows_in))
            up.activate_(h, None if scratch is None else scratch[:n])
            o = _linear_into(h, w2, b2, out[start : start + n])
            if down.lora is not None:
                o.add_(down.lora(h))
        return out.view(*x.shape[:-1], down.out_features)


def normalize(x: Tensor, kind: str, eps: float) -> Tensor:
    """The non-affine pre-norm (a new tensor)."""
    if kind == "rms_norm":
        return rms_norm(x, eps)
    return F.layer_norm(x, x.shape[-1:], eps=eps)


def norm_modulate(x: Tensor, kind: str, eps: float, shift: Tensor, scale: Tensor) -> Tensor:
    """shift + normalize(x) * (1 + scale), computed in the normalised tensor's memory."""
    h = normalize(x, kind, eps)
    scale = 1 + scale
    return torch.addcmul(shift, h, scale, out=h) if _into(h, shift, h, scale) else torch.addcmul(shift, h, scale)


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
        rope,
        skip: tuple[SkipLayerStrategy, Tensor] | None = None,
    ) -> Tensor:
        """x (B, N, D); modulation (B, 1 or N, 6*D) from the timestep; `skip` as in
        `Attention.self_attention`, TransformerBlock also handled here."""
        b, t, _ = modulation.shape
        values = self.scale_shift_table.to(x.dtype) + modulation.view(b, t, NUM_MODULATIONS, -1)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = values.unbind(dim=2)

        h = norm_modulate(x, self.norm_kind, self.norm_eps, shift_msa, scale_msa)
        attn_skip = skip if skip is not None and skip[0] is not SkipLayerStrategy.TransformerBlock else None
        attn = self.attn1.self_attention(h, rope, attn_skip)
        del h
        # The residual sum goes into the fresh attention output: `out` is this block's own tensor, and the
        # residual updates below write into it.
        out = torch.addcmul(x, gate_msa, attn, out=attn) if _into(attn, x, gate_msa, attn) else torch.addcmul(x, gate_msa, attn)
        del attn
        cross = self.attn2.cross_attention(out, context, context_bias)
        out = out.add_(cross) if _into(out, out, cross) else out + cross
        del cross
        h = self.ff(norm_modulate(out, self.norm_kind, self.norm_eps, shift_mlp, scale_mlp))
        out = torch.addcmul(out, gate_mlp, h, out=out) if _into(out, out, gate_mlp, h) else torch.addcmul(out, gate_mlp, h)
        del h

        if skip is not None and skip[0] is SkipLayerStrategy.TransformerBlock:
            keep = skip[1]
            out = out * keep + x * (1.0 - keep)
        return out
