"""The transformer against the official `ltx_video` Transformer3DModel, fed as the official pipeline feeds it."""
import functools
import re
from pathlib import Path

import pytest
import torch

import tiny_transformer as tt
from tiny_transformer import B, FRAME_RATE, F, H, W, inputs, pipeline_coords, reference_velocity, rel_err
from ltx_core.model.ops import Linear
from ltx_core.model.transformer import SkipLayerStrategy, Transformer3D, TransformerConfig, video_token_coords

pytest.importorskip("ltx_video")
from ltx_video.models.transformers.transformer3d import Transformer3DModel  # noqa: E402

PARITY = 1e-5  # relative L2, fp32


@functools.lru_cache(maxsize=None)
def pair(family: str, ctp: bool, **overrides):
    """(official model, ours loaded from its state dict the way the loader does)."""
    ref, cfg = tt.tiny_reference(family, ctp, **overrides)
    with torch.device("meta"):
        ours = Transformer3D(TransformerConfig.from_dict(cfg))
    ours.load_state_dict(ref.state_dict(), strict=True, assign=True)
    return ref, ours.eval()


@torch.no_grad()
@pytest.mark.parametrize("per_token", [False, True], ids=["per-sample-t", "per-token-t"])
@pytest.mark.parametrize("ctp", [False, True], ids=["ctp-off", "ctp-on"])
@pytest.mark.parametrize("family", ["2b", "13b"])
def test_parity(family, ctp, per_token):
    ref, ours = pair(family, ctp)
    latents, timestep, context, mask = inputs(per_token)
    expected = reference_velocity(ref, latents, timestep, context, mask, ctp)
    got = ours(latents, timestep, context, context_mask=mask, frame_rate=FRAME_RATE)
    assert got.shape == latents.shape and got.dtype == latents.dtype
    assert rel_err(got, expected) <= PARITY


@torch.no_grad()
def test_parity_other_supported_settings():
    """layer_norm pre-norm, exact GELU, no q/k/v bias, no timestep scaling."""
    overrides = dict(
        standardization_norm="layer_norm", activation_fn="gelu", attention_bias=False, timestep_scale_multiplier=None
    )
    ref, ours = pair("2b", True, **overrides)
    latents, timestep, context, mask = inputs(per_token=True)
    expected = reference_velocity(ref, latents, timestep * 1000, context, mask, True)
    got = ours(latents, timestep * 1000, context, context_mask=mask, frame_rate=FRAME_RATE)
    assert rel_err(got, expected) <= PARITY


@torch.no_grad()
def test_text_mask_and_timestep_matter():
    """Guards the parity tests against inputs the model ignores."""
    _, ours = pair("2b", False)
    latents, timestep, context, mask = inputs(per_token=False)
    base = ours(latents, timestep, context, context_mask=mask, frame_rate=FRAME_RATE)
    unmasked = ours(latents, timestep, context, frame_rate=FRAME_RATE)
    assert rel_err(unmasked[0], base[0]) < 1e-6 and rel_err(unmasked[1], base[1]) > 1e-3
    shifted = ours(latents, timestep.flip(0), context, context_mask=mask, frame_rate=FRAME_RATE)
    assert rel_err(shifted, base) > 1e-3


@pytest.mark.parametrize("ctp", [False, True])
def test_video_token_coords_match_pipeline(ctp):
    latents = torch.zeros(B, 1, F, H, W)
    assert torch.equal(video_token_coords(B, F, H, W, FRAME_RATE, ctp, "cpu"), pipeline_coords(latents, ctp, FRAME_RATE))


@torch.no_grad()
@pytest.mark.parametrize("strategy", list(SkipLayerStrategy), ids=lambda s: s.name)
@pytest.mark.parametrize("family", ["2b", "13b"])
def test_stg_parity(family, strategy):
    ctp = family == "13b"
    ref, ours = pair(family, ctp)
    latents, timestep, context, mask = inputs(per_token=False)
    skip_mask = torch.ones(ours.config.num_layers, B)
    skip_mask[[0, -1], 1] = 0  # perturb the first and last block for batch row 1 only
    expected = reference_velocity(ref, latents, timestep, context, mask, ctp, skip_mask, strategy)
    got = ours(latents, timestep, context, mask, FRAME_RATE, skip_mask, strategy)
    assert rel_err(got, expected) <= PARITY
    by_value = ours(latents, timestep, context, mask, FRAME_RATE, skip_mask, strategy.value)
    assert torch.equal(by_value, got)

    plain = ours(latents, timestep, context, mask, FRAME_RATE)
    assert torch.equal(got[0], plain[0])  # the unperturbed row is untouched
    if strategy is SkipLayerStrategy.Residual:
        # As in the official model: it acts only on attention layers with a residual connection,
        # which LTX-Video has none of.
        assert torch.equal(got[1], plain[1])
    else:
        assert rel_err(got[1], plain[1]) > 1e-3


