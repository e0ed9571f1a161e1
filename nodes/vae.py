"""VAE nodes: LTX-Video latents -> IMAGE frames (with the decoder's timestep and noise, automatic or explicit
tiling), and IMAGE frames -> latents."""
from __future__ import annotations

import logging

import torch

from ..ltx_core.memory.estimate import decode_tiling_for, vae_decode_bytes, vae_weight_bytes
from ..ltx_core.model.video_vae import TilingConfig
from ..ltx_core.pipelines.base import decode as decode_latents
from ..ltx_core.pipelines.base import module_device_dtype, to_unit_range
from ..ltx_core.conditioning.items import resize_media
from ..ltx_core.sampling.noise import DECODE, derived_generator
from . import comfy_bridge as bridge
from .common import (
    CATEGORY,
    MAX_SEED,
    SPATIAL_SCALE,
    TEMPORAL_SCALE,
    VAE,
    VAEHandle,
    check_image,
    check_latent,
    latent_info,
    make_latent,
    node_error,
    video_to_image,
)

logger = logging.getLogger(__name__)

TILING_CHOICES = ("auto", "off", "on")


class VAEDecode:
    DESCRIPTION = ("Decodes LTX-Video latents to IMAGE frames (for Create Video / Save Video), with the denoising "
                   "decoder's timestep and noise as the official pipeline uses them. Large videos are decoded in "
                   "overlapping tiles.")
    CATEGORY = f"{CATEGORY}/vae"
    FUNCTION = "decode"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("The video frames (frames, height, width, 3) in [0, 1]; batches follow one another.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae": (VAE, {"tooltip": "The checkpoint's VAE (from LTX-Video Checkpoint Loader)."}),
            "samples": ("LATENT", {"tooltip": "LTX-Video latents (from LTX-Video Sampler)."}),
            "decode_timestep": ("FLOAT", {"default": 0.05, "min": 0.0, "max": 1.0, "step": 0.001,
                                          "tooltip": "Timestep of the denoising decoder (0.9.1 and later "
                                                     "checkpoints); the official recipes use 0.05."}),
            "decode_noise_scale": ("FLOAT", {"default": 0.025, "min": 0.0, "max": 1.0, "step": 0.001,
                                             "tooltip": "Noise mixed into the latents before decoding (0.9.1 and "
                                                        "later); the official recipes use 0.025."}),
            "tone_map_compression": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                               "tooltip": "Soft compression of extreme latent values before "
                                                          "decoding; the 13B 0.9.8 distilled recipe uses 0.6, the "
                                                          "others 0."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": MAX_SEED, "control_after_generate": True,
                             "tooltip": "Seed of the decode noise; the sampler's seed reproduces a full official "
                                        "run exactly."}),
            "tiling": (list(TILING_CHOICES), {"default": "auto",
                                              "tooltip": "auto: tile only when the video does not fit in free "
                                                         "memory (and retry tiled after running out); on: always "
                                                         "use the tile sizes below; off: never."}),
            "spatial_tile": ("INT", {"default": 512, "min": 64, "max": 4096, "step": SPATIAL_SCALE,
                                     "tooltip": "Tile width/height in pixels (multiple of 32)."}),
            "spatial_overlap": ("INT", {"default": 64, "min": 0, "max": 2048, "step": SPATIAL_SCALE,
                                        "tooltip": "Pixels shared by neighbouring tiles (multiple of 32), "
                                                   "blended to hide seams."}),
            "temporal_tile": ("INT", {"default": 64, "min": 8, "max": 4096, "step": TEMPORAL_SCALE,
                                      "tooltip": "Frames per tile (multiple of 8)."}),
            "temporal_overlap": ("INT", {"default": 24, "min": 0, "max": 2048, "step": TEMPORAL_SCALE,
                                         "tooltip": "Frames shared by neighbouring tiles (multiple of 8)."}),
        }}

    def decode(self, vae, samples, decode_timestep, decode_noise_scale, tone_map_compression, seed, tiling,
               spatial_tile, spatial_overlap, temporal_tile, temporal_overlap):
        node = "LTX-Video VAE Decode"
        if not isinstance(vae, VAEHandle):
            raise ValueError(f"{node}: vae must come from LTX-Video Checkpoint Loader")
        z = check_latent(samples, f"{node}: samples")
        if tiling not in TILING_CHOICES:
            raise ValueError(f"{node}: tiling must be one of {list(TILING_CHOICES)}, got {tiling!r}")
        tiles = TilingConfig(spatial_tile, spatial_overlap, temporal_tile, temporal_overlap)
        try:
            tiles.latent_layout(TEMPORAL_SCALE, SPATIAL_SCALE)
        except ValueError as e:
            if tiling != "off":
                raise node_error(node, e) from None
        module = vae.module
        _, dtype = module_device_dtype(module)
        need = vae_decode_bytes(module, z.shape, dtype) - vae_weight_bytes(module, dtype)
        device = bridge.load_models([vae.managed], 0 if tiling == "on" else min(need, 1 << 34))
        use = tiles if tiling == "on" else None
        if tiling == "auto":
            free = bridge.free_memory_bytes(device)
            try:
                use = decode_tiling_for(module, z.shape, free, spatial_overlap, temporal_overlap)
            except ValueError as e:
                raise node_error(node, e) from None
            if use is not None:
                logger.info("LTX-Video (stack): decoding in tiles of %s px x %s frames (%.1f GB free)",
                            use.spatial_tile, use.temporal_tile or "all", free / 2**30)
        bridge.check_interrupt()
        args = (z, decode_timestep, decode_noise_scale, tone_map_compression)
        try:
            video = decode_latents(module, *args, derived_generator(int(seed), DECODE), use)
        except ValueError as e:
            raise node_error(node, e) from None
        except Exception as e:
            if tiling != "auto" or use is not None or not bridge.is_out_of_memory(e):
                raise
            logger.warning("LTX-Video (stack): out of memory while decoding; retrying in tiles")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            video = decode_latents(module, *args, derived_generator(int(seed), DECODE), tiles)
        video = to_unit_range(video)

        target = latent_info(samples).get("target")
        if target:
            video = resize_media(video, target["padded_height"], target["padded_width"])
            top = (target["padded_height"] - target["height"]) // 2
            left = (target["padded_width"] - target["width"]) // 2
            video = video[:, :, :target["num_frames"], top: top + target["height"], left: left + target["width"]]
        return (video_to_image(video),)


