"""PipelineConfig: the content of an official `configs/*.yaml`, checked and typed.

Semantics follow the official script: top-level sampling keys apply to every pass and a multi-scale config's
`first_pass` / `second_pass` dicts override them for their pass. Missing sampling keys take the official
pipeline's defaults. Keys that only matter to the official script (checkpoint_path, text_encoder_model_name_or_path,
prompt_enhancer_*, ...) are kept, unchecked, in `extra`.
"""
from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

from ..defaults import PIPELINE_TYPES, PRECISIONS, SCHEDULES, STG_MODE_ALIASES, STG_MODE_NAMES

# Keys the official script reads itself (or ignores); kept as data.
SCRIPT_KEYS = (
    "checkpoint_path",
    "spatial_upscaler_model_path",
    "text_encoder_model_name_or_path",
    "prompt_enhancement_words_threshold",
    "prompt_enhancer_image_caption_model_name_or_path",
    "prompt_enhancer_llm_model_name_or_path",
)


@dataclass(frozen=True)
class PassConfig:
    """The sampling settings of one pass. Defaults are the official `LTXVideoPipeline.__call__` defaults."""

    num_inference_steps: int = 20
    timesteps: tuple[float, ...] | None = None
    skip_initial_inference_steps: int = 0
    skip_final_inference_steps: int = 0
    guidance_scale: Any = 4.5  # float, or a list indexed through guidance_timesteps
    stg_scale: Any = 1.0
    rescaling_scale: Any = 0.7
    skip_block_list: Any = None  # list of block indices, or a list of such lists
    guidance_timesteps: tuple[float, ...] | None = None
    cfg_star_rescale: bool = False
    stochastic_sampling: bool = False
    decode_timestep: Any = 0.0  # float or per-sample list (the official recipes: DECODE_TIMESTEP)
    decode_noise_scale: Any = None  # None: same as decode_timestep
    tone_map_compression_ratio: float = 0.0
    denoise_strength: float = 1.0  # yaml `strength`: start from given latents at timestep <= this


# yaml key -> PassConfig field
_PASS_KEYS = {f.name: f.name for f in fields(PassConfig)}
_PASS_KEYS.pop("denoise_strength")
_PASS_KEYS["strength"] = "denoise_strength"
_PASS_KEYS["denoise_strength"] = "denoise_strength"
_TOP_KEYS = ("pipeline_type", "first_pass", "second_pass", "downscale_factor", "stg_mode", "precision", "sampler")


def _err(key: str, msg: str) -> ValueError:
    return ValueError(f"pipeline config: {key}: {msg}")


