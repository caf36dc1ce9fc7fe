"""Record live pictures to a video file at the source's own timing, with the file writer the batch mode uses.

The encoder table, colour tagging and write-then-rename come from ``choose_encoder`` and
``VideoFileSink`` (``AnimatedImageSink`` for a GIF, WebP or APNG); this adapter maps live picture kinds onto output kinds, stamps each picture's
``t`` as its pts in milliseconds, and picks the fast end of each encoder's presets, since a live
recording has to keep up with the camera.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Optional, Union

import numpy as np

from birefvid.errors import OutputKeptError, SinkError
from birefvid.frames import StreamInfo
from birefvid.io.animated_sink import ANIMATED_MUXERS, AnimatedImageSink
from birefvid.io.atomic import check_target, fit_name
from birefvid.io.base import Sink
from birefvid.io.formats import SUPPORTED, EncoderSpec, choose_encoder, is_animation_target
from birefvid.io.live_audio import LiveAudioFeed
from birefvid.io.live_base import LiveSink, picture_kind, pictures_named, square_pixel_size, to_square_pixels
from birefvid.io.untagged import BT709, SMPTE170M, is_hd
from birefvid.io.video_sink import VideoFileSink

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 1000)  # Matroska/WebM store milliseconds anyway; MP4/MOV take it as the track timescale
OUTPUT_KIND = {"rgb": "rgb", "rgba": "alpha", "gray": "mask"}
# encoder options that trade file size for speed: a live recording must encode in real time
_LIVE_SPEED = {
    "libx264": {"preset": "veryfast"},
    "libx265": {"preset": "veryfast"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8"},
}


def check_recording_format(path: Path, kind: str, effect: Optional[str] = None) -> None:
    """SinkError when ``path``'s file type cannot record ``kind`` pictures, naming the ``effect`` that draws them and the
    file types that can: the file mode's "cannot write rgb output to .avi files" named a kind no one had chosen."""
    table = SUPPORTED[OUTPUT_KIND[kind]]
    ext = path.suffix.lower()
    if ext in table:
        return
    why = ""
    if kind == "rgba" and any(ext in SUPPORTED[other] for other in SUPPORTED):
        why = f" ({ext} holds no transparency; an effect without it, such as blur or green, records there)"
    elif ext == ".png":
        why = " (.apng records one animated PNG)"
    where = f"{ext} files" if ext else f"{path.name}, which has no extension"
    kinds = list(table)
    raise SinkError(f"cannot record {pictures_named(kind, effect)} to {where}{why}; record to {', '.join(kinds[:-1])} or {kinds[-1]}")


def live_encoder(path: Path, kind: str, width: int, height: int, preset: Optional[str] = None, effect: Optional[str] = None) -> EncoderSpec:
    """The batch mode's encoder choice for ``path``, switched to its real-time speed settings.

    ``preset`` (``--preset``: x264 ``ultrafast``..``placebo``; recordings take the container's default codec, never NVENC) replaces the
    live default; a codec without presets (VP9, FFV1, ProRes) raises SinkError saying so. ``effect`` names the pictures in errors.
    """
    check_recording_format(path, kind, effect)
    spec = choose_encoder(path, OUTPUT_KIND[kind], width, height, preset=preset, folder=False)  # live records files only
    faster = dict(_LIVE_SPEED.get(spec.codec, {}))
    if preset is not None:
        faster.pop("preset", None)  # the one asked for wins
    return dataclasses.replace(spec, options={**spec.options, **faster}) if faster else spec


def recording_matrix(width: int, height: int) -> int:
    """The YUV matrix (AVColorSpace) a recording of RGB pictures this size is written and tagged with: the one players
    also guess for its size where they ignore the tag (BT.709 for HD, BT.601 for SD). Written with swscale's BT.601
    and untagged, an HD recording was shown as BT.709: saturated colours up to 40 levels off."""
    return BT709 if is_hd(width, height) else SMPTE170M