class VAEEncode:
    DESCRIPTION = ("Encodes IMAGE frames to LTX-Video latents (e.g. a video to refine with the sampler). Needs 8k+1 "
                   "frames (1, 9, 17, ...) and a width and height that are multiples of 32.")
    CATEGORY = f"{CATEGORY}/vae"
    FUNCTION = "encode"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("Normalised LTX-Video latents (1 x 128 x frames/8+1 x height/32 x width/32).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae": (VAE, {"tooltip": "The checkpoint's VAE (from LTX-Video Checkpoint Loader)."}),
            "images": ("IMAGE", {"tooltip": "Frames of one video: 8k+1 of them, width and height multiples of 32 "
                                            "(resize/crop first, e.g. with Upscale Image)."}),
        }}

    def encode(self, vae, images):
        node = "LTX-Video VAE Encode"
        if not isinstance(vae, VAEHandle):
            raise ValueError(f"{node}: vae must come from LTX-Video Checkpoint Loader")
        frames = check_image(images, f"{node}: images")
        f, h, w, _ = frames.shape
        problems = []
        if f % TEMPORAL_SCALE != 1:
            lo = (f - 1) // TEMPORAL_SCALE * TEMPORAL_SCALE + 1
            problems.append(f"{f} frames is not 8k+1: use {lo}" + (f" or {lo + TEMPORAL_SCALE}" if lo != f else "")
                            + " frames")
        for name, v in (("height", h), ("width", w)):
            if v % SPATIAL_SCALE or v < SPATIAL_SCALE:
                lo = max(v // SPATIAL_SCALE * SPATIAL_SCALE, SPATIAL_SCALE)
                problems.append(f"{name} {v} is not a multiple of 32: resize or crop to {lo}"
                                + (f" or {lo + SPATIAL_SCALE}" if lo < v else ""))
        if problems:
            raise ValueError(f"{node}: " + "; ".join(problems))
        module = vae.module
        _, dtype = module_device_dtype(module)
        device = bridge.load_models([vae.managed], int(70 * max(f, 7) * h * w * 4))
        video = frames.permute(3, 0, 1, 2).unsqueeze(0).to(device=device, dtype=dtype) * 2.0 - 1.0
        with torch.no_grad():
            z = module.encode(video)
        bridge.check_interrupt()
        return (make_latent(z),)


NODE_CLASS_MAPPINGS = {"LTXVStackVAEDecode": VAEDecode, "LTXVStackVAEEncode": VAEEncode}
NODE_DISPLAY_NAME_MAPPINGS = {"LTXVStackVAEDecode": "LTX-Video VAE Decode",
                              "LTXVStackVAEEncode": "LTX-Video VAE Encode"}
