"""From final latents to video: the denoising decoder's noise and timestep, tone mapping, tiling chosen from free
memory (with a tiled retry after running out of memory), and the crop back to the requested size."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..conditioning.items import resize_media
from ..geometry import FRAMES_PER_LATENT, PIXELS_PER_LATENT, padded_size
from ..memory.estimate import decode_tiling_for
from ..memory.oom import is_out_of_memory
from ..model.video_vae import TilingConfig
from ..model.video_vae.tiling import blend_weights, spans, to_pixels
from ..sampling.noise import DECODE, derived_generator, randn
from .sampling_pass import module_device_dtype

TILING_MODES = ("auto", "on", "off")
# The temporal tiles a video decoded in pieces is cut into (the tiled decode's defaults: 64 + 1 frames, 24 shared).
TEMPORAL_PIECES = TilingConfig()


@dataclass(frozen=True)
class DecodeSettings:
    """The denoising decoder's timestep and noise (a value, or one per sample; noise None: the timestep), and
    the soft compression of extreme latent values applied before decoding."""

    timestep: float | tuple[float, ...] = 0.0
    noise_scale: float | tuple[float, ...] | None = None
    tone_map_compression: float = 0.0

    def __post_init__(self):
        for name in ("timestep", "noise_scale"):
            value = getattr(self, name)
            for v in value if isinstance(value, (list, tuple)) else (value,):
                if v is None and name == "noise_scale":
                    continue
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                    raise ValueError(f"decode_{name} must be a number from 0 to 1, got {v!r}")

    @classmethod
    def of_pass(cls, config) -> "DecodeSettings":
        return cls(config.decode_timestep, config.decode_noise_scale, config.tone_map_compression_ratio)


@dataclass(frozen=True)
class DecodeTiling:
    """`mode` "on": decode in `tiles`; "off": untiled; "auto": the largest tiles that fit in `free_bytes` (untiled
    when that fits or when free memory is unknown), with the overlaps of `tiles` when given, and retrying in
    `tiles` after running out of memory untiled."""

    mode: str = "auto"
    tiles: TilingConfig | None = None
    free_bytes: int | None = None

    def __post_init__(self):
        if self.mode not in TILING_MODES:
            raise ValueError(f"tiling must be one of {list(TILING_MODES)}, got {self.mode!r}")
        if self.mode == "on" and self.tiles is None:
            raise ValueError("tiling 'on' needs the tile sizes")


@dataclass(frozen=True)
class VideoTarget:
    """The requested video size and the padded size it was generated at (pixels)."""

    height: int
    width: int
    num_frames: int
    padded_height: int
    padded_width: int

    @classmethod
    def of_request(cls, height: int, width: int, num_frames: int) -> "VideoTarget":
        hp, wp, _ = padded_size(height, width, num_frames)
        return cls(height, width, num_frames, hp, wp)

    def scaled(self, factor: int) -> "VideoTarget":
        """After a x`factor` spatial upsampling."""
        return VideoTarget(self.height * factor, self.width * factor, self.num_frames, self.padded_height * factor,
                           self.padded_width * factor)


def tone_map(latents: Tensor, compression: float) -> Tensor:
    """Soft compression of large latent values: z * (1 - 0.8 s sigmoid(4 s (|z| - 1))), s = 0.75 * compression."""
    if not 0.0 <= compression <= 1.0:
        raise ValueError(f"tone_map_compression_ratio must be in [0, 1], got {compression}")
    s = compression * 0.75
    return latents * (1.0 - 0.8 * s * torch.sigmoid(4.0 * s * (torch.abs(latents) - 1.0)))


def decode(vae, latents: Tensor, settings: DecodeSettings, generator: torch.Generator,
           tiling: TilingConfig | None = None) -> Tensor:
    """Normalised latents -> video in [-1, 1]. A timestep-conditioned VAE first gets the latents mixed with
    seeded noise and decodes at the settings' timestep; tone mapping applies in any case."""
    latents, timestep = _decoder_input(vae, latents, settings, generator)
    with torch.no_grad():
        video = vae.decode(latents, timestep=timestep, generator=generator, tiling=tiling)
    return video.to(torch.float32)


def _decoder_input(vae, latents: Tensor, settings: DecodeSettings, generator: torch.Generator):
    """(latents as the decoder takes them, its timestep or None)."""
    device, dtype = module_device_dtype(vae)
    latents = latents.to(device=device, dtype=torch.float32)
    b = latents.shape[0]
    timestep = None
    if getattr(vae, "timestep_conditioning", False):
        ts = _per_sample(settings.timestep, b, "decode_timestep")
        scales = ts if settings.noise_scale is None else _per_sample(settings.noise_scale, b, "decode_noise_scale")
        scale = torch.tensor(scales, device=device)[:, None, None, None, None]
        noise = randn(latents.shape, generator, device)
        latents = latents * (1 - scale) + noise * scale
        timestep = torch.tensor(ts, device=device)
    return tone_map(latents, float(settings.tone_map_compression)).to(dtype), timestep


