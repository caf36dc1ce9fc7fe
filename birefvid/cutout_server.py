"""``birefvid serve``'s HTTP server: the model loaded once, each picture POSTed to ``/v1/remove`` cut out by the
``image`` command's own code (so a reply equals ``birefvid image``'s file), one at a time, a few more waiting.

Standard library only (``http.server``, as the live preview's): ``POST /v1/remove`` takes the picture as the raw
body or as a multipart field ``file``, query options named as ``birefvid image``'s flags (``output``, ``format``,
``background``, ...); ``GET /health`` says the server is ready and which model it runs. With an API key (see
``api_key``), every request but ``/health`` must show it (``api_key_refusal``), or gets 401 before its body is read.
Every refusal is a 4xx or 503 with a one-line JSON body ``{"error": "..."}``.

A body is read whole (with a ``Content-Length`` or chunked) before its request takes a place in the model's queue:
the queue is for pictures ready to cut out, so slow uploads (a phone on a bad network) never hold it. Bodies being
read are bounded apart, by ``uploads`` at a time; a client that stops sending is dropped after ``read_timeout``, and
one that sends too slowly (a byte now and then: slowloris) once its body is behind ``min_upload_rate`` (see ``_PacedReads``).
A request head must come whole within ``read_timeout``, an idle kept-alive connection is closed after ``keep_alive``, and
at most ``max_connections`` connections have a thread: past it ``_Overflow`` answers ``/health``, or 503, without one.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hmac
import io
import json
import logging
import os
import re
import selectors
import socket
import tempfile
import threading
import time
from email.errors import MissingHeaderBodySeparatorDefect
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional
from urllib.parse import parse_qsl, urlsplit

from .errors import BirefvidError, ConfigError, SinkError, cli_naming
from .extensions import PILLOW_SUFFIXES as INPUT_SUFFIXES

log = logging.getLogger(__name__)

MAX_BYTES = 25 * 1024 * 1024  # a 50 MP JPEG is ~20 MB
MAX_PIXELS = 64_000_000  # a 45 MP camera's photo fits; a decompression bomb (a tiny PNG of gigapixels) does not
QUEUE = 4  # requests waiting while one is cut out; more get 503
UPLOADS = 8  # bodies being received at once; more get 503. Memory for bodies: (UPLOADS + 1 + QUEUE) x MAX_BYTES at most
READ_TIMEOUT_S = 30.0  # the longest a client may send nothing mid-body (nginx's client_body_timeout), and take over a request head (client_header_timeout)
MIN_UPLOAD_RATE = 50 * 1024  # bytes/s a body must keep up, after a grace of READ_TIMEOUT_S (Apache's RequestReadTimeout MinRate)
KEEP_ALIVE_S = 5.0  # the longest a connection may sit idle between requests (Apache's KeepAliveTimeout, uvicorn's, Node's)
MAX_CONNECTIONS = 256  # connections served at once, a thread each (gunicorn's worker_connections is 1000, on an event loop)
SPARE_FDS = 128  # file descriptors kept beside the connections': the model's files, temporary pictures, the log, the held overflow
OVERFLOW_HELD = 64  # connections past the cap held at once, on one thread, to answer /health or 503; more are closed at once
OVERFLOW_HEAD_S = 2.0  # how long a connection past the cap gets to send its request head (a probe sends it at once)
OVERFLOW_LINGER_S = 2.0  # then how long what it still sends is read and dropped, so it reads its answer, not a reset
RETRY_AFTER_S = 2
MAX_CHUNK_LINE = 1024  # a chunk-size line or a trailer line; http.client, curl and nginx send a few bytes
MAX_TRAILERS = 32
LINGER_S = 5.0  # after refusing a body unread, how long its bytes are read and dropped so the client sees the refusal
REPLY_PIECE = 256 * 1024  # a reply is sent in pieces: the socket timeout bounds each piece's wait, not the whole reply
PATH = "/v1/remove"
HEALTH = "/health"
API_KEY_ENV = "BIREFVID_API_KEY"
# RFC 6750's b64token (what a Bearer header carries as it is): secrets.token_urlsafe, openssl rand -hex or -base64;
# 16 or more, as nothing limits how fast a client on the network may guess
_API_KEY_FORM = re.compile(r"[A-Za-z0-9._~+/-]{16,256}=*")
_API_KEY_HINT = "16 to 256 letters, digits or . _ ~ + / - (make one: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
_REALM = 'Bearer realm="birefvid serve"'
# the query's output names: the image command's, and process's "alpha" for its "rgba"
OUTPUT_NAMES = {"rgba": "rgba", "alpha": "rgba", "mask": "mask", "foreground": "foreground", "green": "green", "composite": "composite", "blur": "blur",
                "overlay": "overlay"}  # fmt: skip
FORMATS = {"png": ".png", "webp": ".webp", "jpeg": ".jpg", "jpg": ".jpg", "tif": ".tif", "tiff": ".tif"}
CONTENT_TYPES = {".png": "image/png", ".webp": "image/webp", ".jpg": "image/jpeg", ".tif": "image/tiff"}
# query options passed on to the image command as --NAME=VALUE; switches as --NAME (value 1/true/yes, or empty)
VALUED = ("background", "key-color", "blur-sigma", "overlay-color", "overlay-opacity", "max-size", "quality", "min-area", "threshold", "grow", "shrink", "feather", "upsample", "bit-depth")
SWITCHES = ("square", "srgb", "no-exif", "no-foreground", "invert")
_TRUE, _FALSE = {"", "1", "true", "yes", "on"}, {"0", "false", "no", "off"}
# the model options `serve` takes once for every request (add_model_options' fields)
MODEL_FIELDS = ("model", "weights", "backbone", "resolution", "keep_aspect", "device", "precision", "backend")
# Pillow's own pixel limit is a global that picture_suffix lifts for a moment: one request at a time, or two
# overlapping requests could restore it in the wrong order and leave it lifted for the decoding that follows
_PILLOW_LIMIT = threading.Lock()


class RequestError(Exception):
    """A request refused: its HTTP status and a one-line reason (``headers``: e.g. Retry-After)."""

    def __init__(self, status: int, message: str, headers: Optional[dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class _OptionParser(argparse.ArgumentParser):
    """The image command's parser, refusing with a RequestError instead of exiting the server."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise RequestError(400, message)


