"""File mode: decode -> segment -> smooth + composite -> encode, as threads joined by bounded queues.

Memory is bounded by the queue sizes and the smoother window, not by the video's length.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import numpy as np
import torch

from ..compose.compositor import Compositor
from ..errors import PipelineError
from ..frames import Frame, FrameBatch
from ..io.base import Sink, Source
from ..temporal import Smoother
from .priority import opencv_on_calling_threads
from .segmenter import Segmenter, batch_size_applies
from .stages import StageTimes, run_stages
from .transfer import OnDevice, OnHost, Transfer

log = logging.getLogger(__name__)


@dataclass
class Rendered:
    """Output pixels of consecutive frames on their way to the encoder."""

    pixels: OnHost  # (N, C, H, W) uint8 (uint16 for a deep output)
    pts: tuple[Optional[int], ...]
    indices: tuple[int, ...]
    also: tuple[OnHost, ...] = ()  # the same frames for each extra output, in order


@dataclass
class Masked:
    """Consecutive frames (on the device) with their mattes at the model's resolution."""

    images: torch.Tensor  # (N, 3, H, W) uint8
    alphas: torch.Tensor  # (N, 1, h, w) float, h x w the inference size
    pts: tuple[Optional[int], ...]
    indices: tuple[int, ...]
    deep: Optional[tuple[torch.Tensor, ...]] = None  # (3, H, W) uint16 each, on the host: the frames for a deep output's colour
    coverage: Optional[tuple[Optional[torch.Tensor], ...]] = None  # (H, W) uint8 each, on the host: the source's own alpha


def batched(frames: Iterable[Frame], batch_size: int) -> Iterator[FrameBatch]:
    """Group consecutive frames into batches of ``batch_size`` (the last may be shorter)."""
    pending: list[Frame] = []
    for frame in frames:
        pending.append(frame)
        if len(pending) == batch_size:
            yield FrameBatch.from_frames(pending)
            pending = []
    if pending:
        yield FrameBatch.from_frames(pending)


class SegmentStage:
    """Uploads a batch and segments it: the model thread does nothing else.

    Uploads run one batch ahead (batch N+1 copies while batch N computes). Masks stay at the
    inference size; smoothing, upsampling and compositing happen in ``ComposeStage``.
    """

    name = "segment"

    def __init__(self, segmenter: Segmenter, transfer: Transfer) -> None:
        self.segmenter = segmenter
        self.transfer = transfer
        self._pending: Optional[tuple[OnDevice, Optional[OnDevice], FrameBatch]] = None

    def process(self, batch: FrameBatch) -> Iterator[Masked]:
        upload = self.transfer.upload(batch.images)
        seen = None if batch.seen is None else self.transfer.upload(batch.seen)  # an HDR frame as SDR, for the model
        previous, self._pending = self._pending, (upload, seen, batch)
        if previous is not None:
            yield self._compute(*previous)

    def finish(self) -> Iterator[Masked]:
        if self._pending is not None:
            yield self._compute(*self._pending)
            self._pending = None

    def _compute(self, upload: OnDevice, seen: Optional[OnDevice], batch: FrameBatch) -> Masked:
        with self.transfer.compute(), batch_size_applies():  # its advice out of memory: the job's batch_size
            images = upload.ready()
            alphas = self.segmenter.predict(images if seen is None else seen.ready(), frame_size=False)
        return Masked(images, alphas, batch.pts, batch.indices, batch.deep, batch.coverage)


