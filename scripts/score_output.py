#!/usr/bin/env python
"""Score an output's alpha (or mask) against known masks, frame by frame: IoU, MAE, S-measure, flicker.

    birefvid process samples/scene.mp4 -o scene.webm --model tiny
    python scripts/score_output.py scene.webm                      # truth: samples/scene_mask.mkv
    python scripts/score_output.py out.mov --truth my_masks.mkv
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from birefvid.eval.metrics import evaluate
from birefvid.io.readback import iter_alpha

SAMPLE_TRUTH = Path(__file__).resolve().parents[1] / "samples" / "scene_mask.mkv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="an alpha or mask output: video file or PNG folder")
    parser.add_argument("--truth", default=str(SAMPLE_TRUTH), help="mask video or PNG folder (default: the sample's)")
    args = parser.parse_args()
    preds = (a.astype("float32") / 255.0 for a in iter_alpha(args.output))
    truth = (a.astype("float32") / 255.0 for a in iter_alpha(args.truth))
    metrics = evaluate(preds, truth)
    print(json.dumps({"output": args.output, "truth": args.truth, **{k: round(v, 4) for k, v in metrics.items()}}, indent=2))


if __name__ == "__main__":
    main()
