"""Eval metrics: IoU, MAE, MSE, boundary IoU and F, Grad, Conn, dtSSD and flicker against hand-computed values; the SOD measures against pysodmetrics called directly."""

from __future__ import annotations

import math

import cv2
import numpy as np
import py_sod_metrics as sod
import pytest
from memory_growth import kept_by

from birefvid.errors import DataError
from birefvid.eval import Evaluator, boundary_band, boundary_f, boundary_iou, connectivity_error, dtssd, gradient_error, evaluate, flicker_index, iou, mae
from birefvid.eval import metrics
from birefvid.eval.metrics import boundary_width


def _box(h: int, w: int, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """Float mask with ones in rows r0..r1-1, columns c0..c1-1."""
    m = np.zeros((h, w), np.float64)
    m[r0:r1, c0:c1] = 1.0
    return m


def test_iou_by_hand():
    g = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], np.float32)
    p = np.array([[0, 0.9, 0.6, 0], [0.4, 0.7, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], np.float32)
    # at 0.5 the prediction is {(0,1), (0,2), (1,1)}: 2 of them in the 4-pixel truth, union 5
    assert iou(p, g) == pytest.approx(2 / 5)
    # at 0.3 (1,0) joins: 3 in the truth, union 5
    assert iou(p, g, threshold=0.3) == pytest.approx(3 / 5)
    assert iou((p * 255).round().astype(np.uint8), (g * 255).astype(np.uint8)) == pytest.approx(2 / 5)
    assert iou(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0  # nothing to find, nothing found


def test_mae_by_hand_in_every_input_type():
    p = np.array([[0.2, 1.0], [0.0, 0.5]])
    g = np.array([[0, 1], [1, 0]], np.float64)
    assert mae(p, g) == pytest.approx((0.2 + 0 + 1 + 0.5) / 4)
    assert mae(np.array([[51, 255], [0, 0]], np.uint8), g.astype(np.uint8) * 255) == pytest.approx((0.2 + 0 + 1 + 0) / 4)
    assert mae(np.array([[65535, 0]], np.uint16), np.array([[True, True]])) == pytest.approx(0.5)  # 16 bit, bool
    assert mae(np.array([[1.7, -3.0]]), np.array([[1.0, 0.0]])) == 0.0  # float input is clipped to [0, 1]


def test_uint8_masks_of_zeros_and_ones_are_masks_not_levels():
    """``(prob > 0.5).astype(np.uint8)`` is how masks are made in numpy: read as the levels 0 and 1/255 they were
    background everywhere, so two 0/1 masks that do not overlap scored IoU 1.0 and a 0/1 truth against probabilities
    IoU 0. They score as the same masks given as bool do, in every measure; an 8-bit matte (0..255) is unchanged."""
    g = np.zeros((32, 40), np.uint8)
    g[8:24, 8:24] = 1
    apart, half = np.roll(g, 20, axis=1), np.roll(g, 8, axis=1)  # no overlap; half of it
    assert iou(apart, g) == 0.0 and iou(half, g) == pytest.approx(1 / 3)
    assert mae(apart, g) == pytest.approx(2 * 256 / g.size)
    assert iou(half.astype(np.float32) * 0.9, g) == pytest.approx(1 / 3)  # probabilities against a 0/1 truth
    for fn in (boundary_iou, boundary_f, gradient_error, connectivity_error):
        assert fn(half, g) == pytest.approx(fn(half.astype(bool), g.astype(bool))), fn.__name__
    clip, bools = [g, half, apart], [m.astype(bool) for m in (g, half, apart)]
    assert evaluate(clip, clip[::-1]) == pytest.approx(evaluate(bools, bools[::-1]))
    assert dtssd(clip, clip[::-1]) == pytest.approx(dtssd(bools, bools[::-1]))
    assert mae(np.where(g > 0, np.uint8(255), np.uint8(0)), g) == 0.0  # 0/255 against 0/1: the same mask
    assert iou(np.where(g > 0, np.uint8(2), np.uint8(0)), g) == 0.0  # levels up to 2 are levels: faint, under 0.5


def test_boundary_band_and_iou_by_hand():
    assert boundary_width(10, 10) == 1  # round(0.02 * 14.1) = 0 -> at least 1
    assert boundary_width(480, 854) == 20  # DAVIS 480p: round(0.02 * 979.6)
    g = _box(10, 10, 2, 8, 2, 8) > 0  # 6x6 square: its 1-pixel ring has 36 - 16 = 20 pixels
    p = _box(10, 10, 2, 8, 3, 9) > 0  # the same square one column right
    assert boundary_band(g).sum() == 20 and not boundary_band(g)[3:7, 3:7].any()
    # the rings share rows 2 and 7 at columns 3..7 (10 pixels); union 20 + 20 - 10
    assert boundary_iou(p, g) == pytest.approx(10 / 30)
    assert iou(p, g) == pytest.approx(30 / 42)  # the areas agree far better than the outlines
    full = np.ones((10, 10), bool)
    assert boundary_band(full).sum() == 36  # the image border counts as outside
    assert boundary_iou(full, g) == 0.0 and boundary_iou(full, full) == 1.0
    assert boundary_iou(np.zeros((10, 10)), np.zeros((10, 10))) == 1.0
    big = _box(60, 80, 20, 30, 20, 30) > 0  # diagonal 100 -> d = 2: a 10x10 square keeps a 6x6 core
    assert boundary_band(big).sum() == 100 - 36


def _reference_band(mask: np.ndarray, ratio: float = 0.02) -> np.ndarray:
    """Cheng et al.'s mask_to_boundary: pad by one, erode d times with a 3x3 square, subtract."""
    h, w = mask.shape
    d = max(1, int(round(ratio * math.sqrt(h * h + w * w))))
    padded = cv2.copyMakeBorder(mask.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=d)[1 : h + 1, 1 : w + 1]
    return (mask.astype(np.uint8) - eroded) > 0


def test_boundary_band_equals_the_reference_construction():
    rng = np.random.default_rng(3)
    for shape in ((37, 91), (120, 160), (200, 150)):
        blobs = cv2.GaussianBlur(rng.random(shape), (0, 0), 6) > 0.5
        blobs[:, :3] = True  # touch the border too
        assert np.array_equal(boundary_band(blobs), _reference_band(blobs)), shape


def test_dtssd_and_flicker_by_hand():
    g = np.array([[1, 0], [0, 0]], np.float64)
    p0 = np.zeros((2, 2))
    p1 = np.array([[0.5, 0], [0, 0]])
    p2 = np.array([[0.5, 0.5], [0.5, 0.5]])
    # static truth: pair 1 sqrt(0.25 / 4) = 0.25, pair 2 sqrt(3 * 0.25 / 4)
    assert dtssd([p0, p1, p2], [g, g, g]) == pytest.approx((0.25 + math.sqrt(0.75 / 4)) / 2)
    # flicker: mean |Δpred| everywhere (truth static): 0.5 / 4, then 1.5 / 4
    assert flicker_index([p0, p1, p2], [g, g, g]) == pytest.approx((0.5 / 4 + 1.5 / 4) / 2)
    # the truth appears at (0, 0); the prediction follows it and also wakes up at (0, 1)
    g0, g1 = np.zeros((2, 2)), np.array([[1, 0], [0, 0]], np.float64)
    q1 = np.array([[1, 0.2], [0, 0]])
    assert dtssd([p0, q1], [g0, g1]) == pytest.approx(math.sqrt(0.04 / 4))  # only the 0.2 is unasked for
    assert flicker_index([p0, q1], [g0, g1]) == pytest.approx(0.2 / 3)  # 3 pixels where the truth held still
    assert dtssd([p0, g1], [g0, g1]) == 0.0 and flicker_index([p0, g1], [g0, g1]) == 0.0


def test_flicker_treats_a_one_step_truth_wobble_as_static():
    g0 = np.full((2, 2), 100, np.uint8)
    g1 = g0 + np.array([[1, 0], [0, 2]], np.uint8)  # +1/255 is still "unchanged", +2/255 is not
    p0, p1 = np.zeros((2, 2)), np.array([[0.1, 0.2], [0.3, 0.4]])
    assert flicker_index([p0, p1], [g0, g1]) == pytest.approx((0.1 + 0.2 + 0.3) / 3)  # the 3 static pixels
    with pytest.raises(DataError, match="no flicker value: the ground truth changes everywhere"):
        flicker_index([p0, p1], [np.zeros((2, 2)), np.ones((2, 2))])
    with pytest.raises(DataError, match="at least two frames"):
        dtssd([p0], [g0])


def test_dtssd_scale_against_the_rvm_formula():
    """RVM: 100 * sqrt(sum((dp - dg)^2) / numel) per frame, 0 for the first, averaged over T frames."""
    rng = np.random.default_rng(1)
    preds, gts = rng.random((5, 8, 6)), (rng.random((5, 8, 6)) > 0.5).astype(np.float64)
    rvm = [0.0] + [
        100 * math.sqrt((((preds[t] - preds[t - 1]) - (gts[t] - gts[t - 1])) ** 2).sum() / gts[t].size) for t in range(1, 5)
    ]
    assert np.mean(rvm) == pytest.approx(100 * 4 / 5 * dtssd(list(preds), list(gts)))
    ev = Evaluator(sod=False, keep_frames=True)
    for p, g in zip(preds, gts):
        ev.step(p, g)
    assert ev.results()["rvm_dtssd"] == pytest.approx(np.mean(rvm))  # RVM's number, as its tables print it
    assert [r["rvm_dtssd"] for r in ev.frames] == pytest.approx(rvm)


def test_evaluator_pairs_stay_within_a_clip():
    g = np.array([[1, 0], [0, 0]], np.float64)
    ev = Evaluator(sod=False, keep_frames=True)
    ev.step(np.zeros((2, 2)), g)
    ev.step(np.full((2, 2), 0.5), g)
    ev.new_clip()
    ev.new_part()
    first = ev.step(np.ones((2, 2)), g)  # a jump across the cut is no flicker
    assert "dtssd" not in first and "flicker" not in first and "dtssd" not in ev.frames[0]
    assert ev.frames[1]["dtssd"] == pytest.approx(0.5) and ev.frames[1]["flicker"] == pytest.approx(0.5)
    res = ev.results()
    assert res["frames"] == 3 and res["dtssd"] == pytest.approx(0.5)  # one pair only
    assert ev.results(part=True)["frames"] == 1 and "dtssd" not in ev.results(part=True)


def _soft_clip(n: int = 5, shape: tuple[int, int] = (48, 64), seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Moving binary truths (uint8 0/255) and soft, noisy uint8 predictions spanning 0..255."""
    rng = np.random.default_rng(seed)
    gts, preds = [], []
    for t in range(n):
        g = (_box(*shape, 10, 34, 8 + 4 * t, 40 + 4 * t) * 255).astype(np.uint8)
        blurred = cv2.GaussianBlur(g.astype(np.float64), (0, 0), 2.5) + rng.normal(0, 25, shape)
        p = np.clip(blurred, 0, 255).round().astype(np.uint8)
        p[0, 0], p[0, 1] = 0, 255  # spans the full range, so pysodmetrics' min-max rescaling is the identity
        gts.append(g)
        preds.append(p)
    return preds, gts


def _direct(preds: list[np.ndarray], gts: list[np.ndarray], normalize: bool) -> dict[str, float]:
    """pysodmetrics called directly: uint8 inputs (normalize=True) or pred / 255 and a boolean truth."""
    sm, em, wfm, mae_meter = sod.Smeasure(), sod.Emeasure(), sod.WeightedFmeasure(), sod.MAE()
    fm = sod.FmeasureV2(metric_handlers={"fm": sod.FmeasureHandler(with_dynamic=True, with_adaptive=False, beta=0.3)})
    for p, g in zip(preds, gts):
        args = (p, g) if normalize else (p / 255, g >= 128)
        for meter in (sm, em, wfm, mae_meter, fm):
            meter.step(*args, normalize=normalize)
    return {
        "s_measure": float(sm.get_results()["sm"]),
        "e_measure": float(em.get_results()["em"]["curve"].mean()),
        "weighted_f": float(wfm.get_results()["wfm"]),
        "max_f": float(fm.get_results()["fm"]["dynamic"].max()),
        "mae": float(mae_meter.get_results()["mae"]),
    }


@pytest.mark.parametrize("normalize", [False, True])
def test_sod_measures_equal_pysodmetrics_called_directly(normalize):
    preds, gts = _soft_clip()
    ours = evaluate(preds, gts)
    direct = _direct(preds, gts, normalize)
    for key, value in direct.items():
        assert ours[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
    assert 0.5 < ours["s_measure"] < 1 and 0.5 < ours["weighted_f"] < 1  # a real, imperfect score


def test_sod_measures_of_part_of_the_frames_and_of_each_frame():
    preds, gts = _soft_clip(6, seed=4)
    ev = Evaluator()
    per_frame = [ev.step(p, g) for p, g in zip(preds[:2], gts[:2])]
    ev.new_part()
    per_frame += [ev.step(p, g) for p, g in zip(preds[2:5], gts[2:5])]
    direct = _direct(preds[2:5], gts[2:5], normalize=False)
    part = ev.results(part=True)
    for key, value in direct.items():
        assert part[key] == pytest.approx(value, rel=1e-12), key
    one = _direct(preds[3:4], gts[3:4], normalize=False)
    for key, value in one.items():
        assert per_frame[3][key] == pytest.approx(value, rel=1e-12), key


def test_faint_predictions_are_not_rescaled():
    preds, gts = _soft_clip(2)
    full, faint = evaluate(preds, gts), evaluate([(p * 0.4).astype(np.uint8) for p in preds], gts)
    assert faint["s_measure"] < full["s_measure"] - 0.1 and faint["iou"] == 0.0


def test_bad_values_are_data_errors():
    with pytest.raises(DataError, match=r"pred\[0\] contains NaN"):
        evaluate([np.full((2, 2), np.nan)], [np.zeros((2, 2))])
    with pytest.raises(DataError, match="must be float in"):
        evaluate([np.zeros((2, 2), np.int32)], [np.zeros((2, 2))])
    with pytest.raises(DataError, match="2 predictions but 1 ground-truth frames"):
        dtssd([np.zeros((2, 2))] * 2, [np.zeros((2, 2))])


def _columns(c0: int, c1: int, h: int = 4, w: int = 20) -> np.ndarray:
    """A boolean h×w mask, foreground in columns c0..c1-1 of every row."""
    m = np.zeros((h, w), bool)
    m[:, c0:c1] = True
    return m


def test_boundary_f_by_hand():
    """DAVIS' F on a 4×20 picture: tolerance ceil(0.008 × 20.4) = 1 pixel; the truth's boundary is column 9 (4 pixels)."""
    g = _columns(0, 10)
    assert boundary_f(g, g) == 1.0
    assert boundary_f(_columns(0, 11), g) == 1.0  # boundary at column 10, within 1 pixel of 9
    assert boundary_f(_columns(0, 12), g) == 0.0  # column 11, two pixels off: P = R = 0
    # a stray bar in column 15 adds boundary columns 14 and 15: P = 4 / 12, R = 1, F = 2PR / (P + R) = 0.5
    stray = _columns(0, 10) | _columns(15, 16)
    assert boundary_f(stray, g) == pytest.approx(0.5)
    assert boundary_f(g, stray) == pytest.approx(0.5)  # R and P swap, F stays
    empty = np.zeros_like(g)
    assert boundary_f(empty, g) == 0.0 and boundary_f(g, empty) == 0.0 and boundary_f(empty, empty) == 1.0
    assert boundary_f(np.where(stray, 0.6, 0.2), g, threshold=0.5) == pytest.approx(0.5)


def test_boundary_f_is_not_boundary_iou():
    """A 1-pixel shift of a box: DAVIS' F forgives it (tolerance 1 pixel at 64×48), boundary IoU does not."""
    g, p = _box(48, 64, 10, 30, 10, 40), _box(48, 64, 10, 30, 11, 41)
    assert boundary_f(p, g) == 1.0
    assert boundary_iou(p, g) < 0.7


def test_evaluator_j_and_f_and_void():
    """J&F of a clip = (mean J + mean F) / 2; void pixels leave both masks, as DAVIS zeroes them before the boundaries."""
    g = _columns(0, 10).astype(float)
    ev = Evaluator()
    ev.step(_columns(0, 12).astype(float), g)  # J = 10/12, F = 0
    ev.step(g, g)  # J = F = 1
    res = ev.results()
    assert res["iou"] == pytest.approx((10 / 12 + 1) / 2) and res["boundary_f"] == pytest.approx(0.5)
    assert res["j_and_f"] == pytest.approx(((10 / 12 + 1) / 2 + 0.5) / 2)
    void = _columns(10, 12)  # the prediction's extra columns are void: J = F = 1
    assert Evaluator().step(_columns(0, 12).astype(float), g, void)["boundary_f"] == 1.0
    assert "boundary_f" not in Evaluator(sod=False).step(g, g)


def test_mad_and_mse_at_rvm_scale():
    g = np.array([[1, 1], [0, 0]], np.float64)
    p = np.array([[0.5, 1], [0.25, 0]])
    rec = Evaluator(sod=False).step(p, g)
    assert rec["mae"] == pytest.approx(0.75 / 4) and rec["mse"] == pytest.approx((0.25 + 0.0625) / 4)
    assert rec["rvm_mad"] == pytest.approx(1000 * 0.75 / 4) and rec["rvm_mse"] == pytest.approx(1000 * 0.3125 / 4)


def _gaussian(x: float, sigma: float = 1.4) -> float:
    return math.exp(-x * x / (2 * sigma * sigma)) / (sigma * math.sqrt(2 * math.pi))


def test_grad_of_a_step_edge_by_hand():
    """Grad of a vertical edge against an empty prediction: the truth's gradient magnitude, squared and summed / 1000.

    σ = 1.4: half size ceil(1.4 × sqrt(−2 ln(sqrt(2π) × 1.4 × 0.01))) = ceil(3.62) = 4. Along a step (0 in columns
    < 10, 1 from 10 on) the x filter gives, at column c, the sum of the normalised derivative taps that land on
    the step, times the column sum of the normalised Gaussian taps (the picture is the same down every column).
    """
    taps = range(-4, 5)
    gauss = [_gaussian(x) for x in taps]
    deriv = [-x * _gaussian(x) / 1.4**2 for x in taps]
    g_norm, d_norm = math.sqrt(sum(v * v for v in gauss)), math.sqrt(sum(v * v for v in deriv))
    h, w, edge = 6, 20, 10
    want = 0.0
    for c in range(w):
        on_step = sum(d for x, d in zip(taps, deriv) if min(max(c + x, 0), w - 1) >= edge)  # replicated border
        want += h * (on_step / d_norm * sum(gauss) / g_norm) ** 2
    gt = np.zeros((h, w))
    gt[:, edge:] = 1
    assert gradient_error(np.zeros((h, w)), gt) == pytest.approx(want / 1000, rel=1e-9)
    assert gradient_error(gt, gt) == 0.0
    # min-max normalised first (RVM's evaluate_lr.py, alphamatting.com): a faint copy of the edge has no error
    assert gradient_error(0.4 * gt, gt) == pytest.approx(0.0, abs=1e-12)
    assert gradient_error(gt.T.copy(), gt.T.copy()) == 0.0


def test_conn_by_hand():
    """Connectivity error on a 6×6 picture with a 4×4 truth block (rows and columns 1-4)."""
    g = np.zeros((6, 6))
    g[1:5, 1:5] = 1
    assert connectivity_error(g, g) == 0.0
    stray = g.copy()
    stray[5, 5] = 1  # outside the largest connected part from t = 0.1 on: l = 0, φ = 1 − 1 = 0 against the truth's 1
    assert connectivity_error(stray, g) == pytest.approx(1 / 1000)
    stray[5, 5] = 0.5
    assert connectivity_error(stray, g) == pytest.approx(0.5 / 1000)
    stray[5, 5] = 0.1  # under the 0.15 that counts
    assert connectivity_error(stray, g) == 0.0
    half = g.copy()
    half[1:5, 3:5] = 0  # 8 truth pixels missing: l = 0 there, φ(gt) = 0 and φ(pred) = 1
    assert connectivity_error(half, g) == pytest.approx(8 / 1000)
    # 8-bit 153 (0.6) stays connected at RVM's threshold 0.6000000000000001 in float32, as RVM reads mattes:
    # l = 0.6, φ(gt) = 1 − 0.4 and φ(pred) = 1: 0.4 a pixel (0.5 a pixel if 153/255 fell under it)
    faint = np.where(g > 0, 153, 0).astype(np.uint8)
    assert connectivity_error(faint, (g * 255).astype(np.uint8)) == pytest.approx(16 * 0.4 / 1000, rel=1e-6)


def test_grad_and_conn_in_the_evaluator():
    g = np.zeros((6, 6))
    g[1:5, 1:5] = 1
    p = g.copy()
    p[5, 5] = 1
    ev = Evaluator()
    rec = ev.step(p, g)
    assert rec["conn"] == pytest.approx(1 / 1000) and rec["grad"] == pytest.approx(gradient_error(p, g))
    ev.step(g, g)
    res = ev.results()
    assert res["conn"] == pytest.approx(0.5 / 1000) and res["grad"] == pytest.approx(gradient_error(p, g) / 2)
    assert "grad" not in Evaluator(sod=False).step(p, g)


def test_evaluator_memory_stays_flat_over_many_frames():
    """birefvid eval grew ~5 KB a frame (pysodmetrics' per-frame curves, a dict per frame): long inputs ran out."""
    preds, gts = _soft_clip(4, shape=(16, 16))
    ev = Evaluator()
    ev.new_part()
    for i in range(8):  # warm-up: the running sums and caches exist
        ev.step(preds[i % 4], gts[i % 4])
    def frames() -> None:
        for i in range(200):
            ev.step(preds[i % 4], gts[i % 4])

    grown = kept_by([metrics], frames, depth=16)  # what pysodmetrics keeps counts as the evaluator's
    assert grown < 20_000, f"{grown} bytes over 200 frames"
    assert ev.results()["frames"] == 208 and ev.results(part=True)["frames"] == 208
