"""Benchmark sizes. Every architecture is written in diffusers' config vocabulary and turned into the official one
by `ltx_core.loader.diffusers_format`, so the three implementations are built from the same description.

"cpu": a reduced-width 2B-structure transformer (real head dim 64, 8 heads, 4 layers, T5-sized captions), a 0.9.5-layout
VAE with base width 32 and an upsampler with 128 mid channels, at small latent grids: a full run takes a few minutes on 2
cores. "cuda-2b" / "cuda-13b": the released shapes (2B at 768x512x121, 13B at 1216x704x121, 20 steps).
"""
import copy

from ltx_core.geometry import latent_grid

# The 0.9.5-0.9.8 VAE (2B and 13B share it), in diffusers terms, with base width `b` (released: 128).
def vae_095(b: int) -> dict:
    return dict(
        _class_name="AutoencoderKLLTXVideo", in_channels=3, out_channels=3, latent_channels=128, patch_size=4,
        patch_size_t=1, resnet_norm_eps=1e-6, scaling_factor=1.0, encoder_causal=True, decoder_causal=False,
        block_out_channels=(b, 2 * b, 4 * b, 8 * b, 16 * b), down_block_types=("LTXVideo095DownBlock3D",) * 4,
        downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"), layers_per_block=(4, 6, 6, 2, 2),
        spatio_temporal_scaling=(True,) * 4, decoder_block_out_channels=(2 * b, 4 * b, 8 * b),
        decoder_layers_per_block=(5, 5, 5, 5), decoder_spatio_temporal_scaling=(True,) * 3,
        decoder_inject_noise=(False,) * 4, upsample_residual=(True,) * 3, upsample_factor=(2,) * 3,
        timestep_conditioning=True, spatial_compression_ratio=32, temporal_compression_ratio=8,
    )


def spatial_upsampler(mid_channels: int) -> dict:
    """The released spatial x2 latent upsampler's structure (mid width 512 in the real files)."""
    return dict(in_channels=128, mid_channels=mid_channels, num_blocks_per_stage=4, dims=3, spatial_upsample=True,
                temporal_upsample=False)


def transformer(num_layers: int, heads: int, head_dim: int, cross_dim: int) -> dict:
    return dict(
        _class_name="LTXVideoTransformer3DModel", in_channels=128, out_channels=128, patch_size=1, patch_size_t=1,
        num_attention_heads=heads, attention_head_dim=head_dim, cross_attention_dim=cross_dim, num_layers=num_layers,
        activation_fn="gelu-approximate", qk_norm="rms_norm_across_heads", norm_elementwise_affine=False, norm_eps=1e-6,
        caption_channels=4096, attention_bias=True, attention_out_bias=True,
    )


# The released 0.9.x dev scheduler (LinearQuadratic + SD3 shift to a terminal) and diffusers' LTX scheduler config.
SCHEDULER = {"sampler": "LinearQuadratic", "shifting": "SD3", "target_shift_terminal": 0.1}
DIFFUSERS_SCHEDULER = {"base_image_seq_len": 1024, "base_shift": 0.95, "max_image_seq_len": 4096, "max_shift": 2.05,
                       "shift": 1.0, "shift_terminal": 0.1, "use_dynamic_shifting": True}

