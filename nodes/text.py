"""Text encode node: prompt + negative prompt -> the pack's conditioning (T5 features, masks, frame rate)."""
from __future__ import annotations

from ..ltx_core import DEFAULT_NEGATIVE_PROMPT, TEXT_ENCODE_BYTES, chunk_prompts, encode_chunk_prompts
from . import comfy_bridge as bridge
from .common import CATEGORY, CONDITIONING, TEXT_ENCODER, Conditioning, TextEncoderHandle


class TextEncode:
    DESCRIPTION = ("Encodes the prompt and the negative prompt with T5 (256 tokens, as the official pipeline does) "
                   "and sets the video's frame rate; the text encoder is moved off the GPU afterwards.")
    CATEGORY = f"{CATEGORY}/conditioning"
    SEARCH_ALIASES = ["prompt", "text to video", "t2v", "clip text encode", "negative prompt", "conditioning"]
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
                                             "prompts work best (up to 256 T5 tokens are used). For LTX-Video Long "
                                             "Video Sampler, one prompt per chunk separated by | (the last "
                                             "repeats)."}),
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
        # Encoded on the text encoder's load device (the CPU where it does not fit next to the other models), whose
        # memory is given back at once (not needed while sampling).
        bridge.load_text_encoder(text_encoder.managed, TEXT_ENCODE_BYTES)
        try:
            prompts = chunk_prompts(prompt) if "|" in prompt else [prompt]
            texts = encode_chunk_prompts(text_encoder.encoder, prompts, negative_prompt)
            bridge.check_interrupt()
        except ValueError as e:
            raise ValueError(f"LTX-Video Text Encode: {e}") from None
        finally:
            bridge.unload_model(text_encoder.managed)
        first, *later = [t.to(bridge.intermediate_device()) for t in texts]
        return (Conditioning(first.embeds, first.mask, first.negative_embeds, first.negative_mask, float(frame_rate),
                             later_prompts=tuple((t.embeds, t.mask) for t in later)),)


NODE_CLASS_MAPPINGS = {"LTXVStackTextEncode": TextEncode}
NODE_DISPLAY_NAME_MAPPINGS = {"LTXVStackTextEncode": "LTX-Video Text Encode"}
