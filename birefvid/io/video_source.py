"""Decode a video file with PyAV into upright RGB frames whose pts are passed through untouched.

Corrupt data policy (measured with FFmpeg 8 / PyAV 18, see tests/test_io_sources.py): a packet the
decoder rejects raises SourceError naming the frame index; a frame the decoder reports as
concealed (``is_corrupt``: a recording cut off mid-frame, packets lost from a camera) is kept with
a warning, as ffmpeg keeps it, the first one and then a count at the end (``strict`` raises instead);
a stream that ends more than three frame intervals before its declared duration or frame count
(a truncated file) raises SourceError. Damage that FFmpeg conceals silently cannot be seen.

Edit lists (an MP4 cut with ``ffmpeg -ss ... -c copy`` keeps the GOP before the cut point and hides
it): the header's frame count includes the hidden samples, and their packets arrive flagged
``is_discard``, so they are subtracted before the truncation check, and the progress total comes
from the presented duration instead. Samples before the keyframe the shown part decodes from (``-ss``
on a phone's variable-rate clip can keep a whole GOP more) FFmpeg drops from the index outright, unflagged:
the header's count less the index's length (``index_dropped``) is subtracted too.
"""

from __future__ import annotations

import bisect
import errno
import functools
import logging
import math
import mmap
import os
import re
import stat
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import av

from birefvid.errors import SourceError, input_not_found, option
from birefvid.frames import Frame, StreamInfo
from birefvid.io._pixels import RgbConverter, display_mirrored, is_yuv_format, picture_bits, rotated_size, upright
from birefvid.io.untagged import MATRIX_NAMES, assumed_matrix, rgb_matrix, untagged
from birefvid.io.pixel_shape import PixelShapes, context_sar
from birefvid.io.animated_source import is_animated_webp
from birefvid.io.base import URL_TIMEOUT_S, Source, check_picture_size, ffmpeg_name, is_url
from birefvid.io.atomic import being_written, final_name
from birefvid.users import owner_phrase, unreadable_line
from birefvid.io.deinterlace import Deinterlacer
from birefvid.io.hdr10 import x265_hdr10
from birefvid.io.interleave import is_indexed
from birefvid.io.demuxing import demuxed
from birefvid.io.mkv_damage import SkippedData, skipped_data
from birefvid.io.mkv_info import EBML, SEGMENT, ebml_number, muxing_app
from birefvid.io.ts_damage import TS_FORMATS, damaged_end, ends_whole, lost_frames
from birefvid.said_once import first_time_about_file
from birefvid.urls import shown_url

log = logging.getLogger(__name__)


# FFmpeg's demuxers of a single picture file (a .jpg or .png given as a video)
STILL_PICTURE_FORMATS = frozenset({"image2", "jpeg_pipe", "png_pipe"})

# seeks, each further back, before a file is read from its start (see earlier_target)
SEEK_TRIES = 6

# decoded frames held back at most while looking for the first timestamp (see _timed_leading): a
# second or two of video, a bounded amount of memory
LEADING_UNTIMED_MAX = 120
# out-of-order timestamps: a time base coarser than a 24 fps frame cannot tell frames apart (an MP4 written with
# timescale 1); a step back of more than 4 frames is no reorder (packed B-frames swap neighbours) but a clock starting over
COARSEST_TIME_BASE = Fraction(1, 24)
REORDER_FRAMES = 4
# the longest an error line's frame number and time may take to read off a file's packets (``_file_times``)
FILE_TIMES_SECONDS = 5.0
# a frame interval no video has where its stream declares no length (see broken_timing)
BROKEN_FRAME_INTERVAL_S = 60.0


def earlier_target(target: int, landed: int) -> int:
    """Where to seek next after a seek to ``target`` landed on a keyframe shown at ``landed``, after the frame
    wanted: twice as far back. The demuxer seeks by decoding time, and an open GOP's keyframe is decoded
    before the frames it shows ahead of itself, so a seek to one of them lands on the keyframe."""
    return target - 2 * max(landed - target, 1)


def open_container(path: Path | str) -> av.container.InputContainer:
    """Open ``path`` (a file, or an http(s):// URL) for reading, translating FFmpeg's complaints into SourceError
    and refusing an MP4/MOV cut off in its index or media data (``batch`` plans with it too, so both refuse alike)."""
    if isinstance(path, str):  # a URL (see is_url)
        try:
            return av.open(path, "r", timeout=URL_TIMEOUT_S)
        except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
            raise SourceError(f"cannot read {shown_url(path)} ({_url_reason(e)})") from e
    closed = unreadable_line(path)  # in a folder closed to this user (another's home): exists() raised, a traceback
    if closed:
        raise SourceError(closed)
    if not path.exists():
        raise SourceError(input_not_found(path))
    if path.is_dir():
        raise SourceError(f"{path} is a folder, not a video (pass a folder only for an image sequence)")
    if path.is_file() and being_written(path):  # read now, it ends where its writer has got to (or is still empty)
        final = final_name(path)
        raise SourceError(f"{path} is being written by another birefvid run now (a live recording, or an output not finished)"
                          + (f": it is renamed to {path.with_name(final)} when that run ends; process that" if final else
                             ": process it once that run ends"))  # fmt: skip
    try:
        container = av.open(ffmpeg_name(path), "r")
    except PermissionError as e:  # "X is not a readable video (Permission denied)" read as no video; a picture's line names the owner
        raise SourceError(f"cannot read {path}: {e.strerror or 'Permission denied'}{owner_phrase(path)}") from e
    except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
        reason = plain_reason(path) or getattr(e, "strerror", None) or str(e)
        problem = mp4_index_problem(path)
        raise SourceError(f"{path} is not a readable video: {problem}" if problem else f"{path} is not a readable video ({reason})") from e
    problem = mp4_index_problem(path)
    if problem and "cut off" in problem:  # FFmpeg reads what the index still lists: the rest (a sound track) is lost unsaid
        container.close()
        raise SourceError(f"{path} is not a whole video: {problem}")
    return container


def regular_file(path: Path | str) -> bool:
    """Whether ``path`` is a regular file: the structure checks below open it again, which a named pipe (a user
    feeding ffmpeg's output in) cannot take: its data is read once, and a second open waits for a writer for ever."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _gif_damage(path: Path) -> Optional[str]:
    """Why a GIF is not whole, as a clause, or None: cut off before its trailer byte (``;``, the last thing a GIF
    encoder writes; zero bytes after it, some tools' padding, are allowed), or a block that is none of a GIF's
    (a zeroed hole, as a preallocated download leaves), where FFmpeg ends the animation quietly."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            n = len(data)
            if n < 13 or data[:3] != b"GIF":
                return None  # FFmpeg's own errors say what is wrong
            pos = 13 + (3 * (2 << (data[10] & 7)) if data[10] & 0x80 else 0)  # the global colour table
            frames = 0
            while pos < n:
                label = data[pos]
                if label == 0x3B:
                    return None
                if label == 0x21:  # an extension: its label, then sub-blocks
                    pos += 2
                elif label == 0x2C:  # an image: its descriptor, a local colour table, the LZW code size, sub-blocks
                    if pos + 10 > n:
                        break
                    flags = data[pos + 9]
                    pos += 10 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0) + 1
                    frames += 1
                else:
                    return f"the GIF is damaged after its frame {frames} (byte {pos} is no GIF block)"
                while pos < n and data[pos]:  # sub-blocks, to the empty one
                    pos += data[pos] + 1
                pos += 1
            return "the GIF ends without its trailer; the file is truncated (an interrupted download?)"
    except (OSError, ValueError):  # unreadable now, or empty: the decoder's own errors say what is wrong
        return None


def plain_reason(path: Path) -> Optional[str]:
    """Why a file FFmpeg cannot open is no video, where it shows plainly, else None: an empty file (a copy or download
    that failed, a camera card's placeholder) or text (a web page saved as .mp4). FFmpeg says "Invalid data found
    when processing input" for both, as for any damage, and the picture commands said "the file is empty" already."""
    try:
        if not regular_file(path):
            return None
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return None
    if not head:
        return "the file is empty, 0 bytes"
    text = head.lstrip()
    if text[:1] == b"<" or all(32 <= c < 127 or c in (9, 10, 13) for c in text):
        return "it holds text, not a video: a web page or text file under a video's name?"
    return None


