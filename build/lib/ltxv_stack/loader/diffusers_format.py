"""Diffusers-format LTX-Video (a `transformer/` or `vae/` folder with config.json) in official terms.

The official single file and the diffusers folders hold the same tensors under different names, and
describe the same architectures with different config vocabularies. These functions translate names
and configs only: no tensor is read, copied or changed, so a caller can check the whole key set of a
folder before loading anything. Diffusers fills every field missing from a config.json with its
constructor default, so the defaults below are diffusers' own (as of diffusers 0.42).
"""

# -------------------------------------------------------------------------------------------------
# Transformer
# -------------------------------------------------------------------------------------------------

_TRANSFORMER_DEFAULTS = {
    "in_channels": 128, "out_channels": 128, "patch_size": 1, "patch_size_t": 1,
    "num_attention_heads": 32, "attention_head_dim": 64, "cross_attention_dim": 2048, "num_layers": 28,
    "activation_fn": "gelu-approximate", "qk_norm": "rms_norm_across_heads",
    "norm_elementwise_affine": False, "norm_eps": 1e-6, "caption_channels": 4096,
    "attention_bias": True, "attention_out_bias": True,
}
# The diffusers LTX attention normalises q and k over all heads at once; the official model calls that "rms_norm".
_QK_NORMS = {"rms_norm_across_heads": "rms_norm"}
_ACTIVATIONS = ("gelu-approximate", "gelu")

# Whole name segments only: a plain substring replace would also hit e.g. a future "proj_in_extra".
_TRANSFORMER_TOP_RENAMES = {"proj_in": "patchify_proj", "time_embed": "adaln_single"}
_TRANSFORMER_SEGMENT_RENAMES = {"norm_q": "q_norm", "norm_k": "k_norm"}


def _field(cfg: dict, defaults: dict, name: str):
    value = cfg.get(name)
    return defaults[name] if value is None else value


def _check_class(cfg: dict, expected: str):
    # Other diffusers classes (LTX-2 above all) share many field names but not the architecture.
    name = cfg.get("_class_name")
    if name is not None and name != expected:
        raise ValueError(f"unsupported _class_name={name!r}: only {expected} configs can be converted")


def transformer_config_from_diffusers(diffusers_cfg: dict) -> dict:
    """Official `Transformer3DModel` config for a diffusers `LTXVideoTransformer3DModel` config.json.

    `causal_temporal_positioning` is not part of a diffusers transformer (diffusers decides it in the
    pipeline), so it follows the rule used for metadata-less official files: on for the 48-layer 13B.
    """
    _check_class(diffusers_cfg, "LTXVideoTransformer3DModel")
    get = lambda name: _field(diffusers_cfg, _TRANSFORMER_DEFAULTS, name)  # noqa: E731

    # Diffusers only uses the patch sizes to scale RoPE coordinates; the official transformer has no
    # such scaling (its latents are never patchified), so only 1 keeps positions identical.
    for name in ("patch_size", "patch_size_t"):
        if get(name) != 1:
            raise ValueError(f"unsupported {name}={get(name)!r}: the official transformer has no latent patching (only 1)")
    qk_norm = get("qk_norm")
    if qk_norm not in _QK_NORMS:
        raise ValueError(f"unsupported qk_norm={qk_norm!r}: only {list(_QK_NORMS)}")
    activation = get("activation_fn")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"unsupported activation_fn={activation!r}: only {list(_ACTIVATIONS)}")
    # The official Transformer3DModel does not pass this through: its attention output always has a bias.
    if get("attention_out_bias") is not True:
        raise ValueError(f"unsupported attention_out_bias={get('attention_out_bias')!r}: "
                         "the official transformer always has an attention output bias")

    num_layers = int(get("num_layers"))
    in_channels = int(get("in_channels"))
    # Diffusers treats a null out_channels as "same as in_channels".
    out_channels = int(diffusers_cfg.get("out_channels", _TRANSFORMER_DEFAULTS["out_channels"]) or in_channels)
    return {
        "_class_name": "Transformer3DModel",
        "activation_fn": activation,
        "attention_bias": bool(get("attention_bias")),
        "attention_type": "default",
        "num_layers": num_layers,
        "num_attention_heads": int(get("num_attention_heads")),
        "attention_head_dim": int(get("attention_head_dim")),
        "in_channels": in_channels,
        "out_channels": out_channels,
        "cross_attention_dim": int(get("cross_attention_dim")),
        "caption_channels": int(get("caption_channels")),
        "norm_elementwise_affine": bool(get("norm_elementwise_affine")),
        "norm_eps": float(get("norm_eps")),
        "qk_norm": _QK_NORMS[qk_norm],
        # Diffusers hard-codes these in LTXVideoTransformer3DModel; they are the official release values.
        "standardization_norm": "rms_norm",
        "adaptive_norm": "single_scale_shift",
        "positional_embedding_type": "rope",
        "positional_embedding_theta": 10000.0,
        "positional_embedding_max_pos": [20, 2048, 2048],
        # Diffusers pipelines pass timesteps already multiplied by 1000; the official model multiplies itself.
        "timestep_scale_multiplier": 1000,
        "causal_temporal_positioning": num_layers == 48,
    }


