"""Peak-memory estimates made before a run: one transformer step, one VAE decode, and the choices built on them
(the VAE decode tiling that fits in free memory; the largest video a sampler run could make).

Everything here is arithmetic on shapes and configs (weights are counted on a meta-device copy of the model, so
nothing is allocated). Each estimate is weights + the largest set of tensors alive at once, read off the code in
`ltx_core/model`; the constants name which tensors they stand for. They were calibrated against measured CPU peaks
of small models (tests/test_memory_estimate.py); CUDA adds allocator rounding and cuDNN/cuBLAS workspaces, which
the headroom factor `HEADROOM` covers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..geometry import FRAMES_PER_LATENT, PIXELS_PER_LATENT, latent_grid
from ..model.ops import QuantizedLinear
from ..model.transformer import Transformer3D, TransformerConfig
from ..model.video_vae import TilingConfig, VideoVAE
from ..model.video_vae.chunks import CHUNK_BYTES
from ..model.video_vae.config import VideoVAEConfig
from ..model.video_vae.tiling import spans

# Estimates are multiplied by this before comparing with free memory: allocator fragmentation and rounding,
# library workspaces, and what other code allocates meanwhile are not modelled tensor by tensor.
HEADROOM = 1.15

# The VAE's CausalConv3d runs stride-1 convolutions in slices of about CHUNK_BYTES of output (chunks.py); the
# padded input slice and the output slice are alive next to the full tensors, plus the convolution's own
# workspace (oneDNN/cuDNN), about one more slice.
_CONV_SLICES = 3

# The feed-forward on plain float32 CPU runs over token slices of this size (block.FF_CHUNK_BYTES), with one hidden
# buffer and one GELU scratch buffer of that size; elsewhere the 4x-wide hidden tensor exists whole.
_FF_CHUNK_BYTES = 8 << 20

# Ladders `choose_decode_tiling` walks, largest first (pixels, multiples of 32; frames, multiples of 8).
SPATIAL_LADDER = (2048, 1536, 1024, 768, 640, 512, 448, 384, 320, 256, 224, 192, 160, 128, 96, 64)
TEMPORAL_LADDER = (256, 192, 128, 96, 80, 64, 56, 48, 40, 32, 24, 16, 8)
# The VAE Decode node's default overlaps.
DEFAULT_SPATIAL_OVERLAP = 64
DEFAULT_TEMPORAL_OVERLAP = 24


def with_headroom(total: int, weights: int) -> int:
    """`total` with HEADROOM applied to its activations (weight bytes are exact)."""
    return int(weights + (total - weights) * HEADROOM)


def _size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _param_bytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


# ------------------------------------------------------------------------------------------------ transformer


def _transformer(config_or_model) -> tuple[TransformerConfig, nn.Module | None]:
    if isinstance(config_or_model, nn.Module):
        return config_or_model.config, config_or_model
    return config_or_model, None


def transformer_weight_bytes(config_or_model, dtype: torch.dtype, streaming: bool = False) -> int:
    """Device bytes of the weights: all of them, or with block streaming what `offload.resident_bytes` counts
    (everything but the blocks, plus two blocks in flight). A config is measured on a meta-device model whose
    weights are `dtype`; a real model is measured as it is (fp8 weights count 1 byte)."""
    cfg, model = _transformer(config_or_model)
    if model is None:
        with torch.device("meta"):
            model = Transformer3D(cfg).to(dtype)
    blocks = [_param_bytes(b) for b in model.transformer_blocks]
    total = _param_bytes(model)
    resident = total - sum(blocks) + 2 * max(blocks) if streaming and blocks else total
    return resident + dequantize_bytes(model, dtype)


def dequantize_bytes(model: nn.Module, dtype: torch.dtype) -> int:
    """The transient of the largest quantized layer (GGUF weights): its dequantization works in float32 (two
    weight-sized temporaries) and hands the weight over in the compute dtype. 0 without quantized layers."""
    sizes = [m.in_features * m.out_features for m in model.modules() if isinstance(m, QuantizedLinear)]
    return max(sizes, default=0) * (2 * 4 + _size(dtype))


def transformer_activation_bytes(config_or_model, batch: int, grid: tuple[int, int, int],
                                 dtype: torch.dtype, text_len: int = 256, per_token_timestep: bool = False,
                                 device_type: str = "cuda") -> int:
    """Largest set of activations alive during one forward (`Transformer3D.forward_tokens`) of `batch` rows
    (the caller's batch times its CFG/STG conditions). Units: a = batch x tokens x inner_dim x element size."""
    cfg, _ = _transformer(config_or_model)
    e = _size(dtype)
    n = math.prod(grid)  # latent (frames, height, width)
    d = cfg.inner_dim
    a = batch * n * d * e
    # Alive through every block: the hidden states x, RoPE tables (cos (.., D/2, 1) and sin (.., D/2, 2): 1.5a),
    # and the input/output tokens (in_channels wide, float32). The sampler's few other token-sized tensors are
    # 1/16 as wide as x each on the released models and left to HEADROOM.
    persistent = a + 1.5 * a + 2 * batch * n * cfg.in_channels * 4
    # Text: caption projection, per-block K/V of the cross-attention (small next to the video).
    persistent += 3 * batch * text_len * d * e
    per_block_extra = 0.0
    if per_token_timestep:
        # Per-token timesteps (conditioned frames): the AdaLN modulation (6a) and embedding (a) live through the
        # forward, and each block adds its scale_shift_table to a (B, N, 6, D) copy (6a more).
        persistent += 7 * a
        per_block_extra = 6 * a
    heads = cfg.num_attention_heads
    # Self-attention: the modulated input h, q, k, v, SDPA's output and its (B, N, D) reshaped copy (6a); SDPA's
    # memory-efficient/flash kernels keep only a log-sum-exp per query and head (float32), never an N x N matrix.
    self_attn = 6 * a + batch * heads * n * 4
    # Cross-attention: the block output, q, SDPA's output, its reshape and the output projection (5a).
    cross_attn = 5 * a + batch * heads * n * 4
    # Feed-forward: the block output, the modulated input, the 4x-wide hidden tensor (GELU in place) and the
    # down projection (7a); plain float32 on the CPU runs it in token slices (hidden + scratch each 8 MiB).
    if device_type == "cpu" and dtype in (torch.float32, torch.float64):
        rows, width = batch * n, 4 * d
        step = max(1, _FF_CHUNK_BYTES // (width * e))
        step = -(-rows // -(-rows // step))  # equal slices, as FeedForward cuts them
        ff = 3 * a + 2 * step * width * e
    else:
        ff = 7 * a
    return int(persistent + per_block_extra + max(self_attn, cross_attn, ff))


def transformer_step_bytes(config, batch: int, grid: tuple[int, int, int], dtype: torch.dtype, text_len: int = 256,
                           streaming: bool = False, per_token_timestep: bool = False, device_type: str = "cuda") -> int:
    """Peak bytes of one sampling step on a latent `grid`: weights (all, or the streamed resident set) +
    activations. `config`: a TransformerConfig or a Transformer3D (then its actual weight bytes count)."""
    return transformer_weight_bytes(config, dtype, streaming) + transformer_activation_bytes(
        config, batch, grid, dtype, text_len, per_token_timestep, device_type)


@dataclass(frozen=True)
class StepShape:
    """What sets one sampling step's memory: the model's batch rows (samples x CFG/STG conditions), the video size
    in pixels, the prompt's token count and whether conditioned tokens carry their own timestep."""

    rows: int
    num_frames: int
    height: int
    width: int
    text_len: int = 256
    per_token_timestep: bool = False

    def activation_bytes(self, model, dtype: torch.dtype, device_type: str, **size) -> int:
        """Activations of the step, or of the same step at another size (`num_frames`, `height`, `width`)."""
        s = replace(self, **size)
        return transformer_activation_bytes(model, s.rows, latent_grid(s.num_frames, s.height, s.width), dtype,
                                            s.text_len, s.per_token_timestep, device_type)


def largest_fitting(config, shape: StepShape, dtype: torch.dtype, free_bytes: int, streaming: bool = True,
                    device_type: str = "cuda") -> tuple[int | None, tuple[int, int] | None]:
    """For a refusal message: (the most frames, 8k+1, at the shape's size; the largest height x width, multiples of
    32 keeping about the aspect ratio, at its frame count) whose step estimate (activations x HEADROOM) fits in
    free_bytes; None where nothing does."""
    weights = transformer_weight_bytes(config, dtype, streaming)

    def fits(**size) -> bool:
        return weights + shape.activation_bytes(config, dtype, device_type, **size) * HEADROOM <= free_bytes

    step, px = FRAMES_PER_LATENT, PIXELS_PER_LATENT
    k = _largest(0, (max(shape.num_frames, 1) - 1) // step, lambda k: fits(num_frames=step * k + 1))
    frames = None if k is None else step * k + 1

    def width(h: int) -> int:
        return max(px, round(shape.width * h / shape.height / px) * px)

    k = _largest(1, -(-shape.height // px), lambda k: fits(height=k * px, width=width(k * px)))
    return frames, None if k is None else (k * px, width(k * px))


def _largest(lo: int, hi: int, ok) -> int | None:
    """The largest k in [lo, hi] with ok(k), for ok true up to some k and false above; None where none is. A
    bisection: a size of 10**9 pixels is answered in a few dozen estimates."""
    if hi < lo or not ok(lo):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
    return lo


def step_refusal(model, shape: StepShape, budget: int, streaming: bool, device) -> str | None:
    """None when one sampling step fits in `budget` bytes (free memory plus the transformer's weights already on
    `device`); otherwise why not, with the most frames and the largest size that would fit."""
    device_type = torch.device(device).type
    dtype = model.compute_dtype
    weights = transformer_weight_bytes(model, dtype, streaming=streaming)
    need = with_headroom(weights + shape.activation_bytes(model, dtype, device_type), weights)
    if need <= budget:
        return None
    frames, size = largest_fitting(model, shape, dtype, budget, streaming, device_type)
    f, h, w = shape.num_frames, shape.height, shape.width
    hints = []
    if frames is not None:
        hints.append(f"at most {frames} frames at {w}x{h}")
    if size is not None:
        hints.append(f"at most {size[1]}x{size[0]} at {f} frames")
    where = "blocks streamed from the CPU" if streaming else "all weights on the device"
    return (f"{f} frames at {w}x{h} need about {gib(need)} per step ({shape.rows} batch rows, {where}), "
            f"but only {gib(budget)} is free on {device}. "
            + (f"What fits: {' or '.join(hints)}." if hints else "Even the smallest video does not fit: free memory "
               "(close other programs, unload models) or use a smaller model."))


def resident_budget(model: nn.Module, free_bytes: int, device) -> int:
    """Memory a run of `model` on `device` can use: `free_bytes` there plus its tensors already there."""
    device = torch.device(device)
    tensors = list(model.parameters()) + list(model.buffers())
    return free_bytes + sum(t.numel() * t.element_size() for t in tensors if _same_device(t.device, device))


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index or 0) == (b.index or 0)


# ------------------------------------------------------------------------------------------------ VAE decode


def _vae(config_or_model) -> tuple[VideoVAEConfig, nn.Module | None]:
    if isinstance(config_or_model, nn.Module):
        return config_or_model.config, config_or_model
    return config_or_model, None


def vae_weight_bytes(config_or_model, dtype: torch.dtype) -> int:
    """The whole VAE's weights (loaded together); a config is measured on a meta-device model."""
    cfg, model = _vae(config_or_model)
    if model is None:
        with torch.device("meta"):
            model = VideoVAE(cfg).to(dtype)
    return _param_bytes(model)


def _slice(size: float) -> float:
    return min(size, CHUNK_BYTES)


def _decoder_activation_bytes(cfg: VideoVAEConfig, batch: int, frames: int, h: int, w: int, e: int) -> float:
    """Largest live set of `Decoder.forward` on a (batch, latent_channels, frames, h, w) latent."""

    def act(c, f, hh, ww):
        return batch * c * f * hh * ww * e

    c = cfg.decoder_base_channels * math.prod(s.multiplier for s in cfg.decoder_blocks)
    f, hh, ww = frames, h, w
    z = act(cfg.latent_channels, f, hh, ww)
    x = act(c, f, hh, ww)
    peak = 2 * z + x + _CONV_SLICES * _slice(x)  # conv_in: the latent (and its un-normalised copy) + output
    for spec in reversed(cfg.decoder_blocks):
        x = act(c, f, hh, ww)
        if spec.name == "res_x":
            # ResnetBlock: its input (kept for the shortcut), the working tensor h overwritten in place, and the
            # convolution's slices (padded input, output, workspace; one slice is the whole tensor when small).
            peak = max(peak, 2 * x + _CONV_SLICES * _slice(x))
        elif spec.name == "res_x_y":
            out = act(c // spec.multiplier, f, hh, ww)
            # Width-changing ResnetBlock: input, h, the shortcut's LayerNorm (channels-last copy and output) and
            # the 1x1x1 conv's output.
            peak = max(peak, 3 * x + 2 * out + _CONV_SLICES * _slice(out))
            c //= spec.multiplier
        else:  # compress_all: the input stays alive next to the unfolded output and one conv slice
            st, sh, sw = spec.stride
            c //= spec.multiplier
            f, hh, ww = f * st - (st - 1), hh * sh, ww * sw
            out = act(c, f + st - 1, hh, ww)
            peak = max(peak, x + out + _CONV_SLICES * _slice(out))
    # Output: the last activation, conv_out's 3 x patch^2 channels (and its padded input slice and workspace),
    # then unpatchify's copy of them.
    x = act(c, f, hh, ww)
    pixels = act(cfg.out_channels * cfg.patch_size**2, f, hh, ww)
    peak = max(peak, x + pixels + 2 * _slice(x) + _slice(pixels), 2 * pixels)
    return peak


def _latent_tile(length: int, tile_overlap: tuple[int | None, int]) -> int:
    tile, overlap = tile_overlap
    return max(b - a for a, b in spans(length, tile, overlap))


def vae_decode_bytes(vae_config, latent_shape, dtype: torch.dtype, tiling: TilingConfig | None = None) -> int:
    """Peak bytes of `VideoVAE.decode` on latents of `latent_shape` (B, C, F, H, W): weights + the decoder's
    largest live set on the whole latent, or on the largest tile plus the blended full-size output when tiled.
    `vae_config`: a VideoVAEConfig or a VideoVAE (then its actual weight bytes count)."""
    cfg, _ = _vae(vae_config)
    b, _, f, h, w = (int(s) for s in latent_shape)
    e = _size(dtype)
    ct, cs = cfg.compression("decoder")[0], cfg.compression("decoder")[1]
    video = b * cfg.out_channels * ((f - 1) * ct + 1) * h * cs * w * cs * e
    if tiling is None:
        acts = _decoder_activation_bytes(cfg, b, f, h, w, e)
    else:
        lt, lh, lw = tiling.latent_layout(ct, cs)
        tf, th, tw = _latent_tile(f, lt), _latent_tile(h, lh), _latent_tile(w, lw)
        tiled = (tf, th, tw) != (f, h, w)
        # A tile's latent slice is copied when un-normalised; the blended output and the tile's weighted output.
        tile_video = b * cfg.out_channels * ((tf - 1) * ct + 1) * th * cs * tw * cs * e
        acts = _decoder_activation_bytes(cfg, b, tf, th, tw, e) + (video + 2 * tile_video if tiled else 0)
    return int(vae_weight_bytes(vae_config, dtype) + acts)


def device_free_bytes(device) -> int | None:
    """What a new allocation on `device` can use: on a CUDA device the driver's free memory plus what torch's
    caching allocator holds unused; on the CPU the RAM the kernel says is available without swapping (a run larger
    than that thrashes or is killed). None where unknown (other devices, systems without /proc/meminfo)."""
    device = torch.device(device)
    if device.type == "cpu":
        return available_ram_bytes()
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(torch.cuda.mem_get_info(device)[0] + cached)


def available_ram_bytes(meminfo: str = "/proc/meminfo") -> int | None:
    """MemAvailable from the kernel (Linux), or None."""
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def decode_tiling_for(vae: VideoVAE, latent_shape, free_bytes: int | None,
                      spatial_overlap: int = DEFAULT_SPATIAL_OVERLAP,
                      temporal_overlap: int = DEFAULT_TEMPORAL_OVERLAP) -> TilingConfig | None:
    """`choose_decode_tiling` for a loaded VAE with `free_bytes` free where it computes (None: unknown, untiled).
    Its weights already there count as free too: the estimate includes them."""
    if free_bytes is None:
        return None
    first = next(t for t in vae.parameters() if t.is_floating_point())
    return choose_decode_tiling(vae, latent_shape, first.dtype, resident_budget(vae, free_bytes, first.device),
                                spatial_overlap, temporal_overlap)


def _ladder(values, length_px: int, overlap: int) -> list[int | None]:
    """Tile sizes above the overlap and below the axis length (a tile as long as the axis means untiled)."""
    return [v for v in values if overlap < v < length_px]


def choose_decode_tiling(vae_config, latent_shape, dtype: torch.dtype, free_bytes: int,
                         spatial_overlap: int = DEFAULT_SPATIAL_OVERLAP,
                         temporal_overlap: int = DEFAULT_TEMPORAL_OVERLAP) -> TilingConfig | None:
    """None when an untiled decode fits in free_bytes (weights + activations x HEADROOM); otherwise the largest tiling that
    fits: spatial tiles shrink first (time untiled), then time is tiled too, with the largest spatial tile that
    fits at each temporal tile. ValueError naming the estimate and the free memory when even the smallest fails."""
    weights = vae_weight_bytes(vae_config, dtype)
    untiled = with_headroom(vae_decode_bytes(vae_config, latent_shape, dtype), weights)
    if untiled <= free_bytes:
        return None
    cfg, _ = _vae(vae_config)
    ct, cs = cfg.compression("decoder")[0], cfg.compression("decoder")[1]
    _, _, f, h, w = (int(s) for s in latent_shape)
    spatial = _ladder(SPATIAL_LADDER, max(h, w) * cs, spatial_overlap) or [None]
    temporal = _ladder(TEMPORAL_LADDER, (f - 1) * ct, temporal_overlap)
    base = TilingConfig(None, spatial_overlap, None, temporal_overlap)
    candidates = [replace(base, spatial_tile=s) for s in spatial]
    candidates += [replace(base, spatial_tile=s, temporal_tile=t) for t in temporal for s in spatial]
    smallest = None
    for tiling in candidates:
        need = with_headroom(vae_decode_bytes(vae_config, latent_shape, dtype, tiling), weights)
        if need <= free_bytes:
            return tiling
        smallest = need if smallest is None else min(smallest, need)
    raise ValueError(
        f"the VAE decode does not fit in memory: it needs about {gib(untiled)} untiled and "
        f"{gib(smallest or untiled)} with the smallest tiles, but only {gib(free_bytes)} is free. "
        "Free memory (close other programs or unload models), decode fewer frames or a smaller size, or run the "
        "VAE on the CPU")
