"""LTX-Video's causal video VAE (every released layout, 0.9.0 to 0.9.8), matching the official
`CausalVideoAutoencoder` numerically, with optional tiled encode/decode."""
from .config import BlockSpec, VideoVAEConfig
from .tiling import TilingConfig
from .vae import VideoVAE

__all__ = ["BlockSpec", "TilingConfig", "VideoVAE", "VideoVAEConfig"]
