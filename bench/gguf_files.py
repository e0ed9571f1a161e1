"""GGUF transformer files for the `gguf` measurement, laid out as the published LTX-Video GGUF files are: official
tensor names without a prefix, `general.architecture = "ltxv"`, the block Linear weights quantized, every other
tensor F32.

Q8_0 (and gguf's other legacy types) is quantized from the weights by gguf's numpy code. gguf cannot quantize
K-quants, so a Q4_K file holds random blocks whose fp16 scales are finite and sized so that the values have the
dense weights' spread (N(0, 1/in)): right for timing and memory, unrelated to the dense weights otherwise.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

ARCHITECTURE = "ltxv"
# Byte offsets of the fp16 fields (d, dmin) in a K-quant block: random bytes there could be NaN or inf.
K_FP16_FIELDS = {"Q4_K": (0, 2)}
# The std of a Q4_K block's values per unit std of its d and dmin, with uniformly random 6-bit scales and
# nibbles (measured with gguf's dequantize over 4096 blocks: 330).
Q4_K_SPREAD = 330.0


def _qtype(name: str):
    import gguf

    return gguf.GGMLQuantizationType[name]


def _random_k(name: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Random `name` blocks for a weight of `shape`, as gguf's writer takes them (rows of bytes)."""
    from ltx_core.quantization.gguf_dequant import QUANT_BLOCKS

    elements, size = QUANT_BLOCKS[name]
    rng = np.random.default_rng(seed)
    n_blocks = int(np.prod(shape)) // elements
    blocks = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    scale = 1 / (Q4_K_SPREAD * shape[-1] ** 0.5)
    for start in K_FP16_FIELDS[name]:
        fp16 = (rng.standard_normal(n_blocks) * scale).astype(np.float16)
        blocks[:, start:start + 2] = fp16.view(np.uint8).reshape(n_blocks, 2)
    return blocks.reshape(*shape[:-1], shape[-1] // elements * size)


def _quantized(values: np.ndarray, name: str, seed: int) -> np.ndarray:
    import gguf

    if name in K_FP16_FIELDS:
        return _random_k(name, values.shape, seed)
    return gguf.quants.quantize(np.ascontiguousarray(values, dtype=np.float32), _qtype(name))


def ensure(path, state_dict: dict, quantized: set[str], qtype: str) -> Path:
    """`path`, written from `state_dict` (official names) unless it exists: the tensors in `quantized` as `qtype`,
    the others F32. Written under another name and renamed, so a file that exists is complete."""
    import gguf

    path = Path(path)
    if path.exists():
        return path
    part = path.with_name(path.name + ".part")
    writer = gguf.GGUFWriter(str(part), ARCHITECTURE)
    for i, (name, t) in enumerate(state_dict.items()):
        values = t.detach().to("cpu", torch.float32).numpy()
        if name not in quantized:
            writer.add_tensor(name, values)
            continue
        data = _quantized(values, qtype, seed=i)
        writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=_qtype(qtype))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(part, path)
    return path


def dequantized(path, shapes: dict, device, dtype) -> dict:
    """The quantized tensors of the file at `path` as gguf's numpy reference dequantizes them (an implementation
    independent of ours and diffusers'), reshaped to `shapes` (name -> torch shape), on `device` in `dtype`."""
    import gguf

    out = {}
    for t in gguf.GGUFReader(str(path), "r").tensors:
        if t.tensor_type.name in ("F32", "F16", "BF16"):
            continue
        values = gguf.quants.dequantize(t.data, t.tensor_type)
        out[t.name] = torch.from_numpy(np.ascontiguousarray(values)).reshape(shapes[t.name]).to(device, dtype)
    return out
