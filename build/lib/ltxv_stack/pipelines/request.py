"""What a generation is asked for (`GenerationRequest`) and with which models (`Models`), each checked once when
built, so that everything after it can trust them."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from torch import Tensor

from ..conditioning.items import ConditioningItem
from ..defaults import IMAGE_COND_NOISE_SCALE, MAX_SEED
from ..geometry import padded_size
from ..lora.apply import LoraUse
from ..model.video_vae import TilingConfig
from ..sampling.schedule import SchedulerConfig

OUTPUTS = ("video", "latents")


@dataclass(frozen=True)
class Models:
    """The loaded models a generation runs: the checkpoint's transformer and VAE (with its scheduler metadata and,
    for distilled checkpoints, the timesteps it allows), a latent upsampler for multi-scale configs, and the LoRAs
    applied to the transformer for the run."""

    transformer: object
    vae: object
    upsampler: object = None
    scheduler_config: Mapping | SchedulerConfig | None = None
    allowed_inference_steps: Sequence[float] | None = None
    loras: Sequence[LoraUse] = ()

    def __post_init__(self):
        for use in self.loras:
            if not isinstance(use, LoraUse):
                raise ValueError(f"loras must hold LoraUse items, got {type(use).__name__}")

    @property
    def control_downscale(self) -> int:
        """The reference downscale factor of the IC-LoRA applied (1 without one); LoRAs that disagree are refused."""
        factors = {u.lora.name: u.lora.reference_downscale_factor for u in self.loras}
        distinct = set(factors.values()) - {1}
        if len(distinct) > 1:
            raise ValueError(f"the IC-LoRAs applied want different reference downscale factors ({factors}): "
                             "apply one IC-LoRA at a time")
        return distinct.pop() if distinct else 1

    @classmethod
    def from_checkpoint(cls, checkpoint, upsampler=None, loras: Sequence[LoraUse] = ()) -> "Models":
        """From `load_checkpoint`'s result."""
        return cls(checkpoint.transformer, checkpoint.vae, upsampler, (checkpoint.config or {}).get("scheduler"),
                   checkpoint.allowed_inference_steps, tuple(loras))

    def scheduler(self, sampler: str) -> SchedulerConfig:
        """The timestep scheduler for a config's `sampler`: the checkpoint's own for 'from_checkpoint'."""
        if sampler != "from_checkpoint":
            return SchedulerConfig.for_sampler_name(sampler)
        if self.scheduler_config is None:
            raise ValueError("sampler 'from_checkpoint' needs the checkpoint's scheduler config: build the Models "
                             "with Models.from_checkpoint, or pass scheduler_config=checkpoint.config['scheduler']")
        if isinstance(self.scheduler_config, SchedulerConfig):
            return self.scheduler_config
        if not isinstance(self.scheduler_config, Mapping):
            raise ValueError(f"scheduler_config must be a dict or SchedulerConfig, got "
                             f"{type(self.scheduler_config).__name__}")
        return SchedulerConfig.from_dict(self.scheduler_config)


@dataclass(frozen=True)
class GenerationRequest:
    """One video to generate.

    - Sizes are padded to valid ones (H, W to multiples of 32, frames to 8k+1) and the video is cropped back
      (centred) to the requested size; `latents` in and out are at the padded latent size (of the first and
      the last pass for a multi-scale config).
    - `conditioning`: ConditioningItems (media normally at the padded pixel size; other sizes are resized to each
      pass's size, as the official pipeline does); a ControlVideo among them is an IC-LoRA control input.
    - `num_inference_steps` overrides the config's step count for passes without an explicit timestep list.
    - `latents` + `denoise_strength` < 1: refine given latents (re-noised to the first timestep <= strength).
    - `input_media` (video-to-video, the official `media_items`): (B or 1, 3, frames, H, W) pixels in [-1, 1] with
      the padded frame count, encoded (at the first pass's size) and then used as `latents`.
    - `decode_tiling`: a TilingConfig, None (untiled), or "auto": on a GPU, the largest tiles that fit in its free
      memory (untiled when that fits), refusing with the sizes that would fit when nothing does; untiled elsewhere.
    """

    height: int
    width: int
    num_frames: int
    frame_rate: float
    seed: int
    conditioning: Sequence[ConditioningItem] = ()
    num_inference_steps: int | None = None
    image_cond_noise_scale: float = IMAGE_COND_NOISE_SCALE
    latents: Tensor | None = None
    input_media: Tensor | None = None
    denoise_strength: float = 1.0
    output: str = "video"
    decode_tiling: TilingConfig | str | None = "auto"

    def __post_init__(self):
        for name in ("height", "width", "num_frames"):
            _positive_int(name, getattr(self, name))
        if self.num_inference_steps is not None:
            _positive_int("num_inference_steps", self.num_inference_steps)
        if not _is_number(self.frame_rate) or not self.frame_rate > 0:
            raise ValueError(f"frame_rate must be a positive number, got {self.frame_rate!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be an integer from 0 to {MAX_SEED}, got {self.seed!r}")
        if not (self.decode_tiling is None or self.decode_tiling == "auto"
                or isinstance(self.decode_tiling, TilingConfig)):
            raise ValueError(f"decode_tiling must be a TilingConfig, None or 'auto', got {self.decode_tiling!r}")
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {list(OUTPUTS)}, got {self.output!r}")
        if not _is_number(self.image_cond_noise_scale) or not 0 <= self.image_cond_noise_scale < math.inf:
            raise ValueError(f"image_cond_noise_scale must be a finite number >= 0, got {self.image_cond_noise_scale!r}")
        self._check_refinement()

    def _check_refinement(self) -> None:
        if not _is_number(self.denoise_strength) or not 0.0 < self.denoise_strength <= 1.0:
            raise ValueError(f"denoise_strength must be in (0, 1], got {self.denoise_strength!r}")
        if self.latents is not None and self.input_media is not None:
            raise ValueError("pass either latents or input_media, not both")
        if self.denoise_strength < 1.0 and not self.refines:
            raise ValueError("denoise_strength < 1 refines given latents: pass latents or input_media")
        media = self.input_media
        if media is not None and (not isinstance(media, Tensor) or media.dim() != 5 or media.shape[1] != 3):
            raise ValueError(f"input_media must be a (B, 3, frames, H, W) tensor, got "
                             f"{tuple(media.shape) if isinstance(media, Tensor) else type(media).__name__}")

    @property
    def padded(self) -> tuple[int, int, int]:
        """(height, width, frames) actually generated."""
        return padded_size(self.height, self.width, self.num_frames)

    @property
    def refines(self) -> bool:
        """Whether the run starts from given latents (or media) rather than from noise."""
        return self.latents is not None or self.input_media is not None

    def check_batch(self, batch: int) -> None:
        """What depends on the prompt's batch size."""
        media = self.input_media
        if media is not None and (media.shape[2] != self.padded[2] or media.shape[0] not in (1, batch)):
            raise ValueError(f"input_media must have {self.padded[2]} frames (the padded count) and batch 1 or "
                             f"{batch}, got shape {tuple(media.shape)}")


def _is_number(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float))


def _positive_int(name, v):
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
