"""LoRAs applied at compute time (`ltx_core.lora.applied_loras`) on every way the transformer's weights are held
and run: fp8 storage (upcast and fp8 matmuls), block streaming, compiled blocks; and what applying costs in memory.

References are the fp32 official model with the LoRA merged into its weights by the plain formula
(tiny_lora.merged), or our own model without streaming / without compiling. Each test also shows that the LoRA
moves the output by far more than the tolerance it is checked to, so that a LoRA dropped or misapplied fails."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch._dynamo.utils import counters

import official_files as of
import tiny_lora as tl
import tiny_transformer as tt
from tiny_transformer import FRAME_RATE, inputs, reference_velocity, rel_err
from ltx_core.loader.checkpoint import load_checkpoint
from ltx_core.lora import LoraUse, applied_loras, lora_bytes, read_lora
from ltx_core.lora.apply import RANK_BUCKET
from ltx_core.memory import stream_blocks
from ltx_core.model.ops import Linear
from ltx_core.model.transformer import Transformer3D, TransformerConfig

pytest.importorskip("ltx_video")

PARITY = 1e-5  # relative L2, fp32 against the official model (as tests/test_lora.py)
# The layers LTX-Video's trainer puts LoRAs on, in every block.
TRAINER_LAYERS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k", "attn2.to_v",
                  "attn2.to_out.0", "ff.net.0.proj", "ff.net.2")

REF, CFG = tt.tiny_reference("2b")


def ours_fp32() -> Transformer3D:
    model = Transformer3D(TransformerConfig.from_dict(CFG))
    model.load_state_dict(REF.state_dict(), strict=True)
    return model.eval()


def trainer_targets(model) -> list[str]:
    return [f"transformer_blocks.{i}.{name}" for i in range(len(model.transformer_blocks)) for name in TRAINER_LAYERS]


def run(model, per_token=True):
    latents, timestep, context, mask = inputs(per_token=per_token)
    with torch.no_grad():
        return model(latents, timestep, context, mask, FRAME_RATE).float()


def official(model, per_token=True):
    latents, timestep, context, mask = inputs(per_token=per_token)
    with torch.no_grad():
        return reference_velocity(model, latents, timestep, context, mask, False)


def lora_file(tmp_path, model, name="l", **kwargs):
    """(the LoRA as tiny_lora holds it, the same LoRA read from its file for `model`)."""
    lora = tl.random_lora(REF, **kwargs)
    return lora, read_lora(tl.write_lora(tmp_path / f"{name}.safetensors", lora), model)


# ------------------------------------------------------------------------------------------------ fp8 storage


@pytest.fixture(scope="module")
def fp8_model(tmp_path_factory):
    """Our model as the loader gives it for dtype float8_e4m3fn: block Linear weights stored in e4m3, everything
    else (and the arithmetic) in bf16."""
    path = of.save_checkpoint(tmp_path_factory.mktemp("fp8") / "ltxv.safetensors", REF.state_dict(),
                              configs={"transformer": CFG})
    model = load_checkpoint(path, dtype="float8_e4m3fn").transformer.eval()
    assert model.compute_dtype == torch.bfloat16
    return model


def fp8_bits(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().view(torch.uint8).clone() for n, p in model.named_parameters()
            if p.dtype == torch.float8_e4m3fn}


def assert_fp8_untouched(model, bits) -> None:
    now = dict(model.named_parameters())
    assert len(bits) == 2 * len(TRAINER_LAYERS)  # every block Linear of the two blocks
    for name, want in bits.items():
        assert now[name].dtype == torch.float8_e4m3fn, name
        assert torch.equal(now[name].detach().view(torch.uint8), want), name


@pytest.mark.parametrize("fp8_matmul", [False, True], ids=["upcast", "fp8-matmul"])
def test_fp8_storage_with_a_lora_is_as_close_as_fp8_without_one(tmp_path, fp8_model, fp8_matmul):
    """Tolerance: fp8 itself. e4m3 keeps 3 mantissa bits, so the fp8 model is a few % from the fp32 one with no
    LoRA at all (and fp8 matmuls quantise each layer's input too); a LoRA applied at compute time (in bf16, on
    top of the unchanged fp8 weights) must add nothing measurable to that. So the error of the fp8 model with the
    LoRA against the fp32 official model with the LoRA merged is bounded by 1.5x the same model's error without
    the LoRA, plus 1e-3 for the LoRA's own bf16 arithmetic (~2^-9 per rounding, on a part of the output)."""
    lora, read = lora_file(tmp_path, fp8_model, size=0.5)
    bits = fp8_bits(fp8_model)
    n = fp8_model.use_fp8_matmul(fp8_matmul)
    assert n == 2 * len(TRAINER_LAYERS)  # the switch found every e4m3 layer
    try:
        plain = run(fp8_model)
        weights = {name: p.data_ptr() for name, p in fp8_model.named_parameters()}
        with applied_loras(fp8_model, [LoraUse(read, 1.0)]):
            got = run(fp8_model)
            assert {name: p.data_ptr() for name, p in fp8_model.named_parameters()} == weights  # no new weights
        assert torch.equal(run(fp8_model), plain)  # and none left behind
    finally:
        fp8_model.use_fp8_matmul(False)
    expected_plain, expected = official(REF), official(tl.merged(REF, [(lora, 1.0)]))
    fp8_error = rel_err(plain, expected_plain)
    bound = 1.5 * fp8_error + 1e-3
    assert 1e-3 < fp8_error < 0.1  # fp8 really is in play (the bound is fp8's, not fp32's)
    assert rel_err(got, expected) <= bound
    assert rel_err(expected, expected_plain) > 10 * bound  # the LoRA's effect: missing it would fail
    assert_fp8_untouched(fp8_model, bits)


