"""A torch module -> an OpenVINO model with dynamic dimensions (torch.export, then ov.convert_model), its weights
compressed by NNCF when asked."""
from __future__ import annotations

import torch


def export_to_openvino(module: torch.nn.Module, example: tuple, dynamic_shapes, weights: str):
    """`dynamic_shapes` as torch.export takes them (torch.export.Dim per dynamic axis): sizes that change between
    runs (batch, tokens, text length) stay dynamic in the OpenVINO model, so they never force a reconversion."""
    import openvino as ov

    with torch.no_grad():
        program = torch.export.export(module, example, dynamic_shapes=dynamic_shapes, strict=False)
        model = ov.convert_model(program)
    del program
    return compress_weights(model, weights)


def compress_weights(model, weights: str):
    """fp32: as is; int8: every matmul/embedding weight to 8 bits, asymmetric per output channel (NNCF INT8_ASYM);
    int4: NNCF INT4_SYM in groups of 64 input channels (narrower layers: the largest power of two that divides their
    width, from 32; narrower still stay int8)."""
    if weights == "fp32":
        return model
    import nncf

    if weights == "int8":
        return nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    from nncf.quantization.advanced_parameters import AdvancedCompressionParameters, GroupSizeFallbackMode

    return nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT4_SYM, group_size=64, ratio=1.0,
                                 advanced_parameters=AdvancedCompressionParameters(
                                     group_size_fallback_mode=GroupSizeFallbackMode.ADJUST))
