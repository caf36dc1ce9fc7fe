"""A video file played over and over: backgrounds loop a short clip under an output of any length."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from birefvid.errors import SourceError
from birefvid.io.video_source import VideoFileSource

log = logging.getLogger(__name__)


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

    def close(self) -> None:
        """Close the decoder; safe to call more than once."""
        self._source.close()
