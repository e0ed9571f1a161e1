"""Positions of video latent tokens, in the units the transformer's RoPE was trained on."""
import torch

from ...geometry import VAE_SCALE_FACTORS


def video_token_coords(
    batch: int,
    frames: int,
    height: int,
    width: int,
    frame_rate: float,
    causal_fix: bool,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(batch, 3, frames*height*width) float32 [t seconds, y pixels, x pixels] of each latent token,
    tokens ordered (f, h, w) as the patchified latents are.

    Without `causal_fix` latent frame f sits at pixel frame 8f. With it, at its first pixel frame: the
    causal VAE builds latent frame 0 from pixel frame 0 alone and frame f>0 from pixel frames 8f-7..8f.
    The checkpoint's `causal_temporal_positioning` says which convention it was trained with.
    """
    axes = [torch.arange(n, device=device) * s
            for n, s in zip((frames, height, width), VAE_SCALE_FACTORS, strict=True)]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij")).flatten(1)
    if causal_fix:
        grid[0] = (grid[0] + 1 - VAE_SCALE_FACTORS[0]).clamp(min=0)
    coords = grid.to(torch.float32)
    # Multiplying by the reciprocal (not dividing) keeps bit-equality with the official pipeline.
    coords[0] = coords[0] * (1.0 / frame_rate)
    return coords.unsqueeze(0).repeat(batch, 1, 1)
