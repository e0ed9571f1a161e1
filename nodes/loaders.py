"""Loader nodes: checkpoint (transformer + VAE), T5 text encoder, latent upsampler. Files come only from ComfyUI's
model folders, by name."""
from __future__ import annotations

import logging

from ..ltx_core import (
    BACKENDS,
    OFFICIAL_CHECKPOINTS,
    OFFICIAL_TEXT_ENCODERS,
    OFFICIAL_UPSAMPLERS,
    OV_WEIGHTS,
    LoadOptions,
    load_text_encoder,
    load_upsampler,
    load_video_model,
)
from . import comfy_bridge as bridge
from .common import (
    CATEGORY,
    MODEL,
    TEXT_ENCODER,
    UPSCALER,
    VAE,
    ModelHandle,
    TextEncoderHandle,
    UpscalerHandle,
    VAEHandle,
    dtype_choice,
    file_choices,
    node_error,
)

logger = logging.getLogger(__name__)

HF_LTXV = "Hugging Face: Lightricks/LTX-Video"
HF_T5 = "Hugging Face: comfyanonymous/flux_text_encoders"

# The official release names (what the workflows refer to).
__all__ = ["OFFICIAL_CHECKPOINTS", "OFFICIAL_TEXT_ENCODERS", "OFFICIAL_UPSAMPLERS"]
CHECKPOINT_DTYPES = ("default", "bfloat16", "float32", "float16", "float8_e4m3fn", "float8_e5m2")
TEXT_ENCODER_DTYPES = ("default", "bfloat16", "float32", "float16", "float8_e4m3fn")
UPSAMPLER_DTYPES = ("default", "bfloat16", "float32", "float16")
OV_DEVICES = ("CPU", "GPU", "AUTO")



def _is_t5_folder(p) -> bool:
    return (p / "config.json").is_file() or (p / "text_encoder" / "config.json").is_file()


def checkpoint_names():
    return list(bridge.list_model_files(bridge.CHECKPOINTS))


def text_encoder_names():
    folders = bridge.list_model_dirs(bridge.TEXT_ENCODERS, _is_t5_folder)
    # shards inside a T5 folder are not models of their own
    files = [f for f in bridge.list_model_files(bridge.TEXT_ENCODERS) if not any(f.startswith(d) for d in folders)]
    return files + folders


def upsampler_names():
    return list(bridge.list_model_files(bridge.LATENT_UPSCALE_MODELS))



class CheckpointLoader:
    DESCRIPTION = ("Loads an official LTX-Video checkpoint (transformer and VAE in one .safetensors file, e.g. "
                   "ltxv-2b-0.9.6-dev-04-25.safetensors or ltxv-13b-0.9.8-distilled.safetensors) from "
                   "models/checkpoints. The architecture is read from the file.")
    CATEGORY = f"{CATEGORY}/loaders"
    SEARCH_ALIASES = ["ltxv", "ltx video", "load checkpoint", "checkpoint loader", "text to video", "image to video",
                      "fp8"]
    FUNCTION = "load"
    RETURN_TYPES = (MODEL, VAE)
    RETURN_NAMES = ("model", "vae")
    OUTPUT_TOOLTIPS = ("The LTX-Video transformer (with its VAE), for the LTX-Video Sampler.",
                       "The LTX-Video VAE, for VAE Decode/Encode and Latent Upsample.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "ckpt_name": (file_choices(checkpoint_names()), {
                "display_name": "file",
                "tooltip": f"An official LTX-Video checkpoint in models/checkpoints ({HF_LTXV})."}),
            "weight_dtype": (list(CHECKPOINT_DTYPES), {
                "default": "default",
                "tooltip": "Transformer weight precision. default: bfloat16 on GPUs that support it, float32 on "
                           "the CPU. float8_*: fp8 storage (half the memory of bf16), computed in bfloat16."}),
        }, "optional": {
            "fp8_matmul": ("BOOLEAN", {
                "default": False,
                "tooltip": "With weight_dtype float8_e4m3fn: multiply in fp8 (fast on RTX 40xx / Ada and H100 / "
                           "Hopper GPUs) instead of upcasting each layer to bfloat16. Results differ by about as much "
                           "as fp8 storage itself."}),
            "compile": ("BOOLEAN", {
                "default": False,
                "tooltip": "torch.compile the transformer blocks: faster steps on a GPU; the first run pays a "
                           "one-off compilation (about a minute). Needs a working Triton (GPU) or C++ compiler (CPU)."}),
            "backend": (list(BACKENDS), {
                "default": "torch",
                "tooltip": "openvino: run the transformer with OpenVINO, for ComfyUI on a CPU or an Intel GPU (pip "
                           "install -r requirements-openvino.txt). The first run converts it (minutes) and caches the "
                           "result on disk; LoRAs need torch."}),
            "ov_device": (list(OV_DEVICES), {
                "default": "CPU",
                "tooltip": "With backend openvino: the OpenVINO device (GPU: an Intel GPU; AUTO: OpenVINO picks)."}),
            "ov_weights": (list(OV_WEIGHTS), {
                "default": "int8",
                "tooltip": "With backend openvino: fp32 (as torch float32), int8 (a quarter of the memory, results "
                           "within ~2% of fp32) or int4 (an eighth, ~15%)."}),
        }}

    def load(self, ckpt_name, weight_dtype, fp8_matmul=False, compile=False, backend="torch", ov_device="CPU",
             ov_weights="int8"):
        node = "LTX-Video Checkpoint Loader"
        path = bridge.resolve_model(bridge.CHECKPOINTS, ckpt_name, "checkpoint", f"Download it from {HF_LTXV}.")
        load_device, offload = bridge.devices("diffusion")
        options = LoadOptions(dtype=dtype_choice(weight_dtype, "diffusion"), device=offload, compute_device=load_device,
                              vae_dtype=bridge.default_dtype("vae") if weight_dtype == "default" else None,
                              fp8_matmul=bool(fp8_matmul), compile=bool(compile), backend=backend,
                              ov_device=ov_device, ov_weights=ov_weights)
        try:
            ck = load_video_model(path, options)
        except ValueError as e:  # OptionError, ModelFileError: one line naming the option or file
            raise node_error(node, e) from None
        for note in ck.notes:
            logger.info("LTX-Video (stack): %s: %s", ckpt_name, note)
        vae = VAEHandle(ckpt_name, bridge.ManagedModel(ck.vae, "vae", f"{ckpt_name} (VAE)"))
        model = ModelHandle(ckpt_name, bridge.ManagedModel(ck.transformer, "diffusion", ckpt_name), vae,
                            (ck.config or {}).get("scheduler"), ck.allowed_inference_steps)
        return (model, vae)


