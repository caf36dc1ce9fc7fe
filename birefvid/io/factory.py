"""Pick the right source for an input path and the right sink for an output path."""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional

from birefvid.errors import ConfigError, SinkError, option
from birefvid.frames import StreamInfo
from birefvid.job import Decoder
from birefvid.io.animated_sink import ANIMATED_MUXERS, AnimatedImageSink
from birefvid.io.animated_source import AnimatedWebPSource, is_animated_webp
from birefvid.io.atomic import check_target
from birefvid.io.audio import has_audio
from birefvid.io.base import Sink, Source, is_url
from birefvid.io.formats import KINDS, EncoderSpec, Kind, check_encoder, choose_encoder, sample_bits
from birefvid.io.exr import ExrColour, exr_colour, exr_timing
from birefvid.io.image_sink import ImageSequenceSink
from birefvid.io.image_source import ImageSequenceSource, is_glob
from birefvid.sequence_names import SEQUENCE_FORMATS, check_own_folder, check_previous_run, is_sequence_target, sequence_folder, sequence_pattern
from birefvid.io.subtitles import has_subtitles
from birefvid.io.trim import TimeWindow, timecode_frame
from birefvid.io.scale import scaled_size
from birefvid.io.video_sink import BITSTREAM_SAR_CODECS, VideoFileSink
from birefvid.io.video_source import VideoFileSource
from birefvid.urls import shown_url

log = logging.getLogger(__name__)


def open_source(path: str | Path, decoder: Decoder = "pyav", *, fps: float = 25, threads: Optional[int] = None, deinterlace: bool = True,
                video_stream: Optional[int] = None, input_colors: str = "auto") -> Source:  # fmt: skip
    """Open a video file (PyAV or decord), an animated WebP (Pillow) or, for a folder or glob pattern, an image sequence at ``fps``.

    ``threads`` sets PyAV's decoder thread count (None: FFmpeg's choice); ``deinterlace``: PyAV
    gives interlaced frames deinterlaced (``io.deinterlace``); ``video_stream``: a video file's N-th
    video stream instead of the one ffmpeg would take (PyAV only: ``SourceSpec.validate`` refuses decord);
    ``input_colors``: the matrix a video that names none is read with (``io.untagged``; pictures are RGB already).
    """
    text = str(path)
    if video_stream is not None and not is_url(text) and (is_glob(text) or Path(text).is_dir() or is_animated_webp(text)):
        raise ConfigError(f"{option('video_stream')} chooses among a video file's video streams; {text} is "
                          f"{'an animated WebP' if Path(text).is_file() else 'an image sequence'}, which has one: leave it out")  # fmt: skip
    if not is_url(text) and (is_glob(text) or os.path.isdir(text)):
        if decoder == "decord":  # it was ignored without a word: the pictures are read with OpenCV whatever the decoder
            raise ConfigError(f"{option('decoder', 'decord')} decodes video files; {text} is an image sequence, whose pictures are read "
                              f"one by one (OpenCV, Pillow): leave {option('decoder')} out")  # fmt: skip
        return ImageSequenceSource(text, fps=fps)
    if not is_url(text) and is_animated_webp(text):  # FFmpeg decodes still WebP only; Pillow (libwebp) animations too
        if decoder != "pyav":
            log.info("%s is an animated WebP: read with Pillow, not %s", text, decoder)
        return AnimatedWebPSource(text)
    if decoder == "pyav":
        return VideoFileSource(text, threads=threads or 0, deinterlace=deinterlace, video_stream=video_stream, input_colors=input_colors)
    if decoder == "decord":
        if is_url(text):
            raise ConfigError(f"decord reads local files only; read {text} with the PyAV decoder ({option('decoder', 'pyav')})")
        from birefvid.io.decord_source import DecordSource  # optional extra: imported only when asked for

        return DecordSource(text, input_colors)
    raise ConfigError(f"unknown decoder {decoder!r}; expected 'pyav' or 'decord'")


def sequence_numbering(target: Path, info: StreamInfo) -> tuple[int, int]:
    """An image sequence's first file number and its least padding: the start timecode's frame number when the source
    has one (editors such as Resolve read an image sequence's timecode from it, so the cut-out conforms), else 1."""
    start = timecode_frame(info.timecode, info.average_rate) if info.timecode and info.average_rate else None
    if start is None:
        return 1, 6
    last = start + (info.frame_count or 0)
    log.info("%s: numbered from %d, the frame of the start timecode %s", target, start, info.timecode)
    return start, max(6, len(str(last)))