def mp4_index_problem(path: Path) -> Optional[str]:
    """Why an MP4/MOV is incomplete, as a clause for an error line: its index (the ``moov`` box, written last unless
    the file was made for streaming) missing or cut off, or a box after a whole index (the media data of a file made
    for streaming) cut off; None for a whole file or one that is no MP4/MOV (no ``ftyp`` first).

    FFmpeg reads what is left as if whole: cut within the index, the tracks listed before the cut (no video, or
    the video without its sound); cut in the media data, the sound's end as one damaged packet and silence."""
    if not regular_file(path):
        return None
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            pos, indexed, fragmented = 0, False, False
            while pos + 8 <= size:
                f.seek(pos)
                head = f.read(16)
                length, kind = int.from_bytes(head[:4], "big"), head[4:8]
                if pos == 0 and kind != b"ftyp":
                    return None
                if length == 1 and len(head) == 16:  # a 64-bit size follows
                    length = int.from_bytes(head[8:16], "big")
                elif length == 0:  # to the end of the file
                    length = size - pos
                if length < 8:
                    return None
                fragmented = fragmented or kind == b"moof"
                if pos + length > size and kind != b"moov" and indexed and fragmented and kind in (b"mdat", b"moof"):
                    # written fragment by fragment so that a recording stopped midway (OBS, a camera, a crash) keeps
                    # what came before: there is nothing to download again, and a remux keeps the whole fragments
                    return (f"it is a fragmented MP4 cut off in its last fragment (its {kind.decode()} box: {size - pos} of its "
                            f"{length} bytes are there), as a recording stopped before it was finished or an interrupted "
                            f"download leaves it; keep its whole fragments with ffmpeg -i {path.name} -c copy fixed.mp4")
                if pos + length > size and (kind == b"moov" or (indexed and kind in (b"mdat", b"moof"))):
                    where = "within its index (the moov box" if kind == b"moov" else f"(its {kind.decode()} box"
                    return (f"it is an MP4/MOV cut off {where}: {size - pos} of its {length} bytes are there), as an "
                            "interrupted download or copy leaves it; download or copy it again")
                if pos + length > size:
                    break  # not a box (bytes appended after the file): FFmpeg ignores them too
                indexed = indexed or kind == b"moov"
                pos += length
            if pos == 0 or indexed:
                return None
            return ("it is an MP4/MOV without its index (the moov box), as an interrupted download or copy, or a "
                    "recording stopped before it was finished, leaves it; download or copy it again")
    except OSError:
        return None


def mkv_cut_off(path: Path) -> Optional[tuple[int, int]]:
    """(bytes there, bytes declared) of a Matroska/WebM file whose Segment, the element holding everything,
    says it is longer than the file (a download or copy cut off); None for a whole file, a size left unknown
    (a recording that was never closed) or a file that is no Matroska."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            if ebml_number(f, True) != EBML:  # the header
                return None
            header = ebml_number(f, False)
            if header is None or header < 0:
                return None
            f.seek(header, 1)
            if ebml_number(f, True) != SEGMENT:
                return None
            declared = ebml_number(f, False)
            if declared is None or declared < 0 or f.tell() + declared <= size:
                return None
            return size, f.tell() + declared
    except OSError:
        return None


def ffmpeg_reason(error: BaseException) -> str:
    """FFmpeg's complaint in a few words, without its error number or the C call it came from ("[Errno 1094995529]
    Invalid data found when processing input: 'avcodec_send_packet()'"). Decoders answer bad data with a bare -1 or
    EINVAL too, which read as "Operation not permitted" and "Invalid argument"; those say "invalid data"."""
    if isinstance(error, av.FFmpegError) and error.errno in (errno.EPERM, errno.EINVAL):
        return "invalid data"
    return getattr(error, "strerror", None) or str(error)


def _url_reason(error: BaseException) -> str:
    """A few words for a failed read of a URL. FFmpeg reports its timeout as "Immediate exit
    requested" (the interrupt that ends the wait), which says nothing to a user."""
    if isinstance(error, av.error.ExitError):
        return f"no answer within {URL_TIMEOUT_S:g} s"
    return getattr(error, "strerror", None) or str(error)


# flags of a picture stream that is no video to process: a song's or download's cover, a thumbnail track
_PICTURE_ONLY = av.stream.Disposition.attached_pic | av.stream.Disposition.timed_thumbnails
# ffmpeg's weight for a stream flagged default against its picture's area (fftools' automatic choice)
_DEFAULT_WEIGHT = 5_000_000


def video_streams(container: av.container.InputContainer) -> list[av.video.stream.VideoStream]:
    """The video streams that are videos, in the file's order: not a cover picture (an MP3's or M4A's attached_pic)
    or a thumbnail track."""
    return [s for s in container.streams.video if not s.disposition & _PICTURE_ONLY]


def _ffmpeg_score(stream: av.video.stream.VideoStream) -> int:
    """ffmpeg's score for picking a file's video: its picture's area, a stream flagged default well ahead."""
    cc = stream.codec_context
    area = (cc.width or 0) * (cc.height or 0) if cc is not None else 0
    return area + _DEFAULT_WEIGHT * bool(stream.disposition & av.stream.Disposition.default)


def main_video_stream(container: av.container.InputContainer) -> Optional[av.video.stream.VideoStream]:
    """The video stream ``ffmpeg -i FILE`` would convert: of ``video_streams``, the largest picture, one flagged default
    (an MP4's enabled track) counted 5 megapixels larger (a 4K track beats a default 720p one), then the first; None if
    none. The first one was taken, so an MP4 whose first track is a disabled proxy, or an MKV whose first track is a
    one-picture thumbnail, gave that."""
    return max(video_streams(container), key=_ffmpeg_score, default=None)  # max keeps the first of equals


