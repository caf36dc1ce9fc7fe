"""Network outputs that come back: a stream whose server or player goes away is reopened, the run goes on.

An RTSP server restarting, or the player at the end of a ``tcp://`` stream closing, used to end the
whole live run with an error, and the run's recordings with it. ``RepublishingSink`` wraps a
network publisher: when a send fails it logs one warning, drops the broken connection and reopens
it on a thread of its own under ``reconnect.Backoff`` (forever, 0.5 s doubling to 3 s), while
pictures for it are skipped and every other output carries on; the new connection starts with a
keyframe, so players pick it up at once. A reopened stream counts as back only once it works
(``confirmed``, for an RTMP child that connects only once it has pictures): one that fails before
is one more failed attempt, backed off further, not a reconnection. Pictures reach the stream
through a short queue of its own, sent on its own thread: a receiver that stops reading (a paused
player, a stalled server) blocks only that thread until the network timeout, and the stream skips
pictures meanwhile, where it held up every output (a recording lost 5 s of pictures to a stalled
tcp:// player).

A server that is down when the run starts is the same outage from the start (``down_at_start``): the run goes on,
the stream's pictures are skipped, and it connects once the server answers, where the run used to end at once
with an error (a matting started before the server, or both started together by a service manager). Only a
server that cannot be reached at all counts so (a refused or timed-out connection): a wrong address (a host that
does not resolve, a bad port), a refused login or a server that answers but not as one (another protocol on that
port) is still one error line at the start, since waiting would not mend it.
"""

from __future__ import annotations

import collections
import logging
import socket
import threading
import time
from typing import Callable, Deque, Optional
from urllib.parse import urlsplit

import numpy as np

from birefvid.errors import SinkError, in_caller_context
from birefvid.io.live_base import LiveSink
from birefvid.io.reconnect import Backoff, Outage, retry
from birefvid.urls import shown_url

log = logging.getLogger(__name__)


REOPEN_EVERY_S = 3.0  # the longest wait between two reopening attempts
SLOW_OPEN_S = 0.5  # an attempt that took longer than this to fail waited on the network, holding Python's lock
REOPEN_TIMEOUT_S = 2.0  # a reopening's network timeout (the first connection's is 5 s): the most it can freeze the others
# between reopenings of a server that passes the socket check but still does not take the stream (an RTSP server that
# answers OPTIONS and hangs on ANNOUNCE or SETUP): each of them freezes the run for REOPEN_TIMEOUT_S, so they are spaced
# out, a 2 s freeze in 15 s instead of in every 3-5 s (measured: 14.9 s of a 25 s outage frozen, 7 reopenings)
UNTOLD_REOPEN_EVERY_S = 15.0
QUEUE_PICTURES = 4  # pictures a stream may fall behind the others before its oldest waiting one is skipped
# how long close() lets the stream's thread send what waits; a thread still blocked then is writing to
# a receiver that stopped reading (an RTSP muxer retries each packet for its 5 s timeout, forever): the
# stream is left unfinished, so the run still ends and its recordings are committed
CLOSE_WAIT_S = 3.0


