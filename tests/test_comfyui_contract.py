"""The ComfyUI contract: every ComfyUI name the pack relies on, checked in the ComfyUI sources at COMFYUI_PATH.

The sources are parsed with `ast`, never imported (importing ComfyUI needs its whole dependency set and a device),
so any checkout or copy of the tree can be checked, old or new. What is checked is derived from the pack's own
files wherever possible, so a new use cannot escape the test:
- every absolute import of a ComfyUI module in `__init__.py`, `nodes/` and `ltx_core/`, every `module.name` the
  pack reads, every call it makes (positional count and keyword names against the def), and every method called on
  an object a ComfyUI call returned (`self.bar = comfy.utils.ProgressBar(...)`; `self.bar.update_absolute(...)`);
- the model folders of `comfy_bridge.MODEL_FOLDERS` (those the bridge registers itself may be absent);
- the names of the pack's `__all__` that ComfyUI's custom-node loader reads, and the upper-case class attributes of
  every node class (RETURN_TYPES, FUNCTION, ...), which core must read somewhere;
- the core nodes the API workflows use (LoadImage, CreateVideo, SaveVideo, ...): each exists, takes the inputs the
  workflows pass, each link's types agree and output indices exist; the test stand-in `CORE_NODES` of
  tests/test_workflows.py agrees with the source too;
- the HTTP routes the server tests call and the command-line flags they start ComfyUI with.
A few behaviours are checked where the source shows them: the interrupt exception (whichever base class it has,
the pack's broad `except` blocks must not swallow it), and how out-of-memory is recognised.
Run: COMFYUI_PATH=/path/to/ComfyUI python -m pytest -q tests/test_comfyui_contract.py
"""
from __future__ import annotations

import ast
import functools
import json
import os
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACK_SOURCES = [REPO / "__init__.py", *sorted((REPO / "nodes").glob("*.py")), *sorted((REPO / "ltx_core").rglob("*.py"))]
SERVER_TEST_SOURCES = [REPO / "tests" / name for name in
                       ("comfyui_support.py", "test_comfyui_server.py", "test_comfyui_soak.py")]
COMFYUI_PATH = os.environ.get("COMFYUI_PATH")

needs_comfyui = pytest.mark.skipif(not COMFYUI_PATH, reason="COMFYUI_PATH not set: point it at a ComfyUI checkout "
                                                           "(0.3.64 or newer) to check the pack's contract with it")


# ----------------------------------------------------------------------------------------------------------------
# the ComfyUI sources


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _root() -> Path:
    root = Path(COMFYUI_PATH).expanduser().resolve()
    if not (root / "comfy" / "model_management.py").is_file():
        pytest.fail(f"COMFYUI_PATH={COMFYUI_PATH} is not a ComfyUI tree (no comfy/model_management.py)")
    return root


