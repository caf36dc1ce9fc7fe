"""Run chunks in this process, one after another, with one model loaded once (``birefvid batch`` without ``--ray``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional

from ..job import FileJob
from .chunk import ChunkTask, run_chunk

if TYPE_CHECKING:
    from ..runtime.segmenter import Segmenter

OnResult = Callable[[ChunkTask, dict[str, Any]], None]
OnFrames = Callable[[ChunkTask, int], None]  # a running chunk's frames encoded so far


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

    def run(self, tasks: Iterable[ChunkTask], on_result: OnResult, on_frames: Optional[OnFrames] = None) -> None:
        for task in tasks:
            progress = counting(task, on_frames) if on_frames is not None else None
            on_result(task, run_chunk(task, self._model(), progress))

    def _model(self) -> "Segmenter":
        if self._segmenter is None:
            from ..runtime.file_job import segmenter_for

            self._segmenter = segmenter_for(self.job.model, self.job.inference)
        return self._segmenter

    def close(self) -> None:
        self._segmenter = None
