"""Free space for a long run's output: stop early, saying why, when the output clearly cannot fit.

A two-hour 1080p ProRes 4444 output is hundreds of GB. Without this the disk filled up hours into
the run, the run failed there and its partial output was removed: the whole night lost. The output's
size is projected from what its first frames took (the temporary file's own size, where the sink can
say; else the drop in the disk's free space, which another program writing inflates), so the check costs
a ``stat`` and a ``statfs`` every ``EVERY_SECONDS`` and needs no table of codec rates (a slide and a
camera shot differ ten-fold).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..errors import SinkError

log = logging.getLogger(__name__)

FIRST_CHECK_SECONDS = 30.0  # of encoding before the first projection: the muxer's buffers written out
EVERY_SECONDS = 10.0  # between projections: another program filling the disk counts too
MIN_FRAMES = 25  # written before a projection is trusted
# projected need over the free space that stops the run; between 1 and this, a warning. A projection
# from the first minutes may be off (a title slide, then a camera), so only a clear shortfall stops it
STOP_FACTOR = 2.0


def free_bytes(folder: Path) -> Optional[int]:
    """Bytes free to this user on ``folder``'s disk; None where that cannot be read."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _size(n: float) -> str:
    """``1.2 GB``, ``340 MB``: sizes as a disk's free space is shown."""
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


class DiskWatch:
    """Counts frames written to ``target`` and raises ``SinkError`` once the rest cannot fit on its disk."""

    def __init__(self, target: str | Path, total: Optional[int], written: Optional[Callable[[], Optional[int]]] = None,
                 what: str = "the output") -> None:  # fmt: skip
        """``written``: the bytes the output holds so far (``Sink.bytes_written``), None where unknown;
        ``what``: how the message names it (``the outputs`` for several on one disk)."""
        self.folder = Path(target).resolve().parent  # the temporary output lies beside the target
        self.what = what
        self.total = total
        self._written = written
        self.done = 0
        self._free0 = free_bytes(self.folder) if total else None
        self._next = time.monotonic() + FIRST_CHECK_SECONDS
        self._warned = False

    def advance(self, n: int) -> None:
        """Count ``n`` more frames written; every ``EVERY_SECONDS``, project the rest against the free space."""
        self.done += n
        if self._free0 is None or self.total is None or self.done < MIN_FRAMES or self.done >= self.total:
            return
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + EVERY_SECONDS
        free = free_bytes(self.folder)
        own = self._written() if self._written is not None else None
        used = own if own is not None else (self._free0 - free if free is not None else 0)
        if free is None or used <= 0:
            return
        left = self.total - self.done
        need = used / self.done * left
        said = (f"its first {self.done} frames took {_size(used)}, so the other {left} need ~{_size(need)}, "
                f"and {self.folder} has {_size(free)} free")  # fmt: skip
        if need > STOP_FACTOR * free:
            raise SinkError(
                f"{self.what} will not fit on its disk: {said}; stopped now, not when the disk fills up (nothing was kept). "
                "Free some space, write to a disk with room, or make a smaller output (.webm, --max-size, --output mask)"
            )
        if need > free and not self._warned:
            self._warned = True
            log.warning("%s may not fit on its disk: %s; the run fails (and keeps nothing) if the disk fills up", self.what, said)


def disk_of(target: str | Path) -> object:
    """What tells the disk ``target``'s folder is on apart from another's: its device number (the folder where unknown)."""
    folder = Path(target).resolve().parent
    try:
        return os.stat(folder).st_dev
    except OSError:
        return folder


def watches_by_disk(outputs: Sequence[tuple[str | Path, Callable[[], Optional[int]]]], total: Optional[int]) -> list[DiskWatch]:
    """One ``DiskWatch`` a disk for a run's outputs (target, bytes written so far), each projecting the outputs on its
    disk against its free space: an output on another disk neither counts against this one nor goes unwatched."""
    groups: dict[object, list[tuple[str | Path, Callable[[], Optional[int]]]]] = {}
    for target, written in outputs:
        groups.setdefault(disk_of(target), []).append((target, written))
    return [DiskWatch(group[0][0], total, _summed([w for _, w in group]), "the output" if len(group) == 1 else "the outputs")
            for group in groups.values()]  # fmt: skip


def _summed(parts: list[Callable[[], Optional[int]]]) -> Callable[[], Optional[int]]:
    """The bytes of every part so far (None while none can say)."""

    def written() -> Optional[int]:
        sizes = [n for n in (part() for part in parts) if n is not None]
        return sum(sizes) if sizes else None

    return written
