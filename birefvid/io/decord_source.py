"""Decode a video with decord (optional extra) behind the same Source interface.

Limits: decord reports frame times as float seconds, which are converted back to pts in the
stream's time base (read with PyAV) by rounding; that is exact for ordinary time bases but not
guaranteed for time bases finer than double precision. decord 0.6 mis-sizes rotated videos, so
those are refused with a pointer to the PyAV decoder. Colour conversion is decord's own. The
stream's facts (pixel aspect, timecode, tags) come from PyAV. An MP4 whose edit list hides leading
frames (a cut made with ``ffmpeg -ss -c copy``) is refused too: decord 0.6 returns the shown
pictures under the hidden frames' timestamps and pads the end with repeats.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import ModuleType

from birefvid.errors import ConfigError, SourceError
from birefvid.frames import Frame, StreamInfo
from birefvid.io.base import Source
from birefvid.io.video_source import VideoFileSource

log = logging.getLogger(__name__)

BATCH = 8  # frames fetched per decord call (bounded memory, fewer FFI round trips)


def import_decord() -> ModuleType:
    """Import decord on first use, or explain how to install it."""
    try:
        return importlib.import_module("decord")
    except ImportError as e:
        raise ConfigError("decord is not installed: pip install 'birefvid[decord]'") from e


class DecordSource(Source):
    """Frames decoded by decord's VideoReader, with pts recovered in the stream's time base."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        decord = import_decord()
        self.path = Path(path)
        # PyAV validates the file, reports rotation, time base and colour tags in our usual words
        with VideoFileSource(self.path) as probe:
            info, rotation, first_pts = probe.info, probe.rotation, probe.first_pts
        if rotation:
            raise SourceError(
                f"{self.path} has a {rotation} degree rotation tag, which decord 0.6 cannot decode correctly; "
                "use the PyAV decoder (decoder='pyav')"
            )
        try:
            self._reader = decord.VideoReader(str(self.path), ctx=decord.cpu(0))
        except (RuntimeError, decord.DECORDError) as e:
            raise SourceError(f"{self.path} is not a readable video (decord: {e})") from e
        self._count = len(self._reader)
        hidden = self._hidden_frames(info.time_base, first_pts)
        if hidden:
            raise SourceError(
                f"{self.path} hides its first {hidden} frames behind an edit list (a cut made with ffmpeg -ss -c copy), "
                "which decord 0.6 decodes with the wrong timestamps; use the PyAV decoder (decoder='pyav')"
            )
        self._info = dataclasses.replace(
            info,
            average_rate=info.average_rate or Fraction(self._reader.get_avg_fps()).limit_denominator(1001),
            frame_count=self._count,
        )

    def _hidden_frames(self, tb: Fraction, first_pts: int | None) -> int:
        """How many leading frames come before the first one shown (an edit list hides them)."""
        if first_pts is None or self._count == 0:
            return 0
        times = self._reader.get_frame_timestamp(list(range(self._count)))[:, 0]
        return sum(1 for seconds in times if round(Fraction(float(seconds)) / tb) < first_pts)

    @property
    def info(self) -> StreamInfo:
        return self._info

    def __iter__(self) -> Iterator[Frame]:
        tb = self._info.time_base
        decord = import_decord()
        for start in range(0, self._count, BATCH):
            if self.closed:
                return
            indices = list(range(start, min(start + BATCH, self._count)))
            try:
                images = self._reader.get_batch(indices).asnumpy()
                times = self._reader.get_frame_timestamp(indices)[:, 0]
            except (RuntimeError, decord.DECORDError) as e:
                raise SourceError(f"{self.path}: decord failed at frame {start}: {e}") from e
            for i, image, seconds in zip(indices, images, times):
                pts = round(Fraction(float(seconds)) / tb)
                yield Frame(image=image, pts=pts, time_base=tb, index=i)

    def _close(self) -> None:
        self._reader = None  # decord frees its decoder when the reader is collected
