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
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Optional

import av

from birefvid.errors import SinkError, SourceError
from birefvid.io.base import open_media
from birefvid.io.interleave import InterleavedPackets, carry_track_tags

if TYPE_CHECKING:
    from birefvid.io.trim import TimeWindow

log = logging.getLogger(__name__)

# where a dropped subtitle codec can go instead
_KEPT_IN = {"mov_text": ".mp4 or .mov"}
_METADATA = ("language", "title")


def _describe(stream: Any) -> str:
    language = stream.metadata.get("language")
    return f"{stream.codec_context.name}{', ' + language if language else ''}"


def has_subtitles(path: str | Path) -> bool:
    """True when ``path`` can be opened and holds at least one subtitle stream."""
    try:
        with open_media(path) as container:
            return bool(container.streams.subtitles)
    except SourceError:  # a URL that stopped answering (see open_media)
        raise
    except (av.FFmpegError, OSError, ValueError):
        return False


def source_chapters(path: str | Path, window: Optional["TimeWindow"] = None) -> list[dict[str, Any]]:
    """The chapters of ``path`` (``[]`` when it has none or is not a container, e.g. an image folder);
    with ``window``, those that overlap it, clipped to it and moved to start with it."""
    try:
        with open_media(path) as container:
            chapters = list(container.chapters())
    except SourceError:  # a URL that stopped answering (see open_media)
        raise
    except (av.FFmpegError, OSError, ValueError):
        return []
    if window is None:
        return chapters
    kept = []
    for chapter in chapters:
        tb = Fraction(chapter["time_base"])
        start, end = chapter["start"], chapter["end"]
        lo, hi = window.ticks(tb), None if window.end is None else round(Fraction(window.end) / tb)
        if end <= lo or (hi is not None and start >= hi):
            continue
        kept.append({**chapter, "start": max(start, lo) - lo, "end": (end if hi is None else min(end, hi)) - lo})
    return kept


class SubtitleTracks(InterleavedPackets):
    """Every subtitle stream of ``src`` that ``out`` (before its header is written) can hold, copied in order."""

    def __init__(self, src: str | Path, out: av.container.OutputContainer, target: str | Path, window: Optional["TimeWindow"] = None) -> None:
        super().__init__(window)
        self._out = out
        self._map: dict[int, Any] = {}  # source stream index -> output stream
        try:
            self._in = open_media(src)
        except (av.FFmpegError, OSError, ValueError):
            return  # not a container (an image folder or pattern): nothing to carry
        try:
            self._add_streams(Path(target))
            if self._map:
                self._demux(*(self._in.streams[i] for i in self._map))
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
            carry_track_tags(stream, copied, _METADATA)
            self._map[stream.index] = copied
            log.info("copying %s subtitles from %s", _describe(stream), self._in.name)
        if self._map and self._out.format.name == "matroska":  # WebM drops attachments; WebVTT needs no fonts
            self._add_attachments(target)

    def _add_attachments(self, target: Path) -> None:
        """Copy the source's attached files (the fonts an ASS track is styled with; without them players
        draw its lines in a fallback font) into a Matroska output, or say which are lost."""
        assert self._in is not None
        for attachment in self._in.streams.attachments:
            try:
                self._out.add_attachment(attachment.name, attachment.mimetype, bytes(attachment.data))
            except (ValueError, av.FFmpegError) as e:
                log.warning("%s: attached file %s (%s) cannot go into %s and is dropped (%s); write .mkv to keep it",
                            target, attachment.name, attachment.mimetype, target.suffix or "this output", e)  # fmt: skip

    def _starts_in_window(self, packet: av.Packet, t: float) -> bool:
        """A cue already showing at the window's start is kept, from the start for the rest of its time; one
        still showing at its end stops there, as the chapters do (it made the file outlast its video)."""
        assert self._window is not None
        start, end = self._window.start, self._window.end
        if t < start - 1e-9:
            if not packet.duration or t + float(packet.duration * packet.time_base) <= start + 1e-9:
                return False
            late = round((start - t) / packet.time_base)
            packet.duration -= late
            self._move(packet, -late)  # to the window's start: moved to 0 with the others
            t = start
        if end is not None and packet.duration and t + float(packet.duration * packet.time_base) > end + 1e-9:
            packet.duration = max(1, round((end - t) / packet.time_base))
        return True

    @property
    def count(self) -> int:
        """Subtitle tracks carried into the output."""
        return len(self._map)

    def _mux(self, packet: av.Packet) -> None:
        at = self._time(packet)
        self._in_order(packet, self._map[packet.stream.index])
        packet.stream = self._map[packet.stream.index]
        try:
            self._out.mux(packet)
        except av.FFmpegError as e:
            raise SinkError(f"copying a subtitle packet at {at:.3f} s failed: {e}") from e

    def finish(self) -> None:
        """Mux the subtitles that are left."""
        self.write_until(None)

