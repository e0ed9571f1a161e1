"""Measuring the working memory of a CPU run from the allocator's side, for tests that memory stays bounded."""
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class LiveTensorBytes(TorchDispatchMode):
    """Peak bytes of tensor storages created while active (the allocator's view of a CPU run), not counting
    the storages of the given modules' weights and of the given inputs, which views would otherwise reveal."""

    def __init__(self, module: torch.nn.Module, *inputs: torch.Tensor):
        super().__init__()
        existing = [*module.parameters(), *module.buffers(), *inputs]
        self.ignored = {id(t.untyped_storage()) for t in existing}
        self.live_ids, self.live, self.peak = set(), 0, 0

    def _freed(self, key: int, size: int) -> None:
        self.live_ids.discard(key)
        self.live -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key = id(storage)  # storages keep their Python object for their whole life
                if key not in self.live_ids and key not in self.ignored:
                    self.live_ids.add(key)
                    self.live += storage.nbytes()
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(storage, self._freed, key, storage.nbytes())
        return out
