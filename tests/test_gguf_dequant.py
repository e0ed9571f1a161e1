"""GGUF dequantization in torch against gguf's numpy reference, bit for bit."""
import numpy as np
import pytest
import torch

from ltx_core.quantization.gguf_dequant import QUANT_BLOCKS, dequantize, quantized_bytes

gguf = pytest.importorskip("gguf")
import tiny_gguf as tg  # noqa: E402

LEGACY, K_QUANTS = list(tg.LEGACY), list(tg.K_QUANTS)
_qtype, _reference = tg.qtype, tg.dequantized


def _legacy_bytes(name, shape, seed):
    return tg.legacy_bytes(np.random.default_rng(seed).standard_normal(shape), name)


def _k_bytes(name, shape, seed):
    return tg.k_bytes(name, shape, seed)


@pytest.mark.parametrize("shape", [(64, 96), (3, 256), (512,), (2, 3, 64)])
@pytest.mark.parametrize("name", LEGACY)
def test_legacy_types_match_reference_exactly(name, shape):
    data = _legacy_bytes(name, shape, seed=len(shape) * 1000 + shape[-1])
    out = dequantize(torch.from_numpy(data), name, shape)
    assert out.dtype == torch.float32 and out.shape == shape
    assert torch.equal(out, _reference(data, name).reshape(shape))


@pytest.mark.parametrize("shape", [(1, 256), (4, 256), (3, 512), (2, 2, 512)])
@pytest.mark.parametrize("name", K_QUANTS)
def test_k_quants_match_reference_exactly(name, shape):
    data = _k_bytes(name, shape, seed=sum(shape))
    out = dequantize(torch.from_numpy(data), name, shape)
    expected = _reference(data, name).reshape(shape)
    assert torch.isfinite(expected).all()
    assert torch.equal(out, expected)


@pytest.mark.parametrize("name", ["Q4_1", "Q5_0", "Q4_K", "Q6_K"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_output_dtype_is_the_float32_result_cast(name, dtype):
    shape = (4, 512)
    data = torch.from_numpy(_legacy_bytes(name, shape, 1) if name in LEGACY else _k_bytes(name, shape, 1))
    out = dequantize(data, name, shape, dtype=dtype)
    assert out.dtype == dtype
    assert torch.equal(out, dequantize(data, name, shape).to(dtype))


@pytest.mark.parametrize("name", ["Q5_1", "Q3_K"])
def test_flat_and_row_shaped_bytes_give_the_same_result(name):
    shape = (6, 256)
    rows = torch.from_numpy(_legacy_bytes(name, shape, 2) if name in LEGACY else _k_bytes(name, shape, 2))
    expected = dequantize(rows, name, shape)
    assert torch.equal(dequantize(rows.flatten(), name, shape), expected)
    # A non-contiguous view of the same bytes (as a strided slice of a larger buffer would be) decodes the same.
    padded = torch.zeros(rows.shape[0], rows.shape[1] + 8, dtype=torch.uint8)
    padded[:, :-8] = rows
    assert torch.equal(dequantize(padded[:, :-8], name, shape), expected)


def test_unknown_type_is_rejected_naming_the_supported_ones():
    with pytest.raises(ValueError, match=r"'IQ2_XS'.*Q8_0.*Q6_K"):
        dequantize(torch.zeros(66, dtype=torch.uint8), "IQ2_XS", (256,))
    with pytest.raises(ValueError, match="IQ2_XS"):
        quantized_bytes((256,), "IQ2_XS")


def test_wrong_byte_count_is_rejected():
    with pytest.raises(ValueError, match=r"Q4_K .*\(2, 256\) needs 288 bytes, got 287"):
        dequantize(torch.zeros(287, dtype=torch.uint8), "Q4_K", (2, 256))


def test_row_length_not_a_multiple_of_the_block_is_rejected():
    with pytest.raises(ValueError, match="Q6_K.*256.*row length of 128"):
        quantized_bytes((4, 128), "Q6_K")


def test_non_byte_data_is_rejected():
    with pytest.raises(TypeError, match="uint8"):
        dequantize(torch.zeros(34, dtype=torch.int8), "Q8_0", (32,))


@pytest.mark.parametrize("name", LEGACY + K_QUANTS)
def test_quantized_bytes_agrees_with_gguf(name):
    elements, size = QUANT_BLOCKS[name]
    assert gguf.GGML_QUANT_SIZES[_qtype(name)] == (elements, size)
    shape = (3, 5, 512)
    assert quantized_bytes(shape, name) == int(np.prod(gguf.quants.quant_shape_to_byte_shape(shape, _qtype(name))))


@pytest.mark.parametrize("name", ["Q5_1", "Q5_K"])
def test_compiles_without_graph_breaks(name):
    shape = (2, 512)
    data = torch.from_numpy(_legacy_bytes(name, shape, 3) if name in LEGACY else _k_bytes(name, shape, 3))
    compiled = torch.compile(dequantize, backend="eager", fullgraph=True)
    assert torch.equal(compiled(data, name, shape), dequantize(data, name, shape))
