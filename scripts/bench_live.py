#!/usr/bin/env python
"""Live mode on this machine: does the display keep the camera's rate while the model shares the CPU?

A generated 640x480, 30 fps clip is played in real time (``--realtime --loop``, standing in for
a camera) through ``birefvid live --effect blur`` into a recording, once per model and inference
path (eager fp32, and the default: OpenVINO bf16 on x86 CPUs that have bf16), side by side in one
run; the script prints source, output and model fps, capture-to-output latency (median, p95) and
mask age for each:

    python scripts/bench_live.py                 # tiny and a lite-sized (swin_v1_t) model at 256²
    python scripts/bench_live.py --seconds 30 --paths torch:fp32,openvino:fp32,openvino:bf16
    python scripts/bench_live.py --models tiny --paths auto:auto --size 1920x1080 --sinks record,record:ultrafast,preview

``--sinks``: where the pictures go, each measured in turn: ``record`` (the default: an H.264
``.mp4`` at live mode's ``veryfast`` preset), ``record:PRESET`` (the same with ``--preset
PRESET``), ``preview`` (the browser preview with no browser attached: nothing is encoded, so it
measures live mode's own work, as a window or virtual camera would see it).

The swin_v1_t model has seeded random weights: its cost, not its masks, is what is measured.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
from pathlib import Path

import av
import torch

from birefvid.data.scenes import make_clip
from birefvid.job import EffectSpec, InferenceSpec, LiveJob, LiveSourceSpec
from birefvid.models import BiRefNet
from birefvid.runtime import Segmenter
from birefvid.runtime.live import run_live_job


def write_clip(path: Path, size: tuple[int, int], fps: int, seconds: float) -> Path:
    """An H.264 clip of a generated scene (a subject moving over a panning background)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "veryfast", "crf": "20", "bf": "0"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for image, _ in make_clip(7, int(fps * seconds), (size[1], size[0])):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now (for the preview sink)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def segmenter(name: str, side: int, backend: str, precision: str) -> Segmenter:
    """``tiny``, or a backbone with random weights, on the CPU with this backend and precision.

    Not prepared here: the live runner compiles the engine on its niced warm-up thread, before the run's clock starts.
    """
    if name == "tiny":
        seg = Segmenter("tiny", device="cpu", precision=precision, resolution=side, backend=backend)
    else:
        torch.manual_seed(0)
        seg = Segmenter(module=BiRefNet(name), device="cpu", precision=precision, resolution=side, backend=backend)
    return seg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of live input per model (default 20)")
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--models", default="tiny,swin_v1_t")
    parser.add_argument("--paths", default="torch:fp32,auto:auto", help="backend:precision pairs to compare (default: eager fp32 and the default path)")
    parser.add_argument("--sinks", default="record", help="comma-separated: record, record:PRESET, preview (default record)")
    parser.add_argument("--json", help="also write the figures as JSON")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(Path(tmp) / "camera.mp4", (width, height), args.fps, 10.0)
        runs = ((n, p, k) for n in args.models.split(",") for p in args.paths.split(",") for k in args.sinks.split(","))
        for name, path, sink in runs:
            backend, precision = path.split(":")
            seg = segmenter(name, args.resolution, backend, precision)
            kind, _, preset = sink.partition(":")
            if kind not in ("record", "preview"):
                parser.error(f"--sinks takes record, record:PRESET or preview, got {sink!r}")
            target = f"http://127.0.0.1:{free_port()}" if kind == "preview" else str(Path(tmp) / f"{name}-{backend}-{precision}.mp4")
            job = LiveJob(
                LiveSourceSpec(str(clip), realtime=True, loop=True), sinks=(target,),
                effect=EffectSpec("blur"), inference=InferenceSpec(device="cpu", resolution=args.resolution),
                duration=args.seconds, stats_every=args.seconds + 1, record_preset=preset or None, overwrite=True,
            )  # fmt: skip
            report = run_live_job(job, segmenter=seg)
            rows.append({"model": name, "path": f"{seg.backend} {seg.precision}", "sink": sink, "resolution": args.resolution, **report["stats"]})
    print(f"live blur, {width}x{height} at {args.fps} fps for {args.seconds:g} s per model, {torch.get_num_threads()} torch threads, {sys.platform}")
    print(f"{'model':<10} {'path':<14} {'sink':<16} {'source fps':>10} {'output fps':>10} {'out/src':>7} {'model fps':>9} {'latency p50':>11} {'p95':>6} {'mask age p50':>12} {'dropped':>7}")
    for r in rows:
        print(f"{r['model']:<10} {r['path']:<14} {r['sink']:<16} {r['source_fps']:>10.2f} {r['output_fps']:>10.2f} {r['output_fps'] / r['source_fps']:>7.3f} "
              f"{r['model_fps'] or 0:>9.2f} {r['latency_ms_median']:>9.0f}ms {r['latency_ms_p95']:>4.0f}ms {r['mask_age_ms_median']:>10.0f}ms {r['dropped']:>7}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
