"""A small staged pipeline: one thread per stage, joined by bounded queues.

Shape of supervision's reader -> process -> writer, without its two hangs: every blocking
``put``/``get`` polls a shared stop event, and end-of-stream is always sent in ``finally``,
so neither a failing consumer nor a failing producer can leave another thread blocked.
The first error stops every stage and is re-raised from :func:`run_stages` with the stage named.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Iterable, Iterator, Literal, Optional, Protocol, Sequence, Union

from .. import exiting
from ..errors import BirefvidError, PipelineError, finishing, in_caller_context
from .priority import HELPER_NICENESS, lower_thread_priority

log = logging.getLogger(__name__)

DropPolicy = Literal["block", "newest"]
POLL_SECONDS = 0.1
STOP_JOIN_SECONDS = 10.0  # how long an interrupted run waits for its stage threads to finish their item
_EOS = object()


class _RunStop:
    """One run's stop: set by its own failure or interrupt, and seen as set when the caller's ``stop`` is.

    The caller's event is never set here: one run failing set a stop shared by a service's runs, and every
    run then and later ended as interrupted."""

    def __init__(self, requested: Optional[threading.Event]) -> None:
        self._own = threading.Event()
        self._requested = requested

    def is_set(self) -> bool:
        return self._own.is_set() or (self._requested is not None and self._requested.is_set())

    def set(self) -> None:
        self._own.set()


class StageQueue:
    """Bounded queue whose ``put``/``get`` give up when ``stop`` is set.

    ``block`` (files): a full queue makes the producer wait, so nothing is dropped.
    ``newest`` (live): a full queue drops its oldest item, so consumers always see fresh data.
    """

    def __init__(self, maxsize: int, stop: Union[threading.Event, _RunStop], policy: DropPolicy = "block") -> None:
        if maxsize < 1:
            raise ValueError(f"queue size must be at least 1, got {maxsize}")
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._stop = stop
        self.policy = policy
        self.dropped = 0

    def put(self, item: Any) -> bool:
        """Enqueue ``item``; False when the pipeline stopped first."""
        newest = self.policy == "newest" and item is not _EOS
        while not self._stop.is_set():
            try:
                # newest-wins never waits: a full queue gives up its oldest item at once
                self._queue.put(item, block=not newest, timeout=None if newest else POLL_SECONDS)
                return True
            except queue.Full:
                if newest:
                    try:
                        self._queue.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass
        return False

    def leftovers(self) -> list[Any]:
        """The items still queued, taken out without waiting (end markers left out): what a consumer that stopped
        early left behind, for a caller that must still hand them on."""
        items = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return items
            if item is not _EOS:
                items.append(item)

    def get(self) -> Any:
        """Next item, ``_EOS`` at end of stream, or ``_EOS`` as soon as the pipeline stops."""
        while not self._stop.is_set():
            try:
                return self._queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
        return _EOS


class Stage(Protocol):
    """A step between queues: any number of outputs per input, and a tail at end of stream."""

    name: str

    def process(self, item: Any) -> Iterable[Any]: ...

    def finish(self) -> Iterable[Any]: ...


@dataclass
class StageTimes:
    """Seconds each stage spent working (not waiting on its queues), and the CPU seconds of its thread.

    ``busy`` is wall-clock time, so a stage that was preempted (on a CPU the helpers run at the
    lowest priority beside the model) counts the time it waited for a core. ``cpu`` is what the
    stage's own thread used (``time.thread_time``): its real cost. Threads a stage's libraries
    start (an engine's workers, an encoder's frame threads) are not in it.
    """

    busy: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.busy[name] = self.busy.get(name, 0.0) + seconds

    def add_cpu(self, name: str, seconds: float) -> None:
        self.cpu[name] = self.cpu.get(name, 0.0) + seconds


def _timed(iterable: Iterable[Any], name: str, times: StageTimes) -> Iterator[Any]:
    """Iterate while charging the time spent producing each item to ``name``."""
    it = iter(iterable)
    while True:
        start = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            times.add(name, time.perf_counter() - start)
            return
        times.add(name, time.perf_counter() - start)
        yield item


def _at_low_priority(target: Callable[..., None]) -> Callable[..., None]:
    """``target``, run at the helpers' low priority on whatever thread calls it."""

    def run(*args: Any) -> None:
        lower_thread_priority(HELPER_NICENESS)
        target(*args)

    return run


def _charging_cpu(target: Callable[..., None], name: str, times: StageTimes) -> Callable[..., None]:
    """``target``, with the CPU time of the thread that runs it charged to ``name``."""

    def run(*args: Any) -> None:
        start = time.thread_time()
        try:
            target(*args)
        finally:
            times.add_cpu(name, time.thread_time() - start)

    return run


class _StageThread(threading.Thread):
    """A stage's daemon thread whose ``ended`` is set once its work has returned and been let go of.

    Why let go first: the work's closure holds the stage, its queues' items and the source (tensors, decoded frames,
    an open container). Said done while it still held them, a thread descheduled there (a niced one on a busy CPU)
    dropped them after ``run_stages`` had raised and the caller let go of its own: their native frees then ran on a
    daemon thread that the interpreter's exit cuts off, or never ran at all (a sink's or container's clean-up lost)."""

    def __init__(self, name: str, work: Callable[[], None]) -> None:
        super().__init__(name=f"birefvid-{name}", daemon=True)
        self._work: Optional[Callable[[], None]] = work
        self.ended = threading.Event()

    def run(self) -> None:
        try:
            if self._work is not None:
                self._work()
        finally:
            self._work = None  # the last of the run this thread holds (no local keeps any)
            self.ended.set()