def _module_file(dotted: str) -> Path | None:
    base = _root().joinpath(*dotted.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return base if base.is_dir() else None  # a namespace package (`comfy` has no __init__.py)


def _module(dotted: str) -> ast.Module:
    path = _module_file(dotted)
    if path is None:
        raise AssertionError(f"ComfyUI module {dotted} not found under {_root()}")
    return ast.Module(body=[], type_ignores=[]) if path.is_dir() else _parse(path)


def _top_level(statements) -> dict[str, ast.AST]:
    """Names bound at module (or class) level, also inside if/try/with blocks: defs, classes, assignments, imports."""
    names: dict[str, ast.AST] = {}
    for st in statements:
        if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[st.name] = st
        elif isinstance(st, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for target in (st.targets if isinstance(st, ast.Assign) else [st.target]):
                for node in ast.walk(target):
                    if isinstance(node, ast.Name):
                        names.setdefault(node.id, st)
        elif isinstance(st, (ast.Import, ast.ImportFrom)):
            for alias in st.names:
                names.setdefault(alias.asname or alias.name.split(".")[0], st)
        for block in ("body", "orelse", "finalbody", "handlers"):
            if not isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and hasattr(st, block):
                for name, node in _top_level(getattr(st, block)).items():
                    names.setdefault(name, node)
    return names


def _class_member(module: str, cls: ast.ClassDef, name: str) -> ast.AST | None:
    """A class attribute or method, looked up through the base classes defined in the same module."""
    member = _top_level(cls.body).get(name)
    if member is not None:
        return member
    defined = _top_level(_module(module).body)
    for base in cls.bases:
        if isinstance(base, ast.Name) and isinstance(defined.get(base.id), ast.ClassDef):
            found = _class_member(module, defined[base.id], name)
            if found is not None:
                return found
    return None


def _signature_problem(fn: ast.AST, n_positional: int, keywords: set[str], bound: bool = False) -> str | None:
    """Why a call with `n_positional` arguments and `keywords` does not fit the def, or None."""
    if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None  # a callable bound some other way (an assignment, an import): its signature is not visible
    a = fn.args
    positional = [p.arg for p in a.posonlyargs + a.args][1 if bound else 0:]
    if n_positional > len(positional) and a.vararg is None:
        return f"takes {len(positional)} positional arguments, the pack passes {n_positional}"
    by_name = set(p.arg for p in a.args[1 if bound and not a.posonlyargs else 0:]) | {p.arg for p in a.kwonlyargs}
    unknown = sorted(k for k in keywords if k not in by_name)
    if unknown and a.kwarg is None:
        return f"has no parameter {', '.join(unknown)} (it takes {', '.join(positional + [p.arg for p in a.kwonlyargs])})"
    required = positional[:len(positional) - len(a.defaults)]
    required += [p.arg for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is None]
    missing = [p for i, p in enumerate(required) if i >= n_positional and p not in keywords]
    return f"requires {', '.join(missing)}, which the pack does not pass" if missing else None


# ----------------------------------------------------------------------------------------------------------------
# what the pack uses, read from its sources


def _is_comfyui_module(top: str) -> bool:
    return top.startswith("comfy") or (_root() / f"{top}.py").is_file() or (_root() / top / "__init__.py").is_file()


def _comfyui_aliases(tree: ast.Module) -> dict[str, str]:
    """local name -> ComfyUI module for every absolute import of one (in the module or inside functions)."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_comfyui_module(alias.name.split(".")[0]):
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else \
                        alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_comfyui_module(node.module.split(".")[0]):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                aliases[alias.asname or alias.name] = full
    return aliases


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def _resolve_all(dotted: str, aliases: dict[str, str]) -> tuple[str, str, list[str]] | None:
    """'mm.load_models_gpu' -> ('comfy.model_management', 'load_models_gpu', []); 'PromptServer.instance' ->
    ('server', 'PromptServer', ['instance']); None when not a ComfyUI name or when it names a module itself."""
    root, *rest = dotted.split(".")
    if root not in aliases:
        return None
    module = aliases[root]
    if _module_file(module) is None:  # `from comfy.x import Name`
        module, name = module.rsplit(".", 1)
        rest.insert(0, name)
    while rest and _module_file(f"{module}.{rest[0]}") is not None:
        module = f"{module}.{rest.pop(0)}"
    return (module, rest[0], rest[1:]) if rest else None


def _resolve(dotted: str, aliases: dict[str, str]) -> tuple[str, str] | None:
    found = _resolve_all(dotted, aliases)
    return found[:2] if found else None


class Use:
    """One use of a ComfyUI name at `where`: `module.name` itself (read, or called with `call`), or `member` of an
    object that a ComfyUI call returned (read, or called with `call`)."""

    def __init__(self, where: str, module: str, name: str, call: ast.Call | None, member: str | None = None):
        self.where, self.module, self.name, self.call, self.member = where, module, name, call, member

    def __repr__(self):
        return f"{self.module}.{self.name}{'→.' + self.member if self.member else ''} ({self.where})"


def _held_objects(tree: ast.Module, aliases: dict[str, str]) -> dict[str, tuple[str, str]]:
    """'self.bar' -> ('comfy.utils', 'ProgressBar'): what holds an object ComfyUI made, the result of a call
    (`x = f(...)`, also `f(...) if IN_COMFYUI else None`) or a class attribute holding an instance
    (`PromptServer.instance`); it is followed into the pack's own functions it is passed to."""
    objects = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign):
            continue
        values = [node.value.body, node.value.orelse] if isinstance(node.value, ast.IfExp) else [node.value]
        for value in values:
            dotted = _dotted(value.func if isinstance(value, ast.Call) else value)
            found = _resolve_all(dotted, aliases) if dotted else None
            if found is None:
                continue
            module, name, rest = found
            made = isinstance(value, ast.Call) and not rest
            held = not isinstance(value, ast.Call) and len(rest) == 1 and \
                isinstance(_top_level(_module(module).body).get(name), ast.ClassDef)
            if made or held:
                objects.update({ast.unparse(t): (module, name) for t in node.targets})
    functions = {f.name: f for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in functions:
            params = [a.arg for a in functions[node.func.id].args.args]
            for param, arg in zip(params, node.args, strict=False):
                if ast.unparse(arg) in objects:
                    objects[param] = objects[ast.unparse(arg)]
    return objects


def _pack_uses() -> tuple[list[Use], list[str]]:
    """Every ComfyUI name the pack reads or calls, and every ComfyUI module it imports."""
    uses, modules = [], set()
    for path in PACK_SOURCES:
        tree = _parse(path)
        aliases = _comfyui_aliases(tree)
        modules.update(aliases.values())
        objects = _held_objects(tree, aliases)
        where = path.relative_to(REPO).as_posix()
        handled = set()
        for node in ast.walk(tree):  # breadth first: a call is seen before the name it calls
            if id(node) in handled:
                continue
            call = node if isinstance(node, ast.Call) else None
            func = call.func if call else node
            if isinstance(func, ast.Attribute) and ast.unparse(func.value) in objects:
                uses.append(Use(f"{where}:{node.lineno}", *objects[ast.unparse(func.value)], call, func.attr))
                handled.add(id(func))
                continue
            dotted = _dotted(func) if isinstance(func, (ast.Attribute, ast.Name)) else None
            found = _resolve_all(dotted, aliases) if dotted else None
            if found:  # `mm.f(...)`, `folder_paths.models_dir`, or a class attribute: `PromptServer.instance`
                module, name, rest = found
                uses.append(Use(f"{where}:{node.lineno}", module, name, call, rest[0] if rest else None))
                handled.add(id(func))
    return uses, sorted(modules)


def _call_shape(call: ast.Call) -> tuple[int, set[str]]:
    return len(call.args), {k.arg for k in call.keywords if k.arg}


def _classes_made_by(module: str, fn: ast.AST) -> list[ast.ClassDef]:
    """The module's classes a function returns: named by its return annotation (`-> Optional[ExecutionContext]`),
    or built in its body (what `latent_preview.get_previewer` may return)."""
    defined = _top_level(_module(module).body)
    annotation = list(ast.walk(fn.returns)) if fn.returns is not None else []
    names = {n.id for n in annotation if isinstance(n, ast.Name)}
    names |= {n.value for n in annotation if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    names |= {n.func.id for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return [defined[n] for n in sorted(names) if isinstance(defined.get(n), ast.ClassDef)]


def _instance_attributes(module: str, cls: ast.ClassDef) -> set[str]:
    """Attributes a class's methods set on `self` (`self.last_node_id = None`) or on the class
    (`PromptServer.instance = self`), its base classes' too."""
    names = {n.attr for n in ast.walk(cls) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
             and isinstance(n.value, ast.Name) and n.value.id in ("self", cls.name)}
    defined = _top_level(_module(module).body)
    for base in cls.bases:
        if isinstance(base, ast.Name) and isinstance(defined.get(base.id), ast.ClassDef):
            names |= _instance_attributes(module, defined[base.id])
    return names


def _member_problem(use: Use, node: ast.AST) -> str | None:
    classes = [node] if isinstance(node, ast.ClassDef) else _classes_made_by(use.module, node)
    if not classes:
        return f"{use}: cannot see what {use.name} returns"
    for cls in classes:
        member = _class_member(use.module, cls, use.member)
        if member is None and use.member not in _instance_attributes(use.module, cls):
            return f"{use}: {cls.name} has no {use.member}"
        problem = _signature_problem(member, *_call_shape(use.call), bound=True) if use.call else None
        if problem:
            return f"{use}: {cls.name}.{use.member} {problem}"
    return None


def _use_problem(use: Use) -> str | None:
    node = _top_level(_module(use.module).body).get(use.name)
    if node is None:
        return f"{use}: {use.module} has no {use.name}"
    if use.member is not None:
        return _member_problem(use, node)
    if use.call is not None:
        fn = _class_member(use.module, node, "__init__") if isinstance(node, ast.ClassDef) else node
        problem = _signature_problem(fn, *_call_shape(use.call), bound=isinstance(node, ast.ClassDef)) \
            if fn is not None else ("takes no arguments" if use.call.args or use.call.keywords else None)
        if problem:
            return f"{use}: {use.name} {problem}"
    return None


@needs_comfyui
def test_every_comfyui_module_the_pack_imports_exists():
    _, modules = _pack_uses()
    assert "comfy.model_management" in modules and "folder_paths" in modules  # the scan sees the bridge's imports
    missing = [m for m in modules if _module_file(m) is None and _module_file(m.rsplit(".", 1)[0]) is None]
    assert not missing, f"the pack imports ComfyUI modules missing from {_root()}: {missing}"


@needs_comfyui
def test_every_comfyui_name_the_pack_uses_exists_with_the_arguments_passed():
    uses, _ = _pack_uses()
    seen = {(u.module, u.name, u.member) for u in uses}
    # the scan must see the calls the bridge is built on, or it checks nothing
    for expected in [("comfy.model_management", "load_models_gpu", None), ("comfy.model_patcher", "ModelPatcher", None),
                     ("comfy.utils", "ProgressBar", "update_absolute"), ("folder_paths", "get_folder_paths", None),
                     ("latent_preview", "get_previewer", "decode_latent_to_preview_image")]:
        assert expected in seen, f"the scan of the pack's sources missed {expected}: {sorted(seen, key=str)}"
    problems = sorted({p for p in map(_use_problem, uses) if p})
    assert not problems, "ComfyUI at {} does not offer what the pack uses:\n{}".format(_root(), "\n".join(problems))


@needs_comfyui
def test_what_the_bridge_uses_through_comfyuis_internals():
    """Not derivable from call sites: `mm.current_loaded_models` holds LoadedModel objects whose `.model` is the
    patcher and whose `model_unload()` the bridge calls (comfy_bridge.unload_model); ComfyUI's T5 tokenizer folder
    (comfy_bridge.tokenizer_dirs)."""
    bridge = (REPO / "nodes" / "comfy_bridge.py").read_text()
    assert "loaded[i].model_unload()" in bridge and "loaded[i].model is" in bridge and "t5_tokenizer" in bridge
    mm = _top_level(_module("comfy.model_management").body)
    assert isinstance(mm.get("current_loaded_models"), (ast.Assign, ast.AnnAssign))  # `: list[LoadedModel]` later
    loaded = mm.get("LoadedModel")
    assert isinstance(loaded, ast.ClassDef), "comfy.model_management has no class LoadedModel"
    assert _class_member("comfy.model_management", loaded, "model") is not None or \
        "self.model =" in ast.unparse(_class_member("comfy.model_management", loaded, "__init__")), "LoadedModel has no .model"
    assert _signature_problem(_class_member("comfy.model_management", loaded, "model_unload"), 0, set(),
                              bound=True) is None
    tokenizer = _root() / "comfy" / "text_encoders" / "t5_tokenizer"
    assert (tokenizer / "tokenizer.json").is_file(), f"no T5 tokenizer at {tokenizer}"


# ----------------------------------------------------------------------------------------------------------------
# model folders and the custom-node loader


def _string_constants(tree: ast.Module) -> dict[str, str]:
    return {t.id: st.value.value for st in tree.body if isinstance(st, ast.Assign)
            and isinstance(st.value, ast.Constant) and isinstance(st.value.value, str)
            for t in st.targets if isinstance(t, ast.Name)}


@needs_comfyui
def test_model_folders_exist_or_are_registered_by_the_pack():
    bridge = _parse(REPO / "nodes" / "comfy_bridge.py")
    constants = _string_constants(bridge)
    folders_node = _top_level(bridge.body)["MODEL_FOLDERS"].value
    folders = [constants[e.id] for e in folders_node.elts]
    register = _top_level(bridge.body)["register_model_folders"]  # what the pack adds where ComfyUI lacks it
    registered = {constants[n.slice.id] for n in ast.walk(register) if isinstance(n, ast.Subscript)
                  and isinstance(n.ctx, ast.Store) and isinstance(n.slice, ast.Name)}
    assert "checkpoints" in folders and registered == {"latent_upscale_models"}
    core = {n.slice.value for n in ast.walk(_module("folder_paths")) if isinstance(n, ast.Subscript)
            and isinstance(n.ctx, ast.Store) and ast.unparse(n.value) == "folder_names_and_paths"
            and isinstance(n.slice, ast.Constant)}
    missing = [f for f in folders if f not in core and f not in registered]
    assert not missing, f"folder_paths.py at {_root()} defines no model folder {missing} (it has {sorted(core)})"


@functools.lru_cache(maxsize=None)
def _names_read_by_core() -> frozenset[str]:
    """Every string constant and attribute name in the files that load and run nodes."""
    files = [*_root().glob("*.py"), *(_root() / "comfy_execution").rglob("*.py"), *(_root() / "comfy_api").rglob("*.py")]
    names = set()
    for path in files:
        for node in ast.walk(_parse(path)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
    return frozenset(names)


def _pack_node_classes() -> dict:
    from node_pack import import_pack

    return import_pack().NODE_CLASS_MAPPINGS


# Node attributes only newer ComfyUI reads (node search aliases, after 0.3.64); older versions ignore them.
NEWER_NODE_ATTRIBUTES = {"SEARCH_ALIASES"}


@needs_comfyui
def test_custom_node_loading_conventions():
    exported = ast.literal_eval(_top_level(_parse(REPO / "__init__.py").body)["__all__"].value)
    assert "NODE_CLASS_MAPPINGS" in exported and "WEB_DIRECTORY" in exported
    loader = {n.value for n in ast.walk(_module("nodes")) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    unread = [name for name in exported if name not in loader]
    assert not unread, f"nodes.py at {_root()} does not read the pack's {unread} (custom-node loader changed?)"
    attributes = {name for cls in _pack_node_classes().values() for klass in cls.__mro__[:-1]
                  for name in vars(klass) if re.fullmatch(r"[A-Z][A-Z_]+", name)}
    assert {"INPUT_TYPES", "RETURN_TYPES", "FUNCTION", "CATEGORY"} <= attributes
    unread = sorted(attributes - _names_read_by_core() - NEWER_NODE_ATTRIBUTES)
    assert not unread, f"no ComfyUI file at {_root()} reads the node attributes {unread}: V1 node API changed?"


# ----------------------------------------------------------------------------------------------------------------
# behaviours: interruption, out of memory


def _is_broad(handler: ast.ExceptHandler) -> bool:
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return handler.type is None or any(isinstance(t, ast.Name) and t.id in ("Exception", "BaseException")
                                       for t in types)


# what can raise an interruption: the bridge's checks, ComfyUI's progress bar (its hook checks), the progress callback
INTERRUPTIBLE = re.compile(r"interrupt|update_absolute|^progress$|^Progress$", re.IGNORECASE)


@needs_comfyui
def test_interruption_reaches_comfyui_whatever_the_exception_base():
    mm = _top_level(_module("comfy.model_management").body)
    exc = mm.get("InterruptProcessingException")
    assert isinstance(exc, ast.ClassDef), "comfy.model_management has no class InterruptProcessingException"
    bases = [ast.unparse(b) for b in exc.bases]
    assert bases in (["Exception"], ["BaseException"]), f"InterruptProcessingException derives from {bases}"
    raised = [ast.unparse(n.exc) for n in ast.walk(mm["throw_exception_if_processing_interrupted"])
              if isinstance(n, ast.Raise)]
    assert raised == ["InterruptProcessingException()"], raised
    execution = {n.attr for n in ast.walk(_module("execution")) if isinstance(n, ast.Attribute)}
    assert "InterruptProcessingException" in execution, "execution.py no longer tells an interruption from an error"
    # With an Exception base, a broad `except` in the pack would turn a cancel into a failure (or swallow it): each
    # one either raises again what it does not handle, or guards code that cannot be interrupted.
    handlers, problems = 0, []
    for path in PACK_SOURCES:
        for node in ast.walk(_parse(path)):
            if not isinstance(node, ast.Try):
                continue
            for handler in filter(_is_broad, node.handlers):
                handlers += 1
                reraises = any(isinstance(n, ast.Raise) and n.exc is None for n in ast.walk(handler))
                body = {getattr(n, "id", None) or getattr(n, "attr", None) or getattr(n, "arg", None)
                        for st in node.body for n in ast.walk(st)}
                reached = sorted(n for n in body if n and INTERRUPTIBLE.search(n))
                if reached and not reraises:
                    problems.append(f"{path.relative_to(REPO)}:{handler.lineno} catches everything around {reached}")
    assert handlers >= 5  # the scan sees the pack's handlers
    assert not problems, "an interruption (InterruptProcessingException is an Exception in ComfyUI 0.3.64) would " \
                         "be swallowed:\n" + "\n".join(problems)


def _comfyui_oom_errors() -> set[str]:
    """The error classes ComfyUI counts as out of memory: `is_oom` (newer) or `OOM_EXCEPTION` (0.3.64), and the
    module-level names is_oom tests against (`ACCELERATOR_ERROR = torch.AcceleratorError`)."""
    mm = _top_level(_module("comfy.model_management").body)
    sources = [mm[name] for name in ("is_oom", "OOM_EXCEPTION") if name in mm]
    assert sources, "comfy.model_management has neither is_oom nor OOM_EXCEPTION"
    if "is_oom" in mm:
        assert _signature_problem(mm["is_oom"], 1, set()) is None
        sources += [mm[n.id] for n in ast.walk(mm["is_oom"]) if isinstance(n, ast.Name)
                    and isinstance(mm.get(n.id), (ast.Assign, ast.Try))]
    return {n.attr for src in sources for n in ast.walk(src) if isinstance(n, ast.Attribute)
            and n.attr.endswith("Error")}


@needs_comfyui
def test_out_of_memory_is_recognised_as_comfyui_does():
    """Whatever ComfyUI counts as out of memory, the pack's own check (ltx_core/memory/oom.py, used by the decode
    retry and the CLI) must know too."""
    errors = _comfyui_oom_errors()
    assert "OutOfMemoryError" in errors, errors
    pack_oom = {n.attr if isinstance(n, ast.Attribute) else n.value for n in ast.walk(
        _parse(REPO / "ltx_core" / "memory" / "oom.py")) if isinstance(n, (ast.Attribute, ast.Constant))}
    unknown = sorted(errors - pack_oom)
    assert not unknown, f"ComfyUI at {_root()} counts {unknown} as out of memory; ltx_core/memory/oom.py does not"


# ----------------------------------------------------------------------------------------------------------------
# core nodes the workflows use


class Port:
    """An input or output of a node: its socket type (None for a combo, whose value is a choice) and whether it
    must be given."""

    def __init__(self, kind: str | None, required: bool = True):
        self.kind, self.required = kind, required

    def __repr__(self):
        return f"{self.kind}{'' if self.required else ' (optional)'}"


def _v3_port(call: ast.Call) -> Port:
    """io.Image.Input(...) -> IMAGE; combos (DynamicCombo too) -> None."""
    kind = (_dotted(call.func.value) or "").rsplit(".", 1)[-1]
    optional = any(k.arg == "optional" and isinstance(k.value, ast.Constant) and k.value.value for k in call.keywords)
    return Port(None if "Combo" in kind else kind.upper(), not optional)


def _v3_inputs(element: ast.AST, functions: dict[str, ast.AST]) -> dict[str, Port]:
    """One entry of a schema's `inputs=[...]`: `io.X.Input("name", ...)`, or a call of a helper in the same module
    that returns one (`_save_video_codec_input(...)` in newer ComfyUI)."""
    if not isinstance(element, ast.Call):
        return {}
    if isinstance(element.func, ast.Attribute) and element.func.attr == "Input":
        name = element.args[0] if element.args else next(k.value for k in element.keywords if k.arg == "id")
        return {name.value: _v3_port(element)} if isinstance(name, ast.Constant) else {}
    helper = functions.get(getattr(element.func, "id", None))
    found = {}
    for ret in (n for n in ast.walk(helper) if isinstance(n, ast.Return)) if helper else []:
        for name, port in _v3_inputs(ret.value, functions).items():
            # `optional=optional` in the helper: the caller's keyword decides
            given = {k.arg: k.value for k in element.keywords}
            if isinstance(given.get("optional"), ast.Constant):
                port = Port(port.kind, not given["optional"].value)
            found[name] = port
    return found


def _v3_node(class_type: str) -> tuple[dict[str, Port], list[str | None]] | None:
    for path in sorted((_root() / "comfy_extras").glob("*.py")):
        tree = _parse(path)
        functions = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and any(k.arg == "node_id" and isinstance(k.value, ast.Constant)
                                                  and k.value.value == class_type for k in node.keywords):
                parts = {k.arg: k.value for k in node.keywords}
                inputs = {}
                for element in getattr(parts.get("inputs"), "elts", []):
                    inputs.update(_v3_inputs(element, functions))
                return inputs, [_v3_port(call).kind for call in getattr(parts.get("outputs"), "elts", [])]
    return None


def _v1_node(class_type: str) -> tuple[dict[str, Port], list[str | None]] | None:
    nodes = _top_level(_module("nodes").body)
    mapping = nodes["NODE_CLASS_MAPPINGS"].value
    names = {k.value: v.id for k, v in zip(mapping.keys, mapping.values, strict=True) if isinstance(v, ast.Name)}
    cls = nodes.get(names.get(class_type))
    if not isinstance(cls, ast.ClassDef):
        return None
    inputs = {}
    for node in ast.walk(_class_member("nodes", cls, "INPUT_TYPES")):
        if not isinstance(node, ast.Dict):
            continue
        for group_key, group in zip(node.keys, node.values, strict=True):
            if not (isinstance(group_key, ast.Constant) and group_key.value in ("required", "optional")):
                continue
            for key, spec in zip(getattr(group, "keys", []), getattr(group, "values", []), strict=True):
                first = spec.elts[0] if isinstance(spec, ast.Tuple) else None
                kind = first.value if isinstance(first, ast.Constant) else None
                inputs[key.value] = Port(kind, group_key.value == "required")
    outputs = ast.literal_eval(_class_member("nodes", cls, "RETURN_TYPES").value)
    return inputs, list(outputs)


def _signature(class_type: str) -> tuple[dict[str, Port], list[str | None]]:
    """(inputs, output types) of a node: the pack's from its classes, core ones from the source at COMFYUI_PATH."""
    pack = _pack_node_classes()
    if class_type in pack:
        spec = pack[class_type].INPUT_TYPES()
        inputs = {name: Port(entry[0] if isinstance(entry[0], str) else None, group == "required")
                  for group in ("required", "optional") for name, entry in spec.get(group, {}).items()}
        return inputs, list(pack[class_type].RETURN_TYPES)
    found = _v1_node(class_type) or _v3_node(class_type)
    if found is None:
        raise AssertionError(f"ComfyUI at {_root()} has no node {class_type} (neither in nodes.py nor comfy_extras/)")
    return found


def _link_problem(graph: dict, key: str, port: Port, value: list) -> str | None:
    source = graph[value[0]]["class_type"]
    outputs = _signature(source)[1]
    if value[1] >= len(outputs):
        return f"{source} has no output {value[1]} (it has {outputs})"
    given = outputs[value[1]]
    if None not in (port.kind, given) and "*" not in (port.kind, given) and port.kind != given:
        return f"takes {port.kind}, gets {given} from {source}"
    return None


def _graph_problems(name: str, graph: dict) -> list[str]:
    problems = []
    for node_id, node in graph.items():
        inputs, _ = _signature(node["class_type"])
        where = f"{name} node {node_id} ({node['class_type']})"
        missing = sorted(k for k, port in inputs.items() if port.required and k not in node["inputs"])
        if missing:
            problems.append(f"{where}: required inputs {missing} not given")
        for key, value in node["inputs"].items():
            if key not in inputs:
                problems.append(f"{where} input {key!r}: not an input (it has {sorted(inputs)})")
            elif isinstance(value, list):
                problem = _link_problem(graph, key, inputs[key], value)
                if problem:
                    problems.append(f"{where} input {key!r}: {problem}")
    return problems


@needs_comfyui
def test_workflows_fit_the_core_nodes():
    pack = _pack_node_classes()
    problems, core = [], set()
    for path in sorted((REPO / "workflows" / "api").glob("*.json")):
        graph = json.loads(path.read_text())
        core |= {n["class_type"] for n in graph.values() if n["class_type"] not in pack}
        problems += _graph_problems(path.name, graph)
    assert {"CreateVideo", "SaveVideo"} <= core
    assert not problems, f"the workflows do not fit ComfyUI at {_root()}:\n" + "\n".join(problems)


@needs_comfyui
def test_the_workflow_tests_core_node_stand_ins_match_comfyui():
    """tests/test_workflows.py checks the workflows against stand-ins written from ComfyUI 0.3.64: each input they
    list exists with its type, none that ComfyUI requires is missing, and their outputs keep their indices (newer
    ComfyUI adds optional inputs and trailing outputs)."""
    import test_workflows

    problems = []
    for name, (spec, outputs, _) in test_workflows.CORE_NODES.items():
        inputs, real_outputs = _signature(name)
        stand_in = {k: v[0] for group in ("required", "optional") for k, v in spec.get(group, {}).items()}
        problems += [f"{name}: no input {k!r} in ComfyUI (it has {sorted(inputs)})" for k in stand_in
                     if k not in inputs]
        problems += [f"{name}: ComfyUI requires {k!r}, which the stand-in lacks" for k, port in inputs.items()
                     if port.required and k not in stand_in]
        problems += [f"{name}.{k}: {t}, ComfyUI has {inputs[k].kind}" for k, t in stand_in.items()
                     if k in inputs and isinstance(t, str) and not t.startswith("FILE:") and inputs[k].kind != t]
        if list(outputs) != real_outputs[:len(outputs)]:
            problems.append(f"{name}: outputs {list(outputs)}, ComfyUI has {real_outputs}")
    assert not problems, "tests/test_workflows.py CORE_NODES differ from ComfyUI:\n" + "\n".join(problems)


# ----------------------------------------------------------------------------------------------------------------
# what the server tests rely on: HTTP routes, the JSON keys posted to them, command-line flags

HTTP_CALLS = {"get": "get", "get_json": "get", "post_json": "post", "url": None, "WebSocket": "get"}


def _path_of(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value
    elif isinstance(node, ast.JoinedStr):
        text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    else:
        return None
    return text.split("?")[0] if text.startswith("/") else None


def _requests() -> list[tuple[str | None, str, set[str]]]:
    """(method or None, path with {} for a variable part, JSON keys posted) for each request the server tests make."""
    out = []
    for path in SERVER_TEST_SOURCES:
        for node in ast.walk(_parse(path)):
            name = getattr(node, "func", None)
            name = getattr(name, "attr", None) or getattr(name, "id", None)
            if isinstance(node, ast.Call) and name in HTTP_CALLS and node.args and _path_of(node.args[0]):
                body = node.args[1] if len(node.args) > 1 else None
                keys = {k.value for k in getattr(body, "keys", []) if isinstance(k, ast.Constant)}
                out.append((HTTP_CALLS[name], _path_of(node.args[0]), keys))
    return out


def _routes() -> list[tuple[str, str, ast.AST]]:
    routes = []
    for fn in ast.walk(_module("server")):
        for deco in getattr(fn, "decorator_list", []):
            if isinstance(deco, ast.Call) and _dotted(deco.func) in ("routes.get", "routes.post") and deco.args:
                routes.append((deco.func.attr, deco.args[0].value, fn))
    return routes


def _matches(route: str, path: str) -> bool:
    r, p = route.split("/"), path.split("/")
    return len(r) == len(p) and all(a == b or a.startswith("{") for a, b in zip(r, p, strict=True))


@needs_comfyui
def test_server_routes_the_tests_use():
    requests, routes = _requests(), _routes()
    assert {("post", "/prompt"), ("post", "/interrupt"), ("get", "/history/{}")} <= {(m, p) for m, p, _ in requests}
    problems = []
    for method, path, keys in requests:
        found = [fn for m, route, fn in routes if _matches(route, path) and method in (None, m)]
        if not found:
            problems.append(f"{(method or 'any').upper()} {path}: no such route")
            continue
        read = {n.value for fn in found for n in ast.walk(fn) if isinstance(n, ast.Constant)}
        problems += [f"{method.upper()} {path}: the handler does not read {k!r}" for k in sorted(keys - read)]
    assert not problems, f"server.py at {_root()}:\n" + "\n".join(problems)


@needs_comfyui
def test_command_line_flags_the_tests_pass():
    flags = {n.value for path in SERVER_TEST_SOURCES for n in ast.walk(_parse(path))
             if isinstance(n, ast.Constant) and isinstance(n.value, str) and re.fullmatch(r"--[a-z][a-z-]+", n.value)}
    assert {"--cpu", "--extra-model-paths-config", "--database-url"} <= flags
    known = {a.value for n in ast.walk(_module("comfy.cli_args")) if isinstance(n, ast.Call)
             and getattr(n.func, "attr", None) == "add_argument" for a in n.args if isinstance(a, ast.Constant)}
    unknown = sorted(flags - known)
    assert not unknown, f"comfy/cli_args.py at {_root()} has no flag {unknown}"


# ----------------------------------------------------------------------------------------------------------------
# the readers themselves, on the shapes newer ComfyUI writes (0.38: is_oom with ACCELERATOR_ERROR, an annotated
# current_loaded_models, SaveVideo's codec built by a helper returning a DynamicCombo, optional inputs, more outputs)

NEWER_MODEL_MANAGEMENT = '''
try:
    OOM_EXCEPTION = torch.cuda.OutOfMemoryError
except:
    OOM_EXCEPTION = Exception
try:
    ACCELERATOR_ERROR = torch.AcceleratorError
except AttributeError:
    ACCELERATOR_ERROR = RuntimeError
def is_oom(e):
    return isinstance(e, OOM_EXCEPTION) or isinstance(e, ACCELERATOR_ERROR)
current_loaded_models: list[LoadedModel] = []
def free_memory(memory_required, device, keep_loaded=[], for_dynamic=False, pins_required=0):
    pass
class InterruptProcessingException(BaseException):
    pass
'''

NEWER_VIDEO_NODES = '''
def _codec_input(supported, *, optional=False, hidden=False):
    options = [io.DynamicCombo.Option(c, []) for c in supported]
    return io.DynamicCombo.Input("codec", options=options, optional=optional)

class SaveVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="SaveVideo", inputs=[
            io.Video.Input("video"), io.String.Input("filename_prefix", default="video/ComfyUI"),
            io.DynamicCombo.Input("format", options=[io.DynamicCombo.Option("auto", [_codec_input(["auto"])])]),
            _codec_input(["auto", "h264"], optional=True, hidden=True)],
            outputs=[io.Video.Output("video")])

class GetVideoComponents(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="GetVideoComponents", inputs=[io.Video.Input("video")],
                         outputs=[io.Image.Output(), io.Audio.Output(), io.Float.Output(), io.Combo.Output(),
                                  io.Combo.Output()])
'''


def test_readers_on_newer_comfyui_shapes(tmp_path, monkeypatch):
    (tmp_path / "comfy").mkdir()
    (tmp_path / "comfy_extras").mkdir()
    (tmp_path / "comfy" / "model_management.py").write_text(NEWER_MODEL_MANAGEMENT)
    (tmp_path / "comfy_extras" / "nodes_video.py").write_text(NEWER_VIDEO_NODES)
    monkeypatch.setattr(sys.modules[__name__], "COMFYUI_PATH", str(tmp_path))
    mm = _top_level(_module("comfy.model_management").body)
    assert isinstance(mm["current_loaded_models"], ast.AnnAssign)
    assert _comfyui_oom_errors() == {"OutOfMemoryError", "AcceleratorError"}
    assert _signature_problem(mm["free_memory"], 2, {"keep_loaded"}) is None
    assert "has no parameter force" in _signature_problem(mm["free_memory"], 2, {"force"})
    assert "requires device" in _signature_problem(mm["free_memory"], 1, set())
    inputs, outputs = _v3_node("SaveVideo")
    assert {k: (p.kind, p.required) for k, p in inputs.items()} == {
        "video": ("VIDEO", True), "filename_prefix": ("STRING", True), "format": (None, True), "codec": (None, False)}
    assert outputs == ["VIDEO"]
    assert _v3_node("GetVideoComponents")[1] == ["IMAGE", "AUDIO", "FLOAT", None, None]
    assert _v3_node("CreateVideo") is None
