"""Timestep grids and the rectified-flow Euler step.

Timesteps run from 1 (pure noise) down towards 0 (clean latents); a latent at timestep t is
`(1 - t) * x0 + t * noise` and the model predicts the velocity `noise - x0`.

Every grid is built in float32 with the same arithmetic, in the same order, as the official
`RectifiedFlowScheduler`, so the timesteps are bit-identical to it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from .noise import randn

SAMPLERS = ("Uniform", "LinearQuadratic", "Constant")
SHIFTINGS = (None, "SD3", "SimpleDiffusion")

# SD3-style resolution shift: the log-SNR shift grows linearly with the token count between these points.
_SHIFT_MIN_TOKENS, _SHIFT_MAX_TOKENS = 1024, 4096
_SHIFT_MIN, _SHIFT_MAX = 0.95, 2.05
# Timesteps closer than this count as equal when looking for the next lower one.
T_EPS = 1e-6


@dataclass(frozen=True)
class SchedulerConfig:
    """The official `RectifiedFlowScheduler` settings, as stored in a checkpoint's "scheduler" metadata."""

    num_train_timesteps: int = 1000
    shifting: str | None = None
    base_resolution: int = 32 ** 2
    target_shift_terminal: float | None = None
    sampler: str = "Uniform"
    shift: float | None = None

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ValueError(f"scheduler config: sampler={self.sampler!r} is not supported; allowed: {list(SAMPLERS)}")
        if self.shifting not in SHIFTINGS:
            raise ValueError(f"scheduler config: shifting={self.shifting!r} is not supported; allowed: {list(SHIFTINGS)}")
        if self.sampler == "Constant" and self.shift is None:
            raise ValueError("scheduler config: sampler 'Constant' needs a value for shift")
        if self.target_shift_terminal is not None and not 0 < self.target_shift_terminal < 1:
            raise ValueError(
                f"scheduler config: target_shift_terminal must lie strictly between 0 and 1, got {self.target_shift_terminal}"
            )
        if int(self.num_train_timesteps) < 1:
            raise ValueError(f"scheduler config: num_train_timesteps must be positive, got {self.num_train_timesteps}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "SchedulerConfig":
        """Unknown keys (`_class_name`, `_diffusers_version`, ...) are ignored, missing ones take the official defaults."""
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        return cls(**kwargs)

    @classmethod
    def for_sampler_name(cls, name: str) -> "SchedulerConfig":
        """The scheduler the official script builds for a yaml `sampler: uniform | linear-quadratic`: that grid, no shift."""
        key = name.strip().lower().replace("_", "-")
        if key == "uniform":
            return cls(sampler="Uniform")
        if key in ("linear-quadratic", "linearquadratic"):
            return cls(sampler="LinearQuadratic")
        raise ValueError(f"sampler={name!r} is not supported; allowed: 'from_checkpoint', 'uniform', 'linear-quadratic'")


# ---------------------------------------------------------------------------------------------- grids


def uniform_grid(n: int) -> Tensor:
    return torch.linspace(1, 1 / n, n)


def linear_quadratic_grid(n: int, threshold_noise: float = 0.025, linear_steps: int | None = None) -> Tensor:
    """Noise levels rise linearly to `threshold_noise` over the first `linear_steps` steps, then follow the
    quadratic that reaches 1 at step n with a continuous slope; timesteps are 1 - noise level (the final 0 dropped)."""
    if n == 1:
        return torch.tensor([1.0])
    lin = n // 2 if linear_steps is None else linear_steps
    quad = n - lin
    gap = lin - threshold_noise * n  # steps the quadratic part must make up
    a = gap / (lin * quad ** 2)
    b = threshold_noise / lin - 2 * gap / (quad ** 2)
    c = a * (lin ** 2)
    sigmas = [k * threshold_noise / lin for k in range(lin)]
    sigmas += [a * (k ** 2) + b * k + c for k in range(lin, n)]
    return torch.tensor([1.0 - s for s in sigmas])


_EXP_SAFE = 80.0  # exp(80) is near float32's largest value


def time_shift(mu: float, t: Tensor) -> Tensor:
    """Shift timesteps by log-SNR offset `mu`: exp(mu) / (exp(mu) + (1/t - 1))."""
    if mu > _EXP_SAFE:  # a huge token count: exp(mu) would overflow the float32 arithmetic; the same value, stably
        return 1 / (1 + math.exp(-mu) * (1 / t - 1))
    e = math.exp(mu)
    return e / (e + (1 / t - 1) ** 1)


def sd3_token_shift(num_tokens: int) -> float:
    slope = (_SHIFT_MAX - _SHIFT_MIN) / (_SHIFT_MAX_TOKENS - _SHIFT_MIN_TOKENS)
    intercept = _SHIFT_MIN - slope * _SHIFT_MIN_TOKENS
    return slope * num_tokens + intercept


def stretch_to_terminal(t: Tensor, terminal: float) -> Tensor:
    """Scale `1 - t` so that the last timestep becomes `terminal`."""
    if t.numel() == 0:
        raise ValueError("cannot stretch an empty timestep grid")
    if not 0 < terminal < 1:
        raise ValueError(f"target_shift_terminal must lie strictly between 0 and 1, got {terminal}")
    remaining = 1 - t
    if remaining[-1] == 0:
        # A one-step grid is [1.0]: its last timestep cannot move without moving the first (the official scheduler
        # divides by zero here and samples NaN), so it stays a single step from pure noise.
        return t
    factor = remaining[-1] / (1 - terminal)
    return 1 - (remaining / factor)


def _token_count(latent_shape: Sequence[int]) -> int:
    if len(latent_shape) == 3:  # (b, tokens, c)
        return int(latent_shape[1])
    if len(latent_shape) in (4, 5):
        return math.prod(int(s) for s in latent_shape[2:])
    raise ValueError(f"latent shape must be (b, n, c), (b, c, h, w) or (b, c, f, h, w), got {tuple(latent_shape)}")


def shift_grid(config: SchedulerConfig, t: Tensor, latent_shape: Sequence[int] | None) -> Tensor:
    """The resolution-dependent shift of the scheduler config (none, SD3 or SimpleDiffusion)."""
    if config.shifting is None:
        return t
    if latent_shape is None:
        raise ValueError(f"shifting {config.shifting!r} needs the latent shape")
    m = _token_count(latent_shape)
    if config.shifting == "SD3":
        shifted = time_shift(sd3_token_shift(m), t)
        if config.target_shift_terminal is not None:
            shifted = stretch_to_terminal(shifted, config.target_shift_terminal)
        return shifted
    # SimpleDiffusion: shift the log-SNR by 2 log(m / base_resolution).
    log_snr = torch.log((t / (1 - t)) ** 2) + 2 * math.log(m / config.base_resolution)
    return torch.sigmoid(0.5 * log_snr)


def initial_grid(config: SchedulerConfig, n: int) -> Tensor:
    if config.sampler == "Uniform":
        return uniform_grid(n)
    if config.sampler == "LinearQuadratic":
        return linear_quadratic_grid(n)
    return time_shift(config.shift, uniform_grid(n))


def make_timesteps(
    config: SchedulerConfig,
    num_inference_steps: int | None = None,
    latent_shape: Sequence[int] | None = None,
    timesteps: Sequence[float] | None = None,
    skip_initial_inference_steps: int = 0,
    skip_final_inference_steps: int = 0,
    denoise_strength: float = 1.0,
) -> Tensor:
    """The float32 timesteps a pass runs, in descending order (the final step always goes to t=0).

    - `timesteps` (e.g. the distilled lists, decreasing in (0, 1]) are taken as they are; skip counts do not apply to them
      (as in the official pipeline).
    - Otherwise the config's grid for `num_inference_steps` (capped at num_train_timesteps) is shifted for
      `latent_shape` and then `skip_initial_inference_steps` / `skip_final_inference_steps` are dropped.
    - `denoise_strength` < 1 keeps only timesteps <= strength (a refinement pass starting from given latents).
    """
    if timesteps is not None:  # a config's list, checked by PipelineConfig.from_dict
        grid = torch.tensor([float(v) for v in timesteps], dtype=torch.float32)
    else:
        n = min(int(config.num_train_timesteps), int(num_inference_steps))
        grid = shift_grid(config, initial_grid(config, n), latent_shape)
        lo, hi = int(skip_initial_inference_steps), int(skip_final_inference_steps)
        if lo < 0 or hi < 0 or lo + hi >= n:
            raise ValueError(
                f"skip_initial_inference_steps ({lo}) and skip_final_inference_steps ({hi}) must be non-negative "
                f"and leave at least one of the {n} steps"
            )
        grid = grid[lo: len(grid) - hi]
    if not 0 < denoise_strength <= 1:
        raise ValueError(f"denoise_strength must be in (0, 1], got {denoise_strength}")
    if denoise_strength < 1.0:
        if denoise_strength < float(grid.min()):
            raise ValueError(
                f"denoise_strength {denoise_strength} is below the smallest timestep {float(grid.min()):.4f}: nothing to run"
            )
        grid = grid[grid <= denoise_strength]
    return grid.contiguous()


# ---------------------------------------------------------------------------------------------- steps


def next_lower(timesteps: Tensor, t: Tensor) -> Tensor:
    """For each value of `t` (any shape), the largest entry of `timesteps ∪ {0}` strictly below it (by T_EPS)."""
    padded = torch.cat([timesteps.to(t.device, t.dtype), t.new_zeros(1)])
    grid = padded.view(-1, *([1] * t.dim()))
    below = grid < (t - T_EPS).unsqueeze(0)
    return (below * grid).amax(dim=0)


def add_noise(x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """(1 - t) x0 + t noise, with t broadcast from the left over x0's trailing dims."""
    t = t.reshape(*t.shape, *([1] * (x0.dim() - t.dim()))) if t.dim() < x0.dim() else t
    return (1 - t) * x0 + t * noise


def euler_step(
    sample: Tensor,
    velocity: Tensor,
    t: Tensor,
    timesteps: Tensor,
    stochastic: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One rectified-flow step from timestep `t` to the next lower grid value.

    `sample`/`velocity` are tokens (B, N, C); `t` is a scalar tensor or per token (B', N) with B' 1 or B.
    Deterministic: x - (t - t_next) v. Stochastic: predict x0 = x - t v and re-noise it to t_next with fresh
    noise drawn from `generator` (on the CPU, so the result does not depend on the device).
    """
    dt = t - next_lower(timesteps, t)
    t_col = t
    if t.dim():  # per token: broadcast over channels
        dt, t_col = dt.unsqueeze(-1), t.unsqueeze(-1)
    if not stochastic:
        return sample - dt * velocity
    x0 = sample - t_col * velocity
    noise = randn(sample.shape, generator, sample.device, sample.dtype)
    return add_noise(x0, noise, t_col - dt)
