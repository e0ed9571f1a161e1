"""The T5 v1.1 text encoder, used the way LTX-Video's own pipeline uses it.

Prompts are stripped, tokenized to exactly `max_tokens` (padded and truncated, with the end token), and the
encoder runs with the padding mask; the last hidden state and that same mask are what the transformer's
cross-attention receives.

Precision: T5 v1.1 is known to overflow in float16. transformers clamps the fp16 activations and keeps the
feed-forward output projections (`wo`) in float32 when it loads fp16 weights; the loader does the same, but
bfloat16 is the recommended dtype. With fp8 storage every Linear in the encoder blocks keeps its fp8 weight
and upcasts it, one layer at a time, to the bf16 compute dtype.
"""
import logging

import torch
import torch.nn.functional as F
from torch import nn
from transformers import T5Config, T5EncoderModel
from transformers.models.t5.modeling_t5 import T5DenseGatedActDense

from .ops import Linear

logger = logging.getLogger(__name__)

MAX_TOKENS = 256


class _UpcastGatedFF(T5DenseGatedActDense):
    # The stock forward casts the activations to `wo`'s weight dtype, which would be fp8 here; the upcasting
    # Linear layers already compute in the activations' dtype.
    def forward(self, hidden_states):
        h = self.act(self.wi_0(hidden_states)) * self.wi_1(hidden_states)
        return self.wo(self.dropout(h))


class ScaledLinear(Linear):
    """A Linear whose stored (fp8) weight is a scaled copy of the real one: real = weight · scale_weight.
    ComfyUI's "scaled fp8" files store their Linear weights this way."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.to(x.dtype) * self.scale_weight.to(x.dtype)
        return F.linear(x, weight, None if self.bias is None else self.bias.to(x.dtype))


def build_t5_encoder(config: T5Config, fp8_storage: bool = False) -> T5EncoderModel:
    """The transformers T5 encoder for `config`, with upcasting Linears in its blocks when their weights are
    going to be stored in fp8. Build it under `torch.device("meta")` and fill it with `assign=True`."""
    if not config.is_gated_act:
        raise ValueError("not a T5 v1.1 encoder: LTX-Video's text encoder has a gated-GELU feed-forward "
                         "(wi_0/wi_1), this config has a plain one")
    model = T5EncoderModel(config)
    if fp8_storage:
        for module in model.encoder.block.modules():
            if type(module) is nn.Linear:
                module.__class__ = Linear
            elif type(module) is T5DenseGatedActDense:
                module.__class__ = _UpcastGatedFF
    return model.eval()


def block_linear_names(model: T5EncoderModel) -> set[str]:
    """Qualified names of the Linear layers inside the encoder blocks (the weights fp8 storage applies to)."""
    return {f"encoder.block.{name}" for name, m in model.encoder.block.named_modules() if isinstance(m, nn.Linear)}


def use_weight_scale(model: T5EncoderModel, layer: str, scale_shape: tuple[int, ...]) -> None:
    """Turn the block Linear `layer` into a ScaledLinear with a `scale_weight` buffer of `scale_shape`, on the
    weight's device (meta, before loading)."""
    module = model.get_submodule(layer)
    module.__class__ = ScaledLinear
    module.register_buffer("scale_weight", torch.empty(scale_shape, device=module.weight.device))


class T5TextEncoder:
    """T5 encoder + tokenizer. `encode` returns what the official pipeline's `encode_prompt` returns for the
    prompts: (B, max_tokens, d_model) embeddings in the compute dtype and the (B, max_tokens) 0/1 mask."""

    def __init__(self, model: T5EncoderModel, tokenizer, max_tokens: int = MAX_TOKENS):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens

    @property
    def device(self) -> torch.device:
        return self.model.shared.weight.device

    @property
    def dtype(self) -> torch.dtype:
        # The embedding is always held in the compute dtype, also when the block Linears are fp8.
        return self.model.shared.weight.dtype

    def to(self, device) -> "T5TextEncoder":
        self.model.to(device)
        return self

    def offload(self) -> "T5TextEncoder":
        return self.to("cpu")

    def tokenize(self, prompts: str | list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        prompts = [p.strip() for p in ([prompts] if isinstance(prompts, str) else prompts)]
        full_lengths = [len(ids) for ids in self.tokenizer(prompts, add_special_tokens=True)["input_ids"]]
        for prompt, n in zip(prompts, full_lengths, strict=True):
            if n > self.max_tokens:
                logger.warning("prompt truncated to %d of its %d T5 tokens: %.80r...", self.max_tokens, n, prompt)
        tokens = self.tokenizer(prompts, padding="max_length", max_length=self.max_tokens, truncation=True,
                                add_special_tokens=True, return_tensors="pt")
        return tokens.input_ids, tokens.attention_mask

    @torch.no_grad()
    def encode(self, prompts: str | list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self.tokenize(prompts)
        ids, mask = ids.to(self.device), mask.to(self.device)
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        return hidden.to(self.dtype), mask
