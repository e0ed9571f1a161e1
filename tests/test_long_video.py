"""Long videos in temporal chunks, on tiny models: one chunk is the plain pipeline bit for bit; chunk boundaries,
cross-fade weights and overlap conditioning as specified; per-chunk prompts, seeds, keyframes and control slices
reach the right chunks; reproducible; working memory flat when the video doubles; bad settings name valid ones."""
import pytest
import torch

import pipeline_fixtures as pf
from memory_meter import LiveTensorBytes
from ltx_core import (ConditioningItem, ControlVideo, GenerationRequest, Models, TextConditioning,
                      generate)
from ltx_core.model.video_vae import TilingConfig
from ltx_core.pipelines.decode import DecodeSettings, DecodeTiling, VideoTarget, decode_video, decode_video_pieces
from ltx_core.pipelines.long_video import (TemporalTiling, chunk_starts, crossfade_weights, generate_long,
                                           plan_chunks, stitch_)

pytest.importorskip("ltx_video")

FPS, SEED = 25.0, 11
SCHEDULER = {"sampler": "LinearQuadratic", "shifting": "SD3", "target_shift_terminal": 0.1}
BASE = dict(pipeline_type="base", guidance_scale=3, stg_scale=0, rescaling_scale=1, num_inference_steps=2,
            decode_timestep=0.05, decode_noise_scale=0.025, precision="float32", sampler="from_checkpoint",
            stochastic_sampling=False)
MULTISCALE = dict(pipeline_type="multi-scale", downscale_factor=0.6666666, decode_timestep=0.05,
                  decode_noise_scale=0.025, precision="float32", sampler="from_checkpoint", stochastic_sampling=False,
                  first_pass=dict(timesteps=[1.0, 0.9094, 0.7250], guidance_scale=1, stg_scale=0, rescaling_scale=1),
                  second_pass=dict(timesteps=[0.9094, 0.4219], guidance_scale=1, stg_scale=0, rescaling_scale=1))
TILING = TemporalTiling(tile_frames=33, overlap_frames=16, overlap_strength=0.5)  # 5 latent frames, 2 overlapping


def models(family="2b", multiscale=False):
    _, tr = pf.transformer_pair(family, family == "13b")
    _, vae = pf.vae_pair()
    return Models(tr, vae, pf.upsampler_pair()[1] if multiscale else None, SCHEDULER)


def texts(n):
    return [TextConditioning(*pf.text(seed=k)) for k in range(n)]


def request(num_frames, items=(), output="latents", size=64):
    return GenerationRequest(height=size, width=size, num_frames=num_frames, frame_rate=FPS, seed=SEED,
                             conditioning=list(items), output=output)


def media(frames, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, frames, size, size, generator=g) * 2 - 1


def test_chunk_starts_and_crossfade_weights():
    assert chunk_starts(5, 5, 2) == [0]
    assert chunk_starts(6, 5, 2) == [0, 3]
    assert chunk_starts(14, 5, 2) == [0, 3, 6, 9]  # each chunk covers [s, s + 5): 0-4, 3-7, 6-10, 9-13
    assert chunk_starts(126, 10, 3) == [0, 7, 14, 21, 28, 35, 42, 49, 56, 63, 70, 77, 84, 91, 98, 105, 112, 119]
    torch.testing.assert_close(crossfade_weights(3), torch.tensor([2 / 3, 1 / 3]))
    torch.testing.assert_close(crossfade_weights(2), torch.tensor([0.5]))


def test_stitch_drops_frame_0_crossfades_and_writes_the_rest():
    video = torch.zeros(1, 1, 8, 1, 1)
    video[:, :, :5] = 1.0  # the first chunk: frames 0-4
    chunk = torch.arange(5, dtype=torch.float32).view(1, 1, 5, 1, 1) + 10  # stands for frames 2..6
    stitch_(video, chunk, start=2, overlap=3)
    # frame 2 kept (the chunk's frame 0 is dropped); 3 and 4 cross-faded with weights 2/3, 1/3; 5, 6 written
    assert video.flatten().tolist() == pytest.approx([1, 1, 1, 2 / 3 + 11 / 3, 1 / 3 + 24 / 3, 13, 14, 0])


