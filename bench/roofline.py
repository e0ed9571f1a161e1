"""Analytic work counts for the LTX-Video transformer: what bounds a measured step or sampling time.

Two floors: the compute floor (matmul FLOPs / the device's peak dense rate) and the weight-streaming floor (every
parameter read once per forward: parameter bytes / memory bandwidth). A measured time near the larger of the two is
near what the device can do; far above both, the time goes elsewhere (elementwise passes, launches, activations).

Counts follow `ltx_core.model.transformer` (model.py, block.py, attention.py, embeddings.py) exactly. FLOPs are
those of the matmuls only, a multiply-add counted as 2 (the convention of `torch.utils.flop_counter`); bias adds,
norms, RoPE, softmax, GELU and the modulation are elementwise and left out. With B batch rows, N video tokens, L text
tokens, width D = heads * head_dim, the forward runs
  patchify_proj                 B*N x in_channels -> D
  adaln_single                  B*T timesteps (T = 1, or N for per-token timesteps): 256 -> D -> D (MLP), D -> 6D
  caption_projection            B*L x caption_channels -> D -> D
  per block, self-attention     q, k, v, out: B*N x D -> D; QK^T and PV over N keys: 2 * 2*B*N*N*D
             cross-attention    q, out: B*N x D -> D; k, v: B*L x cross_attention_dim -> D; QK^T, PV over L keys
             feed-forward       B*N x D -> 4D -> D
  proj_out                      B*N x D -> out_channels

Example: python -m bench.roofline --config cuda-13b --device h200
"""
from __future__ import annotations

import argparse
import sys

from ltx_core.geometry import latent_grid
from ltx_core.loader.diffusers_format import transformer_config_from_diffusers

from . import configs

# Peak dense bf16 tensor-core rate (FLOP/s) and memory bandwidth (B/s), from NVIDIA's data sheets. The sheets list
# bf16 as "1,979 teraFLOPS" with 2:4 sparsity; the dense rate is half of it. H100: the SXM5 part (80 GB HBM3,
# 3.35 TB/s). H200: SXM (141 GB HBM3e, 4.8 TB/s), the same compute as H100 SXM.
DEVICES = {
    "h100": {"name": "H100 SXM", "peak_flops": 989e12, "bandwidth": 3.35e12},
    "h200": {"name": "H200 SXM", "peak_flops": 989e12, "bandwidth": 4.8e12},
}
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "float8_e4m3fn": 1}

TIMESTEP_SINUSOID_CHANNELS = 256  # ltx_core.model.transformer.embeddings
NUM_MODULATIONS = 6  # ltx_core.model.transformer.block: shift/scale/gate for attention and feed-forward
FF_MULT = 4


def _dims(arch: dict) -> dict:
    """The widths a forward uses, from a diffusers-vocabulary transformer config (as in bench/configs.py).
    It goes through the loader's translation, so unsupported settings are refused as the models refuse them."""
    cfg = transformer_config_from_diffusers(arch)
    heads, head_dim = cfg["num_attention_heads"], cfg["attention_head_dim"]
    return dict(
        layers=cfg["num_layers"], heads=heads, head_dim=head_dim, dim=heads * head_dim,
        in_ch=cfg["in_channels"], out_ch=cfg["out_channels"], cross=cfg["cross_attention_dim"],
        caption=cfg["caption_channels"], qkv_bias=cfg["attention_bias"],
    )


def _mm(rows: int, k: int, n: int) -> int:
    """FLOPs of a (rows x k) @ (k x n) product."""
    return 2 * rows * k * n


