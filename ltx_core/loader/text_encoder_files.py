"""Find and load the T5 v1.1 XXL text encoder in any of the layouts it is distributed in.

(a) PixArt-style folder, as the official pipeline reads it: `text_encoder/` (config.json + weights) and
    `tokenizer/`.
(b) Plain Hugging Face T5 folder: config.json, `model.safetensors` or shards listed in
    `model.safetensors.index.json`, tokenizer files alongside.
(c) One ComfyUI-style file (`t5xxl_fp16.safetensors`, `t5xxl_fp8_e4m3fn.safetensors`, ...): Hugging Face key
    names, no config (it is read off the tensor shapes) and no tokenizer (found next to the file, or in the
    folders the caller names, e.g. ComfyUI's own copy).
"""
import json
import re
from pathlib import Path
from typing import Sequence

import torch
from transformers import T5Config, T5EncoderModel, T5TokenizerFast

from ..model.text_encoder import MAX_TOKENS, T5TextEncoder, block_linear_names, build_t5_encoder, use_weight_scale
from .errors import ModelFileError
from .file_kind import describe_foreign
from .precision import FP8, FP8_COMPUTE, parse_dtype
from .safetensors_file import SafetensorsFile, tensor_sources
from .strict_load import check_against

WHAT = "T5 encoder"
_EMBEDDINGS = ("shared.weight", "encoder.embed_tokens.weight")  # one tied matrix under two names
_PICKLED = (".bin", ".pt", ".pth", ".ckpt")
# Parts of full encoder-decoder T5 checkpoints that the text encoder does not use.
_UNUSED_PREFIXES = ("decoder.", "lm_head.")
# ComfyUI "scaled fp8" files: a marker tensor, and per-Linear scales. The input scales only serve fp8 x fp8
# matmul kernels; here the weights are upcast, so only the weight scales take part in the maths.
_SCALED_FP8_MARKER = "scaled_fp8"
_WEIGHT_SCALE = ".scale_weight"
_INPUT_SCALE = ".scale_input"
# ComfyUI's newer quantization layouts (per-layer format records, block scales, ...), not read here.
_NEWER_QUANT_SUFFIXES = (".comfy_quant", ".weight_scale", ".weight_scale_2", ".input_scale")
_TOKENIZER_FILES = ("tokenizer.json", "spiece.model")
_TOKENIZER_HINT = ("the T5 v1.1 tokenizer files (tokenizer.json, or spiece.model, with tokenizer_config.json and "
                   "special_tokens_map.json; e.g. ComfyUI's comfy/text_encoders/t5_tokenizer/ or the tokenizer/ "
                   "folder of PixArt-alpha/PixArt-XL-2-1024-MS)")


def load_text_encoder(path, device="cpu", dtype=torch.float32, tokenizer_path=None,
                      tokenizer_dirs: Sequence = ()) -> T5TextEncoder:
    """`dtype` is the weight dtype: float32, bfloat16 (recommended), float16, or fp8 (the block Linears stored in
    fp8, everything computed in bf16). An fp8 file loaded with a non-fp8 dtype is upcast once, at load.
    A single file's tokenizer is looked for next to it, then in `tokenizer_dirs` (e.g. the copy a host
    application ships); `tokenizer_path` names it outright.
    The tokenizer is found and checked before any weight is read, so a missing one costs no loading time.
    `device` "meta": the weights are checked against the file and left unread."""
    dtype = parse_dtype(dtype)
    path = Path(path)
    if path.is_dir():
        model_dir = path / "text_encoder" if (path / "text_encoder").is_dir() else path
        config = _folder_config(model_dir)
        tokenizer = _load_tokenizer(_find_tokenizer(
            path, tokenizer_path, [model_dir, path / "tokenizer", model_dir.parent / "tokenizer"],
            f"put {_TOKENIZER_HINT} into {path / 'tokenizer'} or next to {model_dir / 'config.json'}, or pass "
            "tokenizer_path"), config.vocab_size)
        model = _load_folder(model_dir, config, device, dtype)
    else:
        with SafetensorsFile(path) as f:
            config = _single_file_config(f)
            tokenizer = _load_tokenizer(_find_tokenizer(
                path, tokenizer_path, [path.parent, path.parent / "tokenizer", *map(Path, tokenizer_dirs)],
                f"put {_TOKENIZER_HINT} into {path.parent / 'tokenizer'}, or pass tokenizer_path"), config.vocab_size)
            model = _build(f.path, config, {k: (f, k) for k in f.keys() if not k.startswith(_UNUSED_PREFIXES)},
                           device, dtype)
    return T5TextEncoder(model, tokenizer, MAX_TOKENS)


