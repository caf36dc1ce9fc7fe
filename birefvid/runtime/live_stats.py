"""Live-mode statistics: source, output and model rates, capture-to-output latency, mask age,
dropped frames and reconnects, over a sliding period and for the whole run.

Printed as one line every few seconds and, with ``--stats-json FILE`` (``-``: standard output), appended as JSON lines
(one object per period, then a final ``"final": true`` summary) for dashboards and tests.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import sys
import threading
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, TextIO

import numpy as np

from .. import standard_output
from ..errors import SinkError, option
from ..file_names import open_descriptor, special_file
from ..io.atomic import open_into
from ..json_lines import follow_rotation

log = logging.getLogger(__name__)


# timings kept per figure for the percentiles: a run of hours would otherwise keep every frame's
# (about 6 MB an hour at 24 fps, for as long as the run lasts); past this a uniform sample is kept
SAMPLES_KEPT = 20_000


class Samples:
    """Timings for percentiles in bounded memory: every value up to ``capacity``, then a uniform sample of them all."""

    def __init__(self, capacity: int = SAMPLES_KEPT, seed: int = 0) -> None:
        self.capacity = capacity
        self.count = 0  # values seen, kept or not
        self._kept = array("d")  # 8 bytes a value, not a list's 32
        self._rng = random.Random(seed)  # seeded: the same run gives the same figures

    def append(self, value: float) -> None:
        """Add ``value``; past ``capacity`` it replaces a kept one with probability capacity/count (reservoir sampling)."""
        self.count += 1
        if len(self._kept) < self.capacity:
            self._kept.append(value)
            return
        slot = self._rng.randrange(self.count)
        if slot < self.capacity:
            self._kept[slot] = value

    def __len__(self) -> int:
        """How many values are kept (at most ``capacity``)."""
        return len(self._kept)

    def values(self) -> np.ndarray:
        """The kept values, a copy (the display and model threads go on appending)."""
        # copied by array() under the GIL first: a numpy view of the live array would block its resizing
        # (BufferError in the thread that appends) for as long as numpy held it
        return np.frombuffer(array("d", self._kept), dtype=np.float64)


def _percentile(values: Samples, q: float) -> Optional[float]:
    return None if not len(values) else float(np.percentile(values.values(), q))


def _ms(seconds: Optional[float]) -> Optional[float]:
    return None if seconds is None else round(seconds * 1000.0, 1)


@dataclass
class _Period:
    """What happened since the period began (shown frames, model runs, their timings)."""

    start: float
    captured_at_start: int
    dropped_at_start: int = 0
    shown: int = 0
    model_runs: int = 0
    latencies: Samples = field(default_factory=Samples)
    mask_ages: Samples = field(default_factory=Samples)
    model_seconds: Samples = field(default_factory=Samples)


class LiveStats:
    """Collects timings from the display and model threads; ``emit`` reports one period."""

    def __init__(self, every: float = 5.0, json_path: Optional[str | Path] = None, printer: Optional[Callable[[str], None]] = None) -> None:
        self.every = every
        self.printer = printer
        self._lock = threading.Lock()
        self._json_path = json_path
        # "-": standard output, for a pipe (jq, a dashboard), as `--report -` and `eval --json -`; it made a file named "-"
        self._stdout = str(json_path) == "-"
        # a named pipe (`--stats-json >(jq ...)`, a dashboard's FIFO) or /dev/stdout: its reader may leave, as stdout's
        self._pipe = json_path is not None and not self._stdout and (special_file(json_path) == "a named pipe" or open_descriptor(json_path) is not None)
        try:
            if self._stdout:
                self._json: Optional[TextIO] = sys.stdout
            else:
                # a named pipe with no reader, or /dev/stdout: open_into (open() waited for ever, before any work)
                self._json = open_into(json_path, "a", option("stats_json")) if json_path is not None else None
        except OSError as e:
            raise SinkError(f"{option('stats_json')} {json_path}: cannot write it ({e.strerror or e})") from None
        self._start = time.monotonic()
        self._period = _Period(self._start, 0)
        self._all = _Period(self._start, 0)
        self.repeated = 0  # pictures repeated to displays while the source reconnected
        # of the dropped frames, those a new connection's (a reconnect's, a file loop's) first picture dropped while it
        # waited for its own mask: the model's time, not a machine that cannot keep up
        self.dropped_for_new_connections = 0
        self.model_cap: Optional[float] = None  # --model-fps: the most refreshes a second asked for (None: no cap)
        # the output streams (``down_for``: seconds an outage has lasted, None while working): each line names those down,
        # where an output down for an hour went unsaid once its retry lines had quietened to one a minute
        self.outputs: list[Any] = []

    def begin(self, now: float, source: Any) -> None:
        """Start counting now (the display starts after the model's warm-up on the first frame)."""
        captured = source.frames_captured if source is not None else 0
        dropped = source.dropped if source is not None else 0
        with self._lock:
            self._start = now
            self._period = _Period(now, captured, dropped)
            self._all = _Period(now, captured, dropped)

    def shown(self, captured: float, shown: float, mask_captured: Optional[float]) -> None:
        """A picture of a frame captured at ``captured`` reached every sink at ``shown``."""
        with self._lock:
            for p in (self._period, self._all):
                p.shown += 1
                p.latencies.append(shown - captured)
                if mask_captured is not None:
                    p.mask_ages.append(max(0.0, captured - mask_captured))

    def model_ran(self, seconds: float) -> None:
        """The model finished one frame in ``seconds``."""
        with self._lock:
            for p in (self._period, self._all):
                p.model_runs += 1
                p.model_seconds.append(seconds)

    def due(self, now: float) -> bool:
        return now - self._period.start >= self.every

    def _summary(self, p: _Period, now: float, source: Any) -> dict[str, Any]:
        seconds = max(now - p.start, 1e-9)
        captured = source.frames_captured if source is not None else 0
        return {
            "seconds": round(seconds, 3),
            "source_fps": round((captured - p.captured_at_start) / seconds, 2),
            "output_fps": round(p.shown / seconds, 2),
            # None when no model run finished in the period: a file shown without --realtime can end, and a model slower
            # than the period can pass it, before one does; "0.0 fps" then read as a model that never ran
            "model_fps": round(p.model_runs / seconds, 2) if p.model_runs else None,
            "model_fps_cap": self.model_cap,  # what --model-fps asked for; model_fps is what the model did
            "model_ms_median": _ms(_percentile(p.model_seconds, 50)),
            "latency_ms_median": _ms(_percentile(p.latencies, 50)),
            "latency_ms_p95": _ms(_percentile(p.latencies, 95)),
            "mask_age_ms_median": _ms(_percentile(p.mask_ages, 50)),
            "mask_age_ms_p95": _ms(_percentile(p.mask_ages, 95)),
            "frames_shown": p.shown,
            "dropped": (source.dropped - p.dropped_at_start) if source is not None else 0,
            "reconnects": source.reconnects if source is not None else 0,
            "repeated": self.repeated,
            "dropped_for_new_connections": self.dropped_for_new_connections,
            "state": source.state if source is not None else None,
            "outputs_down": self._outputs_down(),
        }

    def _outputs_down(self) -> dict[str, float]:
        """Each output stream in an outage now, and for how many seconds."""
        down = {}
        for output in self.outputs:
            seconds = output.down_for
            if seconds is not None:
                down[output.name] = round(seconds, 1)
        return down

    def emit(self, now: float, source: Any) -> dict[str, Any]:
        """Report the period that ends now (a line, a JSON line) and start the next one."""
        with self._lock:
            summary = self._summary(self._period, now, source)
            self._period = _Period(now, *((source.frames_captured, source.dropped) if source is not None else (0, 0)))
        self._write(summary)
        if self.printer is not None:
            self.printer(format_line(summary))
        return summary

    def final(self, now: float, source: Any) -> dict[str, Any]:
        """The whole run's figures (also written as the last JSON line, marked ``final``)."""
        with self._lock:
            summary = {**self._summary(self._all, now, source), "final": True}
        self._write(summary)
        return summary

    def _write(self, summary: dict[str, Any]) -> None:
        """Append one JSON line; a full disk or lost folder is one SinkError, once (the file is then given up)."""
        if self._json is None:
            return
        self._follow_rotation()
        try:
            # when the line was written (Unix seconds, as batch's --progress-json): a file read later, a
            # dashboard that joins several cameras' lines or one restarted past a rotation has no other clock
            self._json.write(json.dumps({"time": round(time.time(), 3), **summary}) + "\n")
            self._json.flush()
        except OSError as e:
            self._give_up()
            if self._stdout and isinstance(e, BrokenPipeError):  # its reader left (`| head`, a dashboard restarted):
                # the lines end, not the run: it ended with exit 2 and threw its recordings away
                standard_output.settle()  # said by the warning: the run's own exit status stands, not 141
                log.warning("%s -: standard output's reader has gone; the run goes on without its JSON lines", option("stats_json"))
                return
            if self._pipe and isinstance(e, BrokenPipeError):  # a named pipe's reader left: as standard output's, the
                # lines end, not the run (it ended with exit 2, its recordings thrown away)
                log.warning("%s %s: the pipe's reader has gone; the run goes on without its JSON lines", option("stats_json"), self._json_path)
                return
            raise SinkError(f"{option('stats_json')} {self._json_path}: cannot write it ({e.strerror or e})") from None

    def _follow_rotation(self) -> None:
        """Reopen the file when its name no longer leads to it (logrotate moved or deleted it): ``follow_rotation``."""
        assert self._json is not None and self._json_path is not None
        if self._stdout:  # stdout redirected to a file (`> stats.jsonl`) is no file named "-" to reopen
            return
        path = self._json_path
        self._json = follow_rotation(self._json, path, lambda: open(path, "a", encoding="utf-8"))  # noqa: SIM115

    def _give_up(self) -> None:
        """Drop the JSON file after a failed write: closing it would only try the same write again."""
        handle, self._json = self._json, None
        if handle is not None and not self._stdout:  # standard output stays open: the CLI still flushes it at exit
            with contextlib.suppress(OSError):
                handle.close()

    def close(self) -> None:
        """Close the JSON lines file (its lines were flushed as written)."""
        if self._json is not None:
            self._give_up()


def rate(fps: Optional[float]) -> str:
    """A rate for the stats lines and the summary: ``-`` where nothing was counted (no model run finished)."""
    return "-" if fps is None else f"{fps:.1f}"


def capped(cap: Optional[float]) -> str:
    """`` (at most 10)`` after the model's rate when ``--model-fps`` capped it, so a low rate reads as asked for, not as a slow CPU."""
    return "" if cap is None else f" (at most {cap:g})"


def format_line(s: dict[str, Any]) -> str:
    """``live: source 30.0 fps, output 30.0 fps, model 3.1 fps, latency 12/25 ms (median/p95), ...``."""

    def ms(v: Optional[float]) -> str:
        return "-" if v is None else f"{v:.0f}"

    return (
        f"live: source {s['source_fps']:.1f} fps, output {s['output_fps']:.1f} fps, model {rate(s['model_fps'])} fps{capped(s.get('model_fps_cap'))}, "
        f"latency {ms(s['latency_ms_median'])}/{ms(s['latency_ms_p95'])} ms (median/p95), "
        f"mask age {ms(s['mask_age_ms_median'])} ms, dropped {s['dropped']}, reconnects {s['reconnects']}"
        + "".join(f", output {name} down {seconds:.0f} s" for name, seconds in (s.get("outputs_down") or {}).items())
    )
