"""Frames an MPEG-TS file (``.ts``, a camera's ``.m2ts``/``.mts``) lost, found from its video packets.

A recording over a lossy network (an RTSP camera, IPTV, DVB) or a damaged copy misses 188-byte packets, or has a run
of bytes zeroed. FFmpeg's demuxer logs "Continuity check failed" / "Packet corrupt" / "PES packet size mismatch" and
reads on: PyAV raises nothing, the frames in the missing packets are gone and the decoder drops the ones that needed
them, so ``process`` wrote a shorter output with exit 0, its matte no longer in step with the source. The demuxer's
log cannot be read safely (see ``io.mkv_damage``), but it flags the packet it was assembling when the continuity
counters jumped (``Packet.is_corrupt``), and respects a discontinuity the stream announces (a spliced broadcast).

A flagged packet alone is no lost frame: a packet of a frame's own data lost damages that frame, which the decoder
conceals (``ConcealedFrames`` warns of it), and a flipped counter loses nothing. Frames are lost where the decoding
times jump past the next frame's right after a flagged packet (``LossWatch``): whole frames' packets went missing.
A jump without a flagged packet (variable frame rate, a pause in a screen recording) is the stream's own timing, and
so is a flagged one the stream takes elsewhere unflagged (a 24 fps film in a 29.97 fps clock steps one and two ticks);
a frame is the stream's smallest step, not its declared rate (GStreamer's MPEG-2 declares the field rate: half a
frame). A step back (a splice, files joined with cat) is ``VideoFileSource._out_of_order``'s.

Only the packets are read (demuxed, not decoded): about 2.5 s for a 10-minute 18 MB file on a busy 2-core machine,
once per file and version in a process (``lost_frames`` is cached).
"""

from __future__ import annotations

import bisect
import functools
import logging
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

import av
import numpy as np

from birefvid.io.demuxing import demuxed
from birefvid.io.mkv_damage import SkippedData

log = logging.getLogger(__name__)

# packets after a flagged one within which a jump in decoding time is its loss (B-frames: the frame after the damaged
# one in decode order may be the first that shows the jump)
AFTER_FLAGGED = 4
# a step in decoding time this many frame intervals long or more is a lost frame (1: the next frame's)
LOST_STEP = 1.5
# a step in decoding time this many times shorter than the declared frame interval, or shorter, is not a frame's (a
# field's is half, GStreamer's MPEG-2 declares the field rate: a quarter of a true frame)
NUDGE = 8
# and never a step longer than this (seconds): FFmpeg's nudge is a tick or two, while a stream may step far faster than
# its declared rate (a screen recording whose first frames, which FFmpeg guesses the rate from, came a second apart),
# and its frames set aside as nudges hid a loss of dozens of them
NUDGE_MOST_S = Fraction(1, 2000)
# the distinct steps in decoding time remembered as the stream's own (a variable frame rate has many)
USUAL_STEPS = 256
# the formats checked: FFmpeg names M2TS/MTS (192-byte packets) "mpegts" too
TS_FORMATS = frozenset({"mpegts"})


@dataclass(frozen=True)
class Loss:
    """Whole frames lost at one place of a stream: ``count`` of them (estimated from the step in decoding time) after
    the packet decoded at ``before`` (its dts), the next packet there decoded at ``after``, at byte ``offset`` (the
    packet flagged corrupt)."""

    count: int
    before: int
    after: int
    offset: int
    flagged_pts: Optional[int]


def _crosses(points: tuple[int, ...], behind: int, pos: int) -> bool:
    """Whether any of the sorted byte offsets ``points`` lies in (``behind``, ``pos``]: by bisection, as a ``cat`` of an
    hour of HLS segments has hundreds of joins and the check runs for every video packet."""
    i = bisect.bisect_right(points, behind)
    return i < len(points) and points[i] <= pos


