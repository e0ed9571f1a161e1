"""The node pack imported as ComfyUI imports it: the repository root as a package, so its relative imports
(`from ..ltx_core import ...`) resolve exactly as they do inside ComfyUI."""
import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACK = "ltxv_pack"


def import_pack():
    if PACK in sys.modules:
        return sys.modules[PACK]
    spec = importlib.util.spec_from_file_location(PACK, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK] = module
    spec.loader.exec_module(module)
    return module


def submodule(name: str):
    import_pack()
    return sys.modules[f"{PACK}.{name}"]
