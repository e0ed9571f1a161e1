"""`ltx_core.pipelines.generate` against the official LTXVideoPipeline / LTXMultiScalePipeline (fp32, CPU, tiny
models with the same weights, same seed and settings).

Random numbers: the initial noise, conditioning-token noise and image_cond noise come from the seed's generator in
both implementations, so those paths compare exactly. The official code draws stochastic-sampling and decode noise
from torch's global RNG (`torch.randn_like`); for an exact comparison the tests route those calls to the generator
ours uses for that purpose. The official encoder *samples* its posterior; the tiny VAE's log-variance is pushed to
its floor so the sample equals the mean ours encodes.
"""
import contextlib

import pytest
import torch

pytest.importorskip("ltx_video")

import pipeline_fixtures as pf  # noqa: E402
from ltx_core.pipelines import (  # noqa: E402
    Cancelled,
    ConditioningItem,
    GenerationRequest,
    GenerationResult,
    Models,
    PipelineConfig,
    TextConditioning,
    generate,
)
from ltx_core.sampling.noise import DECODE, STOCHASTIC, derived_generator  # noqa: E402
from ltx_video.pipelines.pipeline_ltx_video import ConditioningItem as RefItem  # noqa: E402
from ltx_video.pipelines.pipeline_ltx_video import LTXMultiScalePipeline  # noqa: E402

TOL = 1e-4
SEED = 1234
FPS = 25.0
LQ_SD3 = {"sampler": "LinearQuadratic", "shifting": "SD3", "target_shift_terminal": 0.1}
SCRIPT_ONLY = ("pipeline_type", "precision", "sampler", "checkpoint_path", "spatial_upscaler_model_path")

DEV_2B = dict(pipeline_type="base", guidance_scale=3, stg_scale=1, rescaling_scale=0.7, skip_block_list=[1],
              num_inference_steps=4, stg_mode="attention_values", decode_timestep=0.05, decode_noise_scale=0.025,
              precision="float32", sampler="from_checkpoint", stochastic_sampling=False)
DEV_13B_FIRST = dict(guidance_scale=[1, 1, 6, 8, 6, 1, 1], stg_scale=[0, 0, 4, 4, 4, 2, 1],
                     rescaling_scale=[1, 1, 0.5, 0.5, 1, 1, 1],
                     guidance_timesteps=[1.0, 0.996, 0.9933, 0.9850, 0.9767, 0.9008, 0.6180],
                     skip_block_list=[[], [0, 2], [1, 2], [2], [2], [2], [2]],  # the tiny 13B model has 3 blocks
                     num_inference_steps=30, skip_final_inference_steps=3, cfg_star_rescale=True)
DEV_13B_SECOND = dict(guidance_scale=[1], stg_scale=[1], rescaling_scale=[1], guidance_timesteps=[1.0],
                      skip_block_list=[1], num_inference_steps=30, skip_initial_inference_steps=17, cfg_star_rescale=True)
COMMON_13B = dict(stg_mode="attention_values", decode_timestep=0.05, decode_noise_scale=0.025, precision="float32",
                  sampler="from_checkpoint", stochastic_sampling=False)
DISTILLED_13B = dict(pipeline_type="multi-scale", downscale_factor=0.6666666, **COMMON_13B,
                     first_pass=dict(timesteps=[1.0, 0.9937, 0.9875, 0.9812, 0.9750, 0.9094, 0.7250], guidance_scale=1,
                                     stg_scale=0, rescaling_scale=1, skip_block_list=[42]),
                     second_pass=dict(timesteps=[0.9094, 0.7250, 0.4219], guidance_scale=1, stg_scale=0,
                                      rescaling_scale=1, skip_block_list=[42], tone_map_compression_ratio=0.6))
DEV_13B = dict(pipeline_type="multi-scale", downscale_factor=0.6666666, **COMMON_13B,
               first_pass=DEV_13B_FIRST, second_pass=DEV_13B_SECOND)
