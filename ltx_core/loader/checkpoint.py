"""Load an LTX-Video checkpoint: the official single file, or a diffusers-format folder."""
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..model.transformer import Transformer3D, TransformerConfig
from ..model.video_vae import VideoVAE, VideoVAEConfig
from . import detect, diffusers_format
from .errors import ModelFileError
from .file_kind import describe_foreign, foreign_kind
from .gguf_file import GGUFFile, check_file, is_gguf, load_gguf_transformer
from .precision import FP8, FP8_COMPUTE, dtype_chooser, fp8_eligible_keys, parse_dtype
from .releases import resolve_release
from .safetensors_file import SafetensorsFile, tensor_sources
from .strict_load import load_strict

TRANSFORMER_PREFIX = "model.diffusion_model."
VAE_PREFIX = "vae."
# Old VAE files name some modules as diffusers did; the official loader renames them the same way.
_VAE_RENAMES = ((".resnets.", ".res_blocks."), ("downsamplers.0", "downsample"), ("upsamplers.0", "upsample"))
_STATS = "per_channel_statistics."
# Real files carry five statistics; only these two take part in the maths.
_USED_STATS = ("std-of-means", "mean-of-means")
# Files re-saved from a loaded official model name the two statistics as its buffers.
_STAT_BUFFERS = {"std_of_means": _STATS + "std-of-means", "mean_of_means": _STATS + "mean-of-means"}


@dataclass
class Checkpoint:
    path: str
    transformer: Transformer3D | None
    vae: VideoVAE | None
    config: dict  # {"transformer": ..., "vae": ..., "scheduler": ...}, the official metadata format
    allowed_inference_steps: list[float] | None = None
    config_source: str = "metadata"  # or "detected" (no metadata: inferred from tensor names and shapes)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Companion:
    """What a file without a config cannot say itself: the release (`releases.RELEASE_CHOICES`; "auto" reads it
    from the file name) and the config of the VAE that will decode for it, if it comes from another file."""

    release: str = "auto"
    vae_config: object = None  # a dict or a VideoVAEConfig


def load_checkpoint(path, device="cpu", dtype=torch.float32, vae_dtype=None, companion: Companion = Companion(),
                    transformer_device=None) -> Checkpoint:
    """`dtype` is the transformer's weight dtype (fp8 means fp8 storage, bf16 compute; the compute dtype for a
    GGUF file); the VAE gets `vae_dtype`, by default the same, or bf16 when the transformer is stored in fp8.
    `transformer_device` (default `device`) "meta": the transformer is checked against the file but not read, for
    a backend that converts it from the file itself."""
    dtype = parse_dtype(dtype)
    vae_dtype = parse_dtype(vae_dtype) if vae_dtype is not None else (FP8_COMPUTE if dtype in FP8 else dtype)
    if vae_dtype in FP8:
        raise ValueError("the VAE cannot be stored in fp8; choose float32, bfloat16 or float16 for it")
    path = Path(path)
    devices = (transformer_device or device, device)
    if path.is_dir():
        return _load_diffusers_folder(path, devices, dtype, vae_dtype)
    if is_gguf(path):
        return _load_gguf(path, devices[0], dtype, companion)
    with SafetensorsFile(path) as f:
        return _load_single_file(f, devices, dtype, vae_dtype, companion)


def holds_vae(path) -> bool:
    """Whether a model file (or diffusers folder) has a VAE, from its names alone: nothing is loaded."""
    path = Path(path)
    if path.is_dir():
        return (path / "vae").is_dir()
    if is_gguf(path) or not path.is_file():
        return False
    with SafetensorsFile(path) as f:
        return any(k.startswith((VAE_PREFIX, "encoder.", "decoder.")) for k in f.keys())


def transformer_only(path) -> bool:
    """Whether a model file (or diffusers folder) holds a transformer and no VAE, from its names alone: such a file
    needs its VAE from another. Files of other kinds say False: their loader names what they are."""
    path = Path(path)
    if path.is_dir():
        return (path / "transformer").is_dir() and not (path / "vae").is_dir()
    if is_gguf(path):
        return True
    if not path.is_file():
        return False
    with SafetensorsFile(path) as f:
        keys = f.keys()
    return (any(k.startswith((TRANSFORMER_PREFIX, "transformer_blocks.")) for k in keys)
            and not any(k.startswith((VAE_PREFIX, "encoder.", "decoder.")) for k in keys))


