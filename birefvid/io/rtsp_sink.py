"""Publish live pictures as H.264 to an RTSP server (e.g. MediaMTX), so any player can watch them.

The stream is ``LiveH264``'s low-latency H.264 (no alpha: rgb and gray pictures only), sent with
RTSP over TCP (no lost packets on a busy network).
"""

from __future__ import annotations

import logging
import time
from fractions import Fraction
from typing import Optional

import av
import numpy as np

from birefvid.errors import SinkError
from birefvid.io.h264_live import ACCEPTS, ALPHA_HINT, LiveH264
from birefvid.io.live_audio import LiveAudioFeed, LiveAudioTrack
from birefvid.io.live_base import LiveSink

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 90000)  # the RTP video clock


class RtspPublishSink(LiveSink):
    """Encodes each picture with libx264 and pushes it to ``url`` (rtsp:// or rtsps://) as it arrives,
    with the source's sound (AAC) when an ``audio`` feed is given."""

    accepts = ACCEPTS
    holds_last = True

    def __init__(
        self, url: str, *, width: int, height: int, fps: float, kind: str, open_timeout: float = 5.0, audio: Optional[LiveAudioFeed] = None
    ) -> None:
        super().__init__()
        self.url = url
        if kind not in self.accepts:
            raise SinkError(f"cannot publish {kind} pictures to {url}: {ALPHA_HINT}")
        if width <= 0 or height <= 0 or not fps > 0:
            raise SinkError(f"cannot publish to {url}: needs a positive size and rate, got {width}x{height} at {fps} fps")
        self.width, self.height = width, height
        self.frames_sent = 0
        self._last_pts: Optional[int] = None
        self._lag: Optional[float] = None
        self._out: Optional[av.container.OutputContainer] = None
        self._audio: Optional[LiveAudioTrack] = None
        timeout_us = str(max(1, int(open_timeout * 1_000_000)))
        # the wall-clock moment RTCP sender reports call RTP time 0 (FFmpeg would take it at SETUP)
        self._epoch = time.time()
        try:
            self._out = av.open(
                url, "w", format="rtsp",
                options={"rtsp_transport": "tcp", "timeout": timeout_us},
                # max_delay: RTP packs up to this much AAC into one packet (sound latency, and what a
                # teardown loses); FFmpeg's own default packs frames until its buffer fills
                container_options={"start_time_realtime": str(int(self._epoch * 1_000_000)), "max_delay": "100000"},
            )
            self._h264 = LiveH264(self._out, width=width, height=height, fps=fps, time_base=TIME_BASE)
            self._stream = self._h264.stream
            if audio is not None:
                self._audio = LiveAudioTrack(audio, self._out, "rtsp", url)
            self._out.start_encoding()  # connects, ANNOUNCEs and SETUPs now, so a dead server fails here
        except (av.FFmpegError, OSError, ValueError) as e:
            self._abort()
            why = _reason(e)
            if isinstance(e, av.InvalidDataError):  # FFmpeg's word for a refused, silent or unreachable server
                why = f"no RTSP answer (server down, unreachable or silent; waited up to {open_timeout:g} s)"
            raise SinkError(
                f"cannot publish to {url}: {why} (is an RTSP server such as MediaMTX running there and "
                f"accepting publishers?)"
            ) from e
        log.info("publishing %dx%d H.264 to %s", width, height, url)

    @property
    def name(self) -> str:
        return self.url

    def _send(self, picture: np.ndarray, t: float) -> None:
        assert self._out is not None
        self.check_picture(picture, self.width, self.height, " (H.264 has no alpha)")
        frame = self._h264.frame(picture)
        if self._lag is None:
            # RTCP sender reports map the wall clock since ``_epoch`` onto the RTP clock and FFmpeg-based
            # players take their zero from the first report; without this shift, pictures that arrive
            # seconds after the stream opened (a model warming up) would play at negative times
            self._lag = max(0.0, time.time() - self._epoch - t)
            if self._audio is not None:
                self._audio.offset = self._lag
        pts = round((t + self._lag) / TIME_BASE)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # a repeated or early t still has to move the stream clock forward
        frame.pts, frame.time_base = pts, TIME_BASE
        try:
            self._out.mux(self._stream.encode(frame))
            if self._audio is not None:
                self._audio.write_until(t)
        except (av.FFmpegError, OSError) as e:
            raise SinkError(f"publishing to {self.url} failed after {self.frames_sent} frames: {_reason(e)}") from e
        self._last_pts = pts
        self.frames_sent += 1

    def _close(self) -> None:
        if self._out is None:
            return
        try:
            self._out.mux(self._stream.encode(None))
            if self._audio is not None:
                self._audio.finish()
            self._out.close()  # sends TEARDOWN
        except (av.FFmpegError, OSError) as e:
            raise SinkError(f"finishing the stream to {self.url} failed: {_reason(e)}") from e
        finally:
            self._release()
        log.info("published %d frames to %s", self.frames_sent, self.url)

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
