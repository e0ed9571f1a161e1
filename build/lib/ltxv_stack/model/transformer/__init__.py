"""LTX-Video's 3D diffusion transformer, numerically matching the official `Transformer3DModel`."""
from .config import TransformerConfig
from .coords import video_token_coords
from .model import Transformer3D, inductor_unavailable
from .stg import SkipLayerStrategy

__all__ = ["Transformer3D", "TransformerConfig", "SkipLayerStrategy", "video_token_coords",
           "inductor_unavailable"]