def run_stages(
    source: Iterable[Any],
    stages: Sequence[Stage],
    consume: Callable[[Any], None],
    *,
    source_name: str = "decode",
    consumer_name: str = "encode",
    queue_size: int = 4,
    policy: DropPolicy = "block",
    stop: Optional[threading.Event] = None,
    niced: Collection[str] = (),
) -> StageTimes:
    """Run ``source`` -> ``stages`` -> ``consume`` on threads until the source ends or an error occurs.

    Threads whose name (``source_name``, a stage's ``name``, ``consumer_name``) is in ``niced`` run
    at the lowest priority (Linux), with any threads they start (an encoder's, for instance).
    """
    stop = _RunStop(stop)  # the caller's event is only watched: a web service shares one among its runs
    times = StageTimes()
    queues = [StageQueue(queue_size, stop, policy) for _ in range(len(stages) + 1)]
    errors: list[tuple[str, BaseException]] = []
    lock = threading.Lock()

    def fail(name: str, exc: BaseException) -> None:
        with lock:
            errors.append((name, exc))
        stop.set()

    def produce() -> None:
        try:
            for item in _timed(source, source_name, times):
                if not queues[0].put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - re-raised from run_stages
            fail(source_name, exc)
        finally:
            queues[0].put(_EOS)

    def work(stage: Stage, inbox: StageQueue, outbox: StageQueue) -> None:
        try:
            while (item := inbox.get()) is not _EOS:
                for out in _timed(stage.process(item), stage.name, times):
                    if not outbox.put(out):
                        return
            if not stop.is_set():
                for out in _timed(stage.finish(), stage.name, times):
                    if not outbox.put(out):
                        return
        except BaseException as exc:  # noqa: BLE001
            fail(stage.name, exc)
        finally:
            outbox.put(_EOS)

    def sink() -> None:
        try:
            while (item := queues[-1].get()) is not _EOS:
                start = time.perf_counter()
                consume(item)
                times.add(consumer_name, time.perf_counter() - start)
        except BaseException as exc:  # noqa: BLE001
            fail(consumer_name, exc)

    finished: dict[threading.Thread, threading.Event] = {}  # set when a thread's work is over (see the interrupt below)

    def thread(name: str, target: Callable[..., None], *args: Any) -> _StageThread:
        # each stage runs in a copy of the caller's context, so context variables (how error
        # messages name options) hold on every thread
        run = _charging_cpu(_at_low_priority(target) if name in niced else target, name, times)
        t = _StageThread(name, functools.partial(in_caller_context(run), *args))
        finished[t] = t.ended
        return t

    threads = [thread(source_name, produce)]
    for i, stage in enumerate(stages):
        threads.append(thread(stage.name, work, stage, queues[i], queues[i + 1]))
    threads.append(thread(consumer_name, sink))
    started: list[threading.Thread] = []
    try:
        # started within the try: a SIGTERM or Ctrl-C landing between two starts (a batch's next chunk starting as
        # the scheduler stops it) left the started ones decoding as Python exited: SIGSEGV in libavformat, or SIGABRT
        for t in threads:
            started.append(t)  # before start(): the signal may land within it, the thread then running or not
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(timeout=POLL_SECONDS)  # short joins keep Ctrl-C responsive in the main thread
    except BaseException:
        stop.set()
        deadline = time.monotonic() + STOP_JOIN_SECONDS
        try:
            # Ctrl-C pressed again meanwhile (people press it twice) is held: raised here, it left the
            # threads running in native code and the process aborted at exit
            with finishing("stopping the run's threads", "leaves at once"):
                for t in started:
                    if not exiting.begun(t):
                        continue  # the signal landed in start() before the thread began: nothing to wait for
                    # waited on by its own flag: before Python 3.13 a join that Ctrl-C interrupted marks the
                    # thread as ended (is_alive() False) while it still runs
                    if finished[t].wait(timeout=max(0.0, deadline - time.monotonic())):
                        # its work is over and let go of: what is left is the thread's own end, waited for where
                        # join() can tell (it cannot for the thread whose join Ctrl-C interrupted: seen as ended)
                        t.join(timeout=max(0.0, deadline - time.monotonic()))
                    else:
                        # still in native code that nothing can stop (a model's first export or compile inside the
                        # model stage, a stuck device): a normal interpreter exit would abort under it ("terminate
                        # called without an active exception", exit 134 instead of 130); the CLI leaves with os._exit
                        exiting.abandon(t)
        except BaseException:  # given up by more presses: the rest are left as above
            for t in started:
                if not finished[t].is_set():
                    exiting.abandon(t)
            raise
        raise
    if errors:
        name, exc = errors[0]
        if isinstance(exc, (BirefvidError, KeyboardInterrupt, SystemExit)):
            # a one-line user-facing message already, or a stop asked for on a worker thread (a
            # notebook's progress callback raising KeyboardInterrupt): passed on as it is
            raise exc
        raise PipelineError(name, f"{type(exc).__name__}: {exc}") from exc
    return times