# The same recipe on a 12-step grid (11 + 5 steps instead of 27 + 13), to keep the multi-scale tests quick.
DEV_13B_SHORT = dict(DEV_13B, first_pass=dict(DEV_13B_FIRST, num_inference_steps=12, skip_final_inference_steps=1),
                     second_pass=dict(DEV_13B_SECOND, num_inference_steps=12, skip_initial_inference_steps=7))


@contextlib.contextmanager
def global_randn_like_from(generator):
    """Route the official code's `torch.randn_like` calls to `generator` (drawn as ours draws: CPU float32)."""
    orig = torch.randn_like

    def draw(x, *args, **kwargs):
        return torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device, x.dtype)

    torch.randn_like = draw
    try:
        yield
    finally:
        torch.randn_like = orig


def run_reference(yaml_dict, family="2b", causal=False, height=64, width=64, num_frames=9, conditioning=(),
                  scheduler=LQ_SD3, output="latent", image_cond_noise_scale=0.15, text=None, vae_layout="0.9.5",
                  **extra):
    ref_tr, _ = pf.transformer_pair(family, causal)
    ref_vae, _ = pf.vae_pair(vae_layout)
    pipe = pf.reference_pipeline(ref_tr, ref_vae, scheduler)
    cfg = {k: v for k, v in yaml_dict.items() if k not in SCRIPT_ONLY}
    items = [RefItem(m.clone(), f, s) for m, f, s in conditioning] or None
    kw = pf.reference_call_kwargs(cfg, SEED, height, width, num_frames, FPS, text or pf.text(),
                                  image_cond_noise_scale, items)
    kw["output_type"] = output
    kw.update(extra)
    if yaml_dict.get("pipeline_type") == "multi-scale":
        ref_up, _ = pf.upsampler_pair()
        return LTXMultiScalePipeline(pipe, ref_up)(**kw).images
    return pipe(**kw).images


def run_ours(yaml_dict, family="2b", causal=False, height=64, width=64, num_frames=9, conditioning=(),
             scheduler=LQ_SD3, output="latents", image_cond_noise_scale=0.15, text=None, vae_layout="0.9.5", **kw):
    _, tr = pf.transformer_pair(family, causal)
    _, vae = pf.vae_pair(vae_layout)
    up = pf.upsampler_pair()[1] if yaml_dict.get("pipeline_type") == "multi-scale" else None
    hooks = {k: kw.pop(k) for k in ("progress", "should_cancel") if k in kw}
    models = Models(tr, vae, up, scheduler, kw.pop("allowed_inference_steps", None))
    request = GenerationRequest(height=height, width=width, num_frames=num_frames, frame_rate=FPS, seed=SEED,
                                conditioning=[ConditioningItem(m, f, s) for m, f, s in conditioning],
                                image_cond_noise_scale=image_cond_noise_scale, output=output, **kw)
    return generate(models, PipelineConfig.from_dict(yaml_dict), TextConditioning(*(text or pf.text())), request,
                    **hooks)


def media(frames, height=64, width=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, frames, height, width, generator=g) * 2 - 1


# ------------------------------------------------------------------------------------------------- t2v


@pytest.mark.parametrize("scheduler", [
    {"shifting": "SD3", "target_shift_terminal": 0.1},  # 0.9.0/0.9.1: Uniform + token shift
    LQ_SD3,
    {"sampler": "LinearQuadratic"},
    {"sampler": "Constant", "shift": 0.7},
    {"shifting": "SimpleDiffusion", "sampler": "LinearQuadratic"},
], ids=["uniform-sd3", "lq-sd3", "lq", "constant", "simple-diffusion"])
def test_t2v_schedule_kinds(scheduler):
    ref = run_reference(DEV_2B, scheduler=scheduler)
    res = run_ours(DEV_2B, scheduler=scheduler)
    assert isinstance(res, GenerationResult) and res.video is None
    assert res.latents.shape == ref.shape == (1, 128, 2, 2, 2)
    assert pf.rel_l2(res.latents, ref) < TOL


