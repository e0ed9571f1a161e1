"""Block streaming: a transformer larger than the GPU runs with its blocks resident in CPU memory.

Each block's weights live in (pinned) CPU memory; just before the block runs they are copied to the compute
device, and the next block's copy is already under way on a side stream, so the transfer overlaps the current
block's compute. After a block has run, its device copies are dropped: the CPU copy is the master, weights never
change during inference, so nothing is copied back. Peak device memory is the non-block weights plus two blocks (`estimate.transformer_weight_bytes(..., streaming=True)`).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


class BlockStreamer:
    """Forward hooks that bring each block's weights to the device just before it runs."""

    def __init__(self, blocks: nn.ModuleList, device, prefetch: bool = True):
        self.blocks = list(blocks)
        self.device = torch.device(device)
        self._cuda = self.device.type == "cuda"
        self._prefetch = prefetch and self._cuda
        self._stream = torch.cuda.Stream(self.device) if self._prefetch else None
        self._ready: dict[int, torch.cuda.Event] = {}
        self._masters: list[dict[str, torch.Tensor]] = []
        self._handles: list = []
        for block in self.blocks:
            master = {}
            for name, t in _tensors(block):
                cpu = t.detach().to("cpu")
                master[name] = cpu.pin_memory() if self._cuda else cpu
                _set(block, name, master[name])
            self._masters.append(master)

    def attach(self) -> "BlockStreamer":
        for i, block in enumerate(self.blocks):
            self._handles.append(block.register_forward_pre_hook(lambda _m, _a, i=i: self._before(i)))
            self._handles.append(block.register_forward_hook(lambda _m, _a, _o, i=i: self._after(i)))
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for i in range(len(self.blocks)):
            self._release(i)

    def _upload(self, i: int) -> None:
        for name, cpu in self._masters[i].items():
            _set(self.blocks[i], name, cpu.to(self.device, non_blocking=self._cuda))

    def _before(self, i: int) -> None:
        event = self._ready.pop(i, None)
        if event is not None:
            stream = torch.cuda.current_stream(self.device)
            stream.wait_event(event)
            # The copies were allocated on the side stream; tell the allocator the main stream uses them too.
            for _, t in _tensors(self.blocks[i]):
                t.record_stream(stream)
        elif _on(self.blocks[i]) != self.device:
            self._upload(i)
        nxt = i + 1
        if self._prefetch and nxt < len(self.blocks) and nxt not in self._ready:
            with torch.cuda.stream(self._stream):
                self._upload(nxt)
                event = torch.cuda.Event()
                event.record(self._stream)
            self._ready[nxt] = event

    def _after(self, i: int) -> None:
        self._release(i)

    def _release(self, i: int) -> None:
        self._ready.pop(i, None)
        for name, cpu in self._masters[i].items():
            _set(self.blocks[i], name, cpu)


def _tensors(module: nn.Module):
    yield from module.named_parameters()
    yield from module.named_buffers()


def _on(module: nn.Module) -> torch.device:
    return next(t.device for _, t in _tensors(module))


def _set(module: nn.Module, name: str, value: torch.Tensor) -> None:
    owner, _, leaf = name.rpartition(".")
    target = module.get_submodule(owner) if owner else module
    current = getattr(target, leaf)
    if isinstance(current, nn.Parameter):
        current.data = value
    else:
        setattr(target, leaf, value)


@contextmanager
def stream_blocks(transformer: nn.Module, device):
    """Run `transformer` on `device` with only its non-block weights resident there; its blocks stream from the
    CPU one at a time. Everything is back on the CPU afterwards."""
    device = torch.device(device)
    resident = [m for name, m in transformer.named_children() if name != "transformer_blocks"]
    own = [p for p in transformer.parameters(recurse=False)]
    for m in resident:
        m.to(device)
    for p in own:
        p.data = p.data.to(device)
    streamer = BlockStreamer(transformer.transformer_blocks, device).attach()
    try:
        yield transformer
    finally:
        streamer.detach()
        for m in resident:
            m.to("cpu")
        for p in own:
            p.data = p.data.to("cpu")

