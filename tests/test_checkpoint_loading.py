"""load_checkpoint on official single files: configs from metadata or detected, dtypes, and refusals."""
import json

import pytest
import torch
from safetensors.torch import save_file

import official_files as of
import tiny_transformer
from tiny_transformer import inputs, reference_velocity
from ltx_core import ModelFileError, load_checkpoint
from ltx_core.model.ops import Linear

pytest.importorskip("ltx_video")
from ltx_video.models.autoencoders.vae_encode import vae_decode  # noqa: E402

PARITY = 1e-5


def _latents(vae_cfg, frames=2, h=2, w=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, vae_cfg["latent_channels"], frames, h, w, generator=g)


@torch.no_grad()
def _assert_transformer_parity(ck, ref):
    latents, timestep, context, mask = inputs(per_token=True)
    causal = ck.transformer.config.causal_temporal_positioning
    want = reference_velocity(ref, latents, timestep, context, mask, causal)
    got = ck.transformer(latents, timestep, context, mask, frame_rate=24.0)
    assert of.rel_err(got, want) <= PARITY


@torch.no_grad()
def _assert_vae_parity(ck, ref_vae, vae_cfg):
    z = _latents(vae_cfg)
    t = 0.05 if vae_cfg.get("timestep_conditioning") else None
    want = vae_decode(z, ref_vae, is_video=True, vae_per_channel_normalize=True,
                      timestep=None if t is None else torch.tensor([t]))
    got = ck.vae.decode(z, timestep=t)
    assert of.rel_err(got, want) <= PARITY


@pytest.mark.parametrize("family,layout,ctp", [("2b", "0.9.0", False), ("2b", "0.9.1", False),
                                               ("2b", "0.9.5", True), ("13b", "0.9.5", True)])
def test_official_file_with_metadata(tmp_path, family, layout, ctp):
    path = tmp_path / "ltxv.safetensors"
    ref_t, ref_v, configs = of.tiny_checkpoint(path, family, layout, ctp, allowed_inference_steps=[1.0, 0.9094])
    ck = load_checkpoint(path)
    assert ck.config_source == "metadata"
    assert ck.config["transformer"] == configs["transformer"] and ck.config["scheduler"] == configs["scheduler"]
    assert ck.allowed_inference_steps == [1.0, 0.9094]
    _assert_transformer_parity(ck, ref_t)
    _assert_vae_parity(ck, ref_v, configs["vae"])


@pytest.mark.parametrize("layout", ["0.9.0", "0.9.1", "0.9.5"])
def test_file_without_metadata_is_recognised(tmp_path, layout):
    # 32 heads, as every release has: head count is the one thing shapes cannot tell.
    t_over = {"num_attention_heads": 32, "attention_head_dim": 2, "cross_attention_dim": 64}
    path = tmp_path / "stripped.safetensors"
    ref_t, ref_v, configs = of.tiny_checkpoint(path, "2b", layout, metadata=False, transformer_overrides=t_over,
                                               vae_overrides={"spatial_padding_mode": "zeros"})
    ck = load_checkpoint(path)
    assert ck.config_source == "detected" and ck.notes
    _assert_transformer_parity(ck, ref_t)
    _assert_vae_parity(ck, ref_v, configs["vae"])
    expected_sampler = "LinearQuadratic" if layout == "0.9.5" else "Uniform"
    assert ck.config["scheduler"]["sampler"] == expected_sampler


def test_weight_dtypes(tmp_path):
    path = tmp_path / "ltxv.safetensors"
    of.tiny_checkpoint(path)
    ref = load_checkpoint(path)
    bf16 = load_checkpoint(path, dtype="bf16")
    assert all(p.dtype == torch.bfloat16 for p in bf16.transformer.parameters())
    assert all(p.dtype == torch.bfloat16 for p in bf16.vae.parameters())
    fp8 = load_checkpoint(path, dtype=torch.float8_e4m3fn)
    for name, m in fp8.transformer.named_modules():
        if isinstance(m, Linear) and name.startswith("transformer_blocks."):
            assert m.weight.dtype == torch.float8_e4m3fn, name
    assert fp8.transformer.scale_shift_table.dtype == torch.bfloat16
    assert all(p.dtype == torch.bfloat16 for p in fp8.vae.parameters())
    latents, timestep, context, mask = inputs(per_token=False)
    with torch.no_grad():
        want = ref.transformer(latents, timestep, context, mask)
        got = fp8.transformer(latents, timestep, context, mask).float()
    # e4m3 keeps 3 mantissa bits (~6% per-weight rounding); over two tiny blocks the output stays within ~15%.
    assert torch.isfinite(got).all() and of.rel_err(got, want) < 0.15


def test_extra_statistics_ignored_and_missing_mean_defaults_to_zero(tmp_path):
    import tiny_vae
    ref_t, _ = tiny_transformer.tiny_reference()
    _, v_cfg, v_sd = tiny_vae.tiny_vae("0.9.5")
    del v_sd["per_channel_statistics.mean-of-means"]
    path = of.save_checkpoint(tmp_path / "old.safetensors", ref_t.state_dict(), v_sd,
                              {"transformer": tiny_transformer.tiny_config(), "vae": v_cfg})
    ck = load_checkpoint(path)
    stats = ck.vae.per_channel_statistics
    assert torch.equal(stats.get_buffer("mean-of-means"), torch.zeros(v_cfg["latent_channels"]))
    assert torch.equal(stats.get_buffer("std-of-means"), v_sd["per_channel_statistics.std-of-means"])


