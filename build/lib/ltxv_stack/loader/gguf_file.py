"""GGUF transformer files (city96's and QuantStack's LTX-Video releases): official tensor names without the
`model.diffusion_model.` prefix, `general.architecture = "ltxv"`, the block layers' weights quantized.

The file is memory-mapped (the `gguf` package parses it). Quantized weights stay as their bytes, on the CPU without a
copy: the layer dequantizes them on its device right before its matmul (`ops.QuantizedLinear`), so resident memory is
the file's size. The few full-precision tensors (norms, biases, tables, the embeddings) become the compute dtype.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from ..model.ops import Linear, quantize_layer
from ..model.transformer import Transformer3D
from ..quantization.gguf_dequant import QUANT_BLOCKS
from .errors import ModelFileError
from .strict_load import check_against

ARCHITECTURE = "ltxv"
DENSE = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def is_gguf(path) -> bool:
    return Path(path).suffix.lower() == ".gguf"


class GGUFFile:
    """The tensors of one GGUF file by name, with the interface the strict loader reads shapes through."""

    def __init__(self, path):
        from gguf import GGUFReader  # the reader only: dequantization is ours

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelFileError(path, "file not found")
        try:
            reader = GGUFReader(str(self.path), "r")
        except Exception as e:  # the reader raises ValueError, struct/IndexError, OSError on bad bytes
            raise ModelFileError(path, f"not a readable GGUF file (truncated or corrupt download?): "
                                       f"{type(e).__name__}: {e}") from None
        self.architecture = _architecture(reader)
        self._tensors = {t.name: t for t in reader.tensors}

    def keys(self) -> list[str]:
        return list(self._tensors)

    def quant_type(self, key: str) -> str:
        return self._tensors[key].tensor_type.name

    def shape(self, key: str) -> tuple[int, ...]:
        # GGUF lists dimensions fastest-first (ggml order): torch's order is the reverse.
        return tuple(int(d) for d in reversed(self._tensors[key].shape))

    def raw(self, key: str) -> torch.Tensor:
        """The stored bytes or values, without a copy (read-only memory: never written to)."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*non-writable.*")
            return torch.from_numpy(self._tensors[key].data)

    def dense(self, key: str, dtype: torch.dtype, device) -> torch.Tensor:
        stored = self.raw(key)
        if self.quant_type(key) == "BF16":  # the reader hands bf16 over as its bytes
            stored = stored.view(torch.bfloat16)
        # Always a copy: these are small, and a view would leave a writable-looking tensor on read-only pages.
        return stored.reshape(self.shape(key)).to(device=device, dtype=dtype, copy=True)


def _architecture(reader) -> str | None:
    field = reader.fields.get("general.architecture")
    return None if field is None else str(field.contents())


def check_file(f: GGUFFile) -> None:
    """An LTX-Video transformer in types we read; ModelFileError naming what is not."""
    if f.architecture != ARCHITECTURE:
        found = f"general.architecture = {f.architecture!r}" if f.architecture else "no general.architecture"
        raise ModelFileError(f.path, f"this GGUF file is not an LTX-Video transformer ({found}; LTX-Video files say "
                                     f"{ARCHITECTURE!r})")
    for key in f.keys():
        t = f.quant_type(key)
        if t not in DENSE and t not in QUANT_BLOCKS:
            supported = ", ".join([*DENSE, *QUANT_BLOCKS])
            raise ModelFileError(f.path, f"tensor {key!r} is stored as {t}, which is not supported (supported: "
                                         f"{supported}); download another quantization of the model")
    if not any(k.startswith("transformer_blocks.") for k in f.keys()):
        raise ModelFileError(f.path, "this GGUF file holds no LTX-Video transformer blocks (transformer_blocks.*)")


def load_gguf_transformer(f: GGUFFile, model: Transformer3D, dtype: torch.dtype, device) -> Transformer3D:
    """Fill `model` (built on the meta device from the file's shapes) from `f`, strictly: every name and shape
    checked first; quantized tensors only as linear layers' weights."""
    source = {k: (f, k) for k in f.keys()}
    check_against(model, source, f.path, "transformer")
    modules = dict(model.named_modules())
    dense = {}
    for key in f.keys():
        t = f.quant_type(key)
        if t in DENSE:
            dense[key] = f.dense(key, dtype, device)
            continue
        owner, _, leaf = key.rpartition(".")
        layer = modules.get(owner)
        if leaf != "weight" or not isinstance(layer, Linear):
            raise ModelFileError(f.path, f"tensor {key!r} is quantized ({t}) but is not a linear layer's weight")
        quantize_layer(layer, f.raw(key).to(device), t)
    model.load_state_dict(dense, strict=False, assign=True)
    _check_filled(model, f.path)
    return model.eval().requires_grad_(False)


def _check_filled(model: nn.Module, path) -> None:
    empty = [n for n, p in model.named_parameters() if p.is_meta] + [n for n, b in model.named_buffers() if b.is_meta]
    if empty:
        raise ModelFileError(path, f"{len(empty)} transformer tensor(s) were not filled: {', '.join(empty[:5])}")