def _describe(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> str:
    """``#N (h264 1920x1080, default)``: a video stream numbered among the file's video streams, for messages. Its
    size where FFmpeg's probe found it: a stream whose frames start past the probed part has none (MPEG-TS clips on
    different PIDs joined with cat, whose second clip FFmpeg takes as a second stream), which read "h264 0x0"."""
    cc = stream.codec_context
    what = (f"{cc.name} {cc.width}x{cc.height}" if cc is not None and cc.width and cc.height
            else f"{cc.name}, its size unknown" if cc is not None else "unknown codec")  # fmt: skip
    flag = ", default" if stream.disposition & av.stream.Disposition.default else ""
    return f"#{list(container.streams.video).index(stream)} ({what}{flag})"


def video_choice_note(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                      commands: str = "process, batch and live") -> Optional[str]:
    """What a user is told when the file holds other videos than ``stream`` (a drone's proxy, a second angle), as a
    clause, or None: each was dropped without a word. It names the option that takes another, by the ``#N`` shown, and
    the ``commands`` that have it (a live stream's: not live, which takes it for files only)."""
    others = [s for s in video_streams(container) if s is not stream]
    if not others:
        return None
    return (f"{len(others) + 1} video streams; processing {_describe(container, stream)}, as ffmpeg would, and leaving out "
            + ", ".join(_describe(container, s) for s in others)
            + f" (`{option('video_stream', 'N').replace(repr('N'), 'N')}` of {commands} takes #N instead)")


def video_stream_at(container: av.container.InputContainer, number: Optional[int]) -> Optional[av.video.stream.VideoStream]:
    """The ``number``-th of the file's video streams (``#N`` in messages, ``ffmpeg -map 0:v:N``), or for None the one
    ffmpeg would convert (``main_video_stream``); None when there is no such stream. No checks: see ``chosen_video_stream``."""
    if number is None:
        return main_video_stream(container)
    every = list(container.streams.video)
    return every[number] if 0 <= number < len(every) else None


def chosen_video_stream(container: av.container.InputContainer, shown: object, number: int) -> av.video.stream.VideoStream:
    """The video stream ``--video-stream N`` names: ``#N`` of the several-streams warning; SourceError naming the
    file's video streams when there is no ``#N`` or it is a cover picture or thumbnail track, no video."""
    videos = video_streams(container)
    listed = ", ".join(_describe(container, s) for s in videos)
    there = (f"its video streams are {listed}" if len(videos) > 1 else f"its only video stream is {listed}" if videos
             else "it has no video stream")  # fmt: skip
    stream = video_stream_at(container, number)
    if stream is None:
        raise SourceError(f"{shown} has no video stream #{number} ({option('video_stream', number)}): {there}")
    if stream not in videos:
        raise SourceError(f"{shown}: video stream #{number} ({option('video_stream', number)}) is a cover picture or "
                          f"thumbnail track, no video: {there}")  # fmt: skip
    return stream


def data_streams_note(container: av.container.InputContainer) -> Optional[str]:
    """Which data streams no output carries (a GoPro's gpmd telemetry, a drone's KLV), as a clause, or None. A
    timecode track is left out of the list: its start timecode is carried as the video's tag; so is an MP4's
    QuickTime chapter track (a text track FFmpeg shows as data, one sample per chapter): its chapters are kept."""
    chapters = len(container.chapters())
    lost = [f"#{s.index} ({getattr(s, 'name', None) or s.metadata.get('handler_name') or 'data'})"
            for s in container.streams.data
            if "timecode" not in s.metadata and not (chapters and s.frames == chapters)]
    if not lost:
        return None
    return (f"data stream{'s' if len(lost) > 1 else ''} {', '.join(lost)}, which no output carries (birefvid process "
            "keeps video, audio, subtitles and chapters; `ffmpeg -map` can copy it from the source into the result)")


def decodable_video_stream(container: av.container.InputContainer, shown: object, number: Optional[int] = None) -> av.video.stream.VideoStream:
    """``main_video_stream``, or the ``number``-th video stream when given (``--video-stream``, said by no warning:
    the user chose it), or SourceError naming ``shown`` when there is none or its codec is unknown to FFmpeg."""
    stream = main_video_stream(container) if number is None else chosen_video_stream(container, shown, number)
    if stream is None:
        raise SourceError(f"{shown} has no video stream (audio-only or data file, or a song's cover picture?)")
    if stream.codec_context is None:  # a damaged stream description, or a codec this FFmpeg lacks
        raise SourceError(f"{shown}: its video stream's codec is unknown to FFmpeg (a damaged file, or a codec "
                          "this FFmpeg cannot decode)")  # fmt: skip
    broken = broken_timing(stream)
    if broken:
        raise SourceError(f"{shown}: {broken}")
    note = video_choice_note(container, stream) if number is None else None
    if note and first_time_about_file(shown, "video streams"):
        log.warning("%s has %s", shown, note)
    return stream


def broken_timing(stream: av.video.stream.VideoStream) -> Optional[str]:
    """Why a video stream's declared timing cannot be right, as a clause, or None: several frames declared in a
    length shorter than one frame interval of its own rate (a minute where no length is declared: fragmented MP4s
    declare 0). A damaged time scale (an MP4's ``mdhd`` of 0, which FFmpeg reads as 1) does this, and FFmpeg then
    demuxes a frame or two of the many, or none, quietly."""
    rate, seconds, count = frame_rate(stream), declared_seconds(stream) or 0.0, stream.frames or 0
    if count < 3 or not rate or 1 / rate <= (seconds or BROKEN_FRAME_INTERVAL_S):
        return None
    return (f"its video's timing is broken: {count} frames declared in {seconds:g} s, but a frame every {float(1 / rate):g} s "
            f"(time base {stream.time_base}), so its time scale is damaged and FFmpeg would read only a frame or two; "
            "the file is damaged")


def structural_damage(path: Path | str, format_name: str) -> Optional[str]:
    """Why a GIF or Matroska/WebM file is not whole, read from its structure rather than its frames, as a clause;
    None for a whole file, another format or a URL. FFmpeg ends such a file quietly where its data stops."""
    if isinstance(path, str) or not regular_file(path):
        return None
    if format_name == "gif":  # a GIF declares no length: its blocks and trailer say whether it is whole
        return _gif_damage(path)
    cut = mkv_cut_off(path) if "matroska" in format_name else None
    if cut:  # its Segment is longer than the file: the last frames are missing, or the sound's end interleaved with them
        return (f"the file is truncated ({cut[0]} of its {cut[1]} bytes are there), so its last frames or its sound's end "
                "are missing (an interrupted download or copy?)")  # fmt: skip
    return None


def refuse_cut_off(source: object, end: Optional[float]) -> None:
    """SourceError before any frame is decoded for a GIF or Matroska/WebM file whose structure says it is cut off,
    unless ``end`` is set: it was refused only once read to its end (minutes of a long file), and a time range that
    ends before the cut still processes the frames that are there."""
    if end is not None or not isinstance(getattr(source, "format_name", None), str):  # VideoFileSource, DecordSource
        return
    damage = structural_damage(source.path, source.format_name)
    if damage:
        raise SourceError(f"{source.shown} is not a whole video: {damage}; {option('end')} before where it breaks off "
                          "processes the frames that are there")


def matroska_skip(path: Path | str, format_name: str) -> Optional[SkippedData]:
    """Where a local Matroska/WebM file is damaged so that FFmpeg's demuxer skips data to the next Cluster, logging it
    only (``io.mkv_damage``), or None."""
    if isinstance(path, str) or "matroska" not in format_name.split(",") or not regular_file(path):
        return None
    try:
        seen = os.stat(path)
    except OSError:
        return None
    return _skipped_data_of(os.path.realpath(path), seen.st_size, seen.st_mtime_ns, seen.st_ino)


@functools.lru_cache(maxsize=64)
def _skipped_data_of(path: str, size: int, mtime_ns: int, inode: int) -> Optional[SkippedData]:
    """``skipped_data`` once per file (and version of it) in a process: each batch chunk opens its video again, and the
    walk reads every block's header (seconds for a two-hour film: minutes over its chunks)."""
    try:
        return skipped_data(path)
    except Exception as exc:  # noqa: BLE001 - a check on top of the demuxer: a flaw in it must not refuse a file FFmpeg reads
        log.debug("could not walk the Matroska structure of %s: %r", path, exc)
        return None


def mpegts_lost(path: Path | str, format_name: str, stream_index: int) -> Optional[SkippedData]:
    """Where a local MPEG-TS/M2TS file lost whole frames of its video stream ``stream_index`` with packets missing or
    damaged, which FFmpeg logs only (``io.ts_damage``), or None."""
    if isinstance(path, str) or format_name not in TS_FORMATS or not regular_file(path):
        return None
    return lost_frames(str(path), stream_index)


def mpegts_damaged_end(path: Path | str, format_name: str, stream_index: int) -> Optional[str]:
    """Why a local MPEG-TS/M2TS file's video looks to have lost its end, as a clause, or None: its last packets are
    flagged corrupt (their counters jumped), which a file merely cut off does not show (``io.ts_damage.damaged_end``)."""
    if isinstance(path, str) or format_name not in TS_FORMATS or not regular_file(path):
        return None
    end = damaged_end(str(path), stream_index)
    if end is None:
        return None
    where = f"at byte {end.offset}" + (f", {end.at:.3f} s in" if end.at is not None else "")
    return (f"the video's last packets are missing or damaged ({where}), as a recording over a lossy network leaves it: "
            "frames after them may be lost, how many the file cannot say")


def file_skip(path: Path, video_stream: Optional[int] = None) -> Optional[SkippedData]:
    """``matroska_skip`` or ``mpegts_lost`` of a local file (the video ``process`` would read: ``video_stream``), for
    ``batch``'s plan, which refuses it before any chunk is read; None where neither finds damage or FFmpeg cannot open it."""
    skip = matroska_skip(path, "matroska")
    if skip is not None or not regular_file(path):
        return skip
    try:
        with av.open(ffmpeg_name(path)) as container:
            if container.format.name not in TS_FORMATS:
                return None
            stream = video_stream_at(container, video_stream)
            index = stream.index if stream is not None else None
    except (av.FFmpegError, OSError, UnicodeDecodeError):
        return None
    return None if index is None else mpegts_lost(path, "mpegts", index)


def skipped_error(shown: object, skip: SkippedData) -> SourceError:
    """The error for a Matroska file whose demuxer skips the damaged data ``skip``, with where its good parts are
    (``good_until``, ``resumes_at``: ``salvage_hint``)."""
    if skip.lost:  # an MPEG-TS file's packets lost (io.ts_damage)
        at = f" ({skip.at:.3f} s in)" if skip.at is not None else ""
        error = SourceError(f"{shown}: the file is damaged at frame {skip.frame}{at}: {skip.what}, so the output would "
                            "be shorter than the video and out of step with it")  # fmt: skip
    else:
        error = SourceError(f"{shown}: the file is damaged at frame {skip.frame}: FFmpeg skipped data it could not read there "
                            f"({skip.what}, at byte {skip.offset}), so frames or sound are missing")  # fmt: skip
    error.good_until, error.resumes_at = skip.good_until, skip.resumes_at  # type: ignore[attr-defined]
    return error


def refuse_skipped(source: object, start: Optional[float], end: Optional[float]) -> None:
    """SourceError before any frame is processed for a Matroska/WebM file whose damaged data the demuxer would skip
    (``VideoFileSource.skipped``), unless the part asked for (``start``, ``end``, in seconds from the first frame)
    lies wholly before the damage or from the next keyframe after it, as the error's hint says."""
    skip = getattr(source, "skipped", None)
    if not isinstance(skip, SkippedData):
        return
    if end is not None and skip.good_until is not None and end <= skip.good_until:
        stop = getattr(source, "damage_after_end", None)
        if callable(stop):
            stop()
        return
    if start is not None and skip.resumes_at is not None and start >= skip.resumes_at:
        # the damage lies wholly before the part: not said where the frames before it are read to find the start (an
        # MPEG-TS file, which has no index, may be read from its start)
        accept = getattr(source, "damage_before_start", None)
        if callable(accept):
            accept()
        else:
            source.skipped = None  # type: ignore[attr-defined]
        return
    raise skipped_error(getattr(source, "shown", None), skip)


def salvage_hint(error: BaseException, start: Optional[float] = None, end: Optional[float] = None) -> str:
    """For a file damaged midway (``VideoFileSource._salvageable``'s ``error``), how to process its good parts, as a
    clause to add to the error: ``--end`` at the last frame decoded (the frames before it; with ``start``, the user's
    ``--start``, only where that is before it) and ``--start`` at the next keyframe after the damage (decoding begins
    there again; with ``end``, the user's ``--end``, only where that is after it: a --start past it was refused). ""
    where neither is known."""
    good, resumes = getattr(error, "good_until", None), getattr(error, "resumes_at", None)
    parts = []
    if good is not None and good > (start or 0):
        parts.append(f"{option('end', f'{good:.3f}')} processes the part before the damage")
    if resumes is not None and resumes > (start or 0) and (end is None or resumes < end):
        parts.append(f"{option('start', f'{resumes:.3f}')} the part from the next keyframe after it (if that decodes)")
    if len(parts) == 1:  # --start alone: its own verb
        parts[0] = parts[0].replace(" the part from", " processes the part from")
    return "; " + ", ".join(parts) if parts else ""


def _kept(count: int, which: str) -> str:
    """'its N frames ``which`` were kept', one frame singular: a cut-off warning said 'its 1 frames before the cut were kept'."""
    return f"its {count} frame {which} was kept" if count == 1 else f"its {count} frames {which} were kept"


def _them(count: int) -> str:
    """The pronoun for ``count`` frames: 'it' for one."""
    return "it" if count == 1 else "them"


def mpegts_cut_off(path: Path | str, format_name: str) -> Optional[str]:
    """Why an MPEG-TS file looks cut off, as a clause, or None: it ends partway through a packet (188 bytes each;
    192 in a camera's .m2ts/.mts, 204 with FEC). Such a file declares no length, so this is all that tells a
    recording stopped abruptly (a card pulled, a crash) or an interrupted download from a whole file."""
    if isinstance(path, str) or format_name != "mpegts" or not regular_file(path):
        return None
    if not os.stat(path).st_size:
        return None
    # not by its size: a cut 8 bytes into a 188-byte packet left 62424 bytes, 306 packets of 204, said whole
    if ends_whole(str(path)):  # its start was cut at some byte, or bytes lost midway (``io.ts_damage``): its end is whole
        return None
    return ("the file ends partway through an MPEG-TS packet, as a recording stopped abruptly or an interrupted download "
            "leaves it")


def declared_shortfall(stream: av.video.stream.VideoStream, count: int, last_pts: Optional[int], *, hidden: int = 0,
                       from_start: bool = True) -> Optional[tuple[str, bool]]:  # fmt: skip
    """How ``count`` frames read from the start (the last at ``last_pts``; ``hidden``: samples an edit list hid) fall
    short of the stream's declared length: ("frame N of M" or "frame N (Xs of Ys)", whether data is lost), or None.

    An edit list may hide a couple of leading samples without flagging them, so 1-2 frames short is no loss. Read
    from a seek (``from_start`` False), only the declared end says whether the file is whole."""
    declared, rate = declared_seconds(stream), frame_rate(stream)
    expected = (stream.frames or 0) - hidden if from_start else 0
    if declared and rate and expected > 2 * declared * float(rate) + 2:
        expected = 0  # a count its own duration belies (a damaged index's: 1073741834 for 10 frames): the duration says
    if expected > 0 and count < expected:
        return f"frame {count} of {expected}", count + 2 < expected
    if expected <= 0 and declared and last_pts is not None and rate:
        # FFmpeg's Matroska muxer declares where a stream ends (a segment of a longer recording that
        # starts at 2 s and lasts 2 s says 4 s); other formats declare how long it lasts. Either will do.
        start = stream.start_time or 0
        end = float(max(last_pts, last_pts - start) * Fraction(stream.time_base))
        if end + 3 / float(rate) < declared:
            return f"frame {count} ({end:.3f}s of {declared:.3f}s)", True
    return None


def index_dropped(stream: av.video.stream.VideoStream, format_name: str) -> int:
    """Samples of an MP4/MOV's ``stream`` that its edit list hides and FFmpeg drops from the index outright: those before
    the keyframe the shown part decodes from (``ffmpeg -ss T -c copy`` can keep a whole GOP more), which the header's
    count includes but the demuxer never delivers, not even flagged as discarded. 0 for other formats (Matroska's index
    lists keyframes only) and for a fragmented file (call it before reading: its index grows with each fragment)."""
    if "mov" not in format_name.split(",") or not stream.frames:
        return 0
    return max(0, stream.frames - len(stream.index_entries))


def alpha_decoder(stream: av.video.stream.VideoStream, threads: int = 0) -> Optional[av.codec.CodecContext]:
    """A ``libvpx-vp9`` decoder for a VP9 stream that carries alpha (WebM's ``alpha_mode`` 1: birefvid's own
    ``.webm`` cut-outs, an editor's transparent export), else None: FFmpeg's native vp9 decoder drops the alpha."""
    if stream.codec_context.name != "vp9" or stream.metadata.get("alpha_mode", stream.metadata.get("ALPHA_MODE")) != "1":
        return None
    try:
        decoder = av.codec.CodecContext.create("libvpx-vp9", "r")
    except (av.FFmpegError, ValueError):  # an FFmpeg built without libvpx: the picture without its alpha
        log.warning("this FFmpeg has no libvpx-vp9 decoder: the VP9 video's own alpha is not read")
        return None
    if threads:
        decoder.thread_count = threads
    return decoder


def decode_packet(packet: av.Packet, decoder: Optional[av.codec.CodecContext]) -> list[av.VideoFrame]:
    """``packet``'s frames, from ``decoder`` (``alpha_decoder``'s) when there is one, else its stream's own."""
    if decoder is None:
        return packet.decode()
    frames = decoder.decode(packet if packet.size else None)  # the empty packet at the end drains it
    for frame in frames:
        if frame.pts is None:
            frame.pts = packet.pts
    return frames


def _mkv_duration(stream: av.video.stream.VideoStream) -> Optional[float]:
    """Matroska stores per-stream duration as a 'HH:MM:SS.nnnnnnnnn' tag."""
    m = re.fullmatch(r"(\d+):(\d+):(\d+(?:\.\d+)?)", stream.metadata.get("DURATION", ""))
    return None if not m else int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])


