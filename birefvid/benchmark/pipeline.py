"""End-to-end speed: ``birefvid process`` (decode, segment, smooth, composite, encode) on a generated clip."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Optional

from ..api import build_file_job
from ..runtime.file_job import run_file_job
from ..runtime.segmenter import Segmenter
from .clip import write_scene_clip

SUFFIX = {"alpha": ".mov", "mask": ".mkv", "foreground": ".mp4", "green": ".mp4", "blur": ".mp4", "overlay": ".mp4"}


def measure_pipeline(
    segmenter: Segmenter, n_frames: int, size: tuple[int, int], kind: str = "alpha", smooth: str = "lookahead", batch_size: Optional[int] = None
) -> dict[str, Any]:
    """Frames/s, per-stage busy seconds and per-stage thread CPU seconds of a whole file job with this segmenter; the clip and output are removed.

    ``batch_size`` None runs the batch ``process`` picks.
    """
    with tempfile.TemporaryDirectory(prefix="birefvid-bench-") as tmp:
        clip = write_scene_clip(Path(tmp) / "clip.mp4", n_frames, size)
        job = build_file_job(clip, Path(tmp) / f"out{SUFFIX[kind]}", kind=kind, smooth=smooth, batch_size=batch_size)
        segmenter.prepare(size[1], size[0], batch_size or segmenter.file_batch_size(size[1], size[0]))
        report = run_file_job(job, segmenter=segmenter)
    return {
        "clip": f"{size[0]}x{size[1]}",
        "frames": report["frames"],
        "output": kind,
        "smooth": smooth,
        "fps": report["fps"],
        "wall_seconds": report["wall_seconds"],
        "stage_seconds": report["stage_seconds"],
        "stage_cpu_seconds": report["stage_cpu_seconds"],
    }