@torch.no_grad()
@pytest.mark.parametrize("family", ["2b", "13b"])
def test_forward_tokens_with_extra_tokens(family):
    """Appended conditioning tokens at arbitrary (fractional) positions with their own timesteps."""
    ctp = family == "13b"
    ref, ours = pair(family, ctp)
    latents, _, context, mask = inputs(per_token=False)
    gen = torch.Generator().manual_seed(1)
    extra = 6
    video_tokens = latents.flatten(2).transpose(1, 2)
    tokens = torch.cat([video_tokens, torch.randn(B, extra, 128, generator=gen)], dim=1)
    extra_coords = torch.rand(B, 3, extra, generator=gen) * torch.tensor([5.0, 700.0, 1200.0])[:, None]
    coords = torch.cat([video_token_coords(B, F, H, W, FRAME_RATE, ctp), extra_coords], dim=2)
    timestep = torch.rand(B, tokens.shape[1], generator=gen)
    expected = ref(
        tokens, indices_grid=coords, encoder_hidden_states=context, timestep=timestep,
        encoder_attention_mask=mask, return_dict=False,
    )[0]
    got = ours.forward_tokens(tokens, coords, timestep, context, mask)
    assert got.shape == (B, tokens.shape[1], 128)
    assert rel_err(got, expected) <= PARITY


@torch.no_grad()
def test_stg_blending_every_layer_is_exact(monkeypatch):
    """A skip mask on a GPU is not read back (no host sync): every layer then blends, unperturbed ones with a mask
    of ones, which must give exactly what skipping the blend gives."""
    import ltx_core.model.transformer.model as model_module

    _, ours = pair("2b", False)
    latents, timestep, context, mask = inputs(per_token=False)
    skip_mask = torch.ones(ours.config.num_layers, B)
    skip_mask[0, 1] = 0
    for strategy in ("attention_values", "attention_skip", "transformer_block"):
        selective = ours(latents, timestep, context, mask, FRAME_RATE, skip_mask, strategy)
        with monkeypatch.context() as m:
            m.setattr(model_module, "_perturbed_layers", lambda sm: [True] * sm.shape[0])
            everywhere = ours(latents, timestep, context, mask, FRAME_RATE, skip_mask, strategy)
        assert torch.equal(everywhere, selective), strategy


