"""Out of memory in each backend's own words: which errors say it, and the gist of what they say.

PyTorch raises ``torch.OutOfMemoryError`` on CUDA (and MPS), but a plain ``RuntimeError`` ("DefaultCPUAllocator:
can't allocate memory") on the CPU; NumPy and Python raise ``MemoryError``. ONNX Runtime raises its own classes
(``onnxruntime.capi.onnxruntime_pybind11_state.Fail``, ``RuntimeException``, ..., subclasses of ``Exception`` only)
with the allocator's words inside a status message: its arena's "Failed to allocate memory for requested buffer of
size N" or, past a ``gpu_mem_limit``, "Available memory of N is smaller than requested bytes of M"
(``bfc_arena.cc``, CPU and CUDA alike), CUDA's "CUDA failure 2: out of memory ; GPU=0 ; ..." (``cuda_call.cc``),
cuBLAS' and cuDNN's ``..._STATUS_ALLOC_FAILED`` (cuDNN 9: ``CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED``),
and a C++ ``std::bad_alloc``. PyTorch's own CUDA calls past its allocator say "CUDA error: out of memory", cuBLAS'
``CUBLAS_STATUS_ALLOC_FAILED`` or "cuDNN error: CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED" in a plain ``RuntimeError``. OpenVINO's CPU plugin raises a plain
``RuntimeError`` whose last line is ``cpu_memory.cpp``'s "Failed to allocate N bytes of memory", after its chain of
"Exception from src/...:N:" source locations (seen with 2026.4, as a model compiles and as it runs). Each of these is
one error line with advice (``Segmenter``), not a page of traceback.
"""

from __future__ import annotations

import re

import torch

ORT_ERRORS = "onnxruntime.capi.onnxruntime_pybind11_state"  # the module ONNX Runtime's Python exceptions live in
# ONNX Runtime's words for an allocation that failed; the gist shown is the match, without its source location
_ORT_GIST = re.compile(
    r"Failed to allocate memory[^\n]*?(?=$|\n)|Available memory of \d+ is smaller than requested bytes of \d+"
    r"|\w+ failure \d+: out of memory|\w+_STATUS_(?:ALLOC_FAILED|INTERNAL_ERROR_(?:DEVICE|HOST)_ALLOCATION_FAILED)|std::bad_alloc|bad allocation"
)
_TORCH_CPU = re.compile(r"DefaultCPUAllocator: (?:can't allocate memory|not enough memory)[^.]*")
# torch on CUDA past its caching allocator, as plain RuntimeErrors: cuBLAS creating its handle and workspace at the first
# matmul ("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`", TORCH_CUDABLAS_CHECK), and the
# CUDA runtime's cudaErrorMemoryAllocation ("CUDA error: out of memory", C10_CUDA_CHECK: torch.AcceleratorError), the
# usual words of a GPU another program fills; the first line is the gist (the rest is torch's CUDA_LAUNCH_BLOCKING advice)
# cuDNN 9's own words (AT_CUDNN_CHECK: "cuDNN error: " and cudnnGetErrorString) name no ALLOC_FAILED: its handle or a
# plan's workspace that cannot be had says CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED (HOST_ for the machine's)
_TORCH_CUDA = re.compile(r"^(?:CUDA|cuDNN) error: (?:out of memory|\w+_STATUS_(?:ALLOC_FAILED|INTERNAL_ERROR_(?:DEVICE|HOST)_ALLOCATION_FAILED)\b.*)$",
                         re.MULTILINE)
_OPENVINO = re.compile(r"Failed to allocate \d+ bytes of memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """True when ``exc`` says the device or the machine ran out of memory, in any backend's words."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    if isinstance(exc, RuntimeError) and (_TORCH_CPU.search(str(exc)) or _OPENVINO.search(str(exc)) or _TORCH_CUDA.search(str(exc))):
        return True
    return type(exc).__module__ == ORT_ERRORS and _ORT_GIST.search(str(exc)) is not None


def memory_said(exc: BaseException) -> str:
    """The gist of an out-of-memory error (what it tried to allocate, what the device holds), without torch's
    pages of advice or ONNX Runtime's and OpenVINO's source locations and function signatures."""
    said = str(exc).strip()
    found = (_ORT_GIST.search(said) if type(exc).__module__ == ORT_ERRORS
             else _TORCH_CPU.search(said) or _OPENVINO.search(said) or _TORCH_CUDA.search(said))  # fmt: skip
    if found is not None:
        return found.group(0).strip()[:200]
    return (said.splitlines() or ["out of memory"])[0].split(". Including", 1)[0][:200]
