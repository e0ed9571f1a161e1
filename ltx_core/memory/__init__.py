from .offload import BlockOffload, resident_bytes, stream_blocks

__all__ = ["BlockOffload", "resident_bytes", "stream_blocks"]
