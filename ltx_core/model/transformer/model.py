"""The LTX-Video 3D DiT: video latent tokens + text features + timestep -> velocity."""
import os
import shutil

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import Linear
from .block import NUM_MODULATIONS, TransformerBlock
from .config import TransformerConfig
from .coords import video_token_coords
from .embeddings import AdaLayerNormSingle, CaptionProjection
from .rope import rope_cos_sin
from .stg import SkipLayerStrategy

OUTPUT_NORM_EPS = 1e-6
# Additive attention bias for padded text positions (not -inf: a row with no valid key stays finite).
MASKED_BIAS = -10000.0
# Text kept after trimming is a multiple of this many tokens: CUDA's memory-efficient attention pads a mask whose
# key length is not aligned, and that padded copy is materialised at full (B, heads, queries, keys) size.
TEXT_ALIGN = 8


def trim_text_padding(
    context: Tensor, mask: Tensor | None, *more: tuple[Tensor, Tensor | None]
) -> tuple[tuple[Tensor, Tensor | None], ...]:
    """Drop the trailing text positions that every row masks out, from (context, mask) pairs of equal length L.

    Exact: a masked key scores MASKED_BIAS below the others, and exp(-10000) is 0 in every float format, so such
    keys contribute nothing; cross-attention cost and the caption projection shrink with the kept length (T5
    pads to 128 or 256 tokens; prompts are mostly far shorter). A mask that keeps every kept position becomes
    None, which lets attention use its unmasked kernels. Rows with no valid token at all attend uniformly to
    every padded key, so then nothing is trimmed. One host sync: call once per generation, not per step."""
    pairs = ((context, mask), *more)
    masks = [m for _, m in pairs if m is not None]
    if not masks:
        return pairs
    length = context.shape[1]
    valid = torch.cat([m.reshape(-1, length) for m in masks]) != 0
    if not bool(valid.any(dim=1).all()):
        return pairs
    last = int(valid.any(dim=0).nonzero().max()) + 1
    keep = min(length, -(-last // TEXT_ALIGN) * TEXT_ALIGN)
    all_valid = bool(valid[:, :keep].all())
    return tuple((c[:, :keep], None if m is None or all_valid else m[:, :keep]) for c, m in pairs)


class Transformer3D(nn.Module):
    """State-dict keys and shapes are those of the official checkpoints (after the
    `model.diffusion_model.` prefix). Every parameter is carried by the state dict, so the model can be
    built on the meta device and loaded with `load_state_dict(sd, strict=True, assign=True)`."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        dim = config.inner_dim
        self.patchify_proj = Linear(config.in_channels, dim)
        self.adaln_single = AdaLayerNormSingle(dim, NUM_MODULATIONS)
        self.caption_projection = CaptionProjection(config.caption_channels, dim)
        self.transformer_blocks = nn.ModuleList(TransformerBlock(config) for _ in range(config.num_layers))
        self.scale_shift_table = nn.Parameter(torch.zeros(2, dim))
        self.proj_out = Linear(dim, config.out_channels)
        self.blocks_compiled = False

    @property
    def compute_dtype(self) -> torch.dtype:
        """Linear weights may be stored in fp8; the tables never are, and set the arithmetic dtype."""
        return self.scale_shift_table.dtype

    @property
    def compute_device(self) -> torch.device:
        """Where the model runs: its own table stays there also while the blocks stream from the CPU."""
        return self.scale_shift_table.device

    def compile_blocks(self, device_type: str | None = None, **options) -> None:
        """torch.compile every block in place (`options` go to torch.compile). Regional compilation: the blocks
        share one code path, so one graph serves all of them and compiles in seconds, not the whole model's
        minutes; the per-step inputs keep their shapes and types across steps, so sampling does not recompile.
        With the default backend, `device_type` ("cuda", "cpu"; default: where the weights are) is checked for
        the code generator inductor needs, here rather than as a failure deep inside the first step."""
        if options.get("backend", "inductor") == "inductor":
            problem = inductor_unavailable(device_type or self.scale_shift_table.device.type)
            if problem:
                raise RuntimeError(f"cannot compile the transformer: {problem}")
        for block in self.transformer_blocks:
            block.forward = torch.compile(block.forward, **options)
        self.blocks_compiled = True

    def use_fp8_matmul(self, enabled: bool = True) -> int:
        """Multiply in fp8 in every block layer stored as float8_e4m3fn (see `ops`); returns how many layers that is.
        A ValueError when the weights are not fp8: load the checkpoint with dtype float8_e4m3fn."""
        layers = [m for m in self.transformer_blocks.modules() if isinstance(m, Linear)]
        fp8 = [m for m in layers if m.weight.dtype == torch.float8_e4m3fn]
        if enabled and not fp8:
            dtypes = sorted({str(m.weight.dtype).removeprefix("torch.") for m in layers})
            raise ValueError(f"fp8 matmuls need fp8 weights, but the transformer's block weights are {', '.join(dtypes)}: "
                             "load the checkpoint with dtype float8_e4m3fn")
        for m in fp8:
            m.fp8_matmul = enabled
        return len(fp8)

    def forward(
        self,
        latents: Tensor,
        timestep: Tensor,
        context: Tensor,
        context_mask: Tensor | None = None,
        frame_rate: float = 25.0,
        skip_layer_mask: Tensor | None = None,
        skip_layer_strategy: SkipLayerStrategy | str | None = None,
    ) -> Tensor:
        """latents (B, C, F, H, W); timestep in [0, 1], (B,) or per token (B, F, H, W);
        context (B, L, caption_channels); context_mask (B, L) 1 = keep, 0 = padding.
        Returns the velocity (B, out_channels, F, H, W) in the latents' dtype."""
        b, _, f, h, w = latents.shape
        coords = video_token_coords(b, f, h, w, frame_rate, self.config.causal_temporal_positioning, latents.device)
        out = self.forward_tokens(
            latents.flatten(2).transpose(1, 2),
            coords,
            timestep,
            context,
            context_mask,
            skip_layer_mask,
            skip_layer_strategy,
        )
        return out.transpose(1, 2).unflatten(2, (f, h, w)).contiguous()

    def forward_tokens(
        self,
        tokens: Tensor,
        coords: Tensor,
        timestep: Tensor,
        context: Tensor,
        context_mask: Tensor | None = None,
        skip_layer_mask: Tensor | None = None,
        skip_layer_strategy: SkipLayerStrategy | str | None = None,
    ) -> Tensor:
        """tokens (B, N, in_channels); coords (B, 3, N) [t seconds, y pixels, x pixels];
        timestep (B,) or (B, N). STG: skip_layer_mask (num_layers, B), 0 where a layer is perturbed for
        that batch row; it has no effect without a strategy. Returns (B, N, out_channels) in the tokens' dtype."""
        cfg = self.config
        dtype = self.compute_dtype
        b, _, _ = tokens.shape
        timestep = checked_token_inputs(tokens, coords, timestep)
        if cfg.timestep_scale_multiplier is not None:
            timestep = timestep * cfg.timestep_scale_multiplier

        x = self.patchify_proj(tokens.to(dtype))
        modulation, embedded = self.adaln_single(timestep.flatten(), dtype)
        modulation = modulation.view(b, timestep.shape[1], -1)
        embedded = embedded.view(b, timestep.shape[1], -1)
        context = self.caption_projection(context.to(dtype))
        bias = None
        if context_mask is not None:
            bias = ((1 - context_mask.to(dtype)) * MASKED_BIAS).view(b, 1, 1, -1)
        rope = rope_cos_sin(coords, cfg.inner_dim, cfg.positional_embedding_theta, cfg.positional_embedding_max_pos,
                            dtype, complex_ok=not (self.blocks_compiled or torch.compiler.is_compiling()))

        skips = self._layer_skips(skip_layer_mask, skip_layer_strategy, b, x.device, dtype)
        for block, skip in zip(self.transformer_blocks, skips, strict=True):
            x = block(x, modulation, context, bias, rope, skip)

        shift, scale = (self.scale_shift_table.to(dtype) + embedded[:, :, None]).unbind(dim=2)
        x = torch.addcmul(shift, F.layer_norm(x, x.shape[-1:], eps=OUTPUT_NORM_EPS), 1 + scale)
        return self.proj_out(x).to(tokens.dtype)

    def _layer_skips(
        self,
        mask: Tensor | None,
        strategy: SkipLayerStrategy | str | None,
        batch: int,
        device: torch.device,
        dtype: torch.dtype,
    ) -> list[tuple[SkipLayerStrategy, Tensor] | None]:
        """Per block: None, or (strategy, (B, 1, 1) mask)."""
        layers = len(self.transformer_blocks)
        strategy = None if strategy is None else SkipLayerStrategy(strategy)
        if mask is None or strategy in (None, SkipLayerStrategy.Residual):
            return [None] * layers
        if tuple(mask.shape) != (layers, batch):
            raise ValueError(f"skip_layer_mask must be (num_layers, batch) = {(layers, batch)}, got {tuple(mask.shape)}")
        perturbed = _perturbed_layers(mask)
        keep = mask.to(device=device, dtype=dtype, non_blocking=True)
        return [(strategy, keep[i].view(batch, 1, 1)) if perturbed[i] else None for i in range(layers)]


def inductor_unavailable(device_type: str) -> str | None:
    """Why torch.compile's default backend cannot generate code for `device_type`, or None when it can."""
    if device_type == "cuda":
        try:
            from torch.utils._triton import has_triton
        except ImportError:
            return None  # a torch without this probe: let torch.compile decide
        return None if has_triton() else (
            "torch.compile on a GPU needs Triton, which is not installed (pip install triton; on Windows "
            "triton-windows); or turn compile off")
    if device_type == "cpu":
        import torch._inductor.config as inductor_config

        names = [os.environ.get("CXX"), *(c for c in inductor_config.cpp.cxx if c), "g++", "clang++", "c++"]
        return None if any(n and shutil.which(n) for n in names) else (
            "torch.compile on the CPU needs a C++ compiler (g++ or clang++) on PATH; or turn compile off")
    return None


def checked_token_inputs(tokens: Tensor, coords: Tensor, timestep: Tensor) -> Tensor:
    """`forward_tokens`' checks of coords and timestep against the tokens (B, N, C); the timestep as (B, 1 or N)."""
    b, n, _ = tokens.shape
    if coords.shape != (b, 3, n):
        raise ValueError(f"coords must be (batch, 3, tokens) = {(b, 3, n)}, got {tuple(coords.shape)}")
    timestep = timestep.reshape(b, -1)
    if timestep.shape[1] not in (1, n):
        raise ValueError(f"timestep must hold 1 or {n} values per batch row, got {timestep.shape[1]}")
    return timestep


def _perturbed_layers(mask: Tensor) -> list[bool]:
    """Per layer, whether the (num_layers, B) skip mask perturbs any row. Blending with a mask of ones returns
    the unperturbed values exactly, so the other layers may skip the blend. Read from a CPU mask (the sampler
    builds it there); reading a device mask would stall the host once per forward, so then every layer blends, as
    it does in a traced graph (torch.export, the OpenVINO backend), where the mask is an input without values."""
    if mask.device.type != "cpu" or torch.compiler.is_compiling():
        return [True] * mask.shape[0]
    return (mask != 1).any(dim=1).tolist()
