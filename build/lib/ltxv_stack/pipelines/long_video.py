"""Long videos: temporal chunks that continue each other, with memory bounded by the chunk.

Each pass of the recipe runs chunk by chunk over the whole video (for the multi-scale recipes: the low-resolution
pass over every chunk, then each chunk's latents upsampled and refined, chunk by chunk). A chunk after the first
starts with the last `overlap` latent frames made so far blended in at its frame 0 with the overlap strength (the
official pipeline's way of continuing a clip); its own first latent frame (a single-frame latent) is dropped, the
next overlap - 1 are cross-faded into what is there with linear weights, the rest appended. AdaIN pulls each
chunk's statistics toward the first chunk's. Per chunk: its prompt (the last one repeats), a seed derived from the
request's, the keyframes that start in its new frames, and its slice of a control video. A video that fits in one
chunk is the plain pipeline's, unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Mapping, Sequence

import torch
from torch import Tensor

from ..conditioning.items import ConditioningItem, ControlVideo, LatentClip, validate_items
from ..conditioning.text import TextConditioning
from ..defaults import DEFAULT_OVERLAP_FRAMES, DEFAULT_OVERLAP_STRENGTH, DEFAULT_TILE_FRAMES, MAX_PASS_FRAMES
from ..geometry import FRAMES_PER_LATENT, is_valid_clip_start, latent_grid, padded_frames, trim_to_valid_frames
from ..lora.apply import applied_loras
from ..sampling.noise import derived_seed
from .config import PipelineConfig
from .generation import GenerationResult, OnPass, PassInfo, Progress, decode_outputs, generate, pass_context, plan_passes
from .multiscale import adain, check_upsampler, upsample_latents
from .request import GenerationRequest, Models
from .sampling_pass import pass_timesteps, run_pass

@dataclass(frozen=True)
class TemporalTiling:
    """Chunk length (frames, 8k+1, at least 25), overlap with the previous chunk (frames, a multiple of 8, at least
    16 and shorter than the chunk minus 8), the overlap's conditioning strength, AdaIN toward the first chunk (0: off),
    and the long memory: a latent frame of the first chunk (`long_memory_frame`) shown to every later chunk at its
    true distance in the past, with this strength (0: off), against drift from the start."""

    tile_frames: int = DEFAULT_TILE_FRAMES
    overlap_frames: int = DEFAULT_OVERLAP_FRAMES
    overlap_strength: float = DEFAULT_OVERLAP_STRENGTH
    adain_factor: float = 0.0
    long_memory_strength: float = 0.0
    long_memory_frame: int = 0

    def __post_init__(self):
        t, o = self.tile_frames, self.overlap_frames
        # the shortest tile that leaves room for the shortest overlap (2 latent frames) and one new latent frame
        shortest = 3 * FRAMES_PER_LATENT + 1
        if isinstance(t, bool) or not isinstance(t, int) or t < shortest or t % FRAMES_PER_LATENT != 1:
            lo = max(trim_to_valid_frames(max(t, 1)) if isinstance(t, int) else shortest, shortest)
            raise ValueError(f"tile_frames must be 8k+1 and at least {shortest}, got {t!r}: use {lo} or {lo + 8}")
        if isinstance(o, bool) or not isinstance(o, int) or o % FRAMES_PER_LATENT or not 16 <= o <= t - 9:
            near = min(max(16, (o // 8) * 8 if isinstance(o, int) else 16), t - 9 - (t - 9) % 8)
            raise ValueError(f"overlap_frames must be a multiple of 8 from 16 to {t - 9 - (t - 9) % 8} (shorter than "
                             f"the {t}-frame tile), got {o!r}: use {near}")
        m, before_second = self.long_memory_frame, (t - 1) // FRAMES_PER_LATENT + 1 - o // FRAMES_PER_LATENT
        if isinstance(m, bool) or not isinstance(m, int) or not 0 <= m < before_second:
            raise ValueError(f"long_memory_frame is a latent frame of the first chunk before the second starts: 0 to "
                             f"{before_second - 1}, got {m!r}")
        for name in ("overlap_strength", "adain_factor", "long_memory_strength"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v!r}")

    @classmethod
    def when_needed(cls, num_frames: int, **settings) -> "TemporalTiling | None":
        """The tiling for a video of `num_frames`: with the given settings (None: the default) when any is given
        or the video is longer than one pass takes (MAX_PASS_FRAMES); None otherwise (one pass)."""
        given = {k: v for k, v in settings.items() if v is not None}
        return cls(**given) if given or num_frames > MAX_PASS_FRAMES else None

    @property
    def tile_latents(self) -> int:
        return (self.tile_frames - 1) // FRAMES_PER_LATENT + 1

    @property
    def overlap_latents(self) -> int:
        return self.overlap_frames // FRAMES_PER_LATENT


@dataclass(frozen=True)
class Chunk:
    start: int  # first latent frame of the video it stands for (its frame 0 is dropped after the first chunk)
    length: int  # latent frames
    request: GenerationRequest
    text: TextConditioning


def chunk_starts(latent_frames: int, tile: int, overlap: int) -> list[int]:
    """Latent start of each chunk: 0, tile - overlap, ... until the video is covered."""
    starts, end = [0], tile
    while end < latent_frames:
        starts.append(end - overlap)
        end = starts[-1] + tile
    return starts


def crossfade_weights(overlap: int) -> Tensor:
    """The weight of what is already there over the overlap - 1 latent frames a new chunk is blended into."""
    return torch.linspace(1.0, 0.0, overlap + 1)[1:-1]


# many parameters: the generate() signature plus the tiling
def generate_long(models: Models, config: PipelineConfig | Mapping, texts: Sequence[TextConditioning],
                  request: GenerationRequest, tiling: TemporalTiling, *, progress: Progress | None = None,
                  should_cancel: Callable[[], bool] | None = None, on_pass: OnPass | None = None) -> GenerationResult:
    """`generate` for a video of any length; `texts`: one prompt per chunk (the last repeats). `on_pass` is told
    when each pass of each chunk starts."""
    cfg = config if isinstance(config, PipelineConfig) else PipelineConfig.from_dict(config)
    texts = list(texts)
    if not texts:
        raise ValueError("give at least one prompt")
    frames = latent_grid(request.num_frames, request.height, request.width)[0]
    if frames <= tiling.tile_latents:
        return generate(models, cfg, texts[0], request, progress=progress, should_cancel=should_cancel,
                        on_pass=on_pass)
    if request.refines:
        raise ValueError("a long video is generated from noise: latents and input_media are not taken")
    check_upsampler(cfg, models.upsampler)
    request.check_batch(texts[0].batch)
    validate_items(request.conditioning, padded_frames(request.num_frames), texts[0].batch, request.num_frames)
    chunks = plan_chunks(request, tiling, texts)
    counts = [[_steps(models, cfg, c, n, should_cancel) for c in chunks] for n in range(len(cfg.passes))]
    reporter = _Reporter(progress, on_pass, counts)
    with applied_loras(models.transformer, models.loras):
        current = None
        for n in range(len(cfg.passes)):
            current = _chunked_pass(models, cfg, chunks, n, current, tiling, reporter, should_cancel)
    if request.output == "latents":
        return GenerationResult(None, current)
    return GenerationResult(decode_outputs(models.vae, cfg, request, current), current)


@dataclass
class _Reporter:
    """Progress over every pass of every chunk of a long run (steps counted over the whole run), and the start of
    each for `on_pass`; `counts`: the step count of each chunk in each pass."""

    progress: Progress | None
    on_pass: OnPass | None
    counts: list[list[int]]
    done: int = 0

    def step(self, latents: Tensor) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, sum(map(sum, self.counts)), latents)

    def starting(self, n: int, k: int, plan) -> None:
        if self.on_pass is not None:
            chunks = len(self.counts[n])
            self.on_pass(PassInfo(n + 1, len(self.counts), self.counts[n][k], self.done, plan.height, plan.width,
                                  k + 1, chunks))


def _steps(models, cfg, chunk: Chunk, n: int, should_cancel) -> int:
    plan = plan_passes(cfg, chunk.request)[n]
    ctx = pass_context(models, cfg, chunk.text, chunk.request, should_cancel)
    return len(pass_timesteps(ctx, plan, plan.latent_shape(chunk.text.batch, models.transformer.config.in_channels)))


# many parameters: one pass over every chunk needs all of them
def _chunked_pass(models, cfg, chunks: list[Chunk], n: int, source: Tensor | None, tiling: TemporalTiling,
                  reporter: _Reporter, should_cancel) -> Tensor:
    """Pass `n` of the recipe over every chunk; `source`: the previous pass's latents of the whole video. The
    result is written into one buffer of the video's size: working memory stays that of a chunk."""
    video = first = None
    o = tiling.overlap_latents
    for k, chunk in enumerate(chunks):
        request = chunk.request
        if video is not None:
            request = replace(request, conditioning=[*_continuation(video, chunk, tiling), *request.conditioning])
        ctx = replace(pass_context(models, cfg, chunk.text, request, should_cancel), on_step=lambda _i, z: reporter.step(z))
        latents = None
        if source is not None:
            latents = upsample_latents(models.vae, models.upsampler, source[:, :, chunk.start:chunk.start + chunk.length])
        plan = plan_passes(cfg, request)[n]
        reporter.starting(n, k, plan)
        z = run_pass(ctx, plan, latents)
        if video is None:
            b, c, _, h, w = z.shape
            video = z.new_empty(b, c, chunks[-1].start + chunks[-1].length, h, w)
            video[:, :, :chunk.length] = first = z
            continue
        if tiling.adain_factor > 0.0:
            z = torch.lerp(z, adain(z, first), tiling.adain_factor)
        stitch_(video, z, chunk.start, o)
    return video


