"""LoRA files in every key format, applied to our transformer at compute time, against the official transformer
whose weights were patched by the formula (tiny_lora.merged), and the diffusers-format file against diffusers' own
LoRA loading (PEFT). Refusals name the file and what is wrong."""
import copy

import pytest
import torch
from safetensors.torch import save_file

import tiny_lora as tl
import tiny_transformer as tt
from tiny_transformer import FRAME_RATE, inputs, reference_velocity, rel_err
from ltx_core.loader.errors import ModelFileError
from ltx_core.lora import LoraUse, applied_loras, read_lora
from ltx_core.model.transformer import Transformer3D, TransformerConfig

pytest.importorskip("ltx_video")

PARITY = 1e-5  # relative L2, fp32


def pair(family="2b", seed=0):
    ref, cfg = tt.tiny_reference(family, family == "13b", seed=seed)
    ours = Transformer3D(TransformerConfig.from_dict(cfg))
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours.eval(), family == "13b"


REF, OURS, CTP = pair()


@torch.no_grad()
def velocities(ref, ours, ctp, uses_ours, uses_ref):
    latents, timestep, context, mask = inputs(per_token=True)
    expected = reference_velocity(tl.merged(ref, uses_ref), latents, timestep, context, mask, ctp)
    with applied_loras(ours, uses_ours):
        got = ours(latents, timestep, context, context_mask=mask, frame_rate=FRAME_RATE)
    return got, expected


# every format without an alpha, and with one where the format has an alpha key
CASES = [(fmt, None) for fmt in sorted(tl.FORMATS)] + [
    (fmt, 2.0) for fmt in sorted(tl.FORMATS) if tl.FORMATS[fmt]("x")[2] is not None]


@pytest.mark.parametrize(("fmt", "alpha"), CASES, ids=[f"{f}-{'alpha' if a else 'no-alpha'}" for f, a in CASES])
def test_each_format_matches_the_patched_official_model(tmp_path, fmt, alpha):
    lora = tl.random_lora(REF, rank=4, alpha=alpha)
    path = tl.write_lora(tmp_path / f"{fmt}.safetensors", lora, fmt)
    read = read_lora(path, OURS)
    assert set(read.patches) == set(tl.TARGETS) and not read.ignored
    got, expected = velocities(REF, OURS, CTP, [LoraUse(read, 1.0)], [(lora, 1.0)])
    assert rel_err(got, expected) <= PARITY
    # the LoRA changes the output by far more than the tolerance: the comparison can fail
    with torch.no_grad():
        plain = OURS(*inputs(per_token=True)[:3], context_mask=inputs(per_token=True)[3], frame_rate=FRAME_RATE)
    assert rel_err(plain, expected) > 100 * PARITY


def test_stacked_loras_with_ranks_alphas_and_negative_strength_13b(tmp_path):
    ref, ours, ctp = pair("13b", seed=1)
    a = tl.random_lora(ref, rank=3, seed=1, alpha=1.5)
    b = tl.random_lora(ref, targets=tl.TARGETS[:5], rank=8, seed=2)
    uses = [LoraUse(read_lora(tl.write_lora(tmp_path / "a.safetensors", a, "up_down"), ours), 0.7),
            LoraUse(read_lora(tl.write_lora(tmp_path / "b.safetensors", b, "diffusers"), ours), -1.3)]
    got, expected = velocities(ref, ours, ctp, uses, [(a, 0.7), (b, -1.3)])
    assert rel_err(got, expected) <= PARITY


def test_the_model_is_unchanged_after_a_run_and_strengths_change_without_reloading(tmp_path):
    before = {k: v.clone() for k, v in OURS.state_dict().items()}
    lora = tl.random_lora(REF, rank=4)
    read = read_lora(tl.write_lora(tmp_path / "l.safetensors", lora), OURS)
    for strength in (1.0, 0.25, -0.5):
        got, expected = velocities(REF, OURS, CTP, [LoraUse(read, strength)], [(lora, strength)])
        assert rel_err(got, expected) <= PARITY
    after = OURS.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert all(getattr(m, "lora", None) is None for m in OURS.modules())


