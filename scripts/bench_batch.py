#!/usr/bin/env python
"""Ray's overhead on this machine: the same batch run locally one video after another, then with ``--ray local``.

Generates N clips (H.264 + AAC, a keyframe every 12 frames) and runs ``birefvid batch`` on them
twice as separate processes, each timed end to end (interpreter, model load, Ray start-up and
workers included), then prints both wall times, their ratio, and the per-worker throughput the
Ray run's progress JSON reports (frames of finished chunks / seconds spent in them):

    python scripts/bench_batch.py                         # 4 clips of 48 frames, tiny at 128², 2 workers
    python scripts/bench_batch.py --clips 8 --frames 96 --resolution 256

Both runs use the PyTorch backend in fp32 (no export on first use) and the same chunking
(``--chunk-frames``, so the long clips split on both sides).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from birefvid.data.scenes import make_clip


def write_clip(path: Path, n_frames: int, size: tuple[int, int], seed: int, gop: int = 12, fps: int = 25) -> None:
    """A generated scene (subject moving over a background) with a tone, a keyframe every ``gop`` frames."""
    frames = [image for image, _ in make_clip(seed, n_frames, size=(size[1], size[0]))]  # make_clip takes (h, w)
    rate = 48000
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps, options={"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "preset": "veryfast"})
        v.width, v.height, v.pix_fmt = *size, "yuv420p"
        a = out.add_stream("aac", rate=rate)
        a.codec_context.layout = "mono"
        done = 0
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = i
            out.mux(v.encode(frame))
            stop = (i + 1) * rate // fps
            t = np.arange(done, stop) / rate
            af = av.AudioFrame.from_ndarray((0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None], format="fltp", layout="mono")
            af.sample_rate, af.pts, af.time_base = rate, done, Fraction(1, rate)
            out.mux(a.encode(af))
            done = stop
        out.mux(v.encode(None))
        out.mux(a.encode(None))


def run_batch(inputs: list[Path], out: Path, args: argparse.Namespace, ray: bool) -> tuple[float, list[dict]]:
    """Wall seconds of one ``birefvid batch`` process, and its progress events."""
    log = out.with_suffix(".jsonl")
    cmd = [sys.executable, "-m", "birefvid.cli", "batch", *map(str, inputs), "--output-dir", str(out), "--output", args.output,
           "--chunk-frames", str(args.chunk_frames), "--model", "tiny", "--resolution", str(args.resolution), "--device", "cpu",
           "--backend", "torch", "--precision", "fp32", "--progress-json", str(log), "-q"]  # fmt: skip
    if ray:
        cmd += ["--ray", "local", "--workers", str(args.workers), "--cpus-per-worker", "1"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    wall = time.perf_counter() - t0
    return wall, [json.loads(line) for line in log.read_text().splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--frames", type=int, default=48, help="frames per clip")
    parser.add_argument("--size", default="256x144", help="clip size WxH")
    parser.add_argument("--resolution", type=int, default=128, help="inference size of the tiny model")
    parser.add_argument("--chunk-frames", type=int, default=24)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="Ray workers, one CPU each (default: the CPU count)")
    parser.add_argument("--output", default="mask")
    args = parser.parse_args()
    size = tuple(int(x) for x in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        inputs = []
        for i in range(args.clips):
            inputs.append(d / f"clip{i}.mp4")
            write_clip(inputs[-1], args.frames, size, seed=i)  # type: ignore[arg-type]
        local_wall, local_ev = run_batch(inputs, d / "local", args, ray=False)
        ray_wall, ray_ev = run_batch(inputs, d / "ray", args, ray=True)
    frames = args.clips * args.frames
    chunks = [e for e in ray_ev if e["event"] == "chunk_done"]
    per_worker = sum(e["chunk_frames"] for e in chunks) / max(sum(e["chunk_seconds"] for e in chunks), 1e-9)
    local_chunks = [e for e in local_ev if e["event"] == "chunk_done"]
    local_rate = sum(e["chunk_frames"] for e in local_chunks) / max(sum(e["chunk_seconds"] for e in local_chunks), 1e-9)
    print(f"{args.clips} clips x {args.frames} frames ({size[0]}x{size[1]}), tiny at {args.resolution}², --output {args.output}, "
          f"{len(chunks)} chunks; {os.cpu_count()} CPU cores")  # fmt: skip
    print(f"local sequential : {local_wall:6.1f} s wall  ({frames / local_wall:.2f} fps end to end, {local_rate:.2f} fps inside chunks, 1 process, torch threads = cores)")
    print(f"--ray local      : {ray_wall:6.1f} s wall  ({frames / ray_wall:.2f} fps end to end, {per_worker:.2f} fps per worker inside chunks, {args.workers} workers x 1 thread)")
    print(f"ratio ray/local  : {ray_wall / local_wall:.2f}  (<1: Ray is faster)")
    print(f"Ray overhead     : {ray_wall - sum(e['chunk_seconds'] for e in chunks) / args.workers:.1f} s  "
          f"(wall minus the chunk work shared by {args.workers} workers: start-up, workers loading the model, dispatch, joins)")  # fmt: skip


if __name__ == "__main__":
    main()
