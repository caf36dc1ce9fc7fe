"""A test hook that kills the worker process in one chosen chunk, once, to prove retries and resumes.

Set ``BIREFVID_BATCH_CRASH=NAME:INDEX`` (NAME: the input's file name, INDEX: the chunk) and
``BIREFVID_BATCH_CRASH_MARKER=FILE`` in the environment of the ``birefvid batch`` process. The
worker that runs that chunk creates FILE and exits at once (``os._exit``: no cleanup, like a
killed process) after encoding its first frame; while FILE exists it runs normally.

``BIREFVID_BATCH_HOLD=NAME:INDEX`` (with the same marker) holds that chunk instead: its worker writes its process id
to FILE after the first frame and waits (``HOLD_SECONDS`` at most), so a test can take the worker's Ray node away
while the chunk runs, at a known point rather than after a guessed sleep. Its retry finds FILE and runs normally.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

CRASH_ENV = "BIREFVID_BATCH_CRASH"
MARKER_ENV = "BIREFVID_BATCH_CRASH_MARKER"
HOLD_ENV = "BIREFVID_BATCH_HOLD"
CRASH_EXIT_CODE = 17
# the longest a held chunk waits to be killed before it goes on
HOLD_SECONDS = 120.0


@dataclass(frozen=True)
class CrashHook:
    """Exit the process the first time ``fire()`` runs while ``marker`` does not exist."""

    marker: str
    hold: bool = False  # wait (to be killed from outside) instead of exiting

    def fire(self) -> None:
        marker = Path(self.marker)
        if marker.exists():
            return
        if self.hold:
            marker.write_text(f"{os.getpid()}\n")
            time.sleep(HOLD_SECONDS)
            return
        marker.write_text(f"worker {os.getpid()} killed itself here\n")
        os._exit(CRASH_EXIT_CODE)


def crash_hook_for(input_path: str, chunk: int) -> Optional[CrashHook]:
    """The hook for this chunk when the environment asks for one (read by the driver, sent with the task)."""
    marker = os.environ.get(MARKER_ENV)
    for env, hold in ((CRASH_ENV, False), (HOLD_ENV, True)):
        wanted = os.environ.get(env)
        if not wanted or not marker:
            continue
        name, _, index = wanted.rpartition(":")
        if name == Path(input_path).name and index.isdigit() and int(index) == chunk:
            return CrashHook(marker, hold)
    return None
