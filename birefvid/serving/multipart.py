"""The picture of a multipart/form-data body (``curl -F file=@photo.jpg``, a browser's form), found by its boundary."""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP

from .request_error import RequestError


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
