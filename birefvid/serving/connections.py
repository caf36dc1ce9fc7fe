"""The cap on connections: the open-file limit raised to fit it, and one thread answering those past it."""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import threading
import time
from typing import TYPE_CHECKING, Optional
from urllib.parse import urlsplit

from ..errors import ConfigError
from .limits import MAX_CONNECTIONS, REPLY_PIECE, RETRY_AFTER_S
from .routes import HEALTH

if TYPE_CHECKING:
    from .server import CutoutServer

SPARE_FDS = 128  # file descriptors kept beside the connections': the model's files, temporary pictures, the log, the held overflow
OVERFLOW_HELD = 64  # connections past the cap held at once, on one thread, to answer /health or 503; more are closed at once
OVERFLOW_HEAD_S = 2.0  # how long a connection past the cap gets to send its request head (a probe sends it at once)
OVERFLOW_LINGER_S = 2.0  # then how long what it still sends is read and dropped, so it reads its answer, not a reset


class Overflow:
    """Connections past the server's ``max_connections``, answered on one thread with no thread of their own (a thread
    each was what the cap is for). Each gets ``OVERFLOW_HEAD_S`` to send its request head: ``GET /health`` (or HEAD) is
    answered as ever, so a load balancer's probe still sees the server alive while slow clients hold every place;
    anything else, or a head not come in time, gets 503 with Retry-After. Then what it still sends is read and
    dropped for ``OVERFLOW_LINGER_S`` (its answer is read, not lost to a reset) and it is closed. At most
    ``OVERFLOW_HELD`` are held so: a new one pushes out the oldest (its 503 sent at once), as nginx reuses its idle
    keep-alive connections when it has none left, so a flood of connections past the cap cannot keep a probe that
    sends its request at once from being answered."""

    def __init__(self, server: "CutoutServer") -> None:
        self._server = server
        self._lock = threading.Lock()
        self._pending: list[socket.socket] = []
        self.held = 0  # connections taken and not yet closed
        self._closed = False
        self._thread: Optional[threading.Thread] = None
        self._wake: Optional[tuple[socket.socket, socket.socket]] = None  # started with the first overflow, not before

    def take(self, connection: socket.socket) -> None:
        """Answers ``connection`` (and closes it) on the overflow's thread, or at once when the server is closing. When
        the thread is behind by ``OVERFLOW_HELD`` connections (scheduled late on a busy machine), the oldest of them
        makes room, as a held one does: answering the newest at once gave a probe that sent its request at once a 503."""
        with self._lock:
            if self._closed:
                self._answer(connection, b"")
                connection.close()
                return
            if len(self._pending) >= OVERFLOW_HELD:
                self._push_out(self._pending.pop(0))
            if self._thread is None:
                self._wake = socket.socketpair()
                self._thread = threading.Thread(target=self._run, name="birefvid-serve-overflow", daemon=True)
                self._thread.start()
            self.held += 1
            self._pending.append(connection)
            assert self._wake is not None
            with contextlib.suppress(OSError):
                self._wake[1].send(b"x")

    def close(self) -> None:
        """Stops the thread and closes what it held (the server is closing)."""
        with self._lock:
            self._closed = True
            thread, wake = self._thread, self._wake
            if wake is not None:
                with contextlib.suppress(OSError):
                    wake[1].send(b"x")
        if thread is not None:
            thread.join(5)
        if wake is not None:
            for end in wake:
                end.close()

    def _run(self) -> None:
        assert self._wake is not None
        selector = selectors.DefaultSelector()
        selector.register(self._wake[0], selectors.EVENT_READ)
        heads: dict[socket.socket, bytearray] = {}  # a connection whose head is awaited: what came of it
        due: dict[socket.socket, float] = {}  # each connection's deadline: for its head, or for its lingering
        try:
            while not self._closed:
                timeout = max(0.0, min(due.values()) - time.monotonic()) if due else None
                for key, _ in selector.select(timeout):
                    if key.fileobj is self._wake[0]:
                        with contextlib.suppress(OSError):
                            self._wake[0].recv(4096)
                        with self._lock:
                            arrived, self._pending = self._pending, []
                        for connection in arrived:
                            connection.setblocking(False)
                            selector.register(connection, selectors.EVENT_READ)
                            heads[connection], due[connection] = bytearray(), time.monotonic() + OVERFLOW_HEAD_S
                        while len(due) > OVERFLOW_HELD:  # the oldest makes room: told the server is busy, and closed
                            oldest = next(iter(due))  # due keeps the order they came in
                            if oldest in heads:
                                self._answer(oldest, bytes(heads[oldest]))
                            self._drop(selector, heads, due, oldest)
                        continue
                    connection = key.fileobj
                    assert isinstance(connection, socket.socket)
                    try:
                        data = connection.recv(REPLY_PIECE)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    head = heads.get(connection)
                    if not data:  # the client closed: nothing more to answer or drain
                        self._drop(selector, heads, due, connection)
                    elif head is not None:
                        head += data
                        if b"\r\n\r\n" in head or b"\n\n" in head or len(head) > 8192:
                            self._answered(heads, due, connection)
                for connection in [c for c, when in due.items() if when <= time.monotonic()]:
                    if connection in heads:  # no whole head in time: it is told the server is busy all the same
                        self._answered(heads, due, connection)
                    else:
                        self._drop(selector, heads, due, connection)
        finally:
            for connection in list(due):
                self._drop(selector, heads, due, connection)
            with self._lock:
                for connection in self._pending:  # taken as the server closed: never registered
                    connection.close()
                self._pending = []
            selector.close()

    def _push_out(self, connection: socket.socket) -> None:
        """Answers a connection the thread has not yet looked at, from what it has sent so far (a probe's head is
        usually there), and closes it; called with the lock held."""
        head = b""
        with contextlib.suppress(OSError):  # BlockingIOError included: nothing sent yet, the 503
            connection.setblocking(False)
            head = connection.recv(8192)
        self._answer(connection, head)
        connection.close()
        self.held -= 1

    def _answered(self, heads: dict[socket.socket, bytearray], due: dict[socket.socket, float], connection: socket.socket) -> None:
        """Sends the answer to the head that came, ends the reply (FIN), and lingers to read what still comes."""
        self._answer(connection, bytes(heads.pop(connection)))
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_WR)
        due[connection] = time.monotonic() + OVERFLOW_LINGER_S

    def _drop(self, selector: selectors.BaseSelector, heads: dict[socket.socket, bytearray], due: dict[socket.socket, float],
              connection: socket.socket) -> None:  # fmt: skip
        selector.unregister(connection)
        heads.pop(connection, None)
        due.pop(connection, None)
        connection.close()
        with self._lock:
            self.held -= 1

    def _answer(self, connection: socket.socket, head: bytes) -> None:
        """``GET /health``'s answer to a head asking for it, else the 503; sent without waiting (a few hundred bytes into
        an empty socket buffer), or not at all."""
        method, _, rest = head.partition(b"\n")[0].decode("latin-1").strip().partition(" ")
        path = urlsplit(rest.rpartition(" ")[0] or rest).path.rstrip("/")
        if method in ("GET", "HEAD") and path == HEALTH and self._server.service is not None:
            status, body, extra = "200 OK", json.dumps(self._server.health()).encode() + b"\n", ""
        else:
            text = f"busy: {self._server.max_connections} connections are open (--max-connections); retry shortly"
            status, body = "503 Service Unavailable", json.dumps({"error": text}).encode() + b"\n"
            extra = f"Retry-After: {RETRY_AFTER_S}\r\n"
        reply = (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}"
                 "Connection: close\r\n\r\n").encode() + (body if method != "HEAD" else b"")  # fmt: skip
        with contextlib.suppress(OSError):
            connection.setblocking(False)
            connection.send(reply)


def connection_cap(requested: Optional[int]) -> int:
    """The number of connections the server may hold (``--max-connections``; None: ``MAX_CONNECTIONS``), with the
    process's limit on open files (``ulimit -n``) raised to fit them where its hard limit allows, as nginx's
    ``worker_rlimit_nofile`` does. ConfigError, one line, for a cap that cannot fit; the default is lowered to fit."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to fit
        return MAX_CONNECTIONS if requested is None else requested
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = hard if hard != resource.RLIM_INFINITY else 1 << 20
    cap = min(MAX_CONNECTIONS, ceiling - SPARE_FDS) if requested is None else requested
    needed = cap + SPARE_FDS
    if cap < 1 or needed > ceiling:
        raise ConfigError(f"--max-connections {cap} needs {needed} open files, more than this process may have "
                          f"({ceiling}, ulimit -Hn): lower it, or raise the limit")  # fmt: skip
    if soft != resource.RLIM_INFINITY and soft < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        except (ValueError, OSError) as e:
            raise ConfigError(f"--max-connections {cap} needs {needed} open files, and the limit of {soft} (ulimit -n) "
                              f"cannot be raised: {e}") from None  # fmt: skip
    return cap
