"""Official-implementation (`ltx_video`) VAEs for tests: tiny ones with the released block structure and
every parameter and statistic random, and the full metadata configs of each released layout.

Layouts: "0.9.0" (legacy `blocks`), "0.9.1" (timestep-conditioned decoder with `inject_noise`), "0.9.5"
(the `*_res` encoder and residual/multiplier decoder shared by 0.9.5 to 0.9.8, 2B and 13B).

A "file" state dict is what an official single-file checkpoint holds under "vae." (prefix stripped):
the module's parameters plus all five `per_channel_statistics.*` entries real files carry.
"""
import copy

import torch

LAYOUTS = ("0.9.0", "0.9.1", "0.9.5")

_COMMON = {
    "_class_name": "CausalVideoAutoencoder",
    "dims": 3,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 128,
    "scaling_factor": 1.0,
    "norm_layer": "pixel_norm",
    "patch_size": 4,
    "latent_log_var": "uniform",
    "use_quant_conv": False,
    "causal_decoder": False,
}
_LEGACY_ENCODER = [
    ["res_x", {"num_layers": 4}], ["compress_all", {}], ["res_x_y", 1], ["res_x", {"num_layers": 3}],
    ["compress_all", {}], ["res_x_y", 1], ["res_x", {"num_layers": 3}], ["compress_all", {}],
    ["res_x", {"num_layers": 3}], ["res_x", {"num_layers": 4}],
]
FULL_CONFIGS = {
    # As in ltx_video's diffusers_config_mapping (OURS_VAE_CONFIG) and ComfyUI's guess_config.
    "0.9.0": {
        **_COMMON,
        "blocks": [
            ["res_x", 4], ["compress_all", 1], ["res_x_y", 1], ["res_x", 3], ["compress_all", 1],
            ["res_x_y", 1], ["res_x", 3], ["compress_all", 1], ["res_x", 3], ["res_x", 4],
        ],
    },
    "0.9.1": {
        **_COMMON,
        "timestep_conditioning": True,
        "encoder_blocks": _LEGACY_ENCODER,
        "decoder_blocks": [
            ["res_x", {"num_layers": 5, "inject_noise": True}],
            ["compress_all", {"residual": True, "multiplier": 2}],
            ["res_x", {"num_layers": 6, "inject_noise": True}],
            ["compress_all", {"residual": True, "multiplier": 2}],
            ["res_x", {"num_layers": 7, "inject_noise": True}],
            ["compress_all", {"residual": True, "multiplier": 2}],
            ["res_x", {"num_layers": 8, "inject_noise": False}],
        ],
    },
    "0.9.5": {
        **_COMMON,
        "timestep_conditioning": True,
        "encoder_blocks": [
            ["res_x", {"num_layers": 4}], ["compress_space_res", {"multiplier": 2}],
            ["res_x", {"num_layers": 6}], ["compress_time_res", {"multiplier": 2}],
            ["res_x", {"num_layers": 6}], ["compress_all_res", {"multiplier": 2}],
            ["res_x", {"num_layers": 2}], ["compress_all_res", {"multiplier": 2}],
            ["res_x", {"num_layers": 2}],
        ],
        "decoder_blocks": [
            ["res_x", {"num_layers": 5, "inject_noise": False}],
            ["compress_all", {"residual": True, "multiplier": 2}],
            ["res_x", {"num_layers": 5, "inject_noise": False}],
            ["compress_all", {"residual": True, "multiplier": 2}],
            ["res_x", {"num_layers": 5, "inject_noise": False}],
            ["compress_all", {"residual": True, "multiplier": 2}],
            ["res_x", {"num_layers": 5, "inject_noise": False}],
        ],
        "spatial_padding_mode": "replicate",
    },
}
# (encoder, decoder) parameter counts of the full layouts, from the reference built on the meta device.
FULL_PARAMETER_COUNTS = {
    "0.9.0": (180_404_353, 238_789_296),
    "0.9.1": (180_404_353, 754_572_081),
    "0.9.5": (694_098_881, 552_814_641),
}
STATISTICS = ("channel", "mean-of-means", "mean-of-stds", "mean-of-stds_over_std-of-means", "std-of-means")

