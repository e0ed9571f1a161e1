"""LoRAs applied at compute time: each patched linear layer adds `x @ down^T * scale @ up^T` to its output.

Why not merge `W += scale * up @ down` into the weights: fp8 and quantized weights would have to be re-quantized
(losing the precision the LoRA adds), merging in place would need the original weights kept (a second copy) or
subtracted back (drift in bf16), and block streaming would have to merge again every step. The low-rank path costs
two thin matmuls per layer (rank r against a width of 2048-4096), measured in the benchmark's `lora` section.

Several LoRAs on one layer are one pair of matmuls: their down and up matrices are concatenated along the rank and
the strengths sit in a per-rank scale vector, so stacking costs no more calls than one LoRA. Whole-tensor patches
(`diff`, `diff_b`) of a layer are added the same way (x @ diff^T); those of other parameters (norm weights,
modulation tables, all small) are added to the parameter for the run and the original put back afterwards.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..model.ops import Linear, _cast
from .file import LayerPatch, Lora

# The stacked rank of a layer is padded with zeros to a multiple of this: a compiled model sees the LoRA matrices'
# shapes as fixed, so LoRAs of other ranks (or several stacked) reuse its graph instead of recompiling.
RANK_BUCKET = 32


@dataclass(frozen=True)
class LoraUse:
    """A LoRA with its strength (any real number; negative strengths subtract the effect)."""

    lora: Lora
    strength: float = 1.0

    def __post_init__(self):
        s = self.strength
        if isinstance(s, bool) or not isinstance(s, (int, float)) or s != s or abs(s) == float("inf"):
            raise ValueError(f"{self.lora.name}: LoRA strength must be a finite number, got {s!r}")


class LoraDelta(nn.Module):
    """The update every active LoRA makes to one linear layer's output."""

    def __init__(self, down: Tensor | None, up: Tensor | None, scale: Tensor | None, diff: Tensor | None,
                 diff_b: Tensor | None):
        super().__init__()
        # `scale` is a tensor, not Python floats: new strengths are new data, not a new graph for a compiled model.
        self.down, self.up, self.scale, self.diff, self.diff_b = down, up, scale, diff, diff_b

    def forward(self, x: Tensor) -> Tensor:
        out = None
        if self.down is not None:
            out = F.linear(F.linear(x, _cast(self.down, x)) * _cast(self.scale, x), _cast(self.up, x))
        if self.diff is not None or self.diff_b is not None:
            whole = _whole(x, self.diff, self.diff_b)
            out = whole if out is None else out + whole
        return out


def _whole(x: Tensor, diff: Tensor | None, diff_b: Tensor | None) -> Tensor:
    if diff is None:
        return _cast(diff_b, x).expand(*x.shape[:-1], -1)
    return F.linear(x, _cast(diff, x), _cast(diff_b, x))


def _padded_rank(rank: int) -> int:
    return -(-rank // RANK_BUCKET) * RANK_BUCKET


def _stack(uses: list[tuple[LayerPatch, float]], device, dtype) -> LoraDelta:
    """One LoraDelta for one layer from (patch, strength) pairs; sums are taken in fp32."""
    pairs = [(p, s) for p, s in uses if p.down is not None]
    down = up = scale = None
    if pairs:
        pad = _padded_rank(sum(p.rank for p, _ in pairs)) - sum(p.rank for p, _ in pairs)
        out_f, in_f = pairs[0][0].up.shape[0], pairs[0][0].down.shape[1]
        down = torch.cat([*(p.down.to(dtype) for p, _ in pairs), torch.zeros(pad, in_f, dtype=dtype)])
        up = torch.cat([*(p.up.to(dtype) for p, _ in pairs), torch.zeros(out_f, pad, dtype=dtype)], dim=1)
        scale = torch.cat([*(torch.full((p.rank,), s * p.scale) for p, s in pairs), torch.zeros(pad)])
        down, up, scale = down.to(device), up.to(device), scale.to(device)
    return LoraDelta(down, up, scale, _sum(uses, "diff", device, dtype), _sum(uses, "diff_b", device, dtype))


def _sum(uses, role: str, device, dtype) -> Tensor | None:
    parts = [s * getattr(p, role).float() for p, s in uses if getattr(p, role) is not None]
    return None if not parts else torch.stack(parts).sum(0).to(device=device, dtype=dtype)


def _by_target(uses: Sequence[LoraUse]) -> dict[str, list[tuple[LayerPatch, float]]]:
    targets: dict[str, list[tuple[LayerPatch, float]]] = {}
    for use in uses:
        for target, patch in use.lora.patches.items():
            targets.setdefault(target, []).append((patch, float(use.strength)))
    return targets


@contextmanager
def applied_loras(transformer: nn.Module, uses: Sequence[LoraUse]):
    """Run `transformer` with the LoRAs applied; it is exactly as before afterwards. The low-rank matrices go
    where the model computes, in its compute dtype (fp8 and quantized weights stay as they are): with blocks
    streaming from the CPU they stay resident, a fraction of a block's size, instead of travelling every step."""
    if not uses:
        yield transformer
        return
    dtype, device = transformer.compute_dtype, transformer.compute_device
    modules = dict(transformer.named_modules())
    params = dict(transformer.named_parameters())
    patched: list[Linear] = []
    saved: list[tuple[nn.Parameter, Tensor]] = []
    try:
        for target, patches in _by_target(uses).items():
            module = modules.get(target)
            if isinstance(module, Linear):
                object.__setattr__(module, "lora", _stack(patches, device, dtype))
                patched.append(module)
                continue
            param = params[target] if module is None else module.weight
            saved.append((param, param.data))
            param.data = (param.data.float() + _sum(patches, "diff", param.device, torch.float32)).to(param.dtype)
        yield transformer
    finally:
        for module in patched:
            module.__dict__.pop("lora", None)
        for param, original in saved:
            param.data = original


def lora_bytes(uses: Sequence[LoraUse], dtype: torch.dtype) -> int:
    """Device memory the applied LoRAs take in `dtype` (their stacked, padded low-rank matrices with their fp32
    scales, and the whole-tensor patches)."""
    size = torch.empty((), dtype=dtype).element_size()
    total = 0
    for patches in _by_target(uses).values():
        pairs = [p for p, _ in patches if p.down is not None]
        if pairs:
            rank = _padded_rank(sum(p.rank for p in pairs))
            total += rank * (pairs[0].down.shape[1] + pairs[0].up.shape[0]) * size + 4 * rank
        for role in ("diff", "diff_b"):  # each summed into one tensor per layer
            present = [getattr(p, role) for p, _ in patches if getattr(p, role) is not None]
            total += present[0].numel() * size if present else 0
    return total
