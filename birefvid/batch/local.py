"""Run chunks in this process, one after another, with one model loaded once (``birefvid batch`` without ``--ray``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional

from ..errors import SourceError
from ..job import FileJob
from .chunk import ChunkTask, run_chunk

if TYPE_CHECKING:
    from ..runtime.segmenter import Segmenter
    from .killed import RunningChunk

OnResult = Callable[[ChunkTask, dict[str, Any]], None]
OnFrames = Callable[[ChunkTask, int], None]  # a running chunk's frames encoded so far
# a chunk whose input turned out damaged (a SourceError): the runner skips that video and goes on
OnFailure = Callable[[ChunkTask, SourceError], None]
Skip = Callable[[ChunkTask], bool]  # a task not to start (its video already failed)


class WorkerDied(SourceError):
    """A chunk whose Ray worker died more often than Ray restarts it (the OOM killer, a crash in native
    code): that video is skipped as a damaged one is, so one video cannot stop a batch of thousands."""


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
            from ..runtime.file_job import segmenter_for

            self._segmenter = segmenter_for(self.job.model, self.job.inference)
        return self._segmenter

    def close(self) -> None:
        self._segmenter = None
