"""Live capture from a camera, a network stream or a (paced) video file, keeping only the newest frame.

``open_live_source(spec)`` turns what the user passed as ``--source`` into a ``LiveSource``:

* ``"0"`` / ``/dev/video0``: a camera. Linux uses V4L2 (PyAV's ``v4l2`` input when the installed
  FFmpeg has it, else OpenCV's V4L2 backend: PyAV's Linux wheels ship without it), macOS
  AVFoundation, Windows DirectShow (the index picks the n-th video device FFmpeg lists). A camera
  that does not exist fails at once and is not retried.
* ``rtsp://``, ``rtsps://``, ``rtmp://``, ``http(s)://``, ``udp://``, ``tcp://`` (and ``srt://``
  where PyAV's FFmpeg has libsrt, which its wheels do not): a network stream opened with
  low-latency options (RTSP over TCP, short probing) and PyAV's ``(open, read)`` timeouts, so
  no call blocks forever. With ``audio``, its first audio track is decoded for recordings and
  streams (``source.audio``). A lost stream (read
  error, timeout, end of stream) is reopened under the ``reconnect.Backoff`` policy; the initial
  open follows the same policy.
* a video file: every frame, as fast as the reader takes them (a file is not a camera: nothing is
  gained by dropping its frames), or at its own pace with ``realtime=True``, newest frame winning
  as with a camera (demos, tests); ``loop=True`` starts it again at its end, otherwise the source ends.

Every connection (and every loop of a file) starts a new ``generation``; ``stream_time`` starts at
0 and stays increasing across them, so recordings keep increasing timestamps. ``close()`` returns
within about a second even while the capture thread waits on the network: backoff sleeps are
``Event.wait``s and a blocked PyAV call is interrupted through its own timeout check (see
``_Interrupter``). The container is only ever touched by the capture thread: closing it from
another thread while a read is in flight is a use-after-free in libav.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union
from urllib.parse import urlsplit, urlunsplit

import av
import numpy as np

from birefvid.errors import ConfigError, SourceError, in_caller_context, option
from birefvid.extensions import VIDEO_EXTENSIONS
from birefvid.frames import Frame, StreamInfo
from birefvid.io._pixels import RgbConverter, rotated_size, upright
from birefvid.io.animated_source import AnimatedWebPSource, is_animated_webp
from birefvid.io.base import Source
from birefvid.io.channel_order import custom_order_tracks
from birefvid.io.live_audio import LiveAudioFeed
from birefvid.job import check_microphone_source
from birefvid.io.live_base import CapturedFrame, LiveSource, NoFirstPicture, SourceState
from birefvid.io.microphone import Microphone, parse_audio_device
from birefvid.io.reconnect import Backoff, GaveUp, retry
from birefvid.io.video_source import VideoFileSource, _int

log = logging.getLogger(__name__)

NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "srt", "udp", "tcp")
# short probing; not FFmpeg's "nobuffer" flag: it throws away the packets read while probing, the
# stream's first keyframe among them, so nothing decoded until the next one (one GOP later: seconds
# for many cameras, never for a clip restreamed with a single keyframe); it saves no latency after that
_LOW_LATENCY = {"probesize": "500000", "analyzeduration": "500000"}
_SCHEME_OPTIONS: dict[str, dict[str, str]] = {
    # the SDP describes the streams, so probing can be minimal; TCP survives lossy links and NAT
    "rtsp": {"rtsp_transport": "tcp", "probesize": "32", "analyzeduration": "0"},
    "rtsps": {"rtsp_transport": "tcp", "probesize": "32", "analyzeduration": "0"},
    "rtmp": {"rtmp_live": "live"},
    "rtmps": {"rtmp_live": "live"},
    "udp": {"overrun_nonfatal": "1"},  # drop on a receive-buffer overrun instead of failing
}
_TERMINAL: tuple[SourceState, ...] = ("ended", "failed", "closed")


# --------------------------------------------------------------------------- what to open


@dataclass(frozen=True)
class LiveTarget:
    """What a ``--source`` spec resolved to: how to open it and how to name it in messages."""

    kind: str  # "camera", "network" or "file"
    name: str  # for logs and errors (passwords in URLs hidden)
    url: str  # what av.open (or OpenCV) gets
    format: Optional[str] = None  # PyAV input format (v4l2, avfoundation, dshow)
    options: dict[str, str] = field(default_factory=dict)
    backend: str = "av"  # "av" or "opencv"
    camera_size: Optional[tuple[int, int]] = None  # what a camera was asked for (width, height)
    camera_fps: Optional[float] = None


def _redact(url: str) -> str:
    """The URL with any password replaced by ***, for logs and error messages."""
    try:
        parts = urlsplit(url)
    except ValueError:  # malformed (e.g. an unclosed IPv6 bracket): FFmpeg will say what is wrong
        return url
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _dshow_video_devices(log_text: str) -> list[str]:
    """Video device names in the log FFmpeg's dshow input writes for ``list_devices``."""
    names = []
    for line in log_text.splitlines():
        m = re.match(r'\s*(?:\[[^\]]*\]\s*)?"(.+)" \(([^)]*)\)\s*$', line)
        if m and "video" in [k.strip() for k in m[2].split(",")]:
            names.append(m[1])
    return names


