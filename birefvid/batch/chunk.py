"""Run one chunk of a ``FileJob``: segment its decode range, keep only its own frames, encode them to a chunk file.

A whole-video chunk is just ``run_file_job`` onto the final output (audio and all). A split chunk
is encoded without audio into its own file whose first frame is a keyframe, so chunk files join
by remuxing; the overlap frames feed the smoother and are dropped before the encoder.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from ..io.base import Sink
from ..job import FileJob
from .hooks import CrashHook
from .plan import Chunk

if TYPE_CHECKING:
    from ..runtime.segmenter import Segmenter


@dataclass(frozen=True)
class ChunkTask:
    """One unit of work as it travels to a worker: the video's job, the chunk, where its file goes."""

    video: str  # the video's key in the manifest
    job: dict[str, Any]  # FileJob.to_dict() of the whole video
    chunk: dict[str, Any]  # Chunk.to_dict()
    path: str  # the chunk file (the final output when the chunk is the whole video)
    crash: Optional[CrashHook] = None  # tests: kill the worker process in this chunk, once

    @property
    def whole(self) -> bool:
        """True when this chunk is the whole video, written straight to the final output."""
        return self.chunk["start_pts"] is None


def chunk_shift(path: str | Path, chunk: Chunk) -> int:
    """Source pts subtracted from a chunk file's frames: its start for MOV/MP4, 0 for Matroska/WebM.

    A MOV/MP4 that starts late stores the delay in an edit list counted in milliseconds, which
    would move every frame of a 1/90000 stream; starting each chunk file at 0 and adding the start
    back at the join keeps the exact ticks. Matroska counts in milliseconds anyway, so there chunk
    files keep the source's own times, rounded once, as ``process`` rounds them.
    """
    from ..io.formats import MUXERS

    if chunk.start_pts is None or MUXERS.get(Path(path).suffix.lower()) not in ("mov", "mp4"):
        return 0
    return chunk.start_pts


class RangeSink(Sink):
    """Passes on to ``inner`` only frames whose pts lie in [start_pts, end_pts) (end None: no limit), less ``shift``."""

    def __init__(self, inner: Sink, start_pts: int, end_pts: Optional[int], shift: int = 0) -> None:
        super().__init__()
        self.inner = inner
        self.start_pts, self.end_pts, self.shift = start_pts, end_pts, shift
        self.kept = 0

    @property
    def sample_bits(self) -> int:
        return self.inner.sample_bits

    def _validate(self, images: np.ndarray) -> None:
        self.inner._validate(images)

    def _write(self, images: np.ndarray, pts: Sequence[Optional[int]]) -> None:
        keep = [i for i, p in enumerate(pts) if p is not None and p >= self.start_pts and (self.end_pts is None or p < self.end_pts)]
        if keep:
            self.inner.write(images[keep], [pts[i] - self.shift for i in keep])  # type: ignore[operator]
            self.kept += len(keep)

    def _close(self) -> None:
        self.inner.close()

    def _abort(self) -> None:
        self.inner.abort()


def run_chunk(task: ChunkTask, segmenter: "Segmenter", progress: Optional[Callable[[int], None]] = None) -> dict[str, Any]:
    """Process one chunk with a loaded ``segmenter``; returns frames written and seconds taken."""
    from ..runtime.file_job import RunControl, run_file_job

    job = FileJob.from_dict(task.job)
    chunk = Chunk.from_dict(task.chunk)
    t0 = time.perf_counter()
    make_folder(Path(task.path).parent)
    counted = _counting(progress, task.crash)
    if task.whole:
        whole = replace(job, output=replace(job.output, path=task.path))
        report = run_file_job(whole, segmenter=segmenter, control=RunControl(progress=counted))
        return {"video": task.video, "chunk": chunk.index, "frames": report["frames"], "seconds": time.perf_counter() - t0}
    frames = _run_split_chunk(job, chunk, Path(task.path), segmenter, counted)
    return {"video": task.video, "chunk": chunk.index, "frames": frames, "seconds": time.perf_counter() - t0}


