"""Run chunks in this process, one after another, with one model loaded once (``birefvid batch`` without ``--ray``)."""

from __future__ import annotations

import atexit
import contextvars
import logging
import threading
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, TypeVar

from ..errors import BirefvidError, SourceError
from ..job import FileJob
from ..runtime.load_failure import loading_model
from .chunk import ChunkTask, run_chunk

if TYPE_CHECKING:
    from ..runtime.segmenter import Segmenter
    from .killed import RunningChunk

OnResult = Callable[[ChunkTask, dict[str, Any]], None]
OnFrames = Callable[[ChunkTask, int], None]  # a running chunk's frames encoded so far
# a chunk whose input turned out damaged (a SourceError): the runner skips that video and goes on
OnFailure = Callable[[ChunkTask, SourceError], None]
Skip = Callable[[ChunkTask], bool]  # a task not to start (its video already failed)
T = TypeVar("T")
log = logging.getLogger(__name__)
STOP_POLL = 0.05  # seconds between looks at a watch's stop while its model loads: stop() returns about this soon


class WorkerDied(SourceError):
    """A chunk whose Ray worker died more often than Ray restarts it (the OOM killer, a crash in native
    code): that video is skipped as a damaged one is, so one video cannot stop a batch of thousands."""


class ClusterLost(BirefvidError, RuntimeError):
    """The Ray cluster can run no more chunks (its head stopped answering, every worker lost with its node and no
    room for another): the run stops, its finished chunks kept, and the runner's line says which videos are done.
    Not a video's fault (no SourceError): a watch stops too."""


def deliver(task: ChunkTask, outcome: Callable[[], dict[str, Any]], on_result: OnResult, on_failure: Optional[OnFailure]) -> None:
    """Report a chunk's result to ``on_result``; a damaged input (SourceError) goes to ``on_failure``
    when there is one, so the run goes on without that video; any other error ends the run."""
    try:
        result = outcome()
    except SourceError as exc:
        if on_failure is None:
            raise
        on_failure(task, exc)
        return
    on_result(task, result)


def counting(task: ChunkTask, report: Callable[[ChunkTask, int], None]) -> Callable[[int], None]:
    """A ``run_chunk`` progress callback (frames per step) that reports the chunk's running total."""
    total = 0

    def advance(n: int) -> None:
        nonlocal total
        total += n
        report(task, total)

    return advance


class LocalExecutor:
    """Chunks in order, in this process; the model loads on the first chunk that needs it."""

    where = "local, sequential"
    workers = 1

    def __init__(self, job: FileJob) -> None:
        self.job = job
        self._segmenter: Optional["Segmenter"] = None
        self.running: Optional["RunningChunk"] = None  # the runner's: says on disk which chunk runs (``killed``)
        self.stop: Optional[threading.Event] = None  # a watch's: once set, a model still loading is waited for no more

    def run(
        self, tasks: Iterable[ChunkTask], on_result: OnResult, on_frames: Optional[OnFrames] = None,
        on_failure: Optional[OnFailure] = None, skip: Optional[Skip] = None,
    ) -> None:
        for task in tasks:
            if skip is not None and skip(task):
                continue
            progress = counting(task, on_frames) if on_frames is not None else None
            deliver(task, lambda: self._cut(task, progress), on_result, on_failure)

    def _cut(self, task: ChunkTask, progress: Optional[Callable[[int], None]]) -> dict[str, Any]:
        """``run_chunk`` with the model loaded first, marked on disk while it runs (only a kill leaves the mark)."""
        model = self._model()  # not in the mark: a model too big for the machine is no video's fault
        if self.running is None:
            return run_chunk(task, model, progress)
        self.running.start(task.video, int(task.chunk["index"]))
        try:
            return run_chunk(task, model, progress)
        finally:
            self.running.clear()

    def _model(self) -> "Segmenter":
        if self._segmenter is None:
            # a watch's stop() during the load raises StopRequested here, outside loading_model: a stop, not a load error
            self._segmenter = self._load() if self.stop is None else load_unless_stopped(self._load, self.stop)
        return self._segmenter

    def _load(self) -> "Segmenter":
        with loading_model():  # torch's own error too is one line, exit 2, as on a Ray worker
            return self._load_segmenter()

    def _load_segmenter(self) -> "Segmenter":
        from ..runtime.file_job import segmenter_for

        return segmenter_for(self.job.model, self.job.inference)

    def close(self) -> None:
        self._segmenter = None


def load_unless_stopped(load: Callable[[], T], stop: threading.Event) -> T:
    """``load()``, unless ``stop`` is set first: then ``StopRequested`` at once, and the load is left to finish (or
    fail) unseen on a thread of its own, its result dropped.

    A model takes seconds to load (torch's first import, weights from disk; a first OpenVINO export a minute) and no
    frame is reported meanwhile, so a watch's ``stop()`` (a notebook, a service shutting down) waited for all of it
    while its lock stayed held. The thread is a daemon, yet the interpreter's exit waits for it (``_wait_for_loads``):
    a daemon cut off inside PyTorch's C++ at exit aborted the process ("terminate called without an active exception")."""
    from .runner import StopRequested

    if stop.is_set():
        raise StopRequested()
    outcome: dict[str, Any] = {}
    finished = threading.Event()
    context = contextvars.copy_context()  # the caller's context variables, as a load on its own thread saw them

    def work() -> None:
        try:
            outcome["value"] = context.run(load)
        except BaseException as exc:  # noqa: BLE001 - raised on the caller's thread, if it still waits
            outcome["error"] = exc
        finally:
            finished.set()

    thread = threading.Thread(target=work, name="birefvid-model-load", daemon=True)
    with _loads_lock:
        if not _loads_waited[0]:
            atexit.register(_wait_for_loads)
            _loads_waited[0] = True
        _loads[:] = [t for t in _loads if t.is_alive()]
        _loads.append(thread)
    thread.start()
    while not finished.wait(STOP_POLL):
        if stop.is_set():
            raise StopRequested()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# model loads started, perhaps for a watch stopped meanwhile: each stays listed until its thread has ended, not only its
# load. A stopped watch's model is freed on the load's thread after ``work`` returns (its closure, the last reference,
# goes with the thread's target), and freeing tensors lets go of the GIL: a thread struck off when ``work`` returned
# was not waited for, and the interpreter's exit, which ended it mid-free, aborted the process (1 exit in 3 measured)
_loads: list[threading.Thread] = []
_loads_lock = threading.Lock()
_loads_waited = [False]  # _wait_for_loads registered with atexit


def _wait_for_loads() -> None:
    """At the interpreter's exit, the model loads still running (or freeing what they loaded): the rest of a load
    (seconds) rather than an abort."""
    with _loads_lock:
        running = [t for t in _loads if t.is_alive()]
    if running:
        log.info("waiting for a model load a stopped watch left running before exiting")
    for thread in running:
        thread.join()