class RepublishingSink(LiveSink):
    """A stream made by ``open_stream()`` now (its errors are the caller's, as for any sink), and by
    ``reopen_stream()`` on a thread of its own whenever it breaks."""

    def __init__(
        self, open_stream: Callable[[], LiveSink], policy: Optional[Backoff] = None, reachable: Optional[Callable[[], None]] = None,
        reopen_stream: Optional[Callable[[], LiveSink]] = None, down_at_start: Optional[Callable[[SinkError], bool]] = None,
        name: Optional[str] = None, stream_type: Optional[type[LiveSink]] = None,
    ) -> None:
        """``reachable`` (raising SinkError when not) is asked before a reopening once an attempt has
        waited on the network: PyAV opens an output holding Python's lock, so attempts that wait on a
        silent or unreachable host would freeze every other thread each time, while a plain socket
        waits without holding it. ``reopen_stream`` (default ``open_stream``) makes the later
        connections, e.g. with a shorter open timeout: each of its waits holds that lock too.

        ``down_at_start`` tells, of the first connection's SinkError, whether its server is only down (True: the
        stream starts in an outage, reopened as one lost mid-run is, and the run goes on) or the error is the
        caller's (False, or no ``down_at_start``: raised). A stream that starts down is named ``name`` and
        carries what ``stream_type`` (its publisher class) accepts."""
        super().__init__()
        self._open_stream = reopen_stream or open_stream
        self._reachable = reachable
        self._slow = False  # the last attempt waited on the network before it failed
        # the socket check passed and the open after it still waited (the server answers the check, not the stream):
        # the check cannot tell this outage, so reopenings are spaced UNTOLD_REOPEN_EVERY_S apart; when the last one failed
        self._untold: Optional[float] = None
        # a reopening costs a socket connect (see ``reachable``): try every few seconds, so a restarted
        # server gets the stream back at once, not up to 10 s later as a lost source would
        self._policy = policy or Backoff(initial=0.5, maximum=REOPEN_EVERY_S)
        down: Optional[SinkError] = None
        started = time.monotonic()
        try:
            self._current: Optional[LiveSink] = open_stream()
        except SinkError as e:
            if down_at_start is None or name is None or stream_type is None or not down_at_start(e):
                raise
            self._current, down = None, e
            self._slow = time.monotonic() - started > SLOW_OPEN_S  # a host that did not answer: the socket is asked first
        self._name = self._current.name if self._current is not None else name
        live_type = type(self._current) if self._current is not None else stream_type
        self.accepts = self._current.accepts if self._current is not None else live_type.accepts
        self.holds_last = self._current.holds_last if self._current is not None else live_type.holds_last
        # the stream has not connected yet in this run (its server was down at the start): its first connection
        # is "connected", not "reconnected", and counts no reconnection
        self._never_connected = down is not None
        # when the stream went down (monotonic), None while it works: the stats lines say an output is down, and for how long
        self._down_since: Optional[float] = started if down is not None else None
        self._stop = threading.Event()
        self._reopening: Optional[threading.Thread] = None
        self._fresh: Optional[LiveSink] = None  # a reopened stream, handed over at the next picture
        self._handover = threading.Lock()
        self.reconnects = 0
        self._trial = False  # the current stream was reopened and has not worked yet
        self._attempts = 0  # reopenings in a row that did not bring the stream back
        # the outage those reopenings are part of: one that opened and failed before it worked (an RTMP server refusing
        # the stream key) goes on the same outage, so its lines quieten after the first few as a server that is down does
        self._outage = Outage()
        self.skipped = 0  # pictures that found the stream down
        self.sent = 0  # pictures handed to a connection, over the whole run
        self.taken = False  # a connection has worked (for RTMP: its server took the stream) at some point
        self.last_error: Optional[str] = None  # why the stream last failed
        self.end_error: Optional[str] = None  # why its end failed, where a closed stream says so (RTMP's child exit status)
        self.behind = 0  # pictures skipped because the stream's thread had not sent the ones before
        self._pending: Deque[tuple[np.ndarray, float]] = collections.deque()
        self._wake = threading.Condition()
        self._draining = False  # close(): send what waits, then stop
        self._error: Optional[BaseException] = None  # the sending thread's failure, raised at the next picture
        self._sender = threading.Thread(target=in_caller_context(self._run), name=f"birefvid-stream {self._name}", daemon=True)
        try:
            self._sender.start()
        except BaseException:  # Ctrl-C or SIGTERM in start(): the stream just opened (an ffmpeg child) would stay open
            with self._wake:
                self._stop.set()
                self._wake.notify_all()
            if self._current is not None:
                self._current.abort()
            raise
        if down is not None:
            self.last_error = str(down)
            self._trial = True  # what connects first is on trial, as a reopened stream is: an RTMP server may refuse it yet
            log.warning("%s; the run goes on without this output and connects it once it answers (trying every %g s at most)",
                        down, REOPEN_EVERY_S)  # fmt: skip
            self._reopen(str(down), what=f"connecting {self._name}")

    @property
    def name(self) -> str:
        return self._name

    def _send(self, picture: np.ndarray, t: float) -> None:
        """Queue the picture for the stream's thread; never waits on the network."""
        self._raise_error()
        with self._wake:
            if len(self._pending) >= QUEUE_PICTURES:
                self._pending.popleft()
                self.behind += 1
                if self.behind == 1:
                    log.warning("%s: the receiver is not taking the stream (stalled?); skipping pictures for it while the other outputs go on", self._name)
            self._pending.append((picture, t))
            self._wake.notify()

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self) -> None:
        """The stream's thread: send queued pictures in order until closed (after the queue) or aborted."""
        while True:
            with self._wake:
                while not self._pending and not self._draining and not self._stop.is_set():
                    self._wake.wait()
                if self._stop.is_set() or not self._pending:
                    return
                picture, t = self._pending.popleft()
            try:
                self._deliver(picture, t)
            except BaseException as e:  # noqa: BLE001 - raised on the runner's thread at the next picture or close
                self._error = e
                return

    def _deliver(self, picture: np.ndarray, t: float) -> None:
        with self._handover:
            if self._fresh is not None:
                self._current, self._fresh = self._fresh, None
                self._trial = True
        if self._current is None:
            self.skipped += 1
            return
        try:
            self._current.send(picture, t)
        except SinkError as e:
            broken, self._current = self._current, None
            if self._down_since is None:
                self._down_since = time.monotonic()
            broken.abort()
            self.skipped += 1
            self.last_error = str(e)
            if not self._trial:  # a working stream broke; a reopened one that never worked is only another attempt
                self._attempts = 0
                self._outage = Outage()
                log.warning("%s: %s; the other outputs go on while it reconnects", self._name, e)
            self._reopen(str(e))
            return
        self.sent += 1
        if not self.taken and getattr(self._current, "confirmed", True):
            self.taken = True
        if self._trial and getattr(self._current, "confirmed", True):
            self._trial = False
            self._down_since = None
            if self._never_connected:  # its server was down when the run started: this is its first connection
                self._never_connected = False
                tries = self._attempts  # the first connection failed, then each reopening before this one
                log.warning("%s: connected after %d failed tr%s (%d pictures skipped meanwhile)", self._name, tries,
                            "y" if tries == 1 else "ies", self.skipped)  # fmt: skip
            else:
                self.reconnects += 1
                log.warning("%s: reconnected after %d skipped pictures", self._name, self.skipped)
            self._attempts = 0
            self.skipped = 0

    @property
    def down_for(self) -> Optional[float]:
        """Seconds since the stream went down (or since the run started, for a server down then); None while it works."""
        since = self._down_since
        return None if since is None else time.monotonic() - since

    def summary(self) -> dict[str, object]:
        """What the run report says of this stream: pictures sent, reconnections, and whether it ever worked (and why not)."""
        return {"sink": self._name, "pictures_sent": self.sent, "reconnects": self.reconnects, "taken": self.taken,
                "skipped_behind": self.behind, "last_error": self.last_error, "end_error": self.end_error}  # fmt: skip

    def _reopen(self, reason: str, what: Optional[str] = None) -> None:
        retries_done, outage = self._attempts, self._outage
        what = what or f"{'connecting' if self._never_connected else 'reconnecting'} {self._name}"

        def reopen() -> None:
            try:
                sink = retry(self._attempt, self._policy, self._stop, what=what, first_failure=reason,
                             reason_of=str, retriable=lambda e: isinstance(e, SinkError), retries_done=retries_done, outage=outage,
                             not_before=self._untold_wait)  # fmt: skip
            except Exception as e:  # noqa: BLE001 - a stream that cannot come back must not end the run
                log.warning("%s: gave up reconnecting (%s); the other outputs go on", self._name, e)
                return
            if sink is None:
                return
            with self._handover:
                if self._stop.is_set():
                    sink.abort()
                else:
                    self._fresh = sink

        self._reopening = threading.Thread(target=in_caller_context(reopen), name=f"birefvid-republish {self._name}", daemon=True)
        self._reopening.start()

    def _untold_wait(self) -> float:
        """Seconds until the next reopening may try a server that answers the check but does not take the stream (0 when
        none is pending): the retry line says this wait, which ``_try_open`` would otherwise make after the line's."""
        if self._untold is None or self._reachable is None or not self._slow:
            return 0.0
        return max(0.0, self._untold + UNTOLD_REOPEN_EVERY_S - time.monotonic())

    def _attempt(self) -> LiveSink:
        self._attempts += 1
        try:
            return self._try_open()
        except SinkError as e:  # the report's last error is the last try's: a server down at the start that came up
            if not isinstance(e, _EndedMeanwhile):  # refusing the stream said "Connection refused" to the end
                self.last_error = str(e)
            raise

    def _try_open(self) -> LiveSink:
        # only after an attempt that waited (a host that does not answer) is the socket asked first:
        # a refused connection fails at once anyway, and a player or ffmpeg listening for a single
        # connection would take the check's connection for the stream and hang up
        checked = False
        if self._reachable is not None and self._slow:
            if self._untold is not None:  # waited here, on this thread, without Python's lock; a stop ends the wait
                self._stop.wait(self._untold + UNTOLD_REOPEN_EVERY_S - time.monotonic())
                if self._stop.is_set():
                    raise _EndedMeanwhile(f"{self._name}: the run ended before the next reopening")
            asked = time.monotonic()
            try:
                self._reachable()
            except Unreachable:
                # refused at once: the host answers again, so the next try opens the stream itself (failing as fast while
                # nothing listens). Asked at every try, the check's connection was the first a player started meanwhile
                # took (ffmpeg -listen, OBS's tcp:// source): it took it for the stream, found it empty and quit
                self._slow = time.monotonic() - asked > SLOW_OPEN_S
                self._untold = None  # the check tells this outage: it is asked as often as before
                raise
            except SinkError:
                self._untold = None
                raise
            checked = True
        started = time.monotonic()
        try:
            sink = self._open_stream()
        except SinkError as e:
            waited = time.monotonic() - started
            self._slow = waited > SLOW_OPEN_S
            if self._slow and checked:
                if self._untold is None:
                    log.warning("%s: the server answers but does not take the stream, and each try holds up the run for up to "
                                "%g s: trying every %g s while it does not", self._name, REOPEN_TIMEOUT_S, UNTOLD_REOPEN_EVERY_S)  # fmt: skip
                self._untold = time.monotonic()
                # the publisher's own words ("no RTSP answer (server down, unreachable or silent ...)") were the report's
                # last_error and the retry lines', where the server had just answered the check
                raise SinkError(f"cannot publish to {self._name}: the server answers but did not take the stream within "
                                f"{waited:.1f} s") from e  # fmt: skip
            self._untold = None
            raise
        self._untold = None
        return sink

    def _finish(self, close: bool) -> None:
        with self._wake:
            if close:
                self._draining = True  # what waits is sent first
            else:
                self._stop.set()
            self._wake.notify_all()
        self._sender.join(CLOSE_WAIT_S)
        self._stop.set()
        stuck = self._sender.is_alive()  # inside a write that never returns: its stream cannot be finished
        if stuck:
            log.warning("%s: the receiver took nothing for %g s; the stream is left unfinished", self._name, CLOSE_WAIT_S)
        if self._reopening is not None:
            self._reopening.join(10)
        with self._handover:
            if self._current is not None and self.sent and getattr(self._current, "confirmed", True):
                self.taken = True  # an RTMP server may have said so after the last picture
            # a reopened stream that never worked has nothing to finish (its server may be refusing it)
            finished = None if stuck else self._current
            unfinished = finished if self._trial else None
            sinks = [s for s in (finished, self._fresh) if s is not None and s is not unfinished]
            self._current = self._fresh = None
        if unfinished is not None:
            unfinished.abort()
        for sink in sinks:
            if close:
                sink.close()
                self.end_error = getattr(sink, "problem", None) or self.end_error
            else:
                sink.abort()
        if self.behind:
            log.warning("%s: %d pictures were skipped while the receiver was not taking the stream", self._name, self.behind)
        if close:
            self._raise_error()

    def _close(self) -> None:
        self._finish(close=True)

    def _abort(self) -> None:
        self._finish(close=False)


