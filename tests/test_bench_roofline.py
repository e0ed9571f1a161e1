"""bench.roofline's analytic counts against torch's own: FLOPs counted by `torch.utils.flop_counter.FlopCounterMode`
over real forwards of ltx_core's Transformer3D, parameters counted on built models; and the CLI.

SDPA: on CPU the default backend runs `aten._scaled_dot_product_flash_attention_for_cpu`, which FlopCounterMode has
no formula for (it counts 0). The forwards here run under the MATH backend, which computes QK^T and PV as two `bmm`s:
those it counts, 2 FLOPs per multiply-add, as the analytic count does. Linear layers are counted as their `mm` /
`addmm` (the bias add is not counted, by FlopCounterMode nor by the analytic count), so the totals match exactly.

Also: the `gguf` measurement's GGUF files read back as the model they were written from.
"""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from bench import configs, roofline
from ltx_core import geometry
from ltx_core.loader.diffusers_format import transformer_config_from_diffusers
from ltx_core.model.transformer import Transformer3D, TransformerConfig
from ltx_core.model.transformer.attention import Attention

REPO = Path(__file__).resolve().parents[1]
aten = torch.ops.aten


def tiny_arch(**over) -> dict:
    """A tiny diffusers-vocabulary transformer, built as bench/configs.py builds the real ones. Every width differs
    (in 16, out 12, captions 24, model 32) so a count that confuses two of them fails."""
    arch = configs.transformer(num_layers=2, heads=4, head_dim=8, cross_dim=32)
    arch.update(in_channels=16, out_channels=12, caption_channels=24)
    arch.update(over)
    return arch


def build(arch: dict) -> Transformer3D:
    return Transformer3D(TransformerConfig.from_dict(transformer_config_from_diffusers(arch))).eval()


def counted_forward(model, arch, batch, grid, text_tokens, per_token_timestep=False, dtype=torch.float32):
    """FlopCounterMode over one forward; padded text positions in the last row (masked, still computed).
    Returns (the counter's per-module counts, the `bmm` FLOPs inside the self- and inside the cross-attentions):
    Attention's two methods are not module calls, so each runs under an inner counter of its own."""
    gen = torch.Generator().manual_seed(0)
    cfg = transformer_config_from_diffusers(arch)
    latents = torch.randn(batch, cfg["in_channels"], *grid, generator=gen).to(dtype)
    timestep = torch.rand((batch, *grid) if per_token_timestep else (batch,), generator=gen)
    context = torch.randn(batch, text_tokens, cfg["caption_channels"], generator=gen).to(dtype)
    mask = torch.ones(batch, text_tokens)
    mask[-1, text_tokens // 2:] = 0
    attention_bmm = {"self_attention": 0, "cross_attention": 0}

    def counted(kind, method):
        def run(*args, **kwargs):
            with FlopCounterMode(display=False) as inner:
                out = method(*args, **kwargs)
            attention_bmm[kind] += inner.get_flop_counts()["Global"].get(aten.bmm, 0)
            return out
        return run

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Attention, "self_attention", counted("self_attention", Attention.self_attention))
        mp.setattr(Attention, "cross_attention", counted("cross_attention", Attention.cross_attention))
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            out = model(latents, timestep, context, mask)
    assert out.shape == (batch, cfg["out_channels"], *grid)
    return counter.get_flop_counts(), attention_bmm


@pytest.mark.parametrize("batch, grid, text_tokens, per_token", [
    (1, (2, 3, 4), 7, False),
    (2, (3, 4, 5), 5, False),
    (2, (2, 2, 3), 11, True),  # per-token timesteps: the timestep MLP runs on every token
])
def test_flops_match_flop_counter(batch, grid, text_tokens, per_token):
    arch = tiny_arch()
    tokens = grid[0] * grid[1] * grid[2]
    counts, attention_bmm = counted_forward(build(arch), arch, batch, grid, text_tokens, per_token)
    want = roofline.transformer_flops(arch, batch, tokens, text_tokens, tokens if per_token else 1)

    total = counts["Global"]
    assert set(total) <= {aten.mm, aten.addmm, aten.bmm}, total  # nothing but the matmuls is counted
    assert sum(total.values()) == want["total"]
    assert total.get(aten.mm, 0) + total.get(aten.addmm, 0) == want["linear"]
    assert total[aten.bmm] == want["self_attention"] + want["cross_attention"]
    assert attention_bmm == {k: want[k] for k in ("self_attention", "cross_attention")}
    # Spot checks by module: the timestep MLP runs once per timestep, the feed-forward is 2 x (D x 4D) per token.
    n_t = batch * (tokens if per_token else 1)
    assert sum(counts["Transformer3D.adaln_single"].values()) == 2 * n_t * (256 * 32 + 32 * 32 + 32 * 6 * 32)
    assert sum(counts["Transformer3D.transformer_blocks.0.ff"].values()) == 2 * 2 * batch * tokens * 32 * 128
    assert want["self_attention"] == 2 * 2 * arch["num_layers"] * batch * tokens * tokens * 32


