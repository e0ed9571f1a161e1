"""The transformer's hyper-parameters, read from a checkpoint's "transformer" metadata section."""
from dataclasses import dataclass
from typing import Any, Mapping

# Settings with a choice of values: (default, supported values). The defaults are those of the official
# `Transformer3DModel.__init__`, so a field missing from the metadata means what it means there.
_CHOICES = {
    "adaptive_norm": ("single_scale_shift", ("single_scale_shift",)),
    "standardization_norm": ("layer_norm", ("rms_norm", "layer_norm")),
    "qk_norm": (None, ("rms_norm",)),
    "positional_embedding_type": ("rope", ("rope",)),
    "activation_fn": ("geglu", ("gelu-approximate", "gelu")),
    "norm_elementwise_affine": (True, (False,)),
    "only_cross_attention": (False, (False,)),
    "double_self_attention": (False, (False,)),
}
_REQUIRED = (
    "num_layers",
    "num_attention_heads",
    "attention_head_dim",
    "in_channels",
    "cross_attention_dim",
    "caption_channels",
    "positional_embedding_theta",
    "positional_embedding_max_pos",
)


@dataclass(frozen=True)
class TransformerConfig:
    num_layers: int
    num_attention_heads: int
    attention_head_dim: int
    in_channels: int
    out_channels: int
    cross_attention_dim: int
    caption_channels: int
    attention_bias: bool
    gelu_approximate: str  # "tanh" or "none", as F.gelu names it
    standardization_norm: str
    norm_eps: float
    positional_embedding_theta: float
    positional_embedding_max_pos: tuple[int, int, int]
    timestep_scale_multiplier: float | None
    causal_temporal_positioning: bool

    @property
    def inner_dim(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TransformerConfig":
        """Fields the official model ignores at inference (dropout, upcast_attention, attention_type,
        num_embeds_ada_norm, ...) and private ones (_class_name, ...) are ignored here too."""
        chosen = {}
        for name, (default, allowed) in _CHOICES.items():
            chosen[name] = d.get(name, default)
            if chosen[name] not in allowed:
                raise ValueError(f"unsupported {name}={chosen[name]!r}; allowed: {list(allowed)}")
        for name in _REQUIRED:
            if d.get(name) is None:
                raise ValueError(f"{name} is required")
        max_pos = tuple(int(p) for p in d["positional_embedding_max_pos"])
        if len(max_pos) != 3:
            raise ValueError(f"positional_embedding_max_pos must hold 3 values (t, y, x), got {max_pos}")
        multiplier = d.get("timestep_scale_multiplier")
        return cls(
            num_layers=int(d["num_layers"]),
            num_attention_heads=int(d["num_attention_heads"]),
            attention_head_dim=int(d["attention_head_dim"]),
            in_channels=int(d["in_channels"]),
            out_channels=int(d["in_channels"] if d.get("out_channels") is None else d["out_channels"]),
            cross_attention_dim=int(d["cross_attention_dim"]),
            caption_channels=int(d["caption_channels"]),
            attention_bias=bool(d.get("attention_bias", False)),
            gelu_approximate="tanh" if chosen["activation_fn"] == "gelu-approximate" else "none",
            standardization_norm=chosen["standardization_norm"],
            norm_eps=float(d.get("norm_eps", 1e-5)),
            positional_embedding_theta=float(d["positional_embedding_theta"]),
            positional_embedding_max_pos=max_pos,
            # The official model skips the scaling when the multiplier is unset or 0.
            timestep_scale_multiplier=float(multiplier) if multiplier else None,
            causal_temporal_positioning=bool(d.get("causal_temporal_positioning", False)),
        )
