"""BiRefNet models, backbones, published variants and weight loading.

The names below are imported on first use (PEP 562): ``models.registry`` (the cards ``--model`` names) and
``models.names`` then load without torch, so ``birefvid models`` lists them, and ``models --download`` refuses a
mistyped name, without 1.5 s of torch's import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from birefvid.lazy_names import lazy_names

if TYPE_CHECKING:  # what type checkers see of the lazy names below (else Any: no checks; the package ships py.typed)
    from .backbones import BACKBONES, backbone_channels  # noqa: F401
    from .birefnet import BiRefNet, TrainOutput  # noqa: F401

# each public name and the module of this package it comes from
_WHERE = {"BACKBONES": "backbones", "backbone_channels": "backbones", "BiRefNet": "birefnet", "TrainOutput": "birefnet"}


__getattr__, __dir__ = lazy_names(__name__, _WHERE, globals())

__all__ = sorted(_WHERE)
