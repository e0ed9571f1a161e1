"""GGUF files for tests, written the way the published LTX-Video GGUF files are: official tensor names without
the `model.diffusion_model.` prefix, `general.architecture = "ltxv"`, only the block layers' weights quantized.

gguf's numpy code quantizes the legacy types (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1) itself; K-quants it can only
dequantize, so their bytes are random with finite fp16 scales. Either way the values a file holds are what gguf's
numpy `dequantize` makes of its bytes: that is what the official model is loaded with to compare."""
import numpy as np
import torch

gguf = __import__("pytest").importorskip("gguf")

LEGACY = ("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1")
K_QUANTS = ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")
# Byte offsets of the fp16 fields (d, dmin) inside a K-quant block: random bytes there could be NaN or inf.
K_FP16_FIELDS = {"Q2_K": (80, 82), "Q3_K": (108,), "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,)}
KEPT_PREFIXES = ("adaln_single.", "caption_projection.", "patchify_proj.", "proj_out.")


def qtype(name: str):
    return gguf.GGMLQuantizationType[name]


def dequantized(data: np.ndarray, name: str) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(gguf.quants.dequantize(data, qtype(name))))


def legacy_bytes(values: np.ndarray, name: str) -> np.ndarray:
    return gguf.quants.quantize(np.ascontiguousarray(values, dtype=np.float32), qtype(name))


def k_bytes(name: str, shape, seed: int, scale: float = 0.01) -> np.ndarray:
    """Random K-quant rows (as gguf's reader gives them) whose fp16 scales are `scale`-sized and finite."""
    from ltx_core.quantization.gguf_dequant import QUANT_BLOCKS

    elements, size = QUANT_BLOCKS[name]
    rng = np.random.default_rng(seed)
    n_blocks = int(np.prod(shape)) // elements
    blocks = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    for start in K_FP16_FIELDS[name]:
        fp16 = (rng.standard_normal(n_blocks) * scale).astype(np.float16)
        blocks[:, start:start + 2] = fp16.view(np.uint8).reshape(n_blocks, 2)
    return blocks.reshape(*shape[:-1], shape[-1] // elements * size)


def kept_unquantized(name: str, t: torch.Tensor) -> bool:
    """The tensors the published files keep in F32/F16."""
    return (t.dim() < 2 or t.numel() <= 1024 or name.endswith("scale_shift_table") or name.startswith(KEPT_PREFIXES))


def write_gguf(path, state_dict: dict, quant, arch: str = "ltxv", dense: str = "F32", seed: int = 0,
               k_scale: float = 2e-4) -> dict:
    """Write `state_dict` (official names) as GGUF; `quant`: a type name, or name -> type name (None: dense).
    Returns the state dict as the file holds it (quantized tensors dequantized by gguf's numpy reference)."""
    writer = gguf.GGUFWriter(str(path), arch)
    held = {}
    for i, (name, t) in enumerate(state_dict.items()):
        kind = None if kept_unquantized(name, t) else (quant(name) if callable(quant) else quant)
        values = t.detach().float().numpy()
        if kind is None:
            data = values.astype(np.float16 if dense == "F16" else np.float32)
            writer.add_tensor(name, data)
            held[name] = torch.from_numpy(data.astype(np.float32))
            continue
        data = legacy_bytes(values, kind) if kind in LEGACY else k_bytes(kind, values.shape, seed + i, k_scale)
        writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qtype(kind))
        held[name] = dequantized(data, kind).reshape(t.shape)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return held
