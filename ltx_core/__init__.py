"""LTX-Video model stack: official checkpoints in, the official numbers out. No ComfyUI imports here.

The loaders are imported on first use: `python -m ltx_core --help` and argument errors should not wait for
transformers and the model code to import.
"""
import importlib

_EXPORTS = {
    "Checkpoint": ".loader.checkpoint",
    "load_checkpoint": ".loader.checkpoint",
    "ModelFileError": ".loader.errors",
    "load_text_encoder": ".loader.text_encoder_files",
    "load_upsampler": ".loader.upsampler_file",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value
