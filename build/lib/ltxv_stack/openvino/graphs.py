"""The converted graphs of one model, as its wrapper runs them: looked up in the disk cache or converted, compiled
once per process, and the weight file's mapped pages given back after each graph's first inference."""
from __future__ import annotations

from typing import Callable

import numpy as np

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

    def infer(self, name: str, inputs: list[np.ndarray], convert: Callable[[], object]) -> np.ndarray:
        """Run graph `name` (converted by `convert()` -> ov.Model when it is not in the cache); its first output."""
        request = self._request(name, convert)
        request.infer(inputs)
        if name in self._unpacked:
            drop_mapped_pages(self._unpacked.pop(name))
        return request.get_output_tensor(0).data.copy()

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
