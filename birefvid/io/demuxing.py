"""Packets of a container read on past the demuxer's EAGAIN, as the ffmpeg command reads them.

FFmpeg's MPEG-TS demuxer answers EAGAIN ("Resource temporarily unavailable") where it loses the packets' sync and
finds none again within its resync window: a packet cut off with 0xFF stuffing after it (a card's erased blocks), a
long run of garbage midway. ffmpeg reads again and goes on (its demuxer loop waits 10 ms and retries); PyAV raises
``av.error.BlockingIOError``, so ``process`` failed on such a file with 'decoding failed at frame 21 (Resource
temporarily unavailable); the file is damaged' where ffmpeg reads every frame, and the cut-off warning never came.
"""

from __future__ import annotations

from typing import Iterator

import av

# EAGAINs in a row without a packet after which the error stands: each read moves on by a resync window (64 KB), so a
# file reaches its end in a few; a source that keeps answering EAGAIN is not waited on forever
AGAIN_MOST = 64


def demuxed(container: av.container.InputContainer, *streams: av.stream.Stream) -> Iterator[av.Packet]:
    """``container.demux(*streams)``, read again where the demuxer answers EAGAIN (at most ``AGAIN_MOST`` times in a
    row), as ffmpeg reads: the packets after the bytes it could not sync on, then the end (its flush packets)."""
    again = 0
    while True:
        try:
            for packet in container.demux(*streams):
                again = 0
                yield packet
            return
        except av.error.BlockingIOError:
            again += 1
            if again > AGAIN_MOST:
                raise