def _load_gguf(path: Path, device, dtype, companion: Companion) -> Checkpoint:
    if dtype in FP8:
        raise ModelFileError(path, "a GGUF model is quantized already: compute it in bfloat16, float16 or float32 "
                                   "(not fp8)")
    f = GGUFFile(path)
    check_file(f)
    configs, note = _release_configs(path, {k: f.shape(k) for k in f.keys()}, companion)
    model = _meta_model(path, configs, "transformer", "transformer", TransformerConfig, Transformer3D)
    load_gguf_transformer(f, model, dtype, device)
    types = sorted({f.quant_type(k) for k in f.keys()})
    return Checkpoint(path=str(path), transformer=model, vae=None, config=configs, config_source="release",
                      notes=[note, f"GGUF tensors: {', '.join(types)}"])


def _release_configs(path, shapes: dict, companion: Companion, vae_config: dict | None = None) -> tuple[dict, str]:
    """Configs for a transformer without metadata: the architecture from `shapes`, the rest from its release."""
    transformer = detect.transformer_config_from_shapes(shapes)
    try:
        release, note = resolve_release(companion.release, path, transformer["num_layers"],
                                        vae_config or companion.vae_config)
    except ValueError as e:
        raise ModelFileError(path, str(e)) from None
    transformer["causal_temporal_positioning"] = release.causal_temporal_positioning
    return {"transformer": transformer, "vae": vae_config, "scheduler": release.scheduler}, note


def _split_single_file(f: SafetensorsFile):
    known = foreign_kind(f.keys())
    if known:
        raise ModelFileError(f.path, known)
    transformer, vae, other = {}, {}, []
    for k in f.keys():
        if k.startswith(TRANSFORMER_PREFIX):
            transformer[k[len(TRANSFORMER_PREFIX):]] = (f, k)
        elif k.startswith(VAE_PREFIX):
            vae[k[len(VAE_PREFIX):]] = (f, k)
        else:
            other.append(k)
    if other and not transformer and not vae:  # one model saved with bare names (ComfyUI's diffusion_models, vae)
        bare = {k: (f, k) for k in other}
        if any(k.startswith("transformer_blocks.") for k in other):
            transformer, other = bare, []
        elif any(k.startswith(("encoder.", "decoder.")) for k in other):
            vae, other = bare, []
    if not transformer and not vae:
        raise ModelFileError(f.path, describe_foreign(f.keys()))
    if other:
        shown = ", ".join(repr(k) for k in other[:5])
        raise ModelFileError(f.path, f"{len(other)} tensor(s) belong to neither the transformer "
                                     f"({TRANSFORMER_PREFIX}*) nor the VAE ({VAE_PREFIX}*): {shown}")
    return transformer, vae


def _load_single_file(f: SafetensorsFile, devices, dtype, vae_dtype, companion: Companion) -> Checkpoint:
    """`devices`: (the transformer's, the VAE's)."""
    transformer_src, vae_src = _split_single_file(f)
    vae_src = _official_vae_source(vae_src)
    configs = f.json_metadata("config")
    notes = []
    if configs is None:
        vae_cfg = detect.vae_config_from_shapes({k: f.shape(key) for k, (_, key) in vae_src.items()}) if vae_src else None
        configs = {"vae": vae_cfg, "scheduler": detect.default_scheduler_config(vae_cfg)}
        if transformer_src:
            shapes = {k: f.shape(key) for k, (_, key) in transformer_src.items()}
            configs, note = _release_configs(f.path, shapes, companion, vae_cfg)
            notes.append(note)
        source = "detected"
        notes.append("no config in the file's metadata: the architecture was inferred from tensor names and shapes")
    else:
        source = "metadata"
        if not isinstance(configs, dict):
            raise ModelFileError(f.path, "metadata entry 'config' is not a JSON object")
    transformer = vae = None
    if transformer_src:
        transformer = _build_transformer(f.path, configs, transformer_src, devices[0], dtype)
    if vae_src:
        vae = _build_vae(f.path, configs, vae_src, devices[1], vae_dtype)
    return Checkpoint(path=str(f.path), transformer=transformer, vae=vae,
                      config={k: configs.get(k) for k in ("transformer", "vae", "scheduler")},
                      allowed_inference_steps=configs.get("allowed_inference_steps"),
                      config_source=source, notes=notes)


def _section(path, configs: dict, name: str) -> dict:
    section = configs.get(name)
    if not isinstance(section, dict):
        raise ModelFileError(path, f"the metadata config has no {name!r} section, but the file holds {name} weights")
    return section


