"""fp8 matmuls (`Transformer3D.use_fp8_matmul`): an e4m3-stored layer quantises its input to e4m3 and multiplies
with `torch._scaled_mm`, which also runs on the CPU, so the numbers are checked here; the speed is a GPU matter.

Bounds: e4m3 keeps 3 mantissa bits, so quantising the input adds an error of the same order as storing the weight
(~2% per layer for random data); the comparisons are against the same fp8 weights upcast to bf16."""
import pytest
import torch
from torch._dynamo.utils import counters

import tiny_transformer as tt
from tiny_transformer import FRAME_RATE, inputs, rel_err
from ltx_core.model.ops import Linear, fp8_linear
from ltx_core.model.transformer import Transformer3D, TransformerConfig


def fp8_layer(n_in=64, n_out=48, seed=0):
    layer = Linear(n_in, n_out)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.weight.data = (torch.randn(n_out, n_in, generator=g) / n_in ** 0.5).to(torch.float8_e4m3fn)
        layer.bias.data = torch.randn(n_out, generator=g).to(torch.bfloat16)
    return layer


@torch.no_grad()
@pytest.mark.parametrize("rowwise", [True, False], ids=["per-token-scale", "per-tensor-scale"])
def test_fp8_linear_matches_the_upcast_layer(rowwise):
    layer = fp8_layer()
    x = torch.randn(2, 30, 64, dtype=torch.bfloat16)
    x[0, 3] *= 50  # one loud token: e4m3 is a float format, so the others keep their precision either way
    expected = layer(x)  # upcast path
    got = fp8_linear(x, layer.weight, layer.bias, rowwise=rowwise)
    assert got.shape == expected.shape and got.dtype == torch.bfloat16
    assert rel_err(got.float(), expected.float()) < 0.04
    quiet = [i for i in range(30) if i != 3]
    assert rel_err(got[0, quiet].float(), expected[0, quiet].float()) < 0.04


@torch.no_grad()
def test_layer_switch_and_fallbacks():
    layer = fp8_layer()
    x = torch.randn(5, 64, dtype=torch.bfloat16)
    upcast = layer(x)
    layer.fp8_matmul = True
    fp8 = layer(x)
    assert not torch.equal(fp8, upcast) and rel_err(fp8.float(), upcast.float()) < 0.04
    odd = fp8_layer(n_in=40)  # a width the fp8 kernels do not take: upcasts
    odd.fp8_matmul = True
    y = torch.randn(5, 40, dtype=torch.bfloat16)
    odd.fp8_matmul = False
    expected = odd(y)
    odd.fp8_matmul = True
    assert torch.equal(odd(y), expected)


def fp8_model(num_layers=2):
    ref, cfg = tt.tiny_reference("2b", False, num_layers=num_layers)
    ours = Transformer3D(TransformerConfig.from_dict(cfg))
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.to(torch.bfloat16)
    for name, m in ours.named_modules():
        if isinstance(m, Linear) and name.startswith("transformer_blocks."):
            m.weight.data = m.weight.data.to(torch.float8_e4m3fn)
    return ours.eval()


@torch.no_grad()
def test_model_fp8_matmul_close_to_upcast():
    ours = fp8_model()
    latents, timestep, context, mask = inputs(per_token=True)
    latents, context = latents.bfloat16(), context.bfloat16()
    upcast = ours(latents, timestep, context, mask, FRAME_RATE)
    n = ours.use_fp8_matmul()
    assert n == 2 * (4 + 4 + 2)  # per block: self- and cross-attention q, k, v, out; feed-forward up, down
    got = ours(latents, timestep, context, mask, FRAME_RATE)
    assert torch.isfinite(got).all() and not torch.equal(got, upcast)
    assert rel_err(got.float(), upcast.float()) < 0.05
    assert ours.use_fp8_matmul(False) == n
    assert torch.equal(ours(latents, timestep, context, mask, FRAME_RATE), upcast)


@torch.no_grad()
def test_fp8_matmul_compiles_without_graph_breaks():
    torch._dynamo.reset()
    counters.clear()
    ours = fp8_model()
    ours.use_fp8_matmul()
    latents, timestep, context, mask = inputs(per_token=False)
    latents, context = latents.bfloat16(), context.bfloat16()
    eager = ours(latents, timestep, context, mask, FRAME_RATE)
    ours.compile_blocks(backend="eager", fullgraph=True)
    assert torch.equal(ours(latents, timestep, context, mask, FRAME_RATE), eager)
    assert not counters["graph_break"]
    torch._dynamo.reset()


def test_fp8_matmul_needs_fp8_weights():
    ref, cfg = tt.tiny_reference("2b", False)
    ours = Transformer3D(TransformerConfig.from_dict(cfg)).to(torch.bfloat16)
    with pytest.raises(ValueError, match=r"fp8 matmuls need fp8 weights.*bfloat16.*float8_e4m3fn"):
        ours.use_fp8_matmul()


def test_fp8_output_dtypes_by_device():
    from ltx_core.model.ops import fp8_output_supported

    assert all(fp8_output_supported("cpu", d) for d in (torch.float32, torch.bfloat16, torch.float16))
    assert fp8_output_supported("cuda", torch.bfloat16)
    # CUDA's per-row kernels fail on these in some torch/cuBLAS versions: those layers upcast instead.
    assert not any(fp8_output_supported("cuda", d) for d in (torch.float32, torch.float16))
    assert not fp8_output_supported("cpu", torch.float8_e4m3fn)