def _numbers_per_pts(info: StreamInfo) -> Optional[Fraction]:
    """Frame numbers a pts step is, for a numbered image sequence's frames (pts count its numbers), else None."""
    return Fraction(info.time_base) * Fraction(info.average_rate) if info.numbered and info.average_rate else None


def open_sink(
    path: str | Path,
    *,
    kind: Kind,
    info: StreamInfo,
    audio_from: Optional[str | Path] = None,
    audio: bool = True,
    overwrite: bool = False,
    threads: Optional[int] = None,
    subtitles_from: Optional[str | Path] = None,
    chapters_from: Optional[str | Path] = None,
    window: Optional[TimeWindow] = None,
    **encoder: Any,
) -> Sink:
    """Open an output for ``kind`` images (video by extension, or a PNG sequence); every check runs here, before any work.

    ``encoder`` holds ``choose_encoder``'s overrides: codec, pix_fmt, crf, bitrate, gpu; ``threads`` the
    video encoder's thread count (None: FFmpeg's choice). ``audio_from``, ``subtitles_from`` and
    ``chapters_from`` name the source whose audio, subtitles and chapters a video output carries;
    ``window``, the part of their timeline that goes with the pictures (``TrimmedSource.window``).
    """
    if kind not in KINDS:
        raise SinkError(f"unknown output kind {kind!r}; expected one of {', '.join(KINDS)}")
    target = Path(path)
    want_audio = audio and audio_from is not None
    if is_sequence_target(path):
        encoder.pop("bits", None)  # a folder's PNGs (TIFFs) are 16-bit when given uint16 pictures
        pattern = sequence_pattern(path)
        target = sequence_folder(path)
        _check_sequence_options(path, encoder)
        check_own_folder(path)
        if pattern:  # before check_target's 'use --overwrite', which this would refuse
            check_previous_run(pattern, overwrite=overwrite)
        check_target(target, overwrite=overwrite, is_dir=True)
        if want_audio and has_audio(str(audio_from)):
            log.warning("%s: an image sequence cannot hold audio; the audio of %s is not written there", target, shown_url(str(audio_from)))  # named: --also gives one line per output
        if info.sample_aspect_ratio and not holds_floats(path):  # an EXR's pixelAspectRatio records it
            log.warning("%s: the input's pixels are not square (aspect %s); the pictures keep its %dx%d pixels, "
                        "so viewers will show them squeezed (an .exr pattern records the pixel shape)",
                        target, info.sample_aspect_ratio, info.width, info.height)  # fmt: skip
        colour = exr_colour_for(path, kind, info)
        if colour is not None:
            log.info("%s: linear light from the input's %s values, premultiplied", target, colour.transfer)
        first, digits = sequence_numbering(target, info)
        timing = exr_timing(info.average_rate, info.timecode, first) if holds_floats(path) else None  # the timecode's is file ``first``
        return ImageSequenceSink(target, kind, info.width, info.height, first_number=first, digits=digits, overwrite=overwrite,
                                 pattern=pattern, numbers_per_pts=_numbers_per_pts(info), colour=colour,
                                 sample_aspect_ratio=info.sample_aspect_ratio, timing=timing)  # fmt: skip
    spec = choose_encoder(target, kind, info.width, info.height, **encoder)
    check_target(target, overwrite=overwrite, is_dir=False)
    if spec.muxer in ANIMATED_MUXERS:
        _say_what_animations_drop(target, info, audio_from if want_audio else None, subtitles_from)
        return AnimatedImageSink(target, spec, info, overwrite=overwrite)
    if encoder.get("pix_fmt") is None:
        _say_if_odd_h26x(target, spec, info)
    source_audio = str(audio_from) if want_audio and has_audio(str(audio_from)) else None
    if want_audio and source_audio is None:
        log.info("%s has no audio stream; writing video only", shown_url(str(audio_from)))
    return VideoFileSink(target, spec, info, audio_from=source_audio, threads=threads,
                         subtitles_from=_text(subtitles_from), chapters_from=_text(chapters_from), window=window,
                         overwrite=overwrite)  # fmt: skip


def check_sink_options(path: str | Path, kind: Kind, **encoder: Any) -> None:
    """What ``open_sink`` would refuse about ``path``'s container and ``encoder``'s options, without opening anything."""
    encoder.pop("bits", None)
    if is_sequence_target(path):
        _check_sequence_options(path, encoder)
        check_own_folder(path)
    else:
        check_encoder(Path(path), kind, **encoder)


