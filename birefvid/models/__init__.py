"""BiRefNet models, backbones, published variants and weight loading.

The names below are imported on first use (PEP 562): ``models.registry`` (the cards ``--model`` names) and
``models.names`` then load without torch, so ``birefvid models`` lists them, and ``models --download`` refuses a
mistyped name, without 1.5 s of torch's import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers see of the lazy names below (else Any: no checks; the package ships py.typed)
    from .backbones import BACKBONES, backbone_channels  # noqa: F401
    from .birefnet import BiRefNet, TrainOutput  # noqa: F401

# each public name and the module of this package it comes from
_WHERE = {"BACKBONES": "backbones", "backbone_channels": "backbones", "BiRefNet": "birefnet", "TrainOutput": "birefnet"}


def __getattr__(name: str) -> Any:
    """``name`` from its module, imported now; a submodule not imported yet is Python's to import."""
    if name not in _WHERE:
        raise AttributeError(f"module 'birefvid.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"birefvid.models.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The names imported so far and the lazy ones: ``dir()``, ``help()`` and a notebook's completion list them all,
    as they did when this package imported them eagerly."""
    return sorted(set(globals()) | set(_WHERE))


__all__ = sorted(_WHERE)
