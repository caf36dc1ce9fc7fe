"""Process a part of a video (``--start`` / ``--end``): the frames of a time range, re-timed to start at 0.

Times count from the video's first frame, as a player's position does (an MPEG-TS that starts at
1.4 s still starts at 0 here). The output begins with the first frame at or after ``start`` at
time 0, as ``ffmpeg -ss`` gives it; the sound, subtitles, chapters and start timecode move with it
(``TimeWindow``), so they stay in sync. A PyAV source seeks to the keyframe before the start, so
a few seconds from the end of a two-hour film cost seconds, not the film.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator
from fractions import Fraction
from typing import Any, Optional

from birefvid.errors import SourceError
from birefvid.frames import Frame, StreamInfo
from birefvid.io.base import Source
from birefvid.io.times import parse_time  # noqa: F401  (here too: its old home)
from birefvid.io.video_source import VideoFileSource


# an MPEG-TS/PS whose first frame is later than this (seconds) counts from a broadcast clock, not a late start
CLOCK_START_S = 60.0
CLOCK_FORMATS = frozenset({"mpegts", "mpeg", "mpegtsraw"})


def starts_off_zero(source: Source) -> bool:
    """Whether ``source``'s timeline must be moved to start at 0 as a time range is (``TrimmedSource``):
    its first frame is before 0 (an MPEG-TS read across its 33-bit wrap), which MP4 and MOV hide and
    Matroska cannot store, or it is an MPEG-TS/PS whose clock starts hours in, which made a 2 s clip a
    10-hour MOV. A late start of a few seconds (an MPEG-TS's usual 1.4 s, a recording's piece) is kept."""
    if not isinstance(source, VideoFileSource) or source.first_pts is None:
        return False
    start = float(source.first_pts * source.info.time_base)
    return start < 0 or (start > CLOCK_START_S and bool(set(source.format_name.split(",")) & CLOCK_FORMATS))


@dataclasses.dataclass(frozen=True)
class TimeWindow:
    """The part of the source's timeline an output keeps, in the source's own seconds (stream timestamps).

    ``start``: the kept part's first instant, which becomes 0 in the output; ``end``: where it stops
    (None: the end of the file).
    """

    start: float
    end: Optional[float] = None

    def ticks(self, time_base: Fraction) -> int:
        """The window's start in ``time_base`` units: what to subtract from a timestamp."""
        return round(Fraction(self.start) / time_base)


# HH:MM:SS:FF (HH:MM:SS;FF drop-frame); FF has 3 digits above 99 fps, as FFmpeg writes a 120 fps plate's 00:00:09:119
TIMECODE = re.compile(r"(\d+):(\d\d):(\d\d)([:;.,])(\d\d\d?)")