class ComposeStage:
    """Smooths masks in frame order, composites them with their frames and starts the copy to the host.

    Its own stage so all of this runs beside the model instead of after it, on one intra-op
    thread: the model's thread keeps torch's threads, and two threads each fanning out over every
    core oversubscribe a small CPU (on 2 shared cores, 720p foreground estimation took 10x longer
    with 2 intra-op threads than with 1 while a model ran). Masks are smoothed at the model's
    resolution (the flow carry and the median cost the same there, minus the pixels) and
    upsampled once, by the compositor. Smoothers may hold frames back (look-ahead); a FIFO of the
    frames' pixels and timestamps pairs each smoothed mask with its own frame.
    """

    name = "compose"

    def __init__(self, smoother: Smoother, compositor: Compositor, transfer: Transfer, threads: Optional[int] = 1,
                 also: Sequence[Compositor] = (), time_base: Optional[Fraction] = None) -> None:  # fmt: skip
        self.smoother = smoother
        self.time_base = time_base  # of the frames' pts: their times play a video --background at its own speed
        self.compositor = compositor
        self.also = tuple(also)  # the extra outputs' compositors: the same frames and mattes, composited once each
        self.transfer = transfer
        self.threads = threads
        self._threads_set = False
        self._waiting: deque[tuple[torch.Tensor, Optional[int], int, Optional[torch.Tensor], Optional[torch.Tensor]]] = deque()

    def _on_own_thread(self) -> None:
        # torch.set_num_threads sets the calling thread's OpenMP/MKL thread count, so this leaves
        # the model's thread as it is
        if not self._threads_set and self.threads is not None:
            torch.set_num_threads(self.threads)
        self._threads_set = True

    def process(self, item: Masked) -> Iterator[Rendered]:
        self._on_own_thread()
        with self.transfer.compute():
            for i in range(len(item.pts)):
                self._waiting.append((item.images[i], item.pts[i], item.indices[i], None if item.deep is None else item.deep[i],
                                      None if item.coverage is None else item.coverage[i]))  # fmt: skip
            smoothed = self.smoother.push(item.alphas, item.images)
            if len(smoothed):
                yield self._render(smoothed)

    def finish(self) -> Iterator[Rendered]:
        self._on_own_thread()
        with self.transfer.compute():
            tail = self.smoother.flush()
            if len(tail):
                yield self._render(tail)

    def _render(self, alphas: torch.Tensor) -> Rendered:
        frames = [self._waiting.popleft() for _ in range(alphas.shape[0])]
        # stacked channel-last, as decoded frames are laid out: the compositor's OpenCV paths take
        # them without a transposing copy (torch.stack alone gives channel-first memory)
        images = frames[0][0].unsqueeze(0) if len(frames) == 1 else torch.stack([f[0].permute(1, 2, 0) for f in frames]).permute(0, 3, 1, 2)
        deep = None
        if frames[0][3] is not None:  # 16-bit pictures for a deep output
            deep = deep_as_float([f[3] for f in frames], images.device)
        coverage = None
        if any(f[4] is not None for f in frames):  # the source's own alpha: what it hides stays hidden
            coverage = own_alpha([f[4] for f in frames], images.shape[-2:], images.device)
        times = None
        if self.time_base is not None:
            times = [None if f[1] is None else float(f[1] * self.time_base) for f in frames]
        pixels = self.compositor(images, alphas, deep, coverage, times)  # upsamples the mattes to the frame size once
        extra = tuple(self.transfer.download(c(images, alphas, deep, coverage, times)) for c in self.also)
        return Rendered(self.transfer.download(pixels), tuple(f[1] for f in frames), tuple(f[2] for f in frames), extra)


