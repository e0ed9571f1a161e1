from .offload import BlockOffload

__all__ = ["BlockOffload"]
