"""LTX-Video model stack: official checkpoints in, the official numbers out. No ComfyUI imports here."""
from .loader.checkpoint import Checkpoint, load_checkpoint
from .loader.errors import ModelFileError
from .loader.text_encoder_files import load_text_encoder
from .loader.upsampler_file import load_upsampler

__all__ = ["Checkpoint", "ModelFileError", "load_checkpoint", "load_text_encoder", "load_upsampler"]