CONFIGS = {
    # --backend openvino: the 2B's width (32 heads of 64, T5-sized captions) in 16 of its 28 blocks (1.1 G weights:
    # 4.4 GB in fp32), so that the weights, not the runtimes' libraries (~0.5 GB), dominate peak RSS as they do on the
    # released models; few tokens, so that 2 cores run it in minutes.
    "cpu-ov": dict(
        device="cpu", dtype="float32",
        transformer=transformer(num_layers=16, heads=32, head_dim=64, cross_dim=2048),
        vae=vae_095(32),
        upsampler=spatial_upsampler(128),
        text_len=128, text_valid=40,
        step=dict(batch=2, grid=(2, 4, 4)),
        sample=dict(height=64, width=96, frames=9, steps=2, guidance_scale=3.0),
        vae_decode=dict(batch=1, grid=latent_grid(9, 64, 96)),
        upsample=dict(batch=1, grid=latent_grid(9, 64, 96)),
    ),
    "cpu": dict(
        device="cpu", dtype="float32",
        transformer=transformer(num_layers=4, heads=8, head_dim=64, cross_dim=512),
        vae=vae_095(32),
        upsampler=spatial_upsampler(128),
        text_len=128, text_valid=40,
        # transformer step: batch 2 (a CFG pair), latent grid (F, H, W)
        step=dict(batch=2, grid=(3, 16, 16)),
        # sampling / end-to-end: pixels, frames, steps; CFG 3 (no STG: diffusers' LTXPipeline has none)
        sample=dict(height=256, width=384, frames=17, steps=4, guidance_scale=3.0),
        vae_decode=dict(batch=1, grid=latent_grid(17, 256, 384)),  # the sample's latents, (3, 8, 12)
        upsample=dict(batch=1, grid=latent_grid(17, 256, 384)),
    ),
    "cuda-2b": dict(
        device="cuda", dtype="bfloat16",
        transformer=transformer(num_layers=28, heads=32, head_dim=64, cross_dim=2048),
        vae=vae_095(128),
        upsampler=spatial_upsampler(512),
        text_len=128, text_valid=40,
        step=dict(batch=2, grid=latent_grid(121, 512, 768)),  # (16, 16, 24)
        sample=dict(height=512, width=768, frames=121, steps=20, guidance_scale=3.0),
        vae_decode=dict(batch=1, grid=latent_grid(121, 512, 768)),
        upsample=dict(batch=1, grid=latent_grid(121, 512, 768)),
    ),
    "cuda-13b": dict(
        device="cuda", dtype="bfloat16",
        transformer=transformer(num_layers=48, heads=32, head_dim=128, cross_dim=4096),
        vae=vae_095(128),
        upsampler=spatial_upsampler(512),
        text_len=128, text_valid=40,
        step=dict(batch=2, grid=latent_grid(121, 704, 1216)),  # (16, 22, 38)
        sample=dict(height=704, width=1216, frames=121, steps=20, guidance_scale=3.0),
        vae_decode=dict(batch=1, grid=latent_grid(121, 704, 1216)),
        # The multi-scale first pass's latents, (16, 11, 19): x2 makes the 22x38 grid of 1216x704.
        upsample=dict(batch=1, grid=latent_grid(121, 352, 608)),
    ),
}

MEASUREMENTS = ("step", "sample", "vae_decode", "upsample", "e2e", "lora", "gguf")
IMPLS = ("ours", "reference", "diffusers")
# --backend openvino: ours' transformer converted to OpenVINO (ltx_core.openvino) with fp32 or int8 weights, next to
# ours eager and the official implementation; the measurements that run the transformer (the VAE stays torch).
OV_IMPLS = ("ov_fp32", "ov_int8")
OPENVINO_DEFAULT_IMPLS = ("ours", *OV_IMPLS, "reference")
OV_MEASUREMENTS = ("step", "sample", "e2e")
OPENVINO_DEFAULT_MEASUREMENTS = ("step", "sample", "vae_decode", "e2e")
# Measurements that time variants of ours against each other instead of the three implementations:
# measurement -> (its variants, the variant the ratios divide by, the variant the others' outputs are compared to).
VARIANTS = {"lora": (("plain", "lora", "merged"), "plain", "merged"),
            "gguf": (("dense", "fp8", "q8_0", "q4_k", "diff_q8_0", "diff_q4_k"), "dense", "dense")}

# `lora`: one transformer step at the `step` shape without a LoRA, with a LoRA applied at compute time
# (ltx_core.lora.applied_loras), and with the same LoRA merged into the weights (W += up @ down, computed once).
# The LoRA is what LTX-Video's trainer makes: on these layers of every block (alpha = rank: scale 1), its rank this
# fraction of the blocks' width: rank 128 on the 2B's 2048 (the 13B distilled LoRA, 128 on 4096, is half as dense),
# so a reduced-width model pays the LoRA's real share of the work.
LORA_RANK_PER_WIDTH = 1 / 16
LORA_LAYERS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k", "attn2.to_v",
               "attn2.to_out.0", "ff.net.0.proj", "ff.net.2")

# `gguf`: one transformer step at the `step` shape with the block Linear weights held in the config's dtype (dense),
# in float8_e4m3fn (upcast per layer), and as GGUF files of these types, read by ours and by diffusers (diff_*).
GGUF_TYPES = {"q8_0": "Q8_0", "q4_k": "Q4_K"}  # variant (without diff_) -> GGUF type
# A GGUF file carries no config: ours' loader assumes the releases' 32 heads (`detect.transformer_config_from_shapes`).
GGUF_HEADS = 32


def gguf(cfg: dict) -> dict:
    """`cfg` with its transformer split into GGUF_HEADS heads of the same total width, so that a GGUF file of it
    reads back as the same model (a no-op for the released shapes, which have 32 heads)."""
    cfg = copy.deepcopy(cfg)
    t = cfg["transformer"]
    width = t["num_attention_heads"] * t["attention_head_dim"]
    if width % GGUF_HEADS:
        raise ValueError(f"the gguf measurement needs a width divisible by {GGUF_HEADS}, got {width}")
    t.update(num_attention_heads=GGUF_HEADS, attention_head_dim=width // GGUF_HEADS)
    return cfg


def get(name: str) -> dict:
    return copy.deepcopy(CONFIGS[name])
