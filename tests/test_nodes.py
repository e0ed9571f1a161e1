"""The ComfyUI nodes without ComfyUI: the pack is imported as ComfyUI imports it (the repo root as a package, so
the nodes' relative imports of ltx_core work), the bridge's stand-ins serve model folders from a tmp dir, and every
node runs on tiny models written in the official file formats.

- registration: ids, display names, categories, tooltips, V1 contract;
- loaders: files listed from and resolved in the model folders only; missing / wrong files name the problem;
- text-to-video, image-to-video with keyframes, multi-scale, refine, latent upsample, VAE encode/decode:
  outputs are standard LATENT / IMAGE with the right shapes, and sampler + decode equal one
  `ltx_core.pipelines.generate` call;
- bad inputs give messages that say what to change; interruption stops a run.
"""
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

pytest.importorskip("ltx_video")  # the tiny-model factories build the official models

import comfyui_support as cs  # noqa: E402
import official_files as of  # noqa: E402
import tiny_gguf  # noqa: E402
import tiny_transformer  # noqa: E402
import tiny_vae  # noqa: E402
import tiny_t5  # noqa: E402
import tiny_upsampler  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
H, W, F = 64, 96, 9
FPS = 24.0

CORE_LTXV_IDS = {"EmptyLTXVLatentVideo", "LTXVImgToVideo", "LTXVAddGuide", "LTXVCropGuides", "LTXVConditioning",
                 "LTXVScheduler", "ModelSamplingLTXV", "LTXVPreprocess", "LTXVLatentUpsampler",
                 "LatentUpscaleModelLoader", "ModelMergeLTXV", "LTXVImgToVideoInplace"}


from node_pack import PACK, import_pack  # noqa: E402

pack = import_pack()
nodes = pack.NODE_CLASS_MAPPINGS
bridge = sys.modules[f"{PACK}.nodes.comfy_bridge"]
core = sys.modules[f"{PACK}.ltx_core"]


def run(node_id, **kwargs):
    cls = nodes[node_id]
    return getattr(cls(), cls.FUNCTION)(**kwargs)


@pytest.fixture(scope="module")
def models(tmp_path_factory, t5_tokenizer_dir):
    root = tmp_path_factory.mktemp("models")
    for d in ("checkpoints", "text_encoders", "latent_upscale_models", "loras", "diffusion_models", "vae"):
        (root / d).mkdir()
    te_model = tiny_t5.tiny_t5()
    tiny_t5.save_single(tiny_t5.encoder_state(te_model, torch.float32), root / "text_encoders" / "t5-tiny.safetensors")
    tiny_t5.copy_tokenizer(t5_tokenizer_dir, root / "text_encoders" / "tokenizer")
    of.tiny_checkpoint(root / "checkpoints" / "tiny-ltxv.safetensors",
                       transformer_overrides={"caption_channels": te_model.config.d_model})
    for kind, flags in (("spatial", {}), ("temporal", {"spatial_upsample": False, "temporal_upsample": True})):
        up, cfg = tiny_upsampler.reference_upsampler(**flags)
        tiny_upsampler.save_official(up, cfg, root / "latent_upscale_models" / f"tiny-{kind}.safetensors")
    (root / "checkpoints" / "not-a-model.safetensors").write_bytes(b"garbage")
    bridge.set_models_root(root)
    model, vae = run("LTXVStackCheckpointLoader", ckpt_name="tiny-ltxv.safetensors", weight_dtype="default")
    (te,) = run("LTXVStackTextEncoderLoader", text_encoder_name="t5-tiny.safetensors", dtype="default")
    (spatial,) = run("LTXVStackUpsamplerLoader", upscale_model_name="tiny-spatial.safetensors", dtype="default")
    (temporal,) = run("LTXVStackUpsamplerLoader", upscale_model_name="tiny-temporal.safetensors", dtype="float32")
    (cond,) = run("LTXVStackTextEncode", text_encoder=te, prompt="a red fox running through snow",
                  negative_prompt="blurry", frame_rate=FPS)
    return dict(root=root, model=model, vae=vae, te=te, spatial=spatial, temporal=temporal, cond=cond)


def sample(models, **kw):
    args = dict(model=models["model"], conditioning=models["cond"], preset="ltxv-2b-0.9.6-distilled", width=W,
                height=H, num_frames=F, seed=7, steps=0, denoise=1.0, image_cond_noise_scale=0.15)
    args.update(kw)
    return run("LTXVStackSampler", **args)[0]


def decode(models, latent, **kw):
    args = dict(vae=models["vae"], samples=latent, decode_timestep=0.05, decode_noise_scale=0.025,
                tone_map_compression=0.0, seed=7, tiling="off", spatial_tile=64, spatial_overlap=32,
                temporal_tile=8, temporal_overlap=0)
    args.update(kw)
    return run("LTXVStackVAEDecode", **args)[0]


