"""Prompts to the sampler's text conditioning."""
from __future__ import annotations

import torch

from ..conditioning.text import TextConditioning
from ..defaults import DEFAULT_NEGATIVE_PROMPT


def encode_prompts(text_encoder, prompt: str, negative_prompt: str = DEFAULT_NEGATIVE_PROMPT) -> TextConditioning:
    """T5 features of the prompt and the negative prompt (each encoded on its own, as the official pipeline
    does), where the encoder is."""
    return encode_chunk_prompts(text_encoder, [prompt], negative_prompt)[0]


def text_problem(text) -> str | None:
    """Why a prompt cannot be encoded (None when it can): not a string, or not valid UTF-8 text (bytes of another
    encoding arrive as lone surrogates)."""
    if not isinstance(text, str):
        return f"expected text, got {type(text).__name__}"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"not valid UTF-8 text (an undecodable byte at character {e.start}); give the prompt in UTF-8"
    return None


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
    for text in (*prompts, negative_prompt):
        problem = text_problem(text)
        if problem:
            raise ValueError(f"prompt {text[:40]!r}: {problem}" if isinstance(text, str) else f"prompt: {problem}")
    with torch.no_grad():
        negative, negative_mask = text_encoder.encode([negative_prompt])
        encoded = [text_encoder.encode([p]) for p in prompts]
    return [TextConditioning(embeds, mask, negative, negative_mask) for embeds, mask in encoded]
