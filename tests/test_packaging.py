"""Packaging: pyproject.toml as the Comfy Registry and ComfyUI-Manager read it (docs.comfy.org/registry/
specifications), as pip builds it (`pip install .` installs the model stack as `ltxv_stack`, and its command), and as
ComfyUI's own parser (comfy_config, run at node load) reads it; and the registry's code standards (no pip installs
at run time, no eval/exec, nothing obfuscated)."""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
COMFY = PYPROJECT["tool"]["comfy"]
# What the registry and ComfyUI-Manager publish and install: the node pack and the model stack, with the scripts
# beside them (tests are not loaded by ComfyUI, but a reviewer reads them too).
CODE = sorted(p for d in ("nodes", "ltx_core", "bench", "tests") for p in (REPO / d).rglob("*.py")) + \
    [REPO / "__init__.py"]


def requirements(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def test_registry_name_and_version():
    name = PROJECT["name"]
    # registry: < 100 characters; letters, digits, '-', '_', '.'; no two special characters in a row; starts with
    # a letter; "ComfyUI" is not part of a node's name
    assert len(name) < 100 and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*(?:[-_.][A-Za-z0-9]+)*", name), name
    assert "comfyui" not in name.lower().replace("-", "").replace("_", "").replace(".", ""), name
    assert re.fullmatch(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)", PROJECT["version"]), \
        f"version {PROJECT['version']!r} is not X.Y.Z"
    assert len(PROJECT["description"]) > 40
    assert (REPO / PROJECT["readme"]).is_file()
    assert SpecifierSet(PROJECT["requires-python"]).contains(f"{sys.version_info.major}.{sys.version_info.minor}")


def test_dependencies_are_requirements_txt():
    """ComfyUI-Manager installs requirements.txt, the registry and pip read pyproject: the same list, in order."""
    assert PROJECT["dependencies"] == requirements(REPO / "requirements.txt")
    for extra, listed in PROJECT.get("optional-dependencies", {}).items():
        for requirement in listed:
            Requirement(requirement)  # a valid PEP 508 requirement, or this raises naming it
        mirror = REPO / f"requirements-{extra}.txt"
        if mirror.is_file():
            assert listed == requirements(mirror), f"extra {extra!r} differs from {mirror.name}"
    openvino = PROJECT["optional-dependencies"]["openvino"]
    assert [Requirement(r).name for r in openvino] == ["openvino", "nncf"]
    hint = REPO / "ltx_core" / "openvino" / "availability.py"
    if hint.is_file():  # the message a missing package prints must name the extra's versions
        text = hint.read_text(encoding="utf-8")
        assert all(r in text for r in openvino), f"{hint.name} names other versions than the extra {openvino}"


def test_license_matches_the_repository():
    licence_files = sorted(p.name for p in REPO.glob("LICEN[SC]E*"))
    licence = PROJECT.get("license")
    if licence_files:
        assert licence == {"file": licence_files[0]}, f"{licence_files[0]} exists: license = {{ file = ... }}"
    elif licence is not None:  # the registry's forms: { file = "LICENSE" } or { text = "MIT" }
        assert isinstance(licence, dict) and ("text" in licence or (REPO / licence.get("file", "")).is_file())


def test_comfy_registry_section():
    repository = PROJECT["urls"]["Repository"]
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", repository), repository
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", COMFY["PublisherId"]), COMFY["PublisherId"]
    assert COMFY["DisplayName"] == "LTX-Video (stack)"  # the category every node of the pack is listed under
    SpecifierSet(COMFY["requires-comfyui"])
    assert "web" not in COMFY  # WEB_DIRECTORY serves web/; a second registration would name it by project
    icon = COMFY["Icon"]
    raw = repository.replace("https://github.com/", "https://raw.githubusercontent.com/") + "/main/"
    assert icon.startswith(raw) and icon.endswith((".svg", ".png", ".jpg", ".gif")), icon
    path = REPO / icon[len(raw):]
    assert path.is_file(), f"the icon URL points at {path.relative_to(REPO)}, which is not in the repository"
    svg = ET.parse(path).getroot()
    width, height = (float(svg.get(k)) for k in ("width", "height"))
    assert width <= 800 and height <= 400, "the registry takes icons up to 800 x 400 px"


def test_the_wheel_names_the_stack_ltxv_stack_with_every_subpackage():
    """Installed, `ltx_core/` is `ltxv_stack` (PyPI's LTX-2 package owns the name ltx_core), with every folder."""
    setuptools = PYPROJECT["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"ltxv_stack": "ltx_core"}
    folders = sorted(".".join(("ltxv_stack",) + f.parent.relative_to(REPO / "ltx_core").parts)
                     for f in (REPO / "ltx_core").rglob("__init__.py"))
    assert sorted(setuptools["packages"]) == folders
    assert PROJECT["scripts"]["ltxv-stack"] == "ltxv_stack.cli:main"
    absolute = [str(p.relative_to(REPO)) for p in (REPO / "ltx_core").rglob("*.py")
                for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
                if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("ltx_core")
                or isinstance(node, ast.Import) and any(a.name.split(".")[0] == "ltx_core" for a in node.names)]
    assert not absolute, f"absolute imports of ltx_core break the installed ltxv_stack: {absolute}"


def test_pip_builds_the_metadata(tmp_path):
    """`pip install --dry-run .`: the build backend reads pyproject.toml and prepares the package's metadata."""
    pytest.importorskip("setuptools", reason="the build backend (setuptools) is not installed here")
    report = tmp_path / "report.json"
    run = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-build-isolation",
                          "--no-index", "--quiet", "--report", str(report), str(REPO)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    metadata = json.loads(report.read_text())["install"][0]["metadata"]
    assert (metadata["name"], metadata["version"]) == (PROJECT["name"], PROJECT["version"])
    plain = [r for r in metadata["requires_dist"] if "extra ==" not in r]
    assert [str(Requirement(r)) for r in plain] == [str(Requirement(r)) for r in PROJECT["dependencies"]]
    assert metadata["provides_extra"] == ["openvino"]


COMFY_PARSER = """
import json, sys
from comfy_config import config_parser
c = config_parser.extract_node_configuration(sys.argv[1])
p, t = c.project, c.tool_comfy
print(json.dumps({"name": p.name, "version": p.version, "dependencies": p.dependencies,
                  "repository": p.urls.repository, "comfyui": p.supported_comfyui_version,
                  "publisher": t.publisher_id, "display_name": t.display_name, "icon": t.icon, "web": t.web}))
"""


def test_comfyuis_own_parser_reads_it():
    """ComfyUI parses a custom node's pyproject.toml when it loads the node (comfy_config, pydantic); a file it
    cannot read is only logged, so this runs its parser directly."""
    comfy, python = os.environ.get("COMFYUI_PATH"), os.environ.get("COMFYUI_PYTHON")
    if not comfy or not python:
        pytest.skip("COMFYUI_PATH and COMFYUI_PYTHON not set (ComfyUI's parser needs its interpreter, with "
                    "pydantic-settings)")
    if not (Path(comfy) / "comfy_config" / "config_parser.py").is_file():
        pytest.skip(f"{comfy} has no comfy_config (ComfyUI before 0.3.4x)")
    run = subprocess.run([python, "-c", COMFY_PARSER, str(REPO)], cwd=comfy, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen == {"name": PROJECT["name"], "version": PROJECT["version"], "dependencies": PROJECT["dependencies"],
                    "repository": PROJECT["urls"]["Repository"], "comfyui": COMFY["requires-comfyui"],
                    "publisher": COMFY["PublisherId"], "display_name": COMFY["DisplayName"], "icon": COMFY["Icon"],
                    "web": None}


# ----------------------------------------------------------------------------------------------------------------
# registry code standards

RUNNERS = re.compile(r"(^|\.)(system|popen|Popen|run|call|check_call|check_output|spawn\w*|exec\w+|main)$")
PACKED = re.compile(r"[A-Za-z0-9+/=]{400,}")  # a long base64/hex blob in the code


def standards_problems(path: Path, source: str) -> list[str]:
    """Runtime installs, eval/exec, obfuscation in one file's source."""
    problems = []
    where = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    for node in ast.walk(ast.parse(source)):
        line = f"{where}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            problems += [f"{line}: imports {n}" for n in names if n and n.split(".")[0] in
                         ("pip", "ensurepip", "marshal", "pkg_resources")]
        elif isinstance(node, ast.Call):
            func = ast.unparse(node.func)
            if func in ("eval", "exec", "builtins.eval", "builtins.exec"):
                problems.append(f"{line}: calls {func}")
            words = " ".join(str(n.value) for n in ast.walk(node) if isinstance(n, ast.Constant))
            installs = re.search(r"\bpip3?\b|\bensurepip\b|\buv\b", words) and "install" in words
            if RUNNERS.search(func) and installs and "--dry-run" not in words:  # a dry run installs nothing
                problems.append(f"{line}: installs packages at run time ({func})")
            if func in ("codecs.decode", "base64.b64decode", "zlib.decompress", "bytes.fromhex"):
                problems.append(f"{line}: decodes packed data ({func})")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and PACKED.search(node.value):
            problems.append(f"{line}: a packed blob of {len(node.value)} characters")
    return problems


def test_standards_check_catches_what_the_registry_forbids(tmp_path):
    offenders = {
        "subprocess.check_call([sys.executable, '-m', 'pip', 'install', 'x'])": "installs packages",
        "os.system('pip install x')": "installs packages",
        "exec(open('f').read())": "calls exec",
        "eval('1+1')": "calls eval",
        "import pip": "imports pip",
        "exec(base64.b64decode(b'cHJpbnQ='))": "decodes packed data",
        f"x = '{'QUJD' * 200}'": "packed blob",
    }
    for source, expected in offenders.items():
        found = standards_problems(tmp_path / "x.py", source)
        assert any(expected in p for p in found), (source, found)
    fine = "model.eval()\nraise ValueError('pip install gguf')\nsubprocess.run([python, 'main.py', '--cpu'])"
    assert standards_problems(tmp_path / "x.py", fine) == []


def test_no_runtime_installs_eval_or_obfuscation():
    assert len(CODE) > 50
    problems = [p for path in CODE for p in standards_problems(path, path.read_text(encoding="utf-8"))]
    assert not problems, "the Comfy Registry's standards forbid:\n" + "\n".join(problems)
