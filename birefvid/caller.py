"""``caller_level``: the ``stacklevel`` that makes a warning name the line of the code that called birefvid.

A fixed ``stacklevel`` names whatever frame sits that many calls up, which from the API is birefvid's own
code or torch's (the Segmenter's ``inference_mode`` wrapper); Python 3.11 has no ``skip_file_prefixes``,
so the level is found by walking the stack. Imports nothing heavy: torch's frames are skipped when loaded.
"""

from __future__ import annotations

import os
import sys
import threading


def _internal() -> tuple[str, ...]:
    """Folders whose frames a warning must not name: birefvid's, then the rest (torch's, a thread's start)."""
    torch = sys.modules.get("torch")
    others = (os.path.dirname(torch.__file__) + os.sep,) if torch is not None and getattr(torch, "__file__", None) else ()
    return (os.path.dirname(__file__) + os.sep, *others, threading.__file__)


def caller_level() -> int:
    """``stacklevel`` for a warning raised by the function calling this one that names the caller's own line, past
    birefvid and torch; in a run's thread, where no caller's line is on the stack, birefvid's outermost."""
    internal = _internal()
    frame, level, kept = sys._getframe(1), 1, 1
    while frame is not None and frame.f_code.co_filename.startswith(internal):
        if frame.f_code.co_filename.startswith(internal[0]):
            kept = level  # birefvid's own: the best line where no caller's is on the stack
        frame, level = frame.f_back, level + 1
    return level if frame is not None else kept
