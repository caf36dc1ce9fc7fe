"""Thread priorities: on a small CPU, the work that sets the pace runs first.

Live mode nices the model (a frame to display never waits behind it); file mode nices the stages
around the model (they fill the model's gaps instead of stalling its parallel regions).
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

MODEL_NICENESS = 10  # live mode: the model's thread and the worker threads it starts
HELPER_NICENESS = 19  # file mode on a CPU: decode, compose and encode around the model


def lower_thread_priority(niceness: int = MODEL_NICENESS) -> None:
    """Lower the calling thread's priority (and that of the worker threads it starts afterwards).

    On Linux a thread has its own nice value and threads it creates inherit it: in live mode the
    model's OpenMP team, started from a niced thread, runs niced too, so the model may use every
    core, yet a frame to display never waits behind it. Elsewhere this is a no-op.
    """
    if hasattr(os, "setpriority") and hasattr(threading, "get_native_id") and os.uname().sysname == "Linux":
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
        except OSError as exc:  # not permitted in some containers: run at normal priority
            log.debug("could not lower this thread's priority: %s", exc)
