"""Keyframes: an image or a clip placed at a frame of the video, prepared as the official pipeline prepares
conditioning media (crop to the video's aspect ratio, blur, H.264 round trip, padding like the output).
The frame rules live here: clips of 8k+1 frames, a clip not at frame 0 starts at a multiple of 8, negative indices
count from the end."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..conditioning.items import ConditioningItem, ControlVideo
from ..conditioning.media import pad_media, prepare_frames, read_media_frames
from ..defaults import CONDITIONING_CRF
from ..geometry import is_valid_clip_start, nearest_clip_starts, padded_frames, trim_to_valid_frames


@dataclass(frozen=True)
class Keyframe:
    """`frames`: (f, H, W, 3), float in [0, 1] or uint8, trimmed here to its first 8k+1 frames. `frame_index`:
    >= 0, the video frame its first frame goes to; < 0, its last frame lands on frame num_frames + index."""

    frames: torch.Tensor
    frame_index: int
    strength: float = 1.0
    crf: int = CONDITIONING_CRF
    blur: bool = True
    name: str = "keyframe"

    def __post_init__(self):
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"{self.name}: strength must be between 0 and 1, got {self.strength}")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"{self.name}: crf must be between 0 and 51, got {self.crf}")
        n = trim_to_valid_frames(self.frames.shape[0])
        object.__setattr__(self, "frames", self.frames[:n].contiguous())
        if not is_valid_clip_start(self.frame_index, n):
            lo, hi = nearest_clip_starts(self.frame_index)
            raise ValueError(f"{self.name}: a clip ({n} frames) that does not start at frame 0 must start at a "
                             f"multiple of 8; use frame_index {lo} or {hi}")

    @classmethod
    def from_file(cls, path, frame_index: int, strength: float, num_frames: int) -> "Keyframe":
        """An image or video file (a MediaError names an unreadable one); a clip placed at frame_index >= 0 keeps
        only the frames that fit in the video, as the official script does."""
        limit = num_frames - frame_index if frame_index >= 0 else None
        frames = torch.from_numpy(np.array(read_media_frames(path, limit)))  # a writable copy
        return cls(frames, frame_index, strength, name=f"conditioning media {path}")

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def start(self, num_frames: int) -> int:
        """The video frame the first frame goes to."""
        return self.frame_index if self.frame_index >= 0 else num_frames + self.frame_index - (self.num_frames - 1)


def prepare_keyframes(keyframes, height: int, width: int, num_frames: int) -> list[ConditioningItem]:
    """Keyframes -> ConditioningItems for a video of height x width x num_frames (the requested size): media
    cropped to the aspect ratio at the source resolution, blurred, H.264 round trip, padded like the output; the
    pipeline resizes it to each pass's size. Errors say which keyframe and what to change."""
    items = []
    for k, kf in enumerate(keyframes, 1):
        start = _checked_start(f"keyframe {k}", kf, num_frames)
        media = prepare_frames(kf.frames, height, width, just_crop=True, blur=kf.blur, crf=kf.crf)
        items.append(ConditioningItem(pad_media(media, height, width), start, kf.strength))
    return items


def prepare_control_video(control: Keyframe, height: int, width: int, num_frames: int) -> ControlVideo:
    """An IC-LoRA control input (depth/pose/edge frames, or any video) for a video of height x width x num_frames:
    its frames past the video's end are dropped, the rest cut to 8k+1, cropped to the video's aspect ratio and
    padded like the output; no blur and no compression (the control is taken as it is). The downscale factor
    comes from the IC-LoRA at generation time."""
    fit = padded_frames(num_frames) - max(0, control.frame_index)
    if control.frame_index >= 0 and 0 < fit < control.num_frames:
        control = replace(control, frames=control.frames[:fit])
    start = _checked_start(control.name, control, num_frames, index_name="start_frame")
    media = prepare_frames(control.frames, height, width, just_crop=True, blur=False, crf=0)
    return ControlVideo(pad_media(media, height, width), start, control.strength)


def _checked_start(label: str, kf: Keyframe, num_frames: int, index_name: str = "frame_index") -> int:
    n = kf.num_frames
    what = f"{label} ({'1 frame' if n == 1 else f'a clip of {n} frames'}, {index_name} {kf.frame_index})"
    start = kf.start(num_frames)
    if start < 0:
        # frame_index -k puts the last frame on frame num_frames - k: that needs n - 1 + k frames
        need = n - 1 - kf.frame_index if kf.frame_index < 0 else n
        raise ValueError(f"{what} would start before the video's first frame; the video has {num_frames} "
                         f"frames: raise num_frames to at least {need} or use {index_name} 0")
    if start >= num_frames:
        raise ValueError(f"{what} is beyond the video's last frame ({num_frames - 1}); use a {index_name} up to "
                         f"{num_frames - 1}{', or -1 for the last frame' if index_name == 'frame_index' else ''}, "
                         "or raise num_frames")
    if start + n > padded_frames(num_frames):
        raise ValueError(f"{what} runs past the end of the {num_frames}-frame video; raise num_frames to at "
                         f"least {start + n} or use a shorter clip")
    if not is_valid_clip_start(start, n):
        lo, hi = nearest_clip_starts(start)
        raise ValueError(f"{what} starts at frame {start}; a clip that does not start at frame 0 must start at "
                         f"a multiple of 8 (e.g. {lo} or {hi}): change frame_index or num_frames")
    return start
