"""A video file played over and over: backgrounds loop a short clip under an output of any length."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Optional

import numpy as np

from birefvid.errors import SourceError
from birefvid.io.video_source import VideoFileSource

log = logging.getLogger(__name__)

_SLACK = 1e-3  # seconds: times that name the same instant in two time bases (Matroska rounds to the millisecond)


class LoopingVideoSource:
    """Upright RGB frames of ``path`` forever, reopening the file at its end (more robust than seeking).

    The first frame is decoded on open, so an unreadable file fails here rather than mid-run.
    Damaged frames are kept (``strict=False``, the default): a background glitch should not stop a job.
    """

    def __init__(self, path: str | Path, deep: bool = False) -> None:
        """``deep``: frames come as uint16 RGB (the video's 10 bits and more kept), for a deep output."""
        self.path = Path(path)
        self.loops = 0
        self.deep = deep
        self._source = self._open()
        self._frames: Iterator = iter(self._source)
        self.size = (self._source.info.width, self._source.info.height)
        self.pixel_aspect = self._source.info.sample_aspect_ratio  # None: square pixels
        self.hdr = self._source.info.color_trc in (16, 18)  # PQ or HLG: already an HDR output's kind of signal
        rate = self._source.info.average_rate
        self._step = 1 / float(rate) if rate else 1 / 25  # a frame's duration where its timestamps do not say
        self._shown: Optional[tuple[np.ndarray, float]] = None  # frame_at's picture and its time in its loop
        self._next: Optional[tuple[np.ndarray, float]] = None  # the frame decoded after it, not shown yet
        self._first: Optional[float] = None  # the time of the file's first frame: a loop starts there
        self._loop_start = 0.0  # where the current loop starts on the caller's clock
        self._period = 0.0  # a loop's length, once one has been played
        self._played = 0  # frames shown of the loop under way
        self._still = False  # a loop was one frame: that picture for good, the file not reopened at each step

    def _open(self) -> VideoFileSource:
        source = VideoFileSource(self.path, strict=False)
        if self.deep:
            source.deliver_deep()
        return source

    def next_frame(self) -> np.ndarray:
        """The next frame (H, W, 3) uint8 RGB (uint16 when ``deep``), wrapping to the first one after the last."""
        for _ in range(2):
            frame = next(self._frames, None)
            if frame is not None:
                return frame.deep if self.deep else frame.image
            self.loops += 1
            log.debug("background video %s ended; looping (loop %d)", self.path, self.loops)
            self._source.close()
            self._source = self._open()
            self._frames = iter(self._source)
        raise SourceError(f"background video has no decodable frames: {self.path}")

    def frame_at(self, seconds: float) -> np.ndarray:
        """The frame shown ``seconds`` after the background started (its first frame at 0), by the video's own
        timestamps, looping at its end: a 60 fps background under 30 fps video plays at its speed, not half of it,
        and a variable frame rate one keeps its pauses. ``seconds`` should not go back (frames are decoded forward)."""
        if self._still:
            return self._shown[0]  # type: ignore[index]
        self._skip_loops(seconds)
        while True:  # each pass decodes a frame, starts a loop or returns
            if self._next is None:
                self._next = self._timed_frame()
            if self._next is None:  # the end: the next loop starts where the last frame's time is up
                if self._shown is None:
                    raise SourceError(f"background video has no decodable frames: {self.path}")
                if self._shown[1] + self._step > seconds - self._loop_start + _SLACK:  # the last frame's time is not up
                    return self._shown[0]
                if self._played == 1:  # a one-frame video (a still GIF): reopened and decoded again at each of its steps
                    self._still = True
                    return self._shown[0]
                self._period = self._shown[1] + self._step
                self._loop_start += self._period
                self._skip_loops(seconds)
                self._shown, self._played = None, 0
                self._reopen()
                self._next = self._timed_frame()
                if self._next is None:
                    raise SourceError(f"background video has no decodable frames: {self.path}")
            if self._shown is not None and self._next[1] > seconds - self._loop_start + _SLACK:
                return self._shown[0]
            self._shown, self._next = self._next, None
            self._played += 1

    def _skip_loops(self, seconds: float) -> None:
        """Whole loops before ``seconds`` passed over, once a loop's length is known, rather than decoded (a long
        pause in a variable frame rate video); the loop under way is played to its end still."""
        if self._period and seconds - self._loop_start > 2 * self._period:
            self._loop_start += (math.floor((seconds - self._loop_start) / self._period) - 1) * self._period

    def _timed_frame(self) -> Optional[tuple[np.ndarray, float]]:
        """The next decoded frame and its time from the file's first frame, or None at the end."""
        frame = next(self._frames, None)
        if frame is None:
            return None
        picture = frame.deep if self.deep else frame.image
        if frame.pts is None:  # no timestamp: a frame's duration after the last
            return picture, (self._next or self._shown or (None, -self._step))[1] + self._step
        at = float(frame.pts * Fraction(frame.time_base))
        if self._first is None:
            self._first = at
        return picture, at - self._first

    def _reopen(self) -> None:
        self.loops += 1
        log.debug("background video %s ended; looping (loop %d)", self.path, self.loops)
        self._source.close()
        self._source = self._open()
        self._frames = iter(self._source)

    def close(self) -> None:
        """Close the decoder; safe to call more than once."""
        self._source.close()
