"""LoRA files for tests, in every key format in use, and the official transformer patched by the plain formula
W += strength * scale * up @ down (scale = alpha / rank, or 1 without an alpha), as ComfyUI and diffusers merge."""
import copy

import torch
from safetensors.torch import save_file

# Every Linear kind a LoRA file targets: self- and cross-attention, feed-forward, and the rest of the model.
TARGETS = ("transformer_blocks.0.attn1.to_q", "transformer_blocks.0.attn1.to_k", "transformer_blocks.0.attn1.to_v",
           "transformer_blocks.0.attn1.to_out.0", "transformer_blocks.1.attn2.to_q", "transformer_blocks.1.attn2.to_k",
           "transformer_blocks.1.attn2.to_out.0", "transformer_blocks.0.ff.net.0.proj", "transformer_blocks.1.ff.net.2",
           "patchify_proj", "adaln_single.linear", "proj_out")
_DIFFUSERS_TOP = {"patchify_proj": "proj_in", "adaln_single": "time_embed"}


def _diffusers_name(target: str) -> str:
    head, _, rest = target.partition(".")
    return ".".join(filter(None, (_DIFFUSERS_TOP.get(head, head), rest)))


# format -> (down key, up key, alpha key or None) for an official target name
FORMATS = {
    "diffusers": lambda t: (f"transformer.{_diffusers_name(t)}.lora_A.weight",
                            f"transformer.{_diffusers_name(t)}.lora_B.weight", None),
    "comfyui": lambda t: (f"diffusion_model.{t}.lora_A.weight", f"diffusion_model.{t}.lora_B.weight",
                          f"diffusion_model.{t}.alpha"),
    "peft_default": lambda t: (f"diffusion_model.{t}.lora_A.default.weight",
                               f"diffusion_model.{t}.lora_B.default.weight", None),
    "up_down": lambda t: (f"diffusion_model.{t}.lora_down.weight", f"diffusion_model.{t}.lora_up.weight",
                          f"diffusion_model.{t}.alpha"),
    "dot_up_down": lambda t: (f"{t}.lora.down.weight", f"{t}.lora.up.weight", f"{t}.alpha"),
    "linear_layer": lambda t: (f"transformer.{_diffusers_name(t)}.lora_linear_layer.down.weight",
                               f"transformer.{_diffusers_name(t)}.lora_linear_layer.up.weight", None),
    "kohya": lambda t: (f"lora_unet_{t.replace('.', '_')}.lora_down.weight",
                        f"lora_unet_{t.replace('.', '_')}.lora_up.weight", f"lora_unet_{t.replace('.', '_')}.alpha"),
}


def random_lora(model, targets=TARGETS, rank: int = 4, seed: int = 0, alpha: float | None = None,
                size: float = 0.3):
    """{target: (down, up, alpha)} with random matrices sized for `model` (an official or our transformer)."""
    gen = torch.Generator().manual_seed(seed)
    modules = dict(model.named_modules())
    out = {}
    for t in targets:
        out_f, in_f = modules[t].weight.shape
        down = torch.randn(rank, in_f, generator=gen) / in_f ** 0.5
        up = size * torch.randn(out_f, rank, generator=gen) / rank ** 0.5
        out[t] = (down, up, alpha)
    return out


def lora_tensors(lora, fmt: str) -> dict:
    keys = FORMATS[fmt]
    sd = {}
    for t, (down, up, alpha) in lora.items():
        kd, ku, ka = keys(t)
        sd[kd], sd[ku] = down.contiguous(), up.contiguous()
        if alpha is not None:
            assert ka is not None, f"format {fmt} has no alpha"
            sd[ka] = torch.tensor(float(alpha))
    return sd


def write_lora(path, lora, fmt: str = "comfyui", metadata=None, extra=None):
    save_file({**lora_tensors(lora, fmt), **(extra or {})}, str(path), metadata=metadata)
    return path


def merged(model, uses):
    """A deep copy of `model` with each (lora, strength) merged into its weights in float64."""
    out = copy.deepcopy(model)
    modules = dict(out.named_modules())
    with torch.no_grad():
        for lora, strength in uses:
            for t, (down, up, alpha) in lora.items():
                scale = 1.0 if alpha is None else alpha / down.shape[0]
                w = modules[t].weight
                w.copy_((w.double() + strength * scale * (up.double() @ down.double())).to(w.dtype))
    return out
