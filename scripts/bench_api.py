#!/usr/bin/env python
"""Frames/s an API user sees: ``iter_masks`` and ``process_video`` against ``birefvid process``, same clip.

    python scripts/bench_api.py                          # samples/scene.mp4, tiny, torch and the default backend
    python scripts/bench_api.py --backends torch --rounds 3
    python scripts/bench_api.py --case iter --backend torch   # one measurement (what each round runs, in a child)

Each measurement runs in a fresh process (the OpenMP runtime's state is per process), the cases
alternate round by round, and the machine's load average is printed beside each figure: on a
shared machine the wall clock moves with other people's work. ``cpu ms/frame`` is this process's
own CPU a frame (threads that spin while waiting count here). The model is loaded before the clock
starts; ``process`` is timed by its own report (``fps``), the API cases around the call.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = ("cli", "process_video", "iter")


def measure(case: str, clip: str, model: str, backend: str) -> dict:
    """One case, in this process: frames, wall seconds of the frames' work, process CPU seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        if case == "cli":
            report = Path(tmp) / "r.json"
            cmd = [sys.executable, "-m", "birefvid", "process", clip, "-o", str(Path(tmp) / "m.mkv"), "--output", "mask",
                   "--model", model, "--backend", backend, "-q", "--report", str(report)]  # fmt: skip
            subprocess.run(cmd, check=True)
            r = json.loads(report.read_text())
            return {"frames": r["frames"], "wall": r["wall_seconds"], "cpu": sum(r.get("stage_cpu_seconds", {}).values()) or None}
        import birefvid
        from birefvid.api import iter_masks, process_video

        seg = birefvid.Segmenter(model, backend=backend, device="cpu")
        seg.prepare(256, 256, seg.file_batch_size(256, 256))
        c0, t0 = time.process_time(), time.perf_counter()
        if case == "iter":
            frames = sum(1 for _ in iter_masks(clip, segmenter=seg))
        else:
            frames = process_video(clip, str(Path(tmp) / "m.mkv"), kind="mask", segmenter=seg)["frames"]
        return {"frames": frames, "wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", default=str(ROOT / "samples" / "scene.mp4"))
    p.add_argument("--model", default="tiny")
    p.add_argument("--backends", default="torch,auto", help="comma-separated backends to compare")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--case", choices=CASES, help="run one case here and print its JSON (used by the rounds)")
    p.add_argument("--backend", default="torch", help="with --case: the backend")
    args = p.parse_args()
    if args.case:
        print(json.dumps(measure(args.case, args.input, args.model, args.backend)))
        return
    for backend in args.backends.split(","):
        results: dict[str, list[float]] = {c: [] for c in CASES}
        for r in range(args.rounds):
            for case in CASES if r % 2 == 0 else CASES[::-1]:
                load = os.getloadavg()[0]
                out = subprocess.run([sys.executable, __file__, "--case", case, "--backend", backend, "--input", args.input,
                                      "--model", args.model], check=True, capture_output=True, text=True).stdout  # fmt: skip
                m = json.loads(out.strip().splitlines()[-1])
                fps = m["frames"] / m["wall"]
                results[case].append(fps)
                cpu = "" if m["cpu"] is None else f", cpu {1000 * m['cpu'] / m['frames']:.0f} ms/frame"
                print(f"{backend:8} {case:14} {fps:6.2f} frames/s ({m['frames']} frames in {m['wall']:.2f} s{cpu}), load {load:.1f}", flush=True)
        print(backend, "medians:", ", ".join(f"{c} {statistics.median(v):.2f}" for c, v in results.items()), flush=True)


if __name__ == "__main__":
    main()