class LossWatch:
    """Watches one video stream's packets in demux order for whole frames lost (``packet`` returns a ``Loss``).
    ``interval``: the stream's frame interval in its time base, where known; the shortest step seen is taken too."""

    def __init__(self, interval: Optional[Fraction] = None, breaks: tuple[int, ...] = (),
                 time_base: Optional[Fraction] = None, joins: tuple[int, ...] = ()) -> None:
        """``breaks``: the bytes where the file's packets lose their sync (``sync_breaks``): a jump in decoding time
        across one is a loss too, where the counters happened to agree (16 packets of a PID lost, or a multiple).
        ``time_base``: the stream's, which caps a nudge at ``NUDGE_MOST_S``. ``joins``: the bytes where a fresh muxer's
        output was joined on (``muxer_joins``): the packets flagged before one lost nothing (FFmpeg flags the frame
        before the join, whose counters restart), and the time steps across it as the stream's own."""
        self._declared = interval if interval and interval > 0 else None
        self.interval = self._declared
        # a step this small is no frame's but a muxer's nudge: FFmpeg makes a decoding time that would repeat one tick
        # later ("Non-monotonous DTS"), and a one-tick frame counted every loss in ticks (93843 frames for 24 lost)
        # (an eighth of the declared interval, at most NUDGE_MOST_S: the declared rate may be far slower than the steps)
        self._nudge = int(self._declared / NUDGE) if self._declared is not None else 0
        if time_base:
            self._nudge = min(self._nudge, int(NUDGE_MOST_S / Fraction(time_base)))
        self._smallest: Optional[int] = None  # the smallest step in decoding time seen
        self._guessed = False  # ``interval`` is the declared rate's, not a step seen
        self._usual: dict[int, None] = {}  # the steps seen away from any flagged packet: the stream's own timing
        self._breaks = breaks
        self._joins = tuple(sorted(joins))
        self._pos: Optional[int] = None
        self._last: Optional[int] = None
        self._flagged: Optional[tuple[int, Optional[int]]] = None  # (byte, pts) of the last packet flagged corrupt
        self._run_from: Optional[tuple[int, Optional[int]]] = None  # the first of the flagged ones right before it
        self._since_flag = AFTER_FLAGGED + 1
        self._told: Optional[tuple[int, Optional[int]]] = None  # the flagged packet a ``Loss`` was last returned for
        self._packets = 0  # video packets seen

    def packet(self, packet: av.Packet) -> Optional[Loss]:
        if not packet.size:
            return None
        self._packets += 1
        if packet.is_corrupt:
            self._flag((packet.pos if packet.pos is not None else -1, packet.pts))
        else:
            self._since_flag += 1
        pos = packet.pos if packet.pos is not None and packet.pos >= 0 else None
        behind, self._pos = self._pos, pos if pos is not None else self._pos
        if behind is not None and pos is not None and _crosses(self._joins, behind, pos):
            self._flagged = self._run_from = None  # a join crossed: what was flagged before it lost nothing
            self._since_flag = AFTER_FLAGGED + 1
        if behind is not None and pos is not None:
            crossed = [b for b in self._breaks if behind < b <= pos]
            if crossed and (self._flagged is None or self._since_flag > AFTER_FLAGGED):
                # the packets between lost their sync or counters skip: taken as one flagged, unless FFmpeg flagged
                # one just before (the frame whose packets were lost, which an --end must leave out)
                self._flag((crossed[0], packet.pts))
        at = packet.dts if packet.dts is not None else packet.pts
        if at is None:
            return None
        last, self._last = self._last, at
        if last is None or at <= last:
            return None
        step = at - last
        if step <= self._nudge:
            return None
        # a frame's step is the stream's own, its declared rate a guess for the first step only: GStreamer's MPEG-2
        # and interlaced streams declare the field rate, half a frame's step, and every step then read as a frame lost
        # (ints compared per packet, a Fraction made only when the interval changes: live runs this on every packet)
        if self._smallest is None:
            self._smallest = step
            self.interval = Fraction(step) if self._declared is None else min(self._declared, Fraction(step))
            self._guessed = self.interval != step
        elif step < self._smallest or self._guessed:
            self._smallest = min(self._smallest, step)
            self.interval, self._guessed = Fraction(self._smallest), False
        if self._since_flag > AFTER_FLAGGED or self._flagged is None:
            if len(self._usual) < USUAL_STEPS:
                self._usual[step] = None
            return None
        if step < LOST_STEP * self.interval or self.usual(step):
            return None
        self._told = self._flagged
        return Loss(max(1, round(step / self.interval) - 1), last, at, self._flagged[0], self._flagged[1])

    def _flag(self, flagged: tuple[int, Optional[int]]) -> None:
        """Note a packet flagged corrupt (or a sync break crossed): ``flagged``, its (byte, pts)."""
        if self._flagged is None or self._since_flag > AFTER_FLAGGED:
            self._run_from = flagged
        self._flagged, self._since_flag = flagged, 0

    def damaged_end(self) -> Optional[tuple[int, Optional[int]]]:
        """After the last packet: (byte, pts) of a packet flagged corrupt, or a sync break crossed, among the last
        ``AFTER_FLAGGED`` with no loss found after it, where packets came before it: the stream's end was lost with
        packets missing or damaged, how much unknown (no later time says). A file cut off ends on packets unflagged.
        The first of the flagged packets each within ``AFTER_FLAGGED`` of the one before: FFmpeg flags the frame where
        the counters jumped off their run and the one where they came back, which ``_packets_broken`` reads from."""
        if self._flagged is None or self._since_flag >= AFTER_FLAGGED or self._told == self._flagged:
            return None
        return self._run_from if self._packets > self._since_flag + 1 else None

    def usual(self, step: int) -> bool:
        """Whether the stream steps by ``step`` (give or take an eighth of a frame) where no packet was flagged: a
        variable frame rate, a 24 fps film in a 29.97 fps stream's steps of one and two frames; such a step after a
        packet lost within a frame is the stream's timing, not frames lost."""
        tolerance = max(Fraction(1), (self.interval or Fraction(1)) / 8)
        return any(abs(step - s) <= tolerance for s in self._usual)


