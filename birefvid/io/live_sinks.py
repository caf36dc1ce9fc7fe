"""Turn ``--sink`` values into opened live sinks: a window, a virtual camera, an RTSP, RTMP or
MPEG-TS (UDP/TCP/SRT) stream, an HTTP preview or a file.

Every sink is opened (and so checked) before the first frame is processed; when one fails, the
ones already opened are aborted, so a typo in the third --sink leaves no half-written recording
and no listening port behind.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from typing import Optional
from urllib.parse import urlsplit

from birefvid.errors import ConfigError, SinkError, option, sink_named
from birefvid.io.live_audio import LiveAudioFeed
from birefvid.io.live_base import LiveSink, pictures_named
from birefvid.io.republish import REOPEN_TIMEOUT_S, RepublishingSink, Unreachable, rtsp_answers, server_down, tcp_reachable
from birefvid.job import EFFECT_PICTURE, EFFECTS, shown_sink
from birefvid.urls import shown_url

log = logging.getLogger(__name__)

PICTURE_KINDS = ("rgb", "rgba", "gray")
# "rtmp(s)://" is no URL to the command line's guard, which hid "rtmp://HOST[:PORT]/APP/KEY" whole as a stream address
_FORMS = ("window, virtualcam, rtsp://HOST[:PORT]/PATH, rtmp(s)://HOST[:PORT]/APP/KEY, udp://HOST:PORT, tcp://HOST:PORT, "
          "http://HOST:PORT or a video file path")
_ALPHA_HINT = "; for alpha, record to a .webm, .mov or .mkv file sink"


def parse_http_address(spec: str) -> tuple[str, int]:
    """(host, port) of an ``http://HOST:PORT`` preview address; ConfigError saying what is wrong otherwise."""
    example = "e.g. http://127.0.0.1:8080 (this machine) or http://0.0.0.0:8080 (all interfaces)"
    parts = urlsplit(spec)
    if parts.scheme.lower() != "http":
        raise ConfigError(f"{spec!r} is not an http:// address; the preview sink is {example}")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{spec!r}: the preview takes no user name or password; use {example}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"{spec!r}: the preview is served at the root, so give no path or query; use {example}")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{spec!r} has no valid port (0 to 65535); use {example}") from None
    host = parts.hostname
    if not host:
        raise ConfigError(f"{spec!r} names no host; use {example}")
    if port is None:
        raise ConfigError(f"{spec!r} names no port; the preview needs one, {example}")
    return host, port


def _check_kind(cls: type[LiveSink], spec: str, kind: str, effect: Optional[str] = None) -> None:
    """SinkError before anything opens when the sink cannot carry ``kind`` pictures (those of ``effect``, named so)."""
    if kind not in cls.accepts:
        hint = _ALPHA_HINT if kind == "rgba" else ""
        if effect:  # the user chose an effect, not a picture kind ("cannot carry rgba pictures (it takes gray, rgb)")
            names = [e for e in EFFECTS if EFFECT_PICTURE[e] in cls.accepts]
            takes = f"{option('effect')} {', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else option("effect", names[0])
        else:
            takes = ", ".join(sorted(cls.accepts))
        raise SinkError(f"{sink_named(spec)} cannot carry {pictures_named(kind, effect)} (it takes {takes}){hint}")


