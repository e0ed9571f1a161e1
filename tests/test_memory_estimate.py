"""Peak-memory estimates (ltx_core.memory.estimate) against measured CPU peaks of small models, the decode tiling
chosen from free memory, and the sampler node's refusal when a run cannot fit.

Measuring: a fresh subprocess with MALLOC_MMAP_THRESHOLD_=65536 (glibc maps every large buffer on its own and
unmaps it when freed, so RSS follows live tensors), one warm-up run, then `echo 5 > /proc/self/clear_refs` resets
the peak and VmHWM - VmRSS(before) is the run's activations, as bench/ measures.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tiny_transformer
import tiny_vae
from ltx_core.memory.estimate import (
    choose_decode_tiling,
    largest_fitting,
    transformer_activation_bytes,
    vae_decode_bytes,
    vae_weight_bytes,
)
from ltx_core.model.transformer import TransformerConfig
from ltx_core.model.video_vae import TilingConfig, VideoVAEConfig

REPO = Path(__file__).resolve().parents[1]
# Estimate / measured (weights + activations) must fall in this band.
LOW, HIGH = 0.7, 1.6

_WORKER = r"""
import json, sys
import torch
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
torch.set_num_threads(2)

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

def measure(fn):
    fn()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = rss("VmRSS")
    fn()
    return rss("VmHWM") - before

kind, spec = sys.argv[2], json.loads(sys.argv[3])
out = []
with torch.no_grad():
    if kind == "vae":
        import tiny_vae
        from ltx_core.model.video_vae import TilingConfig, VideoVAE, VideoVAEConfig
        vae = VideoVAE(VideoVAEConfig.from_dict(tiny_vae.tiny_config("0.9.5", base_channels=spec["base"]))).eval()
        for shape, tiling in spec["cases"]:
            z = torch.randn(shape)
            t = TilingConfig(*tiling) if tiling else None
            out.append(measure(lambda: vae.decode(z, timestep=0.05, tiling=t)))
    else:
        import tiny_transformer
        from ltx_core.model.transformer import Transformer3D, TransformerConfig
        m = Transformer3D(TransformerConfig.from_dict(tiny_transformer.tiny_config("2b", **spec["over"]))).eval()
        for b, f, h, w, length, per_token in spec["cases"]:
            n = f * h * w
            tokens, coords = torch.randn(b, n, m.config.in_channels), torch.rand(b, 3, n) * 10
            ts = torch.rand(b, n) if per_token else torch.rand(b)
            ctx, mask = torch.randn(b, length, m.config.caption_channels), torch.ones(b, length)
            out.append(measure(lambda: m.forward_tokens(tokens, coords, ts, ctx, mask)))
