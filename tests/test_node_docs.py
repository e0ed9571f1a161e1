"""The nodes' help pages: ComfyUI's frontend shows `WEB_DIRECTORY/docs/<node id>.md` for a node. Every node has one,
titled with its display name, naming every input (with its default where it has one), and no page is left over for a
node that does not exist."""
import re
from pathlib import Path

import pytest

from node_pack import REPO, import_pack

pack = import_pack()
NODES = pack.NODE_CLASS_MAPPINGS
NAMES = pack.NODE_DISPLAY_NAME_MAPPINGS


def docs_dir() -> Path:
    return (REPO / pack.WEB_DIRECTORY).resolve() / "docs"


def page(node_id: str) -> str:
    path = docs_dir() / f"{node_id}.md"
    assert path.is_file(), f"no help page for {node_id}: write {path.relative_to(REPO)}"
    return path.read_text(encoding="utf-8")


def inputs(node_id: str) -> dict:
    spec = NODES[node_id].INPUT_TYPES()
    return {**spec.get("required", {}), **spec.get("optional", {})}


def section(text: str, title: str) -> str:
    m = re.search(rf"^## {title}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, f"no '## {title}' section"
    return m.group(1)


def input_item(text: str, name: str) -> str:
    """The Inputs list item that starts with `name` (up to the next item)."""
    m = re.search(rf"^- `{re.escape(name)}`(.*?)(?=^- |\Z)", section(text, "Inputs"), re.M | re.S)
    return m.group(1) if m else ""


def test_web_directory_exported():
    assert "WEB_DIRECTORY" in pack.__all__
    web = (REPO / pack.WEB_DIRECTORY).resolve()
    assert web.is_dir() and (web / "docs").is_dir()


@pytest.mark.parametrize("node_id", sorted(NODES))
def test_page_per_node(node_id):
    text = page(node_id)
    assert text.splitlines()[0] == f"# {NAMES[node_id]}"
    for title in ("Inputs", "Outputs", "Tips"):
        section(text, title)
    assert "<" not in re.sub(r"`[^`]*`", "", text), "plain Markdown only, no HTML"


@pytest.mark.parametrize("node_id", sorted(NODES))
def test_page_names_every_input_and_its_default(node_id):
    text = page(node_id)
    for name, spec in inputs(node_id).items():
        item = input_item(text, name)
        assert item, f"{node_id}: input {name!r} is not in the page's Inputs list (as - `{name}`: ...)"
        opts = spec[1] if len(spec) > 1 else {}
        if "default" not in opts or opts["default"] == "":
            continue
        default = opts["default"]
        if isinstance(default, bool):
            shown = f"default {'on' if default else 'off'}"
        else:
            shown = f"default `{default}`"
        assert shown.lower() in " ".join(item.split()).lower(), f"{node_id}: input {name!r} should say '{shown}'"


@pytest.mark.parametrize("node_id", sorted(NODES))
def test_page_names_every_output(node_id):
    cls = NODES[node_id]
    outputs = section(page(node_id), "Outputs")
    for name in getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES):
        assert f"`{name}`" in outputs, f"{node_id}: output {name!r} is not in the page's Outputs list"


def test_no_page_without_a_node():
    extra = sorted(p.stem for p in docs_dir().glob("*.md") if p.stem not in NODES)
    assert not extra, f"help pages for nodes that do not exist: {extra}"
