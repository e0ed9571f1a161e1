"""Model files from the Hugging Face hub, as the official `inference.py` gets them: what a pipeline config needs
(`files_for_config`) and `fetch_model_files`, through `huggingface_hub.hf_hub_download` (its cache, its tqdm progress
bars, HF_TOKEN, HF_ENDPOINT and HF_HUB_OFFLINE as huggingface_hub reads them).

The official configs name the T5 encoder as the PixArt repo, whose `text_encoder/` is a 19 GB float32 folder; the
same T5 v1.1 XXL comes here as one ComfyUI-style file, with the tokenizer from the PixArt repo's `tokenizer/` (the
tokenizer the official pipeline uses). huggingface_hub is imported on first download only: the node pack and the
CLI's argument checks never load network code.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..defaults import HF_REPO
from ..presets import OFFICIAL_CHECKPOINTS, OFFICIAL_UPSAMPLERS

# T5 v1.1 XXL as one file (ComfyUI's release); fp16 keeps the encoder's full range for the bf16 the recipes run it in.
T5_REPO = "comfyanonymous/flux_text_encoders"
T5_FILE = "t5xxl_fp16.safetensors"  # one of presets.OFFICIAL_TEXT_ENCODERS (tests/test_hub_download.py)
# The repo every official config names in text_encoder_model_name_or_path; only its tokenizer is fetched.
TOKENIZER_REPO = "PixArt-alpha/PixArt-XL-2-1024-MS"
TOKENIZER_FILES = ("tokenizer/spiece.model", "tokenizer/tokenizer_config.json", "tokenizer/special_tokens_map.json")
# Roles, as the pipeline loads them; a role of several files (the tokenizer) is fetched as one folder.
CHECKPOINT, UPSAMPLER, TEXT_ENCODER, TOKENIZER = "checkpoint", "upsampler", "text_encoder", "tokenizer"


@dataclass(frozen=True)
class HubFile:
    role: str
    repo_id: str
    filename: str
    revision: str = "main"

    def url(self, endpoint: str | None = None) -> str:
        from huggingface_hub import constants

        return f"{(endpoint or constants.ENDPOINT).rstrip('/')}/{self.repo_id}/resolve/{self.revision}/{self.filename}"


class DownloadError(ValueError):
    """A hub file could not be had: the message is one line naming the repo, the file, its URL and the cache folder
    it belongs in."""

    def __init__(self, file: HubFile, message: str):
        self.file = file
        super().__init__(message)


def text_encoder_files() -> list[HubFile]:
    """The single-file T5 encoder and its tokenizer."""
    return [HubFile(TEXT_ENCODER, T5_REPO, T5_FILE)] + [HubFile(TOKENIZER, TOKENIZER_REPO, f) for f in TOKENIZER_FILES]


def files_for_config(cfg: dict) -> list[HubFile]:
    """The hub files a pipeline config needs. Its checkpoint and spatial upscaler count when they are official
    Lightricks/LTX-Video file names (other names have no known place on the hub); the text encoder always."""
    files = []
    named = [(CHECKPOINT, cfg.get("checkpoint_path"), OFFICIAL_CHECKPOINTS)]
    if cfg.get("pipeline_type") == "multi-scale":
        named.append((UPSAMPLER, cfg.get("spatial_upscaler_model_path"), OFFICIAL_UPSAMPLERS))
    for role, value, official in named:
        name = Path(str(value)).name if value else None
        if name in official:
            files.append(HubFile(role, HF_REPO, name))
    return files + text_encoder_files()


def hub_cache_dir() -> Path:
    """Where huggingface_hub keeps its downloads (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def fetch_model_files(files, offline: bool = False, cache_dir=None, endpoint: str | None = None) -> dict[str, Path]:
    """Each file from the hub cache, downloaded first when it is not there (or when its revision moved on).
    Returns {role: local path}; a role of several files gives the folder they share. `offline` (or HF_HUB_OFFLINE)
    uses the cache only. `cache_dir`/`endpoint` default to huggingface_hub's own (HF_HUB_CACHE, HF_ENDPOINT).
    Any failure is a one-line DownloadError naming what to download and where to put it."""
    from huggingface_hub import constants, hf_hub_download

    offline = offline or constants.HF_HUB_OFFLINE
    cache = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    found: dict[str, list[Path]] = {}
    for f in files:
        try:
            path = hf_hub_download(f.repo_id, f.filename, revision=f.revision, cache_dir=cache,
                                   local_files_only=offline, endpoint=endpoint)
        except Exception as e:  # noqa: BLE001 - hub, disk and the HTTP client's transport errors share no base
            raise DownloadError(f, _failure_message(f, e, offline, cache, endpoint)) from None
        found.setdefault(f.role, []).append(Path(path))
    return {role: paths[0] if len(paths) == 1 else paths[0].parent for role, paths in found.items()}


def _failure_message(f: HubFile, error: Exception, offline: bool, cache: Path, endpoint: str | None) -> str:
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    url = f.url(endpoint)
    if isinstance(error, LocalEntryNotFoundError):
        if offline:
            why = "offline (HF_HUB_OFFLINE or --offline) and it is not in the cache"
        else:
            cause = error.__cause__ or error.__context__ or error
            why = f"the hub cannot be reached ({_first_line(cause)}) and it is not in the cache"
    elif isinstance(error, GatedRepoError):
        why = (f"the repo is gated: accept its terms at {url.split('/resolve/')[0]} and set HF_TOKEN to a token of "
               "that account")
    elif isinstance(error, RepositoryNotFoundError):
        why = "the repo was not found, or it needs a token: set HF_TOKEN"
    elif isinstance(error, (RevisionNotFoundError, EntryNotFoundError)):
        why = f"the hub has no such file at revision {f.revision!r}"
    elif isinstance(error, HfHubHTTPError):
        why = f"the hub answered HTTP {error.response.status_code}"
    else:
        why = _first_line(error)
    return (f"cannot get {f.filename} of Hugging Face repo {f.repo_id} ({url}): {why}; download it into the "
            f"Hugging Face cache {cache} (`hf download {f.repo_id} {f.filename} --cache-dir {cache}` on a machine "
            "that reaches the hub)")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
