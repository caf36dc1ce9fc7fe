"""The HTTP handler: one connection's requests routed, bodies read in an upload place, refusals as one JSON line."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import socket
import time
from email.errors import MissingHeaderBodySeparatorDefect
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Optional
from urllib.parse import urlsplit

from .api_keys import api_key_refusal
from .chunked import read_chunked
from .limits import REPLY_PIECE
from .multipart import multipart_file
from .read_pacing import HeadTooSlow, PacedReads, UploadTooSlow
from .request_error import RequestError
from .routes import HEALTH, PATH

if TYPE_CHECKING:
    from .server import CutoutServer

log = logging.getLogger(__name__)

LINGER_S = 5.0  # after refusing a body unread, how long its bytes are read and dropped so the client sees the refusal


def _header_line_shown(line: str) -> str:
    """A malformed header line as a refusal names it: its name (what comes before the colon) alone, the value left
    out, as it may be the client's key (``Authorization : Bearer KEY``), which the reply and the -v log would keep."""
    name, colon, _ = line.partition(":")
    return f"{name[:64]!r} (its value not repeated)" if colon else f"a line of {len(line)} characters with no colon"


class CutoutHandler(BaseHTTPRequestHandler):
    server: "CutoutServer"  # its service is set before it serves
    protocol_version = "HTTP/1.1"
    _unread = False  # the request's body is still in the connection
    _linger = False  # a refusal left the body unread: read and drop it before closing (see finish)
    _continued = False  # "100 Continue" sent (or not needed): the client is sending its body
    rbufsize = 0  # setup buffers the raw socket reader itself, around PacedReads

    def setup(self) -> None:
        """The connection's socket timeout is the server's read timeout: each wait for a client's bytes (its request
        line, headers, each piece of its body) ends after it, and so does each wait to send a piece of the reply. A body
        is read under a deadline too (see ``PacedReads``)."""
        self.timeout = self.server.read_timeout
        super().setup()
        self._paced = PacedReads(self.rfile, self.connection, self.server.read_timeout)
        self.rfile = io.BufferedReader(self._paced)
        self._accepted = time.monotonic()
        self._requests = 0

    def handle_one_request(self) -> None:
        """http.server's, with the request head under a deadline (see ``PacedReads``): the first request's head must come
        whole within --read-timeout of the connection; a later one's first byte within --keep-alive of the last reply (an
        idle connection is then closed without a word, as http.server closed it, then after --read-timeout), and its
        head within --read-timeout of that byte. A head begun but not finished in time gets 408 and the connection closes."""
        if self._requests:
            self._paced.awaiting_head(None, idle_until=time.monotonic() + self.server.keep_alive)
        else:
            self._paced.awaiting_head(self._accepted + self.server.read_timeout)
        self._requests += 1
        self.command, self.requestline, self.request_version = "", "", "HTTP/1.1"  # until this request's line is read
        try:
            super().handle_one_request()
        except HeadTooSlow:
            self.close_connection, self._unread = True, False  # what it sent was read: nothing to linger for
            self.log_error("code 408, a request head still coming after %g s", self.server.read_timeout)
            text = f"the request line and headers did not all come within {self.server.read_timeout:g} s (--read-timeout)"
            with contextlib.suppress(OSError):  # the client may be gone
                self._reply(408, "application/json", json.dumps({"error": text}).encode() + b"\n")
        finally:
            self._paced.head_done()

    def handle_expect_100(self) -> bool:
        """``Expect: 100-continue`` (curl's for a body over 1 MiB) is answered only once the body is wanted (see
        ``_continue``): a body over --max-bytes, a busy server, a wrong path is refused before the client sends it,
        where http.server said "continue" at once and the whole picture was sent to be refused."""
        self._continued = False
        return True

    def parse_request(self) -> bool:
        """http.server's parsing, and a refusal of a header block it did not read whole: its parser stops at a line that
        is no "name: value" (a space before the colon, a control character in the name) and drops that line and every
        one after it, a Content-Length among them, so the body would be read as the next request where a proxy that
        kept the line sent it as a body (request smuggling). RFC 9112 5.1: 400."""
        parsed = super().parse_request()
        self._paced.head_done()  # the headers are read (or refused): the body and the reply have their own bounds
        if not parsed:
            return False
        # that defect alone: a multipart Content-Type adds others, for the form's parts it cannot see in a header block
        if any(isinstance(defect, MissingHeaderBodySeparatorDefect) for defect in self.headers.defects):
            line = str(self.headers.get_payload()).split("\r\n", 1)[0].split("\n", 1)[0]
            self.send_error(400, f"a header line that is no header (name: value): {_header_line_shown(line)}")
            return False
        return True

    def _continue(self) -> None:
        """Tells a client waiting on ``Expect: 100-continue`` to send its body now."""
        if not self._continued and self.headers.get("Expect", "").lower() == "100-continue" and self.request_version >= "HTTP/1.1":
            self.send_response_only(100)
            self.end_headers()
        self._continued = True

    def finish(self) -> None:
        """After a refusal that left the body unread, the client's bytes are read and dropped for a while (as nginx's
        lingering close) before the connection closes: closing on unread bytes sends a reset, and a client still
        sending its body (http.client, urllib, requests, a browser) saw "broken pipe" or "connection reset" instead
        of the 413 or 503 it was sent."""
        super().finish()
        if self._linger:
            _drain(self.connection, LINGER_S)

    def do_GET(self) -> None:
        self._route("GET")

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        self._unread = self.headers.get("Content-Length", "0") not in ("0", "") or bool(self.headers.get("Transfer-Encoding"))
        allowed = {PATH: "POST", HEALTH: "GET, HEAD"}.get(url.path.rstrip("/") or "/")
        try:
            if self.server.api_key is not None and url.path.rstrip("/") != HEALTH:  # /health stays open to probes
                # before anything else: a client without the key learns no path, and sends no body (no 100 Continue)
                refusal = api_key_refusal(self.server.api_key, self.headers.get_all("Authorization") or [],
                                          self.headers.get_all("X-API-Key") or [])  # fmt: skip
                if refusal is not None:
                    raise refusal
            if allowed is None:
                raise RequestError(404, f"no such path {url.path}; POST pictures to {PATH}, GET {HEALTH}")
            if method not in allowed.split(", "):
                raise RequestError(405, f"{method} {url.path}: use {allowed}", {"Allow": allowed})
            if url.path.rstrip("/") == HEALTH:
                self._reply(200, "application/json", json.dumps(self.server.health()).encode() + b"\n")
                return
            self._remove(url.query)
        except RequestError as e:
            self._reply(e.status, "application/json", json.dumps({"error": str(e)}).encode() + b"\n", e.headers)
        except UploadTooSlow as e:  # still sending, slowly: it lingers to read the 408, its upload place already free
            self.close_connection = True
            self._reply(408, "application/json", json.dumps({"error": str(e)}).encode() + b"\n")
        except TimeoutError:  # a client that stopped sending mid-body: its upload place is free again
            self.close_connection, self._unread = True, False  # nothing to linger for: it sends nothing
            text = f"nothing of the body came for {self.server.read_timeout:g} s (--read-timeout)"
            self._reply(408, "application/json", json.dumps({"error": text}).encode() + b"\n")
        except Exception:  # a bug: said as one line to the client, the traceback in the server's log
            log.exception("%s %s failed", method, self.path)
            self._reply(500, "application/json", b'{"error": "internal error; see the server\'s log"}\n')

    def _remove(self, query: str) -> None:
        body = self._read_body()
        with self.server.service.admitted_slot():  # a place in the queue once the picture is here, not while it comes
            content_type = self.headers.get("Content-Type", "")
            if content_type.lower().startswith("multipart/form-data"):
                body = multipart_file(content_type, body)
            picture, kind = self.server.service.cut_out(body, query)
            self._reply(200, kind, picture)  # in the slot: a stop waits for the reply to be sent, not only cut out

    def _read_body(self) -> bytes:
        """The request's body, read whole in one of the server's upload places: by its Content-Length, or chunked.
        RequestError 413 for a body over --max-bytes (from its Content-Length, before a byte is read), 503 when every
        upload place is taken, 400 for a malformed length or framing, 501 for a transfer coding other than chunked."""
        coding = ", ".join(self.headers.get_all("Transfer-Encoding") or []).strip().lower()
        lengths = self.headers.get_all("Content-Length") or []
        if coding and lengths:  # which one ends the body is where a proxy and a server can disagree (request smuggling)
            self.close_connection = True
            raise RequestError(400, "both Transfer-Encoding and Content-Length: send one")
        if coding:
            if coding != "chunked":
                self.close_connection = True
                raise RequestError(501, f"Transfer-Encoding {coding!r} is not read; send the picture as is, or chunked")
            with self.server.upload_slot(), self._paced.pacing(self.server.min_upload_rate):
                self._continue()
                try:
                    body = read_chunked(self.rfile, self.server.max_bytes)
                except RequestError:
                    self.close_connection = True  # the rest of the body is still in the connection
                    raise
            self._unread = False
            return body
        if len(set(lengths)) > 1:
            self.close_connection = True
            raise RequestError(400, f"Content-Lengths {', '.join(lengths)} disagree")
        length_text = lengths[0] if lengths else "0"  # none and not chunked: no body (HTTP/1.1)
        if not (length_text.isascii() and length_text.isdigit()):  # int() takes "-1" (read to the end, past --max-bytes), "1_0", " 5"
            self.close_connection = True
            raise RequestError(400, f"Content-Length {length_text!r} is not a number of bytes")
        length = int(length_text)
        if length > self.server.max_bytes:  # before reading: the body is never taken in
            self.close_connection = True
            raise RequestError(413, f"the body is {length:,} bytes, more than the server's {self.server.max_bytes:,} (--max-bytes)")
        if not length:
            return b""
        with self.server.upload_slot(), self._paced.pacing(self.server.min_upload_rate):
            self._continue()
            body = self.rfile.read(length)
        self._unread = False
        if len(body) < length:
            self.close_connection = True
            raise RequestError(400, f"the body ended after {len(body)} of {length} bytes")
        return body

    def _reply(self, code: int, content_type: str, body: bytes, headers: Optional[dict[str, str]] = None) -> None:
        """Send ``body`` with its headers; to a HEAD, the headers alone, whatever the status (a body there would be read as
        the next reply on a kept-alive connection)."""
        if self._unread:  # a body left unread (refused before it): its bytes must not be read as the next request
            self.close_connection = True
            self._linger = True  # even one never told to continue may send its body anyway (RFC 9110 10.1.1)
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            try:
                for start in range(0, len(body), REPLY_PIECE):  # sendall's timeout is for all it sends: a long reply
                    self.wfile.write(body[start : start + REPLY_PIECE])  # to a slow phone was cut off after it
            except OSError:  # the client hung up, or read nothing for --read-timeout: nothing more to say on this connection,
                self.close_connection = True  # whose next bytes would be read as the rest of this cut-off body

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """http.server's own refusals (a request line over 64 KiB, over 100 headers, a method such as OPTIONS, bad
        syntax) as one JSON line too, where they were an HTML page; the connection then closes, as http.server's does,
        lingering as after our own refusals (see ``finish``)."""
        self.log_error("code %d, message %s", code, message)
        self.close_connection = True
        self._linger = True  # a body may follow what was refused, unread (its headers may not even have been parsed)
        text = message or self.responses.get(code, ("error",))[0]
        with contextlib.suppress(OSError):  # the client may already be gone
            self._reply(code, "application/json", json.dumps({"error": text}).encode() + b"\n")

    def log_message(self, format: str, *args: object) -> None:
        """Each request at -v, its control characters escaped as http.server's own log does (a request line's ESC or
        BEL would reach the terminal: clear it, retitle it, hide lines)."""
        log.info("%s %s", self.address_string(), (format % args).translate(getattr(self, "_control_char_table", {})))  # the table is in http.server from 3.11.1


def _drain(connection: socket.socket, seconds: float) -> None:
    """Ends the reply (FIN) and reads and drops what the client still sends, until it closes or ``seconds`` pass."""
    import time

    deadline = time.monotonic() + seconds
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_WR)
        while (left := deadline - time.monotonic()) > 0:
            connection.settimeout(left)
            if not connection.recv(REPLY_PIECE):
                return