def _tag_is_end(stream: av.video.stream.VideoStream, start: float, rate: Fraction, path: Path | str) -> bool:
    """Whether the DURATION tag of a Matroska video starting at ``start`` s is where it ends (FFmpeg's muxer: OBS, ffmpeg)
    rather than how long it lasts (mkvmerge's statistics tags: a video mkvmerge delayed or cut read as that much
    shorter, its frame count, progress total and a GIF's last frame with it). A file FFmpeg's muxer wrote (``path``'s
    Info names it as MuxingApp, ``Lavf...``) tags the end whatever else it holds: an ffmpeg remux or segment of an mkvmerge
    file keeps that file's NUMBER_OF_FRAMES, stale, beside its own DURATION (the ENCODER tag cannot tell: mkvmerge
    keeps a remuxed file's ``Lavf``). Otherwise, with mkvmerge's NUMBER_OF_FRAMES beside the tag, the reading that
    agrees with it; else the end."""
    tagged, counted = _mkv_duration(stream), stream.metadata.get("NUMBER_OF_FRAMES", "")
    if tagged is None or not counted.isdigit():
        return True
    if regular_file(path) and (muxing_app(path) or "").startswith("Lavf"):  # a named pipe's data is read once: not opened again
        return True
    return abs((tagged - start) * rate - int(counted)) <= abs(tagged * rate - int(counted))


def declared_seconds(stream: av.video.stream.VideoStream) -> Optional[float]:
    """The video stream's own declared length: Matroska's DURATION tag where there is one (Matroska has no
    stream duration, so FFmpeg may fill it with the file's: a song's still picture seemed to last the song),
    else the stream's duration."""
    tagged = _mkv_duration(stream)
    if tagged is not None:
        return tagged
    return float(stream.duration * stream.time_base) if stream.duration is not None else None


def frame_rate(stream: av.video.stream.VideoStream) -> Optional[Fraction]:
    """The stream's frame rate: its average, else the guessed one; also the guessed one where the average is one
    frame a tick of the time base, which is no rate (FFmpeg 8's raw DV: 60000 fps for 25, so every .dv file was
    "truncated", and its outputs would have run at 60000 fps)."""
    average, guessed = stream.average_rate, stream.guessed_rate
    if average and guessed and average == 1 / stream.time_base and guessed < average:
        return Fraction(guessed)
    return Fraction(average or guessed) if average or guessed else None


def shown_frame_count(stream: av.video.stream.VideoStream) -> Optional[int]:
    """The frames a video stream will show, from its header: the declared count, or duration x rate
    where that is clearly fewer (an edit list hides samples the count includes)."""
    count = stream.frames or None
    rate = frame_rate(stream)
    seconds = declared_seconds(stream)
    if count and seconds and rate and count > round(seconds * rate) + 2:
        return round(seconds * rate)
    return count


