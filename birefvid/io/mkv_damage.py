"""Damage inside a Matroska/WebM file that FFmpeg's demuxer skips, found by walking the file's own structure.

A damaged Cluster (a bad sector, a broken copy) makes FFmpeg's Matroska demuxer log "Element at 0x... exceeds
containing master element ...", look for the next Cluster and read on: PyAV raises nothing, so the frames in between
were lost without a word. The demuxer's log cannot be read safely (PyAV's Python log callback lets a decoder thread
take the GIL for each message, which can deadlock: PyAV issues #751, #367/#909), so the structure is walked here as
the demuxer walks it: the Segment's top-level elements by their EBML IDs and sizes, and each Cluster's children
(SimpleBlock, BlockGroup, Timestamp ...; a Cluster of unknown size, as a live recording writes, ends at the next
top-level ID). An element whose ID is none of those its parent may hold, or whose size runs past its parent's end, is
where the demuxer loses its way. Only element headers are read (a seek and a few bytes each), never the whole file.

A file cut off (a download stopped, a recording killed mid-write) is no damage here: its last element running past the
end of the file is ``video_source.mkv_cut_off``'s, and of a live recording ``declared_shortfall``'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Iterator, Optional

from birefvid.io.mkv_info import CLUSTER, EBML, INFO, SEGMENT

SEEK_HEAD, TRACKS, CUES, ATTACHMENTS, CHAPTERS, TAGS = 0x114D9B74, 0x1654AE6B, 0x1C53BB6B, 0x1941A469, 0x1043A770, 0x1254C367
VOID, CRC32 = 0xEC, 0xBF
CUE_POINT, CUE_TRACK_POSITIONS, CUE_CLUSTER_POSITION = 0xBB, 0xB7, 0xF1
TOP_LEVEL = {SEEK_HEAD, INFO, TRACKS, CLUSTER, CUES, ATTACHMENTS, CHAPTERS, TAGS, VOID, CRC32}
TIMESTAMP, SIMPLE_BLOCK, BLOCK_GROUP, BLOCK, REFERENCE_BLOCK = 0xE7, 0xA3, 0xA0, 0xA1, 0xFB
# a Cluster's children: Timestamp, SilentTracks, Position, PrevSize, SimpleBlock, BlockGroup, EncryptedBlock
CLUSTER_CHILDREN = {TIMESTAMP, 0x5854, 0xA7, 0xAB, SIMPLE_BLOCK, BLOCK_GROUP, 0xAF, VOID, CRC32}
# a BlockGroup's: Block, BlockVirtual, BlockAdditions, BlockDuration, ReferencePriority, ReferenceBlock,
# ReferenceVirtual, CodecState, DiscardPadding, Slices, ReferenceFrame
GROUP_CHILDREN = {BLOCK, 0xA2, 0x75A1, 0x9B, 0xFA, REFERENCE_BLOCK, 0xFD, 0xA4, 0x75A2, 0x8E, 0xC8, VOID, CRC32}
TIMESTAMP_SCALE, TRACK_ENTRY, TRACK_NUMBER, TRACK_TYPE, DEFAULT_DURATION = 0x2AD7B1, 0xAE, 0xD7, 0x83, 0x23E383
VIDEO_TRACK = 1
_CLUSTER_BYTES, _CUES_BYTES = CLUSTER.to_bytes(4, "big"), CUES.to_bytes(4, "big")
_SCAN_CHUNK = 1 << 16
_CUES_TAIL = 4 << 20  # how far from a file's end its Cues are looked for by their ID
_WINDOW = 4096
_LOST_HEADER = 64  # how far past a damaged top-level element's start a Cluster's first child is looked for
_REORDER = 32  # the video frames looked back on for B-frames stored ahead of the damage (H.264 holds at most 16)


@dataclass(frozen=True)
class SkippedData:
    """Where a Matroska file is damaged so that the demuxer skips to the next Cluster: ``offset``, the byte where its
    structure breaks (``what``: which element, in words); ``frame``, the number of video frames before it; and in
    seconds from the first frame, ``good_until``, where the frames read whole before it end (an ``--end`` there
    leaves out the last frame before the damage, whose data may be damaged too), and ``resumes_at``, the next
    video keyframe after it (None where there is none). ``io.ts_damage`` says where an MPEG-TS file lost frames in the
    same form: ``at``, that frame's time (None: not said), and ``lost`` True (``what`` then says what was lost)."""

    offset: int
    what: str
    frame: int
    good_until: Optional[float]
    resumes_at: Optional[float]
    at: Optional[float] = None
    lost: bool = False