def transformer_flops(arch: dict, batch: int, tokens: int, text_tokens: int, timesteps_per_row: int = 1) -> dict:
    """Matmul FLOPs of one transformer forward: batch rows of `tokens` video tokens and `text_tokens` text tokens
    (all of them are computed: padded text positions are masked, not skipped). `timesteps_per_row`: 1, or `tokens`
    when each token has its own timestep (conditioned frames). Returns ints: `linear` (every projection),
    `self_attention` and `cross_attention` (QK^T and PV products), `total`."""
    d = _dims(arch)
    D, bn, bl = d["dim"], batch * tokens, batch * text_tokens
    bt = batch * timesteps_per_row
    linear = (
        _mm(bn, d["in_ch"], D)  # patchify_proj
        + _mm(bt, TIMESTEP_SINUSOID_CHANNELS, D) + _mm(bt, D, D) + _mm(bt, D, NUM_MODULATIONS * D)  # adaln_single
        + _mm(bl, d["caption"], D) + _mm(bl, D, D)  # caption_projection
        + _mm(bn, D, d["out_ch"])  # proj_out
    )
    per_block = (
        4 * _mm(bn, D, D)  # self-attention q, k, v, out
        + 2 * _mm(bn, D, D) + 2 * _mm(bl, d["cross"], D)  # cross-attention q, out (video); k, v (text)
        + _mm(bn, D, FF_MULT * D) + _mm(bn, FF_MULT * D, D)  # feed-forward
    )
    linear += d["layers"] * per_block
    # QK^T: (N x head_dim) @ (head_dim x keys) per head, PV: (N x keys) @ (keys x head_dim): 2 * 2*N*keys*D per row.
    self_attention = d["layers"] * 2 * _mm(bn, D, tokens)
    cross_attention = d["layers"] * 2 * _mm(bn, D, text_tokens)
    return dict(linear=linear, self_attention=self_attention, cross_attention=cross_attention,
                total=linear + self_attention + cross_attention)


def vae_decode_flops(arch: dict, grid: tuple[int, int, int], batch: int = 1, timestep: float = 0.05) -> int:
    """Convolution and matmul FLOPs of one untiled VAE decode of a (F, H, W) latent grid, counted rather than
    derived (the decoder has many block kinds per release): ltx_core's decoder runs on fake tensors (shapes only,
    no arithmetic or memory) under torch's FLOP counter. `arch`: a diffusers-vocabulary VAE config."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    from ltx_core.loader.diffusers_format import vae_config_from_diffusers
    from ltx_core.model.video_vae import VideoVAE, VideoVAEConfig

    config = VideoVAEConfig.from_dict(vae_config_from_diffusers(arch))
    with FakeTensorMode(), torch.no_grad():
        vae = VideoVAE(config)  # FLOPs do not depend on the dtype
        latents = torch.empty(batch, config.latent_channels, *grid)
        with FlopCounterMode(display=False) as counter:
            vae.decode(latents, timestep=timestep if config.timestep_conditioning else None)
    return counter.get_total_flops()


def memory_plan(config: str, budget_gb: float, cfg_batch: int = 2, text_tokens: int | None = None) -> dict:
    """Estimated peak device memory (ltx_core.memory.estimate, the figures the nodes plan with, HEADROOM included)
    of the config's sampling shape, bf16 compute: one transformer step with the weights resident in bf16, resident
    in fp8, and fp8 with block streaming; the VAE decode untiled and with the tiling chosen for `budget_gb`."""
    import torch

    from ltx_core.loader.diffusers_format import transformer_config_from_diffusers, vae_config_from_diffusers
    from ltx_core.memory import estimate as est
    from ltx_core.model.transformer import TransformerConfig
    from ltx_core.model.video_vae import VideoVAEConfig

    cfg = configs.get(config)
    sample = cfg["sample"]
    text_tokens = cfg["text_len"] if text_tokens is None else text_tokens
    grid = latent_grid(sample["frames"], sample["height"], sample["width"])
    tr = TransformerConfig.from_dict(transformer_config_from_diffusers(cfg["transformer"]))
    acts = est.transformer_activation_bytes(tr, cfg_batch, grid, torch.bfloat16, text_tokens)
    steps = {}
    for name, dtype, streaming in (("bf16", torch.bfloat16, False), ("fp8", torch.float8_e4m3fn, False),
                                   ("fp8 + streaming", torch.float8_e4m3fn, True)):
        weights = est.transformer_weight_bytes(tr, dtype, streaming)
        steps[name] = est.with_headroom(weights + acts, weights)
    vae = VideoVAEConfig.from_dict(vae_config_from_diffusers(cfg["vae"]))
    latent = (1, vae.latent_channels, *grid)
    weights = est.vae_weight_bytes(vae, torch.bfloat16)
    untiled = est.with_headroom(est.vae_decode_bytes(vae, latent, torch.bfloat16), weights)
    tiling = est.choose_decode_tiling(vae, latent, torch.bfloat16, int(budget_gb * 2**30))
    tiled = untiled if tiling is None else est.with_headroom(est.vae_decode_bytes(vae, latent, torch.bfloat16, tiling),
                                                             weights)
    return dict(budget_gb=budget_gb, cfg_batch=cfg_batch, step_bytes=steps, decode_untiled_bytes=untiled,
                decode_tiling=tiling, decode_bytes=tiled)


def format_memory_plan(m: dict) -> str:
    gb = 2**30
    t = m["decode_tiling"]
    tiling = "untiled" if t is None else f"spatial tile {t.spatial_tile}, temporal tile {t.temporal_tile}"
    rows = [(f"step, weights {k}", f"{v / gb:.1f} GiB (CFG batch {m['cfg_batch']})") for k, v in m["step_bytes"].items()]
    rows += [("VAE decode untiled", f"{m['decode_untiled_bytes'] / gb:.1f} GiB"),
             (f"VAE decode for {m['budget_gb']:g} GiB", f"{m['decode_bytes'] / gb:.1f} GiB ({tiling})")]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def transformer_params(arch: dict) -> int:
    """Parameter count of the transformer (the official checkpoint's tensors, which ltx_core's model holds)."""
    d = _dims(arch)
    D = d["dim"]

    def linear(k, n, bias=True):
        return k * n + (n if bias else 0)

    def attention(context_dim):
        return (linear(D, D, d["qkv_bias"]) + 2 * linear(context_dim, D, d["qkv_bias"])  # to_q, to_k, to_v
                + 2 * D  # q_norm, k_norm weights (RMS over the full width)
                + linear(D, D))  # to_out, always with a bias

    block = (attention(D) + attention(d["cross"]) + linear(D, FF_MULT * D) + linear(FF_MULT * D, D)
             + NUM_MODULATIONS * D)  # scale_shift_table
    return (
        linear(d["in_ch"], D)  # patchify_proj
        + linear(TIMESTEP_SINUSOID_CHANNELS, D) + linear(D, D) + linear(D, NUM_MODULATIONS * D)  # adaln_single
        + linear(d["caption"], D) + linear(D, D)  # caption_projection
        + d["layers"] * block
        + 2 * D  # output scale_shift_table
        + linear(D, d["out_ch"])  # proj_out
    )


def transformer_weight_bytes(arch: dict, bytes_per_param: float) -> int | float:
    """Bytes of the transformer's parameters stored at `bytes_per_param` each (bf16: 2)."""
    return transformer_params(arch) * bytes_per_param


