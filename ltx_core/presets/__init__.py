"""Official pipeline configs by name, or official-style YAML files from disk.

    preset_names() -> ["ltxv-13b-0.9.8-distilled", ...]
    load_pipeline_config("ltxv-13b-0.9.8-distilled")          # a preset (".yaml" and a "configs/" prefix are fine)
    load_pipeline_config("/path/to/my-config.yaml")           # a file: its raw dict

The dicts are the yaml files' contents as they are (validation is `PipelineConfig.from_dict`'s job).
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

import yaml

from .official import OFFICIAL_CHECKPOINTS, OFFICIAL_CONFIGS, OFFICIAL_LORAS, OFFICIAL_TEXT_ENCODERS, OFFICIAL_UPSAMPLERS

__all__ = ["OFFICIAL_CHECKPOINTS", "OFFICIAL_LORAS", "OFFICIAL_TEXT_ENCODERS", "OFFICIAL_UPSAMPLERS", "load_pipeline_config",
           "preset_names", "resolve_preset_name"]


def preset_names() -> list[str]:
    """Every official config name (the yaml file name without `.yaml`)."""
    return list(OFFICIAL_CONFIGS)


def resolve_preset_name(name) -> str | None:
    """The preset a name refers to ("ltxv-2b-0.9.6-dev", "ltxv-2b-0.9.6-dev.yaml", "configs/ltxv-2b-0.9.6-dev.yaml"),
    or None."""
    base = os.path.basename(str(name).strip())
    for ext in (".yaml", ".yml"):
        if base.lower().endswith(ext):
            base = base[: -len(ext)]
    return base if base in OFFICIAL_CONFIGS else None


def load_pipeline_config(name_or_path) -> dict:
    """A preset name or a path to a YAML config -> the raw config dict (a fresh copy).

    An existing file wins over a preset of the same name; a path that does not exist but names an official config
    (e.g. inference.py's default "configs/ltxv-13b-0.9.7-dev.yaml") gives the preset. Anything else: ValueError
    listing the preset names."""
    s = str(name_or_path)
    p = Path(s).expanduser()
    if p.is_file():
        return _load_yaml_file(p)
    preset = resolve_preset_name(s)
    if preset is not None:
        return copy.deepcopy(OFFICIAL_CONFIGS[preset])
    if p.is_dir():
        raise ValueError(f"pipeline config {s!r} is a folder; give a .yaml file or a preset name")
    raise ValueError(f"unknown pipeline config {s!r}: not a file and not a preset name; presets: "
                     + ", ".join(preset_names()))


def _load_yaml_file(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot be read ({e})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a pipeline config must be a YAML mapping, got {type(data).__name__}")
    return data
