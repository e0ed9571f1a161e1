"""Converted models on disk (OpenVINO IR), keyed by the source file's identity, the conversion options and the
OpenVINO/NNCF versions: only the first run with a file and a setting pays the conversion."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

# Bump when the exported graph changes for the same source and options: old entries are then not reused.
FORMAT_VERSION = 1
_MODEL_FILE = "model.xml"
_KEY_FILE = "key.json"


def cache_root() -> Path:
    """$LTX_OPENVINO_CACHE, else ~/.cache/ltx_core/openvino."""
    return Path(os.environ.get("LTX_OPENVINO_CACHE") or Path.home() / ".cache" / "ltx_core" / "openvino")


def file_identity(path) -> dict:
    """What names a model file's contents without reading it: resolved path, size and modification time (a folder:
    each file in it). Re-downloading or editing the file gives a new identity, hence a new conversion."""
    path = Path(path).expanduser().resolve()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {"path": str(path), "files": [[str(p.relative_to(path) if path.is_dir() else p.name),
                                          p.stat().st_size, p.stat().st_mtime_ns] for p in files]}


def entry_key(source: dict, options: dict) -> str:
    from importlib.metadata import PackageNotFoundError, version

    import openvino

    try:
        nncf = version("nncf")  # from its metadata: importing nncf takes seconds and hundreds of MB
    except PackageNotFoundError:  # fp32 needs no nncf
        nncf = None
    material = {"source": source, "options": options, "format": FORMAT_VERSION,
                "openvino": openvino.get_version(), "nncf": nncf}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:32]


def cached_model_path(key: str) -> Path | None:
    """The IR of `key`, or None when it was never converted (or an earlier write did not complete)."""
    xml = cache_root() / key / _MODEL_FILE
    return xml if xml.is_file() and xml.with_suffix(".bin").is_file() else None


def store_model(key: str, model, description: dict) -> Path:
    """Save `model` (an ov.Model) under `key`; written to a temporary folder first and renamed, so a reader never
    sees half a model and two processes converting at once both end with a whole one."""
    import openvino as ov

    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    try:
        ov.save_model(model, tmp / _MODEL_FILE, compress_to_fp16=False)  # fp32 means fp32: no silent fp16
        (tmp / _KEY_FILE).write_text(json.dumps(description, indent=1, sort_keys=True))
        try:
            tmp.rename(root / key)
        except OSError:  # another process stored it first: theirs is as good
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root / key / _MODEL_FILE
