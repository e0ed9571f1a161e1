"""Official pipeline configs by name, or official-style YAML files from disk.

    preset_names() -> ["ltxv-13b-0.9.8-distilled", ...]
    load_pipeline_config("ltxv-13b-0.9.8-distilled")          # a preset (".yaml" and a "configs/" prefix are fine)
    load_pipeline_config("/path/to/my-config.yaml")           # a file: its raw dict

The dicts are the yaml files' contents as they are (validation is `PipelineConfig.from_dict`'s job). YAML files are
read with PyYAML when it is installed, otherwise with a small reader for the subset the official files use
(scalars, flow lists `[...]`, one level of nested mappings, comments).
"""
from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

from .official import HISTORICAL, OFFICIAL_CONFIGS

__all__ = ["HISTORICAL", "load_pipeline_config", "parse_simple_yaml", "preset_names", "resolve_preset_name"]


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
        import yaml  # optional
    except ImportError:
        yaml = None
    if yaml is not None:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    else:
        try:
            data = parse_simple_yaml(text)
        except ValueError as e:
            raise ValueError(f"{path}: {e} (this file needs PyYAML: pip install pyyaml)") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a pipeline config must be a YAML mapping, got {type(data).__name__}")
    return data


# ----------------------------------------------------------------------------------------------------------------
# a reader for the YAML subset of the official configs

_INT = re.compile(r"[-+]?(0|[1-9][0-9_]*)$")
_FLOAT = re.compile(r"[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+][0-9]+)?$")


def _strip_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def _scalar(tok: str):
    t = tok.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'":
        body = t[1:-1]
        if t[0] == "'":
            return body.replace("''", "'")
        try:
            return json.loads(t)
        except ValueError:
            return body
    low = t.lower()
    if low in ("", "~", "null"):
        return None
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if _INT.match(t):
        return int(t.replace("_", ""))
    if _FLOAT.match(t) and any(c.isdigit() for c in t):
        return float(t.replace("_", ""))
    if low in (".inf", "+.inf"):
        return float("inf")
    if low == "-.inf":
        return float("-inf")
    if low == ".nan":
        return float("nan")
    return t


def _flow(text: str, i: int):
    """Parse a flow list/scalar starting at text[i]; returns (value, next index)."""
    while i < len(text) and text[i] in " \t":
        i += 1
    if i < len(text) and text[i] == "[":
        out, i = [], i + 1
        while True:
            while i < len(text) and text[i] in " \t":
                i += 1
            if i >= len(text):
                raise ValueError("unterminated list")
            if text[i] == "]":
                return out, i + 1
            v, i = _flow(text, i)
            out.append(v)
            while i < len(text) and text[i] in " \t":
                i += 1
            if i < len(text) and text[i] == ",":
                i += 1
            elif i < len(text) and text[i] == "]":
                continue
            else:
                raise ValueError("expected ',' or ']' in a list")
    if i < len(text) and text[i] in "\"'":
        q = text[i]
        j = text.find(q, i + 1)
        if j < 0:
            raise ValueError("unterminated string")
        return _scalar(text[i:j + 1]), j + 1
    j = i
    while j < len(text) and text[j] not in ",]":
        j += 1
    return _scalar(text[i:j]), j


def _value(text: str):
    text = text.strip()
    if text.startswith("{"):
        raise ValueError("flow mappings are not supported")
    v, i = _flow(text, 0)
    if text[i:].strip():
        raise ValueError(f"unexpected text after a value: {text[i:].strip()!r}")
    return v


def parse_simple_yaml(text: str) -> dict:
    """Mappings by indentation (any depth), `key: value` with scalars or flow lists, comments. ValueError otherwise."""
    root: dict = {}
    stack: list[tuple[int, dict]] = [(-1, root)]
    pending: tuple[int, dict, str] | None = None  # a "key:" with no value yet: its mapping starts on the next line
    for lineno, raw in enumerate(text.splitlines(), 1):
        if raw.strip() in ("---", "..."):
            continue
        line = _strip_comment(raw).rstrip()
        if not line.strip():
            continue
        if "\t" in line[: len(line) - len(line.lstrip())]:
            raise ValueError(f"line {lineno}: tabs in indentation")
        indent = len(line) - len(line.lstrip(" "))
        body = line.strip()
        if body.startswith("- "):
            raise ValueError(f"line {lineno}: block lists are not supported")
        if pending is not None:
            p_indent, p_parent, p_key = pending
            pending = None
            if indent > p_indent:
                child: dict = {}
                p_parent[p_key] = child
                stack.append((indent, child))
            else:
                p_parent[p_key] = None
        while indent < stack[-1][0]:
            stack.pop()
        if indent != stack[-1][0] and stack[-1][0] != -1:
            raise ValueError(f"line {lineno}: bad indentation")
        if stack[-1][0] == -1:
            stack[-1] = (indent, root)
        mapping = stack[-1][1]
        m = re.match(r"""^("[^"]*"|'[^']*'|[^:]+?)\s*:(\s+(.*))?$""", body)
        if not m:
            raise ValueError(f"line {lineno}: expected 'key: value', got {body!r}")
        key = _scalar(m.group(1))
        rest = (m.group(3) or "").strip()
        if key in mapping:
            raise ValueError(f"line {lineno}: duplicate key {key!r}")
        if rest == "":
            pending = (indent, mapping, key)
            mapping[key] = None
        else:
            try:
                mapping[key] = _value(rest)
            except ValueError as e:
                raise ValueError(f"line {lineno}: {e}") from None
    return root
