"""Recognising running out of memory: torch raises it as OutOfMemoryError, and (newer torch, some allocators) as an
AcceleratorError whose message says so; both mean "too big here", not a bug."""
from __future__ import annotations

import torch


def is_out_of_memory(e: BaseException) -> bool:
    if isinstance(e, torch.OutOfMemoryError):
        return True
    accelerator_error = getattr(torch, "AcceleratorError", None)
    return accelerator_error is not None and isinstance(e, accelerator_error) and "out of memory" in str(e).lower()
