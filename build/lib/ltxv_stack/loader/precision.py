"""The caller's weight dtype, and where fp8 storage applies."""
import torch
from torch import nn

from ..model.ops import Linear

_NAMES = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16,
    "float8_e4m3fn": torch.float8_e4m3fn, "fp8_e4m3fn": torch.float8_e4m3fn,
    "float8_e5m2": torch.float8_e5m2, "fp8_e5m2": torch.float8_e5m2,
}
FP8 = (torch.float8_e4m3fn, torch.float8_e5m2)
# fp8 has no arithmetic of its own here: fp8-stored layers compute in bf16.
FP8_COMPUTE = torch.bfloat16


def parse_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype) and dtype in _NAMES.values():
        return dtype
    if isinstance(dtype, str) and dtype.lower().removeprefix("torch.") in _NAMES:
        return _NAMES[dtype.lower().removeprefix("torch.")]
    allowed = ", ".join(k for k in _NAMES if "_" in k or k.endswith("16") or k.endswith("32"))
    raise ValueError(f"unsupported weight dtype {dtype!r}; allowed: {allowed}")


def fp8_eligible_keys(model: nn.Module, under: str = "") -> set[str]:
    """Weights of the upcasting Linear layers: the bulk of the parameters, and the only ones fp8 can hold."""
    return {f"{name}.weight" for name, m in model.named_modules() if isinstance(m, Linear) and name.startswith(under)}


def dtype_chooser(requested: torch.dtype, fp8_keys: set[str]):
    """The weight dtype of each model key: fp8 only where fp8 storage applies, the fp8 compute dtype elsewhere."""
    def choose(key: str) -> torch.dtype:
        if requested in FP8:
            return requested if key in fp8_keys else FP8_COMPUTE
        return requested
    return choose
