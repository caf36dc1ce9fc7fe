#!/usr/bin/env python
"""Recipe: one video in, an editor-ready alpha video out (ProRes 4444 .mov by default), audio kept.

    python pipelines/video_to_alpha.py talk.mp4 talk.mov [--model lite]
"""

from __future__ import annotations

import argparse
import json

from birefvid.api import process_video


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input")
    parser.add_argument("output", help=".mov (ProRes 4444), .webm (VP9 alpha), .mkv (FFV1) or a folder (PNGs)")
    parser.add_argument("--model", default="general")
    parser.add_argument("--weights")
    parser.add_argument("--resolution")
    args = parser.parse_args(argv)
    report = process_video(args.input, args.output, kind="alpha", model=None if args.weights else args.model,
                           weights=args.weights, resolution=args.resolution)  # fmt: skip
    print(json.dumps({k: report[k] for k in ("output", "frames", "wall_seconds", "fps")}))


if __name__ == "__main__":
    main()