def test_t5_length_padding_is_trimmed_without_changing_the_result(monkeypatch):
    """T5 pads prompts to 128+ tokens; ours drops the padding every row masks before sampling (exact), the
    reference attends over all of it."""
    pos, pm, neg, nm = pf.text()
    padded = [torch.cat([t, torch.randn(t.shape[0], 100, *t.shape[2:])], dim=1) for t in (pos, neg)]
    masks = [torch.cat([m, torch.zeros(m.shape[0], 100, dtype=m.dtype)], dim=1) for m in (pm, nm)]
    text = (padded[0], masks[0], padded[1], masks[1])
    _, tr = pf.transformer_pair("2b", False)  # the instance run_ours uses (lru_cache keys on the arguments as given)
    seen = []
    forward = tr.forward_tokens
    monkeypatch.setattr(tr, "forward_tokens", lambda *a, **k: seen.append(a[3].shape[1]) or forward(*a, **k))
    res = run_ours(DEV_2B, text=text)
    assert set(seen) == {16}  # 9 valid prompt tokens, aligned to 8
    assert pf.rel_l2(res.latents, run_reference(DEV_2B, text=text)) < TOL


@pytest.mark.parametrize("mode", ["attention_values", "attention_skip", "residual", "transformer_block"])
def test_2b_dev_recipe_each_stg_mode(mode):
    y = dict(DEV_2B, stg_mode=mode, num_inference_steps=3)
    ref = run_reference(y, width=96)
    res = run_ours(y, width=96)
    assert pf.rel_l2(res.latents, ref) < TOL


def test_13b_dev_per_step_guidance_with_cfg_star():
    """The 13B dev first pass as released: LQ30 minus 3 final steps, 7 guidance intervals, CFG-star."""
    y = dict(pipeline_type="base", **COMMON_13B, **DEV_13B_FIRST)
    ref = run_reference(y, "13b", True, height=32, width=32)
    res = run_ours(y, "13b", True, height=32, width=32)
    assert pf.rel_l2(res.latents, ref) < TOL


def test_distilled_timestep_list_base():
    y = dict(pipeline_type="base", **COMMON_13B, timesteps=[1.0, 0.9937, 0.9875, 0.9812, 0.9750, 0.9094, 0.7250],
             guidance_scale=1, stg_scale=0, rescaling_scale=1, skip_block_list=[42])
    ref = run_reference(y, "13b", True)
    res = run_ours(y, "13b", True)
    assert pf.rel_l2(res.latents, ref) < TOL


def test_batch_of_two_with_cfg():
    y = dict(DEV_2B, stg_scale=0, guidance_scale=4, num_inference_steps=3)
    text = pf.text(batch=2)
    ref = run_reference(y, text=text)
    res = run_ours(y, text=text)
    assert res.latents.shape[0] == 2 and pf.rel_l2(res.latents, ref) < TOL


# ------------------------------------------------------------------------------------------------- conditioning

COND_CASES = {
    "i2v": lambda: [(media(1), 0, 1.0)],
    "i2v-soft": lambda: [(media(1), 0, 0.6)],
    "keyframe-later": lambda: [(media(1, seed=1), 16, 1.0)],
    "clip-later": lambda: [(media(17, seed=2), 8, 0.9)],
    "two-conditions": lambda: [(media(1), 0, 1.0), (media(9, seed=3), 16, 0.8)],
    # Just-cropped media (inference.py's conditioning items) keep their own size: resized to the pass's size.
    "other-size": lambda: [(media(1, 48, 80), 0, 1.0), (media(1, 96, 40, seed=4), 24, 1.0)],
}


@pytest.mark.parametrize("case", list(COND_CASES))
def test_conditioning(case):
    items = COND_CASES[case]()
    y = dict(DEV_2B, num_inference_steps=3)
    ref = run_reference(y, "13b", True, num_frames=25, conditioning=items)
    res = run_ours(y, "13b", True, num_frames=25, conditioning=items)
    assert pf.rel_l2(res.latents, ref) < TOL


