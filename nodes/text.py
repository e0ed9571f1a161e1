"""Text encode node: prompt + negative prompt -> the pack's conditioning (T5 features, masks, frame rate)."""
from __future__ import annotations

import torch

from . import comfy_bridge as bridge
from .common import (
    CATEGORY,
    CONDITIONING,
    DEFAULT_NEGATIVE_PROMPT,
    TEXT_ENCODER,
    Conditioning,
    TextEncoderHandle,
)

# T5 activations per token and layer, generously: enough for ComfyUI to make room before encoding.
_ENCODE_MEMORY = 256 * 1024 * 1024


def encode_prompts(te: TextEncoderHandle, prompts: list[str]):
    """Encode on the text encoder's load device, then give its memory back (it is not needed while sampling)."""
    bridge.load_models([te.managed], _ENCODE_MEMORY)
    try:
        with torch.no_grad():
            out = [te.encoder.encode([p]) for p in prompts]
        bridge.check_interrupt()
    finally:
        bridge.unload_model(te.managed)
    device = bridge.intermediate_device()
    return [(e.to(device), m.to(device)) for e, m in out]


class TextEncode:
    DESCRIPTION = ("Encodes the prompt and the negative prompt with T5 (256 tokens, as the official pipeline does) "
                   "and sets the video's frame rate; the text encoder is moved off the GPU afterwards.")
    CATEGORY = f"{CATEGORY}/conditioning"
    FUNCTION = "encode"
    RETURN_TYPES = (CONDITIONING,)
    RETURN_NAMES = ("conditioning",)
    OUTPUT_TOOLTIPS = ("Prompt features, negative prompt features and frame rate; add images with "
                       "LTX-Video Add Image / Clip, then connect to LTX-Video Sampler.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text_encoder": (TEXT_ENCODER, {"tooltip": "The T5 text encoder from LTX-Video Text Encoder Loader."}),
            "prompt": ("STRING", {"multiline": True, "default": "",
                                  "tooltip": "What the video shows: subject, motion, camera, light. Long, detailed "
                                             "prompts work best (up to 256 T5 tokens are used)."}),
            "negative_prompt": ("STRING", {"multiline": True, "default": DEFAULT_NEGATIVE_PROMPT,
                                           "tooltip": "What to avoid; used by recipes with CFG above 1 (the "
                                                      "distilled recipes ignore it)."}),
            "frame_rate": ("FLOAT", {"default": 25.0, "min": 1.0, "max": 240.0, "step": 0.01,
                                     "tooltip": "Frames per second of the generated video; the model's time "
                                                "positions depend on it. Use the same value in Create Video."}),
        }}

    def encode(self, text_encoder, prompt, negative_prompt, frame_rate):
        if not isinstance(text_encoder, TextEncoderHandle):
            raise ValueError("LTX-Video Text Encode: text_encoder must come from LTX-Video Text Encoder Loader")
        if not frame_rate > 0:
            raise ValueError(f"LTX-Video Text Encode: frame_rate must be positive, got {frame_rate}")
        (embeds, mask), (neg, neg_mask) = encode_prompts(text_encoder, [prompt, negative_prompt])
        return (Conditioning(embeds, mask, neg, neg_mask, float(frame_rate)),)


NODE_CLASS_MAPPINGS = {"LTXVStackTextEncode": TextEncode}
NODE_DISPLAY_NAME_MAPPINGS = {"LTXVStackTextEncode": "LTX-Video Text Encode"}