def _list_dshow_video_devices() -> list[str]:
    """Ask FFmpeg's DirectShow input for its devices (it answers in its log, then fails on purpose)."""
    import av.logging

    level = av.logging.get_level()
    av.logging.set_level(av.logging.INFO)
    try:
        with av.logging.Capture() as logs:
            try:
                av.open("dummy", format="dshow", options={"list_devices": "true"}).close()
            except (av.FFmpegError, OSError, ValueError):
                pass
    finally:
        av.logging.set_level(level)
    return _dshow_video_devices("".join(entry[2] for entry in logs))


def _camera(index: Optional[int], device: Optional[str], size: Optional[tuple[int, int]] = None, fps: Optional[float] = None) -> LiveTarget:
    """A camera by index (per platform) or by Linux device path; SourceError when it does not exist.

    ``size`` (width, height) and ``fps`` are asked of the camera: FFmpeg's ``video_size`` and
    ``framerate`` device options, or OpenCV's capture properties.
    """
    label = f"camera {index}" if index is not None else f"camera {device}"
    asked: dict[str, str] = {}
    if size is not None:
        asked["video_size"] = f"{size[0]}x{size[1]}"
    if fps is not None:
        asked["framerate"] = f"{fps:g}"
    mode = {"camera_size": size, "camera_fps": fps}
    if device is not None or sys.platform.startswith("linux"):
        path = device or f"/dev/video{index}"
        if not os.path.exists(path):
            raise SourceError(f"{label} not found ({path} does not exist)")
        if "v4l2" in av.formats_available:
            return LiveTarget("camera", label, path, "v4l2", {"fflags": "nobuffer", **asked}, **mode)
        return LiveTarget("camera", label, path, backend="opencv", **mode)
    if sys.platform == "darwin":
        # "<video>:<audio>" device indices; 30 fps because the default (29.97) is refused by most Mac cameras
        return LiveTarget("camera", label, f"{index}:none", "avfoundation", {"framerate": "30", **asked}, **mode)
    if sys.platform == "win32":
        names = _list_dshow_video_devices()
        if index is None or index >= len(names):
            listed = ", ".join(f'"{n}"' for n in names) or "none"
            raise SourceError(f"{label} not found (DirectShow lists {len(names)} video device(s): {listed})")
        return LiveTarget("camera", f'{label} ("{names[index]}")', f"video={names[index]}", "dshow", asked, **mode)
    raise SourceError(f"{label}: cameras are not supported on {sys.platform}; pass a stream URL or a file")


def parse_source_spec(spec: str, *, camera_size: Optional[tuple[int, int]] = None, camera_fps: Optional[float] = None) -> LiveTarget:
    """Resolve a ``--source`` value (camera index, device path, stream URL or file) into a LiveTarget.

    ``camera_size`` / ``camera_fps``: what to ask a camera for (refused for other sources).
    """
    text = spec.strip()
    if not text:
        raise SourceError(f"{option('source')} is empty (pass a camera index like 0, a stream URL or a video file)")
    if text.isdigit():
        return _camera(int(text), None, camera_size, camera_fps)
    if text.startswith("/dev/"):
        return _camera(None, text, camera_size, camera_fps)
    if camera_size is not None or camera_fps is not None:
        raise ConfigError(f"{option('camera_size')} and {option('camera_fps')} apply to cameras, not to {_redact(text)}")
    m = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if m:
        scheme = m[1].lower()
        if scheme == "file":
            text = text[len("file://") :]
        elif scheme in ("http", "https") and Path(urlsplit(text).path).suffix.lower() in _FILE_SUFFIXES:
            # a video file on a web server, not a live stream: read as a file (every frame, or paced with
            # --realtime, looped with --loop), where a stream's low-latency probing could not even find
            # an MP4's index at its end, and an end of file counted as a lost stream
            return LiveTarget("file", _redact(text), text)
        elif scheme in NETWORK_SCHEMES:
            options = {**_LOW_LATENCY, **_SCHEME_OPTIONS.get(scheme, {})}
            return LiveTarget("network", _redact(text), text, None, options)
        else:
            known = ", ".join(f"{s}://" for s in NETWORK_SCHEMES)
            raise SourceError(f"unsupported stream scheme {scheme}:// in {_redact(text)} (use {known})")
    path = Path(text)
    if not path.exists():
        raise SourceError(
            f"input not found: {text} (a live source is a camera index like 0, a device path like "
            "/dev/video0, a stream URL like rtsp://host/path, or a video file)"
        )
    return LiveTarget("file", str(path), str(path))


# --------------------------------------------------------------------------- interrupting PyAV


