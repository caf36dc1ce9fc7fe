"""JSON-lines files a long run appends to (``live --stats-json``, ``batch --progress-json``), followed when logrotate
moves or deletes them. Imports nothing heavy."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import Callable, TextIO


def follow_rotation(handle: TextIO, path: str | Path, reopen: Callable[[], TextIO]) -> TextIO:
    """``handle``, or ``reopen()`` (a new file at ``path``) where the name no longer leads to the file ``handle``
    writes: logrotate moved or deleted it, and a run of weeks went on writing into the moved file, or into a deleted
    one that kept its disk space until the run ended. A pipe or a device is left as it is; where the new file cannot
    be made (its folder went away) the lines go on where they went."""
    try:
        held = os.fstat(handle.fileno())
        if not stat.S_ISREG(held.st_mode):  # a pipe or /dev/stdout: nothing to rotate
            return handle
        named = os.stat(path)
        if (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
            return handle
    except FileNotFoundError:
        pass  # deleted, or moved with no new file made yet: start one
    except (OSError, ValueError):  # ValueError: a closed handle has no fileno
        return handle
    try:
        fresh = reopen()
    except OSError:
        return handle
    with contextlib.suppress(OSError):
        handle.close()
    return fresh
