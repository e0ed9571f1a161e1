"""The T5 encoder as OpenVINO runs it, in place of `T5TextEncoder.model` (the tokenizer and `encode` unchanged)."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Callable

import torch
from torch import nn

from .export import export_to_openvino
from .graphs import GraphSet
from .runtime import check_device
from .settings import OVSettings

_EXAMPLE_BATCH, _EXAMPLE_TOKENS = 2, 16


class _EncoderGraph(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class OVT5Encoder(nn.Module):
    """`forward(input_ids=, attention_mask=)` -> an object with `last_hidden_state` (float32, on the CPU), as the
    transformers T5 encoder answers; batch and length are dynamic. `shared.weight` is an empty float32 CPU tensor:
    `T5TextEncoder` reads its device and dtype there (the host, and what OpenVINO computes in). The graph is read
    from the disk cache, or converted once from `build()` (the torch encoder, freed after)."""

    def __init__(self, source: dict, settings: OVSettings, build: Callable[[], nn.Module]):
        super().__init__()
        check_device(settings.device)
        self._build = build
        self._graphs = GraphSet("t5_encoder", source, settings)
        self.shared = SimpleNamespace(weight=torch.empty(0))

    @property
    def converted(self) -> list[str]:
        return self._graphs.converted

    def forward(self, input_ids, attention_mask):
        hidden = self._graphs.infer("encoder", [input_ids, attention_mask], self._convert)
        return SimpleNamespace(last_hidden_state=hidden)

    def _convert(self):
        from torch.export import Dim

        batch, tokens = Dim("batch", min=1, max=1024), Dim("tokens", min=2, max=1 << 16)
        example = (torch.zeros(_EXAMPLE_BATCH, _EXAMPLE_TOKENS, dtype=torch.int64),
                   torch.ones(_EXAMPLE_BATCH, _EXAMPLE_TOKENS, dtype=torch.int64))
        return export_to_openvino(_EncoderGraph(self._build()).eval(), example, ({0: batch, 1: tokens},) * 2,
                                  self._graphs.settings.weights)


def openvino_text_encoder(text_encoder, path, settings: OVSettings):
    """`text_encoder` (a `T5TextEncoder` loaded from `path`) with its model run by OpenVINO; the torch weights are
    freed, and a conversion (first run only) loads the file again in float32."""
    from ..loader.text_encoder_files import load_text_encoder
    from .cache import file_identity

    tokenizer_dir = getattr(text_encoder.tokenizer, "name_or_path", None)

    def float32_model():
        return load_text_encoder(path, dtype=torch.float32, tokenizer_path=tokenizer_dir).model

    text_encoder.model = OVT5Encoder(file_identity(path), settings, float32_model)
    return text_encoder
