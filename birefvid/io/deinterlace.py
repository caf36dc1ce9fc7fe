"""Interlaced video (DV, HDV, broadcast 1080i and 576i) made progressive before anything else sees it.

An interlaced picture holds two fields captured half a frame apart: anything that moves is combed.
Segmented as it is, the comb reaches the model and every output, and since birefvid's outputs are
progressive, players no longer deinterlace them. Frames the decoder flags as interlaced go through
FFmpeg's ``bwdif`` (motion-adaptive, the deinterlacer FFmpeg's documentation recommends) in
``send_frame`` mode: one progressive frame per frame, with its own timestamp, so frame counts,
timing and audio sync stay those of the input. Progressive streams never enter the filter.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction
from typing import Optional

import av

log = logging.getLogger(__name__)

# deint=interlaced: frames flagged progressive (a stream that mixes both) pass through unchanged
BWDIF = "mode=send_frame:parity=auto:deint=interlaced"


class Deinterlacer:
    """Wraps a stream's decoded frames: interlaced ones come out deinterlaced, in order, one for one.

    The filter looks one frame ahead, so it holds a frame until the next is decoded and gives the
    last one back when the decoded frames end. Frames keep their pts and time base (``bwdif``
    counts in fields: its doubled time base is mapped back), colour tags and rotation. A change of
    picture size or format midway starts a new filter after the held frames are out.
    """

    def __init__(self, name: str = "the stream") -> None:
        self.name = name
        self._graph: Optional[av.filter.Graph] = None
        self._key: Optional[tuple[int, int, str, Optional[Fraction]]] = None
        self._announced = False

    def __call__(self, frames: Iterator[av.VideoFrame]) -> Iterator[av.VideoFrame]:
        for frame in frames:
            if self._graph is None and not frame.interlaced_frame:
                yield frame  # progressive so far: nothing held, nothing to filter
                continue
            key = (frame.width, frame.height, frame.format.name, frame.time_base)
            if self._graph is not None and key != self._key:
                yield from self._finish()
            if self._graph is None:
                self._start(frame, key)
            assert self._graph is not None
            self._graph.push(frame)
            yield from self._pulled()
        yield from self._finish()

    def _start(self, frame: av.VideoFrame, key: tuple[int, int, str, Optional[Fraction]]) -> None:
        if not self._announced:
            self._announced = True
            log.info("%s is interlaced: deinterlaced with bwdif, one frame per frame", self.name)
        graph = av.filter.Graph()
        source = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format.name, time_base=frame.time_base or Fraction(1, 90000))
        bwdif = graph.add("bwdif", BWDIF)
        sink = graph.add("buffersink")
        source.link_to(bwdif)
        bwdif.link_to(sink)
        graph.configure()
        self._graph, self._key = graph, key

    def _pulled(self) -> Iterator[av.VideoFrame]:
        assert self._graph is not None and self._key is not None
        time_base = self._key[3]
        while True:
            try:
                out = self._graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            if out.pts is not None and time_base and out.time_base and out.time_base != time_base:
                out.pts = round(out.pts * out.time_base / time_base)
            if time_base:
                out.time_base = time_base
            yield out

    def _finish(self) -> Iterator[av.VideoFrame]:
        """The frames the filter still holds, then no filter."""
        if self._graph is None:
            return
        self._graph.push(None)
        yield from self._pulled()
        self._graph, self._key = None, None