class _Interrupter:
    """Makes a capture thread's blocked PyAV call return at once, from another thread.

    PyAV gives FFmpeg an interrupt callback that compares ``time.monotonic()`` (looked up in the
    module ``av.container.core`` on every call) with the start of the current read plus its
    timeout; FFmpeg polls it about every 100 ms while it waits on a socket. Replacing that module's
    ``time`` with this clock, which runs far ahead for cancelled capture threads and is the real
    clock for every other thread, turns PyAV's own timeout into a cancel button. Without the hook
    (a PyAV that changed its internals) a blocked call still returns at its read timeout.
    """

    def __init__(self, real: Any) -> None:
        self._real = real
        self._threads: dict[int, float] = {}  # registered capture threads -> jump so far (< 0: not cancelled)
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        t = self._real.monotonic()
        ident = threading.get_ident()
        if self._threads.get(ident, -1.0) >= 0:  # jump on every call, so "now > start + timeout" holds
            with self._lock:
                if ident in self._threads:
                    self._threads[ident] += 1e7
                    return t + self._threads[ident]
        return t

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def register(self) -> None:
        """The calling thread may be cancelled from now until it calls ``forget``."""
        with self._lock:
            self._threads[threading.get_ident()] = -1.0

    def forget(self) -> None:
        with self._lock:
            self._threads.pop(threading.get_ident(), None)

    def cancel(self, ident: Optional[int]) -> None:
        """Make every PyAV wait on thread ``ident`` give up, if it is a registered capture thread."""
        with self._lock:
            if ident in self._threads:
                self._threads[ident] = max(self._threads[ident], 0.0)


_interrupter_lock = threading.Lock()


def _interrupter() -> Optional[_Interrupter]:
    """The installed interrupter, installing it on first use; None when PyAV's internals differ."""
    import av.container.core as core

    with _interrupter_lock:
        current = getattr(core, "time", None)
        if isinstance(current, _Interrupter):
            return current
        if current is not time:
            log.debug("PyAV's container module has no time hook; close() waits for the read timeout")
            return None
        hook = _Interrupter(time)
        core.time = hook  # type: ignore[attr-defined]
        return hook


# --------------------------------------------------------------------------- connections


class _Lost(Exception):
    """A connection failed or dropped in a way worth retrying; ``reason`` says why, in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_PERMANENT = (av.error.ProtocolNotFoundError, av.error.DemuxerNotFoundError, av.error.OptionNotFoundError)


def _reason(e: BaseException, waited: float, timeout: float, awaited: str) -> str:
    """A few words for an FFmpeg failure. A call that ran into its timeout says so: FFmpeg then
    reports the interruption, or whatever the interrupted parser made of half a message."""
    if isinstance(e, av.error.ExitError) or (timeout > 0 and waited >= 0.95 * timeout):
        return f"no {awaited} within {timeout:g} s"
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return text.rstrip(".")


def _info(width: int, height: int, time_base: Fraction, rate: Any, first: Optional[av.VideoFrame]) -> StreamInfo:
    """StreamInfo of a live connection: size as displayed, timing, and the first frame's colour tags."""
    return StreamInfo(
        width=width,
        height=height,
        time_base=time_base,
        average_rate=Fraction(rate) if rate else None,
        color_range=_int(first.color_range) if first is not None else None,
        colorspace=_int(first.colorspace) if first is not None else None,
        color_primaries=_int(first.color_primaries) if first is not None else None,
        color_trc=_int(first.color_trc) if first is not None else None,
    )


# http(s) URLs with these endings are video files, read as files; anything else (an IP camera's
# MJPEG, HLS, an MPEG-TS .ts that may be live) is a stream
_FILE_SUFFIXES = VIDEO_EXTENSIONS - {".ts"}
# how long after the newest picture a microphone's sound still follows its clock (seconds)
_MIC_REACH = 0.5
# where a connection hands its decoded sound: (frame, its time in seconds on the source's clock)
AudioOut = Callable[[av.AudioFrame, float], None]


