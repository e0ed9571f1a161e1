"""Guidance: per-step schedules, batch layout, skip-layer masks and the CFG / CFG-star / STG / rescale maths."""
import pytest
import torch

from ltx_core.model.transformer import SkipLayerStrategy
from ltx_core.sampling.guidance import (
    NEGATIVE,
    PERTURBED,
    POSITIVE,
    GuidanceStep,
    combine,
    guidance_indices,
    guidance_schedule,
    skip_layer_mask,
    stg_strategy,
)
from ltx_core.sampling.schedule import SchedulerConfig, make_timesteps

# The 13B dev first pass (configs/ltxv-13b-0.9.8-dev.yaml).
DEV_GT = [1.0, 0.996, 0.9933, 0.9850, 0.9767, 0.9008, 0.6180]
DEV_CFG = [1, 1, 6, 8, 6, 1, 1]
DEV_STG = [0, 0, 4, 4, 4, 2, 1]
DEV_RESCALE = [1, 1, 0.5, 0.5, 1, 1, 1]
DEV_BLOCKS = [[], [11, 25, 35, 39], [22, 35, 39], [28], [28], [28], [28]]


def lq30_first_pass():
    return make_timesteps(SchedulerConfig(sampler="LinearQuadratic"), 30, None, None, 0, 3)


def test_dev_schedule_mapping():
    ts = lq30_first_pass()
    idx = guidance_indices(ts, DEV_GT)
    # First k with guidance_timesteps[k] <= t, compared in float32 (LQ30[9] == 0.985 hits entry 3 exactly).
    expected = []
    gts = torch.tensor(DEV_GT, dtype=torch.float32)
    for t in ts:
        hits = [k for k in range(len(DEV_GT)) if bool(gts[k] <= t)]
        expected.append(hits[0] if hits else len(DEV_GT) - 1)
    assert idx == expected
    assert idx[0] == 0 and idx[9] == 3 and idx[-1] == 6
    steps = guidance_schedule(ts, DEV_CFG, DEV_STG, DEV_RESCALE, DEV_BLOCKS, DEV_GT, cfg_star_rescale=True)
    assert len(steps) == 27
    assert steps[0] == GuidanceStep(1.0, 0.0, 1.0, (), True)
    assert steps[0].conditions == (POSITIVE,)
    s = steps[idx.index(2)]
    assert (s.cfg, s.stg, s.rescale, s.skip_blocks) == (6.0, 4.0, 0.5, (22, 35, 39))
    assert s.conditions == (NEGATIVE, POSITIVE, PERTURBED)
    assert steps[-1].conditions == (POSITIVE, PERTURBED)


def test_scalar_and_flat_settings():
    ts = torch.tensor([1.0, 0.5])
    steps = guidance_schedule(ts, 3, 1, 0.7, [19])
    assert all(s == GuidanceStep(3.0, 1.0, 0.7, (19,), False) for s in steps)
    steps = guidance_schedule(ts, [1], [1], [1], [27], [1.0])  # the dev second pass
    assert all(s.conditions == (POSITIVE, PERTURBED) and s.skip_blocks == (27,) for s in steps)
    assert guidance_schedule(ts, 1, 0, 1, None)[0].conditions == (POSITIVE,)


def test_schedule_errors():
    # Guidance settings are checked once, where a config is read.
    from ltx_core.pipelines import PipelineConfig

    with pytest.raises(ValueError, match="guidance_timesteps"):
        PipelineConfig.from_dict({"guidance_scale": [3, 1]})
    with pytest.raises(ValueError, match="guidance_timesteps has 2"):
        PipelineConfig.from_dict({"guidance_scale": [3, 1, 2], "guidance_timesteps": [1.0, 0.5]})
    with pytest.raises(ValueError, match=">= 0"):
        PipelineConfig.from_dict({"skip_block_list": [-1]})
    step = GuidanceStep(3, 1, 1, (42,))
    with pytest.raises(ValueError, match="42"):
        skip_layer_mask(step, 28, 1)
    # Out-of-range blocks are harmless while STG is off (the 2B distilled config lists block 42).
    assert skip_layer_mask(GuidanceStep(1, 0, 1, (42,)), 28, 1) is None


def test_skip_layer_mask_layout():
    m = skip_layer_mask(GuidanceStep(3, 1, 1, (0, 2)), 4, 2)
    assert m.shape == (4, 6)
    expected = torch.ones(4, 6)
    expected[[0, 2], 4:] = 0  # the perturbed condition is the last two rows
    assert torch.equal(m, expected)
    m = skip_layer_mask(GuidanceStep(1, 1, 1, (1,)), 3, 1)  # [positive, perturbed]
    assert m.tolist() == [[1, 1], [1, 0], [1, 1]]
    assert skip_layer_mask(GuidanceStep(3, 1, 1, ()), 3, 1) is None


def _preds(batch=2, n=5, c=4, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, n, c, generator=g) for _ in range(k)]


def test_cfg_only():
    neg, pos = _preds(k=2)
    out = combine(torch.cat([neg, pos]), GuidanceStep(3.0, 0.0, 0.7), 2)
    assert torch.allclose(out, neg + 3.0 * (pos - neg))


def test_cfg_star_is_per_sample():
    neg, pos = _preds(k=2)
    out = combine(torch.cat([neg, pos]), GuidanceStep(4.0, 0.0, 1.0, None, True), 2)
    for b in range(2):
        p, q = pos[b].flatten(), neg[b].flatten()
        alpha = (p @ q) / (q @ q + 1e-8)
        assert torch.allclose(out[b], alpha * neg[b] + 4.0 * (pos[b] - alpha * neg[b]), atol=1e-6)


def test_cfg_stg_rescale():
    neg, pos, ptb = _preds()
    out = combine(torch.cat([neg, pos, ptb]), GuidanceStep(3.0, 1.0, 0.7), 2)
    guided = neg + 3.0 * (pos - neg) + 1.0 * (pos - ptb)
    for b in range(2):
        factor = 0.7 * pos[b].std() / guided[b].std() + 0.3
        assert torch.allclose(out[b], guided[b] * factor, atol=1e-6)
    # No rescale at 1; STG without CFG starts from the positive prediction.
    out = combine(torch.cat([pos, ptb]), GuidanceStep(1.0, 2.0, 1.0), 2)
    assert torch.allclose(out, pos + 2.0 * (pos - ptb))
    out = combine(pos, GuidanceStep(1.0, 0.0, 0.5), 2)
    assert torch.equal(out, pos)


def test_stg_modes():
    # A config names the mode officially or by its short alias; the sampler takes the official name.
    from ltx_core.pipelines import PipelineConfig

    def strategy(mode):
        return stg_strategy(PipelineConfig.from_dict({"stg_mode": mode}).stg_mode)

    assert strategy("attention_values") is SkipLayerStrategy.AttentionValues
    assert strategy("STG_AV") is SkipLayerStrategy.AttentionValues
    assert strategy("attention_skip") is SkipLayerStrategy.AttentionSkip
    assert strategy("stg_r") is SkipLayerStrategy.Residual
    assert strategy("transformer_block") is SkipLayerStrategy.TransformerBlock
    with pytest.raises(ValueError, match="stg_mode"):
        strategy("skip_everything")
