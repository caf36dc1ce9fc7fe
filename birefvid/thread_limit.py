"""``BIREFVID_THREADS``: the most CPU threads a run's model and codecs use, for several runs sharing one machine.

Two runs started at once (two terminals, a cron ``batch`` beside a ``live`` session) each sized torch, OpenVINO
(threads and streams) and the codecs by every core, and spent the shared cores fighting each other's threads.
``OMP_NUM_THREADS`` reached torch alone, not OpenVINO, the default CPU engine. ``BIREFVID_THREADS=N`` counts as N
usable cores everywhere ``runtime.cores.usable_cores`` is read (as ``taskset`` and a container's CPU quota do).
Light (no torch): the command line checks it before any command, so a bad value is one line.
"""

from __future__ import annotations

import os
from typing import Optional

from birefvid.errors import ConfigError

THREADS_ENV = "BIREFVID_THREADS"


def thread_limit() -> Optional[int]:
    """The value of ``BIREFVID_THREADS`` (a whole number, at least 1), None when unset or empty; ConfigError otherwise."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return None
    # isdigit alone takes "²" (a superscript two), which int() refuses: a traceback, exit 1. A number longer than int()
    # reads (4300 digits) is simply more than any machine's cores: no cap, as 64 is on 8 cores
    digits = value.lstrip("0") if value.isascii() and value.isdigit() else ""
    count = 0 if not digits else int(digits) if len(digits) <= 18 else 10**18
    if count < 1:
        raise ConfigError(f"{THREADS_ENV}={value!r} is not a number of threads: give a whole number, 1 or more "
                          f"(such as {THREADS_ENV}=1 for each of two runs on 2 cores), or unset it")  # fmt: skip
    return count
