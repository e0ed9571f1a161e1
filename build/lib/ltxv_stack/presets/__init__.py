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
           "preset_for_model", "preset_names", "resolve_preset_name"]


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


def preset_for_model(file_name: str, num_layers: int | None = None, distilled: bool | None = None) -> tuple[str, str]:
    """The official recipe for a model file: its own preset when the name is an official checkpoint's; otherwise
    read from the name (release, 2B/13B, dev/distilled, fp8: GGUF and renamed files), with the model's layer count
    and whether its metadata allows only distilled timesteps where the name is silent. (preset, how it was chosen);
    ValueError when the name says too little."""
    from ..loader.releases import release_from_name

    name = os.path.basename(str(file_name))
    for preset, cfg in OFFICIAL_CONFIGS.items():
        if cfg["checkpoint_path"] == name:
            return preset, f"{preset} (the checkpoint's own recipe)"
    lower = name.lower()
    release = release_from_name(lower)
    if release is None:
        raise ValueError(f"cannot tell the recipe of {name!r} from its name (no release such as 0.9.8 in it): pick "
                         "the preset named like the checkpoint")
    size = "13b" if "13b" in lower or num_layers == 48 else "2b"
    variant = "distilled" if "distilled" in lower or distilled else "dev"
    fp8 = "-fp8" if "fp8" in lower else ""
    for candidate in (f"ltxv-{size}-{release}-{variant}{fp8}", f"ltxv-{size}-{release}-{variant}", f"ltxv-{size}-{release}"):
        if candidate in OFFICIAL_CONFIGS:
            return candidate, f"{candidate} (read from the file name {name!r})"
    raise ValueError(f"no official recipe for a {size.upper()} {release} {variant} model ({name!r}): pick a preset")


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