def frame_interval(stream: av.video.stream.VideoStream) -> Optional[Fraction]:
    """One frame's length in ``stream``'s time base, from its declared rate; None where it declares none."""
    rate = stream.average_rate or stream.guessed_rate
    if not rate or not stream.time_base:
        return None
    return 1 / (Fraction(rate) * Fraction(stream.time_base))


def sync_breaks(path: str) -> tuple[int, ...]:
    """The bytes where an MPEG-TS file's packets (188 bytes, 192 in M2TS, 204 with FEC) lose their sync byte (0x47)
    before it comes back: bytes zeroed, or lost from within a packet. Every packet's first byte is looked at (numpy,
    the file mapped): what the demuxer reads anyway. A partial packet at the end is ``mpegts_cut_off``'s."""
    data = np.memmap(path, dtype=np.uint8, mode="r")
    n = len(data)
    size, at = _alignment(data, 0)
    if size is None:
        return ()
    found: list[int] = []
    while at < n and len(found) < 64:
        heads = data[at:n:size]
        heads = heads[: (n - at) // size]  # whole packets only
        bad = np.flatnonzero(heads != 0x47)
        if not len(bad):
            break
        where = at + int(bad[0]) * size
        found.append(_packet_start(where, size))
        size2, at2 = _alignment(data, where + 1)
        if size2 is None:
            break
        size, at = size2, at2
    return tuple(found)


# packets looked at a block in ``counter_breaks``: its arrays stay a few tens of MB on a recording of any length
COUNTER_BLOCK = 1 << 20


def counter_breaks(path: str, pid: int) -> tuple[int, ...]:
    """The bytes of the packets of ``pid`` whose continuity counter skips (no discontinuity announced): packets of it
    lost before them. FFmpeg flags no packet where the packets after the gap start a new PES of declared length (a
    broadcast's, ``-omit_video_pes_length 0``): 40 packets lost there, 23 frames missing, were not seen. A counter
    flipped by a bit error breaks twice, with no time lost (``LossWatch`` counts only a jump in time across it). A
    fresh muxer's output joined on (``muxer_joins``) is none. Read ``COUNTER_BLOCK`` packets at a time, the last counter
    carried across, within a run of packets in sync."""
    return _counters(path, pid)[0]


def muxer_joins(path: str, pid: int) -> tuple[int, ...]:
    """The bytes of the packets of ``pid`` where the output of a fresh muxer was joined on (``cat seg*.ts``: HLS or
    ``-f segment`` parts from a packager that starts each one's counters at 0, two recordings): every counter restarts
    there, the PAT's at 0 before the video's first packet, itself at 0 and starting a frame. Nothing was lost at a join,
    and the time may step there as the stream steps anywhere (a pause of a variable frame rate, an audio-only stretch,
    the next recording's clock ahead), which read as frames lost where FFmpeg flags the frame before the join."""
    return _counters(path, pid)[1]


# the PID of the Program Association Table, which every muxer writes first and repeats, its counter from 0
PAT_PID = 0


def _counters(path: str, pid: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(``counter_breaks``, ``muxer_joins``) of ``path``'s ``pid``, from one read of the packets' headers."""
    data = np.memmap(path, dtype=np.uint8, mode="r")
    n = len(data)
    size, at = _alignment(data, 0)
    found: list[int] = []
    joins: list[int] = []
    last: Optional[int] = None  # the counter of the last packet of ``pid`` with a payload, in this run in sync
    last_pat: Optional[int] = None  # the PAT's last counter, in this run in sync
    restarted = False  # the PAT's counter restarted after the last packet of ``pid``
    while size is not None and at < n and len(found) < 64:
        count = min((n - at) // size, COUNTER_BLOCK)
        if count <= 0:
            break
        heads = data[at : at + count * size].reshape(count, size)[:, :6]
        synced = heads[:, 0] == 0x47
        end = count if synced.all() else int(np.argmin(synced))  # to the first sync break (``sync_breaks``'s)
        pids = ((heads[:end, 1].astype(np.int32) & 0x1F) << 8) | heads[:end, 2]
        restarts, last_pat = _pat_restarts(heads, np.flatnonzero(pids == PAT_PID), last_pat)
        rows = np.flatnonzero(pids == pid)
        rows = rows[(heads[rows, 3] & 0x10) != 0]  # with a payload: a packet without one does not count
        h = heads[rows]
        counter = (h[:, 3] & 0x0F).astype(np.int16)
        if len(counter):
            announced = ((h[:, 3] & 0x20) != 0) & (h[:, 4] > 0) & ((h[:, 5] & 0x80) != 0)
            before = np.empty_like(counter)
            before[1:] = counter[:-1]
            before[0] = last if last is not None else counter[0] - 1  # the run's first packet: nothing to skip from
            jumps = np.flatnonzero((((counter - before) & 0x0F) > 1) & ~announced)
            # a join: the video's counter restarts at 0 on a frame's first packet, the PAT's restarted since its last
            previous = np.concatenate(([-1], rows[:-1]))[jumps]
            pat_between = np.searchsorted(restarts, rows[jumps]) > np.searchsorted(restarts, previous, side="right")
            pat_between |= (jumps == 0) & restarted
            joined = pat_between & (counter[jumps] == 0) & ((h[jumps, 1] & 0x40) != 0)
            joins.extend(_packet_start(at + int(rows[k]) * size, size) for k in jumps[joined])
            found.extend(_packet_start(at + int(rows[k]) * size, size) for k in jumps[~joined][: 64 - len(found)])
            last = int(counter[-1])
            restarted = bool(len(restarts) and restarts[-1] > rows[-1])
        else:
            restarted = restarted or bool(len(restarts))
        if end == count:
            at += count * size
            continue
        last, last_pat, restarted = None, None, False  # a sync break: the packets after it are a new run
        size, at = _alignment(data, at + end * size + 1)
    return tuple(found), tuple(joins)


def _pat_restarts(heads: np.ndarray, rows: np.ndarray, last: Optional[int]) -> tuple[np.ndarray, Optional[int]]:
    """(the rows among ``rows``, PAT packets, whose counter restarts at 0 off its run, the PAT's last counter): where
    a fresh muxer's output begins. ``last``: the counter before the first row (None: the run's start, no restart)."""
    rows = rows[(heads[rows, 3] & 0x10) != 0]
    if not len(rows):
        return rows, last
    counter = (heads[rows, 3] & 0x0F).astype(np.int16)
    before = np.empty_like(counter)
    before[1:] = counter[:-1]
    before[0] = last if last is not None else 0  # the run's first PAT: nothing restarts there
    restart = (counter == 0) & (before != 15) & (before != 0)
    return rows[restart], int(counter[-1])


# the most stuffing bytes (0xFF) after the last packet looked through: a recorder or copy that pads its file to a
# sector or block (2048 bytes, a card's 32 KB) writes them, and FFmpeg reads such a file whole without a word
STUFFING_MOST = 1 << 16


def ends_whole(path: str) -> bool:
    """Whether an MPEG-TS file ends on a whole packet: its last three 188-, 192- or 204-byte packets start with the
    sync byte (M2TS's 4 bytes in), stuffing bytes (0xFF) after them aside. The file's size alone does not say: a
    recording whose start was cut at any byte (a stream joined midway, a clip cut out with dd) or that lost bytes
    within a packet midway ends whole all the same, and so does one padded with 0xFF to a sector."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            n = f.tell()
            tail_size = min(n, 3 * 204 + STUFFING_MOST)
            f.seek(n - tail_size)
            tail = f.read(tail_size)
    except OSError:
        return False
    # the last packet ends where the file does, or where its stuffing starts, or within the stuffing where that packet
    # is stuffing itself (a null packet, or an adaptation field alone: 0xFF to its end); a packet cut off and padded
    # after with 0xFF (a card's erased blocks) is told from a whole one only so, as one that carries data ends on it
    content = len(tail.rstrip(b"\xff"))

    def whole(end: int, size: int, sync: int) -> bool:
        return end >= 3 * size and all(tail[end - j * size + sync] == 0x47 for j in (1, 2, 3))

    def stuffing(end: int, size: int, sync: int) -> bool:
        head = end - size + sync
        pid = (tail[head + 1] & 0x1F) << 8 | tail[head + 2]
        return pid == 0x1FFF or tail[head + 3] & 0x30 == 0x20

    return any(whole(end, size, sync) and (end in (len(tail), content) or stuffing(end, size, sync))
               for size, sync in ((188, 0), (192, 4), (204, 0))
               for end in range(content, min(len(tail), content + size) + 1))


def _alignment(data: np.ndarray, start: int) -> tuple[Optional[int], int]:
    """(packet size, byte of the first sync byte) from ``start`` on: the first 0x47 that repeats 3 times a packet size
    apart (M2TS's sync byte sits 4 bytes into its 192: ``_m2ts_sync`` picks it over a timestamp byte before it), looked
    for in the next megabyte; (None, 0) where none does."""
    window = data[start : start + (1 << 20)]
    for k in np.flatnonzero(window == 0x47):
        k = int(k)
        for size in (188, 192, 204):
            if _repeats(window, k, size):
                return size, start + (_m2ts_sync(window, k) if size == M2TS_PACKET else k)
    return None, 0


# an M2TS packet: a 4-byte arrival timestamp, then the 188-byte packet with its sync byte
M2TS_PACKET = 192
M2TS_HEADER = 4


def _repeats(window: np.ndarray, k: int, size: int) -> bool:
    """Whether ``window`` holds 0x47 at ``k`` and 3 times ``size`` bytes apart after it."""
    return k + 3 * size < len(window) and all(window[k + j * size] == 0x47 for j in (0, 1, 2, 3))


def _m2ts_sync(window: np.ndarray, k: int) -> int:
    """The sync byte of 192-byte packets where the 0x47 at ``k`` repeats 192 bytes apart: ``k``, or the last 0x47 up to
    4 bytes after it that repeats too and starts a header that parses (adaptation field control not 0, which is
    reserved). A camera's timestamp carries a 0x47 that stays across packets (its high bytes change every 0.6 s and
    2.4 ms): taken for the sync byte, the packets were read 1-4 bytes early and the video's lost packets missed. The
    other way round, a header byte after the real sync byte repeating 0x47 (a PID ending 0x47 in three packets running,
    or PUSI with PID 0x7xx), is far rarer than a timestamp byte that stays."""
    found = [k + d for d in range(M2TS_HEADER + 1)
             if _repeats(window, k + d, M2TS_PACKET) and all(window[k + d + j * M2TS_PACKET + 3] & 0x30 for j in (0, 1, 2, 3))]
    return found[-1] if found else k


def _packet_start(sync: int, size: int) -> int:
    """The byte a packet starts at, whose sync byte is at ``sync``: M2TS's timestamp 4 bytes before it. FFmpeg's
    packet positions are these, which ``LossWatch`` compares the breaks and joins with: a break at the sync byte was
    crossed one packet late, after the jump in time it is there to explain, and an M2TS loss FFmpeg flagged nothing
    for was missed."""
    return max(0, sync - M2TS_HEADER) if size == M2TS_PACKET else sync


@dataclass(frozen=True)
class DamagedEnd:
    """The video's last packets of an MPEG-TS file flagged corrupt, no packet after them to say how much was lost:
    its end lost (packets missing from the end of a recording over a lossy network), where a file merely cut off ends
    on packets whose counters run on. ``offset``: the byte of the packet flagged; ``at``: its time from the first
    frame, in seconds (None where it has none)."""

    offset: int
    at: Optional[float]


@dataclass(frozen=True)
class _Scanned:
    lost: Optional[SkippedData]
    end: Optional[DamagedEnd]


_NOTHING = _Scanned(None, None)


def lost_frames(path: str, stream_index: int) -> Optional[SkippedData]:
    """Where the MPEG-TS file ``path`` lost whole frames of its video stream ``stream_index``, as the Matroska check
    says where its demuxer skips (``SkippedData``), or None; cached per file and version of it."""
    return _scanned(path, stream_index).lost


def damaged_end(path: str, stream_index: int) -> Optional[DamagedEnd]:
    """Where the MPEG-TS file ``path``'s video stream ``stream_index`` lost its end with packets missing or damaged
    (``DamagedEnd``), or None; from ``lost_frames``'s scan, cached with it."""
    return _scanned(path, stream_index).end


def _scanned(path: str, stream_index: int) -> _Scanned:
    try:
        seen = os.stat(path)
    except OSError:
        return _NOTHING
    return _lost_frames_of(os.path.realpath(path), stream_index, seen.st_size, seen.st_mtime_ns, seen.st_ino)


@functools.lru_cache(maxsize=64)
def _lost_frames_of(path: str, stream_index: int, size: int, mtime_ns: int, inode: int) -> _Scanned:
    try:
        return _scan(path, stream_index)
    except Exception as exc:  # noqa: BLE001 - a check on top of the demuxer: a flaw in it must not refuse a file FFmpeg reads
        log.debug("could not read the MPEG-TS packets of %s: %r", path, exc)
        return _NOTHING


def _scan(path: str, stream_index: int) -> _Scanned:
    with av.open(path) as container:
        stream = container.streams[stream_index]
        tb, pid = Fraction(stream.time_base), stream.id
        counters, joins = _counters(path, pid)
        breaks = tuple(sorted(set(sync_breaks(path)) | set(counters)))
        watch = LossWatch(frame_interval(stream), breaks, tb, joins)
        shown: list[int] = []  # the pts of every frame, to number the frames and find the keyframe after the damage
        keyframes: list[int] = []
        losses: list[Loss] = []
        for packet in demuxed(container, stream):  # on past EAGAIN where stuffing follows a packet cut off
            if not packet.size:
                continue
            if packet.pts is not None:
                shown.append(packet.pts)
                if packet.is_keyframe:
                    keyframes.append(packet.pts)
            found = watch.packet(packet)
            if found is not None:
                losses.append(found)
    # a step the stream takes elsewhere too, where nothing was flagged, is its own timing (seen only later in the file)
    loss = next((found for found in losses if not watch.usual(found.after - found.before)), None)
    flagged, end = watch.damaged_end(), None
    if flagged is not None and flagged[0] >= 0 and not _packets_broken(path, pid, flagged[0]):
        flagged = None  # a PES cut off by the file's end, whose declared length FFmpeg flags: a file merely cut off
    if flagged is not None and shown:
        end = DamagedEnd(flagged[0], None if flagged[1] is None else float((flagged[1] - min(shown)) * tb))
    if loss is None or not shown:
        return _Scanned(None, end)
    return _Scanned(_lost(loss, watch, shown, keyframes, tb), end)  # the end too: --start may skip the loss


# the packets of a PID whose counters a flip sets off their run at most (a bit error in one header, or a few in a row)
FLIP_MOST = 4


def _packets_broken(path: str, pid: int, start: int) -> bool:
    """Whether the packets of ``pid`` from byte ``start`` (the first of the last flagged packets) to the file's end lose
    their sync or skip a continuity counter (where no discontinuity is announced) not to come back onto its run within
    ``FLIP_MOST`` packets: packets there went missing, where counters a bit error flipped, the data whole, come back. FFmpeg flags the last
    frame's packet of a file cut off too, where its PES declares a length (GStreamer's, a broadcast's, a camera's, and
    ffmpeg's with -omit_video_pes_length 0) the file's end cut short; its counters run on."""
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(8 << 20)
    # FFmpeg's position is a packet's sync byte (M2TS's 4-byte header before it, or the header itself)
    found = next(((size, first) for first in (0, 4) for size in (188, 192, 204)
                  if len(data) > first and data[first] == 0x47 and (len(data) <= first + size or data[first + size] == 0x47)), None)
    if found is None:  # no packet starts there: a sync break
        return len(data) >= 4
    size, first = found
    if size == M2TS_PACKET and first == 0 and _synced_at(data, M2TS_HEADER):
        first = M2TS_HEADER  # a timestamp whose first byte is 0x47: the sync byte is the one after it
    last: Optional[int] = None
    # after a jump, the counter the packets before it would have gone on with, and the packets since: a packet back on
    # it within FLIP_MOST, the jump was counters flipped (a bit error in a header), the data whole; lost packets' never
    old: Optional[tuple[int, int]] = None
    for at in range(first, len(data), size):
        if at + 188 > len(data):  # a partial packet at the end: the file's cut, not a loss
            break
        if data[at] != 0x47:
            return True
        if ((data[at + 1] & 0x1F) << 8 | data[at + 2]) != pid:
            continue
        control, counter = data[at + 3] & 0x30, data[at + 3] & 0x0F
        if control & 0x20 and data[at + 4] and data[at + 5] & 0x80:  # the stream announces a discontinuity
            last = old = None
        if not control & 0x10:  # no payload: its counter does not count
            continue
        if old is not None:
            if counter == old[0]:
                old = None  # back on its run: flipped
            elif counter not in ((last + 1) & 0x0F, last) or old[1] >= FLIP_MOST:  # type: ignore[operator]
                return True  # another jump, or too long off its run
            else:
                old = ((old[0] + 1) & 0x0F, old[1] + 1)
        elif last is not None and counter not in ((last + 1) & 0x0F, last):
            old = ((last + 2) & 0x0F, 1)
        last = counter
    return old is not None  # a jump with nothing after it to tell a flip from a loss


def _synced_at(data: bytes, at: int) -> bool:
    """Whether ``data`` holds M2TS packets' sync byte at ``at`` and 192 bytes on, where it is that long."""
    return len(data) > at and data[at] == 0x47 and (len(data) <= at + M2TS_PACKET or data[at + M2TS_PACKET] == 0x47)


def _lost(loss: Loss, watch: LossWatch, shown: list[int], keyframes: list[int], tb: Fraction) -> SkippedData:
    shown.sort()
    first = shown[0]
    # the first frame missing shows after the last one decoded before the loss and its neighbours, which B-frames
    # reorder: the first hole in the presentation times from a few frames before the loss on
    interval = watch.interval or Fraction(1)
    start = max(0, bisect.bisect_left(shown, loss.before) - 2 * AFTER_FLAGGED)
    hole = next((k + 1 for k in range(start, len(shown) - 1)
                 if shown[k + 1] - shown[k] >= LOST_STEP * interval and not watch.usual(shown[k + 1] - shown[k])), None)
    if hole is None:  # no hole in what is shown (the times were rewritten): where the decoding times jumped
        hole = bisect.bisect_right(shown, loss.before)
    # the last frame whole before the damage: before the hole, and shown before the packet flagged (its data was lost
    # too); an --end at its time stops there without reading on into the damage, as the Matroska check's
    last_good = hole - 1
    if loss.flagged_pts is not None:
        last_good = min(last_good, bisect.bisect_left(shown, loss.flagged_pts) - 1)
    if last_good < 0:
        return SkippedData(offset=loss.offset, what=_what(loss), frame=0, good_until=None, resumes_at=_resumes(
            keyframes, shown[hole - 1] if hole else first, first, tb), at=0.0, lost=True)  # fmt: skip
    good_pts = shown[last_good]
    good = Fraction(math.floor((good_pts - first) * tb * 1000), 1000)
    frame = last_good + 1  # the first frame damaged or missing
    at = float((min(shown[frame], good_pts + interval) if frame < len(shown) else good_pts + interval) - first) * float(tb)
    return SkippedData(offset=loss.offset, what=_what(loss), frame=frame, good_until=float(good) if good > 0 else None,
                       resumes_at=_resumes(keyframes, shown[hole - 1], first, tb), at=at, lost=True)


def _what(loss: Loss) -> str:
    """The loss in words: 'at least': the count is of the frames whose packets are gone, and the decoder drops the
    frames that refer to them too, up to the next keyframe (an HEVC clip said '5 frames' where 27 were missing)."""
    return (f"at least {loss.count} frame{'s' if loss.count != 1 else ''} of its video lost with MPEG-TS packets that are "
            f"missing or damaged (at byte {loss.offset})")


def _resumes(keyframes: list[int], after: int, first: int, tb: Fraction) -> Optional[float]:
    """The time of the first keyframe after ``after`` (a pts), rounded up to a millisecond, from the first frame."""
    found = next((k for k in keyframes if k > after), None)
    return None if found is None else float(Fraction(math.ceil((found - first) * tb * 1000), 1000))

