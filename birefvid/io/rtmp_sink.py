"""Publish live pictures to an RTMP server (YouTube Live, Twitch, Facebook, nginx-rtmp, MediaMTX)
through the ``ffmpeg`` program.

PyAV opens an RTMP output with ``avio_open``: no options, no interrupt callback, and Python's lock
held, so a silent server froze the whole process (Ctrl-C too) for minutes. So birefvid muxes the
stream itself (``LiveH264``'s H.264 and the source's sound as AAC, in FLV) into a pipe, and an
``ffmpeg`` child copies it, untouched, to the server with a network timeout (``-rw_timeout``): a
dead or stalled server costs the child, never the run. The stream fails (and ``RepublishingSink``
starts a new child) when the child exits or stops reading for ``WRITE_TIMEOUT_S``. The child reports
its progress (``-progress``) only once the server has taken the stream, so ``confirmed`` tells a
stream that is published from one the server is about to refuse. ffmpeg-python is
not used: it would only format the argument list, and the child's pipes need handling it lacks.
An address with a login (``rtmp://USER:PASSWORD@...``), which FFmpeg takes only inside the address and the
``ffmpeg`` program only on its command line (``ps`` shows it to every user), goes to a PyAV child
(``rtmp_push``) that reads it from a pipe and speaks to this module as the ``ffmpeg`` child does.
"""

from __future__ import annotations

import collections
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from typing import IO, Callable, Deque, Optional
from urllib.parse import urlsplit, urlunsplit

import av

from birefvid.errors import SinkError
from birefvid.io.live_audio import LiveAudioFeed
from birefvid.io.publish_base import LIVE_MUX_OPTIONS, StreamPublishSink, reason
from birefvid.urls import without_stream_key as redacted  # the name the live sinks import

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"rtmp": 1935, "rtmps": 443}
WRITE_TIMEOUT_S = 5.0  # a child that reads nothing for this long is stuck on its server: the stream is reopened
EXIT_WAIT_S = 5.0  # how long close() lets the child send what is left before it is killed
_ERROR_LINES = 8  # the child's last lines of stderr kept for the error message
MAX_KBPS = 6000  # Twitch's limit, and what YouTube asks for 1080p at 30 fps
# FFmpeg 7.1+ (PyAV's) writes surround AAC into FLV as Enhanced RTMP's multichannel packets, which older
# ffmpeg (Debian 12's 5.1, the child) reads as a second, unknown audio stream and refuses to copy: a 5.1
# source's stream never started. Twitch and Facebook take stereo only, so surround is mixed down
RTMP_CHANNELS = 2


def stream_kbps(width: int, height: int, fps: float) -> int:
    """The bitrate cap for a stream: 0.1 bit a pixel a frame (what services advise: 720p30 2.8
    Mbit/s), at most ``MAX_KBPS``; services cut streams that go over their limit."""
    return max(300, min(MAX_KBPS, round(width * height * fps * 0.1 / 1000)))


def check_url(url: str) -> None:
    """SinkError unless ``url`` names a host, a valid port and an application and stream key (``/APP/KEY``)."""
    parts = urlsplit(url)
    try:
        parts.port
    except ValueError:
        raise SinkError(f"cannot publish to {redacted(url)}: its port is not a number from 0 to 65535") from None
    app, _, key = parts.path.strip("/").partition("/")
    if not parts.hostname or not app or not key:
        raise SinkError(
            f"cannot publish to {redacted(url)}: an RTMP address names a server, an application and a stream key, "
            f"e.g. rtmp://a.rtmp.youtube.com/live2/YOUR-KEY or rtmp://127.0.0.1/live/test"
        )


