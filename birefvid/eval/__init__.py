"""Accuracy and temporal-stability metrics for predicted alphas (``birefvid.eval.readers`` scores files on disk)."""

from birefvid.eval.metrics import (
    Evaluator,
    as_alpha,
    boundary_band,
    boundary_f,
    boundary_iou,
    connectivity_error,
    dtssd,
    evaluate,
    flicker_index,
    gradient_error,
    iou,
    mae,
)

__all__ = [
    "Evaluator", "as_alpha", "boundary_band", "boundary_f", "boundary_iou", "connectivity_error", "dtssd", "evaluate", "flicker_index",
    "gradient_error", "iou", "mae",
]
