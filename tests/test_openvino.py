"""The OpenVINO backend (`ltx_core.openvino`): the transformer and the T5 encoder converted to OpenVINO, run through
the real pipeline and the command line on tiny models, against our eager fp32 path; the disk cache; the refusals.

Measured (tiny 2B/13B-shaped models, CPU, this file's recipes): fp32 final latents differ from eager by ~1e-6 (one
step by ~1e-5: OpenVINO's sin/cos of the RoPE angles, which reach 1e4 rad, are ~2e-4 off; the rest is rounding);
int8 by ~1.5e-2 per step and ~2e-2 on the final latents: NNCF's per-channel 8-bit weights carry ~0.4% error per
weight (1/255 of a channel's range), and every matmul adds to it. The int8 bound below is twice what was measured.
"""
import json
import sys

import pytest
import torch

pytest.importorskip("openvino", reason="the OpenVINO backend is optional: pip install -r requirements-openvino.txt")
pytest.importorskip("nncf", reason="int8/int4 weights need nncf: pip install -r requirements-openvino.txt")
pytest.importorskip("ltx_video", reason="the tiny models are built by the official implementation")

import pipeline_fixtures as pf  # noqa: E402
from ltx_core import cli  # noqa: E402
from ltx_core.app.loading import LoadOptions, OptionError, load_model_file, load_video_model  # noqa: E402
from ltx_core.openvino import OVSettings, OVTransformer, backend_problem  # noqa: E402
from ltx_core.pipelines import ConditioningItem, GenerationRequest, Models, PipelineConfig, TextConditioning, generate  # noqa: E402,E501
import test_cli  # noqa: E402

tiny_files = test_cli.tiny_files  # the fixture: tiny model files (checkpoint, T5 folder) as the CLI reads them

FP32_TOL = 1e-4
INT8_TOL = 4e-2
LQ_SD3 = {"sampler": "LinearQuadratic", "shifting": "SD3", "target_shift_terminal": 0.1}
DEV_2B = dict(pipeline_type="base", guidance_scale=3, stg_scale=1, rescaling_scale=0.7, skip_block_list=[1],
              num_inference_steps=4, stg_mode="attention_values", decode_timestep=0.05, decode_noise_scale=0.025,
              precision="float32", sampler="from_checkpoint", stochastic_sampling=False)


@pytest.fixture(autouse=True)
def ov_cache(tmp_path_factory, monkeypatch):
    """One cache folder for the whole file (its tests reuse each other's conversions), never the user's."""
    folder = tmp_path_factory.getbasetemp() / "ov-cache"
    monkeypatch.setenv("LTX_OPENVINO_CACHE", str(folder))
    return folder


def _generate(transformer, family="2b", yaml=DEV_2B, conditioning=(), num_frames=9, height=64, width=64):
    _, vae = pf.vae_pair()
    request = GenerationRequest(height=height, width=width, num_frames=num_frames, frame_rate=25.0, seed=1234,
                                conditioning=[ConditioningItem(m, f, s) for m, f, s in conditioning],
                                output="latents")
    return generate(Models(transformer, vae, None, LQ_SD3), PipelineConfig.from_dict(yaml),
                    TextConditioning(*pf.text()), request).latents