def key_options(url: str) -> tuple[str, dict[str, str]]:
    """(``url`` without its stream key, the RTMP options that carry its application and stream key),
    split as FFmpeg's RTMP client splits the address (``/APP/KEY``, ``/APP/INSTANCE/KEY``, the query
    with the key, ``.mp4`` keys prefixed ``mp4:``); (``url``, {}) for an address it splits otherwise.

    A child's command line is readable by every user of the machine (``ps``, ``/proc/PID/cmdline``),
    and a stream key lets anyone broadcast on the owner's channel, so the key goes to the child
    through a preset file read from a pipe (``ffmpeg_command``'s ``preset``) instead."""
    parts = urlsplit(url)
    path, query = parts.path, parts.query
    if not path.startswith("/") or path.startswith("/ondemand/") or "slist=" in query:
        return url, {}
    rest = path[1:]
    slash = rest.find("/")
    if slash < 0:
        return url, {}  # no key
    after = rest[slash + 1:]
    colon, second = after.find(":"), after.find("/")
    if second < 0 or 0 <= colon < second:
        app, name = rest[:slash], after
    else:  # /APP/INSTANCE/KEY: the first two parts are the application
        app, name = rest[:slash + 1 + second], after[second + 1:]
    if query:
        name = f"{name}?{query}"
    if ":" not in name and name[-4:] in (".mp4", ".f4v"):
        name = "mp4:" + name
    elif name.endswith(".flv"):
        name = name[:-4]
    if not name:  # /APP/KEY/: FFmpeg takes APP/KEY for the application (and the server refuses the stream)
        options, shown = {"rtmp_app": app}, "/"
    else:
        options, shown = {"rtmp_app": app, "rtmp_playpath": name}, "/" + app
    if any(len(v) > 900 or "\n" in v or "\r" in v for v in options.values()):
        return url, {}  # a preset line holds neither (nor over 999 characters)
    return urlunsplit((parts.scheme, parts.netloc, shown, "", "")), options


def ffmpeg_command(url: str, open_timeout: float, preset: Optional[str] = None) -> list[str]:
    """The child's command line: FLV from stdin, copied as it comes (no probing delay, no re-encode) to ``url``;
    ``preset``: a file of ``option=value`` lines for the output (``key_options``)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise SinkError(
            f"cannot publish to {redacted(url)}: RTMP is sent by the ffmpeg program, which is not on PATH "
            "(apt install ffmpeg, brew install ffmpeg, or winget install ffmpeg); or publish to an rtsp:// server "
            "such as MediaMTX and let it push RTMP"
        )
    timeout_us = str(max(1, int(open_timeout * 1_000_000)))
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
        "-analyzeduration", "1", "-f", "flv", "-i", "pipe:0",
        "-map", "0", "-c", "copy", "-f", "flv", "-flvflags", "no_duration_filesize",
        # the child interleaves as birefvid's muxer does: pictures must not wait 10 s for sound that stopped
        "-max_interleave_delta", LIVE_MUX_OPTIONS["max_interleave_delta"],
        "-progress", "pipe:1", "-rw_timeout", timeout_us, *(["-fpre", preset] if preset else []), url,
    ]  # fmt: skip


def has_login(url: str) -> bool:
    """True when ``url`` holds a login (``rtmp://USER:PASSWORD@HOST/...``), which FFmpeg takes only inside the address."""
    try:
        parts = urlsplit(url)
        return parts.username is not None or parts.password is not None
    except ValueError:
        return False


def push_command(fd: int, open_timeout: float) -> list[str]:
    """The command line of the child that sends a stream whose address holds a login (``rtmp_push``): it reads the
    address from the inherited pipe ``fd``, so neither the login nor the key is on a command line ``ps`` shows."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rtmp_push.py")
    return [sys.executable, script, str(fd), f"{open_timeout:g}"]


def _pipe_holding(text: str) -> int:
    """The read end of a pipe holding ``text`` (a few hundred bytes: the write never blocks), for a child to inherit."""
    reader, writer = os.pipe()
    try:
        os.write(writer, text.encode())
    finally:
        os.close(writer)
    return reader


class ChildPipe:
    """What PyAV writes the FLV stream into: the child's stdin, written without blocking so a child
    that stops reading (its server stalled) fails the write after ``timeout`` instead of holding the
    stream's thread forever. Has no ``seek``, so PyAV treats it as the live stream it is."""

    def __init__(self, child: subprocess.Popen[bytes], timeout: float, describe: Callable[[], str]) -> None:
        assert child.stdin is not None
        self._fd: Optional[int] = child.stdin.fileno()
        # Windows has no select() on pipes: there the write blocks, and a stalled child holds only
        # the stream's own thread (the run's end leaves it behind after a few seconds)
        self._blocking = os.name == "nt"
        if not self._blocking:
            os.set_blocking(self._fd, False)
        self._timeout = timeout
        self._describe: Optional[Callable[[], str]] = describe

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        done = 0
        deadline = time.monotonic() + self._timeout
        while done < len(view):
            if self._fd is None:  # shut: the fd may already number another file
                raise BrokenPipeError("the stream to ffmpeg was shut")
            try:
                done += os.write(self._fd, view[done:])
                continue
            except BlockingIOError:
                pass  # the pipe is full: wait below until the child reads or the timeout passes
            except BrokenPipeError:
                why = self._describe() if self._describe is not None else "it was stopped"
                raise BrokenPipeError(f"ffmpeg stopped ({why})") from None
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"ffmpeg read nothing for {self._timeout:g} s (the server stopped taking the stream)")
            select.select([], [self._fd], [], min(left, 0.25))
        return done

    def shut(self) -> None:
        """No more writes: the child's stdin is about to be closed (not named ``close``, which PyAV might call).

        Also lets go of ``describe`` (a method of the stream): the muxer holds this pipe, so the stream
        and its encoder's threads and buffers would otherwise wait for a full garbage collection."""
        self._fd = None
        self._describe = None


