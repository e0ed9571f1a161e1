"""The video VAE against the official `ltx_video` CausalVideoAutoencoder (the oracle), plus tiling and memory."""
import copy

import pytest
import tiny_vae
import torch
import torch.nn.functional as F

from memory_meter import LiveTensorBytes

from ltx_core.model.video_vae import TilingConfig, VideoVAE, VideoVAEConfig, chunks

REL_TOL = 1e-5
# Entries real files carry that the model does not have (the loader drops them).
UNUSED_STATISTICS = ("channel", "mean-of-stds", "mean-of-stds_over_std-of-means")

# (layout, tiny_config overrides): every released layout, every padding mode the metadata may name, both
# decoder causalities, every norm layer and every log-variance layout.
VARIANTS = {
    "0.9.0": ("0.9.0", {}),
    "0.9.0-group_norm-constant": (
        "0.9.0", {"norm_layer": "group_norm", "base_channels": 32, "latent_log_var": "constant"}
    ),
    "0.9.0-circular": ("0.9.0", {"spatial_padding_mode": "circular"}),
    "0.9.1-reflect": ("0.9.1", {"spatial_padding_mode": "reflect"}),
    "0.9.5-replicate": ("0.9.5", {}),
    "0.9.5-zeros-causal": ("0.9.5", {"spatial_padding_mode": "zeros", "causal_decoder": True}),
    "0.9.5-layer_norm-per_channel": ("0.9.5", {"norm_layer": "layer_norm", "latent_log_var": "per_channel"}),
}


@pytest.fixture
def reference_encodes_mean(monkeypatch):
    """The official vae_encode samples the latent distribution; make it take the mean, as encode does."""
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    monkeypatch.setattr(DiagonalGaussianDistribution, "sample", lambda self, *_args, **_kwargs: self.mean)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def model_state_dict(file_sd: dict) -> dict:
    return {k: v for k, v in file_sd.items() if k.split(".")[-1] not in UNUSED_STATISTICS}


def load_ours(config: dict, file_sd: dict) -> VideoVAE:
    """Built on the meta device and loaded with assign=True, the way the loader does it."""
    with torch.device("meta"):
        vae = VideoVAE(VideoVAEConfig.from_dict(config))
    vae.load_state_dict(model_state_dict(file_sd), strict=True, assign=True)
    return vae.eval()


def variant(name: str, seed: int = 0):
    layout, overrides = VARIANTS[name]
    ref, config, file_sd = tiny_vae.tiny_vae(layout, seed=seed, **overrides)
    return ref, load_ours(config, file_sd)


def decode_timestep(vae: VideoVAE, batch: int = 2):
    return torch.tensor([0.05, 0.4][:batch]) if vae.timestep_conditioning else None


def random_video(batch=2, frames=17, height=64, width=96, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, frames, height, width, generator=g) * 2 - 1


def smooth_video(frames=41, height=128, width=192, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 6, 4, 6, generator=g) * 2 - 1
    return F.interpolate(coarse, size=(frames, height, width), mode="trilinear")


# --- parity with the official implementation -------------------------------------------------------------


@pytest.mark.usefixtures("reference_encodes_mean")
@pytest.mark.parametrize("chunk_bytes", [None, 16 << 10], ids=["whole", "frame-sliced"])
@pytest.mark.parametrize("name", list(VARIANTS))
def test_parity_with_reference(name, chunk_bytes, monkeypatch):
    """fp32, batch 2, non-square frames, 3 latent frames. "frame-sliced" forces the slice-by-slice convs,
    in-place convs and pixel norms that large videos take."""
    from ltx_video.models.autoencoders.vae_encode import vae_decode, vae_encode

    if chunk_bytes:
        monkeypatch.setattr(chunks, "CHUNK_BYTES", chunk_bytes)
    ref, vae = variant(name)
    video = random_video()
    expected = vae_encode(video, ref, vae_per_channel_normalize=True)
    z = vae.encode(video)
    assert z.shape == expected.shape == (2, 128, 3, 2, 3)
    assert rel(z, expected) <= REL_TOL

    latent = torch.randn(2, 128, 3, 2, 3, generator=torch.Generator().manual_seed(1))
    timestep = decode_timestep(vae)
    # 0.9.1 injects noise inside the decoder; the reference draws it from the global RNG, in the same order.
    torch.manual_seed(7)
    expected = vae_decode(latent, ref, is_video=True, vae_per_channel_normalize=True, timestep=timestep)
    x = vae.decode(latent, timestep=timestep, generator=torch.Generator().manual_seed(7))
    assert x.shape == expected.shape == (2, 3, 17, 64, 96)
    assert rel(x, expected) <= REL_TOL


