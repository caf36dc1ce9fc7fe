"""What "auto" means for the backend and the precision on this machine.

Measured with ``birefvid bench`` on an x86 CPU with AVX-512 BF16 (see the README; Swin-T at 512²):
OpenVINO runs the export 2.5x faster than eager PyTorch in fp32, and bf16 another 1.6-1.8x. PyTorch stays the
engine on CUDA and MPS, where it has the kernels (and CUDA streams) we rely on.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import platform
from pathlib import Path

import torch

from ..errors import ConfigError, option
from ..job import BACKENDS

log = logging.getLogger(__name__)

BACKEND_ENV = "BIREFVID_BACKEND"  # what "auto" picks on CPU, e.g. torch to skip the ONNX export


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 in hardware (AVX-512 BF16 or AMX), where bf16 is faster than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    if flags:
        return "avx512_bf16" in flags or "amx_bf16" in flags
    if _installed("openvino"):  # no /proc (macOS, Windows): ask OpenVINO's CPU plugin
        from .ov_core import openvino_core

        return "BF16" in openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return False


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


def choose_backend(backend: str, device: torch.device) -> str:
    """Resolve ``auto`` (``$BIREFVID_BACKEND``, else OpenVINO on x86 CPUs, else torch); check the choice works here."""
    if backend == "auto":
        wanted = os.environ.get(BACKEND_ENV, "").strip().lower()
        if wanted not in ("", "auto") and wanted not in BACKENDS:  # the error named --backend, which the user had not given
            raise ConfigError(f"{BACKEND_ENV}={wanted!r} is not a backend; set it to one of {', '.join(BACKENDS)}, or unset it")
        if wanted not in ("", "auto") and device.type == "cpu":
            backend = wanted
        elif device.type == "cpu" and _x86() and _installed("openvino") and _installed("onnxscript"):
            return "openvino"
        else:
            return "torch"
    if backend == "torch":
        return backend
    if backend == "torch-compile":
        if not hasattr(torch, "compile"):
            raise ConfigError(f"{option('backend', 'torch-compile')} needs PyTorch 2 or later; use {option('backend', 'torch')}")
        return backend
    if backend == "openvino":
        if device.type != "cpu":
            raise ConfigError(f"{option('backend', 'openvino')} runs on the CPU here; use {option('device', 'cpu')} or {option('backend', 'torch')}")
        _need("openvino", "openvino")
    elif backend == "onnxruntime":
        _need("onnxruntime", '"birefvid[onnxruntime]"' if device.type == "cpu" else "onnxruntime-gpu")
        if device.type == "cuda":
            _need_ort_cuda()
    else:
        raise ConfigError(f"unknown {option('backend')} {backend!r}; use auto, torch, torch-compile, openvino or onnxruntime")
    _need("onnxscript", "onnxscript")  # the ONNX export both need
    return backend


def _need(module: str, install: str) -> None:
    """ConfigError naming what to ``pip install`` (a package, or birefvid's extra for it) unless ``module`` imports."""
    if not _installed(module):
        raise ConfigError(f"this backend needs the {module} package: pip install {install}")


def _need_ort_cuda() -> None:
    """Refuse ONNX Runtime on CUDA when its package has no CUDA provider (the CPU-only ``onnxruntime``):
    the session would run on the CPU without a word while the report says cuda."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise ConfigError(
            f"this onnxruntime package runs on the CPU only (providers: {', '.join(ort.get_available_providers())}); "
            f"for {option('device', 'cuda')} install onnxruntime-gpu in its place, or use {option('backend', 'torch')}"
        )


def choose_precision(precision: str, backend: str, device: torch.device) -> str:
    """Resolve ``auto`` to fp32/fp16/bf16 for this backend and device, and refuse combinations that have no kernels."""
    if precision == "auto":
        if device.type == "cuda":
            return "fp32" if backend == "onnxruntime" else "fp16"
        if device.type == "cpu" and backend in ("torch", "torch-compile", "openvino") and cpu_has_native_bf16():
            return "bf16"
        return "fp32"
    if backend == "onnxruntime" and precision != "fp32":
        raise ConfigError(f"{option('backend', 'onnxruntime')} runs fp32 only; use {option('precision', 'fp32')} or another backend")
    if backend == "openvino" and precision == "fp16":
        raise ConfigError(f"{option('backend', 'openvino')} on the CPU runs fp32 or bf16; use {option('precision', 'bf16')} or fp32")
    if precision == "bf16" and device.type == "cuda" and torch.cuda.get_device_capability(device)[0] < 8:
        # native bf16 starts at Ampere (8.0); before it torch emulates it, far slower than fp16
        log.warning(f"{option('precision', 'bf16')}: this GPU (compute capability {'.'.join(map(str, torch.cuda.get_device_capability(device)))}) "
                    f"has no bf16 units and emulates it; {option('precision', 'fp16')} is its fast precision")  # fmt: skip
    if precision == "fp16" and device.type == "cpu":
        # PyTorch's CPU convolutions have no fast fp16 kernel on most CPUs: tiny at 256² took 56 s a
        # frame against 0.24 s in fp32 on this project's Zen 5 CPU, with nothing said while it crawled
        log.warning(f"{option('precision', 'fp16')} on the CPU runs PyTorch's slow fp16 kernels (200x slower than fp32 here); "
                    f"use {option('precision', 'bf16')} or fp32 there: fp16 is for GPUs")  # fmt: skip
    return precision
