"""Fill a model built on the meta device from named tensors in safetensors files, strictly.

Every key and shape is checked against the model before a single tensor is read, so a wrong file
fails fast with a message that says which keys or shapes differ, and a good file is read once,
tensor by tensor, into the dtype and device the caller chose.
"""
from collections.abc import Callable, Mapping

import torch
from torch import nn

from .errors import ModelFileError
from .safetensors_file import SafetensorsFile

# For each model key: (file, key in that file), or a tensor the loader supplies itself (an official default).
TensorSource = Mapping[str, "tuple[SafetensorsFile, str] | torch.Tensor"]


def _listing(keys, limit: int = 6) -> str:
    keys = sorted(keys)
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def check_against(model: nn.Module, source: TensorSource, path, what: str) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = expected.keys() - source.keys()
    unexpected = source.keys() - expected.keys()
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} {what} tensor(s) missing: {_listing(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensor(s): {_listing(unexpected)}")
        raise ModelFileError(path, "; ".join(parts) + f". The file does not match the {what} its config describes "
                                                      "(wrong or partial file, or a config from another version)")
    for k, want in expected.items():
        if isinstance(source[k], torch.Tensor):
            continue
        f, key = source[k]
        got = f.shape(key)
        if got != want:
            raise ModelFileError(path, f"tensor {key!r} has shape {list(got)} but the {what} built from the file's "
                                       f"config needs {list(want)}")


def load_strict(model: nn.Module, source: TensorSource, path, what: str,
                dtype_for: Callable[[str], torch.dtype], device) -> nn.Module:
    """`model` must be on the meta device; `dtype_for(model_key)` picks the dtype of each floating-point tensor
    (other tensors keep their stored dtype). `device` "meta" checks the file and reads nothing."""
    check_against(model, source, path, what)
    if torch.device(device).type == "meta":
        # Checked and left unread: the skeleton (config, keys, shapes) of a model another runtime reads from the file.
        return model.eval().requires_grad_(False)
    state = {}
    for k, src in source.items():
        if isinstance(src, torch.Tensor):
            state[k] = src.to(device=device, dtype=dtype_for(k))
            continue
        f, key = src
        stored = f.dtype(key)
        state[k] = f.tensor(key, dtype=dtype_for(k) if stored.is_floating_point else stored, device=device)
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval().requires_grad_(False)
