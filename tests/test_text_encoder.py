import json
import logging
import types

import pytest
import torch
from safetensors.torch import save_file
from transformers import T5EncoderModel

from ltx_core.loader.errors import ModelFileError
from ltx_core.loader.text_encoder_files import load_text_encoder
from ltx_core.model.ops import Linear
from ltx_core.model.text_encoder import ScaledLinear
from tiny_t5 import (copy_tokenizer, encoder_state, fp8_state, model_with_weights_of, reference_encode,
                     reference_tokenizer, save_hf_sharded, save_pixart, save_single, tiny_t5)

FOX = "  A red fox trots through fresh snow at dawn, its breath steaming in the cold air.  "
LONG = "The camera slowly pans across a crowded night market full of lanterns and steam. " * 20  # > 256 tokens
PROMPT_SETS = {"batch_of_2": [FOX, "A cat."], "truncated": [LONG, "short"], "single_string": "a prompt"}


def rel_l2(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@pytest.fixture(scope="module")
def tiny():
    return tiny_t5()


@pytest.fixture(scope="module")
def ref_tokenizer(t5_tokenizer_dir):
    return reference_tokenizer(t5_tokenizer_dir)


@pytest.fixture(scope="module")
def pixart_dir(tiny, t5_tokenizer_dir, tmp_path_factory):
    return save_pixart(tiny, t5_tokenizer_dir, tmp_path_factory.mktemp("pixart"))


@pytest.fixture(scope="module")
def reference(pixart_dir):
    """The official way: T5EncoderModel + T5Tokenizer from the PixArt folder (inference.py), then encode_prompt."""
    te = T5EncoderModel.from_pretrained(str(pixart_dir), subfolder="text_encoder")
    tok = reference_tokenizer(pixart_dir / "tokenizer")
    return {name: reference_encode(te, tok, prompts) for name, prompts in PROMPT_SETS.items()}


def assert_matches(te, want, tol):
    worst = 0.0
    for name, prompts in PROMPT_SETS.items():
        embeds, mask = te.encode(prompts)
        ref_embeds, ref_mask = want[name]
        assert embeds.shape == ref_embeds.shape == (ref_mask.shape[0], 256, 64)
        assert mask.dtype == ref_mask.dtype and torch.equal(mask.cpu(), ref_mask.cpu()), name
        assert torch.isfinite(embeds).all()
        err = rel_l2(embeds, ref_embeds)
        assert err <= tol, (name, err)
        worst = max(worst, err)
    return worst


def test_reference_prompts_cover_truncation_and_lengths(reference):
    mask = reference["truncated"][1]
    assert mask[0].sum() == 256 and 0 < mask[1].sum() < 256
    mask = reference["batch_of_2"][1]
    assert mask[0].sum() != mask[1].sum()


def test_pixart_folder(pixart_dir, reference):
    te = load_text_encoder(pixart_dir, device="cpu", dtype=torch.float32)
    assert te.max_tokens == 256 and te.dtype == torch.float32 and te.device == torch.device("cpu")
    assert_matches(te, reference, 1e-5)


def test_pixart_text_encoder_subfolder_finds_sibling_tokenizer(pixart_dir, reference):
    assert_matches(load_text_encoder(pixart_dir / "text_encoder"), reference, 1e-5)


def test_hf_sharded_folder(tiny, t5_tokenizer_dir, tmp_path, reference):
    root = save_hf_sharded(tiny, t5_tokenizer_dir, tmp_path / "t5")
    assert (root / "model.safetensors.index.json").is_file()
    assert len(list(root.glob("model-*-of-*.safetensors"))) > 1
    assert_matches(load_text_encoder(root), reference, 1e-5)


@pytest.mark.parametrize("embedding_keys", [("shared.weight",), ("encoder.embed_tokens.weight",),
                                            ("shared.weight", "encoder.embed_tokens.weight")],
                         ids=["shared", "embed_tokens", "both"])
def test_single_file_fp32(tiny, t5_tokenizer_dir, tmp_path, reference, embedding_keys):
    path = save_single(encoder_state(tiny, torch.float32, embedding_keys), tmp_path / "t5xxl_fp32.safetensors")
    te = load_text_encoder(path, tokenizer_path=t5_tokenizer_dir)
    assert te.model.shared.weight is te.model.encoder.embed_tokens.weight
    assert_matches(te, reference, 1e-5)


def test_single_file_fp16_storage(tiny, t5_tokenizer_dir, ref_tokenizer, tmp_path):
    """fp16 storage read into float32: exactly the fp16-rounded weights."""
    sd = encoder_state(tiny, torch.float16)
    path = save_single(sd, tmp_path / "t5xxl_fp16.safetensors")
    copy_tokenizer(t5_tokenizer_dir, tmp_path / "tokenizer")  # found next to the file
    ref_model = model_with_weights_of(tiny, sd)
    want = {name: reference_encode(ref_model, ref_tokenizer, p) for name, p in PROMPT_SETS.items()}
    assert_matches(load_text_encoder(path), want, 1e-5)


def test_float16_compute_keeps_wo_in_float32(pixart_dir, reference):
    te = load_text_encoder(pixart_dir, dtype=torch.float16)
    ff = te.model.encoder.block[0].layer[1].DenseReluDense
    assert ff.wo.weight.dtype == torch.float32 and ff.wi_0.weight.dtype == torch.float16
    assert te.dtype == torch.float16
    # fp16 rounding of weights and activations through 2 layers.
    assert_matches(te, reference, 5e-3)


def test_bfloat16(pixart_dir, reference):
    te = load_text_encoder(pixart_dir, dtype="bf16")
    assert te.dtype == torch.bfloat16
    # bf16 keeps 8 significant bits (~4e-3 per rounding); T5 does not scale its attention logits, so the
    # softmax amplifies that: 2.2e-2 measured.
    assert_matches(te, reference, 5e-2)


@pytest.mark.parametrize("scaled", [False, True], ids=["fp8_e4m3fn", "scaled_fp8"])
def test_fp8_file(tiny, t5_tokenizer_dir, ref_tokenizer, tmp_path, reference, scaled):
    sd = fp8_state(tiny, scaled)
    path = save_single(sd, tmp_path / "t5xxl_fp8_e4m3fn.safetensors")
    dequantized = model_with_weights_of(tiny, sd)
    want = {name: reference_encode(dequantized, ref_tokenizer, p) for name, p in PROMPT_SETS.items()}

    # Read into float32, the fp8 values (times their scales) are exact: same numbers as the dequantized model.
    te = load_text_encoder(path, tokenizer_path=t5_tokenizer_dir, dtype=torch.float32)
    assert_matches(te, want, 1e-5)

    # fp8 storage: block Linears keep fp8 weights, everything computes in bf16; bf16 rounding as in test_bfloat16.
    te = load_text_encoder(path, tokenizer_path=t5_tokenizer_dir, dtype="float8_e4m3fn")
    q = te.model.encoder.block[1].layer[0].SelfAttention.q
    assert q.weight.dtype == torch.float8_e4m3fn and isinstance(q, ScaledLinear if scaled else Linear)
    assert te.dtype == torch.bfloat16 and te.model.encoder.final_layer_norm.weight.dtype == torch.bfloat16
    assert_matches(te, want, 5e-2)

    # Against the full-precision weights the fp8 rounding itself shows (e4m3 keeps 4 significant bits: up to
    # ~6% per weight); 0.11-0.12 measured: close, not equal.
    assert_matches(te, reference, 0.2)


def test_fp16_file_stored_as_fp8(tiny, t5_tokenizer_dir, tmp_path, reference):
    path = save_single(encoder_state(tiny, torch.float16), tmp_path / "t5xxl_fp16.safetensors")
    te = load_text_encoder(path, tokenizer_path=t5_tokenizer_dir, dtype=torch.float8_e4m3fn)
    assert te.model.encoder.block[0].layer[1].DenseReluDense.wo.weight.dtype == torch.float8_e4m3fn
    assert_matches(te, reference, 0.2)


def test_xxl_config_from_shapes(t5_tokenizer_dir):
    """A t5xxl_fp16.safetensors file's shapes give back the T5-XXL config (read on the meta device: no weights)."""
    from transformers import T5Config

    from ltx_core.loader.text_encoder_files import _config_from_shapes
    from ltx_core.model.text_encoder import build_t5_encoder

    xxl = T5Config.from_json_file(t5_tokenizer_dir / "t5_v1_1_xxl_encoder_config.json")
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in T5EncoderModel(xxl).state_dict().items()}
    del shapes["encoder.embed_tokens.weight"]  # ComfyUI's files carry the tied matrix once, as shared.weight
    stub = types.SimpleNamespace(path="t5xxl_fp16.safetensors", shape=shapes.__getitem__)
    config = _config_from_shapes(stub, set(shapes))
    for field in ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads",
                  "relative_attention_num_buckets", "relative_attention_max_distance", "layer_norm_epsilon",
                  "is_gated_act"):
        assert getattr(config, field) == getattr(xxl, field), field
    with torch.device("meta"):
        n = sum(p.numel() for p in build_t5_encoder(config, fp8_storage=True).parameters())
    assert n == 4_762_310_656


