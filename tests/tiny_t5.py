"""A tiny T5 v1.1 encoder (real T5 vocabulary, tiny widths) saved in the layouts the text-encoder loader reads,
and the official pipeline's `encode_prompt` run on it as the oracle."""
import copy
import shutil
import types

import torch
from safetensors.torch import save_file
from transformers import T5Config, T5EncoderModel, T5Tokenizer

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def tiny_t5(seed=0) -> T5EncoderModel:
    config = T5Config(vocab_size=32128, d_model=64, d_kv=16, num_heads=4, d_ff=96, num_layers=2,
                      relative_attention_num_buckets=32, feed_forward_proj="gated-gelu")
    torch.manual_seed(seed)
    model = T5EncoderModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                # Norm gains left at 1 would hide a norm that is skipped or loaded from the wrong key.
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            elif name in ("shared.weight", "encoder.embed_tokens.weight") or "relative_attention_bias" in name:
                p.copy_(torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / p.shape[1] ** 0.5)
    return model


def copy_tokenizer(src, dst):
    dst.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copy(src / name, dst / name)
    return dst


def save_pixart(model, tokenizer_dir, root):
    """(a) text_encoder/ + tokenizer/, as PixArt-alpha/PixArt-XL-2-1024-MS holds them."""
    model.save_pretrained(root / "text_encoder")
    copy_tokenizer(tokenizer_dir, root / "tokenizer")
    return root


def save_hf_sharded(model, tokenizer_dir, root):
    """(b) A plain Hugging Face folder with the weights in several shards and the tokenizer alongside."""
    model.save_pretrained(root, max_shard_size="1MB")
    copy_tokenizer(tokenizer_dir, root)
    return root


def encoder_state(model, dtype=torch.float16, embedding_keys=("shared.weight",)):
    """Single-file (ComfyUI) state dict: Hugging Face names, every tensor in `dtype`."""
    sd = {k: v.to(dtype).contiguous() for k, v in model.state_dict().items() if k not in
          ("shared.weight", "encoder.embed_tokens.weight")}
    for k in embedding_keys:
        sd[k] = model.shared.weight.detach().to(dtype).clone()
    return sd


def is_block_linear_weight(key):
    return key.startswith("encoder.block.") and key.endswith(("q.weight", "k.weight", "v.weight", "o.weight",
                                                              "wi_0.weight", "wi_1.weight", "wo.weight"))


def fp8_state(model, scaled=False):
    """An fp8 file: block Linear weights in float8_e4m3fn, the rest in fp16. `scaled` writes ComfyUI's
    "scaled fp8" variant: weight / scale in fp8, a per-tensor `scale_weight`, `scale_input` and the marker."""
    sd = encoder_state(model, torch.float16)
    for k in [k for k in sd if is_block_linear_weight(k)]:
        w = model.state_dict()[k].float()
        if scaled:
            scale = w.abs().max() / 448.0
            sd[k] = (w / scale).to(torch.float8_e4m3fn)
            layer = k[: -len(".weight")]
            sd[f"{layer}.scale_weight"] = scale.reshape(())
            sd[f"{layer}.scale_input"] = torch.tensor(1.0)
        else:
            sd[k] = w.to(torch.float8_e4m3fn)
    if scaled:
        sd["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    return sd


def save_single(sd, path):
    save_file(sd, str(path))
    return path


def model_with_weights_of(model, sd):
    """A float32 copy of `model` holding the values a file stores (fp8/fp16 rounding, scales applied)."""
    embedding = sd["shared.weight"] if "shared.weight" in sd else sd["encoder.embed_tokens.weight"]
    state = {}
    for k in model.state_dict():
        value = (embedding if k in ("shared.weight", "encoder.embed_tokens.weight") else sd[k]).float()
        scale = sd.get(k[: -len(".weight")] + ".scale_weight")
        state[k] = value * scale if scale is not None else value
    out = copy.deepcopy(model)
    out.load_state_dict(state)
    return out


def reference_encode(text_encoder, tokenizer, prompts):
    """The official `LTXVideoPipeline.encode_prompt`, run on a stand-in pipeline that has just the two parts it
    reads (no VAE/transformer to build). Returns (embeddings, attention mask)."""
    from ltx_video.pipelines.pipeline_ltx_video import LTXVideoPipeline

    stand_in = types.SimpleNamespace(tokenizer=tokenizer, text_encoder=text_encoder, transformer=None)
    stand_in._text_preprocessing = types.MethodType(LTXVideoPipeline._text_preprocessing, stand_in)
    with torch.no_grad():
        embeds, mask, _, _ = LTXVideoPipeline.encode_prompt(stand_in, prompts, do_classifier_free_guidance=False,
                                                            device=torch.device("cpu"))
    return embeds, mask


def reference_tokenizer(folder):
    """The tokenizer class the official inference script loads."""
    return T5Tokenizer.from_pretrained(str(folder))
