"""From initial latents + conditioning items to the token sequence the sampler denoises.

Tokens are the latents flattened as (B, F*H*W, C) in (f, h, w) order. Extra conditioning tokens (later single
frames, prefixes of later clips) go in front of the video tokens, in item order, as in the official pipeline.
Each token has pixel coordinates [frame, y, x] (the time axis in frames here; `TokenState.model_coords` converts it
to seconds) and, when there are conditioning items, a conditioning strength in `mask`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..geometry import FRAMES_PER_LATENT
from ..model.transformer.coords import video_token_coords
from ..sampling.noise import randn
from .items import ConditioningItem, resize_media

# A later clip's first latent frames (the first one is a single pixel frame, the next mixes the clip's start)
# do not line up with the video's latent frames: they are appended as extra tokens instead.
PREFIX_LATENT_FRAMES = 2


@dataclass
class TokenState:
    tokens: Tensor  # (B, N, C), extra tokens first
    pixel_coords: Tensor  # (B, 3, N) float32: [frame, y, x] in pixels
    mask: Tensor | None  # (B, N) float32 conditioning strength per token, None without conditioning items
    num_extra: int  # extra conditioning tokens at the front, dropped before decoding
    latent_shape: tuple[int, int, int, int, int]  # (B, C, F, H, W) of the video tokens

    def model_coords(self, frame_rate: float) -> Tensor:
        """Coordinates as the transformer takes them: time in seconds."""
        coords = self.pixel_coords.clone()
        coords[:, 0] = coords[:, 0] * (1.0 / frame_rate)
        return coords

    def video_latents(self, tokens: Tensor | None = None) -> Tensor:
        """The video part of `tokens` (default: the state's own) as (B, C, F, H, W)."""
        tokens = self.tokens if tokens is None else tokens
        b, c, f, h, w = self.latent_shape
        return tokens[:, self.num_extra:].transpose(1, 2).reshape(b, c, f, h, w)


def to_tokens(latents: Tensor) -> Tensor:
    return latents.flatten(2).transpose(1, 2)


def pixel_coords(batch: int, frames: int, height: int, width: int, causal_fix: bool, device=None) -> Tensor:
    """Pixel [frame, y, x] of each latent token of a (frames, height, width) latent grid."""
    return video_token_coords(batch, frames, height, width, 1.0, causal_fix, device)


def build_tokens(
    init_latents: Tensor,
    items: list[ConditioningItem],
    encode,
    causal_fix: bool,
    generator: torch.Generator,
    height: int,
    width: int,
) -> TokenState:
    """`init_latents` (B, C, F, H, W): the (noised) initial latents, modified in place by frame-0 and in-place clip
    items. `encode(media (B, 3, f, h, w)) -> normalised latents`. `generator` draws the noise that extra tokens are
    blended with (in item order, as the official pipeline draws it). `height`/`width`: the pass's pixel size, to
    which media of another size are resized."""
    b, c, f, h, w = init_latents.shape
    device = init_latents.device
    latents = init_latents.clone()
    coords = pixel_coords(b, f, h, w, causal_fix, device)
    if not items:
        return TokenState(to_tokens(latents), coords, None, 0, (b, c, f, h, w))

    mask = torch.zeros(b, f, h, w, dtype=torch.float32, device=device)
    extra_tokens, extra_coords, extra_mask = [], [], []
    for item in items:
        media = resize_media(item.as_video(), height, width)
        cond = encode(media).to(device=device, dtype=latents.dtype)
        if cond.shape[0] != b:
            cond = cond.expand(b, *cond.shape[1:])
        strength = item.strength
        n_lat = cond.shape[2]
        if cond.shape[3:] != (h, w):
            raise ValueError(f"conditioning latents are {tuple(cond.shape[3:])} but the video's are {(h, w)}")
        if item.start_frame == 0:
            latents[:, :, :n_lat] = torch.lerp(latents[:, :, :n_lat], cond, strength)
            mask[:, :n_lat] = strength
            continue
        if n_lat > 1:
            # A later clip: everything after the prefix is written in place; the prefix becomes extra tokens.
            if n_lat > PREFIX_LATENT_FRAMES:
                lo = item.start_frame // FRAMES_PER_LATENT + PREFIX_LATENT_FRAMES
                hi = lo + n_lat - PREFIX_LATENT_FRAMES
                latents[:, :, lo:hi] = torch.lerp(latents[:, :, lo:hi], cond[:, :, PREFIX_LATENT_FRAMES:], strength)
                mask[:, lo:hi] = strength
            cond = cond[:, :, :PREFIX_LATENT_FRAMES]
        noise = randn(cond.shape, generator, device, cond.dtype)
        cond = torch.lerp(noise, cond, strength)
        fc = cond.shape[2]
        xc = pixel_coords(b, fc, h, w, causal_fix, device)
        xc[:, 0] += item.start_frame
        extra_tokens.append(to_tokens(cond))
        extra_coords.append(xc)
        extra_mask.append(torch.full((b, fc * h * w), strength, dtype=torch.float32, device=device))

    tokens = torch.cat([*extra_tokens, to_tokens(latents)], dim=1)
    coords = torch.cat([*extra_coords, coords], dim=2)
    mask = torch.cat([*extra_mask, mask.flatten(1)], dim=1)
    num_extra = sum(t.shape[1] for t in extra_tokens)
    return TokenState(tokens, coords, mask, num_extra, (b, c, f, h, w))
