#!/usr/bin/env python
"""Model-only vs end-to-end frames/s of ``birefvid process``, measured side by side in one run.

    python scripts/bench_pipeline.py                       # issue 14's two must-show cases on a generated 720p clip
    python scripts/bench_pipeline.py --cases tiny-green    # one of them (--frames 24: a shorter clip)
    python scripts/bench_pipeline.py --size 1920x1080      # both on a generated 1080p clip
    python scripts/bench_pipeline.py --input clip.mp4 --model tiny --output alpha   # any clip and model

The must-show cases, on a generated 1280x720 clip (``--size``; ``--frames`` frames of a moving subject over a
textured background, 25 fps, with an AAC audio track):

- ``swin512``: BiRefNet swin_v1_t (lite-sized; seeded random weights, cost does not depend on
  them) at 512x512, the default output (alpha, ProRes 4444 ``.mov``);
- ``tiny-green``: the shipped ``tiny`` model at 256x256, ``--output green`` (H.264 ``.mp4``).

Model-only, the same for every case: ``Segmenter.predict(frames, frame_size=False)`` on frames
decoded beforehand (resize to the inference size, normalise, BiRefNet, sigmoid), one frame per
call after a warm-up frame, on a worker thread started for each pass as the pipeline starts its
``birefvid-segment`` thread for each run: torch's OpenMP team belongs to the thread that calls the
model, and its threads spin differently when that is the main thread (docs/api.md, the
``GOMP_SPINCOUNT`` note; on a loaded machine the main thread's figure was several times slower),
so the main thread's figure would compare unlike with like. End-to-end: ``process_video`` with the same Segmenter object (decode,
segment, default smoothing, foreground estimation, compositing, encoding, audio mux) timed by the
pipeline itself. Their ratio is what the pipeline around the model costs.

The machine this was written on is shared, so wall-clock figures move with other people's load:
each round runs half the model-only frames before the pipeline and half after (``--rounds``
rounds, totals printed, per-round ratios too). The process's own CPU time per frame, model-only
against end-to-end, is printed beside them: other processes' load does not enter it, and on a
machine the model keeps busy it is the ratio wall-clock frames/s tends to. So is each pipeline
stage's own thread CPU a frame (decode, segment: the model thread's own work, compose, encode),
with the rest of the process's CPU, which is the model engine's threads (and any codec threads):
what each helper really costs, where busy time also counts the waits of a low-priority thread.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import av
import numpy as np
import torch

from birefvid.api import process_video
from birefvid.frames import FrameBatch
from birefvid.io import open_source
from birefvid.runtime import Segmenter

T = TypeVar("T")
# the name of the thread the model-only figure runs on (the pipeline's is ``birefvid-segment``)
MODEL_ONLY_THREAD = "bench-model-only"

SUFFIX = {"alpha": ".mov", "mask": ".mkv", "green": ".mp4", "composite": ".mp4", "blur": ".mp4"}
# frames: each case's default clip length. A run pays once for filling and draining the pipeline
# (the last frames are smoothed, composited and encoded after the model is done, ~0.2 s for tiny
# green at 720p); ~4 s of clip weigh that as a user's clip of a few seconds does. Swin-T keeps 24
# (~0.6 s a frame of model, so its drain weighs less, and 96 frames would take ~4 minutes).
CASES: dict[str, dict[str, Any]] = {
    "swin512": {"backbone": "swin_v1_t", "resolution": 512, "output": "alpha", "frames": 24},
    "tiny-green": {"model": "tiny", "resolution": 256, "output": "green", "frames": 96},
}


def make_clip_file(path: Path, n_frames: int, size: tuple[int, int] = (1280, 720), fps: int = 25) -> None:
    """Write a generated scene clip (H.264, yuv420p, crf 18) with a 440 Hz AAC tone as its audio."""
    from birefvid.data.scenes import make_clip

    width, height = size
    rate = 48000
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps, options={"crf": "18"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=rate)
        audio.codec_context.layout = "mono"
        for image, _ in make_clip(7, n_frames, (height, width)):
            out.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(video.encode(None))
        samples = int(rate * n_frames / fps)
        for start in range(0, samples, 1024):
            t = np.arange(start, min(samples, start + 1024)) / rate
            frame = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None], format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))


def load_segmenter(case: dict[str, Any], device: str, precision: str) -> Segmenter:
    """The case's Segmenter: a named model, or a backbone with seeded random weights."""
    if "backbone" in case:
        from birefvid.models import BiRefNet

        torch.manual_seed(0)
        module = BiRefNet(case["backbone"]).eval()
        return Segmenter(module=module, device=device, precision=precision, resolution=case["resolution"])
    return Segmenter(case["model"], weights=case.get("weights"), device=device, precision=precision, resolution=case["resolution"])