class _AvConnection:
    """One PyAV connection to a stream or device, its first frame already decoded.

    With ``audio``, the first audio track is decoded too; its frames wait until the picture decoded
    before them has been published, then go to ``on_audio`` (set by the capture), so they are
    always stamped on the clock that picture set.
    """

    def __init__(self, target: LiveTarget, open_timeout: float, read_timeout: float, audio: bool = False) -> None:
        self._target = target
        self._read_timeout = read_timeout
        self.on_audio: Optional[AudioOut] = None
        self._audio_pending: list[av.AudioFrame] = []
        self._audio_stream: Optional[Any] = None
        self.audio_format: Optional[tuple[int, str]] = None  # (sample rate, layout) of the sound, when carried
        t0 = time.monotonic()
        try:
            self._container = av.open(
                target.url, "r", format=target.format, container_options=dict(target.options),
                timeout=(open_timeout, read_timeout),
            )
        except _PERMANENT as e:
            hint = ""
            if isinstance(e, av.ProtocolNotFoundError) and target.name.lower().startswith("srt:"):
                hint = "; PyAV's wheels have no SRT: let a media server take it in and serve RTSP (MediaMTX does)"
            raise SourceError(f"{target.name}: this FFmpeg build cannot open it ({_reason(e, 0, 0, '')}){hint}") from e
        except (av.FFmpegError, OSError) as e:
            raise _Lost(_reason(e, time.monotonic() - t0, open_timeout, "answer")) from e
        except ValueError as e:  # an input format this PyAV build lacks (FFmpeg's own errors are caught above)
            raise SourceError(f"{target.name}: this PyAV build cannot open it ({e})") from e
        try:
            if not self._container.streams.video:
                raise _Lost("it carries no video stream")
            self._stream = stream = self._container.streams.video[0]
            stream.codec_context.flags |= av.codec.context.Flags.low_delay
            if audio and self._container.streams.audio:
                self._audio_stream = self._container.streams.audio[0]
                cc = self._audio_stream.codec_context
                if cc.sample_rate and cc.layout.nb_channels:
                    self.audio_format = (cc.sample_rate, cc.layout.name)
                else:
                    self._audio_stream = None  # parameters unknown until decoded: not worth guessing live
            self._bad_packets = 0
            self._frames = self._decode()
            first = next(self._frames, None)
            if first is None:
                raise _Lost("the stream ended before its first frame")
            self._first: Optional[av.VideoFrame] = first
            self.rotation = int(first.rotation or 0)
            width, height = rotated_size(first.width, first.height, self.rotation)
            tb = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
            self.info = _info(width, height, tb, stream.average_rate or stream.guessed_rate, first)
        except BaseException:
            self._container.close()
            raise

    def _decode(self) -> Iterator[av.VideoFrame]:
        wanted = [self._stream] if self._audio_stream is None else [self._stream, self._audio_stream]
        packets = self._container.demux(*wanted)
        while True:
            t0 = time.monotonic()
            try:
                packet = next(packets)
            except StopIteration:
                return
            except (av.FFmpegError, OSError) as e:
                raise _Lost(_reason(e, time.monotonic() - t0, self._read_timeout, "data")) from e
            if packet.stream is self._audio_stream:
                self._decode_audio(packet)
                continue
            try:
                frames = packet.decode()
            except (av.FFmpegError, OSError) as e:  # a damaged packet on a lossy link: skip it
                self._bad_packets += 1
                (log.warning if self._bad_packets == 1 else log.debug)(
                    "%s: skipped an undecodable packet (%s)", self._target.name, _reason(e, 0, 0, "")
                )
                continue
            yield from frames

    def _decode_audio(self, packet: av.Packet) -> None:
        try:
            self._audio_pending.extend(packet.decode())
        except (av.FFmpegError, OSError) as e:  # a damaged audio packet: the recording gets silence there
            log.debug("%s: skipped an undecodable audio packet (%s)", self._target.name, _reason(e, 0, 0, ""))
        if len(self._audio_pending) > 1000:  # pictures stopped coming but sound did: keep the newest
            del self._audio_pending[:-1000]

    def _deliver_audio(self) -> None:
        pending, self._audio_pending = self._audio_pending, []
        if self.on_audio is None:
            return
        for frame in pending:
            if frame.pts is not None and frame.time_base:
                self.on_audio(frame, float(frame.pts * frame.time_base))

    def frames(self) -> Iterator[tuple[np.ndarray, Optional[float]]]:
        """Upright RGB pictures with their pts in seconds (None when the stream gives none)."""
        frame, self._first = self._first, None
        to_rgb = RgbConverter(name=self._target.name)
        while frame is not None:
            yield upright(to_rgb(frame), self.rotation), (None if frame.pts is None else float(frame.time))
            self._deliver_audio()  # the picture before this sound is published: its clock is set
            frame = next(self._frames, None)

    def close(self) -> None:
        self._container.close()


def ask_camera(cap: Any, size: Optional[tuple[int, int]], fps: Optional[float]) -> None:
    """Ask an OpenCV capture for a picture size and frame rate; the driver may give something else.

    MJPEG is asked for first: USB webcams offer 720p and 1080p at 30 fps only compressed (raw YUYV
    at 720p fills USB 2 at 5-10 fps). A camera without MJPEG keeps its raw format, since the driver
    refuses what it lacks. Set before the first read: V4L2 cannot change format while streaming.
    """
    import cv2

    if size is None and fps is None:
        return
    cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
    if size is not None:
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
    if fps is not None:
        cap.set(cv2.CAP_PROP_FPS, fps)


def check_camera_mode(target: LiveTarget, info: StreamInfo) -> None:
    """Warn, naming both, when a camera delivers another size or rate than it was asked for."""
    got = []
    if target.camera_size is not None and (info.width, info.height) != tuple(target.camera_size):
        got.append(f"{info.width}x{info.height}, not {target.camera_size[0]}x{target.camera_size[1]}")
    if target.camera_fps is not None and info.average_rate and abs(float(info.average_rate) - target.camera_fps) > 0.5:
        got.append(f"{float(info.average_rate):g} fps, not {target.camera_fps:g}")
    if got:
        log.warning("%s delivers %s: it does not offer what was asked (v4l2-ctl --list-formats-ext lists what it does)",
                    target.name, " and ".join(got))  # fmt: skip


