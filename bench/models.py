"""Model triples (ours, the official `ltx_video` model, diffusers) sharing one set of random weights, and the
measured callables. Weights are drawn once (seeded, on the target device and dtype) into the official model and
loaded into the other two with `assign=True`, so the implementations share the same tensors in memory; diffusers
gets them renamed by its own single-file converters."""
from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import torch

from ltx_core.geometry import LATENT_CHANNELS
from ltx_core.loader.diffusers_format import transformer_config_from_diffusers, vae_config_from_diffusers
from ltx_core.loader.precision import fp8_eligible_keys
from ltx_core.memory import stream_blocks

from . import configs, gguf_files

UNUSED_VAE_STATISTICS = ("channel", "mean-of-stds", "mean-of-stds_over_std-of-means")


def _gen(device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(0)


def _randn(shape, gen, device, dtype, scale=1.0, offset=0.0):
    t = torch.randn(shape, generator=gen, device=device, dtype=torch.float32)
    return (t.mul_(scale).add_(offset)).to(dtype)


def _check_materialised(model, what):
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise RuntimeError(f"{what}: tensors left on the meta device: {left[:5]}")


def _wanted(impls, name):
    return impls is None or name in impls


# ------------------------------------------------------------------------------------------------ transformer


def _transformer_weights(cfg: dict, device, dtype):
    """(the official model on the meta device, its config, the seeded weights)."""
    from ltx_video.models.transformers.transformer3d import Transformer3DModel

    official_cfg = transformer_config_from_diffusers(cfg["transformer"])
    with torch.device("meta"):
        ref = Transformer3DModel(**{k: v for k, v in official_cfg.items() if not k.startswith("_")})
    gen = _gen(device)
    sd = {}
    for name, p in ref.named_parameters():  # scales as tests/tiny_transformer.py: activations stay O(1)
        if name.endswith("scale_shift_table"):
            sd[name] = _randn(p.shape, gen, device, dtype, 0.2)
        elif p.ndim == 2:
            sd[name] = _randn(p.shape, gen, device, dtype, 1 / math.sqrt(p.shape[1]))
        elif name.endswith("norm.weight"):
            sd[name] = _randn(p.shape, gen, device, dtype, 0.1, 1.0)
        else:
            sd[name] = _randn(p.shape, gen, device, dtype, 0.1)
    return ref, official_cfg, sd


def _ours_transformer(official_cfg: dict, sd: dict):
    from ltx_core.model.transformer import Transformer3D, TransformerConfig

    with torch.device("meta"):
        ours = Transformer3D(TransformerConfig.from_dict(official_cfg))
    ours.load_state_dict(sd, strict=True, assign=True)
    return ours.eval()


def _openvino_transformer(cfg: dict, device, dtype, impl: str):
    """Ours' transformer run by OpenVINO (`configs.OV_IMPLS`: weights fp32 or int8). The seeded weights are drawn
    only to convert a graph missing from the cache ($LTX_OPENVINO_CACHE: the driver's scratch folder, so the first
    worker converts and the later ones read the IR), and freed after: a process that hits the cache never holds
    the torch weights."""
    from ltx_core.model.transformer import TransformerConfig
    from ltx_core.openvino import OVSettings, OVTransformer

    def build():
        _, official, sd = _transformer_weights(cfg, device, dtype)
        return _ours_transformer(official, sd)

    source = {"bench": cfg["transformer"], "dtype": cfg["dtype"], "seed": 0}
    config = TransformerConfig.from_dict(transformer_config_from_diffusers(cfg["transformer"]))
    return OVTransformer(config, source, OVSettings("CPU", impl.removeprefix("ov_")), build)


def transformers(cfg: dict, device, dtype, impls=None) -> dict:
    out = {name: _openvino_transformer(cfg, device, dtype, name)
           for name in configs.OV_IMPLS if impls is not None and name in impls}
    if not (_wanted(impls, "reference") or _wanted(impls, "ours") or _wanted(impls, "diffusers")):
        return out  # OpenVINO only: no torch weights drawn
    ref, official_cfg, sd = _transformer_weights(cfg, device, dtype)
    d_cfg = cfg["transformer"]
    if _wanted(impls, "reference"):
        ref.load_state_dict(sd, strict=True, assign=True)
        _check_materialised(ref, "reference transformer")
        out["reference"] = ref.eval()
    if _wanted(impls, "ours"):
        ours = _ours_transformer(official_cfg, sd)
        if cfg.get("lean") or cfg.get("fp8_matmul"):
            _fp8_storage(ours, "cpu" if cfg.get("lean") else device)
        if cfg.get("fp8_matmul"):
            ours.use_fp8_matmul()
        if cfg.get("lean"):
            _KEEP_ALIVE.append(stream_blocks(ours, device))
            _KEEP_ALIVE[-1].__enter__()  # once: re-pinning per call would time the setup
        if cfg.get("compile"):
            ours.compile_blocks()  # compiled on the first (warm-up) call
        out["ours"] = ours.eval()
    if _wanted(impls, "diffusers"):
        from diffusers import LTXVideoTransformer3DModel
        from diffusers.loaders.single_file_utils import convert_ltx_transformer_checkpoint_to_diffusers

        d_sd = convert_ltx_transformer_checkpoint_to_diffusers({"model.diffusion_model." + k: v for k, v in sd.items()})
        with torch.device("meta"):
            d = LTXVideoTransformer3DModel.from_config({k: v for k, v in d_cfg.items() if not k.startswith("_")})
        d.load_state_dict(d_sd, strict=True, assign=True)
        _check_materialised(d, "diffusers transformer")
        out["diffusers"] = d.eval()
    return out


def _fp8_storage(model, device, compute: torch.dtype | None = None) -> None:
    """Ours as an fp8 checkpoint loads: block Linear weights in float8_e4m3fn, everything else in `compute` (by
    default the bf16 that fp8 checkpoints compute in), on `device` (the CPU for --lean, whose blocks then stream to
    the GPU for as long as the process lives). Tensors already in `compute` on `device` are kept, not copied."""
    from ltx_core.loader.precision import FP8_COMPUTE

    fp8 = fp8_eligible_keys(model, "transformer_blocks.")
    for name, p in model.named_parameters():
        p.data = p.data.to(device, torch.float8_e4m3fn if name in fp8 else compute or FP8_COMPUTE)


_KEEP_ALIVE = []


# ------------------------------------------------------------------------------------------------ VAE


def vaes(cfg: dict, device, dtype, impls=None) -> dict:
    from ltx_video.models.autoencoders.causal_video_autoencoder import CausalVideoAutoencoder

    from ltx_core.model.video_vae import VideoVAE, VideoVAEConfig

    d_cfg = cfg["vae"]
    official_cfg = vae_config_from_diffusers(d_cfg)
    with torch.device("meta"):
        ref = CausalVideoAutoencoder.from_config(json.loads(json.dumps(official_cfg)))
    gen = _gen(device)
    sd = {}
    for name, p in ref.named_parameters():  # scales as tests/tiny_vae.py
        leaf = name.rsplit(".", 1)[-1]
        if name == "decoder.timestep_scale_multiplier":
            sd[name] = _randn(p.shape, gen, device, dtype, 300.0, 1000.0)
        elif leaf == "weight" and p.ndim >= 2:
            sd[name] = _randn(p.shape, gen, device, dtype, 1 / math.sqrt(p[0].numel()))
        elif leaf == "weight":
            sd[name] = _randn(p.shape, gen, device, dtype, 0.2, 1.0)
        elif leaf.startswith("per_channel_scale"):
            sd[name] = _randn(p.shape, gen, device, dtype, 0.5)
        else:
            sd[name] = _randn(p.shape, gen, device, dtype, 0.2)
    c = official_cfg["latent_channels"]
    std = (0.5 + torch.rand(c, generator=gen, device=device)).to(dtype)
    mean = (0.3 * torch.randn(c, generator=gen, device=device)).to(dtype)
    stats = {"channel": torch.arange(c, device=device, dtype=dtype), "mean-of-means": mean, "mean-of-stds": std,
             "mean-of-stds_over_std-of-means": torch.ones_like(std), "std-of-means": std}
    file_sd = dict(sd, **{f"per_channel_statistics.{k}": v for k, v in stats.items()})
    out = {}
    if _wanted(impls, "reference"):
        ref = ref.to_empty(device=device).to(dtype)
        ref.load_state_dict(file_sd)  # the official loader takes the statistics out of the file
        out["reference"] = ref.eval()
    if _wanted(impls, "ours"):
        with torch.device("meta"):
            ours = VideoVAE(VideoVAEConfig.from_dict(official_cfg))
        ours.load_state_dict({k: v for k, v in file_sd.items() if k.rsplit(".", 1)[-1] not in UNUSED_VAE_STATISTICS},
                             strict=True, assign=True)
        out["ours"] = ours.eval()
    if _wanted(impls, "diffusers"):
        from diffusers import AutoencoderKLLTXVideo
        from diffusers.loaders.single_file_utils import convert_ltx_vae_checkpoint_to_diffusers

        state = {"vae." + k: v for k, v in file_sd.items()}
        # diffusers picks its 0.9.5 renames when encoder.conv_out has 2048 inputs; a narrower model shows it a
        # zero-size tensor of that shape and gets the real one back (as tests/test_diffusers_format.py does).
        real = state["vae.encoder.conv_out.conv.weight"]
        state["vae.encoder.conv_out.conv.weight"] = real.new_empty((real.shape[0], 2048, 0, 0, 0))
        d_sd = convert_ltx_vae_checkpoint_to_diffusers(state)
        d_sd["encoder.conv_out.conv.weight"] = real
        with torch.device("meta"):
            d = AutoencoderKLLTXVideo.from_config({k: v for k, v in d_cfg.items() if not k.startswith("_")})
        d.load_state_dict(d_sd, strict=True, assign=True)
        _check_materialised(d, "diffusers VAE")
        out["diffusers"] = d.eval()
    return out, stats


def upsamplers(cfg: dict, device, dtype, impls=None) -> dict:
    from ltx_video.models.autoencoders.latent_upsampler import LatentUpsampler as Reference

    from ltx_core.model.upsampler import LatentUpsampler, UpsamplerConfig

    ucfg = cfg["upsampler"]
    with torch.device("meta"):
        ref = Reference(**ucfg)
    gen = _gen(device)
    sd = {}
    for name, p in ref.named_parameters():  # as tests/tiny_upsampler.py
        if "norm" in name:
            sd[name] = _randn(p.shape, gen, device, dtype, 0.2, 1.0 if name.endswith("weight") else 0.0)
        else:
            sd[name] = _randn(p.shape, gen, device, dtype, 1 / math.sqrt(p[0].numel()))
    out = {}
    if _wanted(impls, "reference"):
        ref.load_state_dict(sd, strict=True, assign=True)
        _check_materialised(ref, "reference upsampler")
        out["reference"] = ref.eval()
    if _wanted(impls, "ours"):
        with torch.device("meta"):
            ours = LatentUpsampler(UpsamplerConfig(**ucfg))
        ours.load_state_dict(sd, strict=True, assign=True)
        out["ours"] = ours.eval()
    if _wanted(impls, "diffusers"):
        from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

        with torch.device("meta"):
            d = LTXLatentUpsamplerModel(**ucfg)
        d.load_state_dict(sd, strict=True, assign=True)
        _check_materialised(d, "diffusers upsampler")
        out["diffusers"] = d.eval()
    return out


# ------------------------------------------------------------------------------------------------ inputs


def text(cfg: dict, batch: int, device, dtype, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    length, valid = cfg["text_len"], cfg["text_valid"]
    emb = torch.randn(batch, length, cfg["transformer"]["caption_channels"], generator=g).to(device, dtype)
    mask = torch.zeros(batch, length, dtype=torch.long)
    mask[:, :valid] = 1
    return emb, mask.to(device)


def token_coords(batch, grid, frame_rate, causal, device):
    from ltx_core.model.transformer import video_token_coords

    return video_token_coords(batch, *grid, frame_rate, causal, device)


# ------------------------------------------------------------------------------------------------ measured callables


def build(measure: str, cfg: dict, impls) -> dict:
    """{impl: zero-argument callable returning the output}, for the impls that exist for `measure`."""
    device = torch.device(cfg["device"])
    dtype = getattr(torch, cfg["dtype"])
    return globals()["_build_" + measure](cfg, device, dtype, impls)


def _step_inputs(cfg, device, dtype) -> dict:
    """The `step` measurement's inputs: a CFG batch of latent tokens, their coordinates, a timestep, the text."""
    batch, grid = cfg["step"]["batch"], cfg["step"]["grid"]
    g = torch.Generator().manual_seed(2)
    tokens = torch.randn(batch, math.prod(grid), LATENT_CHANNELS, generator=g).to(device, dtype)
    context, mask = text(cfg, batch, device, dtype)
    causal = transformer_config_from_diffusers(cfg["transformer"])["causal_temporal_positioning"]
    return dict(batch=batch, tokens=tokens, coords=token_coords(batch, grid, 25.0, causal, device),
                t=torch.full((batch,), 0.7, device=device), context=context, mask=mask)


def _ours_step(model, inputs: dict):
    """One step of ours, given the text as ours' sampler passes it: trailing padding dropped once per generation
    (exact; see the function)."""
    from ltx_core.model.transformer.model import trim_text_padding

    ((ctx, ctx_mask),) = trim_text_padding(inputs["context"], inputs["mask"])
    tokens, coords, t = inputs["tokens"], inputs["coords"], inputs["t"]
    return lambda: model.forward_tokens(tokens, coords, t, ctx, ctx_mask)


def _build_step(cfg, device, dtype, impls):
    models = transformers(cfg, device, dtype, impls)
    inputs = _step_inputs(cfg, device, dtype)
    batch, tokens, coords, t = inputs["batch"], inputs["tokens"], inputs["coords"], inputs["t"]
    context, mask = inputs["context"], inputs["mask"]
    fns = {name: _ours_step(models[name], inputs) for name in ("ours", *configs.OV_IMPLS) if name in models}
    if "reference" in models:
        r = models["reference"]
        fns["reference"] = lambda: r(tokens, indices_grid=coords, encoder_hidden_states=context,
                                     timestep=t.reshape(batch, 1), encoder_attention_mask=mask, return_dict=False)[0]
    if "diffusers" in models:
        fns["diffusers"] = _diffusers_step(models["diffusers"], inputs)
    return fns


def _diffusers_step(model, inputs: dict):
    """One step of diffusers' transformer: it takes the official positions as video_coords and a timestep already
    scaled by 1000."""
    tokens, coords, t = inputs["tokens"], inputs["coords"], inputs["t"]
    context, mask = inputs["context"], inputs["mask"]
    return lambda: model(tokens, context, t * 1000, mask, video_coords=coords, return_dict=False)[0]


# ------------------------------------------------------------------------------------------------ LoRA

# Facts a builder reports alongside the timings (the worker adds them to its result as "info").
INFO: dict = {}


def _twin(model, cfg, weights: dict | None = None):
    """Another Transformer3D holding the very same weight tensors (no memory) but for `weights` (name -> tensor),
    set up as `transformers` sets up ours: a LoRA applied to one of them, or weights replaced in one, leave the other
    as it is."""
    from ltx_core.model.transformer import Transformer3D

    with torch.device("meta"):
        twin = Transformer3D(model.config)
    twin.load_state_dict({**model.state_dict(), **(weights or {})}, strict=True, assign=True)
    return _set_up(twin, cfg)


def _set_up(model, cfg):
    """fp8 matmuls and compilation as the config asks for them."""
    if cfg.get("fp8_matmul"):
        model.use_fp8_matmul()
    if cfg.get("compile"):
        model.compile_blocks()
    return model.eval()


def _trainer_lora(model, rank: int, dtype):
    """A LoRA as LTX-Video's trainer makes it (configs.LORA_LAYERS of every block, alpha = rank), held as a LoRA
    file is read: on the CPU, in `dtype`. down ~ N(0, 1/in), up ~ N(0, 0.01/rank): the entries of up @ down are a
    tenth the size of the weight's (N(0, 1/in), as `transformers` draws them)."""
    from ltx_core.lora import LayerPatch, Lora

    gen = torch.Generator().manual_seed(5)
    modules = dict(model.named_modules())
    patches = {}
    for i in range(len(model.transformer_blocks)):
        for layer in configs.LORA_LAYERS:
            target = f"transformer_blocks.{i}.{layer}"
            out_f, in_f = modules[target].weight.shape
            down = (torch.randn(rank, in_f, generator=gen) / in_f ** 0.5).to(dtype)
            up = (0.1 * torch.randn(out_f, rank, generator=gen) / rank ** 0.5).to(dtype)
            patches[target] = LayerPatch(target, down=down, up=up, alpha=float(rank))
    return Lora(f"bench-rank{rank}", patches)


def _merge(model, lora) -> None:
    """W += scale * up @ down for every patched layer, into new weight tensors (a twin's originals stay shared),
    summed in fp32 and stored back in the weight's own dtype (fp8 weights are re-quantised)."""
    modules = dict(model.named_modules())
    for target, p in lora.patches.items():
        w = modules[target].weight
        delta = p.scale * (p.up.to(w.device, torch.float32) @ p.down.to(w.device, torch.float32))
        w.data = (w.data.float() + delta).to(w.dtype)


def _timed_once(fn, device) -> float:
    import time

    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _build_lora(cfg, device, dtype, impls):
    """Ours at the step's shape: `plain` (no LoRA), `lora` (a LoRA of rank width * LORA_RANK_PER_WIDTH applied at
    compute time, entered
    once as a generation enters it), `merged` (the same LoRA merged into the weights once). The variants asked for
    share one set of weights, but for the merged layers' own copy."""
    from ltx_core.lora import LoraUse, applied_loras, lora_bytes

    if cfg.get("lean"):
        raise ValueError("the lora measurement does not take --lean (block streaming): it compares resident weights")
    base = transformers(cfg, device, dtype, ["ours"])["ours"]
    wanted = [v for v in configs.VARIANTS["lora"][0] if v in impls]
    models = {name: base if i == 0 else _twin(base, cfg) for i, name in enumerate(wanted)}
    rank = round(base.config.inner_dim * configs.LORA_RANK_PER_WIDTH)
    lora = _trainer_lora(base, rank, dtype)
    uses = [LoraUse(lora, 1.0)]
    compute = base.compute_dtype
    patched = [base.get_submodule(t) for t in lora.patches]
    INFO.update(rank=rank, layers=len(lora.patches), compute_dtype=str(compute).removeprefix("torch."),
                lora_bytes=lora_bytes(uses, compute),
                # the LoRA's two thin matmuls against the patched layers' own: r * (in + out) / (in * out), summed
                lora_flops_fraction=sum(rank * (m.in_features + m.out_features) for m in patched)
                / sum(m.in_features * m.out_features for m in patched))

    def enter_and_leave():
        with applied_loras(base, uses):
            pass

    INFO["apply_s"] = min(_timed_once(enter_and_leave, device) for _ in range(3))
    inputs = _step_inputs(cfg, device, dtype)
    fns = {}
    if "plain" in models:
        fns["plain"] = _ours_step(models["plain"], inputs)
    if "lora" in models:
        _KEEP_ALIVE.append(applied_loras(models["lora"], uses))
        _KEEP_ALIVE[-1].__enter__()  # once, as a generation does: its steps run with the LoRA applied
        fns["lora"] = _ours_step(models["lora"], inputs)
    if "merged" in models:
        INFO["merge_s"] = _timed_once(lambda: _merge(models["merged"], lora), device)
        fns["merged"] = _ours_step(models["merged"], inputs)
    return fns


# ------------------------------------------------------------------------------------------------ GGUF

# Outputs a variant's output is compared to, besides the measurement's reference variant's: variant -> zero-argument
# callable. Registered only where the baseline is built too (the timing worker), which runs each once.
COMPARE: dict = {}


def _build_gguf(cfg, device, dtype, impls):
    """One step at the step's shape with the block Linear weights held as: `dense` (the config's dtype), `fp8`
    (float8_e4m3fn, upcast per layer to the config's dtype), GGUF Q8_0 / Q4_K files read by ours (`q8_0`, `q4_k`:
    QuantizedLinear) and by diffusers (`diff_q8_0`, `diff_q4_k`). The transformer is configs.gguf's (32 heads); the
    files are written once per run into cfg["scratch"] from the seeded weights. Every variant but dense is also
    compared to ours dense holding the very values it stores (COMPARE)."""
    if cfg.get("lean"):
        raise ValueError("the gguf measurement does not take --lean (block streaming): it compares resident weights")
    cfg = configs.gguf(cfg)
    base = transformers(dict(cfg, fp8_matmul=False), device, dtype, ["ours"])["ours"]
    blocks = fp8_eligible_keys(base, "transformer_blocks.")
    inputs = _step_inputs(cfg, device, dtype)
    fns, weight_bytes, compared = {}, {}, {}
    for v in (v for v in configs.VARIANTS["gguf"][0] if v in impls):
        model, values = _gguf_variant(v, base, blocks, cfg, device, dtype)
        fns[v] = (_diffusers_step if v.startswith("diff_") else _ours_step)(model, inputs)
        weight_bytes[v] = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        if values is not None and "dense" in impls:
            storage = v.removeprefix("diff_")
            COMPARE[v] = compared.setdefault(storage, _dense_holding(base, values, inputs))
    t = cfg["transformer"]
    INFO.update(weight_bytes=weight_bytes, labels={"dense": str(dtype).removeprefix("torch.")},
                heads=t["num_attention_heads"], head_dim=t["attention_head_dim"], layers=len(blocks),
                block_weights=sum(base.get_parameter(k).numel() for k in blocks),
                random_values=[v for v in weight_bytes if configs.GGUF_TYPES.get(v.removeprefix("diff_"))
                               in gguf_files.K_FP16_FIELDS])
    return fns


def _gguf_variant(v, base, blocks, cfg, device, dtype):
    """(variant `v`'s model, a callable giving its block weights as ours dense would hold them, or None for dense)."""
    if v == "dense":
        return base, None
    if v == "fp8":
        model = _twin(base, {})  # its own fp8 block weights; the other tensors shared with dense
        _fp8_storage(model, device, dtype)  # computing in the config's dtype, as every variant here does
        return _set_up(model, cfg), lambda: {k: model.get_parameter(k).to(dtype) for k in blocks}
    qtype = configs.GGUF_TYPES[v.removeprefix("diff_")]
    path = gguf_files.ensure(Path(cfg["scratch"]) / f"{qtype}.gguf", base.state_dict(), blocks, qtype)
    shapes = {k: base.get_parameter(k).shape for k in blocks}

    def values():
        return gguf_files.dequantized(path, shapes, device, dtype)

    if v.startswith("diff_"):
        return _diffusers_gguf(path, cfg, device, dtype), values
    return _ours_gguf(path, base.config, cfg, device, dtype), values


def _dense_holding(base, values, inputs):
    """The step's output of ours dense with `values()` as its block weights, computed once when first asked for
    (the model is built for it and dropped)."""
    return functools.cache(lambda: _ours_step(_twin(base, {}, values()), inputs)())


def _ours_gguf(path, config, cfg, device, dtype):
    """Ours as it loads a GGUF file, told the release whose time positions the bench's config has (the file
    carries no config); a ValueError unless the file reads back as the model `config` describes."""
    from ltx_core import load_checkpoint
    from ltx_core.loader.checkpoint import Companion

    release = "0.9.8" if config.causal_temporal_positioning else "0.9.6"
    model = load_checkpoint(path, device=device, dtype=dtype, companion=Companion(release=release)).transformer
    if model.config != config:
        raise ValueError(f"{path} reads back as another model: {model.config} instead of {config}")
    return _set_up(model, dict(cfg, fp8_matmul=False))


def _diffusers_gguf(path, cfg, device, dtype):
    """diffusers' transformer from a GGUF file through its GGUF quantizer (weights dequantized per layer, in
    `dtype`), given the config as a local folder (no download)."""
    from diffusers import GGUFQuantizationConfig, LTXVideoTransformer3DModel

    folder = Path(cfg["scratch"]) / "diffusers-transformer"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg["transformer"]))
    model = LTXVideoTransformer3DModel.from_single_file(
        str(path), config=str(folder), quantization_config=GGUFQuantizationConfig(compute_dtype=dtype),
        torch_dtype=dtype)
    return model.to(device).eval()


