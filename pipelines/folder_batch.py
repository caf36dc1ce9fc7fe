#!/usr/bin/env python
"""Recipe: every video in a folder -> alpha videos in another, resumable (finished outputs are skipped).

Outputs appear only when complete (birefvid writes to a temporary file and renames it), so after
an interruption a rerun redoes just the unfinished files. The model loads once for the batch.

    python pipelines/folder_batch.py videos/ cutouts/ [--model lite] [--suffix .webm]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from birefvid import BirefvidError, Segmenter
from birefvid.api import process_video
from birefvid.batch.runner import check_distinct_outputs
from birefvid.cli import guarded
from birefvid.extensions import VIDEO_EXTENSIONS
from birefvid.io.formats import choose_encoder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input_dir", type=Path)
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--model", default="general")
    parser.add_argument("--weights")
    parser.add_argument("--resolution")
    parser.add_argument("--suffix", default=".mov", help="output container (default .mov, ProRes 4444)")
    args = parser.parse_args(argv)
    return guarded(parser.prog, lambda: _convert_all(args))  # a bad folder or model: one line and exit 2


def _convert_all(args: argparse.Namespace) -> int:
    if not args.input_dir.is_dir():
        raise BirefvidError(f"input folder not found: {args.input_dir}")
    videos = sorted(p for p in args.input_dir.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
    if not videos:
        raise BirefvidError(f"no videos in {args.input_dir} (looked for {', '.join(sorted(VIDEO_EXTENSIONS))})")
    targets = [args.output_dir / (video.stem + args.suffix) for video in videos]
    check_distinct_outputs(targets)  # a.mp4 and a.mkv would both write a.mov: the second was silently skipped
    choose_encoder(targets[0], "alpha", 64, 64)  # a --suffix without alpha (.mp4) fails now, not once per video
    segmenter = Segmenter(None if args.weights else args.model, weights=args.weights, resolution=args.resolution)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for video, target in zip(videos, targets):
        if target.exists():
            print(f"skip {video.name}: {target.name} exists")
            continue
        try:
            report = process_video(video, target, kind="alpha", segmenter=segmenter)
            print(f"done {video.name}: {report['frames']} frames, {report['fps']} fps")
        except BirefvidError as exc:  # one bad file must not stop the batch
            failed += 1
            print(f"FAILED {video.name}: {exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
