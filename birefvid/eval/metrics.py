"""Accuracy and temporal-stability metrics for predicted alphas against ground-truth masks.

Inputs are (H, W) arrays: float in [0, 1], uint8 in [0, 255], uint16 in [0, 65535] or bool. A uint8 mask holding only
0 and 1 (``(prob > 0.5).astype(np.uint8)``) is a 0/1 mask, as ``birefvid eval`` reads masks saved so: read as 8-bit
levels it was background everywhere, and two such masks that do not overlap scored IoU 1.0. (The file readers decide
this per clip and pass ``Evaluator(zero_one=False)``: a nearly empty frame of a soft matte stays soft.)
Predictions are binarized at ``threshold`` (IoU, boundary IoU); the ground truth is foreground
where it is >= 0.5, for every metric that needs a binary truth.

Per frame (all in alpha units, [0, 1]):

* ``iou``: |P ∩ G| / |P ∪ G| of the binarized masks; 1.0 when both are empty.
* ``boundary_iou``: the same IoU on the masks' inner boundary bands (Cheng et al., "Boundary IoU",
  CVPR 2021): the pixels of a mask within d = max(1, round(0.02 × image diagonal)) pixels
  (chessboard distance) of its outside, the image border counting as outside.
* ``boundary_f``: DAVIS' boundary F-measure (Perazzi et al., CVPR 2016; the F of J&F, as the
  davis2017-evaluation toolkit computes it): each mask's one-pixel boundary (a pixel that differs
  from its right, lower or lower-right neighbour), precision = the share of the prediction's boundary
  pixels within a disk of radius ceil(0.008 × image diagonal) of the truth's, recall the converse,
  F = 2PR / (P + R); a missing boundary on one side gives P or R of 0, on both sides F = 1.
  ``iou`` is DAVIS' J (region similarity) of the same masks; ``j_and_f`` = (J + F) / 2 of a frame or a clip.
* ``mae``: mean |pred − gt| against the *soft* ground truth (the matting MAD, not ×1000); equal
  to pysodmetrics' MAE whenever the ground truth is binary. ``mse``: mean (pred − gt)², likewise.

The matting measures of the video-matting tables (RVM, Lin et al. 2021, ``evaluation/evaluate_lr.py``;
written here since no maintained library provides them), against the soft truth:

* ``grad``: sum over the frame of (|∇gt| − |∇pred|)² / 1000, each alpha min-max normalised first (as
  RVM's low-resolution script and the alphamatting.com code do), ∇ a first-order Gaussian derivative
  filter (σ = 1.4, cut where the Gaussian falls under 1e-2 of its scale, unit L2 norm, replicated
  border). A sum, so it grows with the picture: compare at the same size.
* ``conn``: the connectivity error of Rhemann et al. (2009) as RVM computes it, a sum / 1000: for
  thresholds 0.1, 0.2, ... 1, a pixel leaves the largest 4-connected part of (gt ≥ t) ∧ (pred ≥ t)
  at the first t where it is outside it, l its previous threshold (1 if it never leaves); φ(a) = 1 −
  (a − l) where a − l ≥ 0.15, else 1; conn = Σ |φ(gt) − φ(pred)| / 1000, on float32 alphas as RVM
  reads 8-bit mattes (so 153/255 reaches its threshold 0.6, as it does there; in float64 it would not).
* ``rvm_mad``, ``rvm_mse`` = 1000 × ``mae``, ``mse``, and ``rvm_dtssd`` = 100 × ``dtssd`` with 0 for
  each clip's first frame: per frame as in RVM's tables, so a clip's mean over its T frames is RVM's
  dtSSD (100 × (T − 1) / T × ours).
* ``s_measure``, ``e_measure`` (mean E over the 256 thresholds), ``weighted_f`` (β² = 1) and
  ``max_f`` (β² = 0.3): pysodmetrics' Smeasure, Emeasure, WeightedFmeasure and FmeasureV2, fed
  the probabilities as they are (``normalize=False``: no per-image min-max rescaling, which would
  hide a uniformly wrong or faint mask) and the binarized truth. Over several frames these are the
  numbers pysodmetrics' ``get_results()`` gives (max F: the maximum of the mean F curve).

Per consecutive frame pair (t−1, t) of one clip, with d_x = x_t − x_{t−1}:

* ``dtssd`` = sqrt(mean_pixels((d_pred − d_gt)²)): the temporal-derivative SSD of Erofeev et al.
  (2015) as the RVM/VideoMatte240K evaluation computes it, but in alpha units. RVM reports it
  ×100 and averages over all T frames with a 0 for the first; ours averages over the T − 1 pairs,
  so RVM's number = 100 × (T − 1) / T × ours.
* ``flicker`` = mean |d_pred| over the pixels where the ground truth does not change
  (|d_gt| <= 1/255, one 8-bit step); a pair with no such pixel has no flicker value.
* ``dt_mae`` = mean |d_pred − d_gt| (kept for existing users).

A clip's value is the mean over its frames (pairs for the temporal metrics).

Void pixels (``Evaluator.step(..., void=)``: what an annotation leaves unlabelled, DAVIS index 255)
are scored as the DAVIS benchmark scores them: left out of IoU's intersection and union and out of
MAE, MSE and the temporal metrics (a pair leaves out what is void in either frame), and background in
both prediction and truth for the boundary band, boundary F (DAVIS' F zeroes both masks there), Grad,
Conn and pysodmetrics' shape measures.
"""

