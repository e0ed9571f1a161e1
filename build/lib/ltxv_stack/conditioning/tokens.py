"""From initial latents + conditioning items to the token sequence the sampler denoises.

Tokens are the latents flattened as (B, F*H*W, C) in (f, h, w) order. Extra conditioning tokens (later single
frames, prefixes of later clips) go in front of the video tokens, in item order, as in the official pipeline;
control-video guide tokens go after them.
Each token has pixel coordinates [frame, y, x] (the time axis in frames here; `TokenState.model_coords` converts it
to seconds) and, when there are conditioning items, a conditioning strength in `mask`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..geometry import FRAMES_PER_LATENT, PIXELS_PER_LATENT
from ..model.transformer.coords import video_token_coords
from ..sampling.noise import randn
from .items import ConditioningItem, ControlVideo, LatentClip, resize_media

# A later clip's first latent frames (the first one is a single pixel frame, the next mixes the clip's start)
# do not line up with the video's latent frames: they are appended as extra tokens instead.
PREFIX_LATENT_FRAMES = 2


@dataclass
class GuideTokens:
    """Control-video tokens at the end of the sequence (`ControlVideo`). Each is noised to sigma * (1 - strength)
    at every step: kept clean at strength 1, so the model sees the control exactly."""

    clean: Tensor  # (B, G, C)
    keep: Tensor  # (B, G, 1): 1 - strength, the fraction of the step's sigma each token is noised to
    noise: Tensor | None  # (B, G, C); None when every guide has strength 1

    @property
    def count(self) -> int:
        return int(self.clean.shape[1])

    def at(self, t: Tensor) -> Tensor:
        """The guide tokens for timestep `t`."""
        if self.noise is None:
            return self.clean
        return self.clean + (t * self.keep) * (self.noise - self.clean)


@dataclass
class TokenState:
    tokens: Tensor  # (B, N, C): extra tokens first, then the video's, then guides
    pixel_coords: Tensor  # (B, 3, N) float32: [frame, y, x] in pixels
    mask: Tensor | None  # (B, N) float32 conditioning strength per token, None without conditioning items
    num_extra: int  # extra conditioning tokens at the front, dropped before decoding
    latent_shape: tuple[int, int, int, int, int]  # (B, C, F, H, W) of the video tokens
    guides: GuideTokens | None = None  # at the end, dropped before decoding

    def model_coords(self, frame_rate: float) -> Tensor:
        """Coordinates as the transformer takes them: time in seconds."""
        coords = self.pixel_coords.clone()
        coords[:, 0] = coords[:, 0] * (1.0 / frame_rate)
        return coords

    def video_latents(self, tokens: Tensor | None = None) -> Tensor:
        """The video part of `tokens` (default: the state's own) as (B, C, F, H, W)."""
        tokens = self.tokens if tokens is None else tokens
        b, c, f, h, w = self.latent_shape
        video = tokens[:, self.num_extra : self.num_extra + f * h * w]
        return video.transpose(1, 2).reshape(b, c, f, h, w)

    def timestep_scale(self) -> Tensor | None:
        """(B, N) factor on each token's timestep: 1 - strength for guides, 1 elsewhere; None without guides."""
        if self.guides is None:
            return None
        n = self.tokens.shape[1] - self.guides.count
        ones = torch.ones(self.tokens.shape[0], n, device=self.tokens.device)
        return torch.cat([ones, self.guides.keep.squeeze(-1).to(ones)], dim=1)

    def with_guides(self, tokens: Tensor, t: Tensor) -> Tensor:
        """`tokens` with the guides set for timestep `t`."""
        if self.guides is None:
            return tokens
        g = self.guides.count
        return torch.cat([tokens[:, :-g], self.guides.at(t).to(tokens.dtype)], dim=1)


def to_tokens(latents: Tensor) -> Tensor:
    return latents.flatten(2).transpose(1, 2)


def pixel_coords(batch: int, frames: int, height: int, width: int, causal_fix: bool, device=None) -> Tensor:
    """Pixel [frame, y, x] of each latent token of a (frames, height, width) latent grid."""
    return video_token_coords(batch, frames, height, width, 1.0, causal_fix, device)


@dataclass
class _Tokens:
    """A run of tokens with their coordinates and conditioning strengths."""

    tokens: Tensor
    coords: Tensor
    mask: Tensor


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
    blended with (in item order, as the official pipeline draws it), then the guides' noise. `height`/`width`: the
    pass's pixel size, to which media of another size are resized."""
    b, c, f, h, w = init_latents.shape
    device = init_latents.device
    latents = init_latents.clone()
    coords = pixel_coords(b, f, h, w, causal_fix, device)
    if not items:
        return TokenState(to_tokens(latents), coords, None, 0, (b, c, f, h, w))

    mask = torch.zeros(b, f, h, w, dtype=torch.float32, device=device)
    extras = []
    for item in (i for i in items if not isinstance(i, ControlVideo)):
        cond = _encoded(item, encode, latents, height, width)
        if cond.shape[3:] != (h, w):
            raise ValueError(f"conditioning latents are {tuple(cond.shape[3:])} but the video's are {(h, w)}")
        extra = _blend(item, cond, latents, mask, causal_fix, generator)
        if extra is not None:
            extras.append(extra)
    guides = [_guide(g, encode, latents, causal_fix) for g in items if isinstance(g, ControlVideo)]
    video = _Tokens(to_tokens(latents), coords, mask.flatten(1))
    runs = [*extras, video, *guides]
    state = TokenState(torch.cat([r.tokens for r in runs], dim=1), torch.cat([r.coords for r in runs], dim=2),
                       torch.cat([r.mask for r in runs], dim=1), sum(r.tokens.shape[1] for r in extras),
                       (b, c, f, h, w))
    if guides:
        state.guides = _guide_tokens(items, guides, generator)
        state.tokens = state.with_guides(state.tokens, torch.ones((), device=device))
    return state


def _encoded(item: ConditioningItem, encode, latents: Tensor, height: int, width: int) -> Tensor:
    media = item.media if isinstance(item, LatentClip) else encode(resize_media(item.as_video(), height, width))
    cond = media.to(device=latents.device, dtype=latents.dtype)
    return cond if cond.shape[0] == latents.shape[0] else cond.expand(latents.shape[0], *cond.shape[1:])


def _blend(item: ConditioningItem, cond: Tensor, latents: Tensor, mask: Tensor, causal_fix: bool,
           generator: torch.Generator) -> _Tokens | None:
    """Blend an item into `latents` (and its strength into `mask`) in place; the extra tokens it adds, if any."""
    b, _, _, h, w = latents.shape
    strength = item.strength
    n_lat = cond.shape[2]
    if item.start_frame == 0:
        latents[:, :, :n_lat] = torch.lerp(latents[:, :, :n_lat], cond, strength)
        mask[:, :n_lat] = strength
        return None
    if n_lat > 1:
        # A later clip: everything after the prefix is written in place; the prefix becomes extra tokens.
        if n_lat > PREFIX_LATENT_FRAMES:
            lo = item.start_frame // FRAMES_PER_LATENT + PREFIX_LATENT_FRAMES
            hi = lo + n_lat - PREFIX_LATENT_FRAMES
            latents[:, :, lo:hi] = torch.lerp(latents[:, :, lo:hi], cond[:, :, PREFIX_LATENT_FRAMES:], strength)
            mask[:, lo:hi] = strength
        cond = cond[:, :, :PREFIX_LATENT_FRAMES]
    noise = randn(cond.shape, generator, latents.device, cond.dtype)
    cond = torch.lerp(noise, cond, strength)
    fc = cond.shape[2]
    xc = pixel_coords(b, fc, h, w, causal_fix, latents.device)
    xc[:, 0] += item.start_frame
    return _Tokens(to_tokens(cond), xc, torch.full((b, fc * h * w), strength, dtype=torch.float32,
                                                     device=latents.device))


def _guide(item: ControlVideo, encode, latents: Tensor, causal_fix: bool) -> _Tokens:
    """A control video's clean tokens, encoded at 1/downscale of the pass's size; token (i, j) stands for the
    video's pixels from (i, j) * downscale * 32, and its frames for the video frames from its start frame."""
    b, _, _, h, w = latents.shape
    k = item.downscale or 1
    gh, gw = max(1, h // k), max(1, w // k)
    cond = _encoded(item, encode, latents, gh * PIXELS_PER_LATENT, gw * PIXELS_PER_LATENT)
    coords = pixel_coords(b, cond.shape[2], gh, gw, causal_fix, latents.device)
    coords[:, 1:] *= k
    coords[:, 0] += item.start_frame
    tokens = to_tokens(cond)
    return _Tokens(tokens, coords, torch.zeros(tokens.shape[:2], dtype=torch.float32, device=latents.device))


def _guide_tokens(items, guides: list[_Tokens], generator: torch.Generator) -> GuideTokens:
    controls = [i for i in items if isinstance(i, ControlVideo)]
    clean = torch.cat([g.tokens for g in guides], dim=1)
    keep = torch.cat([torch.full(g.tokens.shape[:2], 1.0 - c.strength, device=clean.device)
                      for c, g in zip(controls, guides, strict=True)], dim=1).unsqueeze(-1)
    noise = None if all(c.strength == 1.0 for c in controls) else randn(clean.shape, generator, clean.device,
                                                                       clean.dtype)
    return GuideTokens(clean, keep, noise)