class _Damage(Exception):
    def __init__(self, offset: int, what: str) -> None:
        super().__init__(what)
        self.offset, self.what = offset, what


class _CutOff(Exception):
    """An element runs past the end of the file: a cut-off file, not damage."""


def _vint(data: bytes, at: int, keep_marker: bool) -> Optional[tuple[int, int]]:
    """(value, length) of the EBML number at ``data[at:]``; -1 for an unknown size; None for a bad first byte or
    too few bytes. IDs are at most 4 bytes long."""
    if at >= len(data) or data[at] == 0:
        return None
    first = data[at]
    if first & 0x80:  # one byte: most IDs, sizes and track numbers
        return (first if keep_marker else -1 if first == 0xFF else first & 0x7F), 1
    length = 9 - first.bit_length()
    if keep_marker and length > 4 or at + length > len(data):
        return None
    value = int.from_bytes(data[at : at + length], "big")
    if keep_marker:
        return value, length
    value &= (1 << (7 * length)) - 1
    return (-1 if value == (1 << (7 * length)) - 1 else value), length


class _Walker:
    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f, self.size = f, size
        self.scale = 1_000_000  # ns per tick (TimestampScale)
        self.video: set[int] = set()  # track numbers of video tracks
        self.numbers: set[int] = set()  # those of every track
        self.step: Optional[int] = None  # a video frame's duration in ticks (DefaultDuration), where declared
        self.window, self.at = b"", 0  # the bytes last read, from ``at``: small blocks' headers share one read
        self.in_cluster = False  # walking a Cluster's children
        self.clusters = 0  # the Clusters entered
        self.top = self.before = 0  # where the last top-level element begun starts, and the one before it
        self.cues: list[tuple[int, int]] = []  # (data start, end) of the Cues walked
        self.cluster_time = 0  # the Timestamp of the last Cluster walked, in ticks

    def read(self, pos: int, length: int) -> bytes:
        """``length`` bytes (fewer at the end of the file) from ``pos``, from the window where it holds them."""
        start = pos - self.at
        if 0 <= start and start + length <= len(self.window):
            return self.window[start : start + length]
        self.f.seek(pos)
        self.window, self.at = self.f.read(max(length, _WINDOW)), pos
        return self.window[:length]

    def header(self, pos: int) -> tuple[int, int, int]:
        """(id, size, header length) of the element at ``pos``; _Damage where no element header can be there."""
        data = self.read(pos, 12)
        got = _vint(data, 0, True)
        if got is None:
            if len(data) < 2:
                raise _CutOff()
            raise _Damage(pos, "no element ID")
        element, n = got
        got = _vint(data, n, False)
        if got is None:
            if len(data) < 12:
                raise _CutOff()
            raise _Damage(pos, f"element 0x{element:X} has no valid size")
        return element, got[0], n + got[1]

    def tolerated(self, element: int, size: int, stop: int, end: Optional[int], known: set[int]) -> bool:
        """Whether an element of an ID its parent may not hold is one FFmpeg skips whole, as a newer muxer's: an ID of
        two bytes or more (every one-byte ID is allocated: one there is a damaged byte) whose size ends at its
        parent's end or at an element the parent may hold."""
        if element < 0x4000 or size < 0 or (end is not None and stop > end) or stop > self.size:
            return False
        if stop == end or stop == self.size:
            return True
        try:
            return self.header(stop)[0] in known
        except (_Damage, _CutOff):
            return False

    def uint(self, pos: int, length: int) -> int:
        return int.from_bytes(self.read(pos, length), "big")

    def children(self, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
        """(id, position, data start, data end) of the elements from ``start`` to ``end`` (known sizes only)."""
        pos = start
        while pos < end:
            element, size, n = self.header(pos)
            if size < 0 or pos + n + size > end:
                raise _Damage(pos, f"element 0x{element:X} runs past its parent's end")
            yield element, pos, pos + n, pos + n + size
            pos += n + size

    def info(self, start: int, end: int) -> None:
        for element, _, data, stop in self.children(start, end):
            if element == TIMESTAMP_SCALE and 0 < stop - data <= 8:
                self.scale = self.uint(data, stop - data) or 1_000_000

    def tracks(self, start: int, end: int) -> None:
        for element, _, data, stop in self.children(start, end):
            if element != TRACK_ENTRY:
                continue
            number = kind = duration = None
            for child, _, d, s in self.children(data, stop):
                if child in (TRACK_NUMBER, TRACK_TYPE, DEFAULT_DURATION) and 0 < s - d <= 8:
                    value = self.uint(d, s - d)
                    number, kind, duration = ((value, kind, duration) if child == TRACK_NUMBER else (number, value, duration)
                                              if child == TRACK_TYPE else (number, kind, value))  # fmt: skip
            if number is not None:
                self.numbers.add(number)
            if number is not None and kind == VIDEO_TRACK:
                self.video.add(number)
                if duration and self.step is None:
                    self.step = max(1, round(duration / self.scale))

    def block(self, pos: int, end: int, cluster_time: int) -> tuple[int, int, int]:
        """(track, time in ticks, flags) of the (Simple)Block whose data starts at ``pos``."""
        data = self.read(pos, min(12, end - pos))
        got = _vint(data, 0, False)
        if got is None or got[1] + 3 > len(data):
            raise _Damage(pos, "a block with no valid header")
        track, n = got
        if self.numbers and track not in self.numbers:  # the demuxer's error for it skips to the next Cluster
            raise _Damage(pos, f"a block of track {track}, which the file has not")
        return track, cluster_time + int.from_bytes(data[n : n + 2], "big", signed=True), data[n + 2]

    def cluster(self, pos: int, end: Optional[int]) -> Iterator[tuple[int, int, bool, int]]:
        """(track, time, keyframe, position) of the blocks of the Cluster whose data starts at ``pos`` and ends at
        ``end`` (None: unknown size, up to the next top-level element); its end position last, as (-1, 0, False, end)."""
        limit = self.size if end is None else min(end, self.size)
        time = 0
        while pos < limit:
            element, size, n = self.header(pos)
            if element in TOP_LEVEL and element not in (VOID, CRC32):
                # the next top-level element ends a Cluster of unknown size; in a sized one (its size damaged, too
                # large) the demuxer ends the Cluster there too, or resyncs to that very element: nothing is skipped
                break
            stop = pos + n + size
            if element not in CLUSTER_CHILDREN and not self.tolerated(element, size, stop, end, CLUSTER_CHILDREN | TOP_LEVEL):
                raise _Damage(pos, f"an unknown element 0x{element:X} in a Cluster")
            if size < 0 or (end is not None and stop > end):
                raise _Damage(pos, "a block runs past its Cluster's end")
            if stop > self.size:
                raise _CutOff()
            data = pos + n
            if element == TIMESTAMP and 0 < size <= 8:
                time = self.cluster_time = self.uint(data, size)
            elif element == SIMPLE_BLOCK:
                track, at, flags = self.block(data, stop, time)
                yield track, at, bool(flags & 0x80), pos
            elif element == BLOCK_GROUP:
                found: Optional[tuple[int, int, int]] = None
                referenced = False
                for child, at_pos, d, s in self.children(data, stop):
                    if child not in GROUP_CHILDREN and not self.tolerated(child, s - d, s, stop, GROUP_CHILDREN):
                        raise _Damage(at_pos, f"an unknown element 0x{child:X} in a BlockGroup")
                    if child == BLOCK:
                        found = self.block(d, s, time)
                    referenced = referenced or child == REFERENCE_BLOCK
                if found is not None:
                    yield found[0], found[1], not referenced, pos
            pos = stop
        yield -1, 0, False, pos

    def segment(self, start: int, end: int) -> Iterator[tuple[int, int, bool, int]]:
        """The blocks of the Segment's Clusters from ``start`` (a top-level element's position) to ``end``."""
        pos = start
        while pos < end:
            self.before, self.top = self.top, pos
            element, size, n = self.header(pos)
            if element not in TOP_LEVEL and not self.tolerated(element, size, pos + n + size, end, TOP_LEVEL):
                raise _Damage(pos, f"an unknown element 0x{element:X} where the Segment's next element should be")
            data = pos + n
            if element == CLUSTER:
                self.in_cluster, self.clusters = True, self.clusters + 1
                for block in self.cluster(data, None if size < 0 else data + size):
                    if block[0] < 0:
                        pos = block[3]
                        break
                    yield block
                self.in_cluster = False
                continue
            if size < 0:
                raise _Damage(pos, f"element 0x{element:X} of unknown size")
            if data + size > end:
                if data + size > self.size:
                    raise _CutOff()
                raise _Damage(pos, f"element 0x{element:X} runs past the Segment's end")
            if element == INFO:
                self.info(data, data + size)
            elif element == TRACKS:
                self.tracks(data, data + size)
            elif element == CUES:
                self.cues.append((data, data + size))
            pos = data + size

    def first_cluster(self, start: int, again: int, end: int) -> Optional[int]:
        """The position of the Segment's first Cluster as its Cues say (``start``: the Segment's data), the Cues found
        among the top-level elements walked before the damage, between where the demuxer resyncs from (``top``) and
        ``again`` (a Cluster), or after it; None without them."""
        cues = list(self.cues) + self.between(CUES, again)  # Cues before the Clusters, after the damage
        pos = again
        try:
            while pos < end:
                element, size, n = self.header(pos)
                if size < 0:
                    break  # a Cluster of unknown size: a live recording, which writes no Cues
                if element == CUES:
                    cues.append((pos + n, pos + n + size))
                    break
                pos += n + size
        except (_Damage, _CutOff):
            pass
        if not cues:  # a damaged Cluster on the way: the Cues at the end, found by their ID (a SeekHead's holds it too)
            tail = max(again, end - _CUES_TAIL)
            self.f.seek(tail)
            chunk = self.f.read(end - tail)
            at = chunk.rfind(_CUES_BYTES)
            while at >= 0 and not cues:
                try:
                    _, size, n = self.header(tail + at)
                    if 0 <= size and tail + at + n + size <= end and self.cued_first(tail + at + n, tail + at + n + size):
                        cues.append((tail + at + n, tail + at + n + size))
                except (_Damage, _CutOff):
                    pass
                at = chunk.rfind(_CUES_BYTES, 0, at)
        for where in cues:
            first = self.cued_first(*where)
            if first is not None:
                return start + first
        return None

    def between(self, element: int, again: int) -> list[tuple[int, int]]:
        """(data start, end) of each element of ID ``element`` found by its ID from where the demuxer resyncs
        (``top``) to ``again``, whole before it (a SeekHead holds the IDs too: each place is tried)."""
        found, key = [], element.to_bytes(4, "big")
        self.f.seek(self.top + 1)
        chunk = self.f.read(max(0, again - self.top - 1))
        at = chunk.find(key)
        while at >= 0:
            try:
                _, size, n = self.header(self.top + 1 + at)
                if 0 <= size and self.top + 1 + at + n + size <= again:
                    found.append((self.top + 1 + at + n, self.top + 1 + at + n + size))
            except (_Damage, _CutOff):
                pass
            at = chunk.find(key, at + 1)
        return found

    def cued_first(self, data: int, stop: int) -> Optional[int]:
        """The least CueClusterPosition of the first CuePoints of the Cues from ``data`` to ``stop``, or None."""
        positions = []
        try:
            for point, _, d, s in self.children(data, stop):
                for child, _, cd, cs in self.children(d, s) if point == CUE_POINT else ():
                    for grand, _, gd, gs in self.children(cd, cs) if child == CUE_TRACK_POSITIONS else ():
                        if grand == CUE_CLUSTER_POSITION and 0 < gs - gd <= 8:
                            positions.append(self.uint(gd, gs - gd))
                if len(positions) >= 8:
                    break
        except (_Damage, _CutOff):
            return None
        return min(positions) if positions else None

    def lost_cluster(self, at: int) -> bool:
        """Whether the damaged top-level element at ``at`` was a Cluster whose header (ID, size) alone was lost: within
        ``_LOST_HEADER`` bytes a Timestamp not before the last Cluster's, then blocks of the file's tracks up to the next
        top-level element or the file's end. The demuxer resyncs past it to the next top-level element and loses its
        frames; a damaged Cues, Tags or Void after the last Cluster holds no such run and loses none."""
        since = self.cluster_time
        data = self.read(at, _LOST_HEADER)
        found = False
        for i in (i for i in range(1, len(data)) if data[i] == TIMESTAMP):
            try:
                blocks = list(self.cluster(at + i, None))
            except (_Damage, _CutOff):
                continue
            if len(blocks) > 1 and blocks[0][0] in self.numbers and self.cluster_time >= since:
                found = True
                break
        self.cluster_time = since
        return found

    def next_cluster(self, after: int) -> Optional[int]:
        """Where the demuxer reads on after damage at ``after``: the next Cluster ID whose element is plausible (a
        size, then a Timestamp or another Cluster child), searched as FFmpeg resyncs."""
        pos = after + 1
        while pos < self.size:
            chunk = self.read(pos, _SCAN_CHUNK + 3)
            if len(chunk) < 4:
                return None
            at = chunk.find(_CLUSTER_BYTES)
            while at >= 0:
                try:
                    element, size, n = self.header(pos + at)
                    child = self.header(pos + at + n)[0]
                    if element == CLUSTER and child in CLUSTER_CHILDREN:
                        return pos + at
                except (_Damage, _CutOff):
                    pass
                at = chunk.find(_CLUSTER_BYTES, at + 1)
            pos += _SCAN_CHUNK
        return None


def _run_end(times: list[int], step: Optional[int]) -> Optional[int]:
    """The time where the frames at ``times`` (from a keyframe, in any order) stop being one gap-free run, in ticks:
    every frame shown before it is among them (B-frames are stored after the frame shown after them)."""
    if not times:
        return None
    times = sorted(set(times))
    if step is None:
        gaps = [b - a for a, b in zip(times, times[1:]) if b > a]
        step = min(gaps) if gaps else None
    if step is None:
        return times[0]  # one frame: where it is shown (an --end there leaves it out)
    end = times[0]
    for t in times[1:]:
        if t - end > step * 3 // 2:
            break
        end = t
    return end + step


def _good_end(since_key: list[int], recent: list[int], step: Optional[int]) -> Optional[int]:
    """Where the frames whole before the damage end, in ticks (``since_key``: the video blocks stored since the last
    keyframe, it first; ``recent``: the last ``_REORDER`` stored, in file order): the run of those before the last
    block, which may be damaged itself. Where that block is the keyframe, the run of the recent ones before it: a
    Cluster damaged at its start, right after a keyframe, gave no --end, as if nothing before the damage could be
    processed (an open GOP's frames shown before its keyframe are stored after it: the run ends before them)."""
    if len(since_key) == 1:
        return _run_end(recent[:-1], step)
    return _run_end(since_key[:-1], step)


def skipped_data(path: str | Path) -> Optional[SkippedData]:
    """Where the Matroska/WebM file ``path`` is damaged so that FFmpeg's demuxer skips data to the next Cluster, or
    None: whole, cut off (see the module), no Matroska, or unreadable."""
    try:
        with open(path, "rb", buffering=0) as f:
            size = f.seek(0, 2)
            walker = _Walker(f, size)
            try:
                element, header, n = walker.header(0)
                if element != EBML or header < 0:
                    return None
                element, segment, m = walker.header(n + header)
            except (_Damage, _CutOff):
                return None
            if element != SEGMENT:
                return None
            start = n + header + m
            end = size if segment < 0 else min(start + segment, size)
            return _walk(walker, start, end)
    except OSError:
        return None


def _walk(walker: _Walker, start: int, end: int) -> Optional[SkippedData]:
    first: Optional[int] = None
    frames = 0
    since_key: list[int] = []  # the times of the video frames stored since the last keyframe, the keyframe first
    recent: list[int] = []  # those of the last _REORDER video frames stored, in file order
    keyed = False  # a video keyframe met: the decoder shows none of the frames stored before the first one
    try:
        for track, time, key, _ in walker.segment(start, end):
            if track not in walker.video:
                continue
            keyed = keyed or key
            if not keyed:  # a recording or `-copyinkf` cut begun mid-GOP: counted, they put the damage 9 frames after
                continue  # the first one ffprobe's frame list lacks, and the times from the first frame shown too early
            first = time if first is None or (frames < 16 and time < first) else first
            frames += 1
            since_key = [time] if key else since_key + [time]
            recent = (recent + [time])[-_REORDER:]
        return None
    except _CutOff:
        return None
    except _Damage as damage:
        offset, what = damage.offset, damage.what
    tick = Fraction(walker.scale, 1_000_000_000)
    good = _good_end(since_key, recent, walker.step)
    good_until = (math.floor((good - first) * tick * 1000) / 1000 if good is not None and first is not None else None)
    resumes_at = None
    inside = walker.in_cluster
    if not inside:  # the element before may be the one whose size is wrong (the demuxer reads a Tags' children, the
        walker.top = walker.before  # walk skips them): the demuxer resyncs from its start
    again = walker.next_cluster(walker.top)  # as the demuxer: from the start of the top-level element it was reading
    if again is None and not inside:
        if not walker.lost_cluster(offset):
            return None  # damage after the last Cluster (its Cues, Tags): the demuxer has read every frame and sound before it
        what = f"the last Cluster's header: {what}"  # its frames and sound lost: the demuxer resyncs past them
    if again is not None and not inside and not walker.clusters and walker.first_cluster(start, again, end) == again:
        # damage in what comes before the first Cluster (a SeekHead, Tags, a Void): the demuxer resyncs to the next
        # top-level element, and the first Cluster (where the Cues say it is: none before it was lost) is read whole;
        for parse, element in ((walker.info, INFO), (walker.tracks, TRACKS)):
            for data, stop in walker.between(element, again) if not walker.video else ():  # skipped by the walk, not
                try:  # by the demuxer, which resyncs to them
                    parse(data, stop)
                except (_Damage, _CutOff):
                    pass
        return _walk(walker, again, end)  # the walk goes on from there for damage further on
    if again is not None:
        try:
            for track, time, key, _ in walker.segment(again, end):
                if track in walker.video and key:
                    base = first if first is not None else time
                    resumes_at = math.ceil((time - base) * tick * 1000) / 1000
                    break
        except (_Damage, _CutOff):
            pass
    return SkippedData(offset, what, _shown_before(frames, recent, walker.step), good_until if good_until and good_until > 0 else None,
                       resumes_at)


def _shown_before(stored: int, recent: list[int], step: Optional[int]) -> int:
    """The number of frames shown before the first one the damage lost, of the ``stored`` blocks before it (``recent``:
    the times of the last of those, in file order). With B-frames a frame is stored ahead of those shown before it (a
    P-frame or a keyframe, then the B-frames shown before it): the blocks counted in file order said the damage was at
    frame 16 where ffprobe lists frame 15 as the first one missing. The first frame missing is the first gap in the
    recent frames' times; frames stored in the order shown (no B-frames, or a variable frame rate's gaps) are counted
    as they are."""
    if all(a < b for a, b in zip(recent, recent[1:])):
        return stored
    times = sorted(set(recent))
    if step is None:
        gaps = [b - a for a, b in zip(times, times[1:])]
        step = min(gaps) if gaps else None
    if step is None:
        return stored
    # the window's first frames may be shown after ones stored before it (a gap that is none): the run is looked for
    # from the earliest time a frame of its second half is shown; every frame shown before that is stored already.
    # A window that holds every frame stored (damage in the first blocks) has none before it: the run starts at the
    # first frame shown (from the second half, 'I0 P4 B2 | b1' said 2 frames shown where ffprobe shows 1)
    end = min(recent) if len(recent) == stored else min(recent[len(recent) // 2:])
    for t in (t for t in times if t > end):
        if t - end > step * 3 // 2:
            break
        end = t
    return stored - sum(1 for t in times if t > end)
