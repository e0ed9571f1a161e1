"""VAE nodes: LTX-Video latents -> IMAGE frames (with the decoder's timestep and noise, automatic or explicit
tiling), and IMAGE frames -> latents."""
from __future__ import annotations

import torch

from ..ltx_core import (
    DECODE_NOISE_SCALE,
    DECODE_TIMESTEP,
    FRAMES_PER_LATENT,
    MAX_PASS_FRAMES,
    PIXELS_PER_LATENT,
    DecodeSettings,
    DecodeTiling,
    TEMPORAL_PIECES,
    TilingConfig,
    VideoTarget,
    decode_video,
    decode_video_pieces,
    decode_work_bytes,
    encode_media,
    encode_work_bytes,
    frame_count_problem,
    pixel_size,
    pixel_size_problem,
)
from . import comfy_bridge as bridge
from .common import (
    CATEGORY,
    MAX_SEED,
    VAE,
    VAEHandle,
    check_image,
    check_latent,
    latent_target,
    make_latent,
    node_error,
    video_to_image,
)

TILING_CHOICES = ("auto", "off", "on")


class VAEDecode:
    DESCRIPTION = ("Decodes LTX-Video latents to IMAGE frames (for Create Video / Save Video), with the denoising "
                   "decoder's timestep and noise as the official pipeline uses them. Large videos are decoded in "
                   "overlapping tiles.")
    CATEGORY = f"{CATEGORY}/vae"
    SEARCH_ALIASES = ["decode", "vae decode", "latent to video", "latents to images"]
    FUNCTION = "decode"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("The video frames (frames, height, width, 3) in [0, 1]; batches follow one another.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae": (VAE, {"tooltip": "The checkpoint's VAE (from LTX-Video Checkpoint Loader)."}),
            "samples": ("LATENT", {"tooltip": "LTX-Video latents (from LTX-Video Sampler)."}),
            "decode_timestep": ("FLOAT", {"display_name": "timestep", "default": DECODE_TIMESTEP, "min": 0.0, "max": 1.0, "step": 0.001,
                                          "tooltip": "Timestep of the denoising decoder (0.9.1 and later "
                                                     "checkpoints); the official recipes use 0.05."}),
            "decode_noise_scale": ("FLOAT", {"display_name": "noise scale", "default": DECODE_NOISE_SCALE, "min": 0.0, "max": 1.0, "step": 0.001,
                                             "tooltip": "Noise mixed into the latents before decoding (0.9.1 and "
                                                        "later); the official recipes use 0.025."}),
            "tone_map_compression": ("FLOAT", {"display_name": "tone mapping", "default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
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
            "spatial_tile": ("INT", {"default": 512, "min": 64, "max": 4096, "step": PIXELS_PER_LATENT,
                                     "tooltip": "Tile width/height in pixels (multiple of 32)."}),
            "spatial_overlap": ("INT", {"default": 64, "min": 0, "max": 2048, "step": PIXELS_PER_LATENT,
                                        "tooltip": "Pixels shared by neighbouring tiles (multiple of 32), "
                                                   "blended to hide seams."}),
            "temporal_tile": ("INT", {"default": 64, "min": 8, "max": 4096, "step": FRAMES_PER_LATENT,
                                      "tooltip": "Frames per tile (multiple of 8)."}),
            "temporal_overlap": ("INT", {"default": 24, "min": 0, "max": 2048, "step": FRAMES_PER_LATENT,
                                         "tooltip": "Frames shared by neighbouring tiles (multiple of 8)."}),
        }}

    # many parameters: ComfyUI passes each input of the node by name
    def decode(self, vae, samples, decode_timestep, decode_noise_scale, tone_map_compression, seed, tiling,
               spatial_tile, spatial_overlap, temporal_tile, temporal_overlap):
        node = "LTX-Video VAE Decode"
        if not isinstance(vae, VAEHandle):
            raise ValueError(f"{node}: vae must come from LTX-Video Checkpoint Loader")
        z = check_latent(samples, f"{node}: samples")
        tiles = TilingConfig(spatial_tile, spatial_overlap, temporal_tile, temporal_overlap)
        try:
            if tiling != "off":
                tiles.latent_layout(FRAMES_PER_LATENT, PIXELS_PER_LATENT)
            device = bridge.load_models([vae.managed], 0 if tiling == "on" else decode_work_bytes(vae.module, z.shape))
            plan = DecodeTiling(tiling, tiles, bridge.free_memory_bytes(device) if tiling == "auto" else None)
            bridge.check_interrupt()
            settings = DecodeSettings(decode_timestep, decode_noise_scale, tone_map_compression)
            video = _decoded(vae.module, z, settings, int(seed), plan, latent_target(samples))
        except ValueError as e:
            raise node_error(node, e) from None
        return (video_to_image(video),)


# many parameters: decode_video's
def _decoded(vae, z, settings, seed: int, plan: DecodeTiling, target):
    """decode_video; a video longer than one pass makes (a long video's, several GB decoded) is decoded in
    temporal pieces, each moved off the GPU as it comes, so the device never holds the whole decoded video."""
    if plan.mode == "off" or z.shape[2] <= (MAX_PASS_FRAMES - 1) // FRAMES_PER_LATENT + 1:
        return decode_video(vae, z, settings, seed, plan, target)
    if target is None:  # the whole decoded size
        frames, height, width = pixel_size(*z.shape[2:])
        target = VideoTarget.of_request(height, width, frames)
    pieces = decode_video_pieces(vae, z, settings, seed, target, plan, plan.tiles or TEMPORAL_PIECES)
    return torch.cat([p.to(bridge.intermediate_device()) for p in pieces], dim=2)


class VAEEncode:
    DESCRIPTION = ("Encodes IMAGE frames to LTX-Video latents (e.g. a video to refine with the sampler). Needs 8k+1 "
                   "frames (1, 9, 17, ...) and a width and height that are multiples of 32.")
    CATEGORY = f"{CATEGORY}/vae"
    SEARCH_ALIASES = ["encode", "vae encode", "video to latent", "images to latents"]
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
        problems = [p for p in (frame_count_problem(f), pixel_size_problem("height", h), pixel_size_problem("width", w))
                    if p]
        if problems:
            raise ValueError(f"{node}: " + "; ".join(problems))
        bridge.load_models([vae.managed], encode_work_bytes(f, h, w))
        z = encode_media(vae.module, frames.permute(3, 0, 1, 2).unsqueeze(0) * 2.0 - 1.0)
        bridge.check_interrupt()
        return (make_latent(z),)


NODE_CLASS_MAPPINGS = {"LTXVStackVAEDecode": VAEDecode, "LTXVStackVAEEncode": VAEEncode}
NODE_DISPLAY_NAME_MAPPINGS = {"LTXVStackVAEDecode": "LTX-Video VAE Decode",
                              "LTXVStackVAEEncode": "LTX-Video VAE Encode"}
