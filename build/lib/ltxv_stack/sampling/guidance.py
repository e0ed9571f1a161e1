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

# Official `stg_mode` names -> SkipLayerStrategy member names.
_STRATEGIES = {"attention_values": "AttentionValues", "attention_skip": "AttentionSkip", "residual": "Residual",
               "transformer_block": "TransformerBlock"}


def stg_strategy(mode: str):
    """The transformer's SkipLayerStrategy for an official `stg_mode` name (PipelineConfig has checked it)."""
    from ..model.transformer.stg import SkipLayerStrategy

    return SkipLayerStrategy[_STRATEGIES[mode]]


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


def _per_step(value: Any, mapping: list[int] | None, n_steps: int) -> list:
    """A scalar for every step, or a list indexed per step through the guidance-timestep mapping."""
    return [value[i] for i in mapping] if _is_list(value) else [value] * n_steps


def guidance_schedule(
    timesteps: Tensor,
    guidance_scale: float | Sequence[float] = 1.0,
    stg_scale: float | Sequence[float] = 0.0,
    rescaling_scale: float | Sequence[float] = 1.0,
    skip_block_list: Sequence[int] | Sequence[Sequence[int]] | None = None,
    guidance_timesteps: Sequence[float] | None = None,
    cfg_star_rescale: bool = False,
) -> list[GuidanceStep]:
    """One GuidanceStep per timestep, from a pass's settings as `PipelineConfig.from_dict` checked them. Scalars
    hold for every step; lists are indexed per step through `guidance_timesteps` (step t uses the first entry k
    with guidance_timesteps[k] <= t). `skip_block_list` is either one list of blocks for every step or a list of
    lists indexed like the scales."""
    n = len(timesteps)
    mapping = guidance_indices(timesteps, guidance_timesteps) if guidance_timesteps else None
    cfg = _per_step(guidance_scale, mapping, n)
    stg = _per_step(stg_scale, mapping, n)
    rescale = _per_step(rescaling_scale, mapping, n)
    if not skip_block_list:
        blocks = [tuple(skip_block_list) if skip_block_list is not None else None] * n
    elif _is_list(skip_block_list[0]):
        blocks = _per_step([tuple(b) for b in skip_block_list], mapping, n)
    else:
        blocks = [tuple(skip_block_list)] * n
    return [GuidanceStep(float(cfg[i]), float(stg[i]), float(rescale[i]), blocks[i], bool(cfg_star_rescale))
            for i in range(n)]


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
