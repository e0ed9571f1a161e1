"""Diffusers-format LTX-Video -> official names and configs.

Round trip with both oracles: a tiny official model (ltx_video) with random weights is written in official
file naming, converted to diffusers by diffusers' own single-file converters, loaded strictly into the
diffusers model built from a config.json describing the same architecture, and converted back by
ltx_core. The result must rebuild the official model bit-exactly and compute what it computes (and what
the diffusers model computes). Full-size layouts of every release are checked on the meta device.
"""
import json

import pytest
import torch

diffusers = pytest.importorskip("diffusers")
pytest.importorskip("ltx_video")

from diffusers import AutoencoderKLLTXVideo, LTXVideoTransformer3DModel  # noqa: E402
from diffusers.loaders.single_file_utils import (  # noqa: E402
    convert_ltx_transformer_checkpoint_to_diffusers,
    convert_ltx_vae_checkpoint_to_diffusers,
)
from ltx_video.models.autoencoders.causal_video_autoencoder import CausalVideoAutoencoder  # noqa: E402
from ltx_video.models.transformers.transformer3d import Transformer3DModel  # noqa: E402
from ltx_video.utils.diffusers_config_mapping import (  # noqa: E402
    DIFFUSERS_TRANSFORMER_CONFIG,
    DIFFUSERS_VAE_CONFIG,
    OURS_TRANSFORMER_CONFIG,
    OURS_VAE_CONFIG,
)

from ltx_core.loader.diffusers_format import (  # noqa: E402
    transformer_config_from_diffusers,
    transformer_key_from_diffusers,
    vae_config_from_diffusers,
    vae_key_map_from_diffusers,
)

# ------------------------------------------------------------------------------------------------
# Architectures: tiny widths, the real block structure of each release.
# ------------------------------------------------------------------------------------------------

_OFFICIAL_TRANSFORMER_COMMON = {
    "_class_name": "Transformer3DModel", "activation_fn": "gelu-approximate", "attention_bias": True,
    "attention_type": "default", "norm_elementwise_affine": False, "norm_eps": 1e-6, "qk_norm": "rms_norm",
    "standardization_norm": "rms_norm", "adaptive_norm": "single_scale_shift", "positional_embedding_type": "rope",
    "positional_embedding_theta": 10000.0, "positional_embedding_max_pos": [20, 2048, 2048],
    "timestep_scale_multiplier": 1000, "num_embeds_ada_norm": 1000, "in_channels": 8, "out_channels": 8,
    "caption_channels": 24,
}
TRANSFORMERS = {
    # 2B: 28 layers, head dim 64, cross-attention width = inner width.
    "2b": (dict(_OFFICIAL_TRANSFORMER_COMMON, num_layers=28, num_attention_heads=4, attention_head_dim=4,
                cross_attention_dim=16, causal_temporal_positioning=False),
           dict(num_layers=28, num_attention_heads=4, attention_head_dim=4, cross_attention_dim=16)),
    # 13B: 48 layers, head dim twice the 2B one.
    "13b": (dict(_OFFICIAL_TRANSFORMER_COMMON, num_layers=48, num_attention_heads=4, attention_head_dim=8,
                 cross_attention_dim=32, causal_temporal_positioning=True),
            dict(num_layers=48, num_attention_heads=4, attention_head_dim=8, cross_attention_dim=32)),
}
_DIFFUSERS_TRANSFORMER_COMMON = dict(in_channels=8, out_channels=8, caption_channels=24, patch_size=1, patch_size_t=1,
                                     activation_fn="gelu-approximate", qk_norm="rms_norm_across_heads",
                                     norm_elementwise_affine=False, norm_eps=1e-6, attention_bias=True,
                                     attention_out_bias=True)

_OFFICIAL_VAE_COMMON = {"_class_name": "CausalVideoAutoencoder", "dims": 3, "in_channels": 3, "out_channels": 3,
                        "latent_channels": 8, "patch_size": 4, "norm_layer": "pixel_norm", "latent_log_var": "uniform",
                        "use_quant_conv": False, "causal_decoder": False, "scaling_factor": 1.0,
                        "encoder_base_channels": 8, "decoder_base_channels": 8}
