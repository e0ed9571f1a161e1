"""Configs for checkpoints that carry no metadata, inferred from tensor names and shapes.

Official files always carry their config; stripped or re-saved copies do not. Everything that shapes
determine is read from them. What they cannot show is fixed to what the official releases use and
listed here: attention heads (32 in every release), VAE padding mode ("zeros", the reference default),
decoder causality (off), and a depth-to-space upsampler with a channel reduction being residual (as in
0.9.1 and later). What depends on the release (causal time positions, the scheduler) is `releases`' part.
"""
import re

SCHEDULER_0_9_0 = {"_class_name": "RectifiedFlowScheduler", "num_train_timesteps": 1000, "shifting": "SD3",
                   "base_resolution": None, "target_shift_terminal": 0.1}
_HEADS = 32


def _indexed(shapes: dict, prefix: str) -> dict[int, dict]:
    """{i: {rest_of_key: shape}} for keys 'prefix.i.rest'."""
    out: dict[int, dict] = {}
    pat = re.compile(re.escape(prefix) + r"\.(\d+)\.(.+)")
    for k, s in shapes.items():
        m = pat.fullmatch(k)
        if m:
            out.setdefault(int(m.group(1)), {})[m.group(2)] = s
    return out


def transformer_config_from_shapes(shapes: dict) -> dict:
    blocks = _indexed(shapes, "transformer_blocks")
    inner, in_channels = shapes["patchify_proj.weight"]
    num_layers = max(blocks) + 1
    return {
        "_class_name": "Transformer3DModel",
        "activation_fn": "gelu-approximate", "attention_bias": True, "attention_type": "default",
        "num_layers": num_layers, "num_attention_heads": _HEADS, "attention_head_dim": inner // _HEADS,
        "in_channels": in_channels, "out_channels": shapes["proj_out.weight"][0],
        "cross_attention_dim": shapes["transformer_blocks.0.attn2.to_k.weight"][1],
        "caption_channels": shapes["caption_projection.linear_1.weight"][1],
        "norm_elementwise_affine": False, "norm_eps": 1e-6, "qk_norm": "rms_norm",
        "standardization_norm": "rms_norm", "adaptive_norm": "single_scale_shift",
        "positional_embedding_type": "rope", "positional_embedding_theta": 10000.0,
        "positional_embedding_max_pos": [20, 2048, 2048], "timestep_scale_multiplier": 1000,
    }


def _block_in_channels(block: dict) -> int:
    for name in ("res_blocks.0.conv1.conv.weight", "conv1.conv.weight", "conv.conv.weight", "conv.weight"):
        if name in block:
            return block[name][1]
    raise KeyError("unrecognised VAE block")


def _encoder_blocks(shapes: dict) -> list:
    blocks = _indexed(shapes, "encoder.down_blocks")
    out = []
    for i in sorted(blocks):
        b = blocks[i]
        c_in = _block_in_channels(b)
        c_out = _block_in_channels(blocks[i + 1]) if i + 1 in blocks else shapes["encoder.conv_out.conv.weight"][1]
        if "res_blocks.0.conv1.conv.weight" in b:
            out.append(["res_x", {"num_layers": len({k.split(".")[1] for k in b if k.startswith("res_blocks.")})}])
        elif "conv1.conv.weight" in b:
            out.append(["res_x_y", {"multiplier": c_out // c_in}])
        elif "conv.conv.weight" in b:  # space-to-depth: the conv yields c_out / (stride volume) channels
            kind = {8: "compress_all_res", 4: "compress_space_res", 2: "compress_time_res"}[c_out // b["conv.conv.weight"][0]]
            out.append([kind, {"multiplier": c_out // c_in}])
        else:  # a plain strided conv; the legacy encoders only ever compress all three axes with it
            out.append(["compress_all", {"num_layers": 1}] if c_out == c_in else ["compress_all_x_y", {"multiplier": c_out // c_in}])
    return out


def _decoder_blocks(shapes: dict) -> list:
    blocks = _indexed(shapes, "decoder.up_blocks")
    out = []
    for i in sorted(blocks):
        b = blocks[i]
        c_in = _block_in_channels(b)
        c_out = _block_in_channels(blocks[i + 1]) if i + 1 in blocks else shapes["decoder.conv_out.conv.weight"][1]
        if "res_blocks.0.conv1.conv.weight" in b:
            out.append(["res_x", {"num_layers": len({k.split(".")[1] for k in b if k.startswith("res_blocks.")}),
                                  "inject_noise": "res_blocks.0.per_channel_scale1" in b}])
        elif "conv1.conv.weight" in b:
            out.append(["res_x_y", {"multiplier": c_in // c_out, "inject_noise": "per_channel_scale1" in b}])
        else:  # depth-to-space: the conv yields c_in * (stride volume) / reduction channels
            reduction = c_in // c_out
            volume = b["conv.conv.weight"][0] * reduction // c_in
            kind = {8: "compress_all", 4: "compress_space", 2: "compress_time"}[volume]
            out.append([kind, {"residual": reduction > 1, "multiplier": reduction}])
    # The config lists decoder blocks in encoder order; the decoder builds them reversed.
    return out[::-1]


def vae_config_from_shapes(shapes: dict) -> dict:
    conv_in = shapes["encoder.conv_in.conv.weight"]
    latent = shapes["decoder.conv_in.conv.weight"][1]
    moments = shapes["encoder.conv_out.conv.weight"][0]
    patch = round((conv_in[1] // 3) ** 0.5)
    return {
        "_class_name": "CausalVideoAutoencoder", "dims": 3, "in_channels": 3, "out_channels": 3,
        "latent_channels": latent, "patch_size": patch,
        "encoder_blocks": _encoder_blocks(shapes), "decoder_blocks": _decoder_blocks(shapes),
        "encoder_base_channels": conv_in[0], "decoder_base_channels": shapes["decoder.conv_out.conv.weight"][1],
        "norm_layer": "group_norm" if any(".norm1.weight" in k for k in shapes) else "pixel_norm",
        "latent_log_var": {latent + 1: "uniform", 2 * latent: "per_channel", latent: "none"}[moments],
        "use_quant_conv": "quant_conv.weight" in shapes or "quant_conv.conv.weight" in shapes,
        "causal_decoder": False,
        "timestep_conditioning": "decoder.timestep_scale_multiplier" in shapes,
        "spatial_padding_mode": "zeros", "scaling_factor": 1.0,
    }


def default_scheduler_config(vae_config: dict | None) -> dict:
    """0.9.0/0.9.1 shift a uniform grid; later releases (the `*_res` encoders) use the LinearQuadratic grid."""
    blocks = (vae_config or {}).get("encoder_blocks") or []
    modern = any(str(b[0]).endswith("_res") for b in blocks)
    return dict(SCHEDULER_0_9_0, sampler="LinearQuadratic" if modern else "Uniform")
