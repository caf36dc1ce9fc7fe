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
``Interrupter``). The container is only ever touched by the capture thread: closing it from
another thread while a read is in flight is a use-after-free in libav.

Resolving ``--source`` is ``live_target``'s job, one connection (stream, camera, file pass) is
``live_connections``'s, and cancelling a blocked read ``live_interrupt``'s; this module runs the
capture thread over them: reconnecting, pacing, the continuous clock and the newest-frame slot.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from fractions import Fraction
from typing import Optional
from urllib.parse import urlsplit

import av
import numpy as np

from birefvid import exiting
from birefvid.errors import ConfigError, SourceError, in_caller_context, option
from birefvid.frames import Frame, StreamInfo
from birefvid.io._pixels import bars_alpha, fit
from birefvid.io.animated_source import is_animated_webp
from birefvid.io.hdr import SDR_TAGS, HdrToSdr, live_sdr
from birefvid.io.live_audio import TAIL_S, LiveAudioFeed
from birefvid.io.live_base import CapturedFrame, LiveSource, NoFirstPicture, SourceState
from birefvid.io.live_connections import (
    AvConnection, Connection, ConnectionLost, CvCamera, FileConnection, LoginRefused, check_camera_mode,
)
from birefvid.io.live_interrupt import Interrupter, install_interrupter
from birefvid.io.live_target import LiveTarget, parse_source_spec
from birefvid.io.microphone import Microphone, parse_audio_device
from birefvid.io.reconnect import Backoff, GaveUp, retry
from birefvid.job import check_microphone_source

log = logging.getLogger(__name__)

_TERMINAL: tuple[SourceState, ...] = ("ended", "failed", "closed")
# how long after the newest picture a microphone's sound still follows its clock (seconds)
_MIC_REACH = 0.5
# a live source's clock that runs this much further ahead of the wall clock than it did (see
# _LATENESS_WINDOW_S) has jumped (an MPEG-TS sender restarted on the same UDP port, a camera's clock
# stepped by NTP, which FFmpeg's RTSP timing follows through the camera's RTCP reports): a cut, as a step
# back is, not a gap of that length in every output. Pictures sent live never come earlier than their
# time allows: a burst after a stall brings them late. 10 s (FFmpeg's dts_delta_threshold for MPEG-TS)
# let an NTP step of 1-10 s freeze every output for its length.
_CLOCK_JUMP_S = 1.0
# the same for sound: muxers send it up to ~0.7 s ahead of its pictures, so it is given more reach
_SOUND_LEAP_S = 10.0
# a picture is measured against the earliest-arriving picture of the last this many seconds, not the one
# before it: network jitter only ever makes pictures late, so a picture that comes over a second earlier
# than any of them (for its time) stands on a clock that leapt. Against the one before, a slow still
# scene's two pictures 2 s apart that a stall delivered together read as a leap, and each such cut took
# their gap out of the recording. Short enough that a camera clock drifting from this one's (100 ppm:
# 3 ms in 30 s) never adds up to a leap.
_LATENESS_WINDOW_S = 30.0
# a connection's first pictures come from a backlog (FFmpeg's probe, a server's cached last GOP, HLS's first
# segments), the first of them the latest: against it the next ones look early by their own gaps (a still scene's
# 2 s). Until a picture comes no earlier for its time than those before it (the backlog drained, the pictures
# live), only a leap past this is one, as before the rule above (FFmpeg's dts_delta_threshold for MPEG-TS)
_BACKLOG_LEAP_S = 10.0
# how much earlier than the earliest a picture may come and still show the pictures live: arrival jitter is
# milliseconds, where a backlog's pictures each come a frame's time (or a still scene's seconds) earlier
_LIVE_TOLERANCE_S = 0.002
# a picture whose source time repeats the one before is placed a frame after it, while that keeps it
# within this much of its own time: a camera stamping two pictures a tick is not a cut
_REPEAT_REACH_S = 0.25