def test_encoder_is_causal():
    """Latent frame k depends only on pixel frames up to 8k: an image encodes to a video's first latent."""
    _, vae = variant("0.9.5-replicate")
    video = random_video(batch=1)
    z = vae.encode(video)
    assert rel(vae.encode(video[:, :, :1]), z[:, :, :1]) <= REL_TOL
    assert rel(vae.encode(video[:, :, :9]), z[:, :, :2]) <= REL_TOL


def test_scalar_timestep_is_broadcast():
    _, vae = variant("0.9.5-replicate")
    latent = torch.randn(2, 128, 2, 1, 1)
    assert torch.equal(vae.decode(latent, timestep=0.05), vae.decode(latent, timestep=torch.tensor([0.05, 0.05])))


def test_injected_noise_is_seeded_and_leaves_global_rng_alone():
    _, vae = variant("0.9.1-reflect")
    latent = torch.randn(1, 128, 2, 2, 2)
    rng_before = torch.get_rng_state()
    a = vae.decode(latent, timestep=0.05, generator=torch.Generator().manual_seed(3))
    b = vae.decode(latent, timestep=0.05, generator=torch.Generator().manual_seed(3))
    c = vae.decode(latent, timestep=0.05, generator=torch.Generator().manual_seed(4))
    default = [vae.decode(latent, timestep=0.05) for _ in range(2)]
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert torch.equal(a, b) and torch.equal(*default)
    assert rel(c, a) > 1e-3  # the learned noise scales are non-zero, so the seed matters

    with torch.no_grad():  # without the noise the seed no longer matters
        for name, p in vae.named_parameters():
            if "per_channel_scale" in name:
                p.zero_()
    a = vae.decode(latent, timestep=0.05, generator=torch.Generator().manual_seed(3))
    c = vae.decode(latent, timestep=0.05, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, c)


def test_bfloat16_runs_close_to_float32():
    _, vae = variant("0.9.5-replicate")
    video = random_video(batch=1)
    z32, x32 = vae.encode(video), vae.decode(vae.encode(video), timestep=0.05)
    vae16 = vae.to(torch.bfloat16)
    z16 = vae16.encode(video.bfloat16())
    x16 = vae16.decode(z16, timestep=0.05)
    assert z16.dtype == x16.dtype == torch.bfloat16
    assert rel(z16, z32) < 0.05 and rel(x16, x32) < 0.05


# --- full-size layouts on the meta device -------------------------------------------------------------


@pytest.mark.parametrize("layout", tiny_vae.LAYOUTS)
def test_full_layout_keys_shapes_and_counts(layout):
    from ltx_video.models.autoencoders.causal_video_autoencoder import CausalVideoAutoencoder

    config = tiny_vae.full_config(layout)
    with torch.device("meta"):
        vae = VideoVAE(VideoVAEConfig.from_dict(config))
        ref = CausalVideoAutoencoder.from_config(copy.deepcopy(config))
    ours = {k: tuple(v.shape) for k, v in vae.state_dict().items()}
    expected = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    expected.update({f"per_channel_statistics.{k}": (128,) for k in ("std-of-means", "mean-of-means")})
    assert ours == expected
    sd = vae.state_dict()
    counts = tuple(sum(v.numel() for k, v in sd.items() if k.startswith(part)) for part in ("encoder.", "decoder."))
    assert counts == tiny_vae.FULL_PARAMETER_COUNTS[layout]
    assert (vae.latent_channels, vae.temporal_compression, vae.spatial_compression) == (128, 8, 32)
    assert vae.timestep_conditioning == (layout != "0.9.0")


