"""A VAE on its own: city96's `LTX-Video-VAE-BF16.safetensors`, files in ComfyUI's `vae` folder (with or without
the `vae.` prefix), or an official checkpoint's VAE part saved alone. Strict as the checkpoint loader."""
from __future__ import annotations

from pathlib import Path

from .checkpoint import TRANSFORMER_PREFIX, Checkpoint, load_checkpoint
from .errors import ModelFileError
from .gguf_file import is_gguf
from .safetensors_file import SafetensorsFile


def load_vae_file(path, device="cpu", dtype="bfloat16") -> Checkpoint:
    """A Checkpoint with only `vae` (and its config). A file that also holds a transformer is refused before any
    weight is read: its own loader gives both."""
    path = Path(path)
    if is_gguf(path):
        raise ModelFileError(path, "a GGUF file holds a transformer, not a VAE; the VAE comes as a .safetensors "
                                   "file (e.g. LTX-Video-VAE-BF16.safetensors)")
    with SafetensorsFile(path) as f:
        if any(k.startswith((TRANSFORMER_PREFIX, "transformer_blocks.")) for k in f.keys()):
            raise ModelFileError(path, "this file holds a whole model (transformer and VAE), not a VAE alone: load it "
                                       "as a checkpoint, which gives its VAE too")
    ck = load_checkpoint(path, device=device, dtype=dtype, vae_dtype=dtype)
    if ck.vae is None:
        raise ModelFileError(path, "this file holds no VAE (encoder.* / decoder.* tensors)")
    return ck
