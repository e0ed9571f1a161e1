"""Prompts to the sampler's text conditioning."""
from __future__ import annotations

import torch

from ..conditioning.text import TextConditioning
from ..defaults import DEFAULT_NEGATIVE_PROMPT


def encode_prompts(text_encoder, prompt: str, negative_prompt: str = DEFAULT_NEGATIVE_PROMPT) -> TextConditioning:
    """T5 features of the prompt and the negative prompt (each encoded on its own, as the official pipeline
    does), where the encoder is."""
    with torch.no_grad():
        embeds, mask = text_encoder.encode([prompt])
        negative, negative_mask = text_encoder.encode([negative_prompt])
    return TextConditioning(embeds, mask, negative, negative_mask)
