"""The OpenVINO runtime side: one Core per process, device checks, compiled models."""
from __future__ import annotations

import functools
import sys
from pathlib import Path

from .cache import cache_root
from .settings import OV_DEVICES_HELP, OVSettings


@functools.lru_cache(maxsize=1)
def core():
    import openvino as ov

    return ov.Core()


def check_device(device: str) -> None:
    """A ValueError naming the devices OpenVINO sees here when `device` is not among them (AUTO always is)."""
    if device == "AUTO":
        return
    available = core().available_devices
    if device not in available and not (device == "GPU" and any(d.startswith("GPU") for d in available)):
        raise ValueError(f"OpenVINO device {device!r} is not available on this machine (OpenVINO sees "
                         f"{', '.join(available) or 'none'}); choose {OV_DEVICES_HELP} from those, e.g. CPU")


def compile_ir(xml: Path, settings: OVSettings):
    """An infer request of the IR at `xml` compiled for the settings' device. GPU kernels are cached on disk next
    to the IR (their compilation takes minutes); CPU compilation is quick and its cache would duplicate the weights."""
    config = settings.compile_config()
    if settings.device.startswith("GPU"):
        config["CACHE_DIR"] = str(cache_root() / "gpu-kernels")
    return core().compile_model(str(xml), settings.device, config).create_infer_request()


def drop_mapped_pages(xml: Path) -> int:
    """Give back the resident pages of the IR's weight file, which OpenVINO maps read-only; returns the bytes of
    mapping advised. Call after the first inference: by then the plugin has packed the weights into memory of its
    own, and the mapped copy would otherwise stay resident next to it (twice the weights in RSS). The pages are clean
    file pages, so should OpenVINO read them again they come back from the file: never a wrong result. Linux only
    (elsewhere a no-op)."""
    if not sys.platform.startswith("linux"):
        return 0
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madv_dontneed = 4
    weights = str(Path(xml).with_suffix(".bin").resolve())
    advised = 0
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].strip() == weights and "w" not in fields[1]:
                start, end = (int(x, 16) for x in fields[0].split("-"))
                if libc.madvise(start, end - start, madv_dontneed) == 0:
                    advised += end - start
    return advised
