"""birefvid: cut subjects out of images, video files and live streams with BiRefNet.

The public API is imported lazily so that ``import birefvid`` stays cheap (no torch at import).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .errors import (
    BirefvidError,
    ConfigError,
    DataError,
    OfflineError,
    PipelineError,
    SinkError,
    SourceError,
    WeightsError,
    WeightsNotFoundError,
)

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