# ------------------------------------------------------------------------------------------------- multi-scale


def test_multiscale_dev_schedule_latents():
    items = [(media(1, 96, 96), 0, 1.0)]
    ref = run_reference(DEV_13B_SHORT, "13b", True, height=96, width=96, conditioning=items)
    res = run_ours(DEV_13B_SHORT, "13b", True, height=96, width=96, conditioning=items)
    # 96 * 0.6666666 = 63.99 -> 32 pixels in the first pass, 64 in the second.
    assert res.latents.shape == ref.shape == (1, 128, 2, 2, 2)
    assert pf.rel_l2(res.latents, ref) < TOL


def test_multiscale_distilled_video_with_tone_mapping():
    with global_randn_like_from(derived_generator(SEED, DECODE)):
        ref = run_reference(DISTILLED_13B, "13b", True, height=96, width=128, output="pt")
    res = run_ours(DISTILLED_13B, "13b", True, height=96, width=128, output="video")
    assert res.video.shape == ref.shape == (1, 3, 9, 96, 128)
    assert pf.rel_l2(res.video, ref) < TOL
    assert res.latents.shape == (1, 128, 2, 2, 4)
    # The tone map acts: without it the video differs.
    plain = dict(DISTILLED_13B, second_pass=dict(DISTILLED_13B["second_pass"], tone_map_compression_ratio=0.0))
    assert pf.rel_l2(run_ours(plain, "13b", True, height=96, width=128, output="video").video, ref) > 1e-3


# ------------------------------------------------------------------------------------------------- random paths


def test_stochastic_sampling_exact_with_routed_noise():
    y = dict(DEV_2B, stochastic_sampling=True, guidance_scale=1, stg_scale=0, rescaling_scale=1, num_inference_steps=4)
    with global_randn_like_from(derived_generator(SEED, STOCHASTIC)):
        ref = run_reference(y)
    res = run_ours(y)
    assert pf.rel_l2(res.latents, ref) < TOL
    # Statistically: the re-noising is seeded (same seed, same result), it matters (differs from deterministic
    # sampling by about the noise level of the last step) and is not torch's global RNG.
    torch.manual_seed(0)
    again = run_ours(y)
    assert torch.equal(again.latents, res.latents)
    det = run_ours(dict(y, stochastic_sampling=False))
    assert pf.rel_l2(det.latents, res.latents) > 1e-3


def test_base_video_decode_noise_padding_and_crop():
    """Requested 60x90x15 -> padded 64x96x17 as inference.py pads, decoded with seeded decode noise, cropped back."""
    y = dict(DEV_2B, num_inference_steps=3)
    with global_randn_like_from(derived_generator(SEED, DECODE)):
        ref = run_reference(y, height=64, width=96, num_frames=17, output="pt")
    res = run_ours(y, height=60, width=90, num_frames=15, output="video")
    # inference.py's crop: padding split (total // 2) before, the rest after.
    expected = ref[:, :, :15, 2:62, 3:93]
    assert res.video.shape == (1, 3, 15, 60, 90)
    assert res.video.min() >= 0 and res.video.max() <= 1
    assert pf.rel_l2(res.video, expected) < TOL


def test_base_video_with_a_vae_without_timestep_conditioning():
    """0.9.0's VAE: no decode noise, no decode timestep."""
    y = dict(DEV_2B, num_inference_steps=2)
    ref = run_reference(y, output="pt", vae_layout="0.9.0")
    res = run_ours(y, output="video", vae_layout="0.9.0")
    assert pf.rel_l2(res.video, ref) < TOL


def test_video_to_video_input_media():
    """The official `media_items`: encoded, noised to the first timestep (here after skipped initial steps)."""
    y = dict(DEV_2B, num_inference_steps=6, skip_initial_inference_steps=3)
    video = media(9, seed=7)
    ref = run_reference(y, media_items=video.clone())
    res = run_ours(y, input_media=video)
    assert pf.rel_l2(res.latents, ref) < TOL


