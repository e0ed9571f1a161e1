"""Text/image/video-to-video generation: the official base and multi-scale pipelines.

For a seed, the results equal the official `ltx_video` pipelines run on the CPU with
`torch.Generator().manual_seed(seed)` (up to float rounding), on any device; see `ltx_core.sampling.noise` for which
random numbers come from where.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterator, Mapping

import torch
from torch import Tensor

from ..conditioning.items import ControlVideo, validate_items
from ..conditioning.text import TextConditioning
from ..lora.apply import applied_loras
from ..memory.estimate import device_free_bytes
from ..sampling.denoise import DenoiseContext
from ..sampling.guidance import stg_strategy
from ..sampling.noise import STOCHASTIC, derived_generator, make_generator
from .config import PipelineConfig
from .decode import DecodeSettings, DecodeTiling, VideoTarget, decode_video, decode_video_pieces
from .multiscale import check_upsampler, first_pass_size, upsample_latents
from .request import GenerationRequest, Models
from .sampling_pass import PassContext, PassPlan, encode_media, module_device_dtype, pass_timesteps, run_pass

Progress = Callable[[int, int, Tensor], None]  # (step, total steps over all passes, video latents), 1-based


@dataclass(frozen=True)
class PassInfo:
    """What a pass about to start is, for a progress display that follows the passes (and the chunks of a long
    video) rather than one bar over the whole run: its place, its size, its step count, and the steps of the run
    before it (`progress` counts over the whole run)."""

    number: int  # 1-based
    passes: int
    steps: int
    steps_before: int
    height: int
    width: int
    chunk: int = 0  # 1-based chunk of a long video; 0: not chunked
    chunks: int = 0

    @property
    def label(self) -> str:
        where = f"pass {self.number}/{self.passes}"
        if self.chunks:
            where = f"chunk {self.chunk}/{self.chunks}, {where}"
        return f"{where}: {self.width}x{self.height}, {self.steps} step{'' if self.steps == 1 else 's'}"


OnPass = Callable[[PassInfo], None]


@dataclass
class GenerationResult:
    video: Tensor | None  # (B, 3, num_frames, height, width) float32 in [0, 1], or None for output="latents"
    latents: Tensor  # final normalised latents (B, 128, F, H, W) before decoding, conditioning tokens removed


def generate(models: Models, config: PipelineConfig | Mapping, text: TextConditioning, request: GenerationRequest,
             *, progress: Progress | None = None, should_cancel: Callable[[], bool] | None = None,
             on_pass: OnPass | None = None) -> GenerationResult:
    """Generate the requested video (or its latents). `should_cancel()` is polled before each step and True
    raises `Cancelled`; `on_pass` is told when each pass starts."""
    cfg = config if isinstance(config, PipelineConfig) else PipelineConfig.from_dict(config)
    check_upsampler(cfg, models.upsampler)
    request.check_batch(text.batch)
    plans = plan_passes(cfg, request)
    ctx = pass_context(models, cfg, text, request, should_cancel)
    channels = models.transformer.config.in_channels
    # Step counts of every pass, for progress over the whole run (and early errors on bad schedules).
    counts = [len(pass_timesteps(ctx, p, p.latent_shape(text.batch, channels))) for p in plans]

    current = request.latents
    if request.input_media is not None:
        current = encode_media(models.vae, request.input_media, plans[0].height, plans[0].width)
        current = current.expand(text.batch, *current.shape[1:]).contiguous()
    with applied_loras(models.transformer, models.loras):
        for n, plan in enumerate(plans):
            if n == 1:
                current = upsample_latents(models.vae, models.upsampler, current)
            done, total = sum(counts[:n]), sum(counts)
            if on_pass is not None:
                on_pass(PassInfo(n + 1, len(plans), counts[n], done, plan.height, plan.width))
            if progress is not None:
                ctx = replace(ctx, on_step=lambda i, latents, d=done, t=total: progress(d + i + 1, t, latents))
            current = run_pass(ctx, plan, current)

    if request.output == "latents":
        return GenerationResult(None, current)
    return GenerationResult(decode_outputs(models.vae, cfg, request, current), current)


def plan_passes(cfg: PipelineConfig, request: GenerationRequest) -> list[PassPlan]:
    """The passes of a run at their sizes; a refinement (given latents) starts the first at its strength."""
    hp, wp, fp = request.padded
    if cfg.is_multiscale:
        h1, w1 = first_pass_size(hp, wp, cfg.downscale_factor)
        sizes = [(cfg.first_pass, h1, w1), (cfg.second_pass, 2 * h1, 2 * w1)]
    else:
        sizes = [(cfg.base, hp, wp)]
    refine = request.refines and request.denoise_strength < 1.0
    return [PassPlan(pcfg, h, w, fp, request.denoise_strength if (i == 0 and refine) else pcfg.denoise_strength,
                     request.num_inference_steps) for i, (pcfg, h, w) in enumerate(sizes)]


def decode_output_pieces(vae, cfg: PipelineConfig, request: GenerationRequest, latents: Tensor) -> Iterator[Tensor]:
    """decode_outputs in consecutive pieces of frames (`decode_video_pieces`): for videos too long to hold decoded."""
    tiling = DecodeTiling("auto", free_bytes=device_free_bytes(module_device_dtype(vae)[0]))
    target = VideoTarget.of_request(request.height, request.width, request.num_frames)
    return decode_video_pieces(vae, latents, DecodeSettings.of_pass(cfg.passes[-1]), request.seed, target, tiling)


def decode_outputs(vae, cfg: PipelineConfig, request: GenerationRequest, latents: Tensor) -> Tensor:
    """The final latents as the requested video: the last pass's decode settings, tiles chosen from the device's
    free memory when asked, cut back to the requested size."""
    tiling = request.decode_tiling
    if tiling == "auto":
        tiling = DecodeTiling("auto", free_bytes=device_free_bytes(module_device_dtype(vae)[0]))
    else:
        tiling = DecodeTiling("off") if tiling is None else DecodeTiling("on", tiling)
    target = VideoTarget.of_request(request.height, request.width, request.num_frames)
    return decode_video(vae, latents, DecodeSettings.of_pass(cfg.passes[-1]), request.seed, tiling, target)


def pass_context(models: Models, cfg: PipelineConfig, text: TextConditioning, request: GenerationRequest,
                 should_cancel) -> PassContext:
    """What every pass of `request` shares: models, text, seeds, the validated conditioning."""
    device, _ = module_device_dtype(models.transformer)
    hp, wp, fp = request.padded
    denoise = DenoiseContext(
        model=models.transformer,
        text=text.to(device),
        frame_rate=float(request.frame_rate),
        generator=make_generator(request.seed),
        stochastic_generator=derived_generator(request.seed, STOCHASTIC),
        skip_layer_strategy=stg_strategy(cfg.stg_mode),
        image_cond_noise_scale=float(request.image_cond_noise_scale),
        autocast_dtype=torch.bfloat16 if cfg.precision == "mixed_precision" else None,
        should_cancel=should_cancel,
    )
    items = validate_items(request.conditioning, fp, text.batch, requested_frames=request.num_frames)
    items = [replace(i, downscale=models.control_downscale) if isinstance(i, ControlVideo) and i.downscale is None
             else i for i in items]
    return PassContext(denoise, models.vae, models.scheduler(cfg.sampler), items, models.allowed_inference_steps)

