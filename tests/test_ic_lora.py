"""IC-LoRA control: a control video's tokens appended after the video's as guides, at the coordinates the official
implementation gives the frames they stand for; clean at strength 1, noised to sigma * (1 - strength) below it;
dropped from the output; with the first image, keyframes and the multi-scale recipe."""
import pytest
import torch

import pipeline_fixtures as pf
import tiny_lora as tl
from ltx_core import (ConditioningItem, ControlVideo, GenerationRequest, Keyframe, LoraUse, Models, PipelineConfig,
                      TextConditioning, generate, prepare_control_video, read_lora)
from ltx_core.conditioning.tokens import build_tokens
from ltx_core.pipelines.sampling_pass import encode_media

pytest.importorskip("ltx_video")
from ltx_video.models.autoencoders.vae_encode import latent_to_pixel_coords_from_factors  # noqa: E402
from ltx_video.models.transformers.symmetric_patchifier import SymmetricPatchifier  # noqa: E402

FPS, SEED = 25.0, 7
SCHEDULER = {"sampler": "LinearQuadratic", "shifting": "SD3", "target_shift_terminal": 0.1}
BASE = dict(pipeline_type="base", guidance_scale=3, stg_scale=1, rescaling_scale=0.7, skip_block_list=[1],
            num_inference_steps=3, stg_mode="attention_values", decode_timestep=0.05, decode_noise_scale=0.025,
            precision="float32", sampler="from_checkpoint", stochastic_sampling=False)
MULTISCALE = dict(pipeline_type="multi-scale", downscale_factor=0.6666666, stg_mode="attention_values",
                  decode_timestep=0.05, decode_noise_scale=0.025, precision="float32", sampler="from_checkpoint",
                  stochastic_sampling=False,
                  first_pass=dict(timesteps=[1.0, 0.9937, 0.9094, 0.7250], guidance_scale=1, stg_scale=0,
                                  rescaling_scale=1, skip_block_list=[2]),
                  second_pass=dict(timesteps=[0.9094, 0.7250, 0.4219], guidance_scale=1, stg_scale=0,
                                   rescaling_scale=1, skip_block_list=[2], tone_map_compression_ratio=0.6))


def media(frames, height=64, width=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, frames, height, width, generator=g) * 2 - 1


def official_coords(latents: torch.Tensor, causal_fix: bool, start: int, downscale: int) -> torch.Tensor:
    """Pixel coordinates of the tokens of `latents` placed at `start`, by the official functions; a reference at
    1/downscale of the size has latent pixels downscale times as large."""
    _, latent_coords = SymmetricPatchifier(1).patchify(latents)
    px = 32 * downscale
    coords = latent_to_pixel_coords_from_factors(latent_coords, (8, px, px), causal_fix).to(torch.float32)
    coords[:, 0] += start
    return coords


class Spy:
    """Records the tokens and per-token timesteps of every transformer call."""

    def __init__(self, transformer, monkeypatch):
        self.calls = []
        real = transformer.forward_tokens

        def forward_tokens(tokens, coords, timestep, *args):
            self.calls.append((tokens.clone(), coords.clone(), timestep.clone()))
            return real(tokens, coords, timestep, *args)

        monkeypatch.setattr(transformer, "forward_tokens", forward_tokens)


def run(config=BASE, family="2b", items=(), loras=(), height=64, width=64, num_frames=17, output="latents"):
    _, tr = pf.transformer_pair(family, family == "13b")
    _, vae = pf.vae_pair()
    up = pf.upsampler_pair()[1] if config.get("pipeline_type") == "multi-scale" else None
    request = GenerationRequest(height=height, width=width, num_frames=num_frames, frame_rate=FPS, seed=SEED,
                                conditioning=list(items), output=output)
    return generate(Models(tr, vae, up, SCHEDULER, loras=tuple(loras)), PipelineConfig.from_dict(config),
                    TextConditioning(*pf.text()), request)


