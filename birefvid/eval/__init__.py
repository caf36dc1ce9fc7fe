"""Accuracy and temporal-stability metrics for predicted alphas."""

from birefvid.eval.metrics import Evaluator, as_alpha, evaluate, iou, mae

__all__ = ["Evaluator", "as_alpha", "evaluate", "iou", "mae"]
