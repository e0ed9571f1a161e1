"""The prompt's T5 features (and the negative prompt's) as the sampler takes them, checked once."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class TextConditioning:
    """T5 features (B, L, C) and their (B, L) masks. Without a negative prompt the negative rows are zeros
    (fully masked), as the official pipeline makes them."""

    embeds: Tensor
    mask: Tensor
    negative_embeds: Tensor | None = None
    negative_mask: Tensor | None = None

    def __post_init__(self):
        _check("prompt", self.embeds, self.mask)
        if self.negative_embeds is None:
            object.__setattr__(self, "negative_embeds", torch.zeros_like(self.embeds))
            object.__setattr__(self, "negative_mask", torch.zeros_like(self.mask))
        _check("negative", self.negative_embeds, self.negative_mask)
        if self.negative_embeds.shape != self.embeds.shape:
            raise ValueError(f"negative embeddings {tuple(self.negative_embeds.shape)} must match the prompt's "
                             f"{tuple(self.embeds.shape)}")

    @property
    def batch(self) -> int:
        return int(self.embeds.shape[0])

    def to(self, device) -> "TextConditioning":
        return TextConditioning(*(t.to(device) for t in self._tensors()))

    def expand(self, batch: int) -> "TextConditioning":
        """The same prompt for every sample of a batch."""
        if batch == self.batch:
            return self
        return TextConditioning(*(t.expand(batch, *t.shape[1:]) for t in self._tensors()))

    def _tensors(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.embeds, self.mask, self.negative_embeds, self.negative_mask


def _check(name: str, embeds, mask) -> None:
    if not isinstance(embeds, Tensor) or embeds.dim() != 3:
        raise ValueError(f"{name} embeddings must be a (B, L, C) tensor, got "
                         f"{tuple(embeds.shape) if isinstance(embeds, Tensor) else type(embeds).__name__}")
    if not isinstance(mask, Tensor) or tuple(mask.shape) != tuple(embeds.shape[:2]):
        raise ValueError(f"{name} mask must be a (B, L) = {tuple(embeds.shape[:2])} tensor, got "
                         f"{tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__}")
