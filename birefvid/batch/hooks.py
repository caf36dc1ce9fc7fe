"""A test hook that kills the worker process in one chosen chunk, once, to prove retries and resumes.

Set ``BIREFVID_BATCH_CRASH=NAME:INDEX`` (NAME: the input's file name, INDEX: the chunk) and
``BIREFVID_BATCH_CRASH_MARKER=FILE`` in the environment of the ``birefvid batch`` process. The
worker that runs that chunk creates FILE and exits at once (``os._exit``: no cleanup, like a
killed process) after encoding its first frame; while FILE exists it runs normally.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

CRASH_ENV = "BIREFVID_BATCH_CRASH"
MARKER_ENV = "BIREFVID_BATCH_CRASH_MARKER"
CRASH_EXIT_CODE = 17


@dataclass(frozen=True)
class CrashHook:
    """Exit the process the first time ``fire()`` runs while ``marker`` does not exist."""

    marker: str

    def fire(self) -> None:
        marker = Path(self.marker)
        if marker.exists():
            return
        marker.write_text(f"worker {os.getpid()} killed itself here\n")
        os._exit(CRASH_EXIT_CODE)


def crash_hook_for(input_path: str, chunk: int) -> Optional[CrashHook]:
    """The hook for this chunk when the environment asks for one (read by the driver, sent with the task)."""
    wanted, marker = os.environ.get(CRASH_ENV), os.environ.get(MARKER_ENV)
    if not wanted or not marker:
        return None
    name, _, index = wanted.rpartition(":")
    if name == Path(input_path).name and index.isdigit() and int(index) == chunk:
        return CrashHook(marker)
    return None
