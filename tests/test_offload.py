"""Block-wise offload: the same numbers as a resident model; on a GPU, a peak of two blocks instead of all."""
import pytest
import torch

import tiny_transformer as tt
from ltx_core.memory.streaming import BlockStreamer
from ltx_core.model.transformer import Transformer3D, TransformerConfig


def _model(**overrides):
    ref, cfg = tt.tiny_reference("2b", **overrides)
    model = Transformer3D(TransformerConfig.from_dict(cfg))
    model.load_state_dict(ref.state_dict())
    return model.eval()


def _run(model, device):
    latents, timestep, context, mask = (x.to(device) for x in tt.inputs(per_token=True))
    with torch.no_grad():
        return model(latents, timestep, context, mask, frame_rate=tt.FRAME_RATE).cpu()


def test_offloaded_blocks_give_identical_output_and_detach_cleanly():
    model = _model()
    want = _run(model, "cpu")
    calls = []
    offload = BlockStreamer(model.transformer_blocks, "cpu").attach()
    for i, block in enumerate(model.transformer_blocks):
        block.register_forward_pre_hook(lambda _m, _a, i=i: calls.append(i))
    assert torch.equal(_run(model, "cpu"), want)
    assert calls == list(range(len(model.transformer_blocks)))  # every block ran through its hook, in order
    offload.detach()
    assert all(len(b._forward_pre_hooks) == 1 and not b._forward_hooks for b in model.transformer_blocks)  # spy only
    assert torch.equal(_run(model, "cpu"), want)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device to measure device memory")
def test_gpu_peak_is_two_blocks_not_the_model():
    model = _model(num_layers=8)
    want = _run(model, "cpu")
    blocks = model.transformer_blocks
    others = [m for name, m in model.named_children() if name != "transformer_blocks"]
    for m in others:
        m.to("cuda")
    model.scale_shift_table.data = model.scale_shift_table.data.cuda()
    offload = BlockStreamer(blocks, "cuda").attach()
    torch.cuda.reset_peak_memory_stats()
    got = _run(model, "cuda")
    block_bytes = sum(p.numel() * p.element_size() for p in blocks[0].parameters())
    assert torch.cuda.max_memory_allocated() < 4 * block_bytes + 64 * 2**20
    assert (got - want).norm() / want.norm() < 1e-4  # TF32/cuBLAS vs CPU float rounding
    offload.detach()
    assert all(p.device.type == "cpu" for p in blocks.parameters())


def test_stream_blocks_on_cpu_is_exact_and_resident_bytes_counts_two_blocks():
    from ltx_core.memory import stream_blocks, transformer_weight_bytes

    model = _model(num_layers=4)
    want = _run(model, "cpu")
    with stream_blocks(model, "cpu"):
        assert torch.equal(_run(model, "cpu"), want)
    assert all(p.device.type == "cpu" for p in model.parameters())

    def size(m):
        return sum(p.numel() * p.element_size() for p in m.parameters())
    block = size(model.transformer_blocks[0])
    assert transformer_weight_bytes(model, torch.float32, streaming=True) == size(model) - 4 * block + 2 * block


def test_sampler_streams_only_a_transformer_that_does_not_fit(monkeypatch):
    from types import SimpleNamespace

    from node_pack import submodule

    bridge = submodule("nodes.comfy_bridge")
    managed = bridge.ManagedModel(_model(num_layers=4), "diffusion", "tiny")
    size = managed.size_bytes()
    assert not bridge.needs_block_streaming(managed, 0, 0)  # outside ComfyUI, or on the CPU: never
    managed.load_device = torch.device("cuda", 0)
    monkeypatch.setattr(bridge, "IN_COMFYUI", True)
    monkeypatch.setattr(bridge, "mm", SimpleNamespace(get_total_memory=lambda device: 10 * size))
    assert not bridge.needs_block_streaming(managed, 2 * size, 3 * size)
    assert bridge.needs_block_streaming(managed, 4 * size, 5 * size)