from __future__ import annotations

import math
from typing import Iterable, Optional, Sequence

import cv2
import numpy as np

from birefvid.errors import DataError

GT_THRESHOLD = 0.5  # ground truth is foreground where >= this
BOUNDARY_RATIO = 0.02  # boundary band width as a fraction of the image diagonal (Cheng et al. 2021)
STATIC_GT_STEP = 1 / 255  # |Δgt| at most this counts as "the truth did not change" for flicker
F_BETA2 = 0.3  # β² of max F (the SOD convention)
DAVIS_BOUND_TH = 0.008  # DAVIS boundary F: match tolerance as a fraction of the image diagonal
GRAD_SIGMA = 1.4  # matting Grad: σ of the Gaussian derivative filter (alphamatting.com, RVM)
GRAD_EPSILON = 1e-2  # the filter is cut where the Gaussian falls under this (times its peak scale)
CONN_STEP = 0.1  # matting Conn: threshold step
CONN_MIN_DIFF = 0.15  # matting Conn: distances under this count as connected
TEMPORAL_KEYS = ("dt_mae", "dtssd", "flicker")


def _unit(a: np.ndarray, what: str, zero_one: bool = True) -> np.ndarray:
    """(H, W) float64 in [0, 1]: uint8 / 255 (as 0/1 where it holds only 0 and 1, with ``zero_one``), uint16 / 65535,
    bool as 0/1, float clipped."""
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim != 2:
        raise DataError(f"{what} must be an (H, W) mask, got shape {a.shape}")
    if a.dtype == np.uint8:
        if zero_one and a.size and int(a.max()) == 1:  # a 0/1 mask, not the levels 0 and 1/255
            return a.astype(np.float64)
        return a / 255.0
    if a.dtype == np.uint16:
        return a / 65535.0
    if a.dtype == np.bool_:
        return a.astype(np.float64)
    if not np.issubdtype(a.dtype, np.floating):
        raise DataError(f"{what} must be float in [0, 1], uint8 or uint16, got {a.dtype}")
    if not np.isfinite(a).all():
        raise DataError(f"{what} contains NaN or infinite values")
    return np.clip(a.astype(np.float64), 0.0, 1.0)


def as_alpha(a: np.ndarray, what: str = "array") -> np.ndarray:
    """(H, W) float32 in [0, 1] from float, uint8, uint16 or bool input (a trailing 1-channel is dropped)."""
    return _unit(a, what).astype(np.float32)


def _iou_bool(p: np.ndarray, g: np.ndarray) -> float:
    """IoU of two boolean masks; 1.0 when both are empty."""
    union = np.count_nonzero(p | g)
    return 1.0 if union == 0 else np.count_nonzero(p & g) / union