def open_live_sink(
    spec: str, *, width: int, height: int, fps: float, kind: str, overwrite: bool = False, preset: Optional[str] = None,
    audio: Optional[LiveAudioFeed] = None, segment_seconds: Optional[float] = None, sample_aspect_ratio: Optional[Fraction] = None,
    mirror: bool = False, effect: Optional[str] = None,
) -> LiveSink:
    """Open the sink one ``--sink`` value names, for ``kind`` pictures of ``width`` x ``height`` at ``fps``.

    ``preset`` is the encoder speed preset of a recording (a file sink), ``segment_seconds`` the
    length of its parts (None: one file); ``audio`` is the source's sound, which recordings and the
    RTSP and MPEG-TS streams carry; ``sample_aspect_ratio`` the source's pixel shape when not square
    (a D1 camera's 12:11), which recordings and streams keep and the window, virtual camera and browser
    preview show by resizing to square pixels. ``mirror`` flips the picture left-right in the window and
    the preview page, what a person looks at (a self-view), never in what is sent or recorded. ``effect``: the live
    effect that draws the pictures, which errors name (the user chose it, not a picture kind).
    """
    if kind not in PICTURE_KINDS:
        raise ConfigError(f"unknown picture kind {kind!r}; expected one of {', '.join(PICTURE_KINDS)}")
    if not spec or not spec.strip():
        raise ConfigError(f"a sink is empty; expected {_FORMS}")
    word = spec.strip().lower()
    scheme = urlsplit(spec).scheme.lower() if "://" in spec else ""
    if word == "window":
        from birefvid.io.window_sink import WindowSink  # needs a display; imported only when asked for

        _check_kind(WindowSink, spec, kind, effect)
        return WindowSink(width=width, height=height, title="birefvid", sample_aspect_ratio=sample_aspect_ratio, mirror=mirror)
    if word == "virtualcam":
        from birefvid.io.virtualcam_sink import VirtualCamSink  # optional extra; imported only when asked for

        _check_kind(VirtualCamSink, spec, kind, effect)
        return VirtualCamSink(width=width, height=height, fps=fps, sample_aspect_ratio=sample_aspect_ratio)
    if scheme in ("rtsp", "rtsps", "udp", "tcp", "srt"):
        from birefvid.io.publish_base import StreamClock
        from birefvid.io.rtsp_sink import RtspPublishSink
        from birefvid.io.ts_sink import MpegTsPublishSink

        publisher = RtspPublishSink if scheme.startswith("rtsp") else MpegTsPublishSink
        _check_kind(publisher, spec, kind, effect)
        # a server or player that goes away mid-run is reconnected to, and so is one down when the run starts (not up yet);
        # a wrong address, or a server that refuses or does not answer the stream, is an error at once
        reachable = tcp_reachable(spec, 322 if scheme == "rtsps" else 554) if scheme in ("rtsp", "rtsps", "tcp") else None
        # before a reopening that follows one that waited: a hung RTSP server takes connections, so it must answer too
        ask_first = rtsp_answers(spec, 554) if scheme == "rtsp" else reachable
        # MPEG-TS: every connection on the first one's clock, so a reopened stream's time never goes back.
        # RTSP needs none: each session's RTP clock starts at a random value, and its sender reports place it on the wall clock
        shared = {} if publisher is RtspPublishSink else {"clock": StreamClock()}
        return RepublishingSink(
            lambda: publisher(spec, width=width, height=height, fps=fps, kind=kind, audio=audio, sample_aspect_ratio=sample_aspect_ratio, **shared),
            reachable=ask_first,
            reopen_stream=lambda: publisher(spec, width=width, height=height, fps=fps, kind=kind, audio=audio, open_timeout=REOPEN_TIMEOUT_S,
                                            sample_aspect_ratio=sample_aspect_ratio, **shared),  # fmt: skip
            down_at_start=server_down(reachable) if reachable is not None else None, name=shown_url(spec), stream_type=publisher,
        )
    if scheme in ("rtmp", "rtmps"):
        from birefvid.io.publish_base import check_host
        from birefvid.io.rtmp_sink import DEFAULT_PORTS, RtmpPublishSink, check_url, ffmpeg_command, redacted

        _check_kind(RtmpPublishSink, redacted(spec), kind, effect)
        check_url(spec)
        ffmpeg_command(spec, REOPEN_TIMEOUT_S)  # no ffmpeg program: say so before anything opens
        reachable = tcp_reachable(spec, DEFAULT_PORTS[scheme])

        def first_connection() -> LiveSink:  # the child connects only once it has pictures: check the server now
            # a host name that does not resolve is a typo, said at once as for rtsp:// and tcp://, not a server to wait for
            check_host(spec, "publish", redacted(spec))
            try:
                reachable()
            except SinkError as e:  # Unreachable (a server down: the run goes on and connects later) stays so
                why = str(e).replace(spec, redacted(spec))
                raise type(e)(f"cannot publish to {redacted(spec)}: {why} (is an RTMP server listening there?)") from None
            return RtmpPublishSink(spec, width=width, height=height, fps=fps, kind=kind, audio=audio, sample_aspect_ratio=sample_aspect_ratio)

        def reconnection() -> LiveSink:  # the port first, as for the first connection: no child started for a server that is down
            reachable()
            return RtmpPublishSink(spec, width=width, height=height, fps=fps, kind=kind, audio=audio, open_timeout=REOPEN_TIMEOUT_S,
                                   sample_aspect_ratio=sample_aspect_ratio)  # fmt: skip

        return RepublishingSink(first_connection, reachable=reachable, reopen_stream=reconnection,
                                down_at_start=lambda e: isinstance(e, Unreachable), name=redacted(spec), stream_type=RtmpPublishSink)  # fmt: skip
    if scheme == "http":
        from birefvid.io.http_preview import HttpPreviewSink

        host, port = parse_http_address(spec)
        _check_kind(HttpPreviewSink, spec, kind, effect)
        return HttpPreviewSink(host, port, sample_aspect_ratio=sample_aspect_ratio, mirror=mirror)
    if scheme:
        raise ConfigError(f"{sink_named(spec)}: {scheme}:// outputs are not supported; expected {_FORMS}")
    from birefvid.io.record_sink import RecordingSink

    _check_kind(RecordingSink, spec, kind, effect)
    return RecordingSink(os.path.expanduser(spec), width=width, height=height, fps=fps, kind=kind, overwrite=overwrite, preset=preset,
                         audio=audio, segment_seconds=segment_seconds, sample_aspect_ratio=sample_aspect_ratio, effect=effect)  # fmt: skip


