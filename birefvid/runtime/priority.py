"""Thread priorities: on a small CPU, the work that sets the pace runs first.

Live mode nices the model (a frame to display never waits behind it); file mode nices the stages
around the model (they fill the model's gaps instead of stalling its parallel regions) and keeps
their OpenCV calls and, on a small CPU, their codecs on their own threads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Iterator, Optional

import cv2

from .cores import usable_cores

log = logging.getLogger(__name__)

MODEL_NICENESS = 10  # live mode: the model's thread and the worker threads it starts
HELPER_NICENESS = 19  # file mode on a CPU: decode, compose and encode around the model
SMALL_CPU_CORES = 4  # up to this many cores, a file job's decoder and encoder run on one thread each


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


_opencv_lock = threading.Lock()
_opencv_users = 0
_opencv_threads_before = 0


@contextlib.contextmanager
def opencv_on_calling_threads() -> Iterator[None]:
    """Run OpenCV's functions on the threads that call them (no worker pool) while the block runs.

    For file mode on a CPU, where the model keeps every core busy: OpenCV's pool then gains the
    helpers no time and costs them CPU (720p ``tiny`` green, smoothing and compositing on one core:
    29-31 ms of CPU a frame with the pool, 25 without; the pipeline kept 0.83 of the model's
    frames/s against 0.78 at the same model speed). OpenCV's thread count is process-wide: it is
    set when the first of any overlapping blocks starts and restored when the last one ends.
    """
    global _opencv_users, _opencv_threads_before
    with _opencv_lock:
        if _opencv_users == 0:
            _opencv_threads_before = cv2.getNumThreads()
            cv2.setNumThreads(1)
        _opencv_users += 1
    try:
        yield
    finally:
        with _opencv_lock:
            _opencv_users -= 1
            if _opencv_users == 0:
                cv2.setNumThreads(_opencv_threads_before)


def codec_threads(device_type: str, cores: Optional[int] = None) -> Optional[int]:
    """Threads for a file job's video decoder and encoder: 1 while the model runs on a CPU of at most
    ``SMALL_CPU_CORES`` cores (``cores.usable_cores()`` unless given: a container's CPU quota counts), else None (the codec's own choice).

    There the model keeps every core busy, so a codec's worker threads buy no time and their
    hand-offs cost CPU the model would have had: x264 (veryfast, 720p green output) took 10.2-11.1
    ms of CPU a frame on one thread against 12.4-15.3 with its frame threads, H.264 decoding 3.6
    against 4.1-4.5 ms. One thread still encodes such frames at ~100 a second, far above what a
    small CPU's model runs; with more cores (a faster model) or a GPU the codecs keep their threads.
    Encoders other than x264 keep theirs anyway (see ``VideoFileSink``).
    """
    cores = usable_cores() if cores is None else cores
    return 1 if device_type == "cpu" and cores <= SMALL_CPU_CORES else None
