"""The one place that talks to ComfyUI: model folders (folder_paths), devices and memory (model_management,
ModelPatcher, dynamic VRAM), progress bars, text on the node and latent previews (comfy.utils, server,
latent_preview), interruption.

Outside ComfyUI (tests, scripts) every function has a stand-in: model folders come from `set_model_folder` /
`set_models_root` (or the LTXV_STACK_MODELS environment variable: <root>/checkpoints, <root>/text_encoders,
<root>/latent_upscale_models, <root>/loras, ...), everything runs on the CPU in float32, progress goes to
`PROGRESS_LISTENERS`, text for the node to `TEXT_LISTENERS`, and `request_interrupt()` stops a running node the way
ComfyUI's "Cancel" does.
"""
from __future__ import annotations

import functools
import importlib.util
import logging
import os
import sys
import threading
from pathlib import Path
from contextlib import contextmanager
from typing import Callable, Iterable

import torch

from ..ltx_core import device_free_bytes, stream_blocks, transformer_weight_bytes

logger = logging.getLogger(__name__)

try:  # inside a running ComfyUI all of these are already imported; anything else means "no ComfyUI"
    if os.environ.get("LTXV_STACK_STANDALONE"):
        raise ImportError("LTXV_STACK_STANDALONE is set")
    import comfy.model_management as mm  # type: ignore
    import comfy.model_patcher  # type: ignore
    import comfy.utils  # type: ignore
    import folder_paths  # type: ignore

    IN_COMFYUI = True
except Exception as _e:  # ImportError, or a ComfyUI checkout that cannot start here (no GPU, no --cpu)
    folder_paths = mm = None
    IN_COMFYUI = False
    if "comfy" in sys.modules or "folder_paths" in sys.modules:
        logger.warning("LTX-Video (stack): ComfyUI modules found but not usable (%s); using stand-ins", _e)

CHECKPOINTS = "checkpoints"
TEXT_ENCODERS = "text_encoders"
LATENT_UPSCALE_MODELS = "latent_upscale_models"
LORAS = "loras"
DIFFUSION_MODELS = "diffusion_models"  # ComfyUI also serves its old name, "unet", from it
VAES = "vae"
MODEL_FOLDERS = (CHECKPOINTS, TEXT_ENCODERS, LATENT_UPSCALE_MODELS, LORAS, DIFFUSION_MODELS, VAES)
# ltx_core reads safetensors only (pickled formats can run code when loaded).
WEIGHT_EXTENSIONS = (".safetensors", ".sft")


class ModelNotFoundError(ValueError):
    """A model file name that is not in ComfyUI's model folders."""


class Interrupted(RuntimeError):
    """Raised (outside ComfyUI) when a run was interrupted with `request_interrupt()`."""


# ----------------------------------------------------------------------------------------------------------------
# model folders

_standin_folders: dict[str, list[Path]] = {}


def set_model_folder(folder: str, paths: Iterable) -> None:
    """Stand-in only: where the files of `folder` ("checkpoints", ...) are looked up."""
    _standin_folders[folder] = [Path(p) for p in paths]


def set_models_root(root) -> None:
    """Stand-in only: <root>/<folder> for each of MODEL_FOLDERS."""
    for folder in MODEL_FOLDERS:
        set_model_folder(folder, [Path(root) / folder])


def register_model_folders() -> None:
    """Make ComfyUI know the latent upsampler folder (models/latent_upscale_models), restricted to weight files.
    Newer ComfyUI versions (and extra_model_paths.yaml) may already have it: then nothing changes."""
    if not IN_COMFYUI:
        return
    names = folder_paths.folder_names_and_paths
    if LATENT_UPSCALE_MODELS not in names:
        path = os.path.join(folder_paths.models_dir, LATENT_UPSCALE_MODELS)
        names[LATENT_UPSCALE_MODELS] = ([path], set(folder_paths.supported_pt_extensions))


def folder_dirs(folder: str) -> list[Path]:
    if IN_COMFYUI:
        try:
            return [Path(p) for p in folder_paths.get_folder_paths(folder)]
        except Exception:
            return []
    if folder not in _standin_folders:
        root = os.environ.get("LTXV_STACK_MODELS", "models")
        return [Path(root) / folder]
    return list(_standin_folders[folder])


