"""Carry the input's subtitle tracks and chapters into a video output, as FFmpeg would remux them.

Subtitle packets are copied with their timestamps (the video keeps the source's timestamps too),
interleaved as the video is written, so memory stays bounded. A track the output's container
cannot hold (SubRip or ASS into MP4, anything but WebVTT into WebM, MP4's mov_text into
Matroska) is dropped with a warning naming a container that keeps it: converting between
subtitle formats is a job for ffmpeg, not for a segmentation tool. Chapters are copied as they are.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator, Optional

import av

from birefvid.errors import SinkError

log = logging.getLogger(__name__)

# seconds of subtitles muxed ahead of the video written so far (as for audio)
LEAD_S = 0.5
# where a dropped subtitle codec can go instead
_KEPT_IN = {"mov_text": ".mp4 or .mov"}
_METADATA = ("language", "title")


def _describe(stream: Any) -> str:
    language = stream.metadata.get("language")
    return f"{stream.codec_context.name}{', ' + language if language else ''}"


def source_chapters(path: str | Path) -> list[dict[str, Any]]:
    """The chapters of ``path`` (``[]`` when it has none or is not a container, e.g. an image folder)."""
    try:
        with av.open(str(path)) as container:
            return list(container.chapters())
    except (av.FFmpegError, OSError, ValueError):
        return []


class SubtitleTracks:
    """Every subtitle stream of ``src`` that ``out`` (before its header is written) can hold, copied in order."""

    def __init__(self, src: str | Path, out: av.container.OutputContainer, target: str | Path) -> None:
        self._in: Optional[av.container.InputContainer] = None
        self._out = out
        self._map: dict[int, Any] = {}  # source stream index -> output stream
        self._pending: Optional[av.Packet] = None
        self._closed = False
        try:
            self._in = av.open(str(src))
        except (av.FFmpegError, OSError, ValueError):
            return  # not a container (an image folder or pattern): nothing to carry
        try:
            self._add_streams(Path(target))
            self._packets: Iterator[av.Packet] = self._in.demux(*(self._in.streams[i] for i in self._map)) if self._map else iter(())
        except Exception:
            self.close()
            raise

    def _add_streams(self, target: Path) -> None:
        assert self._in is not None
        for number, stream in enumerate(self._in.streams.subtitles, 1):
            try:
                copied = self._out.add_stream_from_template(stream)
            except ValueError:  # PyAV's "'mp4' format does not support 'subrip' codec"
                codec = stream.codec_context.name
                instead = _KEPT_IN.get(codec, ".mkv")
                log.warning("%s: subtitle track %d (%s) cannot go into %s and is dropped; write %s to keep it",
                            target, number, _describe(stream), target.suffix or "this output", instead)  # fmt: skip
                continue
            for key in _METADATA:
                if key in stream.metadata:
                    copied.metadata[key] = stream.metadata[key]
            self._map[stream.index] = copied
            log.info("copying %s subtitles from %s", _describe(stream), self._in.name)

    @property
    def count(self) -> int:
        """Subtitle tracks carried into the output."""
        return len(self._map)

    def _next(self) -> Optional[av.Packet]:
        for packet in self._packets:
            if packet.dts is None and packet.pts is None:
                continue  # a demuxer's end-of-stream marker
            return packet
        return None

    def write_until(self, seconds: Optional[float]) -> None:
        """Mux subtitles up to ``seconds`` (plus a short lead); ``None`` means everything that is left."""
        if self._closed or not self._map:
            return
        while True:
            if self._pending is None:
                self._pending = self._next()
                if self._pending is None:
                    return
            packet = self._pending
            ts = packet.pts if packet.pts is not None else packet.dts
            if seconds is not None and float(ts * packet.time_base) > seconds + LEAD_S:
                return
            self._pending = None
            packet.stream = self._map[packet.stream.index]
            try:
                self._out.mux(packet)
            except av.FFmpegError as e:
                raise SinkError(f"copying a subtitle packet at {float(ts * packet.time_base):.3f} s failed: {e}") from e

    def finish(self) -> None:
        """Mux the subtitles that are left."""
        self.write_until(None)

    def close(self) -> None:
        """Close the subtitle input (idempotent); the output container belongs to the sink."""
        if self._closed:
            return
        self._closed = True
        if self._in is not None:
            self._in.close()
