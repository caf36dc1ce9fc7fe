"""Accuracy and temporal-stability metrics for predicted alphas (``birefvid.eval.readers`` scores files on disk)."""

from birefvid.eval.metrics import (
    Evaluator,
    as_alpha,
    boundary_band,
    boundary_f,
    boundary_iou,
    dtssd,
    evaluate,
    flicker_index,
    iou,
    mae,
)

__all__ = ["Evaluator", "as_alpha", "boundary_band", "boundary_f", "boundary_iou", "dtssd", "evaluate", "flicker_index", "iou", "mae"]