# many parameters: decode_video's, plus the temporal tiles
def decode_video_pieces(vae, latents: Tensor, settings: DecodeSettings, seed: int, target: VideoTarget,
                        tiling: DecodeTiling = DecodeTiling(), temporal: TilingConfig = TEMPORAL_PIECES
                        ) -> Iterator[Tensor]:
    """decode_video in consecutive pieces of frames, for videos too long to hold decoded: the latents are decoded
    in overlapping temporal tiles (`temporal`'s, blended as the tiled decode blends them; each tile tiled in space
    as `tiling` decides), and a stretch of frames is handed over as soon as no later tile touches it."""
    generator = derived_generator(seed, DECODE)
    z, timestep = _decoder_input(vae, latents, settings, generator)
    (tile, overlap), _, _ = temporal.latent_layout(FRAMES_PER_LATENT, PIXELS_PER_LATENT)
    latent_spans = spans(z.shape[2], tile, overlap)
    pixel_spans = [to_pixels(span, FRAMES_PER_LATENT, temporal=True) for span in latent_spans]
    weights = blend_weights(pixel_spans, pixel_spans[-1][1], from_zero=True)
    shared = None  # the weighted frames the previous tile shares with this one
    for i, ((a, b), (first, last)) in enumerate(zip(latent_spans, pixel_spans, strict=True)):
        part = z[:, :, a:b]
        space = _tiles(vae, part.shape, tiling)
        with torch.no_grad():
            piece = vae.decode(part, timestep=timestep, generator=generator,
                               tiling=space and replace(space, temporal_tile=None)).float()
        piece.mul_(weights[i].to(piece).view(1, 1, -1, 1, 1))
        if shared is not None:
            piece[:, :, :shared.shape[2]] += shared
        done = pixel_spans[i + 1][0] if i + 1 < len(pixel_spans) else last
        shared = piece[:, :, done - first:].clone()  # only what the next tile shares, not the whole tile
        keep = min(done, target.num_frames) - first
        if keep > 0:
            yield _fit_space((piece[:, :, :keep] * 0.5 + 0.5).clamp(0, 1), target)
        del piece


def decode_video(vae, latents: Tensor, settings: DecodeSettings, seed: int, tiling: DecodeTiling = DecodeTiling(),
                 target: VideoTarget | None = None) -> Tensor:
    """Normalised latents -> video (B, 3, F, H, W) in [0, 1], decoded with the seed's decode noise and cut to
    `target` when given. A ValueError names the memory needed when no tiling fits."""
    tiles = _tiles(vae, latents.shape, tiling)
    try:
        video = decode(vae, latents, settings, derived_generator(seed, DECODE), tiles)
    except Exception as e:  # noqa: BLE001 - out of memory only; anything else is raised again at once
        if not is_out_of_memory(e) or tiling.mode != "auto" or tiles is not None or tiling.tiles is None:
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        video = decode(vae, latents, settings, derived_generator(seed, DECODE), tiling.tiles)
    video = (video * 0.5 + 0.5).clamp(0, 1)
    return video if target is None else fit_to_target(video, target)


def fit_to_target(video: Tensor, target: VideoTarget) -> Tensor:
    """Resize to the padded size (a multi-scale run decodes at another one), then cut the centre the request
    asked for, and its first frames."""
    return _fit_space(video[:, :, :target.num_frames], target)


def _fit_space(video: Tensor, target: VideoTarget) -> Tensor:
    video = resize_media(video, target.padded_height, target.padded_width)
    top = (target.padded_height - target.height) // 2
    left = (target.padded_width - target.width) // 2
    return video[:, :, :, top: top + target.height, left: left + target.width].contiguous()


def _tiles(vae, latent_shape, tiling: DecodeTiling) -> TilingConfig | None:
    if tiling.mode == "on":
        return tiling.tiles
    if tiling.mode == "off":
        return None
    overlaps = {} if tiling.tiles is None else {"spatial_overlap": tiling.tiles.spatial_overlap,
                                                "temporal_overlap": tiling.tiles.temporal_overlap}
    return decode_tiling_for(vae, latent_shape, tiling.free_bytes, **overlaps)


def _per_sample(v, batch: int, name: str) -> list[float]:
    if isinstance(v, (list, tuple)):
        if len(v) != batch:
            raise ValueError(f"{name} has {len(v)} values for a batch of {batch}")
        return [float(x) for x in v]
    return [float(v)] * batch