# --- errors -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        ({"decoder_blocks": [["attn_res_x", {"num_layers": 1, "attention_head_dim": 8}]]}, "'attn_res_x'"),
        ({"encoder_blocks": [["compress_time", 1]]}, "'compress_time'.*compress_all_res"),
        ({"decoder_blocks": [["res_x_y", {"multiplier": 2, "inject_noise": True}]]}, "inject_noise"),
        ({"encoder_blocks": [["res_x", {"num_layers": 0}]]}, "num_layers"),
        ({"use_quant_conv": True}, "use_quant_conv"),
        ({"latent_log_var": "none"}, "latent_log_var='none'"),
        ({"dims": 2}, "dims=2"),
        ({"spatial_padding_mode": "mirror"}, "spatial_padding_mode='mirror'"),
        ({"norm_layer": "batch_norm"}, "norm_layer='batch_norm'"),
        ({"decoder_blocks": [["res_x", 1], ["compress_all", {}]]}, "decoder upsamples"),
    ],
)
def test_bad_config(change, message):
    config = tiny_vae.tiny_config("0.9.5")
    config.update(change)
    with pytest.raises(ValueError, match=message):
        VideoVAEConfig.from_dict(config)


def test_legacy_and_omitted_fields_mean_what_the_reference_defaults_mean():
    config = tiny_vae.full_config("0.9.0")
    for key in ("norm_layer", "latent_log_var", "patch_size"):
        del config[key]
    cfg = VideoVAEConfig.from_dict(config)
    assert cfg.encoder_blocks == cfg.decoder_blocks and len(cfg.encoder_blocks) == 10
    assert (cfg.norm_layer, cfg.latent_log_var, cfg.patch_size, cfg.spatial_padding_mode) == (
        "group_norm", "per_channel", 1, "zeros")
    assert (cfg.causal_decoder, cfg.timestep_conditioning, cfg.encoder_base_channels) == (False, False, 128)


@pytest.mark.parametrize(
    "shape, message",
    [
        ((1, 3, 16, 64, 64), r"video frames=16 .* 1 \+ 8k.*nearest valid: 9 or 17"),
        ((1, 3, 20, 64, 64), "nearest valid: 17 or 25"),
        ((1, 3, 17, 100, 64), "video height=100 .*multiple of 32.*nearest valid: 96 or 128"),
        ((1, 3, 17, 64, 20), "video width=20 .*nearest valid: 32$"),
        ((1, 4, 17, 64, 64), "channels=4"),
        ((3, 17, 64, 64), r"\(B, C, F, H, W\)"),
    ],
)
def test_bad_video(shape, message):
    _, vae = variant("0.9.0")
    with pytest.raises(ValueError, match=message):
        vae.encode(torch.zeros(shape))


def test_bad_decode_arguments():
    _, plain = variant("0.9.0")
    _, conditioned = variant("0.9.5-replicate")
    latent = torch.zeros(2, 128, 2, 1, 1)
    with pytest.raises(ValueError, match="not timestep-conditioned"):
        plain.decode(latent, timestep=0.05)
    with pytest.raises(ValueError, match="timestep-conditioned.*0.05"):
        conditioned.decode(latent)
    with pytest.raises(ValueError, match="one value per batch item"):
        conditioned.decode(latent, timestep=torch.tensor([0.05, 0.05, 0.05]))
    with pytest.raises(ValueError, match=r"\(B, 128, F, H, W\)"):
        plain.decode(torch.zeros(2, 64, 2, 1, 1))


