"""Dequantization of GGUF (ggml) quantized tensors in torch.

Every format is decoded the same way: a per-type decoder turns the uint8 blocks into integer quants plus one
float32 scale (and optionally one offset) per sub-block, and `_combine` computes `scale * q - offset`. The float32
operations and their order are those of gguf's numpy reference, so the results are bit-identical to it. Everything
is vectorised over all blocks with static shapes, so it runs on any device without host synchronisation and traces
under torch.compile without graph breaks.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import torch

# (quants, per-sub-block scale, per-sub-block offset or None) for a (blocks, block bytes) uint8 tensor.
Decoded = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


def _fp16(blocks: torch.Tensor, start: int) -> torch.Tensor:
    """The fp16 field at byte `start` of every block, as float32 of shape (blocks, 1)."""
    # .view(dtype) needs a contiguous last dim whose byte size divides evenly into the new dtype.
    return blocks[:, start:start + 2].contiguous().view(torch.float16).float()


def _unpack(packed: torch.Tensor, bits: int) -> torch.Tensor:
    """Split each byte into 8 // bits fields, lowest bits first: (..., k) -> (..., 8 // bits, k)."""
    shifts = torch.arange(0, 8, bits, dtype=torch.uint8, device=packed.device)
    return (packed.unsqueeze(-2) >> shifts.unsqueeze(-1)) & ((1 << bits) - 1)


def _q8_0(blocks: torch.Tensor) -> Decoded:
    return blocks[:, 2:].view(torch.int8), _fp16(blocks, 0), None


def _legacy(blocks: torch.Tensor, bits: int, affine: bool) -> Decoded:
    """Q4_0, Q4_1, Q5_0, Q5_1: fp16 d [, fp16 m] [, u32 high bits], then 16 bytes of nibbles, one sub-block."""
    q = _unpack(blocks[:, -16:], 4).flatten(-2)
    if bits == 5:
        # The u32 is little-endian, so bit j of it is bit (j % 8) of its byte j // 8.
        high = _unpack(blocks[:, -20:-16], 1).transpose(-1, -2).flatten(-2)
        q = q | (high << 4)
    if affine:
        # d*q + m == d*q - (-m) exactly, which lets every format share `_combine`.
        return q, _fp16(blocks, 0), -_fp16(blocks, 2)
    return q.to(torch.int8) - (1 << (bits - 1)), _fp16(blocks, 0), None


def _q2_k(blocks: torch.Tensor) -> Decoded:
    """scales[16] (low nibble scale, high nibble min), qs[64] of 2-bit quants, fp16 d, fp16 dmin."""
    scales = blocks[:, :16]
    q = _unpack(blocks[:, 16:80].unflatten(-1, (2, 32)), 2).flatten(-3)
    return q, _fp16(blocks, 80) * (scales & 15).float(), _fp16(blocks, 82) * (scales >> 4).float()


def _q3_k_scales(packed: torch.Tensor) -> torch.Tensor:
    """12 bytes -> 16 signed 6-bit scales: low 4 bits from bytes 0-7 (nibbles), high 2 bits from bytes 8-11."""
    low = _unpack(packed[:, :8], 4).flatten(-2)
    high = _unpack(packed[:, 8:], 2).flatten(-2)
    return ((low | (high << 4)).to(torch.int8) - 32).float()


def _q3_k(blocks: torch.Tensor) -> Decoded:
    """hmask[32], qs[64] of 2-bit quants, scales[12], fp16 d; a clear hmask bit subtracts 4."""
    low = _unpack(blocks[:, 32:96].unflatten(-1, (2, 32)), 2).flatten(-3)
    high = _unpack(blocks[:, :32], 1).flatten(-2)
    q = low.to(torch.int8) - ((high ^ 1) << 2).to(torch.int8)
    return q, _fp16(blocks, 108) * _q3_k_scales(blocks[:, 96:108]), None