def test_whole_tensor_diff_patches(tmp_path):
    """`.diff` on a layer weight and `.diff_b` on its bias (compute time), and on other parameters (a norm
    weight, a modulation table), against the official model with the same tensors added."""
    gen = torch.Generator().manual_seed(5)
    sd = REF.state_dict()
    patches = {"transformer_blocks.0.attn1.to_k.weight": "diffusion_model.transformer_blocks.0.attn1.to_k.diff",
               "transformer_blocks.0.attn1.to_k.bias": "diffusion_model.transformer_blocks.0.attn1.to_k.diff_b",
               "transformer_blocks.1.ff.net.2.bias": "diffusion_model.transformer_blocks.1.ff.net.2.diff_b",
               "transformer_blocks.1.attn1.q_norm.weight": "diffusion_model.transformer_blocks.1.attn1.q_norm.diff",
               "transformer_blocks.0.scale_shift_table": "diffusion_model.transformer_blocks.0.scale_shift_table.diff"}
    diffs = {k: 0.2 * torch.randn(sd[k].shape, generator=gen) for k in patches}
    path = tmp_path / "diff.safetensors"
    save_file({patches[k]: v for k, v in diffs.items()}, str(path))
    strength = 0.8
    patched = copy.deepcopy(REF)
    with torch.no_grad():
        for k, v in diffs.items():
            patched.state_dict()[k].add_(strength * v)
    latents, timestep, context, mask = inputs(per_token=True)
    expected = reference_velocity(patched, latents, timestep, context, mask, CTP)
    with torch.no_grad(), applied_loras(OURS, [LoraUse(read_lora(path, OURS), strength)]):
        got = OURS(latents, timestep, context, context_mask=mask, frame_rate=FRAME_RATE)
    assert rel_err(got, expected) <= PARITY
    assert torch.equal(OURS.state_dict()["transformer_blocks.0.scale_shift_table"], sd["transformer_blocks.0.scale_shift_table"])


def test_diffusers_format_matches_diffusers_own_lora_loading(tmp_path):
    """The trainer's file (diffusers keys, no alpha) loaded by diffusers into its LTX transformer through PEFT."""
    pytest.importorskip("peft")
    from diffusers import LTXVideoTransformer3DModel
    from ltx_core.loader.diffusers_format import transformer_key_from_diffusers

    cfg = tt.tiny_config("2b")
    theirs = LTXVideoTransformer3DModel(
        in_channels=128, out_channels=128, num_attention_heads=cfg["num_attention_heads"],
        attention_head_dim=cfg["attention_head_dim"], cross_attention_dim=cfg["cross_attention_dim"],
        num_layers=cfg["num_layers"], caption_channels=cfg["caption_channels"]).eval()
    ours_sd = OURS.state_dict()
    theirs.load_state_dict({k: ours_sd[transformer_key_from_diffusers(k)] for k in theirs.state_dict()}, strict=True)
    lora = tl.random_lora(REF, rank=4, seed=3)
    path = tl.write_lora(tmp_path / "pytorch_lora_weights.safetensors", lora, "diffusers")
    from safetensors.torch import load_file
    theirs.load_lora_adapter(load_file(str(path)), prefix="transformer", adapter_name="test")

    gen = torch.Generator().manual_seed(0)
    b, f, h, w = 1, 2, 3, 4
    latents = torch.randn(b, 128, f, h, w, generator=gen)
    context = torch.randn(b, 6, cfg["caption_channels"], generator=gen)
    timestep = torch.tensor([0.6])
    with torch.no_grad():
        expected = theirs(latents.flatten(2).transpose(1, 2), context, (timestep * 1000), torch.ones(b, 6),
                          num_frames=f, height=h, width=w, rope_interpolation_scale=(8 / 25, 32, 32),
                          return_dict=False)[0]
        with applied_loras(OURS, [LoraUse(read_lora(path, OURS))]):
            got = OURS(latents, timestep, context, context_mask=torch.ones(b, 6), frame_rate=25.0)
    assert rel_err(got.flatten(2).transpose(1, 2), expected) <= PARITY


# ------------------------------------------------------------------------------------------------- refusals


def test_a_checkpoint_given_as_a_lora_is_refused(tmp_path):
    path = tmp_path / "ltxv-2b.safetensors"
    save_file({f"model.diffusion_model.{k}": v.contiguous() for k, v in list(REF.state_dict().items())[:4]}, str(path))
    with pytest.raises(ModelFileError, match=r"ltxv-2b.safetensors: this is not a LoRA but a full model.*checkpoint"):
        read_lora(path, OURS)


def test_a_flux_lora_is_refused_naming_what_it_targets(tmp_path):
    path = tmp_path / "flux.safetensors"
    save_file({"diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight": torch.zeros(4, 8),
               "diffusion_model.double_blocks.0.img_attn.qkv.lora_B.weight": torch.zeros(8, 4)}, str(path))
    with pytest.raises(ModelFileError, match=r"flux.safetensors: this LoRA matches nothing.*FLUX LoRA.*double_blocks"):
        read_lora(path, OURS)


