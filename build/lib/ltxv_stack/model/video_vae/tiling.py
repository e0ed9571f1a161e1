"""Tiled encode/decode: the VAE runs on overlapping pieces of the video and the results are blended.

Tiles are laid out on the latent grid, so a tile is always a valid VAE input. Where tiles overlap, each
output position is a weighted mean of the tiles covering it, with weights ramping linearly across the
overlap, so there is no seam. Memory is that of one tile plus the output.

Blending is not bit-exact: near a tile edge the network sees padding instead of the neighbouring content,
and the receptive field of the VAE is larger than any practical overlap. Along time, a tile's first latent
frame is also treated as a lone first frame (the causal VAE's image frame), so a later tile's weight ramps
up from 0 at its first frame, and the earlier tile, which saw the full past, is trusted there.
"""
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch


def check_size(what: str, value: int, step: int, offset: int = 0, minimum: int = 0) -> None:
    """ValueError naming `what` and the nearest valid values unless value = offset + k*step >= minimum."""
    if value >= minimum and (value - offset) % step == 0:
        return
    lower = offset + (value - offset) // step * step
    first_valid = offset + -((offset - minimum) // step) * step
    nearest = [v for v in (lower, lower + step) if v >= minimum] or [first_valid]
    form = f"a multiple of {step}" if offset == 0 else f"{offset} + {step}k"
    raise ValueError(
        f"{what}={value} is invalid: it must be {form}, at least {minimum}; nearest valid: "
        + " or ".join(str(v) for v in nearest)
    )


@dataclass(frozen=True)
class TilingConfig:
    """Tile sizes in pixels and frames, the same for encode and decode; None disables tiling on that axis.

    spatial_tile / spatial_overlap: tile height and width, and the pixels shared by neighbouring tiles
    (multiples of the spatial compression, 32). temporal_tile / temporal_overlap: multiples of the temporal
    compression (8); a tile spans temporal_tile + 1 frames and neighbours share temporal_overlap + 1 frames,
    because a causal VAE maps 1 + 8k frames to 1 + k latent frames.
    """

    spatial_tile: int | None = 512
    spatial_overlap: int = 64
    temporal_tile: int | None = 64
    temporal_overlap: int = 24

    def latent_layout(self, temporal_factor: int, spatial_factor: int) -> tuple[tuple[int | None, int], ...]:
        """((tile, overlap) in latent units) for time, height and width."""
        layout = []
        for kind, factor, extra in (("temporal", temporal_factor, 1), ("spatial", spatial_factor, 0)):
            tile, overlap = getattr(self, f"{kind}_tile"), getattr(self, f"{kind}_overlap")
            check_size(f"{kind}_overlap", overlap, factor)
            if tile is None:
                layout.append((None, 0))
                continue
            check_size(f"{kind}_tile", tile, factor, minimum=factor)
            if overlap >= tile:
                raise ValueError(f"{kind}_overlap={overlap} must be smaller than {kind}_tile={tile}")
            layout.append((tile // factor + extra, overlap // factor + extra))
        return layout[0], layout[1], layout[1]


def spans(length: int, tile: int | None, overlap: int) -> list[tuple[int, int]]:
    """[start, stop) tiles of `tile` covering range(length), neighbours sharing at least `overlap`."""
    if tile is None or tile >= length:
        return [(0, length)]
    starts = [0]
    while starts[-1] + tile < length:
        starts.append(starts[-1] + tile - overlap)
    starts[-1] = length - tile  # the last tile ends flush with the edge, overlapping its neighbour more
    return [(s, s + tile) for s in starts]


def to_pixels(span: tuple[int, int], factor: int, temporal: bool) -> tuple[int, int]:
    """Latent span -> pixel span. In time, latent frame 0 is pixel frame 0 alone and latent frame i > 0
    ends at pixel frame factor * i, so a tile starting at latent frame s starts at pixel frame factor * s."""
    start, stop = span
    return (factor * start, factor * (stop - 1) + 1) if temporal else (factor * start, factor * stop)


def _ramp(n: int, from_zero: bool) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64)
    return k / n if from_zero else (k + 1) / (n + 1)


def blend_weights(tile_spans: list[tuple[int, int]], length: int, from_zero: bool) -> list[torch.Tensor]:
    """Per tile, 1-D weights over its span; at every position they sum to 1 over the tiles covering it."""
    weights = []
    for i, (start, stop) in enumerate(tile_spans):
        w = torch.ones(stop - start, dtype=torch.float64)
        if i > 0 and tile_spans[i - 1][1] > start:
            n = tile_spans[i - 1][1] - start
            w[:n] *= _ramp(n, from_zero)
        if i + 1 < len(tile_spans) and tile_spans[i + 1][0] < stop:
            n = stop - tile_spans[i + 1][0]
            w[stop - start - n :] *= 1 - _ramp(n, from_zero)
        weights.append(w)
    # Clamped last tiles can make three tiles meet; normalising keeps the blend a weighted mean anyway.
    total = torch.zeros(length, dtype=torch.float64)
    for (start, stop), w in zip(tile_spans, weights, strict=True):
        total[start:stop] += w
    return [w / total[start:stop] for (start, stop), w in zip(tile_spans, weights, strict=True)]


def tiled_map(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    in_spans: tuple[list[tuple[int, int]], ...],
    out_spans: tuple[list[tuple[int, int]], ...],
    out_sizes: tuple[int, int, int],
) -> torch.Tensor:
    """Apply fn to the (time, height, width) tiles `in_spans` of x (B, C, T, H, W) and blend its outputs,
    which land on `out_spans`, into one (B, C', *out_sizes) tensor. Time is axis 0 of the span tuples."""
    if all(len(s) == 1 for s in in_spans):
        return fn(x)
    weights = [blend_weights(s, n, from_zero=axis == 0)
               for axis, (s, n) in enumerate(zip(out_spans, out_sizes, strict=True))]
    out = None
    for index in itertools.product(*(range(len(s)) for s in in_spans)):
        tile = fn(x[(..., *(slice(*in_spans[axis][i]) for axis, i in enumerate(index)))])
        if out is None:
            out = tile.new_zeros(*tile.shape[:2], *out_sizes)
        for axis, i in enumerate(index):
            shape = [1, 1, 1, 1, 1]
            shape[2 + axis] = -1
            tile.mul_(weights[axis][i].to(tile).view(shape))
        out[(..., *(slice(*out_spans[axis][i]) for axis, i in enumerate(index)))] += tile
        del tile  # else it would live on while the next tile is computed
    return out