def iou(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> float:
    """Intersection over union of pred >= ``threshold`` and gt >= 0.5; 1.0 when both are empty."""
    return float(_iou_bool(_unit(pred, "pred") >= threshold, _unit(gt, "gt") >= GT_THRESHOLD))


def mae(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean absolute error between the soft masks, in alpha units [0, 1]."""
    return float(np.abs(_unit(pred, "pred") - _unit(gt, "gt")).mean())


def boundary_width(height: int, width: int, ratio: float = BOUNDARY_RATIO) -> int:
    """Band width d in pixels: max(1, round(ratio × diagonal)), as in the Boundary IoU reference code."""
    return max(1, int(round(ratio * math.hypot(height, width))))


def boundary_band(mask: np.ndarray, ratio: float = BOUNDARY_RATIO) -> np.ndarray:
    """Pixels of the boolean ``mask`` within d (chessboard) of its outside or of the image border."""
    height, width = mask.shape
    d = boundary_width(height, width, ratio)
    kernel = np.ones((2 * d + 1, 2 * d + 1), np.uint8)  # one (2d+1)² erosion = d erosions by 3x3
    inner = cv2.erode(mask.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return mask & (inner == 0)


def boundary_iou(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5, ratio: float = BOUNDARY_RATIO) -> float:
    """IoU of the boundary bands of pred >= ``threshold`` and gt >= 0.5 (Cheng et al. 2021); 1.0 when both are empty."""
    p, g = _unit(pred, "pred") >= threshold, _unit(gt, "gt") >= GT_THRESHOLD
    return float(_iou_bool(boundary_band(p, ratio), boundary_band(g, ratio)))


def _boundary_map(mask: np.ndarray) -> np.ndarray:
    """A boolean mask's one-pixel boundary as DAVIS draws it: pixels that differ from their right, lower or
    lower-right neighbour (the edges of the picture compare along the edge only; the corner pixel never counts)."""
    right, down, diag = np.zeros_like(mask), np.zeros_like(mask), np.zeros_like(mask)
    right[:, :-1], down[:-1, :], diag[:-1, :-1] = mask[:, 1:], mask[1:, :], mask[1:, 1:]
    edge = (mask ^ right) | (mask ^ down) | (mask ^ diag)
    edge[-1, :] = mask[-1, :] ^ right[-1, :]
    edge[:, -1] = mask[:, -1] ^ down[:, -1]
    edge[-1, -1] = False
    return edge


def _disk(radius: int) -> np.ndarray:
    """The (2r+1)² uint8 structuring element of the pixels within ``radius`` (Euclidean) of the centre."""
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return (x * x + y * y <= radius * radius).astype(np.uint8)


def _boundary_f_bool(p: np.ndarray, g: np.ndarray) -> float:
    """DAVIS' boundary F-measure of two boolean masks (see the module notes)."""
    bp, bg = _boundary_map(p), _boundary_map(g)
    n_p, n_g = int(np.count_nonzero(bp)), int(np.count_nonzero(bg))
    if n_p == 0 or n_g == 0:
        return 1.0 if n_p == n_g else 0.0  # one side without a boundary: P or R is 0, and so is F
    disk = _disk(int(math.ceil(DAVIS_BOUND_TH * math.hypot(*p.shape))))
    near_g = cv2.dilate(bg.astype(np.uint8), disk) > 0
    near_p = cv2.dilate(bp.astype(np.uint8), disk) > 0
    precision, recall = np.count_nonzero(bp & near_g) / n_p, np.count_nonzero(bg & near_p) / n_g
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def boundary_f(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> float:
    """DAVIS' boundary F-measure (the F of J&F) of pred >= ``threshold`` and gt >= 0.5, in [0, 1]."""
    return float(_boundary_f_bool(_unit(pred, "pred") >= threshold, _unit(gt, "gt") >= GT_THRESHOLD))


def _grad_kernels(sigma: float = GRAD_SIGMA, epsilon: float = GRAD_EPSILON) -> tuple[np.ndarray, np.ndarray]:
    """The Grad filter's separable parts: (derivative of a Gaussian, Gaussian), each of unit L2 norm, so
    their outer product (the 2-D filter) has unit norm."""
    half = math.ceil(sigma * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * sigma * epsilon)))
    x = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-x * x / (2 * sigma * sigma)) / (sigma * math.sqrt(2 * math.pi))
    deriv = -x * gauss / (sigma * sigma)
    return deriv / np.linalg.norm(deriv), gauss / np.linalg.norm(gauss)


