"""Join chunk files into one output by remuxing their packets (no re-encoding), muxing the source audio and subtitles once.

Each chunk file starts with a keyframe and carries the source's own pts, so the packets go into the
final container as they are, in order; the result is written to a temporary file and renamed only
when complete (``io.atomic``). The joined stream's frame count and timestamps are checked against
the plan before the rename.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Optional, Sequence

from ..errors import SinkError
from ..io.base import ffmpeg_name
from ..io.atomic import AtomicFile
from ..io.formats import MUXERS, tag_options
from ..io.frame_grid import FrameGrid


def _container_options(muxer: str, time_base: Fraction) -> dict[str, str]:
    """The muxer options the chunk encoder used (``VideoFileSink``): exact mov timescale, mkv timestamps untouched."""
    if muxer in ("mov", "mp4") and time_base.denominator < 2**31:
        return {"video_track_timescale": str(time_base.denominator)}
    if muxer in ("matroska", "webm"):
        return {"avoid_negative_ts": "disabled"}
    return {}


def join_chunks(
    parts: Sequence[Path], target: Path, *, audio_from: Optional[str], expected_frames: int, shifts: Optional[Sequence[Fraction]] = None,
    subtitles_from: Optional[str] = None, chapters_from: Optional[str] = None, source_time_base: Optional[Fraction] = None,
) -> int:
    """Remux ``parts`` in order into ``target`` (+ the audio of ``audio_from``, the subtitles of
    ``subtitles_from``, the chapters of ``chapters_from``); returns the frames joined.

    ``shifts``: seconds to add back to each part's timestamps (``chunk_shift``; None: none), moved onto the
    exact frame grid the chunk encoder put the frames on (``FrameGrid``, given the source's ``source_time_base``).
    """
    import av

    from ..io.audio import AudioTracks, has_audio
    from ..io.subtitles import SubtitleTracks, source_chapters
    from ..io.video_source import WRITER_TAGS

    target = Path(target)
    muxer = MUXERS.get(target.suffix.lower())
    if muxer is None:
        raise SinkError(f"cannot join chunks into {target}: unknown container {target.suffix!r}")
    atomic = AtomicFile(target)
    audio: Optional[AudioTracks] = None
    subtitles: Optional[SubtitleTracks] = None
    frames = 0
    try:
        with av.open(ffmpeg_name(parts[0])) as first:
            template = first.streams.video[0]
            time_base = Fraction(template.time_base)
            tags = {key: value for key, value in first.metadata.items() if key.lower() not in WRITER_TAGS}
            options = {**_container_options(muxer, time_base), **tag_options(muxer, tags)}
            out = av.open(str(atomic.temp), "w", format=muxer, container_options=options)
            with out:
                for key, value in tags.items():  # the source's tags (creation time, title), as the chunks got them
                    out.metadata[key] = value
                video = out.add_stream_from_template(template)
                video.time_base = time_base
                _keep_identity(video, template)
                video.disposition = av.stream.Disposition.default
                for key, value in template.metadata.items():  # e.g. WebM's alpha_mode; not the chunk's own length
                    if key.upper() != "DURATION":
                        video.metadata[key] = value
                for data in first.streams.data:  # a MOV chunk's reel name is in its timecode track; the joined one writes it there
                    if data.metadata.get("reel_name") and "timecode" in video.metadata:
                        video.metadata["reel_name"] = data.metadata["reel_name"]
                if audio_from is not None and has_audio(audio_from):
                    audio = AudioTracks(audio_from, out, muxer)
                if subtitles_from is not None:
                    subtitles = SubtitleTracks(subtitles_from, out, target)
                if chapters_from is not None and (chapters := source_chapters(chapters_from)):
                    out.set_chapters(chapters)
                out.start_encoding()
                last_dts: Optional[int] = None
                companions = [c for c in (audio, subtitles) if c is not None]
                grid = _chunk_grid(source_time_base, template)
                for i, part in enumerate(parts):
                    shift = shifts[i] if shifts is not None else Fraction(0)
                    shift = grid.snap(shift, shifts[0]) if grid is not None and shifts is not None else shift
                    frames, last_dts = _copy_packets(Path(part), out, video, companions, frames, last_dts, shift)
                for companion in companions:
                    companion.finish()
        if frames != expected_frames:
            raise SinkError(f"joining {target} gave {frames} frames, expected {expected_frames}")
        atomic.commit()
    except BaseException:
        atomic.discard()
        raise
    finally:
        for companion in (audio, subtitles):
            if companion is not None:
                companion.close()
    return frames


def _chunk_grid(source_time_base: Optional[Fraction], template) -> Optional[FrameGrid]:
    """The frame grid the chunk files were written on (their time base is its), or None."""
    if source_time_base is None or not template.average_rate:
        return None
    grid = FrameGrid.choose(source_time_base, Fraction(template.average_rate))
    return grid if grid is not None and Fraction(template.time_base) == grid.time_base else None


def _keep_identity(video, template) -> None:
    """Carry the codec tag, profile, frame rate and pixel aspect the template does not (ProRes 4444 would
    become 'apch', read back as 10-bit HQ; a timecode track needs the rate)."""
    src, dst = template.codec_context, video.codec_context
    if template.average_rate:  # MOV's timecode track needs the rate; the template stream does not carry it
        dst.framerate = template.average_rate
    sar = template.sample_aspect_ratio  # what the chunk's container recorded (e.g. MOV's pasp)
    if sar and sar != 1:
        dst.sample_aspect_ratio = sar
    if src.codec_tag:
        dst.codec_tag = src.codec_tag
    if src.profile is not None:
        try:
            dst.profile = src.profile
        except (AttributeError, TypeError, ValueError):
            pass  # a read-only or unnamed profile; the tag is what the muxer writes


def _copy_packets(part: Path, out, video, companions, frames: int, last_dts: Optional[int], shift: Fraction) -> tuple[int, Optional[int]]:
    """Mux one chunk file's video packets into ``out`` moved by ``shift`` seconds, interleaving the
    ``companions`` (audio, subtitle tracks) up to each packet's time."""
    import av

    try:
        container = av.open(ffmpeg_name(part))
    except (av.FFmpegError, OSError) as exc:
        raise SinkError(f"chunk file {part} is unreadable ({exc}); rerun to redo it") from exc
    with container:
        stream = container.streams.video[0]
        ticks = shift / Fraction(stream.time_base)
        if ticks.denominator != 1:
            raise SinkError(f"cannot join {part}: its start {float(shift):.6f} s is not a whole number of its {stream.time_base} ticks")
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if ticks:
                packet.pts = None if packet.pts is None else packet.pts + int(ticks)
                packet.dts = None if packet.dts is None else packet.dts + int(ticks)
            if packet.dts is None and packet.pts is not None:
                # Matroska stores no decode times: its demuxer leaves the first (reordering delay) packets' unset
                packet.dts = packet.pts if last_dts is None else last_dts + 1
            if packet.dts is not None and last_dts is not None and packet.dts <= last_dts:
                # two encoders' decode timestamps can meet at a chunk seam; nudge, never past pts
                packet.dts = last_dts + 1
                if packet.pts is not None and packet.dts > packet.pts:
                    raise SinkError(f"cannot join {part}: its decode timestamps overlap the previous chunk's")
            if packet.dts is not None:
                last_dts = packet.dts
            if packet.pts is not None:
                for companion in companions:
                    companion.write_until(float(packet.pts * packet.time_base))
            packet.stream = video
            out.mux(packet)
            frames += 1
    return frames, last_dts