def floors(flops: float, nbytes: float, peak_flops: float, bandwidth: float) -> dict:
    """Lower bounds on the time of work doing `flops` and moving `nbytes`: `compute` = flops / peak_flops,
    `memory` = nbytes / bandwidth (seconds); `bound` names the larger."""
    compute, memory = flops / peak_flops, nbytes / bandwidth
    return dict(compute=compute, memory=memory, bound="compute" if compute >= memory else "memory")


def sampling_roofline(config: str, device: str, steps: int | None = None, cfg_batch: int = 2,
                      text_tokens: int | None = None, bytes_per_param: float | None = None) -> dict:
    """Work and floors of one transformer step (a batch of `cfg_batch`) and of `steps` of them, at the config's
    sampling shape (`configs.get(config)["sample"]`, its latent grid as `ltx_core.geometry` computes it)."""
    cfg = configs.get(config)
    sample, arch, dev = cfg["sample"], cfg["transformer"], DEVICES[device]
    steps = sample["steps"] if steps is None else steps
    text_tokens = cfg["text_len"] if text_tokens is None else text_tokens
    bytes_per_param = DTYPE_BYTES[cfg["dtype"]] if bytes_per_param is None else bytes_per_param
    grid = latent_grid(sample["frames"], sample["height"], sample["width"])
    tokens = grid[0] * grid[1] * grid[2]
    flops = transformer_flops(arch, cfg_batch, tokens, text_tokens)
    weight_bytes = transformer_weight_bytes(arch, bytes_per_param)
    step = floors(flops["total"], weight_bytes, dev["peak_flops"], dev["bandwidth"])
    decode = vae_decode_flops(cfg["vae"], grid)
    decode_floor = floors(decode, 0, dev["peak_flops"], dev["bandwidth"])["compute"]
    return dict(
        config=config, device=dev["name"], peak_flops=dev["peak_flops"], bandwidth=dev["bandwidth"],
        height=sample["height"], width=sample["width"], frames=sample["frames"], grid=grid, tokens=tokens,
        text_tokens=text_tokens, cfg_batch=cfg_batch, steps=steps, params=transformer_params(arch),
        bytes_per_param=bytes_per_param, weight_bytes=weight_bytes, step_flops=flops,
        total_flops=steps * flops["total"],
        attention_fraction=(flops["self_attention"] + flops["cross_attention"]) / flops["total"],
        step_floors=step,
        total_floors=floors(steps * flops["total"], steps * weight_bytes, dev["peak_flops"], dev["bandwidth"]),
        decode_flops=decode, decode_floor=decode_floor,
    )