def exr_colour_for(path: str | Path, kind: str, info: StreamInfo) -> Optional[ExrColour]:
    """How ``info``'s pictures are linearised into the OpenEXR sequence ``path`` names when ``kind`` is colour (None for
    a matte or another format); SinkError for an input whose colour is not (HDR, log). Ask it with the input's own
    ``info``, before HDR is shown as SDR for the sequence (``io.hdr.SdrSource``), which would hide what it is."""
    pattern = sequence_pattern(path)
    if pattern is None or pattern.suffix.lower() != ".exr" or kind == "mask":
        return None
    return exr_colour(info, path)


def _check_sequence_options(path: str | Path, encoder: dict[str, Any]) -> None:
    """SinkError for an encoder option given to an image sequence at ``path``: its files are lossless PNG, TIFF or
    EXR, and a codec, pixel format, rate or speed for them was dropped without a word. (Whether an EXR's colour can be
    linearised depends on the input: ``exr_colour`` says, when it is open.)"""
    target = sequence_folder(path)
    suffix = pattern.suffix.lower() if (pattern := sequence_pattern(path)) else ".png"
    own = {".png": "png", ".tif": "tiff", ".tiff": "tiff", ".exr": "exr"}[suffix]
    given = [option(name) for name in ("codec", "pix_fmt", "crf", "bitrate", "preset")
             if encoder.get(name) is not None and not (name == "codec" and encoder[name] == own)]  # fmt: skip
    if given:
        raise SinkError(f"{target} is a folder: image sequences are always lossless {SEQUENCE_FORMATS[suffix]}, which takes "
                        f"no {', '.join(given)} (drop it, or name a video file with an extension)")  # fmt: skip


def _say_if_odd_h26x(target: Path, spec: EncoderSpec, info: StreamInfo) -> None:
    """Warn that an odd-sized H.264/H.265 output is 4:4:4, which browsers, QuickTime and phones do not play,
    and name the ``--max-size`` that makes it even (4:2:0, the profile every player decodes)."""
    if spec.codec not in BITSTREAM_SAR_CODECS or not (info.width % 2 or info.height % 2) or "444" not in spec.pix_fmt:
        return
    long_side = max(info.width, info.height)
    limit = long_side - 1 if long_side % 2 else long_side - 2
    width, height = scaled_size(info.width, info.height, limit)
    log.warning("%s: the picture is %dx%d, an odd size, which %s can only code as %s (4:4:4), and browsers, QuickTime and "
                "phones do not play that; %s makes it %dx%d, or write .webm (VP9 plays at any size)",
                target, info.width, info.height, spec.codec, spec.pix_fmt, option("max_size", limit), width, height)  # fmt: skip


def holds_floats(path: str | Path) -> bool:
    """Whether ``path`` names an OpenEXR sequence, whose half floats hold a 16-bit composite at no extra cost."""
    pattern = sequence_pattern(path) if is_sequence_target(path) else None
    return pattern is not None and pattern.suffix.lower() == ".exr"


def output_sample_bits(path: str | Path, kind: Kind, info: StreamInfo, **encoder: Any) -> int:
    """Bits a sample of the output ``open_sink`` would open at ``path`` holds, without opening it: a PNG or TIFF
    sequence's 16 when ``bits`` > 8 asks for more, an OpenEXR's 16 always (half floats: its 8-bit matte would
    be float steps of 1/255, and so would its colour: ``holds_floats``), a video's pixel format's, 8 for
    GIF/WebP/APNG (and for a request ``open_sink`` will refuse, which it then says why)."""
    if holds_floats(path):
        return 16
    if is_sequence_target(path):
        return 16 if encoder.get("bits", 8) > 8 else 8
    try:
        spec = choose_encoder(Path(path), kind, info.width, info.height, **encoder)
    except SinkError:
        return 8
    return 8 if spec.muxer in ANIMATED_MUXERS else sample_bits(spec.pix_fmt)


def _say_what_animations_drop(target: Path, info: StreamInfo, audio_from: Optional[str | Path], subtitles_from: Optional[str | Path]) -> None:
    """Warn about what a GIF / WebP / APNG cannot carry from the source: sound, subtitles, a pixel shape."""
    fmt = target.suffix.lstrip(".").upper()
    if audio_from is not None and has_audio(str(audio_from)):
        log.warning("%s files cannot hold audio; the audio of %s is not written", fmt, shown_url(str(audio_from)))
    if subtitles_from is not None and has_subtitles(str(subtitles_from)):
        log.warning("%s files cannot hold subtitles; those of %s are not written", fmt, shown_url(str(subtitles_from)))
    if info.sample_aspect_ratio:
        log.warning("%s: the input's pixels are not square (aspect %s), which %s cannot record; viewers will show it squeezed",
                    target, info.sample_aspect_ratio, fmt)  # fmt: skip


def _text(path: Optional[str | Path]) -> Optional[str]:
    return None if path is None else str(path)
