"""What a file without an LTX config cannot say about its model: which release it is.

Transformer-only files (GGUF, ComfyUI's diffusion_models safetensors) carry tensors and nothing else. Their names
and shapes give the architecture (`detect`); the rest depends on the release: whether time positions are causal
(13B and 0.9.8), which timestep schedule the checkpoint's own config names, and which VAE generation it was trained
with. "auto" reads the release from the official and community file names; a choice overrides it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..defaults import RELEASE_CHOICES
from ..model.video_vae import VideoVAEConfig
from .detect import SCHEDULER_0_9_0

# VAE generations: the latent spaces differ, so a model decodes only with its own.
VAE_0_9_0, VAE_0_9_1, VAE_0_9_5 = "0.9.0", "0.9.1", "0.9.5+"


@dataclass(frozen=True)
class Release:
    name: str
    causal_temporal_positioning: bool
    sampler: str  # the scheduler's grid in the checkpoints' metadata
    vae_generation: str

    @property
    def scheduler(self) -> dict:
        return dict(SCHEDULER_0_9_0, sampler=self.sampler)


RELEASES = {r.name: r for r in (
    Release("0.9", False, "Uniform", VAE_0_9_0),
    Release("0.9.1", False, "Uniform", VAE_0_9_1),
    Release("0.9.5", False, "LinearQuadratic", VAE_0_9_5),
    Release("0.9.6", False, "LinearQuadratic", VAE_0_9_5),
    Release("0.9.7", True, "LinearQuadratic", VAE_0_9_5),
    Release("0.9.8", True, "LinearQuadratic", VAE_0_9_5),
)}
if tuple(RELEASES) != RELEASE_CHOICES[1:]:
    raise AssertionError("defaults.RELEASE_CHOICES and releases.RELEASES list different releases")
# Newest first: "0.9.8" must not be read as "0.9".
_NAME_PATTERNS = [(name, re.compile(r"(?<![\d.])(?:v?" + re.escape(name) + r"|0" + name[2:].replace(".", "")
                                    + r")(?![\d])")) for name in sorted(RELEASES, key=len, reverse=True)]


def release_from_name(path) -> str | None:
    """The release a file name states (`ltxv-13b-0.9.8-distilled-Q4_K_M.gguf`, `ltxv-097-...`), or None."""
    name = Path(path).name.lower()
    for release, pattern in _NAME_PATTERNS:
        if pattern.search(name):
            return release
    return None


def resolve_release(choice: str, path, num_layers: int, vae_config=None) -> tuple[Release, str]:
    """(release, how it was chosen: for the log) for a model file without a config. `vae_config`: the VAE that
    goes with it, if known; a release chosen or named that needs another VAE generation is a ValueError."""
    if choice not in RELEASE_CHOICES:
        raise ValueError(f"unknown release {choice!r}; choose one of {', '.join(RELEASE_CHOICES)}")
    generation = vae_generation(vae_config) if vae_config else None
    named = release_from_name(path) if choice == "auto" else choice
    if named is None:
        guess = _guess(num_layers, generation)
        return RELEASES[guess], (f"release {guess} assumed (the file states none: no config, no release in its name); "
                                 "choose the release if the videos look wrong")
    release = RELEASES[named]
    if generation and generation != release.vae_generation:
        raise ValueError(f"the VAE given with it is of the {generation} generation, but LTX-Video {release.name} "
                         f"models decode with the {release.vae_generation} VAE; pick the VAE released with the model "
                         "(or the model's release, if the file name misleads)")
    return release, f"release {named} ({'from the file name' if choice == 'auto' else 'as chosen'})"


def _guess(num_layers: int, generation: str | None) -> str:
    if generation == VAE_0_9_0:
        return "0.9"
    if generation == VAE_0_9_1:
        return "0.9.1"
    if num_layers == 48:
        return "0.9.8"
    return "0.9.6" if generation else "0.9"


def vae_generation(vae_config) -> str:
    """Which generation a VAE is (its config, as a dict or a VideoVAEConfig): the 0.9.5+ encoders use `*_res`
    blocks, 0.9.1 added the decoder's timestep conditioning."""
    cfg = vae_config if isinstance(vae_config, VideoVAEConfig) else VideoVAEConfig.from_dict(vae_config)
    if any(b.name.endswith("_res") for b in cfg.encoder_blocks):
        return VAE_0_9_5
    return VAE_0_9_1 if cfg.timestep_conditioning else VAE_0_9_0
