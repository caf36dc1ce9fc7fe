#!/usr/bin/env python
"""Temporal benchmark: flicker, dtSSD, IoU, lag and cut recovery of each mask smoother.

Generated 256-px clips with exact masks (``birefvid.data.scenes``), every frame with its own
Gaussian pixel noise (sigma = 12 of 255, which makes the model's masks flicker), segmented
once by the shipped ``tiny`` model; the same raw masks and frames then go through each
smoother (pushed 4 frames at a time, as the file pipeline does) and are scored against the
true masks. Clips:

* ``drift``  - ``make_clip``: a subject moving slowly (~1 px/frame, rotating, scaling) over
  a slowly panning background;
* ``fast``   - ``make_clip`` keeping every 4th frame: a fast subject (~8 px/frame, rotating
  a few degrees a frame) bouncing inside the frame, over a faster pan;
* ``linear`` - a subject translating at a constant 4 px/frame over a still background (lag);
* ``pan``    - a camera pan: subject and background move together at 4 px/frame;
* ``static`` - nothing moves: what changes is noise only (pure flicker);
* ``cut``    - three ``make_clip`` shots of 14 frames back to back: two hard cuts, the first
  one clear to the scene-cut detector (thumbnail difference 0.18 > 0.15), the second one
  not (0.11: generated backgrounds are muted grey, so cuts can look alike), which the
  smoothers must then survive on their own.

Metrics (pooled over every frame / frame pair of every clip, and per clip):

* IoU     - mean IoU of masks binarized at 0.5 (``birefvid.eval.metrics.iou``), in points;
* MAE     - mean |alpha - truth| (``birefvid.eval.metrics.mae``), x 100;
* flicker - the flicker index: mean |alpha_t - alpha_t-1| over the pixels whose true mask
  does not change between the two frames (|delta truth| <= 1/255), x 100;
* dtSSD   - sqrt(mean((delta alpha - delta truth)^2)) per consecutive frame pair, averaged
  over pairs, x 100 (as in video-matting papers);
* mc-flicker - on the clips whose true motion is known (``linear``, ``pan``, ``static``):
  mean |alpha_t - alpha_t-1 carried along the true motion| where the carried truth does not
  change, x 100. The flicker index leaves out exactly the pixels a moving edge crosses (the
  truth changes there) and counts the model's errors that travel with the subject as
  flicker, so on moving clips it barely sees shimmer; mc-flicker is the shimmer a viewer sees;
* lag     - on ``linear``: mean of (true centroid - smoothed centroid) along the motion over
  the speed, in frames (positive: the mask trails the subject); the raw masks' own offset
  (model bias) is printed in the ``none`` row;
* cut     - on ``cut``: frames after a cut until the smoothed mask equals the raw one
  (binarized IoU with the raw mask >= 0.97; 0: the first frame of the new shot), worst cut.

Smoothers: ``none`` (raw masks), ``ema``, ``flow`` and ``lookahead`` (``warp=True``, the
setting this benchmark recommends) with their defaults otherwise.

Ceiling: on the clips with known motion the flow smoother's blend and the warped look-ahead
median are also run along the *true* motion (``oracle`` rows): what no flow error limits.

Must-show rules (printed with PASS/FAIL): the best online smoother cuts flicker and dtSSD
by >= 50 % vs raw with mean IoU down <= 0.5 points; lookahead by >= 60 % under the same IoU
rule; on ``fast`` no shipped smoother loses > 0.5 IoU points; lag <= 0.5 frame for flow and
0 for lookahead (|lag - raw lag| <= 0.1); cut recovery <= 1 frame for every shipped
smoother. ``reference`` rows (the old unwarped look-ahead, an EMA without motion gate) are
printed for comparison and left out of the pass/fail. Every smoother gets the same
``scene_cut_threshold`` (``--cut-threshold``, 0.15 as in live mode).

    python scripts/bench_temporal.py                   # ~5 min on 2 CPU cores
    python scripts/bench_temporal.py --json temporal.json --cache /tmp/raw.npz
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np
import torch

from birefvid.data import make_clip
from birefvid.data import scenes
from birefvid.errors import BirefvidError
from birefvid.eval.metrics import iou, mae
from birefvid.runtime import Segmenter
from birefvid.temporal import EmaSmoother, FlowSmoother, LookaheadSmoother, PassthroughSmoother, ema

NOISE = 12.0  # per-frame pixel noise, in 0..255 units
SIZE = (256, 256)
SHOT = 14  # frames per shot of the cut clip
CUTS = (SHOT, 2 * SHOT)
PUSH = 4  # frames per push, as the file pipeline's batches
SPEED = 4.0  # px per frame on the linear and pan clips
EQUAL_TO_RAW = 0.97  # binarized IoU with the raw mask that counts as "equals the raw mask"
SHIPPED = ("ema", "flow", "lookahead")
# clips whose true motion is known exactly: name -> (subject, background) image velocity, px/frame
MOTION = {"linear": ((int(SPEED), 0), (0, 0)), "pan": ((-int(SPEED), 0), (-int(SPEED), 0)), "static": ((0, 0), (0, 0))}
ONLINE = ("ema", "flow")


# ----------------------------------------------------------------------------- clips


def _scripted_clip(
    seed: int, n: int, size: tuple[int, int], subject_v: tuple[float, float], camera_v: tuple[int, int]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """A subject moving at a constant image velocity over a background moving at another (integer) one.

    Built from the same pieces as ``make_clip`` (subject layer, background, camera effects) but
    with straight, constant-speed motion and no rotation, so the true centroid moves exactly
    ``subject_v`` px a frame.
    """
    g = np.random.default_rng(seed)
    h, w = size
    layer, radius = scenes._make_layer(g, h, w)
    mx, my = abs(camera_v[0]) * (n - 1), abs(camera_v[1]) * (n - 1)
    bg_big = scenes._background(g, h + my, w + mx, radius)
    cam = scenes._Photometric.draw(g)
    v = np.array(subject_v, np.float64)
    c0 = np.array([w / 2.0, h / 2.0]) - v * (n - 1) / 2.0  # the path is centred in the frame
    angle = g.uniform(0, 360)
    out = []
    for t in range(n):
        placed = scenes._place(layer, h, w, c0 + v * t, angle, 1.0)
        ox = mx - camera_v[0] * t if camera_v[0] > 0 else -camera_v[0] * t
        oy = my - camera_v[1] * t if camera_v[1] > 0 else -camera_v[1] * t
        img, mask = scenes._composite(bg_big[oy : oy + h, ox : ox + w], placed)
        out.append((cam.apply(img, g), mask))
    return out


def build_clips(seed: int) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """The benchmark's clips: name -> [(image uint8 (H, W, 3) RGB, true mask float32 (H, W))]."""
    fast_long = list(make_clip(seed + 2, 36 * 4, SIZE))
    return {
        "drift": list(make_clip(seed + 1, 40, SIZE)),
        "fast": fast_long[::4],
        "linear": _scripted_clip(seed + 3, 30, (SIZE[0], SIZE[1] * 3 // 2), *MOTION["linear"]),
        "pan": _scripted_clip(seed + 4, 32, SIZE, *MOTION["pan"]),
        "static": _scripted_clip(seed + 5, 24, SIZE, *MOTION["static"]),
        "cut": [pair for shot in (8, 6, 7) for pair in make_clip(seed + shot, SHOT, SIZE)],
    }


def add_noise(frames: np.ndarray, rng: np.random.Generator, sigma: float = NOISE) -> np.ndarray:
    """Independent Gaussian noise per frame and pixel, rounded back to uint8."""
    noisy = frames.astype(np.float32) + rng.normal(0.0, sigma, frames.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def segment(seg: Segmenter, frames: np.ndarray, batch: int = 8) -> np.ndarray:
    """Raw masks (N, H, W) float32 of uint8 frames (N, H, W, 3)."""
    out = []
    for i in range(0, len(frames), batch):
        x = torch.from_numpy(frames[i : i + batch]).permute(0, 3, 1, 2).contiguous()
        out.append(seg.predict(x)[:, 0].numpy())
    return np.concatenate(out)


# ----------------------------------------------------------------------------- true motion


def _shift(img: np.ndarray, dx: int, dy: int) -> tuple[np.ndarray, np.ndarray]:
    """out[y, x] = img[y - dy, x - dx] and whether that source pixel lies inside the frame."""
    h, w = img.shape
    out, inside = np.zeros_like(img), np.zeros((h, w), bool)
    ys, yd = slice(max(0, -dy), min(h, h - dy)), slice(max(0, dy), min(h, h + dy))
    xs, xd = slice(max(0, -dx), min(w, w - dx)), slice(max(0, dx), min(w, w + dx))
    out[yd, xd] = img[ys, xs]
    inside[yd, xd] = True
    return out, inside


def true_carry(
    mask: np.ndarray, gt_src: np.ndarray, gt_dst: np.ndarray, motion: tuple[tuple[int, int], tuple[int, int]], steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """``mask`` of a frame ``steps`` frames before the destination (negative: after) moved along the true motion.

    Returns the carried mask and where it is valid: the source pixel is inside the frame and
    not uncovered (background in the destination that was subject in the source).
    """
    (sx, sy), (bx, by) = motion
    subj = gt_dst >= 0.5
    ms, vs = _shift(mask, sx * steps, sy * steps)
    mb, vb = _shift(mask, bx * steps, by * steps)
    src_subject_under_bg, _ = _shift(gt_src, bx * steps, by * steps)
    valid = np.where(subj, vs, vb & (src_subject_under_bg < 0.5))
    return np.where(subj, ms, mb), valid


def mc_flicker(pred: np.ndarray, gt: np.ndarray, motion) -> float:
    """Motion-compensated flicker x 100: mean |pred_t - pred_t-1 carried along the true motion| where the carried truth is unchanged."""
    vals = []
    for t in range(1, len(pred)):
        carried, valid = true_carry(pred[t - 1], gt[t - 1], gt[t], motion, 1)
        carried_gt, _ = true_carry(gt[t - 1], gt[t - 1], gt[t], motion, 1)
        still = valid & (np.abs(gt[t] - carried_gt) <= 1 / 255)
        vals.append(float(np.abs(pred[t] - carried)[still].mean()))
    return 100 * float(np.mean(vals))


def oracle_flow(raw: np.ndarray, gt: np.ndarray, motion, weight: float, motion_threshold: Optional[float]) -> np.ndarray:
    """The flow smoother's blend along the *true* motion (no flow error): a ceiling for any online smoother."""
    out = [raw[0]]
    for t in range(1, len(raw)):
        carried, valid = true_carry(out[-1], gt[t - 1], gt[t], motion, 1)
        w = torch.from_numpy(weight * valid.astype(np.float32))
        out.append(ema(torch.from_numpy(carried), torch.from_numpy(raw[t]), w, motion_threshold).numpy())
    return np.stack(out)


def oracle_lookahead(raw: np.ndarray, gt: np.ndarray, motion, window: int = 2) -> np.ndarray:
    """The warped look-ahead median along the *true* motion: a ceiling for look-ahead smoothing."""
    n, out = len(raw), []
    for t in range(n):
        stack = []
        for k in range(-window, window + 1):
            j = min(max(t + k, 0), n - 1)
            carried, valid = true_carry(raw[j], gt[j], gt[t], motion, t - j)
            stack.append(np.where(valid, carried, raw[t]))
        out.append(np.median(np.stack(stack), axis=0))
    return np.stack(out)


# ----------------------------------------------------------------------------- smoothers


def smoothers(cut_threshold: Optional[float]) -> dict[str, Callable[[], object]]:
    """Name -> factory of a fresh smoother, each with its shipped defaults and the same scene-cut threshold."""
    return {
        "none": PassthroughSmoother,
        "ema": lambda: EmaSmoother(scene_cut_threshold=cut_threshold),
        "flow": lambda: FlowSmoother(scene_cut_threshold=cut_threshold),
        "lookahead": lambda: LookaheadSmoother(scene_cut_threshold=cut_threshold, warp=True),
        "lookahead-nowarp": lambda: LookaheadSmoother(scene_cut_threshold=cut_threshold, warp=False),
        "ema-nogate": lambda: EmaSmoother(motion_threshold=None, scene_cut_threshold=cut_threshold),
    }


REFERENCE = {"lookahead-nowarp": "the old look-ahead", "ema-nogate": "EMA without motion gate"}


def run_smoother(smoother, raw: np.ndarray, frames: np.ndarray, push: int = PUSH) -> tuple[np.ndarray, float]:
    """Smoothed masks (N, H, W) of raw masks (N, H, W) and frames (N, H, W, 3); and ms per frame."""
    alphas = torch.from_numpy(raw)[:, None]
    images = torch.from_numpy(frames).permute(0, 3, 1, 2)
    out = []
    t0 = time.perf_counter()
    for i in range(0, len(raw), push):
        out.append(smoother.push(alphas[i : i + push], images[i : i + push]))
    out.append(smoother.flush())
    ms = (time.perf_counter() - t0) * 1000 / len(raw)
    result = torch.cat(out)[:, 0].numpy()
    assert result.shape == raw.shape, (result.shape, raw.shape)
    return result, ms


# ----------------------------------------------------------------------------- metrics


def pair_stats(pred: np.ndarray, gt: np.ndarray) -> tuple[list[float], list[float]]:
    """Per consecutive pair: flicker (mean |delta pred| where the truth is still) and dtSSD (both x 100)."""
    flicker, dtssd = [], []
    for t in range(1, len(pred)):
        dp, dg = pred[t] - pred[t - 1], gt[t] - gt[t - 1]
        still = np.abs(dg) <= 1 / 255
        if still.any():
            flicker.append(100 * float(np.abs(dp[still]).mean()))
        dtssd.append(100 * float(np.sqrt(np.mean((dp - dg) ** 2))))
    return flicker, dtssd


def centroid(mask: np.ndarray) -> Optional[np.ndarray]:
    ys, xs = np.nonzero(mask >= 0.5)
    return None if len(xs) == 0 else np.array([xs.mean(), ys.mean()])


def lag_frames(pred: np.ndarray, gt: np.ndarray, skip: int = 3) -> float:
    """Mean (true - predicted) centroid along the motion over the true centroid's speed, in frames.

    The velocity is the true centroid's mean one over the clip; ``skip`` frames at each end
    are left out (stream start, look-ahead padding at the end).
    """
    cg = [centroid(m) for m in gt]
    v = (cg[-1] - cg[0]) / (len(gt) - 1)
    lags = []
    for t in range(skip, len(pred) - skip):
        cp = centroid(pred[t])
        if cp is not None and cg[t] is not None:
            lags.append(float((cg[t] - cp) @ v / (v @ v)))
    return float(np.mean(lags))


def cut_recovery(pred: np.ndarray, raw: np.ndarray, at: int, horizon: int = 5) -> int:
    """Frames after the cut at ``at`` until ``pred`` equals ``raw`` (binarized IoU >= EQUAL_TO_RAW); horizon+1 if never."""
    for k in range(horizon + 1):
        if iou(pred[at + k], raw[at + k]) >= EQUAL_TO_RAW:
            return k
    return horizon + 1


def score(pred: np.ndarray, gt: np.ndarray) -> dict[str, list[float]]:
    flicker, dtssd = pair_stats(pred, gt)
    return {
        "iou": [100 * iou(p, g) for p, g in zip(pred, gt)],
        "mae": [100 * mae(p, g) for p, g in zip(pred, gt)],
        "flicker": flicker,
        "dtssd": dtssd,
    }


def mean(xs: Iterable[float]) -> float:
    xs = list(xs)
    return float(np.mean(xs)) if xs else float("nan")


# ----------------------------------------------------------------------------- report


def evaluate(clips: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], makers: dict[str, Callable[[], object]]) -> dict:
    """Per smoother: per-clip and pooled metrics, mc-flicker, lag on ``linear``, cut recovery on ``cut``, cost."""
    results: dict[str, dict] = {}
    for name, make in makers.items():
        per_clip, pooled, cost = {}, {"iou": [], "mae": [], "flicker": [], "dtssd": []}, []
        outputs = {}
        for clip, (frames, gt, raw) in clips.items():
            pred, ms = run_smoother(make(), raw, frames)
            outputs[clip] = pred
            cost.append(ms)
            s = score(pred, gt)
            per_clip[clip] = {k: mean(v) for k, v in s.items()}
            if clip in MOTION:
                per_clip[clip]["mc_flicker"] = mc_flicker(pred, gt, MOTION[clip])
            for k in pooled:
                pooled[k] += s[k]
        entry = {"all": {k: mean(v) for k, v in pooled.items()}, "clips": per_clip, "ms_per_frame": mean(cost)}
        if "linear" in clips:
            entry["lag"] = lag_frames(outputs["linear"], clips["linear"][1])
        if "cut" in clips:
            raw = clips["cut"][2]
            entry["cut_recovery_each"] = [cut_recovery(outputs["cut"], raw, at) for at in CUTS]
            entry["cut_recovery"] = max(entry["cut_recovery_each"])
        results[name] = entry
    return results


def ceiling(clips: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, dict[str, dict[str, float]]]:
    """The oracle rows: the flow smoother's blend (its default weight and gate) and the look-ahead median along the true motion."""
    flow = FlowSmoother()
    out: dict[str, dict[str, dict[str, float]]] = {"flow-oracle": {}, "lookahead-oracle": {}}
    for clip, motion in MOTION.items():
        if clip not in clips:
            continue
        _, gt, raw = clips[clip]
        for name, pred in (("flow-oracle", oracle_flow(raw, gt, motion, flow.weight, flow.motion_threshold)),
                           ("lookahead-oracle", oracle_lookahead(raw, gt, motion))):
            s = {k: mean(v) for k, v in score(pred, gt).items()}
            s["mc_flicker"] = mc_flicker(pred, gt, motion)
            out[name][clip] = s
    return out


def _cut_pct(new: float, old: float) -> float:
    return 100 * (1 - new / old)


def rules(results: dict) -> list[tuple[str, bool, str, bool]]:
    """The must-show rules: (description, passed, the figures behind it, printed only?).

    Printed-only rows (reference smoothers, lags without a rule) do not count towards the verdict.
    """
    raw = results["none"]["all"]

    def drop(name: str, clip: Optional[str] = None) -> float:
        if clip is None:
            return raw["iou"] - results[name]["all"]["iou"]
        return results["none"]["clips"][clip]["iou"] - results[name]["clips"][clip]["iou"]

    def cut(name: str, key: str) -> float:
        return _cut_pct(results[name]["all"][key], raw[key])

    def figures(name: str) -> str:
        return f"flicker {cut(name, 'flicker'):+.0f} %, dtSSD {cut(name, 'dtssd'):+.0f} % (cut), IoU {-drop(name):+.2f} pt"

    out = []
    online = [n for n in ONLINE if n in results]
    best = max(online, key=lambda n: (drop(n) <= 0.5, min(cut(n, "flicker"), cut(n, "dtssd"))))
    ok = cut(best, "flicker") >= 50 and cut(best, "dtssd") >= 50 and drop(best) <= 0.5
    out.append((f"best online smoother ({best}) cuts flicker and dtSSD by 50 % or more, IoU -0.5 pt at most", ok, figures(best), False))
    if "lookahead" in results:
        n = "lookahead"
        ok = cut(n, "flicker") >= 60 and cut(n, "dtssd") >= 60 and drop(n) <= 0.5
        out.append(("lookahead cuts flicker and dtSSD by 60 % or more, IoU -0.5 pt at most", ok, figures(n), False))
    if "fast" in results["none"]["clips"]:
        for n in [n for n in results if n != "none"]:
            out.append((f"fast subject: {n} loses 0.5 IoU pt at most", drop(n, "fast") <= 0.5,
                        f"IoU {results[n]['clips']['fast']['iou']:.2f} vs raw {results['none']['clips']['fast']['iou']:.2f}",
                        n in REFERENCE))
    if "lag" in results["none"]:
        bias = results["none"]["lag"]
        for n in [n for n in results if n != "none"]:
            lag = results[n]["lag"]
            fig = f"{lag:+.2f} frame ({lag - bias:+.2f} beyond the raw masks' {bias:+.2f})"
            if n == "flow":
                out.append(("lag: flow trails by 0.5 frame at most", lag <= 0.5, fig, False))
            elif n == "lookahead":
                out.append(("lag: lookahead adds no lag (|lag - raw lag| <= 0.1 frame)", abs(lag - bias) <= 0.1, fig, False))
            else:
                out.append((f"lag: {n} (printed, no rule)", True, fig, True))
    if "cut_recovery" in results["none"]:
        for n in [n for n in results if n != "none"]:
            each = ", ".join(str(x) for x in results[n]["cut_recovery_each"])
            out.append((f"scene cut: {n} equals the raw mask within 1 frame", results[n]["cut_recovery"] <= 1,
                        f"{each} frame(s) after the (detected, undetected) cut", n in REFERENCE))
    return out


def print_report(results: dict, oracle: dict, clip_info: dict) -> None:
    print("\nclips: " + ", ".join(f"{k} ({v})" for k, v in clip_info.items()))
    print("\nall clips: IoU in points; flicker, dtSSD, MAE x 100; lag in frames on 'linear'; cut: frames to equal raw")
    print(f"{'smoother':<17}{'IoU':>7}{'flicker':>9}{'dtSSD':>8}{'MAE':>7}{'lag':>7}{'cut':>5}{'ms/f':>7}")
    for name, r in results.items():
        a = r["all"]
        tag = "  (reference)" if name in REFERENCE else ""
        print(f"{name:<17}{a['iou']:7.2f}{a['flicker']:9.3f}{a['dtssd']:8.3f}{a['mae']:7.3f}"
              f"{r.get('lag', float('nan')):+7.2f}{r.get('cut_recovery', -1):5d}{r['ms_per_frame']:7.1f}{tag}")
    clips = list(results["none"]["clips"])
    print("\nper clip: IoU / flicker / dtSSD")
    print(f"{'smoother':<17}" + "".join(f"{c:>22}" for c in clips))
    for name, r in results.items():
        cells = [f"{r['clips'][c]['iou']:6.2f} /{r['clips'][c]['flicker']:6.3f} /{r['clips'][c]['dtssd']:6.3f}" for c in clips]
        print(f"{name:<17}" + "".join(f"{c:>22}" for c in cells))
    known = [c for c in MOTION if c in clips]
    if known:
        raw = results["none"]["clips"]
        print("\nclips with known motion: flicker / dtSSD / mc-flicker (x 100), and the mc-flicker cut vs raw")
        print(f"{'smoother':<17}" + "".join(f"{c:>30}" for c in known))
        rows = [(n, r["clips"]) for n, r in results.items()] + list(oracle.items())
        for name, per in rows:
            cells = [f"{per[c]['flicker']:5.3f} /{per[c]['dtssd']:6.3f} /{per[c]['mc_flicker']:6.3f} {_cut_pct(per[c]['mc_flicker'], raw[c]['mc_flicker']):+4.0f}%"
                     for c in known]
            print(f"{name:<17}" + "".join(f"{c:>30}" for c in cells))
    print("\nmust-show rules ([info]: reference smoothers and figures without a rule; not counted)")
    for text, ok, figs, info in rules(results):
        mark = "info" if info else ("PASS" if ok else "FAIL")
        print(f"  [{mark}] {text}: {figs}")


def prepare(seg: Segmenter, seed: int, resolution: int, cache: Optional[Path]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """name -> (noisy frames (N, H, W, 3) uint8, true masks (N, H, W), raw model masks (N, H, W))."""
    meta = np.array([seed, resolution, NOISE])
    if cache is not None and cache.exists():
        data = np.load(cache)
        if "meta" in data.files and np.array_equal(data["meta"], meta):
            names = dict.fromkeys(k.split("/")[0] for k in data.files if "/" in k)  # in the order written
            return {n: (data[f"{n}/frames"], data[f"{n}/gt"], data[f"{n}/raw"]) for n in names}
        print(f"{cache} holds other clips (seed, resolution or noise); segmenting afresh", file=sys.stderr)
    rng = np.random.default_rng(seed)
    clips = {}
    for name, pairs in build_clips(seed).items():
        frames = add_noise(np.stack([p[0] for p in pairs]), rng)
        gt = np.stack([p[1] for p in pairs]).astype(np.float32)
        t0 = time.perf_counter()
        raw = segment(seg, frames)
        print(f"segmented {name}: {len(frames)} frames in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        clips[name] = (frames, gt, raw)
    if cache is not None:
        arrays = {f"{n}/{k}": v for n, c in clips.items() for k, v in zip(("frames", "gt", "raw"), c)}
        np.savez_compressed(cache, meta=meta, **arrays)
    return clips


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=4242, help="seed of the generated clips and noise")
    p.add_argument("--resolution", type=int, default=256, help="inference size of the tiny model")
    p.add_argument("--cut-threshold", type=float, default=0.15, help="scene_cut_threshold given to every smoother")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--cache", type=Path, default=None, help="npz of frames and raw masks: reused if it exists, else written")
    args = p.parse_args(argv)
    torch.set_grad_enabled(False)
    t0 = time.perf_counter()
    try:
        seg = Segmenter("tiny", device="cpu", precision="fp32", resolution=args.resolution)
    except BirefvidError as exc:
        print(f"bench_temporal: error: {exc}", file=sys.stderr)
        return 2
    clips = prepare(seg, args.seed, args.resolution, args.cache)
    results = evaluate(clips, smoothers(args.cut_threshold))
    oracle = ceiling(clips)
    info = {k: f"{len(v[0])} frames" for k, v in clips.items()}
    print_report(results, oracle, info)
    checked = rules(results)
    passed = all(ok for _, ok, _, info in checked if not info)
    print(f"\n{len(clips)} clips, {sum(len(v[0]) for v in clips.values())} frames, {time.perf_counter() - t0:.0f} s")
    if args.json is not None:
        report = {"model": seg.name, "resolution": args.resolution, "noise_sigma": NOISE, "seed": args.seed,
                  "cut_threshold": args.cut_threshold, "results": results, "oracle": oracle,
                  "rules": [{"rule": t, "passed": ok, "figures": f, "counted": not info} for t, ok, f, info in checked]}
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
