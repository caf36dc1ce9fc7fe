"""What the network publishers (RTSP, MPEG-TS over UDP/TCP/SRT) share: each picture encoded with
``LiveH264`` and sent as it arrives, with the source's sound when there is a feed, on one stream
clock whose timestamps always increase; errors name the URL; close sends what is left."""

from __future__ import annotations

import logging
import socket
from fractions import Fraction
from typing import Optional
from urllib.parse import urlsplit

import av
import numpy as np

from birefvid.errors import SinkError
from birefvid.io.h264_live import ACCEPTS, ALPHA_HINT, LiveH264
from birefvid.io.live_audio import LiveAudioFeed, LiveAudioTrack
from birefvid.io.live_base import LiveSink
from birefvid.urls import shown_url

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 90000)  # RTP's and MPEG-TS's video clock
# The longest a live stream's muxer holds pictures back waiting for sound (FFmpeg's default is 10 s).
# FFmpeg interleaves by timestamp, so a stream with a sound track that gets no sound (a camera that
# went away, whose held pictures go on; a microphone or a camera's sound that stalls) sent nothing
# for 10 s, then everything 10 s late, until the sound came back. Sound that arrives later than this
# is still sent, behind the pictures; live sound is written 0.1 s ahead of them, so it never waits.
MAX_INTERLEAVE_S = 0.5
LIVE_MUX_OPTIONS = {"max_interleave_delta": str(int(MAX_INTERLEAVE_S * 1_000_000))}


class StreamClock:
    """Where a stream's clock has its 0 (the run's time of its first picture), shared by the
    connections one ``--sink`` opens in turn: a reopened stream goes on from where the last one
    stopped, later by the outage, where it started again at 0 and a receiver that stayed open
    (a UDP player, OBS) saw its clock go back and froze or dropped what came."""

    def __init__(self) -> None:
        self.first_t: Optional[float] = None


class StreamPublishSink(LiveSink):
    """A network stream of H.264 (+ AAC). Subclasses open ``self._out`` and call ``_add_streams``,
    and say where the stream's clock has ``t`` (``_stream_seconds``)."""

    accepts = ACCEPTS
    holds_last = True
    #: how the messages say it: "publish" (to a server) or "send" (to a player)
    verb = "publish"

    def __init__(
        self, url: str, *, width: int, height: int, fps: float, kind: str, shown: Optional[str] = None,
        sample_aspect_ratio: Optional[Fraction] = None, clock: Optional[StreamClock] = None,
    ) -> None:
        """``shown`` is how messages and logs name the stream (default ``url`` without its password; RTMP hides its stream key);
        ``sample_aspect_ratio`` the source's pixel shape when not square, which the stream says (players show it unsqueezed);
        ``clock`` the origin shared with the stream's earlier connections (default: this one's first picture)."""
        super().__init__()
        self.url = url
        self._shown = shown or shown_url(url)
        if kind not in self.accepts:
            raise SinkError(f"cannot {self.verb} {kind} pictures to {self._shown}: {ALPHA_HINT}")
        if width <= 0 or height <= 0 or not fps > 0:
            raise SinkError(f"cannot {self.verb} to {self._shown}: needs a positive size and rate, got {width}x{height} at {fps} fps")
        self.width, self.height, self.fps = width, height, fps
        self.sample_aspect_ratio = sample_aspect_ratio
        self.frames_sent = 0
        self._last_pts: Optional[int] = None
        self._out: Optional[av.container.OutputContainer] = None
        self._audio: Optional[LiveAudioTrack] = None
        self._clock = clock or StreamClock()  # the first picture's time, for clocks that start there

    def _add_streams(self, muxer: str, audio: Optional[LiveAudioFeed], max_kbps: Optional[int] = None, max_channels: Optional[int] = None) -> None:
        """The H.264 stream (at most ``max_kbps``), and an AAC one for ``audio`` (at most ``max_channels``), in ``self._out`` (before it starts)."""
        assert self._out is not None
        self._h264 = LiveH264(self._out, width=self.width, height=self.height, fps=self.fps, time_base=TIME_BASE, max_kbps=max_kbps,
                              sample_aspect_ratio=self.sample_aspect_ratio)  # fmt: skip
        if audio is not None:
            self._audio = LiveAudioTrack(audio, self._out, muxer, self._shown, max_channels)

    @property
    def name(self) -> str:
        return self._shown

    def _stream_seconds(self, t: float) -> float:
        """Where picture time ``t`` falls on the stream's clock (the sound's offset is set to match)."""
        return t

    def _since_first_picture(self, t: float) -> float:
        """A stream clock that starts at the first picture (MPEG-TS, FLV): ``t`` less the first picture's
        (the first connection's, when the clock is shared)."""
        if self._clock.first_t is None:
            self._clock.first_t = t
        if self._audio is not None:
            self._audio.offset = -self._clock.first_t  # this connection's sound on the same clock
        return t - self._clock.first_t

    def _send(self, picture: np.ndarray, t: float) -> None:
        assert self._out is not None
        self.check_picture(picture, self.width, self.height, " (H.264 has no alpha)")
        frame = self._h264.frame(picture)
        pts = round(self._stream_seconds(t) / TIME_BASE)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # a repeated or early t still has to move the stream clock forward
        frame.pts, frame.time_base = pts, TIME_BASE
        try:
            self._out.mux(self._h264.stream.encode(frame))
            if self._audio is not None:
                self._audio.write_until(t)
        except (av.FFmpegError, OSError) as e:
            raise SinkError(f"{self.verb}ing to {self._shown} failed after {self.frames_sent} frames: {reason(e)}") from e
        self._last_pts = pts
        self.frames_sent += 1

    def _close(self) -> None:
        if self._out is None:
            return
        try:
            self._out.mux(self._h264.stream.encode(None))
            if self._audio is not None:
                self._audio.finish()
            self._out.close()  # RTSP: sends TEARDOWN
        except (av.FFmpegError, OSError) as e:
            raise SinkError(f"finishing the stream to {self._shown} failed: {reason(e)}") from e
        finally:
            self._release()
        log.info("%s %d frames to %s", "published" if self.verb == "publish" else "sent", self.frames_sent, self._shown)

    def _abort(self) -> None:
        self._release()

    def _release(self) -> None:
        if self._audio is not None:
            self._audio.close()  # off the feed: it no longer queues sound for this stream
        out, self._out = self._out, None
        if out is not None:
            try:
                out.close()
            except Exception as e:  # the connection may already be gone; nothing is left to save
                log.debug("ignored error while closing %s: %s", self._shown, e)


def reason(e: BaseException) -> str:
    """FFmpeg's error text without PyAV's '[Errno N]' and repeated URL clutter."""
    return getattr(e, "strerror", None) or str(e)


def check_host(url: str, verb: str, shown: str) -> None:
    """SinkError naming the host when ``url``'s host name does not resolve, before FFmpeg tries: it
    says only 'Input/output error' for a mistyped name (and looks it up holding Python's lock)."""
    host = urlsplit(url).hostname
    if not host:
        return
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError) as e:
        why = getattr(e, "strerror", None) or str(e)
        raise SinkError(f"cannot {verb} to {shown}: unknown host {host!r} ({why}); check the name, or give the receiver's IP address") from None
