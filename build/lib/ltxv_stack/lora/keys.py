"""LoRA tensor names, in every format in use for LTX-Video 0.9.x, as (target, role).

A target is the official name of what the tensor patches: a module (`transformer_blocks.0.attn1.to_q`) or, for
whole-tensor patches of something that is not a layer's weight, a parameter (`transformer_blocks.0.scale_shift_table`).
Roles: `down`/`up` (the low-rank pair, however a trainer calls them), `alpha`, `diff` (added to the weight, or to
the named parameter) and `diff_b` (added to the bias).
"""
from __future__ import annotations

from ..loader.diffusers_format import transformer_key_from_diffusers

# Longest first: `.lora_A.default.weight` must not be read as a plain name ending in `.weight`.
_ROLES = (
    (".lora_A.default.weight", "down"), (".lora_B.default.weight", "up"),
    (".lora_linear_layer.down.weight", "down"), (".lora_linear_layer.up.weight", "up"),
    (".lora_A.weight", "down"), (".lora_B.weight", "up"),
    (".lora_down.weight", "down"), (".lora_up.weight", "up"),
    (".lora.down.weight", "down"), (".lora.up.weight", "up"),
    (".alpha", "alpha"), (".diff_b", "diff_b"), (".diff", "diff"),
)
# Trainer/diffusers, PEFT's raw state dict, ComfyUI (diffusion-pipe, IC-LoRA *-comfyui files), official checkpoints.
_PREFIXES = ("base_model.model.", "model.diffusion_model.", "diffusion_model.", "transformer.")
KOHYA_PREFIX = "lora_unet_"


def split_role(key: str) -> tuple[str, str] | None:
    """(name without the role suffix, role), or None for a tensor that is no part of a LoRA."""
    for suffix, role in _ROLES:
        if key.endswith(suffix):
            return key[: -len(suffix)], role
    return None


def official_name(name: str, kohya_names: dict[str, str]) -> str:
    """The official name for a LoRA's target name (prefix stripped, diffusers names translated). Kohya-style
    names flatten dots to underscores, so they are looked up among the model's own names (`kohya_names`:
    underscored -> official); a name found nowhere is returned as it came, for the caller to report."""
    if name.startswith(KOHYA_PREFIX):
        flat = name[len(KOHYA_PREFIX):]
        return kohya_names.get(flat, name)
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    return transformer_key_from_diffusers(name)


def kohya_lookup(names) -> dict[str, str]:
    return {n.replace(".", "_"): n for n in names}


def looks_like(targets) -> str:
    """What a LoRA that matches nothing was made for, from its target names."""
    targets = list(targets)
    joined = " ".join(targets)
    for marker, what in (("double_blocks", "a FLUX LoRA"), ("single_blocks", "a FLUX LoRA"),
                         ("audio", "an LTX-2 LoRA (audio-video)"), ("input_blocks", "a Stable Diffusion LoRA"),
                         ("down_blocks", "a Stable Diffusion LoRA"), ("lora_te", "a Stable Diffusion LoRA"),
                         ("wan", "a Wan LoRA"), ("blocks.0.self_attn", "a Wan LoRA"), ("img_mod", "a Qwen/FLUX LoRA")):
        if marker in joined:
            return what
    return "a LoRA for another model"