def test_to_and_offload(pixart_dir):
    te = load_text_encoder(pixart_dir)
    assert te.to("cpu") is te and te.offload() is te
    assert te.device == torch.device("cpu")
    assert all(p.device.type == "cpu" for p in te.model.parameters())


def test_truncation_is_logged(pixart_dir, caplog):
    te = load_text_encoder(pixart_dir)
    with caplog.at_level(logging.WARNING):
        te.encode([LONG])
    assert "truncated" in caplog.text


# ---- tokenizer discovery ----

def test_single_file_uses_a_tokenizer_dir(tiny, t5_tokenizer_dir, tmp_path, reference):
    """A host application's own tokenizer copy (ComfyUI's comfy/text_encoders/t5_tokenizer), passed in."""
    shipped = tmp_path / "ComfyUI" / "comfy" / "text_encoders" / "t5_tokenizer"
    copy_tokenizer(t5_tokenizer_dir, shipped)
    models = tmp_path / "models" / "text_encoders"
    models.mkdir(parents=True)
    path = save_single(encoder_state(tiny, torch.float32), models / "t5xxl.safetensors")
    assert_matches(load_text_encoder(path, tokenizer_dirs=[shipped]), reference, 1e-5)


def test_single_file_without_tokenizer_says_where_to_put_one(tiny, tmp_path):
    path = save_single(encoder_state(tiny, torch.float16), tmp_path / "t5xxl_fp16.safetensors")
    empty = tmp_path / "host" / "t5_tokenizer"
    empty.mkdir(parents=True)
    with pytest.raises(ModelFileError) as e:
        load_text_encoder(path, tokenizer_dirs=[empty])
    msg = str(e.value)
    assert str(path) in msg and "no T5 tokenizer found" in msg and str(empty) in msg
    assert f"into {tmp_path / 'tokenizer'}" in msg and "tokenizer_path" in msg and "tokenizer.json" in msg


