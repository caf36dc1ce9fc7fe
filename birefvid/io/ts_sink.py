"""Send live pictures as an MPEG-TS stream of H.264 over UDP, TCP or SRT: what VLC, ffplay, OBS's
media source and broadcast gear take without a server in between.

``udp://HOST:PORT`` sends datagrams (a player may join at any time and waits at most a second for a
keyframe; nothing fails when no one listens); ``tcp://HOST:PORT`` connects to a listening player
(``ffplay 'tcp://0.0.0.0:PORT?listen'``) and fails when it goes away; ``srt://`` works only where
PyAV's FFmpeg was built with libsrt (its PyPI wheels are not). Each frame is flushed to the network
as soon as it is muxed, so the stream adds no buffering of its own.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import Optional
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import av

from birefvid.errors import SinkError, sink_named
from birefvid.io.live_audio import LiveAudioFeed
from birefvid.io.publish_base import LIVE_MUX_OPTIONS, StreamClock, StreamPublishSink, check_host, reason

log = logging.getLogger(__name__)

# 7 TS packets of 188 bytes: a datagram that never splits one (FFmpeg's default of 1472 does) and fits an Ethernet MTU
UDP_PACKET_SIZE = 1316
RELAY_HINT = "publish to rtsp:// or udp:// instead, or relay with a media server (MediaMTX takes RTSP in and serves SRT, RTMP, HLS and WebRTC)"


def stream_url(url: str, open_timeout: float) -> str:
    """``url`` with the protocol options a live stream needs added, unless the user gave them:
    UDP's datagram size, TCP's connect and write timeout (microseconds). SinkError for a TCP
    ``listen``: waiting for a player would hold the whole process, since PyAV opens outputs without
    releasing Python's lock."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # not a number, or above 65535
        port = None
    if not parts.hostname or port is None:
        # udp://@:PORT is how VLC and OBS listen: pasted here, it names no receiver to send to
        listening = " (udp://@:PORT is what the player listens on; here give the player's address)" if parts.netloc.startswith("@") else ""
        raise SinkError(f"cannot send to {url}: a {scheme}:// output needs a host and a port (0 to 65535), e.g. {scheme}://127.0.0.1:5000{listening}")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if scheme == "udp":
        query.setdefault("pkt_size", str(UDP_PACKET_SIZE))
    elif scheme == "tcp":
        if "listen" in query:
            raise SinkError(
                f"cannot send to {url}: birefvid connects to a listening player (e.g. ffplay 'tcp://0.0.0.0:PORT?listen') "
                f"and cannot wait for one to connect; for players that connect, use {sink_named('udp://...')}, rtsp://... or http://..."
            )
        query.setdefault("timeout", str(max(1, int(open_timeout * 1_000_000))))
    return urlunsplit(parts._replace(query=urlencode(query)))


class MpegTsPublishSink(StreamPublishSink):
    """Encodes each picture with ``LiveH264`` and sends it to ``url`` (udp://, tcp:// or srt://) as
    MPEG-TS, with the source's sound (AAC) when an ``audio`` feed is given. A ``clock`` shared with the
    stream's earlier connections goes on with their timestamps: nothing in MPEG-TS asks for a start
    at 0 (a UDP player joins at any time), so a player that reconnects is as well served as one that
    stayed open."""

    verb = "send"

    def __init__(
        self, url: str, *, width: int, height: int, fps: float, kind: str, open_timeout: float = 5.0, audio: Optional[LiveAudioFeed] = None,
        sample_aspect_ratio: Optional[Fraction] = None, clock: Optional[StreamClock] = None,
    ) -> None:
        super().__init__(url, width=width, height=height, fps=fps, kind=kind, sample_aspect_ratio=sample_aspect_ratio, clock=clock)
        target = stream_url(url, open_timeout)
        check_host(url, self.verb, self._shown)
        try:
            # flush_packets: each frame leaves as soon as it is muxed instead of when a buffer fills
            self._out = av.open(target, "w", format="mpegts", container_options={"flush_packets": "1", **LIVE_MUX_OPTIONS})
            self._add_streams("mpegts", audio)
            self._out.start_encoding()  # opens the socket (TCP: connects) now, so a dead receiver fails here
        except (av.FFmpegError, OSError, ValueError) as e:
            self._release()
            why = reason(e)
            if isinstance(e, av.ProtocolNotFoundError):
                why = f"this FFmpeg build (PyAV's) cannot send {urlsplit(url).scheme}:// ({why}); {RELAY_HINT}"
            elif isinstance(e, (ConnectionRefusedError, TimeoutError)) or "timed out" in why.lower():
                why = f"{why} (is a player or receiver listening there?)"
            raise SinkError(f"cannot send to {url}: {why}") from e
        log.info("sending %dx%d H.264 in MPEG-TS to %s", width, height, url)

    def _stream_seconds(self, t: float) -> float:
        return self._since_first_picture(t)