def _build_vae_decode(cfg, device, dtype, impls):
    from ltx_video.models.autoencoders.vae_encode import vae_decode

    models, stats = vaes(cfg, device, dtype, impls)
    b, grid = cfg["vae_decode"]["batch"], cfg["vae_decode"]["grid"]
    g = torch.Generator().manual_seed(3)
    latent = torch.randn(b, LATENT_CHANNELS, *grid, generator=g).to(device, dtype)
    ts = torch.full((b,), 0.05, device=device)
    fns = {}
    if "ours" in models:
        m = models["ours"]
        fns["ours"] = lambda: m.decode(latent, timestep=ts, generator=torch.Generator(device).manual_seed(0))
    if "reference" in models:
        r = models["reference"]
        fns["reference"] = lambda: vae_decode(latent, r, is_video=True, vae_per_channel_normalize=True, timestep=ts)
    if "diffusers" in models:
        d = models["diffusers"]
        raw = latent * stats["std-of-means"].view(1, -1, 1, 1, 1) + stats["mean-of-means"].view(1, -1, 1, 1, 1)
        fns["diffusers"] = lambda: d.decode(raw, temb=ts, return_dict=False)[0]
    return fns


def _build_upsample(cfg, device, dtype, impls):
    models = upsamplers(cfg, device, dtype, impls)
    b, grid = cfg["upsample"]["batch"], cfg["upsample"]["grid"]
    x = torch.randn(b, LATENT_CHANNELS, *grid, generator=torch.Generator().manual_seed(4)).to(device, dtype)
    return {name: (lambda m=m: m(x)) for name, m in models.items()}