class _CvCamera:
    """A V4L2 camera through OpenCV (for PyAV builds without the v4l2 input), first frame read."""

    def __init__(self, target: LiveTarget) -> None:
        import cv2

        self._cv2 = cv2
        self._cap = cv2.VideoCapture(target.url, cv2.CAP_V4L2)
        try:
            if not self._cap.isOpened():
                raise _Lost(f"cannot open {target.url} (busy, or no permission to read it?)")
            ask_camera(self._cap, target.camera_size, target.camera_fps)
            self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            ok, bgr = self._cap.read()
            if not ok:
                raise _Lost("the camera delivered no frame")
            self._first: Optional[np.ndarray] = bgr
            h, w = bgr.shape[:2]
            fps = self._cap.get(cv2.CAP_PROP_FPS)
            rate = Fraction(fps).limit_denominator(1001) if fps and fps > 0 else None
            self.info = _info(w, h, Fraction(1, 1_000_000), rate, None)
        except BaseException:
            self._cap.release()
            raise

    def frames(self) -> Iterator[tuple[np.ndarray, Optional[float]]]:
        """RGB pictures; cameras are timed by the wall clock (None pts)."""
        bgr, self._first = self._first, None
        while True:
            if bgr is None:
                ok, bgr = self._cap.read()
                if not ok:
                    raise _Lost("the camera stopped delivering frames")
            yield self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB), None
            bgr = None

    def close(self) -> None:
        self._cap.release()


class _FileConnection:
    """A pass over a video file through the file decoder (same rotation, colour and damage rules), or
    over an animated WebP through Pillow (FFmpeg decodes still WebP only), as ``birefvid process`` reads them.

    With ``audio``, the file's first audio track is read alongside from a second reader, up to each
    published picture's time (plus ``_AUDIO_AHEAD``), and handed to ``on_audio``.
    """

    _AUDIO_AHEAD = 0.1

    def __init__(self, path: str, audio: bool = False) -> None:
        animated = is_animated_webp(path)
        self._source: Source = AnimatedWebPSource(path) if animated else VideoFileSource(path)
        self.info = self._source.info
        self.on_audio: Optional[AudioOut] = None
        self.audio_format: Optional[tuple[int, str]] = None
        self._audio: Optional[av.container.InputContainer] = None
        self._audio_frames: Optional[Iterator[av.AudioFrame]] = None
        self._audio_next: Optional[av.AudioFrame] = None
        if audio and not animated:  # an animated WebP holds pictures only
            self._open_audio(path)

    def _open_audio(self, path: str) -> None:
        if 0 in custom_order_tracks(path):  # PyAV would crash on it (see channel_order)
            log.warning("%s: its sound is left out of recordings and streams: PyAV crashes on its custom channel order", path)
            return
        try:
            container = av.open(path)
        except (av.FFmpegError, OSError):
            return
        if not container.streams.audio or not container.streams.audio[0].codec_context.sample_rate:
            container.close()
            return
        cc = container.streams.audio[0].codec_context
        self._audio, self.audio_format = container, (cc.sample_rate, cc.layout.name)
        self._audio_frames = self._decode_audio(container)

    @staticmethod
    def _decode_audio(container: av.container.InputContainer) -> Iterator[av.AudioFrame]:
        for packet in container.demux(container.streams.audio[0]):
            try:
                yield from packet.decode()
            except av.FFmpegError:
                continue  # a damaged packet: the recording gets silence there

    def _audio_until(self, seconds: float) -> None:
        while self._audio_frames is not None:
            frame = self._audio_next or next(self._audio_frames, None)
            self._audio_next = None
            if frame is None:
                self._audio_frames = None
                return
            if frame.pts is None or not frame.time_base:
                continue
            at = float(frame.pts * frame.time_base)
            if at > seconds:
                self._audio_next = frame
                return
            if self.on_audio is not None:
                self.on_audio(frame, at)

    def frames(self) -> Iterator[tuple[np.ndarray, Optional[float]]]:
        for frame in self._source:
            yield frame.image, frame.time
            if frame.time is not None:  # published: the sound up to its time goes out on its clock
                self._audio_until(frame.time + self._AUDIO_AHEAD)

    def close(self) -> None:
        self._source.close()
        if self._audio is not None:
            self._audio.close()


_Connection = Union[_AvConnection, _CvCamera, _FileConnection]


# --------------------------------------------------------------------------- the source


