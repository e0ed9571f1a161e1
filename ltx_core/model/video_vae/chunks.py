"""Slicing full-video tensors by frames, so the temporaries of an op are bounded by a slice, not the video."""
import torch

# Above this many bytes, a tensor is processed in slices of frames about this size.
CHUNK_BYTES = 64 << 20


def tracing() -> bool:
    """True while torch.export traces the model (the OpenVINO backend): sizes are then symbolic, so the fast paths'
    slicing by frames and writes into views of preallocated tensors give way to plain functional ops."""
    return torch.compiler.is_compiling()


def frame_slices(x: torch.Tensor, growth: float = 1.0) -> list[tuple[int, int]]:
    """[start, stop) frame ranges covering x's axis 2, for an op whose output is `growth` times x's size."""
    frames, size = x.shape[2], x.numel() * x.element_size() * max(growth, 1.0)
    step = frames if size <= CHUNK_BYTES else max(1, int(frames * CHUNK_BYTES // size))
    return [(start, min(start + step, frames)) for start in range(0, frames, step)]