def image(frames=1, h=80, w=120, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(frames, h, w, 3, generator=g)


# ----------------------------------------------------------------------------------------------------------------
# registration


def test_registration_contract():
    assert len(nodes) == 15 and set(nodes) == set(pack.NODE_DISPLAY_NAME_MAPPINGS)
    for node_id, cls in nodes.items():
        assert node_id.startswith("LTXVStack") and node_id not in CORE_LTXV_IDS
        assert pack.NODE_DISPLAY_NAME_MAPPINGS[node_id].startswith("LTX-Video ")
        assert cls.CATEGORY.startswith("LTX-Video (stack)/")
        assert callable(getattr(cls, cls.FUNCTION)) and cls.DESCRIPTION
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for name, entry in spec.get(section, {}).items():
                assert isinstance(entry, tuple) and len(entry) == 2, (node_id, name)
                assert entry[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
                if isinstance(entry[0], list) and "default" in entry[1]:
                    assert entry[1]["default"] in entry[0]
        assert len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES) == len(cls.OUTPUT_TOOLTIPS)


def test_bridge_stand_ins_without_comfyui():
    assert not bridge.IN_COMFYUI
    assert bridge.devices("diffusion") == (torch.device("cpu"), torch.device("cpu"))
    assert bridge.default_dtype("vae") == torch.float32
    presets = nodes["LTXVStackSampler"].INPUT_TYPES()["required"]["preset"][0]
    assert "ltxv-13b-0.9.8-distilled" in presets and "ltxv-2b-0.9.6-dev" in presets


def _object_info() -> dict:
    """The fields of each node's /object_info entry that the node library searches: ComfyUI's server takes name and
    display_name from the pack's mappings and, since ComfyUI 0.3.7x, search_aliases from SEARCH_ALIASES."""
    return {node_id: {"name": node_id, "display_name": pack.NODE_DISPLAY_NAME_MAPPINGS[node_id],
                      "search_aliases": list(getattr(cls, "SEARCH_ALIASES", []))} for node_id, cls in nodes.items()}


# What users type into the node search, and the nodes it must find. Frontend 1.27 (ComfyUI 0.3.64) searches only
# name and display_name, every word of the query within one of them; newer frontends also search_aliases.
SEARCHES = {
    "text to video": {"LTXVStackSampler"},
    "image to video": {"LTXVStackSampler"},
    "keyframes": {"LTXVStackAddImage"},
    "upscale": {"LTXVStackLatentUpsample", "LTXVStackUpsamplerLoader"},
    "lora": {"LTXVStackLoraLoader"},
    "long video": {"LTXVStackLongSampler"},
    "gguf": {"LTXVStackModelLoader"},
    "decode": {"LTXVStackVAEDecode"},
}
# Only in newer frontends (through the aliases).
ALIAS_SEARCHES = {
    "image to video": {"LTXVStackAddImage", "LTXVStackLongSampler"},
    "text to video": {"LTXVStackTextEncode", "LTXVStackLongSampler"},
    "i2v": {"LTXVStackAddImage", "LTXVStackSampler"}, "t2v": {"LTXVStackSampler"},
    "first frame": {"LTXVStackAddImage"}, "depth": {"LTXVStackAddControlVideo"}, "t5": {"LTXVStackTextEncoderLoader"},
    "prompt": {"LTXVStackTextEncode"},
}


def _found_by_name(query: str, info: dict) -> bool:
    return any(all(w in field.lower() for w in query.split()) for field in (info["name"], info["display_name"]))


@pytest.mark.parametrize("query", sorted(SEARCHES))
def test_node_search_finds_our_nodes_in_frontend_1_27_and_newer(query):
    info = _object_info()
    found_127 = {n for n, i in info.items() if _found_by_name(query, i)}
    assert SEARCHES[query] <= found_127, f"{query!r}: frontend 1.27 finds only {sorted(found_127)} by display name"
    for node_id in SEARCHES[query] | ALIAS_SEARCHES.get(query, set()):
        i = info[node_id]
        assert _found_by_name(query, i) or query in i["search_aliases"], f"{query!r} does not find {node_id}"


@pytest.mark.parametrize("query", sorted(ALIAS_SEARCHES))
def test_node_search_aliases_for_newer_frontends(query):
    info = _object_info()
    found = {n for n, i in info.items() if query in i["search_aliases"]}
    assert ALIAS_SEARCHES[query] <= found, f"{query!r}: the aliases find only {sorted(found)}"
    for i in info.values():
        assert all(isinstance(a, str) and a == a.lower().strip() and a for a in i["search_aliases"]), i


def _input_labels() -> dict:
    out = {}
    for node_id, cls in sorted(nodes.items()):
        spec = cls.INPUT_TYPES()
        labels = {name: {"name": entry[1]["display_name"]} for section in ("required", "optional")
                  for name, entry in spec.get(section, {}).items() if "display_name" in entry[1]}
        if labels:
            out[node_id] = {"inputs": labels}
    return out


def test_input_labels_fit_and_reach_both_frontends():
    """Long input names (ckpt_name, image_cond_noise_scale) are cut in a node of the default width; the input keys
    stay (saved workflows use them) and a short label is shown instead: newer frontends read the input's
    display_name, frontend 1.27 only a translation, locales/en/nodeDefs.json, which must say the same."""
    labels = _input_labels()
    assert labels["LTXVStackCheckpointLoader"]["inputs"]["ckpt_name"]["name"] == "file"
    assert labels["LTXVStackUpsamplerLoader"]["inputs"]["upscale_model_name"]["name"] == "file"
    assert all(len(v["name"]) <= 15 for node in labels.values() for v in node["inputs"].values())
    locale = json.loads((REPO / "locales" / "en" / "nodeDefs.json").read_text(encoding="utf-8"))
    assert locale == labels, ("locales/en/nodeDefs.json disagrees with the inputs' display_name; write:\n"
                              + json.dumps(labels, indent=2))


# ----------------------------------------------------------------------------------------------------------------
# loaders


def test_loaders_list_model_folders(models):
    ck = nodes["LTXVStackCheckpointLoader"].INPUT_TYPES()["required"]["ckpt_name"][0]
    assert ck == ["not-a-model.safetensors", "tiny-ltxv.safetensors"]
    assert nodes["LTXVStackTextEncoderLoader"].INPUT_TYPES()["required"]["text_encoder_name"][0] == \
        ["t5-tiny.safetensors"]
    assert nodes["LTXVStackUpsamplerLoader"].INPUT_TYPES()["required"]["upscale_model_name"][0] == \
        ["tiny-spatial.safetensors", "tiny-temporal.safetensors"]
    assert models["model"].module.config.num_layers == 2
    assert models["spatial"].module.spatial_scale == 2 and models["temporal"].module.temporal_scale == 2


@pytest.mark.parametrize("node_id,arg,name,needle", [
    ("LTXVStackCheckpointLoader", "ckpt_name", "ltxv-2b-0.9.6-dev-04-25.safetensors", "not found in ComfyUI's checkpoints"),
    ("LTXVStackCheckpointLoader", "ckpt_name", "../text_encoders/t5-tiny.safetensors", "not paths"),
    ("LTXVStackCheckpointLoader", "ckpt_name", "not-a-model.safetensors", "not-a-model.safetensors"),
    ("LTXVStackTextEncoderLoader", "text_encoder_name", "t5xxl_fp16.safetensors", "t5xxl_fp16"),
    ("LTXVStackUpsamplerLoader", "upscale_model_name", "ltxv-spatial-upscaler-0.9.8.safetensors", "latent_upscale_models"),
])
def test_loader_errors_name_the_file(models, node_id, arg, name, needle):
    other = {"LTXVStackCheckpointLoader": {"weight_dtype": "default"}}.get(node_id, {"dtype": "default"})
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace(".", r"\.")):
        run(node_id, **{arg: name}, **other)


def test_checkpoint_given_as_upsampler_is_refused(models):
    shutil.copy(models["root"] / "checkpoints" / "tiny-ltxv.safetensors",
                models["root"] / "latent_upscale_models" / "wrong.safetensors")
    try:
        with pytest.raises(ValueError, match="not a latent upsampler"):
            run("LTXVStackUpsamplerLoader", upscale_model_name="wrong.safetensors", dtype="default")
    finally:
        (models["root"] / "latent_upscale_models" / "wrong.safetensors").unlink()


