"""``birefvid.exiting``: telling whether a thread began, which threads' clean-up asks after a stop."""

from __future__ import annotations

import threading
import time

from birefvid import exiting


def test_asking_whether_the_current_thread_began_answers_at_once() -> None:
    """The thread asking about itself has begun; join() refuses it ("cannot join current thread"), which read as
    not begun after a 0.2 s wait."""
    began = time.monotonic()
    assert exiting.begun(threading.current_thread(), grace=60.0)
    # a grace long enough that waiting it out cannot pass for a loaded machine's pause (a 0.05 s bound could, and
    # 2.5 s against a grace of 5 s left a loaded machine's pause half the margin): answered at once, in microseconds
    assert time.monotonic() - began < 20
