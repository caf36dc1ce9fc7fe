#!/usr/bin/env python
"""Score a model (default: the shipped ``tiny``) on held-out procedural data and print IoU/MAE.

Held-out means never seen in training: training samples come from
``np.random.default_rng([train_seed, index])`` (two-number seeds), while this script draws
single-integer seeds starting at ``--seed`` (default 9_000_001), which the trainer never uses.
It scores one moving clip (accuracy and flicker) and a set of still scenes.

    python scripts/eval_tiny.py                       # the shipped tiny model
    python scripts/eval_tiny.py --weights runs/tiny/model.safetensors --backbone pvt_v2_b0
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from birefvid.data import make_clip, make_scene
from birefvid.errors import BirefvidError
from birefvid.eval import Evaluator
from birefvid.runtime import Segmenter


def score(seg: Segmenter, pairs, batch: int) -> dict[str, float]:
    """Run ``seg`` over (image, mask) pairs in batches and return the metrics."""
    ev = Evaluator()
    chunk: list[tuple[np.ndarray, np.ndarray]] = []

    def flush() -> None:
        alphas = seg([img for img, _ in chunk])
        for alpha, (_, gt) in zip(alphas, chunk):
            ev.step(alpha, gt)
        chunk.clear()

    for pair in pairs:
        chunk.append(pair)
        if len(chunk) == batch:
            flush()
    if chunk:
        flush()
    return ev.results()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="registry name (default: tiny, unless --weights is given)")
    p.add_argument("--weights", default=None, help="a .safetensors/.pth checkpoint instead of --model")
    p.add_argument("--backbone", default=None)
    p.add_argument("--resolution", default=None, help="inference size (default: the model's own)")
    p.add_argument("--device", default="auto")
    p.add_argument("--size", type=int, default=256, help="side of the generated frames")
    p.add_argument("--frames", type=int, default=48, help="frames in the held-out clip")
    p.add_argument("--scenes", type=int, default=48, help="held-out still scenes")
    p.add_argument("--seed", type=int, default=9_000_001, help="first held-out seed")
    p.add_argument("--batch", type=int, default=8)
    args = p.parse_args(argv)

    model = args.model if (args.model or args.weights) else "tiny"
    try:
        seg = Segmenter(model, weights=args.weights, backbone=args.backbone, device=args.device, precision="fp32",
                        resolution=args.resolution)
    except BirefvidError as exc:
        print(f"eval_tiny: error: {exc}", file=sys.stderr)
        return 2
    size = (args.size, args.size)
    t0 = time.perf_counter()
    clip = score(seg, make_clip(args.seed, args.frames, size), args.batch)
    scenes = score(seg, (make_scene(args.seed + 1 + i, size) for i in range(args.scenes)), args.batch)
    report = {"model": seg.name, "resolution": list(seg.resolution), "clip": clip, "scenes": scenes,
              "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(report, indent=2))
    print(f"clip   IoU {clip['iou']:.3f}  MAE {clip['mae']:.4f}  dt_mae {clip.get('dt_mae', 0):.4f}")
    print(f"scenes IoU {scenes['iou']:.3f}  MAE {scenes['mae']:.4f}  S {scenes['s_measure']:.3f}  maxF {scenes['max_f']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
