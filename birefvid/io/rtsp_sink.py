"""Publish live pictures as H.264 to an RTSP server (e.g. MediaMTX), so any player can watch them.

The stream is ``LiveH264``'s low-latency H.264 (no alpha: rgb and gray pictures only), with the
source's sound as AAC when there is a feed, sent with RTSP over TCP (no lost packets on a busy
network).
"""

from __future__ import annotations

import logging
import time
from fractions import Fraction
from typing import Optional

import av

from birefvid.errors import SinkError
from birefvid.io.live_audio import LiveAudioFeed
from birefvid.io.publish_base import LIVE_MUX_OPTIONS, StreamPublishSink, check_host, reason

log = logging.getLogger(__name__)


class RtspPublishSink(StreamPublishSink):
    """Encodes each picture with libx264 and pushes it to ``url`` (rtsp:// or rtsps://) as it arrives,
    with the source's sound (AAC) when an ``audio`` feed is given."""

    def __init__(
        self, url: str, *, width: int, height: int, fps: float, kind: str, open_timeout: float = 5.0, audio: Optional[LiveAudioFeed] = None,
        sample_aspect_ratio: Optional[Fraction] = None,
    ) -> None:
        super().__init__(url, width=width, height=height, fps=fps, kind=kind, sample_aspect_ratio=sample_aspect_ratio)
        self._lag: Optional[float] = None
        timeout_us = str(max(1, int(open_timeout * 1_000_000)))
        check_host(url, self.verb, self._shown)
        # the wall-clock moment RTCP sender reports call RTP time 0 (FFmpeg would take it at SETUP)
        self._epoch = time.time()
        try:
            self._out = av.open(
                url, "w", format="rtsp",
                options={"rtsp_transport": "tcp", "timeout": timeout_us},
                # max_delay: RTP packs up to this much AAC into one packet (sound latency, and what a
                # teardown loses); FFmpeg's own default packs frames until its buffer fills
                container_options={"start_time_realtime": str(int(self._epoch * 1_000_000)), "max_delay": "100000",
                                   **LIVE_MUX_OPTIONS},
            )
            self._add_streams("rtsp", audio)
            self._out.start_encoding()  # connects, ANNOUNCEs and SETUPs now, so a dead server fails here
        except (av.FFmpegError, OSError, ValueError) as e:
            self._abort()
            why = reason(e)
            if isinstance(e, av.InvalidDataError):  # FFmpeg's word for a refused, silent or unreachable server
                why = f"no RTSP answer (server down, unreachable or silent; waited up to {open_timeout:g} s)"
            raise SinkError(
                f"cannot publish to {self._shown}: {why} (is an RTSP server such as MediaMTX running there and "
                f"accepting publishers?)"
            ) from e
        log.info("publishing %dx%d H.264 to %s", width, height, self._shown)

    def _stream_seconds(self, t: float) -> float:
        if self._lag is None:
            # RTCP sender reports map the wall clock since ``_epoch`` onto the RTP clock and FFmpeg-based
            # players take their zero from the first report; without this shift, pictures that arrive
            # seconds after the stream opened (a model warming up) would play at negative times, and
            # a stream reopened mid-run (its first t far past 0) would play minutes in the future
            self._lag = time.time() - self._epoch - t
            if self._audio is not None:
                self._audio.offset = self._lag
        return t + self._lag
