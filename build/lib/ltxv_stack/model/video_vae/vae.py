"""LTX-Video's causal video VAE: pixels <-> per-channel-normalised latents."""
import torch
from torch import nn

from .config import VideoVAEConfig
from .decoder import Decoder
from .encoder import Encoder
from .tiling import TilingConfig, check_size, spans, tiled_map, to_pixels


class PerChannelStatistics(nn.Module):
    """Latent statistics over the training set; buffer names are the checkpoint's ("std-of-means", ...)."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("std-of-means", torch.ones(channels))
        self.register_buffer("mean-of-means", torch.zeros(channels))

    def _stats(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        std, mean = getattr(self, "std-of-means"), getattr(self, "mean-of-means")
        return std.to(z.dtype).view(1, -1, 1, 1, 1), mean.to(z.dtype).view(1, -1, 1, 1, 1)

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        std, mean = self._stats(z)
        return (z - mean) / std

    def un_normalize(self, z: torch.Tensor) -> torch.Tensor:
        std, mean = self._stats(z)
        return z * std + mean


class VideoVAE(nn.Module):
    """Inference only (encode/decode run without autograd).

    encode: (B, 3, 1 + 8k, H, W) in [-1, 1], H and W multiples of 32 -> normalised latent means
    (B, latent_channels, 1 + k, H/32, W/32). decode inverts it; see `decode` for the timestep and noise.
    """

    def __init__(self, config: VideoVAEConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.per_channel_statistics = PerChannelStatistics(config.latent_channels)

    @property
    def latent_channels(self) -> int:
        return self.config.latent_channels

    @property
    def timestep_conditioning(self) -> bool:
        return self.config.timestep_conditioning

    @property
    def temporal_compression(self) -> int:
        return self.config.compression()[0]

    @property
    def spatial_compression(self) -> int:
        return self.config.compression()[1]

    def _tile_layout(self, latent_grid: tuple[int, int, int], tiling: TilingConfig | None):
        """Latent and pixel spans per axis (time, height, width)."""
        no_tiling = [(None, 0)] * 3
        layout = tiling.latent_layout(self.temporal_compression, self.spatial_compression) if tiling else no_tiling
        latent = tuple(spans(n, tile, overlap) for n, (tile, overlap) in zip(latent_grid, layout, strict=True))
        factors = (self.temporal_compression, self.spatial_compression, self.spatial_compression)
        pixel = tuple(
            [to_pixels(s, factor, temporal=axis == 0) for s in axis_spans]
            for axis, (axis_spans, factor) in enumerate(zip(latent, factors, strict=True))
        )
        return latent, pixel

    @torch.no_grad()
    def encode(self, video: torch.Tensor, tiling: TilingConfig | None = None) -> torch.Tensor:
        """Means of the latent distribution, normalised per channel: (z - mean_of_means) / std_of_means."""
        if video.ndim != 5:
            raise ValueError(f"video must be (B, C, F, H, W), got shape {tuple(video.shape)}")
        _, channels, frames, height, width = video.shape
        if channels != self.config.in_channels:
            raise ValueError(f"video channels={channels} is invalid: this VAE takes {self.config.in_channels}")
        t, s = self.temporal_compression, self.spatial_compression
        check_size("video frames", frames, t, offset=1, minimum=1)
        check_size("video height", height, s, minimum=s)
        check_size("video width", width, s, minimum=s)
        latent, pixel = self._tile_layout((1 + (frames - 1) // t, height // s, width // s), tiling)

        def encode_tile(tile: torch.Tensor) -> torch.Tensor:
            return self.per_channel_statistics.normalize(self.encoder(tile))

        return tiled_map(encode_tile, video, pixel, latent, tuple(span[-1][1] for span in latent))

    @torch.no_grad()
    def decode(
        self,
        latent: torch.Tensor,
        timestep: float | torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        tiling: TilingConfig | None = None,
    ) -> torch.Tensor:
        """Normalised latents -> video in about [-1, 1]. Adds no noise to the latents themselves.

        timestep: required by timestep-conditioned decoders (0.9.1 and later; the official pipeline uses
        0.05) and refused by the others; a float or one value per batch item.
        generator: source of the noise that 0.9.1's `inject_noise` blocks add inside the decoder (seeded 0
        when omitted, so decoding is reproducible); the global RNG is never used.
        """
        if latent.ndim != 5 or latent.shape[1] != self.latent_channels:
            raise ValueError(
                f"latent must be (B, {self.latent_channels}, F, H, W), got shape {tuple(latent.shape)}"
            )
        batch, _, frames, height, width = latent.shape
        if self.timestep_conditioning:
            if timestep is None:
                raise ValueError(
                    "this VAE's decoder is timestep-conditioned: pass the decode timestep (the official "
                    "pipeline uses 0.05)"
                )
            timestep = torch.as_tensor(timestep, dtype=torch.float32, device=latent.device).flatten()
            if timestep.numel() not in (1, batch):
                raise ValueError(
                    f"timestep must be a float or hold one value per batch item ({batch}), got {timestep.numel()}"
                )
            timestep = timestep.expand(batch)
        elif timestep is not None:
            raise ValueError("this VAE's decoder is not timestep-conditioned (0.9.0 layout): pass timestep=None")
        if self.decoder.injects_noise and generator is None:
            generator = torch.Generator().manual_seed(0)
        latent_spans, pixel = self._tile_layout((frames, height, width), tiling)

        def decode_tile(tile: torch.Tensor) -> torch.Tensor:
            return self.decoder(self.per_channel_statistics.un_normalize(tile), timestep, generator)

        return tiled_map(decode_tile, latent, latent_spans, pixel, tuple(span[-1][1] for span in pixel))
