"""Accuracy and temporal-stability metrics for predicted alphas against ground-truth masks.

Predictions and ground truth are (H, W) arrays: float in [0, 1] or uint8 in [0, 255]. IoU and
MAE are ours; S-measure and max F-measure come from pysodmetrics, fed the probabilities as
they are (no per-image min-max rescaling, which would hide a uniformly wrong or faint mask).
``dt_mae`` measures flicker: the mean |Δpred - Δgt| between consecutive frames, which is zero
when the prediction changes exactly as much as the truth does.
"""

from __future__ import annotations

from typing import Iterable, Optional

import numpy as np

from birefvid.errors import DataError


def as_alpha(a: np.ndarray, what: str = "array") -> np.ndarray:
    """(H, W) float32 in [0, 1] from float [0, 1] or uint8 [0, 255] input (a trailing 1-channel is dropped)."""
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim != 2:
        raise DataError(f"{what} must be an (H, W) mask, got shape {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float32) * np.float32(1 / 255)
    if not np.issubdtype(a.dtype, np.floating):
        raise DataError(f"{what} must be float in [0, 1] or uint8, got {a.dtype}")
    return np.clip(a.astype(np.float32), 0.0, 1.0)


def iou(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> float:
    """Intersection over union of the masks binarized at ``threshold``; 1.0 when both are empty."""
    p, g = as_alpha(pred, "pred") >= threshold, as_alpha(gt, "gt") >= threshold
    union = np.logical_or(p, g).sum()
    return 1.0 if union == 0 else float(np.logical_and(p, g).sum() / union)


def mae(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean absolute error between the soft masks, in alpha units [0, 1]."""
    return float(np.abs(as_alpha(pred, "pred") - as_alpha(gt, "gt")).mean())


class Evaluator:
    """Accumulates per-frame metrics over a stream of (pred, gt) pairs without keeping the frames."""

    def __init__(self, threshold: float = 0.5, sod: bool = True) -> None:
        self.threshold = threshold
        self._ious: list[float] = []
        self._maes: list[float] = []
        self._dts: list[float] = []
        self._prev: Optional[tuple[np.ndarray, np.ndarray]] = None
        self._sm = self._fm = None
        if sod:
            import py_sod_metrics  # imported here: only S/F-measures need it

            self._sm = py_sod_metrics.Smeasure()
            handler = py_sod_metrics.FmeasureHandler(with_dynamic=True, with_adaptive=False, beta=0.3)
            self._fm = py_sod_metrics.FmeasureV2(metric_handlers={"fm": handler})

    def step(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one frame; frames of a clip must come in order for ``dt_mae``."""
        i = len(self._ious)
        p, g = as_alpha(pred, f"pred[{i}]"), as_alpha(gt, f"gt[{i}]")
        if p.shape != g.shape:
            raise DataError(f"frame {i}: prediction is {p.shape[1]}x{p.shape[0]} but ground truth is "
                            f"{g.shape[1]}x{g.shape[0]}; resize predictions to the ground truth size")
        self._ious.append(iou(p, g, self.threshold))
        self._maes.append(float(np.abs(p - g).mean()))
        if self._prev is not None and self._prev[0].shape == p.shape:
            dp, dg = p - self._prev[0], g - self._prev[1]
            self._dts.append(float(np.abs(dp - dg).mean()))
        self._prev = (p, g)
        if self._sm is not None:
            gb = g >= 0.5
            self._sm.step(p, gb, normalize=False)
            self._fm.step(p, gb, normalize=False)

    def results(self) -> dict[str, float]:
        """Means over the frames so far: frames, iou, mae, dt_mae (if > 1 frame), s_measure, max_f."""
        if not self._ious:
            raise DataError("no frames were evaluated; check that predictions and ground truth are not empty")
        out = {"frames": float(len(self._ious)), "iou": float(np.mean(self._ious)), "mae": float(np.mean(self._maes))}
        if self._dts:
            out["dt_mae"] = float(np.mean(self._dts))
        if self._sm is not None:
            out["s_measure"] = float(self._sm.get_results()["sm"])
            out["max_f"] = float(np.max(self._fm.get_results()["fm"]["dynamic"]))
        return out


def evaluate(
    preds: Iterable[np.ndarray], gts: Iterable[np.ndarray], *, threshold: float = 0.5, sod: bool = True
) -> dict[str, float]:
    """Metrics of predicted alphas against ground truth, frame by frame; the two must be equally long."""
    ev = Evaluator(threshold, sod)
    sentinel = object()
    it_p, it_g = iter(preds), iter(gts)
    while True:
        p, g = next(it_p, sentinel), next(it_g, sentinel)
        if p is sentinel and g is sentinel:
            break
        if p is sentinel or g is sentinel:
            n = len(ev._ious)
            longer = "ground truth" if p is sentinel else "predictions"
            raise DataError(f"predictions and ground truth differ in length: {longer} continue after frame {n}")
        ev.step(p, g)  # type: ignore[arg-type]
    return ev.results()