def test_one_chunk_is_the_plain_pipeline_bit_for_bit():
    m, (text,) = models(), texts(1)
    req = request(33, [ConditioningItem(media(1), 0, 1.0)], output="video")
    long = generate_long(m, BASE, [text], req, TILING)
    plain = generate(m, BASE, text, req)
    assert torch.equal(long.latents, plain.latents) and torch.equal(long.video, plain.video)


def test_chunks_prompts_seeds_keyframes_and_control_slices():
    items = [ConditioningItem(media(1, seed=1), 0, 1.0), ConditioningItem(media(1, seed=2), 50, 0.9),
             ControlVideo(media(57, seed=3), 0, 1.0)]
    chunks = plan_chunks(request(57, items), TILING, texts(2))  # 8 latent frames: chunks at 0 and 3
    assert [(c.start, c.length) for c in chunks] == [(0, 5), (3, 5)]
    first, second = chunks
    assert first.request.seed == SEED and second.request.seed != SEED
    assert first.request.num_frames == second.request.num_frames == 33
    assert first.text is not second.text
    # the keyframe at frame 50 starts in the second chunk's new frames (from 8 * (3 + 2 - 1) + 1 = 33): frame 26
    keyed = [it for it in second.request.conditioning if not isinstance(it, ControlVideo)]
    assert [it.start_frame for it in keyed] == [50 - 24]
    assert [it.start_frame for it in first.request.conditioning if not isinstance(it, ControlVideo)] == [0]
    # each chunk gets the control frames under it: 0..32, then 24..56
    (c0,) = [it for it in first.request.conditioning if isinstance(it, ControlVideo)]
    (c1,) = [it for it in second.request.conditioning if isinstance(it, ControlVideo)]
    assert torch.equal(c0.media, items[2].media[:, :, :33]) and torch.equal(c1.media, items[2].media[:, :, 24:57])