def transformer_key_from_diffusers(key: str) -> str:
    """Official transformer key (without `model.diffusion_model.`) for a diffusers transformer key.

    Names this does not know are returned unchanged, so a strict load reports them rather than this.
    """
    parts = key.split(".")
    parts[0] = _TRANSFORMER_TOP_RENAMES.get(parts[0], parts[0])
    return ".".join(_TRANSFORMER_SEGMENT_RENAMES.get(p, p) for p in parts)


# -------------------------------------------------------------------------------------------------
# VAE
# -------------------------------------------------------------------------------------------------

_VAE_DEFAULTS = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 128,
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("LTXVideoDownBlock3D",) * 4,
    "decoder_block_out_channels": (128, 256, 512, 512),
    "layers_per_block": (4, 3, 3, 3, 4),
    "decoder_layers_per_block": (4, 3, 3, 3, 4),
    "spatio_temporal_scaling": (True, True, True, False),
    "decoder_spatio_temporal_scaling": (True, True, True, False),
    "decoder_inject_noise": (False,) * 5,
    "downsample_type": ("conv",) * 4,
    "upsample_residual": (False,) * 4,
    "upsample_factor": (1,) * 4,
    "timestep_conditioning": False,
    "patch_size": 4, "patch_size_t": 1,
    "resnet_norm_eps": 1e-6, "scaling_factor": 1.0,
    "encoder_causal": True, "decoder_causal": False,
}
_LEGACY_DOWN = "LTXVideoDownBlock3D"
_RES_DOWN = "LTXVideo095DownBlock3D"
# Diffusers' space-to-depth downsampler kinds and the official block with the same stride.
_RES_DOWNSAMPLE = {"spatial": "compress_space_res", "temporal": "compress_time_res",
                   "spatiotemporal": "compress_all_res"}
_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

# Single tensors and whole modules that keep one name whatever the block layout.
_VAE_FIXED_KEYS = {"latents_mean": "per_channel_statistics.mean-of-means",
                   "latents_std": "per_channel_statistics.std-of-means",
                   "decoder.scale_shift_table": "decoder.last_scale_shift_table",
                   "decoder.timestep_scale_multiplier": "decoder.timestep_scale_multiplier"}
_VAE_FIXED_MODULES = {"encoder.conv_in": "encoder.conv_in", "encoder.conv_out": "encoder.conv_out",
                      "decoder.conv_in": "decoder.conv_in", "decoder.conv_out": "decoder.conv_out",
                      "decoder.time_embedder": "decoder.last_time_embedder"}


class _Picker:
    """Reads a per-block list field exactly as diffusers indexes it, naming the field when it is too short."""

    def __init__(self, cfg: dict, name: str, reverse: bool = False):
        value = _field(cfg, _VAE_DEFAULTS, name)
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"unsupported {name}={value!r}: expected a list with one entry per block")
        self.name, self.values = name, tuple(reversed(value)) if reverse else tuple(value)

    def __getitem__(self, i):
        try:
            return self.values[i]
        except IndexError:
            raise ValueError(f"unsupported {self.name}={list(self.values)!r}: too few entries for the block layout") from None


