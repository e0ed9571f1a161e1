"""The LTX-Video 3D DiT: video latent tokens + text features + timestep -> velocity."""
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

    @property
    def compute_dtype(self) -> torch.dtype:
        """Linear weights may be stored in fp8; the tables never are, and set the arithmetic dtype."""
        return self.scale_shift_table.dtype

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
        b, n, _ = tokens.shape
        if coords.shape != (b, 3, n):
            raise ValueError(f"coords must be (batch, 3, tokens) = {(b, 3, n)}, got {tuple(coords.shape)}")
        timestep = timestep.reshape(b, -1)
        if timestep.shape[1] not in (1, n):
            raise ValueError(f"timestep must hold 1 or {n} values per batch row, got {timestep.shape[1]}")
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
        rope = rope_cos_sin(coords, cfg.inner_dim, cfg.positional_embedding_theta, cfg.positional_embedding_max_pos, dtype)

        skips = self._layer_skips(skip_layer_mask, skip_layer_strategy, b, x.device, dtype)
        for block, skip in zip(self.transformer_blocks, skips):
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
        # Blending with a mask of ones returns the unperturbed values exactly, so such layers skip the
        # blend; finding them costs one tiny device-to-host copy per forward.
        perturbed = (mask != 1).any(dim=1).tolist()
        keep = mask.to(device=device, dtype=dtype)
        return [(strategy, keep[i].view(batch, 1, 1)) if perturbed[i] else None for i in range(layers)]
