"""Progress for long runs: a tqdm bar (frames, fps, ETA) on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Optional

from tqdm import tqdm

from ..progress_bar import update_leaving_out_the_time_so_far


EVERY_SECONDS = 10.0  # how often a log line is printed off a terminal


class FrameProgress:
    """Counts frames (or ``unit``: pictures); call ``start(total)``, then ``advance(n)`` per batch, then ``close()``."""

    def __init__(self, quiet: bool = False, every_seconds: Optional[float] = None, unit: str = "frames") -> None:
        self.quiet = quiet
        self.every = EVERY_SECONDS if every_seconds is None else every_seconds
        self.unit = unit
        self.total: Optional[int] = None
        self.done = 0
        self._bar: Optional[tqdm] = None
        self._t0 = self._last = time.monotonic()
        self._first: Optional[tuple[float, int]] = None  # (time, count) when the first batch landed

    def start(self, total: Optional[int]) -> None:
        self.total = total
        self._t0 = self._last = time.monotonic()
        self._first = None
        if not self.quiet and sys.stderr.isatty():
            self._bar = tqdm(total=total, unit=self.unit.rstrip("s"), dynamic_ncols=True, smoothing=0.1)

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        first_batch = self._first is None
        if first_batch:
            self._first = (now, self.done)
        if self._bar is not None:
            if first_batch:  # its time, mostly the model's warm-up, left out of the bar's rate, as of the lines'
                update_leaving_out_the_time_so_far(self._bar, n)
            else:
                self._bar.update(n)
            return
        if not self.quiet and now - self._last >= self.every:
            self._last = now
            print(self.line(now), file=sys.stderr, flush=True)

    def line(self, now: float) -> str:
        """``processed 120/3000 frames (4.1 fps, ETA 11:42)``; pictures count per second as ``/s``.

        The rate and ETA count from the first batch on: its time holds the model's warm-up (a first run's 3:54 ETA
        for 24 s of work), so until a second batch lands the line gives the rate so far and no ETA."""
        steady = self._first is not None and self.done > self._first[1]
        t0, done0 = self._first if steady and self._first is not None else (self._t0, 0)
        fps = (self.done - done0) / max(now - t0, 1e-9)
        of = f"/{self.total}" if self.total else ""
        eta = ""
        if self.total and fps > 0 and steady:
            left = int((self.total - self.done) / fps)
            eta = f", ETA {left // 3600:d}:{left % 3600 // 60:02d}:{left % 60:02d}"
        rate = f"{fps:.1f} fps" if self.unit == "frames" else f"{fps:.1f}/s"
        return f"processed {self.done}{of} {self.unit} ({rate}{eta})"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