def list_model_files(folder: str, extensions: tuple[str, ...] = WEIGHT_EXTENSIONS) -> list[str]:
    """Weight files of a model folder, as names relative to it ('/'-separated, subfolders included). The folders
    are walked here rather than through ComfyUI's file list, which only knows the extensions ComfyUI loads itself
    (not .gguf)."""
    out = set()
    for d in folder_dirs(folder):
        if d.is_dir():
            for p in d.rglob("*"):
                if p.is_file() and p.name.lower().endswith(extensions):
                    out.add(p.relative_to(d).as_posix())
    return sorted(out)


def list_model_dirs(folder: str, accept: Callable[[Path], bool]) -> list[str]:
    """Top-level subfolders of a model folder that `accept` recognises (e.g. model folders in Hugging Face layout),
    as 'name/'."""
    out = set()
    for d in folder_dirs(folder):
        if d.is_dir():
            for p in d.iterdir():
                if p.is_dir() and accept(p):
                    out.add(p.name + "/")
    return sorted(out)


def resolve_model(folder: str, name: str, what: str, hint: str = "") -> Path:
    """The full path of `name` (a file, or a 'folder/' entry) in ComfyUI's `folder`; ModelNotFoundError saying
    where to put it otherwise. Names must stay inside the folder (no absolute paths, no '..')."""
    dirs = folder_dirs(folder)
    where = ", ".join(str(d) for d in dirs) or f"models/{folder}"
    if not isinstance(name, str) or not name.strip():
        raise ModelNotFoundError(f"no {what} selected: put one into ComfyUI's {folder} folder ({where}) and pick it")
    rel = name.rstrip("/")
    parts = Path(rel).parts
    if Path(rel).is_absolute() or ".." in parts or not parts:
        raise ModelNotFoundError(f"{what} {name!r}: only names inside ComfyUI's {folder} folder are accepted, "
                                 "not paths")
    for d in dirs:
        p = d / rel
        if (p.is_dir() if name.endswith("/") else p.is_file()):
            return p
    extra = f" {hint}" if hint else ""
    raise ModelNotFoundError(f"{what} {name!r} was not found in ComfyUI's {folder} folder ({where}).{extra} "
                             "Put the file there and refresh the node list (press R), or pick another file.")


def tokenizer_dirs() -> list[Path]:
    """ComfyUI ships the T5 tokenizer in comfy/text_encoders/t5_tokenizer. It is found through the `comfy`
    package already imported by ComfyUI, or located (not imported) by name."""
    module = sys.modules.get("comfy")
    if module is not None:
        roots = list(getattr(module, "__path__", []))
    else:
        try:
            spec = importlib.util.find_spec("comfy")
        except (ImportError, ValueError):
            spec = None
        roots = list(spec.submodule_search_locations or []) if spec is not None else []
    return [Path(root) / "text_encoders" / "t5_tokenizer" for root in roots]


# ----------------------------------------------------------------------------------------------------------------
# devices and dtypes

_KINDS = ("diffusion", "vae", "text_encoder")


def devices(kind: str) -> tuple[torch.device, torch.device]:
    """(load device, offload device) for a model of `kind`, as ComfyUI chooses them (--cpu, --gpu-only,
    --highvram, --cpu-vae ...); the CPU twice outside ComfyUI."""
    if kind not in _KINDS:
        raise ValueError(f"unknown model kind {kind!r}")
    if not IN_COMFYUI:
        cpu = torch.device("cpu")
        return cpu, cpu
    if kind == "diffusion":
        return mm.get_torch_device(), mm.unet_offload_device()
    if kind == "vae":
        return mm.vae_device(), mm.vae_offload_device()
    return mm.text_encoder_device(), mm.text_encoder_offload_device()


def intermediate_device() -> torch.device:
    """Where node outputs (latents, images) live between nodes."""
    return mm.intermediate_device() if IN_COMFYUI else torch.device("cpu")


