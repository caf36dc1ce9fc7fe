"""Warnings given once a run: a stream reconnects and ``live --loop`` reads its file again and again, yet each
run (a command, or one call of the Python API, as a notebook or service makes many in a process) says them once."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from typing import Any, Callable, Iterator, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_said: set[tuple[object, ...]] = set()  # the keys said in the runs now going on
_runs = 0  # runs now going on (a command's run within the command, runs on threads of a service)
_lock = threading.Lock()


@contextlib.contextmanager
def run_scope() -> Iterator[None]:
    """A run: the first of those going on in this process starts with nothing said; runs nested in it (the
    command's own call of the API, batch's parts) or started beside it share what it said."""
    global _runs
    with _lock:
        if not _runs:
            _said.clear()
        _runs += 1
    try:
        yield
    finally:
        with _lock:
            _runs -= 1


def new_run() -> None:
    """Start a run without holding it open, for a generator (``iter_masks``) that a caller may leave suspended for good:
    held, it kept every later run of the process from starting with nothing said."""
    with run_scope():
        pass


def once_a_run(function: F) -> F:
    """``function`` as a run of its own (``run_scope``), for the public entry points."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        with run_scope():
            return function(*args, **kwargs)

    return run  # type: ignore[return-value]


def first_time(*key: object) -> bool:
    """True the first time ``key`` is said in this run (outside any run: since the last run started)."""
    with _lock:
        first = key not in _said
        _said.add(key)
    return first


def first_time_about_file(path: object, *what: object) -> bool:
    """``first_time`` for ``what`` about this file as it is now (the same file changed is new again); a URL, which
    cannot be looked at, once a run: it was always new, and ``live --loop`` over a video file on a web server opens it
    again at each pass, repeating its data-stream, subtitle and audio-track warnings at every one."""
    if isinstance(path, str) and "://" in path:
        return first_time(path, *what)
    try:
        st = os.stat(path)  # type: ignore[arg-type]
    except (OSError, TypeError, ValueError):
        return True
    return first_time(str(path), st.st_size, st.st_mtime_ns, *what)
