"""What a ``birefvid image`` run did, for its ``--report``: the pictures written, kept and skipped, the time each
step took, and the model and settings, as ``process --report`` says for a video."""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator, Optional

STEPS = ("read", "segment", "compose", "write")  # the busy time of each, over all pictures (a picture's steps run one after another)


class ImageRun:
    """Counts an ``image`` run's pictures and times its steps from its start; ``report()`` is the ``--report`` JSON."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self.step_seconds = dict.fromkeys(STEPS, 0.0)
        self.load_seconds = 0.0
        self.export_seconds = 0.0  # a first ONNX/OpenVINO export (or compile) of an inference size, within ``segment``'s calls
        self.pictures: list[dict[str, Any]] = []  # one per picture written: input, output, bit depth
        self.kept: list[str] = []  # --skip-existing: outputs already there, left as they were
        self.unreadable: list[str] = []  # inputs that could not be read or used, skipped

    @contextlib.contextmanager
    def timed(self, step: str) -> Iterator[None]:
        """Add the time the block takes to ``step`` (one of ``STEPS``, or ``load``: the model's)."""
        began = time.perf_counter()
        try:
            yield
        finally:
            took = time.perf_counter() - began
            if step == "load":
                self.load_seconds += took
            else:
                self.step_seconds[step] += took

    @contextlib.contextmanager
    def segmenting(self, engine: Any) -> Iterator[None]:
        """Time a model call as ``segment``, less the export or compile it began with (``engine.export_seconds`` grown),
        which counts as ``export_seconds``: a first export's 10-60 s inflated the per-picture model time."""
        exported = getattr(engine, "export_seconds", 0.0)
        began = time.perf_counter()
        try:
            yield
        finally:
            took = time.perf_counter() - began
            export = min(max(getattr(engine, "export_seconds", 0.0) - exported, 0.0), took)
            self.export_seconds += export
            self.step_seconds["segment"] += took - export

    def wrote(self, source: Path, target: Path, bits: int) -> None:
        """One picture written: ``source`` cut out as ``target`` at ``bits`` bits a sample."""
        self.pictures.append({"input": str(source), "output": str(target), "bit_depth": bits})

    @property
    def written(self) -> list[str]:
        """The outputs this run wrote, in order."""
        return [p["output"] for p in self.pictures]

    def report(self, out: str, options: dict[str, Any], model: Any, inference: Any, resolved: Optional[dict[str, Any]]) -> dict[str, Any]:
        """The run's report: what was written (``written``, ``pictures`` of them), kept and skipped; ``wall_seconds`` from the
        start, the model's ``load_seconds`` and ``export_seconds`` within it and each step's ``stage_seconds``; the options, and
        what ``auto`` became (``resolved``; None when no model was loaded)."""
        wall = time.perf_counter() - self._start
        work = wall - self.load_seconds - self.export_seconds  # the rate of the cutting out, as process's fps leaves the load and export out
        done = len(self.pictures)
        return {
            "output": out,
            "pictures": done,
            "written": self.pictures,
            "kept": self.kept,
            "unreadable": self.unreadable,
            "wall_seconds": round(wall, 3),
            "pictures_per_second": round(done / work, 3) if work > 0 and done else None,
            "load_seconds": round(self.load_seconds, 3),
            "export_seconds": round(self.export_seconds, 3),
            "stage_seconds": {k: round(v, 3) for k, v in self.step_seconds.items()},
            "options": {**options, "model": asdict(model), "inference": asdict(inference)},
            "resolved": resolved,
        }