class _EndedMeanwhile(SinkError):
    """The run ended while a reopening waited its turn: no try was made (the report keeps the last try's error)."""


class Unreachable(SinkError):
    """Nothing takes a TCP connection at a stream's host and port: its server or player is down (or not up yet)."""


def tcp_reachable(url: str, default_port: int, timeout: float = 5.0) -> Callable[[], None]:
    """A ``reachable`` check for ``url``'s host and port (``default_port`` when it names none): a TCP
    connect, waited on without Python's lock; SinkError with the reason when it fails (``Unreachable`` when
    the connection is refused or times out, not when the address itself is wrong)."""

    def check() -> None:  # the URL is read here: the publisher itself says first what is wrong with it
        parts = urlsplit(url)
        try:
            host, port = parts.hostname or "", parts.port or default_port
        except ValueError as e:  # a port that is not a number, or above 65535
            raise SinkError(f"cannot connect to {shown_url(url)}: {e}") from None
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except socket.gaierror as e:  # a name that does not resolve: a wrong address, not a server that is down
            raise SinkError(f"cannot connect to {host}:{port}: unknown host {host!r} ({e.strerror or e})") from None
        except OSError as e:
            raise Unreachable(f"cannot connect to {host}:{port}: {e.strerror or e}") from None

    return check