class TextEncoderLoader:
    DESCRIPTION = ("Loads the T5-XXL text encoder from models/text_encoders: a single file such as "
                   "t5xxl_fp16.safetensors (ComfyUI's own T5 tokenizer is used), or a Hugging Face / PixArt-style "
                   "T5 folder with its tokenizer.")
    CATEGORY = f"{CATEGORY}/loaders"
    SEARCH_ALIASES = ["t5", "t5xxl", "load clip", "clip loader", "text encoder"]
    FUNCTION = "load"
    RETURN_TYPES = (TEXT_ENCODER,)
    RETURN_NAMES = ("text_encoder",)
    OUTPUT_TOOLTIPS = ("The T5 text encoder, for LTX-Video Text Encode.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text_encoder_name": (file_choices(text_encoder_names()), {
                "display_name": "file",
                "tooltip": f"T5 v1.1 XXL in models/text_encoders: t5xxl_fp16.safetensors or an fp8 variant "
                           f"({HF_T5}), or a T5 folder (shown with a trailing /)."}),
            "dtype": (list(TEXT_ENCODER_DTYPES), {
                "default": "default",
                "tooltip": "Weight precision. default: bfloat16 on GPUs that support it, float32 on the CPU. "
                           "float8_e4m3fn keeps the block weights in fp8 (computed in bfloat16)."}),
        }}

    def load(self, text_encoder_name, dtype):
        node = "LTX-Video Text Encoder Loader"
        path = bridge.resolve_model(bridge.TEXT_ENCODERS, text_encoder_name, "text encoder",
                                    f"Download t5xxl_fp16.safetensors ({HF_T5}).")
        _, offload = bridge.devices("text_encoder")
        try:
            te = load_text_encoder(path, device=offload, dtype=dtype_choice(dtype, "text_encoder"),
                                   tokenizer_dirs=bridge.tokenizer_dirs())
        except ValueError as e:
            raise node_error(node, e) from None
        return (TextEncoderHandle(text_encoder_name, te, bridge.ManagedModel(te.model, "text_encoder",
                                                                             text_encoder_name)),)


class UpsamplerLoader:
    DESCRIPTION = ("Loads an LTX-Video latent upsampler (ltxv-spatial-upscaler-0.9.8.safetensors, ...) from "
                   "models/latent_upscale_models, for multi-scale recipes and LTX-Video Latent Upscale.")
    CATEGORY = f"{CATEGORY}/loaders"
    SEARCH_ALIASES = ["upscale", "upscaler", "upsampler", "spatial upscaler", "temporal upscaler",
                      "latent upscale model", "multi-scale"]
    FUNCTION = "load"
    RETURN_TYPES = (UPSCALER,)
    RETURN_NAMES = ("upscale_model",)
    OUTPUT_TOOLTIPS = ("The latent upsampler (spatial x2 or temporal x2, as the file says).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "upscale_model_name": (file_choices(upsampler_names()), {
                "display_name": "file",
                "tooltip": f"A latent upsampler in models/latent_upscale_models ({HF_LTXV}): spatial for the "
                           "multi-scale recipes, temporal to double the frame count."}),
            "dtype": (list(UPSAMPLER_DTYPES), {
                "default": "default",
                "tooltip": "Weight precision. default: the VAE's (bfloat16 on GPUs that support it, float32 on "
                           "the CPU)."}),
        }}

    def load(self, upscale_model_name, dtype):
        node = "LTX-Video Latent Upscale Model Loader"
        path = bridge.resolve_model(bridge.LATENT_UPSCALE_MODELS, upscale_model_name, "latent upsampler",
                                    f"Download it from {HF_LTXV}.")
        _, offload = bridge.devices("vae")
        try:
            up = load_upsampler(path, device=offload, dtype=dtype_choice(dtype, "vae"))
        except ValueError as e:
            raise node_error(node, e) from None
        return (UpscalerHandle(upscale_model_name, bridge.ManagedModel(up, "vae", upscale_model_name)),)


NODE_CLASS_MAPPINGS = {
    "LTXVStackCheckpointLoader": CheckpointLoader,
    "LTXVStackTextEncoderLoader": TextEncoderLoader,
    "LTXVStackUpsamplerLoader": UpsamplerLoader,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LTXVStackCheckpointLoader": "LTX-Video Checkpoint Loader",
    "LTXVStackTextEncoderLoader": "LTX-Video Text Encoder Loader (T5)",
    "LTXVStackUpsamplerLoader": "LTX-Video Latent Upscale Model Loader",
}
