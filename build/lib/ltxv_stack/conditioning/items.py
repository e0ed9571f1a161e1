"""Conditioning items: an image or a clip, placed at a frame of the generated video with a strength.

How an item enters the latents depends on where it starts, as in the official pipeline:
- at frame 0 (image or clip): its latents are blended into the initial noise latents with the strength, and
  those tokens get that strength in the conditioning mask;
- at a later frame, a clip (8k+1 frames, start a multiple of 8): its latent frames after a 2-frame prefix are
  blended in place; the prefix is appended as extra tokens;
- at a later frame, a single image: appended as extra tokens whose time coordinate is shifted to that frame.
Extra tokens are removed before decoding.

A `ControlVideo` (an IC-LoRA's control input) is not blended in: its tokens are appended after the video's as
guides (`tokens.GuideTokens`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch.nn.functional as F
from torch import Tensor

from ..geometry import FRAMES_PER_LATENT, is_valid_clip_start


@dataclass
class ConditioningItem:
    """`media`: (B or 1, 3, f, h, w) in [-1, 1] with f = 8k+1 (a (B, 3, h, w) or (3, h, w) image is taken as one
    frame), prepared as `ltx_core.conditioning.media` prepares it, normally at the padded video size; any other size
    is resized (bilinear) to each pass's size, as the official pipeline does. `start_frame`: the frame of the
    generated video where its first frame goes; `strength`: 1 = hard conditioning, 0 = none."""

    media: Tensor
    start_frame: int = 0
    strength: float = 1.0

    @property
    def num_frames(self) -> int:
        return int(self.as_video().shape[2])

    def as_video(self) -> Tensor:
        m = self.media
        if not isinstance(m, Tensor):
            raise ValueError(f"conditioning media must be a torch.Tensor, got {type(m).__name__}")
        if m.dim() == 3:
            m = m.unsqueeze(0)
        if m.dim() == 4:
            m = m.unsqueeze(2)
        if m.dim() != 5 or m.shape[1] != 3:
            raise ValueError(f"conditioning media must be (B, 3, frames, H, W), got shape {tuple(self.media.shape)}")
        return m


@dataclass
class ControlVideo(ConditioningItem):
    """An IC-LoRA control input (depth, pose or edge maps made elsewhere, or any video): its latents become guide
    tokens at the coordinates of the frames they stand for, at timestep sigma * (1 - strength). `downscale`: the
    control is encoded at 1/downscale of each pass's size (an IC-LoRA's reference_downscale_factor); None: take it
    from the IC-LoRA applied (1 without one)."""

    downscale: int | None = None


@dataclass
class LatentClip(ConditioningItem):
    """Latents already encoded (normalised, (B or 1, 128, f, h, w) at the pass's latent size): at frame 0, blended
    in as a clip there is (how a temporal chunk continues the frames generated before it); a single latent frame
    at a negative frame, appended as extra tokens that far in the past (a long video's memory of an early frame)."""

    def as_video(self) -> Tensor:
        return self.media


def validate_items(items, num_frames: int, batch: int, requested_frames: int | None = None) -> list[ConditioningItem]:
    """Check every item against a video of `num_frames` (padded, 8k+1) frames; ValueError with one line otherwise.
    `requested_frames` (the unpadded count) bounds the start frame, like the official script does."""
    out = []
    for n, item in enumerate(items or ()):
        if not isinstance(item, ConditioningItem):
            raise ValueError(f"conditioning[{n}] must be a ConditioningItem, got {type(item).__name__}")
        if isinstance(item, LatentClip):
            out.append(_checked_latent_clip(n, item, batch))
            continue
        media = item.as_video()
        what = f"{'control video' if isinstance(item, ControlVideo) else 'conditioning'}[{n}]"
        s = item.strength
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0.0 <= float(s) <= 1.0:
            raise ValueError(f"{what}: strength must be a number in [0, 1], got {s!r}")
        start = item.start_frame
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise ValueError(f"{what}: start_frame must be a non-negative integer, got {start!r}")
        f = int(media.shape[2])
        if f % FRAMES_PER_LATENT != 1:
            raise ValueError(f"{what}: a conditioning clip must have 8k+1 frames, got {f}")
        last = requested_frames if requested_frames is not None else num_frames
        if start >= last:
            raise ValueError(f"{what}: start_frame {start} is beyond the video's last frame ({last - 1})")
        if start + f > num_frames:
            raise ValueError(f"{what}: {f} frame(s) starting at frame {start} run past the video's {num_frames} frames")
        if not is_valid_clip_start(start, f):
            raise ValueError(f"{what}: a clip that does not start at frame 0 must start at a multiple of 8, got {start}")
        if media.shape[0] not in (1, batch):
            raise ValueError(f"{what}: media batch {media.shape[0]} must be 1 or the generation batch {batch}")
        if not media.is_floating_point():
            raise ValueError(f"{what}: media must be a float tensor in [-1, 1], got {media.dtype}")
        if isinstance(item, ControlVideo) and item.downscale is not None and (
                isinstance(item.downscale, bool) or not isinstance(item.downscale, int) or item.downscale < 1):
            raise ValueError(f"{what}: downscale must be a positive integer, got {item.downscale!r}")
        out.append(replace(item, start_frame=int(start), strength=float(s)))
    return out


def _checked_latent_clip(n: int, item: LatentClip, batch: int) -> LatentClip:
    z = item.media
    ok = isinstance(z, Tensor) and z.dim() == 5 and z.shape[0] in (1, batch)
    if not ok or not (item.start_frame == 0 or (item.start_frame < 0 and z.shape[2] == 1)):
        raise ValueError(f"latent clip[{n}]: expected (1 or {batch}, channels, frames, h, w) latents at frame 0, or "
                         f"one latent frame at a negative frame, got "
                         f"{tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__} at {item.start_frame}")
    if not 0.0 <= item.strength <= 1.0:
        raise ValueError(f"latent clip[{n}]: strength must be in [0, 1], got {item.strength!r}")
    return item


def resize_media(media: Tensor, height: int, width: int) -> Tensor:
    """Bilinear (no corner alignment) per-frame resize of (B, C, f, h, w) to (height, width), as the official
    pipeline resizes conditioning media for a pass at another size and the decoded video to the requested size."""
    if tuple(media.shape[-2:]) == (height, width):
        return media
    b, c, f, h, w = media.shape
    flat = media.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
    flat = F.interpolate(flat, size=(height, width), mode="bilinear", align_corners=False)
    return flat.reshape(b, f, c, height, width).permute(0, 2, 1, 3, 4)