def image_argv(query: str) -> tuple[list[str], str]:
    """The ``birefvid image`` flags a query asks for, and the output's suffix (``format``, default .png);
    RequestError 400 for an unknown or repeated option, a bad switch value, or a background that is no colour."""
    from .colors import is_color

    argv: list[str] = []
    suffix = ".png"
    seen: set[str] = set()
    for raw, value in parse_qsl(query, keep_blank_values=True):
        name = raw.replace("_", "-")
        if name in seen:
            raise RequestError(400, f"{name} given twice")
        seen.add(name)
        if name == "output":
            if value not in OUTPUT_NAMES:
                raise RequestError(400, f"output={value}: expected one of {', '.join(OUTPUT_NAMES)}")
            argv.append(f"--output={OUTPUT_NAMES[value]}")
        elif name == "format":
            if value.lower() not in FORMATS:
                raise RequestError(400, f"format={value}: expected one of {', '.join(FORMATS)}")
            suffix = FORMATS[value.lower()]
        elif name in VALUED:
            if name == "background" and not is_color(value):  # a path would read the server's own files
                raise RequestError(400, f"background={value}: expected a colour (#rrggbb, a name such as white, or r,g,b)")
            argv.append(f"--{name}={value}")
        elif name in SWITCHES:
            if value.lower() not in _TRUE | _FALSE:
                raise RequestError(400, f"{name}={value}: expected 1 or 0 (true or false)")
            if value.lower() in _TRUE:
                argv.append(f"--{name}")
        else:
            known = ", ".join(("output", "format", *VALUED, *SWITCHES))
            raise RequestError(400, f"unknown option {raw!r}; expected {known}")
    if suffix == ".jpg" and not any(a.startswith("--output=") and a != "--output=rgba" for a in argv):  # said in the query's words
        raise RequestError(400, "format=jpeg has no transparency: ask for format=png or webp, or an opaque output "
                                "(mask, foreground, green, composite, blur, overlay)")  # fmt: skip
    return argv, suffix


def picture_suffix(body: bytes, max_pixels: int) -> str:
    """The file suffix the picture in ``body`` is read under, from its header (nothing decoded); RequestError 415
    when it is not a picture the image command reads, 413 when it has more than ``max_pixels`` pixels."""
    from PIL import Image, UnidentifiedImageError

    from .io import heif

    heif.available()  # registers pillow-heif's opener where installed, so HEIC is told apart too
    with _PILLOW_LIMIT:
        limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # our own limit below, with a plain reply, instead of Pillow's warning or error
        try:
            with Image.open(io.BytesIO(body)) as im:
                kind, (width, height) = im.format, im.size
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            raise RequestError(415, "the body is not a picture (PNG, JPEG, WebP, TIFF, BMP, GIF, AVIF or HEIC)") from None
        finally:
            Image.MAX_IMAGE_PIXELS = limit
    if kind not in INPUT_SUFFIXES:
        raise RequestError(415, f"{kind} pictures are not read; send PNG, JPEG, WebP, TIFF, BMP, GIF, AVIF or HEIC")
    if width * height > max_pixels:
        raise RequestError(413, f"the picture is {width}x{height} pixels, more than the server's {max_pixels:,} (--max-pixels)")
    return INPUT_SUFFIXES[kind]