def timecode_frame(timecode: str, rate: Fraction) -> Optional[int]:
    """The frame number ``timecode`` names at ``rate`` (frames since 00:00:00:00, drop-frame counted as SMPTE 12M
    does), the number editors read an image sequence's timecode from; None when it cannot be read."""
    m = TIMECODE.fullmatch(timecode.strip())
    nominal = round(rate)
    if m is None or nominal <= 0:
        return None
    h, mi, s, sep, f = int(m[1]), int(m[2]), int(m[3]), m[4], int(m[5])
    drop = 0 if sep == ":" else 2 * round(nominal / 30)
    minutes = 60 * h + mi
    return ((60 * minutes + s) * nominal + f) - drop * (minutes - minutes // 10)


def shift_timecode(timecode: str, frames: int, rate: Fraction) -> Optional[str]:
    """``timecode`` (HH:MM:SS:FF, or HH:MM:SS;FF drop-frame) ``frames`` later at ``rate``; None when it cannot be read.

    Drop-frame (29.97 and 59.94 fps) skips frame numbers 0 and 1 (0-3 at 59.94) of every minute but
    each tenth, as SMPTE 12M counts. Time of day wraps at midnight: a night shoot's 23:59:59:20 a second on is
    00:00:00:20, not 24:00:00:20, which no editor reads.
    """
    m = TIMECODE.fullmatch(timecode.strip())
    start = timecode_frame(timecode, rate)
    if m is None or start is None:
        return None
    nominal, sep = round(rate), m[4]
    drop = 0 if sep == ":" else 2 * round(nominal / 30)
    number = start + frames
    if number < 0:
        return None
    if drop:
        per_ten, per_minute = nominal * 600 - 9 * drop, nominal * 60 - drop
        tens, rest = divmod(number, per_ten)
        number += 9 * drop * tens + (drop * ((rest - drop) // per_minute) if rest > drop else 0)
    f_, total_s = number % nominal, number // nominal
    return f"{total_s // 3600 % 24:02d}:{total_s // 60 % 60:02d}:{total_s % 60:02d}{sep}{f_:02d}"


def _timecode_hint(info: StreamInfo, start: float, end: Optional[float]) -> str:
    """For a range past the video's end that reads as the source's timecode (an editor's ``--start 1:00:05``
    for a clip starting at 01:00:00:00): the range counted from the first frame it means."""
    if not info.timecode or not info.average_rate or not info.duration:
        return ""
    first = timecode_frame(info.timecode, info.average_rate)
    if first is None:
        return ""
    if info.numbered:
        return _frame_number_hint(info, first, start, end)
    parts = TIMECODE.fullmatch(info.timecode.strip())
    rate, nominal, sep = Fraction(info.average_rate), round(info.average_rate), parts[4] if parts else ":"

    def counted(t: float) -> float:
        """``t`` read as a timecode label (its seconds' fraction in frames, drop-frame counted), as seconds from the first frame."""
        exact = round(t * nominal, 6)  # a part frame is kept: 1:00:00.5 at 25 fps is 12.5 frames in, 0.5 s, not frame 12's 0.48
        whole, frames = divmod(int(exact), nominal)
        label = f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}{sep}{frames:02d}"
        return ((timecode_frame(label, rate) or 0) - first + exact - int(exact)) / float(rate)

    if not 0 <= counted(start) < info.duration:
        return ""
    until = "" if end is None else f" --end {counted(end):.3f}"
    return (f"; --start and --end count from the first frame (0), not from its timecode {info.timecode}: "
            f"on that timecode this is --start {counted(start):.3f}{until}")


def _frame_number_hint(info: StreamInfo, first: int, start: float, end: Optional[float]) -> str:
    """For a numbered image sequence's range given in its frame numbers (a compositor's ``--start 1003 --end 1006``
    on ``plate.1001.png``...): the seconds that range is, counted from the first frame."""
    rate = Fraction(info.average_rate or 1)
    last = first + math.ceil((info.duration or 0) * rate) - 1
    given = [start] + ([] if end is None else [end])
    if any(t != int(t) or not first <= t <= last + 1 for t in given):
        return ""
    def seconds(number: float) -> str:
        """Frame ``number``'s time, rounded down to a microsecond: the frame at it is still kept (or, for --end, left out)."""
        return f"{math.floor((Fraction(int(number)) - first) / rate * 1_000_000) / 1_000_000:.6f}".rstrip("0").rstrip(".")

    frames = f"frames {int(start)} to {int(end) - 1}" if end is not None else f"frames from {int(start)} on"
    return (f"; --start and --end are seconds, not frame numbers: {frames} of this sequence (numbered from {first} at "
            f"{float(rate):g} fps) are --start {seconds(start)}{'' if end is None else f' --end {seconds(end)}'}")


class TrimmedSource(Source):
    """The frames of ``inner`` from ``start`` (inclusive) to ``end`` (exclusive), in seconds from its first
    frame, with timestamps moved so the first of them is at 0.

    The first kept frame is found here, before the output opens, so ``window`` (what the sound,
    subtitles and chapters keep) starts exactly where the pictures do; ask ``inner`` for deep
    pictures (``deliver_deep``) before wrapping it.
    """

    def __init__(self, inner: Source, start: float = 0.0, end: Optional[float] = None) -> None:
        super().__init__()
        if start < 0 or (end is not None and end <= start):
            raise ValueError(f"a time range needs 0 <= start < end, got start {start}, end {end}")
        self.inner = inner
        info = inner.info
        tb = Fraction(info.time_base)
        first_pts = inner.first_pts if isinstance(inner, VideoFileSource) else None
        if isinstance(inner, VideoFileSource) and first_pts is not None and start > 0:
            inner.start_at(first_pts + math.floor(Fraction(start) / tb))
        frames = iter(inner)
        kept: Optional[Frame] = None
        for frame in frames:
            if frame.pts is None:
                raise SourceError(f"{_name(inner)}: a frame without a timestamp; a time range needs them")
            if first_pts is None:
                first_pts = frame.pts
            t = float((frame.pts - first_pts) * tb)
            if end is not None and t >= end - 1e-9:
                break
            if t >= start - 1e-9:
                kept = frame
                break
        if kept is None:
            length = f"; the video lasts {info.duration:.3f} s" if info.duration else ""
            raise SourceError(f"{_name(inner)} has no frames from {start:g} s{'' if end is None else f' to {end:g} s'}{length}"
                              f"{_timecode_hint(info, start, end)}")
        assert first_pts is not None and kept.pts is not None
        if isinstance(inner, VideoFileSource):  # its warnings (a cut-off file's) count the frames kept, not those before the start
            inner.count_from(kept.index)
        self._frames, self._first = frames, kept
        self._shift, self._first_pts, self._end = kept.pts, first_pts, end
        offset = float((kept.pts - first_pts) * tb)  # where the output starts in the video, in seconds
        self.window = TimeWindow(float(kept.pts * tb), None if end is None else float(first_pts * tb) + end)
        self._info = self._trimmed_info(info, offset, end)
        self._iterated = False

    @staticmethod
    def _trimmed_info(info: StreamInfo, offset: float, end: Optional[float]) -> StreamInfo:
        changes: dict[str, Any] = {}
        duration = None if info.duration is None else max(0.0, info.duration - offset)
        if end is not None:
            duration = end - offset if duration is None else min(duration, end - offset)
        changes["duration"] = duration
        rate = info.average_rate
        if rate and duration is not None:
            estimate = math.ceil(duration * float(rate) - 1e-6)
            changes["frame_count"] = estimate if info.frame_count is None else min(info.frame_count, estimate)
        else:
            changes["frame_count"] = None
        if info.timecode and rate:
            changes["timecode"] = shift_timecode(info.timecode, round(offset * float(rate)), Fraction(rate))
        return dataclasses.replace(info, **changes)

    @property
    def info(self) -> StreamInfo:
        return self._info

    def __iter__(self) -> Iterator[Frame]:
        self._claim_iteration()
        return self._iter()

    def _iter(self) -> Iterator[Frame]:
        frame: Optional[Frame] = self._first
        self._first = None
        index = 0
        while frame is not None:
            assert frame.pts is not None
            if self._end is not None and float((frame.pts - self._first_pts) * frame.time_base) >= self._end - 1e-9:
                return
            yield dataclasses.replace(frame, pts=frame.pts - self._shift, index=index)
            index += 1
            frame = next(self._frames, None)
            if frame is not None and frame.pts is None:
                raise SourceError(f"{_name(self.inner)}: frame {index} has no timestamp; a time range needs them")

    def _close(self) -> None:
        self.inner.close()


def _name(source: Source) -> str:
    return str(getattr(source, "path", None) or getattr(source, "pattern", None) or "the input")
