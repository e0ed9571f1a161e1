"""Video files: write H.264 MP4 (yuv420p) with PyAV."""
from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

__all__ = ["to_uint8_frames", "write_mp4", "write_mp4_pieces"]


def to_uint8_frames(video) -> np.ndarray:
    """(F,H,W,3|4) uint8, or float (F,H,W,3|4) / (3,F,H,W) / (B,3,F,H,W) (first video) in [0,1] -> (F,H,W,3)
    uint8; an alpha channel is dropped."""
    if isinstance(video, np.ndarray):
        video = torch.from_numpy(np.array(video))
    if not isinstance(video, torch.Tensor):
        raise TypeError(f"video must be a tensor or an array, got {type(video).__name__}")
    x = video.detach().cpu()
    if x.ndim == 5:
        x = x[0]
    if x.ndim == 4 and x.shape[0] == 3 and x.shape[-1] != 3:
        x = x.permute(1, 2, 3, 0)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] not in (3, 4):
        raise ValueError(f"expected a video (F,H,W,3), (3,F,H,W) or (B,3,F,H,W), got shape {tuple(video.shape)}")
    x = x[..., :3]
    if x.dtype != torch.uint8:
        x = (x.float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    return np.ascontiguousarray(x.numpy())


def _rate(fps) -> Fraction:
    fps = float(fps)
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return Fraction(fps).limit_denominator(1001)


def write_mp4(path, video, fps, *, crf: int = 18, preset: str = "medium") -> Path:
    """Write frames as an H.264 MP4 (yuv420p, widely playable). Odd widths/heights (not allowed by yuv420p) are
    padded to even by repeating the last row/column. Creates the parent folder. Returns the path."""
    return write_mp4_pieces(path, [to_uint8_frames(video)], fps, crf=crf, preset=preset)


def write_mp4_pieces(path, pieces: Iterable, fps, *, crf: int = 18, preset: str = "medium") -> Path:
    """write_mp4 for a video that arrives in consecutive pieces (each anything to_uint8_frames takes), written as
    they come: only one piece is in memory at a time."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with av.open(str(path), mode="w", format="mp4") as out:
        stream = None
        for piece in pieces:
            frames = _even(to_uint8_frames(piece))
            if stream is None:
                stream = out.add_stream("libx264", rate=_rate(fps), options={"crf": str(int(crf)), "preset": preset})
                stream.height, stream.width = frames.shape[1:3]
                stream.pix_fmt = "yuv420p"
            for f in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                    out.mux(packet)
            written += frames.shape[0]
        if stream is None or written == 0:
            raise ValueError("cannot write an empty video")
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _even(frames: np.ndarray) -> np.ndarray:
    n, h, w, _ = frames.shape
    if h == 0 or w == 0:
        raise ValueError(f"cannot write an empty video (shape {frames.shape})")
    if h % 2 or w % 2:
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return frames