# --------------------------------------------------------------------------- the source


class _StreamClock:
    """Maps each connection's pts onto one increasing ``stream_time`` that starts at 0."""

    def __init__(self, time_base: Fraction, interval: float, live: bool = True) -> None:
        self.time_base = time_base
        self.interval = interval  # the gap put between connections (one frame)
        # a file's pictures come as fast as they are read, or paced a picture late: the wall clock
        # says nothing of its clock, whose long gaps (a still in a smart codec's recording) are real
        self.live = live
        self._last_pts: Optional[int] = None
        self._base: Optional[tuple[Optional[float], float, float]] = None  # (pts s, stream time, wall)
        self._stamped = 0
        self._previous: Optional[tuple[float, float]] = None  # (pts s, wall) of the connection's last stamped picture
        # (wall, wall - pts s) of this clock's pictures in the last _LATENESS_WINDOW_S, the lateness increasing
        # from the front: the front is the earliest-arriving one (a monotonic queue, O(1) a picture)
        self._lateness: collections.deque[tuple[float, float]] = collections.deque()
        self._live_paced = False  # a picture of this clock came no earlier than those before it: no backlog now

    def new_connection(self) -> None:
        self._base = None
        self._stamped = 0  # pictures of this connection stamped so far
        self._previous = None
        self._new_clock()

    def _new_clock(self) -> None:
        """Forgets the pictures' lateness: a new connection's or a cut's clock is measured afresh."""
        self._lateness.clear()
        self._live_paced = False

    def _leaps(self, seconds: float, wall: float, reach: float = _CLOCK_JUMP_S) -> bool:
        """True when a picture (or sound) at ``seconds`` arrived over ``reach`` earlier, for its time, than the
        earliest-arriving picture of the last ``_LATENESS_WINDOW_S`` (never for a file, whose pictures are not
        paced by the wall clock)."""
        if not self.live or not self._lateness:
            return False
        if not self._live_paced:  # the window holds only a backlog's pictures (see _BACKLOG_LEAP_S)
            reach = max(reach, _BACKLOG_LEAP_S)
        return self._lateness[0][1] - (wall - seconds) > reach

    def _arrived(self, seconds: float, wall: float) -> None:
        """Counts a picture's lateness into the window ``_leaps`` measures against."""
        lateness = wall - seconds
        if self._lateness and lateness >= self._lateness[0][1] - _LIVE_TOLERANCE_S:
            self._live_paced = True
        while self._lateness and self._lateness[-1][1] >= lateness:
            self._lateness.pop()  # never the earliest again while this one is in the window
        self._lateness.append((wall, lateness))
        while self._lateness[0][0] < wall - _LATENESS_WINDOW_S:
            self._lateness.popleft()

    def _repeats(self, seconds: Optional[float], t: float, last: float) -> bool:
        """True when ``seconds`` repeats the last picture's time (or lies past it) but its place ``t`` on
        the continuous clock is taken, at most ``_REPEAT_REACH_S`` before ``last``: a camera stamping
        at a coarser clock than its frame rate (two pictures a tick), or a frame sent twice. Not a cut:
        moving the clock on by a frame at each one stretched a recording of such a camera 1.2x over
        wall-clock time (and its sound). A clock that stands still for longer has stopped: a cut."""
        if seconds is None or self._previous is None or seconds < self._previous[0]:
            return False
        return round(t / self.time_base) <= (self._last_pts or 0) and last - t <= _REPEAT_REACH_S

    def audio_time(self, seconds: float, wall: Optional[float] = None) -> Optional[float]:
        """Where a sound at ``seconds`` on this connection's clock falls on the continuous clock
        (None before the connection's first picture, or when its pictures carry no times, or when it
        lies on a clock that leapt ahead of the pictures': it would place the sound that far ahead)."""
        if self._base is None or self._base[0] is None:
            return None
        if wall is not None and self._leaps(seconds, wall, _SOUND_LEAP_S):
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
        if last is not None and self._repeats(seconds, t, last):
            t = last + self.interval  # the clock stood still: a frame after the last, on the same base (no cut)
        elif last is not None and (t <= last or (seconds is not None and self._leaps(seconds, wall))):
            t = last + self.interval  # the source's clock went back or leapt ahead: treat it as a cut
            self._base = (seconds, t, wall)
            self._new_clock()  # its pictures' lateness is not the old clock's
        if seconds is not None:
            self._previous = (seconds, wall)
            if self.live:
                self._arrived(seconds, wall)
        pts = round(t / self.time_base)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        self._stamped += 1
        return pts


