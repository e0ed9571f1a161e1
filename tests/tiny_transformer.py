"""Official-implementation (`ltx_video`) transformers for tests: tiny ones with every parameter random,
and the full 2B/13B metadata configs.

A config here is what a checkpoint stores in its metadata "transformer" section: every
`Transformer3DModel.__init__` argument, including the ones it ignores, plus diffusers' private keys.
"""
import copy

import torch
from einops import rearrange

# Fields shared by every released LTX-Video checkpoint.
_COMMON = {
    "_class_name": "Transformer3DModel",
    "_diffusers_version": "0.25.1",
    "in_channels": 128,
    "out_channels": 128,
    "dropout": 0.0,
    "norm_num_groups": 32,
    "attention_bias": True,
    "num_vector_embeds": None,
    "activation_fn": "gelu-approximate",
    "num_embeds_ada_norm": 1000,
    "use_linear_projection": False,
    "only_cross_attention": False,
    "double_self_attention": False,
    "upcast_attention": False,
    "adaptive_norm": "single_scale_shift",
    "standardization_norm": "rms_norm",
    "norm_elementwise_affine": False,
    "norm_eps": 1e-6,
    "attention_type": "default",
    "use_tpu_flash_attention": False,
    "qk_norm": "rms_norm",
    "positional_embedding_type": "rope",
    "positional_embedding_theta": 10000.0,
    "positional_embedding_max_pos": [20, 2048, 2048],
    "timestep_scale_multiplier": 1000,
}

FULL_2B_CONFIG = {
    **_COMMON,
    "num_layers": 28,
    "num_attention_heads": 32,
    "attention_head_dim": 64,
    "cross_attention_dim": 2048,
    "caption_channels": 4096,
    "causal_temporal_positioning": False,
}
FULL_13B_CONFIG = {
    **_COMMON,
    "num_layers": 48,
    "num_attention_heads": 32,
    "attention_head_dim": 128,
    "cross_attention_dim": 4096,
    "caption_channels": 4096,
    "causal_temporal_positioning": True,
}
FULL_PARAMETER_COUNTS = {"2b": 1_923_385_472, "13b": 13_042_569_344}

# Same structure as the full models, shrunk. Widths keep the full models' `inner_dim % 6`
# (2048 % 6 == 2, 4096 % 6 == 4) so the RoPE padding path is exercised the same way.
_TINY = {
    "2b": {"num_layers": 2, "num_attention_heads": 4, "attention_head_dim": 8, "caption_channels": 32},  # 32 % 6 == 2
    "13b": {"num_layers": 3, "num_attention_heads": 4, "attention_head_dim": 16, "caption_channels": 32},  # 64 % 6 == 4
}


def full_config(family: str) -> dict:
    return copy.deepcopy({"2b": FULL_2B_CONFIG, "13b": FULL_13B_CONFIG}[family])


def tiny_config(family: str = "2b", causal_temporal_positioning: bool = False, **overrides) -> dict:
    cfg = full_config(family)
    cfg.update(_TINY[family])
    cfg["cross_attention_dim"] = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    cfg["causal_temporal_positioning"] = causal_temporal_positioning
    cfg.update(overrides)
    return cfg


def build_reference(config: dict, seed: int = 0):
    """The official model for `config`, every parameter drawn from a seeded generator: the official init
    zeroes some tables and biases, which would hide mistakes in the code that uses them."""
    from ltx_video.models.transformers.transformer3d import Transformer3DModel

    args = {k: v for k, v in config.items() if not k.startswith("_")}
    model = Transformer3DModel(**args)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if p.ndim == 2 and not name.endswith("scale_shift_table"):
                p.copy_(noise / p.shape[1] ** 0.5)  # weights: keep activations O(1)
            elif name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * noise)
            elif name.endswith("scale_shift_table"):
                p.copy_(0.2 * noise)
            else:
                p.copy_(0.1 * noise)  # biases
    return model.eval()


def tiny_reference(family: str = "2b", causal_temporal_positioning: bool = False, seed: int = 0, **overrides):
    """(official model, metadata config dict) for a tiny model of the given family."""
    cfg = tiny_config(family, causal_temporal_positioning, **overrides)
    return build_reference(cfg, seed), cfg


# ---------------------------------------------------------------- the official model, fed as its pipeline feeds it

B, F, H, W, L = 2, 3, 4, 5, 7
FRAME_RATE = 24.0


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def inputs(per_token: bool, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    latents = torch.randn(B, 128, F, H, W, generator=gen)
    context = torch.randn(B, L, 32, generator=gen)
    mask = torch.ones(B, L, dtype=torch.long)
    mask[1, 4:] = 0  # padded text positions in one row
    if per_token:
        timestep = torch.rand(B, F, H, W, generator=gen)
        timestep[:, 0] = 0.0  # a conditioned first frame, as the pipeline makes it
    else:
        timestep = torch.tensor([0.25, 0.9])
    return latents, timestep, context, mask


def pipeline_coords(latents: torch.Tensor, causal_fix: bool, frame_rate: float) -> torch.Tensor:
    """Token coordinates exactly as `LTXVideoPipeline` builds them."""
    from ltx_video.models.autoencoders.vae_encode import latent_to_pixel_coords_from_factors
    from ltx_video.models.transformers.symmetric_patchifier import SymmetricPatchifier

    _, latent_coords = SymmetricPatchifier(1).patchify(latents)
    coords = latent_to_pixel_coords_from_factors(latent_coords, (8, 32, 32), causal_fix).to(torch.float32)
    coords[:, 0] = coords[:, 0] * (1.0 / frame_rate)
    return coords


def reference_velocity(ref, latents, timestep, context, mask, causal_fix, skip_mask=None, strategy=None):
    from ltx_video.models.transformers.symmetric_patchifier import SymmetricPatchifier
    from ltx_video.utils.skip_layer_strategy import SkipLayerStrategy as RefSkipLayerStrategy

    tokens, _ = SymmetricPatchifier(1).patchify(latents)
    out = ref(
        tokens,
        indices_grid=pipeline_coords(latents, causal_fix, FRAME_RATE),
        encoder_hidden_states=context,
        timestep=timestep.reshape(latents.shape[0], -1),  # the pipeline passes (B, 1) or (B, N)
        encoder_attention_mask=mask,
        skip_layer_mask=skip_mask,
        skip_layer_strategy=None if strategy is None else RefSkipLayerStrategy[strategy.name],
        return_dict=False,
    )[0]
    return rearrange(out, "b (f h w) c -> b c f h w", f=latents.shape[2], h=latents.shape[3])
