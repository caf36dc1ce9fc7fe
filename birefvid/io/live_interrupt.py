"""Cancelling a live capture thread's blocked PyAV call from another thread (see ``Interrupter``)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Optional

log = logging.getLogger(__name__)


class Interrupter:
    """Makes a capture thread's blocked PyAV call return at once, from another thread.

    PyAV gives FFmpeg an interrupt callback that compares ``time.monotonic()`` (looked up in the
    module ``av.container.core`` on every call) with the start of the current read plus its
    timeout; FFmpeg polls it about every 100 ms while it waits on a socket. Replacing that module's
    ``time`` with this clock, which runs far ahead for cancelled capture threads and is the real
    clock for every other thread, turns PyAV's own timeout into a cancel button. Without the hook
    (a PyAV that changed its internals) a blocked call still returns at its read timeout.
    """

    def __init__(self, real: Any) -> None:
        self._real = real
        self._threads: dict[int, float] = {}  # registered capture threads -> jump so far (< 0: not cancelled)
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        t = self._real.monotonic()
        ident = threading.get_ident()
        if self._threads.get(ident, -1.0) >= 0:  # jump on every call, so "now > start + timeout" holds
            with self._lock:
                if ident in self._threads:
                    self._threads[ident] += 1e7
                    return t + self._threads[ident]
        return t

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def register(self) -> None:
        """The calling thread may be cancelled from now until it calls ``forget``."""
        with self._lock:
            self._threads[threading.get_ident()] = -1.0

    def forget(self) -> None:
        with self._lock:
            self._threads.pop(threading.get_ident(), None)

    def cancel(self, ident: Optional[int]) -> None:
        """Make every PyAV wait on thread ``ident`` give up, if it is a registered capture thread."""
        with self._lock:
            if ident in self._threads:
                self._threads[ident] = max(self._threads[ident], 0.0)


_interrupter_lock = threading.Lock()


def install_interrupter() -> Optional[Interrupter]:
    """The installed interrupter, installing it on first use; None when PyAV's internals differ."""
    import av.container.core as core

    with _interrupter_lock:
        current = getattr(core, "time", None)
        if isinstance(current, Interrupter):
            return current
        if current is not time:
            log.debug("PyAV's container module has no time hook; close() waits for the read timeout")
            return None
        hook = Interrupter(time)
        core.time = hook  # type: ignore[attr-defined]
        return hook