def _pipelines(cfg, device, dtype, impls, output_video):
    s = cfg["sample"]
    tr = transformers(cfg, device, dtype, impls)
    vae, _ = vaes(cfg, device, dtype, [*impls, "ours"] if set(impls) & set(configs.OV_IMPLS) else impls)
    pos, pm = text(cfg, 1, device, dtype, seed=1)
    neg, nm = text(cfg, 1, device, dtype, seed=2)
    nm[:, 5:] = 0
    precision = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}[cfg["dtype"]]
    yaml = dict(pipeline_type="base", guidance_scale=s["guidance_scale"], stg_scale=0, rescaling_scale=1,
                skip_block_list=[], num_inference_steps=s["steps"], stg_mode="attention_values", decode_timestep=0.05,
                decode_noise_scale=0.025, precision=precision, sampler="from_checkpoint", stochastic_sampling=False)
    common = dict(height=s["height"], width=s["width"], num_frames=s["frames"], frame_rate=25.0)
    fns = {name: _ours_pipeline(tr[name], vae["ours"], cfg, yaml, output_video, (pos, pm, neg, nm))
           for name in configs.OV_IMPLS if name in tr}  # OpenVINO's transformer, ours' torch VAE
    if "ours" in tr:
        fns["ours"] = _ours_pipeline(tr["ours"], vae["ours"], cfg, yaml, output_video, (pos, pm, neg, nm))
    if "reference" in tr:
        from ltx_video.models.transformers.symmetric_patchifier import SymmetricPatchifier
        from ltx_video.pipelines.pipeline_ltx_video import LTXVideoPipeline
        from ltx_video.schedulers.rf import RectifiedFlowScheduler
        from ltx_video.utils.skip_layer_strategy import SkipLayerStrategy

        pipe = LTXVideoPipeline(
            tokenizer=None, text_encoder=None, vae=vae["reference"], transformer=tr["reference"],
            scheduler=RectifiedFlowScheduler.from_config(dict(configs.SCHEDULER)),
            patchifier=SymmetricPatchifier(patch_size=1), prompt_enhancer_image_caption_model=None,
            prompt_enhancer_image_caption_processor=None, prompt_enhancer_llm_model=None,
            prompt_enhancer_llm_tokenizer=None)
        pipe.set_progress_bar_config(disable=True)
        kw = {k: v for k, v in yaml.items() if k not in ("pipeline_type", "precision", "sampler", "stg_mode")}

        def run_ref():
            return pipe(**kw, **common, skip_layer_strategy=SkipLayerStrategy.AttentionValues,
                        generator=torch.Generator(device).manual_seed(1234),
                        output_type="pt" if output_video else "latent", prompt=None, negative_prompt=None,
                        prompt_embeds=pos, prompt_attention_mask=pm, negative_prompt_embeds=neg,
                        negative_prompt_attention_mask=nm, conditioning_items=None, is_video=True,
                        vae_per_channel_normalize=True, image_cond_noise_scale=0.15, mixed_precision=False).images

        fns["reference"] = run_ref
    if "diffusers" in tr:
        from diffusers import FlowMatchEulerDiscreteScheduler, LTXPipeline

        dpipe = LTXPipeline(scheduler=FlowMatchEulerDiscreteScheduler(**configs.DIFFUSERS_SCHEDULER),
                            vae=vae["diffusers"], text_encoder=None, tokenizer=None, transformer=tr["diffusers"])
        dpipe.set_progress_bar_config(disable=True)

        def run_diffusers():
            return dpipe(prompt_embeds=pos, prompt_attention_mask=pm, negative_prompt_embeds=neg,
                         negative_prompt_attention_mask=nm, num_inference_steps=s["steps"],
                         guidance_scale=s["guidance_scale"], generator=torch.Generator(device).manual_seed(1234),
                         decode_timestep=0.05, decode_noise_scale=0.025, max_sequence_length=cfg["text_len"],
                         output_type="pt" if output_video else "latent", return_dict=False, **common)[0]

        fns["diffusers"] = run_diffusers
    return fns


