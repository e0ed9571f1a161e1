"""The pack's ComfyUI nodes: thin wrappers that parse inputs, call ltx_core, report progress and hand back standard
IMAGE / LATENT data. Only `comfy_bridge` talks to ComfyUI."""
from . import comfy_bridge, conditioning, latent, loaders, loras, part_loaders, sampling, text, vae

comfy_bridge.register_model_folders()

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
for _module in (loaders, part_loaders, loras, text, conditioning, sampling, latent, vae):
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
