"""Temporal smoothing of mattes: online (EMA, flow-warped EMA) and look-ahead (file mode) smoothers."""

from .carry import MaskCarrier
from .flow_smoother import FlowAligner, FlowSmoother
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
    "FlowAligner",
    "FlowSmoother",
    "LookaheadSmoother",
    "MaskCarrier",
    "PassthroughSmoother",
    "Smoother",
    "SmootherKind",
    "detect_scene_cut",
    "ema",
    "make_smoother",
]
