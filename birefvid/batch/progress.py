"""Progress of a batch across workers: videos, chunks and frames done, fps; a terminal line and JSON lines per event.

Frames count as done while their chunk runs (``running``: each worker reports how many frames
of its chunk are encoded so far), so a long chunk shows progress before it finishes; a chunk
retried after its worker died starts its count again, and finished chunks ignore late reports.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional, TextIO

from .. import standard_output
from ..errors import ConfigError, SinkError, option
from ..file_names import one_line, open_descriptor, special_file
from ..io.atomic import open_into
from ..json_lines import follow_rotation

log = logging.getLogger(__name__)

ChunkKey = tuple[str, int]  # (video, chunk index)
Listener = Callable[[str, dict[str, Any]], None]  # an event's name and its JSON fields


def _open_json(path: str | Path) -> TextIO:
    """``path`` opened for appending JSON lines (``-``: standard output, as ``--report -``; it made a file named "-");
    a missing or unwritable folder is one line, not a traceback."""
    if str(path) == "-":
        return sys.stdout
    try:
        if special_file(path) or open_descriptor(path) is not None:
            # a named pipe with no reader was waited on for ever, /dev/stdout reopened by name: open_into
            stream = open_into(path, "a", option("progress_json"))
            stream.reconfigure(line_buffering=True)
            return stream
        return open(path, "a", buffering=1)  # noqa: SIM115 - closed in BatchProgress.close()
    except SinkError:
        raise
    except OSError as e:
        raise SinkError(f"cannot open {option('progress_json')} {path}: {e.strerror or e}") from e


class BatchProgress:
    """Counts finished and running chunks and videos; prints a line per event (unless quiet) and appends JSON lines to ``json_path``."""

    def __init__(self, *, quiet: bool = False, json_path: Optional[str | Path] = None, stream: Optional[TextIO] = None, every: float = 10.0,
                 say_failures: bool = False) -> None:
        self.quiet = quiet
        # a watch has no end line to name the inputs it skipped: each is said as it happens, -q or not
        self.say_failures = say_failures
        self.stream = stream if stream is not None else sys.stderr  # looked up now: sys.stderr may have been replaced since import
        self.every = every  # seconds between "frames" lines while chunks run
        self._json: Optional[TextIO] = _open_json(json_path) if json_path else None
        self._json_path = json_path
        self.videos = self.chunks = self.frames = 0
        self.videos_done = self.chunks_done = 0
        self.videos_failed = 0  # inputs skipped as unreadable or damaged: the end's counts said 9/9 done with 2 of 11 skipped
        self.videos_skipped = 0  # of videos_done, those done in an earlier run: a rerun with nothing to do read as 3 videos made
        self._frames_finished = 0  # frames of finished chunks, this run's and earlier runs'
        self._frames_skipped = 0  # of those, done by an earlier run
        self._running: dict[ChunkKey, int] = {}  # frames encoded so far by chunks still running
        self._finished: set[ChunkKey] = set()
        self._t0 = self._last = time.monotonic()
        self.stopped_reason: Optional[str] = None  # set once the run's `stopped` line is said
        # told every event as its JSON line is, on the run's thread: the Python watch's results come from these
        self.listeners: list[Listener] = []
        self._user: Optional[str] = None  # the watch counting on it now (``claim``)
        self._user_lock = threading.Lock()

    def claim(self, user: str) -> None:
        """Reserve this progress for ``user`` (a watch) until ``release``: ConfigError when another holds it. Its counts
        are a run's, and a watch's results and totals are read from them, so two watches sharing one were each given
        the other's videos and counted the other's work."""
        with self._user_lock:
            if self._user is not None:
                raise ConfigError(f"this BatchProgress is in use by {self._user}, still running: give each watch a "
                                  "BatchProgress of its own (one reports one watch's videos and counts)")  # fmt: skip
            self._user = user

    def release(self) -> None:
        with self._user_lock:
            self._user = None

    @property
    def frames_done(self) -> int:
        """Frames encoded: finished chunks (and skipped ones) plus what running chunks have so far."""
        return self._frames_finished + sum(self._running.values())

    @property
    def frames_computed(self) -> int:
        """This run's own frames (skipped work excluded): the numerator of fps."""
        return self.frames_done - self._frames_skipped

    def start(self, videos: int, chunks: int, frames: int, workers: int, where: str) -> None:
        """A run begins: every count starts from nothing (a watch runs one after another with the same progress)."""
        self.videos, self.chunks, self.frames = videos, chunks, frames
        self.videos_done = self.chunks_done = self.videos_failed = self.videos_skipped = 0
        self.stopped_reason = None
        self._frames_finished = self._frames_skipped = 0
        self._running.clear()
        self._finished.clear()
        self._t0 = self._last = time.monotonic()
        on = f"on {workers} worker(s) ({where})" if workers else f"({where})"  # no worker: every chunk was done before
        counts = ", ".join(_counted(n, unit) for n, unit in ((videos, "video"), (chunks, "chunk"), (frames, "frame")))
        self._emit("start", f"batch: {counts} {on}", workers=workers, where=where)

    def skipped_video(self, name: str, frames: int, chunks: int) -> None:
        self.videos_done += 1
        self.videos_skipped += 1
        self.chunks_done += chunks
        self._frames_finished += frames
        self._frames_skipped += frames
        self._emit("video_skipped", f"{name}: done in an earlier run, skipped", video=name)

    def unreadable_video(self, source: str, why: str) -> None:
        """An input that could not be read (not a video, damaged, no video stream): skipped, the rest go on."""
        self.videos_failed += 1
        self._emit("video_unreadable", f"skipped: {why}", always=self.say_failures, input=source, error=why)

    def failed_video(self, name: str, source: str, why: str) -> None:
        """A video whose data turned out damaged while a chunk decoded: its other chunks are skipped, the rest go on."""
        self.videos_failed += 1
        self._emit("video_failed", f"{name}: skipped: {why}", always=self.say_failures, video=name, input=source, error=why)

    def skipped_chunk(self, name: str, index: int, frames: int) -> None:
        self.chunks_done += 1
        self._frames_finished += frames
        self._frames_skipped += frames
        self._finished.add((name, index))
        self._emit("chunk_skipped", f"{name} chunk {index}: done in an earlier run, skipped", video=name, chunk=index)

    def running(self, name: str, index: int, frames: int) -> None:
        """A running chunk has encoded ``frames`` of its frames so far; a line at most every ``every`` seconds."""
        if (name, index) in self._finished:
            return  # a report that arrived after the chunk finished
        self._running[(name, index)] = frames
        now = time.monotonic()
        if now - self._last >= self.every:
            self._emit("frames", f"{len(self._running)} chunk(s) running")

    def retried_chunk(self, name: str, index: int, why: str) -> None:
        """A chunk whose worker was lost mid-way (its process killed, its Ray node gone) is run again from its start."""
        self._running.pop((name, index), None)
        self._emit("chunk_retried", f"{name} chunk {index}: {why}", video=name, chunk=index, reason=why)

    def recount(self, planned: int, counted: int) -> None:
        """A video read whole had ``counted`` frames where ``planned`` were estimated from its header: the total follows."""
        self.frames += counted - planned

    def chunk_done(self, name: str, index: int, frames: int, seconds: float, worker: Optional[int] = None) -> None:
        self._running.pop((name, index), None)
        self._finished.add((name, index))
        self.chunks_done += 1
        self._frames_finished += frames
        by = f" on worker {worker}" if worker is not None else ""
        self._emit("chunk_done", f"{name} chunk {index}: {frames} frames in {seconds:.1f} s{by}", video=name, chunk=index,
                   chunk_frames=frames, chunk_seconds=round(seconds, 3), worker=worker)  # fmt: skip

    def video_done(self, name: str, output: str) -> None:
        self.videos_done += 1
        self._emit("video_done", f"{name}: wrote {output}", video=name, output=output)

    def finish(self) -> dict[str, Any]:
        """The run's totals (also the last JSON line)."""
        summary = self._counts()
        failed = f", {self.videos_failed} input{'s' if self.videos_failed > 1 else ''} failed" if self.videos_failed else ""
        if self.videos_skipped and self.videos_skipped == self.videos_done == self.videos:
            # a rerun of a finished batch: "3/3 videos, 0 frames computed" read as if it had made them again
            earlier = "the only video was" if self.videos == 1 else f"all {self.videos} videos were"
            self._emit("end", f"batch done: nothing left to do, {earlier} done in an earlier run{failed}")
            return summary
        earlier = f" ({self.videos_skipped} done in an earlier run)" if self.videos_skipped else ""
        self._emit("end", f"batch done: {self.videos_done}/{self.videos} videos{earlier}{failed}, {self.frames_computed} frames computed in {summary['seconds']:.1f} s ({summary['fps']:.2f} fps)")
        return summary

    def stopped(self, why: str) -> None:
        """The run ended early (a signal, an error): the last line and JSON line say so and how far it got,
        where a log watcher would otherwise see the last frame count and take the run for still going."""
        self.stopped_reason = why
        self._emit("stopped", f"batch stopped ({why}): {self.videos_done}/{self.videos} videos done; a rerun of the same command resumes", reason=why)

    def watch_event(self, event: str, text: str, **fields: Any) -> None:
        """A watch's own line (``watching``, ``video_seen``, ``watch_end``...), without a run's counts: between runs they
        describe the last one, not the watch; ``fields`` carry the watch's. A ``video_failed`` one is said under -q too."""
        self._write(event, text, fields, always=event == "video_failed" and self.say_failures)

    def _counts(self) -> dict[str, Any]:
        seconds = time.monotonic() - self._t0
        return {
            "videos_done": self.videos_done, "videos": self.videos, "videos_failed": self.videos_failed, "videos_skipped": self.videos_skipped, "chunks_done": self.chunks_done, "chunks": self.chunks,
            "chunks_running": len(self._running), "frames_done": self.frames_done, "frames": self.frames,
            "frames_computed": self.frames_computed, "seconds": round(seconds, 3),
            "fps": round(self.frames_computed / seconds, 3) if seconds > 0 else 0.0,
        }  # fmt: skip

    def _emit(self, event: str, text: str, *, always: bool = False, **fields: Any) -> None:
        self._last = time.monotonic()
        counts = self._counts()
        line = (f"[videos {counts['videos_done']}/{counts['videos']}, chunks {counts['chunks_done']}/{counts['chunks']}, "
                f"frames {counts['frames_done']}/{counts['frames']}, {counts['fps']:.1f} fps] {text}")  # fmt: skip
        self._write(event, line, {**fields, **counts}, always=always)

    def _write(self, event: str, line: str, fields: dict[str, Any], *, always: bool = False) -> None:
        """``line`` on the terminal (unless quiet and not ``always``), the event with ``fields`` as a JSON line, and to
        each listener (what one raises ends the run, as a ``process_video`` progress function's does)."""
        if not self.quiet or always:  # one line, a name's line break as \n (it split the line); the JSON keeps the name
            print(one_line(line), file=self.stream, flush=True)
        self._write_json(event, fields)
        for listener in self.listeners:
            listener(event, fields)

    def _write_json(self, event: str, fields: dict[str, Any]) -> None:
        """The event as a JSON line, where ``json_path`` asked for them."""
        if self._json is not None:
            if self._json is not sys.stdout and self._json_path is not None:  # a watch runs for weeks: logrotate moves its file
                path = self._json_path
                self._json = follow_rotation(self._json, path, lambda: _open_json(path))
            try:
                self._json.write(json.dumps({"event": event, "time": round(time.time(), 3), **fields}) + "\n")
                self._json.flush()  # line-buffered as a file; standard output into a pipe is not
            except OSError as e:  # a full disk, say: the videos matter more than their progress lines
                if self._json is sys.stdout and isinstance(e, BrokenPipeError):  # its reader left (`| head -1`), as live's --stats-json -
                    log.warning("%s -: standard output's reader has gone; the batch goes on without its JSON lines", option("progress_json"))
                    self._drop_json()
                    return
                log.warning("%s stopped: cannot write it (%s); the batch goes on", option("progress_json"), e.strerror or e)
                self._drop_json()

    def _drop_json(self) -> None:
        json_file, self._json = self._json, None
        if json_file is sys.stdout:  # left open: the CLI flushes it at exit
            with contextlib.suppress(OSError):
                json_file.flush()
            standard_output.settle()  # the warning said the lines stop: the batch's own exit status stands
        elif json_file is not None:
            try:
                json_file.close()
            except OSError:  # its buffer could not be written either
                pass

    def close(self) -> None:
        self._drop_json()


def _counted(n: int, unit: str) -> str:
    """``1 video``, ``2 videos``: the start line read "1 videos, 1 chunks" for a single clip, the common watch-folder case."""
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"
