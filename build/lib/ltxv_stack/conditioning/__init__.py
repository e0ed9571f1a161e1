"""Conditioning: media preparation (`media`), conditioning items and their tokens (`items`, `tokens`)."""
from .media import MediaError, crf_compress, load_media, pad_media, prepare_frames, trim_to_valid_frames

__all__ = ["MediaError", "crf_compress", "load_media", "pad_media", "prepare_frames", "trim_to_valid_frames"]