def test_refine_given_latents_with_denoise_strength():
    """Latents in + denoise_strength: the grid truncated to t <= strength, latents re-noised to its first value."""
    from ltx_core.sampling.schedule import SchedulerConfig, make_timesteps

    y = dict(DEV_2B, num_inference_steps=10)
    start = run_ours(dict(y, num_inference_steps=3)).latents
    ts = make_timesteps(SchedulerConfig.from_dict(LQ_SD3), 10, start.shape)
    ref = run_reference(y, latents=start.clone(), timesteps=ts[ts <= 0.6].tolist(), num_inference_steps=None)
    res = run_ours(y, latents=start, denoise_strength=0.6)
    assert pf.rel_l2(res.latents, ref) < TOL


# ------------------------------------------------------------------------------------------------- API behaviour


def test_progress_and_cancel():
    seen = []
    res = run_ours(DEV_13B_SHORT, "13b", True, height=96, width=96,
                   progress=lambda i, n, lat: seen.append((i, n, tuple(lat.shape))))
    assert [s[0] for s in seen] == list(range(1, 17)) and all(s[1] == 16 for s in seen)  # 11 + 5 steps
    assert seen[0][2] == (1, 128, 2, 1, 1) and seen[-1][2] == (1, 128, 2, 2, 2)
    assert res.latents.shape == (1, 128, 2, 2, 2)
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        run_ours(DEV_2B, should_cancel=cancel)
    assert len(calls) == 3