_LEGACY_ENCODER = [["res_x", 4], ["compress_all", 1], ["res_x_y", 1], ["res_x", 3], ["compress_all", 1],
                   ["res_x_y", 1], ["res_x", 3], ["compress_all", 1], ["res_x", 3], ["res_x", 4]]
_DIFFUSERS_VAE_COMMON = dict(in_channels=3, out_channels=3, latent_channels=8, patch_size=4, patch_size_t=1,
                             resnet_norm_eps=1e-6, scaling_factor=1.0, encoder_causal=True, decoder_causal=False)
VAES = {
    # 0.9.0: one legacy block list for both halves, no timestep conditioning.
    "0.9.0": (dict(_OFFICIAL_VAE_COMMON, blocks=_LEGACY_ENCODER),
              dict(_DIFFUSERS_VAE_COMMON, block_out_channels=(8, 16, 32, 32), layers_per_block=(4, 3, 3, 3, 4),
                   spatio_temporal_scaling=(True, True, True, False), decoder_block_out_channels=(8, 16, 32, 32),
                   decoder_layers_per_block=(4, 3, 3, 3, 4), decoder_spatio_temporal_scaling=(True, True, True, False),
                   decoder_inject_noise=(False,) * 5, upsample_residual=(False,) * 4, upsample_factor=(1,) * 4,
                   timestep_conditioning=False)),
    # 0.9.1: legacy encoder; residual decoder with noise injection and timestep conditioning.
    "0.9.1": (dict(_OFFICIAL_VAE_COMMON, encoder_blocks=_LEGACY_ENCODER, timestep_conditioning=True, decoder_blocks=[
                  ["res_x", {"num_layers": 5, "inject_noise": True}], ["compress_all", {"residual": True, "multiplier": 2}],
                  ["res_x", {"num_layers": 6, "inject_noise": True}], ["compress_all", {"residual": True, "multiplier": 2}],
                  ["res_x", {"num_layers": 7, "inject_noise": True}], ["compress_all", {"residual": True, "multiplier": 2}],
                  ["res_x", {"num_layers": 8, "inject_noise": False}]]),
              dict(_DIFFUSERS_VAE_COMMON, block_out_channels=(8, 16, 32, 32), layers_per_block=(4, 3, 3, 3, 4),
                   spatio_temporal_scaling=(True, True, True, False), decoder_block_out_channels=(16, 32, 64),
                   decoder_layers_per_block=(5, 6, 7, 8), decoder_spatio_temporal_scaling=(True, True, True),
                   decoder_inject_noise=(True, True, True, False), upsample_residual=(True, True, True),
                   upsample_factor=(2, 2, 2), timestep_conditioning=True)),
    # 0.9.5 to 0.9.8 (2B and 13B): space-to-depth encoder, residual decoder without noise.
    "0.9.5": (dict(_OFFICIAL_VAE_COMMON, timestep_conditioning=True, encoder_blocks=[
                  ["res_x", {"num_layers": 4}], ["compress_space_res", {"multiplier": 2}], ["res_x", {"num_layers": 6}],
                  ["compress_time_res", {"multiplier": 2}], ["res_x", {"num_layers": 6}],
                  ["compress_all_res", {"multiplier": 2}], ["res_x", {"num_layers": 2}],
                  ["compress_all_res", {"multiplier": 2}], ["res_x", {"num_layers": 2}]],
                  decoder_blocks=[["res_x", {"num_layers": 5, "inject_noise": False}],
                                  ["compress_all", {"residual": True, "multiplier": 2}],
                                  ["res_x", {"num_layers": 5, "inject_noise": False}],
                                  ["compress_all", {"residual": True, "multiplier": 2}],
                                  ["res_x", {"num_layers": 5, "inject_noise": False}],
                                  ["compress_all", {"residual": True, "multiplier": 2}],
                                  ["res_x", {"num_layers": 5, "inject_noise": False}]]),
              dict(_DIFFUSERS_VAE_COMMON, block_out_channels=(8, 16, 32, 64, 128),
                   down_block_types=("LTXVideo095DownBlock3D",) * 4,
                   downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
                   layers_per_block=(4, 6, 6, 2, 2), spatio_temporal_scaling=(True,) * 4,
                   decoder_block_out_channels=(16, 32, 64), decoder_layers_per_block=(5, 5, 5, 5),
                   decoder_spatio_temporal_scaling=(True,) * 3, decoder_inject_noise=(False,) * 4,
                   upsample_residual=(True,) * 3, upsample_factor=(2,) * 3, timestep_conditioning=True)),
}

