#!/usr/bin/env python
"""Model-only vs end-to-end frames/s for one clip and one model, measured side by side in one run.

    python scripts/bench_pipeline.py [--input samples/scene.mp4] [--model tiny | --weights F] [--output alpha]

Model-only: the Segmenter (resize, normalise, BiRefNet, sigmoid, resize back) on frames decoded
beforehand. End-to-end: ``process_video`` with the same Segmenter (decode, segment, smooth,
composite with foreground estimation, encode, mux audio). Their ratio is the pipeline's overhead.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from birefvid.api import process_video
from birefvid.frames import FrameBatch
from birefvid.io import open_source
from birefvid.runtime import Segmenter

SUFFIX = {"alpha": ".mov", "mask": ".mkv", "green": ".mp4", "composite": ".mp4", "blur": ".mp4"}


def model_only_fps(segmenter: Segmenter, path: str, batch_size: int, repeats: int) -> tuple[float, int]:
    """Frames/s of Segmenter.predict alone over the clip's frames (decoded up front, not timed)."""
    with open_source(path) as source:
        frames = list(source)
    batches = [FrameBatch.from_frames(frames[i : i + batch_size]) for i in range(0, len(frames), batch_size)]
    segmenter.predict(batches[0].images)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        for batch in batches:
            segmenter.predict(batch.images)
    if segmenter.device.type == "cuda":
        torch.cuda.synchronize()
    return repeats * len(frames) / (time.perf_counter() - start), len(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=str(Path(__file__).resolve().parents[1] / "samples" / "scene.mp4"))
    parser.add_argument("--model", default=None)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--resolution", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--output", default="alpha", choices=sorted(SUFFIX))
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--smooth", default="lookahead")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    seg = Segmenter(args.model if args.weights is None else None, weights=args.weights, device=args.device,
                    precision=args.precision, resolution=args.resolution)  # fmt: skip
    batch = args.batch_size or (4 if seg.device.type == "cuda" else 1)
    print(f"# {args.input} | model {seg.name} ({seg.backbone}) at {seg.resolution[0]}x{seg.resolution[1]} | {seg.device} {seg.dtype} | batch {batch}")
    print(f"# {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    model_fps, n = model_only_fps(seg, args.input, batch, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"bench{SUFFIX[args.output]}"
        report = process_video(args.input, out, kind=args.output, segmenter=seg, batch_size=batch, smooth=args.smooth,
                               background="#336699" if args.output == "composite" else None)  # fmt: skip
    e2e_fps = report["fps"]
    print(f"frames                 {n}")
    print(f"model-only   frames/s  {model_fps:8.2f}")
    print(f"end-to-end   frames/s  {e2e_fps:8.2f}   (--output {args.output}, smooth {args.smooth})")
    print(f"end-to-end / model     {e2e_fps / model_fps:8.2f}   (pipeline overhead {100 * (1 - e2e_fps / model_fps):.0f}%)")
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in report["stage_seconds"].items())
    print(f"stage busy time        {stages}; wall {report['wall_seconds']:.2f}s")


if __name__ == "__main__":
    main()