class _SizeKeeper:
    """Fits a connection's pictures to the run's size (the first connection's): a stream or camera
    that comes back after a reconnect at another size (a camera reconfigured, a server restarted
    with another clip) would otherwise fail every sink, which were opened for the first size. The same
    shape is scaled to it; another keeps its shape inside black bars, as a file's does (``_pixels.fit``),
    transparent (alpha 0) as a file's are: with ``alpha`` or ``mask`` the model does not decide what they become.
    The shapes are those shown: a stream back at the same size with other pixel shapes (``sar``, a camera switched
    from 4:3 to 16:9 anamorphic) is another shape too; it was kept as it came, shown with the run's pixel shape."""

    def __init__(self, name: str, width: int, height: int, sar: Optional[Fraction] = None) -> None:
        self.name, self.width, self.height = name, width, height
        self.sar = Fraction(sar) if sar else Fraction(1)  # the run's pixel shape, which its sinks were opened with
        self._warned: Optional[tuple[int, int, Fraction]] = None

    def __call__(self, image: np.ndarray, coverage: Optional[np.ndarray] = None,
                 sar: Optional[Fraction] = None) -> tuple[np.ndarray, Optional[np.ndarray]]:  # fmt: skip
        """``image`` and its own alpha ``coverage`` (None: opaque), of pixel shape ``sar`` (None: square), as they are
        when they have the run's size and pixel shape, else copies fitted to it (warned once a shape), the bars' alpha 0."""
        h, w = image.shape[:2]
        sar = Fraction(sar) if sar else Fraction(1)
        if (w, h, sar) == (self.width, self.height, self.sar):
            return image, coverage
        box = fit((w, h), (self.width, self.height), sar, self.sar)
        if self._warned != (w, h, sar):
            self._warned = (w, h, sar)
            now, run = _with_pixels(w, h, sar), _with_pixels(self.width, self.height, self.sar)
            if box is None:
                log.warning("%s: the pictures are now %s, the run's are %s; scaled to %dx%d",
                            self.name, now, run, self.width, self.height)  # fmt: skip
            else:
                log.warning("%s: the pictures are now %s, the run's are %s, another shape; the shape is kept, scaled to "
                            "%dx%d inside %dx%d with black bars", self.name, now, run, box[2], box[3],
                            self.width, self.height)  # fmt: skip
        import cv2

        if box is None:
            size = (self.width, self.height)
            scaled = None if coverage is None else cv2.resize(coverage, size, interpolation=cv2.INTER_AREA)
            return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scaled
        x, y, fw, fh = box
        canvas = np.zeros((self.height, self.width, *image.shape[2:]), image.dtype)
        canvas[y : y + fh, x : x + fw] = cv2.resize(image, (fw, fh), interpolation=cv2.INTER_AREA)
        inner = None if coverage is None else cv2.resize(coverage, (fw, fh), interpolation=cv2.INTER_AREA)
        return canvas, bars_alpha(box, (self.width, self.height), inner)


def _with_pixels(width: int, height: int, sar: Fraction) -> str:
    """``WxH``, with its pixel shape where it is not square: ``720x576 (pixels 64:45)``."""
    return f"{width}x{height}" if sar == 1 else f"{width}x{height} (pixels {sar.numerator}:{sar.denominator})"


