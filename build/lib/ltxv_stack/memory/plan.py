"""Memory decisions made before work starts: how much working memory a step, a decode, an encode or an upsample
asks the host to free, and the refusal of a step that cannot fit, naming what would."""
from __future__ import annotations

import torch

from .estimate import HEADROOM, StepShape, resident_budget, step_refusal, vae_decode_bytes, vae_weight_bytes

# T5-XXL activations for 256 tokens, generously: room to free before encoding a prompt.
TEXT_ENCODE_BYTES = 256 << 20
# VAE encode working memory per pixel of (at least 7) input frames: the encoder's widest activations with their
# convolution slices, float32.
_ENCODE_BYTES_PER_PIXEL = 70 * 4
# Latent upsampler working memory per latent element and mid channel: the widest residual stage and its copies.
_UPSAMPLE_BYTES_PER_ELEMENT_CHANNEL = 4 * 16
# A decode's working memory asked for, at most (beyond it, tiling keeps the decode within free memory).
_DECODE_REQUEST_CAP = 1 << 34


class MemoryRefusal(ValueError):
    """A step that cannot fit in the device's free memory; the message names the sizes that would."""

    def __init__(self, message: str, streaming: bool):
        super().__init__(message)
        self.streaming = streaming


def step_work_bytes(transformer, shape: StepShape, device) -> int:
    """The activations of one step, headroom included: what the host frees next to the weights."""
    dtype, device_type = transformer.compute_dtype, torch.device(device).type
    return int(shape.activation_bytes(transformer, dtype, device_type) * HEADROOM)


def check_step(transformer, shape: StepShape, device, free_bytes: int | None, streaming: bool) -> int:
    """`step_work_bytes`, after refusing (MemoryRefusal) a step that cannot fit in `free_bytes` plus the
    transformer's weights already on `device` (None: unknown, nothing is refused)."""
    if free_bytes is not None:
        problem = step_refusal(transformer, shape, resident_budget(transformer, free_bytes, device), streaming,
                               device)
        if problem:
            raise MemoryRefusal(problem, streaming)
    return step_work_bytes(transformer, shape, device)


def decode_work_bytes(vae, latent_shape) -> int:
    """Working memory (weights excluded) of an untiled decode, capped: beyond the cap tiles are chosen from what
    is free."""
    dtype = next(t.dtype for t in vae.parameters() if t.is_floating_point())
    need = vae_decode_bytes(vae, latent_shape, dtype) - vae_weight_bytes(vae, dtype)
    return min(need, _DECODE_REQUEST_CAP)


def encode_work_bytes(num_frames: int, height: int, width: int) -> int:
    return int(_ENCODE_BYTES_PER_PIXEL * max(num_frames, 7) * height * width)


def upsample_work_bytes(upsampler, latent_shape) -> int:
    elements = 1
    for s in latent_shape:
        elements *= int(s)
    return elements * upsampler.config.mid_channels * _UPSAMPLE_BYTES_PER_ELEMENT_CHANNEL
