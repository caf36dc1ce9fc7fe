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
    Damaged frames are tolerated (``strict=False``): a background glitch should not stop a job.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.loops = 0
        self._source = VideoFileSource(self.path, strict=False)
        self._frames: Iterator = iter(self._source)
        self.size = (self._source.info.width, self._source.info.height)
        self.pixel_aspect = self._source.info.sample_aspect_ratio  # None: square pixels

    def next_frame(self) -> np.ndarray:
        """The next frame (H, W, 3) uint8 RGB, wrapping to the first one after the last."""
        for _ in range(2):
            frame = next(self._frames, None)
            if frame is not None:
                return frame.image
            self.loops += 1
            log.debug("background video %s ended; looping (loop %d)", self.path, self.loops)
            self._source.close()
            self._source = VideoFileSource(self.path, strict=False)
            self._frames = iter(self._source)
        raise SourceError(f"background video has no decodable frames: {self.path}")

    def close(self) -> None:
        """Close the decoder; safe to call more than once."""
        self._source.close()
