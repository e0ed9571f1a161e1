import json

import pytest
import torch
from safetensors.torch import save_file

from ltx_core.loader.errors import ModelFileError
from ltx_core.loader.upsampler_file import load_upsampler
from ltx_core.model.upsampler import LatentUpsampler, UpsamplerConfig
from tiny_upsampler import reference_upsampler, save_official


def rel_l2(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


KINDS = {
    "spatial": dict(spatial_upsample=True, temporal_upsample=False),
    "temporal": dict(spatial_upsample=False, temporal_upsample=True),
    "both": dict(spatial_upsample=True, temporal_upsample=True),
    "spatial_2d": dict(dims=2, spatial_upsample=True, temporal_upsample=False),
}


@pytest.mark.parametrize("with_metadata", [True, False], ids=["metadata", "no_metadata"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_matches_reference(tmp_path, kind, with_metadata):
    ref, cfg = reference_upsampler(**KINDS[kind])
    path = save_official(ref, cfg, tmp_path / "up.safetensors", with_metadata)
    ours = load_upsampler(path, device="cpu", dtype=torch.float32)
    assert ours.config == UpsamplerConfig(**cfg)
    assert ours.spatial_scale == (2 if cfg["spatial_upsample"] else 1)
    assert ours.temporal_scale == (2 if cfg["temporal_upsample"] else 1)
    x = torch.randn(2, 128, 3, 5, 6, generator=torch.Generator().manual_seed(1)) * 2
    with torch.no_grad():
        want = ref(x)
        got = ours(x)
    t, s = ours.temporal_scale, ours.spatial_scale
    assert got.shape == want.shape == (2, 128, 3 * t - (t - 1), 5 * s, 6 * s)
    assert rel_l2(got, want) <= 1e-5


def test_bf16_weights_and_fp32_latents(tmp_path):
    ref, cfg = reference_upsampler()
    ours = load_upsampler(save_official(ref, cfg, tmp_path / "up.safetensors"), dtype="bf16")
    assert ours.dtype == torch.bfloat16
    x = torch.randn(1, 128, 2, 4, 4)
    with torch.no_grad():
        got, want = ours(x), ref(x)
    assert got.dtype == torch.float32
    assert rel_l2(got, want) < 0.05


@pytest.mark.parametrize("kind", ["spatial", "temporal"])
def test_full_size_parameter_count_matches_reference(kind):
    from ltx_video.models.autoencoders.latent_upsampler import LatentUpsampler as Reference

    flags = KINDS[kind]
    with torch.device("meta"):
        ours = LatentUpsampler(UpsamplerConfig(**flags))
        ref = Reference(in_channels=128, mid_channels=512, num_blocks_per_stage=4, dims=3, **flags)
    n = sum(p.numel() for p in ours.parameters())
    assert n == sum(p.numel() for p in ref.parameters())
    assert round(n / 1e6, 1) == {"spatial": 126.3, "temporal": 131.0}[kind]
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}


@pytest.fixture
def good_state():
    ref, cfg = reference_upsampler()
    return {k: v.contiguous() for k, v in ref.state_dict().items()}, {"config": json.dumps(cfg)}


def _refused(path, *fragments):
    with pytest.raises(ModelFileError) as e:
        load_upsampler(path)
    msg = str(e.value)
    assert str(path) in msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


def test_refuses_transformer_checkpoint(tmp_path):
    p = tmp_path / "ltxv.safetensors"
    save_file({"model.diffusion_model.patchify_proj.weight": torch.zeros(8, 128),
               "vae.encoder.conv_in.conv.weight": torch.zeros(4, 3, 3, 3, 3)}, str(p),
              metadata={"config": json.dumps({"transformer": {}, "vae": {}})})
    _refused(p, "LTX-Video checkpoint", "not a latent upsampler")


def test_refuses_t5(tmp_path):
    p = tmp_path / "t5.safetensors"
    save_file({"shared.weight": torch.zeros(10, 4), "encoder.final_layer_norm.weight": torch.zeros(4)}, str(p))
    _refused(p, "T5 text encoder")


def test_refuses_missing_key(tmp_path, good_state):
    sd, meta = good_state
    del sd["post_upsample_res_blocks.1.norm2.bias"]
    p = tmp_path / "missing.safetensors"
    save_file(sd, str(p), metadata=meta)
    _refused(p, "missing", "post_upsample_res_blocks.1.norm2.bias")


def test_refuses_unexpected_key(tmp_path, good_state):
    sd, meta = good_state
    sd["extra.weight"] = torch.zeros(3)
    p = tmp_path / "extra.safetensors"
    save_file(sd, str(p), metadata=meta)
    _refused(p, "unexpected", "extra.weight")


def test_refuses_wrong_shape(tmp_path, good_state):
    sd, meta = good_state
    sd["res_blocks.0.conv1.weight"] = torch.zeros(32, 32, 3, 3, 1)
    p = tmp_path / "shape.safetensors"
    save_file(sd, str(p), metadata=meta)
    _refused(p, "res_blocks.0.conv1.weight", "[32, 32, 3, 3, 1]", "[32, 32, 3, 3, 3]")


def test_refuses_metadata_disagreeing_with_weights(tmp_path, good_state):
    sd, _ = good_state
    p = tmp_path / "meta.safetensors"
    save_file(sd, str(p), metadata={"config": json.dumps({"mid_channels": 64, "temporal_upsample": True})})
    _refused(p, "shape")


def test_refuses_bad_metadata_type(tmp_path, good_state):
    sd, _ = good_state
    p = tmp_path / "meta.safetensors"
    save_file(sd, str(p), metadata={"config": json.dumps({"spatial_upsample": 1})})
    _refused(p, "spatial_upsample", "not bool")


def test_refuses_truncated_file(tmp_path):
    ref, cfg = reference_upsampler()
    good = save_official(ref, cfg, tmp_path / "good.safetensors")
    p = tmp_path / "truncated.safetensors"
    p.write_bytes(good.read_bytes()[:-1000])
    _refused(p, "truncated")


def test_refuses_pickle(tmp_path):
    p = tmp_path / "up.pt"
    p.write_bytes(b"\x80\x04")
    _refused(p, ".safetensors")
