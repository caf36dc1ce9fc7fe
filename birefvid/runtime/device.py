"""Choosing the device and the numeric precision the model runs in."""

from __future__ import annotations

import logging
from typing import Optional

import torch

from ..errors import ConfigError, option
from ..job import PRECISIONS, Precision

__all__ = ["DTYPES", "Precision", "pick_device", "pick_dtype"]

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_SAID: set[str] = set()  # "running on the CPU" lines given: once a process (batch checks the device, then its model picks it)


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` -> cuda, then Apple mps, then cpu (saying so once a process for a GPU this PyTorch cannot run);
    an explicit name must be available."""
    if device == "auto":
        if torch.cuda.is_available():
            unsupported = _unsupported_gpu(torch.cuda.current_device())
            if unsupported is None:
                return torch.device("cuda")
            if unsupported not in _SAID:
                _SAID.add(unsupported)
                log.warning(f"{unsupported}: running on the CPU")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"unknown {option('device')} {device!r}; use auto, cpu, cuda, cuda:N or mps") from exc
    if dev.type not in ("cpu", "cuda", "mps"):
        # torch names more device types (xpu, meta, hpu ...): the pipeline has no code for them, and a
        # build without one failed later with a traceback ("Torch not compiled with XPU enabled")
        raise ConfigError(f"{option('device')} {device!r} is not supported; use auto, cpu, cuda, cuda:N or mps")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device} requested but CUDA is not available here; use {option('device', 'cpu')} or auto")
    if dev.type == "cuda" and dev.index is not None:
        _check_gpu_index(device, dev.index)
    if dev.type == "cuda":
        unsupported = _unsupported_gpu(torch.cuda.current_device() if dev.index is None else dev.index)
        if unsupported is not None:
            raise ConfigError(f"{unsupported}; use {option('device', 'cpu')}")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"device {device} requested but Apple MPS is not available here; use {option('device', 'cpu')} or auto")
    return dev


def _check_gpu_index(device: str, index: int) -> None:
    """Refuse ``cuda:N`` past the GPUs this process sees: CUDA would fail later with "invalid device ordinal"."""
    count = torch.cuda.device_count()
    if index >= count:
        seen = f"only cuda:0 to cuda:{count - 1}" if count > 1 else "only cuda:0"
        raise ConfigError(f"device {device} requested but this process sees {count} GPU{'s' if count != 1 else ''} "
                          f"({seen}; CUDA_VISIBLE_DEVICES renumbers them from 0)")  # fmt: skip


def _unsupported_gpu(index: int) -> Optional[str]:
    """Why this PyTorch build cannot run on GPU ``index``, or None when it can.

    A wheel carries kernels for some compute capabilities only (PyPI's CUDA 13 build: sm_75 and up, no
    Pascal or Volta). torch.cuda.is_available() is True on an older GPU all the same, and torch only
    warns: the first kernel then failed with "no kernel image is available for execution on the
    device". CUDA's rule: a cubin for sm_XY runs on X.Z with Z >= Y, PTX (compute_XY) on anything >= X.Y.
    """
    arch = torch.cuda.get_arch_list()
    if not arch or torch.version.cuda is None:  # no list to judge by (ROCm, a CPU build)
        return None
    major, minor = torch.cuda.get_device_capability(index)
    have = 10 * major + minor

    def level(name: str) -> int:
        return int("".join(c for c in name.split("_", 1)[1] if c.isdigit()))

    if any(a.startswith("sm_") and level(a) // 10 == major and level(a) <= have for a in arch):
        return None
    if any(a.startswith("compute_") and level(a) <= have for a in arch):
        return None
    return (f"GPU cuda:{index} ({torch.cuda.get_device_name(index)}, sm_{have}) has no kernels in this PyTorch build "
            f"(it runs {' '.join(arch)}); a PyTorch build for it is at pytorch.org")  # fmt: skip


def pick_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The torch dtype of a precision name. ``Segmenter`` passes one already resolved by
    ``backends.choose_precision`` (which picks bf16 on CPUs with native bf16); a bare ``auto`` here
    means fp16 on CUDA and fp32 elsewhere."""
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if precision not in DTYPES:
        raise ConfigError(f"unknown {option('precision')} {precision!r}; use {', '.join(PRECISIONS)}")
    return DTYPES[precision]
