"""GGUF transformers and separate VAE files: a tiny official transformer written as the published GGUF files
are gives, through our loader, the official model's output with the file's (dequantized) weights; diffusers' GGUF
loading of the same file agrees; quantized weights stay as the file's bytes; block streaming, torch.compile and
LoRAs work on them; every refusal names the file and the problem."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import tiny_gguf as tg
import tiny_lora as tl
import tiny_transformer as tt
import tiny_vae
from tiny_transformer import FRAME_RATE, inputs, reference_velocity, rel_err
from ltx_core import LoadOptions, LoraUse, ModelFileError, load_checkpoint, load_video_model, read_lora
from ltx_core.lora import applied_loras
from ltx_core.memory import stream_blocks, transformer_weight_bytes
from ltx_core.model.ops import QuantizedLinear
from ltx_core.quantization.gguf_dequant import quantized_bytes

pytest.importorskip("ltx_video")

PARITY = 1e-5  # relative L2, fp32
DIFFUSERS_FP16 = 2e-3  # see test_diffusers_gguf_loading_of_the_same_file_agrees
# 256 wide, 32 heads of 8 (every release has 32 heads, and GGUF files carry no config to say otherwise): every
# block layer's rows are a multiple of the K-quants' 256-element blocks.
WIDE = dict(num_attention_heads=32, attention_head_dim=8, cross_attention_dim=256)
MIXED = {"attn1": "Q8_0", "attn2": "Q4_K", "ff.net.0": "Q6_K", "ff.net.2": "Q5_1"}


def mixed(name):
    return next((t for part, t in MIXED.items() if f".{part}." in name), "Q4_0")


def reference(seed=0):
    return tt.tiny_reference("2b", False, seed=seed, **WIDE)[0]


def write(tmp_path, quant, name="ltxv-2b-0.9.6-dev-Q.gguf", ref=None, **kw):
    ref = reference() if ref is None else ref
    held = tg.write_gguf(tmp_path / name, ref.state_dict(), quant, **kw)
    ref.load_state_dict(held, strict=True)  # the official model with exactly the file's values
    return tmp_path / name, ref


@torch.no_grad()
def velocity(model, per_token=True):
    latents, timestep, context, mask = inputs(per_token)
    return model(latents, timestep, context, context_mask=mask, frame_rate=FRAME_RATE)


@torch.no_grad()
def official(ref, per_token=True):
    latents, timestep, context, mask = inputs(per_token)
    return reference_velocity(ref, latents, timestep, context, mask, False)


@pytest.mark.parametrize("quant", [*tg.LEGACY, *tg.K_QUANTS, "mixed"])
def test_gguf_transformer_equals_the_official_model_with_the_files_values(tmp_path, quant):
    path, ref = write(tmp_path, mixed if quant == "mixed" else quant)
    ck = load_checkpoint(path, dtype=torch.float32)
    assert ck.vae is None and ck.config_source == "release"
    assert ck.notes[0] == "release 0.9.6 (from the file name)" and not ck.config["transformer"]["causal_temporal_positioning"]
    layers = [m for m in ck.transformer.modules() if isinstance(m, QuantizedLinear)]
    assert len(layers) == 2 * 10  # every block layer of both blocks, nothing else
    assert rel_err(velocity(ck.transformer), official(ref)) <= PARITY


def test_quantized_weights_stay_the_files_bytes(tmp_path):
    path, _ = write(tmp_path, "Q4_K")
    ck = load_checkpoint(path, dtype=torch.bfloat16)
    for layer in (m for m in ck.transformer.modules() if isinstance(m, QuantizedLinear)):
        assert layer.weight.dtype == torch.uint8
        assert layer.weight.numel() == quantized_bytes((layer.out_features, layer.in_features), "Q4_K")
    # resident bytes: the quantized blocks as stored (4.5 bits a weight) plus the small dense tensors in bf16
    total = sum(t.numel() * t.element_size() for t in ck.transformer.state_dict().values())
    expected = sum(t.numel() * 2 if tg.kept_unquantized(k, t) else quantized_bytes(tuple(t.shape), "Q4_K")
                   for k, t in reference().state_dict().items())
    assert total == expected
    assert total < 0.5 * sum(p.numel() * 2 for p in reference().parameters())
    # the memory plan counts those bytes, plus the largest layer's dequantization (two fp32 temporaries and the
    # bf16 result: the feed-forward's 256 x 1024)
    transient = 256 * 1024 * (4 + 4 + 2)
    assert transformer_weight_bytes(ck.transformer, torch.bfloat16) == total + transient
    blocks = [sum(t.numel() * t.element_size() for t in b.state_dict().values()) for b in ck.transformer.transformer_blocks]
    assert transformer_weight_bytes(ck.transformer, torch.bfloat16, streaming=True) == (
        total - sum(blocks) + 2 * max(blocks) + transient)
    assert ck.transformer.compute_dtype == torch.bfloat16


def test_diffusers_gguf_loading_of_the_same_file_agrees(tmp_path):
    from diffusers import GGUFQuantizationConfig, LTXVideoTransformer3DModel

    path, ref = write(tmp_path, mixed)
    cfg = tt.tiny_config("2b", **WIDE)
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "_class_name": "LTXVideoTransformer3DModel", "in_channels": 128, "out_channels": 128,
        "num_attention_heads": cfg["num_attention_heads"], "attention_head_dim": cfg["attention_head_dim"],
        "cross_attention_dim": cfg["cross_attention_dim"], "num_layers": cfg["num_layers"],
        "caption_channels": cfg["caption_channels"]}))
    theirs = LTXVideoTransformer3DModel.from_single_file(
        str(path), config=str(folder), quantization_config=GGUFQuantizationConfig(compute_dtype=torch.float32),
        torch_dtype=torch.float32).eval()
    ours = load_checkpoint(path, dtype=torch.float32).transformer
    g = torch.Generator().manual_seed(0)
    b, f, h, w = 1, 2, 3, 4
    latents = torch.randn(b, 128, f, h, w, generator=g)
    context = torch.randn(b, 6, cfg["caption_channels"], generator=g)
    with torch.no_grad():
        expected = theirs(latents.flatten(2).transpose(1, 2), context, torch.tensor([600.0]), torch.ones(b, 6),
                          num_frames=f, height=h, width=w, rope_interpolation_scale=(8 / 25, 32, 32),
                          return_dict=False)[0]
        got = ours(latents, torch.tensor([0.6]), context, context_mask=torch.ones(b, 6), frame_rate=25.0)
    # diffusers' dequantization multiplies in float16 (its block functions keep the fp16 scales' dtype), where gguf's
    # reference and ours compute in float32: each weight carries fp16 rounding, 2^-11 relative, so the outputs
    # agree to about 1e-3 here, not 1e-5. Ours equals the reference to 1e-5 (the test above).
    assert rel_err(got.flatten(2).transpose(1, 2), expected) <= DIFFUSERS_FP16
    theirs_q = theirs.transformer_blocks[0].attn1.to_q.weight  # Q8_0: d * q, one product, rounded once to fp16
    from diffusers.quantizers.gguf.utils import dequantize_gguf_tensor
    ours_q = ours.transformer_blocks[0].attn1.to_q.dense_weight(torch.zeros(1, dtype=torch.float32))
    assert torch.equal(dequantize_gguf_tensor(theirs_q).float(), ours_q.half().float())


def test_streaming_compile_and_lora_on_gguf_weights(tmp_path):
    path, ref = write(tmp_path, mixed)
    model = load_checkpoint(path, dtype=torch.float32).transformer
    expected = official(ref)
    with stream_blocks(model, "cpu"):
        assert rel_err(velocity(model), expected) <= PARITY
    lora = tl.random_lora(ref, rank=4)
    use = LoraUse(read_lora(tl.write_lora(tmp_path / "l.safetensors", lora), model), 0.7)
    with applied_loras(model, [use]):
        got = velocity(model)
    assert rel_err(got, official(tl.merged(ref, [(lora, 0.7)]))) <= PARITY
    model.compile_blocks(backend="eager", fullgraph=True)  # fullgraph: dequantization traces without a break
    assert rel_err(velocity(model), expected) <= PARITY
    torch._dynamo.reset()


# ------------------------------------------------------------------------------------------------- VAE files


def vae_file(tmp_path, layout="0.9.5", prefix="", metadata=True, name="vae.safetensors"):
    _, cfg, sd = tiny_vae.tiny_vae(layout)
    meta = {"config": json.dumps({"vae": cfg})} if metadata else None
    save_file({prefix + k: v.contiguous() for k, v in sd.items()}, str(tmp_path / name), metadata=meta)
    return tmp_path / name


@pytest.mark.parametrize(("prefix", "metadata"), [("vae.", True), ("", False)], ids=["prefixed", "bare-detected"])
def test_gguf_with_a_separate_vae_file(tmp_path, prefix, metadata):
    path, ref = write(tmp_path, "Q8_0")
    vae = vae_file(tmp_path, prefix=prefix, metadata=metadata)
    ck = load_video_model(path, LoadOptions(dtype=torch.float32), vae_path=vae)
    assert ck.vae is not None and ck.config["vae"]["encoder_blocks"]
    assert ck.config["scheduler"]["sampler"] == "LinearQuadratic"
    assert rel_err(velocity(ck.transformer), official(ref)) <= PARITY


def test_release_auto_explicit_and_guessed(tmp_path):
    path, _ = write(tmp_path, "Q8_0", name="model.gguf")
    ck = load_checkpoint(path, dtype=torch.float32)
    assert ck.notes[0].startswith("release 0.9 assumed (the file states none")
    assert ck.config["scheduler"]["sampler"] == "Uniform"
    ck = load_video_model(path, LoadOptions(dtype=torch.float32, release="0.9.8"), vae_path=vae_file(tmp_path))
    assert ck.notes[0] == "release 0.9.8 (as chosen)" and ck.config["transformer"]["causal_temporal_positioning"]
    # no release stated: the separate VAE's generation decides
    ck = load_video_model(path, LoadOptions(dtype=torch.float32), vae_path=vae_file(tmp_path))
    assert ck.notes[0].startswith("release 0.9.6 assumed")


# ------------------------------------------------------------------------------------------------- refusals


def test_a_gguf_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "flux1-dev-Q4_0.gguf"
    tg.write_gguf(path, {"double_blocks.0.img_attn.qkv.weight": torch.randn(96, 64)}, "Q4_0", arch="flux")
    with pytest.raises(ModelFileError, match=r"flux1-dev-Q4_0.gguf: this GGUF file is not an LTX-Video transformer "
                                             r"\(general.architecture = 'flux'"):
        load_checkpoint(path)


def test_a_truncated_gguf_is_refused(tmp_path):
    path, _ = write(tmp_path, "Q8_0")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"not a readable GGUF file \(truncated or corrupt download\?\)"):
        load_checkpoint(path)


def test_an_unsupported_quantization_is_named(tmp_path):
    import gguf

    path = tmp_path / "ltxv-iq.gguf"
    writer = gguf.GGUFWriter(str(path), "ltxv")
    block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.IQ4_NL]
    writer.add_tensor("transformer_blocks.0.attn1.to_q.weight", np.zeros((256, 256 // block * size), np.uint8),
                      raw_shape=(256, 256 // block * size), raw_dtype=gguf.GGMLQuantizationType.IQ4_NL)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelFileError, match=r"'transformer_blocks.0.attn1.to_q.weight' is stored as IQ4_NL, which is "
                                             r"not supported \(supported: F32, F16, BF16, Q8_0"):
        load_checkpoint(path)


def test_transformer_only_file_where_a_full_checkpoint_is_needed_and_the_reverse(tmp_path):
    path, _ = write(tmp_path, "Q8_0")
    with pytest.raises(ModelFileError, match=r"Q.gguf: holds only the transformer, no VAE: give the VAE file"):
        load_video_model(path, LoadOptions(dtype=torch.float32))
    import official_files

    full = tmp_path / "ltxv-full.safetensors"
    official_files.tiny_checkpoint(full)
    with pytest.raises(ModelFileError, match=r"ltxv-full.safetensors: this file holds a whole model .*not a VAE alone"):
        load_video_model(path, LoadOptions(dtype=torch.float32), vae_path=full)
    with pytest.raises(ModelFileError, match=r"a GGUF file holds a transformer, not a VAE"):
        load_video_model(path, LoadOptions(dtype=torch.float32), vae_path=path)
    with pytest.raises(ModelFileError, match="a GGUF model is quantized already"):
        load_checkpoint(path, dtype="float8_e4m3fn")


def test_a_vae_of_the_wrong_generation_is_refused(tmp_path):
    path, _ = write(tmp_path, "Q8_0", name="ltxv-13b-0.9.8-distilled-Q8_0.gguf")
    old = vae_file(tmp_path, layout="0.9.0", name="ltx-video-0.9-vae.safetensors")
    with pytest.raises(ModelFileError, match=r"0.9.8-distilled-Q8_0.gguf: the VAE given with it is of the 0.9.0 "
                                             r"generation, but LTX-Video 0.9.8 models decode with the 0.9.5\+ VAE"):
        load_video_model(path, LoadOptions(dtype=torch.float32), vae_path=old)
