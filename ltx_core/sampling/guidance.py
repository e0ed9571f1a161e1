"""Guidance: classifier-free guidance (CFG, optionally CFG-star), spatio-temporal guidance (STG) and rescaling,
with values that may change per step (`guidance_timesteps`).

A step evaluates the model on up to three conditions, stacked along the batch in this order:
`[negative, positive, positive with perturbed blocks]` (each `batch` rows); a condition is evaluated only when
the step needs it: the negative one when cfg > 1, the perturbed one when stg > 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor

NEGATIVE, POSITIVE, PERTURBED = "negative", "positive", "perturbed"

# yaml `stg_mode` spellings -> SkipLayerStrategy member names (official names and their short aliases).
STG_MODES = {
    "attention_values": "AttentionValues",
    "stg_av": "AttentionValues",
    "attention_skip": "AttentionSkip",
    "stg_as": "AttentionSkip",
    "residual": "Residual",
    "stg_r": "Residual",
    "transformer_block": "TransformerBlock",
    "stg_t": "TransformerBlock",
}


def stg_strategy(mode: str):
    """The transformer's SkipLayerStrategy for a yaml `stg_mode` value."""
    from ..model.transformer.stg import SkipLayerStrategy

    key = str(mode).strip().lower()
    if key not in STG_MODES:
        raise ValueError(f"stg_mode={mode!r} is not supported; allowed: {sorted(STG_MODES)}")
    return SkipLayerStrategy[STG_MODES[key]]


@dataclass(frozen=True)
class GuidanceStep:
    """The guidance settings of one denoising step."""

    cfg: float = 1.0
    stg: float = 0.0
    rescale: float = 1.0
    skip_blocks: tuple[int, ...] | None = None
    cfg_star: bool = False

    @property
    def uses_cfg(self) -> bool:
        return self.cfg > 1.0

    @property
    def uses_stg(self) -> bool:
        return self.stg > 0

    @property
    def conditions(self) -> tuple[str, ...]:
        """Which conditions the model is evaluated on, in batch order."""
        rows = []
        if self.uses_cfg:
            rows.append(NEGATIVE)
        rows.append(POSITIVE)
        if self.uses_stg:
            rows.append(PERTURBED)
        return tuple(rows)


def _is_list(v: Any) -> bool:
    return isinstance(v, (list, tuple))


def guidance_indices(timesteps: Tensor, guidance_timesteps: Sequence[float]) -> list[int]:
    """For each timestep t, the first k with guidance_timesteps[k] <= t (compared in float32, as the timesteps
    are), or the last index when there is none."""
    gts = torch.tensor([float(v) for v in guidance_timesteps], dtype=torch.float32)
    out = []
    for t in timesteps.to(torch.float32).cpu():
        hits = torch.nonzero(gts <= t).flatten()
        out.append(int(hits[0]) if hits.numel() else len(gts) - 1)
    return out


def _per_step(name: str, value: Any, n_steps: int, mapping: list[int] | None, n_gt: int, cast) -> list:
    if not _is_list(value):
        return [cast(value)] * n_steps
    if mapping is None:
        raise ValueError(f"{name} is a list ({list(value)}), which needs guidance_timesteps to say which value each step uses")
    if len(value) != n_gt:
        raise ValueError(f"{name} has {len(value)} values but guidance_timesteps has {n_gt}: they must match one to one")
    return [cast(value[i]) for i in mapping]


def _blocks(v: Any) -> tuple[int, ...]:
    if not _is_list(v):
        raise ValueError(f"skip_block_list entries must be lists of block indices, got {v!r}")
    out = []
    for b in v:
        if isinstance(b, bool) or not isinstance(b, int) and not (isinstance(b, float) and b.is_integer()):
            raise ValueError(f"skip_block_list: block indices must be integers, got {b!r}")
        if int(b) < 0:
            raise ValueError(f"skip_block_list: block indices must be >= 0, got {b}")
        out.append(int(b))
    return tuple(out)


