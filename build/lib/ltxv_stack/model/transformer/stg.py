"""Spatio-temporal guidance (STG): which part of a block a "perturbed" batch row skips.

Member names are those of the official `SkipLayerStrategy`, so a setting written for the official
pipeline (e.g. `stg_mode`) maps by name.
"""
from enum import Enum


class SkipLayerStrategy(Enum):
    AttentionSkip = "attention_skip"  # self-attention passes its (modulated, normalised) input through
    AttentionValues = "attention_values"  # self-attention returns its value projection
    # The official model applies this one only inside attention layers that have a residual connection,
    # and none of LTX-Video's do: it perturbs nothing. Kept so that mode gives the same (null) result.
    Residual = "residual"
    TransformerBlock = "transformer_block"  # the whole block is an identity