@pytest.mark.parametrize("kwargs, match", [
    (dict(height=0), "height"),
    (dict(num_frames=-3), "num_frames"),
    (dict(conditioning=[(media(1), 0, 1.5)]), "strength"),
    (dict(conditioning=[(media(1), 9, 1.0)]), "beyond"),
    (dict(input_media=media(5)), "frames"),
    (dict(denoise_strength=0.5), "latents"),
    (dict(output="pil"), "output"),
    (dict(latents=torch.zeros(1, 128, 2, 2, 2)), "t=1"),
    (dict(latents=torch.zeros(1, 128, 2, 2, 2), denoise_strength=0.5, height=96), "shape"),
    (dict(allowed_inference_steps=[1.0, 0.9937, 0.9875, 0.9812, 0.975, 0.9094, 0.725, 0.4219]), "allowed"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_ours(DEV_2B, **kwargs)


def test_decode_tiling_auto_follows_free_device_memory(monkeypatch):
    """On a GPU, "auto" decodes untiled when that fits in free memory and in the largest fitting tiles otherwise;
    with no room even for the smallest tiles it refuses before decoding. Free memory is stood in for here."""
    import ltx_core.pipelines.generation as pipelines
    from ltx_core.memory.estimate import vae_decode_bytes, vae_weight_bytes, with_headroom
    from ltx_core.model.video_vae import TilingConfig

    _, vae = pf.vae_pair("0.9.5")
    latent_shape = (1, 128, 3, 8, 12)  # 256x384 pixels, 17 frames
    weights = vae_weight_bytes(vae, torch.float32)
    untiled = with_headroom(vae_decode_bytes(vae, latent_shape, torch.float32), weights)
    tile = TilingConfig(160, 64, None, 24)  # the largest spatial tile of the ladder that needs less than untiled
    tiled = with_headroom(vae_decode_bytes(vae, latent_shape, torch.float32, tile), weights)
    assert tiled < untiled
    run = dict(output="video", width=384, height=256, num_frames=17)
    plain = run_ours(DEV_2B, decode_tiling=None, **run).video
    assert torch.equal(run_ours(DEV_2B, **run).video, plain)  # CPU: "auto" is untiled

    # Free memory as the device reports it: the VAE's weights are already there, on top of it.
    monkeypatch.setattr(pipelines, "device_free_bytes", lambda device: untiled - weights)
    assert torch.equal(run_ours(DEV_2B, **run).video, plain)
    monkeypatch.setattr(pipelines, "device_free_bytes", lambda device: (tiled + untiled) // 2 - weights)
    auto = run_ours(DEV_2B, **run).video
    assert not torch.equal(auto, plain) and auto.shape == plain.shape
    assert torch.equal(auto, run_ours(DEV_2B, decode_tiling=tile, **run).video)
    monkeypatch.setattr(pipelines, "device_free_bytes", lambda device: 1000)
    with pytest.raises(ValueError, match="VAE decode does not fit"):
        run_ours(DEV_2B, **run)
    with pytest.raises(ValueError, match="decode_tiling"):
        run_ours(DEV_2B, decode_tiling="on", **run)


def test_multiscale_needs_upsampler_and_scheduler_config():
    _, tr = pf.transformer_pair("13b", True)
    _, vae = pf.vae_pair()
    with pytest.raises(ValueError, match="upsampler"):
        generate(Models(tr, vae, scheduler_config=LQ_SD3), PipelineConfig.from_dict(DISTILLED_13B),
                 TextConditioning(*pf.text()), GenerationRequest(height=96, width=96, num_frames=9, frame_rate=FPS,
                                                                 seed=0))
    with pytest.raises(ValueError, match="scheduler_config"):
        generate(Models(tr, vae), PipelineConfig.from_dict(DEV_2B), TextConditioning(*pf.text()),
                 GenerationRequest(height=64, width=64, num_frames=9, frame_rate=FPS, seed=0))


def test_pipeline_config_from_official_yaml():
    cfg = PipelineConfig.from_dict(dict(DEV_13B, checkpoint_path="ltxv-13b-0.9.8-dev.safetensors",
                                        text_encoder_model_name_or_path="PixArt-alpha/PixArt-XL-2-1024-MS",
                                        prompt_enhancement_words_threshold=120))
    assert cfg.is_multiscale and cfg.downscale_factor == pytest.approx(0.6666666)
    assert cfg.first_pass.skip_final_inference_steps == 3 and cfg.first_pass.cfg_star_rescale
    assert cfg.second_pass.skip_initial_inference_steps == 17
    assert cfg.second_pass.decode_timestep == 0.05  # top-level keys reach every pass
    assert cfg.extra["checkpoint_path"] == "ltxv-13b-0.9.8-dev.safetensors"
    d = PipelineConfig.from_dict(DISTILLED_13B)
    assert d.second_pass.tone_map_compression_ratio == 0.6 and d.first_pass.tone_map_compression_ratio == 0.0
    assert d.first_pass.timesteps[-1] == 0.725
    for bad, key in [({"pipeline_type": "triple"}, "pipeline_type"), ({"stg_mode": "nope"}, "stg_mode"),
                     ({"sampler": "karras"}, "sampler"), ({"guidance_scale": [3, 1]}, "guidance_scale"),
                     ({"tone_map_compression_ratio": 2}, "tone_map_compression_ratio"),
                     ({"num_inference_steps": 0}, "num_inference_steps"),
                     ({"skip_final_inference_steps": 40}, "skip"),
                     ({"pipeline_type": "multi-scale", "first_pass": {}}, "second_pass")]:
        with pytest.raises(ValueError, match=key):
            PipelineConfig.from_dict(dict(DEV_2B, **bad))


def test_mixed_precision_runs_the_transformer_in_bf16():
    y = dict(DEV_2B, num_inference_steps=3)
    full = run_ours(y).latents
    mixed = run_ours(dict(y, precision="mixed_precision")).latents
    assert 0 < pf.rel_l2(mixed, full) < 0.1


def test_distilled_list_passes_the_allowed_steps_check():
    y = dict(pipeline_type="base", **COMMON_13B, timesteps=[1.0, 0.9937, 0.9875], guidance_scale=1, stg_scale=0)
    res = run_ours(y, "13b", True, height=32, width=32,
                   allowed_inference_steps=[1.0, 0.9937, 0.9875, 0.9812, 0.975, 0.9094, 0.725, 0.4219])
    assert torch.isfinite(res.latents).all()
