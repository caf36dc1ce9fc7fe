"""Exact frame times for a constant-rate video whose time base cannot hold them (23.976 fps in milliseconds).

Matroska, WebM and FLV count in milliseconds and MPEG-TS in 1/90000 s, so a 24000/1001 or 30000/1001
clip's frames land 41 or 42 ms (3753 or 3754 ticks) apart. Copied into MOV/MP4 as they are, those
durations make editors (Premiere, Resolve, Final Cut) read the cut-out as variable frame rate, and the
timecode track's frame duration (42/1000 s) drifts from the picture. ``FrameGrid`` moves each time that
lies within one source tick of the rate's exact grid (counted from the first frame) onto it, in a time
base that holds both, as ``ffmpeg`` does for MOV; a frame off the grid (variable frame rate) keeps its
time exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

MAX_TIMESCALE = 2**31 - 1  # MOV/MP4 store the track's timescale in 32 bits


@dataclass(frozen=True)
class FrameGrid:
    """The grid of ``rate``, ``tick`` (the source's time base) and an output ``time_base`` holding both."""

    rate: Fraction
    tick: Fraction
    time_base: Fraction

    @classmethod
    def choose(cls, time_base: Fraction, rate: Optional[Fraction]) -> Optional["FrameGrid"]:
        """The grid for a source in ``time_base`` at ``rate``; None when it holds the rate's frames exactly already,
        or the rate is not a broadcast one (whole, or NTSC's n/1001: an average of a variable rate is no grid)."""
        if not rate or rate <= 0 or time_base <= 0 or rate.denominator not in (1, 1001):
            return None
        frame = 1 / Fraction(rate)
        if (frame / time_base).denominator == 1:
            return None
        common = Fraction(math.gcd(time_base.numerator * frame.denominator, frame.numerator * time_base.denominator),
                          time_base.denominator * frame.denominator)  # fmt: skip
        if common.denominator > MAX_TIMESCALE:
            return None
        return cls(Fraction(rate), Fraction(time_base), common)

    def snap(self, seconds: Fraction, origin: Fraction = Fraction(0)) -> Fraction:
        """The time of the grid from ``origin`` (the first frame's: an MPEG-TS starts 1.4 s in) within one source
        tick of ``seconds`` (the source rounded it), else ``seconds`` as it is."""
        on_grid = origin + round((seconds - origin) * self.rate) / self.rate
        return on_grid if abs(on_grid - seconds) <= self.tick else seconds

    def ticks(self, seconds: Fraction, origin: Fraction = Fraction(0)) -> int:
        """``seconds`` snapped, in the output time base's ticks (a whole number: it holds both grids and ``origin``,
        a source time)."""
        return int(self.snap(seconds, origin) / self.time_base)