def make_folder(folder: Path) -> None:
    """Create the folder a chunk or output goes into (a recursive batch mirrors the input tree) when
    the work starts, not while planning: a run refused or stopped early leaves no empty folders."""
    from ..errors import SinkError

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SinkError(f"cannot create the output folder {folder}: {e.strerror or e}") from e


def _counting(progress: Optional[Callable[[int], None]], crash: Optional[CrashHook]) -> Optional[Callable[[int], None]]:
    """The progress callback, with the test crash hook fired after the first frames are encoded."""
    if crash is None:
        return progress

    def advance(n: int) -> None:
        crash.fire()
        if progress is not None:
            progress(n)

    return advance


def _run_split_chunk(job: FileJob, chunk: Chunk, path: Path, segmenter: "Segmenter", progress: Optional[Callable[[int], None]]) -> int:
    """Decode the chunk's range, smooth across its overlap, encode frames [start, end) to ``path`` (no audio)."""
    from ..compose.compositor import SINK_KIND, Compositor
    from ..errors import PipelineError
    from ..io import open_sink
    from ..runtime.backgrounds import open_background
    from ..io.hdr import hdr_output, sdr_sources
    from ..runtime.depth import plan_depth, say_depth_lost
    from ..runtime.priority import codec_threads
    from ..runtime.video_job import run_video_job
    from ..temporal import make_smoother
    from ..io.scale import ScaledSource
    from .chunk_source import ChunkSource

    out = job.output
    assert chunk.start_pts is not None
    smoother = make_smoother(job.smoothing.kind, **job.smoothing.smoother_options())
    threads = codec_threads(segmenter.device.type)  # as in process: on a small CPU the model has the cores
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(ChunkSource(job.source.input, chunk, threads=threads or 0, deinterlace=job.source.deinterlace,
                                                 video_stream=job.source.video_stream, input_colors=job.source.input_colors))
        depth = plan_depth(out, source)  # each chunk as `process` would write the whole: parts of one depth join
        if job.source.max_size is not None:
            source = stack.enter_context(ScaledSource(source, job.source.max_size))
        source = sdr_sources(source, str(path), keep_deep=depth.composite > 8, name=str(job.source.input), stack=stack)
        info = source.info
        inner = open_sink(path, kind=SINK_KIND[out.kind], info=info, codec=out.codec, crf=out.crf, bitrate=out.bitrate,
                          pix_fmt=out.pix_fmt, preset=out.preset, audio_from=None, audio=False, overwrite=True,
                          threads=threads, bits=depth.wanted, gpu=segmenter.device.index if segmenter.device.type == "cuda" else None)  # fmt: skip
        sink = stack.enter_context(RangeSink(inner, chunk.start_pts, chunk.end_pts, chunk_shift(path, chunk)))
        if chunk.index == 0 and depth.bits_for(inner) == 8:  # once a video, as `process` says it
            say_depth_lost(str(job.source.input), depth.source, info.color_trc, out.kind, out.bit_depth, getattr(getattr(inner, "spec", None), "codec", "it"))
        background = None
        if out.kind == "composite":
            background = stack.enter_context(open_background(str(out.background), (info.width, info.height), segmenter.device,
                                                             info.sample_aspect_ratio, deep=depth.bits_for(inner) > 8,
                                                             hdr=hdr_output(info)))  # fmt: skip
        compositor = Compositor.for_output(out, background=background, bits=depth.bits_for(inner))
        batch = job.inference.batch_size or segmenter.file_batch_size(info.height, info.width)
        kept_progress = _kept(sink, progress)
        run_video_job(source, sink, segmenter, smoother, compositor, batch_size=batch, queue_size=job.queue_size, progress=kept_progress)
        if sink.kept != chunk.frames:
            raise PipelineError("chunk", f"chunk {chunk.index} of {job.source.input} wrote {sink.kept} frames, expected {chunk.frames}")
    return sink.kept


def _kept(sink: RangeSink, progress: Optional[Callable[[int], None]]) -> Optional[Callable[[int], None]]:
    """Progress in frames kept (the overlap frames are not counted)."""
    if progress is None:
        return None
    seen = 0

    def advance(_n: int) -> None:
        nonlocal seen
        if sink.kept > seen:
            progress(sink.kept - seen)
            seen = sink.kept

    return advance