@pytest.mark.parametrize("name", ["cuda-2b", "cuda-13b"])
def test_flops_at_released_widths(name):
    """The released widths at their sampling shape, on fake tensors (no memory, no arithmetic) in bf16 (the CUDA
    code path: no CPU-only fast paths). Two layers: every block counts the same, and the tiny test covers depth."""
    cfg = configs.get(name)
    arch = dict(cfg["transformer"], num_layers=2)
    s = cfg["sample"]
    grid = geometry.latent_grid(s["frames"], s["height"], s["width"])
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with FakeTensorMode():
            counts, attention_bmm = counted_forward(build(arch), arch, 2, grid, cfg["text_len"], dtype=torch.bfloat16)
    finally:
        torch.set_default_dtype(default)
    want = roofline.transformer_flops(arch, 2, grid[0] * grid[1] * grid[2], cfg["text_len"])
    assert sum(counts["Global"].values()) == want["total"]
    assert counts["Global"][aten.bmm] == want["self_attention"] + want["cross_attention"]
    assert attention_bmm == {k: want[k] for k in ("self_attention", "cross_attention")}


@pytest.mark.parametrize("over", [{}, {"attention_bias": False}])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_weight_bytes_match_model(over, dtype):
    arch = tiny_arch(**over)
    model = build(arch).to(dtype)
    params = list(model.parameters())
    assert roofline.transformer_params(arch) == sum(p.numel() for p in params)
    assert roofline.transformer_weight_bytes(arch, params[0].element_size()) == sum(
        p.numel() * p.element_size() for p in params)


@pytest.mark.parametrize("name", ["cpu", "cuda-2b", "cuda-13b"])
def test_params_of_benchmark_configs(name):
    arch = configs.get(name)["transformer"]
    with torch.device("meta"):
        model = build(arch)
    assert roofline.transformer_params(arch) == sum(p.numel() for p in model.parameters())


def test_floors():
    assert roofline.floors(2e15, 1e12, 1e15, 2e12) == {"compute": 2.0, "memory": 0.5, "bound": "compute"}
    assert roofline.floors(1e12, 4e12, 1e15, 2e12)["bound"] == "memory"


@pytest.mark.parametrize("name", sorted(configs.CONFIGS))
def test_benchmark_sizes_need_no_padding(name):
    """Every benchmark sample is a size the model takes as it is (the figures describe exactly that size), and its
    latent grid is the one the pipeline generates (frames first: `geometry.latent_grid(frames, height, width)`)."""
    s = configs.get(name)["sample"]
    assert geometry.padded_size(s["height"], s["width"], s["frames"]) == (s["height"], s["width"], s["frames"])
    grid = geometry.latent_grid(s["frames"], s["height"], s["width"])
    assert geometry.pixel_size(*grid) == (s["frames"], s["height"], s["width"])
    assert roofline.sampling_roofline(name, "h100")["grid"] == grid


def test_released_grids():
    assert configs.get("cuda-2b")["step"]["grid"] == (16, 16, 24)
    assert configs.get("cuda-13b")["step"]["grid"] == (16, 22, 38)
    assert configs.get("cuda-13b")["upsample"]["grid"] == (16, 11, 19)


def test_sampling_roofline_2b():
    r = roofline.sampling_roofline("cuda-2b", "h100")
    arch = configs.get("cuda-2b")["transformer"]
    assert (r["tokens"], r["text_tokens"], r["cfg_batch"], r["steps"]) == (16 * 16 * 24, 128, 2, 20)
    step = roofline.transformer_flops(arch, 2, 6144, 128)
    assert r["step_flops"] == step
    assert r["total_flops"] == 20 * step["total"]
    assert r["weight_bytes"] == 2 * roofline.transformer_params(arch)
    assert r["step_floors"]["compute"] == pytest.approx(step["total"] / 989e12)
    assert r["step_floors"]["memory"] == pytest.approx(r["weight_bytes"] / 3.35e12)
    assert r["total_floors"]["compute"] == pytest.approx(20 * r["step_floors"]["compute"])
    assert r["total_floors"]["memory"] == pytest.approx(20 * r["step_floors"]["memory"])
    assert r["attention_fraction"] == pytest.approx(
        (step["self_attention"] + step["cross_attention"]) / step["total"])


