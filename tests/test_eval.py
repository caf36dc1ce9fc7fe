"""Metrics: exact values on hand-made masks, stream handling, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from birefvid.data import make_clip
from birefvid.errors import DataError
from birefvid.eval import evaluate, iou, mae


def _square(h=32, w=32, x0=8, x1=24):
    m = np.zeros((h, w), np.float32)
    m[8:24, x0:x1] = 1.0
    return m


def test_iou_and_mae_values():
    gt = _square()
    assert iou(gt, gt) == 1.0 and mae(gt, gt) == 0.0
    half = _square(x0=16, x1=32)  # overlaps the gt in 16x8 of a 16x24 union
    assert iou(half, gt) == pytest.approx(8 / 24)
    assert mae(half, gt) == pytest.approx(2 * 16 * 8 / 1024)
    assert iou(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0  # both empty: perfect
    assert iou((gt * 255).astype(np.uint8), gt) == 1.0  # uint8 input accepted
    assert iou(gt * 0.4, gt) == 0.0  # below the 0.5 threshold
    assert iou(gt * 0.4, gt, threshold=0.3) == 1.0


def test_evaluate_perfect_and_degraded_clip():
    gts = [m for _, m in make_clip(5, 4, (48, 48))]
    perfect = evaluate(gts, gts)
    assert perfect["frames"] == 4
    assert perfect["iou"] == pytest.approx(1.0) and perfect["mae"] == pytest.approx(0.0)
    assert perfect["dt_mae"] == pytest.approx(0.0)
    assert perfect["s_measure"] > 0.95 and perfect["max_f"] > 0.95  # soft gt vs its binarized self
    noisy = [np.clip(g + np.random.default_rng(i).normal(0, 0.3, g.shape), 0, 1) for i, g in enumerate(gts)]
    worse = evaluate(noisy, gts)
    assert worse["iou"] < perfect["iou"] and worse["mae"] > 0.1 and worse["dt_mae"] > 0.1
    assert worse["s_measure"] < perfect["s_measure"]


def test_evaluate_without_sod_metrics_and_single_frame():
    res = evaluate([_square()], [_square()], sod=False)
    assert set(res) == {"frames", "iou", "mae", "mse", "rvm_mad", "rvm_mse"}  # no dt_mae, dtssd or rvm_dtssd for one frame


def test_evaluate_errors():
    with pytest.raises(DataError, match="differ in length: ground truth continue after frame 1"):
        evaluate([_square()], [_square(), _square()])
    with pytest.raises(DataError, match="frame 0: prediction is 16x32 but ground truth is 32x32"):
        evaluate([np.zeros((32, 16), np.float32)], [_square()])
    with pytest.raises(DataError, match="no frames"):
        evaluate([], [])
    with pytest.raises(DataError, match=r"pred\[0\] must be an \(H, W\) mask"):
        evaluate([np.zeros((2, 2, 3))], [np.zeros((2, 2))])