def _identity(spec: str) -> Optional[tuple[str, ...]]:
    """What two --sink values must not share (the same file, port or device); None when they never clash."""
    word = spec.strip().lower()
    if word in ("window", "virtualcam"):
        return (word,)
    if "://" in spec:
        scheme = urlsplit(spec).scheme.lower()
        if scheme == "http":
            host, port = parse_http_address(spec)
            return None if port == 0 else ("http", host.lower(), str(port))
        return ("url", spec)
    return ("file", os.path.abspath(os.path.expanduser(spec)))


def open_live_sinks(
    specs: list[str], *, width: int, height: int, fps: float, kind: str, overwrite: bool = False, preset: Optional[str] = None,
    audio: Optional[LiveAudioFeed] = None, segment_seconds: Optional[float] = None, sample_aspect_ratio: Optional[Fraction] = None,
    mirror: bool = False, effect: Optional[str] = None,
) -> list[LiveSink]:
    """Open every --sink in order, or none: on the first failure the opened ones are aborted and the error raised."""
    seen: dict[tuple[str, ...], str] = {}
    for spec in specs:
        key = _identity(spec)
        if key is not None and key in seen:
            same = "twice" if seen[key] == spec else f"twice ({shown_sink(seen[key])} and {shown_sink(spec)})"
            raise ConfigError(f"{sink_named(shown_sink(spec))} is given {same}; each output may appear once")
        if key is not None:
            seen[key] = spec
    opened: list[LiveSink] = []
    try:
        for spec in specs:
            opened.append(open_live_sink(spec, width=width, height=height, fps=fps, kind=kind, overwrite=overwrite, preset=preset, audio=audio,
                                         segment_seconds=segment_seconds, sample_aspect_ratio=sample_aspect_ratio, mirror=mirror,
                                         effect=effect))  # fmt: skip
    except BaseException:
        for sink in reversed(opened):
            try:
                sink.abort()
            except Exception as e:  # keep the first error; a failing cleanup is only logged
                log.warning("could not abort sink %s: %s", sink.name, e)
        raise
    return opened