def _continuation(video: Tensor, chunk: Chunk, tiling: TemporalTiling) -> list[LatentClip]:
    """What a later chunk continues from: the shared frames at its frame 0, and the long memory if asked for."""
    o = tiling.overlap_latents
    items = [LatentClip(video[:, :, chunk.start:chunk.start + o].clone(), 0, tiling.overlap_strength)]
    if tiling.long_memory_strength > 0.0:
        m = tiling.long_memory_frame
        # latent frame m > 0 ends at pixel frame 8m; the chunk's frame 0 stands for pixel frame 8 * start
        distance = FRAMES_PER_LATENT * (m - chunk.start)
        items.append(LatentClip(video[:, :, m:m + 1].clone(), distance, tiling.long_memory_strength))
    return items


def stitch_(video: Tensor, chunk: Tensor, start: int, overlap: int) -> None:
    """Write a chunk that stands for the video's latent frames from `start` into `video` (frames up to
    start + overlap already made): its frame 0 dropped, the next overlap - 1 cross-faded, the rest written."""
    new = chunk[:, :, 1:]
    w = crossfade_weights(overlap).to(video).view(1, 1, -1, 1, 1)
    video[:, :, start + 1:start + overlap].mul_(w).add_(new[:, :, :overlap - 1] * (1 - w))
    video[:, :, start + overlap:start + chunk.shape[2]] = new[:, :, overlap - 1:]