def guidance_schedule(
    timesteps: Tensor,
    guidance_scale: float | Sequence[float] = 1.0,
    stg_scale: float | Sequence[float] = 0.0,
    rescaling_scale: float | Sequence[float] = 1.0,
    skip_block_list: Sequence[int] | Sequence[Sequence[int]] | None = None,
    guidance_timesteps: Sequence[float] | None = None,
    cfg_star_rescale: bool = False,
) -> list[GuidanceStep]:
    """One GuidanceStep per timestep. Scalars hold for every step; lists are indexed per step through
    `guidance_timesteps` (step t uses the first entry k with guidance_timesteps[k] <= t). `skip_block_list` is
    either one list of blocks for every step or a list of lists indexed like the scales."""
    n = len(timesteps)
    mapping = None
    n_gt = 0
    if guidance_timesteps is not None and len(guidance_timesteps) > 0:
        n_gt = len(guidance_timesteps)
        mapping = guidance_indices(timesteps, guidance_timesteps)
    cfg = _per_step("guidance_scale", guidance_scale, n, mapping, n_gt, float)
    stg = _per_step("stg_scale", stg_scale, n, mapping, n_gt, float)
    rescale = _per_step("rescaling_scale", rescaling_scale, n, mapping, n_gt, float)
    if skip_block_list is None:
        blocks = [None] * n
    elif not _is_list(skip_block_list):
        raise ValueError(f"skip_block_list must be a list of block indices or a list of such lists, got {skip_block_list!r}")
    elif len(skip_block_list) == 0 or not _is_list(skip_block_list[0]):
        blocks = [_blocks(skip_block_list)] * n
    else:
        blocks = _per_step("skip_block_list", [_blocks(b) for b in skip_block_list], n, mapping, n_gt, tuple)
    return [GuidanceStep(cfg[i], stg[i], rescale[i], blocks[i], bool(cfg_star_rescale)) for i in range(n)]


def skip_layer_mask(step: GuidanceStep, num_layers: int, batch: int, device=None) -> Tensor | None:
    """(num_layers, rows) with 0 where a block is perturbed for a batch row (the rows of the perturbed
    condition), else 1; None when the step perturbs nothing."""
    if not step.uses_stg or not step.skip_blocks:
        return None
    bad = [b for b in step.skip_blocks if b >= num_layers]
    if bad:
        raise ValueError(f"skip_block_list names block(s) {bad} but the transformer has {num_layers} blocks (0..{num_layers - 1})")
    conds = step.conditions
    mask = torch.ones(num_layers, batch * len(conds), device=device)
    start = conds.index(PERTURBED) * batch
    for b in step.skip_blocks:
        mask[b, start: start + batch] = 0
    return mask


def combine(pred: Tensor, step: GuidanceStep, batch: int) -> Tensor:
    """Turn the model outputs for `step.conditions` (stacked along dim 0) into one velocity per sample."""
    chunks = pred.chunk(len(step.conditions))
    if step.uses_stg:
        positive, perturbed = chunks[-2:]
    if step.uses_cfg:
        negative, positive = chunks[:2]
        if step.cfg_star:
            # Project the positive prediction onto the negative one: negative <- (<p, n> / |n|^2) n.
            p = positive.reshape(batch, -1)
            q = negative.reshape(batch, -1)
            alpha = torch.sum(p * q, dim=1, keepdim=True) / (torch.sum(q ** 2, dim=1, keepdim=True) + 1e-8)
            negative = alpha.view(batch, *([1] * (negative.dim() - 1))) * negative
        out = negative + step.cfg * (positive - negative)
    elif step.uses_stg:
        out = positive
    else:
        out = chunks[0]
    if step.uses_stg:
        out = out + step.stg * (positive - perturbed)
        if step.rescale != 1.0:
            # Bring the guided velocity's spread back towards the positive prediction's, per sample.
            ratio = positive.reshape(batch, -1).std(dim=1, keepdim=True) / out.reshape(batch, -1).std(dim=1, keepdim=True)
            factor = step.rescale * ratio + (1 - step.rescale)
            out = out * factor.view(batch, *([1] * (out.dim() - 1)))
    return out