def test_cli_cuda_2b():
    """`python -m bench.roofline` as a user runs it: pure arithmetic, no GPU."""
    run = subprocess.run([sys.executable, "-m", "bench.roofline", "--config", "cuda-2b", "--device", "h100"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    r = roofline.sampling_roofline("cuda-2b", "h100")
    lines = {line.split("  ")[0]: line for line in run.stdout.splitlines()}
    assert "6144 tokens" in lines["config"] and "20 steps" in lines["config"]
    assert roofline._seconds(r["step_floors"]["compute"]) in lines["compute floor"]
    assert roofline._seconds(r["total_floors"]["compute"]) in lines["compute floor"]
    assert roofline._seconds(r["step_floors"]["memory"]) in lines["weight floor"]
    assert roofline._seconds(r["total_floors"]["memory"]) in lines["weight floor"]
    assert "1,923,385,472 params" in lines["weights"]


def test_cli_options(capsys):
    assert roofline.main(["--config", "cuda-13b", "--device", "h200", "--steps", "8", "--text-tokens", "256",
                          "--cfg-batch", "1"]) == 0
    out = capsys.readouterr().out
    assert "13376 tokens, 256 text tokens, CFG batch 1, 8 steps" in out
    r = roofline.sampling_roofline("cuda-13b", "h200", steps=8, cfg_batch=1, text_tokens=256)
    assert r["total_flops"] == 8 * roofline.transformer_flops(configs.get("cuda-13b")["transformer"], 1, 13376, 256)[
        "total"]
    assert roofline._seconds(r["total_floors"]["memory"]) in out


def test_vae_decode_flops_counted_on_fake_tensors_equal_a_real_decode():
    """The fake-tensor count (no arithmetic) equals the count of a real decode of the same small VAE."""
    from ltx_core.loader.diffusers_format import vae_config_from_diffusers
    from ltx_core.model.video_vae import VideoVAE, VideoVAEConfig

    arch = configs.vae_095(8)
    grid = (2, 2, 3)
    vae = VideoVAE(VideoVAEConfig.from_dict(vae_config_from_diffusers(arch))).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        vae.decode(torch.randn(1, 128, *grid), timestep=0.05)
    assert counter.get_total_flops() > 0
    assert roofline.vae_decode_flops(arch, grid) == counter.get_total_flops()


def test_memory_plan_tiles_the_decode_into_the_budget():
    plan = roofline.memory_plan("cuda-2b", budget_gb=8, cfg_batch=3)
    steps = plan["step_bytes"]
    assert steps["fp8 + streaming"] < steps["fp8"] < steps["bf16"]
    assert plan["decode_tiling"] is None and plan["decode_bytes"] == plan["decode_untiled_bytes"] <= 8 * 2**30
    tight = roofline.memory_plan("cuda-2b", budget_gb=3)
    assert tight["decode_tiling"] is not None
    assert tight["decode_bytes"] <= 3 * 2**30 < tight["decode_untiled_bytes"]
    assert "VAE decode for 3 GiB" in roofline.format_memory_plan(tight)


@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_K"])
def test_gguf_measurement_files_read_back_as_the_model(tmp_path, qtype):
    """The `gguf` measurement's files (bench.gguf_files) read back through ours' loader as the model they were
    written from (configs.gguf's 32 heads), holding what gguf's numpy reference dequantizes: Q8_0 close to the
    weights, Q4_K random with the weights' spread."""
    pytest.importorskip("gguf")
    from bench import gguf_files
    from ltx_core import load_checkpoint
    from ltx_core.loader.checkpoint import Companion
    from ltx_core.loader.precision import fp8_eligible_keys

    # 4 heads of 64 split into 32 of 8; every block layer's rows a multiple of Q4_K's 256-element blocks
    arch = configs.gguf({"transformer": tiny_arch(num_attention_heads=4, attention_head_dim=64,
                                                  cross_attention_dim=256)})["transformer"]
    assert (arch["num_attention_heads"], arch["attention_head_dim"]) == (32, 8)
    dense = build(arch)
    blocks = fp8_eligible_keys(dense, "transformer_blocks.")
    path = gguf_files.ensure(tmp_path / f"{qtype}.gguf", dense.state_dict(), blocks, qtype)
    model = load_checkpoint(path, dtype=torch.float32, companion=Companion(release="0.9.6")).transformer
    assert model.config == dense.config
    values = gguf_files.dequantized(path, {k: dense.get_parameter(k).shape for k in blocks}, "cpu", torch.float32)
    assert set(values) == blocks
    for k, v in values.items():
        w = dense.get_parameter(k)
        if qtype == "Q8_0":
            assert (v - w).norm() <= 0.01 * w.norm()
        else:
            assert 0.5 < v.std() * w.shape[1] ** 0.5 < 2
    dense.load_state_dict(values, strict=False)
    gen = torch.Generator().manual_seed(0)
    latents, context = torch.randn(1, 16, 2, 2, 3, generator=gen), torch.randn(1, 5, 24, generator=gen)
    with torch.no_grad():
        got, expected = (m(latents, torch.tensor([0.6]), context, torch.ones(1, 5)) for m in (model, dense))
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5)
