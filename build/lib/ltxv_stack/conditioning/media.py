"""Conditioning media: images and videos prepared the way the official `inference.py` prepares them.

Per frame: centre-crop to the target aspect ratio, resize to the target size (bicubic; skipped with `just_crop`),
3x3 Gaussian blur (sigma 1), a single-frame H.264 round trip (libx264, CRF 29, preset veryfast, yuv420p, sizes
trimmed to even) and scaling to [-1, 1]. Videos keep at most `max_frames` frames; conditioning sequences are then
trimmed to 8k+1 frames by the caller (`trim_to_valid_frames`).

Output layout everywhere: (1, 3, frames, H, W) float32 in [-1, 1].
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..video_io import to_uint8_frames

__all__ = [
    "MediaError",
    "VIDEO_EXTENSIONS",
    "blur",
    "calculate_padding",
    "crf_compress",
    "is_video_path",
    "load_media",
    "pad_media",
    "padded_size",
    "prepare_frames",
    "prepare_image",
    "read_media_frames",
    "trim_to_valid_frames",
]

# Files read frame by frame as videos; everything else is opened as an image (its first frame).
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".gif", ".mpg", ".mpeg", ".ts")

DEFAULT_CRF = 29
_BLUR_KERNEL = 3
_BLUR_SIGMA = 1.0


class MediaError(ValueError):
    """A media file cannot be used: the message names the file and the reason."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


# ----------------------------------------------------------------------------------------------------------------
# sizes


def trim_to_valid_frames(n: int) -> int:
    """The largest frame count of the form 8k+1 that is <= n (n >= 1)."""
    n = int(n)
    if n < 1:
        raise ValueError(f"a frame count must be at least 1, got {n}")
    return (n - 1) // 8 * 8 + 1


def padded_size(height: int, width: int, num_frames: int) -> tuple[int, int, int]:
    """The size the official pipeline generates at: H, W up to multiples of 32, frames up to 8k+1."""
    return ((height - 1) // 32 + 1) * 32, ((width - 1) // 32 + 1) * 32, ((num_frames - 2) // 8 + 1) * 8 + 1


def calculate_padding(height: int, width: int, target_height: int, target_width: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) that centres a height x width frame in target_height x target_width; an odd
    remainder goes to the right/bottom."""
    dh, dw = target_height - height, target_width - width
    top, left = dh // 2, dw // 2
    return left, dw - left, top, dh - top


def pad_media(media: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Zero-pad (0 is mid-grey in [-1,1]) prepared media as `inference.py` does before handing it to the pipeline:
    the padding is the one that takes the *requested* height x width to the padded generation size, applied to the
    media whatever its own size (with `just_crop` media keep their cropped source size)."""
    ph, pw, _ = padded_size(height, width, 1)
    pad = calculate_padding(height, width, ph, pw)
    if not any(pad):
        return media
    return F.pad(media, pad)


# ----------------------------------------------------------------------------------------------------------------
# the per-frame steps


def _crop_box(src_w: int, src_h: int, height: int, width: int) -> tuple[int, int, int, int]:
    """Centre box of the source with the target aspect ratio (the same float arithmetic as the reference, so the
    integer box is identical)."""
    target_aspect = width / height
    if src_w / src_h > target_aspect:  # wider than the target: keep full height
        crop_w, crop_h = int(src_h * target_aspect), src_h
        x0, y0 = (src_w - crop_w) // 2, 0
    else:
        crop_w, crop_h = src_w, int(src_w / target_aspect)
        x0, y0 = 0, (src_h - crop_h) // 2
    return x0, y0, x0 + crop_w, y0 + crop_h


def _gaussian_kernel2d(kernel_size: int, sigma: float, dtype=torch.float32) -> torch.Tensor:
    half = (kernel_size - 1) * 0.5
    x = torch.linspace(-half, half, steps=kernel_size)
    k1 = torch.exp(-0.5 * (x / sigma).pow(2))
    k1 = k1 / k1.sum()
    return (k1[:, None] * k1[None, :]).to(dtype)


def blur(image: torch.Tensor, kernel_size: int = _BLUR_KERNEL, sigma: float = _BLUR_SIGMA) -> torch.Tensor:
    """Gaussian blur of a (C,H,W) or (N,C,H,W) float image, reflect padding at the borders."""
    squeeze = image.ndim == 3
    x = image[None] if squeeze else image
    c = x.shape[1]
    k = _gaussian_kernel2d(kernel_size, sigma, x.dtype).to(x.device).expand(c, 1, kernel_size, kernel_size)
    p = kernel_size // 2
    # reflect needs more pixels than the padding: a 1-pixel image is padded with copies of itself
    mode = "reflect" if min(x.shape[-2:]) > p else "replicate"
    x = F.conv2d(F.pad(x, (p, p, p, p), mode=mode), k, groups=c)
    return x[0] if squeeze else x


def _h264_roundtrip(rgb: np.ndarray, crf: int) -> np.ndarray:
    """Encode one (H,W,3) uint8 frame as a one-frame H.264 MP4 in memory and decode it back (H,W,3 uint8)."""
    h, w = rgb.shape[:2]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=1, options={"crf": str(crf), "preset": "veryfast"})
        stream.height, stream.width = h, w
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format="yuv420p")
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    with av.open(buf, mode="r") as inp:
        vstream = next(s for s in inp.streams if s.type == "video")
        for decoded in inp.decode(vstream):
            return decoded.to_ndarray(format="rgb24")
    raise RuntimeError("the H.264 round trip produced no frame")