def _k_scales_mins(packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Q4_K/Q5_K: 12 bytes -> 8 six-bit scales and 8 six-bit mins (the last 4 of each split over two bytes)."""
    first, second, third = packed.unflatten(-1, (3, 4)).unbind(-2)
    scales = torch.cat([first & 63, (third & 15) | ((first >> 6) << 4)], dim=-1)
    mins = torch.cat([second & 63, (third >> 4) | ((second >> 6) << 4)], dim=-1)
    return scales.float(), mins.float()


def _q4_5_k(blocks: torch.Tensor, bits: int) -> Decoded:
    """fp16 d, fp16 dmin, scales[12], [qh[32] holding bit 4,] qs[128]: low then high nibbles of 32-byte groups."""
    q = _unpack(blocks[:, -128:].unflatten(-1, (4, 32)), 4).flatten(-3)
    if bits == 5:
        q = q | (_unpack(blocks[:, 16:48], 1).flatten(-2) << 4)
    scales, mins = _k_scales_mins(blocks[:, 4:16])
    return q, _fp16(blocks, 0) * scales, _fp16(blocks, 2) * mins


def _q6_k(blocks: torch.Tensor) -> Decoded:
    """ql[128] low nibbles, qh[64] 2-bit high parts, scales[16] int8, fp16 d; each half of 128 values uses
    64 ql bytes (low then high nibbles) and 32 qh bytes (bits 0-1, 2-3, 4-5, 6-7 for its four 32-value runs)."""
    low = _unpack(blocks[:, :128].unflatten(-1, (2, 64)), 4).flatten(-3)
    high = _unpack(blocks[:, 128:192].unflatten(-1, (2, 32)), 2).flatten(-3)
    q = (low | (high << 4)).to(torch.int8) - 32
    scales = blocks[:, 192:208].contiguous().view(torch.int8).float()
    return q, _fp16(blocks, 208) * scales, None


# type name -> (elements per block, bytes per block, decoder)
_FORMATS: dict[str, tuple[int, int, Callable[[torch.Tensor], Decoded]]] = {
    "Q8_0": (32, 34, _q8_0),
    "Q4_0": (32, 18, partial(_legacy, bits=4, affine=False)),
    "Q4_1": (32, 20, partial(_legacy, bits=4, affine=True)),
    "Q5_0": (32, 22, partial(_legacy, bits=5, affine=False)),
    "Q5_1": (32, 24, partial(_legacy, bits=5, affine=True)),
    "Q2_K": (256, 84, _q2_k),
    "Q3_K": (256, 110, _q3_k),
    "Q4_K": (256, 144, partial(_q4_5_k, bits=4)),
    "Q5_K": (256, 176, partial(_q4_5_k, bits=5)),
    "Q6_K": (256, 210, _q6_k),
}

QUANT_BLOCKS: dict[str, tuple[int, int]] = {name: (elements, size) for name, (elements, size, _) in _FORMATS.items()}


def _format(qtype: str) -> tuple[int, int, Callable[[torch.Tensor], Decoded]]:
    if qtype not in _FORMATS:
        raise ValueError(f"unsupported GGUF quantization type {qtype!r}; supported: {', '.join(_FORMATS)}")
    return _FORMATS[qtype]


def quantized_bytes(shape: tuple[int, ...], qtype: str) -> int:
    """Bytes taken by a `qtype` tensor of logical `shape` (rows are quantized along the last dim)."""
    elements, size, _ = _format(qtype)
    row = shape[-1] if shape else 1
    if row % elements:
        raise ValueError(f"{qtype} needs rows of a multiple of {elements} elements; got a row length of {row}")
    numel = 1
    for dim in shape:
        numel *= dim
    return numel // elements * size


def _combine(q: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor | None) -> torch.Tensor:
    """scale * q [- offset] per sub-block, in float32 and in the reference's order (bit-exactness)."""
    values = scale.unsqueeze(-1) * q.unflatten(-1, (scale.shape[-1], -1)).float()
    if offset is not None:
        values = values - offset.unsqueeze(-1)
    return values.flatten(-2)


def dequantize(raw: torch.Tensor, qtype: str, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The `shape` tensor stored in `raw` (uint8, any shape holding exactly its bytes), as `dtype` on raw's device."""
    _, size, decode = _format(qtype)
    expected = quantized_bytes(tuple(shape), qtype)
    if raw.dtype != torch.uint8:
        raise TypeError(f"quantized {qtype} data must be a uint8 tensor, got {raw.dtype}")
    if raw.numel() != expected:
        raise ValueError(f"{qtype} tensor of shape {tuple(shape)} needs {expected} bytes, got {raw.numel()}")
    values = _combine(*decode(raw.reshape(-1, size)))
    return values.reshape(shape).to(dtype)