# Real diffusers config.json contents (Lightricks/LTX-Video in diffusers layout, and the 0.9.7 13B).
REAL_VAE_CONFIGS = {
    "0.9.0": dict(DIFFUSERS_VAE_CONFIG),
    "0.9.1": dict(DIFFUSERS_VAE_CONFIG, decoder_block_out_channels=[256, 512, 1024],
                  decoder_layers_per_block=[5, 6, 7, 8], decoder_spatio_temporal_scaling=[True, True, True],
                  decoder_inject_noise=[True, True, True, False], upsample_residual=[True, True, True],
                  upsample_factor=[2, 2, 2], timestep_conditioning=True),
    "0.9.5": dict(DIFFUSERS_VAE_CONFIG, block_out_channels=[128, 256, 512, 1024, 2048],
                  down_block_types=["LTXVideo095DownBlock3D"] * 4,
                  downsample_type=["spatial", "temporal", "spatiotemporal", "spatiotemporal"],
                  layers_per_block=[4, 6, 6, 2, 2], spatio_temporal_scaling=[True] * 4,
                  decoder_block_out_channels=[256, 512, 1024], decoder_layers_per_block=[5, 5, 5, 5],
                  decoder_spatio_temporal_scaling=[True] * 3, decoder_inject_noise=[False] * 4,
                  upsample_residual=[True] * 3, upsample_factor=[2] * 3, timestep_conditioning=True,
                  spatial_compression_ratio=32, temporal_compression_ratio=8),
}
REAL_TRANSFORMER_CONFIGS = {
    "2b": dict(DIFFUSERS_TRANSFORMER_CONFIG),
    "13b": dict(DIFFUSERS_TRANSFORMER_CONFIG, num_layers=48, attention_head_dim=128, cross_attention_dim=4096),
}


def _randomise(model: torch.nn.Module, seed: int):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def _saved_config(model) -> dict:
    """The model's config as save_pretrained writes it to config.json."""
    return json.loads(model.to_json_string())


def _rel_err(a, b) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def _normalise_blocks(blocks, decoder: bool):
    """Block lists with every default spelled out, so equal lists mean equal official models."""
    out = []
    for name, params in blocks:
        params = {"num_layers": params} if isinstance(params, int) else dict(params)
        if name in ("res_x", "attn_res_x"):
            p = {"num_layers": params["num_layers"]}
        elif name == "res_x_y":
            p = {"multiplier": params.get("multiplier", 2)}
        elif name.endswith("_res"):
            p = {"multiplier": params.get("multiplier", 2)}
        elif decoder and name == "compress_all":
            p = {"residual": params.get("residual", False), "multiplier": params.get("multiplier", 1)}
        else:
            p = {}
        if decoder and name in ("res_x", "attn_res_x", "res_x_y"):
            p["inject_noise"] = params.get("inject_noise", False)
        out.append((name, p))
    return out


def _official_vae_meaning(cfg: dict) -> dict:
    """What CausalVideoAutoencoder.from_config makes of a config (its defaults applied)."""
    return {
        "encoder_blocks": _normalise_blocks(cfg.get("encoder_blocks", cfg.get("blocks")), decoder=False),
        "decoder_blocks": _normalise_blocks(cfg.get("decoder_blocks", cfg.get("blocks")), decoder=True),
        **{k: cfg.get(k, d) for k, d in (
            ("dims", None), ("in_channels", 3), ("out_channels", 3), ("latent_channels", None), ("patch_size", 1),
            ("norm_layer", "group_norm"), ("latent_log_var", "per_channel"), ("use_quant_conv", True),
            ("causal_decoder", False), ("timestep_conditioning", False), ("spatial_padding_mode", "zeros"),
            ("encoder_base_channels", 128), ("decoder_base_channels", 128), ("normalize_latent_channels", False))},
    }


# ------------------------------------------------------------------------------------------------
# Transformer
# ------------------------------------------------------------------------------------------------