def on_worker_thread(work: Callable[[], T]) -> T:
    """``work()`` run on a new thread, as ``process`` runs the model on its ``birefvid-segment`` thread; its result,
    or its error re-raised here."""
    done: list[T] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            done.append(work())
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            failed.append(exc)

    thread = threading.Thread(target=run, name=MODEL_ONLY_THREAD, daemon=True)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return done[0]


def model_only_seconds(segmenter: Segmenter, frames: list, batch_size: int, repeats: int) -> float:
    """Seconds Segmenter.predict alone (at the inference size) takes over ``frames`` decoded up front, timed on a
    worker thread (``on_worker_thread``) as the pipeline runs the model: like is compared with like."""
    batches = [FrameBatch.from_frames(frames[i : i + batch_size]).images for i in range(0, len(frames), batch_size)]

    def timed() -> float:
        start = time.perf_counter()
        for _ in range(repeats):
            for images in batches:
                segmenter.predict(images, frame_size=False)
        if segmenter.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    return on_worker_thread(timed)


def cpu_seconds() -> float:
    """CPU time this process has used so far, all its threads (model, pipeline stages, encoder) together."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_case(name: str, case: dict[str, Any], clip: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Measure one case: model-only, then end-to-end with the same Segmenter; prints and returns the figures."""
    seg = load_segmenter(case, args.device, args.precision)
    kind = case["output"]
    with open_source(str(clip)) as source:
        frames = list(source)
        size = f"{source.info.width}x{source.info.height}"
        batch = args.batch_size or seg.file_batch_size(source.info.height, source.info.width)  # what process picks
    warm_up = FrameBatch.from_frames(frames[:batch]).images
    on_worker_thread(lambda: seg.predict(warm_up, frame_size=False))  # warm-up, on a worker thread as the figures are
    # The machine is shared: each round runs half the model-only frames before the pipeline and half
    # after it, so a load that changes during the run weighs on both figures alike; figures are
    # totals over the rounds.
    half = len(frames) // 2
    model_seconds, e2e_seconds, model_cpu, e2e_cpu, rounds = 0.0, 0.0, 0.0, 0.0, []
    stage_seconds: dict[str, float] = {}
    stage_cpu: dict[str, float] = {}  # CPU seconds of each stage's own thread, summed over the rounds
    for _ in range(args.rounds):
        cpu = cpu_seconds()
        m = model_only_seconds(seg, frames[:half], batch, args.repeats)
        model_cpu += cpu_seconds() - cpu
        cpu = cpu_seconds()
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / f"bench{SUFFIX[kind]}"
            report = process_video(str(clip), out, kind=kind, segmenter=seg, batch_size=batch, smooth=args.smooth,
                                   background="#336699" if kind == "composite" else None)  # fmt: skip
        e2e_cpu += cpu_seconds() - cpu
        cpu = cpu_seconds()
        m += model_only_seconds(seg, frames[half:], batch, args.repeats)
        model_cpu += cpu_seconds() - cpu
        assert report["frames"] == len(frames), report["frames"]
        model_seconds += m
        e2e_seconds += report["wall_seconds"]
        rounds.append((args.repeats * len(frames) / m, len(frames) / report["wall_seconds"]))
        for k, v in report["stage_seconds"].items():
            stage_seconds[k] = stage_seconds.get(k, 0.0) + v / args.rounds
        for k, v in report["stage_cpu_seconds"].items():
            stage_cpu[k] = stage_cpu.get(k, 0.0) + v
    model_fps = args.rounds * args.repeats * len(frames) / model_seconds
    e2e_fps = args.rounds * len(frames) / e2e_seconds
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in stage_seconds.items())
    print(f"\n[{name}] {seg.name} ({seg.backbone}) at {seg.resolution[0]}x{seg.resolution[1]}, {size} x {len(frames)} frames, "
          f"--output {kind}, smooth {args.smooth}, {seg.device} {seg.backend} {seg.precision}, batch {batch}")  # fmt: skip
    print(f"  model-only   frames/s  {model_fps:8.3f}  (on a worker thread, as the pipeline runs the model)")
    print(f"  end-to-end   frames/s  {e2e_fps:8.3f}")
    print(f"  end-to-end / model     {e2e_fps / model_fps:8.3f}")
    model_cpu_frame = model_cpu / (args.rounds * args.repeats * len(frames))
    e2e_cpu_frame = e2e_cpu / (args.rounds * len(frames))
    print(f"  CPU s per frame        model-only {model_cpu_frame:.3f}, end-to-end {e2e_cpu_frame:.3f}, "
          f"model / end-to-end {model_cpu_frame / e2e_cpu_frame:.3f}  (load on other processes does not count here)")  # fmt: skip
    print(f"  stage busy time        {stages}; wall {e2e_seconds / args.rounds:.2f}s  (per run, mean of {args.rounds})")
    # what each helper really costs: its thread's CPU (busy time above includes waiting for a core at
    # low priority); the rest of the process's CPU is the model's engine threads, codec threads and main
    n_e2e = args.rounds * len(frames)
    helpers = ", ".join(f"{k} {1000 * v / n_e2e:.1f}" for k, v in stage_cpu.items())
    rest = 1000 * (e2e_cpu - sum(stage_cpu.values())) / n_e2e
    print(f"  CPU ms per frame       {helpers} (each stage's own thread); the rest {rest:.1f} (model engine, codec threads)")
    print("  per round (model, e2e, ratio)  " + "; ".join(f"{m:.3f}, {e:.3f}, {e / m:.3f}" for m, e in rounds))
    return {"case": name, "model_fps": model_fps, "e2e_fps": e2e_fps, "ratio": e2e_fps / model_fps, "stages": stage_seconds,
            "stage_cpu_ms_per_frame": {k: 1000 * v / n_e2e for k, v in stage_cpu.items()},
            "cpu_ratio": model_cpu_frame / e2e_cpu_frame}  # fmt: skip


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of: {', '.join(CASES)}")
    parser.add_argument("--frames", type=int, default=None, help="length of the generated clip (default: swin512 24, tiny-green 96, custom 24)")
    parser.add_argument("--size", default="1280x720", help="WxH of the generated clip (default 1280x720; 1920x1080 for 1080p)")
    parser.add_argument("--input", default=None, help="a clip of your own instead of the generated one (with --model/--weights)")
    parser.add_argument("--model", default=None)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--output", default=None, choices=sorted(SUFFIX))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--batch-size", type=int, default=None, help="frames per model call, both runs (default: what process picks)")
    parser.add_argument("--smooth", default="lookahead")
    parser.add_argument("--repeats", type=int, default=1, help="model-only passes over the frames per round")
    parser.add_argument("--rounds", type=int, default=2, help="model-only / end-to-end rounds, alternating")
    args = parser.parse_args(argv)
    try:
        size = tuple(int(v) for v in args.size.lower().split("x"))
        assert len(size) == 2 and min(size) >= 64
    except (ValueError, AssertionError):
        parser.error(f"--size must be WxH, e.g. 1920x1080, got {args.size!r}")

    print(f"# {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        if args.input or args.model or args.weights:
            case = {"model": args.model, "weights": args.weights, "resolution": args.resolution, "output": args.output or "alpha"}
            clip = Path(args.input) if args.input else Path(tmp) / "clip.mp4"
            if not args.input:
                make_clip_file(clip, args.frames or 24, size)
            results = [run_case("custom", case, clip, args)]
        else:
            results = []
            for name in args.cases.split(","):
                frames = args.frames or CASES[name]["frames"]
                clip = Path(tmp) / f"clip{frames}.mp4"
                if not clip.exists():
                    make_clip_file(clip, frames, size)
                results.append(run_case(name, CASES[name], clip, args))
    print("\n| case | model-only frames/s | end-to-end frames/s | end-to-end / model | CPU per frame, model / end-to-end |")
    print("| --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['case']} | {r['model_fps']:.3f} | {r['e2e_fps']:.3f} | {r['ratio']:.3f} | {r['cpu_ratio']:.3f} |")


if __name__ == "__main__":
    main()
