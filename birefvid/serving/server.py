"""``CutoutServer``: the listening socket, a thread for each connection up to the cap, and the upload places."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from http.server import ThreadingHTTPServer
from typing import Any, Iterator, Optional

from ..errors import SinkError
from .connections import Overflow
from .handler import CutoutHandler
from .limits import KEEP_ALIVE_S, MAX_BYTES, MAX_CONNECTIONS, MIN_UPLOAD_RATE, READ_TIMEOUT_S, RETRY_AFTER_S, UPLOADS
from .request_error import RequestError
from .routes import PATH
from .service import CutoutService

log = logging.getLogger(__name__)


class CutoutServer(ThreadingHTTPServer):
    """ThreadingHTTPServer on daemon threads, answering with a ``CutoutService`` (IPv6 for a host with a colon); bound at
    once, so a port in use fails before the model loads (``service`` is then set before ``serve_forever``).

    At most ``max_connections`` connections have a thread: each holds one and a file descriptor for as long as it is
    open, and with no cap a few hundred slow or idle clients ran the process out of either, and nobody was answered,
    /health included. Past the cap a connection gets no thread: ``Overflow`` answers it on one thread of its own
    (``GET /health`` as ever, anything else 503 with Retry-After) and closes it."""

    daemon_threads = True
    request_queue_size = 128  # the listen backlog (socketserver's 5 dropped connections arriving together: SYN retries, 1 s each)

    def __init__(self, host: str, port: int, service: Optional[CutoutService], max_bytes: int = MAX_BYTES,
                 uploads: int = UPLOADS, read_timeout: float = READ_TIMEOUT_S,
                 min_upload_rate: float = MIN_UPLOAD_RATE, api_key: Optional[str] = None,
                 max_connections: int = MAX_CONNECTIONS, keep_alive: float = KEEP_ALIVE_S) -> None:  # fmt: skip
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.service = service
        self.max_bytes = max_bytes
        self.uploads = uploads
        self.read_timeout = read_timeout
        self.min_upload_rate = min_upload_rate  # bytes/s; 0: bodies are held to read_timeout alone
        self.api_key = api_key  # what clients must show (see api_key_refusal); None: anyone who reaches it is served
        self.max_connections = max_connections
        self.keep_alive = keep_alive  # seconds a connection may sit idle between requests before it is closed
        self.uploading = 0  # bodies being received now
        self.connections = 0  # connections open, each on its thread
        self._uploading_lock = threading.Lock()
        self._connections_lock = threading.Lock()
        self._overflow = Overflow(self)
        try:
            super().__init__((host, port), CutoutHandler)
        except OSError as e:
            raise SinkError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread for the connection while there are fewer than ``max_connections``; else (or when no thread can be
        started) it goes to the overflow, which answers it without one."""
        with self._connections_lock:
            full = self.connections >= self.max_connections
            if not full:
                self.connections += 1
        if full:
            self._overflow.take(request)
            return
        try:
            super().process_request(request, client_address)
        except RuntimeError:  # "can't start new thread": a container's pids limit, memory for stacks
            self._connection_ended()
            log.warning("no thread for a connection from %s: answered 503", client_address[0])
            self._overflow.take(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connection_ended()

    def _connection_ended(self) -> None:
        with self._connections_lock:
            self.connections -= 1

    def health(self) -> dict[str, Any]:
        """What ``GET /health`` answers: the service's facts, the uploads and the connections, each with its limit."""
        assert self.service is not None
        return {**self.service.health(), "uploading": self.uploading, "uploads": self.uploads,
                "connections": self.connections, "max_connections": self.max_connections}  # fmt: skip

    def server_close(self) -> None:
        self._overflow.close()
        super().server_close()

    def server_bind(self) -> None:  # no reverse DNS lookup of the host name, as HTTPServer's does
        import socketserver

        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up mid-request (a closed tab, a killed curl) is one debug line, not socketserver's
        traceback on stderr; anything else is still the traceback."""
        import sys

        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            log.debug("%s: the client hung up (%s)", client_address[0], error.strerror or error)
            return
        super().handle_error(request, client_address)

    @contextlib.contextmanager
    def upload_slot(self) -> Iterator[None]:
        """One of the ``uploads`` places for a body being received; RequestError 503 (with Retry-After) when all are
        taken. Apart from the model's queue: a slow upload holds one of these, never a place of a picture ready."""
        with self._uploading_lock:
            if self.uploading >= self.uploads:
                raise RequestError(503, f"busy: {self.uploads} uploads are being received (--uploads); retry shortly",
                                   {"Retry-After": str(RETRY_AFTER_S)})  # fmt: skip
            self.uploading += 1
        try:
            yield
        finally:
            with self._uploading_lock:
                self.uploading -= 1

    def url(self) -> str:
        """The address ``/v1/remove`` answers at."""
        host = self.server_name if ":" not in self.server_name else f"[{self.server_name}]"
        return f"http://{host}:{self.server_port}{PATH}"