def rtsp_answers(url: str, default_port: int, timeout: float = 5.0) -> Callable[[], None]:
    """A ``reachable`` check for an RTSP server: an OPTIONS request on a plain socket, which must get an RTSP status
    line back within ``timeout``, all waited on without Python's lock. A server that takes connections and never
    answers (hung, or an RTSP proxy whose upstream is gone) passed the TCP check, and each reopening then waited its
    open timeout inside PyAV holding that lock: the whole run, its recordings included, froze 2 s of every 3-5 s
    (a 28 s run showed 472 pictures of 672, its recording 21 s long). SinkError with the reason when it fails."""
    connect = tcp_reachable(url, default_port, timeout)

    def check() -> None:
        parts = urlsplit(url)
        connect()  # a refused or unanswered connection is said as for any stream (Unreachable)
        host, port = parts.hostname or "", parts.port or default_port
        target = f"rtsp://{host if ':' not in host else f'[{host}]'}:{port}{parts.path or '/'}"
        try:
            with socket.create_connection((host, port), timeout=timeout) as conn:
                conn.sendall(f"OPTIONS {target} RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode())
                answer = conn.recv(64)
        except OSError as e:
            raise SinkError(f"no RTSP answer from {host}:{port} within {timeout:g} s: {e.strerror or e}") from None
        if not answer.startswith(b"RTSP/"):
            raise SinkError(f"no RTSP answer from {host}:{port} within {timeout:g} s" + (" (it answered, but not as an RTSP server)" if answer else ""))

    return check


def server_down(reachable: Callable[[], None]) -> Callable[[SinkError], bool]:
    """A ``down_at_start`` test for a stream whose first connection failed with a SinkError: True when its server
    cannot be reached at all (refused, or no answer to a TCP connect: down or not up yet), so the run goes on and
    connects later; False for a wrong address or a server that is there but refused or did not answer the
    stream, which waiting would not mend. ``reachable`` (a plain socket connect) is asked only when the failure
    was the network's and not a refused connection: ffmpeg listening for one publisher would take the check's
    connection for it."""

    def down(e: SinkError) -> bool:
        import av  # loaded by the publisher that failed already

        if isinstance(e, Unreachable) or isinstance(e.__cause__, ConnectionRefusedError):
            return True
        if not isinstance(e.__cause__, (av.FFmpegError, OSError)):  # the address, the picture kind...: said before any network
            return False
        try:
            reachable()
        except Unreachable:
            return True
        except SinkError:
            return False
        return False

    return down
