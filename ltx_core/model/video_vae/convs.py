"""The VAE's only convolution: 3x3x3, with frames padded by repeating the edge frames."""
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .chunks import frame_slices, tracing


def _time_padding(causal: bool) -> tuple[int, int]:
    """Edge frames repeated (before, after) the video."""
    return (2, 0) if causal else (1, 1)


class CausalConv3d(nn.Module):
    """Causal: the first frame is repeated twice in front, so frame t only sees frames <= t. Non-causal:
    the first and last frames are repeated once at their ends. Height and width get 1 pixel of
    `padding_mode` padding.

    Stride-1 convolutions over large inputs run in slices of output frames, so the padded copy of the input
    is never materialised whole: it would otherwise be the largest temporary of a decode.
    """

    def __init__(self, in_channels: int, out_channels: int, stride=(1, 1, 1), padding_mode: str = "zeros"):
        super().__init__()
        self.padding_mode = padding_mode
        # Zero padding is done by the convolution itself, without copying the input.
        spatial = 1 if padding_mode == "zeros" else 0
        self.conv = nn.Conv3d(in_channels, out_channels, 3, stride=stride, padding=(0, spatial, spatial))

    def _pad(self, x: torch.Tensor, before: int, after: int) -> torch.Tensor:
        if self.padding_mode == "replicate":
            return F.pad(x, (1, 1, 1, 1, before, after), mode="replicate")
        if before or after:
            x = F.pad(x, (0, 0, 0, 0, before, after), mode="replicate")
        return x if self.padding_mode == "zeros" else F.pad(x, (1, 1, 1, 1, 0, 0), mode=self.padding_mode)

    def chunks(self, x: torch.Tensor, causal: bool, inplace: bool = False) -> Iterator[tuple[int, int, torch.Tensor]]:
        """Yield (start, stop, output frames start..stop-1). With `inplace` the slices come last first and the
        caller may overwrite x's frames start..stop-1 with each one before taking the next: every slice is
        still computed from x's original frames."""
        before, after = _time_padding(causal)
        frames = x.shape[2]
        growth = self.conv.out_channels / self.conv.in_channels
        slices = frame_slices(x, growth) if self.conv.stride == (1, 1, 1) else [(0, frames)]
        overwritten = None  # with inplace: the original frames stop..stop+after-1, which the caller replaced
        for start, stop in reversed(slices) if inplace else slices:
            lo, hi = max(start - before, 0), min(stop + after, frames)
            piece = x[:, :, lo:hi] if overwritten is None else torch.cat([x[:, :, lo:stop], overwritten], dim=2)
            y = self.conv(self._pad(piece, lo - (start - before), stop + after - hi))
            del piece
            if inplace and after:
                overwritten = x[:, :, start : start + after].clone()
            yield start, stop, y
            del y  # else it would live on while the next slice is computed

    def forward(self, x: torch.Tensor, causal: bool = True, inplace: bool = False) -> torch.Tensor:
        """inplace: the result may be written into x (same channel count only); x must not be used after."""
        if tracing():
            return self.conv(self._pad(x, *_time_padding(causal)))
        out = None
        for start, stop, y in self.chunks(x, causal, inplace):
            if stop - start == x.shape[2]:
                return y
            if out is None:
                out = x if inplace else y.new_empty(*y.shape[:2], x.shape[2], *y.shape[3:])
            out[:, :, start:stop] = y
            del y
        return out
