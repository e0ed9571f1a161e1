"""LoRA files: reading every format in use for LTX-Video 0.9.x, and applying them at compute time."""
from .apply import LoraUse, applied_loras, lora_bytes
from .file import LayerPatch, Lora, check_lora_file, read_lora

__all__ = ["LayerPatch", "Lora", "LoraUse", "applied_loras", "check_lora_file", "lora_bytes", "read_lora"]