def test_fp8_lora_delta_is_applied_in_bf16_not_requantised(tmp_path, fp8_model):
    """The LoRA's effect (with LoRA - without) on fp8-stored weights is the exact low-rank product to bf16
    precision. Merging it into the e4m3 weights instead would round it to e4m3's 3 mantissa bits; that
    alternative is computed alongside to show the bound tells the two apart."""
    lora, read = lora_file(tmp_path, fp8_model, size=0.3)
    bits = fp8_bits(fp8_model)
    modules = dict(fp8_model.named_modules())
    gen = torch.Generator().manual_seed(1)
    # Per layer: the output difference is bf16(bf16(base) + bf16(delta)) - bf16(base), with down/up rounded to bf16:
    # a few bf16 roundings (2^-9 each) of values up to ~3x the delta's size.
    bf16_delta = 1.5e-2
    checked = 0
    with torch.no_grad():
        for target, (down, up, _alpha) in lora.items():
            layer = modules[target]
            if layer.weight.dtype != torch.float8_e4m3fn:
                continue
            x = torch.randn(2, 30, layer.in_features, generator=gen).bfloat16()
            exact = x.double() @ down.double().T @ up.double().T
            requantised = (F.linear(x, (layer.weight.double() + up.double() @ down.double()).to(torch.float8_e4m3fn)
                                    .to(x.dtype), layer.bias) - F.linear(x, layer.weight.to(x.dtype), layer.bias))
            assert rel_err(requantised, exact) > 4 * bf16_delta  # what merging into fp8 would do
            for fp8_matmul in (False, True):
                layer.fp8_matmul = fp8_matmul
                try:
                    plain = layer(x)
                    with applied_loras(fp8_model, [LoraUse(read, 1.0)]):
                        assert all(t.dtype == torch.bfloat16 for t in (layer.lora.down, layer.lora.up))
                        got = layer(x)
                finally:
                    layer.fp8_matmul = False
                assert got.dtype == torch.bfloat16
                # (a LoRA left out would be off by 100%)
                assert rel_err(got.double() - plain.double(), exact) <= bf16_delta, (target, fp8_matmul)
            checked += 1
    assert checked == sum(t.startswith("transformer_blocks.") for t in tl.TARGETS)

    # The whole model: against an fp32 official model holding exactly the stored values (e4m3 and bf16 convert
    # to fp32 exactly), so the base weights are equal and only the arithmetic differs. The two effects agree to
    # the bf16 arithmetic error of the model itself, measured without the LoRA.
    same_weights = copy.deepcopy(REF)
    stored = fp8_model.state_dict()
    with torch.no_grad():
        for k, v in same_weights.state_dict().items():
            v.copy_(stored[k].float())
    plain = run(fp8_model)
    with applied_loras(fp8_model, [LoraUse(read, 1.0)]):
        got = run(fp8_model)
    expected_plain, expected = official(same_weights), official(tl.merged(same_weights, [(lora, 1.0)]))
    bf16_model_error = (plain - expected_plain).norm()
    assert 0 < bf16_model_error < 0.02 * expected_plain.norm()  # bf16 arithmetic, no weight rounding left
    assert ((got - plain) - (expected - expected_plain)).norm() <= 2 * bf16_model_error
    assert (expected - expected_plain).norm() > 20 * bf16_model_error
    assert_fp8_untouched(fp8_model, bits)


