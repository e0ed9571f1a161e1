"""Timestep grids and the Euler step against the official RectifiedFlowScheduler (bit-for-bit)."""
import itertools

import pytest
import torch

from ltx_core.sampling.schedule import (
    SchedulerConfig,
    add_noise,
    euler_step,
    linear_quadratic_grid,
    make_timesteps,
    next_lower,
)

pytest.importorskip("ltx_video")
from ltx_video.pipelines.pipeline_ltx_video import retrieve_timesteps  # noqa: E402
from ltx_video.schedulers.rf import RectifiedFlowScheduler  # noqa: E402

CONFIGS = [
    {},
    {"sampler": "LinearQuadratic"},
    {"shifting": "SD3", "target_shift_terminal": 0.1},  # 0.9.0 / 0.9.1
    {"shifting": "SD3", "target_shift_terminal": 0.1, "sampler": "LinearQuadratic"},
    {"shifting": "SD3"},
    {"sampler": "Constant", "shift": 1.3},
    {"sampler": "Constant", "shift": -0.4, "shifting": "SD3", "target_shift_terminal": 0.05},
    {"shifting": "SimpleDiffusion"},
    {"shifting": "SimpleDiffusion", "base_resolution": 2048, "sampler": "LinearQuadratic"},
    {"num_train_timesteps": 25, "sampler": "LinearQuadratic"},
]
STEPS = [1, 2, 3, 7, 8, 20, 30, 40, 50, 1001]
SHAPES = [(1, 128, 2, 3, 4), (1, 128, 16, 22, 38), (2, 128, 5, 16, 24), (1, 128, 1, 1, 1), (1, 128, 7, 32, 32)]
SKIPS = [(0, 0), (1, 0), (0, 3), (17, 0), (3, 2)]


def reference(cfg, steps, shape, skips=(0, 0), timesteps=None):
    sch = RectifiedFlowScheduler(**cfg)
    ts, _ = retrieve_timesteps(sch, None if timesteps is not None else steps, "cpu", timesteps, *skips,
                               samples_shape=torch.Size(shape))
    return ts, sch


def same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and bool(torch.equal(a, b))


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_grids_equal_reference(cfg):
    n = 0
    for steps, shape, skips in itertools.product(STEPS, SHAPES, SKIPS):
        cap = min(steps, cfg.get("num_train_timesteps", 1000))
        if skips[0] + skips[1] >= cap:
            continue
        ref, _ = reference(cfg, steps, shape, skips)
        ours = make_timesteps(SchedulerConfig.from_dict(cfg), steps, shape, None, *skips)
        if ref.isnan().any():
            # The official stretch to the terminal divides by zero on a one-step grid: ours keeps that one step.
            assert (steps, "target_shift_terminal" in cfg) == (1, True), (steps, ref)
            assert ours.tolist() == [1.0]
        else:
            assert same(ours, ref), (steps, shape, skips, ours, ref)
        n += 1
    assert n > 100


def test_explicit_timesteps_and_distilled_list():
    distilled = [1.0, 0.9937, 0.9875, 0.9812, 0.9750, 0.9094, 0.7250]
    for ts in (distilled, [0.9094, 0.7250, 0.4219], [0.5]):
        ref, _ = reference({}, None, (1, 128, 2, 2, 2), timesteps=ts)
        ours = make_timesteps(SchedulerConfig(), None, None, ts)
        assert same(ours, ref)
    # The distilled list is the 8-step LinearQuadratic grid, rounded to 4 digits.
    lq8 = linear_quadratic_grid(8)
    assert [round(v, 4) for v in lq8.tolist()] == distilled + [0.4219]


def test_lq30_matches_documented_grid():
    lq30 = [1.0, .9983, .9967, .995, .9933, .9917, .99, .9883, .9867, .985, .9833, .9817, .98, .9783, .9767, .975,
            .9691, .9548, .932, .9008, .8611, .813, .7564, .6914, .618, .5361, .4458, .347, .2398, .1241]
    assert [round(v, 4) for v in linear_quadratic_grid(30).tolist()] == lq30