@pytest.mark.parametrize(
    "tiling, message",
    [
        (TilingConfig(spatial_tile=100), "spatial_tile=100.*nearest valid: 96 or 128"),
        (TilingConfig(spatial_tile=64, spatial_overlap=64), "spatial_overlap=64 must be smaller"),
        (TilingConfig(temporal_tile=20), "temporal_tile=20.*16 or 24"),
        (TilingConfig(temporal_overlap=4), "temporal_overlap=4.*0 or 8"),
    ],
)
def test_bad_tiling(tiling, message):
    _, vae = variant("0.9.0")
    with pytest.raises(ValueError, match=message):
        vae.decode(torch.zeros(1, 128, 2, 1, 1), tiling=tiling)


# --- tiling -----------------------------------------------------------------------------------------------

TILINGS = {
    "spatial": TilingConfig(spatial_tile=96, spatial_overlap=64, temporal_tile=None),
    "temporal": TilingConfig(spatial_tile=None, temporal_tile=24, temporal_overlap=16),
    "both": TilingConfig(spatial_tile=96, spatial_overlap=64, temporal_tile=24, temporal_overlap=16),
}


@pytest.mark.parametrize(
    "tiling", [*TILINGS.values(), TilingConfig(64, 32, 16, 0)], ids=[*TILINGS, "minimal"]
)
def test_blending_reassembles_a_local_codec_exactly(tiling, monkeypatch):
    """With stand-in codecs whose outputs depend only on the aligned input region (so that every tile's
    output equals the matching part of the whole output), tiled == untiled up to rounding: tile layout,
    latent<->pixel mapping and weights that sum to 1 are all right."""
    _, vae = variant("0.9.5-replicate")

    def fake_encoder(video):  # latent frame j <- pixel frame 8j; 32x32 average pooling; 128 channels
        pooled = F.avg_pool3d(video[:, :, ::8], (1, 32, 32))
        return pooled.repeat(1, 43, 1, 1, 1)[:, :128]

    def fake_decoder(z, *_timestep_and_generator):  # pixel frame p <- latent frame ceil(p / 8); 32x32 blocks
        frames = torch.arange(1 + 8 * (z.shape[2] - 1)).add(7).div(8, rounding_mode="floor")
        return z[:, :3, frames].repeat_interleave(32, dim=3).repeat_interleave(32, dim=4)

    monkeypatch.setattr(vae.encoder, "forward", fake_encoder)
    monkeypatch.setattr(vae.decoder, "forward", fake_decoder)
    video = smooth_video()
    latent = torch.randn(1, 128, 6, 4, 6)
    assert rel(vae.encode(video, tiling=tiling), vae.encode(video)) < 1e-6
    assert rel(vae.decode(latent, timestep=0.05, tiling=tiling), vae.decode(latent, timestep=0.05)) < 1e-6


def test_one_tile_covering_everything_is_bit_exact():
    _, vae = variant("0.9.5-replicate")
    video = random_video(batch=1)
    tiling = TilingConfig(spatial_tile=96, temporal_tile=16, temporal_overlap=8)
    z = vae.encode(video)
    assert torch.equal(vae.encode(video, tiling=tiling), z)
    assert torch.equal(vae.decode(z, timestep=0.05, tiling=tiling), vae.decode(z, timestep=0.05))


# Bounds reached on the tiny random-weight VAEs below, 41 frames of 128x192 (6x4x6 latents), with tiles of
# 3x3 latents overlapping by 2. They are loose because nothing here is local: a random network has no
# reason to make a pixel depend mostly on nearby latents, its receptive field spans the whole tiny video,
# and every position lies within a latent or two of some tile edge, where a tile sees padding instead of
# its neighbour (and, in time, a lone "first frame"). The blending itself is exact (test above); a trained
# VAE, tiles of hundreds of pixels and a few latents of overlap make seams far smaller than this.
TILED_BOUNDS = {  # (layout, tiling) -> (encode bound, decode bound); measured 0.11/0.24, 0.18/0.13, ...
    ("0.9.5-replicate", "spatial"): (0.15, 0.30),
    ("0.9.5-replicate", "temporal"): (0.22, 0.17),
    ("0.9.5-replicate", "both"): (0.25, 0.32),
    ("0.9.0", "both"): (0.55, 0.55),
}