class _StreamClock:
    """Maps each connection's pts onto one increasing ``stream_time`` that starts at 0."""

    def __init__(self, time_base: Fraction, interval: float) -> None:
        self.time_base = time_base
        self.interval = interval  # the gap put between connections (one frame)
        self._last_pts: Optional[int] = None
        self._base: Optional[tuple[Optional[float], float, float]] = None  # (pts s, stream time, wall)
        self._stamped = 0

    def new_connection(self) -> None:
        self._base = None
        self._stamped = 0  # pictures of this connection stamped so far

    def audio_time(self, seconds: float) -> Optional[float]:
        """Where a sound at ``seconds`` on this connection's clock falls on the continuous clock
        (None before the connection's first picture, or when its pictures carry no times)."""
        if self._base is None or self._base[0] is None:
            return None
        src0, offset, _ = self._base
        return offset + (seconds - src0)

    def stamp(self, seconds: Optional[float], wall: float) -> int:
        """The frame's pts in ``time_base`` units, on the continuous clock."""
        last = None if self._last_pts is None else float(self._last_pts * self.time_base)
        if self._base is None:
            self._base = (seconds, 0.0 if last is None else last + self.interval, wall)
        src0, offset, wall0 = self._base
        t = offset + (wall - wall0 if seconds is None or src0 is None else seconds - src0)
        if src0 is None and seconds is not None:
            # the connection's first picture came unstamped (FFmpeg's RTSP demuxer leaves the first
            # packet so): the source's own clock takes over from the first stamped one, which is
            # taken to follow it by one frame (the wall clock between them measures decode bursts)
            if last is not None and self._stamped == 1:
                t = last + self.interval
            self._base = (seconds, t, wall)
        if last is not None and t <= last:  # the source's clock went back: treat it as a cut
            t = last + self.interval
            self._base = (seconds, t, wall)
        pts = round(t / self.time_base)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        self._stamped += 1
        return pts