def multipart_file(content_type: str, body: bytes) -> bytes:
    """The ``file`` field of a multipart/form-data body (what ``curl -F file=@photo.jpg`` and a browser's ``FormData``
    send). The parts are found by their boundary and the field's bytes sliced out; only the part headers go through
    ``email``, whose whole-message parser took 1.2 s and 213 MiB of memory for a 20 MB photo (the memory a request
    is allowed is about its body's)."""
    params = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n", headersonly=True)
    boundary = params.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise RequestError(400, "a multipart/form-data body without a boundary in its Content-Type")
    dash = b"--" + boundary.encode("latin-1")
    if body.startswith(dash):
        start = len(dash)
    elif (at := body.find(b"\n" + dash)) >= 0:  # after a preamble
        start = at + 1 + len(dash)
    else:
        raise RequestError(400, "a multipart/form-data body without parts; send the picture as a field named file")
    # the body's line break, as its first delimiter line ends: CRLF as RFC 7578 says (browsers, curl, requests), or the
    # bare LF of a form written by Python's email package or by hand (email's parser, which served before, read both)
    eol = b"\n" if body[start:].lstrip(b" \t").startswith(b"\n") else b"\r\n"
    delimiter = eol + dash  # between parts
    while True:
        if body[start : start + 2] == b"--":  # the closing delimiter
            break
        headers_end = body.find(eol + eol, start)
        end = body.find(delimiter, start)
        if headers_end < 0 or end < 0 or headers_end > end:
            raise RequestError(400, "the multipart/form-data body ended inside a part (no closing boundary)")
        head = body[start:headers_end].lstrip(b" \t").removeprefix(eol)  # after the delimiter: padding, its line break
        part = BytesParser(policy=HTTP).parsebytes(head + eol + eol, headersonly=True)
        if part.get_param("name", header="content-disposition") == "file":
            payload = body[headers_end + 2 * len(eol) : end]
            return _decoded(payload, str(part.get("Content-Transfer-Encoding", "")).strip().lower())
        start = end + len(delimiter)
    raise RequestError(400, "no field named file in the multipart/form-data body (curl -F file=@photo.jpg)")


def _decoded(payload: bytes, encoding: str) -> bytes:
    """A part's bytes as sent: as they are (browsers, curl, requests), or base64 / quoted-printable (RFC 2046 mail)."""
    import base64
    import binascii
    import quopri

    try:
        if encoding == "base64":
            return base64.b64decode(payload)
        if encoding == "quoted-printable":
            return quopri.decodestring(payload)
    except (binascii.Error, ValueError):
        raise RequestError(400, f"the field file is not valid {encoding}") from None
    return payload


def read_chunked(rfile: Any, max_bytes: int) -> bytes:
    """The body of a ``Transfer-Encoding: chunked`` request read from ``rfile`` (what ``requests`` sends for a generator,
    ``urllib`` for a file of unknown size, nginx with ``proxy_request_buffering off``); RequestError 413 as soon as the
    chunks announced pass ``max_bytes`` (before the chunk that would pass it is read), 400 for a malformed or cut-off
    body. Strict about the framing (hex digits, CRLF): a proxy and this server must agree on where a body ends."""
    body = bytearray()
    while True:
        size_text = _chunk_line(rfile).split(b";", 1)[0].rstrip(b" \t")  # a chunk extension after ";" is ignored
        if not size_text or len(size_text) > 16 or any(c not in b"0123456789abcdefABCDEF" for c in size_text):
            raise RequestError(400, f"a chunk size {size_text[:32].decode('latin-1')!r} is not hex digits")
        size = int(size_text, 16)
        if size == 0:
            break
        if len(body) + size > max_bytes:
            raise RequestError(413, f"the chunked body passes the server's {max_bytes:,} bytes (--max-bytes)")
        data = rfile.read(size)
        if len(data) < size:
            raise RequestError(400, f"the chunked body ended inside a chunk, after {len(body) + len(data):,} bytes")
        body += data
        if _chunk_line(rfile) != b"":
            raise RequestError(400, "a chunk is longer than its size says")
    for _ in range(MAX_TRAILERS):  # trailer fields, if any, until the blank line; none is used
        if _chunk_line(rfile) == b"":
            return bytes(body)
    raise RequestError(400, f"more than {MAX_TRAILERS} trailer lines after the chunked body")


