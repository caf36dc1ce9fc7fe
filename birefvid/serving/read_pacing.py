"""The pacing of a connection's reads: one deadline for a request head, a minimum rate for a body (slowloris)."""

from __future__ import annotations

import contextlib
import io
import socket
import time
from typing import Any, Iterator, Optional


class HeadTooSlow(Exception):
    """A request line and headers that had begun but had not all come by their deadline (``read_timeout`` seconds).
    Not a TimeoutError, which http.server takes for an idle connection and closes without a word: this one is
    answered 408."""


class UploadTooSlow(TimeoutError):
    """A body that fell behind the server's minimum upload rate, cut off ``elapsed`` seconds after it began."""

    def __init__(self, elapsed: float, min_rate: float) -> None:
        super().__init__(f"the body came slower than {min_rate:,.0f} bytes/s (--min-upload-rate); cut off after {elapsed:.0f} s")


class PacedReads(io.RawIOBase):
    """A connection's reads, each bounded by ``read_timeout`` (the socket's timeout) and, while a body is read
    (``pacing``), by the body's deadline too: after ``started``, the body may take ``read_timeout`` plus one second
    for every ``min_rate`` bytes it has sent (Apache's ``RequestReadTimeout body=30,MinRate=...``). While a request
    head is read (``awaiting_head`` to ``head_done``), its request line and headers must all come by one deadline
    (nginx's ``client_header_timeout``): a client sending a header byte every 29 s held a thread and a connection
    as long as it liked.

    ``read_timeout`` alone bounds each wait, not the whole: a client sending a byte every 29 s (slowloris) held an
    upload place for as long as it liked. A deadline fixed from the Content-Length (``length / min_rate``) would
    still give it 500 s for a declared 25 MB; this one drops it after ``read_timeout`` and some, whatever it
    declares, chunked bodies alike, while a client at ``min_rate`` or faster is never cut off, whatever its pauses
    (its sent bytes are credit). Wraps the raw socket reader under the handler's buffered ``rfile``, so every
    read of the socket (``rfile.read``, ``readline``, chunked framing) is paced, one ``recv`` at a time."""

    def __init__(self, raw: io.RawIOBase, connection: socket.socket, read_timeout: float) -> None:
        super().__init__()
        self._raw = raw
        self._connection = connection
        self._read_timeout = read_timeout
        self._min_rate = 0.0
        self._started: Optional[float] = None
        self._received = 0
        self._last = 0.0  # when the last bytes came, or the body began
        self._head_by: Optional[float] = None  # while a head is awaited: when it must have come whole
        self._idle_until: Optional[float] = None  # before a later request's first byte: when the idle connection closes
        self._head_bytes = 0  # of the head awaited: nothing yet is an idle connection, closed without a word

    def readable(self) -> bool:
        return True

    def awaiting_head(self, head_by: Optional[float], idle_until: Optional[float] = None) -> None:
        """The next reads are a request head's, due whole by ``head_by`` (a connection's first request: from when it was
        accepted); or, with ``idle_until`` (a kept-alive connection's next request), due within ``read_timeout`` of its
        first byte, which must come by ``idle_until``."""
        self._head_by, self._idle_until, self._head_bytes = head_by, idle_until, 0

    def head_done(self) -> None:
        """The head has come: reads are bounded by ``read_timeout`` alone again, and so are the reply's writes."""
        if self._head_by is not None or self._idle_until is not None:
            self._head_by = self._idle_until = None
            with contextlib.suppress(OSError):
                self._connection.settimeout(self._read_timeout)

    def readinto(self, buffer: Any) -> Optional[int]:  # type: ignore[override]
        if self._head_by is not None or self._idle_until is not None:
            return self._head_readinto(buffer)
        if self._started is None:
            return self._raw.readinto(buffer)
        elapsed = time.monotonic() - self._started
        left = self._read_timeout + self._received / self._min_rate - elapsed
        if left <= 0:
            raise UploadTooSlow(elapsed, self._min_rate)
        self._connection.settimeout(min(self._read_timeout, left))
        try:
            count = self._raw.readinto(buffer)
        except TimeoutError:
            now = time.monotonic()
            if now - self._last < self._read_timeout - 0.01:  # bytes came within the idle wait: too few of them
                raise UploadTooSlow(now - self._started, self._min_rate) from None
            raise  # nothing came for read_timeout: the idle refusal, as without a rate
        self._received += count or 0
        self._last = time.monotonic()
        return count

    def _head_readinto(self, buffer: Any) -> Optional[int]:
        """A read of a request head, under its deadline: HeadTooSlow once some of it came but not all in time; a plain
        TimeoutError (http.server's silent close) when none of it came."""
        idle = not self._head_bytes and self._idle_until is not None
        due = self._idle_until if idle else self._head_by
        assert due is not None
        left = due - time.monotonic()
        if left <= 0:
            if self._head_bytes:
                raise HeadTooSlow()
            raise TimeoutError("no request came")
        self._connection.settimeout(min(self._read_timeout, left) if self._head_bytes else left)
        try:
            count = self._raw.readinto(buffer)
        except TimeoutError:
            if self._head_bytes:
                raise HeadTooSlow() from None
            raise
        if count and idle:  # a kept-alive connection's next request has begun: its head is due read_timeout from now
            self._head_by, self._idle_until = time.monotonic() + self._read_timeout, None
        self._head_bytes += count or 0
        return count

    @contextlib.contextmanager
    def pacing(self, min_rate: float) -> Iterator[None]:
        """Reads within the block are a body's, held to ``min_rate`` bytes/s after the grace (0: not held)."""
        if min_rate <= 0:
            yield
            return
        self._min_rate, self._started, self._received = min_rate, time.monotonic(), 0
        self._last = self._started
        try:
            yield
        finally:
            self._started = None
            with contextlib.suppress(OSError):
                self._connection.settimeout(self._read_timeout)  # the reply's writes wait as long as ever

    def close(self) -> None:
        self._raw.close()
        super().close()
