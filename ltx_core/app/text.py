"""Prompts to the sampler's text conditioning."""
from __future__ import annotations

import torch

from ..conditioning.text import TextConditioning
from ..defaults import DEFAULT_NEGATIVE_PROMPT


def encode_prompts(text_encoder, prompt: str, negative_prompt: str = DEFAULT_NEGATIVE_PROMPT) -> TextConditioning:
    """T5 features of the prompt and the negative prompt (each encoded on its own, as the official pipeline
    does), where the encoder is."""
    return encode_chunk_prompts(text_encoder, [prompt], negative_prompt)[0]


def chunk_prompts(prompt: str) -> list[str]:
    """Per-chunk prompts of a long video written as "first | second | third" (the last one repeats); ValueError
    for an empty one."""
    parts = [p.strip() for p in prompt.split("|")]
    empty = [i + 1 for i, p in enumerate(parts) if not p]
    if empty:
        raise ValueError(f"prompt {empty[0]} of {len(parts)} (separated by '|') is empty")
    return parts


def encode_chunk_prompts(text_encoder, prompts, negative_prompt: str = DEFAULT_NEGATIVE_PROMPT) -> list:
    """encode_prompts for each chunk's prompt; the negative prompt is encoded once."""
    with torch.no_grad():
        negative, negative_mask = text_encoder.encode([negative_prompt])
        encoded = [text_encoder.encode([p]) for p in prompts]
    return [TextConditioning(embeds, mask, negative, negative_mask) for embeds, mask in encoded]
