#!/usr/bin/env python
"""Recipe: one video in, an editor-ready alpha video out (ProRes 4444 .mov by default), audio kept.

    python pipelines/video_to_alpha.py talk.mp4 talk.mov [--model lite]
"""

from __future__ import annotations

import argparse
import json
import sys

from birefvid.api import process_video
from birefvid.cli import guarded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input")
    parser.add_argument("output", help=".mov (ProRes 4444), .webm (VP9 alpha), .mkv (FFV1) or a folder (PNGs)")
    parser.add_argument("--model", default="general")
    parser.add_argument("--weights")
    parser.add_argument("--resolution")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    args = parser.parse_args(argv)

    def work() -> None:  # a bad input or output is one line and exit 2, as with `birefvid process`
        report = process_video(args.input, args.output, kind="alpha", model=None if args.weights else args.model,
                               weights=args.weights, resolution=args.resolution, overwrite=args.overwrite)  # fmt: skip
        print(json.dumps({k: report[k] for k in ("output", "frames", "wall_seconds", "fps")}))

    return guarded(parser.prog, work)


if __name__ == "__main__":
    sys.exit(main())