# ---- weights ----

def _folder_config(folder: Path) -> T5Config:
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise ModelFileError(folder, "not a T5 folder: config.json is missing (expected a Hugging Face T5 folder, "
                                     "a PixArt-style folder with text_encoder/ and tokenizer/, or a single "
                                     "t5xxl_*.safetensors file)")
    try:
        raw = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise ModelFileError(cfg_path, f"not valid JSON: {e}") from None
    if not isinstance(raw, dict) or raw.get("model_type") != "t5":
        kind = raw.get("model_type") if isinstance(raw, dict) else None
        raise ModelFileError(cfg_path, f"model_type is {kind!r}, not 't5': this is not a T5 encoder config")
    return T5Config.from_dict(raw)


def _load_folder(folder: Path, config: T5Config, device, dtype) -> T5EncoderModel:
    with tensor_sources(_weight_files(folder), keep=lambda k: not k.startswith(_UNUSED_PREFIXES)) as source:
        return _build(folder, config, source, device, dtype)


def _weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
            names = sorted(set(weight_map.values()))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            raise ModelFileError(index, f"not a valid safetensors index (no 'weight_map' of file names): {e}") from None
        files = [folder / n for n in names]
        absent = [n for n, p in zip(names, files, strict=True) if not p.is_file()]
        if absent:
            raise ModelFileError(index, f"lists shard(s) that are not in the folder: {', '.join(absent)}")
        return files
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        pickled = sorted(p.name for p in folder.iterdir() if p.suffix in _PICKLED)
        hint = (f" (found {', '.join(pickled)}: pickled weights are not loaded because loading them can run code; "
                "use the .safetensors release or convert them)") if pickled else ""
        raise ModelFileError(folder, "no .safetensors weights found" + hint)
    return files


def _single_file_config(f: SafetensorsFile) -> T5Config:
    keys = set(f.keys())
    if not any(k.startswith("encoder.block.") for k in keys):
        if any(k.startswith(("model.diffusion_model.", "vae.")) for k in keys):
            raise ModelFileError(f.path, "this is an LTX-Video checkpoint (transformer/VAE), not a T5 text encoder")
        raise ModelFileError(f.path, "not a T5 text encoder (no 'encoder.block.*' tensors): " + describe_foreign(keys))
    return _config_from_shapes(f, keys)


def _config_from_shapes(f: SafetensorsFile, keys: set[str]) -> T5Config:
    def shape(key):
        if key not in keys:
            raise ModelFileError(f.path, f"tensor {key!r} is missing; it is needed to tell the T5 encoder's size")
        return f.shape(key)

    embedding = next((k for k in _EMBEDDINGS if k in keys), _EMBEDDINGS[0])
    vocab_size, d_model = shape(embedding)
    first = "encoder.block.0.layer."
    buckets, num_heads = shape(first + "0.SelfAttention.relative_attention_bias.weight")
    inner = shape(first + "0.SelfAttention.q.weight")[0]
    if first + "1.DenseReluDense.wi.weight" in keys:
        raise ModelFileError(f.path, "this is an original T5 (v1.0, ReLU feed-forward); LTX-Video's text encoder is "
                                     "T5 v1.1 XXL (gated-GELU, wi_0/wi_1)")
    d_ff = shape(first + "1.DenseReluDense.wi_0.weight")[0]
    num_layers = len({m.group(1) for k in keys if (m := re.match(r"encoder\.block\.(\d+)\.", k))})
    if inner % num_heads:
        raise ModelFileError(f.path, f"attention width {inner} is not a multiple of the {num_heads} heads that "
                                     "relative_attention_bias has")
    return T5Config(vocab_size=vocab_size, d_model=d_model, d_kv=inner // num_heads, d_ff=d_ff,
                    num_layers=num_layers, num_heads=num_heads, relative_attention_num_buckets=buckets,
                    feed_forward_proj="gated-gelu")


