"""The token a live preview open to the network asks for, so only those given its URL see the camera.

A preview on 127.0.0.1 needs none: only this machine reaches it. One on ``0.0.0.0`` or a LAN address
did put the camera on every machine of the network, without a password. The token is
``$BIREFVID_PREVIEW_TOKEN`` when set, else one made once and kept in the cache folder (mode 0600),
so a bookmarked URL, an OBS source or a dashboard keeps working across runs; where the cache folder
cannot be written (a read-only container), each run makes its own and says so.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import stat
import time
from pathlib import Path
from typing import Optional

from birefvid.errors import ConfigError

log = logging.getLogger(__name__)

TOKEN_ENV = "BIREFVID_PREVIEW_TOKEN"
TOKEN_FILE = "preview-token"
_FORM = re.compile(r"[A-Za-z0-9._~-]{8,128}")  # goes into URLs as it is: no escaping to get wrong


def preview_token() -> str:
    """The token of this machine's network previews: ``$BIREFVID_PREVIEW_TOKEN``, the kept one, or a new one."""
    given = os.environ.get(TOKEN_ENV, "").strip()
    if given:
        if not _FORM.fullmatch(given):
            raise ConfigError(f"${TOKEN_ENV} must be 8 to 128 letters, digits or . _ ~ - (it goes into the preview's URL)")
        return given
    from birefvid.backends.export import cache_dir  # the folder exports are kept in; imported here, as it brings torch

    path = cache_dir() / TOKEN_FILE
    kept = _read(path)
    if kept is not None:
        return kept
    made = secrets.token_urlsafe(18)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_new(path, made)
    except FileExistsError:  # another run made it first: take that one, so both print the same URL
        time.sleep(0.2)  # the time it takes to write it
        try:
            return _read(path) or made
        except ConfigError:
            return made
    except OSError as e:
        log.warning("the preview's token cannot be kept in %s (%s), so it changes with every run; "
                    "set $%s to keep one", path, e.strerror or e, TOKEN_ENV)  # fmt: skip
    return made


def _read(path: Path) -> Optional[str]:
    """The token kept in ``path``, or None when there is none; one that is not a token, or not this user's own
    (a link, another user's file), is refused."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))  # a planted FIFO cannot hang
        with os.fdopen(fd, "rb") as f:
            _check_private(path, os.fstat(f.fileno()))
            text = f.read(4096).decode("ascii").strip()
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:  # O_NOFOLLOW met a link: where it points, anyone may have written
            raise ConfigError(f"{path} is a link, so the preview's token could be known to others; delete it to get a new one, "
                              f"or set ${TOKEN_ENV}") from None  # fmt: skip
        raise ConfigError(f"cannot read the preview's token from {path} ({e.strerror or e}); "
                          f"delete it to get a new one, or set ${TOKEN_ENV}") from None  # fmt: skip
    except UnicodeDecodeError as e:
        raise ConfigError(f"cannot read the preview's token from {path} ({getattr(e, 'strerror', None) or e}); "
                          f"delete it to get a new one, or set ${TOKEN_ENV}") from None  # fmt: skip
    if not _FORM.fullmatch(text):
        raise ConfigError(f"{path} holds no preview token (8 to 128 letters, digits or . _ ~ -); delete it to get a new one")
    return text


def _check_private(path: Path, st: os.stat_result) -> None:
    """ConfigError unless ``st`` is a file of this user's: in a shared cache folder (``$BIREFVID_CACHE_DIR``)
    another user could plant a token they know (or a link to one), and then watch the camera from the network.
    Its mode is not checked: the users of this machine watch without the token anyway, and file systems
    without modes (a FAT or SMB mount) show every file as open to all."""
    if os.name != "posix":
        return  # Windows: no owner in st_uid; the folder's ACL decides
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{path} is not a file, so it holds no preview token; delete it to get a new one, or set ${TOKEN_ENV}")
    if st.st_uid != os.getuid():
        raise ConfigError(f"{path} is another user's, so the preview's token would be known to them; delete it to get a new one, "
                          f"or set ${TOKEN_ENV}, or keep the cache in a folder of your own")  # fmt: skip


def _write_new(path: Path, token: str) -> None:
    """Write ``token`` to ``path``, which must not exist, readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token + "\n")
