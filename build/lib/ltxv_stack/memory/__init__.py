"""Memory: estimates made before a run (`estimate`), the decisions built on them (`plan`), and block streaming
(`streaming`)."""
from .estimate import device_free_bytes, transformer_weight_bytes
from .plan import (TEXT_ENCODE_BYTES, MemoryRefusal, StepShape, check_step, decode_work_bytes, encode_work_bytes,
                   step_work_bytes, upsample_work_bytes)
from .streaming import stream_blocks

__all__ = ["TEXT_ENCODE_BYTES", "MemoryRefusal", "StepShape", "check_step", "decode_work_bytes",
           "device_free_bytes", "encode_work_bytes", "step_work_bytes", "stream_blocks", "transformer_weight_bytes",
           "upsample_work_bytes"]