def test_folder_without_tokenizer(tiny, tmp_path):
    tiny.save_pretrained(tmp_path / "t5")
    with pytest.raises(ModelFileError) as e:
        load_text_encoder(tmp_path / "t5")
    assert "no T5 tokenizer found" in str(e.value) and str(tmp_path / "t5" / "tokenizer") in str(e.value)


def test_bad_tokenizer_path(pixart_dir, tmp_path):
    with pytest.raises(ModelFileError, match="tokenizer_path holds no T5 tokenizer"):
        load_text_encoder(pixart_dir, tokenizer_path=tmp_path)


# ---- refusals ----

def _refused(path, *fragments, **kw):
    with pytest.raises(ModelFileError) as e:
        load_text_encoder(path, **kw)
    msg = str(e.value)
    for frag in fragments:
        assert frag in msg, msg
    return msg


def test_refuses_pickle_file(tmp_path):
    p = tmp_path / "pytorch_model.bin"
    p.write_bytes(b"\x80\x04\x95")
    _refused(p, str(p), "only .safetensors")


def test_refuses_folder_with_only_pickle(tiny, t5_tokenizer_dir, tmp_path):
    root = tmp_path / "t5"
    root.mkdir()
    (root / "config.json").write_text(json.dumps(tiny.config.to_dict()))
    (root / "pytorch_model.bin").write_bytes(b"\x80\x04\x95")
    copy_tokenizer(t5_tokenizer_dir, root)
    _refused(root, "pytorch_model.bin", "pickled")


