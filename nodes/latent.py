"""Latent upsample node: doubles LTX-Video latents in space or in time with a latent upsampler, with AdaIN and tone
mapping options (the multi-scale recipe's middle step, for hand-built multi-pass workflows)."""
from __future__ import annotations

from ..ltx_core import upsample_latents, upsample_work_bytes
from . import comfy_bridge as bridge
from .common import (
    CATEGORY,
    UPSCALER,
    VAE,
    UpscalerHandle,
    VAEHandle,
    check_latent,
    latent_info,
    latent_target,
    make_latent,
)


class LatentUpsample:
    DESCRIPTION = ("Upsamples LTX-Video latents with a latent upsampler: x2 width and height (spatial model) or "
                   "x2 frames (temporal model). Follow it with a sampler pass at low denoise to add detail.")
    CATEGORY = f"{CATEGORY}/latent"
    SEARCH_ALIASES = ["upscale", "upscale latent", "latent upscale", "upsample", "hires fix", "frame interpolation",
                      "temporal upscale", "2x"]
    FUNCTION = "upsample"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("The upsampled latents.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "samples": ("LATENT", {"tooltip": "LTX-Video latents (from LTX-Video Sampler or VAE Encode)."}),
            "upscale_model": (UPSCALER, {"tooltip": "From LTX-Video Latent Upscale Model Loader: a spatial "
                                                    "model doubles the size, a temporal one the frame count."}),
            "vae": (VAE, {"tooltip": "The checkpoint's VAE: its latent statistics map the latents into the "
                                     "upsampler's range and back."}),
            "adain_factor": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                       "tooltip": "Match each channel's mean and spread to the input latents "
                                                  "(AdaIN), as the multi-scale recipe does (1.0); 0 = off."}),
            "tone_map_compression": ("FLOAT", {"display_name": "tone mapping", "default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                               "tooltip": "Soft compression of extreme latent values (reduces "
                                                          "burnt highlights); 0 = off."}),
        }}

    def upsample(self, samples, upscale_model, vae, adain_factor, tone_map_compression):
        node = "LTX-Video Latent Upscale"
        z = check_latent(samples, f"{node}: samples")
        if not isinstance(upscale_model, UpscalerHandle):
            raise ValueError(f"{node}: upscale_model must come from LTX-Video Latent Upscale Model Loader")
        if not isinstance(vae, VAEHandle):
            raise ValueError(f"{node}: vae must come from LTX-Video Checkpoint Loader")
        if not 0.0 <= adain_factor <= 1.0 or not 0.0 <= tone_map_compression <= 1.0:
            raise ValueError(f"{node}: adain_factor and tone_map_compression must be between 0 and 1")
        up_model = upscale_model.module
        device = bridge.load_models([upscale_model.managed, vae.managed], upsample_work_bytes(up_model, z.shape))
        up = upsample_latents(vae.module, up_model, z.float().to(device), adain_factor, tone_map_compression)
        bridge.check_interrupt()

        info = latent_info(samples)
        info.pop("target", None)
        s, t = up_model.spatial_scale, up_model.temporal_scale
        target = latent_target(samples)
        if target and t == 1:
            info["target"] = vars(target.scaled(s))
        if t != 1 and "frame_rate" in info:
            info["frame_rate"] = info["frame_rate"] * t
        return (make_latent(up, info),)


NODE_CLASS_MAPPINGS = {"LTXVStackLatentUpsample": LatentUpsample}
NODE_DISPLAY_NAME_MAPPINGS = {"LTXVStackLatentUpsample": "LTX-Video Latent Upscale"}
