"""`Transformer3D.compile_blocks`: torch.compile of the blocks gives the official numbers, traces each block into
one graph (no graph breaks: nothing in a block reads values back to the host), and sampling compiles once, not per
step. Most tests use dynamo's "eager" backend, which traces exactly as inductor does but runs the captured graph
with torch's own kernels, so they take seconds; one test runs inductor itself where a C compiler exists."""
import copy
import shutil

import pytest
import torch
from torch._dynamo.utils import counters

import pipeline_fixtures as pf
import tiny_transformer as tt
from tiny_transformer import B, FRAME_RATE, inputs, reference_velocity, rel_err
from ltx_core.memory import stream_blocks
from ltx_core.model.transformer import SkipLayerStrategy, Transformer3D, TransformerConfig
from ltx_core.pipelines import GenerationRequest, Models, PipelineConfig, TextConditioning, generate

pytest.importorskip("ltx_video")

PARITY = 1e-5  # relative L2, fp32


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def fresh_pair(family="2b", ctp=False, **overrides):
    ref, cfg = tt.tiny_reference(family, ctp, **overrides)
    ours = Transformer3D(TransformerConfig.from_dict(cfg))
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours.eval()


def graphs() -> int:
    return counters["stats"]["unique_graphs"]


@torch.no_grad()
@pytest.mark.parametrize("family", ["2b", "13b"])
def test_compiled_blocks_match_reference_in_one_graph(family):
    ctp = family == "13b"
    ref, ours = fresh_pair(family, ctp, num_layers=6)
    ours.compile_blocks(backend="eager", fullgraph=True)  # fullgraph: a graph break would raise
    skip_mask = torch.ones(6, B)
    skip_mask[[0, 3], 1] = 0
    for per_token in (False, True):
        latents, timestep, context, mask = inputs(per_token=per_token)
        got = ours(latents, timestep, context, mask, FRAME_RATE)
        assert rel_err(got, reference_velocity(ref, latents, timestep, context, mask, ctp)) <= PARITY
    for strategy in SkipLayerStrategy:
        expected = reference_velocity(ref, latents, timestep, context, mask, ctp, skip_mask, strategy)
        got = ours(latents, timestep, context, mask, FRAME_RATE, skip_mask, strategy)
        assert rel_err(got, expected) <= PARITY, strategy
    # Six blocks share graphs: one per call signature (per-sample or per-token timestep, with or without a
    # perturbation, each perturbation kind), never one per block.
    assert graphs() <= 2 + len(SkipLayerStrategy)
    assert not counters["graph_break"]


@torch.no_grad()
def test_sampling_compiles_once_not_per_step():
    """A 2B dev recipe with CFG and STG: every graph exists after the first step; later steps (other timesteps,
    same shapes) reuse them, and the result equals eager sampling."""
    _, eager = pf.transformer_pair("2b")
    compiled = copy.deepcopy(eager)
    compiled.compile_blocks(backend="eager", fullgraph=True)
    _, vae = pf.vae_pair("0.9.5")
    recipe = PipelineConfig.from_dict(dict(pipeline_type="base", guidance_scale=3, stg_scale=1, rescaling_scale=0.7,
                                           skip_block_list=[1], num_inference_steps=5, stg_mode="attention_values"))
    seen = []

    def run(model, progress=None):
        request = GenerationRequest(height=64, width=96, num_frames=9, frame_rate=25.0, seed=7, output="latents")
        return generate(Models(model, vae, scheduler_config={"sampler": "LinearQuadratic"}), recipe,
                        TextConditioning(*pf.text()), request, progress=progress).latents

    got = run(compiled, progress=lambda *_: seen.append(graphs()))
    assert len(seen) == 5 and seen[0] >= 1
    assert seen == [seen[0]] * 5
    assert pf.rel_l2(got, run(eager)) <= PARITY


@torch.no_grad()
def test_compiled_blocks_stream_from_cpu():
    """Block streaming swaps each block's weights in hooks around the call; the compiled forward sees the
    swapped weights."""
    _, ours = fresh_pair(num_layers=4)
    latents, timestep, context, mask = inputs(per_token=False)
    expected = ours(latents, timestep, context, mask, FRAME_RATE)
    ours.compile_blocks(backend="eager", fullgraph=True)
    with stream_blocks(ours, "cpu"):
        got = ours(latents, timestep, context, mask, FRAME_RATE)
    assert rel_err(got, expected) <= PARITY


@torch.no_grad()
@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="inductor's CPU backend needs a C compiler")
def test_inductor_compiled_blocks_match_reference():
    ref, ours = fresh_pair(num_layers=2)
    ours.compile_blocks(fullgraph=True)
    latents, timestep, context, mask = inputs(per_token=True)
    got = ours(latents, timestep, context, mask, FRAME_RATE)
    assert rel_err(got, reference_velocity(ref, latents, timestep, context, mask, False)) <= PARITY


def test_missing_code_generator_is_named_before_compiling(monkeypatch):
    """Inductor needs a C++ compiler for the CPU and Triton for a GPU; without them the first step would fail deep
    inside torch, so compile_blocks refuses up front and says what to install."""
    import torch.utils._triton

    _, ours = fresh_pair(num_layers=2)
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda *_args, **_kwargs: None)
    with pytest.raises(RuntimeError, match=r"cannot compile the transformer: .*needs a C\+\+ compiler"):
        ours.compile_blocks()
    monkeypatch.setattr(torch.utils._triton, "has_triton", lambda: False)
    with pytest.raises(RuntimeError, match=r"needs Triton.*pip install triton"):
        ours.compile_blocks(device_type="cuda")
    assert not ours.blocks_compiled
    ours.compile_blocks(backend="eager")  # another backend needs neither
    assert ours.blocks_compiled
