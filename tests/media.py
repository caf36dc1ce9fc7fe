"""Generate and read back small test media with PyAV (import from any test: ``from media import make_video``).

Everything is written where the caller says (use ``tmp_path``); nothing is downloaded. Frames are a
deterministic pattern (``pattern_frame``) so tests can compare decoded pixels with what was encoded.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Optional, Sequence

import av
import numpy as np

# container extension -> (video codec, pixel format, audio codec) used when the caller names none
DEFAULTS = {
    ".mp4": ("libx264", "yuv420p", "aac"),
    ".mov": ("libx264", "yuv420p", "aac"),
    ".mkv": ("libx264", "yuv420p", "aac"),
    ".webm": ("libvpx-vp9", "yuv420p", "libopus"),
    ".avi": ("mpeg4", "yuv420p", "mp3"),
}


@dataclass
class GeneratedVideo:
    """What ``make_video`` wrote: the path, the RGB frames as given to the encoder, their pts and timing."""

    path: Path
    frames: list[np.ndarray]
    pts: list[int]
    time_base: Fraction
    fps: Fraction
    audio_duration: Optional[float] = None  # seconds of audio written, None without audio
    size: tuple[int, int] = (0, 0)  # (width, height) as stored, before any rotation

    @property
    def times(self) -> list[Fraction]:
        """Presentation times in seconds, exact."""
        return [p * self.time_base for p in self.pts]


def pattern_frame(index: int, size: tuple[int, int]) -> np.ndarray:
    """A deterministic, codec-friendly RGB frame (H, W, 3): smooth gradients plus a moving block.

    The top-left quadrant is red and the top-right quadrant green, so a rotation shows up as a
    change of where those colours are.
    """
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (x * 255 // max(w - 1, 1)).astype(np.uint8)
    img[..., 1] = (y * 255 // max(h - 1, 1)).astype(np.uint8)
    img[..., 2] = (index * 29) % 256
    img[: h // 3, : w // 3] = (230, 20, 20)
    img[: h // 3, w - w // 3 :] = (20, 230, 20)
    bx = (index * 5) % max(w - 8, 1)
    img[h // 2 : h // 2 + 6, bx : bx + 6] = 255
    return img


def tag_options(path: str | Path, tags: Optional[dict[str, str]]) -> dict[str, str]:
    """Muxer options for writing ``tags`` into ``path`` as a phone does: MOV/MP4 hold reverse-DNS keys
    (com.apple.quicktime.make ...) only as QuickTime metadata keys."""
    if Path(path).suffix.lower() in (".mov", ".mp4") and any("." in key for key in tags or {}):
        return {"movflags": "use_metadata_tags"}
    return {}


def make_video(
    path: str | Path,
    n_frames: int = 8,
    size: tuple[int, int] = (64, 48),
    fps: int | Fraction = 25,
    with_audio: bool = True,
    codec: Optional[str] = None,
    pix_fmt: Optional[str] = None,
    rotation: Optional[int] = None,
    *,
    pts: Optional[Sequence[int]] = None,
    time_base: Optional[Fraction] = None,
    audio_codec: Optional[str] = None,
    audio_rate: int = 48000,
    audio_seconds: Optional[float] = None,
    frames: Optional[Sequence[np.ndarray]] = None,
    sample_aspect_ratio: Optional[Fraction] = None,
    timecode: Optional[str] = None,
    tags: Optional[dict[str, str]] = None,
    reel_name: Optional[str] = None,
    flip: Optional[str] = None,
) -> GeneratedVideo:
    """Write a small video (and by default a sine-wave audio track) and describe it.

    - ``size`` is (width, height) as stored; odd sizes need a 4:4:4 ``pix_fmt`` for H.264.
    - ``rotation`` writes a display matrix (counter-clockwise degrees, as ``VideoFrame.rotation`` reads);
      ``flip`` ("h" or "v") makes that matrix mirror the picture too, left-right or top-bottom (a front camera's).
    - ``pts``/``time_base`` give explicit (e.g. variable-rate) timestamps; by default pts = index and
      time_base = 1/fps.
    - ``pix_fmt`` like ``yuv420p10le`` makes a 10-bit file; ``codec`` and ``audio_codec`` default by extension.
    - ``audio_seconds`` defaults to the video's duration.
    - ``sample_aspect_ratio`` tags non-square pixels (as DV/HDV/DVD sources have).
    - ``timecode`` (HH:MM:SS:FF) gives a MOV/MP4 a timecode track, as cameras and editors write; ``reel_name``
      names its reel (card, tape) there.
    - ``tags`` are the file's own tags (e.g. ``creation_time``, ``title``).
    - ``frames`` are RGB (h, w, 3), or 4:2:0 planes (h * 3 / 2, w) that reach a ``yuv420p`` encoder as they are: FFmpeg's
      RGB to YUV conversion rounds differently on CPUs with other SIMD (measured: its C path and AVX-512 path differ),
      so a test that cuts or damages the file at a byte offset gives planes for the same bytes on every machine.
    """
    path = Path(path)
    ext = path.suffix.lower()
    dcodec, dpix, dacodec = DEFAULTS.get(ext, DEFAULTS[".mkv"])
    codec = codec or dcodec
    pix_fmt = pix_fmt or dpix
    fps = Fraction(fps)
    tb = Fraction(time_base) if time_base is not None else 1 / fps
    pts = list(pts) if pts is not None else list(range(n_frames))
    if len(pts) != n_frames:
        raise ValueError("make_video: len(pts) must equal n_frames")
    pictures = list(frames) if frames is not None else [pattern_frame(i, size) for i in range(n_frames)]
    audio_duration = None
    with av.open(str(path), "w", container_options=tag_options(path, tags)) as out:
        out.metadata.update(tags or {})
        v = out.add_stream(codec, rate=fps)
        v.width, v.height = size
        v.pix_fmt = pix_fmt
        v.time_base = tb
        v.codec_context.time_base = tb
        if rotation is not None or flip is not None:
            v.set_display_rotation(rotation or 0, hflip=flip == "h", vflip=flip == "v")
        if sample_aspect_ratio is not None:
            v.codec_context.sample_aspect_ratio = sample_aspect_ratio
        if timecode is not None:
            v.metadata["timecode"] = timecode
        if reel_name is not None:
            v.metadata["reel_name"] = reel_name
        a = None
        if with_audio:
            a = out.add_stream(audio_codec or dacodec, rate=audio_rate)
            a.codec_context.layout = "mono"
        seconds = audio_seconds if audio_seconds is not None else float((pts[-1] * tb) + 1 / fps)
        samples_done = 0
        total_samples = int(round(seconds * audio_rate))
        for img, p in zip(pictures, pts):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24" if img.ndim == 3 else "yuv420p")
            frame.pts = p
            frame.time_base = tb
            out.mux(v.encode(frame))
            if a is not None:  # keep audio roughly interleaved with video
                upto = min(total_samples, int(float(p * tb + 1 / fps) * audio_rate))
                samples_done = _write_audio(out, a, samples_done, upto, audio_rate)
        out.mux(v.encode(None))
        if a is not None:
            _write_audio(out, a, samples_done, total_samples, audio_rate)
            out.mux(a.encode(None))
            audio_duration = total_samples / audio_rate
    return GeneratedVideo(path, pictures, pts, tb, fps, audio_duration, size)


def _write_audio(out, stream, start: int, stop: int, rate: int) -> int:
    """Encode samples [start, stop) of a 440 Hz tone; returns stop."""
    chunk = 1024
    for s in range(start, stop, chunk):
        n = min(chunk, stop - s)
        t = (np.arange(s, s + n) / rate).astype(np.float32)
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = s
        frame.time_base = Fraction(1, rate)
        out.mux(stream.encode(frame))
    return max(start, stop)


def make_sound_only(path: str | Path, codec: str, samples: int, container: Optional[str] = None) -> Path:
    """A file holding one mono track of silence and no video: what a sound-only input looks like."""
    sample_format, dtype = {"aac": ("fltp", np.float32), "pcm_s16le": ("s16", np.int16)}[codec]
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=48000)
        stream.codec_context.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, samples), dtype), format=sample_format, layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return Path(path)


def make_images(
    folder: str | Path,
    n: int = 4,
    size: tuple[int, int] = (64, 48),
    ext: str = ".png",
    mode: str = "RGB",
    names: Optional[Sequence[str]] = None,
) -> list[Path]:
    """Write ``n`` pattern images (mode RGB, RGBA or L) as ``img_000.png``... and return their paths."""
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        rgb = pattern_frame(i, size)
        if mode == "RGBA":
            img = cv2.cvtColor(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)]), cv2.COLOR_RGBA2BGRA)
        elif mode == "L":
            img = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        else:
            img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        p = folder / (names[i] if names else f"img_{i:03d}{ext}")
        if not cv2.imwrite(str(p), img):
            raise OSError(f"could not write {p}")
        paths.append(p)
    return paths


@dataclass
class Decoded:
    """A decoded output: per-frame pts, the stream time base, pixel format, size and pixels."""

    pts: list[int]
    time_base: Fraction
    pix_fmt: str
    width: int
    height: int
    images: list[np.ndarray] = field(default_factory=list)  # RGBA, gray or RGB depending on `as_format`
    codec: str = ""

    @property
    def times(self) -> list[Fraction]:
        return [p * self.time_base for p in self.pts]


def read_video(path: str | Path, as_format: str = "rgba") -> Decoded:
    """Decode every frame of a video output, keeping alpha: ``as_format`` is rgba, rgb24 or gray.

    VP9 is decoded with ``libvpx-vp9`` (FFmpeg's native vp9 decoder drops the WebM alpha side channel).
    """
    from birefvid.io.readback import decode_video_frames

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        name = s.codec_context.name
        frames = [(f, None) for f in decode_video_frames(path)]
        out = Decoded([], Fraction(s.time_base), "", s.codec_context.width, s.codec_context.height, codec=name)
        for f, _ in frames:
            out.pix_fmt = f.format.name
            out.width, out.height = f.width, f.height
            out.pts.append(f.pts)
            out.images.append(f.to_ndarray(format=as_format))
        return out


def read_alpha(path: str | Path) -> tuple[list[int], np.ndarray, str]:
    """Alpha planes of any output (video or PNG folder): (pts, uint8 (N, H, W), decoded pixel format)."""
    import cv2

    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.png"))
        imgs = [cv2.imread(str(f), cv2.IMREAD_UNCHANGED) for f in files]
        return list(range(len(files))), np.stack([i[..., 3] for i in imgs]), "rgba"
    d = read_video(p, "rgba")
    return d.pts, np.stack([i[..., 3] for i in d.images]), d.pix_fmt


def audio_duration(path: str | Path, track: int = 0) -> Optional[float]:
    """Seconds of audio in ``path``'s audio stream ``track`` (from decoded samples), or None when it has none."""
    with av.open(str(path)) as c:
        if len(c.streams.audio) <= track:
            return None
        s = c.streams.audio[track]
        n, rate = 0, s.codec_context.sample_rate
        for f in c.decode(s):
            n += f.samples
            rate = f.sample_rate
        return n / rate


def audio_codec(path: str | Path) -> Optional[str]:
    """Codec name of the first audio stream, or None."""
    with av.open(str(path)) as c:
        return c.streams.audio[0].codec_context.name if c.streams.audio else None


def damage(path: str | Path, out: str | Path, *, at: float = 0.5, length: int = 400, mode: str = "random") -> Path:
    """Copy ``path`` to ``out`` with ``length`` bytes at fraction ``at`` overwritten (random/zero) or, for mode 'truncate', cut there."""
    data = bytearray(Path(path).read_bytes())
    pos = int(len(data) * at)
    if mode == "truncate":
        data = data[:pos]
    else:
        rng = np.random.default_rng(1234)
        fill = rng.integers(0, 256, length, dtype=np.uint8).tobytes() if mode == "random" else bytes(length)
        data[pos : pos + length] = fill
    Path(out).write_bytes(bytes(data))
    return Path(out)


def damage_packet(path: str | Path, out: str | Path, index: int, *, length: int = 64, fill: int = 0xFF, kind: str = "video") -> Path:
    """Copy ``path`` to ``out`` with the first ``length`` bytes of ``kind`` packet ``index`` (demux order)
    overwritten (in MP4/MOV a packet's bytes are all payload, so the container stays readable)."""
    with av.open(str(path)) as c:
        positions = [p.pos for p in c.demux(getattr(c.streams, kind)[0]) if p.size]
    data = bytearray(Path(path).read_bytes())
    pos = positions[index]
    data[pos : pos + length] = bytes([fill]) * length
    Path(out).write_bytes(bytes(data))
    return Path(out)


def damage_cluster(path: str | Path, out: str | Path, index: int, *, length: int = 64) -> Path:
    """Copy the Matroska/WebM file ``path`` to ``out`` with ``length`` bytes overwritten (seeded random) just after the ID of
    its ``index``-th Cluster (its size and first block's header): FFmpeg's demuxer logs an error, skips to the next
    Cluster and reads on, raising nothing, as with a bad sector or a broken copy."""
    data = bytearray(Path(path).read_bytes())
    clusters = [m.start() for m in re.finditer(re.escape(b"\x1f\x43\xb6\x75"), data)]
    pos = clusters[index] + 4
    data[pos : pos + length] = np.random.default_rng(7).integers(0, 256, length, dtype=np.uint8).tobytes()
    Path(out).write_bytes(bytes(data))
    return Path(out)


def unknown_cluster_sizes(path: str | Path, out: str | Path) -> Path:
    """Copy the Matroska/WebM file ``path`` to ``out`` with its Segment's and Clusters' sizes made "unknown" (every
    value bit set, in the same bytes), as a live writer that cannot seek back (a stream's recorder, OBS) leaves them."""
    data = bytearray(Path(path).read_bytes())

    def vint(at: int) -> tuple[int, int]:  # (value, length) of the EBML size at ``at``
        length = 9 - data[at].bit_length()
        return int.from_bytes(data[at : at + length], "big") & ((1 << (7 * length)) - 1), length

    def unknown(at: int) -> int:  # set the size at ``at`` unknown; its length
        length = 9 - data[at].bit_length()
        data[at : at + length] = ((1 << (8 * length - length)) - 1 | (1 << (8 * length - length))).to_bytes(length, "big")
        return length

    size, n = vint(4)
    pos = 4 + n + size + 4  # past the EBML header and the Segment's ID
    pos += unknown(pos)
    while pos < len(data):
        element = data[pos : pos + 4]
        id_length = 9 - data[pos].bit_length()
        size, n = vint(pos + id_length)
        if element == b"\x1f\x43\xb6\x75":
            unknown(pos + id_length)
        pos += id_length + n + size
    Path(out).write_bytes(bytes(data))
    return Path(out)


def shift_timestamps(path: str | Path, out: str | Path, seconds: Fraction) -> Path:
    """Remux every stream of ``path`` into ``out`` with all timestamps moved by ``seconds``.

    Later (> 0): a file whose streams start late, as an MPEG-TS or a recording's piece does.
    Earlier (< 0, into MP4): what ``ffmpeg -ss T -c copy`` makes of a cut between keyframes: every
    packet is kept (the decoder needs the GOP before the cut) and the MP4 muxer writes an edit list
    that starts at 0 and hides the rest; the header still counts every frame.
    """
    with av.open(str(path)) as src, av.open(str(out), "w") as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.size == 0:  # the demuxer's end-of-stream marker
                continue
            offset = int(round(Fraction(seconds) / packet.stream.time_base))
            if packet.pts is not None:
                packet.pts += offset
            if packet.dts is not None:  # Matroska stores no dts for a stream's first packet
                packet.dts += offset
            packet.stream = streams[packet.stream.index]
            dst.mux(packet)
    return Path(out)


def hide_leading_frames(path: str | Path, out: str | Path, n: int, fps: int | Fraction) -> Path:
    """An MP4 ``out`` of ``path`` whose first ``n`` frames an edit list hides (see ``shift_timestamps``)."""
    return shift_timestamps(path, out, -Fraction(n) / Fraction(fps))


def swap_frame_times(path: str | Path, out: str | Path, index: int, timescale: Optional[int] = None) -> Path:
    """Remux an intra-only MOV ``path`` into ``out`` with frames ``index`` and ``index + 1`` trading
    timestamps: the pictures decode in order but their times go backwards once, as in a packed
    B-frame DivX/XviD file. ``timescale``: the track counts time in 1/timescale s, a tick a frame
    (1: whole seconds, as an MP4 written with ``-video_track_timescale 1`` does)."""
    options = {"video_track_timescale": str(timescale)} if timescale else {}
    with av.open(str(path)) as src, av.open(str(out), "w", options=options) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for i, packet in enumerate(p for p in src.demux(video=0) if p.size):
            if timescale:
                packet.time_base, packet.duration = Fraction(1, timescale), 1
            step = packet.duration or 1
            packet.dts = (i - 1) * step  # one frame of decode delay leaves room for the swap (pts >= dts)
            packet.pts = {index: index + 1, index + 1: index}.get(i, i) * step
            packet.stream = stream
            dst.mux(packet)
    return Path(out)


def merge_audio(
    video: str | Path, others: Sequence[str | Path], out: str | Path, languages: Sequence[str], default: Optional[int] = None,
    titles: Sequence[str] = (),
) -> Path:
    """Remux ``video`` (its video and audio) and the audio of each of ``others`` into ``out``: a
    file with several audio tracks, tagged with ``languages`` in order (and ``titles``: a MOV/MP4
    writes them as its tracks' 'name' atoms, as cameras and editors do); ``default``: the audio track
    (0: the first) flagged as the one players pick."""
    parts = [(video, "video"), (video, "audio")] + [(p, "audio") for p in others]
    inputs = [av.open(str(path)) for path, _ in parts]  # one reader per stream: each is read to its end
    try:
        with av.open(str(out), "w") as dst:
            sources = [getattr(c.streams, kind)[0] for c, (_, kind) in zip(inputs, parts)]
            targets = [dst.add_stream_from_template(s) for s in sources]
            for number, (target, language) in enumerate(zip(targets[1:], languages)):
                target.metadata["language"] = language
                if number < len(titles):
                    target.metadata["title"] = titles[number]
                target.disposition = av.stream.Disposition.default if number == default else av.stream.Disposition(0)
            for container, source, target in zip(inputs, sources, targets):
                for packet in container.demux(source):
                    if packet.size:
                        packet.stream = target
                        dst.mux(packet)
    finally:
        for c in inputs:
            c.close()
    return Path(out)


def make_resizing_video(path: str | Path, parts: Sequence[tuple[tuple[int, int], int]], fps: int = 25,
                        picture_at: Callable[[int, tuple[int, int]], np.ndarray] = pattern_frame) -> list[np.ndarray]:  # fmt: skip
    """A VP9 WebM whose picture size changes midway, as a browser's MediaRecorder writes when the
    bandwidth changes: ``parts`` is ((width, height), frames) in order; ``picture_at(index, size)`` draws
    each picture (RGB). Returns the pictures."""
    pictures = []
    with av.open(str(path), "w") as out:
        stream = None
        index = 0
        for (width, height), n in parts:
            encoder = av.CodecContext.create("libvpx-vp9", "w")
            encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
            encoder.time_base = Fraction(1, fps)
            if stream is None:  # the container declares the first size
                stream = out.add_stream("libvpx-vp9", rate=fps)
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                stream.time_base = Fraction(1, fps)
            for i in range(n):
                picture = picture_at(index, (width, height))
                pictures.append(picture)
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
                frame.pts, frame.time_base = index, Fraction(1, fps)
                index += 1
                for packet in encoder.encode(frame):
                    packet.stream = stream
                    out.mux(packet)
            for packet in encoder.encode(None):
                packet.stream = stream
                out.mux(packet)
    return pictures


def listdir(folder: str | Path) -> list[str]:
    """Sorted names in ``folder`` including hidden ones (to prove no temp files were left)."""
    return sorted(os.listdir(folder))


def x264_settings(path) -> str:
    """The settings line x264 writes into the stream (an SEI message in the first packet)."""
    with av.open(str(path)) as c:
        first = bytes(next(p for p in c.demux(c.streams.video[0]) if p.size))
    start = first.index(b"x264 - core")
    return first[start : first.index(b"\x00", start)].decode("ascii", "replace")


# a minimal ASS header: FFmpeg's text subtitle encoders refuse to open without one
_ASS_HEADER = (
    b"[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\n"
    b"Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, "
    b"Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, "
    b"MarginR, MarginV, Encoding\nStyle: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n"
    b"[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
)
SubtitleCue = tuple[int, int, str]  # start ms, end ms, text


def _cue_payload(codec: str, text: str) -> bytes:
    data = text.encode()
    if codec == "mov_text":
        return len(data).to_bytes(2, "big") + data
    if codec == "ass":
        return b"0,0,Default,,0,0,0,," + data
    return data  # subrip, webvtt: the text itself


def add_subtitles(
    path: str | Path, out: str | Path, tracks: Sequence[tuple[str, str, Sequence[SubtitleCue]]],
    chapters: Sequence[tuple[int, int, str]] = (), forced: Sequence[int] = (),
) -> Path:
    """Remux ``path`` (its video and audio) into ``out`` plus subtitle ``tracks`` of (codec, language,
    cues) and ``chapters`` of (start ms, end ms, title): a film's subtitles and chapter marks;
    ``forced``: the tracks (0: the first) flagged default and forced (a film's foreign-dialogue ones)."""
    with av.open(str(path)) as src, av.open(str(out), "w") as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in (*src.streams.video, *src.streams.audio)}
        subtitle_streams = []
        for number, (codec, language, _) in enumerate(tracks):
            stream = dst.add_stream(codec)
            if number in forced:
                stream.disposition = av.stream.Disposition.default | av.stream.Disposition.forced
            stream.codec_context.subtitle_header = _ASS_HEADER
            stream.time_base = Fraction(1, 1000)
            stream.metadata["language"] = language
            subtitle_streams.append(stream)
        dst.set_chapters([
            {"id": i + 1, "start": start, "end": end, "time_base": Fraction(1, 1000), "metadata": {"title": title}}
            for i, (start, end, title) in enumerate(chapters)
        ])  # fmt: skip
        dst.start_encoding()
        for packet in src.demux(*(src.streams[i] for i in streams)):
            if packet.size:  # not the end-of-stream marker (Matroska leaves the first packets' dts unset)
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
        for stream, (codec, _, cues) in zip(subtitle_streams, tracks):
            for start, end, text in cues:
                packet = av.Packet(_cue_payload(codec, text))
                packet.pts = packet.dts = start
                packet.duration, packet.time_base, packet.stream = end - start, Fraction(1, 1000), stream
                dst.mux(packet)
    return Path(out)


def subtitle_cues(path: str | Path) -> list[tuple[str, str, list[tuple[float, float, bytes]]]]:
    """(codec, language, [(start s, end s, payload)]) of every subtitle track of ``path``, in order: the
    cues a viewer sees (not the empty samples MP4 fills the gaps between them with)."""
    with av.open(str(path)) as c:
        tracks = [(s.codec_context.name, s.metadata.get("language", ""), []) for s in c.streams.subtitles]
        index = {s.index: i for i, s in enumerate(c.streams.subtitles)}
        if index:
            for packet in c.demux(*c.streams.subtitles):
                if packet.pts is not None and packet.duration and bytes(packet) not in (b"", b"\x00\x00"):
                    start = float(packet.pts * packet.time_base)
                    tracks[index[packet.stream.index]][2].append((round(start, 3), round(start + float(packet.duration * packet.time_base), 3), bytes(packet)))
    return tracks


def chapter_marks(path: str | Path) -> list[tuple[float, float, str]]:
    """(start s, end s, title) of every chapter of ``path``."""
    with av.open(str(path)) as c:
        return [(float(ch["start"] * ch["time_base"]), float(ch["end"] * ch["time_base"]), ch["metadata"].get("title", ""))
                for ch in c.chapters()]  # fmt: skip


# Kr, Kb of the YUV matrices by libav AVColorSpace value (1 BT.709, 5/6 BT.601, 9 BT.2020)
_KR_KB = {1: (0.2126, 0.0722), 5: (0.299, 0.114), 6: (0.299, 0.114), 9: (0.2627, 0.0593)}


def yuv_to_rgb(yuv: Sequence[float], *, bits: int = 8, colorspace: int = 1, full: bool = False) -> np.ndarray:
    """The exact RGB (0-255 floats, clipped) of one YUV sample by the standard's formula: what a decoder must give."""
    s = 2 ** (bits - 8)
    y, u, v = (float(c) for c in yuv)
    if full:  # BT.2100's full range: 0 to 2^n - 1
        top = 2**bits - 1
        y, u, v = y / top, (u - 128 * s) / top, (v - 128 * s) / top
    else:
        y, u, v = (y - 16 * s) / (219 * s), (u - 128 * s) / (224 * s), (v - 128 * s) / (224 * s)
    kr, kb = _KR_KB[colorspace]
    r, b = y + 2 * (1 - kr) * v, y + 2 * (1 - kb) * u
    g = (y - kr * r - kb * b) / (1 - kr - kb)
    return np.clip(np.array([r, g, b]) * 255, 0, 255)


def flat_yuv_frame(fmt: str, yuv: Sequence[int], size: tuple[int, int] = (64, 48), *, colorspace: int = 1, full: bool = False) -> "av.VideoFrame":
    """A decoded-like picture of one YUV colour in ``fmt`` (planar YUV of any depth, or nv12), tagged with its matrix and range."""
    frame = av.VideoFrame(*size, fmt)
    dtype = np.uint16 if max(c.bits for c in frame.format.components) > 8 else np.uint8
    if fmt == "nv12":
        np.frombuffer(memoryview(frame.planes[0]), dtype)[:] = yuv[0]
        uv = np.frombuffer(memoryview(frame.planes[1]), dtype)
        uv[0::2], uv[1::2] = yuv[1], yuv[2]
    else:
        for plane, value in zip(frame.planes, [*yuv, 2 ** (8 * dtype().itemsize) - 1]):
            np.frombuffer(memoryview(plane), dtype)[:] = value
    frame.colorspace, frame.color_range = colorspace, 2 if full else 1
    return frame


def scene_picture(seed: int, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    """An RGB still of a red disc on noise, the image command's and the server's test photo (``seed``: the noise)."""
    import cv2

    rng = np.random.default_rng(seed)
    img = (rng.random((*size, 3)) * 60 + 40).astype(np.uint8)
    cv2.circle(img, (size[1] // 2, size[0] // 2), size[0] // 3, (230, 60, 40), -1)
    return img


def write_scene_picture(path: Path, seed: int = 0) -> Path:
    """``scene_picture(seed)`` written to ``path`` (PNG, JPEG, ... by its suffix)."""
    import cv2

    cv2.imwrite(str(path), cv2.cvtColor(scene_picture(seed), cv2.COLOR_RGB2BGR))
    return path


def ts_with_sound(path: str | Path, seconds: int = 2) -> Path:
    """A small MPEG-TS (x264 with B-frames, AAC) made by the ffmpeg command, as a camera or capture card writes it."""
    import subprocess

    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=64x48:rate=25:duration={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}", "-c:v", "libx264", "-g", "25",
                    "-bf", "2", "-threads", "1", "-c:a", "aac", "-shortest", str(path)], check=True, capture_output=True)  # fmt: skip
    return Path(path)


def demux_stops_on_eagain(path: Path) -> bool:
    """Whether PyAV's plain ``demux()`` of ``path`` raises the MPEG-TS demuxer's EAGAIN (BlockingIOError)."""
    with av.open(str(path)) as c:
        try:
            for _ in c.demux():
                pass
        except av.error.BlockingIOError:
            return True
    return False


def stuffed_ts(source: str | Path, out: str | Path, stuffing: int = 6000) -> tuple[Path, Path]:
    """``source`` cut off mid-packet with ``stuffing`` 0xFF bytes after the cut (a card's erased blocks) at the first cut,
    from its end back, where PyAV's plain ``demux()`` meets EAGAIN (which ffmpeg reads past), and the same cut without
    stuffing (``out`` with ``.cut`` before its suffix): what a reader must keep. Whether EAGAIN comes depends on where the
    cut falls among the PES packets, so it is looked for rather than fixed to bytes one encoder's output gave."""
    data, out = Path(source).read_bytes(), Path(out)
    for cut in range(10, min(len(data) // 2, 188 * 60), 47):
        out.write_bytes(data[: len(data) - cut] + b"\xff" * stuffing)
        if demux_stops_on_eagain(out):
            plain = out.with_suffix(".cut" + out.suffix)
            plain.write_bytes(data[: len(data) - cut])
            return out, plain
    raise AssertionError(f"no cut of {source} made its demuxer answer EAGAIN")
