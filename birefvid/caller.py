"""``caller_level``: the ``stacklevel`` that makes a warning name the line of the code that called birefvid.

A fixed ``stacklevel`` names whatever frame sits that many calls up, which from the API is birefvid's own
code or torch's (the Segmenter's ``inference_mode`` wrapper); Python 3.11 has no ``skip_file_prefixes``,
so the level is found by walking the stack. Imports nothing heavy: torch's frames are skipped when loaded.
``warn`` goes further: on a thread birefvid handed work to (``run_handed``), it names the line of the caller
waiting on that work, which ``stacklevel`` cannot reach (it counts the warning thread's own frames only).
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from types import FrameType
from typing import Any, Callable, Optional, TypeVar

T = TypeVar("T")


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


def _callers_frame(frame: Optional[FrameType], internal: tuple[str, ...]) -> Optional[FrameType]:
    """The first frame from ``frame`` up that is none of birefvid's, torch's or threading's, or None; on a thread
    birefvid handed work to (``run_handed``) the walk goes on from the frame waiting for that work."""
    while frame is not None:
        if frame.f_code is run_handed.__code__:
            frame = frame.f_locals["handed"]
        elif frame.f_code.co_filename.startswith(internal):
            frame = frame.f_back
        else:
            return frame
    return None


def run_handed(handed: FrameType, target: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``target(*args, **kwargs)``, on a worker thread, for ``handed``: the frame on the caller's thread that waits
    for it (``sys._getframe()`` where the work is submitted). ``warn`` there walks on from that frame to name the
    caller's line, as on the caller's own thread. The frame goes with the work item, so it holds nothing after."""
    return target(*args, **kwargs)


def warn(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` naming the line of the code that called birefvid (``caller_level``), on a thread birefvid
    handed work to (``run_handed``) too, where ``stacklevel`` cannot reach it (it counts that thread's frames only)."""
    frame = _callers_frame(sys._getframe(1), _internal())
    if frame is None:  # a run's own thread: birefvid's outermost line
        warnings.warn(message, category, stacklevel=caller_level())
        return
    module_globals = frame.f_globals
    warnings.warn_explicit(message, category, frame.f_code.co_filename, frame.f_lineno, module=module_globals.get("__name__", "<string>"),
                           registry=module_globals.setdefault("__warningregistry__", {}), module_globals=module_globals)
