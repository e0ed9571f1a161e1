"""What flows between the pack's nodes (socket types and their values) and small helpers shared by the nodes."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ..ltx_core import MAX_SEED  # noqa: F401  (the seed inputs' range, for the nodes)
from ..ltx_core import LATENT_CHANNELS, Keyframe, LoraUse, Models, TextConditioning, VideoTarget
from . import comfy_bridge as bridge

CATEGORY = "LTX-Video (stack)"

# Socket types of our own: they only connect to this pack's nodes, so core nodes cannot be handed our models.
MODEL = "LTXVSTACK_MODEL"
VAE = "LTXVSTACK_VAE"
TEXT_ENCODER = "LTXVSTACK_TEXT_ENCODER"
UPSCALER = "LTXVSTACK_LATENT_UPSCALER"
CONDITIONING = "LTXVSTACK_CONDITIONING"
SETTINGS = "LTXVSTACK_SAMPLER_SETTINGS"

# Extra key of our LATENT dicts (next to the standard "samples"): what the sampler knows about the video.
LATENT_INFO = "ltxv_stack"

MAX_SIZE = 16384


class _Managed:
    """A handle's ComfyUI model patcher as `patcher`: ComfyUI's RAM-pressure output cache (the default since 0.3.6x)
    recognises outputs that hold a model by that attribute; without it a handle holding gigabytes counts as tiny."""

    @property
    def patcher(self):
        return self.managed.patcher


@dataclass
class VAEHandle(_Managed):
    name: str
    managed: bridge.ManagedModel

    @property
    def module(self):
        return self.managed.module


@dataclass
class ModelHandle(_Managed):
    """A loaded checkpoint: the transformer plus the VAE it came with (used to encode conditioning images and for
    the latent statistics of multi-scale runs), and the LoRAs chained onto it (applied by the sampler for its run;
    the loaded weights are shared and never changed, so other branches of the graph see the plain model)."""

    name: str
    managed: bridge.ManagedModel
    vae: VAEHandle
    scheduler_config: dict | None
    allowed_inference_steps: list | None = None
    loras: tuple[LoraUse, ...] = ()

    @property
    def module(self):
        return self.managed.module

    def models(self, upsampler=None) -> Models:
        return Models(self.module, self.vae.module, upsampler, self.scheduler_config, self.allowed_inference_steps,
                      self.loras)


@dataclass
class TextEncoderHandle(_Managed):
    name: str
    encoder: Any  # ltx_core T5TextEncoder
    managed: bridge.ManagedModel


@dataclass
class UpscalerHandle(_Managed):
    name: str
    managed: bridge.ManagedModel

    @property
    def module(self):
        return self.managed.module


@dataclass(frozen=True)
class Conditioning:
    embeds: torch.Tensor  # (1, L, C) T5 features
    mask: torch.Tensor  # (1, L)
    negative_embeds: torch.Tensor
    negative_mask: torch.Tensor
    frame_rate: float
    keyframes: tuple[Keyframe, ...] = ()
    controls: tuple[Keyframe, ...] = ()  # IC-LoRA control videos
    later_prompts: tuple[tuple[torch.Tensor, torch.Tensor], ...] = ()  # (embeds, mask) of chunks 2, 3, ...

    @property
    def text(self) -> TextConditioning:
        return TextConditioning(self.embeds, self.mask, self.negative_embeds, self.negative_mask)

    @property
    def texts(self) -> list[TextConditioning]:
        """One per chunk of a long video (the prompt's parts separated by '|')."""
        return [self.text] + [TextConditioning(e, m, self.negative_embeds, self.negative_mask)
                              for e, m in self.later_prompts]

    def with_keyframe(self, keyframe: Keyframe) -> "Conditioning":
        return replace(self, keyframes=self.keyframes + (keyframe,))

    def with_control(self, control: Keyframe) -> "Conditioning":
        return replace(self, controls=self.controls + (control,))


@dataclass(frozen=True)
class SamplerSettings:
    """A pipeline config (the raw dict of an official-style yaml) built by the custom settings node."""

    config: dict = field(default_factory=dict)


def file_choices(names) -> list[str]:
    """A combo's options from file names. An empty combo cannot be shown; a placeholder keeps the node usable and
    fails with a clear message."""
    return list(names) or ["(no files found)"]


def dtype_choice(choice: str, kind: str):
    """A dtype input's value: "default" is ComfyUI's choice for that kind of model ("diffusion", "vae", ...)."""
    return bridge.default_dtype(kind) if choice == "default" else choice


def check_image(image, what: str = "image") -> torch.Tensor:
    """A ComfyUI IMAGE: (frames, H, W, 3) float in [0, 1]. ValueError saying what was connected otherwise."""
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{what}: expected an IMAGE (a tensor of frames), got {type(image).__name__}")
    if image.dim() == 3 and image.shape[-1] not in (3, 4):
        raise ValueError(f"{what}: got a tensor of shape {tuple(image.shape)}, which looks like a MASK; connect an "
                         "IMAGE output (frames, height, width, 3) instead")
    if image.dim() != 4 or image.shape[-1] not in (3, 4):
        raise ValueError(f"{what}: expected an IMAGE of shape (frames, height, width, 3), got {tuple(image.shape)}")
    if image.shape[0] < 1 or image.shape[1] < 1 or image.shape[2] < 1:
        raise ValueError(f"{what}: the image is empty (shape {tuple(image.shape)})")
    if not image.is_floating_point():
        raise ValueError(f"{what}: expected float pixel values in [0, 1], got {image.dtype}")
    return image[..., :3]


def check_latent(latent, what: str = "samples") -> torch.Tensor:
    """The (B, 128, F, H, W) tensor of a LATENT dict; ValueError naming the problem otherwise."""
    if not isinstance(latent, dict) or "samples" not in latent:
        raise ValueError(f"{what}: expected a LATENT (a dict with 'samples'), got {type(latent).__name__}")
    z = latent["samples"]
    if not isinstance(z, torch.Tensor) or z.dim() != 5 or z.shape[1] != LATENT_CHANNELS:
        shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(f"{what}: expected LTX-Video latents (batch, {LATENT_CHANNELS}, frames, height, width), got "
                         f"{shape}; this latent does not come from an LTX-Video VAE or sampler")
    return z


def latent_info(latent: dict) -> dict:
    info = latent.get(LATENT_INFO) if isinstance(latent, dict) else None
    return dict(info) if isinstance(info, dict) else {}


def latent_target(latent: dict) -> VideoTarget | None:
    """The size the sampler was asked for, which VAE Decode crops back to (JSON-safe in the LATENT dict)."""
    target = latent_info(latent).get("target")
    return VideoTarget(**target) if target else None


def make_latent(samples: torch.Tensor, info: dict | None = None) -> dict:
    out = {"samples": samples.to(bridge.intermediate_device(), torch.float32).contiguous()}
    if info:
        out[LATENT_INFO] = info
    return out


def video_to_image(video: torch.Tensor) -> torch.Tensor:
    """(B, 3, F, H, W) in [0, 1] -> ComfyUI IMAGE (B*F, H, W, 3) float32 on the intermediate device."""
    b, c, f, h, w = video.shape
    frames = video.permute(0, 2, 3, 4, 1).reshape(b * f, h, w, c)
    return frames.to(bridge.intermediate_device(), torch.float32).clamp(0, 1).contiguous()


def node_error(node: str, e: Exception) -> ValueError:
    """A ValueError for ComfyUI's error panel: the node's name, then ltx_core's one-line reason."""
    msg = str(e).strip() or type(e).__name__
    return ValueError(f"{node}: {msg}")