def _build(path, config: T5Config, source: dict, device, dtype) -> T5EncoderModel:
    """`source`: file tensors by name, in Hugging Face naming; quantization extras are handled here."""
    scales = _take_quantization_extras(path, source)
    fp8_storage = dtype in FP8
    try:
        with torch.device("meta"):
            model = build_t5_encoder(config, fp8_storage)
    except ValueError as e:
        raise ModelFileError(path, str(e)) from None
    linears = block_linear_names(model)
    for layer, (f, key) in scales.items():
        if layer not in linears:
            raise ModelFileError(path, f"{key!r} scales {layer!r}, which is not a Linear layer of the T5 blocks")
        if f.shape(key) not in ((), (1,)):
            raise ModelFileError(path, f"{key!r} has shape {list(f.shape(key))}; only per-tensor weight scales "
                                       "are supported")
        use_weight_scale(model, layer, f.shape(key))
    # One matrix serves both names; a file may carry it under either or both.
    present = [k for k in _EMBEDDINGS if k in source]
    if present:
        for k in _EMBEDDINGS:
            source[k] = source[present[0]]
    for f, key in set(source.values()):
        if not f.dtype(key).is_floating_point:
            raise ModelFileError(f.path, f"tensor {key!r} is stored as {f.dtype(key)}; only float32/bfloat16/"
                                         "float16/fp8 weights are supported")
    check_against(model, source, path, WHAT)
    if torch.device(device).type == "meta":  # checked, not read: another runtime reads the weights from the file
        return model.eval().requires_grad_(False)

    linear_weights = {f"{name}.weight" for name in linears}
    # What transformers does when it loads T5 in fp16: the modules it names stay in float32.
    fp32_in_fp16 = set(T5EncoderModel._keep_in_fp32_modules or ())

    def dtype_for(key: str, stored: torch.dtype) -> torch.dtype:
        if key.endswith(_WEIGHT_SCALE):
            return torch.float32
        if fp8_storage:
            if key not in linear_weights:
                return FP8_COMPUTE
            return stored if stored in FP8 else dtype
        if dtype == torch.float16 and fp32_in_fp16 & set(key.split(".")):
            return torch.float32
        return dtype

    state, read = {}, {}
    for k, (f, key) in source.items():
        if (f.path, key) not in read:
            read[(f.path, key)] = f.tensor(key, dtype=dtype_for(k, f.dtype(key)), device=device)
        state[k] = read[(f.path, key)]
    model.load_state_dict(state, strict=True, assign=True)
    # assign=True gave each name its own Parameter; the encoder must use the very same embedding.
    model.encoder.embed_tokens.weight = model.shared.weight
    return model.eval().requires_grad_(False)


def _take_quantization_extras(path, source: dict) -> dict:
    """Drop the scaled-fp8 marker and input scales from `source`; return {layer: (file, key)} of its weight
    scales, which stay in `source` as the `scale_weight` buffers of their layers."""
    newer = sorted(k for k in source if k.endswith(_NEWER_QUANT_SUFFIXES))
    if newer:
        raise ModelFileError(path, f"uses one of ComfyUI's newer quantized layouts ({newer[0]!r}, ...), which this "
                                   "loader does not read; use t5xxl_fp16.safetensors or t5xxl_fp8_e4m3fn.safetensors")
    source.pop(_SCALED_FP8_MARKER, None)
    for k in [k for k in source if k.endswith(_INPUT_SCALE)]:
        del source[k]
    return {k[: -len(_WEIGHT_SCALE)]: source[k] for k in source if k.endswith(_WEIGHT_SCALE)}


# ---- tokenizer ----

def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in _TOKENIZER_FILES)


def _find_tokenizer(path: Path, explicit, candidates: list[Path], where_to_put: str) -> Path:
    if explicit is not None:
        explicit = Path(explicit)
        if not _has_tokenizer(explicit):
            raise ModelFileError(explicit, f"tokenizer_path holds no T5 tokenizer ({' or '.join(_TOKENIZER_FILES)})")
        return explicit
    for folder in candidates:
        if _has_tokenizer(folder):
            return folder
    looked = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise ModelFileError(path, f"no T5 tokenizer found (looked in: {looked}); {where_to_put}")


def _load_tokenizer(folder: Path, vocab_size: int):
    # T5TokenizerFast reads tokenizer.json (all that ComfyUI ships) or converts spiece.model; in transformers 5
    # the name resolves to T5Tokenizer, the same tokenizers-backed class the official pipeline gets there.
    try:
        tokenizer = T5TokenizerFast.from_pretrained(str(folder))
    except Exception as e:  # tokenizer libraries raise many kinds; all mean the same to the user
        raise ModelFileError(folder, f"cannot load the T5 tokenizer from this folder: {e}") from None
    if len(tokenizer) > vocab_size:
        raise ModelFileError(folder, f"the tokenizer has {len(tokenizer)} tokens but the T5 encoder's embedding has "
                                     f"{vocab_size} rows: it is not the T5 v1.1 tokenizer")
    return tokenizer
