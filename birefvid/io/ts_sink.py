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
import numpy as np

from birefvid.errors import SinkError
from birefvid.io.h264_live import ACCEPTS, ALPHA_HINT, LiveH264
from birefvid.io.live_audio import LiveAudioFeed, LiveAudioTrack
from birefvid.io.live_base import LiveSink

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 90000)  # MPEG-TS's clock
SCHEMES = ("udp", "tcp", "srt")
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
    if not parts.hostname or parts.port is None:
        raise SinkError(f"cannot send to {url}: a {scheme}:// output needs a host and a port, e.g. {scheme}://127.0.0.1:5000")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if scheme == "udp":
        query.setdefault("pkt_size", str(UDP_PACKET_SIZE))
    elif scheme == "tcp":
        if "listen" in query:
            raise SinkError(
                f"cannot send to {url}: birefvid connects to a listening player (e.g. ffplay 'tcp://0.0.0.0:PORT?listen') "
                f"and cannot wait for one to connect; for players that connect, use --sink udp://, rtsp:// or http://"
            )
        query.setdefault("timeout", str(max(1, int(open_timeout * 1_000_000))))
    return urlunsplit(parts._replace(query=urlencode(query)))


class MpegTsPublishSink(LiveSink):
    """Encodes each picture with ``LiveH264`` and sends it to ``url`` (udp://, tcp:// or srt://) as
    MPEG-TS, with the source's sound (AAC) when an ``audio`` feed is given."""

    accepts = ACCEPTS
    holds_last = True

    def __init__(
        self, url: str, *, width: int, height: int, fps: float, kind: str, open_timeout: float = 5.0, audio: Optional[LiveAudioFeed] = None
    ) -> None:
        super().__init__()
        self.url = url
        if kind not in self.accepts:
            raise SinkError(f"cannot send {kind} pictures to {url}: {ALPHA_HINT}")
        if width <= 0 or height <= 0 or not fps > 0:
            raise SinkError(f"cannot send to {url}: needs a positive size and rate, got {width}x{height} at {fps} fps")
        self.width, self.height = width, height
        self.frames_sent = 0
        self._first_t: Optional[float] = None
        self._last_pts: Optional[int] = None
        self._out: Optional[av.container.OutputContainer] = None
        self._audio: Optional[LiveAudioTrack] = None
        target = stream_url(url, open_timeout)
        try:
            # flush_packets: each frame leaves as soon as it is muxed instead of when a buffer fills
            self._out = av.open(target, "w", format="mpegts", container_options={"flush_packets": "1"})
            self._h264 = LiveH264(self._out, width=width, height=height, fps=fps, time_base=TIME_BASE)
            if audio is not None:
                self._audio = LiveAudioTrack(audio, self._out, "mpegts", url)
            self._out.start_encoding()  # opens the socket (TCP: connects) now, so a dead receiver fails here
        except (av.FFmpegError, OSError, ValueError) as e:
            self._release()
            why = _reason(e)
            if isinstance(e, av.ProtocolNotFoundError):
                why = f"this FFmpeg build (PyAV's) cannot send {urlsplit(url).scheme}:// ({why}); {RELAY_HINT}"
            elif isinstance(e, (ConnectionRefusedError, TimeoutError)) or "timed out" in why.lower():
                why = f"{why} (is a player or receiver listening there?)"
            raise SinkError(f"cannot send to {url}: {why}") from e
        log.info("sending %dx%d H.264 in MPEG-TS to %s", width, height, url)

    @property
    def name(self) -> str:
        return self.url

    def _send(self, picture: np.ndarray, t: float) -> None:
        assert self._out is not None
        self.check_picture(picture, self.width, self.height, " (H.264 has no alpha)")
        frame = self._h264.frame(picture)
        if self._first_t is None:
            self._first_t = t
            if self._audio is not None:
                self._audio.offset = -t
        pts = round((t - self._first_t) / TIME_BASE)  # the stream's clock starts at its first picture
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # a repeated or early t still has to move the stream clock forward
        frame.pts, frame.time_base = pts, TIME_BASE
        try:
            self._out.mux(self._h264.stream.encode(frame))
            if self._audio is not None:
                self._audio.write_until(t)
        except (av.FFmpegError, OSError) as e:
            raise SinkError(f"sending to {self.url} failed after {self.frames_sent} frames: {_reason(e)}") from e
        self._last_pts = pts
        self.frames_sent += 1

    def _close(self) -> None:
        if self._out is None:
            return
        try:
            self._out.mux(self._h264.stream.encode(None))
            if self._audio is not None:
                self._audio.finish()
            self._out.close()
        except (av.FFmpegError, OSError) as e:
            raise SinkError(f"finishing the stream to {self.url} failed: {_reason(e)}") from e
        finally:
            self._release()
        log.info("sent %d frames to %s", self.frames_sent, self.url)

    def _abort(self) -> None:
        self._release()

    def _release(self) -> None:
        out, self._out = self._out, None
        if out is not None:
            try:
                out.close()
            except Exception as e:  # the connection may already be gone; nothing is left to save
                log.debug("ignored error while closing %s: %s", self.url, e)


def _reason(e: BaseException) -> str:
    """FFmpeg's error text without PyAV's '[Errno N]' and repeated URL clutter."""
    return getattr(e, "strerror", None) or str(e)
