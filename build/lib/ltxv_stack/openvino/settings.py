"""How the OpenVINO backend runs a model: the OpenVINO device and the precision of the converted weights."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..defaults import OV_WEIGHTS

OV_DEVICES_HELP = "CPU, GPU (an Intel GPU; GPU.0, GPU.1 for one of several) or AUTO"
_DEVICE = re.compile(r"(CPU|GPU(\.\d+)?|AUTO)")


@dataclass(frozen=True)
class OVSettings:
    device: str = "CPU"
    weights: str = "int8"

    def problem(self) -> tuple[str, str] | None:
        """(option, why) for a setting that cannot work, or None; nothing is imported."""
        if self.weights not in OV_WEIGHTS:
            return "ov_weights", f"unknown OpenVINO weight format {self.weights!r}; choose one of {', '.join(OV_WEIGHTS)}"
        if not _DEVICE.fullmatch(str(self.device)):
            return "ov_device", f"unknown OpenVINO device {self.device!r}; choose {OV_DEVICES_HELP}"
        return None

    def compile_config(self) -> dict:
        """OpenVINO compile properties: arithmetic in fp32 on every device (CPUs with bf16 units and GPUs otherwise
        default to bf16/fp16, which moves the results by ~1e-2); compressed weights are decompressed to fp32."""
        return {"INFERENCE_PRECISION_HINT": "f32"}