def _number(key, v, lo=None, hi=None, lo_open=False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise _err(key, f"must be a number, got {v!r}")
    v = float(v)
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise _err(key, f"must be {'>' if lo_open else '>='} {lo}" + (f" and <= {hi}" if hi is not None else "") + f", got {v}")
    if hi is not None and v > hi:
        raise _err(key, f"must be <= {hi}" + (f" and >= {lo}" if lo is not None else "") + f", got {v}")
    return v


def _int(key, v, lo=0) -> int:
    if isinstance(v, bool) or not (isinstance(v, int) or (isinstance(v, float) and v.is_integer())) or int(v) < lo:
        raise _err(key, f"must be an integer >= {lo}, got {v!r}")
    return int(v)


def _bool(key, v) -> bool:
    if not isinstance(v, bool):
        raise _err(key, f"must be true or false, got {v!r}")
    return v


def _scale(key, v, lo=None):
    if isinstance(v, (list, tuple)):
        if not v:
            raise _err(key, "must not be an empty list")
        return tuple(_number(f"{key}[{i}]", x, lo) for i, x in enumerate(v))
    return _number(key, v, lo)


def _timesteps(key, v) -> tuple[float, ...]:
    if not isinstance(v, (list, tuple)) or not v:
        raise _err(key, f"must be a non-empty list of timesteps in (0, 1], got {v!r}")
    out = tuple(_number(f"{key}[{i}]", x, 0.0, 1.0, lo_open=True) for i, x in enumerate(v))
    if any(b >= a for a, b in zip(out, out[1:], strict=False)):
        raise _err(key, f"must be strictly decreasing, got {list(out)}")
    return out


def _block_list(key, v):
    if v is None:
        return None
    if not isinstance(v, (list, tuple)):
        raise _err(key, f"must be a list of block indices or a list of such lists, got {v!r}")
    if v and isinstance(v[0], (list, tuple)):
        return tuple(tuple(_int(f"{key}[{i}]", b) for b in blocks) if isinstance(blocks, (list, tuple))
                     else _raise(_err(key, f"mixes lists and numbers: {v!r}")) for i, blocks in enumerate(v))
    return tuple(_int(key, b) for b in v)


def _raise(e):
    raise e


def _per_sample(key, v, lo, hi, allow_none=False):
    if v is None and allow_none:
        return None
    if isinstance(v, (list, tuple)):
        if not v:
            raise _err(key, "must not be an empty list")
        return tuple(_number(f"{key}[{i}]", x, lo, hi) for i, x in enumerate(v))
    return _number(key, v, lo, hi)


def _parse_pass(d: Mapping[str, Any], where: str, base: PassConfig, check: bool = True) -> PassConfig:
    vals = {}
    for key, value in d.items():
        name = _PASS_KEYS.get(key)
        if name is None:
            continue
        k = f"{where}{key}"
        if name == "num_inference_steps":
            vals[name] = _int(k, value, lo=1)
        elif name == "timesteps":
            vals[name] = None if value is None else _timesteps(k, value)
        elif name in ("skip_initial_inference_steps", "skip_final_inference_steps"):
            vals[name] = _int(k, value)
        elif name == "guidance_scale":
            vals[name] = _scale(k, value)
        elif name in ("stg_scale", "rescaling_scale"):
            vals[name] = _scale(k, value)
        elif name == "skip_block_list":
            vals[name] = _block_list(k, value)
        elif name == "guidance_timesteps":
            vals[name] = None if value is None else _timesteps(k, value) if value else None
        elif name in ("cfg_star_rescale", "stochastic_sampling"):
            vals[name] = _bool(k, value)
        elif name == "decode_timestep":
            vals[name] = _per_sample(k, value, 0.0, 1.0)
        elif name == "decode_noise_scale":
            vals[name] = _per_sample(k, value, 0.0, 1.0, allow_none=True)
        elif name == "tone_map_compression_ratio":
            vals[name] = _number(k, value, 0.0, 1.0)
        elif name == "denoise_strength":
            vals[name] = _number(k, value, 0.0, 1.0, lo_open=True)
    cfg = replace(base, **vals)
    if check:
        _check_pass(cfg, where)
    return cfg


def _check_pass(cfg: PassConfig, where: str):
    n_gt = len(cfg.guidance_timesteps) if cfg.guidance_timesteps else 0
    listed = {k: getattr(cfg, k) for k in ("guidance_scale", "stg_scale", "rescaling_scale")}
    if cfg.skip_block_list and isinstance(cfg.skip_block_list[0], tuple):
        listed["skip_block_list"] = cfg.skip_block_list
    for k, v in listed.items():
        if isinstance(v, tuple):
            if not n_gt:
                raise _err(f"{where}{k}", f"is a list ({list(v)}), which needs guidance_timesteps (one entry per value)")
            if len(v) != n_gt:
                raise _err(f"{where}{k}", f"has {len(v)} values but guidance_timesteps has {n_gt}")
    if cfg.timesteps is None and cfg.skip_initial_inference_steps + cfg.skip_final_inference_steps >= cfg.num_inference_steps:
        raise _err(f"{where}skip_initial_inference_steps",
                   f"skip_initial_inference_steps + skip_final_inference_steps "
                   f"({cfg.skip_initial_inference_steps} + {cfg.skip_final_inference_steps}) must be below "
                   f"num_inference_steps ({cfg.num_inference_steps})")


@dataclass(frozen=True)
class PipelineConfig:
    pipeline_type: str = "base"
    base: PassConfig = field(default_factory=PassConfig)  # top-level settings (the whole run for "base")
    first_pass: PassConfig | None = None  # multi-scale only: top-level merged with `first_pass`
    second_pass: PassConfig | None = None
    downscale_factor: float | None = None
    stg_mode: str = "attention_values"
    precision: str = "bfloat16"
    sampler: str = "from_checkpoint"
    extra: dict = field(default_factory=dict)  # script-only and unrecognised keys, as given

    @property
    def is_multiscale(self) -> bool:
        return self.pipeline_type == "multi-scale"

    @property
    def max_conditions(self) -> int:
        """The most conditions (negative, positive, perturbed) a step of any pass evaluates together: the batch
        rows of one transformer forward per sample."""
        def top(v):
            return max(float(x) for x in v) if isinstance(v, (list, tuple)) else float(v)

        return max(1 + (top(p.guidance_scale) > 1.0) + (top(p.stg_scale) > 0.0) for p in self.passes)

    @property
    def passes(self) -> tuple[PassConfig, ...]:
        return (self.first_pass, self.second_pass) if self.is_multiscale else (self.base,)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PipelineConfig":
        if not isinstance(d, Mapping):
            raise ValueError(f"pipeline config must be a mapping (the yaml's content), got {type(d).__name__}")
        d = copy.deepcopy(dict(d))
        ptype = d.get("pipeline_type") or "base"
        if ptype not in PIPELINE_TYPES:
            raise _err("pipeline_type", f"{ptype!r} is not supported; allowed: {list(PIPELINE_TYPES)}")
        stg_mode = _stg_mode(d.get("stg_mode", "attention_values"))
        precision = d.get("precision", "bfloat16")
        if precision not in PRECISIONS:
            raise _err("precision", f"{precision!r} is not supported; allowed: {list(PRECISIONS)}")
        sampler = d.get("sampler") or "from_checkpoint"
        canonical = {c.replace("-", "_"): c for c in SCHEDULES}
        key = sampler.strip().lower().replace("-", "_") if isinstance(sampler, str) else None
        if key not in canonical:
            raise _err("sampler", f"{sampler!r} is not supported; allowed: {list(SCHEDULES)}")
        sampler = canonical[key]

        base = _parse_pass(d, "", PassConfig(), check=ptype == "base")
        first = second = None
        factor = None
        if ptype == "multi-scale":
            for key in ("first_pass", "second_pass"):
                if not isinstance(d.get(key), Mapping):
                    raise _err(key, f"a multi-scale config needs a {key} mapping, got {d.get(key)!r}")
            first = _parse_pass(d["first_pass"], "first_pass.", base)
            second = _parse_pass(d["second_pass"], "second_pass.", base)
            if "downscale_factor" not in d:
                raise _err("downscale_factor", "is required for a multi-scale config (the official ones use 0.6666666)")
            factor = _number("downscale_factor", d["downscale_factor"], 0.0, 1.0, lo_open=True)
        extra = {k: v for k, v in d.items() if k not in _TOP_KEYS and k not in _PASS_KEYS}
        unknown = sorted(k for k in extra if k not in SCRIPT_KEYS)
        for where, sub in (("first_pass.", d.get("first_pass")), ("second_pass.", d.get("second_pass"))):
            if ptype == "multi-scale" and isinstance(sub, Mapping):
                unknown += [where + k for k in sub if k not in _PASS_KEYS]
        if unknown:
            warnings.warn(f"pipeline config: ignoring unrecognised key(s) {unknown}", stacklevel=2)
        return cls(ptype, base, first, second, factor, stg_mode, precision, sampler, extra)


def _stg_mode(value) -> str:
    """The official name of a yaml `stg_mode` (official names and their short aliases are accepted)."""
    key = value.strip().lower() if isinstance(value, str) else None
    key = STG_MODE_ALIASES.get(key, key)
    if key not in STG_MODE_NAMES:
        raise _err("stg_mode", f"{value!r} is not supported; allowed: {sorted(STG_MODE_NAMES + tuple(STG_MODE_ALIASES))}")
    return key
