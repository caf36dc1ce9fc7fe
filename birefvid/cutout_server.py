"""``birefvid serve``'s HTTP server: the model loaded once, each picture POSTed to ``/v1/remove`` cut out by the
``image`` command's own code (so a reply equals ``birefvid image``'s file), one at a time, a few more waiting.

Standard library only (``http.server``, as the live preview's): ``POST /v1/remove`` takes the picture as the raw
body or as a multipart field ``file``, query options named as ``birefvid image``'s flags (``output``, ``format``,
``background``, ...); ``GET /health`` says the server is ready and which model it runs. Every refusal is a 4xx or
503 with a one-line JSON body ``{"error": "..."}``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import socket
import tempfile
import threading
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator, Optional
from urllib.parse import parse_qsl, urlsplit

from .errors import BirefvidError, SinkError, cli_naming

log = logging.getLogger(__name__)

MAX_BYTES = 25 * 1024 * 1024  # a 50 MP JPEG is ~20 MB
MAX_PIXELS = 64_000_000  # a 45 MP camera's photo fits; a decompression bomb (a tiny PNG of gigapixels) does not
QUEUE = 4  # requests waiting while one is cut out; more get 503
RETRY_AFTER_S = 2
PATH = "/v1/remove"
HEALTH = "/health"
# the query's output names: the image command's, and process's "alpha" for its "rgba"
OUTPUT_NAMES = {"rgba": "rgba", "alpha": "rgba", "mask": "mask", "foreground": "foreground", "green": "green", "composite": "composite", "blur": "blur",
                "overlay": "overlay"}  # fmt: skip
FORMATS = {"png": ".png", "webp": ".webp", "jpeg": ".jpg", "jpg": ".jpg", "tif": ".tif", "tiff": ".tif"}
CONTENT_TYPES = {".png": "image/png", ".webp": "image/webp", ".jpg": "image/jpeg", ".tif": "image/tiff"}
# query options passed on to the image command as --NAME=VALUE; switches as --NAME (value 1/true/yes, or empty)
VALUED = ("background", "key-color", "blur-sigma", "overlay-color", "overlay-opacity", "max-size", "quality", "min-area", "threshold", "grow", "shrink", "feather", "upsample", "bit-depth")
SWITCHES = ("square", "srgb", "no-exif", "no-foreground", "invert")
_TRUE, _FALSE = {"", "1", "true", "yes", "on"}, {"0", "false", "no", "off"}
# what Pillow calls the pictures the image command reads, and the name it reads each under
INPUT_SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "MPO": ".jpg", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp", "GIF": ".gif",
                  "AVIF": ".avif", "HEIF": ".heic"}  # fmt: skip
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
                                "(mask, foreground, green, composite, blur)")  # fmt: skip
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
    """The ``file`` field of a multipart/form-data body (what ``curl -F file=@photo.jpg`` sends)."""
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise RequestError(400, "a multipart/form-data body without parts; send the picture as a field named file")
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            return part.get_payload(decode=True) or b""
    raise RequestError(400, "no field named file in the multipart/form-data body (curl -F file=@photo.jpg)")


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
        """What ``GET /health`` answers: ready, the model, and how many requests are in."""
        seg = self.segmenter
        return {"status": "ready", "model": seg.name, "backend": seg.backend, "device": str(seg.device),
                "busy": self.admitted, "queue": self.queue}  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    server: "CutoutServer"  # its service is set before it serves
    protocol_version = "HTTP/1.1"
    timeout = 60  # a client that stops sending its body holds its thread this long at most
    _unread = False  # the request's body is still in the connection

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
            if allowed is None:
                raise RequestError(404, f"no such path {url.path}; POST pictures to {PATH}, GET {HEALTH}")
            if method not in allowed.split(", "):
                raise RequestError(405, f"{method} {url.path}: use {allowed}", {"Allow": allowed})
            if url.path.rstrip("/") == HEALTH:
                self._reply(200, "application/json", json.dumps(self.server.service.health()).encode() + b"\n")
                return
            self._remove(url.query)
        except RequestError as e:
            self._reply(e.status, "application/json", json.dumps({"error": str(e)}).encode() + b"\n", e.headers)
        except Exception:  # a bug: said as one line to the client, the traceback in the server's log
            log.exception("%s %s failed", method, self.path)
            self._reply(500, "application/json", b'{"error": "internal error; see the server\'s log"}\n')

    def _remove(self, query: str) -> None:
        length_text = self.headers.get("Content-Length", "0")  # none and not chunked: no body (HTTP/1.1)
        if self.headers.get("Transfer-Encoding"):  # http.server does not read chunked bodies
            self.close_connection = True
            raise RequestError(411, "a Content-Length is needed (send the picture whole, not chunked)")
        if not (length_text.isascii() and length_text.isdigit()):  # int() takes "-1" (read to the end, past --max-bytes), "1_0", " 5"
            self.close_connection = True
            raise RequestError(400, f"Content-Length {length_text!r} is not a number of bytes")
        length = int(length_text)
        if length > self.server.max_bytes:  # before reading: the body is never taken in
            self.close_connection = True
            raise RequestError(413, f"the body is {length:,} bytes, more than the server's {self.server.max_bytes:,} (--max-bytes)")
        with self.server.service.admitted_slot():  # bodies in memory: at most the running and waiting requests'
            body = self.rfile.read(length) if length else b""
            self._unread = False
            if len(body) < length:
                self.close_connection = True
                raise RequestError(400, f"the body ended after {len(body)} of {length} bytes")
            content_type = self.headers.get("Content-Type", "")
            if content_type.lower().startswith("multipart/form-data"):
                body = multipart_file(content_type, body)
            picture, kind = self.server.service.cut_out(body, query)
            self._reply(200, kind, picture)  # in the slot: a stop waits for the reply to be sent, not only cut out

    def _reply(self, code: int, content_type: str, body: bytes, headers: Optional[dict[str, str]] = None) -> None:
        """Send ``body`` with its headers; to a HEAD, the headers alone, whatever the status (a body there would be read as
        the next reply on a kept-alive connection)."""
        if self._unread:  # a body left unread (refused before it): its bytes must not be read as the next request
            self.close_connection = True
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            with contextlib.suppress(OSError):  # the client hung up: nothing more to say to it
                self.wfile.write(body)

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """http.server's own refusals (a request line over 64 KiB, over 100 headers, a method such as OPTIONS, bad
        syntax) as one JSON line too, where they were an HTML page; the connection then closes, as http.server's does."""
        self.log_error("code %d, message %s", code, message)
        self.close_connection = True
        text = message or self.responses.get(code, ("error",))[0]
        with contextlib.suppress(OSError):  # the client may already be gone
            self._reply(code, "application/json", json.dumps({"error": text}).encode() + b"\n")

    def log_message(self, format: str, *args: object) -> None:
        """Each request at -v, its control characters escaped as http.server's own log does (a request line's ESC or
        BEL would reach the terminal: clear it, retitle it, hide lines)."""
        log.info("%s %s", self.address_string(), (format % args).translate(getattr(self, "_control_char_table", {})))  # the table is in http.server from 3.11.1


class CutoutServer(ThreadingHTTPServer):
    """ThreadingHTTPServer on daemon threads, answering with a ``CutoutService`` (IPv6 for a host with a colon); bound at
    once, so a port in use fails before the model loads (``service`` is then set before ``serve_forever``)."""

    daemon_threads = True

    def __init__(self, host: str, port: int, service: Optional[CutoutService], max_bytes: int = MAX_BYTES) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.service = service
        self.max_bytes = max_bytes
        try:
            super().__init__((host, port), _Handler)
        except OSError as e:
            raise SinkError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None

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

    def url(self) -> str:
        """The address ``/v1/remove`` answers at."""
        host = self.server_name if ":" not in self.server_name else f"[{self.server_name}]"
        return f"http://{host}:{self.server_port}{PATH}"
