"""Inference engines for BiRefNet: eager PyTorch, or the ONNX export run by OpenVINO or ONNX Runtime.

``open_engine`` turns a loaded model plus (backend, precision, device) into a callable that maps
normalised frames to logits; ``choose`` resolves "auto" for this machine.
"""

from .choice import choose_backend, choose_precision, cpu_has_native_bf16
from .engines import Engine, open_engine
from .export import cached_onnx, export_file, export_onnx

__all__ = [
    "Engine",
    "cached_onnx",
    "choose_backend",
    "choose_precision",
    "cpu_has_native_bf16",
    "export_file",
    "export_onnx",
    "open_engine",
]
