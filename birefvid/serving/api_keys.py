"""The API key: read from a file or the environment (never argv), and checked on each request in constant time."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import os
import re
from typing import Mapping, Optional

from ..errors import ConfigError
from .request_error import RequestError

API_KEY_ENV = "BIREFVID_API_KEY"
# RFC 6750's b64token (what a Bearer header carries as it is): secrets.token_urlsafe, openssl rand -hex or -base64;
# 16 or more, as nothing limits how fast a client on the network may guess
_API_KEY_FORM = re.compile(r"[A-Za-z0-9._~+/-]{16,256}=*")
_API_KEY_HINT = "16 to 256 letters, digits or . _ ~ + / - (make one: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
_REALM = 'Bearer realm="birefvid serve"'


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