def test_denoise_strength_truncates_like_the_historical_reference():
    cfg = SchedulerConfig(sampler="LinearQuadratic")
    full = make_timesteps(cfg, 30, (1, 128, 2, 2, 2))
    part = make_timesteps(cfg, 30, (1, 128, 2, 2, 2), denoise_strength=0.85)
    assert torch.equal(part, full[full <= 0.85])
    assert float(part[0]) <= 0.85
    with pytest.raises(ValueError, match="denoise_strength"):
        make_timesteps(cfg, 30, (1, 128, 2, 2, 2), denoise_strength=0.01)


def test_invalid_schedules():
    with pytest.raises(ValueError, match="skip"):
        make_timesteps(SchedulerConfig(), 10, (1, 128, 1, 1, 1), None, 5, 5)
    with pytest.raises(ValueError, match="sampler"):
        SchedulerConfig.from_dict({"sampler": "Karras"})
    with pytest.raises(ValueError, match="shifting"):
        SchedulerConfig.from_dict({"shifting": "Flux"})
    with pytest.raises(ValueError, match="Constant"):
        SchedulerConfig.from_dict({"sampler": "Constant"})
    # Timestep lists and step counts are checked once, where a config or a request is read.
    from ltx_core.pipelines import GenerationRequest, PipelineConfig

    with pytest.raises(ValueError, match="decreasing"):
        PipelineConfig.from_dict({"timesteps": [0.5, 0.7]})
    with pytest.raises(ValueError, match="num_inference_steps"):
        GenerationRequest(height=32, width=32, num_frames=1, frame_rate=25, seed=0, num_inference_steps=0)
    # Checkpoint metadata carries diffusers' private keys: ignored.
    assert SchedulerConfig.from_dict({"_class_name": "RectifiedFlowScheduler", "shifting": "SD3"}).shifting == "SD3"


@pytest.mark.parametrize("stochastic", [False, True])
def test_euler_step_equals_reference(stochastic):
    g = torch.Generator().manual_seed(0)
    ref_ts, sch = reference({"sampler": "LinearQuadratic"}, 12, (1, 128, 2, 2, 2))
    sample = torch.randn(2, 10, 8, generator=g)
    velocity = torch.randn(2, 10, 8, generator=g)
    # Per-token timesteps as the pipeline passes them: (1, N), some tokens conditioned (t = 1 - strength).
    t = ref_ts[3].expand(1, 10).clone()
    t[0, :3] = torch.tensor([0.0, 0.3, float(ref_ts[5])])
    gen_a = torch.Generator().manual_seed(9)
    ours = euler_step(sample, velocity, t, ref_ts, stochastic, gen_a)
    if stochastic:
        noise = torch.randn(sample.shape, generator=torch.Generator().manual_seed(9))
        orig = torch.randn_like
        torch.randn_like = lambda x, **kw: noise.clone()
        try:
            ref = sch.step(velocity, t, sample, return_dict=False, stochastic_sampling=True)[0]
        finally:
            torch.randn_like = orig
    else:
        ref = sch.step(velocity, t, sample, return_dict=False)[0]
    assert torch.equal(ours, ref)
    # Scalar timestep.
    ref_scalar = sch.step(velocity, ref_ts[0], sample, return_dict=False)[0]
    assert torch.equal(euler_step(sample, velocity, ref_ts[0], ref_ts), ref_scalar)


def test_next_lower_and_add_noise():
    ts = torch.tensor([1.0, 0.75, 0.5, 0.25])
    assert next_lower(ts, torch.tensor(0.75)).item() == 0.5
    assert next_lower(ts, torch.tensor(0.25)).item() == 0.0
    assert next_lower(ts, torch.tensor([[0.6, 1.0]])).tolist() == [[0.5, 0.75]]
    x0, eps = torch.ones(2, 3, 4), torch.zeros(2, 3, 4)
    assert torch.allclose(add_noise(x0, eps, torch.tensor([0.25, 1.0])), torch.tensor([0.75, 0.0]).view(2, 1, 1).expand(2, 3, 4))


def test_time_shift_of_a_huge_token_count_does_not_overflow():
    """A (refused or not) video of millions of tokens shifts the grid to 1 instead of overflowing exp()."""
    from ltx_core.sampling.schedule import sd3_token_shift, time_shift

    t = torch.tensor([1.0, 0.5, 0.1])
    shifted = time_shift(sd3_token_shift(10**9), t)
    assert torch.isfinite(shifted).all() and torch.allclose(shifted, torch.ones(3))
