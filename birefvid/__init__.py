"""birefvid: cut subjects out of images, video files and live streams with BiRefNet.

The public API is imported lazily so that ``import birefvid`` stays cheap (no torch at import).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import (
    BirefvidError,
    ConfigError,
    DataError,
    OfflineError,
    OutputKeptError,
    PipelineError,
    SinkError,
    SourceError,
    WeightsError,
    WeightsNotFoundError,
)

if TYPE_CHECKING:  # what type checkers see of the lazy names below (else Any: no checks, and mypy --strict's no-any-return)
    from .models import BiRefNet
    from .models.registry import list_models
    from .models.weights import load_pretrained
    from .runtime import Segmenter

__version__ = "0.1.0"

_LAZY = {
    "BiRefNet": "birefvid.models",
    "Segmenter": "birefvid.runtime",
    "list_models": "birefvid.models.registry",
    "load_pretrained": "birefvid.models.weights",
}

__all__ = [
    "BiRefNet",
    "BirefvidError",
    "ConfigError",
    "DataError",
    "OfflineError",
    "OutputKeptError",
    "PipelineError",
    "Segmenter",
    "SinkError",
    "SourceError",
    "WeightsError",
    "WeightsNotFoundError",
    "list_models",
    "load_pretrained",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'birefvid' has no attribute {name!r}")