class LiveCapture(LiveSource):
    """A ``LiveSource`` over a camera, network stream or file, captured on its own thread."""

    def __init__(
        self,
        target: LiveTarget,
        *,
        realtime: bool,
        loop: bool,
        open_timeout: float,
        read_timeout: float,
        policy: Backoff,
        audio: bool = False,
        microphone: Optional[Microphone] = None,
    ) -> None:
        super().__init__()
        self.target = target
        self._want_audio = audio and microphone is None  # a microphone replaces the source's own sound
        self._mic = microphone
        # (generation, stream time, monotonic time) of the newest published picture: where the microphone's sound goes
        self._anchor: Optional[tuple[int, float, float]] = None
        if microphone is not None:
            self._audio_feed = LiveAudioFeed(*microphone.audio_format)
        self._realtime = realtime
        self._loop = loop
        self._open_timeout = open_timeout
        self._read_timeout = read_timeout
        self._policy = policy
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._hook: Optional[_Interrupter] = None
        self._slot: Optional[CapturedFrame] = None
        self._info: Optional[StreamInfo] = None
        self._clock: Optional[_StreamClock] = None
        self._generation = 0
        self._reader_waiting = threading.Event()  # see _wait_for_reader
        self._taken = 0  # frames the reader took
        self._pace: Optional[tuple[float, float]] = None  # (wall, stream time) the realtime schedule starts from

    # -- reader side

    def start(self, timeout: Optional[float] = None) -> StreamInfo:
        """Open the input on the capture thread and return its StreamInfo once the first frame is decoded.

        ``timeout`` bounds the wait (a stream retried under the policy would otherwise be waited on
        forever): SourceError once it passes without a frame.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._thread is not None or self.closed:
                raise RuntimeError(f"{self.target.name}: start() may be called once, before close()")
            self._hook = _interrupter()
            self._thread = threading.Thread(target=in_caller_context(self._run), name=f"birefvid live {self.target.name}", daemon=True)
            self._thread.start()
            if self._mic is not None:
                self._mic.start(self._mic_out)
        try:
            while not self._started.wait(0.1):  # short waits so Ctrl-C gets through
                if deadline is not None and time.monotonic() > deadline:
                    raise NoFirstPicture(f"no picture from {self.target.name} within {timeout:g} s")
        except BaseException:
            self.close()
            raise
        with self._cond:
            info, error = self._info, self._error
        if info is None:
            self.close()
            raise error or SourceError(f"{self.target.name}: closed before the first frame arrived")
        return info

    def read(self, timeout: float) -> Optional[CapturedFrame]:
        """The newest frame not read yet, or None after ``timeout`` s (at once once the source stopped)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._taken:  # a frame was taken before: the reader is ready for more
                self._reader_waiting.set()
            while self._slot is None:
                remaining = deadline - time.monotonic()
                if self._state in _TERMINAL or remaining <= 0:
                    return None
                self._cond.wait(remaining)
            frame, self._slot = self._slot, None
            self._taken += 1
            self._cond.notify_all()  # a file read at full speed waits for its slot to be taken (_publish)
            return frame

    @property
    def info(self) -> Optional[StreamInfo]:
        """The StreamInfo returned by start() (None before)."""
        return self._info

    @property
    def keeps_capturing(self) -> bool:
        return self.target.kind != "file"

    def _close(self) -> None:
        self._stop.set()
        if self._mic is not None:
            self._mic.close()
        with self._cond:
            self._state = "closed"
            self._cond.notify_all()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        if self._hook is not None:
            self._hook.cancel(thread.ident)
        thread.join(1.5)
        if thread.is_alive():
            log.warning("%s: the capture thread is still blocked; it stops when its read times out", self.target.name)

    # -- capture thread

    def _set_state(self, state: SourceState, error: Optional[SourceError] = None) -> None:
        with self._cond:
            if self._state != "closed":
                self._state = state
                self._error = error or self._error
            self._cond.notify_all()

    def _connect(self) -> _Connection:
        t = self.target
        if t.kind == "file":
            return _FileConnection(t.url, self._want_audio)
        conn: _Connection = _CvCamera(t) if t.backend == "opencv" else _AvConnection(t, self._open_timeout, self._read_timeout, self._want_audio)
        if t.kind == "camera":
            check_camera_mode(t, conn.info)
        return conn

    def _hear(self, conn: _Connection) -> None:
        """Route the connection's sound into the audio feed (made from the first connection that has sound)."""
        fmt = getattr(conn, "audio_format", None)
        if fmt is None or self._mic is not None:
            return
        if self._audio_feed is None:
            if self._info is not None and self._captured:
                return  # sound that appears only after a reconnect: the recordings are set up without it
            self._audio_feed = LiveAudioFeed(*fmt)
        conn.on_audio = self._audio_out  # type: ignore[union-attr]

    def _audio_out(self, frame: av.AudioFrame, seconds: float) -> None:
        assert self._clock is not None and self._audio_feed is not None
        at = self._clock.audio_time(seconds)
        if at is not None:
            self._audio_feed.push(at, frame, self._generation)

    def _mic_out(self, frame: av.AudioFrame, wall: float) -> None:
        """A microphone's frame captured at monotonic time ``wall``, placed as a picture captured then
        would be: the newest picture's stream time plus the wall time since. Sound with no recent
        picture to follow is dropped: before the first one, and in an outage (where the recording gets
        silence, as for a stream's own sound) or a realtime file's wait for the model's warm-up
        (whose stream clock stands still meanwhile)."""
        anchor, feed, clock = self._anchor, self._audio_feed, self._clock
        if anchor is None or feed is None or clock is None:
            return
        generation, stream_time, published = anchor
        if wall - published <= max(_MIC_REACH, 3 * clock.interval):
            feed.push(stream_time + (wall - published), frame, generation)

    def _first_connection(self) -> Optional[_Connection]:
        """The initial open: retried under the policy for streams, once for cameras and files."""
        if self.target.kind != "network":
            try:
                return self._connect()
            except _Lost as e:
                raise SourceError(f"cannot open {self.target.name}: {e.reason}") from None
        try:
            return retry(
                self._connect, self._policy, self._stop, what=f"cannot reach {self.target.name}",
                reason_of=lambda e: e.reason, retriable=lambda e: isinstance(e, _Lost),  # type: ignore[attr-defined]
            )
        except GaveUp as e:
            raise SourceError(f"cannot reach {self.target.name}: {e}") from None

    def _reconnect(self, reason: str) -> Optional[_Connection]:
        """Reopen a lost camera or stream under the policy; None when closed meanwhile."""
        try:
            return retry(
                self._connect, self._policy, self._stop, what=f"lost {self.target.name}", first_failure=reason,
                reason_of=lambda e: e.reason, retriable=lambda e: isinstance(e, _Lost),  # type: ignore[attr-defined]
            )
        except GaveUp as e:
            raise SourceError(f"lost {self.target.name}: {e}") from None

    def _run(self) -> None:
        conn: Optional[_Connection] = None
        if self._hook is not None:
            self._hook.register()
        try:
            conn = self._first_connection()
            while conn is not None and not self._stop.is_set():
                if self._clock is None:
                    rate = conn.info.average_rate
                    self._clock = _StreamClock(conn.info.time_base, 1 / float(rate) if rate else 1 / 30)
                    self._info = self._source_info(conn.info)
                self._clock.new_connection()
                self._hear(conn)
                lost = self._pump(conn)
                conn.close()
                conn = None
                if self._stop.is_set():
                    break
                if lost is None:  # a file's end
                    if not self._loop:
                        self._set_state("ended")
                        break
                    conn = self._connect()
                    self._generation += 1
                    continue
                self._set_state("reconnecting")
                conn = self._reconnect(lost)
                if conn is not None:
                    self._reconnects += 1
                    self._generation += 1
                    log.warning("%s: reconnected (%d so far)", self.target.name, self._reconnects)
        except SourceError as e:
            self._set_state("failed", e)
        except Exception as e:  # a bug or an unexpected library error: fail the source, one line for the user
            log.debug("%s: capture thread failed", self.target.name, exc_info=True)
            self._set_state("failed", SourceError(f"{self.target.name}: capture stopped ({type(e).__name__}: {e})"))
        finally:
            if conn is not None:
                conn.close()
            if self._hook is not None:
                self._hook.forget()
            self._started.set()
            with self._cond:
                self._cond.notify_all()

    def _source_info(self, info: StreamInfo) -> StreamInfo:
        """A looping file has no frame count or duration; anything else keeps its facts."""
        if self._loop:
            return StreamInfo(**{**info.__dict__, "frame_count": None, "duration": None})
        return info

    def _pump(self, conn: _Connection) -> Optional[str]:
        """Publish a connection's frames until it ends or closes (None) or is lost (the reason)."""
        try:
            for image, seconds in conn.frames():
                if self._stop.is_set() or self._publish(image, seconds):
                    return None
        except _Lost as e:
            return e.reason
        return None if self.target.kind == "file" else "end of stream"

    def _publish(self, image: np.ndarray, seconds: Optional[float]) -> bool:
        """Stamp a frame, wait for its time when pacing a file, and offer it; True when closed meanwhile."""
        assert self._clock is not None
        tb = self._clock.time_base
        pts = self._clock.stamp(seconds, time.monotonic())
        stream_time = float(pts * tb)
        if self._realtime and self._captured == 1:
            self._anchor = None  # the file's clock stands still until the reader is ready: no sound goes meanwhile
            if self._wait_for_reader():
                return True
        if self._realtime and self._wait_until(stream_time):
            return True
        frame = Frame(image=image, pts=pts, time_base=tb, index=self._captured)
        with self._cond:
            if self.target.kind == "file" and not self._realtime:
                # a file is not a camera: nothing is lost by waiting for the reader, so every frame is shown
                while self._slot is not None:
                    if self._stop.is_set():
                        return True
                    self._cond.wait(0.1)
            captured = CapturedFrame(frame, time.monotonic(), self._generation, stream_time)
            self._anchor = (self._generation, stream_time, captured.captured)
            if self._slot is not None:
                self._dropped += 1
            self._slot = captured
            self._captured += 1
            if self._state in ("starting", "reconnecting"):
                self._state = "live"
            self._cond.notify_all()
        self._started.set()
        return False

    def _wait_for_reader(self) -> bool:
        """A file played in real time holds its second frame until the reader asks for it: the time
        a consumer spends on the first frame (loading and warming up a model) costs no frames, and
        the schedule starts when playing starts. True when closed meanwhile."""
        while not self._reader_waiting.wait(0.1):
            if self._stop.is_set():
                return True
        self._pace = None
        return False

    def _wait_until(self, stream_time: float) -> bool:
        """Sleep until ``stream_time`` on the wall-clock schedule; True when closed meanwhile."""
        now = time.monotonic()
        if self._pace is None or now - (self._pace[0] + stream_time - self._pace[1]) > 0.25:
            self._pace = (now, stream_time)  # the first frame, or far behind after a stall: restart the schedule
        delay = self._pace[0] + stream_time - self._pace[1] - now
        return delay > 0 and self._stop.wait(delay)