def default_dtype(kind: str) -> torch.dtype:
    """bfloat16 where ComfyUI would compute in it on the load device, float32 otherwise (always on the CPU)."""
    load, _ = devices(kind)
    if not IN_COMFYUI or load.type == "cpu":
        return torch.float32
    try:
        if kind == "vae":
            return mm.vae_dtype(load, [torch.bfloat16, torch.float32])
        return torch.bfloat16 if mm.should_use_bf16(load) else torch.float32
    except Exception:
        return torch.float32


def dynamic_vram_enabled() -> bool:
    """Whether ComfyUI's dynamic VRAM (0.38 and later, on by default on NVIDIA GPUs) is on. Its module is only
    looked up, never imported: ComfyUI versions without it have none."""
    module = sys.modules.get("comfy.memory_management") if IN_COMFYUI else None
    return bool(getattr(module, "aimdo_enabled", False))


@functools.lru_cache(maxsize=None)
def _memory_probe(device: torch.device):
    """A model patcher of nothing on `device`: newer ComfyUI answers "free memory, counting what dynamic VRAM can
    take back" only through a patcher (ModelPatcher.get_free_memory(device))."""
    return comfy.model_patcher.ModelPatcher(torch.nn.Module(), device, device)


def free_memory_bytes(device: torch.device) -> int | None:
    """Memory on `device` the work may use (None when unknown). With dynamic VRAM, mm.get_free_memory leaves out
    the VRAM dynamic VRAM can take back from the models it holds; the patcher's answer counts it."""
    if IN_COMFYUI:
        try:
            patcher_free = getattr(_memory_probe(device), "get_free_memory", None)
            return int(patcher_free(device) if patcher_free is not None else mm.get_free_memory(device))
        except Exception:
            return None
    return device_free_bytes(device)


# ----------------------------------------------------------------------------------------------------------------
# managed models


class _Holder(torch.nn.Module):
    """What ModelPatcher wraps: it sets bookkeeping attributes (device, model_lowvram, ...) on the module it
    holds, which must not collide with properties of our own models. ComfyUI's log names a model by its class:
    `holder_for` gives each kind of model a class with a readable name."""

    def __init__(self, inner: torch.nn.Module, device: torch.device):
        super().__init__()
        self.inner = inner
        self.device = device

    def get_dtype(self):
        for p in self.inner.parameters():
            return p.dtype
        return torch.float32


# ComfyUI logs "Requested to load <class name>": the name says which of our models it is.
_HOLDER_NAMES = {"diffusion": "LTXVideoTransformer", "vae": "LTXVideoVAE", "text_encoder": "LTXVideoT5Encoder"}


def holder_for(kind: str, module: torch.nn.Module, device: torch.device) -> _Holder:
    return _holder_class(_HOLDER_NAMES.get(kind, f"LTXVideo_{kind}"))(module, device)


@functools.lru_cache(maxsize=None)
def _holder_class(name: str) -> type:
    return type(name, (_Holder,), {"__doc__": _Holder.__doc__})


def _module_device(module: torch.nn.Module, fallback: torch.device) -> torch.device:
    """The device all of the module's tensors are on; a module split across devices (a partial load ComfyUI may
    do for plain torch layers) is moved whole to `fallback`."""
    found = {t.device for t in list(module.parameters()) + list(module.buffers())}
    if len(found) == 1:
        return found.pop()
    if found:
        module.to(fallback)
    return fallback


class ManagedModel:
    """A torch module whose placement ComfyUI manages: `load()` before use (ComfyUI frees memory for it and may
    evict other models), `unload()` to give the memory back early."""

    def __init__(self, module: torch.nn.Module, kind: str, name: str = ""):
        self.module = module
        self.kind = kind
        self.name = name
        self.load_device, self.offload_device = devices(kind)
        self.patcher = None
        if IN_COMFYUI:
            holder = holder_for(kind, module, self.offload_device)
            self.patcher = comfy.model_patcher.ModelPatcher(holder, load_device=self.load_device,
                                                            offload_device=self.offload_device)

    @property
    def device(self) -> torch.device:
        return _module_device(self.module, self.offload_device)

    def size_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in list(self.module.parameters()) + list(self.module.buffers()))

    def load(self, memory_required: int = 0) -> torch.device:
        return load_models([self], memory_required)