def test_an_ltx2_lora_is_refused_even_where_its_video_keys_fit(tmp_path):
    lora = tl.random_lora(REF, targets=tl.TARGETS[:2], rank=2)
    extra = {"diffusion_model.transformer_blocks.0.audio_attn1.to_q.lora_A.weight": torch.zeros(2, 32),
             "diffusion_model.transformer_blocks.0.audio_attn1.to_q.lora_B.weight": torch.zeros(32, 2)}
    path = tl.write_lora(tmp_path / "ltx2.safetensors", lora, "comfyui", extra=extra)
    with pytest.raises(ModelFileError, match=r"ltx2.safetensors: this looks like an LTX-2 LoRA \(it targets audio "
                                             r"layers such as diffusion_model.transformer_blocks.0.audio_attn1.to_q\)"):
        read_lora(path, OURS)


def test_a_13b_lora_on_the_2b_model_is_refused_per_key(tmp_path):
    ref13, _, _ = pair("13b")
    path = tl.write_lora(tmp_path / "13b.safetensors", tl.random_lora(ref13, rank=4), "comfyui")
    with pytest.raises(ModelFileError) as e:
        read_lora(path, OURS)
    msg = str(e.value)
    assert "13b.safetensors: this LoRA does not fit" in msg
    assert "transformer_blocks.0.attn1.to_k" in msg and "(rank, 32)" in msg and "and 7 more" in msg
    assert "This transformer is 32 wide (LTX-Video 2B: 2048, 13B: 4096)" in msg


def test_a_partial_match_is_reported_not_silent(tmp_path):
    lora = tl.random_lora(REF, targets=tl.TARGETS[:2], rank=2)
    extra = {"diffusion_model.transformer_blocks.7.attn1.to_q.lora_A.weight": torch.zeros(2, 32),
             "diffusion_model.transformer_blocks.7.attn1.to_q.lora_B.weight": torch.zeros(32, 2)}
    read = read_lora(tl.write_lora(tmp_path / "p.safetensors", lora, "comfyui", extra=extra), OURS)
    assert set(read.patches) == set(tl.TARGETS[:2])
    assert sorted(read.ignored) == sorted(extra)
    summary = read.summary()
    assert summary.startswith("p.safetensors: 2 low-rank layer(s); 2 key(s) match nothing")
    assert "transformer_blocks.7.attn1.to_q" in summary


def test_half_a_pair_and_a_bad_alpha_are_refused(tmp_path):
    path = tmp_path / "half.safetensors"
    save_file({"diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(2, 32),
               "diffusion_model.transformer_blocks.0.attn1.to_k.lora_A.weight": torch.zeros(2, 32),
               "diffusion_model.transformer_blocks.0.attn1.to_k.lora_B.weight": torch.zeros(32, 2),
               "diffusion_model.transformer_blocks.0.attn1.to_k.alpha": torch.zeros(2)}, str(path))
    with pytest.raises(ModelFileError) as e:
        read_lora(path, OURS)
    assert "to_q.lora_A.weight: its up half is missing" in str(e.value)
    assert "to_k.alpha: an alpha must be one number" in str(e.value)


def test_a_pickle_or_missing_file_is_refused(tmp_path):
    (tmp_path / "l.pt").write_bytes(b"not safetensors")
    with pytest.raises(ModelFileError, match="only .safetensors"):
        read_lora(tmp_path / "l.pt", OURS)
    with pytest.raises(ModelFileError, match="file not found"):
        read_lora(tmp_path / "none.safetensors", OURS)


def test_strength_must_be_finite(tmp_path):
    read = read_lora(tl.write_lora(tmp_path / "l.safetensors", tl.random_lora(REF, rank=2)), OURS)
    for bad in (float("nan"), float("inf"), "1", True):
        with pytest.raises(ValueError, match="l.safetensors: LoRA strength must be a finite number"):
            LoraUse(read, bad)


def test_reference_downscale_factor_from_metadata(tmp_path):
    lora = tl.random_lora(REF, targets=tl.TARGETS[:1], rank=2)
    assert read_lora(tl.write_lora(tmp_path / "a.safetensors", lora), OURS).reference_downscale_factor == 1
    meta = {"ltx.reference_downscale_factor": "2.0"}
    assert read_lora(tl.write_lora(tmp_path / "b.safetensors", lora, metadata=meta), OURS).reference_downscale_factor == 2
    bad = read_lora(tl.write_lora(tmp_path / "c.safetensors", lora, metadata={"reference_downscale_factor": "0"}), OURS)
    with pytest.raises(ModelFileError, match="c.safetensors: metadata reference_downscale_factor='0': must be at least 1"):
        _ = bad.reference_downscale_factor