# The released block lists with fewer layers and 8 base channels (the 0.9.5 encoder still ends at 128).
_TINY = {
    "0.9.0": {
        "blocks": [
            ["res_x", 2], ["compress_all", 1], ["res_x_y", 1], ["res_x", 1], ["compress_all", 1],
            ["res_x_y", 1], ["res_x", 1], ["compress_all", 1], ["res_x", 1], ["res_x", 1],
        ],
    },
    "0.9.1": {
        "encoder_blocks": [
            ["res_x", {"num_layers": 1}], ["compress_all", {}], ["res_x_y", 1], ["res_x", {"num_layers": 1}],
            ["compress_all", {}], ["res_x_y", 1], ["res_x", {"num_layers": 1}], ["compress_all", {}],
            ["res_x", {"num_layers": 1}], ["res_x", {"num_layers": 1}],
        ],
        "decoder_blocks": [
            ["res_x", {"num_layers": 1, "inject_noise": True}],
            ["compress_all", {"residual": True, "multiplier": 2}],
            ["res_x", {"num_layers": 2, "inject_noise": True}],
            ["compress_all", {"residual": True, "multiplier": 2}],
            ["res_x", {"num_layers": 1, "inject_noise": True}],
            ["compress_all", {"residual": True, "multiplier": 2}],
            ["res_x", {"num_layers": 1, "inject_noise": False}],
        ],
    },
    "0.9.5": {
        "encoder_blocks": [
            ["res_x", {"num_layers": 2}], ["compress_space_res", {"multiplier": 2}],
            ["res_x", {"num_layers": 1}], ["compress_time_res", {"multiplier": 2}],
            ["res_x", {"num_layers": 1}], ["compress_all_res", {"multiplier": 2}],
            ["res_x", {"num_layers": 1}], ["compress_all_res", {"multiplier": 2}],
            ["res_x", {"num_layers": 1}],
        ],
        "decoder_blocks": [
            ["res_x", {"num_layers": 1, "inject_noise": False}],
            ["compress_all", {"residual": True, "multiplier": 2}],
            ["res_x", {"num_layers": 2, "inject_noise": False}],
            ["compress_all", {"residual": True, "multiplier": 2}],
            ["res_x", {"num_layers": 1, "inject_noise": False}],
            ["compress_all", {"residual": True, "multiplier": 2}],
            ["res_x", {"num_layers": 1, "inject_noise": False}],
        ],
    },
}


def full_config(layout: str) -> dict:
    return copy.deepcopy(FULL_CONFIGS[layout])


def tiny_config(layout: str, base_channels: int = 8, **overrides) -> dict:
    cfg = full_config(layout)
    for key in ("blocks", "encoder_blocks", "decoder_blocks"):
        cfg.pop(key, None)
    cfg.update(copy.deepcopy(_TINY[layout]))
    cfg["encoder_base_channels"] = cfg["decoder_base_channels"] = base_channels
    cfg.update(overrides)
    return cfg


def _randomise_(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Every parameter random, at scales that keep activations O(1) through the network."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            leaf = name.rsplit(".", 1)[-1]
            if name == "decoder.timestep_scale_multiplier":
                p.copy_(1000.0 * (1 + 0.3 * noise))
            elif leaf == "weight" and p.ndim >= 2:  # conv / linear
                p.copy_(noise / (p[0].numel() ** 0.5))
            elif leaf == "weight":  # norm affine
                p.copy_(1 + 0.2 * noise)
            elif leaf.startswith("per_channel_scale"):
                p.copy_(0.5 * noise)
            else:  # biases, scale/shift tables
                p.copy_(0.2 * noise)


def file_statistics(latent_channels: int, generator: torch.Generator) -> dict:
    std = 0.5 + torch.rand(latent_channels, generator=generator)
    mean = 0.3 * torch.randn(latent_channels, generator=generator)
    mean_of_stds = 0.5 + torch.rand(latent_channels, generator=generator)
    return {
        "per_channel_statistics.channel": torch.arange(latent_channels, dtype=torch.float32),
        "per_channel_statistics.mean-of-means": mean,
        "per_channel_statistics.mean-of-stds": mean_of_stds,
        "per_channel_statistics.mean-of-stds_over_std-of-means": mean_of_stds / std,
        "per_channel_statistics.std-of-means": std,
    }


def build_reference(config: dict, seed: int = 0):
    """(official model with random weights loaded through its own load_state_dict, the file's state dict)."""
    from ltx_video.models.autoencoders.causal_video_autoencoder import CausalVideoAutoencoder

    generator = torch.Generator().manual_seed(seed)
    model = CausalVideoAutoencoder.from_config(copy.deepcopy(config))
    _randomise_(model, generator)
    file_sd = {k: v.clone() for k, v in model.state_dict().items()}
    file_sd.update(file_statistics(config["latent_channels"], generator))
    model.load_state_dict(file_sd)
    return model.eval(), file_sd


def tiny_vae(layout: str, seed: int = 0, **overrides):
    """(reference model, config dict, file state dict) for a tiny model of `layout`."""
    config = tiny_config(layout, **overrides)
    model, file_sd = build_reference(config, seed)
    return model, config, file_sd
