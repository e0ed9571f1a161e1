"""The shared vocabularies (what a setting may be) and the official defaults, named once for the CLI, the nodes
and the pipelines."""
from __future__ import annotations

# The official inference.py's defaults.
DEFAULT_NEGATIVE_PROMPT = "worst quality, inconsistent motion, blurry, jittery, distorted"
DEFAULT_SEED = 171198
# Seeds are torch.Generator seeds (64 bits); others are refused, so a seed names one video everywhere.
MAX_SEED = 2**64 - 1
DEFAULT_HEIGHT, DEFAULT_WIDTH, DEFAULT_NUM_FRAMES, DEFAULT_FRAME_RATE = 704, 1216, 121, 30
DEFAULT_PIPELINE_CONFIG = "configs/ltxv-13b-0.9.7-dev.yaml"
IMAGE_COND_NOISE_SCALE = 0.15
# H.264 quality conditioning frames are compressed to before encoding (the model was trained on such frames).
CONDITIONING_CRF = 29
# The official recipes' denoising-decoder settings.
DECODE_TIMESTEP = 0.05
DECODE_NOISE_SCALE = 0.025

# Weight storage a caller may ask for (fp8: storage only, computed in bfloat16).
WEIGHT_DTYPES = ("float32", "bfloat16", "float16", "float8_e4m3fn", "float8_e5m2")
# Where the transformer runs: eager PyTorch, or converted to OpenVINO (`ltx_core.openvino`, an optional extra) with
# its weights fp32, or int8/int4 compressed by NNCF.
BACKENDS = ("torch", "openvino")
OV_WEIGHTS = ("fp32", "int8", "int4")
# Timestep schedules: the checkpoint's own (its metadata, with the resolution shift) or a plain grid.
SCHEDULES = ("from_checkpoint", "linear-quadratic", "uniform")
PIPELINE_TYPES = ("base", "multi-scale")
PRECISIONS = ("bfloat16", "float16", "float32", "float8_e4m3fn", "float8_e5m2", "mixed_precision")
# How STG perturbs a block: official names, then the short aliases the official configs also accept.
STG_MODE_NAMES = ("attention_values", "attention_skip", "residual", "transformer_block")
STG_MODE_ALIASES = {"stg_av": "attention_values", "stg_as": "attention_skip", "stg_r": "residual",
                    "stg_t": "transformer_block"}

# Where the official files come from, for messages that say what to download.
HF_REPO = "Lightricks/LTX-Video"
HF_URL = f"https://huggingface.co/{HF_REPO}"
T5_SOURCES = ("ComfyUI's t5xxl_fp16.safetensors or t5xxl_fp8_e4m3fn.safetensors (Hugging Face repo "
              "comfyanonymous/flux_text_encoders), a Hugging Face T5 folder, or the text_encoder/ + tokenizer/ "
              "folders of Hugging Face repo PixArt-alpha/PixArt-XL-2-1024-MS, which the official configs name")

# Releases a file without a config can be declared as (`loader.releases` holds what each implies); "auto" reads the
# release from the file name.
RELEASE_CHOICES = ("auto", "0.9", "0.9.1", "0.9.5", "0.9.6", "0.9.7", "0.9.8")

# The longest clip the official recipes make in one pass; longer videos are made in temporal chunks.
MAX_PASS_FRAMES = 257
# Temporal chunks, the peer's defaults (ComfyUI-LTXVideo's looping sampler): a tile of 10 latent frames (80 frames
# there; 73 as a clip of 8k+1), an overlap of 3 latent frames (24 frames) conditioned at half strength.
DEFAULT_TILE_FRAMES = 73
DEFAULT_OVERLAP_FRAMES = 24
DEFAULT_OVERLAP_STRENGTH = 0.5