def _multiplier(big: int, small: int, field: str, value) -> int:
    # Official blocks change channels by an integer multiplier only.
    if small <= 0 or big % small:
        raise ValueError(f"unsupported {field}={value!r}: channels {small}->{big} or {big}->{small} "
                         "is not an integer multiple, which official blocks cannot express")
    return big // small


def _sub(diffusers_prefix: str) -> str:
    """Official name, inside an official block, of what a diffusers prefix holds (a block itself: '')."""
    return {"resnets": ".res_blocks", "time_embedder": ".time_embedder"}.get(diffusers_prefix.rsplit(".", 1)[-1], "")


class _Blocks:
    """An official block list in build order, recording for each diffusers module prefix the official prefix that
    holds its tensors (and whether they are resnet weights)."""

    def __init__(self, official_prefix: str, prefixes: dict):
        self.blocks, self._official_prefix, self._prefixes = [], official_prefix, prefixes

    def add(self, block, diffusers_prefixes):
        for p, resnets in diffusers_prefixes:
            self._prefixes[p] = (f"{self._official_prefix}.{len(self.blocks)}" + _sub(p), resnets)
        self.blocks.append(block)


def _check_vae_fixed_fields(get) -> None:
    # The official encoder convolutions are always causal and it never patches time.
    if get("encoder_causal") is not True:
        raise ValueError(f"unsupported encoder_causal={get('encoder_causal')!r}: the official encoder is always causal")
    if get("patch_size_t") != 1:
        raise ValueError(f"unsupported patch_size_t={get('patch_size_t')!r}: the official VAE only patches space (1)")
    # Diffusers applies this eps only to the LayerNorm of channel-changing resnets; the official one is fixed.
    if float(get("resnet_norm_eps")) != 1e-6:
        raise ValueError(f"unsupported resnet_norm_eps={get('resnet_norm_eps')!r}: the official VAE uses 1e-6")


def _plan_encoder(cfg: dict, prefixes: dict) -> tuple[list, int]:
    """Official encoder blocks, in diffusers' build order, and the encoder's base channel count."""
    boc = _Picker(cfg, "block_out_channels")
    types = _Picker(cfg, "down_block_types")
    layers = _Picker(cfg, "layers_per_block")
    scaling = _Picker(cfg, "spatio_temporal_scaling")
    down_kind = _Picker(cfg, "downsample_type")
    res_style = types[-1] == _RES_DOWN
    n_down = len(boc.values) - (1 if res_style else 0)
    encoder = _Blocks("encoder.down_blocks", prefixes)
    out = boc[0]
    for i in range(n_down):
        inp = out
        out = boc[i + 1] if (res_style or i + 1 < n_down) else boc[i]
        here = f"encoder.down_blocks.{i}"
        encoder.add(["res_x", {"num_layers": int(layers[i])}], [(f"{here}.resnets", True)])
        downsampler = [(f"{here}.downsamplers.0", False)]
        if types[i] == _LEGACY_DOWN:
            if scaling[i]:
                encoder.add(["compress_all", {"num_layers": 1}], downsampler)
            if inp != out:
                mult = _multiplier(out, inp, "block_out_channels", list(boc.values))
                encoder.add(["res_x_y", {"multiplier": mult}], [(f"{here}.conv_out", True)])
        elif types[i] == _RES_DOWN:
            if scaling[i]:
                kind = down_kind[i]
                if kind in _RES_DOWNSAMPLE:
                    mult = _multiplier(out, inp, "block_out_channels", list(boc.values))
                    encoder.add([_RES_DOWNSAMPLE[kind], {"multiplier": mult}], downsampler)
                elif kind == "conv" and inp == out:
                    encoder.add(["compress_all", {"num_layers": 1}], downsampler)
                else:
                    # A strided conv keeps channels, and this block type has nothing else to change them.
                    raise ValueError(f"unsupported downsample_type={list(down_kind.values)!r} with "
                                     f"block_out_channels={list(boc.values)!r}")
            elif inp != out:
                raise ValueError(f"unsupported spatio_temporal_scaling={list(scaling.values)!r}: a "
                                 f"{_RES_DOWN} without a downsampler cannot change channels {inp}->{out}")
        else:
            raise ValueError(f"unsupported down_block_types={list(types.values)!r}")
    encoder.add(["res_x", {"num_layers": int(layers[-1])}], [("encoder.mid_block.resnets", True)])
    return encoder.blocks, int(boc[0])