class RtmpPublishSink(StreamPublishSink):
    """Encodes each picture with ``LiveH264`` and publishes it to ``url`` (rtmp:// or rtmps://) through
    an ``ffmpeg`` child, with the source's sound (AAC) when an ``audio`` feed is given."""

    def __init__(
        self, url: str, *, width: int, height: int, fps: float, kind: str, open_timeout: float = 5.0, audio: Optional[LiveAudioFeed] = None,
        sample_aspect_ratio: Optional[Fraction] = None,
    ) -> None:
        super().__init__(url, width=width, height=height, fps=fps, kind=kind, shown=redacted(url), sample_aspect_ratio=sample_aspect_ratio)
        self._key = urlsplit(url).path.rstrip("/").rpartition("/")[2]
        self._stderr: Deque[str] = collections.deque(maxlen=_ERROR_LINES)
        self._published = threading.Event()  # the child has reported progress: the server took the stream
        self._open_timeout = open_timeout
        self.problem: Optional[str] = None  # how the child failed at the end (its exit status, its last words): unsaid before
        address, options = key_options(url)
        self._address = address  # what the child is given, and names in its errors
        preset: Optional[int] = None
        if has_login(url) and os.name == "posix":  # FFmpeg takes a login only in the address: a PyAV child reads it from a pipe
            preset = _pipe_holding(url)
            self._address = url
            command, via = push_command(preset, open_timeout), "a PyAV child (rtmp_push)"
        elif options and os.name == "posix":  # the key reaches the child through a pipe, out of its command line
            preset = _pipe_holding("".join(f"{k}={v}\n" for k, v in options.items()))
            command, via = ffmpeg_command(address, open_timeout, preset=f"/dev/fd/{preset}"), "ffmpeg"
        else:
            command, via = ffmpeg_command(url, open_timeout), "ffmpeg"
        try:
            self._child: Optional[subprocess.Popen[bytes]] = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                pass_fds=() if preset is None else (preset,),
            )  # its own session: Ctrl-C reaches birefvid, which finishes the stream, not the child mid-packet
        except OSError as e:
            raise SinkError(f"cannot publish to {self._shown}: cannot start ffmpeg: {reason(e)}") from e
        finally:
            if preset is not None:
                os.close(preset)
        self._reader = threading.Thread(target=self._keep_stderr, args=(self._child.stderr,), name="birefvid-rtmp-stderr", daemon=True)
        self._progress = threading.Thread(target=self._watch_progress, args=(self._child.stdout,), name="birefvid-rtmp-progress", daemon=True)
        try:
            self._reader.start()
            self._progress.start()
            # flush_packets: each frame goes to the child as soon as it is muxed, not when a buffer fills
            self._pipe = ChildPipe(self._child, WRITE_TIMEOUT_S, self._why)
            self._out = av.open(self._pipe, "w", format="flv",
                                container_options={"flush_packets": "1", **LIVE_MUX_OPTIONS})  # fmt: skip
            self._add_streams("flv", audio, max_kbps=stream_kbps(width, height, fps), max_channels=RTMP_CHANNELS)
            self._out.start_encoding()
        except (av.FFmpegError, OSError, ValueError) as e:
            self._abort()
            raise SinkError(f"cannot publish to {self._shown}: {reason(e)}") from e
        except BaseException:  # Ctrl-C or SIGTERM meanwhile: the child, in its own session, would stay waiting for pictures
            self._abort()
            raise
        log.info("publishing %dx%d H.264 to %s through %s", width, height, self._shown, via)

    def _hide(self, text: str) -> str:
        """``text`` (ffmpeg's words, an error) with the stream's address, key and password hidden: the child names
        the address it was given (without the key, with an ``rtmp://USER:PASSWORD@`` login) in its errors."""
        text = text.replace(self.url, self._shown).replace(self._address, redacted(self._address))
        return text.replace(self._key, "***") if len(self._key) >= 4 else text

    def _keep_stderr(self, stream: IO[bytes]) -> None:
        for line in stream:
            text = self._hide(line.decode("utf-8", "replace").strip())
            if text:
                self._stderr.append(text)
                log.debug("ffmpeg (%s): %s", self._shown, text)

    def _watch_progress(self, stream: IO[bytes]) -> None:
        """Read the child's progress reports (so it never blocks on them); the first says the server took the stream."""
        for line in stream:
            if line.startswith(b"progress="):
                self._published.set()

    @property
    def confirmed(self) -> bool:
        """True once the server has taken the stream: opening the child cannot tell, as it connects only once it has pictures."""
        return self._published.is_set()

    def _why(self) -> str:
        """The child's own account of its failure: its last error line, or its exit status."""
        child = self._child
        if child is None:
            return self._stderr[-1] if self._stderr else "it was stopped"
        if child.poll() is None:
            try:
                child.wait(0.5)  # it is exiting: let its last words arrive
            except subprocess.TimeoutExpired:
                pass
        self._reader.join(0.5)
        if self._stderr:
            return self._stderr[-1]
        code = child.poll()
        if code is not None and code == -getattr(signal, "SIGALRM", 0):  # rtmp_push's timeout: connecting, or a write after
            if self._published.is_set():  # the server took the stream, then stopped reading it (ffmpeg's child says so too)
                return f"the server took nothing for {self._open_timeout:g} s: it stopped taking the stream"
            return f"the server did not take the stream within {self._open_timeout:g} s"
        return "it is still running" if code is None else f"exit status {code}"

    def _stream_seconds(self, t: float) -> float:
        # each publishing starts at 0, unlike MPEG-TS (StreamClock): the server takes it as a new
        # stream, and the ffmpeg child starts its copy at 0 whatever it is given
        return self._since_first_picture(t)

    def _send(self, picture, t: float) -> None:  # type: ignore[no-untyped-def]
        try:
            super()._send(picture, t)
        except SinkError as e:  # name the stream without its key; say what ffmpeg said
            raise SinkError(self._hide(str(e))) from e.__cause__

    def _close(self) -> None:
        try:
            super()._close()  # the trailer goes into the pipe
        except SinkError as e:
            raise SinkError(self._hide(str(e))) from e.__cause__
        finally:
            self._end_child(EXIT_WAIT_S)

    def _abort(self) -> None:
        self._end_child(0.0)  # first: the muxer's last writes then fail at once instead of waiting on a stuck child
        super()._abort()

    def _end_child(self, wait: float) -> None:
        """Close the child's input and give it ``wait`` seconds to send what it holds; kill it after."""
        child, self._child = self._child, None
        if child is None:
            return
        pipe = getattr(self, "_pipe", None)
        if pipe is not None:
            pipe.shut()
        if child.stdin is not None:
            try:
                child.stdin.close()
            except OSError:
                pass  # it is gone already
        try:
            child.wait(wait) if wait > 0 else child.kill()
        except subprocess.TimeoutExpired:
            log.warning("ffmpeg had not finished sending to %s %g s after the end: stopped", self._shown, wait)
            child.kill()
        code = child.wait()
        if wait > 0 and code != 0:  # a close: the stream's end (its last pictures, the trailer) did not reach the server
            self._reader.join(0.5)
            why = self._stderr[-1] if self._stderr else (
                f"the server took nothing for {self._open_timeout:g} s" if code == -getattr(signal, "SIGALRM", 0)
                else f"exit status {code}")  # fmt: skip
            self.problem = f"the stream's end may not have reached the server: its sender failed ({why})"
