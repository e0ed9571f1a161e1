"""Memory-mapped, validated access to one .safetensors file.

Tensors are read one at a time straight into the dtype and device the caller asks for, so loading
never holds a second full copy of the weights in RAM.
"""
import json
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from .errors import ModelFileError

_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


class SafetensorsFile:
    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelFileError(path, "file not found")
        if self.path.suffix != ".safetensors":
            raise ModelFileError(path, "only .safetensors files are accepted (pickled .ckpt/.pt/.bin files can run code "
                                       "when loaded); convert it or download the .safetensors release")
        try:
            self._handle = safe_open(str(self.path), framework="pt", device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelFileError(path, f"not a readable safetensors file (truncated or corrupt download?): {e}") from None
        self.metadata = self._handle.metadata() or {}
        self._keys = list(self._handle.keys())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._handle = None

    def keys(self) -> list[str]:
        return self._keys

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._handle.get_slice(key).get_shape())

    def dtype(self, key: str) -> torch.dtype:
        name = self._handle.get_slice(key).get_dtype()
        if name not in _DTYPES:
            raise ModelFileError(self.path, f"tensor {key!r} has unsupported dtype {name}")
        return _DTYPES[name]

    def tensor(self, key: str, dtype: torch.dtype | None = None, device="cpu") -> torch.Tensor:
        try:
            t = self._handle.get_tensor(key)
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelFileError(self.path, f"tensor {key!r} cannot be read (truncated file?): {e}") from None
        return t.to(device=device, dtype=dtype or t.dtype)

    def json_metadata(self, name: str):
        """A metadata entry that holds JSON, or None when absent."""
        raw = self.metadata.get(name)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as e:
            raise ModelFileError(self.path, f"metadata entry {name!r} is not valid JSON: {e}") from None


@contextmanager
def tensor_sources(paths: Iterable, keep: Callable[[str], bool] = lambda _key: True):
    """{key: (file, key)} over the shards of one model, kept open while the caller loads from them."""
    opened = []
    try:
        source = {}
        for path in paths:
            f = SafetensorsFile(path)
            opened.append(f)
            for k in f.keys():
                if k in source:
                    raise ModelFileError(path, f"tensor {k!r} also appears in {source[k][0].path.name}")
                if keep(k):
                    source[k] = (f, k)
        yield source
    finally:
        for f in opened:
            f.close()