def _text(lengths, total, gen):
    context = torch.randn(len(lengths), total, 32, generator=gen)
    mask = torch.zeros(len(lengths), total, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
    return context, mask


@torch.no_grad()
def test_trimmed_text_padding_gives_the_same_velocity():
    """The sampler drops text padding that every row masks (once per generation): the numbers do not change."""
    from ltx_core.model.transformer.model import TEXT_ALIGN, trim_text_padding

    _, ours = pair("2b", False)
    gen = torch.Generator().manual_seed(3)
    latents, timestep, _, _ = inputs(per_token=True)
    context, mask = _text([11, 3], 40, gen)
    mask[1, 7] = 1  # not a prefix: a valid position after padding
    full = ours(latents, timestep, context, mask, FRAME_RATE)
    ((ctx, ctx_mask),) = trim_text_padding(context, mask)
    assert ctx.shape[1] == 16 and ctx.shape[1] % TEXT_ALIGN == 0 and torch.equal(ctx_mask, mask[:, :16])
    assert rel_err(ours(latents, timestep, ctx, ctx_mask, FRAME_RATE), full) <= 1e-6

    # Equal lengths on an aligned boundary: nothing left to mask, so no mask at all.
    context, mask = _text([16, 16], 40, gen)
    ((ctx, ctx_mask),) = trim_text_padding(context, mask)
    assert ctx.shape[1] == 16 and ctx_mask is None
    assert rel_err(ours(latents, timestep, ctx, None, FRAME_RATE), ours(latents, timestep, context, mask, FRAME_RATE)) <= 1e-6

    # Pairs are trimmed to one common length (they are stacked into one batch).
    pos, pos_mask = _text([5], 40, gen)
    neg, neg_mask = _text([20], 40, gen)
    (p, pm), (n, nm) = trim_text_padding(pos, pos_mask, (neg, neg_mask))
    assert p.shape[1] == n.shape[1] == 24 and pm.sum() == 5 and nm.sum() == 20


def test_text_rows_without_any_token_are_not_trimmed():
    """A row with no valid token attends to every padded key equally, so its padding is not removable."""
    from ltx_core.model.transformer.model import trim_text_padding

    gen = torch.Generator().manual_seed(4)
    context, mask = _text([9, 0], 40, gen)
    ((ctx, ctx_mask),) = trim_text_padding(context, mask)
    assert ctx is context and ctx_mask is mask
    ((ctx, ctx_mask),) = trim_text_padding(context, None)
    assert ctx is context and ctx_mask is None


@pytest.mark.parametrize("family", ["2b", "13b"])
def test_full_config_on_meta(family):
    cfg = tt.full_config(family)
    with torch.device("meta"):
        ours = Transformer3D(TransformerConfig.from_dict(cfg))
        ref = Transformer3DModel(**{k: v for k, v in cfg.items() if not k.startswith("_")})
    shapes = {k: v.shape for k, v in ours.state_dict().items()}
    assert shapes == {k: v.shape for k, v in ref.state_dict().items()}
    assert sum(p.numel() for p in ours.parameters()) == tt.FULL_PARAMETER_COUNTS[family]
    assert not list(ours.buffers())


@torch.no_grad()
def test_bf16_and_fp8_storage():
    """bf16 keeps ~8 significant bits, so each rounding costs up to ~0.4% and 3 blocks of them add up to
    about 1%: the check is that our bf16 path is no worse than the official model's own bf16 path.
    fp8 e4m3 weights keep 4 significant bits: a few % is expected; this is a smoke test."""
    ref, cfg = tt.tiny_reference("13b", True)
    ours = Transformer3D(TransformerConfig.from_dict(cfg))
    ours.load_state_dict(ref.state_dict(), strict=True)
    latents, timestep, context, mask = inputs(per_token=True)
    expected = reference_velocity(ref, latents, timestep, context, mask, True)

    ref16 = tt.build_reference(cfg).to(torch.bfloat16)
    ref_err = rel_err(reference_velocity(ref16, latents.bfloat16(), timestep, context.bfloat16(), mask, True), expected)
    ours.to(torch.bfloat16)
    got = ours(latents, timestep, context, mask, FRAME_RATE)
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    assert rel_err(got, expected) <= max(2 * ref_err, 1e-3) and rel_err(got, expected) < 3e-2

    for module in ours.modules():
        if isinstance(module, Linear):
            module.weight.data = module.weight.data.to(torch.float8_e4m3fn)
    assert ours.compute_dtype == torch.bfloat16
    got8 = ours(latents.bfloat16(), timestep, context, mask, FRAME_RATE)
    assert got8.dtype == torch.bfloat16 and torch.isfinite(got8).all()
    assert rel_err(got8, expected) < 0.15


@pytest.mark.parametrize(
    "field, value",
    [
        ("adaptive_norm", "single_scale"),
        ("qk_norm", "layer_norm"),
        ("qk_norm", None),
        ("positional_embedding_type", "absolute"),
        ("activation_fn", "geglu"),
        ("standardization_norm", "group_norm"),
        ("norm_elementwise_affine", True),
        ("positional_embedding_theta", None),
        ("positional_embedding_max_pos", [20, 2048]),
    ],
)
def test_bad_config_names_the_field(field, value):
    cfg = tt.tiny_config("2b")
    cfg[field] = value
    with pytest.raises(ValueError, match=field):
        TransformerConfig.from_dict(cfg)


def test_missing_field_uses_official_default():
    cfg = tt.tiny_config("2b")
    del cfg["qk_norm"]  # official default None: unsupported
    with pytest.raises(ValueError, match="qk_norm"):
        TransformerConfig.from_dict(cfg)
    cfg = tt.tiny_config("2b", causal_temporal_positioning=True)
    del cfg["causal_temporal_positioning"], cfg["out_channels"]
    parsed = TransformerConfig.from_dict(cfg)
    assert parsed.causal_temporal_positioning is False and parsed.out_channels == cfg["in_channels"]


@torch.no_grad()
def test_bad_call_shapes():
    _, ours = pair("2b", False)
    latents, timestep, context, mask = inputs(per_token=False)
    with pytest.raises(ValueError, match="skip_layer_mask"):
        ours(latents, timestep, context, mask, FRAME_RATE, torch.ones(5, B), SkipLayerStrategy.AttentionValues)
    with pytest.raises(ValueError, match="timestep"):
        ours(latents, torch.rand(B, 7), context, mask, FRAME_RATE)


def test_product_never_imports_the_oracle():
    package = Path(__file__).resolve().parents[1] / "ltx_core" / "model" / "transformer"
    for path in package.glob("*.py"):
        assert not re.search(r"^\s*(from|import)\s+(ltx_video|diffusers)\b", path.read_text(), re.M), path
