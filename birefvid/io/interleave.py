"""Packets of the source's other streams (audio, subtitles), read by a second reader of the source
and muxed in step with the video: each call muxes those up to the video's time plus a short lead,
so memory stays bounded however long the input is."""

from __future__ import annotations

import logging
import math
from fractions import Fraction
from typing import TYPE_CHECKING, Iterator, Optional

import av

from birefvid.io.base import is_url, url_timed_out
from birefvid.io.demuxing import demuxed

if TYPE_CHECKING:
    from birefvid.io.trim import TimeWindow

log = logging.getLogger(__name__)

# seconds of packets muxed ahead of the video written so far (keeps the muxer's interleave queue short)
LEAD_S = 0.5
# a window starting later than this is sought to, this much before its start
SEEK_AFTER_S = 2.0
# containers with a sample index, where a seek lands where it was asked to. MPEG-TS/PS and raw
# streams seek by byte estimate and land seconds away (a TS seek to its own first pts landed 1.2 s
# later), so they are read from their start.
INDEXED_FORMATS = frozenset({"mov", "mp4", "matroska", "webm", "avi"})


def is_indexed(container: av.container.Container) -> bool:
    """Whether ``container``'s format seeks exactly (see ``INDEXED_FORMATS``)."""
    return bool(set(container.format.name.split(",")) & INDEXED_FORMATS)


# flags that describe a picture stream, not a track a player chooses
_NOT_CARRIED = av.stream.Disposition.attached_pic | av.stream.Disposition.timed_thumbnails


def carry_track_tags(source: av.stream.Stream, target: av.stream.Stream, keys: tuple[str, ...] = ("language", "title")) -> None:
    """Give ``target`` the ``keys`` tags of ``source`` and its flags (default, forced, comment ...):
    PyAV's copied streams have none, so Matroska marked no track default and MP4 the first one,
    whichever track the source's player would pick (and a forced subtitle was no longer forced). A MOV/MP4
    track's name (its 'name' atom, which FFmpeg reads as ``name`` and writes from ``title``) is its title:
    a camera's or an edit's "Boom", "Lav 1" were lost in every output."""
    for key in keys:
        value = source.metadata.get(key) or (source.metadata.get("name") if key == "title" else None)
        if value:
            target.metadata[key] = value
    target.disposition = source.disposition & ~_NOT_CARRIED


class InterleavedPackets:
    """The reading and pacing; subclasses open ``self._in``, set ``self._packets`` (``_demux``) and say
    how to ``_mux`` one packet.

    ``window``: only the packets that start in it are kept, moved so the window starts at 0 (a
    time range of the video, see ``io.trim``).
    """

    def __init__(self, window: Optional["TimeWindow"] = None) -> None:
        self._in: Optional[av.container.InputContainer] = None
        self._packets: Iterator[av.Packet] = iter(())
        self._pending: Optional[av.Packet] = None
        self._closed = False
        self._window = window
        self._last_dts: dict[int, int] = {}  # per source stream: the last dts muxed, in its time base
        self._nudged = 0  # packets moved forward by _in_order

    def _demux(self, *streams: av.stream.Stream) -> None:
        """Read ``streams`` of ``self._in`` from the window's start (by seeking, where the container has an index)."""
        assert self._in is not None
        window = self._window
        if window is not None and window.start > SEEK_AFTER_S and streams and is_indexed(self._in):
            stream = streams[0]
            try:  # a little before the start: the packet that holds it must not be skipped
                self._in.seek(round((window.start - SEEK_AFTER_S) / stream.time_base), stream=stream, backward=True)
            except (av.FFmpegError, OSError):
                pass  # read from the top instead
        self._packets = demuxed(self._in, *streams)  # on past an MPEG-TS demuxer's EAGAIN (stuffing after a cut), as ffmpeg

    def _next(self) -> Optional[av.Packet]:
        try:
            return self._next_kept()
        except av.error.ExitError as e:  # a URL whose server stopped sending partway: "Immediate exit requested"
            name = self._name()
            if not is_url(name):
                raise
            raise url_timed_out(name) from e

    def _next_kept(self) -> Optional[av.Packet]:
        for packet in self._packets:
            if packet.dts is None and packet.pts is None:
                continue  # the demuxer's end-of-stream marker
            if self._window is not None:
                t = self._time(packet)
                if self._window.end is not None and t >= self._window.end - 1e-9:
                    self._packets = iter(())
                    return None
                if not self._starts_in_window(packet, t):
                    continue
                self._move(packet, self._window.ticks(packet.time_base))
            return packet
        return None

    def _starts_in_window(self, packet: av.Packet, t: float) -> bool:
        """Whether ``packet`` (starting at source time ``t``) is kept; subtitles also keep a cue already showing."""
        assert self._window is not None
        return t >= self._window.start - 1e-9

    @staticmethod
    def _move(packet: av.Packet, ticks: int) -> None:
        """Move ``packet`` ``ticks`` earlier (its time base's units)."""
        if packet.pts is not None:
            packet.pts -= ticks
        if packet.dts is not None:
            packet.dts -= ticks

    @staticmethod
    def _time(packet: av.Packet) -> float:
        ts = packet.pts if packet.pts is not None else packet.dts
        return float(ts * packet.time_base)

    def write_until(self, seconds: Optional[float]) -> None:
        """Mux packets up to ``seconds`` (plus a short lead); ``None`` means everything that is left."""
        if self._closed:
            return
        while True:
            if self._pending is None:
                self._pending = self._next()
                if self._pending is None:
                    return
            if seconds is not None and self._time(self._pending) > seconds + LEAD_S:
                return
            packet, self._pending = self._pending, None
            self._mux(packet)

    def _mux(self, packet: av.Packet) -> None:
        raise NotImplementedError

    def _in_order(self, packet: av.Packet, out_stream: av.stream.Stream) -> None:
        """Move a copied packet whose dts does not increase (a file looped or joined with ``-c copy`` repeats
        them at the joins) just past the one before, as ffmpeg's own muxing does, warning once: MOV and MP4
        refuse such packets, which ended the run. Call before giving the packet to ``out_stream``."""
        key, dts = packet.stream.index, packet.dts
        last = self._last_dts.get(key)
        if dts is not None and last is not None and dts <= last:
            step = 1  # one tick of the output's time base, in the source's
            if out_stream.time_base and packet.time_base:
                step = max(1, math.ceil(Fraction(out_stream.time_base) / Fraction(packet.time_base)))
            if self._nudged == 0:
                log.warning("%s: %s packets' timestamps do not increase at %.3f s (a file joined or looped with -c copy?); "
                            "moved forward as ffmpeg does", self._name(), packet.stream.type, self._time(packet))  # fmt: skip
            self._nudged += 1
            packet.dts = dts = last + step
            if packet.pts is not None and packet.pts < dts:
                packet.pts = dts
        if dts is not None:
            self._last_dts[key] = dts

    def _name(self) -> str:
        """The source file's name, for messages."""
        return str(getattr(self, "_src_name", None) or getattr(self._in, "name", "the input"))

    def close(self) -> None:
        """Close the second reader (idempotent); the output container belongs to the sink."""
        if self._closed:
            return
        self._closed = True
        if self._in is not None:
            self._in.close()
