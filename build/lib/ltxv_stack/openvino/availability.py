"""Whether the optional OpenVINO packages are installed, and what to run when they are not."""
from __future__ import annotations

import importlib.util

# The extra's requirements file at the repository root (pyproject's optional-dependencies mirror it).
INSTALL_COMMAND = "pip install -r requirements-openvino.txt (or: pip install \"openvino>=2026.0\" \"nncf>=3.0\")"


def backend_problem(weights: str = "fp32") -> str | None:
    """Why the OpenVINO backend cannot run with `weights` here, or None when it can. Looks for the packages without
    importing them (openvino takes seconds to import)."""
    missing = [name for name in ("openvino", *(("nncf",) if weights != "fp32" else ()))
               if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return (f"the OpenVINO backend needs the optional package(s) {', '.join(missing)}, which are not installed: "
            f"{INSTALL_COMMAND}")