print(json.dumps(out))
"""


def _measure(kind: str, spec: dict) -> list[int]:
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs /proc/self/clear_refs to reset the peak RSS")
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    res = subprocess.run([sys.executable, "-c", _WORKER, str(REPO), kind, json.dumps(spec)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def _ratio_ok(est: int, measured: int, weights: int, what: str) -> float:
    ratio = est / (measured + weights)
    assert LOW <= ratio <= HIGH, f"{what}: estimate {est / 2**20:.1f} MiB vs measured {(measured + weights) / 2**20:.1f}"
    return ratio


# ------------------------------------------------------------------------------------------------ calibration

VAE_BASE = 16
VAE_CASES = [
    ([1, 128, 3, 12, 16], None),
    ([1, 128, 5, 12, 16], None),
]  # tiled decodes of such small tiles run far slower on the CPU than their size suggests: checked as arithmetic


def test_vae_decode_estimate_matches_measured_peaks():
    cfg = VideoVAEConfig.from_dict(tiny_vae.tiny_config("0.9.5", base_channels=VAE_BASE))
    measured = _measure("vae", {"base": VAE_BASE, "cases": VAE_CASES})
    weights = vae_weight_bytes(cfg, torch.float32)
    for (shape, tiling), m in zip(VAE_CASES, measured, strict=True):
        t = TilingConfig(*tiling) if tiling else None
        _ratio_ok(vae_decode_bytes(cfg, shape, torch.float32, t), m, weights, f"decode {shape} tiling={tiling}")
    assert measured[1] > 1.5 * measured[0]


TF_OVER = {"num_attention_heads": 8, "attention_head_dim": 32, "cross_attention_dim": 256}
TF_CASES = [[2, 3, 16, 24, 64, False], [2, 6, 16, 24, 64, False], [2, 3, 16, 24, 64, True], [1, 6, 16, 24, 64, False]]


def test_transformer_step_estimate_matches_measured_peaks():
    cfg = TransformerConfig.from_dict(tiny_transformer.tiny_config("2b", **TF_OVER))
    measured = _measure("transformer", {"over": TF_OVER, "cases": TF_CASES})
    for (b, f, h, w, length, per_token), m in zip(TF_CASES, measured, strict=True):
        est = transformer_activation_bytes(cfg, b, (f, h, w), torch.float32, length, per_token, device_type="cpu")
        # Weights are resident before and after the step, so compare activations alone here.
        _ratio_ok(est, m, 0, f"step batch={b} grid={(f, h, w)} per_token={per_token}")
    assert measured[1] > 1.5 * measured[0]  # twice the frames


# -- scaling (pure) --

FULL_VAE = VideoVAEConfig.from_dict(tiny_vae.full_config("0.9.5"))
FULL_2B = TransformerConfig.from_dict(tiny_transformer.full_config("2b"))
BF16 = torch.bfloat16


def test_decode_estimate_scaling():
    weights = vae_weight_bytes(FULL_VAE, BF16)
    acts = [vae_decode_bytes(FULL_VAE, (1, 128, f, 16, 24), BF16) - weights for f in (7, 13)]
    assert 1.6 < acts[1] / acts[0] < 2.2  # (13-1)*8+1 / (7-1)*8+1 frames
    tiling = TilingConfig(256, 64, 32, 24)
    tiled = [vae_decode_bytes(FULL_VAE, (1, 128, f, 16, 24), BF16, tiling) - weights for f in (13, 25)]
    untiled = vae_decode_bytes(FULL_VAE, (1, 128, 25, 16, 24), BF16) - weights
    # Tiled: only the blended output grows with the frames, and it is small next to an untiled decode.
    assert tiled[1] < 1.7 * tiled[0] and tiled[1] < untiled / 3


def test_step_estimate_scaling():
    a = [transformer_activation_bytes(FULL_2B, 2, (f, 16, 24), BF16) for f in (7, 14)]
    assert 1.9 < a[1] / a[0] < 2.1
    assert transformer_activation_bytes(FULL_2B, 4, (7, 16, 24), BF16) == pytest.approx(2 * a[0], rel=0.05)


# ------------------------------------------------------------------------------------------------ tiling choice


def test_choose_decode_tiling():
    shape = (1, 128, 13, 16, 24)  # 97 frames, 512 x 768
    untiled = vae_decode_bytes(FULL_VAE, shape, BF16)
    weights = vae_weight_bytes(FULL_VAE, BF16)  # encoder and decoder: the node loads the whole VAE
    assert choose_decode_tiling(FULL_VAE, shape, BF16, 2 * untiled) is None
    half = weights + (untiled - weights) * 6 // 10
    tight = choose_decode_tiling(FULL_VAE, shape, BF16, half)
    assert tight is not None and tight.spatial_tile % 32 == 0 and tight.spatial_overlap == 64
    assert tight.temporal_tile is None  # space is tiled first
    assert vae_decode_bytes(FULL_VAE, shape, BF16, tight) < half
    tighter = choose_decode_tiling(FULL_VAE, shape, BF16, weights + (untiled - weights) // 4)
    assert vae_decode_bytes(FULL_VAE, shape, BF16, tighter) < vae_decode_bytes(FULL_VAE, shape, BF16, tight)
    with pytest.raises(ValueError, match=r"does not fit in memory.*GiB.*only 0\.10 GiB is free"):
        choose_decode_tiling(FULL_VAE, shape, BF16, int(0.1 * 2**30))


def test_largest_fitting():
    from ltx_core.memory.estimate import StepShape, transformer_step_bytes

    need = transformer_step_bytes(FULL_2B, 2, (13, 16, 24), BF16, streaming=True)
    frames, size = largest_fitting(FULL_2B, StepShape(2, 97, 512, 768), BF16, int(need * 0.6))
    assert frames is not None and frames < 97 and frames % 8 == 1
    assert size is not None and size[0] < 512 and size[0] % 32 == 0 and size[1] % 32 == 0
    assert largest_fitting(FULL_2B, StepShape(2, 97, 512, 768), BF16, 1 << 20) == (None, None)


# ------------------------------------------------------------------------------------------------ sampler node


try:  # the node tests' tiny models (they need the official `ltx_video` package to build)
    import test_nodes
    from test_nodes import models  # noqa: F401  (the module-scoped fixture)
except pytest.skip.Exception:
    test_nodes = None


@pytest.mark.skipif(test_nodes is None, reason="needs ltx_video")
def test_sampler_refuses_a_run_that_cannot_fit(monkeypatch, models):  # noqa: F811
    sampling = sys.modules[f"{test_nodes.PACK}.nodes.sampling"]
    monkeypatch.setattr(sampling, "CHECKED_DEVICE_TYPES", ("cuda", "cpu"))
    monkeypatch.setattr(test_nodes.bridge, "free_memory_bytes", lambda device: 0)
    with pytest.raises(ValueError, match=r"LTX-Video Sampler: 9 frames at 96x64 need about .* GiB per step .* "
                                         r"but only .* GiB is free on cpu"):
        test_nodes.sample(models)