# ---------------------------------------------------------------- refusals: each names the file and the problem

@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "ltxv.safetensors"
    of.tiny_checkpoint(path)
    return path


def _tensors_and_meta(path):
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def _refused(path, *fragments):
    with pytest.raises(ModelFileError) as e:
        load_checkpoint(path)
    msg = str(e.value)
    assert str(path) in msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


def test_refuses_missing_file(tmp_path):
    _refused(tmp_path / "nope.safetensors", "not found")


def test_refuses_pickle(tmp_path):
    p = tmp_path / "model.ckpt"
    p.write_bytes(b"\x80\x04junk")
    _refused(p, "only .safetensors")


def test_refuses_truncated(tmp_path, good_file):
    p = tmp_path / "cut.safetensors"
    data = good_file.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    _refused(p, "truncated")


@pytest.mark.parametrize("keys,what", [
    ({"lora_unet_down.lora_up.weight": (4, 4), "lora_unet_down.alpha": ()}, "LoRA"),
    ({"encoder.block.0.layer.0.SelfAttention.q.weight": (4, 4), "shared.weight": (8, 4)}, "T5 text encoder"),
    ({"model.diffusion_model.input_blocks.0.0.weight": (4, 4), "first_stage_model.x": (4,)}, "Stable Diffusion"),
    ({"initial_conv.weight": (4, 4, 3, 3, 3), "upsampler.0.weight": (4, 4, 3, 3)}, "latent upsampler"),
    ({"foo.weight": (3,)}, "not an LTX-Video model file"),
])
def test_refuses_other_kinds_of_file(tmp_path, keys, what):
    p = tmp_path / "other.safetensors"
    save_file({k: torch.zeros(s) for k, s in keys.items()}, str(p))
    _refused(p, what)


def _rewrite(tmp_path, good_file, edit_tensors=None, edit_config=None):
    tensors, meta = _tensors_and_meta(good_file)
    if edit_tensors:
        edit_tensors(tensors)
    if edit_config:
        cfg = json.loads(meta["config"])
        edit_config(cfg)
        meta = {"config": json.dumps(cfg)}
    p = tmp_path / "edited.safetensors"
    save_file(tensors, str(p), metadata=meta)
    return p


def test_refuses_missing_key(tmp_path, good_file):
    p = _rewrite(tmp_path, good_file, lambda t: t.pop("model.diffusion_model.proj_out.weight"))
    _refused(p, "missing", "proj_out.weight")


def test_refuses_unexpected_key(tmp_path, good_file):
    def add(t):
        t["model.diffusion_model.transformer_blocks.9.attn1.to_q.weight"] = torch.zeros(2, 2)
    _refused(_rewrite(tmp_path, good_file, add), "unexpected", "transformer_blocks.9.attn1.to_q.weight")


def test_refuses_key_outside_both_models(tmp_path, good_file):
    def add(t):
        t["text_encoders.t5xxl.shared.weight"] = torch.zeros(2, 2)
    _refused(_rewrite(tmp_path, good_file, add), "neither the transformer", "text_encoders.t5xxl")


def test_refuses_wrong_shape(tmp_path, good_file):
    def widen(t):
        k = "model.diffusion_model.proj_out.weight"
        t[k] = torch.zeros(t[k].shape[0], t[k].shape[1] + 1)
    _refused(_rewrite(tmp_path, good_file, widen), "'model.diffusion_model.proj_out.weight' has shape", "needs")


def test_refuses_unsupported_config_value(tmp_path, good_file):
    def edit(cfg):
        cfg["transformer"]["qk_norm"] = "layer_norm"
    _refused(_rewrite(tmp_path, good_file, edit_config=edit), "transformer config", "qk_norm")


def test_refuses_bad_metadata_json(tmp_path, good_file):
    tensors, _ = _tensors_and_meta(good_file)
    p = tmp_path / "badmeta.safetensors"
    save_file(tensors, str(p), metadata={"config": "{not json"})
    _refused(p, "'config' is not valid JSON")


def test_rejects_unknown_dtype(good_file):
    with pytest.raises(ValueError, match="unsupported weight dtype 'int8'.*allowed"):
        load_checkpoint(good_file, dtype="int8")


def test_transformer_on_meta_is_checked_but_not_read(tmp_path, good_file):
    """A backend that converts the transformer from the file itself (OpenVINO) takes its config from a skeleton:
    the transformer is checked against the file and left on the meta device (no weight read), the VAE loads."""
    ck = load_checkpoint(good_file, transformer_device="meta")
    assert {p.device.type for p in ck.transformer.parameters()} == {"meta"}
    assert ck.transformer.config == load_checkpoint(good_file).transformer.config
    assert {p.device.type for p in ck.vae.parameters()} == {"cpu"}
    p = _rewrite(tmp_path, good_file, lambda t: t.pop("model.diffusion_model.proj_out.weight"))
    with pytest.raises(ModelFileError, match="proj_out.weight"):
        load_checkpoint(p, transformer_device="meta")
