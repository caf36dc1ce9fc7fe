"""What a live ``--source`` names: a camera, a network stream or a video file, and how to open it.

``parse_source_spec`` resolves the user's text into a ``LiveTarget`` (URL, input format, FFmpeg
options) before anything is opened, so a missing camera, a missing file or an unknown scheme
fails at once with one line. Passwords in URLs never reach logs or errors (``_redact``).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import av

from birefvid.errors import ConfigError, SourceError, option
from birefvid.extensions import URL_STREAM_EXTENSIONS, VIDEO_EXTENSIONS
from birefvid.live_checks import missing_source_line
from birefvid.io.base import ffmpeg_name
from birefvid.urls import without_password as _redact

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
# http(s) URLs with these endings are video files, read as files; anything else (an IP camera's
# MJPEG, HLS, an MPEG-TS .ts that may be live) is a stream
_FILE_SUFFIXES = VIDEO_EXTENSIONS - URL_STREAM_EXTENSIONS


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
        # two cameras of one model share a name, and "video=NAME" opens the first: --source 1 showed camera 0
        twin = names[:index].count(names[index])
        if twin:
            asked = {"video_device_number": str(twin), **asked}
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
    if not path.exists():  # birefvid live says this before it imports the runtime (live_checks.refuse_missing_source)
        raise SourceError(missing_source_line(text))
    return LiveTarget("file", str(path), ffmpeg_name(path))