def crf_compress(image: torch.Tensor, crf: int = DEFAULT_CRF) -> torch.Tensor:
    """Single-frame H.264 round trip of an (H,W,3) image in [0,1] (the layout the reference works in) or a (3,H,W)
    image; the result has the input's layout, with H and W trimmed to even values, values in [0,1] in steps of
    1/255. The input is quantised by truncation (x*255 -> uint8), as the reference does. crf=0 returns the input,
    and so does an image under 2 pixels high or wide (H.264 takes even sizes: trimming would leave nothing)."""
    chw = image.ndim == 3 and image.shape[0] == 3 and image.shape[-1] != 3
    hwc = image.permute(1, 2, 0) if chw else image
    if crf == 0 or min(hwc.shape[:2]) < 2:
        return image
    hwc = hwc[: hwc.shape[0] // 2 * 2, : hwc.shape[1] // 2 * 2]
    rgb = (hwc * 255.0).byte().cpu().numpy()
    out = torch.from_numpy(_h264_roundtrip(rgb, crf)).to(device=image.device, dtype=image.dtype) / 255.0
    return out.permute(2, 0, 1) if chw else out


def prepare_image(image: Image.Image, height: int, width: int, *, just_crop: bool = False, blur_image: bool = True,
                  crf: int = DEFAULT_CRF) -> torch.Tensor:
    """One PIL image -> (1,3,1,h,w) in [-1,1]."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    image = image.crop(_crop_box(image.width, image.height, height, width))
    if not just_crop:
        image = image.resize((width, height), resample=Image.BICUBIC)
    x = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float().div(255.0)
    if blur_image:
        x = blur(x)
    x = crf_compress(x.permute(1, 2, 0), crf).permute(2, 0, 1)
    x = x * 255.0 / 127.5 - 1.0
    return x[None, :, None]


def prepare_frames(frames, height: int, width: int, *, just_crop: bool = False, blur: bool = True,
                   crf: int = DEFAULT_CRF) -> torch.Tensor:
    """Frames already in memory (ComfyUI IMAGE (f,H,W,3) in [0,1], or uint8, or (1,3,f,H,W) in [0,1]) prepared
    frame by frame like files are -> (1,3,f,h,w) in [-1,1]. Float frames are rounded to 8 bits first (ComfyUI's
    images come from 8-bit files, so this recovers their pixels exactly)."""
    if getattr(frames, "ndim", 0) == 5 and frames.shape[0] != 1:
        raise ValueError(f"expected one video (batch 1), got shape {tuple(frames.shape)}")
    arr = to_uint8_frames(frames)
    out = [prepare_image(Image.fromarray(f), height, width, just_crop=just_crop, blur_image=blur, crf=crf)
           for f in arr]
    return torch.cat(out, dim=2)


# ----------------------------------------------------------------------------------------------------------------
# files


def is_video_path(path) -> bool:
    return str(path).lower().endswith(VIDEO_EXTENSIONS)


def _iter_video_frames(path, max_frames=None):
    try:
        container = av.open(str(path))
    except Exception as e:  # av raises its own error types (InvalidDataError, FileNotFoundError...)
        raise MediaError(path, f"cannot be read as a video ({_reason(e)})") from None
    with container:
        streams = [s for s in container.streams if s.type == "video"]
        if not streams:
            raise MediaError(path, "has no video stream")
        n = 0
        try:
            for frame in container.decode(streams[0]):
                if max_frames is not None and n >= max_frames:
                    return
                yield frame.to_ndarray(format="rgb24")
                n += 1
        except MediaError:
            raise
        except Exception as e:
            if n == 0:
                raise MediaError(path, f"cannot be decoded ({_reason(e)})") from None
            return  # a damaged tail: keep the frames decoded so far
        if n == 0:
            raise MediaError(path, "has no frames")


def _reason(e: Exception) -> str:
    s = str(e).strip() or type(e).__name__
    return s.splitlines()[0]


def _open_image(path) -> Image.Image:
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise MediaError(path, f"cannot be read as an image ({_reason(e)})") from None


def _check_file(path) -> Path:
    p = Path(path)
    if not p.exists():
        raise MediaError(path, "no such file")
    if p.is_dir():
        raise MediaError(path, "is a folder, not an image or video file")
    if not os.access(p, os.R_OK):
        raise MediaError(path, "is not readable (permission denied)")
    return p


def read_media_frames(path, max_frames=None) -> np.ndarray:
    """Raw frames of an image or video file: (f,H,W,3) uint8 (an image gives f=1)."""
    p = _check_file(path)
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    if is_video_path(p):
        return np.stack(list(_iter_video_frames(p, max_frames)))
    try:
        im = _open_image(p)
    except MediaError:
        # not an image PIL knows: maybe a video with an unusual extension
        try:
            return np.stack(list(_iter_video_frames(p, max_frames)))
        except MediaError:
            pass
        raise
    return np.asarray(im, dtype=np.uint8)[None]


def load_media(path, height: int, width: int, max_frames: int | None = None, *, just_crop: bool = False,
               blur: bool = True, crf: int = DEFAULT_CRF) -> torch.Tensor:
    """An image or a video file prepared as the official `inference.py` does -> (1,3,f,h,w) float32 in [-1,1].

    h x w is height x width (trimmed to even values by the codec step), or with `just_crop` the source cropped to
    the target aspect ratio. Videos keep at most `max_frames` frames. Not padded: see `pad_media`.
    Unreadable files raise MediaError (a ValueError) naming the path and the reason."""
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    frames = read_media_frames(path, max_frames)
    out = [prepare_image(Image.fromarray(f), height, width, just_crop=just_crop, blur_image=blur, crf=crf)
           for f in frames]
    return torch.cat(out, dim=2)
