"""The application layer: what the command line and the nodes do with the model stack, written once."""
from .keyframes import Keyframe, prepare_keyframes
from .loading import LoadOptions, OptionError, companion_dtype, load_video_model
from .output import save_latents, save_video
from .planning import check_generation_memory, step_shape
from .text import encode_prompts

__all__ = ["Keyframe", "LoadOptions", "OptionError", "check_generation_memory", "companion_dtype", "encode_prompts",
           "load_video_model", "prepare_keyframes", "save_latents", "save_video", "step_shape"]
