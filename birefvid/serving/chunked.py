"""A ``Transfer-Encoding: chunked`` body read strictly, so a proxy and the server agree where it ends."""

from __future__ import annotations

from typing import Any

from .request_error import RequestError

MAX_CHUNK_LINE = 1024  # a chunk-size line or a trailer line; http.client, curl and nginx send a few bytes
MAX_TRAILERS = 32


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