def own_alpha(alphas: list[Optional[torch.Tensor]], size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """uint8 (H, W) alphas on the host (None: opaque) -> float (N, 1, H, W) in [0, 1] on ``device``."""
    out = torch.ones((len(alphas), 1, *size), dtype=torch.float32)
    for i, alpha in enumerate(alphas):
        if alpha is not None:
            out[i, 0].copy_(alpha).div_(255.0)
    return out.to(device)


def deep_as_float(pictures: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """uint16 pictures (3, H, W) on the host -> float (N, 3, H, W) in [0, 1] on ``device``, channel-last in memory.

    On the CPU each is converted as it is copied into place (0.6 ms a 720p frame against 1.7 for
    stacking, then converting), and the compositor's float ops ran ~1.5x faster on channel-last
    frames. Elsewhere they go up as uint16 (half a float's bytes) and are converted there: torch's
    copy kernels convert uint16 on CUDA as on the CPU, though its other ops do not take it.
    """
    n, (c, h, w) = len(pictures), pictures[0].shape
    if device.type != "cpu":
        stacked = torch.stack(pictures).to(device).float().div_(65535.0)
        return stacked.contiguous(memory_format=torch.channels_last)
    out = torch.empty((n, c, h, w), dtype=torch.float32, memory_format=torch.channels_last)
    for i, picture in enumerate(pictures):
        out[i].copy_(picture)
    return out.div_(65535.0)


def to_sink_layout(pixels: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> what sinks take: (N, H, W, C), or (N, H, W) for one channel."""
    out = pixels.transpose(0, 2, 3, 1)
    return out[..., 0] if out.shape[3] == 1 else out


@contextlib.contextmanager
def _callers_own(callback_errors: list[Exception]) -> Iterator[None]:
    """Re-raise a caller's progress function's own exception as it is (its type, its traceback), not as
    a PipelineError naming the encode stage, where it was called: the app's bug, or its way to cancel."""
    try:
        yield
    except PipelineError as e:
        if callback_errors and e.__cause__ is callback_errors[0]:
            raise callback_errors[0] from None
        raise


def run_video_job(
    source: Source,
    sink: Sink,
    segmenter: Segmenter,
    smoother: Smoother,
    compositor: Compositor,
    *,
    batch_size: int = 1,
    queue_size: int = 4,
    progress: Optional[Callable[[int], None]] = None,
    stop: Optional[threading.Event] = None,
    also: Sequence[tuple[Compositor, Sink]] = (),
) -> tuple[int, StageTimes, float]:
    """Process every frame of ``source`` into ``sink``; returns (frames written, stage times, wall seconds).

    ``also``: more outputs of the same frames and mattes, each composited by its compositor into its sink
    (the model runs once for all). The caller owns ``source`` and the sinks (it closes or aborts them).
    Setting ``stop`` ends the run early with a ``PipelineError`` (stage "interrupted"), so the caller aborts them.
    """
    transfer = Transfer(segmenter.device)
    written = 0
    callback_errors: list[Exception] = []  # the caller's own progress function failed, not the encoder

    def encode(item: Rendered) -> None:
        nonlocal written
        sink.write(to_sink_layout(item.pixels.numpy()), item.pts)
        for (_, extra_sink), pixels in zip(also, item.also):
            extra_sink.write(to_sink_layout(pixels.numpy()), item.pts)
        written += len(item.pts)
        if progress is not None:
            try:
                progress(len(item.pts))
            except Exception as exc:
                callback_errors.append(exc)
                raise

    on_cpu = segmenter.device.type == "cpu"
    start = time.perf_counter()
    # the model keeps a CPU's cores busy: the helpers' OpenCV calls stay on their own threads there
    with opencv_on_calling_threads() if on_cpu else contextlib.nullcontext(), _callers_own(callback_errors):
        times = run_stages(
            batched(source, batch_size),
            [SegmentStage(segmenter, transfer), ComposeStage(smoother, compositor, transfer, also=[c for c, _ in also],
                                                          time_base=_time_base(source))],
            encode,
            queue_size=queue_size,
            stop=stop,
            # On a CPU the model's parallel regions wait for their slowest thread: a helper that takes a
            # core from one of them stalls them all, so the helpers run at the lowest priority and fill
            # the model's gaps instead (the bounded queues make it yield when they run dry or fill up).
            niced=("decode", "compose", "encode") if on_cpu else (),
        )
    if stop is not None and stop.is_set():
        # run_stages ends quietly when the caller sets ``stop``; in file mode that is an interruption,
        # and returning normally would let the caller commit a truncated output that looks complete.
        raise PipelineError("interrupted", f"stopped on request after {written} frames; the output was not written")
    return written, times, time.perf_counter() - start


def _time_base(source: Any) -> Optional[Fraction]:
    """The time base of ``source``'s frame pts, where its ``info`` says it."""
    time_base = getattr(getattr(source, "info", None), "time_base", None)
    return Fraction(time_base) if time_base else None