def test_refuses_ltx_checkpoint(tmp_path, t5_tokenizer_dir):
    p = tmp_path / "ltxv-2b.safetensors"
    save_file({"model.diffusion_model.patchify_proj.weight": torch.zeros(8, 128),
               "vae.decoder.conv_in.conv.weight": torch.zeros(4, 128, 3, 3, 3)}, str(p))
    _refused(p, str(p), "LTX-Video checkpoint", "not a T5", tokenizer_path=t5_tokenizer_dir)


def test_refuses_upsampler(tmp_path, t5_tokenizer_dir):
    p = tmp_path / "up.safetensors"
    save_file({"initial_conv.weight": torch.zeros(32, 128, 3, 3, 3), "upsampler.0.weight": torch.zeros(4)}, str(p))
    _refused(p, "latent upsampler", tokenizer_path=t5_tokenizer_dir)


def test_refuses_non_t5_folder(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "umt5"}))
    _refused(tmp_path, "'umt5'", "not a T5")


def test_refuses_missing_tensor(tiny, t5_tokenizer_dir, tmp_path):
    sd = encoder_state(tiny)
    del sd["encoder.block.1.layer.1.layer_norm.weight"]
    _refused(save_single(sd, tmp_path / "t5.safetensors"), "missing", "encoder.block.1.layer.1.layer_norm.weight",
             tokenizer_path=t5_tokenizer_dir)


def test_refuses_wrong_shape(tiny, t5_tokenizer_dir, tmp_path):
    sd = encoder_state(tiny)
    sd["encoder.block.1.layer.0.SelfAttention.v.weight"] = torch.zeros(64, 32, dtype=torch.float16)
    _refused(save_single(sd, tmp_path / "t5.safetensors"), "encoder.block.1.layer.0.SelfAttention.v.weight",
             "[64, 32]", "[64, 64]", tokenizer_path=t5_tokenizer_dir)


def test_refuses_original_t5(tiny, t5_tokenizer_dir, tmp_path):
    sd = encoder_state(tiny)
    for i in range(2):
        ff = f"encoder.block.{i}.layer.1.DenseReluDense."
        sd[ff + "wi.weight"] = sd.pop(ff + "wi_0.weight")
        del sd[ff + "wi_1.weight"]
    _refused(save_single(sd, tmp_path / "t5.safetensors"), "T5 v1.1", tokenizer_path=t5_tokenizer_dir)


def test_refuses_newer_comfy_quant_layout(tiny, t5_tokenizer_dir, tmp_path):
    sd = fp8_state(tiny)
    sd["encoder.block.0.layer.0.SelfAttention.q.weight_scale"] = torch.tensor(1.0)
    _refused(save_single(sd, tmp_path / "t5.safetensors"), "newer quantized", "t5xxl_fp16",
             tokenizer_path=t5_tokenizer_dir)


def test_refuses_per_channel_scale(tiny, t5_tokenizer_dir, tmp_path):
    sd = fp8_state(tiny, scaled=True)
    sd["encoder.block.0.layer.0.SelfAttention.q.scale_weight"] = torch.ones(64)
    _refused(save_single(sd, tmp_path / "t5.safetensors"), "per-tensor", tokenizer_path=t5_tokenizer_dir)


def test_refuses_truncated_file(tiny, t5_tokenizer_dir, tmp_path):
    good = save_single(encoder_state(tiny), tmp_path / "good.safetensors")
    p = tmp_path / "t5xxl_fp16.safetensors"
    p.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _refused(p, str(p), "truncated", tokenizer_path=t5_tokenizer_dir)



def test_meta_device_checks_the_file_and_reads_no_weight(tiny, t5_tokenizer_dir, tmp_path):
    """A backend that converts T5 from the file itself (OpenVINO) takes a skeleton: checked, left unread."""
    state = encoder_state(tiny, torch.float32)
    te = load_text_encoder(save_single(state, tmp_path / "t5.safetensors"), device="meta",
                           tokenizer_path=t5_tokenizer_dir)
    assert {p.device.type for p in te.model.parameters()} == {"meta"}
    state.pop(sorted(k for k in state if k.endswith(".weight"))[-1])
    with pytest.raises(ModelFileError, match="missing"):
        load_text_encoder(save_single(state, tmp_path / "partial.safetensors"), device="meta",
                          tokenizer_path=t5_tokenizer_dir)
