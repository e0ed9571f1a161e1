"""Writing results: a video (MP4, or PNG for one frame) and latents, each written to a temporary name and renamed
into place, so that an interrupted or failed write never leaves a partial file that looks like a result."""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from safetensors.torch import save_file
from torch import Tensor

from ..video_io import to_uint8_frames, write_mp4, write_mp4_pieces


def save_video(path, video: Tensor, frame_rate: float) -> Path:
    """(B, 3, F, H, W) in [0, 1] (its first video): an H.264 MP4, or a PNG when `path` ends in .png or the video
    has one frame."""
    from PIL import Image

    frames = to_uint8_frames(video.float())
    path = Path(path)
    with _atomic(path) as tmp:
        if frames.shape[0] == 1 or path.suffix.lower() == ".png":
            Image.fromarray(frames[0]).save(tmp, format="PNG")
        else:
            write_mp4(tmp, frames, frame_rate)
    return path


def save_video_pieces(path, pieces: Iterable[Tensor], frame_rate: float) -> Path:
    """save_video for a video that arrives in consecutive (B, 3, n, H, W) pieces (`decode_output_pieces`): each is
    turned to 8 bits and written as it comes, so the whole video is never held in memory."""
    path = Path(path)
    with _atomic(path) as tmp:
        write_mp4_pieces(tmp, (p.float() for p in pieces), frame_rate)
    return path


def save_latents(path, latents: Tensor, metadata: dict[str, str]) -> Path:
    """Latents as the safetensors tensor 'latents', with string metadata."""
    path = Path(path)
    with _atomic(path) as tmp:
        save_file({"latents": latents.detach().cpu().contiguous()}, str(tmp), metadata=metadata)
    return path


class _atomic:
    """A temporary name next to `path`, renamed to it on success and removed on failure."""

    def __init__(self, path: Path):
        self.path = path
        self.tmp = path.with_name(f".{path.name}.partial")

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self.tmp

    def __exit__(self, kind, _value, _traceback):
        if kind is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
        return False
