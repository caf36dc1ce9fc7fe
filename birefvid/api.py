"""One-call facades: ``process_video(input, output, **options)``, ``run_job(job)`` and ``run_live(job)``.

``process_video`` keeps the keyword form users know; it only builds a ``FileJob`` (the one
description every entry point shares) and runs it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from .job import (
    EffectSpec,
    FileJob,
    InferenceSpec,
    LiveJob,
    LiveSourceSpec,
    ModelSpec,
    OutputKind,
    OutputSpec,
    Precision,
    SmoothingSpec,
    SmoothKind,
    SourceSpec,
)

if TYPE_CHECKING:
    from .runtime.segmenter import Segmenter

PathLike = Union[str, Path]


def build_file_job(
    input: PathLike,
    output: PathLike,
    *,
    kind: OutputKind = "alpha",
    model: Optional[str] = None,
    weights: Optional[PathLike] = None,
    backbone: Optional[str] = None,
    device: str = "auto",
    precision: Precision = "auto",
    resolution: Union[int, str, tuple[int, int], None] = None,
    keep_aspect: bool = False,
    background: Optional[str] = None,
    key_color: str = "#00ff00",
    blur_sigma: float = 16.0,
    foreground: bool = True,
    smooth: SmoothKind = "lookahead",
    smooth_window: int = 2,
    batch_size: Optional[int] = None,
    codec: Optional[str] = None,
    crf: Optional[int] = None,
    bitrate: Optional[str] = None,
    pix_fmt: Optional[str] = None,
    audio: bool = True,
    overwrite: bool = False,
    decoder: str = "pyav",
    fps: float = 25.0,
    queue_size: int = 4,
) -> FileJob:
    """The ``FileJob`` that ``process_video`` with these keywords runs (validated)."""
    return FileJob(
        source=SourceSpec(str(input), decoder=decoder, fps=fps),  # type: ignore[arg-type]
        output=OutputSpec(
            str(output), kind=kind, background=None if background is None else str(background), key_color=key_color,
            blur_sigma=blur_sigma, foreground=foreground, codec=codec, crf=crf, bitrate=bitrate, pix_fmt=pix_fmt,
            audio=audio, overwrite=overwrite,
        ),
        model=ModelSpec(model, None if weights is None else str(weights), backbone),
        inference=InferenceSpec(device, precision, resolution, keep_aspect, batch_size),  # type: ignore[arg-type]
        smoothing=SmoothingSpec(smooth, smooth_window),
        queue_size=queue_size,
    ).validate()  # fmt: skip


def process_video(
    input: PathLike,
    output: PathLike,
    *,
    segmenter: Optional["Segmenter"] = None,
    progress: Optional[Callable[[int], None]] = None,
    on_start: Optional[Callable[[Optional[int]], None]] = None,
    report_path: Optional[PathLike] = None,
    stop: Optional[threading.Event] = None,
    **options: Any,
) -> dict[str, Any]:
    """Cut the subject out of every frame of ``input`` and write ``output``; returns the run report.

    ``options`` are ``build_file_job``'s keywords (kind, model, weights, resolution, smooth,
    background, codec, overwrite, ...). Cheap checks run before the model loads; the output
    appears at ``output`` only when the whole run succeeds.
    """
    job = build_file_job(input, output, **options)
    return run_job(job, segmenter=segmenter, progress=progress, on_start=on_start, report_path=report_path, stop=stop)


def run_job(
    job: FileJob,
    *,
    segmenter: Optional["Segmenter"] = None,
    progress: Optional[Callable[[int], None]] = None,
    on_start: Optional[Callable[[Optional[int]], None]] = None,
    report_path: Optional[PathLike] = None,
    stop: Optional[threading.Event] = None,
) -> dict[str, Any]:
    """Run a prepared ``FileJob`` (from ``build_file_job``, the CLI, or ``FileJob.from_json``)."""
    from .runtime.file_job import run_file_job

    return run_file_job(job, segmenter=segmenter, progress=progress, on_start=on_start, report_path=report_path, stop=stop)


def build_live_job(
    source: Union[str, int],
    sinks: Union[str, list[str], tuple[str, ...]],
    *,
    effect: str = "blur",
    background: Optional[str] = None,
    key_color: str = "#00ff00",
    blur_sigma: float = 16.0,
    foreground: bool = False,
    model: Optional[str] = None,
    weights: Optional[PathLike] = None,
    backbone: Optional[str] = None,
    device: str = "auto",
    precision: Precision = "auto",
    resolution: Union[int, str, tuple[int, int], None] = None,
    latency_budget_ms: Optional[float] = None,
    smooth: str = "ema",
    carry: bool = True,
    realtime: bool = False,
    loop: bool = False,
    max_retries: Optional[int] = None,
    open_timeout: float = 5.0,
    read_timeout: float = 5.0,
    duration: Optional[float] = None,
    stats_every: float = 5.0,
    overwrite: bool = False,
) -> LiveJob:
    """The ``LiveJob`` for a camera index, device, stream URL or file, and one or more sinks (validated)."""
    return LiveJob(
        source=LiveSourceSpec(str(source), realtime=realtime, loop=loop, open_timeout=open_timeout,
                              read_timeout=read_timeout, max_retries=max_retries),
        sinks=(sinks,) if isinstance(sinks, str) else tuple(sinks),
        effect=EffectSpec(effect, background=background, key_color=key_color, blur_sigma=blur_sigma,  # type: ignore[arg-type]
                          foreground=foreground),
        model=ModelSpec(model, None if weights is None else str(weights), backbone),
        inference=InferenceSpec(device, precision, resolution),
        smoothing=SmoothingSpec(smooth),  # type: ignore[arg-type]
        latency_budget_ms=latency_budget_ms, duration=duration, carry=carry, stats_every=stats_every, overwrite=overwrite,
    ).validate()  # fmt: skip


def run_live(
    job: LiveJob,
    *,
    segmenter: Optional["Segmenter"] = None,
    stats_json: Optional[PathLike] = None,
    printer: Optional[Callable[[str], None]] = None,
    stop: Optional[threading.Event] = None,
) -> dict[str, Any]:
    """Run a ``LiveJob`` until its duration passes, the source ends, ``stop`` is set or Ctrl-C; returns the report."""
    from .runtime.live import run_live_job

    return run_live_job(job, segmenter=segmenter, stats_json=None if stats_json is None else str(stats_json), printer=printer, stop=stop)
