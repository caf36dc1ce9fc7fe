"""Split a video into chunks at keyframes, with the overlap its smoother needs on each side."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional

from ..errors import SourceError
from ..io.interleave import is_indexed
from ..job import FileJob

# frames a recursive smoother (ema, flow) runs before a chunk's first kept frame; its state then
# depends on these frames only up to a vanishing weight, so outputs agree within a grey level or two
RECURSIVE_WARMUP = 12


@dataclass(frozen=True)
class Chunk:
    """Frames [start, end) of a video; decoding runs from ``start - before`` to ``end + after``.

    ``start_pts``/``end_pts`` are the presentation times (stream units) of frame ``start`` and of
    frame ``end`` (None at the end of the video); ``None`` ``start_pts`` marks the whole video read
    as one piece without seeking.
    """

    index: int
    start: int
    end: int
    before: int = 0
    after: int = 0
    start_pts: Optional[int] = None
    end_pts: Optional[int] = None
    first_pts: Optional[int] = None  # pts of frame start - before (where decoding begins)
    last_pts: Optional[int] = None  # pts of frame end + after - 1 (where decoding stops)

    @property
    def frames(self) -> int:
        """Frames this chunk writes."""
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Chunk":
        return cls(**data)


@dataclass(frozen=True)
class Probe:
    """What planning needs of a video: frame pts in presentation order and which frames are keyframes."""

    pts: list[int]
    keyframes: list[int]  # frame indices (presentation order) that start a closed GOP
    time_base: Fraction = Fraction(1)  # of ``pts``

    @property
    def frames(self) -> int:
        return len(self.pts)


def header_frames(path: str | Path, video_stream: Optional[int] = None) -> Optional[int]:
    """The frame count the container's header declares (or duration x rate), without reading packets.

    Refuses, as ``process`` does, a file it can tell is damaged without decoding (``video_source``'s checks: an
    MP4/MOV cut off in its index or media data, a video stream of unknown codec, a GIF or Matroska/WebM file cut
    off): planned, its chunks would lose the end quietly, or each fail as if damaged midway. ``video_stream``: the
    N-th video stream (``--video-stream``) instead of the one ffmpeg would take, as in every function here."""
    import av

    from ..io.base import check_picture_size
    from ..io.video_source import decodable_video_stream, frame_rate, open_container, shown_frame_count, structural_damage

    with open_container(Path(path)) as container:
        stream = decodable_video_stream(container, path, video_stream)
        width, height = stream.codec_context.width, stream.codec_context.height
        if width and height:  # a 1x1 clip was planned, and its chunk failed, counted as "damaged midway"
            check_picture_size(width, height, path)
        damage = structural_damage(Path(path), container.format.name)
        if damage:
            raise SourceError(f"{path} is not a whole video: {damage}")
        shown = shown_frame_count(stream)
        if shown:
            return shown
        rate = frame_rate(stream)
        seconds = float(stream.duration * stream.time_base) if stream.duration else (container.duration or 0) / av.time_base
        return int(round(seconds * float(rate))) if rate and seconds else None


def probe_video(path: str | Path, video_stream: Optional[int] = None) -> Optional[Probe]:
    """Frame timestamps and keyframes from the packets (no decoding); None when they cannot be trusted.

    Packets well short of the stream's declared length (a file cut off) are refused as ``process`` refuses its
    frames, before any chunk is planned: the chunks would cover only what is left."""
    from ..io.video_source import declared_shortfall, decodable_video_stream, index_dropped, open_container

    with open_container(Path(path)) as container:
        stream = decodable_video_stream(container, path, video_stream)
        if not is_indexed(container):  # MPEG-TS/PS and raw streams seek by byte estimate, seconds away
            return None  # no index to seek by: read the video as one piece
        time_base = Fraction(stream.time_base)  # read while the container is open
        packets: list[tuple[int, bool]] = []
        hidden = index_dropped(stream, container.format.name)  # samples the demuxer never delivers
        for packet in container.demux(stream):
            if packet.size and packet.is_discard:
                hidden += 1
            if packet.size == 0 or packet.is_discard:
                continue  # the end marker, and samples an edit list hides (they decode to no shown frame)
            if packet.pts is None:
                return None  # no timestamps to seek by: read the video as one piece
            packets.append((int(packet.pts), bool(packet.is_keyframe)))
        short = declared_shortfall(stream, len(packets), max(packets)[0] if packets else None, hidden=hidden)
        if short is not None and short[1]:
            raise SourceError(f"{path}: its packets stop at {short[0]}; the file is truncated or damaged")
    packets.sort()
    pts = [p for p, _ in packets]
    if len(set(pts)) != len(pts) or not pts:
        return None
    keyframes = [i for i, (_, key) in enumerate(packets) if key]
    return Probe(pts, keyframes, time_base)


def overlap_for(job: FileJob) -> tuple[int, int]:
    """Frames a chunk decodes before and after its own: the smoother's reach (lookahead ±k, warm-up for recursive ones)."""
    kind = job.smoothing.kind
    if kind == "lookahead":
        return job.smoothing.window, job.smoothing.window
    if kind in ("ema", "flow"):
        return RECURSIVE_WARMUP, 0
    return 0, 0


def plan_chunks(probe: Optional[Probe], chunk_frames: int, before: int, after: int) -> list[Chunk]:
    """Chunks of at least ``chunk_frames`` frames each, starting at keyframes; one whole-video chunk when unsplittable."""
    if probe is None or probe.frames <= chunk_frames:
        return [Chunk(0, 0, probe.frames if probe else 0)]
    n = probe.frames
    starts = [0]
    for key in probe.keyframes:
        if key - starts[-1] >= chunk_frames and n - key >= max(1, chunk_frames // 2):
            starts.append(key)
    if len(starts) == 1:
        return [Chunk(0, 0, n)]
    chunks = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else n
        b, a = min(before, start), min(after, n - end)
        chunks.append(Chunk(
            i, start, end, b, a, start_pts=probe.pts[start], end_pts=probe.pts[end] if end < n else None,
            first_pts=probe.pts[start - b], last_pts=probe.pts[end + a - 1],
        ))  # fmt: skip
    return chunks
