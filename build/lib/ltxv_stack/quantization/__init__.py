"""Quantized weight formats: turning the stored bytes back into tensors on the compute device."""