# ----------------------------------------------------------------------------------------------------------------
# text, sampling, decoding


def test_text_encode(models):
    cond = models["cond"]
    assert cond.embeds.shape == (1, 256, 64) and cond.mask.shape == (1, 256)
    assert cond.negative_embeds.shape == (1, 256, 64) and cond.frame_rate == FPS
    assert 0 < int(cond.mask.sum()) < 256 and cond.keyframes == ()


def test_text_to_video_matches_generate(models):
    latent = sample(models)
    assert set(latent) == {"samples", "ltxv_stack"}
    assert latent["samples"].shape == (1, 128, 2, H // 32, W // 32) and latent["samples"].dtype == torch.float32
    frames = decode(models, latent)
    assert frames.shape == (F, H, W, 3) and frames.dtype == torch.float32
    assert 0.0 <= float(frames.min()) and float(frames.max()) <= 1.0
    # the same run as one ltx_core call (the sampler's recipe, the decoder's settings, the same seed)
    ltx_core = sys.modules[f"{PACK}.ltx_core"]
    cfg = ltx_core.presets.load_pipeline_config("ltxv-2b-0.9.6-distilled")
    c, m = models["cond"], models["model"]
    request = core.GenerationRequest(height=H, width=W, num_frames=F, frame_rate=FPS, seed=7)
    ref = core.generate(m.models(), cfg, c.text, request)
    torch.testing.assert_close(latent["samples"], ref.latents)
    torch.testing.assert_close(frames, ref.video[0].permute(1, 2, 3, 0))


def test_compiled_checkpoint_samples_the_same(models, monkeypatch):
    """The loader's `compile` option compiles the transformer blocks (dynamo's "eager" backend here: inductor's
    tracing without its C++ build); the sampler's result is unchanged."""
    tr_cls = type(models["model"].module)
    original = tr_cls.compile_blocks
    monkeypatch.setattr(tr_cls, "compile_blocks", lambda self, **_: original(self, backend="eager", fullgraph=True))
    model, _ = run("LTXVStackCheckpointLoader", ckpt_name="tiny-ltxv.safetensors", weight_dtype="default",
                   compile=True)
    assert model.module.blocks_compiled and not models["model"].module.blocks_compiled
    got = sample(models, model=model)["samples"]
    torch.testing.assert_close(got, sample(models)["samples"], rtol=1e-5, atol=1e-6)


def test_fp8_matmul_option(models):
    model, _ = run("LTXVStackCheckpointLoader", ckpt_name="tiny-ltxv.safetensors", weight_dtype="float8_e4m3fn",
                   fp8_matmul=True)
    switched = [m.fp8_matmul for m in model.module.transformer_blocks.modules() if hasattr(m, "fp8_matmul")]
    assert switched and all(switched)
    assert torch.isfinite(sample(models, model=model)["samples"]).all()
    with pytest.raises(ValueError, match=r"Checkpoint Loader: fp8 matmuls need fp8 weights.*float32"):
        run("LTXVStackCheckpointLoader", ckpt_name="tiny-ltxv.safetensors", weight_dtype="float32", fp8_matmul=True)


def test_compile_without_a_compiler_is_refused_before_loading(models, monkeypatch):
    import shutil

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match=r"Checkpoint Loader: cannot compile the transformer: .*C\+\+ compiler"):
        run("LTXVStackCheckpointLoader", ckpt_name="tiny-ltxv.safetensors", weight_dtype="default", compile=True)


def test_odd_size_is_cropped_back(models):
    latent = sample(models, width=70, height=40, num_frames=5, steps=2)
    assert latent["samples"].shape == (1, 128, 2, 2, 3)
    assert decode(models, latent).shape == (5, 40, 70, 3)


def test_keyframes_first_and_last(models):
    (cond,) = run("LTXVStackAddImage", conditioning=models["cond"], image=image(1), frame_index=0, strength=1.0,
                  crf=29, blur=True)
    (cond,) = run("LTXVStackAddImage", conditioning=cond, image=image(1, seed=1), frame_index=-1, strength=0.8,
                  crf=0, blur=False)
    assert len(cond.keyframes) == 2 and models["cond"].keyframes == ()
    latent = sample(models, conditioning=cond, num_frames=17)
    assert latent["samples"].shape == (1, 128, 3, 2, 3)
    assert decode(models, latent).shape == (17, H, W, 3)


def test_clip_extension(models):
    clip = image(10, 64, 96)  # 10 frames: the first 9 (8k+1) are used
    (cond,) = run("LTXVStackAddImage", conditioning=models["cond"], image=clip, frame_index=0, strength=1.0,
                  crf=29, blur=True)
    assert cond.keyframes[0].frames.shape[0] == 9
    latent = sample(models, conditioning=cond, num_frames=17)
    assert latent["samples"].shape[2] == 3


@pytest.mark.parametrize("frames,frame_index,num_frames,needle", [
    (1, 17, 17, "beyond the video's last frame"),
    (9, 16, 17, "runs past the end"),
    (9, -1, 5, "raise num_frames to at least 9"),
])
def test_bad_keyframes_say_what_to_change(models, frames, frame_index, num_frames, needle):
    (cond,) = run("LTXVStackAddImage", conditioning=models["cond"], image=image(frames, 32, 32),
                  frame_index=frame_index, strength=1.0, crf=0, blur=False)
    with pytest.raises(ValueError, match=needle):
        sample(models, conditioning=cond, num_frames=num_frames)


def _lora_files(models):
    import tiny_lora as tl

    tr = models["model"].module
    loras = models["root"] / "loras"
    tl.write_lora(loras / "style.safetensors", tl.random_lora(tr, rank=4, seed=1), "comfyui")
    (loras / "sub").mkdir(exist_ok=True)
    tl.write_lora(loras / "sub" / "effect.safetensors", tl.random_lora(tr, tl.TARGETS[:4], rank=2, seed=2), "diffusers")
    save_file({"diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight": torch.zeros(2, 8),
               "diffusion_model.double_blocks.0.img_attn.qkv.lora_B.weight": torch.zeros(8, 2)},
              str(loras / "flux-style.safetensors"))


