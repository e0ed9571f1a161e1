"""LoRA loader node: chainable, each link adds one LoRA file from ComfyUI's `loras` folder with its strength."""
from __future__ import annotations

import logging
from dataclasses import replace

from ..ltx_core import LoraUse, read_lora
from . import comfy_bridge as bridge
from .common import CATEGORY, MODEL, ModelHandle, node_error

logger = logging.getLogger(__name__)

MAX_STRENGTH = 10.0


def lora_names():
    return list(bridge.list_model_files(bridge.LORAS))


class LoraLoader:
    DESCRIPTION = ("Adds a LoRA to an LTX-Video model: effect, style and character LoRAs, the 13B distilled LoRA, "
                   "or an IC-LoRA (depth / pose / canny control, detailer; give it a control video with LTX-Video "
                   "Add Control Video). Chain one node per LoRA. Reads trainer/diffusers, ComfyUI, kohya and "
                   "diff-patch files from models/loras; a LoRA for another model is refused. The checkpoint is not "
                   "reloaded or changed: the LoRAs are applied while sampling.")
    CATEGORY = f"{CATEGORY}/loaders"
    SEARCH_ALIASES = ["lora", "load lora", "ic-lora", "ic lora", "distilled lora", "style lora"]
    FUNCTION = "load"
    RETURN_TYPES = (MODEL,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The model with this LoRA added (chain more LoRA loaders, or connect to the sampler).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (MODEL, {"tooltip": "From LTX-Video Checkpoint Loader or another LoRA loader."}),
            "lora_name": (list(lora_names()) or ["(no files found)"], {
                "display_name": "file",
                "tooltip": "A LoRA .safetensors file in models/loras made for LTX-Video 0.9.x (2B or 13B, "
                           "matching the checkpoint)."}),
            "strength": ("FLOAT", {"default": 1.0, "min": -MAX_STRENGTH, "max": MAX_STRENGTH, "step": 0.01,
                                   "tooltip": "How strongly the LoRA acts; 0 turns it off, negative values "
                                              "push the other way. Changing it does not reload anything."}),
        }}

    def load(self, model, lora_name, strength):
        node = "LTX-Video LoRA Loader"
        if not isinstance(model, ModelHandle):
            raise ValueError(f"{node}: model must come from LTX-Video Checkpoint Loader")
        try:
            path = bridge.resolve_model(bridge.LORAS, lora_name, "LoRA")
            lora = read_lora(path, model.module)
            use = LoraUse(lora, float(strength))
        except ValueError as e:  # ModelFileError, ModelNotFoundError: one line naming the file and the problem
            raise node_error(node, e) from None
        logger.info("LTX-Video (stack): LoRA %s", lora.summary())
        return (replace(model, loras=model.loras + (use,)),)


NODE_CLASS_MAPPINGS = {"LTXVStackLoraLoader": LoraLoader}
NODE_DISPLAY_NAME_MAPPINGS = {"LTXVStackLoraLoader": "LTX-Video LoRA Loader"}