def _ours_pipeline(transformer, vae, cfg, yaml, output_video, text_rows):
    """Ours' generate with `transformer` (eager, or run by OpenVINO) and ours' VAE."""
    from ltx_core.pipelines import GenerationRequest, Models, PipelineConfig, TextConditioning, generate

    s = cfg["sample"]
    tiling = "auto"
    if cfg.get("lean"):
        from ltx_core.geometry import latent_shape
        from ltx_core.memory.estimate import choose_decode_tiling

        shape = latent_shape(1, s["frames"], s["height"], s["width"])
        tiling = choose_decode_tiling(vae, shape, getattr(torch, cfg["dtype"]), int(cfg["lean"] * 2**30))
    models = Models(transformer, vae, scheduler_config=configs.SCHEDULER)
    pc, prompts = PipelineConfig.from_dict(yaml), TextConditioning(*text_rows)
    request = GenerationRequest(seed=1234, output="video" if output_video else "latents", decode_tiling=tiling,
                                height=s["height"], width=s["width"], num_frames=s["frames"], frame_rate=25.0)

    def run():
        res = generate(models, pc, prompts, request)
        return res.video if output_video else res.latents

    return run


def _build_sample(cfg, device, dtype, impls):
    return _pipelines(cfg, device, dtype, impls, output_video=False)


def _build_e2e(cfg, device, dtype, impls):
    return _pipelines(cfg, device, dtype, impls, output_video=True)