def test_lora_loader_chains_and_leaves_the_plain_model_alone(models):
    _lora_files(models)
    assert nodes["LTXVStackLoraLoader"].INPUT_TYPES()["required"]["lora_name"][0] == [
        "flux-style.safetensors", "style.safetensors", "sub/effect.safetensors"]
    plain = sample(models)["samples"]
    (one,) = run("LTXVStackLoraLoader", model=models["model"], lora_name="style.safetensors", strength=1.0)
    (two,) = run("LTXVStackLoraLoader", model=one, lora_name="sub/effect.safetensors", strength=-0.5)
    assert [u.strength for u in two.loras] == [1.0, -0.5] and models["model"].loras == () and len(one.loras) == 1
    with_one, with_two = sample(models, model=one)["samples"], sample(models, model=two)["samples"]
    assert (with_one - plain).norm() > 1e-3 * plain.norm() and (with_two - with_one).norm() > 1e-3 * plain.norm()
    # the same as one ltx_core call with the same LoRAs
    cfg = core.presets.load_pipeline_config("ltxv-2b-0.9.6-distilled")
    request = core.GenerationRequest(height=H, width=W, num_frames=F, frame_rate=FPS, seed=7)
    ref = core.generate(two.models(), cfg, models["cond"].text, request)
    torch.testing.assert_close(with_two, ref.latents)
    # the loaded weights were never changed: the plain model samples as before, a strength of 0 changes nothing
    torch.testing.assert_close(sample(models)["samples"], plain)
    (off,) = run("LTXVStackLoraLoader", model=models["model"], lora_name="style.safetensors", strength=0.0)
    torch.testing.assert_close(sample(models, model=off)["samples"], plain, rtol=1e-5, atol=1e-6)


def test_lora_loader_refusals_name_the_file(models):
    _lora_files(models)
    with pytest.raises(ValueError, match=r"LTX-Video LoRA Loader: .*flux-style.safetensors: this LoRA matches "
                                         r"nothing .*FLUX LoRA"):
        run("LTXVStackLoraLoader", model=models["model"], lora_name="flux-style.safetensors", strength=1.0)
    with pytest.raises(ValueError, match=r"LTX-Video LoRA Loader: LoRA 'gone.safetensors' .*loras"):
        run("LTXVStackLoraLoader", model=models["model"], lora_name="gone.safetensors", strength=1.0)
    with pytest.raises(ValueError, match="model must come from LTX-Video Checkpoint Loader"):
        run("LTXVStackLoraLoader", model=models["vae"], lora_name="style.safetensors", strength=1.0)


def test_control_video_node(models):
    control = image(20, 64, 96, seed=3)
    (cond,) = run("LTXVStackAddControlVideo", conditioning=models["cond"], control_video=control, strength=1.0,
                  start_frame=0)
    assert len(cond.controls) == 1 and cond.keyframes == () and models["cond"].controls == ()
    (cond,) = run("LTXVStackAddImage", conditioning=cond, image=image(1), frame_index=0, strength=1.0, crf=29,
                  blur=True)
    latent = sample(models, conditioning=cond, num_frames=17)
    assert latent["samples"].shape == (1, 128, 3, 2, 3)  # the guide tokens are not in the output
    without = sample(models, conditioning=run("LTXVStackAddImage", conditioning=models["cond"], image=image(1),
                                              frame_index=0, strength=1.0, crf=29, blur=True)[0], num_frames=17)
    assert (latent["samples"] - without["samples"]).norm() > 1e-3 * without["samples"].norm()
    with pytest.raises(ValueError, match=r"Add Control Video: control video: a clip \(17 frames\) that does not "
                                         r"start at frame 0 must start at a multiple of 8; use frame_index 0 or 8"):
        run("LTXVStackAddControlVideo", conditioning=models["cond"], control_video=control, strength=1.0,
            start_frame=4)
    (late,) = run("LTXVStackAddControlVideo", conditioning=models["cond"], control_video=control, strength=1.0,
                  start_frame=24)
    with pytest.raises(ValueError, match=r"LTX-Video Sampler: control video .*beyond the video's last frame"):
        sample(models, conditioning=late, num_frames=17)


def _gguf_files(models):
    """A tiny 32-head transformer (GGUF files carry no head count) as GGUF, and a VAE file beside it."""
    root = models["root"]
    caption = models["cond"].embeds.shape[-1]
    ref, _ = tiny_transformer.tiny_reference("2b", num_attention_heads=32, attention_head_dim=8,
                                             cross_attention_dim=256, caption_channels=caption)
    tiny_gguf.write_gguf(root / "diffusion_models" / "ltxv-2b-0.9.6-dev-Q8_0.gguf", ref.state_dict(), "Q8_0")
    _, cfg, sd = tiny_vae.tiny_vae("0.9.5")
    save_file({k: v.contiguous() for k, v in sd.items()}, str(root / "vae" / "LTX-Video-VAE.safetensors"),
              metadata={"config": json.dumps({"vae": cfg})})


