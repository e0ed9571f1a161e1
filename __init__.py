"""LTX-Video for ComfyUI: node registration only; the model stack lives in ltx_core."""
import logging
import shutil
from pathlib import Path

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, comfy_bridge

# ComfyUI serves this folder to the frontend; web/docs/<node id>.md is each node's help page.
WEB_DIRECTORY = "./web"

# The example workflows load these by name (first/last frame, a clip to extend, a pose video): ComfyUI's input
# folder of a fresh install holds only example.png.
EXAMPLE_MEDIA = Path(__file__).resolve().parent / "example_media"


def offer_example_media(input_dir) -> list[str]:
    """Copy the example media into `input_dir` where a file of that name is absent (a user's file is never
    replaced); returns the names copied."""
    input_dir = Path(input_dir)
    copied = []
    for src in sorted(EXAMPLE_MEDIA.iterdir()):
        dst = input_dir / src.name
        if src.is_file() and not dst.exists():
            input_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            copied.append(src.name)
    return copied


if comfy_bridge.folder_paths is not None:
    try:
        offer_example_media(comfy_bridge.folder_paths.get_input_directory())
    except OSError as e:  # a read-only input folder must not stop the nodes from loading
        logging.getLogger(__name__).warning("LTX-Video (stack): example media not copied to the input folder: %s", e)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