def _plan_decoder(cfg: dict, prefixes: dict, timestep_conditioning: bool) -> tuple[list, int]:
    """Official decoder blocks, in diffusers' (and the official module's) execution order, and the channel count
    that leaves the last one (the decoder's base channels)."""
    dboc = _Picker(cfg, "decoder_block_out_channels", reverse=True)
    dlayers = _Picker(cfg, "decoder_layers_per_block", reverse=True)
    dscaling = _Picker(cfg, "decoder_spatio_temporal_scaling", reverse=True)
    noise = _Picker(cfg, "decoder_inject_noise", reverse=True)
    residual = _Picker(cfg, "upsample_residual", reverse=True)
    factor = _Picker(cfg, "upsample_factor", reverse=True)
    factors_vs_channels = (f"unsupported upsample_factor={list(reversed(factor.values))!r} with "
                           f"decoder_block_out_channels={list(reversed(dboc.values))!r}")
    decoder = _Blocks("decoder.up_blocks", prefixes)
    out = dboc[0]
    channels = out  # what actually flows between blocks
    decoder.add(["res_x", {"num_layers": int(dlayers[0]), "inject_noise": bool(noise[0])}],
                [("decoder.mid_block.resnets", True), ("decoder.mid_block.time_embedder", False)])
    for i in range(len(dboc.values)):
        f = int(factor[i])
        inp, out = out // f, dboc[i] // f
        here = f"decoder.up_blocks.{i}"
        if inp != out:
            if channels != inp:
                raise ValueError(factors_vs_channels)
            if timestep_conditioning:
                # Diffusers feeds this resnet the raw timestep; official channel-changing blocks take none.
                raise ValueError(f"unsupported decoder_block_out_channels={list(reversed(dboc.values))!r} with "
                                 "timestep_conditioning=True: channel changes outside the upsamplers")
            mult = _multiplier(inp, out, "decoder_block_out_channels", list(reversed(dboc.values)))
            decoder.add(["res_x_y", {"multiplier": mult, "inject_noise": bool(noise[i + 1])}],
                        [(f"{here}.conv_in", True)])
            channels = out
        if dscaling[i]:
            if channels != out * f:
                raise ValueError(factors_vs_channels)
            decoder.add(["compress_all", {"residual": bool(residual[i]), "multiplier": f}],
                        [(f"{here}.upsamplers.0", False)])
            channels = out
        if channels != out:
            raise ValueError(f"unsupported upsample_factor={list(reversed(factor.values))!r}: a factor needs an "
                             f"upsampler (decoder_spatio_temporal_scaling={list(reversed(dscaling.values))!r})")
        decoder.add(["res_x", {"num_layers": int(dlayers[i + 1]), "inject_noise": bool(noise[i + 1])}],
                    [(f"{here}.resnets", True), (f"{here}.time_embedder", False)])
    return decoder.blocks, channels


def _padding_mode(cfg: dict) -> str:
    # Diffusers' LTX VAE always pads with zeros; newer configs may name modes, one per half.
    modes = {cfg[name] for name in ("encoder_spatial_padding_mode", "decoder_spatial_padding_mode",
                                    "spatial_padding_mode")
             if cfg.get(name) is not None}
    if len(modes) > 1:
        raise ValueError(f"unsupported encoder_spatial_padding_mode/decoder_spatial_padding_mode={sorted(modes)!r}: "
                         "the official VAE pads encoder and decoder the same way")
    padding = modes.pop() if modes else "zeros"
    if padding not in _PADDING_MODES:
        raise ValueError(f"unsupported spatial_padding_mode={padding!r}")
    return padding