def _lost_because(e: BaseException) -> str:
    """Why a try to reopen a stream that played failed (a 404 is then no typo in the URL)."""
    return getattr(e, "lost_reason", None) or getattr(e, "reason", None) or str(e)


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
        deinterlace: bool = True,
        video_stream: Optional[int] = None,
        input_colors: str = "auto",
    ) -> None:
        super().__init__()
        self.target = target
        self._deinterlace = deinterlace
        self._video_stream = video_stream  # a file's #N video stream; None: ffmpeg's choice
        self._input_colors = input_colors  # the matrix of a file or stream that names none (io.untagged)
        self._want_audio = audio and microphone is None  # a microphone replaces the source's own sound
        self._mic = microphone
        # (generation, stream time, monotonic time) of the newest published picture: where the microphone's sound goes
        self._anchor: Optional[tuple[int, float, float]] = None
        if microphone is not None:
            self._audio_feed = LiveAudioFeed(*microphone.audio_format, origin=microphone.device.label)
        self._realtime = realtime
        self._loop = loop
        self._open_timeout = open_timeout
        self._read_timeout = read_timeout
        self._policy = policy
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._hook: Optional[Interrupter] = None
        self._slot: Optional[CapturedFrame] = None
        self._info: Optional[StreamInfo] = None
        self._clock: Optional[_StreamClock] = None
        self._generation = 0
        self._reader_waiting = threading.Event()  # see _wait_for_reader
        self._taken = 0  # frames the reader took
        self._pace: Optional[tuple[float, float]] = None  # (wall, stream time) the realtime schedule starts from
        self._last_failure: Optional[str] = None  # why the latest try to open the stream at the start failed
        self._failed_tries = 0  # tries to open the stream at the start that failed
        self._to_sdr: Optional[HdrToSdr] = None  # an HDR source's conversion: live mode works in SDR

    # -- reader side

    def start(self, timeout: Optional[float] = None, stop: Optional[threading.Event] = None) -> StreamInfo:
        """Open the input on the capture thread and return its StreamInfo once the first frame is decoded.

        ``timeout`` bounds the wait (a stream retried under the policy would otherwise be waited on
        forever): NoFirstPicture once it passes without a frame, or once ``stop`` is set.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._thread is not None or self.closed:
                raise RuntimeError(f"{self.target.name}: start() may be called once, before close()")
            self._hook = install_interrupter()
            self._thread = threading.Thread(target=in_caller_context(self._run), name=f"birefvid live {self.target.name}", daemon=True)
            self._thread.start()
            if self._mic is not None:
                self._mic.start(self._mic_out)
        try:
            while not self._started.wait(0.1):  # short waits so Ctrl-C gets through
                if deadline is not None and time.monotonic() > deadline:
                    raise NoFirstPicture(f"no picture from {self.target.name} within {timeout:g} s", self._last_failure)
                if stop is not None and stop.is_set():
                    raise NoFirstPicture(f"no picture from {self.target.name} before the run was stopped", self._last_failure)
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

    def finish_sound(self) -> None:
        """The microphone's sound up to the newest picture (and the recordings' tail past it) delivered: the device
        hands sound over a moment after it was captured, and ``SoundClock`` may hold some (``Microphone.drain``)."""
        if self._mic is None:
            return
        anchor = self._anchor
        self._mic.drain((anchor[2] if anchor is not None else time.monotonic()) + TAIL_S)

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
        if not exiting.begun(thread):  # a Ctrl-C or SIGTERM landed in its start(): it never began
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

    def _connect(self) -> Connection:
        t = self.target
        if t.kind == "file":
            return FileConnection(t.url, self._want_audio, self._deinterlace, self._video_stream, self._input_colors)
        conn: Connection = (
            CvCamera(t) if t.backend == "opencv"
            else AvConnection(t, self._open_timeout, self._read_timeout, self._want_audio, self._deinterlace, self._input_colors)
        )  # fmt: skip
        if t.kind == "camera":
            check_camera_mode(t, conn.info)
        return conn

    def _hear(self, conn: Connection) -> None:
        """Route the connection's sound into the audio feed (made from the first connection that has sound)."""
        fmt = getattr(conn, "audio_format", None)
        if fmt is None or self._mic is not None:
            return
        if self._audio_feed is None:
            if self._info is not None and self._captured:
                return  # sound that appears only after a reconnect: the recordings are set up without it
            self._audio_feed = LiveAudioFeed(*fmt, tags=getattr(conn, "audio_tags", None))
        conn.on_audio = self._audio_out  # type: ignore[union-attr]

    def _audio_out(self, frame: av.AudioFrame, seconds: float) -> None:
        assert self._clock is not None and self._audio_feed is not None
        at = self._clock.audio_time(seconds, time.monotonic())
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

    def _first_connection(self) -> Optional[Connection]:
        """The initial open: retried under the policy for streams (but for a refused login), once for cameras and files."""
        if self.target.kind != "network":
            try:
                return self._connect()
            except ConnectionLost as e:
                raise SourceError(f"cannot open {self.target.name}: {e.reason}") from None
        try:
            conn = retry(
                self._connect, self._policy, self._stop, what=f"cannot reach {self.target.name}", reason_of=self._failed_because,
                retriable=lambda e: isinstance(e, ConnectionLost) and not isinstance(e, LoginRefused),
            )
            if conn is not None and self._failed_tries:
                # the all-clear for the warnings before it, as "reconnected" is mid-run: under -q (a journal) the
                # lines stopped with the last "cannot reach", and whether the camera came up or the run hung read the same
                log.warning("%s: connected after %d failed tr%s", self.target.name, self._failed_tries, "y" if self._failed_tries == 1 else "ies")
            return conn
        except GaveUp as e:
            raise SourceError(f"cannot reach {self.target.name}: {e}") from None
        except LoginRefused as e:
            raise SourceError(f"cannot open {self.target.name}: {e.reason}; {self._login_hint()}") from None

    def _failed_because(self, e: BaseException) -> str:
        """The reason a try to open the stream failed, kept for the error line of a run that ends waiting."""
        self._last_failure = getattr(e, "reason", None) or str(e)
        self._failed_tries += 1
        return self._last_failure

    def _login_hint(self) -> str:
        """What to do about a refused login: the URL's user and password are wrong, or missing."""
        url = urlsplit(self.target.url)
        if "@" in url.netloc:
            return "check the user name and password in the URL (not retried: many cameras lock an account after a few failed logins)"
        return f"it asks for a user name and password: add them to the URL, as {url.scheme}://USER:PASSWORD@{url.netloc}{url.path}"

    def _reconnect(self, reason: str) -> Optional[Connection]:
        """Reopen a lost camera or stream under the policy; None when closed meanwhile."""
        try:
            return retry(
                self._connect, self._policy, self._stop, what=f"lost {self.target.name}", first_failure=reason,
                reason_of=_lost_because, retriable=lambda e: isinstance(e, ConnectionLost),
            )
        except GaveUp as e:
            raise SourceError(f"lost {self.target.name}: {e}") from None

    def _run(self) -> None:
        conn: Optional[Connection] = None
        if self._hook is not None:
            self._hook.register()
        try:
            conn = self._first_connection()
            while conn is not None and not self._stop.is_set():
                if self._clock is None:
                    rate = conn.info.average_rate
                    self._clock = _StreamClock(conn.info.time_base, 1 / float(rate) if rate else 1 / 30, live=self.target.kind != "file")
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
                    if not self._count_reconnect():  # the run has ended meanwhile: its report's count stands
                        break
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
        """A looping file has no frame count or duration; HDR is shown as SDR, so tagged so; anything else keeps its facts."""
        self._to_sdr = live_sdr(info, self.target.name)
        if self._to_sdr is not None:
            info = dataclasses.replace(info, **SDR_TAGS)
        if self._loop:
            return StreamInfo(**{**info.__dict__, "frame_count": None, "duration": None})
        return info

    def _pump(self, conn: Connection) -> Optional[str]:
        """Publish a connection's frames until it ends or closes (None) or is lost (the reason)."""
        assert self._info is not None
        fit = _SizeKeeper(self.target.name, self._info.width, self._info.height, self._info.sample_aspect_ratio)
        sar = conn.info.sample_aspect_ratio  # this connection's, which its pictures keep (a change midway is fitted to it)
        try:
            for image, seconds, coverage in conn.frames():
                if self._to_sdr is not None:
                    image = self._to_sdr(image)[0]
                image, coverage = fit(image, coverage, sar)
                if self._stop.is_set() or self._publish(image, seconds, coverage):
                    return None
        except ConnectionLost as e:
            return e.reason
        return None if self.target.kind == "file" else "end of stream"

    def _publish(self, image: np.ndarray, seconds: Optional[float], coverage: Optional[np.ndarray] = None) -> bool:
        """Stamp a frame (``coverage``: its own alpha, None when opaque), wait for its time when pacing a file,
        and offer it; True when closed meanwhile."""
        assert self._clock is not None
        tb = self._clock.time_base
        pts = self._clock.stamp(seconds, time.monotonic())
        stream_time = float(pts * tb)
        if self.target.kind == "file" and self._captured == 1:
            self._anchor = None  # the file's clock stands still until the reader is ready: no sound goes meanwhile
            if self._wait_for_reader():
                return True
        if self._realtime and self._wait_until(stream_time):
            return True
        frame = Frame(image=image, pts=pts, time_base=tb, index=self._captured, coverage=coverage)
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
        """A file holds its second frame until the reader asks for it: the time a consumer spends on the
        first frame (loading and warming up a model) costs no frames, the schedule of one played in real
        time starts when playing starts, and no frame is captured (timed) before it. True when closed meanwhile."""
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
    deinterlace: bool = True,
    video_stream: Optional[int] = None,
    input_colors: str = "auto",
) -> LiveSource:
    """A not-yet-started LiveSource for ``spec`` (camera index, device path, stream URL or video file).

    ``camera_size`` (width, height) and ``camera_fps`` are asked of a camera; one that delivers
    something else is used as it is, with a warning.

    With ``audio``, a stream's or file's first audio track is decoded into ``source.audio`` (a
    ``LiveAudioFeed``) for recordings; with ``audio_device`` too (``birefvid.io.microphone``), that
    microphone's sound instead, ``audio_delay`` seconds later (cameras and ``realtime`` files only:
    a network stream's pictures arrive too late for a local microphone). Interlaced pictures (a
    broadcast, a camcorder's file) are deinterlaced unless ``deinterlace`` is False. ``video_stream``: a video
    file's N-th video stream (``--video-stream``) instead of the one ffmpeg would take; ``input_colors``: the YUV
    matrix of a file or stream that names none (``io.untagged``). Raises SourceError at
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
    if video_stream is not None and (target.kind != "file" or is_animated_webp(target.url)):
        what = "an animated WebP, which has one" if target.kind == "file" else f"a {'camera' if target.kind == 'camera' else 'live stream'}"
        raise ConfigError(f"{option('video_stream')} chooses among a video file's video streams; {target.name} is {what}")
    microphone = None
    if audio_device is not None:
        check_microphone_source(spec, realtime)
        if audio:
            microphone = Microphone(parse_audio_device(audio_device), open_timeout, read_timeout, audio_delay)
    return LiveCapture(
        target, realtime=realtime, loop=loop, open_timeout=open_timeout, read_timeout=read_timeout, policy=policy, audio=audio,
        microphone=microphone, deinterlace=deinterlace, video_stream=video_stream, input_colors=input_colors,
    )

