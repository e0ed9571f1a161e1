"""The latent geometry of the released LTX-Video VAEs, in one place.

A latent frame covers 8 video frames after the first one (videos have 8k+1 frames), a latent pixel covers 32x32
pixels, and a latent has 128 channels. Sizes the model cannot take are padded up (height and width to multiples of
32, frames to 8k+1) and the result is cropped back, as the official pipeline does.
"""
from __future__ import annotations

FRAMES_PER_LATENT = 8
PIXELS_PER_LATENT = 32
LATENT_CHANNELS = 128
# (time, height, width) compression, in the order of a latent's (F, H, W) axes.
VAE_SCALE_FACTORS = (FRAMES_PER_LATENT, PIXELS_PER_LATENT, PIXELS_PER_LATENT)


def padded_size(height: int, width: int, num_frames: int) -> tuple[int, int, int]:
    """The size generated for a request: height and width up to multiples of 32, frames up to 8k+1."""
    return _round_up(height, PIXELS_PER_LATENT), _round_up(width, PIXELS_PER_LATENT), padded_frames(num_frames)


def padded_frames(num_frames: int) -> int:
    """The frame count generated for a request: up to 8k+1."""
    return _round_up(num_frames - 1, FRAMES_PER_LATENT) + 1


def latent_grid(num_frames: int, height: int, width: int) -> tuple[int, int, int]:
    """Latent (frames, height, width) of a request, padding included."""
    hp, wp, fp = padded_size(height, width, max(int(num_frames), 1))
    return (fp - 1) // FRAMES_PER_LATENT + 1, hp // PIXELS_PER_LATENT, wp // PIXELS_PER_LATENT


def latent_shape(batch: int, num_frames: int, height: int, width: int,
                 channels: int = LATENT_CHANNELS) -> tuple[int, int, int, int, int]:
    """(B, C, F, H, W) of the latents of a video of valid size."""
    return (batch, channels, *latent_grid(num_frames, height, width))


def pixel_size(latent_frames: int, latent_height: int, latent_width: int) -> tuple[int, int, int]:
    """(frames, height, width) in pixels that a latent grid decodes to."""
    return ((latent_frames - 1) * FRAMES_PER_LATENT + 1, latent_height * PIXELS_PER_LATENT,
            latent_width * PIXELS_PER_LATENT)


def trim_to_valid_frames(n: int) -> int:
    """The largest frame count of the form 8k+1 that is <= n (n >= 1)."""
    n = int(n)
    if n < 1:
        raise ValueError(f"a frame count must be at least 1, got {n}")
    return (n - 1) // FRAMES_PER_LATENT * FRAMES_PER_LATENT + 1


def is_valid_clip_start(start: int, frames: int) -> bool:
    """A clip (more than one frame) that does not start at frame 0 must start on a latent frame boundary."""
    return start <= 0 or frames <= 1 or start % FRAMES_PER_LATENT == 0


def nearest_clip_starts(start: int) -> tuple[int, int]:
    """The valid clip starts just below and above `start`, for messages."""
    lo = start // FRAMES_PER_LATENT * FRAMES_PER_LATENT
    return lo, lo + FRAMES_PER_LATENT


def frame_count_problem(frames: int) -> str | None:
    """Why a frame count cannot be encoded as it is (None when it can), with the nearest valid counts."""
    if frames % FRAMES_PER_LATENT == 1:
        return None
    lo = trim_to_valid_frames(frames)
    return f"{frames} frames is not 8k+1: use {lo}" + (f" or {lo + FRAMES_PER_LATENT}" if lo != frames else "") \
        + " frames"


def pixel_size_problem(name: str, value: int) -> str | None:
    """Why a height or width cannot be encoded as it is (None when it can), with the nearest valid values."""
    if value % PIXELS_PER_LATENT == 0 and value >= PIXELS_PER_LATENT:
        return None
    lo = max(value // PIXELS_PER_LATENT * PIXELS_PER_LATENT, PIXELS_PER_LATENT)
    return f"{name} {value} is not a multiple of 32: resize or crop to {lo}" \
        + (f" or {lo + PIXELS_PER_LATENT}" if lo < value else "")


def _round_up(value: int, step: int) -> int:
    return -(-int(value) // step) * step