# container tags that describe how the file was written, not what it holds: the new file writes its own. MXF's name
# the writing application and give the material its identity (UMIDs, which Avid relinks by): a cut-out is other material
WRITER_TAGS = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder", "duration", "timecode",
                         "operational_pattern_ul", "uid", "generation_uid", "material_package_umid", "company_name", "product_name",
                         "product_version", "product_version_num", "toolkit_version_num", "product_uid", "application_platform"})


def _timecode(metadata: dict[str, str]) -> Optional[str]:
    """A start timecode tag (MOV's tmcd track, Matroska's TIMECODE, MXF's), whatever its key's case."""
    return next((v for k, v in metadata.items() if k.lower() == "timecode" and v), None)


def _reel_name(container: av.container.InputContainer, video: av.video.stream.VideoStream) -> Optional[str]:
    """The reel (tape, card) name of the start timecode: a MOV's timecode track's, MXF's, the video's or the file's."""
    tables = (video.metadata, *(st.metadata for st in container.streams if st.type == "data"), container.metadata)
    return next((v for metadata in tables for k, v in metadata.items() if k.lower() == "reel_name" and v), None)


def _int(value: object) -> Optional[int]:
    try:
        return None if value is None else int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def stream_matrix(shown: object, first: av.VideoFrame, tagged: Optional[int], choice: str = "auto") -> Optional[int]:
    """The AVColorSpace value ``choice`` (``--input-colors``) assumes of a stream of ``first``'s stored size whose
    own tag (``tagged``) names no matrix (``io.untagged``), which it is read with and its video outputs tagged
    with; None where nothing is assumed: its own tag holds, or BT.601 untagged as FFmpeg reads it, or its pictures are
    RGB, gray or a palette (a GIF, APNG, QuickTime Animation), which no matrix reads (``stream_colorspace``)."""
    if not is_yuv_format(first.format.name):
        return None
    assumed = assumed_matrix(tagged, first.width, first.height, choice)
    if assumed is None:
        if choice != "auto" and not untagged(tagged) and first_time_about_file(shown, "input colors"):
            log.warning("%s names its colour matrix (%s), which is kept: %s applies to untagged video only",
                        shown, MATRIX_NAMES.get(tagged or 0, tagged), option("input_colors", choice))  # fmt: skip
        return None
    log.debug("%s names no colour matrix: read as %s (%s)", shown, MATRIX_NAMES[assumed], option("input_colors", choice))
    return assumed


def stream_colorspace(first: av.VideoFrame, matrix: Optional[int], width: int, height: int) -> Optional[int]:
    """The AVColorSpace value of a stream's ``StreamInfo``, which its video outputs are converted to YUV with and tagged
    with: ``matrix`` (its own or the one assumed) for YUV pictures; for RGB, gray or palette ones (a GIF, an APNG, RGB
    FFV1), which name none (or ``gbr``, no YUV matrix), the one their ``width`` x ``height`` (as shown) calls for."""
    return matrix if is_yuv_format(first.format.name) else rgb_matrix(width, height)


class ConcealedFrames:
    """Frames a decoder patched over damaged data in: kept as decoded, as ffmpeg keeps them, the first with a warning
    and the rest counted at the end (a camera's lost packets may damage thousands); ``strict`` refuses the first.
    ``VideoFileSource`` and ``batch``'s chunks share it, so both keep what the other keeps."""

    def __init__(self, shown: object, strict: bool = False) -> None:
        self.shown, self.strict = shown, strict
        self.count = 0
        self.span = (0, 0)  # the first and the last of them

    def note(self, index: int) -> None:
        """Frame ``index`` was concealed: SourceError when strict, else a warning for the first."""
        msg = f"{self.shown}: frame {index} is damaged (the decoder concealed missing or broken data)"
        if self.strict:
            raise SourceError(msg + "; re-encode or repair the file")
        if not self.count and first_time_about_file(self.shown, "concealed", index):  # live --loop: not at every pass
            log.warning("%s; it is kept as decoded, as ffmpeg keeps it (a recording cut off mid-frame, packets lost on a network)", msg)
        self.count += 1
        self.span = (self.span[0] if self.count > 1 else index, index)

    def summarise(self) -> None:
        """The count, once the frames are read, when more than the first (which warned) were concealed."""
        if self.count > 1 and first_time_about_file(self.shown, "concealed", *self.span, self.count):
            log.warning("%s: %d frames were damaged and kept as the decoder concealed them (frames %d to %d)", self.shown, self.count, *self.span)


