"""Secrets in URLs, hidden before a URL is shown or written down.

Logs and error lines are often on a streamed screen, and run reports get attached to bug reports:
neither may carry a password (``rtsp://admin:pw@cam``), an RTMP stream key (which lets anyone
broadcast on the owner's channel) or a signed link's token (``?X-Amz-Signature=...``). Kept free of
PyAV so that option checking and the job description can use it before the media stack loads.
"""

from __future__ import annotations

import re
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

HIDDEN = "***"
# Query parameters whose values are credentials: camera logins (?user=admin&password=...), tokens,
# signed-link signatures (AWS X-Amz-Signature/Credential, Azure sig, GCS X-Goog-Signature).
_SECRET_WORDS = ("pass", "pwd", "token", "key", "sig", "secret", "auth", "credential", "session")
# and whole names too short or odd to match as words: a camera's ?pw= and Foscam-style ?loginpas=, and SRT's
# streamid, which carries MediaMTX's publisher login (streamid=publish:PATH:USER:PASSWORD)
_SECRET_NAMES = ("pw", "loginpas", "streamid")
_STREAM_KEY_SCHEMES = ("rtmp", "rtmps")

T = TypeVar("T")
# a URL inside running text (a log line, an error, a traceback): its login up to the "@" whatever it holds (a
# password with a quote in it was cut there, and shown), then up to the next space or quote, less the
# punctuation of the sentence after it (which, taken for an RTMP key, was hidden with it)
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://(?:[^\s/@]*@)?[^\s\"'<>]*[^\s\"'<>.,;:!?)\]]")


def _netloc(url: str) -> str:
    """The URL's host and port with any password hidden (the user name is kept: it says which login)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    if parts.password is not None:
        return f"{parts.username}:{HIDDEN}@{host}"
    return parts.netloc


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return lowered in _SECRET_NAMES or any(word in lowered for word in _SECRET_WORDS)


def without_password(url: str) -> str:
    """``url`` with its password and the values of credential-like query parameters replaced by ``***``."""
    try:
        parts = urlsplit(url)
        netloc = _netloc(url)
    except ValueError:  # malformed (e.g. an unclosed IPv6 bracket): FFmpeg will say what is wrong
        return url
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_is_secret(name) for name, _ in pairs):
            query = urlencode([(name, HIDDEN if _is_secret(name) else value) for name, value in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return url  # unchanged, byte for byte (no re-quoting)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def without_stream_key(url: str) -> str:
    """An RTMP address with its stream key (the last part of the path), query and password hidden."""
    try:
        parts = urlsplit(url)
        netloc = _netloc(url)
    except ValueError:  # malformed: nothing after the scheme is shown, it may all be secret
        return f"{url.partition('://')[0]}://{HIDDEN}"
    path = parts.path
    head, _, key = path.rstrip("/").rpartition("/")  # a slash after the key (/app/key/) still hides it
    if head.strip("/") and key:  # /app/key: the key goes; a bare /app names no key
        path = f"{head}/{HIDDEN}"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def shown_url(text: str) -> str:
    """How a source, sink or input is named in messages and reports: secrets hidden, anything else as given."""
    if "://" not in text:
        return text  # a path, a camera index, `window`
    if text.strip().lower().split("://", 1)[0] in _STREAM_KEY_SCHEMES:
        return without_stream_key(text)
    return without_password(text)


def hide_secrets(value: T) -> T:
    """``value`` (a report, a job's ``to_dict()``) with every URL in it passed through ``shown_url``."""
    if isinstance(value, str):
        return shown_url(value)  # type: ignore[return-value]
    if isinstance(value, dict):
        return {k: hide_secrets(v) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, (list, tuple)):
        return type(value)(hide_secrets(v) for v in value)  # type: ignore[return-value]
    return value


def hide_urls_in(text: str) -> str:
    """``text`` (a log line, an error message, a traceback) with every URL in it passed through ``shown_url``:
    the last guard of what the command line prints, for a message that named its input as given."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: shown_url(m.group(0)), text)
