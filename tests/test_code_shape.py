"""Code-shape rules, checked on the source with `ast` (no linter needed at test time).

1. No function or method in ltx_core/ or nodes/ runs over 60 lines or takes over 8 parameters, unless the comment
   block directly above its `def` (or above its first decorator) says why: `# long: <reason>` for the length,
   `# many parameters: <reason>` for the parameter count.
2. The ComfyUI nodes and the CLI use ltx_core only through the names it declares public (`ltx_core.__all__`): in
   nodes/*.py every import that reaches ltx_core is `from ..ltx_core import A, B`; in ltx_core/cli.py every relative
   import is `from . import A, B`.
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 60
MAX_PARAMETERS = 8
LONG_MARK = "# long:"
MANY_PARAMETERS_MARK = "# many parameters:"


def _source_files(*dirs: str) -> list[Path]:
    return sorted(p for d in dirs for p in (REPO / d).rglob("*.py") if "__pycache__" not in p.parts)


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


# --- 1. function length and parameter count ------------------------------------------------------------------------

def _functions(tree: ast.Module):
    """(qualified name, node) of every function and method, nested ones included."""
    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                yield name, child
                yield from walk(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, prefix + child.name + ".")
            else:
                yield from walk(child, prefix)
    yield from walk(tree, "")


def _comments_above(fn: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> list[str]:
    """The block of comment lines directly above the def (or its first decorator), nearest first."""
    first = min([fn.lineno] + [d.lineno for d in fn.decorator_list])
    block = []
    i = first - 2  # 0-based index of the line above
    while i >= 0 and lines[i].strip().startswith("#"):
        block.append(lines[i].strip())
        i -= 1
    return block


def _has_reason(block: list[str], mark: str) -> bool:
    return any(c.startswith(mark) and c[len(mark):].strip() for c in block)


def _parameter_count(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = fn.args
    named = [p.arg for p in a.posonlyargs + a.args]
    if named and named[0] in ("self", "cls"):
        named = named[1:]
    return len(named) + len(a.kwonlyargs) + (a.vararg is not None) + (a.kwarg is not None)


def _shape_offenders_in(label: str, text: str) -> tuple[list[str], list[str]]:
    """(too long, too many parameters) in one source file, as `label:line name (N lines / N parameters)`."""
    tree, lines = ast.parse(text, filename=label), text.splitlines()
    too_long, too_many = [], []
    for name, fn in _functions(tree):
        block = _comments_above(fn, lines)
        n_lines = fn.end_lineno - fn.lineno + 1
        if n_lines > MAX_LINES and not _has_reason(block, LONG_MARK):
            too_long.append(f"{label}:{fn.lineno} {name} ({n_lines} lines)")
        n_params = _parameter_count(fn)
        if n_params > MAX_PARAMETERS and not _has_reason(block, MANY_PARAMETERS_MARK):
            too_many.append(f"{label}:{fn.lineno} {name} ({n_params} parameters)")
    return too_long, too_many


def _shape_offenders() -> tuple[list[str], list[str]]:
    too_long, too_many = [], []
    for path in _source_files("ltx_core", "nodes"):
        long_here, many_here = _shape_offenders_in(_rel(path), path.read_text(encoding="utf-8"))
        too_long += long_here
        too_many += many_here
    return too_long, too_many


def test_shape_rules_on_a_sample():
    """The checker itself: lengths exclude decorators, self/cls are not parameters, *args/**kwargs count one each,
    and a reason comment counts only directly above the def or its first decorator."""
    body = "\n".join(["        x = 1"] * (MAX_LINES - 1))
    params = ", ".join(f"p{i}" for i in range(MAX_PARAMETERS - 2))
    sample = "\n".join([
        "class C:",
        "    @staticmethod",
        "    @property",
        f"    def exactly_max(self):\n{body}",         # MAX_LINES lines from def to end: fine
        f"    def over(self):\n{body}\n        y = 2",  # one more: too long
        f"    def many(self, {params}, *a, **k): pass",  # MAX_PARAMETERS: fine
        f"    def too_many(cls, {params}, q, *, r, **k): pass",
        "    # long: a reason",
        "    # many parameters: a reason",
        "    @staticmethod",
        f"    def excused({params}, q, r, s):\n{body}\n        y = 2",
        "    # long: a reason",
        "",
        f"    def not_adjacent():\n{body}\n        y = 2",
        "    # long:",
        f"    def no_reason_given():\n{body}\n        y = 2",
    ]) + "\n"
    too_long, too_many = _shape_offenders_in("s.py", sample)
    assert [t.split(" ", 1)[1] for t in too_long] == [
        f"C.over ({MAX_LINES + 1} lines)", f"C.not_adjacent ({MAX_LINES + 1} lines)",
        f"C.no_reason_given ({MAX_LINES + 1} lines)"]
    assert [t.split(" ", 1)[1] for t in too_many] == [f"C.too_many ({MAX_PARAMETERS + 1} parameters)"]


def test_functions_are_short_or_say_why():
    too_long, _ = _shape_offenders()
    assert not too_long, (
        f"{len(too_long)} function(s) over {MAX_LINES} lines without a `{LONG_MARK} <reason>` comment directly "
        "above the def (or its first decorator):\n" + "\n".join(too_long))


def test_functions_take_few_parameters_or_say_why():
    _, too_many = _shape_offenders()
    assert not too_many, (
        f"{len(too_many)} function(s) with over {MAX_PARAMETERS} parameters without a `{MANY_PARAMETERS_MARK} "
        "<reason>` comment directly above the def (or its first decorator):\n" + "\n".join(too_many))


# --- 2. the public surface of ltx_core -----------------------------------------------------------------------------

def _literal_strings(node: ast.AST) -> list[str] | None:
    if isinstance(node, (ast.List, ast.Tuple)) and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
        return [e.value for e in node.elts]
    return None


def public_names() -> set[str]:
    """`ltx_core.__all__`, read from ltx_core/__init__.py without importing it."""
    path = REPO / "ltx_core" / "__init__.py"
    return _all_names(path.read_text(encoding="utf-8"), _rel(path))


def _all_names(text: str, label: str) -> set[str]:
    """`__all__` of a module's source: a literal list/tuple of strings, or list()/sorted()/tuple() of a module-level
    dict literal (or of its .keys()) whose keys are the names."""
    tree = ast.parse(text, filename=label)
    assigned: dict[str, ast.AST] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    assigned[target.id] = stmt.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            assigned[stmt.target.id] = stmt.value
    value = assigned.get("__all__")
    assert value is not None, f"{label} assigns no __all__"
    names = _literal_strings(value)
    if names is not None:
        return set(names)
    source = None
    if (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
            and value.func.id in ("list", "sorted", "tuple") and len(value.args) == 1 and not value.keywords):
        source = value.args[0]
        if (isinstance(source, ast.Call) and isinstance(source.func, ast.Attribute) and source.func.attr == "keys"
                and not source.args):
            source = source.func.value
    mapping = assigned.get(source.id) if isinstance(source, ast.Name) else None
    assert isinstance(mapping, ast.Dict) and all(
        isinstance(k, ast.Constant) and isinstance(k.value, str) for k in mapping.keys), (
        f"{label}: __all__ must be a literal list/tuple of strings or list()/sorted() of a dict literal with "
        f"string keys; got {ast.unparse(value)}")
    return {k.value for k in mapping.keys}


def _reaches_ltx_core(module: str | None) -> bool:
    return module is not None and (module == "ltx_core" or module.startswith("ltx_core."))


def _import_text(node: ast.AST) -> str:
    return ast.unparse(node).replace("\n", " ")


def _absolute_import_problem(node: ast.AST, where: str, spelling: str) -> str | None:
    """An `import ltx_core...` or `from ltx_core... import`: the package must be reached relatively."""
    names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
    if isinstance(node, ast.ImportFrom) and node.level == 0:
        names = [node.module]
    if any(_reaches_ltx_core(n) for n in names):
        return f"{where} `{_import_text(node)}`: use `{spelling}`"
    return None


def _not_public(node: ast.ImportFrom, where: str, public: set[str]) -> list[str]:
    return [f"{where} `{a.name}` is not in ltx_core.__all__" for a in node.names if a.name not in public]


def _relative_problems(node: ast.ImportFrom, where: str, public: set[str], in_nodes: bool) -> list[str]:
    """In nodes/*.py `..` is the pack root, where ltx_core lives; in ltx_core/cli.py `.` is ltx_core itself."""
    text = _import_text(node)
    if not in_nodes:
        if node.level != 1 or node.module is not None:
            return [f"{where} `{text}`: relative imports must be `from . import ...`"]
        return _not_public(node, where, public)
    if node.level != 2:
        return []
    if node.module is None and any(a.name == "ltx_core" for a in node.names):
        return [f"{where} `{text}`: use `from ..ltx_core import ...`"]
    if not _reaches_ltx_core(node.module):
        return []
    if node.module != "ltx_core":
        return [f"{where} `{text}`: import from ..ltx_core itself, not ..{node.module}"]
    return _not_public(node, where, public)


def _import_problems(label: str, text: str, public: set[str], in_nodes: bool) -> list[str]:
    spelling = "from ..ltx_core import ..." if in_nodes else "from . import ..."
    problems = []
    for node in ast.walk(ast.parse(text, filename=label)):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        where = f"{label}:{node.lineno}"
        absolute = _absolute_import_problem(node, where, spelling)
        if absolute:
            problems.append(absolute)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            problems += _relative_problems(node, where, public, in_nodes)
    return problems


def _node_import_problems(label: str, text: str, public: set[str]) -> list[str]:
    return _import_problems(label, text, public, in_nodes=True)


def _cli_import_problems(label: str, text: str, public: set[str]) -> list[str]:
    return _import_problems(label, text, public, in_nodes=False)


def test_public_names_parse():
    """The reader of __all__ itself, on both supported forms, and on today's ltx_core/__init__.py."""
    assert _all_names('__all__ = ["a", "b"]\n', "s.py") == {"a", "b"}
    assert _all_names('__all__ = ("a",)\n', "s.py") == {"a"}
    exports = '_EXPORTS = {"A": ".x", "b": ".y"}\n'
    for form in ("list(_EXPORTS)", "sorted(_EXPORTS)", "tuple(_EXPORTS.keys())"):
        assert _all_names(exports + f"__all__ = {form}\n", "s.py") == {"A", "b"}
    assert public_names()


def test_import_rules_on_a_sample():
    public = {"A", "B"}
    nodes_sample = "\n".join([
        "import torch",
        "from . import common",
        "from ..ltx_core import A, B",           # fine
        "from ..ltx_core import (A,",            # fine, over two lines
        "    B)",
        "from ..ltx_core import C",              # 6: not public
        "from ..ltx_core.loader import A",       # 7: deeper path
        "from .. import ltx_core",               # 8: the package itself
        "import ltx_core.model",                 # 9: absolute
        "def f():",
        "    from ltx_core import A",            # 11: absolute, inside a function
        "    from ..ltx_core import *",          # 12: not a name
    ]) + "\n"
    problems = _node_import_problems("n.py", nodes_sample, public)
    assert sorted(_by_location(p)[1] for p in problems) == [6, 7, 8, 9, 11, 12], problems
    cli_sample = "\n".join([
        "import argparse",
        "from . import A",                       # fine
        "def f():",
        "    from . import (A, B)",              # fine
        "    from .loader import A",             # 5: a module path
        "    from . import C",                   # 6: not public
        "from .. import A",                      # 7: outside ltx_core
        "import ltx_core",                       # 8: absolute
    ]) + "\n"
    problems = _cli_import_problems("c.py", cli_sample, public)
    assert sorted(_by_location(p)[1] for p in problems) == [5, 6, 7, 8], problems


def _by_location(problem: str) -> tuple[str, int]:
    path, line = problem.split(" ", 1)[0].rsplit(":", 1)
    return path, int(line) if line.isdigit() else 0


def test_nodes_and_cli_use_only_the_public_surface():
    public = public_names()
    problems = []
    for path in sorted((REPO / "nodes").glob("*.py")):
        problems += _node_import_problems(_rel(path), path.read_text(encoding="utf-8"), public)
    cli = REPO / "ltx_core" / "cli.py"
    problems += _cli_import_problems(_rel(cli), cli.read_text(encoding="utf-8"), public)
    problems.sort(key=_by_location)
    assert not problems, (
        f"{len(problems)} import(s) reach past ltx_core's public names (ltx_core.__all__ = {sorted(public)}):\n"
        + "\n".join(problems))