def _gradient_magnitude(a: np.ndarray) -> np.ndarray:
    """|∇a| of an alpha min-max normalised to [0, 1] (a constant one has no gradient)."""
    lo, hi = float(a.min()), float(a.max())
    a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    deriv, gauss = _grad_kernels()
    gx = cv2.sepFilter2D(a, cv2.CV_64F, deriv, gauss, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.sepFilter2D(a, cv2.CV_64F, gauss, deriv, borderType=cv2.BORDER_REPLICATE)
    return np.sqrt(gx * gx + gy * gy)


def _grad(p: np.ndarray, g: np.ndarray) -> float:
    """Grad of two float alphas in [0, 1]."""
    return float(np.sum((_gradient_magnitude(g) - _gradient_magnitude(p)) ** 2) / 1000)


def gradient_error(pred: np.ndarray, gt: np.ndarray) -> float:
    """The matting Grad of RVM's tables: sum((|∇gt| − |∇pred|)²) / 1000 over the frame (see the module notes)."""
    return _grad(_unit(pred, "pred"), _unit(gt, "gt"))


def _largest_part(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected part of a boolean mask (empty when the mask is)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=4)
    if count < 2:
        return np.zeros(mask.shape, bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def connectivity_error(pred: np.ndarray, gt: np.ndarray) -> float:
    """The matting Conn of RVM's tables: Σ |φ(gt) − φ(pred)| / 1000 over the frame (see the module notes)."""
    p, g = _unit(pred, "pred").astype(np.float32), _unit(gt, "gt").astype(np.float32)
    steps = np.arange(0, 1 + CONN_STEP, CONN_STEP)
    level = np.full(g.shape, -1, np.float32)  # the last threshold at which the pixel was still connected
    for below, t in zip(steps[:-1], steps[1:]):
        level[(level == -1) & ~_largest_part((g >= t) & (p >= t))] = below
    level[level == -1] = 1

    def phi(a: np.ndarray) -> np.ndarray:
        d = a - level
        return 1 - d * (d >= CONN_MIN_DIFF)

    return float(np.sum(np.abs(phi(g) - phi(p))) / 1000)


def _pair_metrics(
    p: np.ndarray, p_prev: np.ndarray, g: np.ndarray, g_prev: np.ndarray, keep: Optional[np.ndarray] = None
) -> dict[str, float]:
    """dt_mae, dtssd and (where the truth holds still somewhere) flicker of one frame pair, over the pixels
    ``keep`` (all when None; none: no values)."""
    dp, dg = p - p_prev, g - g_prev
    if keep is not None:
        if not keep.any():
            return {}
        dp, dg = dp[keep], dg[keep]
    diff = dp - dg
    out = {"dt_mae": float(np.abs(diff).mean()), "dtssd": float(np.sqrt(np.mean(diff * diff)))}
    static = np.abs(dg) <= STATIC_GT_STEP + 1e-9
    if static.any():
        out["flicker"] = float(np.abs(dp)[static].mean())
    return out


def _temporal(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], key: str) -> float:
    """Mean of one temporal metric over the frame pairs of a clip."""
    if len(preds) != len(gts):
        raise DataError(f"{len(preds)} predictions but {len(gts)} ground-truth frames")
    ev = Evaluator(sod=False)
    for p, g in zip(preds, gts):
        ev.step(p, g)
    res = ev.results()
    if key not in res:
        why = "a clip needs at least two frames" if ev.count < 2 else "the ground truth changes everywhere"
        raise DataError(f"no {key} value: {why}")
    return res[key]


def dtssd(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> float:
    """Mean over frame pairs of sqrt(mean((Δpred − Δgt)²)), alpha units (RVM's ×100 scale: multiply by 100)."""
    return _temporal(preds, gts, "dtssd")


def flicker_index(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> float:
    """Mean over frame pairs of mean |Δpred| where the truth changes by at most 1/255: flicker the truth does not ask for."""
    return _temporal(preds, gts, "flicker")


class _SodMeters:
    """pysodmetrics' S, E, weighted F and F-measure meters, fed float64 probabilities and a boolean truth; each
    frame's values are taken out of the meters, whose lists would otherwise grow by ~4 KB a frame."""

    def __init__(self) -> None:
        import py_sod_metrics as sod  # imported here: only the structure measures need it

        self.sm = sod.Smeasure()
        self.em = sod.Emeasure()
        self.wfm = sod.WeightedFmeasure()
        self.fh = sod.FmeasureHandler(with_dynamic=True, with_adaptive=False, beta=F_BETA2)
        self.fm = sod.FmeasureV2(metric_handlers={"fm": self.fh})

    def step(self, p: np.ndarray, g: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
        """Add one frame; returns its own values (max_f: the maximum of its own F curve) and its F curve."""
        for meter in (self.sm, self.em, self.wfm, self.fm):
            meter.step(p, g, normalize=False)
        curve = np.asarray(self.fh.dynamic_results[-1], np.float64)
        values = {
            "s_measure": float(self.sm.sms[-1]),
            "e_measure": float(np.mean(np.asarray(self.em.changeable_ems[-1], np.float64))),
            "weighted_f": float(self.wfm.weighted_fms[-1]),
            "max_f": float(np.max(curve)),
        }
        for kept in (self.sm.sms, self.em.changeable_ems, self.em.adaptive_ems, self.wfm.weighted_fms, self.fh.dynamic_results):
            kept.clear()
        return values, curve


class _Sums:
    """Running sums of per-frame values over some frames: what ``Evaluator.results`` needs, one size at any length.

    Means over frames equal pysodmetrics' get_results(): its mean E is the mean of the frames' mean E curves (each
    has 256 points), and its max F the maximum of the summed F curves over the frames.
    """

    def __init__(self) -> None:
        self.frames = 0
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.f_curve: Optional[np.ndarray] = None  # the sum of the frames' F curves (sod only)

    def add(self, rec: dict[str, float], f_curve: Optional[np.ndarray]) -> None:
        """Count one frame's values (and F curve)."""
        self.frames += 1
        for key, value in rec.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + 1
        if f_curve is not None:
            self.f_curve = f_curve.copy() if self.f_curve is None else self.f_curve + f_curve

    def mean(self, key: str) -> Optional[float]:
        """The mean of ``key`` over the frames that have it; None when none has."""
        return self.sums[key] / self.counts[key] if self.counts.get(key) else None


class Evaluator:
    """Accumulates per-frame metrics over a stream of (pred, gt) pairs, keeping only the previous frame and running
    sums, so its memory stays flat over any number of frames (``keep_frames=True`` also keeps each frame's values).

    ``sod=False`` skips the slower shape measures (S, E, weighted and max F, boundary IoU and F, J&F, Grad, Conn).
    ``zero_one`` (default True): a uint8 frame holding only 0 and 1 is a 0/1 mask (see the module notes).
    Call ``new_clip()`` between clips so no temporal pair spans the cut, and ``new_part()`` where a part whose own
    results you want (a sequence) begins.
    """

    def __init__(
        self, threshold: float = 0.5, sod: bool = True, boundary_ratio: float = BOUNDARY_RATIO, keep_frames: bool = False,
        zero_one: bool = True,
    ) -> None:
        self.threshold = threshold
        self.zero_one = zero_one
        self.boundary_ratio = boundary_ratio
        self.count = 0  # frames scored
        self.frames: list[dict[str, float]] = []  # per-frame values (keep_frames); temporal ones for the pair ending here
        self._keep_frames = keep_frames
        self._total, self._part = _Sums(), _Sums()
        self._prev: Optional[tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]] = None  # pred, gt, kept pixels
        self._sod = _SodMeters() if sod else None

    def new_clip(self) -> None:
        """The next frame starts a new clip: it forms no temporal pair with the frame before it."""
        self._prev = None

    def new_part(self) -> None:
        """The next frame starts a new part: ``results(part=True)`` covers the frames from there on."""
        self._part = _Sums()

    def step(self, pred: np.ndarray, gt: np.ndarray, void: Optional[np.ndarray] = None) -> dict[str, float]:
        """Add one frame (frames of a clip in order) and return its values; ``void``: (H, W) bool, pixels the
        truth leaves unlabelled, scored as DAVIS does (see the module notes)."""
        i = self.count
        p, g = _unit(pred, f"pred[{i}]", self.zero_one), _unit(gt, f"gt[{i}]", self.zero_one)
        if p.shape != g.shape:
            raise DataError(f"frame {i}: prediction is {p.shape[1]}x{p.shape[0]} but ground truth is "
                            f"{g.shape[1]}x{g.shape[0]}; resize predictions to the ground truth size")
        keep = None
        if void is not None and np.any(void):
            void = np.asarray(void, bool)
            if void.shape != g.shape:
                raise DataError(f"frame {i}: void mask is {void.shape[1]}x{void.shape[0]} but ground truth is "
                                f"{g.shape[1]}x{g.shape[0]}")
            keep = ~void
            p, g = np.where(keep, p, 0.0), np.where(keep, g, 0.0)
        pb, gb = p >= self.threshold, g >= GT_THRESHOLD
        err = np.abs(p - g) if keep is None else np.abs(p - g)[keep]
        mad, mse = (float(err.mean()), float(np.mean(err * err))) if err.size else (0.0, 0.0)
        rec = {"iou": float(_iou_bool(pb, gb)), "mae": mad, "mse": mse, "rvm_mad": 1000 * mad, "rvm_mse": 1000 * mse}
        curve = None
        if self._sod is not None:
            rec["grad"] = _grad(p, g)
            rec["conn"] = connectivity_error(p, g)
            rec["boundary_iou"] = float(_iou_bool(boundary_band(pb, self.boundary_ratio), boundary_band(gb, self.boundary_ratio)))
            rec["boundary_f"] = float(_boundary_f_bool(pb, gb))
            rec["j_and_f"] = (rec["iou"] + rec["boundary_f"]) / 2
            values, curve = self._sod.step(p, gb)
            rec.update(values)
        if self._prev is not None and self._prev[0].shape == p.shape:
            p_prev, g_prev, keep_prev = self._prev
            both = keep if keep_prev is None else keep_prev if keep is None else keep & keep_prev
            rec.update(_pair_metrics(p, p_prev, g, g_prev, both))
        rec["rvm_dtssd"] = 100 * rec.get("dtssd", 0.0)  # RVM: 0 for a clip's first frame
        self._prev = (p, g, keep)
        self.count += 1
        self._total.add(rec, curve)
        self._part.add(rec, curve)
        if self._keep_frames:
            self.frames.append(rec)
        return rec

    def results(self, *, part: bool = False) -> dict[str, float]:
        """Means over all frames (``part``: the frames since ``new_part()``): frames, iou, mae, the shape measures
        (sod) and the temporal ones (pairs)."""
        sums = self._part if part else self._total
        if not sums.frames:
            raise DataError("no frames were evaluated; check that predictions and ground truth are not empty")
        out = {"frames": float(sums.frames)}
        keys = ["iou", "mae", "mse", "rvm_mad", "rvm_mse"] + list(TEMPORAL_KEYS)
        keys += ["boundary_iou", "boundary_f", "grad", "conn"] if self._sod is not None else []
        for key in keys:
            value = sums.mean(key)
            if value is not None:
                out[key] = value
        if "dtssd" in out:  # over all frames, the first ones' 0 included, as RVM averages it
            out["rvm_dtssd"] = sums.mean("rvm_dtssd")  # type: ignore[assignment]
        if self._sod is not None:
            out.update({key: sums.mean(key) for key in ("s_measure", "e_measure", "weighted_f")})  # type: ignore[misc]
            out["max_f"] = float(np.max(sums.f_curve / sums.frames))  # type: ignore[operator]
            out["j_and_f"] = (out["iou"] + out["boundary_f"]) / 2
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
            longer = "ground truth" if p is sentinel else "predictions"
            raise DataError(f"predictions and ground truth differ in length: {longer} continue after frame {ev.count}")
        ev.step(p, g)  # type: ignore[arg-type]
    return ev.results()
