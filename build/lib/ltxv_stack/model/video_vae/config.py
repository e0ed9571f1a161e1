"""The VAE's hyper-parameters, read from a checkpoint's "vae" metadata section.

Field names, meanings and defaults are those of the official `CausalVideoAutoencoder.from_config`, so a
field missing from the metadata means what it means there. Fields the official model ignores
(`_class_name`, `scaling_factor`, ...) are ignored here too.
"""
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Blocks used by the released checkpoints (0.9.0 legacy `blocks`, 0.9.1, 0.9.5-0.9.8), per side.
# Value: the parameters the block reads and their defaults.
ENCODER_BLOCKS = {
    "res_x": {"num_layers": 1},
    "res_x_y": {"multiplier": 2},
    "compress_all": {},
    "compress_all_res": {"multiplier": 2},
    "compress_space_res": {"multiplier": 2},
    "compress_time_res": {"multiplier": 2},
}
DECODER_BLOCKS = {
    "res_x": {"num_layers": 1, "inject_noise": False},
    "res_x_y": {"multiplier": 2},
    "compress_all": {"multiplier": 1, "residual": False},
}

# (time, height, width) stride of each resampling block; the decoder's compress_all undoes the encoder's.
STRIDES = {
    "compress_all": (2, 2, 2),
    "compress_all_res": (2, 2, 2),
    "compress_space_res": (1, 2, 2),
    "compress_time_res": (2, 1, 1),
}

NORM_LAYERS = ("pixel_norm", "group_norm", "layer_norm")
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
# How the encoder stores the log-variance after the latent means. "none" is not offered: the official
# distribution would then split the latent channels themselves in half.
LOG_VAR_LAYOUTS = ("uniform", "constant", "per_channel")


@dataclass(frozen=True)
class BlockSpec:
    name: str
    num_layers: int = 1
    multiplier: int = 1
    residual: bool = False
    inject_noise: bool = False

    @property
    def stride(self) -> tuple[int, int, int]:
        return STRIDES.get(self.name, (1, 1, 1))


def _parse_blocks(side: str, raw: Any, allowed: Mapping[str, Mapping[str, Any]]) -> tuple[BlockSpec, ...]:
    field = f"{side}_blocks"
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ValueError(f"vae config: {field} must be a non-empty list of [name, params], got {raw!r}")
    specs = []
    for item in raw:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise ValueError(f"vae config: {field} entry {item!r} is not a [name, params] pair")
        name, params = item
        if name not in allowed:
            raise ValueError(
                f"vae config: {field} has unsupported block {name!r}; supported {side} blocks: {sorted(allowed)}"
            )
        # The official format allows a bare int, meaning the number of layers.
        params = {"num_layers": params} if isinstance(params, int) else dict(params or {})
        values = dict(allowed[name])
        for key, value in params.items():
            # Like the official code, ignore parameters a block does not read, except noise on a width-changing
            # block: the official one would fail at run time (its noise scales have the input's width).
            if key in values:
                values[key] = value
            elif side == "decoder" and name == "res_x_y" and key == "inject_noise" and value:
                raise ValueError(f"vae config: {field} block {name!r} does not support inject_noise=True")
        for key in ("num_layers", "multiplier"):
            if key in values and (not isinstance(values[key], int) or values[key] < 1):
                raise ValueError(
                    f"vae config: {field} block {name!r} needs a positive integer {key}, got {values[key]!r}"
                )
        specs.append(BlockSpec(name=name, **values))
    return tuple(specs)


def _choice(d: Mapping[str, Any], name: str, default: Any, allowed) -> Any:
    value = d.get(name, default)
    if value not in allowed:
        raise ValueError(f"vae config: unsupported {name}={value!r}; supported: {list(allowed)}")
    return value


@dataclass(frozen=True)
class VideoVAEConfig:
    latent_channels: int
    encoder_blocks: tuple[BlockSpec, ...]
    decoder_blocks: tuple[BlockSpec, ...]
    in_channels: int = 3
    out_channels: int = 3
    patch_size: int = 1
    norm_layer: str = "group_norm"
    latent_log_var: str = "per_channel"
    encoder_base_channels: int = 128
    decoder_base_channels: int = 128
    spatial_padding_mode: str = "zeros"
    causal_decoder: bool = False
    timestep_conditioning: bool = False

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "VideoVAEConfig":
        dims = d.get("dims", 3)
        if dims not in (3, [3], (3,)):
            raise ValueError(f"vae config: unsupported dims={dims!r}; supported: [3]")
        if d.get("use_quant_conv", True):
            raise ValueError("vae config: unsupported use_quant_conv=True (the official default); supported: [False]")
        if d.get("normalize_latent_channels", False):
            raise ValueError("vae config: unsupported normalize_latent_channels=True; supported: [False]")
        if "latent_channels" not in d:
            raise ValueError("vae config: latent_channels is required")
        legacy = d.get("blocks")
        encoder_raw = d.get("encoder_blocks", legacy)
        decoder_raw = d.get("decoder_blocks", legacy)
        if encoder_raw is None or decoder_raw is None:
            raise ValueError("vae config: encoder_blocks and decoder_blocks (or the legacy blocks) are required")
        log_var_default = "per_channel" if d.get("double_z", True) else "none"
        patch_size = d.get("patch_size", 1)
        if not isinstance(patch_size, int) or patch_size < 1:
            raise ValueError(f"vae config: patch_size must be a positive integer, got {patch_size!r}")
        cfg = cls(
            latent_channels=int(d["latent_channels"]),
            encoder_blocks=_parse_blocks("encoder", encoder_raw, ENCODER_BLOCKS),
            decoder_blocks=_parse_blocks("decoder", decoder_raw, DECODER_BLOCKS),
            in_channels=int(d.get("in_channels", 3)),
            out_channels=int(d.get("out_channels", 3)),
            patch_size=patch_size,
            norm_layer=_choice(d, "norm_layer", "group_norm", NORM_LAYERS),
            latent_log_var=_choice(d, "latent_log_var", log_var_default, LOG_VAR_LAYOUTS),
            encoder_base_channels=int(d.get("encoder_base_channels", 128)),
            decoder_base_channels=int(d.get("decoder_base_channels", 128)),
            spatial_padding_mode=_choice(d, "spatial_padding_mode", "zeros", PADDING_MODES),
            causal_decoder=bool(d.get("causal_decoder", False)),
            timestep_conditioning=bool(d.get("timestep_conditioning", False)),
        )
        if cfg.compression("encoder") != cfg.compression("decoder"):
            raise ValueError(
                f"vae config: the decoder upsamples by {cfg.compression('decoder')} (time, height, width) but the "
                f"encoder downsamples by {cfg.compression('encoder')}"
            )
        return cfg

    @property
    def encoder_out_channels(self) -> int:
        """Means plus log-variance channels; only the means are ever used (encode returns the mode)."""
        log_var = self.latent_channels if self.latent_log_var == "per_channel" else 1
        return self.latent_channels + log_var

    def compression(self, side: str = "encoder") -> tuple[int, int, int]:
        """(time, height, width) factor between pixels and latents."""
        t = h = w = 1
        for block in self.encoder_blocks if side == "encoder" else self.decoder_blocks:
            st, sh, sw = block.stride
            t, h, w = t * st, h * sh, w * sw
        return t, h * self.patch_size, w * self.patch_size