def _meta_model(path, configs, section: str, what: str, config_cls, model_cls):
    """The model a config section describes, on the meta device (no memory) until its weights are assigned."""
    try:
        cfg = config_cls.from_dict(_section(path, configs, section))
    except ValueError as e:
        raise ModelFileError(path, f"{what} config: {e}") from None
    with torch.device("meta"):
        return model_cls(cfg)


def _build_transformer(path, configs, source, device, dtype) -> Transformer3D:
    model = _meta_model(path, configs, "transformer", "transformer", TransformerConfig, Transformer3D)
    choose = dtype_chooser(dtype, fp8_eligible_keys(model, "transformer_blocks."))
    return load_strict(model, source, path, "transformer", choose, device)


def _official_vae_source(source: dict) -> dict:
    out = {}
    for k, v in source.items():
        k = _STAT_BUFFERS.get(k, k)
        if k.startswith(_STATS):
            if k[len(_STATS):] in _USED_STATS:
                out[k] = v
            continue
        for old, new in _VAE_RENAMES:
            k = k.replace(old, new)
        out[k] = v
    return out


def _build_vae(path, configs, source, device, dtype) -> VideoVAE:
    model = _meta_model(path, configs, "vae", "VAE", VideoVAEConfig, VideoVAE)
    expected = model.state_dict().keys()
    # The official loader drops stale normalisation tensors that the configured blocks do not have.
    source = {k: v for k, v in source.items() if k in expected or "norm" not in k or k.startswith(_STATS)}
    mean_key, std_key = _STATS + "mean-of-means", _STATS + "std-of-means"
    if mean_key not in source and std_key in source:
        # Older files carry only the std; the official loader then takes a zero mean.
        f, key = source[std_key]
        source = {**source, mean_key: torch.zeros(f.shape(key))}
    load_strict(model, source, path, "VAE", lambda _key: dtype, device)
    return model


def _load_diffusers_folder(path: Path, devices, dtype, vae_dtype) -> Checkpoint:
    """`devices`: (the transformer's, the VAE's)."""
    parts = {name: path / name for name in ("transformer", "vae") if (path / name).is_dir()}
    if not parts:
        raise ModelFileError(path, "a folder must be in diffusers layout, with a 'transformer/' and/or 'vae/' "
                                   "subfolder (each with config.json and diffusion_pytorch_model*.safetensors)")
    configs = {}
    transformer = vae = None
    if "transformer" in parts:
        folder = parts["transformer"]
        d_cfg, weights = _diffusers_part(folder)
        configs["transformer"] = _convert_config(folder, diffusers_format.transformer_config_from_diffusers, d_cfg)
        with tensor_sources(weights) as files:
            source = _rekey(files, {k: diffusers_format.transformer_key_from_diffusers(k) for k in files})
            transformer = _build_transformer(folder, configs, source, devices[0], dtype)
    if "vae" in parts:
        folder = parts["vae"]
        d_cfg, weights = _diffusers_part(folder)
        configs["vae"] = _convert_config(folder, diffusers_format.vae_config_from_diffusers, d_cfg)
        with tensor_sources(weights) as files:
            try:
                key_map = diffusers_format.vae_key_map_from_diffusers(list(files), d_cfg)
            except ValueError as e:
                raise ModelFileError(folder, str(e)) from None
            vae = _build_vae(folder, configs, _rekey(files, key_map), devices[1], vae_dtype)
    configs["scheduler"] = detect.default_scheduler_config(configs.get("vae"))
    return Checkpoint(path=str(path), transformer=transformer, vae=vae, config=configs, config_source="diffusers",
                      notes=["diffusers-format folder: configs converted to the official format"])


def _convert_config(folder, convert, d_cfg):
    try:
        return convert(d_cfg)
    except ValueError as e:
        raise ModelFileError(folder / "config.json", str(e)) from None


def _diffusers_part(folder: Path):
    """(diffusers config, weight files) of one model folder."""
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise ModelFileError(folder, "config.json is missing")
    try:
        d_cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise ModelFileError(cfg_path, f"not valid JSON: {e}") from None
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        pickled = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".ckpt", ".pth"))
        hint = f" (found {', '.join(pickled)}: pickled weights are not loaded, use the .safetensors release)" if pickled else ""
        raise ModelFileError(folder, "no .safetensors weights found" + hint)
    return d_cfg, weights


def _rekey(files: dict, key_map: dict) -> dict:
    return {key_map[k]: v for k, v in files.items()}
