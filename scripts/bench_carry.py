#!/usr/bin/env python
"""Live mode's mask carry: how well does an old mask, carried along flow, fit the frame shown now?

In live mode the model is slower than the camera: a mask computed on frame r arrives while frame
r + k is shown, and is carried onto each frame until the next one arrives. This replays that on
``scripts/bench_temporal.py``'s generated clips (exact masks, per-frame noise, the shipped
``tiny`` model's masks): a model that takes frames 0, k, 2k, ... and delivers each k frames
later, so shown frames see masks k to 2k - 1 frames old (k = 5 at 30 fps is a mask age of
167-300 ms, what ``tiny`` gets on a 2-core CPU). For each clip and k it prints the mean IoU
against the true mask of the shown frame for:

* ``fresh``    - the model's own mask of the shown frame (no latency: the ceiling);
* ``stale``    - the old mask as it is (``--no-carry``);
* ``straight`` - carried along flow from the shown frame straight to the mask's frame (the carry
  before chaining: DIS from scratch, occlusion-aware);
* ``chained``  - the default ``MaskCarrier``: flows chained frame to frame back to the mask's
  frame, refined by the straight flow started from them, each pixel taking the better one;

and the CPU milliseconds per carried frame of the last two.

    python scripts/bench_carry.py                      # ~1 min on 2 CPU cores (segments the clips once)
    python scripts/bench_carry.py --cache /tmp/raw.npz # reuse bench_temporal.py's cache
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_temporal  # noqa: E402  (the clips, their noise and the raw masks)

from birefvid.eval.metrics import iou  # noqa: E402
from birefvid.runtime import Segmenter  # noqa: E402
from birefvid.temporal import MaskCarrier  # noqa: E402

CLIPS = ("drift", "fast", "linear", "pan", "static")
LAGS = (2, 5, 8)


def replay(frames: np.ndarray, raw: np.ndarray, gt: np.ndarray, lag: int, carrier: Optional[MaskCarrier]) -> tuple[float, float]:
    """Mean IoU over the shown frames lag.. of masks delivered ``lag`` frames late; and ms per carry."""
    scores, seconds, carried = [], 0.0, 0
    ref: Optional[int] = None
    for t in range(len(frames)):
        if t % lag == 0 and t >= lag:
            ref = t - lag  # the model took frame t - lag and its mask arrives now
            if carrier is not None:
                carrier.set_reference(frames[ref], raw[ref], key=ref)
        if ref is None:
            if carrier is not None:
                carrier.observe(frames[t], key=t)  # shown before any mask: the chain starts here
            continue
        if carrier is None:
            mask = raw[ref]
        else:
            start = time.process_time()
            mask = carrier.carry(frames[t], key=t)
            seconds += time.process_time() - start
            carried += 1
        scores.append(iou(mask, gt[t]))
    return 100 * float(np.mean(scores)), 1000 * seconds / max(carried, 1)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=4242, help="seed of the generated clips and noise (as bench_temporal.py)")
    p.add_argument("--cache", type=Path, default=None, help="bench_temporal.py's npz of frames and raw masks: reused if it exists, else written")
    args = p.parse_args(argv)
    seg = Segmenter("tiny", device="cpu", precision="fp32", resolution=256)  # as bench_temporal.py: the same raw masks
    clips = bench_temporal.prepare(seg, args.seed, 256, args.cache)
    print(f"mask carry in live mode: masks delivered k frames late, IoU x 100 of the shown frames (tiny model, {len(CLIPS)} clips)")
    print(f"{'clip':8s} {'k':>2s} {'fresh':>7s} {'stale':>7s} {'straight':>9s} {'chained':>8s}   ms/carry straight, chained")
    for name in CLIPS:
        frames, gt, raw = clips[name]
        fresh = 100 * float(np.mean([iou(m, g) for m, g in zip(raw, gt)]))
        for lag in LAGS:
            stale, _ = replay(frames, raw, gt, lag, None)
            straight, ms_straight = replay(frames, raw, gt, lag, MaskCarrier(history=0))
            chained, ms_chained = replay(frames, raw, gt, lag, MaskCarrier())
            print(f"{name:8s} {lag:2d} {fresh:7.1f} {stale:7.1f} {straight:9.1f} {chained:8.1f}   {ms_straight:.1f}, {ms_chained:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
