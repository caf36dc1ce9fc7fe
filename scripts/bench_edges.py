#!/usr/bin/env python
"""How ``--upsample guided`` compares with bilinear: accuracy on generated scenes and time per frame.

Accuracy: generated scenes with exact mattes (``birefvid.data.scenes``, which ``tiny`` was trained
on), the shipped ``tiny`` model at 256², its matte brought to the frame's size both ways; mean
MAE, boundary IoU and IoU against the exact matte, per frame size. Time: each upsampling of a
256² matte to 720p and 1080p on one CPU thread, the median of alternating runs.

    python scripts/bench_edges.py [--scenes 24] [--seed 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np
import torch

from birefvid.compose.compositor import fit_alphas
from birefvid.compose.guided import guided_upsample
from birefvid.data.scenes import make_scene
from birefvid.eval.metrics import boundary_iou, iou, mae
from birefvid.runtime import Segmenter


def accuracy(segmenter: Segmenter, size: tuple[int, int], scenes: int, seed: int) -> dict[str, tuple[float, float, float]]:
    """Mean (MAE, boundary IoU, IoU) of each upsampling over ``scenes`` generated (width, height) frames."""
    rng = np.random.default_rng(seed)
    scores: dict[str, list[tuple[float, float, float]]] = {"bilinear": [], "guided": []}
    for _ in range(scenes):
        rgb, truth = make_scene(rng, (size[1], size[0]))
        truth = truth.astype(np.float32) / 255.0 if truth.dtype == np.uint8 else truth.astype(np.float32)
        frame = torch.from_numpy(rgb).permute(2, 0, 1)[None]
        small = segmenter.predict(frame, frame_size=False)
        for name, full in (("bilinear", fit_alphas(small, frame.shape[-2:])), ("guided", guided_upsample(frame, small))):
            pred = full[0, 0].float().numpy()
            scores[name].append((mae(pred, truth), boundary_iou(pred, truth), iou(pred, truth)))
    return {name: tuple(float(np.mean(column)) for column in zip(*rows)) for name, rows in scores.items()}  # type: ignore[misc]


def timing(size: tuple[int, int], runs: int = 15) -> dict[str, float]:
    """Median milliseconds of each upsampling of a soft 256² matte to a (width, height) frame, alternating."""
    rng = np.random.default_rng(0)
    rgb, _ = make_scene(rng, (size[1], size[0]))
    frame = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    small = torch.from_numpy(cv2.GaussianBlur((rng.random((256, 256)) > 0.5).astype(np.float32), (0, 0), 6))[None, None]
    ways = {"bilinear": lambda: fit_alphas(small, frame.shape[-2:]), "guided": lambda: guided_upsample(frame, small)}
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(runs):
        for name, way in ways.items():
            t0 = time.perf_counter()
            way()
            times[name].append((time.perf_counter() - t0) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=24, help="generated frames per size (default 24)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    segmenter = Segmenter("tiny", resolution=256, device="cpu", backend="torch", precision="fp32")
    print(f"tiny at 256², {args.scenes} generated scenes per size, seed {args.seed}")
    print("| frame | upsampling | MAE | boundary IoU | IoU |")
    print("| --- | --- | --- | --- | --- |")
    for size in ((512, 512), (1280, 720), (1024, 1024)):
        for name, (m, b, i) in accuracy(segmenter, size, args.scenes, args.seed).items():
            print(f"| {size[0]}×{size[1]} | {name} | {m:.5f} | {b:.4f} | {i:.4f} |")
    print()
    print("| frame | bilinear ms | guided ms |")
    print("| --- | --- | --- |")
    for size in ((1280, 720), (1920, 1080)):
        t = timing(size)
        print(f"| {size[0]}×{size[1]} | {t['bilinear']:.2f} | {t['guided']:.2f} |")


if __name__ == "__main__":
    main()