@pytest.mark.parametrize(("start", "frames", "downscale"), [(0, 17, 1), (8, 9, 1), (0, 17, 2), (8, 9, 2)])
@pytest.mark.parametrize("causal_fix", [True, False])
def test_guide_positions_are_the_official_coordinates_of_their_frames(start, frames, downscale, causal_fix):
    _, vae = pf.vae_pair()
    init = torch.randn(1, 128, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    control = ControlVideo(media(frames, 128, 128), start, 1.0, downscale)
    state = build_tokens(init, [control], lambda m: encode_media(vae, m), causal_fix, torch.Generator(), 128, 128)
    g = state.guides.count
    expected_latents = encode_media(vae, control.media, 128 // downscale, 128 // downscale)
    assert g == expected_latents[0, 0].numel()
    assert torch.equal(state.pixel_coords[:, :, -g:], official_coords(expected_latents, causal_fix, start, downscale))
    torch.testing.assert_close(state.guides.clean, expected_latents.flatten(2).transpose(1, 2), rtol=0, atol=0)
    # the video's own tokens keep the official coordinates of the whole video
    assert torch.equal(state.pixel_coords[:, :, :-g], official_coords(init, causal_fix, 0, 1))
    if start == 0 and downscale == 1:  # a full-length control stands exactly where the video's tokens stand
        assert torch.equal(state.pixel_coords[:, :, -g:], state.pixel_coords[:, :, :-g])


@pytest.mark.parametrize("strength", [1.0, 0.4])
def test_guides_are_clean_at_full_strength_noised_below_it_and_dropped(monkeypatch, strength):
    _, tr = pf.transformer_pair("2b", False)
    _, vae = pf.vae_pair()
    control = ControlVideo(media(17), 0, strength)
    spy = Spy(tr, monkeypatch)
    res = run(items=[control])
    assert res.latents.shape == (1, 128, 3, 2, 2)  # the guide tokens are gone from the output
    clean = encode_media(vae, control.media).flatten(2).transpose(1, 2)
    g = clean.shape[1]
    assert len(spy.calls) == 3
    for tokens, _, ts in spy.calls:
        assert tokens.shape[1] == 2 * g  # video tokens, then as many guide tokens
        t = ts[0, 0]  # a video token's timestep: the step's sigma
        torch.testing.assert_close(ts[:, -g:], torch.full_like(ts[:, -g:], float(t) * (1 - strength)))
        guide = tokens[:1, -g:]
        if strength == 1.0:
            assert torch.equal(guide, clean)
        else:  # the clean control moved toward the fixed noise by sigma * (1 - strength)
            level = float(t) * (1 - strength)
            noise = (guide - (1 - level) * clean) / level
            assert 0.5 < float(noise.std()) < 2.0
    # the control acts on the result
    assert pf.rel_l2(run().latents, res.latents) > 1e-3


def test_an_all_zero_lora_equals_the_run_without_one(tmp_path):
    _, tr = pf.transformer_pair("2b", False)
    lora = tl.random_lora(tr, rank=4, size=0.0)
    zero = LoraUse(read_lora(tl.write_lora(tmp_path / "zero.safetensors", lora), tr))
    items = [ControlVideo(media(17), 0, 1.0)]
    without, with_zero = run(items=items), run(items=items, loras=[zero])
    assert pf.rel_l2(with_zero.latents, without.latents) < 1e-6
    nonzero = LoraUse(read_lora(tl.write_lora(tmp_path / "l.safetensors", tl.random_lora(tr, rank=4)), tr))
    assert pf.rel_l2(run(items=items, loras=[nonzero]).latents, without.latents) > 1e-3


def test_control_with_first_image_keyframe_and_multiscale_downscale_from_the_lora(tmp_path, monkeypatch):
    _, tr = pf.transformer_pair("13b", True)
    lora = tl.random_lora(tr, targets=tl.TARGETS[:4], rank=2)
    ic = LoraUse(read_lora(tl.write_lora(tmp_path / "ic.safetensors", lora,
                                         metadata={"reference_downscale_factor": "2"}), tr))
    items = [ConditioningItem(media(1, 128, 128, seed=1), 0, 1.0), ConditioningItem(media(9, 128, 128, seed=2), 8, 0.8),
             ControlVideo(media(17, 128, 128, seed=3), 0, 0.9)]
    spy = Spy(tr, monkeypatch)
    res = run(MULTISCALE, "13b", items, [ic], height=128, width=128, output="video")
    assert res.video.shape == (1, 3, 17, 128, 128) and res.latents.shape == (1, 128, 3, 4, 4)
    # first pass 64x64 (2x2 latents), second 128x128 (4x4): guides at half of each, after the keyframe's tokens
    sizes = sorted({c[0].shape[1] for c in spy.calls})
    assert sizes == [2 * 4 + 3 * 4 + 3 * 1, 2 * 16 + 3 * 16 + 3 * 4]


def test_control_videos_are_checked_before_any_work():
    with pytest.raises(ValueError, match=r"control video\[0\]: a clip that does not start at frame 0 must start at a "
                                         r"multiple of 8, got 4"):
        run(items=[ControlVideo(media(9), 4, 1.0)])
    with pytest.raises(ValueError, match=r"control video\[0\]: strength must be a number in \[0, 1\], got 1.5"):
        run(items=[ControlVideo(media(17), 0, 1.5)])
    with pytest.raises(ValueError, match=r"control video\[0\]: downscale must be a positive integer, got 0"):
        run(items=[ControlVideo(media(17), 0, 1.0, 0)])


def test_ic_loras_that_disagree_on_the_downscale_are_refused(tmp_path):
    _, tr = pf.transformer_pair("2b", False)
    lora = tl.random_lora(tr, targets=tl.TARGETS[:1], rank=2)
    uses = [LoraUse(read_lora(tl.write_lora(tmp_path / f"{k}.safetensors", lora,
                                            metadata={"reference_downscale_factor": str(k)}), tr)) for k in (2, 4)]
    with pytest.raises(ValueError, match="different reference downscale factors.*apply one IC-LoRA at a time"):
        run(items=[ControlVideo(media(17), 0, 1.0)], loras=uses)


def test_prepare_control_video_keeps_pixels_and_cuts_to_the_video():
    frames = torch.randint(0, 256, (30, 64, 64, 3), dtype=torch.uint8)
    control = prepare_control_video(Keyframe(frames, 0, 0.7, name="depth"), 64, 64, 17)
    assert isinstance(control, ControlVideo) and control.start_frame == 0 and control.strength == 0.7
    assert control.media.shape == (1, 3, 17, 64, 64)  # cut to the video's 17 frames, no blur, no compression
    expected = frames[:17].permute(3, 0, 1, 2).float() / 127.5 - 1
    torch.testing.assert_close(control.media[0], expected, rtol=0, atol=1e-6)
    later = prepare_control_video(Keyframe(frames[:20], 8, 1.0, name="depth"), 64, 64, 17)
    assert later.media.shape[2] == 9 and later.start_frame == 8
    with pytest.raises(ValueError, match=r"depth: a clip \(9 frames\) that does not start at frame 0 must start at "
                                         r"a multiple of 8; use frame_index 0 or 8"):
        prepare_control_video(Keyframe(frames[:9], 4, name="depth"), 64, 64, 17)
