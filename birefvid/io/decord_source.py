"""Decode a video with decord (optional extra) behind the same Source interface.

Limits: decord reports frame times as float seconds counted from the stream's start, which are
converted back to pts in the stream's time base (read with PyAV) by rounding and adding that start
(a Matroska file's B-frame delay, an MPEG-TS's 1.4 s or 10 h, a video that starts after its sound);
that is exact for ordinary time bases but not guaranteed for time bases finer than double precision. decord 0.6.0 turns rotated videos upright
itself (90, 180, 270 at 128x96: PyAV's pictures) but mis-sizes others (at 64x48 it fails at frame 0), so a
rotated video is read only when decord's first picture is PyAV's, else refused. Colour conversion is decord's own. The
stream's facts (pixel aspect, timecode, tags) come from PyAV. An MP4 whose edit list hides leading
frames (a cut made with ``ffmpeg -ss -c copy``) is refused too: decord 0.6 returns the shown
pictures under the hidden frames' timestamps and pads the end with repeats; so is a Matroska file whose leading
frames are timed before 0, which decord gives no time. So are MPEG-TS/PS files
(decord seeks by frame index, which they lack: wrong frames, or a failure at frame 0), video with its
own alpha (decord gives RGB only) and codecs decord's own FFmpeg lacks (AV1), each in one line.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Optional

import av
import numpy as np

from birefvid.errors import ConfigError, SourceError, option
from birefvid.frames import Frame, StreamInfo
from birefvid.io.base import Source
from birefvid.io.interleave import is_indexed
from birefvid.io.untagged import SWS_MATRIX
from birefvid.io.video_source import VideoFileSource, decodable_video_stream, open_container
from birefvid.said_once import first_time_about_file

log = logging.getLogger(__name__)

BATCH = 8  # frames fetched per decord call (bounded memory, fewer FFI round trips)
# mean difference (levels) below which decord's first picture of a rotated video is taken for PyAV's: their 4:2:0
# chroma upsampling differs by up to 7 on a sharp test pattern, a wrong turn by ~175
UPRIGHT_MEAN_ERR = 24.0
# decord's time of a frame without one: FFmpeg's AV_NOPTS_VALUE (-2^63) times the time base, -9.2e15 s at 1/1000
NO_TIME = -1e12


def use_pyav() -> str:
    """The way out of every refusal here: ``use the PyAV decoder (--decoder pyav)``, in the caller's words."""
    return f"use the PyAV decoder ({option('decoder', 'pyav')})"


def import_decord() -> ModuleType:
    """Import decord on first use, or explain how to install it."""
    try:
        return importlib.import_module("decord")
    except ImportError as e:
        raise ConfigError("decord is not installed: pip install 'birefvid[decord]'") from e


@dataclasses.dataclass(frozen=True)
class StreamFacts:
    """What decides whether decord reads a file right: where its video starts, its codec, container and alpha."""

    start: int  # the stream's start time in its time base (0 when undeclared): decord counts its frame times from here
    codec: str  # AV1, HEVC, ... (for messages)
    format_name: str  # FFmpeg's: "mov,mp4,m4a,3gp,3g2,mj2", "mpegts"
    format_title: str  # for messages: MPEG-TS, MPEG-PS, ...
    indexed: bool  # a container with a sample index (MP4, MOV, Matroska, AVI), which decord's frame seeks need
    alpha: bool  # the video carries its own transparency (ProRes 4444, VP9 with alpha), which decord drops


def stream_facts(path: Path) -> StreamFacts:
    """Read with PyAV the facts of the video stream FFmpeg would convert."""
    with open_container(path) as container:
        stream = decodable_video_stream(container, path)
        cc = stream.codec_context
        alpha = any(c.is_alpha for c in av.VideoFormat(cc.pix_fmt).components) if cc.pix_fmt else False
        return StreamFacts(start=stream.start_time or 0, codec=cc.codec.canonical_name.upper(), format_name=container.format.name,
                           format_title=(container.format.long_name or container.format.name).split(" (")[0],
                           indexed=is_indexed(container), alpha=alpha or alpha_decoder_wanted(stream))  # fmt: skip


def alpha_decoder_wanted(stream: av.video.stream.VideoStream) -> bool:
    """A VP9 stream with WebM's ``alpha_mode`` 1, whose alpha lies beside the picture (see ``alpha_decoder``)."""
    return stream.codec_context.name == "vp9" and stream.metadata.get("alpha_mode", stream.metadata.get("ALPHA_MODE")) == "1"


def refusal(facts: StreamFacts) -> Optional[str]:
    """Why decord 0.6 would decode this stream wrongly, as a clause, or None."""
    if not facts.indexed:  # measured: an MPEG-PS gave frame 12 as frame 0, an MPEG-TS with B-frames failed at frame 0
        return f"is {facts.format_title}, a container without a frame index, where decord 0.6 seeks to the wrong frames"
    if facts.alpha:
        return "carries its own alpha (transparency), which decord 0.6 drops"
    return None


