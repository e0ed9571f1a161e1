"""Recognise model files of other kinds, so a wrong pick gets a useful message instead of a key dump."""

_KINDS = [
    (lambda ks: any("lora_" in k or k.endswith(".alpha") for k in ks),
     "a LoRA, not a full model; load a base checkpoint and apply the LoRA to it"),
    (lambda ks: any(k.startswith("encoder.block.") or k in ("shared.weight", "encoder.embed_tokens.weight") for k in ks),
     "a T5 text encoder; put it in models/text_encoders and load it with the text-encoder loader"),
    (lambda ks: "initial_conv.weight" in ks and any(k.startswith("upsampler.") for k in ks),
     "an LTX-Video latent upsampler; load it with the latent-upsampler loader"),
    (lambda ks: any(k.startswith(("model.diffusion_model.input_blocks.", "first_stage_model.", "cond_stage_model.",
                                  "conditioner.embedders.")) for k in ks),
     "a Stable Diffusion-family checkpoint, not LTX-Video"),
    (lambda ks: any(k.startswith(("double_blocks.", "model.diffusion_model.double_blocks.")) for k in ks),
     "a FLUX-family model, not LTX-Video"),
]


def foreign_kind(keys) -> str | None:
    """What the file is, when its tensor names say it is a known kind of file other than the one asked for."""
    keys = set(keys)
    for test, what in _KINDS:
        if test(keys):
            return f"this looks like {what}"
    return None


def describe_foreign(keys) -> str:
    known = foreign_kind(keys)
    if known:
        return known
    sample = ", ".join(repr(k) for k in sorted(keys)[:4]) or "no tensors at all"
    return f"this is not an LTX-Video model file (its tensors start with {sample})"
