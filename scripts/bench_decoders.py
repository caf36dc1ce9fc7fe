#!/usr/bin/env python
"""Decode throughput of birefvid's two video decoders, PyAV and decord, side by side on one clip.

Writes an H.264 clip with PyAV (a moving pattern, a keyframe every 50 frames) and decodes it to RGB
frames through ``open_source(path, decoder)``, the path ``birefvid process`` takes, best of
``--repeat`` runs each, in turns, one decoder thread each (what ``process`` gives a decoder on a CPU
of 4 cores or fewer) and with FFmpeg's thread choice:

    python scripts/bench_decoders.py                       # 256x256, 200 frames
    python scripts/bench_decoders.py --size 1280x720 --frames 300
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from birefvid.io import open_source


def make_clip(path: Path, width: int, height: int, frames: int) -> Path:
    """An H.264 (yuv420p, 25 fps) clip whose pictures change every frame, so no frame decodes for free."""
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"g": "50", "crf": "20", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            rgb = np.stack([(xx + 3 * i) % 256, (yy + 2 * i) % 256, (xx + yy + i) % 256], axis=-1).astype(np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode())
    return path


def decode_seconds(path: Path, decoder: str, threads: int) -> tuple[float, int]:
    """Seconds to open ``path`` and decode every frame to RGB, and the frames decoded."""
    start = time.perf_counter()
    kwargs = {"threads": threads} if decoder == "pyav" else {}  # decord takes no thread count through open_source
    with open_source(path, decoder, **kwargs) as src:
        count = sum(1 for _ in src)
    return time.perf_counter() - start, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256x256", help="WxH (default 256x256)")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "clip.mp4", width, height, args.frames)
        runs = [("pyav", 1), ("pyav", 0), ("decord", 0)]
        best = {run: float("inf") for run in runs}
        for _ in range(args.repeat):  # in turns, so a busy moment on the machine hits each alike
            for decoder, threads in runs:
                seconds, count = decode_seconds(clip, decoder, threads)
                assert count == args.frames, (decoder, count)
                best[(decoder, threads)] = min(best[(decoder, threads)], seconds)
    print(f"{args.size}, {args.frames} frames of H.264, best of {args.repeat}:")
    for (decoder, threads), seconds in best.items():
        what = f"{decoder} ({'1 thread' if threads == 1 else 'FFmpeg threads'})"
        print(f"  {what:24} {seconds * 1000:7.1f} ms  {args.frames / seconds:7.0f} fps")


if __name__ == "__main__":
    main()
