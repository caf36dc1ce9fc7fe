"""Temporal smoothing of mattes: online (EMA) and look-ahead (file mode) smoothers."""

from .smoothing import (
    EmaSmoother,
    LookaheadSmoother,
    PassthroughSmoother,
    Smoother,
    SmootherKind,
    detect_scene_cut,
    ema,
    make_smoother,
)

__all__ = [
    "EmaSmoother",
    "LookaheadSmoother",
    "PassthroughSmoother",
    "Smoother",
    "SmootherKind",
    "detect_scene_cut",
    "ema",
    "make_smoother",
]
