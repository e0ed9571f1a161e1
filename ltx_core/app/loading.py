"""Loading the video model with its options: weight dtype, fp8 matmuls, torch.compile. Options that cannot work
are refused before any weight is read."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..loader.checkpoint import Checkpoint, Companion, load_checkpoint, transformer_only
from ..loader.errors import ModelFileError
from ..loader.gguf_file import is_gguf
from ..loader.releases import RELEASE_CHOICES, vae_generation
from ..loader.text_encoder_files import load_text_encoder
from ..loader.vae_file import load_vae_file
from ..loader.precision import FP8, FP8_COMPUTE, parse_dtype
from ..model.transformer import inductor_unavailable
from ..defaults import BACKENDS, OV_WEIGHTS
from ..openvino import OVSettings, OVTransformer, backend_problem, decoder_to_openvino, openvino_text_encoder
from ..openvino.cache import file_identity


class OptionError(ValueError):
    """A load or run option that cannot be used; `option` names it (each front end shows its own name for it)."""

    def __init__(self, option: str, message: str):
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class LoadOptions:
    """How to load a checkpoint: weight dtype (fp8: storage, computed in bf16), the VAE's (None: the same, bf16
    next to fp8), where the weights go, where the model runs (compile target; default `device`), fp8 matmuls
    (float8_e4m3fn weights only), regional torch.compile of the blocks. `backend` "openvino": the transformer is
    converted from float32 weights to an OpenVINO model with `ov_weights` (`OV_WEIGHTS`) run on `ov_device`, and so
    is the VAE's decoder; the VAE's encoder (image conditioning) stays in torch with `vae_dtype` (default: `dtype`)."""

    dtype: str | torch.dtype = torch.bfloat16
    vae_dtype: str | torch.dtype | None = None
    device: str | torch.device = "cpu"
    compute_device: str | torch.device | None = None
    fp8_matmul: bool = False
    compile: bool = False
    release: str = "auto"  # for files without a config (GGUF, transformer-only): `releases.RELEASE_CHOICES`
    backend: str = "torch"
    ov_device: str = "CPU"
    ov_weights: str = "int8"

    def check(self) -> None:
        """What can be known wrong before loading: OptionError naming the option."""
        dtype = parse_dtype(self.dtype)
        if self.fp8_matmul and dtype != torch.float8_e4m3fn:
            raise OptionError("fp8_matmul", f"fp8 matmuls need fp8 weights, but the weights are loaded as "
                                            f"{str(dtype).removeprefix('torch.')}: load the checkpoint with dtype "
                                            "float8_e4m3fn")
        if self.compile:
            problem = inductor_unavailable(torch.device(self.compute_device or self.device).type)
            if problem:
                raise OptionError("compile", f"cannot compile the transformer: {problem}")
        if self.release not in RELEASE_CHOICES:
            raise OptionError("release", f"unknown release {self.release!r}; choose one of "
                                         f"{', '.join(RELEASE_CHOICES)}")
        if self.backend not in BACKENDS:
            raise OptionError("backend", f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        if self.backend == "openvino":
            self._check_openvino(dtype)

    def _check_openvino(self, dtype: torch.dtype) -> None:
        problem = OVSettings(self.ov_device, self.ov_weights).problem()
        if problem:
            raise OptionError(*problem)
        if dtype in FP8:
            raise OptionError("dtype", f"the OpenVINO backend converts float32 weights and compresses them itself: "
                                       f"instead of {str(dtype).removeprefix('torch.')} storage use ov_weights "
                                       f"{' or '.join(OV_WEIGHTS[1:])} with dtype float32 or bfloat16")
        for option, what in (("fp8_matmul", "fp8 matmuls"), ("compile", "torch.compile")):
            if getattr(self, option):
                raise OptionError(option, f"{what} is for the torch backend; OpenVINO compiles the model for its "
                                          f"device itself: turn {option} off, or use the torch backend")
        problem = backend_problem(self.ov_weights)
        if problem:
            raise OptionError("backend", problem)


def load_video_model(path, options: LoadOptions, vae_path=None) -> Checkpoint:
    """A transformer with its VAE, options applied: from one checkpoint, or a transformer-only file (GGUF or
    safetensors) with the VAE from `vae_path` (which also replaces a checkpoint's own VAE)."""
    options.check()
    if vae_path is None and transformer_only(path):
        raise ModelFileError(path, "holds only the transformer, no VAE: give the VAE file with it (the VAE loader, "
                                   "--vae_path), or pick a full LTX-Video checkpoint")
    vae = None
    if vae_path is not None:
        vae = load_vae_file(vae_path, device=options.device, dtype=companion_dtype(options.vae_dtype or options.dtype))
    ck = load_model_file(path, options, vae and vae.vae.config)
    if vae is not None:
        check_vae_fits(ck, vae.vae.config, vae.path)
        if ck.vae is not None:
            ck.notes.append(f"the checkpoint's VAE replaced by {vae.path}")
        ck.vae, ck.config = vae.vae, {**ck.config, "vae": vae.config["vae"]}
        if options.backend == "openvino":
            ck.notes.append(_vae_decoder_to_openvino(ck.vae, vae.path, options, lambda: load_vae_file(
                vae.path, dtype=torch.float32).vae.decoder))
    return ck


def load_model_file(path, options: LoadOptions, vae_config=None) -> Checkpoint:
    """The transformer of a checkpoint or a transformer-only file (with the checkpoint's VAE if it has one), its
    options applied. `vae_config`: the VAE that will decode for it, which tells a file without a config its release."""
    options.check()
    if options.backend == "openvino" and is_gguf(path):
        raise OptionError("backend", f"{Path(path).name}: a GGUF file's quantized weights cannot be converted to "
                                     "OpenVINO; use the original .safetensors checkpoint with ov_weights int8 or int4 "
                                     "(OpenVINO compresses the weights itself), or the torch backend for this file")
    # OpenVINO converts the transformer from the file itself (or reads its cache): here it is only checked, not read.
    ck = load_checkpoint(path, device=options.device, dtype=options.dtype, vae_dtype=options.vae_dtype,
                         companion=Companion(options.release, vae_config),
                         transformer_device="meta" if options.backend == "openvino" else None)
    if ck.transformer is None:
        raise ModelFileError(path, "holds only a VAE, no transformer; pick a full LTX-Video checkpoint")
    if options.backend == "openvino":
        return _to_openvino(ck, path, options, vae_config)
    if options.fp8_matmul:
        ck.transformer.use_fp8_matmul()
    if options.compile:
        ck.transformer.compile_blocks(device_type=torch.device(options.compute_device or options.device).type)
    return ck


def _to_openvino(ck: Checkpoint, path, options: LoadOptions, vae_config) -> Checkpoint:
    """The checkpoint with its transformer and VAE decoder run by OpenVINO. The torch weights are freed here; a graph
    not yet in the disk cache is converted from the file loaded again in float32 (only the first run with a file pays
    that)."""
    settings = OVSettings(options.ov_device, options.ov_weights)

    def float32_model():
        return load_checkpoint(path, dtype=torch.float32, companion=Companion(options.release, vae_config)).transformer

    ck.transformer = OVTransformer(ck.transformer.config, file_identity(path), settings, float32_model)
    ck.notes.append(f"transformer: OpenVINO, {settings.weights} weights on {settings.device}")
    if ck.vae is not None and vae_config is None:  # else another file's VAE decodes (load_video_model converts it)
        ck.notes.append(_vae_decoder_to_openvino(ck.vae, path, options, lambda: load_checkpoint(
            path, dtype=torch.float32, companion=Companion(options.release), transformer_device="meta").vae.decoder))
    return ck


def _vae_decoder_to_openvino(vae, path, options: LoadOptions, float32_decoder) -> str:
    """The VAE of the file at `path` with its decoder on OpenVINO, keyed on the file; the note saying where it runs."""
    return decoder_to_openvino(vae, file_identity(path), OVSettings(options.ov_device, options.ov_weights),
                               float32_decoder)


def load_text_encoder_on_backend(path, options: LoadOptions, device, dtype, tokenizer_path=None):
    """The T5 encoder of `path` run by the options' backend: for torch, its weights on `device` in `dtype`; for
    openvino only checked here (its weights stay unread) and converted from the file on the first run, read from
    the disk cache after."""
    if options.backend != "openvino":
        return load_text_encoder(path, device=device, dtype=dtype, tokenizer_path=tokenizer_path)
    skeleton = load_text_encoder(path, device="meta", dtype=torch.float32, tokenizer_path=tokenizer_path)
    return openvino_text_encoder(skeleton, path, OVSettings(options.ov_device, options.ov_weights))


def check_vae_fits(ck: Checkpoint, vae_config, vae_name) -> None:
    """A VAE from another file must be of the generation the model's own config names, where it names one."""
    own = ck.config.get("vae")
    if own and vae_generation(own) != vae_generation(vae_config):
        raise ModelFileError(vae_name, f"this VAE is of the {vae_generation(vae_config)} generation, but "
                                       f"{Path(ck.path).name} goes with the {vae_generation(own)} VAE: its latents "
                                       "would not decode")


def companion_dtype(dtype) -> torch.dtype:
    """The dtype for the VAE and the upsampler next to a transformer loaded in `dtype` (fp8 is for the
    transformer's blocks only)."""
    dtype = parse_dtype(dtype)
    return FP8_COMPUTE if dtype in FP8 else dtype
