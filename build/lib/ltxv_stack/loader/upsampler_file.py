"""Load an official LTX-Video latent-upsampler file (`ltxv-spatial-upscaler-*.safetensors`,
`ltxv-temporal-upscaler-*.safetensors`).

The file's metadata entry "config" holds the flat upsampler config. Files without it (re-saved by other
tools) are still understood: every config field can be read off the tensor names and shapes.
"""
import re

import torch

from ..model.upsampler import LatentUpsampler, UpsamplerConfig
from .errors import ModelFileError
from .file_kind import describe_foreign
from .precision import FP8, parse_dtype
from .safetensors_file import SafetensorsFile
from .strict_load import load_strict

_FIELDS = {"in_channels": int, "mid_channels": int, "num_blocks_per_stage": int, "dims": int,
           "spatial_upsample": bool, "temporal_upsample": bool}
_CHECKPOINT_PREFIXES = ("model.diffusion_model.", "vae.")


def load_upsampler(path, device="cpu", dtype=torch.float32) -> LatentUpsampler:
    dtype = parse_dtype(dtype)
    if dtype in FP8:
        raise ValueError("the latent upsampler is convolutional and small; load it in float32, bfloat16 or float16")
    with SafetensorsFile(path) as f:
        config = _config(f)
        with torch.device("meta"):
            model = LatentUpsampler(config)
        return load_strict(model, {k: (f, k) for k in f.keys()}, f.path, "latent upsampler",
                           lambda _key: dtype, device)


def _config(f: SafetensorsFile) -> UpsamplerConfig:
    keys = set(f.keys())
    if any(k.startswith(_CHECKPOINT_PREFIXES) for k in keys):
        raise ModelFileError(f.path, "this is an LTX-Video checkpoint (transformer/VAE), not a latent upsampler; "
                                     "load it with the checkpoint loader")
    if "initial_conv.weight" not in keys or "upsampler.0.weight" not in keys:
        raise ModelFileError(f.path, "not a latent upsampler (no 'initial_conv.weight' / 'upsampler.0.weight'): "
                             + describe_foreign(keys))
    fields = _config_from_shapes(f, keys)
    meta = f.json_metadata("config")
    if meta is not None:
        if not isinstance(meta, dict):
            raise ModelFileError(f.path, "metadata entry 'config' is not a JSON object")
        for name, kind in _FIELDS.items():
            if name in meta:
                value = meta[name]
                # bool is an int subclass; a flag given as 0/1 or a count given as true is a broken config.
                if type(value) is not kind:
                    raise ModelFileError(f.path, f"metadata config field {name!r} = {value!r} is not {kind.__name__}")
                fields[name] = value
    try:
        return UpsamplerConfig(**fields)
    except ValueError as e:
        raise ModelFileError(f.path, f"latent upsampler config: {e}") from None


def _config_from_shapes(f: SafetensorsFile, keys: set[str]) -> dict:
    initial = f.shape("initial_conv.weight")  # (mid, in, 3, 3[, 3])
    up = f.shape("upsampler.0.weight")        # (k·mid, mid, 3, 3[, 3])
    if len(initial) not in (4, 5) or len(up) not in (4, 5):
        raise ModelFileError(f.path, f"'initial_conv.weight' {list(initial)} / 'upsampler.0.weight' {list(up)} are "
                                     "not convolution kernels")
    mid = initial[0]
    if up[0] % mid:
        raise ModelFileError(f.path, f"'upsampler.0.weight' has {up[0]} output channels, not a multiple of "
                                     f"mid_channels {mid}")
    factor = up[0] // mid
    # A 2-D upsampler conv is the per-frame spatial x2 (x4 channels); a 3-D one is temporal (x2) or both (x8).
    kinds = {(4, 4): (True, False), (5, 2): (False, True), (5, 8): (True, True)}
    if (len(up), factor) not in kinds:
        raise ModelFileError(f.path, f"'upsampler.0.weight' {list(up)} matches no upsampler kind (expected a 2-D conv "
                                     "with 4x mid_channels outputs, or a 3-D one with 2x or 8x)")
    spatial, temporal = kinds[(len(up), factor)]
    blocks = {int(m.group(1)) for k in keys if (m := re.match(r"res_blocks\.(\d+)\.", k))}
    return {"in_channels": initial[1], "mid_channels": mid, "num_blocks_per_stage": len(blocks),
            "dims": len(initial) - 2, "spatial_upsample": spatial, "temporal_upsample": temporal}