def test_gguf_model_and_vae_loaders(models):
    _gguf_files(models)
    assert "ltxv-2b-0.9.6-dev-Q8_0.gguf" in nodes["LTXVStackModelLoader"].INPUT_TYPES()["required"]["model_name"][0]
    (vae,) = run("LTXVStackVAELoader", vae_name="LTX-Video-VAE.safetensors", dtype="default")
    (model,) = run("LTXVStackModelLoader", model_name="ltxv-2b-0.9.6-dev-Q8_0.gguf", vae=vae, release="auto",
                   weight_dtype="default")
    assert model.vae is vae and model.scheduler_config["sampler"] == "LinearQuadratic"
    latent = sample(models, model=model, steps=2)
    assert latent["samples"].shape == (1, 128, 2, H // 32, W // 32)
    assert decode(models, latent, vae=vae).shape == (F, H, W, 3)
    # the same run as one ltx_core call on the same files
    root = models["root"]
    ck = core.load_video_model(root / "diffusion_models" / "ltxv-2b-0.9.6-dev-Q8_0.gguf",
                               core.LoadOptions(dtype="float32"), vae_path=root / "vae" / "LTX-Video-VAE.safetensors")
    cfg = core.presets.load_pipeline_config("ltxv-2b-0.9.6-distilled")
    request = core.GenerationRequest(height=H, width=W, num_frames=F, frame_rate=FPS, seed=7, num_inference_steps=2)
    ref = core.generate(core.Models.from_checkpoint(ck), cfg, models["cond"].text, request)
    torch.testing.assert_close(latent["samples"], ref.latents)


def test_part_loaders_refuse_the_wrong_kind_of_file(models):
    _gguf_files(models)
    shutil.copy(models["root"] / "checkpoints" / "tiny-ltxv.safetensors", models["root"] / "vae" / "full.safetensors")
    shutil.copy(models["root"] / "checkpoints" / "tiny-ltxv.safetensors",
                models["root"] / "diffusion_models" / "full.safetensors")
    (vae,) = run("LTXVStackVAELoader", vae_name="LTX-Video-VAE.safetensors", dtype="default")
    with pytest.raises(ValueError, match=r"LTX-Video VAE Loader: .*full.safetensors: this file holds a whole model"):
        run("LTXVStackVAELoader", vae_name="full.safetensors", dtype="default")
    with pytest.raises(ValueError, match=r"LTX-Video Model Loader: full.safetensors is a whole checkpoint .*"
                                         r"Checkpoint Loader"):
        run("LTXVStackModelLoader", model_name="full.safetensors", vae=vae, release="auto", weight_dtype="default")
    with pytest.raises(ValueError, match=r"Model Loader: .*a GGUF model is quantized already"):
        run("LTXVStackModelLoader", model_name="ltxv-2b-0.9.6-dev-Q8_0.gguf", vae=vae, release="auto",
            weight_dtype="float8_e4m3fn")
    _, cfg, sd = tiny_vae.tiny_vae("0.9.0")
    save_file({k: v.contiguous() for k, v in sd.items()}, str(models["root"] / "vae" / "ltx-video-0.9-vae.safetensors"),
              metadata={"config": json.dumps({"vae": cfg})})
    (old_vae,) = run("LTXVStackVAELoader", vae_name="ltx-video-0.9-vae.safetensors", dtype="default")
    with pytest.raises(ValueError, match=r"Model Loader: .*Q8_0.gguf: the VAE given with it is of the 0.9.0 generation, "
                                         r"but LTX-Video 0.9.6 models decode with the 0.9.5\+ VAE"):
        run("LTXVStackModelLoader", model_name="ltxv-2b-0.9.6-dev-Q8_0.gguf", vae=old_vae, release="auto",
            weight_dtype="default")


def test_long_video_sampler_with_chunk_prompts(models):
    (cond,) = run("LTXVStackTextEncode", text_encoder=models["te"], prompt="a fox runs | the fox jumps",
                  negative_prompt="blurry", frame_rate=FPS)
    assert len(cond.texts) == 2
    (cond,) = run("LTXVStackAddImage", conditioning=cond, image=image(1), frame_index=0, strength=1.0, crf=29,
                  blur=True)
    args = dict(model=models["model"], conditioning=cond, preset="ltxv-2b-0.9.6-distilled", width=W, height=H,
                num_frames=57, seed=7, steps=2, image_cond_noise_scale=0.15)
    (latent,) = run("LTXVStackLongSampler", tile_frames=33, overlap_frames=16, overlap_strength=0.5,
                    adain_factor=0.0, long_memory_strength=0.0, long_memory_frame=0, **args)
    assert latent["samples"].shape == (1, 128, 8, H // 32, W // 32)
    assert decode(models, latent).shape == (57, H, W, 3)
    # the same as one ltx_core call with the same prompts, keyframe and tiling
    cfg = core.presets.load_pipeline_config("ltxv-2b-0.9.6-distilled")
    items = core.prepare_keyframes(cond.keyframes, H, W, 57)
    request = core.GenerationRequest(height=H, width=W, num_frames=57, frame_rate=FPS, seed=7, num_inference_steps=2,
                                     conditioning=items, output="latents")
    ref = core.generate_long(models["model"].models(), cfg, cond.texts, request, core.TemporalTiling(33, 16, 0.5))
    torch.testing.assert_close(latent["samples"], ref.latents)
    with pytest.raises(ValueError, match=r"LTX-Video Sampler: the prompt has several parts separated by '\|'"):
        sample(models, conditioning=cond)
    with pytest.raises(ValueError, match=r"Long Video Sampler: tile_frames must be 8k\+1 and at least 25, got 40: "
                                         r"use 33 or 41"):
        run("LTXVStackLongSampler", tile_frames=40, overlap_frames=16, overlap_strength=0.5, adain_factor=0.0,
            long_memory_strength=0.0, long_memory_frame=0, **args)


def test_add_image_rejects_wrong_inputs(models):
    add = dict(conditioning=models["cond"], frame_index=0, strength=1.0, crf=29, blur=True)
    with pytest.raises(ValueError, match="MASK"):
        run("LTXVStackAddImage", image=torch.rand(1, 32, 32), **add)
    with pytest.raises(ValueError, match="IMAGE"):
        run("LTXVStackAddImage", image=torch.rand(1, 3, 32, 32), **add)
    with pytest.raises(ValueError, match="multiple of 8; use frame_index 8 or 16"):
        run("LTXVStackAddImage", image=image(9, 32, 32), **{**add, "frame_index": 12})


def test_multiscale_recipe(models):
    with pytest.raises(ValueError, match="multi-scale recipe: connect an LTX-Video Latent Upscale Model Loader"):
        sample(models, preset="ltxv-2b-0.9.8-distilled")
    with pytest.raises(ValueError, match="temporal"):
        sample(models, preset="ltxv-2b-0.9.8-distilled", upscale_model=models["temporal"])
    latent = sample(models, preset="ltxv-2b-0.9.8-distilled", upscale_model=models["spatial"])
    assert latent["samples"].shape == (1, 128, 2, 2, 2)  # second pass at 2 x (2/3 of 64x96, floored to 32)
    assert decode(models, latent).shape == (F, H, W, 3)  # resized and cropped back to the requested size


def test_custom_settings_and_refine(models):
    (settings,) = run("LTXVStackCustomSettings", steps=3, schedule="linear-quadratic", timesteps="", cfg=2.0,
                      stg=1.0, rescale=0.7, stg_blocks="1", stg_mode="attention_values", cfg_star=True,
                      stochastic=False)
    latent = sample(models, settings=settings)
    (refined,) = run("LTXVStackSampler", model=models["model"], conditioning=models["cond"],
                     preset="ltxv-2b-0.9.6-distilled", width=32, height=32, num_frames=1, seed=1, steps=0,
                     denoise=0.5, image_cond_noise_scale=0.15, latent=latent)
    assert refined["samples"].shape == latent["samples"].shape
    assert not torch.equal(refined["samples"], latent["samples"])
    assert decode(models, refined).shape == (F, H, W, 3)
    with pytest.raises(ValueError, match="lower denoise"):
        sample(models, latent=latent)
    with pytest.raises(ValueError, match="connect one to latent"):
        sample(models, denoise=0.5)
    with pytest.raises(ValueError, match="block"):
        sample(models, settings=run("LTXVStackCustomSettings", steps=2, schedule="uniform", timesteps="",
                                    cfg=1.0, stg=1.0, rescale=1.0, stg_blocks="5", stg_mode="attention_values",
                                    cfg_star=False, stochastic=False)[0])


@pytest.mark.parametrize("kw,needle", [
    (dict(timesteps="1.0, 0.5, 0.7"), "decreasing"),
    (dict(timesteps="1.0, x"), "numbers separated by commas"),
    (dict(stg_blocks=""), "stg_blocks is empty"),
])
def test_custom_settings_errors(kw, needle):
    args = dict(steps=3, schedule="uniform", timesteps="", cfg=3.0, stg=1.0, rescale=0.7, stg_blocks="1",
                stg_mode="attention_values", cfg_star=False, stochastic=False)
    with pytest.raises(ValueError, match=needle):
        run("LTXVStackCustomSettings", **{**args, **kw})


def test_latent_upsample_and_vae_encode(models):
    (latent,) = run("LTXVStackVAEEncode", vae=models["vae"], images=image(9, 64, 96))
    assert latent["samples"].shape == (1, 128, 2, 2, 3)
    (up,) = run("LTXVStackLatentUpsample", samples=latent, upscale_model=models["spatial"], vae=models["vae"],
                adain_factor=1.0, tone_map_compression=0.0)
    assert up["samples"].shape == (1, 128, 2, 4, 6)
    z, u = latent["samples"], up["samples"]
    torch.testing.assert_close(u.mean(dim=(2, 3, 4)), z.mean(dim=(2, 3, 4)), atol=1e-4, rtol=0)  # AdaIN
    torch.testing.assert_close(u.std(dim=(2, 3, 4)), z.std(dim=(2, 3, 4)), atol=1e-4, rtol=1e-4)
    (mapped,) = run("LTXVStackLatentUpsample", samples=latent, upscale_model=models["spatial"], vae=models["vae"],
                    adain_factor=1.0, tone_map_compression=0.6)
    tone_map = sys.modules[f"{PACK}.ltx_core.pipelines"].tone_map
    torch.testing.assert_close(mapped["samples"], tone_map(u, 0.6))
    (up_t,) = run("LTXVStackLatentUpsample", samples=latent, upscale_model=models["temporal"], vae=models["vae"],
                  adain_factor=0.0, tone_map_compression=0.0)
    assert up_t["samples"].shape == (1, 128, 3, 2, 3)
    assert decode(models, up_t).shape == (17, 64, 96, 3)
    with pytest.raises(ValueError, match="10 frames is not 8k\\+1: use 9 or 17 frames"):
        run("LTXVStackVAEEncode", vae=models["vae"], images=image(10, 64, 96))
    with pytest.raises(ValueError, match="width 100 is not a multiple of 32: resize or crop to 96 or 128"):
        run("LTXVStackVAEEncode", vae=models["vae"], images=image(1, 64, 100))
    with pytest.raises(ValueError, match="LATENT"):
        run("LTXVStackLatentUpsample", samples=torch.zeros(1), upscale_model=models["spatial"], vae=models["vae"],
            adain_factor=1.0, tone_map_compression=0.0)


def test_tiled_decode(models):
    (latent,) = run("LTXVStackVAEEncode", vae=models["vae"], images=image(17, 64, 96))
    full = decode(models, latent, tiling="off")
    tiled = decode(models, latent, tiling="on")
    assert tiled.shape == full.shape == (17, 64, 96, 3) and not torch.equal(tiled, full)
    # the tiles asked for reach ltx_core's tiled decode (which blends them; tested there)
    tiles = core.TilingConfig(64, 32, 8, 0)
    ref = core.decode_video(models["vae"].module, latent["samples"], core.DecodeSettings(0.05, 0.025, 0.0), 7,
                            core.DecodeTiling("on", tiles))
    torch.testing.assert_close(tiled, ref[0].permute(1, 2, 3, 0))
    with pytest.raises(ValueError, match="spatial_overlap"):
        decode(models, latent, tiling="on", spatial_overlap=64)


def test_a_long_video_is_decoded_in_pieces(models):
    """Latents longer than one pass makes (here 34 latent frames, 265 frames) are decoded in temporal pieces, each
    moved off the device as it comes; the frames are those of the tiled decode with the same tiles."""
    z = torch.randn(1, 128, 34, 2, 3, generator=torch.Generator().manual_seed(4))
    latent = {"samples": z}
    frames = decode(models, latent, tiling="on", spatial_tile=512, spatial_overlap=64, temporal_tile=64,
                    temporal_overlap=24)
    tiles = core.TilingConfig(512, 64, 64, 24)
    ref = core.decode_video(models["vae"].module, z, core.DecodeSettings(0.05, 0.025, 0.0), 7,
                            core.DecodeTiling("on", tiles))
    assert frames.shape == (265, 64, 96, 3)
    torch.testing.assert_close(frames, ref[0].permute(1, 2, 3, 0), rtol=0, atol=1e-5)


def test_a_video_larger_than_the_ram_is_refused_before_sampling(models):
    with pytest.raises(ValueError, match=r"LTX-Video Sampler: 16385 frames at 16384x16384 need about .* free on "
                                         r"cpu\. What fits: "):
        sample(models, width=16384, height=16384, num_frames=16385)


def test_auto_preset_is_the_checkpoints_own(models):
    named = models["root"] / "checkpoints" / "ltxv-2b-0.9.6-distilled-04-25.safetensors"
    shutil.copy(models["root"] / "checkpoints" / "tiny-ltxv.safetensors", named)
    model, _ = run("LTXVStackCheckpointLoader", ckpt_name=named.name, weight_dtype="default")
    auto = sample(models, model=model, preset="auto", steps=2)["samples"]
    torch.testing.assert_close(auto, sample(models, model=model, preset="ltxv-2b-0.9.6-distilled", steps=2)["samples"])
    with pytest.raises(ValueError, match=r"LTX-Video Sampler: cannot tell the recipe of 'tiny-ltxv.safetensors'"):
        sample(models, preset="auto")


@pytest.fixture
def shown():
    """What the nodes show: the text under the running node and every progress update, in order."""
    seen = {"text": [], "progress": []}
    text, progress = seen["text"].append, lambda step, total, latents: seen["progress"].append((step, total))
    bridge.TEXT_LISTENERS.append(text)
    bridge.PROGRESS_LISTENERS.append(progress)
    yield seen
    bridge.TEXT_LISTENERS.remove(text)
    bridge.PROGRESS_LISTENERS.remove(progress)


def _named_checkpoint(models, name):
    path = models["root"] / "checkpoints" / name
    if not path.exists():
        shutil.copy(models["root"] / "checkpoints" / "tiny-ltxv.safetensors", path)
    return run("LTXVStackCheckpointLoader", ckpt_name=name, weight_dtype="default")[0]


def test_a_preset_that_is_not_the_checkpoints_recipe_is_shown_on_the_node(models, shown, caplog):
    model = _named_checkpoint(models, "ltxv-2b-0.9.6-dev-04-25.safetensors")
    chosen = sample(models, model=model, preset="ltxv-2b-0.9.6-distilled", steps=2)["samples"]
    # on the node from before the first step: the preset widget shows the choice, the text what to pick instead
    warning = "WARNING: the checkpoint's recipe is ltxv-2b-0.9.6-dev; pick it or auto"
    assert shown["text"] == [warning, warning + "\npass 1/1: 96x64, 2 steps"]
    assert ("ltxv-2b-0.9.6-dev-04-25.safetensors: preset ltxv-2b-0.9.6-distilled is not the checkpoint's recipe "
            "(ltxv-2b-0.9.6-dev); it runs as chosen") in caplog.text
    # it ran as chosen: the same as that preset on the same weights under another name
    torch.testing.assert_close(chosen, sample(models, preset="ltxv-2b-0.9.6-distilled", steps=2)["samples"])
    shown["text"].clear()
    distilled = _named_checkpoint(models, "ltxv-2b-0.9.6-distilled-04-25.safetensors")
    sample(models, model=distilled, preset="auto", steps=1)
    sample(models, model=distilled, preset="ltxv-2b-0.9.6-distilled", steps=1)
    assert shown["text"] == ["recipe: ltxv-2b-0.9.6-distilled (auto)",
                             "recipe: ltxv-2b-0.9.6-distilled (auto)\npass 1/1: 96x64, 1 step",
                             "recipe: ltxv-2b-0.9.6-distilled", "recipe: ltxv-2b-0.9.6-distilled\npass 1/1: 96x64, 1 step"]
    # the text box shows about two lines of 45 characters before it scrolls
    assert all(len(line) <= 45 for t in shown["text"] for line in t.splitlines()[1:])


def test_which_preset_mismatches_warn():
    from types import SimpleNamespace

    sampling = sys.modules[f"{PACK}.nodes.sampling"]

    def handle(name, *loras):
        return SimpleNamespace(name=name, module=SimpleNamespace(config=SimpleNamespace(num_layers=48)),
                               allowed_inference_steps=None,
                               loras=[SimpleNamespace(lora=SimpleNamespace(name=n)) for n in loras])

    distilled = handle("ltxv-13b-0.9.8-distilled.safetensors")
    assert sampling._other_recipe("ltxv-13b-0.9.8-distilled-fp8", distilled) is None  # the same recipe
    assert sampling._other_recipe("ltxv-13b-0.9.8-dev", distilled) == "ltxv-13b-0.9.8-distilled"
    assert sampling._other_recipe("ltxv-13b-0.9.7-distilled", distilled) == "ltxv-13b-0.9.8-distilled"
    dev = handle("ltxv-13b-0.9.7-dev.safetensors")
    assert sampling._other_recipe("ltxv-13b-0.9.7-distilled", dev) == "ltxv-13b-0.9.7-dev"
    with_lora = handle("ltxv-13b-0.9.7-dev.safetensors", "ltxv-13b-0.9.7-distilled-lora128.safetensors")
    assert sampling._other_recipe("ltxv-13b-0.9.7-distilled", with_lora) is None  # made distilled by the LoRA
    assert sampling._other_recipe("ltxv-2b-0.9.6-dev", handle("my-finetune.safetensors")) is None  # unknown


def test_multiscale_progress_restarts_per_pass(models, shown):
    sample(models, preset="ltxv-2b-0.9.8-distilled", upscale_model=models["spatial"])
    passes = [t.splitlines()[-1] for t in shown["text"][1:]]
    assert shown["text"][0] == "recipe: ltxv-2b-0.9.8-distilled"
    assert passes == ["pass 1/2: 32x32, 7 steps", "pass 2/2: 64x64, 3 steps"]  # 2/3 of 64x96, on the 32 grid
    assert shown["progress"] == [(i, 7) for i in range(8)] + [(i, 3) for i in range(4)]


def test_long_video_progress_per_chunk_and_pass(models, shown):
    args = dict(model=models["model"], conditioning=models["cond"], preset="ltxv-2b-0.9.6-distilled", width=W,
                height=H, num_frames=57, seed=7, steps=2, image_cond_noise_scale=0.15)
    run("LTXVStackLongSampler", tile_frames=33, overlap_frames=16, overlap_strength=0.5, adain_factor=0.0,
        long_memory_strength=0.0, long_memory_frame=0, **args)
    assert [t.splitlines()[-1] for t in shown["text"][1:]] == [f"chunk {k}/2, pass 1/1: 96x64, 2 steps"
                                                             for k in (1, 2)]
    assert shown["progress"] == [(0, 2), (1, 2), (2, 2)] * 2


def test_interrupt_stops_the_sampler(models):
    seen = []

    def listener(step, total, latents):
        seen.append((step, total))
        bridge.request_interrupt()

    bridge.PROGRESS_LISTENERS.append(listener)
    try:
        with pytest.raises(bridge.Interrupted):
            sample(models, steps=5)
    finally:
        bridge.PROGRESS_LISTENERS.remove(listener)
    assert seen == [(0, 5)]  # the pass's start: the bar restarts at 0 of its 5 steps
    assert not bridge.interrupt_requested()  # cleared, the next run goes ahead
    assert sample(models, steps=1)["samples"].shape == (1, 128, 2, 2, 3)


# ----------------------------------------------------------------------------------------------------------------
# the bridge inside ComfyUI: the calls it makes, against stand-ins with ComfyUI's documented API (the real server run
# is an integration test of its own)


def test_bridge_inside_comfyui(monkeypatch, tmp_path):
    b, fp, mm, state, calls = cs.fake_comfyui(monkeypatch, tmp_path)
    assert b.IN_COMFYUI
    b.register_model_folders()
    paths, exts = fp.folder_names_and_paths["latent_upscale_models"]
    assert paths == [str(tmp_path / "latent_upscale_models")] and ".safetensors" in exts
    for name in ("a.safetensors", "old.ckpt", "sub/b.safetensors", "q.gguf"):
        (tmp_path / "checkpoints" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "checkpoints" / name).write_bytes(b"")
    # ComfyUI's own folder paths, walked here: no pickled files; .gguf where asked for
    assert b.list_model_files("checkpoints") == ["a.safetensors", "sub/b.safetensors"]
    assert b.list_model_files("checkpoints", (".gguf",)) == ["q.gguf"]
    assert b.resolve_model("checkpoints", "a.safetensors", "checkpoint") == tmp_path / "checkpoints" / "a.safetensors"
    assert b.default_dtype("diffusion") == torch.float32  # the CPU, whatever bf16 support says

    module = torch.nn.Linear(2, 2)
    managed = b.ManagedModel(module, "diffusion", "m")
    assert managed.patcher.model.inner is module  # ModelPatcher's bookkeeping lands on a holder, not our model
    assert type(managed.patcher.model).__name__ == "LTXVideoTransformer"  # ComfyUI's log names it so
    # ComfyUI's RAM-pressure output cache recognises model-holding outputs by their `patcher` attribute
    common = sys.modules[f"{PACK}.nodes.common"]
    assert common.VAEHandle("v", managed).patcher is managed.patcher
    assert b.load_models([managed], 123) == torch.device("cpu")
    (patchers, memory, full), = calls["load"]
    assert patchers == [managed.patcher] and memory == 123 and full
    b.unload_model(managed)
    assert calls["unloaded"] == 1 and mm.current_loaded_models == []

    progress = b.Progress(4)
    progress(1, 4, torch.zeros(1, 128, 3, 2, 2))
    assert calls["progress"] == [(1, 4, ("JPEG", "image", 512))]
    assert not b.interrupt_requested()
    state["interrupted"] = True
    assert b.interrupt_requested()
    with pytest.raises(mm.InterruptProcessingException):
        b.raise_interrupted()


def _pass(number, passes, steps, before, chunk=0, chunks=0):
    return core.pipelines.generation.PassInfo(number, passes, steps, before, 64, 96, chunk, chunks)


@pytest.mark.parametrize("version", ["0.3.64", "0.38"])
def test_progress_and_node_text_inside_comfyui(monkeypatch, tmp_path, version):
    """Each pass gets a progress bar of its own that starts at 0 of its steps, and the node shows which pass runs
    under the recipe line. ComfyUI 0.38 throttles a bar's updates (the stand-in drops all but its first and last,
    as when steps come faster than 0.1 s): the restart and each pass's end still reach the UI."""
    b, _, _, state, calls = cs.fake_comfyui(monkeypatch, tmp_path, version=version)
    progress = b.Progress(1, ["recipe: ltxv-13b-0.9.8-distilled"])
    progress.show_notes()
    for info in (_pass(1, 2, 3, 0), _pass(2, 2, 2, 3)):
        progress.begin_pass(info)
        for step in range(info.steps_before + 1, info.steps_before + info.steps + 1):
            progress(step, 5, None)  # ltx_core counts steps over the whole run
    sent = [(v, t) for v, t, _ in calls["progress"]]
    if version == "0.38":
        assert sent == [(0, 3), (3, 3), (0, 2), (2, 2)]
    else:
        assert sent == [(0, 3), (1, 3), (2, 3), (3, 3), (0, 2), (1, 2), (2, 2)]
    assert calls["text"] == [("recipe: ltxv-13b-0.9.8-distilled", "7"),
                             ("recipe: ltxv-13b-0.9.8-distilled\npass 1/2: 96x64, 3 steps", "7"),
                             ("recipe: ltxv-13b-0.9.8-distilled\npass 2/2: 96x64, 2 steps", "7")]
    state["running_node"] = None  # outside an executing context: the node ComfyUI ran last
    b.Progress(1, ["recipe: custom settings"]).begin_pass(_pass(1, 1, 4, 0, chunk=2, chunks=3))
    assert calls["text"][-1] == ("recipe: custom settings\nchunk 2/3, pass 1/1: 96x64, 4 steps", "stale")
    state["interrupted"] = True  # the progress hook checks for Cancel, as ComfyUI's does
    with pytest.raises(BaseException) as raised:
        progress(6, 5, torch.zeros(1, 128, 3, 2, 2))
    assert type(raised.value).__name__ == "InterruptProcessingException"
    assert isinstance(raised.value, Exception) == (version == "0.3.64")


@pytest.mark.parametrize("version,reclaimable,expected", [("0.3.64", 0, 2), ("0.38", 0, 2), ("0.38", 6, 8)])
def test_free_memory_counts_what_dynamic_vram_gives_back(monkeypatch, tmp_path, version, reclaimable, expected):
    """The sampler's memory check and VAE Decode's tiling ask free_memory_bytes: with dynamic VRAM on, what it can
    take back from the models it holds counts as free (else a run that fits is refused or tiled for nothing)."""
    b, *_ = cs.fake_comfyui(monkeypatch, tmp_path, version=version, gpu_free=2 * cs.GIB,
                            reclaimable=reclaimable * cs.GIB)
    assert b.dynamic_vram_enabled() == (version == "0.38")
    assert b.free_memory_bytes(torch.device("cuda")) == expected * cs.GIB


def _t5_placement(monkeypatch, tmp_path, version, gpu_free, reclaimable=0):
    b, _, _, _, calls = cs.fake_comfyui(monkeypatch, tmp_path, version=version, gpu_free=gpu_free,
                                        reclaimable=reclaimable)
    t5 = b.ManagedModel(torch.nn.Linear(1024, 1024), "text_encoder", "t5xxl_fp16.safetensors")  # 4 MiB
    return b.load_text_encoder(t5, 1 << 20), [p for patchers, _, _ in calls["load"] for p in patchers], t5


def test_text_encoder_placement_with_and_without_dynamic_vram(monkeypatch, tmp_path):
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    # 0.3.64: ComfyUI's choice (the CPU here) goes through ComfyUI's loading, as before
    device, loaded, t5 = _t5_placement(monkeypatch, tmp_path, "0.3.64", gpu_free=0)
    assert t5.load_device == cpu and loaded == [t5.patcher] and device == cpu
    # 0.38 names the GPU for every text encoder: used when the T5 and its work fit next to the other models ...
    device, loaded, t5 = _t5_placement(monkeypatch, tmp_path, "0.38", gpu_free=64 << 20)
    assert t5.load_device == gpu and loaded == [t5.patcher]
    # ... also when the room is VRAM dynamic VRAM can take back from the models it holds ...
    device, loaded, t5 = _t5_placement(monkeypatch, tmp_path, "0.38", gpu_free=1 << 20, reclaimable=64 << 20)
    assert loaded == [t5.patcher]
    # ... and not otherwise: the T5 encodes on the CPU, nothing is loaded onto (or evicted from) the GPU
    device, loaded, t5 = _t5_placement(monkeypatch, tmp_path, "0.38", gpu_free=4 << 20)
    assert device == cpu and loaded == [] and t5.device == cpu