def test_a_long_video_runs_every_chunk_with_its_prompt_and_overlap(monkeypatch):
    m, prompts = models(), texts(3)
    seen = []
    real = m.transformer.forward_tokens

    def spy(tokens, coords, timestep, context, *args):
        seen.append((tokens.shape[1], timestep.clone(), context[0, :4].clone()))
        return real(tokens, coords, timestep, context, *args)

    monkeypatch.setattr(m.transformer, "forward_tokens", spy)
    steps = []
    res = generate_long(m, BASE, prompts, request(81), TILING, progress=lambda i, n, _z: steps.append((i, n)))
    assert res.latents.shape == (1, 128, 11, 2, 2)  # 81 frames: 11 latent frames in chunks at 0, 3 and 6
    assert steps == [(i, 6) for i in range(1, 7)]  # 3 chunks x 2 steps
    assert [n for n, _, _ in seen] == [20] * 6  # tokens: 5 latent frames of 2 x 2 in each chunk
    for k, (_, ts, context) in enumerate(seen):
        torch.testing.assert_close(context, prompts[k // 2].negative_embeds[0, :4])  # CFG: negative row first
        if k >= 2 and k % 2 == 0:  # a later chunk's first step (t = 1): its overlap (2 latent frames, 8 tokens)
            # is conditioned at strength 0.5, so its timestep is 1 - 0.5
            assert float(ts[:, :8].max()) == pytest.approx(0.5) and float(ts[:, 8:].min()) == 1.0
    again = generate_long(m, BASE, prompts, request(81), TILING)
    assert torch.equal(again.latents, res.latents)  # reproducible for a seed


def test_multiscale_chunked_pass_by_pass():
    res = generate_long(models("13b", multiscale=True), MULTISCALE, texts(1), request(81, output="video", size=96),
                        TILING)
    assert res.video.shape == (1, 3, 81, 96, 96) and res.latents.shape == (1, 128, 11, 2, 2)
    assert torch.isfinite(res.video).all()


def test_working_memory_is_flat_when_the_video_doubles():
    m, text = models(), texts(1)
    working = {}
    for frames in (57, 105):  # 2 and 4 chunks
        with LiveTensorBytes(m.transformer) as meter:
            res = generate_long(m, BASE, text, request(frames), TILING)
        working[frames] = meter.peak - res.latents.numel() * res.latents.element_size()
    assert working[105] < 1.1 * working[57], working


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(tile_frames=80), "tile_frames must be 8k\\+1 and at least 25, got 80: use 73 or 81"),
    (dict(tile_frames=17), "tile_frames must be 8k\\+1 and at least 25, got 17: use 25 or 33"),
    (dict(tile_frames=33, overlap_frames=32), "overlap_frames must be a multiple of 8 from 16 to 24 .*got 32: use 24"),
    (dict(overlap_frames=20), "overlap_frames must be a multiple of 8 .*got 20: use 16"),
    (dict(overlap_strength=1.5), "overlap_strength must be in \\[0, 1\\], got 1.5"),
    (dict(adain_factor=-0.1), "adain_factor must be in \\[0, 1\\]"),
])
def test_bad_settings_name_valid_ones(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TemporalTiling(**kwargs)


def test_no_prompt_is_refused():
    with pytest.raises(ValueError, match="give at least one prompt"):
        generate_long(models(), BASE, [], request(81), TILING)


# ------------------------------------------------------------------------------------------------- decode in pieces

PIECES = TilingConfig(spatial_tile=None, temporal_tile=16, temporal_overlap=8)


def test_decode_in_pieces_equals_the_tiled_decode():
    _, vae = pf.vae_pair()
    latents = torch.randn(1, 128, 9, 2, 3, generator=torch.Generator().manual_seed(3))
    settings = DecodeSettings(0.05, 0.025, 0.3)
    target = VideoTarget.of_request(60, 90, 63)  # cut: 65 decoded frames -> 63, 64x96 -> 60x90
    whole = decode_video(vae, latents, settings, SEED, DecodeTiling("on", PIECES), target)
    pieces = list(decode_video_pieces(vae, latents, settings, SEED, target, DecodeTiling("off"), PIECES))
    assert len(pieces) > 2 and sum(p.shape[2] for p in pieces) == 63
    torch.testing.assert_close(torch.cat(pieces, dim=2), whole, rtol=0, atol=1e-5)


def test_decode_in_pieces_memory_is_flat_when_the_video_doubles():
    _, vae = pf.vae_pair()
    working = {}
    for frames in (9, 17):
        latents = torch.randn(1, 128, frames, 2, 2)
        target = VideoTarget.of_request(64, 64, 8 * (frames - 1) + 1)
        with LiveTensorBytes(vae, latents) as meter:
            for _piece in decode_video_pieces(vae, latents, DecodeSettings(0.05), SEED, target, DecodeTiling("off"),
                                              PIECES):
                del _piece
        working[frames] = meter.peak
    assert working[17] < 1.1 * working[9], working


def test_long_memory_shows_an_early_frame_at_its_distance_in_the_past(monkeypatch):
    m, prompts = models(), texts(1)
    seen = []
    real = m.transformer.forward_tokens

    def spy(tokens, coords, timestep, *args):
        seen.append((tokens.shape[1], coords[0, 0].clone()))
        return real(tokens, coords, timestep, *args)

    monkeypatch.setattr(m.transformer, "forward_tokens", spy)
    tiling = TemporalTiling(33, 16, 0.5, long_memory_strength=0.8, long_memory_frame=1)
    generate_long(m, BASE, prompts, request(81), tiling)
    # chunk 0: 20 tokens; chunks at 3 and 6: 4 memory tokens first (latent frame 1, 2x2), then the chunk's 20
    assert [n for n, _ in seen] == [20, 20, 24, 24, 24, 24]
    for (_, t), start in zip(seen[2::2], (3, 6), strict=True):
        torch.testing.assert_close(t[:4], torch.full((4,), 8.0 * (1 - start) / FPS))
    with pytest.raises(ValueError, match="long_memory_frame is a latent frame of the first chunk before the second "
                                         "starts: 0 to 2, got 3"):
        TemporalTiling(33, 16, long_memory_frame=3, long_memory_strength=0.5)