def _transformer_pair(variant):
    """(tiny official transformer, the same weights as a diffusers model made by diffusers' own converter)."""
    official_cfg, arch = TRANSFORMERS[variant]
    torch.manual_seed(0)
    original = Transformer3DModel.from_config(dict(official_cfg)).eval()
    _randomise(original, seed=1)
    official_file = {"model.diffusion_model." + k: v for k, v in original.state_dict().items()}
    diffusers_sd = convert_ltx_transformer_checkpoint_to_diffusers(dict(official_file))
    d_model = LTXVideoTransformer3DModel(**_DIFFUSERS_TRANSFORMER_COMMON, **arch).eval()
    d_model.load_state_dict(diffusers_sd, strict=True)
    return original, d_model


def _transformer_inputs(channels=8, context_dim=24):
    g = torch.Generator().manual_seed(2)
    f, h, w = 3, 2, 3
    n = f * h * w
    x = torch.randn(2, n, channels, generator=g)
    grid = torch.stack(torch.meshgrid(torch.arange(f) * 8.0 / 25, torch.arange(h) * 32.0, torch.arange(w) * 32.0,
                                      indexing="ij")).reshape(3, n)[None].repeat(2, 1, 1)
    context = torch.randn(2, 5, context_dim, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    t = torch.tensor([0.3, 0.9])
    return x, grid, context, mask, t


@pytest.mark.parametrize("variant", sorted(TRANSFORMERS))
def test_transformer_round_trip(variant):
    official_cfg, _ = TRANSFORMERS[variant]
    original, d_model = _transformer_pair(variant)
    original_sd = original.state_dict()
    d_cfg = _saved_config(d_model)

    cfg = transformer_config_from_diffusers(d_cfg)
    for name, value in official_cfg.items():
        if name != "num_embeds_ada_norm":  # unused by the model; not in diffusers' vocabulary
            assert cfg[name] == value, name
    converted = {transformer_key_from_diffusers(k): v for k, v in d_model.state_dict().items()}
    rebuilt = Transformer3DModel.from_config(cfg).eval()
    rebuilt.load_state_dict(converted, strict=True)
    for k, v in rebuilt.state_dict().items():
        assert torch.equal(v, original_sd[k]), k

    x, grid, context, mask, t = _transformer_inputs()
    with torch.no_grad():
        want = original(x, grid, encoder_hidden_states=context, timestep=t, encoder_attention_mask=mask).sample
        got = rebuilt(x, grid, encoder_hidden_states=context, timestep=t, encoder_attention_mask=mask).sample
        # Diffusers takes the official positions as video_coords and a timestep already scaled by 1000.
        theirs = d_model(x, context, t * 1000, mask, video_coords=grid).sample
    assert _rel_err(got, want) <= 1e-6
    assert _rel_err(theirs, want) <= 1e-4


@pytest.mark.parametrize("variant", sorted(REAL_TRANSFORMER_CONFIGS))
def test_transformer_real_configs_full_size(variant):
    d_cfg = REAL_TRANSFORMER_CONFIGS[variant]
    cfg = transformer_config_from_diffusers(d_cfg)
    if variant == "2b":  # the official 0.9.0 mapping, field for field where the model reads it
        for name in ("num_layers", "num_attention_heads", "attention_head_dim", "cross_attention_dim", "caption_channels",
                     "in_channels", "out_channels", "activation_fn", "attention_bias", "norm_elementwise_affine",
                     "norm_eps", "qk_norm", "standardization_norm", "positional_embedding_type",
                     "positional_embedding_theta", "positional_embedding_max_pos", "timestep_scale_multiplier"):
            assert cfg[name] == OURS_TRANSFORMER_CONFIG[name], name
    with torch.device("meta"):
        d_model = LTXVideoTransformer3DModel.from_config(d_cfg)
        official = Transformer3DModel.from_config(cfg)
    d_shapes = {k: v.shape for k, v in d_model.state_dict().items()}
    mapped = {transformer_key_from_diffusers(k): s for k, s in d_shapes.items()}
    assert mapped == {k: v.shape for k, v in official.state_dict().items()}
    # And it is the inverse of diffusers' own converter on the official names.
    back = convert_ltx_transformer_checkpoint_to_diffusers({"model.diffusion_model." + k: k for k in mapped})
    assert all(transformer_key_from_diffusers(d) == o for d, o in back.items())
    assert len(back) == len(mapped)


# ------------------------------------------------------------------------------------------------
# VAE
# ------------------------------------------------------------------------------------------------


def _diffusers_vae_from_official_file(official_file: dict, res_style: bool) -> dict:
    """diffusers' converter picks its 0.9.5 renames when encoder.conv_out has 2048 input channels; a tiny
    model has fewer, so the detector is shown a zero-size tensor of that shape and the real one put back."""
    state = dict(official_file)
    real = state["vae.encoder.conv_out.conv.weight"]
    if res_style:
        state["vae.encoder.conv_out.conv.weight"] = real.new_empty((real.shape[0], 2048, 0, 0, 0))
    converted = convert_ltx_vae_checkpoint_to_diffusers(state)
    converted["encoder.conv_out.conv.weight"] = real
    return converted


def _vae_pair(version):
    """(tiny official VAE, its statistics, the same weights as a diffusers model made by diffusers' converter)."""
    official_cfg, d_arch = VAES[version]
    original = CausalVideoAutoencoder.from_config(json.loads(json.dumps(official_cfg))).eval()
    _randomise(original, seed=3)
    latent = official_cfg["latent_channels"]
    g = torch.Generator().manual_seed(4)
    stats = {"std-of-means": torch.rand(latent, generator=g) + 0.5, "mean-of-means": torch.randn(latent, generator=g),
             # Real files carry three more statistics that neither implementation uses.
             "channel": torch.arange(latent, dtype=torch.float32), "mean-of-stds": torch.rand(latent, generator=g),
             "mean-of-stds_over_std-of-means": torch.rand(latent, generator=g)}
    original_sd = original.state_dict()
    official_file = {"vae." + k: v for k, v in original_sd.items()}
    official_file.update({"vae.per_channel_statistics." + k: v for k, v in stats.items()})

    diffusers_sd = _diffusers_vae_from_official_file(official_file, res_style=version == "0.9.5")
    d_model = AutoencoderKLLTXVideo(**d_arch).eval()
    d_model.load_state_dict(diffusers_sd, strict=True)
    return original, stats, d_model


@pytest.mark.parametrize("version", sorted(VAES))
def test_vae_round_trip(version):
    official_cfg, _ = VAES[version]
    original, stats, d_model = _vae_pair(version)
    original_sd = original.state_dict()
    latent = official_cfg["latent_channels"]
    g = torch.Generator().manual_seed(4)
    d_cfg = _saved_config(d_model)

    cfg = vae_config_from_diffusers(d_cfg)
    assert _official_vae_meaning(cfg) == _official_vae_meaning(official_cfg)
    d_sd = d_model.state_dict()
    key_map = vae_key_map_from_diffusers(list(d_sd), d_cfg)
    converted = {key_map[k]: v for k, v in d_sd.items()}
    rebuilt = CausalVideoAutoencoder.from_config(json.loads(json.dumps(cfg))).eval()
    rebuilt.load_state_dict(converted, strict=True)
    rebuilt_sd = rebuilt.state_dict()
    assert set(rebuilt_sd) == set(original_sd) | {"std_of_means", "mean_of_means"}
    for k, v in original_sd.items():
        assert torch.equal(rebuilt_sd[k], v), k
    assert torch.equal(rebuilt.std_of_means, stats["std-of-means"])
    assert torch.equal(rebuilt.mean_of_means, stats["mean-of-means"])

    video = torch.randn(1, 3, 9, 32, 32, generator=g)
    z = torch.randn(1, latent, 2, 1, 2, generator=g)
    target = (1, 3, 9, 32, 64)
    t = torch.tensor([0.05])
    with torch.no_grad():
        assert _rel_err(rebuilt.encoder(video), original.encoder(video)) <= 1e-6
        decoded = {}
        for name, run in (("original", lambda: original.decoder(z, target, timestep=t)),
                          ("rebuilt", lambda: rebuilt.decoder(z, target, timestep=t)),
                          ("diffusers", lambda: d_model.decoder(z, t))):
            torch.manual_seed(5)  # the 0.9.1 decoder injects noise; every implementation draws it alike
            decoded[name] = run()
        theirs_latent = d_model.encoder(video)
    assert _rel_err(decoded["rebuilt"], decoded["original"]) <= 1e-6
    assert _rel_err(decoded["diffusers"], decoded["original"]) <= 1e-4
    assert _rel_err(theirs_latent, original.encoder(video)) <= 1e-4


@pytest.mark.parametrize("version", sorted(REAL_VAE_CONFIGS))
def test_vae_real_configs_full_size(version):
    d_cfg = REAL_VAE_CONFIGS[version]
    cfg = vae_config_from_diffusers(d_cfg)
    assert cfg["latent_channels"] == 128 and cfg["patch_size"] == 4
    if version == "0.9.0":  # the official 0.9.0 mapping
        assert _official_vae_meaning(cfg) == _official_vae_meaning(OURS_VAE_CONFIG)
    with torch.device("meta"):
        d_model = AutoencoderKLLTXVideo.from_config(d_cfg)
        official = CausalVideoAutoencoder.from_config(json.loads(json.dumps(cfg)))
    d_shapes = {k: v.shape for k, v in d_model.state_dict().items()}
    key_map = vae_key_map_from_diffusers(list(d_shapes), d_cfg)
    mapped = {key_map[k]: s for k, s in d_shapes.items()}
    stats = {"per_channel_statistics.std-of-means", "per_channel_statistics.mean-of-means"}
    assert set(mapped) - set(official.state_dict()) == stats
    assert {k: v for k, v in mapped.items() if k not in stats} == {k: v.shape for k, v in official.state_dict().items()}
    # The inverse of diffusers' own converter applied to the official file's names.
    official_file = {"vae." + k: torch.empty(s, device="meta") for k, s in mapped.items()}
    back = convert_ltx_vae_checkpoint_to_diffusers(dict(official_file))  # it empties its argument
    assert set(back) == set(key_map)
    for d_key, tensor in back.items():
        assert tensor is official_file["vae." + key_map[d_key]], d_key


# ------------------------------------------------------------------------------------------------
# What the official format cannot express
# ------------------------------------------------------------------------------------------------

_VAE_095 = REAL_VAE_CONFIGS["0.9.5"]


@pytest.mark.parametrize("change, field", [
    ({"patch_size": 2}, "patch_size"),
    ({"patch_size_t": 2}, "patch_size_t"),
    ({"qk_norm": "rms_norm"}, "qk_norm"),
    ({"activation_fn": "swiglu"}, "activation_fn"),
    ({"attention_out_bias": False}, "attention_out_bias"),
    ({"_class_name": "LTX2VideoTransformer3DModel"}, "_class_name"),
])
def test_transformer_unsupported_configs(change, field):
    with pytest.raises(ValueError, match=field):
        transformer_config_from_diffusers(dict(DIFFUSERS_TRANSFORMER_CONFIG, **change))


@pytest.mark.parametrize("change, field", [
    ({"patch_size_t": 2}, "patch_size_t"),
    ({"encoder_causal": False}, "encoder_causal"),
    ({"resnet_norm_eps": 1e-5}, "resnet_norm_eps"),
    ({"downsample_type": ["conv", "temporal", "spatiotemporal", "spatiotemporal"]}, "downsample_type"),
    ({"downsample_type": ["spatial", "pooling", "spatiotemporal", "spatiotemporal"]}, "downsample_type"),
    ({"down_block_types": ["LTXVideoDownBlock3D", "Other", "LTXVideo095DownBlock3D", "LTXVideo095DownBlock3D"]},
     "down_block_types"),
    ({"block_out_channels": [128, 256, 512, 1024, 1536]}, "block_out_channels"),
    ({"decoder_layers_per_block": [5, 5, 5]}, "decoder_layers_per_block"),
    ({"upsample_factor": [2, 2, 3]}, "upsample_factor"),
    ({"decoder_block_out_channels": [128, 512, 1024], "upsample_factor": [1, 2, 2]}, "decoder_block_out_channels"),
    ({"encoder_spatial_padding_mode": "zeros", "decoder_spatial_padding_mode": "reflect"}, "padding_mode"),
    ({"_class_name": "AutoencoderKLLTX2Video"}, "_class_name"),
])
def test_vae_unsupported_configs(change, field):
    with pytest.raises(ValueError, match=field):
        vae_config_from_diffusers(dict(_VAE_095, **change))


def test_vae_padding_mode_named_by_newer_configs_is_kept():
    cfg = vae_config_from_diffusers(dict(_VAE_095, encoder_spatial_padding_mode="reflect",
                                         decoder_spatial_padding_mode="reflect"))
    assert cfg["spatial_padding_mode"] == "reflect"
    assert vae_config_from_diffusers(_VAE_095)["spatial_padding_mode"] == "zeros"


def test_vae_key_with_no_place_in_the_layout_is_named():
    good = ["encoder.conv_in.conv.weight", "decoder.mid_block.resnets.0.conv1.conv.weight"]
    assert vae_key_map_from_diffusers(good, _VAE_095) == {
        "encoder.conv_in.conv.weight": "encoder.conv_in.conv.weight",
        "decoder.mid_block.resnets.0.conv1.conv.weight": "decoder.up_blocks.0.res_blocks.0.conv1.conv.weight"}
    with pytest.raises(ValueError, match=r"decoder\.up_blocks\.7\.resnets\.0\.conv1\.conv\.weight"):
        vae_key_map_from_diffusers(good + ["decoder.up_blocks.7.resnets.0.conv1.conv.weight"], _VAE_095)


def test_transformer_keys_rename_whole_segments_only():
    assert transformer_key_from_diffusers("proj_in.weight") == "patchify_proj.weight"
    assert transformer_key_from_diffusers("time_embed.emb.timestep_embedder.linear_1.bias") == \
        "adaln_single.emb.timestep_embedder.linear_1.bias"
    assert transformer_key_from_diffusers("transformer_blocks.3.attn2.norm_k.weight") == \
        "transformer_blocks.3.attn2.k_norm.weight"
    assert transformer_key_from_diffusers("transformer_blocks.3.ff.net.0.proj.weight") == \
        "transformer_blocks.3.ff.net.0.proj.weight"


def test_vae_early_091_noise_scale_names():
    cfg = REAL_VAE_CONFIGS["0.9.1"]
    assert vae_key_map_from_diffusers(["decoder.up_blocks.0.resnets.2.scale1", "decoder.mid_block.resnets.0.scale2"], cfg) == {
        "decoder.up_blocks.0.resnets.2.scale1": "decoder.up_blocks.2.res_blocks.2.per_channel_scale1",
        "decoder.mid_block.resnets.0.scale2": "decoder.up_blocks.0.res_blocks.0.per_channel_scale2"}


# ------------------------------------------------------------------------------------------------
# load_checkpoint on a diffusers-format folder, end to end
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant,version", [("2b", "0.9.5"), ("13b", "0.9.1")])
def test_load_checkpoint_reads_a_diffusers_folder(tmp_path, variant, version):
    from ltx_core import load_checkpoint

    original_t, d_transformer = _transformer_pair(variant)
    original_v, _, d_vae = _vae_pair(version)
    d_transformer.save_pretrained(tmp_path / "transformer")
    d_vae.save_pretrained(tmp_path / "vae")
    ck = load_checkpoint(tmp_path)
    assert ck.config_source == "diffusers"

    x, grid, context, mask, t = _transformer_inputs()
    f, h, w = 3, 2, 3
    latents = x.reshape(2, f, h, w, 8).permute(0, 4, 1, 2, 3)
    if ck.transformer.config.causal_temporal_positioning:  # the pipeline then shifts frame times by one frame
        grid = grid.clone()
        grid[:, 0] = (grid[:, 0] * 25 + 1 - 8).clamp(min=0) / 25
    with torch.no_grad():
        want = original_t(x, grid, encoder_hidden_states=context, timestep=t, encoder_attention_mask=mask).sample
        got = ck.transformer(latents, t, context, mask, frame_rate=25.0)
    assert _rel_err(got.permute(0, 2, 3, 4, 1).reshape(2, -1, 8), want) <= 1e-5

    z = torch.randn(1, VAES[version][0]["latent_channels"], 2, 1, 2, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        for name, p in original_v.named_parameters():
            if "per_channel_scale" in name:  # 0.9.1 noise injection off so both decodes are comparable
                p.zero_()
                ck.vae.get_parameter(name).zero_()
        want = original_v.decoder(z, (1, 3, 9, 32, 64), timestep=torch.tensor([0.05]))
        # ck.vae.decode un-normalises first; feed it the normalised form of z.
        stats = ck.vae.per_channel_statistics
        z_norm = (z - stats.get_buffer("mean-of-means").view(1, -1, 1, 1, 1)) / stats.get_buffer("std-of-means").view(1, -1, 1, 1, 1)
        got = ck.vae.decode(z_norm, timestep=0.05)
    assert _rel_err(got, want) <= 1e-5