def load_models(models: list[ManagedModel], memory_required: int = 0) -> torch.device:
    """Put the models on their load devices together (ComfyUI frees `memory_required` bytes more for the work);
    returns the device of the first one. Under --novram ComfyUI keeps plain torch weights on the CPU: they then
    run there."""
    models = [m for m in models if m is not None]
    if IN_COMFYUI:
        mm.load_models_gpu([m.patcher for m in models], memory_required=int(memory_required), force_full_load=True)
    devices_used = [m.device for m in models]  # also settles modules left split across devices
    return devices_used[0] if devices_used else torch.device("cpu")


def load_text_encoder(model: ManagedModel, memory_required: int) -> torch.device:
    """Put the text encoder where it encodes; returns that device. With dynamic VRAM ComfyUI names the GPU for
    every text encoder, but ours loads whole (its patcher is not a dynamic one): a T5 that does not fit in the GPU
    memory left next to the other models encodes on the CPU instead of pushing them out (a 9 GB T5 on a 12 GB
    card). Without dynamic VRAM ComfyUI's own choice stands (it names the GPU only when VRAM is plentiful)."""
    if IN_COMFYUI and dynamic_vram_enabled() and model.load_device.type != "cpu":
        free = free_memory_bytes(model.load_device)
        need = model.size_bytes() + int(memory_required)
        if free is not None and need > free:
            logger.info("LTX-Video (stack): %s needs %.1f GiB, %.1f GiB free on %s next to the other models: "
                        "encoding on %s", model.name, need / 2**30, free / 2**30, model.load_device,
                        model.offload_device)
            model.module.to(model.offload_device)
            return model.offload_device
    return load_models([model], memory_required)


def needs_block_streaming(model: ManagedModel, others_bytes: int, memory_required: int) -> bool:
    """Whether the transformer cannot sit whole on its GPU next to the other models and the work: its blocks then
    stream from CPU memory instead of failing with out-of-memory (or, under --novram, running on the CPU)."""
    if not IN_COMFYUI or model.load_device.type != "cuda":
        return False
    return model.size_bytes() + others_bytes + memory_required > 0.9 * mm.get_total_memory(model.load_device)


@contextmanager
def streaming_blocks(model: ManagedModel, memory_required: int):
    """Run the transformer with its blocks streaming from the CPU; ComfyUI first frees room for what stays."""
    weights = transformer_weight_bytes(model.module, model.module.compute_dtype, streaming=True)
    mm.free_memory(weights + int(memory_required), model.load_device)
    with stream_blocks(model.module, model.load_device):
        yield


def unload_model(model: ManagedModel) -> None:
    """Move a model back to its offload device now (the text encoder after encoding), instead of waiting for
    ComfyUI to evict it when memory runs short."""
    if model is None:
        return
    if IN_COMFYUI:
        try:
            loaded = mm.current_loaded_models
            for i in range(len(loaded) - 1, -1, -1):
                if loaded[i].model is model.patcher:
                    loaded[i].model_unload()
                    loaded.pop(i)
            mm.soft_empty_cache()
            return
        except Exception as e:  # internals differ between ComfyUI versions: eviction then happens on demand
            logger.debug("LTX-Video (stack): could not unload %s now (%s)", model.name, e)
            return
    model.module.to(model.offload_device)


# ----------------------------------------------------------------------------------------------------------------
# interruption

_interrupt = threading.Event()


def request_interrupt() -> None:
    """Stand-in for ComfyUI's Cancel button (ComfyUI itself: POST /interrupt)."""
    _interrupt.set()


def interrupt_requested() -> bool:
    if IN_COMFYUI:
        return bool(mm.processing_interrupted())
    return _interrupt.is_set()


def raise_interrupted(message: str = "interrupted") -> None:
    """Raise the exception that tells the host the run was cancelled (ComfyUI: InterruptProcessingException,
    shown as "interrupted", not as an error)."""
    if IN_COMFYUI:
        mm.throw_exception_if_processing_interrupted()
        raise mm.InterruptProcessingException()
    _interrupt.clear()
    raise Interrupted(message)