class DecordSource(Source):
    """Frames decoded by decord's VideoReader, with pts recovered in the stream's time base."""

    def __init__(self, path: str | Path, input_colors: str = "auto") -> None:
        """``input_colors``: as ``VideoFileSource``'s, but decord reads a video that names no matrix as BT.601 only."""
        super().__init__()
        decord = import_decord()
        self.path = Path(path)
        # PyAV validates the file, reports rotation, time base and colour tags in our usual words
        with VideoFileSource(self.path, input_colors=input_colors) as probe:
            info, rotation, mirrored, first_pts = probe.info, probe.rotation, probe.mirrored, probe.first_pts
            self.skipped = probe.skipped  # a damaged Matroska Cluster: refuse_skipped refuses it as for PyAV
            info = self._as_decord_reads(info, probe.assumed_matrix, input_colors)
            upright = next(iter(probe)).image if rotation or mirrored else None  # what decord's first picture must look like
        facts = stream_facts(self.path)
        self._start = facts.start
        self.format_name, self.shown = facts.format_name, self.path  # for refuse_cut_off, as a VideoFileSource
        why = refusal(facts)
        if why:
            raise SourceError(f"{self.path} {why}; {use_pyav()}")
        try:
            self._reader = decord.VideoReader(str(self.path), ctx=decord.cpu(0))
        except (RuntimeError, decord.DECORDError) as e:
            if "cannot find video stream" in str(e):  # decord's own FFmpeg has no decoder for it (AV1 in 0.6)
                raise SourceError(f"{self.path}: decord cannot decode its {facts.codec} video; {use_pyav()}") from e
            raise SourceError(f"{self.path} is not a readable video (decord: {e})") from e
        self._count = len(self._reader)
        if upright is not None and not self._turns_upright(upright, decord):
            tag = "a display matrix that mirrors it" if mirrored else f"a {rotation} degree rotation tag"
            raise SourceError(f"{self.path} has {tag}, which decord 0.6 decodes wrongly here; {use_pyav()}")
        untimed = self._untimed_frames()
        if untimed:  # not an edit list's hidden frames: Matroska has none, and PyAV shows these frames
            raise SourceError(f"{self.path}: its first {untimed} frames are timed before 0 (negative timestamps), which decord 0.6 "
                              f"reads as frames without a time; {use_pyav()}")  # fmt: skip
        hidden = self._hidden_frames(info.time_base, first_pts)
        if hidden:
            raise SourceError(
                f"{self.path} hides its first {hidden} frames behind an edit list (a cut made with ffmpeg -ss -c copy), "
                f"which decord 0.6 decodes with the wrong timestamps; {use_pyav()}"
            )
        self._info = dataclasses.replace(
            info,
            average_rate=info.average_rate or Fraction(self._reader.get_avg_fps()).limit_denominator(1001),
            frame_count=self._count,
        )

    def _as_decord_reads(self, info: StreamInfo, assumed: Optional[int], input_colors: str) -> StreamInfo:
        """``info`` with the matrix decord reads an untagged video with: BT.601, as FFmpeg's swscale, whatever its size.

        An untagged HD video, which players show as BT.709, keeps its BT.601 reading and stays untagged, as before
        ``--input-colors``, with a warning; asked for BT.709 explicitly, decord cannot: refused."""
        if assumed is None or SWS_MATRIX.get(assumed) == "ITU601":
            return info
        if input_colors != "auto":
            raise SourceError(f"{self.path} names no colour matrix, which decord 0.6 reads as BT.601 only, not "
                              f"{option('input_colors', input_colors)}; {use_pyav()}")  # fmt: skip
        if first_time_about_file(self.path, "decord colours"):
            log.warning("%s is HD video that names no colour matrix, which players show as BT.709; decord 0.6 reads it as "
                        "BT.601 (saturated colours up to 40 levels off, outputs untagged); %s", self.path, use_pyav())  # fmt: skip
        return dataclasses.replace(info, colorspace=None, matrix_assumed=False)  # BT.601, as FFmpeg reads it: nothing assumed

    def _turns_upright(self, upright: np.ndarray, decord: ModuleType) -> bool:
        """Whether decord's first picture of a rotated video is PyAV's upright one: decord 0.6.0 turns most upright,
        but mis-sizes some (a 64x48 clip's turned pictures were allocated 64x64, and decoding failed)."""
        try:
            first = self._reader.get_batch([0]).asnumpy()[0]
        except (RuntimeError, decord.DECORDError):
            return False
        if first.shape != upright.shape:
            return False
        return float(np.abs(first.astype(np.int16) - upright.astype(np.int16)).mean()) < UPRIGHT_MEAN_ERR

    def _untimed_frames(self) -> int:
        """How many frames decord gives no time (FFmpeg's 'no pts' times the time base): those a Matroska file times
        before 0, which it stores without a timestamp (``-ss`` cuts with ``-avoid_negative_ts disabled``)."""
        if self._count == 0:
            return 0
        times = self._reader.get_frame_timestamp(list(range(self._count)))[:, 0]
        return int(np.count_nonzero(times < NO_TIME))

    def _hidden_frames(self, tb: Fraction, first_pts: int | None) -> int:
        """How many leading frames come before the first one shown (an edit list hides them)."""
        if first_pts is None or self._count == 0:
            return 0
        times = self._reader.get_frame_timestamp(list(range(self._count)))[:, 0]
        return sum(1 for seconds in times if self._pts(seconds, tb) < first_pts)

    def _pts(self, seconds: float, tb: Fraction) -> int:
        """decord's time of a frame (seconds from the stream's start) as a pts in ``tb``, the stream's own."""
        return round(Fraction(float(seconds)) / tb) + self._start

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
                pts = self._pts(seconds, tb)
                yield Frame(image=image, pts=pts, time_base=tb, index=i)

    def _close(self) -> None:
        self._reader = None  # decord frees its decoder when the reader is collected