class RecordingSink(LiveSink):
    """Writes every picture to ``path`` (temporary file renamed on close, removed on abort), with the
    source's sound when an ``audio`` feed is given.

    With ``segment_seconds`` the recording is a series of files of about that length, each named
    ``<stem>-<YYYYmmdd-HHMMSS><ext>`` after the local time it starts and committed as soon as it is
    complete, so a run of days keeps all but its last minutes if the machine dies, and every file
    plays on its own from 0 (a fresh encoder, so it starts on a keyframe). A finished part is
    closed on a helper thread, so the encoder's flush does not hold up the pictures. Non-square
    pixels (``sample_aspect_ratio``) are tagged, as in the file mode, or, in a GIF, WebP or APNG, which
    cannot say so, resized to square ones.
    """

    accepts = frozenset(OUTPUT_KIND)
    holds_last = False

    def __init__(
        self, path: Union[str, Path], *, width: int, height: int, fps: float, kind: str, overwrite: bool = False,
        preset: Optional[str] = None, audio: Optional[LiveAudioFeed] = None, segment_seconds: Optional[float] = None,
        sample_aspect_ratio: Optional[Fraction] = None, effect: Optional[str] = None,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self._spec_text = str(path)
        if kind not in OUTPUT_KIND:
            raise SinkError(f"cannot record {kind!r} pictures; expected one of {', '.join(OUTPUT_KIND)}")
        if not fps > 0:
            raise SinkError(f"cannot record {path} at {fps} fps; the rate must be positive")
        if segment_seconds is not None and not segment_seconds > 0:
            raise SinkError(f"cannot split {path} into parts of {segment_seconds} s; the length must be positive")
        self.kind = kind
        # a GIF / WebP / APNG cannot say its pixels are not square: such pictures are resized to square ones
        self._squared = sample_aspect_ratio if is_animation_target(self.path) and sample_aspect_ratio not in (None, 1) else None
        if self._squared is not None:
            (width, height), sample_aspect_ratio = square_pixel_size(width, height, self._squared), None
        self._spec = live_encoder(self.path, kind, width, height, preset, effect)
        # non-square pixels (a D1 camera's 12:11) are tagged as the file mode tags them, or players show the scene squeezed
        self._info = StreamInfo(width, height, TIME_BASE, average_rate=Fraction(fps).limit_denominator(1001),
                                sample_aspect_ratio=sample_aspect_ratio, colorspace=recording_matrix(width, height))  # fmt: skip
        self._audio = audio
        self._segment_seconds = segment_seconds
        self.segments: list[Path] = []  # the parts, in order (the last one unfinished until close)
        self._part_start = 0.0  # the live time at the current file's 0
        self._last_stamp: Optional[str] = None  # the latest part's time in its name: later names never sort before it
        self._clock_stamp: Optional[str] = None  # the clock's time when the latest part began
        self._closing: Optional[threading.Thread] = None
        self._closing_error: Optional[BaseException] = None
        self._kept: Optional[Path] = None  # the one file, committed beside its name another run took meanwhile
        self._overwrite = overwrite
        self._claim = _claim(self.path)
        try:
            if segment_seconds is None:
                check_target(self.path, overwrite=overwrite, is_dir=False)
                self._file: Optional[Sink] = self._open_file(self.path)
            else:
                check_target(self._part_path(time.time()), overwrite=False, is_dir=False)  # the folder, now
                self._last_stamp = self._clock_stamp = None  # that was a check: the first part is named at its first picture
                self._file = None  # the first part opens at the first picture, named after its time
        except BaseException:
            _release(self._claim)
            raise
        self._last_pts: Optional[int] = None
        self.frames_written = 0
        parts = f" in parts of {segment_seconds:g} s" if segment_seconds is not None else ""
        log.info("recording %dx%d %s to %s%s with %s", width, height, kind, self.path, parts, self._spec.codec)

    def _open_file(self, path: Path) -> Sink:
        # without overwrite, one file another run (another process) committed meanwhile is not replaced: this one goes
        # beside it as NAME (2).EXT (the later of two `live` runs to stop replaced the other's recording); parts have
        # names of their own, and a conflict there must not stop a recording of days
        overwrite = self._overwrite or self._segment_seconds is not None
        if self._spec.muxer in ANIMATED_MUXERS:  # a GIF / WebP / APNG of the session: pictures only
            if self._audio is not None:
                log.info("%s holds no sound; the recording is pictures only", path)
            return AnimatedImageSink(path, self._spec, self._info, overwrite=overwrite)
        until = None if self._segment_seconds is None else self._part_start + self._segment_seconds
        return VideoFileSink(path, self._spec, self._info, live_audio=self._audio, live_audio_start=self._part_start, live_audio_until=until,
                             overwrite=overwrite)  # fmt: skip

    def _part_path(self, wall: float) -> Path:
        """The next part's name: the recording's, stamped with local time ``wall``; never an existing file."""
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(wall))
        if self._clock_stamp is not None and stamp < self._clock_stamp:  # the clock went back: DST's end, an NTP step
            log.warning("the clock went back from %s to %s: the next parts of %s are named after %s with _001, _002, ... "
                        "until it passes that time, so that the names stay in time order",
                        self._clock_stamp, stamp, self.path, self._last_stamp)  # fmt: skip
        self._clock_stamp = stamp
        stamp = max(stamp, self._last_stamp or stamp)
        self._last_stamp = stamp
        ext = self.path.suffix
        stem = fit_name(self.path.stem, f"-{stamp}_000{ext}")  # a name the disk took, made longer by the stamp
        candidate = self.path.with_name(f"{stem}-{stamp}{ext}")
        k = 1
        while candidate.exists() or candidate in self.segments:  # a restart, or a file read faster than real time
            candidate = self.path.with_name(f"{stem}-{stamp}_{k:03d}{ext}")  # "_" sorts after ".": names stay in time order
            k += 1
        return candidate

    @property
    def name(self) -> str:
        return self._spec_text

    @property
    def files(self) -> list[Path]:
        """The files this recording wrote (after close: committed): its parts, or its one file (where it was kept)."""
        return list(self.segments) if self._segment_seconds is not None else [self._kept or self.path]

    def _send(self, picture: np.ndarray, t: float) -> None:
        got = picture_kind(picture)
        if got != self.kind:
            raise ValueError(f"{self.path} records {self.kind} pictures, got {got}")
        if self._squared is not None:
            picture = to_square_pixels(picture, self._squared)
        if self._closing_error is not None:  # the last part failed to finish (a full disk): say so now, not a part later
            self._wait_for_closing()
        if self._segment_seconds is not None and (self._file is None or t - self._part_start >= self._segment_seconds):
            self._next_part(t)
        elif self.frames_written == 0:  # the file starts with its first picture, wherever the live clock is then
            self._part_start = t
            if isinstance(self._file, VideoFileSink):
                self._file.start_live_audio_at(t)
        assert self._file is not None
        pts = round((t - self._part_start) / TIME_BASE)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # two pictures within one millisecond still get distinct times
        self._file.write(picture[None], [pts])
        self._last_pts = pts
        self.frames_written += 1

    def _idle(self, t: float) -> None:
        """The source is out: a part whose time is over by live time ``t`` is committed now, not when
        pictures come back (hours later, perhaps), with its sound ending at its planned end."""
        if self._segment_seconds is not None and self._file is not None and t - self._part_start >= self._segment_seconds:
            self._finish_part(self._part_start + self._segment_seconds)

    def _finish_part(self, end: float) -> None:
        """Hand the current part, its sound cut at live time ``end``, to a closing thread."""
        self._wait_for_closing()
        finished, self._file = self._file, None
        if isinstance(finished, VideoFileSink):
            finished.end_live_audio(end)  # its sound stops where the next part's starts, to the sample
        if finished is not None:
            self._closing = threading.Thread(target=self._commit, args=(finished,), name="birefvid-recording-close", daemon=True)
            self._closing.start()

    def _next_part(self, t: float) -> None:
        """Hand the current part (if any) to a closing thread and open the next one, starting at live time ``t``."""
        self._finish_part(t)
        self._part_start, self._last_pts = t, None
        path = self._part_path(time.time())
        self._file = self._open_file(path)
        self.segments.append(path)

    def _commit(self, part: Sink) -> None:
        try:
            part.close()
            log.info("recorded %s", getattr(part, "path", "a part"))
        except BaseException as exc:  # noqa: BLE001 - raised on the sink's thread at the next picture or close
            path = getattr(part, "path", None)
            if path in self.segments:
                self.segments.remove(path)  # it was discarded: the report must not list it
            self._closing_error = exc

    def _wait_for_closing(self) -> None:
        if self._closing is not None:
            self._closing.join()
            self._closing = None
        if self._closing_error is not None:
            error, self._closing_error = self._closing_error, None
            raise error

    def _close(self) -> None:
        try:
            self._wait_for_closing()
        finally:
            try:
                if self._file is not None:
                    self._file.close()
            except OutputKeptError as e:
                self._kept = Path(e.kept) if e.kept is not None else None
                raise
            finally:
                _release(self._claim)

    def _abort(self) -> None:
        try:
            if self._closing is not None:
                self._closing.join()  # a finished part is complete: it stays
        finally:
            try:
                if self._file is not None:
                    self._file.abort()
                    if self._segment_seconds is not None:
                        self.segments.pop()  # the unfinished part is gone
            finally:
                _release(self._claim)


# recordings open in this process: two runs of an app recording to one file would each write a
# temporary file and the later rename would silently replace the other's recording
_recording: set[Path] = set()
_recording_lock = threading.Lock()


def _claim(path: Path) -> Path:
    """Mark ``path`` as being recorded here, or raise SinkError when another run in this process records it."""
    key = path.resolve()
    with _recording_lock:
        if key in _recording:
            raise SinkError(f"{path} is being recorded by another run in this process; give each run its own file")
        _recording.add(key)
    return key


def _release(key: Path) -> None:
    """``key`` is no longer being recorded (the recording was committed or discarded)."""
    with _recording_lock:
        _recording.discard(key)
