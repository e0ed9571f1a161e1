"""LTX-Video for ComfyUI: node registration only; the model stack lives in ltx_core."""
NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
