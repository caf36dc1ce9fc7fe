"""Record live pictures to a video file at the source's own timing, with the file writer the batch mode uses.

The encoder table, colour tagging and write-then-rename come from ``choose_encoder`` and
``VideoFileSink`` (``AnimatedImageSink`` for a GIF, WebP or APNG); this adapter maps live picture kinds onto output kinds, stamps each picture's
``t`` as its pts in milliseconds, and picks the fast end of each encoder's presets, since a live
recording has to keep up with the camera.
"""

from __future__ import annotations

import dataclasses
import logging
from fractions import Fraction
from pathlib import Path
from typing import Optional, Union

import numpy as np

from birefvid.errors import SinkError
from birefvid.frames import StreamInfo
from birefvid.io.animated_sink import ANIMATED_MUXERS, AnimatedImageSink
from birefvid.io.atomic import check_target
from birefvid.io.base import Sink
from birefvid.io.formats import EncoderSpec, choose_encoder
from birefvid.io.live_audio import LiveAudioFeed
from birefvid.io.live_base import LiveSink, picture_kind
from birefvid.io.video_sink import VideoFileSink

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 1000)  # Matroska/WebM store milliseconds anyway; MP4/MOV take it as the track timescale
OUTPUT_KIND = {"rgb": "rgb", "rgba": "alpha", "gray": "mask"}
# encoder options that trade file size for speed: a live recording must encode in real time
_LIVE_SPEED = {
    "libx264": {"preset": "veryfast"},
    "libx265": {"preset": "veryfast"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8"},
}


def live_encoder(path: Path, kind: str, width: int, height: int, preset: Optional[str] = None) -> EncoderSpec:
    """The batch mode's encoder choice for ``path``, switched to its real-time speed settings.

    ``preset`` (``--preset``: x264/x265 ``ultrafast``..``placebo``, NVENC ``p1``-``p7``) replaces the
    live default; a codec without presets (VP9, FFV1, ProRes) raises SinkError saying so.
    """
    spec = choose_encoder(path, OUTPUT_KIND[kind], width, height, preset=preset)
    faster = dict(_LIVE_SPEED.get(spec.codec, {}))
    if preset is not None:
        faster.pop("preset", None)  # the one asked for wins
    return dataclasses.replace(spec, options={**spec.options, **faster}) if faster else spec


class RecordingSink(LiveSink):
    """Writes every picture to ``path`` (temporary file renamed on close, removed on abort), with the
    source's sound when an ``audio`` feed is given."""

    accepts = frozenset(OUTPUT_KIND)
    holds_last = False

    def __init__(
        self, path: Union[str, Path], *, width: int, height: int, fps: float, kind: str, overwrite: bool = False,
        preset: Optional[str] = None, audio: Optional[LiveAudioFeed] = None,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self._spec_text = str(path)
        if kind not in OUTPUT_KIND:
            raise SinkError(f"cannot record {kind!r} pictures; expected one of {', '.join(OUTPUT_KIND)}")
        if not fps > 0:
            raise SinkError(f"cannot record {path} at {fps} fps; the rate must be positive")
        self.kind = kind
        spec = live_encoder(self.path, kind, width, height, preset)
        check_target(self.path, overwrite=overwrite, is_dir=False)
        info = StreamInfo(width, height, TIME_BASE, average_rate=Fraction(fps).limit_denominator(1001))
        self._file: Sink
        if spec.muxer in ANIMATED_MUXERS:  # a GIF / WebP / APNG of the session: pictures only
            if audio is not None:
                log.info("%s holds no sound; the recording is pictures only", self.path)
            self._file = AnimatedImageSink(self.path, spec, info)
        else:
            self._file = VideoFileSink(self.path, spec, info, live_audio=audio)
        self._last_pts: Optional[int] = None
        self.frames_written = 0
        log.info("recording %dx%d %s to %s with %s", width, height, kind, self.path, spec.codec)

    @property
    def name(self) -> str:
        return self._spec_text

    def _send(self, picture: np.ndarray, t: float) -> None:
        got = picture_kind(picture)
        if got != self.kind:
            raise ValueError(f"{self.path} records {self.kind} pictures, got {got}")
        pts = round(t / TIME_BASE)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # two pictures within one millisecond still get distinct times
        self._file.write(picture[None], [pts])
        self._last_pts = pts
        self.frames_written += 1

    def _close(self) -> None:
        self._file.close()

    def _abort(self) -> None:
        self._file.abort()