def _chunk_line(rfile: Any) -> bytes:
    """One CRLF-ended line of a chunked body, without its CRLF; RequestError 400 for a line too long or cut off."""
    line = rfile.readline(MAX_CHUNK_LINE + 2)
    if not line.endswith(b"\r\n"):
        if len(line) > MAX_CHUNK_LINE:
            raise RequestError(400, f"a line of the chunked body is over {MAX_CHUNK_LINE} bytes")
        raise RequestError(400, "the chunked body ended early (no last chunk of size 0)")
    return line[:-2]


def _header_line_shown(line: str) -> str:
    """A malformed header line as a refusal names it: its name (what comes before the colon) alone, the value left
    out, as it may be the client's key (``Authorization : Bearer KEY``), which the reply and the -v log would keep."""
    name, colon, _ = line.partition(":")
    return f"{name[:64]!r} (its value not repeated)" if colon else f"a line of {len(line)} characters with no colon"


def api_key(path: Optional[str], environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The key clients must show: the first line of the file ``path`` (``--api-key-file``), else ``$BIREFVID_API_KEY``,
    else None (no key asked for). Never a command-line value, which ``ps`` shows every user of the machine. ConfigError,
    one line, for a file that cannot be read, a key that is not one (too short to resist guessing, or characters a
    header cannot carry as they are), both given, or the variable set but empty (a deployment whose secret did not
    arrive must not run open)."""
    environ = os.environ if environ is None else environ
    from_env = environ.get(API_KEY_ENV)
    if path is not None and from_env is not None:
        raise ConfigError(f"give the API key one way: --api-key-file or ${API_KEY_ENV}, not both")
    if path is not None:
        try:
            with open(path, "rb") as f:  # not O_NONBLOCK: --api-key-file <(pass show birefvid) is a pipe
                text = f.read(4096).decode("ascii")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read the API key from {path}: {getattr(e, 'strerror', None) or e}") from None
        key, where = (text.splitlines() or [""])[0].strip(), path
    elif from_env is not None:
        key, where = from_env.strip(), f"${API_KEY_ENV}"
    else:
        return None
    if not _API_KEY_FORM.fullmatch(key):
        raise ConfigError(f"the API key in {where} must be {_API_KEY_HINT}" if key else f"{where} holds no API key: {_API_KEY_HINT}")
    return key


def api_key_refusal(key: str, authorization: list[str], x_api_key: list[str]) -> Optional[RequestError]:
    """None when a request shows ``key`` as ``Authorization: Bearer KEY``, ``X-API-Key: KEY`` or the password of HTTP Basic
    authentication (``curl -u :KEY``, as the live preview takes its token), compared in constant time; else the 401 to
    answer, with ``WWW-Authenticate`` (RFC 6750: ``error="invalid_token"`` when a key was shown but is not this one)."""
    shown = [value.strip() for value in x_api_key]
    for value in authorization:
        scheme, _, credentials = value.strip().partition(" ")
        if scheme.lower() == "bearer":
            shown.append(credentials.strip())
        elif scheme.lower() == "basic":
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                shown.append(base64.b64decode(credentials.strip(), validate=True).decode().partition(":")[2])
    if any(hmac.compare_digest(value.encode(), key.encode()) for value in shown if value.isascii()):
        return None
    if not shown:
        return RequestError(401, "this server needs its API key: send Authorization: Bearer KEY (or X-API-Key: KEY)",
                            {"WWW-Authenticate": _REALM})  # fmt: skip
    return RequestError(401, "the API key sent is not this server's", {"WWW-Authenticate": f'{_REALM}, error="invalid_token"'})


class HeadTooSlow(Exception):
    """A request line and headers that had begun but had not all come by their deadline (``read_timeout`` seconds).
    Not a TimeoutError, which http.server takes for an idle connection and closes without a word: this one is
    answered 408."""


class UploadTooSlow(TimeoutError):
    """A body that fell behind the server's minimum upload rate, cut off ``elapsed`` seconds after it began."""

    def __init__(self, elapsed: float, min_rate: float) -> None:
        super().__init__(f"the body came slower than {min_rate:,.0f} bytes/s (--min-upload-rate); cut off after {elapsed:.0f} s")


class _PacedReads(io.RawIOBase):
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


class CutoutService:
    """The loaded model and the image command's parser; cuts out one picture at a time, ``queue`` more waiting."""

    def __init__(self, args: argparse.Namespace, segmenter: Any, queue: int = QUEUE, max_pixels: int = MAX_PIXELS) -> None:
        from .commands import image

        self.segmenter = segmenter
        self.queue = queue
        self.max_pixels = max_pixels
        self._model_args = {name: getattr(args, name) for name in MODEL_FIELDS}
        self._parser = _OptionParser(prog="birefvid image", add_help=False)
        image.register(self._parser)
        self._run = image.run
        self._infer = threading.Lock()
        self._count = threading.Lock()
        self.admitted = 0  # running and waiting

    @contextlib.contextmanager
    def admitted_slot(self) -> Iterator[None]:
        """One place among the running and waiting requests; RequestError 503 (with Retry-After) when all are taken."""
        with self._count:
            if self.admitted >= 1 + self.queue:
                raise RequestError(503, f"busy: one picture is being cut out and {self.queue} are waiting; retry shortly",
                                   {"Retry-After": str(RETRY_AFTER_S)})  # fmt: skip
            self.admitted += 1
        try:
            yield
        finally:
            with self._count:
                self.admitted -= 1

    def cut_out(self, body: bytes, query: str) -> tuple[bytes, str]:
        """The cut-out of the picture in ``body`` as ``birefvid image`` writes it with the query's options, and its
        Content-Type; RequestError for a bad request, with the image command's own one-line reason."""
        options, suffix = image_argv(query)
        if not body:
            raise RequestError(400, "empty body: POST the picture (curl --data-binary @photo.jpg, or -F file=@photo.jpg)")
        source_suffix = picture_suffix(body, self.max_pixels)
        with tempfile.TemporaryDirectory(prefix="birefvid-serve-") as folder:
            source, target = Path(folder) / f"picture{source_suffix}", Path(folder) / f"cutout{suffix}"
            source.write_bytes(body)
            args = self._parser.parse_args([str(source), "-o", str(target), "-q", *options])
            for name, value in self._model_args.items():
                setattr(args, name, value)
            try:
                with self._infer, cli_naming():  # one model, one picture at a time; errors name the flags, as the CLI's do
                    self._run(args, segmenter=self.segmenter)
            except BirefvidError as e:
                text = str(e).replace(str(source), "the picture").replace(str(target), "the cut-out")
                raise RequestError(400, text) from None
            return target.read_bytes(), CONTENT_TYPES[suffix]

    def health(self) -> dict[str, Any]:
        """What ``GET /health`` answers: ready, the model, and how many requests are in (their bodies read)."""
        seg = self.segmenter
        return {"status": "ready", "model": seg.name, "backend": seg.backend, "device": str(seg.device),
                "busy": self.admitted, "queue": self.queue}  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    server: "CutoutServer"  # its service is set before it serves
    protocol_version = "HTTP/1.1"
    _unread = False  # the request's body is still in the connection
    _linger = False  # a refusal left the body unread: read and drop it before closing (see finish)
    _continued = False  # "100 Continue" sent (or not needed): the client is sending its body
    rbufsize = 0  # setup buffers the raw socket reader itself, around _PacedReads

    def setup(self) -> None:
        """The connection's socket timeout is the server's read timeout: each wait for a client's bytes (its request
        line, headers, each piece of its body) ends after it, and so does each wait to send a piece of the reply. A body
        is read under a deadline too (see ``_PacedReads``)."""
        self.timeout = self.server.read_timeout
        super().setup()
        self._paced = _PacedReads(self.rfile, self.connection, self.server.read_timeout)
        self.rfile = io.BufferedReader(self._paced)
        self._accepted = time.monotonic()
        self._requests = 0

    def handle_one_request(self) -> None:
        """http.server's, with the request head under a deadline (see ``_PacedReads``): the first request's head must come
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


class CutoutServer(ThreadingHTTPServer):
    """ThreadingHTTPServer on daemon threads, answering with a ``CutoutService`` (IPv6 for a host with a colon); bound at
    once, so a port in use fails before the model loads (``service`` is then set before ``serve_forever``).

    At most ``max_connections`` connections have a thread: each holds one and a file descriptor for as long as it is
    open, and with no cap a few hundred slow or idle clients ran the process out of either, and nobody was answered,
    /health included. Past the cap a connection gets no thread: ``_Overflow`` answers it on one thread of its own
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
        self._overflow = _Overflow(self)
        try:
            super().__init__((host, port), _Handler)
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


class _Overflow:
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
        """Answers ``connection`` (and closes it) on the overflow's thread; at once when the thread is behind by
        ``OVERFLOW_HELD`` connections, or the server is closing."""
        with self._lock:
            if self._closed or len(self._pending) >= OVERFLOW_HELD:
                self._answer(connection, b"")
                connection.close()
                return
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
