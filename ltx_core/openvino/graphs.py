"""The converted graphs of one model, as its wrapper runs them: looked up in the disk cache or converted, compiled
once per process, and the weight file's mapped pages given back after each graph's first inference."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .cache import cached_model_path, entry_key, store_model
from .runtime import compile_ir, drop_mapped_pages
from .settings import OVSettings


class GraphSet:
    """`source`: a `cache.file_identity` (or any JSON naming the weights); `converted` lists the graphs this
    instance had to convert (a cache miss each)."""

    def __init__(self, model: str, source: dict, settings: OVSettings):
        self.model, self.source, self.settings = model, source, settings
        self.converted: list[str] = []
        self._requests = {}
        self._unpacked = {}  # graph name -> its IR, until its first inference has packed the weights

    def infer(self, name: str, inputs: list[torch.Tensor], convert: Callable[[], object]) -> torch.Tensor:
        """Run graph `name` (converted by `convert()` -> ov.Model when it is not in the cache) on `inputs` (floating
        point ones as float32, the arithmetic of every converted graph; integers as int64); its first output, a
        float32 CPU tensor."""
        request = self._request(name, convert)
        request.infer([_host_array(t) for t in inputs])
        if name in self._unpacked:
            drop_mapped_pages(self._unpacked.pop(name))
        return torch.from_numpy(request.get_output_tensor(0).data.copy())

    def _request(self, name: str, convert):
        if name not in self._requests:
            options = {"model": self.model, "weights": self.settings.weights, "graph": name}
            key = entry_key(self.source, options)
            xml = cached_model_path(key)
            if xml is None:
                xml = store_model(key, convert(), {"source": self.source, **options})
                self.converted.append(name)
            self._requests[name] = compile_ir(xml, self.settings)
            self._unpacked[name] = xml
        return self._requests[name]


def _host_array(t: torch.Tensor) -> np.ndarray:
    dtype = torch.float32 if t.is_floating_point() else torch.int64
    return t.detach().to("cpu", dtype).contiguous().numpy()
