"""Layers whose stored weight dtype may differ from the compute dtype.

fp8 checkpoints keep their weights as float8 in memory. By default each layer upcasts its own weight just for the
duration of its forward: peak memory grows by one layer's weights, not the model's, and the arithmetic is that of
the compute dtype. With `fp8_matmul` set (`Transformer3D.use_fp8_matmul`), an e4m3 layer instead quantises its
input to fp8 too and multiplies in fp8 with fp32 accumulation (`torch._scaled_mm`): twice the bf16 tensor-core rate
on Ada/Hopper GPUs, which is what the official fp8 configs get from the external q8_kernels package.
"""
import functools

import torch
import torch.nn.functional as F
from torch import nn

from ..quantization.gguf_dequant import dequantize

# Activations are scaled so that their largest magnitude lands on the format's largest finite value.
FP8_MAX = 448.0  # float8_e4m3fn
# fp8 matmul kernels take the reduction and output widths in multiples of 16; other layers upcast.
FP8_ALIGN = 16


def _cast(t: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    if t is None or (t.dtype == like.dtype and t.device == like.device):
        return t
    return t.to(device=like.device, dtype=like.dtype)


@functools.lru_cache(maxsize=None)
def _rowwise_scales(device_type: str, index: int | None) -> bool:
    """One scale per token (row) where the kernel supports it (CPU, Hopper and newer); one per tensor before."""
    return device_type != "cuda" or torch.cuda.get_device_capability(index) >= (9, 0)


def fp8_output_supported(device_type: str, dtype: torch.dtype) -> bool:
    """Whether `torch._scaled_mm` can give results (and take a bias) in `dtype` there. CUDA's per-row kernels write
    bf16 only (fp16 and fp32 depend on the torch and cuBLAS versions, and an fp32 result wants a bf16 bias), so
    other activation dtypes take the upcast path rather than fail inside the kernel; the CPU takes any."""
    if not dtype.is_floating_point or torch.finfo(dtype).bits <= 8:
        return False
    return device_type == "cpu" or dtype == torch.bfloat16


def fp8_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
               rowwise: bool | None = None) -> torch.Tensor:
    """F.linear(x, weight, bias) for an e4m3 `weight` (stored unscaled, as the official fp8 checkpoints are), with x
    quantised to e4m3 by its absolute maximum (per row, or per tensor with `rowwise=False`). The scale stays on the
    device: no host sync. The result is in x's dtype."""
    if rowwise is None:
        rowwise = _rowwise_scales(x.device.type, x.device.index)
    rows = x.reshape(-1, x.shape[-1]).float()
    amax = rows.abs().amax(dim=1, keepdim=True) if rowwise else rows.abs().amax().reshape(1, 1)
    scale = amax.clamp_min(1e-12) / FP8_MAX
    quantised = (rows / scale).to(torch.float8_e4m3fn)
    ones = torch.ones(1, weight.shape[0] if rowwise else 1, device=x.device)
    out = torch._scaled_mm(quantised, weight.t(), scale_a=scale if rowwise else scale.reshape(()),
                           scale_b=ones if rowwise else ones.reshape(()), bias=_cast(bias, x), out_dtype=x.dtype)
    return out.reshape(*x.shape[:-1], weight.shape[0])


class Linear(nn.Linear):
    fp8_matmul = False  # per layer; see the module docstring
    # Extra output computed from the input: the LoRAs applied for a run (`ltx_core.lora.apply`). Set on the
    # instance, not registered as a submodule: it is never part of the state dict or of a module traversal.
    lora = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fp8_matmul and self._fp8_ready(x):
            out = fp8_linear(x, self.weight, self.bias)
        else:
            out = F.linear(x, self.dense_weight(x), _cast(self.bias, x))
        return out if self.lora is None else out + self.lora(x)

    def dense_weight(self, x: torch.Tensor) -> torch.Tensor:
        """The weight as a matmul with `x` takes it: on x's device, in x's dtype."""
        return _cast(self.weight, x)

    def _fp8_ready(self, x: torch.Tensor) -> bool:
        w = self.weight
        return (w.dtype == torch.float8_e4m3fn and w.device == x.device and fp8_output_supported(x.device.type, x.dtype)
                and w.shape[0] % FP8_ALIGN == 0 and w.shape[1] % FP8_ALIGN == 0)


class QuantizedLinear(Linear):
    """A Linear whose weight is kept as the quantized bytes of a GGUF file (`weight`: uint8, as stored) and
    dequantized on the device, in the activations' dtype, right before each matmul: resident memory is the file's,
    the arithmetic the compute dtype's. `quant_type` names the GGUF type; in/out_features give the real shape."""

    quant_type = "Q8_0"

    def dense_weight(self, x: torch.Tensor) -> torch.Tensor:
        raw = self.weight if self.weight.device == x.device else self.weight.to(x.device, non_blocking=True)
        return dequantize(raw, self.quant_type, (self.out_features, self.in_features), x.dtype)


def quantize_layer(layer: Linear, raw: torch.Tensor, quant_type: str) -> QuantizedLinear:
    """Turn `layer` into a QuantizedLinear holding `raw` (the weight's GGUF bytes) in place."""
    layer.__class__ = QuantizedLinear
    layer.quant_type = quant_type
    layer.weight = nn.Parameter(raw, requires_grad=False)
    return layer
