"""Progress of a batch across workers: videos, chunks and frames done, fps; a terminal line and JSON lines per event."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Optional, TextIO


class BatchProgress:
    """Counts finished chunks and videos; prints a line per event (unless quiet) and appends JSON lines to ``json_path``."""

    def __init__(self, *, quiet: bool = False, json_path: Optional[str | Path] = None, stream: TextIO = sys.stderr) -> None:
        self.quiet = quiet
        self.stream = stream
        self._json: Optional[TextIO] = open(json_path, "a", buffering=1) if json_path else None  # noqa: SIM115 - closed in close()
        self.videos = self.chunks = self.frames = 0
        self.videos_done = self.chunks_done = self.frames_done = 0
        self.frames_computed = 0  # this run's own work (skipped chunks excluded), for fps
        self._t0 = time.monotonic()

    def start(self, videos: int, chunks: int, frames: int, workers: int, where: str) -> None:
        self.videos, self.chunks, self.frames = videos, chunks, frames
        self._t0 = time.monotonic()
        self._emit("start", f"batch: {videos} videos, {chunks} chunks, {frames} frames on {workers} worker(s) ({where})", workers=workers, where=where)

    def skipped_video(self, name: str, frames: int, chunks: int) -> None:
        self.videos_done += 1
        self.chunks_done += chunks
        self.frames_done += frames
        self._emit("video_skipped", f"{name}: done in an earlier run, skipped", video=name)

    def skipped_chunk(self, name: str, index: int, frames: int) -> None:
        self.chunks_done += 1
        self.frames_done += frames
        self._emit("chunk_skipped", f"{name} chunk {index}: done in an earlier run, skipped", video=name, chunk=index)

    def chunk_done(self, name: str, index: int, frames: int, seconds: float, worker: Optional[int] = None) -> None:
        self.chunks_done += 1
        self.frames_done += frames
        self.frames_computed += frames
        by = f" on worker {worker}" if worker is not None else ""
        self._emit("chunk_done", f"{name} chunk {index}: {frames} frames in {seconds:.1f} s{by}", video=name, chunk=index,
                   chunk_frames=frames, chunk_seconds=round(seconds, 3), worker=worker)  # fmt: skip

    def video_done(self, name: str, output: str) -> None:
        self.videos_done += 1
        self._emit("video_done", f"{name}: wrote {output}", video=name, output=output)

    def finish(self) -> dict[str, Any]:
        """The run's totals (also the last JSON line)."""
        summary = self._counts()
        self._emit("end", f"batch done: {self.videos_done}/{self.videos} videos, {self.frames_computed} frames computed in {summary['seconds']:.1f} s ({summary['fps']:.2f} fps)")
        return summary

    def _counts(self) -> dict[str, Any]:
        seconds = time.monotonic() - self._t0
        return {
            "videos_done": self.videos_done, "videos": self.videos, "chunks_done": self.chunks_done, "chunks": self.chunks,
            "frames_done": self.frames_done, "frames": self.frames, "frames_computed": self.frames_computed,
            "seconds": round(seconds, 3), "fps": round(self.frames_computed / seconds, 3) if seconds > 0 else 0.0,
        }  # fmt: skip

    def _emit(self, event: str, text: str, **fields: Any) -> None:
        counts = self._counts()
        if not self.quiet:
            line = (f"[videos {counts['videos_done']}/{counts['videos']}, chunks {counts['chunks_done']}/{counts['chunks']}, "
                    f"frames {counts['frames_done']}/{counts['frames']}, {counts['fps']:.1f} fps] {text}")  # fmt: skip
            print(line, file=self.stream, flush=True)
        if self._json is not None:
            self._json.write(json.dumps({"event": event, "time": round(time.time(), 3), **fields, **counts}) + "\n")

    def close(self) -> None:
        if self._json is not None:
            self._json.close()
            self._json = None