def plan_chunks(request: GenerationRequest, tiling: TemporalTiling, texts: Sequence[TextConditioning]) -> list[Chunk]:
    """The chunks of a long request, each a request of its own (frames, seed, conditioning in its own frames)."""
    frames = latent_grid(request.num_frames, request.height, request.width)[0]
    starts = chunk_starts(frames, tiling.tile_latents, tiling.overlap_latents)
    items = list(request.conditioning)
    placed = set()
    chunks = []
    for k, s in enumerate(starts):
        length = min(tiling.tile_latents, frames - s)
        first_new = 0 if k == 0 else FRAMES_PER_LATENT * (s + tiling.overlap_latents - 1) + 1
        mine = [(i, it) for i, it in enumerate(items) if not isinstance(it, ControlVideo) and i not in placed
                and it.start_frame >= first_new]
        mine = [(i, it) for i, it in mine if it.start_frame <= FRAMES_PER_LATENT * (s + length - 1)]
        placed.update(i for i, _ in mine)
        local = [_local_item(it, s, length) for _, it in mine]
        local += [c for c in (_control_slice(it, s, length) for it in items if isinstance(it, ControlVideo)) if c]
        sub = replace(request, num_frames=FRAMES_PER_LATENT * (length - 1) + 1, conditioning=local,
                      seed=request.seed if k == 0 else derived_seed(request.seed, f"chunk {k}"), output="latents")
        chunks.append(Chunk(s, length, sub, texts[min(k, len(texts) - 1)]))
    return chunks


def _local_item(item: ConditioningItem, start: int, length: int) -> ConditioningItem:
    """A keyframe moved into the chunk that makes its first frame; it must end inside that chunk."""
    shift = FRAMES_PER_LATENT * start
    local = item.start_frame - shift
    end = FRAMES_PER_LATENT * (length - 1)
    if local + item.num_frames - 1 > end:
        raise ValueError(f"a keyframe clip of {item.num_frames} frames at frame {item.start_frame} crosses the end "
                         f"of the chunk that starts it (frames {shift}..{shift + end}): shorten the clip or move it")
    return replace(item, start_frame=local)


def _control_slice(control: ControlVideo, start: int, length: int) -> ControlVideo | None:
    """The part of a control video under a chunk's frames, as 8k+1 frames from the chunk's frame it starts at."""
    shift = FRAMES_PER_LATENT * start
    lo = max(control.start_frame, shift)
    hi = min(control.start_frame + control.num_frames, shift + FRAMES_PER_LATENT * (length - 1) + 1)
    if hi <= lo or not is_valid_clip_start(lo - shift, trim_to_valid_frames(hi - lo)):
        return None
    media = control.as_video()[:, :, lo - control.start_frame:][:, :, :trim_to_valid_frames(hi - lo)]
    return replace(control, media=media, start_frame=lo - shift)