# ------------------------------------------------------------------------------------------------ block streaming


@pytest.mark.parametrize("order", ["lora-then-streaming", "streaming-then-lora"])
def test_block_streaming_gives_the_resident_result(tmp_path, order):
    """`stream_blocks` swaps every block's parameters and buffers in hooks around the block, whichever of the two
    contexts came first; streaming to the CPU still runs those hooks (the spy below sees every block go through
    them)."""
    model = ours_fp32()
    lora, read = lora_file(tmp_path, model)
    uses = [LoraUse(read, 0.8)]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plain = run(model)
    with applied_loras(model, uses):
        want = run(model)
    assert rel_err(want, official(tl.merged(REF, [(lora, 0.8)]))) <= PARITY
    assert rel_err(want, plain) > 1e4 * 1e-6

    calls = []
    for i, block in enumerate(model.transformer_blocks):  # a spy: the streamed call really went block by block
        block.register_forward_pre_hook(lambda _m, _a, i=i: calls.append(i))
    if order == "lora-then-streaming":
        with applied_loras(model, uses), stream_blocks(model, "cpu"):
            assert all(len(b._forward_pre_hooks) == 2 for b in model.transformer_blocks)  # spy + streamer
            got = run(model)
    else:
        with stream_blocks(model, "cpu"), applied_loras(model, uses):
            assert all(len(b._forward_pre_hooks) == 2 for b in model.transformer_blocks)
            got = run(model)
    assert calls == list(range(len(model.transformer_blocks)))
    assert rel_err(got, want) <= 1e-6
    # everything as before: weights, no LoRA left on any layer, streaming hooks gone, a plain run plain again
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert all(m.lora is None for m in model.modules() if isinstance(m, Linear))
    assert all(len(b._forward_pre_hooks) == 1 and not b._forward_hooks for b in model.transformer_blocks)
    assert torch.equal(run(model), plain)


# ------------------------------------------------------------------------------------------------ torch.compile


@pytest.fixture
def fresh_dynamo():
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def graphs() -> int:
    return counters["stats"]["unique_graphs"]


@pytest.mark.usefixtures("fresh_dynamo")
def test_compiled_blocks_take_new_strengths_without_recompiling(tmp_path):
    """A generation enters `applied_loras` afresh (new LoraDelta modules). Dynamo guards on the layers' structure
    (a `lora` on the layer or not, its tensors' shapes and dtypes), not on the modules' identity, and the strengths
    are a tensor (`LoraDelta.scale`), not Python floats baked into the graph: adding a LoRA traces one more graph,
    new strengths of the same LoRA none, and the model without LoRA takes its first graph again. The shapes of
    module tensors are static to dynamo: stacked ranks are padded to `RANK_BUCKET`, so another LoRA of another rank,
    or two stacked, reuse the graph too."""
    model = ours_fp32()
    eager = copy.deepcopy(model)
    lora, read = lora_file(tmp_path, model, targets=trainer_targets(model))
    model.compile_blocks(backend="eager", fullgraph=True)  # fullgraph: a graph break would raise

    plain = run(model, per_token=False)
    assert rel_err(plain, official(REF, per_token=False)) <= PARITY
    without_lora = graphs()
    assert without_lora == 1  # every block shares one graph
    for strength in (1.0, 0.5, -0.3):
        with applied_loras(model, [LoraUse(read, strength)]):
            got = run(model, per_token=False)
        with applied_loras(eager, [LoraUse(read, strength)]):
            want = run(eager, per_token=False)
        assert rel_err(got, want) <= PARITY, strength
        assert rel_err(got, official(tl.merged(REF, [(lora, strength)]), per_token=False)) <= PARITY, strength
        assert rel_err(got, plain) > 1e3 * PARITY  # each strength really changes the output
        assert graphs() == without_lora + 1, (strength, dict(counters["stats"]))
    other = tl.random_lora(REF, targets=trainer_targets(model), rank=7, seed=9)
    other_read = read_lora(tl.write_lora(tmp_path / "other.safetensors", other), model)
    for uses in ([LoraUse(other_read, 0.8)], [LoraUse(read, 1.0), LoraUse(other_read, -0.4)]):
        with applied_loras(model, uses):
            got = run(model, per_token=False)
        want = official(tl.merged(REF, [(lora if u.lora is read else other, u.strength) for u in uses]), per_token=False)
        assert rel_err(got, want) <= PARITY
        assert graphs() == without_lora + 1, dict(counters["stats"])
    # and without the LoRA again, the first graph serves (the layers look exactly as before the LoRA runs)
    assert torch.equal(run(model, per_token=False), plain)
    assert graphs() == without_lora + 1
    assert not counters["graph_break"]


