"""The transformer as OpenVINO runs it, a drop-in for what the sampler calls on `Transformer3D`."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ..model.transformer import SkipLayerStrategy, Transformer3D, TransformerConfig
from ..model.transformer.model import checked_token_inputs
from .export import export_to_openvino
from .graphs import GraphSet
from .runtime import check_device
from .settings import OVSettings

# Export example sizes (any >= 2: a size of 1 would be specialised into the graph).
_EXAMPLE_BATCH, _EXAMPLE_TOKENS, _EXAMPLE_TEXT = 2, 24, 8


class _TokensGraph(nn.Module):
    """forward_tokens with the STG strategy fixed (a graph has no enum inputs); the per-layer keep mask is an input,
    and every layer blends with it (blending with 1 returns the unperturbed values exactly)."""

    def __init__(self, model: Transformer3D, strategy: SkipLayerStrategy | None):
        super().__init__()
        self.model, self.strategy = model, strategy

    def forward(self, tokens, coords, timestep, context, mask, *keep):
        return self.model.forward_tokens(tokens, coords, timestep, context, mask, *keep,
                                         *((self.strategy,) if keep else ()))


def _example(cfg: TransformerConfig, strategy, per_token: bool):
    """Example inputs and their dynamic axes: batch, tokens and text length vary between runs; the timestep holds
    one value per row or one per token (two graphs: broadcasting one over the other is a shape the graph fixes)."""
    from torch.export import Dim

    b, n, length = _EXAMPLE_BATCH, _EXAMPLE_TOKENS, _EXAMPLE_TEXT
    batch, tokens, text = Dim("batch", min=1, max=1024), Dim("tokens", min=2, max=1 << 24), Dim("text", min=1, max=1 << 16)
    example = [torch.randn(b, n, cfg.in_channels), torch.rand(b, 3, n) * 16, torch.rand(b, n if per_token else 1),
               torch.randn(b, length, cfg.caption_channels), torch.ones(b, length)]
    axes = [{0: batch, 1: tokens}, {0: batch, 2: tokens}, {0: batch, **({1: tokens} if per_token else {})},
            {0: batch, 1: text}, {0: batch, 1: text}]
    if strategy is not None:
        example.append(torch.ones(cfg.num_layers, b))
    # `_TokensGraph.forward` takes the keep mask as *keep: its axes are a tuple of its own.
    return tuple(example), (*axes, ({1: batch},)) if strategy is not None else tuple(axes)


class OVTransformer(nn.Module):
    """`forward_tokens` as `Transformer3D.forward_tokens` (same inputs, same checks, result in the tokens' dtype
    and device), run by OpenVINO; `config`, `compute_dtype`, `compute_device` and `transformer_blocks` (one empty
    module per layer: the layer count, no weights) for the pipelines and the memory estimates.

    One converted graph per (STG strategy, timestep per row or per token), made on first use: read from the disk
    cache when it was converted before for `source` (a `cache.file_identity`) and these weights, otherwise
    converted from `build()` (which loads the torch model; it is freed after the conversion). `converted` lists
    the graphs this instance had to convert (a cache miss each)."""

    def __init__(self, config: TransformerConfig, source: dict, settings: OVSettings,
                 build: Callable[[], Transformer3D]):
        super().__init__()
        check_device(settings.device)
        self.config, self._build = config, build
        self.transformer_blocks = nn.ModuleList(nn.Module() for _ in range(config.num_layers))
        self._graphs = GraphSet("transformer", source, settings)

    compute_dtype = torch.float32
    compute_device = torch.device("cpu")
    backend = "openvino"  # what LoRA reading refuses: they patch torch weights, which this model has none of

    @classmethod
    def from_model(cls, model: Transformer3D, source: dict, settings: OVSettings) -> "OVTransformer":
        """Around a loaded model, which is kept (for conversions) as long as the result lives."""
        return cls(model.config, source, settings, lambda: model)

    def forward_tokens(self, tokens: Tensor, coords: Tensor, timestep: Tensor, context: Tensor,
                       context_mask: Tensor | None = None, skip_layer_mask: Tensor | None = None,
                       skip_layer_strategy: SkipLayerStrategy | str | None = None) -> Tensor:
        b = tokens.shape[0]
        timestep = checked_token_inputs(tokens, coords, timestep)
        strategy = None if skip_layer_strategy is None else SkipLayerStrategy(skip_layer_strategy)
        if strategy is SkipLayerStrategy.Residual:  # perturbs nothing (see stg.py): the plain graph
            strategy = None
        inputs = [tokens, coords, timestep, context,
                  torch.ones(context.shape[:2]) if context_mask is None else context_mask.float()]
        if strategy is not None:
            layers = self.config.num_layers
            if skip_layer_mask is not None and tuple(skip_layer_mask.shape) != (layers, b):
                raise ValueError(f"skip_layer_mask must be (num_layers, batch) = {(layers, b)}, got "
                                 f"{tuple(skip_layer_mask.shape)}")
            inputs.append(torch.ones(layers, b) if skip_layer_mask is None else skip_layer_mask.float())
        per_token = timestep.shape[1] != 1
        graph = f"{strategy.value if strategy else 'none'}/{'per_token' if per_token else 'per_row'}"
        out = self._graphs.infer(graph, inputs, lambda: self._convert(strategy, per_token))
        return out.to(device=tokens.device, dtype=tokens.dtype)

    @property
    def converted(self) -> list[str]:
        return self._graphs.converted

    def _convert(self, strategy, per_token: bool):
        example, axes = _example(self.config, strategy, per_token)
        return export_to_openvino(_TokensGraph(self._build(), strategy).eval(), example, axes,
                                  self._graphs.settings.weights)