def _seconds(s: float) -> str:
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def _si(x: float) -> str:
    """x with an SI prefix: 58.2 T, 1.16 P, 3.85 G."""
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {prefix}"
    return f"{x:.3g} "


def format_roofline(r: dict) -> str:
    f, s, t = r["step_flops"], r["step_floors"], r["total_floors"]
    rows = [
        ("config", f"{r['config']}: {r['width']}x{r['height']}x{r['frames']} -> latent {'x'.join(map(str, r['grid']))}"
                   f" = {r['tokens']} tokens, {r['text_tokens']} text tokens, CFG batch {r['cfg_batch']}, "
                   f"{r['steps']} steps"),
        ("device", f"{r['device']}: {r['peak_flops'] / 1e12:.0f} TFLOP/s bf16 dense, {r['bandwidth'] / 1e12:.2f} TB/s"),
        ("weights", f"{r['params']:,} params x {r['bytes_per_param']:g} B = {_si(r['weight_bytes'])}B"),
        ("FLOPs / step", f"{_si(f['total'])} (linear {_si(f['linear'])}, self-attention {_si(f['self_attention'])}, "
                         f"cross-attention {_si(f['cross_attention'])})"),
        ("FLOPs / all steps", _si(r["total_flops"])),
        ("attention share", f"{100 * r['attention_fraction']:.1f} % of FLOPs"),
        ("compute floor", f"{_seconds(s['compute'])} / step, {_seconds(t['compute'])} all steps"),
        ("weight floor", f"{_seconds(s['memory'])} / step, {_seconds(t['memory'])} all steps"),
        ("bound", f"{s['bound']} ({f['total'] / r['weight_bytes']:.0f} FLOP per weight byte; the device's ridge: "
                  f"{r['peak_flops'] / r['bandwidth']:.0f})"),
        ("VAE decode", f"{_si(r['decode_flops'])}FLOPs (untiled, counted), compute floor {_seconds(r['decode_floor'])}"),
        ("end-to-end floor", f"{_seconds(t['compute'] + r['decode_floor'])} (all steps + decode at the peak rate)"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.roofline", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="cuda-2b", choices=sorted(configs.CONFIGS))
    p.add_argument("--device", default="h100", choices=sorted(DEVICES))
    p.add_argument("--steps", type=int, default=None, help="default: the config's sampling steps")
    p.add_argument("--cfg-batch", type=int, default=2, help="batch rows per transformer step (2: a CFG pair)")
    p.add_argument("--text-tokens", type=int, default=None, help="default: the config's text_len")
    p.add_argument("--bytes-per-param", type=float, default=None, help="default: from the config's dtype")
    p.add_argument("--memory-budget", type=float, default=None, metavar="GIB",
                   help="also print estimated peak device memory, the VAE decode tiled to fit this budget")
    a = p.parse_args(argv)
    r = sampling_roofline(a.config, a.device, a.steps, a.cfg_batch, a.text_tokens, a.bytes_per_param)
    print(format_roofline(r))
    if a.memory_budget is not None:
        print(format_memory_plan(memory_plan(a.config, a.memory_budget, a.cfg_batch, a.text_tokens)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