def _media(frames, seed=0):
    return torch.rand(1, 3, frames, 64, 64, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _ov(family: str, weights: str, causal=False) -> OVTransformer:
    _, eager = pf.transformer_pair(family, causal)
    return OVTransformer.from_model(eager, {"tiny": family, "causal": causal}, OVSettings("CPU", weights))


@pytest.mark.parametrize("case", ["t2v-stg", "i2v-per-token-timestep"])
def test_fp32_final_latents_equal_eager(case):
    """The pipeline parity tests' 2B dev recipe (CFG + STG attention_values); with an image condition the timestep
    is per token, which takes the second graph."""
    conditioning = [(_media(1), 0, 1.0)] if case.startswith("i2v") else []
    ov = _ov("2b", "fp32")
    got = _generate(ov, conditioning=conditioning)
    want = _generate(pf.transformer_pair("2b")[1], conditioning=conditioning)
    assert pf.rel_l2(got, want) <= FP32_TOL
    assert len(ov.converted) == 1  # one graph: (strategy, timestep kind) fixed within a run


@pytest.mark.parametrize("mode", ["attention_skip", "transformer_block", "residual"])
def test_fp32_each_stg_mode_on_the_13b_shape(mode):
    yaml = dict(DEV_2B, stg_mode=mode, num_inference_steps=3, skip_block_list=[0, 2])
    got = _generate(_ov("13b", "fp32", causal=True), "13b", yaml)
    want = _generate(pf.transformer_pair("13b", True)[1], "13b", yaml)
    assert pf.rel_l2(got, want) <= FP32_TOL


def test_int8_within_the_measured_bound_and_not_fp32():
    want = _generate(pf.transformer_pair("2b")[1])
    err = pf.rel_l2(_generate(_ov("2b", "int8")), want)
    assert 1e-4 < err <= INT8_TOL  # compressed for real (not fp32 passed through), and close


def test_cache_hit_on_a_second_load_and_shape_changes_do_not_reconvert():
    first = _ov("2b", "fp32")
    _generate(first)
    second = _ov("2b", "fp32")
    _generate(second, num_frames=17, width=96)  # more tokens
    _generate(second, yaml=dict(DEV_2B, guidance_scale=1, stg_scale=0))  # batch 1 instead of 3
    assert second.converted == []
    other_weights = _ov("2b", "int4")
    _generate(other_weights)
    assert other_weights.converted == ["attention_values/per_row"]  # the weights are part of the key


def test_drop_in_checks_and_refusals_name_the_problem():
    ov = _ov("2b", "fp32")
    tokens = torch.randn(1, 8, 128)
    with pytest.raises(ValueError, match="coords must be"):
        ov.forward_tokens(tokens, torch.zeros(1, 3, 7), torch.zeros(1), torch.randn(1, 4, 32))
    with pytest.raises(ValueError, match="timestep must hold 1 or 8"):
        ov.forward_tokens(tokens, torch.zeros(1, 3, 8), torch.zeros(1, 3), torch.randn(1, 4, 32))
    with pytest.raises(ValueError, match="not available on this machine.*CPU"):
        OVTransformer.from_model(pf.transformer_pair("2b")[1], {}, OVSettings("GPU.7", "fp32"))


@pytest.mark.parametrize("options, option, words", [
    (dict(dtype="float8_e4m3fn"), "dtype", "ov_weights int8 or int4"),
    (dict(compile=True), "compile", "turn compile off"),
    (dict(ov_weights="int2"), "ov_weights", "fp32, int8, int4"),
    (dict(ov_device="TPU"), "ov_device", "CPU, GPU"),
    (dict(backend="tensorrt"), "backend", "torch, openvino"),
])
def test_load_options_refuse_what_cannot_work(options, option, words):
    with pytest.raises(OptionError, match=words) as e:
        LoadOptions(**{"backend": "openvino", **options}).check()
    assert e.value.option == option


def test_a_gguf_file_is_refused_before_reading_it(tmp_path):
    """GGUF weights are dequantized by torch code that OpenVINO has no conversion for (aten.view.dtype)."""
    with pytest.raises(OptionError, match=r"model-Q8_0.gguf: .*original .safetensors checkpoint with ov_weights int8"):
        load_model_file(tmp_path / "model-Q8_0.gguf", LoadOptions(backend="openvino"))


def test_missing_packages_are_refused_with_the_install_command(monkeypatch):
    import importlib.util

    find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nncf" else find(name, *a))
    assert backend_problem("fp32") is None  # fp32 needs no nncf
    with pytest.raises(OptionError, match="nncf.*pip install -r requirements-openvino.txt") as e:
        LoadOptions(backend="openvino", ov_weights="int8").check()
    assert e.value.option == "backend"


@pytest.mark.parametrize("extra, words", [
    (["--offload_to_cpu"], "drop --offload_to_cpu"),
    (["--lora_paths", "x.safetensors"], "--backend torch"),
    (["--dtype", "float8_e5m2"], "--dtype: the OpenVINO backend"),
])
def test_cli_refuses_before_loading(tmp_path, capsys, extra, words):
    ck = tmp_path / "model.safetensors"
    ck.write_bytes(b"")
    argv = ["generate", "--prompt", "p", "--backend", "openvino", "--checkpoint_path", str(ck), "--pipeline_config",
            "ltxv-2b-0.9.6-distilled",
            "--text_encoder_path", str(tmp_path), "--output_path", str(tmp_path / "o.mp4"), "--device", "cpu", *extra]
    assert cli.main(argv) == 2
    assert words in capsys.readouterr().err


def test_checkpoint_file_loads_with_the_openvino_backend(tmp_path):
    """load_video_model with backend openvino: the VAE stays torch, the transformer is OpenVINO, keyed on the file."""
    import official_files

    path = tmp_path / "tiny.safetensors"
    official_files.tiny_checkpoint(path)  # the weights of pf.transformer_pair("2b")
    ck = load_video_model(path, LoadOptions(dtype="float32", backend="openvino", ov_weights="fp32"))
    assert isinstance(ck.transformer, OVTransformer) and "OpenVINO, fp32 weights on CPU" in ck.notes[-1]
    assert next(ck.vae.parameters()).dtype == torch.float32  # the dtype asked for, whatever the transformer's storage
    got = _generate(ck.transformer)
    assert ck.transformer.converted == ["attention_values/per_row"]
    assert pf.rel_l2(got, _generate(pf.transformer_pair("2b")[1])) <= FP32_TOL


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps (Linux)")
def test_weight_file_pages_are_given_back_after_the_first_inference(ov_cache):
    """OpenVINO maps the IR's weights and packs them into memory of its own on the first inference; the mapped copy
    is then dropped from RSS (and results do not change: the pages come back from the file if read again)."""
    ov = _ov("2b", "fp32")
    g = torch.Generator().manual_seed(0)
    args = (torch.randn(2, 16, 128, generator=g), torch.rand(2, 3, 16, generator=g), torch.rand(2, generator=g),
            torch.randn(2, 5, 32, generator=g))
    first = ov.forward_tokens(*args)
    (key,) = [p for p in ov_cache.glob("*/key.json") if json.loads(p.read_text()) == {
        "source": {"tiny": "2b", "causal": False}, "model": "transformer", "weights": "fp32", "graph": "none/per_row"}]
    weights = key.with_name("model.bin")
    assert weights.stat().st_size > 100_000 and _mapped_rss_kb(weights) == 0
    assert torch.equal(ov.forward_tokens(*args), first)


def _mapped_rss_kb(path) -> int:
    """Resident kB of this process's mappings of `path` (/proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            fields = line.split()
            if not fields[0].endswith(":"):  # a mapping's header: address range, permissions, ..., path
                inside = fields[-1] == str(path.resolve())
            elif inside and fields[0] == "Rss:":
                total += int(fields[1])
    return total


def test_checkpoint_loader_node_backend_inputs(tmp_path):
    """The node's backend inputs reach the loader: an OpenVINO transformer that computes what the eager one does
    (the pack imports its own copy of ltx_core, whose enums the test's pipeline cannot pass: one plain step), and the
    refusals as one line naming the node."""
    import official_files
    from node_pack import PACK, import_pack

    pack = import_pack()
    bridge = sys.modules[f"{PACK}.nodes.comfy_bridge"]
    (tmp_path / "checkpoints").mkdir()
    official_files.tiny_checkpoint(tmp_path / "checkpoints" / "tiny.safetensors")
    bridge.set_models_root(tmp_path)
    loader = pack.NODE_CLASS_MAPPINGS["LTXVStackCheckpointLoader"]()
    assert {"backend", "ov_device", "ov_weights"} <= set(loader.INPUT_TYPES()["optional"])
    model, _ = loader.load("tiny.safetensors", "float32", backend="openvino", ov_weights="fp32")
    assert type(model.module).__name__ == "OVTransformer"
    g = torch.Generator().manual_seed(0)
    args = (torch.randn(2, 16, 128, generator=g), torch.rand(2, 3, 16, generator=g) * 8, torch.rand(2, generator=g),
            torch.randn(2, 5, 32, generator=g))
    with torch.no_grad():
        want = pf.transformer_pair("2b")[1].forward_tokens(*args)
    assert pf.rel_l2(model.module.forward_tokens(*args), want) <= FP32_TOL
    with pytest.raises(ValueError, match="Checkpoint Loader: .*turn compile off"):
        loader.load("tiny.safetensors", "float32", compile=True, backend="openvino")


def test_cli_openvino_run_equals_the_torch_run(tiny_files, tmp_path, capsys):
    """`--backend openvino --ov_weights fp32` through the whole command (text encoder, conditioning-free t2v, decode,
    files written): the latents of the torch backend's run, within the fp32 bound."""
    from safetensors.torch import load_file

    base = ["generate", "--prompt", "a tiny fox", "--pipeline_config", "ltxv-2b-0.9.6-distilled",
            "--checkpoint_path", str(tiny_files["checkpoint"]), "--text_encoder_path", str(tiny_files["text_encoder"]),
            "--height", "32", "--width", "32", "--num_frames", "9", "--num_inference_steps", "2", "--device", "cpu",
            "--dtype", "float32"]
    latents = {}
    for backend in ("torch", "openvino"):
        lat = tmp_path / f"{backend}.safetensors"
        rc = cli.main([*base, "--backend", backend, "--ov_weights", "fp32", "--output_path",
                       str(tmp_path / f"{backend}.mp4"), "--output_latents", str(lat)])
        err = capsys.readouterr().err
        assert rc == 0, err
        latents[backend] = load_file(str(lat))["latents"]
    assert "transformer: OpenVINO, fp32 weights on CPU" in err
    assert pf.rel_l2(latents["openvino"], latents["torch"]) <= FP32_TOL


@pytest.mark.parametrize("weights, bound", [("fp32", 1e-5), ("int8", 3e-2)])
def test_t5_encoder_on_openvino(tiny_files, weights, bound, tmp_path, monkeypatch):
    """The T5 encoder converted (batch and length dynamic): the embeddings of the torch encoder (measured: fp32
    5e-7, int8 2.1e-2); a second load reads the cache (and, like the first, no torch weights: only a check)."""
    monkeypatch.setenv("LTX_OPENVINO_CACHE", str(tmp_path))  # its own: the CLI test converts the same file
    from ltx_core import load_text_encoder, load_text_encoder_on_backend

    path = str(tiny_files["text_encoder"])
    prompts = ["a red fox running through snow", "rain"]
    want, want_mask = load_text_encoder(path, dtype=torch.float32).encode(prompts)
    options = LoadOptions(dtype="float32", backend="openvino", ov_weights=weights)
    encoders = [load_text_encoder_on_backend(path, options, "cpu", torch.float32) for _ in "ab"]
    for encoder in encoders:
        got, mask = encoder.encode(prompts)
        assert got.dtype == torch.float32 and torch.equal(mask, want_mask)
        assert (0 if weights == "fp32" else 1e-4) <= pf.rel_l2(got, want) <= bound  # int8: compressed for real
    assert [e.model.converted for e in encoders] == [["encoder"], []]


def test_a_lora_on_an_openvino_model_is_refused_by_name(tmp_path):
    """The ComfyUI LoRA loader reaches `read_lora` with whatever model it is given: an OpenVINO model has no torch
    weights to patch, which must be said as such, not as "this LoRA matches nothing"."""
    from ltx_core.loader.errors import ModelFileError
    from ltx_core.lora.file import read_lora
    import tiny_lora

    _, eager = pf.transformer_pair("2b")
    path = tmp_path / "style.safetensors"
    tiny_lora.write_lora(path, tiny_lora.random_lora(eager))
    assert read_lora(path, eager).patches  # the same file applies to the torch model
    with pytest.raises(ModelFileError, match="runs on openvino: load the checkpoint with backend torch"):
        read_lora(path, _ov("2b", "fp32"))


# The VAE decoder (measured, tiny VAEs, CPU): fp32 decodes differ from eager by ~1.5e-6 at every size and tiling;
# int8 by 1.6-1.8e-2 (0.9.5) and 2.0-2.3e-2 (0.9.0); int4 is made int8 for the decoder (see OVVideoDecoder).
VAE_INT8_TOL = 5e-2


def _ov_vae(layout: str, weights: str):
    """(eager VAE, a copy with its decoder on OpenVINO, the note); `vae_pair` is cached, hence the copy."""
    import copy

    from ltx_core.openvino import decoder_to_openvino

    eager = pf.vae_pair(layout)[1]
    ov = copy.deepcopy(eager)
    note = decoder_to_openvino(ov, {"tiny_vae": layout}, OVSettings("CPU", weights), lambda: eager.decoder)
    return eager, ov, note


def _latents(vae, batch, frames, height, width, seed=0):
    return torch.randn(batch, vae.latent_channels, frames, height, width, generator=torch.Generator().manual_seed(seed))


def test_vae_decoder_fp32_equals_eager_at_any_size_and_tiling_without_reconverting():
    """0.9.0 layout (no timestep): one conversion serves other batch sizes, frame counts, sizes and every tile of a
    tiled decode (the tiling code stays torch and calls the converted decoder per tile); a second wrapper of the
    same weights reads the cache."""
    from ltx_core.model.video_vae import TilingConfig

    eager, ov, note = _ov_vae("0.9.0", "fp32")
    assert note == "VAE decoder: OpenVINO, fp32 weights on CPU"
    for shape, tiling in [((1, 3, 3, 4), None), ((2, 2, 5, 3), None), ((1, 4, 4, 6), TilingConfig(64, 32, 16, 8))]:
        z = _latents(eager, *shape)
        got, want = ov.decode(z, tiling=tiling), eager.decode(z, tiling=tiling)
        assert got.shape == want.shape and pf.rel_l2(got, want) <= FP32_TOL
    assert ov.decoder.converted == ["decoder"]
    _, again, _ = _ov_vae("0.9.0", "fp32")
    again.decode(_latents(eager, 1, 2, 2, 2))
    assert again.decoder.converted == []
    with pytest.raises(ValueError, match="takes no timestep"):
        again.decoder(_latents(eager, 1, 2, 2, 2), torch.zeros(1))


def test_vae_decoder_int8_within_the_measured_bound_and_int4_made_int8():
    eager, ov, note = _ov_vae("0.9.0", "int8")
    z = _latents(eager, 1, 3, 3, 4)
    assert 1e-4 < pf.rel_l2(ov.decode(z), eager.decode(z)) <= VAE_INT8_TOL  # compressed for real, and close
    assert _ov_vae("0.9.0", "int4")[2] == "VAE decoder: OpenVINO, int8 weights on CPU"  # lazy: nothing converted


def test_a_noise_injecting_vae_decoder_stays_torch():
    eager, ov, note = _ov_vae("0.9.1", "fp32")
    assert "VAE decoder: torch" in note and "noise" in note
    assert type(ov.decoder) is type(eager.decoder)


def test_checkpoint_vae_decoder_runs_on_openvino(tmp_path):
    """load_video_model with backend openvino: the 0.9.5 (timestep-conditioned) decoder converted from the file,
    keyed on it; the decode (per-sample timesteps, two sizes) equals the eager one; the encoder stays torch."""
    import official_files
    from ltx_core.openvino import OVVideoDecoder

    path = tmp_path / "tiny.safetensors"
    official_files.tiny_checkpoint(path)  # its VAE: the weights of pf.vae_pair("0.9.5")
    ck = load_video_model(path, LoadOptions(dtype="float32", backend="openvino", ov_weights="fp32"))
    assert isinstance(ck.vae.decoder, OVVideoDecoder)
    assert ck.notes[-1] == "VAE decoder: OpenVINO, fp32 weights on CPU"
    assert next(ck.vae.encoder.parameters()).dtype == torch.float32
    eager = pf.vae_pair("0.9.5")[1]
    for shape, timestep in [((2, 3, 3, 4), torch.tensor([0.05, 0.2])), ((1, 2, 2, 5), 0.05)]:
        z = _latents(eager, *shape)
        assert pf.rel_l2(ck.vae.decode(z, timestep), eager.decode(z, timestep)) <= FP32_TOL
    assert ck.vae.decoder.converted == ["decoder"]


@pytest.mark.parametrize("layout", ["0.9.0", "0.9.5"])
def test_vae_plain_tracing_path_computes_what_the_fast_path_does(layout, monkeypatch):
    """The whole-tensor ops the decoder takes while torch.export traces it (no frame slices, no writes into views),
    run eagerly: the fast path's result (measured: identical at these sizes)."""
    from ltx_core.model.video_vae import blocks, convs, norms

    vae = pf.vae_pair(layout)[1]
    z = _latents(vae, 2, 3, 3, 4)
    timestep = 0.05 if vae.timestep_conditioning else None
    want = vae.decode(z, timestep)
    for module in (blocks, convs, norms):
        monkeypatch.setattr(module, "tracing", lambda: True)
    assert pf.rel_l2(vae.decode(z, timestep), want) <= 1e-6
