"""The pre-run memory check of a generation, from what the front ends hold (memory arithmetic: ltx_core.memory)."""
from __future__ import annotations

from ..conditioning.text import TextConditioning
from ..memory.plan import StepShape, check_step
from ..pipelines.config import PipelineConfig
from ..pipelines.request import GenerationRequest


def step_shape(cfg: PipelineConfig, text: TextConditioning, request: GenerationRequest) -> StepShape:
    """The largest step of a run: every sample evaluated under the most conditions any pass uses."""
    return StepShape(text.batch * cfg.max_conditions, request.num_frames, request.height, request.width,
                     int(text.embeds.shape[1]), bool(request.conditioning))


def check_generation_memory(transformer, cfg: PipelineConfig, text: TextConditioning, request: GenerationRequest, *,
                            device, free_bytes: int | None, streaming: bool) -> int:
    """The working memory of a step, after refusing (MemoryRefusal) a run whose step cannot fit in `free_bytes`
    on `device` (None: unknown, nothing is refused), with the blocks streamed from CPU memory or not."""
    return check_step(transformer, step_shape(cfg, text, request), device, free_bytes, streaming)
