"""The official LTX-Video pipeline configs (Lightricks/LTX-Video `configs/*.yaml`), by name, as plain dicts with
the keys in the files' order. 0.9.7 configs are the last versions before they were renamed to 0.9.8."""
from __future__ import annotations

import copy

_COMMON_TAIL = (
    ("stg_mode", "attention_values"),
    ("decode_timestep", 0.05),
    ("decode_noise_scale", 0.025),
    ("text_encoder_model_name_or_path", "PixArt-alpha/PixArt-XL-2-1024-MS"),
)
_ENHANCER = (
    ("prompt_enhancement_words_threshold", 120),
    ("prompt_enhancer_image_caption_model_name_or_path", "MiaoshouAI/Florence-2-large-PromptGen-v2.0"),
    ("prompt_enhancer_llm_model_name_or_path", "unsloth/Llama-3.2-3B-Instruct"),
)

# the 8-step distilled schedule, split between the two passes (the second re-noises to 0.9094)
DISTILLED_FIRST_PASS_TIMESTEPS = [1.0, 0.9937, 0.9875, 0.9812, 0.975, 0.9094, 0.725]
DISTILLED_SECOND_PASS_TIMESTEPS = [0.9094, 0.725, 0.4219]
DEV_GUIDANCE_TIMESTEPS = [1.0, 0.996, 0.9933, 0.985, 0.9767, 0.9008, 0.618]


def _base(checkpoint, cfg, stg, rescale, skip, steps, stochastic):
    d = {"pipeline_type": "base", "checkpoint_path": checkpoint, "guidance_scale": cfg, "stg_scale": stg,
         "rescaling_scale": rescale}
    if skip is not None:
        d["skip_block_list"] = skip
    d["num_inference_steps"] = steps
    d.update(_COMMON_TAIL)
    d["precision"] = "bfloat16"
    d["sampler"] = "from_checkpoint"
    d.update(_ENHANCER)
    d["stochastic_sampling"] = stochastic
    return d


def _multi_scale(checkpoint, upscaler, precision, first_pass, second_pass):
    d = {"pipeline_type": "multi-scale", "checkpoint_path": checkpoint, "downscale_factor": 0.6666666,
         "spatial_upscaler_model_path": upscaler}
    d.update(_COMMON_TAIL)
    d["precision"] = precision
    d["sampler"] = "from_checkpoint"
    d.update(_ENHANCER)
    d["stochastic_sampling"] = False
    d["first_pass"] = first_pass
    d["second_pass"] = second_pass
    return d


def _dev_passes():
    first = {
        "guidance_scale": [1, 1, 6, 8, 6, 1, 1],
        "stg_scale": [0, 0, 4, 4, 4, 2, 1],
        "rescaling_scale": [1, 1, 0.5, 0.5, 1, 1, 1],
        "guidance_timesteps": list(DEV_GUIDANCE_TIMESTEPS),
        "skip_block_list": [[], [11, 25, 35, 39], [22, 35, 39], [28], [28], [28], [28]],
        "num_inference_steps": 30,
        "skip_final_inference_steps": 3,
        "cfg_star_rescale": True,
    }
    second = {
        "guidance_scale": [1],
        "stg_scale": [1],
        "rescaling_scale": [1],
        "guidance_timesteps": [1.0],
        "skip_block_list": [27],
        "num_inference_steps": 30,
        "skip_initial_inference_steps": 17,
        "cfg_star_rescale": True,
    }
    return first, second


def _distilled_passes(tone_map=None):
    common = {"guidance_scale": 1, "stg_scale": 0, "rescaling_scale": 1, "skip_block_list": [42]}
    first = {"timesteps": list(DISTILLED_FIRST_PASS_TIMESTEPS), **copy.deepcopy(common)}
    second = {"timesteps": list(DISTILLED_SECOND_PASS_TIMESTEPS), **common}
    if tone_map is not None:
        second["tone_map_compression_ratio"] = tone_map
    return first, second


def _build() -> dict[str, dict]:
    p: dict[str, dict] = {}
    p["ltxv-2b-0.9"] = _base("ltx-video-2b-v0.9.safetensors", 3, 1, 0.7, [19], 40, False)
    p["ltxv-2b-0.9.1"] = _base("ltx-video-2b-v0.9.1.safetensors", 3, 1, 0.7, [19], 40, False)
    p["ltxv-2b-0.9.5"] = _base("ltx-video-2b-v0.9.5.safetensors", 3, 1, 0.7, [19], 40, False)
    p["ltxv-2b-0.9.6-dev"] = _base("ltxv-2b-0.9.6-dev-04-25.safetensors", 3, 1, 0.7, [19], 40, False)
    p["ltxv-2b-0.9.6-distilled"] = _base("ltxv-2b-0.9.6-distilled-04-25.safetensors", 1, 0, 1, None, 8, True)
    for version in ("0.9.7", "0.9.8"):
        up = f"ltxv-spatial-upscaler-{version}.safetensors"
        for fp8 in (False, True):
            suffix = "-fp8" if fp8 else ""
            precision = "float8_e4m3fn" if fp8 else "bfloat16"
            name = f"ltxv-13b-{version}-dev{suffix}"
            p[name] = _multi_scale(f"{name}.safetensors", up, precision, *_dev_passes())
            name = f"ltxv-13b-{version}-distilled{suffix}"
            tone = 0.6 if version == "0.9.8" else None
            p[name] = _multi_scale(f"{name}.safetensors", up, precision, *_distilled_passes(tone))
    for fp8 in (False, True):
        name = "ltxv-2b-0.9.8-distilled" + ("-fp8" if fp8 else "")
        p[name] = _multi_scale(f"{name}.safetensors", "ltxv-spatial-upscaler-0.9.8.safetensors",
                               "float8_e4m3fn" if fp8 else "bfloat16", *_distilled_passes())
    return p


OFFICIAL_CONFIGS: dict[str, dict] = _build()

# The released model files, as the workflows name them.
OFFICIAL_CHECKPOINTS = tuple(sorted({c["checkpoint_path"] for c in OFFICIAL_CONFIGS.values()}
                                    | {"ltxv-2b-0.9.6-dev-04-25.safetensors"}))
OFFICIAL_TEXT_ENCODERS = ("t5xxl_fp16.safetensors", "t5xxl_fp8_e4m3fn.safetensors",
                          "t5xxl_fp8_e4m3fn_scaled.safetensors")
OFFICIAL_UPSAMPLERS = ("ltxv-spatial-upscaler-0.9.7.safetensors", "ltxv-spatial-upscaler-0.9.8.safetensors",
                       "ltxv-temporal-upscaler-0.9.7.safetensors")
# Lightricks' LoRAs for 0.9.x: the 13B distilled LoRA and the IC-LoRAs' ComfyUI files (pose and detailer names
# as published; depth and canny follow the pose release's pattern).
OFFICIAL_LORAS = ("ltxv-13b-0.9.7-distilled-lora128.safetensors", "ltxv-097-ic-lora-depth-control-comfyui.safetensors",
                  "ltxv-097-ic-lora-pose-control-comfyui.safetensors",
                  "ltxv-097-ic-lora-canny-control-comfyui.safetensors", "ltxv-098-ic-lora-detailer-comfyui.safetensors")