def _plan_vae(cfg: dict):
    """Official block lists plus {diffusers module prefix: (official prefix, holds resnet weights)}."""
    _check_class(cfg, "AutoencoderKLLTXVideo")
    get = lambda name: _field(cfg, _VAE_DEFAULTS, name)  # noqa: E731
    _check_vae_fixed_fields(get)
    timestep_conditioning = bool(get("timestep_conditioning"))
    prefixes = {}
    encoder_blocks, encoder_channels = _plan_encoder(cfg, prefixes)
    up_blocks, decoder_channels = _plan_decoder(cfg, prefixes, timestep_conditioning)
    padding = _padding_mode(cfg)
    patch = get("patch_size")
    if not isinstance(patch, int) or patch < 1:
        raise ValueError(f"unsupported patch_size={patch!r}")
    config = {
        "_class_name": "CausalVideoAutoencoder",
        "dims": 3,
        "in_channels": int(get("in_channels")),
        "out_channels": int(get("out_channels")),
        "latent_channels": int(get("latent_channels")),
        "patch_size": patch,
        "encoder_blocks": encoder_blocks,
        # The official config lists decoder blocks in encoder order; the decoder builds them reversed.
        "decoder_blocks": up_blocks[::-1],
        "encoder_base_channels": encoder_channels,
        "decoder_base_channels": int(decoder_channels),
        # Diffusers' non-affine RMSNorm over channels is the official pixel norm (both eps 1e-8), and its
        # encoder emits latent_channels + 1 maps: the means and one shared log-variance.
        "norm_layer": "pixel_norm",
        "latent_log_var": "uniform",
        "use_quant_conv": False,
        "causal_decoder": bool(get("decoder_causal")),
        "timestep_conditioning": timestep_conditioning,
        "spatial_padding_mode": padding,
        "scaling_factor": float(get("scaling_factor")),
    }
    return config, prefixes


def vae_config_from_diffusers(diffusers_cfg: dict) -> dict:
    """Official `CausalVideoAutoencoder.from_config` dict for a diffusers `AutoencoderKLLTXVideo` config.json."""
    return _plan_vae(diffusers_cfg)[0]


# Early diffusers conversions of the 0.9.1 VAE shortened the noise-injection scales' names.
_EARLY_RESNET_NAMES = {"scale1": "per_channel_scale1", "scale2": "per_channel_scale2"}


def _rename_inside_resnet(rest: list[str]) -> list[str]:
    # Official resnets keep the shortcut as a bare Conv3d and wrap norm3's LayerNorm one level deeper.
    out = []
    for i, part in enumerate(rest):
        if part == "conv" and i > 0 and rest[i - 1] == "conv_shortcut":
            continue
        if i == len(rest) - 1:
            part = _EARLY_RESNET_NAMES.get(part, part)
        out.append(part)
        if part == "norm3":
            out.append("norm")
    return out


def vae_key_map_from_diffusers(keys: list[str], diffusers_cfg: dict) -> dict[str, str]:
    """{diffusers VAE key: official VAE key (without `vae.`)} for every key; a key that the layout
    described by the config has no place for raises ValueError naming it."""
    _, prefixes = _plan_vae(diffusers_cfg)
    prefixes.update({d: (o, False) for d, o in _VAE_FIXED_MODULES.items()})
    key_map, unknown = {}, []
    for key in keys:
        if key in _VAE_FIXED_KEYS:
            key_map[key] = _VAE_FIXED_KEYS[key]
            continue
        parts = key.split(".")
        for cut in range(len(parts) - 1, 0, -1):  # the most specific module first
            hit = prefixes.get(".".join(parts[:cut]))
            if hit is not None:
                official, resnets = hit
                rest = parts[cut:]
                key_map[key] = ".".join([official] + (_rename_inside_resnet(rest) if resnets else rest))
                break
        else:
            unknown.append(key)
    if unknown:
        shown = ", ".join(repr(k) for k in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise ValueError(f"VAE tensors with no place in the layout its config.json describes: {shown}")
    return key_map
