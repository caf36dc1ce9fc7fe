"""Packets of the source's other streams (audio, subtitles), read by a second reader of the source
and muxed in step with the video: each call muxes those up to the video's time plus a short lead,
so memory stays bounded however long the input is."""

from __future__ import annotations

from typing import Iterator, Optional

import av

# seconds of packets muxed ahead of the video written so far (keeps the muxer's interleave queue short)
LEAD_S = 0.5


class InterleavedPackets:
    """The reading and pacing; subclasses open ``self._in``, set ``self._packets`` and say how to
    ``_mux`` one packet."""

    def __init__(self) -> None:
        self._in: Optional[av.container.InputContainer] = None
        self._packets: Iterator[av.Packet] = iter(())
        self._pending: Optional[av.Packet] = None
        self._closed = False

    def _next(self) -> Optional[av.Packet]:
        for packet in self._packets:
            if packet.dts is None and packet.pts is None:
                continue  # the demuxer's end-of-stream marker
            return packet
        return None

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

    def close(self) -> None:
        """Close the second reader (idempotent); the output container belongs to the sink."""
        if self._closed:
            return
        self._closed = True
        if self._in is not None:
            self._in.close()