class VideoFileSource(Source):
    """Frames of a media file's video stream (the one ffmpeg would convert, or ``video_stream``), upright, uint8 RGB,
    with the stream's own pts."""

    def __init__(self, path: str | Path, *, strict: bool = False, threads: int = 0, deinterlace: bool = True,
                 video_stream: Optional[int] = None, input_colors: str = "auto", lost_warns: bool = False) -> None:  # fmt: skip
        """``lost_warns``: frames lost in the file (``skipped``) are said once in a warning and the rest read on, as
        ``live`` reads a file (a blip must not stop it), instead of an error where the frames reach them; ``deinterlace``: frames flagged interlaced come out deinterlaced (see ``io.deinterlace``);
        ``strict``: a frame the decoder concealed raises SourceError instead of a warning; ``video_stream``: the
        N-th video stream (``#N`` of the several-streams warning) instead of ffmpeg's choice; ``input_colors``: the
        matrix a stream that names none is read with (``io.untagged``: auto, bt709, bt601), which ``info`` then names."""
        super().__init__()
        self.video_stream = video_stream
        self.input_colors = input_colors
        # a URL stays as given (a Path would fold its "//"); everything else is a file path
        self.path: Path | str = path if is_url(path) else Path(path)
        self.shown = shown_url(self.path) if isinstance(self.path, str) else self.path  # messages: no password or token
        self.strict = strict
        self.lost_warns = lost_warns
        self._past_loss = False  # frames were lost and read past (said in a warning, or before --start)
        self._ends_at_loss = False  # the part asked for ends before the damage (--end): the frames end there, no error
        self._damaged = ConcealedFrames(self.shown, strict)  # frames the decoder concealed damage in (kept unless strict)
        self._landed_pts: Optional[int] = None  # the pts of the frame a seek landed on (``start_at``): what error lines count from
        self._shown_pts: Optional[tuple[int, list[int]]] = None  # ``_file_times``: (frames before the seek's, shown pts)
        self._shown_all = False  # ``_shown_pts`` holds every shown frame of the file: read to its end
        self._times_out_of_reach = False  # ``_file_times`` ran out of time (or the demuxer failed): not tried again
        self.deinterlace = deinterlace
        self._io_lock = threading.Lock()  # close() from another thread waits for the frame being decoded
        self._container = open_container(self.path)
        try:
            # damage the Matroska demuxer skips, raising nothing: an error where the frames cross it (``_decoded``)
            self.skipped: Optional[SkippedData] = matroska_skip(self.path, self._container.format.name)
            self._from_seek = False  # decoding after a seek: what lies before where it landed is not read
            self._crossed: Optional[int] = None  # the pts of the first packet the demuxer read past the damage
            self._threads = threads
            self._attach_stream()
            # an MPEG-TS file's frames lost with its packets: FFmpeg logs it and reads on (io.ts_damage)
            self.skipped = self.skipped or mpegts_lost(self.path, self._container.format.name, self._stream.index)
            self._dropped = index_dropped(self._stream, self._container.format.name)  # before any fragment adds to the index
            data = data_streams_note(self._container)
            if data and first_time_about_file(self.shown, "data streams"):  # telemetry was left out without a word
                log.warning("%s has %s", self.shown, data)
            if self._still_picture() and regular_file(self.path):  # FFmpeg shows a cut-off JPEG's missing part grey, unsaid: read it as `image` does
                from birefvid.io.image_source import check_picture

                check_picture(self.path)  # type: ignore[arg-type]
            # as many threads as the decoder; the stream's pixel shape as stored, which a picture of another shape keeps
            self._to_rgb = RgbConverter(threads, name=str(self.path), sar=self._stream.sample_aspect_ratio)
            self._codec_sar = context_sar(self._stream.codec_context)  # the decoder's first, which PixelShapes follows
            self._frames = self._decode()
            # peek one frame: rotation, colour tags and "is this decodable at all" are facts of frames
            self._first = next(self._frames, None)
            if self._first is None:
                raise SourceError(f"{self.shown} is not a readable video (no decodable frames)")
            self._info = self._make_info(self._first)
            self._to_rgb.matrix = self._info.colorspace
            # the first frame shown: an MP4 cut with an edit list decodes hidden frames before it
            self.first_pts: Optional[int] = self._first.pts
            self.format_name: str = self._container.format.name  # "mpegts", "mov,mp4,m4a,3gp,3g2,mj2", ...
        except BaseException:
            self._container.close()
            raise
        self._iterated = False
        self._seeked = False
        self._deep = False
        self._counted_from = 0  # the index of the first frame the caller keeps (``count_from``): what warnings count

    def _still_picture(self) -> bool:
        """Whether the file is one JPEG or PNG picture (``birefvid image``'s reader then checks it is whole)."""
        return (not isinstance(self.path, str) and self._container.format.name in STILL_PICTURE_FORMATS
                and self._stream.codec_context.name in ("mjpeg", "png"))  # fmt: skip

    @property
    def concealed(self) -> int:
        """Frames the decoder concealed damage in so far (kept unless strict): what the warning counted."""
        return self._damaged.count

    def count_from(self, index: int) -> None:
        """Say that the caller keeps frames from the ``index``-th one read (``--start``), so the cut-off warning counts
        the frames the run processed, not those decoded before the start to find it."""
        self._counted_from = index

    def deliver_deep(self) -> bool:
        """Frames carry their 16-bit picture too (``Frame.deep``): for outputs that keep a deep source's depth."""
        if self._iterated:
            raise RuntimeError("deliver_deep() must come before iterating")
        self._deep = True
        return True

    def _attach_stream(self) -> None:
        """Find the video stream of ``self._container`` and set up its decoder's threads."""
        stream = decodable_video_stream(self._container, self.shown, self.video_stream)
        self._stream = stream
        self._stream.thread_type = "AUTO"
        if self._threads:
            self._stream.codec_context.thread_count = self._threads
        self._alpha_decoder = alpha_decoder(stream, self._threads or 0)  # VP9 with alpha: its own decoder keeps it

    def start_at(self, pts: int) -> None:
        """Begin decoding at the keyframe at or before ``pts`` (call before iterating), so a cut late in a
        long file does not decode all that comes before it; frames before ``pts`` may still come first.

        An open GOP's keyframe (HEVC's, x265's default and many phones') decodes before frames it shows
        ahead of itself, so a seek to one of those lands on it, after ``pts``: indexed containers then
        seek back further (``earlier_target``). A container without an index (MPEG-TS/PS, raw streams)
        seeks by byte estimate and may land after ``pts``; it is then read from its start again.
        """
        if self._iterated:
            raise RuntimeError("start_at() must come before iterating")
        first = self._first
        if first is None or first.pts is None or pts <= first.pts:
            return  # nothing before the target to skip
        with self._io_lock:
            landed: Optional[av.VideoFrame] = None
            try:
                target = pts
                for _ in range(SEEK_TRIES if is_indexed(self._container) else 1):
                    self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
                    self._from_seek, self._crossed = True, None
                    frames = self._decode()
                    landed = next(frames, None)
                    if landed is None or landed.pts is None or landed.pts <= pts:
                        break
                    target = earlier_target(target, landed.pts)
            except (av.FFmpegError, OSError, SourceError) as e:
                log.debug("%s: seeking to pts %d failed (%s); reading from the start", self.path, pts, e)
            if landed is None or landed.pts is None or landed.pts > pts:
                self._container.close()  # overshot (or failed): from the top, as the file was first read
                self._container = open_container(self.path)
                self._attach_stream()
                self._from_seek, self._crossed = False, None
                frames = self._decode()
                landed = next(frames, None)
            self._frames, self._first = frames, landed
            self._seeked = True
            first = getattr(self, "first_pts", None)
            self._landed_pts = landed.pts if landed is not None and landed.pts is not None and first is not None and landed.pts > first else None

    def _file_times(self, index: int) -> Optional[tuple[int, list[int]]]:
        """The frames the file shows before the one a seek landed on, and the pts of its shown frames in order, at least
        to frame ``index`` after the seek's (where the file has it): from the file's packets, demuxed again on an error's
        path only (no decoding, ``FILE_TIMES_SECONDS`` at most, once a source: a try that ran out of time is not made
        again, so many damaged frames cost no more than one). None for a URL, or where they cannot be read in time.
        A variable-frame-rate file's frames are not its time by the average rate: counted that way, a damaged frame 40
        (2.40 s) of 60 was '1.867 s in', before the --end hint beside it (2.380), and after a --start 'frame 61'."""
        first = getattr(self, "first_pts", None)
        if first is None or self._times_out_of_reach or isinstance(self.path, str) or not regular_file(self.path):
            return None
        landed = self._landed_pts if self._landed_pts is not None else first
        if self._shown_pts is not None and (self._shown_all or len(self._shown_pts[1]) > self._shown_pts[0] + index):
            return self._shown_pts  # a damaged file's concealed frames ask again and again
        times: list[int] = []
        deadline, after, whole = time.monotonic() + FILE_TIMES_SECONDS, 0, True
        # read ahead, twice as far as last time: a file concealing damage frame after frame (noted one by one) read the
        # file again every few frames, from its start
        ahead = max(index + 2 * REORDER_FRAMES, 2 * len(self._shown_pts[1]) if self._shown_pts else 0, 256)
        try:
            with av.open(str(self.path)) as container:
                for packet in demuxed(container, container.streams[self._stream.index]):
                    if packet.size and packet.pts is not None and packet.pts >= first and not packet.is_discard:
                        times.append(packet.pts)
                    if packet.dts is not None and packet.dts > landed:  # every frame before the seek's is in (pts >= dts)
                        after += 1
                        if after > ahead:  # and the frames after it to index, whatever their order
                            whole = False
                            break
                    if time.monotonic() > deadline:  # once: each concealed frame after a far --start in a long
                        self._times_out_of_reach = True  # file spent the whole FILE_TIMES_SECONDS again
                        return None
        except (av.FFmpegError, OSError):
            self._times_out_of_reach = True
            return None
        times.sort()
        self._shown_pts, self._shown_all = (bisect.bisect_left(times, landed), times), whole
        return self._shown_pts

    def _file_number(self, index: int) -> int:
        """``index`` (counted from where decoding began) as the file's number of that frame: counted from its packets
        (``_file_times``), else estimated from the seek's time at the stream's rate."""
        if self._landed_pts is None:
            return index
        known = self._file_times(index)
        if known is not None:
            return known[0] + index
        rate = frame_rate(self._stream)
        return index + (round((self._landed_pts - self.first_pts) * Fraction(self._stream.time_base) * Fraction(rate)) if rate else 0)

    def _file_frame(self, index: int, why: str = "") -> str:
        """``index`` (counted from where decoding began) as the file's frame number and time, with ``why``: ``frame 45
        (1.800 s in: WHY)``, the time from its first frame, as ``--start`` and ``--end`` take it: that frame's own pts
        where the file's packets give it (a variable frame rate's), else the number at the stream's rate (left out where
        neither is known). Counted from the seek, ``process --start 1.5`` called frame 45 of a damaged file 'frame 15'."""
        number = self._file_number(index)
        known, rate, first = self._file_times(index), frame_rate(self._stream), getattr(self, "first_pts", None)
        said = []
        if known is not None and number < len(known[1]) and first is not None:
            said.append(f"{float((known[1][number] - first) * Fraction(self._stream.time_base)):.3f} s in")
        elif rate and (known is None or self._rate_is_the_files(known[1])):
            said.append(f"{float(number / Fraction(rate)):.3f} s in")
        said += [why] if why else []
        return f"frame {number} ({': '.join(said)})" if said else f"frame {number}"

    def _rate_is_the_files(self, times: list[int]) -> bool:
        """Whether frame numbers at the stream's rate are the file's times (past its last packet, where no pts says
        it): its shown frames a constant rate apart."""
        steps = {b - a for a, b in zip(times, times[1:])}
        return len(steps) <= 1

    def _stream_orientation(self) -> tuple[int, bool]:
        """The display matrix's turn and mirror as the stream's own decoder hands them on with its first frame, for a
        VP9 stream with alpha: ``alpha_decoder``'s frames come from a decoder opened bare, without the stream's side
        data, so a rotated or mirrored WebM cut-out was read as stored (its size too), where ``ffmpeg -c:v libvpx-vp9``
        turns it. Read from the file opened again (a pipe cannot be: as stored, as before)."""
        if not regular_file(self.path):
            return 0, False
        try:
            with open_container(self.path) as container:
                for frame in container.decode(container.streams[self._stream.index]):
                    return int(frame.rotation or 0), display_mirrored(frame)
        except (av.FFmpegError, OSError, SourceError) as e:
            log.debug("%s: its display matrix could not be read (%s); read as stored", self.shown, e)
        return 0, False

    def _make_info(self, first: av.VideoFrame) -> StreamInfo:
        s = self._stream
        cc = s.codec_context
        self.rotation = int(first.rotation or 0)
        self.mirrored = display_mirrored(first)  # a flipping display matrix (ffmpeg 5.1+ shows it flipped)
        if self._alpha_decoder is not None and not self.rotation and not self.mirrored:
            self.rotation, self.mirrored = self._stream_orientation()
        width, height = rotated_size(first.width, first.height, self.rotation)
        check_picture_size(width, height, self.path)
        rate = frame_rate(s)
        # the video stream's own declared length (not the container's, which may be audio's)
        self._declared = declared_seconds(s)
        duration, frame_count = self._declared, shown_frame_count(s)
        if duration is None and self._container.duration:
            duration = self._container.duration / av.time_base
        elif _mkv_duration(s) is not None and first.pts and rate and _tag_is_end(s, float(first.pts * s.time_base), rate, self.path):
            # FFmpeg's Matroska muxer tags where a stream ends: one that starts before 0 lasts longer, one that starts
            # after it (AAC's priming put the video at 23 ms) shorter, or a GIF, WebP or APNG held its last frame that much longer
            duration -= float(first.pts * s.time_base)
            frame_count = round(duration * rate)
        tagged = _int(first.colorspace) or _int(cc.colorspace)
        # the matrix the stream is read with where it names none (None: its own, or BT.601 untagged as FFmpeg reads it)
        self.assumed_matrix = stream_matrix(self.shown, first, tagged, self.input_colors)
        sar = s.sample_aspect_ratio  # the container's, else the codec's (av_guess_sample_aspect_ratio)
        if sar and self.rotation % 180:
            sar = 1 / sar  # a pixel turned on its side
        return StreamInfo(
            width=width,
            height=height,
            time_base=Fraction(s.time_base),
            average_rate=Fraction(rate) if rate else None,
            frame_count=frame_count,
            duration=duration,
            # an RGB picture's range (PNG-in-MOV and RGB FFV1 say full) is no YUV output's: those are limited, as readers assume
            color_range=(_int(first.color_range) or _int(cc.color_range)) if is_yuv_format(first.format.name) else None,
            colorspace=stream_colorspace(first, self.assumed_matrix or tagged, width, height),
            color_primaries=_int(first.color_primaries) or _int(cc.color_primaries),
            color_trc=_int(first.color_trc) or _int(cc.color_trc),
            sample_aspect_ratio=Fraction(sar) if sar and sar != 1 else None,
            timecode=_timecode(s.metadata) or _timecode(self._container.metadata),
            reel_name=_reel_name(self._container, s),
            tags=tuple((k, v) for k, v in self._container.metadata.items() if k.lower() not in WRITER_TAGS and v),
            bit_depth=picture_bits(first),
            rgb_pictures=not is_yuv_format(first.format.name),
            matrix_assumed=self.assumed_matrix is not None,
            hdr10=x265_hdr10(first),
        )

    @property
    def info(self) -> StreamInfo:
        return self._info

    def _decode(self) -> Iterator[av.VideoFrame]:
        """The stream's frames from where the container stands, deinterlaced when asked and needed."""
        frames = Deinterlacer(str(self.path))(self._decoded()) if self.deinterlace else self._decoded()
        return self._timed_leading(frames)

    def _timed_leading(self, frames: Iterator[av.VideoFrame]) -> Iterator[av.VideoFrame]:
        """``frames``, with those before the first timestamped one given the times before it, a frame
        interval apart.

        A Matroska file whose video starts before 0 (``-output_ts_offset -0.5 -avoid_negative_ts
        disabled``, or a cut from a longer recording) reads its first frames back without a pts; numbered
        from 0 by the encoder, they collided with the timestamped frames that follow (0.0 s twice), and
        the run failed. ffmpeg plays them before those frames, at the negative times they were muxed at.
        At most ``LEADING_UNTIMED_MAX`` frames are held back; past that (or with no frame rate, or no
        timestamps at all) the frames go on untimed, as before.
        """
        s = self._stream
        rate = frame_rate(s)
        held: list[av.VideoFrame] = []
        for frame in frames:
            if frame.pts is not None or not rate:
                break
            held.append(frame)
            if len(held) > LEADING_UNTIMED_MAX:
                yield from held
                yield from frames
                return
        else:  # no timestamps at all: numbered by the encoder from 0, as before
            yield from held
            return
        if held and frame.pts is not None:
            step = max(1, round(1 / (Fraction(rate) * Fraction(s.time_base))))
            for k, early in enumerate(held):
                early.pts = frame.pts - (len(held) - k) * step
            log.debug("%s: %d leading frames had no timestamp; given %d..%d", self.shown, len(held), held[0].pts, held[-1].pts)
        yield from held
        yield frame
        yield from frames

    def _decoded(self) -> Iterator[av.VideoFrame]:
        index = 0
        self._hidden = 0  # packets an edit list hides: decoded for reference, never output
        packets = demuxed(self._container, self._stream)  # on past an MPEG-TS demuxer's EAGAIN, as ffmpeg
        if self._alpha_decoder is not None:
            self._alpha_decoder.flush_buffers()  # after a seek, or a drain at the end, as FFmpeg's seek flushes the stream's
        decoder = self._alpha_decoder or self._stream.codec_context
        self._shapes = PixelShapes(decoder, self._codec_sar)
        skip = self.skipped.offset if self.skipped is not None else None
        behind = None if self._from_seek else -1  # the byte position of the packet before (-1: the file's start)
        while True:
            packet = None  # a demuxer's failure has none: said at the first frame not yet output
            try:
                packet = next(packets)
                if skip is not None and packet.size and packet.pos is not None and packet.pos >= 0:
                    if behind is not None and behind < skip <= packet.pos:  # the demuxer skipped the damage to get here
                        # an error at the first frame from there on (_iter), not now: the decoder reads packets ahead of the
                        # frames it returns, and an --end before the damage stops at a frame decoded before it
                        self._crossed = packet.pts if packet.pts is not None else -(1 << 62)
                    behind = packet.pos
                if packet.is_discard and packet.size:
                    self._hidden += 1
                frames = decode_packet(packet, self._alpha_decoder)
                self._shapes.sent(packet, decoder)
            except StopIteration:
                if skip is not None and behind is not None and 0 <= behind < skip and self._crossed is None:
                    self._crossed = 1 << 62  # the rest, from the damage on, skipped: said when the frames end
                return
            except (av.FFmpegError, OSError) as e:
                if index == 0 and self._stream.codec_context.name == "webp" and self._animated_webp():
                    raise SourceError(f"{self.shown}: an animated WebP, which FFmpeg cannot decode; " + (
                        "download it first: birefvid reads animated WebP files with Pillow" if isinstance(self.path, str)
                        else "birefvid process, batch and live read it with Pillow (birefvid.io.open_source)")) from e  # fmt: skip
                raise self._salvageable(SourceError(self._read_failed(self._packet_frame(packet, index), e)), packets) from e
            for frame in frames:
                if frame.is_corrupt and not (self._crossed is not None and not self.lost_warns and frame.pts is not None
                                             and frame.pts >= self._crossed):  # the loss's error says it: no warning first
                    self._damaged.note(self._file_number(index))
                yield frame
                index += 1

    def _packet_frame(self, packet: Optional[av.Packet], index: int) -> int:
        """The frame (counted as ``index`` is, from where decoding began) whose packet failed to decode: its place among
        the file's shown frames by its pts (``_file_times``), else ``index``, the first frame not yet output. With
        B-frames the decoder holds frames back, so a damaged packet of frame 125 (5.000 s) was said as 'frame 123' (the
        first one it had not handed out), where ffprobe's packet list shows the damage. Not under frame threads."""
        pts = getattr(packet, "pts", None)
        if pts is None or isinstance(self.path, str) or self._frame_threads():
            return index
        known = self._file_times(index)
        if known is None or pts not in known[1][known[0]:]:
            return index
        return bisect.bisect_left(known[1], pts) - known[0]

    def _frame_threads(self) -> bool:
        """Whether the decoder decodes several frames at once (FFmpeg's frame threads): a damaged packet's error then
        comes back with a later packet's, so that packet's frame is not the damaged one either (measured: packet 6 of
        an MP4 failed with packet 8's); the first frame not output is said, as before."""
        decoder = self._alpha_decoder or self._stream.codec_context
        try:
            frame_kind = bool(decoder.thread_type.value & av.codec.context.ThreadType.FRAME.value)  # AUTO is FRAME | SLICE
        except (AttributeError, TypeError, ValueError):
            return True  # not known: as before
        return decoder.thread_count != 1 and frame_kind

    def _read_failed(self, index: int, error: Exception) -> str:
        """The error line for a read or decode that failed at frame ``index``.

        A URL that stops delivering (FFmpeg's EIO) is not a damaged file: the connection broke, or
        the server cannot send parts of the file (no HTTP range requests, as ``python -m http.server``),
        which an MP4 whose index sits at its end needs before its first frame."""
        if isinstance(self.path, str) and isinstance(error, av.error.ExitError):
            return f"{self.shown}: reading stopped at {self._file_frame(index, _url_reason(error))}: the server stopped sending"
        if isinstance(self.path, str) and getattr(error, "errno", None) == errno.EIO:
            return (f"{self.shown}: reading stopped at {self._file_frame(index, str(error.strerror))}: the connection broke, or the "
                    "server does not send parts of files (HTTP range requests), which an MP4 with its index at the end "
                    "needs; download the video first, or have it served with range requests")
        return f"{self.shown}: decoding failed at {self._file_frame(index, ffmpeg_reason(error))}; the file is damaged"

    def _salvageable(self, error: SourceError, packets: Optional[Iterator[av.Packet]] = None) -> SourceError:
        """``error`` (a local file damaged midway) with where its good parts are, for the caller that can process a part
        (``process --end``/``--start``: ``salvage_hint``): ``good_until``, the last frame decoded, in seconds from the first
        frame, rounded down to a millisecond (an ``--end`` there leaves that frame out, so the damaged packet after it is
        never decoded), and ``resumes_at``, the next keyframe after the damage, rounded up (``packets``: the demuxer past
        the packet that failed; a seek to it decodes on from there). None where there is none."""
        first, last = getattr(self, "first_pts", None), getattr(self, "_last_pts", None)
        error.good_until = error.resumes_at = None  # type: ignore[attr-defined]
        if isinstance(self.path, str) or first is None or last is None:
            return error
        tb = Fraction(self._stream.time_base)
        good = Fraction(math.floor((last - first) * tb * 1000), 1000)
        error.good_until = float(good) if good > 0 else None  # type: ignore[attr-defined]
        try:
            for packet in packets or ():
                if packet.size and packet.is_keyframe and not packet.is_discard and packet.pts is not None and packet.pts > last:
                    error.resumes_at = float(Fraction(math.ceil((packet.pts - first) * tb * 1000), 1000))  # type: ignore[attr-defined]
                    break
        except (av.FFmpegError, OSError):  # the demuxer lost its way too: no keyframe to suggest
            pass
        return error

    def _animated_webp(self) -> bool:
        """Whether a WebP that FFmpeg failed to decode is an animation (FFmpeg decodes still WebP only; a URL
        cannot be peeked at, so one is taken for an animation), rather than a damaged still picture."""
        return isinstance(self.path, str) or is_animated_webp(self.path)

    def __iter__(self) -> Iterator[Frame]:
        self._claim_iteration()
        return self._iter()

    def _iter(self) -> Iterator[Frame]:
        tb = self._info.time_base
        index, last = 0, None
        frame: Optional[av.VideoFrame] = self._first
        self._first = None  # type: ignore[assignment]
        while frame is not None:
            if self._crossed is not None and (frame.pts is None or frame.pts >= self._crossed):
                if self._ends_at_loss:
                    return  # the first frame past the damage lies after --end: the part asked for is whole
                self._lost_data()
            if frame.pts is not None and last is not None and frame.pts <= last:
                if self._past_loss:  # frames lost (said, or before --start): the decoder's reorder lost its way there
                    log.debug("%s: a frame at pts %d after the lost frames, not after pts %d: left out", self.shown, frame.pts, last)
                    with self._io_lock:
                        if self.closed:
                            return
                        frame = next(self._frames, None)
                    continue
                raise SourceError(self._out_of_order(index, frame.pts, last))
            deep = None
            sar = self._shapes.of(frame)  # None: the stream's own pixel shape
            if self._deep:
                image, deep = (upright(a, self.rotation, self.mirrored) for a in self._to_rgb.deep(frame, sar))
            else:
                image = upright(self._to_rgb(frame, sar), self.rotation, self.mirrored)
            last = self._last_pts = frame.pts
            coverage = self._to_rgb.alpha(frame, sar)  # the source's own alpha, None for an opaque picture
            if coverage is not None:
                coverage = upright(coverage, self.rotation, self.mirrored)
            yield Frame(image=image, pts=frame.pts, time_base=tb, index=index, deep=deep, coverage=coverage)
            index += 1
            with self._io_lock:
                if self.closed:
                    return
                frame = next(self._frames, None)
        if self._crossed is not None:  # the stream ended after the damage, the frames before it all read
            if self._ends_at_loss:
                return
            self._lost_data()
        self._damaged.summarise()
        self._check_complete(index, last)

    def _lost_data(self) -> None:
        """The frames reached the damage ``skipped`` says: its error, or with ``lost_warns`` a warning once (a live
        ``--loop`` reads the file again and again) and reading on."""
        if not self.lost_warns:
            raise skipped_error(self.shown, self.skipped)  # type: ignore[arg-type]
        self._crossed, self._past_loss = None, True
        if first_time_about_file(self.shown, "lost frames"):
            log.warning("%s; reading on", str(skipped_error(self.shown, self.skipped)).replace(", so the output would be", ", so the output is"))  # type: ignore[arg-type]

    def damage_after_end(self) -> None:
        """The part asked for ends before the damage ``skipped`` says (``refuse_skipped``): the frames end where they
        cross it, without its error. The first frame decoded past a lost frame can be the next one shown, which the
        error met before ``--end`` could stop at it: the hint's own ``--end`` was refused."""
        self._ends_at_loss = True

    def damage_before_start(self) -> None:
        """The part asked for starts after the next keyframe after the damage ``skipped`` says (``refuse_skipped``): the
        frames before it, which an MPEG-TS file (no index to seek by) may be read through, raise nothing."""
        self.skipped, self._crossed, self._past_loss = None, None, True

    def _out_of_order(self, index: int, pts: int, previous: int) -> str:
        """The error for a frame whose timestamp does not follow the one before (the decoder emits
        frames in presentation order, so the file's timestamps are wrong; every output needs them), with the
        likely cause's remedy: a time base coarser than a frame, a clock that starts over (MPEG-TS files joined
        end to end), else a frame or two swapped (DivX/XviD's packed B-frames), which every file got."""
        tb = self._info.time_base
        name = Path(urlsplit(self.path).path).name if isinstance(self.path, str) else self.path.name
        said = (f"{self.shown}: frame {index}'s timestamp ({float(pts * tb):.3f} s) is not after frame {index - 1}'s "
                f"({float(previous * tb):.3f} s)")  # fmt: skip
        if tb > COARSEST_TIME_BASE:
            return (f"{said}: the file counts time in steps of {float(tb):g} s (time base {tb.numerator}/{tb.denominator}), too coarse "
                    "to tell its frames apart, so the program that wrote it lost their times; write it again from the original "
                    "with a finer time base (ffmpeg: -video_track_timescale 90000)")  # fmt: skip
        back = float((previous - pts) * tb)
        rate = self._info.average_rate
        if back > REORDER_FRAMES / float(rate or 25):  # a reorder moves a frame or two; this is another recording's clock
            cause = (f"its clock starts over, {back:.3f} s back, as where recordings were joined end to end (cat a.ts b.ts) or "
                     "the sender restarted")  # fmt: skip
            if self._container.format.name in ("mpegts", "mpeg"):  # ffmpeg lines up such a stream's parts when it remuxes it
                return f"{said}: {cause}; remux it, which puts the parts one after another: ffmpeg -i {name} -c copy fixed.mkv"
            return f"{said}: {cause}; split it where the clock starts over (ffmpeg's -ss and -to) and process each part"
        return (
            f"{said}: the file's timestamps are out of order (DivX/XviD with packed "
            f"B-frames?); re-encode it first, e.g. ffmpeg -i {name} -c:v libx264 -crf 16 fixed.mp4"
            + (" (or, lossless for an AVI: -c copy -bsf:v mpeg4_unpack_bframes fixed.avi)" if name.lower().endswith(".avi") else "")
        )

    def _check_complete(self, count: int, last_pts: Optional[int]) -> None:
        """Raise when the stream stopped well before its declared end, or its file's structure says it is cut off."""
        damage = structural_damage(self.path, self._container.format.name)
        if damage:
            raise SourceError(f"{self.shown}: decoding stopped at {self._file_frame(count)}: {damage}")
        cut = mpegts_cut_off(self.path, self._container.format.name)
        if cut and first_time_about_file(self.path, "cut"):  # live --loop reads the file again and again: said once
            # as ffmpeg, the frames before the cut are kept: the rest of the file is not anywhere to read
            kept = count - self._counted_from
            if self._counted_from:
                log.warning("%s: %s; %s, as ffmpeg keeps %s", self.shown, cut, _kept(kept, f"from {option('start')} to the cut"), _them(kept))
            else:
                log.warning("%s: %s; %s, as ffmpeg keeps %s", self.shown, cut, _kept(kept, "before the cut"), _them(kept))
        end = None if cut else mpegts_damaged_end(self.path, self._container.format.name, self._stream.index)
        if end and first_time_about_file(self.path, "damaged end"):  # as a cut-off file: the frames there are kept
            log.warning("%s: %s; %s", self.shown, end, _kept(count - self._counted_from, "read"))
        short = declared_shortfall(self._stream, count, last_pts, hidden=self._hidden + self._dropped, from_start=not self._seeked)
        if short is not None:
            where, lost = short
            if lost:
                raise self._salvageable(SourceError(f"{self.shown}: decoding stopped at {where}; the file is truncated or damaged"))
            log.warning("%s: decoding stopped at %s", self.shown, where)

    def _close(self) -> None:
        with self._io_lock:
            self._container.close()