@pytest.mark.parametrize("name, tiling_name", list(TILED_BOUNDS))
def test_tiled_close_to_untiled(name, tiling_name):
    _, vae = variant(name)
    timestep = decode_timestep(vae, batch=1)
    video = smooth_video()
    z = vae.encode(video)
    tiling = TILINGS[tiling_name]
    enc_bound, dec_bound = TILED_BOUNDS[(name, tiling_name)]
    assert rel(vae.encode(video, tiling=tiling), z) < enc_bound
    assert rel(vae.decode(z, timestep=timestep, tiling=tiling), vae.decode(z, timestep=timestep)) < dec_bound


def test_more_overlap_means_closer_to_untiled():
    _, vae = variant("0.9.5-replicate")
    z = vae.encode(smooth_video(frames=9, height=256, width=256))
    full = vae.decode(z, timestep=0.05)
    errors = [
        rel(vae.decode(z, timestep=0.05, tiling=TilingConfig(spatial_tile=tile, spatial_overlap=overlap)), full)
        for tile, overlap in ((64, 32), (128, 64), (192, 128))
    ]
    assert errors[0] > errors[1] > errors[2]


def test_tiled_decode_memory_does_not_grow_with_frames():
    """Working memory (peak minus the result itself, which must grow) of decoding 9 latent frames vs 5:
    measured 1.69 MB -> 1.70 MB tiled, 1.63 MB -> 3.21 MB untiled."""
    _, vae = variant("0.9.5-replicate")
    tiling = TilingConfig(spatial_tile=None, temporal_tile=16, temporal_overlap=8)
    working = {}
    for tiled in (False, True):
        for frames in (5, 9):
            latent = torch.randn(1, 128, frames, 2, 2)
            with LiveTensorBytes(vae, latent) as meter:
                video = vae.decode(latent, timestep=0.05, tiling=tiling if tiled else None)
            working[tiled, frames] = meter.peak - video.numel() * video.element_size()
    assert working[True, 9] < 1.1 * working[True, 5]
    assert working[False, 9] > 1.8 * working[False, 5]


def _peak_and_output(module, x):
    with LiveTensorBytes(module, x) as meter:
        out = module(x, causal=False)
    return meter.peak, out


@pytest.mark.parametrize("block", ["resnet", "upsample"])
def test_decoder_blocks_hold_fewer_activations_than_reference(block, monkeypatch):
    """Peak bytes created by one decoder block, input sliced into single frames, in units of its output A.
    Measured: a ResnetBlock 1.49A (its output, which is also its only full-size temporary, plus slices),
    the reference 4.50A (norm output, time-padded copy, spatially padded copy, conv output, ...); a
    residual depth-to-space upsample 1.29A, the reference 3.18A (conv output, tiled residual, sum)."""
    from ltx_video.models.autoencoders import causal_video_autoencoder as official

    from ltx_core.model.video_vae.blocks import DepthToSpaceUp, ResnetBlock

    monkeypatch.setattr(chunks, "CHUNK_BYTES", 64 << 10)
    torch.manual_seed(0)
    if block == "resnet":
        ref = official.ResnetBlock3D(dims=3, in_channels=32, norm_layer="pixel_norm", spatial_padding_mode="replicate")
        ours = ResnetBlock(32, 32, "pixel_norm", "replicate")
        x = torch.randn(1, 32, 17, 32, 32)
    else:
        ref = official.DepthToSpaceUpsample(
            dims=3, in_channels=64, stride=(2, 2, 2), residual=True, out_channels_reduction_factor=2,
            spatial_padding_mode="replicate",
        )
        ours = DepthToSpaceUp(64, (2, 2, 2), True, 2, "replicate")
        x = torch.randn(1, 64, 9, 16, 16)
    ours.load_state_dict(ref.state_dict(), strict=True)
    with torch.no_grad():
        ref_peak, expected = _peak_and_output(ref, x)
        our_peak, out = _peak_and_output(ours, x)
    assert rel(out, expected) <= REL_TOL
    activation = expected.numel() * expected.element_size()
    assert our_peak < 1.6 * activation and ref_peak > 3 * activation
