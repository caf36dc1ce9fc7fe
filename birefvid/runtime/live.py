"""Live mode: show every captured frame at the source's rate, composed with the newest mask.

Two paths share the CPU (or a GPU) but never wait for each other:

    capture ──▶ compose(frame, latest mask carried along optical flow) ──▶ sinks      (display)
        └─ newest frame when the model is free ──▶ Segmenter ──▶ smoother ──▶ latest mask  (model)

The display path runs on the calling thread (windows must be fed from one thread); the model
path on its own. Between them sits a one-slot newest-wins queue, so a slow model costs mask
freshness, never frame rate, and no backlog can grow. The first frame is segmented before the
display starts, so no unmasked picture is ever shown.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import torch

from .. import exiting
from ..compose.compositor import Compositor
from ..errors import BirefvidError, OutputKeptError, PipelineError, SourceError, Terminated, finishing, in_caller_context, option
from ..io.live_base import CapturedFrame, LiveSink, LiveSource, NoFirstPicture
from ..job import BUDGET_FLOOR, EFFECT_PICTURE, LiveJob, carries_sound, parse_camera_size
from ..live_checks import check_records_replace_no_input
from ..temporal import Smoother, make_smoother
from ..temporal.carry import MaskCarrier
from .live_effects import EffectSwitch
from .live_stats import LiveStats
from .priority import MODEL_NICENESS, lower_thread_priority  # noqa: F401 - MODEL_NICENESS is part of this module's API
from .segmenter import DeviceOutOfMemory, Segmenter
from .stages import _EOS, StageQueue
from .video_job import to_sink_layout

log = logging.getLogger(__name__)

# inference sizes tried for --latency-budget, smallest first from BUDGET_FLOOR (sides, square; multiples of 32)
SIZE_LADDER = (64, 96, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 1024)
# a ladder neighbour whose export is cached is taken over a size that needs one (13-25 s on a small CPU, each first
# run on a busy machine choosing another size) when its time is within this much over the budget: the sizes are
# timed on eager PyTorch, slower than the exported engine that then runs them, and a busy CPU moved those
# timings by more than this from run to run (160, 224 and 192 chosen on three runs)
CACHED_MARGIN = 0.10
# the smaller model to suggest for a backbone (the registry's general models; tiny knows generated scenes only)
SMALLER_MODEL = {"swin_v1_l": "lite", "swin_v1_b": "lite", "swin_v1_s": "lite"}


@dataclass(frozen=True)
class LatestMask:
    """The newest smoothed mask (1, 1, H, W) float32 on the CPU and when its frame was captured."""

    alpha: torch.Tensor
    captured: float
    generation: int


def choose_resolution(
    segmenter: Segmenter, image: np.ndarray, budget_s: float, ceiling: int, stop: Optional[threading.Event] = None
) -> tuple[int, int]:
    """The largest square inference size from ``SIZE_LADDER`` (up to ``ceiling``) whose model time fits ``budget_s``,
    never below ``BUDGET_FLOOR`` (nor the ceiling, when that is smaller).

    Sizes are timed smallest first, from the floor, on a real frame (a warm-up call, then the faster of two) and the
    search stops at the first one over budget, so calibration costs a few times the chosen size's time;
    it also stops when ``stop`` is set (the caller's request to end the run), keeping the size found so far.
    When even the floor is over budget it is kept, and a warning says the mask will refresh less often and what helps.
    A size that needs a first export gives way to its neighbour on the ladder whose export is cached (see
    ``CACHED_MARGIN``), so runs on a busy machine do not export a new size each time.
    """
    batch = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0)
    floor = min(BUDGET_FLOOR, ceiling)  # a caller's Segmenter set below the floor is that caller's choice
    chosen = (floor, floor)
    timings: dict[int, float] = {}
    # An exported engine would export every size it tries (10-60 s each): time sizes with eager
    # PyTorch instead, which is slower, so the size chosen fits the budget with room to spare.
    timer = segmenter if segmenter.backend == "torch" else segmenter.with_backend("torch")
    for side in budget_sides(ceiling):
        if stop is not None and stop.is_set():
            break
        timer.resolution = (side, side)
        timer.predict(batch)  # warm-up (allocations, kernels for this shape)
        seconds = min(_timed(timer.predict, batch) for _ in range(2))  # the faster of two: less noise from a busy CPU
        log.info("latency budget: %dx%d takes %.0f ms (%s)", side, side, seconds * 1000, timer.backend)
        timings[side] = seconds
        if seconds > budget_s:
            break
        chosen = (side, side)
    if timings.get(floor, 0.0) > budget_s:
        log.warning("%s", too_slow_at_floor(floor, timings[floor], budget_s, segmenter.backbone, segmenter.backend))
    chosen = _prefer_exported(segmenter, image.shape[:2], chosen, timings, budget_s)
    segmenter.resolution = chosen
    # the size taken, said once: the timing lines alone left -v's reader to work it out, and the segmenter's
    # line logged before them names the model's native size, not this one; with keep_aspect, the frame's shape
    height, width = segmenter.inference_size(*image.shape[:2])
    shape = "" if (width, height) == chosen else f"{chosen[0]}x{chosen[1]}'s pixels in the frame's shape; "
    log.info("latency budget: the model runs at %dx%d (%sbudget %.0f ms)", width, height, shape, budget_s * 1000)
    segmenter.prepare(*image.shape[:2])
    return chosen


def budget_sides(ceiling: int) -> list[int]:
    """The sizes the latency budget times, smallest first: ``SIZE_LADDER`` from ``BUDGET_FLOOR`` up to ``ceiling``
    (only the ceiling itself when it is under the floor)."""
    floor = min(BUDGET_FLOOR, ceiling)
    return [side for side in SIZE_LADDER if floor <= side <= ceiling] or [floor]


def too_slow_at_floor(side: int, seconds: float, budget_s: float, backbone: str, backend: str) -> str:
    """The warning for a machine that cannot run the model within the budget even at the floor: what happens
    (the size stays, the mask refreshes less often; the picture keeps the camera's rate) and what helps.
    ``seconds`` is PyTorch's time; another ``backend`` (OpenVINO) that then runs the model is often faster."""
    helps = ["close busy programs (a browser's tabs, a build)",
             f"choose the size with {option('resolution')} (96 or 64 refresh faster, but cut a coarse blob around the person)"]  # fmt: skip
    if backbone in SMALLER_MODEL:
        helps.append(f"use a smaller model ({option('model', SMALLER_MODEL[backbone])})")
    timed = "" if backend == "torch" else f" on PyTorch ({backend}, which runs it, is often faster)"
    which = "the smallest size that still segments well" if side >= BUDGET_FLOOR else "its Segmenter's own size"
    return (f"this machine is too busy for the {budget_s * 1000:.0f} ms {option('latency_budget_ms')}: the model took "
            f"{seconds * 1000:.0f} ms{timed} at {side}x{side}, {which}, and runs there; "
            f"the picture keeps the camera's rate, but the mask refreshes less often (about {1 / seconds:.1f} times a "
            f"second at that time) and lags fast moves. For fresher masks, " + ", or ".join(helps))  # fmt: skip


def _prefer_exported(segmenter: Segmenter, frame: tuple[int, int], chosen: tuple[int, int], timings: dict[int, float], budget_s: float) -> tuple[int, int]:
    """``chosen``, or where it needs a first export, its ladder neighbour whose export is cached: the one above if
    it took at most ``CACHED_MARGIN`` over ``budget_s``, else the one below (which fit)."""
    side = chosen[0]
    if side not in timings or timings[side] > budget_s or not _needs_export(segmenter, frame, side):
        return chosen  # nothing fit (the smallest, as it is), or no export to wait for
    timed = sorted(timings)
    at = timed.index(side)
    above = timed[at + 1] if at + 1 < len(timed) else None
    below = timed[at - 1] if at > 0 else None
    if above is not None and timings[above] <= budget_s * (1 + CACHED_MARGIN) and not _needs_export(segmenter, frame, above):
        log.info("latency budget: %dx%d, exported already and %.0f ms (within %d%% of the budget), rather than %dx%d, "
                 "which would need a first export", above, above, timings[above] * 1000, round(CACHED_MARGIN * 100), side, side)  # fmt: skip
        return (above, above)
    if below is not None and not _needs_export(segmenter, frame, below):
        log.info("latency budget: %dx%d, exported already, rather than %dx%d, which would need a first export", below, below, side, side)
        return (below, below)
    log.info("latency budget: %dx%d (no neighbour on the ladder is exported yet: exporting it)", side, side)
    return chosen


def _needs_export(segmenter: Segmenter, frame: tuple[int, int], side: int) -> bool:
    """True when ``segmenter`` at ``side``² needs a first export for frames of (h, w) = ``frame``."""
    kept = segmenter.resolution
    segmenter.resolution = (side, side)
    try:
        return segmenter.needs_export(*frame)
    finally:
        segmenter.resolution = kept


def export_handed_over_ahead(segmenter: Segmenter, frame: tuple[int, int], budget: bool) -> contextlib.AbstractContextManager[None]:
    """Where the warm-up will export the model (an ONNX engine with no export cached for frames of (h, w) = ``frame``),
    the model saved for the export process now, on this (the main) thread, until the block ends; else nothing.

    The save is Python holding the GIL: on the niced warm-up thread of a loaded machine it kept a stop waiting
    2-4 s (``export.saved_for_export``). With a latency budget the size is chosen in the warm-up, and a cached
    neighbour preferred, so the model is saved ahead only when no size the budget may choose is cached (a first
    run); a run that still exports a new size saves it on the warm-up thread."""
    if budget:
        needed = all(_needs_export(segmenter, frame, side) for side in budget_sides(max(segmenter.resolution)))
    else:
        needed = segmenter.needs_export(*frame)
    if not needed:
        return contextlib.nullcontext()
    from ..backends.export import saved_for_export

    return saved_for_export(segmenter.model)


def _timed(fn: Callable[[Any], Any], arg: Any) -> float:
    start = time.perf_counter()
    fn(arg)
    return time.perf_counter() - start


# how often a model thread idling under --model-fps looks whether the run stopped
STOP_CHECK_S = 0.05
# a video --background moves on at most this much between two pictures composited over it: past it (an outage, a
# while on blur) it resumes where it was; decoding the time in between froze the display (1.6 s after 25 s of a 360p one)
BACKGROUND_GAP_S = 2.0


class ModelPath:
    """The model thread: newest frame in, smoothed mask out to ``latest``; errors end the run.

    ``max_fps`` caps the refreshes a second (``--model-fps``): the thread idles until the next refresh is due,
    then takes the newest frame, so the mask it makes is as fresh as without the cap, only less often. A new
    connection's first frame (``offer``) is segmented at once: the displays hold their picture until it is.
    """

    def __init__(self, segmenter: Segmenter, smoother: Smoother, carrier: Optional[MaskCarrier], stats: LiveStats, stop: threading.Event,
                 max_fps: Optional[float] = None) -> None:  # fmt: skip
        self.segmenter = segmenter
        self.interval = 1.0 / max_fps if max_fps else 0.0
        self._started: Optional[float] = None  # when the last refresh began (monotonic)
        self.smoother = smoother
        self.carrier = carrier
        self.stats = stats
        self.stop = stop
        self.inbox = StageQueue(1, stop, policy="newest")  # the model only ever wants the newest frame
        self.latest: Optional[LatestMask] = None
        self._published = threading.Condition()  # notified with each new ``latest``
        self._new_connection = threading.Event()  # wakes the capped wait: a frame of a connection not segmented yet was offered
        self._offered: Optional[int] = None  # the generation of the newest frame offered
        self.error: Optional[BaseException] = None
        self._generation: Optional[int] = None
        self._thread = threading.Thread(target=in_caller_context(self._run), name="birefvid-live-model", daemon=True)
        self._start_called = False

    def segment(self, cf: CapturedFrame) -> LatestMask:
        """Segment and smooth one frame, publish its mask, and hand it to the flow carrier."""
        if cf.generation != self._generation:  # a reconnect or a loop: the scene jumped
            self.smoother.reset()
            self._generation = cf.generation
        self._started = time.monotonic()
        start = time.perf_counter()
        images = torch.from_numpy(cf.frame.image).permute(2, 0, 1).unsqueeze(0)
        # masks stay at the inference size (smoothing, carrying) and are upsampled once, at compose
        alpha = self.segmenter.predict(images, frame_size=False)
        alpha = self.smoother.push(alpha, images.to(alpha.device))[-1:].float().cpu()
        self.stats.model_ran(time.perf_counter() - start)
        latest = LatestMask(alpha, cf.captured, cf.generation)
        if self.carrier is not None:
            self.carrier.set_reference(cf.frame.image, alpha, key=cf.captured)
        with self._published:
            self.latest = latest
            self._published.notify_all()
        return latest

    def offer(self, cf: CapturedFrame) -> None:
        """Hand the model the display loop's newest frame (an older one still waiting is dropped).

        A frame of a connection the model has not segmented yet (a reconnect, a file's loop) skips the wait for the
        next refresh under ``max_fps``: its picture waits for its own mask (``wait_for_connection``), and the cap's
        wait (up to 1/max_fps s) froze the displays for that long after each reconnect; with a cap slower than a
        looped file, the file no longer played. One refresh more per connection is all it costs."""
        self._offered = cf.generation  # before the put: the model thread woken for the frame must see whose it is
        if self.inbox.put(cf) and cf.generation != self._generation:
            self._new_connection.set()

    def _new_connection_waiting(self) -> bool:
        """Whether the newest frame offered is of a connection the model has not segmented yet."""
        return self._offered is not None and self._offered != self._generation

    def wait_for_connection(self, generation: int, timeout: float) -> bool:
        """True once the newest mask is of connection ``generation`` or a later one; False after ``timeout`` seconds."""
        with self._published:
            return self._published.wait_for(lambda: self.latest is not None and self.latest.generation >= generation, timeout)

    def retime(self, cf: CapturedFrame, captured: float) -> CapturedFrame:
        """``cf``, the frame just segmented, as captured at ``captured``, its mask too: a file's clock stands still while
        the model warms up, so its first frame is captured when playing starts (timed at its decoding, before the model
        loaded, every frame shown with its mask was that much older: a mask age of seconds, a first latency too)."""
        assert self.latest is not None and self.latest.captured == cf.captured
        self.latest = LatestMask(self.latest.alpha, captured, self.latest.generation)
        if self.carrier is not None:  # the carrier names frames by capture time: its reference is renamed with it
            self.carrier.set_reference(cf.frame.image, self.latest.alpha, key=captured)
        return dataclasses.replace(cf, captured=captured)

    def start(self) -> None:
        self._start_called = True
        self._thread.start()

    def _run(self) -> None:
        lower_thread_priority()
        try:
            while not self._wait_for_turn() and (item := self.inbox.get()) is not _EOS:
                self.segment(item)
        except BaseException as exc:  # noqa: BLE001 - reported by the display loop
            self.error = exc
            self.stop.set()

    def _wait_for_turn(self) -> bool:
        """Idle until the next refresh is due under ``max_fps`` (at once without it, or for a new connection's frame);
        True when the run stops meanwhile."""
        if not self.interval or self._started is None:
            return False
        due = self._started + self.interval
        while (left := due - time.monotonic()) > 0:
            # two things to wait for: the stop is looked at every STOP_CHECK_S while the event is waited on
            if self._new_connection.wait(min(left, STOP_CHECK_S)):
                self._new_connection.clear()
                # the event may be stale: set after the model, idle in ``get`` after an outage, had already taken
                # and segmented the frame it was set for; taken as a wake-up, it cost a refresh the cap forbids
                if self._new_connection_waiting():
                    break
            if self.stop.is_set():
                return True
        return self.stop.is_set()

    def join(self, timeout: float = 30.0) -> None:
        # begun, not is_alive(): a thread whose start() a signal interrupted is not alive yet, but begins a moment later
        if self._start_called and exiting.begun(self._thread):
            self._thread.join(timeout)


class OutputClock:
    """Seconds stamped on pictures: the source's own clock, kept increasing across outages."""

    def __init__(self, fps: float) -> None:
        self.step = 1.0 / fps
        self.offset = 0.0
        self.last: Optional[float] = None
        self.last_wall = 0.0

    def for_frame(self, stream_time: float, now: float) -> float:
        t = stream_time + self.offset
        if self.last is not None and t <= self.last:  # the source's clock restarted behind us
            self.offset += self.last + self.step - t
            t = self.last + self.step
        self.last, self.last_wall = t, now
        return t

    def for_repeat(self, now: float) -> float:
        assert self.last is not None
        t = self.last + max(self.step, now - self.last_wall)
        self.last, self.last_wall = t, now
        return t


@dataclass(frozen=True)
class _Delivery:
    picture: np.ndarray
    t: float
    captured: float
    mask_captured: Optional[float]
    repeat: bool


class SinkWriter:
    """Sends composed pictures to the sinks on its own thread, so encoding overlaps composing.

    The queue blocks when full (two pictures): a recording never loses a composed picture, and
    a writer that falls behind slows the display loop, whose newest-wins capture then drops
    frames before any work is spent on them. Sinks that must stay on the opening thread
    (windows) are fed by the display loop itself.
    """

    def __init__(self, sinks: list[LiveSink], stats: LiveStats, stop: threading.Event) -> None:
        self.threaded = [s for s in sinks if not s.needs_main_thread]
        self.local = [s for s in sinks if s.needs_main_thread]
        self.stats = stats
        self.stop = stop
        self.error: Optional[BaseException] = None
        self._queue = StageQueue(2, stop, policy="block")
        self._unsent: list[_Delivery] = []  # delivered once the run had stopped: the queue takes nothing then
        self._done = threading.Event()
        self._thread = threading.Thread(target=in_caller_context(self._run), name="birefvid-live-sinks", daemon=True)
        self._thread.start()

    def deliver(self, item: _Delivery) -> None:
        _send_all(self.local, item)
        if not self.threaded:
            self._shown(item)
        elif not self._queue.put(item):  # stopped: ``finish`` sends it if the sinks are sound
            self._unsent.append(item)

    def _shown(self, item: _Delivery) -> None:
        if not item.repeat:
            self.stats.shown(item.captured, time.monotonic(), item.mask_captured)

    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not _EOS:
                _send_all(self.threaded, item)
                self._shown(item)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the runner
            self.error = exc
            self.stop.set()
        finally:
            self._done.set()

    def finish(self, timeout: float = 30.0) -> None:
        """Send what is queued, then stop the thread (the queue's end marker follows the last picture).

        A run stopped by its model (out of memory mid-run, whose recordings are kept) set ``stop``, on which the
        thread leaves its queue behind: those pictures, shown and counted in ``frames_shown``, are sent here, so a
        kept recording holds every picture its report counts (it held one or two fewer). Not after a sink failed."""
        if self._thread.is_alive() and not self.stop.is_set():
            self._queue.put(_EOS)
        self._done.wait(timeout)
        if not self._done.is_set() or self.error is not None:  # still sending, or a sink failed: nothing more to them
            return
        try:
            for item in [*self._queue.leftovers(), *self._unsent]:
                _send_all(self.threaded, item)
                self._shown(item)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the runner, as the thread's would be
            self.error = exc
        finally:
            self._unsent.clear()


def _send_all(sinks: list[LiveSink], item: _Delivery) -> None:
    for sink in sinks:
        if item.repeat and not sink.holds_last:
            sink.idle(item.t)  # a recording keeps only what was captured, but its part may be over
            continue
        sink.send(item.picture, item.t)


def _apply(compositor: Optional[Compositor], image: np.ndarray, alpha: torch.Tensor, coverage: Optional[np.ndarray] = None,
           at: Optional[float] = None) -> np.ndarray:  # fmt: skip
    """``image`` composed with ``alpha`` by ``compositor``; None (effect ``none``) is the camera's picture as it is.
    ``coverage``: the picture's own alpha (uint8, None when opaque), which the matte is multiplied by, as in files:
    the black bars around a picture of another shape after a reconnect are transparent, whatever the model saw there.
    ``at``: the picture's time (seconds), by which a video ``--background`` plays at its own speed."""
    # the mask goes in at the model's size: the compositor upsamples it once, by OpenCV on the CPU
    # (torch's bilinear here cost ~2.8 ms a 720p frame), and its foreground estimate starts from it
    if compositor is None:  # effect "none" (the mask stays carried, for a switch back)
        return image
    images = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0)
    own = None if coverage is None else torch.from_numpy(coverage).float().div_(255.0)[None, None]
    return to_sink_layout(compositor(images, alpha, coverage=own, times=None if at is None else [at]).numpy())[0]


class LiveRunner:
    """Runs the display loop over an open source and sinks with a ready Segmenter and Compositor."""

    def __init__(
        self,
        source: LiveSource,
        sinks: list[LiveSink],
        segmenter: Segmenter,
        effects: EffectSwitch,
        smoother: Smoother,
        *,
        fps: float,
        carry: bool = True,
        model_fps: Optional[float] = None,
        stats: Optional[LiveStats] = None,
        duration: Optional[float] = None,
        stop: Optional[threading.Event] = None,
    ) -> None:
        self.source, self.sinks, self.effects = source, sinks, effects
        for sink in sinks:  # the window's keys and the preview page switch the effect
            sink.attach_effects(effects)
            sink.attach_source(source)  # the preview page says when the source reconnects
        self.duration = duration
        # the caller's request to end the run; ``stop`` (internal) halts the model and sink threads
        # at the end or on an error, so pictures already composed still reach the sinks after a request
        self.requested = stop
        self.stop = threading.Event()
        self.stats = stats or LiveStats()
        self.stats.outputs = [sink for sink in sinks if hasattr(sink, "down_for")]  # each stats line names those down
        self.carrier = MaskCarrier() if carry else None
        self.stats.model_cap = model_fps
        self.model = ModelPath(segmenter, smoother, self.carrier, self.stats, self.stop, model_fps)
        self.clock = OutputClock(fps)
        self._last_picture: Optional[np.ndarray] = None
        # the last shown frame, its mask and the compositor it was composed with: a switch while the
        # source reconnects recomposes the held picture, so blur turned on covers it at once
        self._last_parts: Optional[tuple[np.ndarray, torch.Tensor, Optional[Compositor], Optional[np.ndarray]]] = None
        self.frames_shown = 0
        self.ended_by = "stop"
        self.lost: Optional[BaseException] = None  # the source's failure, once its retries ran out
        self.final: dict[str, Any] = {}

    def compose(self, cf: CapturedFrame, latest: LatestMask, at: Optional[float] = None) -> np.ndarray:
        """The picture for one frame: the newest mask carried to it along flow, then the effect. ``at``: the time it is
        shown at (the output clock's, as recordings stamp it; None: when it was captured), by which a video
        ``--background`` plays."""
        image = cf.frame.image
        compositor = self.effects.compositor  # read once: a switch from another thread shows from the next frame
        alpha = latest.alpha
        if self.carrier is not None:
            # every shown frame goes through the carrier, in order, named by its capture time: it chains
            # flows frame to frame back to the mask's frame, so a subject moving fast is still followed
            if cf.captured == latest.captured:
                self.carrier.observe(image, key=cf.captured)
            else:
                carried = self.carrier.carry(image, key=cf.captured)
                if carried is not None:
                    alpha = carried
        self._last_parts = (image, alpha, compositor, cf.frame.coverage)
        return _apply(compositor, image, alpha, cf.frame.coverage, cf.captured if at is None else at)

    def _show(self, cf: CapturedFrame) -> None:
        latest = self.model.latest
        assert latest is not None
        # the background plays by the time the picture is stamped with, not by when it was captured: a file shown
        # without --realtime goes as fast as the machine composes it, and its recording froze or raced the background
        t = self.clock.for_frame(cf.stream_time, time.monotonic())
        picture = self.compose(cf, latest, t)
        if self.source.audio is not None:  # the connection's sound goes where its pictures go
            self.source.audio.set_offset(cf.generation, t - cf.stream_time)
        self.writer.deliver(_Delivery(picture, t, cf.captured, latest.captured, repeat=False))
        self._last_picture = picture
        self.frames_shown += 1

    def _hold(self, now: float) -> None:
        """While the source reconnects, repeat the last picture to displays at the source rate."""
        if self._last_picture is not None and now - self.clock.last_wall >= self.clock.step:
            compositor = self.effects.compositor
            if self._last_parts is not None and compositor is not self._last_parts[2]:  # switched during the outage
                image, alpha, _, coverage = self._last_parts
                self._last_picture = _apply(compositor, image, alpha, coverage)
                self._last_parts = (image, alpha, compositor, coverage)
            t = self.clock.for_repeat(now)
            self.writer.deliver(_Delivery(self._last_picture, t, now, None, repeat=True))
            self.stats.repeated += 1

    def _mask_ready(self, cf: CapturedFrame, start: float) -> bool:
        """Whether the newest mask is of ``cf``'s connection, waiting for the model after a reconnect or a file's loop.

        A new connection is a new scene, as the run's first picture is: the last connection's mask carried over cut
        the subject where it had been and left the background bare where the subject had been, for the model's time
        (4 frames a loop with ``tiny`` at 128²). The displays hold the last picture meanwhile, as during the reconnect.
        False when the run ends first (a stop, ``--duration``, the window closed, the model failed)."""
        dropped = self.source.dropped
        try:
            while not self.model.wait_for_connection(cf.generation, self.clock.step):
                ending = self.stop.is_set() or (self.requested is not None and self.requested.is_set())
                if ending or self._user_closed() or (self.duration is not None and time.monotonic() - start >= self.duration):
                    return False
                self._hold(time.monotonic())
            return True
        finally:
            self.stats.dropped_for_new_connections += self.source.dropped - dropped

    def _user_closed(self) -> bool:
        return any(getattr(sink, "closed_by_user", False) for sink in self.sinks)

    def closed_while_starting(self) -> bool:
        """Handle the window's events while the model warms up; True once the user closed it (or pressed q/Esc),
        or the caller asked the run to end (``stop``: the terminal's q), which would otherwise wait out a 20-40 s export."""
        for sink in self.sinks:
            pump = getattr(sink, "pump", None)
            if pump is not None:
                pump()
        return self._user_closed() or (self.requested is not None and self.requested.is_set())

    def end_before_start(self, now: float) -> None:
        """The run ends before its first picture (the window closed, or ``stop`` set, during the warm-up): nothing was shown."""
        self.ended_by = "window closed" if self._user_closed() else "stop"
        self.stats.begin(now, self.source)
        self.source.final_reconnects()
        self.final = self.stats.final(now, self.source)

    def run(self, first: CapturedFrame) -> None:
        """Show frames until the duration passes, the source ends or fails, ``stop`` is set, or Ctrl-C.

        ``first`` is the frame the model has just segmented (``self.model.segment``), so the very
        first picture is masked.
        """
        start = time.monotonic()
        cf: Optional[CapturedFrame] = None
        writer: Optional[SinkWriter] = None
        try:
            # within the try too: a stop landing as the first frame was re-timed escaped as a KeyboardInterrupt, no report
            if not self.source.keeps_capturing:  # a file waited for the run: it plays from now, its first frame included
                first = self.model.retime(first, start)
            cf = first
            # the threads start within the try: a Ctrl-C or SIGTERM landing as they started escaped as a failure
            # (no report, the recordings aborted) and left both waiting forever on their queues
            self.writer = writer = SinkWriter(self.sinks, self.stats, self.stop)
            self.model.start()
            self.stats.begin(start, self.source)
            self.effects.begin(start)  # the report's switch times count from the first picture
            while True:
                if cf is not None:
                    if cf is not first:
                        self.model.offer(cf)
                    if self._mask_ready(cf, start):
                        self._show(cf)
                now = time.monotonic()
                if self.stats.due(now):
                    self.stats.emit(now, self.source)
                if self.stop.is_set() or (self.requested is not None and self.requested.is_set()):
                    break
                if self.duration is not None and now - start >= self.duration:
                    self.ended_by = "duration"
                    break
                if self._user_closed():
                    self.ended_by = "window closed"
                    break
                cf = self.source.read(min(0.05, self.clock.step))
                if cf is None:
                    state = self.source.state
                    if state == "ended":
                        self.ended_by = "source ended"
                        break
                    if state == "failed":  # the run ends here; what was recorded is kept (the caller reports the loss)
                        self.lost = self.source.error or SourceError("the source failed")
                        self.ended_by = "source lost"
                        break
                    if state == "reconnecting":
                        self._hold(time.monotonic())
        except KeyboardInterrupt as stopped:  # Ctrl-C, or SIGTERM under the command line
            self.ended_by = "terminated" if isinstance(stopped, Terminated) else "interrupted"
        finally:
            try:
                with finishing():  # a second Ctrl-C while the queued pictures are written must not discard the recordings
                    if writer is not None:
                        writer.finish()
                    self.stop.set()
                    self.source.final_reconnects()  # the source runs on until closed: its count must not move on unreported
                    self.final = self.stats.final(time.monotonic(), self.source)
                    self.model.join()
            except BaseException:  # given up (Ctrl-C pressed again and again): the threads may be in native code
                self.stop.set()
                for thread in ((writer._thread,) if writer is not None else ()) + (self.model._thread,):
                    if thread.is_alive():
                        exiting.abandon(thread)  # the command line then leaves with os._exit, not an abort under them
                raise
        for stage, error in (("model", self.model.error), ("sinks", writer.error if writer is not None else None)):
            if error is None:
                continue
            if isinstance(error, BirefvidError):
                raise error
            raise PipelineError(stage, f"{type(error).__name__}: {error}") from error


def for_this_run(segmenter: Segmenter, job: LiveJob) -> Segmenter:
    """The caller's Segmenter, or with a latency budget a twin sharing its model, engine and lock whose
    size the budget may change: the caller's size (a later run's ceiling, a ``process_video``'s) stays as given."""
    return segmenter if job.latency_budget_ms is None else copy.copy(segmenter)


# seconds the warm-up gets to end by itself once the run is asked to stop (the latency budget's calibration
# checks the stop between sizes): left running instead, its thread would abort an API user's process at exit
STOP_GRACE_S = 1.5


class ClosedWhileStarting(Exception):
    """The user closed the window, or the run was asked to stop, while the model warmed up (``run_niced``'s ``closed`` said so)."""


def run_niced(work: Callable[[], None], closed: Optional[Callable[[], bool]] = None, module_checks: bool = True) -> None:
    """Run ``work`` to completion on a short-lived niced thread, re-raising its error here.

    ``closed`` is asked on this thread every 0.2 s meanwhile (it handles the window's events); once it
    says True, ``work`` gets ``STOP_GRACE_S`` to end, is then left running as for Ctrl-C, and
    ``ClosedWhileStarting`` is raised.

    Abandoned (a stop), ``work`` ends before the model's next module (``exiting.end_if_abandoned``, a global forward
    pre-hook while it runs), unless ``module_checks`` is False: for ``torch.compile``, whose compiled graph guards on
    the global hooks, so removing the hook after the warm-up compiled the model again on its first frame.

    The first model calls start the engine's worker threads (OpenVINO's pool is created when the
    model compiles, torch's OpenMP team on first use); started from a niced thread they stay niced
    for the whole run, so they never delay a frame on its way to the display.
    """
    errors: list[BaseException] = []
    work_here = in_caller_context(work)  # option naming (CLI vs API) follows the caller
    done = threading.Event()

    def target() -> None:
        lower_thread_priority()
        # abandoned (a stop, the window closed), the work ends before the model's next module (exiting.end_if_abandoned):
        # the hook costs ~2.4 us a module call (~1 ms a frame of tiny's 470, 1-2%), and only while this thread runs
        checks = torch.nn.modules.module.register_module_forward_pre_hook(_end_if_abandoned) if module_checks else None
        try:
            with torch.inference_mode():
                work_here()
        except exiting.Abandoned:  # the caller has left: nothing to report
            pass
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            errors.append(exc)
        finally:
            if checks is not None:
                checks.remove()
            done.set()

    thread = threading.Thread(target=target, name="birefvid-live-warm-up", daemon=True)
    try:
        # started within the try: a Ctrl-C or SIGTERM landing in start() left the export running in native code
        # unreported, and the command line's normal exit aborted under it
        thread.start()
        # not Thread.join: before Python 3.13 a Ctrl-C that interrupts join() marks the thread as
        # ended while it still runs; and a wait with a timeout wakes for Ctrl-C whichever thread got it
        asked: Optional[float] = None  # when ``closed`` first said so
        while not done.wait(0.2):
            if asked is None and closed is not None and closed():
                asked = time.monotonic()
            if asked is not None and time.monotonic() - asked >= STOP_GRACE_S:
                raise ClosedWhileStarting()
        if asked is not None:  # the work ended in the grace (a calibration sees the stop itself): nothing is left running
            raise ClosedWhileStarting()
    except BaseException:  # Ctrl-C during a one-off export or compile, which nothing can stop
        if exiting.begun(thread) and not done.is_set():  # one the signal kept from beginning runs nothing
            exiting.abandon(thread)
        raise
    if errors:
        raise errors[0]


def _end_if_abandoned(module: torch.nn.Module, args: Any) -> None:
    """A forward pre-hook for every module: ``exiting.end_if_abandoned``; nothing while a model is traced (an export
    in this process, whose strict tracer would stop at the thread check)."""
    if not torch.compiler.is_compiling():
        exiting.end_if_abandoned()


def _model_failed_mid_run(runner: "LiveRunner", exc: BaseException) -> bool:
    """Whether ``exc`` is the model running out of memory (another process took the GPU's) after pictures were shown,
    the sinks sound: like a lost source, no fault of the run's, what was recorded is good, and an hour of a camera
    is worth more than a clean failure. A model that raises anything else is a failure of the run, which discards it."""
    writer = getattr(runner, "writer", None)  # none: it failed before the writer started
    if runner.frames_shown == 0 or (writer is not None and writer.error is not None):
        return False
    return isinstance(exc, DeviceOutOfMemory) and exc is runner.model.error


def finish_sinks(sinks: list[LiveSink], failed: bool) -> None:
    """Close every sink (abort them all when the run ``failed``), even after one fails, then raise the first
    error: a recording that cannot be committed must not leave a preview server holding its port."""
    first: Optional[BaseException] = None
    for sink in reversed(sinks):
        try:
            if failed:
                sink.abort()
            else:
                sink.close()
        except BaseException as exc:  # noqa: BLE001 - raised once every sink is finished
            if first is None:
                first = exc
            else:
                log.warning("could not finish %s either: %s", sink.name, exc)
    if first is not None:
        raise first


class SourceLost(SourceError):
    """A source lost for good mid-run; ``report`` is the run's report up to the loss (``--report`` is
    still written: which files were kept, the reconnects, the timings)."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


def _run_report(job: LiveJob, info: Any, fps: float, sinks: list[LiveSink], runner: "LiveRunner", resolved: dict[str, Any]) -> dict[str, Any]:
    """The run's report (``--report``): what ended it, the files each recording kept, the streams, the timings, the job."""
    # one file, or the parts; only those kept (a failed run discards its unfinished recording)
    recorded = {sink.name: kept for sink in sinks if (kept := [str(p) for p in getattr(sink, "files", ()) if p.exists()])}
    return {
        "source": job.source.source,
        "sinks": list(job.sinks),
        "width": info.width,
        "height": info.height,
        "source_rate": round(fps, 3),
        "frames_shown": runner.frames_shown,
        "ended_by": runner.ended_by,
        "recorded": recorded,
        "streams": [sink.summary() for sink in sinks if hasattr(sink, "summary")],
        "effect_changes": list(runner.effects.changes),  # switched from the window's keys, the preview page or the API
        "effect_switches": runner.effects.switches,  # all of them: the list keeps the latest CHANGES_KEPT
        "preview_mirrored": job.mirrors_preview(),  # the window and the preview page (never what is sent or recorded)
        "stats": runner.final,
        "job": job.to_dict(),
        "resolved": resolved,
    }


# a camera's or stream's first frame older than this once the model is ready (a first export, a
# slow first inference) is replaced by the newest one, so the output does not open on a picture
# held for the whole warm-up
STALE_AFTER_S = 0.5


def run_live_job(
    job: LiveJob,
    *,
    segmenter: Optional[Segmenter] = None,
    stats_json: Optional[str] = None,
    printer: Optional[Callable[[str], None]] = None,
    stop: Optional[threading.Event] = None,
    on_effects: Optional[Callable[[EffectSwitch], None]] = None,
) -> dict[str, Any]:
    """Run ``job`` until its duration passes, the source ends, ``stop`` is set or Ctrl-C; returns the run report.

    ``on_effects`` is called once, before the model loads, with the run's ``EffectSwitch``: keep it and
    call ``select("none")`` (or ``"blur"``, ...) from any thread to switch the effect while the run goes on.

    Recordings are committed when the run ends normally (duration, end of source, Ctrl-C, window
    closed) and discarded when it fails, like every other output of birefvid, with two exceptions: a
    source lost for good mid-run (its retries spent) keeps what was recorded up to the loss, an hour
    of a camera being worth more than a clean failure, and then raises SourceError naming the files;
    and so does the model running out of memory mid-run (another process took the GPU's), whose
    ``DeviceOutOfMemory`` then names the files.
    """
    from ..io.live_sinks import open_live_sinks
    from ..io.live_source import open_live_source
    from ..compose.background import StreamBackground
    from .backgrounds import open_background
    from .file_job import resolved_settings, segmenter_for
    from .load_failure import loading_model

    job.validate()
    check_records_replace_no_input(job)  # light: birefvid live makes it (and refuse_missing_source) before importing this module
    spec, effect = job.source, job.effect
    with contextlib.ExitStack() as stack:
        sound = job.audio and any(carries_sound(sink) for sink in job.sinks)
        source = stack.enter_context(open_live_source(
            spec.source, audio=sound, realtime=spec.realtime, loop=spec.loop,
            open_timeout=spec.open_timeout, read_timeout=spec.read_timeout, max_retries=spec.max_retries,
            camera_size=parse_camera_size(spec.camera_size), camera_fps=spec.camera_fps,
            audio_device=spec.audio_device, audio_delay=spec.audio_delay, deinterlace=spec.deinterlace, video_stream=spec.video_stream,
            input_colors=spec.input_colors,
        ))  # fmt: skip
        try:
            # a run of 10 s does not wait an hour for a stream to answer; a file or a camera opens (or
            # fails) on its own, and a short run of one on a busy machine must not fail for its first picture
            network = getattr(getattr(source, "target", None), "kind", "network") == "network"
            info = source.start(timeout=job.duration if network else None, stop=stop)
        except NoFirstPicture as e:
            why = f"; the last try: {e.last_failure}" if e.last_failure else ""
            if stop is not None and stop.is_set():
                raise SourceError(f"{e}{why}; nothing was recorded") from None
            raise SourceError(f"{e}, the run's {option('duration')}{why}; nothing was recorded") from None
        fps = float(info.average_rate) if info.average_rate else 30.0
        background = None
        # replace, or none that may switch to replace; before the sinks: a mistyped picture is said before a window pops up or a device is asked for
        if effect.background is not None:
            background = stack.enter_context(open_background(str(effect.background), (info.width, info.height), "cpu",
                                                             info.sample_aspect_ratio))  # fmt: skip
            if isinstance(background, StreamBackground):  # a video: paused over an outage or a while on another effect
                background.max_gap = BACKGROUND_GAP_S
        sinks = open_live_sinks(list(job.sinks), width=info.width, height=info.height, fps=fps, kind=EFFECT_PICTURE[effect.effect],
                                overwrite=job.overwrite, preset=job.record_preset, audio=source.audio,
                                segment_seconds=job.record_segment, sample_aspect_ratio=info.sample_aspect_ratio,
                                mirror=job.mirrors_preview(), effect=effect.effect)  # fmt: skip
        failed, failure, runner, shown = True, None, None, True
        model_failed: Optional[BirefvidError] = None  # mid-run, after pictures were recorded: those are kept
        try:
            stats = LiveStats(job.stats_every, stats_json, printer)  # opens --stats-json: fails before the model loads
            stack.callback(stats.close)
            # after the cheap checks of sinks and background
            if segmenter is None:
                with loading_model():  # torch's own error as it loads is one line, exit 2, as in process
                    seg = segmenter_for(job.model, job.inference)
            else:
                seg = for_this_run(segmenter, job)
            effects = EffectSwitch(effect, background)
            stack.callback(effects.end)  # after the sinks are finished (the stack closes last)
            if printer is not None:
                effects.listeners.append(lambda name, by: printer(f"live: effect {name} (from the {by})"))
            if on_effects is not None:
                on_effects(effects)
            smoother = make_smoother(job.smoothing.kind, **job.smoothing.smoother_options())
            runner = LiveRunner(source, sinks, seg, effects, smoother, fps=fps, carry=job.carry, model_fps=job.model_fps, stats=stats,
                                duration=job.duration, stop=stop)  # fmt: skip
            threads = torch.get_num_threads()
            with torch.inference_mode():
                first = runner.source.read(spec.read_timeout)
                if first is None:
                    raise SourceError(str(source.error) if source.error else f"no frame from {spec.source} within {spec.read_timeout:g} s")
                def warm_up() -> None:
                    if job.latency_budget_ms is not None:
                        choose_resolution(seg, first.frame.image, job.latency_budget_ms / 1000.0, max(seg.resolution), stop)
                    runner.model.segment(first)

                def catch_up() -> None:  # a camera's or stream's first frame went stale while the model warmed up
                    nonlocal first
                    newest = source.read(1.0) if source.keeps_capturing and time.monotonic() - first.captured > STALE_AFTER_S else None
                    if newest is not None:
                        runner.model.segment(newest)
                        first = newest

                try:
                    checks = seg.backend != "torch-compile"  # its compiled graph guards on the module hooks
                    with export_handed_over_ahead(seg, first.frame.image.shape[:2], job.latency_budget_ms is not None):
                        run_niced(warm_up, runner.closed_while_starting, checks)
                    run_niced(catch_up, runner.closed_while_starting, checks)
                except ClosedWhileStarting:  # the window closed (or q pressed) during a 20-40 s first export: end now, not after it
                    runner.end_before_start(time.monotonic())
                    shown = False
                except (BirefvidError, KeyboardInterrupt):
                    raise
                except Exception as exc:  # the model's own failure: one line, named as the model thread's would be
                    raise PipelineError("model", f"{type(exc).__name__}: {exc}") from exc
                else:
                    runner.run(first)
            # nothing shown (closed during the warm-up, or a stop landing before the first picture): no empty recording is committed
            failed = not shown or runner.frames_shown == 0
        except BirefvidError as exc:  # a full disk, a lost folder: the finished parts stay, and the report says so
            if runner is not None and runner.final and not hasattr(exc, "report"):
                failure = exc
                if _model_failed_mid_run(runner, exc):
                    failed, model_failed = False, exc
            raise
        finally:
            with finishing():  # a SIGTERM now would leave recordings half-closed: they finish first
                try:
                    if not failed:  # a microphone's sound of the last pictures is still on its way
                        source.finish_sound()
                    finish_sinks(sinks, failed)
                except OutputKeptError as kept:  # a recording went beside the name another run took: the report says where
                    if runner is not None and runner.final:
                        report = _run_report(job, info, fps, sinks, runner, {**resolved_settings(seg), "model_threads": threads})
                        kept.report = {**report, "error": str(kept)}  # type: ignore[attr-defined]
                    raise
                if model_failed is not None:  # committed now: its line names what was kept, as a lost source's does
                    files = [str(p) for sink in sinks for p in getattr(sink, "files", ()) if p.exists()]
                    kept = f"kept what was recorded before it: {', '.join(files)}" if files else "nothing was recorded"
                    model_failed.args = (f"{model_failed}; the run stopped after {runner.frames_shown} frames and {kept}",)
                if failure is not None:  # after the aborts: the unfinished parts are no longer listed
                    report = _run_report(job, info, fps, sinks, runner, {**resolved_settings(seg), "model_threads": threads})
                    failure.report = {**report, "ended_by": "failed", "error": str(failure)}  # type: ignore[attr-defined]
    report = _run_report(job, info, fps, sinks, runner, {**resolved_settings(seg), "model_threads": threads})
    if runner.lost is not None:
        files = [str(p) for sink in sinks for p in getattr(sink, "files", ())]
        kept = f"kept what was recorded before the loss: {', '.join(files)}" if files else "nothing was recorded"
        raise SourceLost(f"{runner.lost}; the run stopped after {runner.frames_shown} frames and {kept}", report) from runner.lost
    return report