def check_interrupt() -> None:
    if interrupt_requested():
        raise_interrupted()


# ----------------------------------------------------------------------------------------------------------------
# progress and previews

# Stand-in progress: called with (value, total, preview_latents) on every update.
PROGRESS_LISTENERS: list[Callable[[int, int, torch.Tensor | None], None]] = []
# Stand-in for the text shown on the running node: called with the text.
TEXT_LISTENERS: list[Callable[[str], None]] = []


def show_text(text: str) -> None:
    """Text under the running node's widgets (ComfyUI's progress text, as core's Get Image Size shows a size): what
    the user sees without reading the server log. It stays until the node shows another."""
    if not text:  # the frontend ignores empty text
        return
    if not IN_COMFYUI:
        for listener in list(TEXT_LISTENERS):
            listener(text)
        return
    try:
        from server import PromptServer  # type: ignore

        prompt_server = PromptServer.instance
        node_id = _running_node_id(prompt_server)
        if node_id is not None:
            prompt_server.send_progress_text(text, node_id)
    except Exception as e:  # a ComfyUI without progress text (before 0.3.4x): the log has the text
        logger.debug("LTX-Video (stack): no text on the node (%s)", e)


def _running_node_id(prompt_server):
    try:
        from comfy_execution.utils import get_executing_context  # type: ignore
    except ImportError:
        return prompt_server.last_node_id
    context = get_executing_context()
    return context.node_id if context is not None else prompt_server.last_node_id


class Progress:
    """`progress(step, total, latents)` and `begin_pass(info)` for ltx_core: ComfyUI's progress bar, with a latent
    preview of the middle frame when ComfyUI's --preview-method asks for one. Once passes are announced, the bar
    restarts for each pass with that pass's step count and the node shows which pass (and chunk) runs, under
    `notes` (the recipe, warnings). Each pass gets a bar of its own: ComfyUI 0.38 throttles a bar's updates but
    always sends its first and last."""

    def __init__(self, total: int, notes: Iterable[str] = ()):
        self.total = max(int(total), 1)
        self.notes = list(notes)
        self.offset = 0
        self.per_pass = False
        self.bar = comfy.utils.ProgressBar(self.total) if IN_COMFYUI else None
        self.previewer = None
        if IN_COMFYUI:
            try:
                import comfy.latent_formats as latent_formats  # type: ignore
                import latent_preview  # type: ignore

                self.previewer = latent_preview.get_previewer(mm.get_torch_device(), latent_formats.LTXV())
            except Exception as e:
                logger.debug("LTX-Video (stack): no latent previews (%s)", e)

    def show_notes(self, *more: str) -> None:
        show_text("\n".join(self.notes + list(more)))

    def begin_pass(self, info) -> None:
        """`info`: ltx_core's PassInfo of the pass about to start."""
        self.per_pass, self.offset, self.total = True, int(info.steps_before), max(int(info.steps), 1)
        self.show_notes(info.label)
        if IN_COMFYUI:
            self.bar = comfy.utils.ProgressBar(self.total)
        self._send(0, None)

    def __call__(self, step: int, total: int | None = None, latents: torch.Tensor | None = None) -> None:
        if self.per_pass:
            step -= self.offset
        elif total is not None:
            self.total = max(int(total), 1)
        self._send(int(step), latents)

    def _send(self, step: int, latents: torch.Tensor | None) -> None:
        if not IN_COMFYUI:
            for listener in list(PROGRESS_LISTENERS):
                listener(step, self.total, latents)
            return
        preview = None
        if self.previewer is not None and latents is not None and latents.dim() == 5:
            try:
                frame = latents[:1, :, latents.shape[2] // 2].float()
                preview = self.previewer.decode_latent_to_preview_image("JPEG", frame)
            except Exception as e:
                logger.debug("LTX-Video (stack): preview failed (%s)", e)
                self.previewer = None
        self.bar.update_absolute(step, self.total, preview)
