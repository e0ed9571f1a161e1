"""Loaders for models that come in parts: a VAE file, and a transformer on its own (GGUF quantizations, or
transformer-only safetensors) joined to that VAE. They give the same sockets as the checkpoint loader."""
from __future__ import annotations

import logging

from ..ltx_core import RELEASE_CHOICES, LoadOptions, check_vae_fits, holds_vae, load_model_file, load_vae_file
from . import comfy_bridge as bridge
from .common import CATEGORY, MODEL, VAE, ModelHandle, VAEHandle, dtype_choice, file_choices, node_error

logger = logging.getLogger(__name__)

HF_GGUF = "Hugging Face: QuantStack/LTXV-13B-0.9.8-distilled-GGUF, city96/LTX-Video-gguf"
MODEL_EXTENSIONS = (".gguf", ".safetensors", ".sft")
MODEL_DTYPES = ("default", "bfloat16", "float16", "float32", "float8_e4m3fn", "float8_e5m2")
VAE_DTYPES = ("default", "bfloat16", "float16", "float32")




class VAELoader:
    DESCRIPTION = ("Loads an LTX-Video VAE from its own file in models/vae: the one released beside a GGUF model "
                   "(LTXV-13B-0.9.8-distilled-VAE.safetensors in the QuantStack repositories' vae/ folder; "
                   "LTX-Video-VAE-BF16.safetensors for city96's 2B 0.9), with or without the vae. prefix. Full "
                   "checkpoints carry their VAE: load those with LTX-Video Checkpoint Loader.")
    CATEGORY = f"{CATEGORY}/loaders"
    SEARCH_ALIASES = ["vae", "load vae", "gguf vae"]
    FUNCTION = "load"
    RETURN_TYPES = (VAE,)
    RETURN_NAMES = ("vae",)
    OUTPUT_TOOLTIPS = ("The LTX-Video VAE, for LTX-Video Model Loader, VAE Decode/Encode and Latent Upsample.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae_name": (file_choices(bridge.list_model_files(bridge.VAES)), {
                "display_name": "file",
                "tooltip": f"An LTX-Video VAE .safetensors in models/vae ({HF_GGUF}); it must be the VAE generation "
                           "of the model it decodes for (0.9.5 and later share one)."}),
            "dtype": (list(VAE_DTYPES), {
                "default": "default",
                "tooltip": "Weight precision. default: bfloat16 on GPUs that support it, float32 on the CPU."}),
        }}

    def load(self, vae_name, dtype):
        node = "LTX-Video VAE Loader"
        path = bridge.resolve_model(bridge.VAES, vae_name, "VAE", f"Download it ({HF_GGUF}).")
        _, offload = bridge.devices("vae")
        try:
            ck = load_vae_file(path, device=offload, dtype=dtype_choice(dtype, "vae"))
        except ValueError as e:
            raise node_error(node, e) from None
        return (VAEHandle(vae_name, bridge.ManagedModel(ck.vae, "vae", vae_name)),)


class ModelLoader:
    DESCRIPTION = ("Loads an LTX-Video transformer on its own from models/diffusion_models (or unet): a GGUF "
                   "quantization (Q2_K to Q8_0: the 13B in 5-14 GB; weights stay quantized in memory and are "
                   "dequantized layer by layer while sampling) or a transformer-only .safetensors, with the VAE "
                   "from LTX-Video VAE Loader. Such files carry no config: the release is read from the file name "
                   "(auto) or chosen here.")
    CATEGORY = f"{CATEGORY}/loaders"
    SEARCH_ALIASES = ["gguf", "quantized", "q4", "q8", "unet loader", "diffusion model", "load model"]
    FUNCTION = "load"
    RETURN_TYPES = (MODEL,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The LTX-Video transformer with its VAE, for LoRA loaders and the LTX-Video Sampler.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_name": (file_choices(bridge.list_model_files(bridge.DIFFUSION_MODELS, MODEL_EXTENSIONS)), {
                "display_name": "file",
                "tooltip": f"A .gguf or transformer-only .safetensors in models/diffusion_models ({HF_GGUF})."}),
            "vae": (VAE, {"tooltip": "The VAE released with the model, from LTX-Video VAE Loader."}),
            "release": (list(RELEASE_CHOICES), {
                "default": "auto",
                "tooltip": "The model's release: time positions and the step schedule depend on it. auto reads it "
                           "from the file name (e.g. LTXV-13B-0.9.8-distilled-Q4_K_M.gguf); the log says which was "
                           "used."}),
            "weight_dtype": (list(MODEL_DTYPES), {
                "default": "default",
                "tooltip": "GGUF: the compute dtype (default: bfloat16 on GPUs that support it, float32 on the "
                           "CPU); the weights stay quantized. safetensors: the weight dtype, fp8 as storage."}),
        }, "optional": {
            "compile": ("BOOLEAN", {"default": False, "tooltip": "torch.compile the transformer blocks."}),
        }}

    def load(self, model_name, vae, release, weight_dtype, compile=False):
        node = "LTX-Video Model Loader"
        if not isinstance(vae, VAEHandle):
            raise ValueError(f"{node}: vae must come from LTX-Video VAE Loader or Checkpoint Loader")
        path = bridge.resolve_model(bridge.DIFFUSION_MODELS, model_name, "model", f"Download it ({HF_GGUF}).")
        load_device, offload = bridge.devices("diffusion")
        options = LoadOptions(dtype=dtype_choice(weight_dtype, "diffusion"), device=offload, compute_device=load_device,
                              compile=bool(compile), release=release)
        try:
            if holds_vae(path):
                raise ValueError(f"{model_name} is a whole checkpoint (transformer and VAE): load it with "
                                 "LTX-Video Checkpoint Loader")
            ck = load_model_file(path, options, vae.module.config)
            check_vae_fits(ck, vae.module.config, vae.name)
        except ValueError as e:  # OptionError, ModelFileError: one line naming the option or file
            raise node_error(node, e) from None
        for note in ck.notes:
            logger.info("LTX-Video (stack): %s: %s", model_name, note)
        return (ModelHandle(model_name, bridge.ManagedModel(ck.transformer, "diffusion", model_name), vae,
                            ck.config.get("scheduler"), ck.allowed_inference_steps),)


NODE_CLASS_MAPPINGS = {"LTXVStackVAELoader": VAELoader, "LTXVStackModelLoader": ModelLoader}
NODE_DISPLAY_NAME_MAPPINGS = {"LTXVStackVAELoader": "LTX-Video VAE Loader",
                              "LTXVStackModelLoader": "LTX-Video Model Loader (GGUF / transformer only)"}