def open_live_source(
    spec: str,
    *,
    audio: bool = False,
    realtime: bool = False,
    loop: bool = False,
    open_timeout: float = 5.0,
    read_timeout: float = 5.0,
    max_retries: Optional[int] = None,
    backoff_initial: float = 0.5,
    backoff_max: float = 10.0,
    camera_size: Optional[tuple[int, int]] = None,
    camera_fps: Optional[float] = None,
    audio_device: Optional[str] = None,
    audio_delay: float = 0.0,
) -> LiveSource:
    """A not-yet-started LiveSource for ``spec`` (camera index, device path, stream URL or video file).

    ``camera_size`` (width, height) and ``camera_fps`` are asked of a camera; one that delivers
    something else is used as it is, with a warning.

    With ``audio``, a stream's or file's first audio track is decoded into ``source.audio`` (a
    ``LiveAudioFeed``) for recordings; with ``audio_device`` too (``birefvid.io.microphone``), that
    microphone's sound instead, ``audio_delay`` seconds later (cameras and ``realtime`` files only:
    a network stream's pictures arrive too late for a local microphone). Raises SourceError at
    once for a camera or microphone that does not exist, a missing file or an unknown URL scheme,
    and ConfigError for impossible timeouts or backoff values.
    """
    for name, value in (("open_timeout", open_timeout), ("read_timeout", read_timeout)):
        if not value > 0:
            raise ConfigError(f"{name} must be a positive number of seconds, got {value}")
    try:
        policy = Backoff(initial=backoff_initial, maximum=backoff_max, max_retries=max_retries)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    target = parse_source_spec(spec, camera_size=camera_size, camera_fps=camera_fps)
    microphone = None
    if audio_device is not None:
        check_microphone_source(spec, realtime)
        if audio:
            microphone = Microphone(parse_audio_device(audio_device), open_timeout, read_timeout, audio_delay)
    return LiveCapture(
        target, realtime=realtime, loop=loop, open_timeout=open_timeout, read_timeout=read_timeout, policy=policy, audio=audio,
        microphone=microphone,
    )