# ------------------------------------------------------------------------------------------------ memory


def held_bytes(model) -> int:
    """Bytes of every distinct tensor the model holds: parameters, buffers and plain tensor attributes of its
    modules, including modules attached as plain attributes (the LoraDelta `applied_loras` puts on each layer,
    which keeps its matrices as attributes and is no registered submodule)."""
    seen_modules, seen, total, todo = set(), set(), 0, [model]
    while todo:
        module = todo.pop()
        if id(module) in seen_modules:
            continue
        seen_modules.add(id(module))
        todo.extend(module.children())
        todo.extend(v for v in vars(module).values() if isinstance(v, nn.Module))
        for t in (*module.parameters(recurse=False), *module.buffers(recurse=False),
                  *(v for v in vars(module).values() if isinstance(v, torch.Tensor))):
            key = (t.data_ptr(), t.dtype, tuple(t.shape), tuple(t.stride()))
            if key not in seen:
                seen.add(key)
                total += t.numel() * t.element_size()
    return total


def registered_bytes(model) -> int:
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


@pytest.mark.parametrize("storage", ["float32", "float8_e4m3fn"])
def test_applied_loras_add_the_lora_and_no_copy_of_the_model(tmp_path, fp8_model, storage):
    model = ours_fp32() if storage == "float32" else fp8_model
    dtype = model.compute_dtype
    a = tl.random_lora(REF, rank=4, seed=1)
    b = tl.random_lora(REF, targets=trainer_targets(model), rank=8, seed=2)  # stacked on some of a's layers
    uses = [LoraUse(read_lora(tl.write_lora(tmp_path / "a.safetensors", a), model), 1.0),
            LoraUse(read_lora(tl.write_lora(tmp_path / "b.safetensors", b), model), -0.5)]
    weights = {name: (p.data_ptr(), p.dtype) for name, p in model.named_parameters()}
    before, registered = held_bytes(model), registered_bytes(model)
    with applied_loras(model, uses):
        during = held_bytes(model)
        # the model's own tensors: the same ones, in the same dtypes (no merged copy, no upcast copy)
        assert {name: (p.data_ptr(), p.dtype) for name, p in model.named_parameters()} == weights
    assert held_bytes(model) == before and registered_bytes(model) == registered  # nothing left behind
    # lora_bytes counts, per patched layer, the stacked rank padded to the bucket (zeros keep a compiled graph
    # for other ranks), in the compute dtype, plus the fp32 per-rank strengths.
    modules = dict(model.named_modules())
    size = torch.finfo(dtype).bits // 8
    expected = 0
    for target in set(a) | set(b):
        rank = sum(lora[target][0].shape[0] for lora in (a, b) if target in lora)
        padded = -(-rank // RANK_BUCKET) * RANK_BUCKET
        out_f, in_f = modules[target].weight.shape
        expected += padded * (in_f + out_f) * size + 4 * padded
    assert lora_bytes(uses, dtype) == expected
    assert during - before == expected
    assert expected > 0.05 * before  # big enough that a weight copy or a dtype mistake would not hide in it
