"""Leaving the process when a worker thread cannot be stopped.

A live run's one-off model export (``torch.onnx.export``, 10-60 s) and engine compile run on a
niced worker thread; Ctrl-C reaches the main thread, which ends the run at once, but nothing can
stop that native work. Python's normal exit then tears the interpreter down under the running C++
code, which aborts the process ("terminate called without an active exception", exit 134) and
skips the worker's clean-up. So the worker's files are removed here, the processes it waits on (an
export run in a child: ``backends.export_worker``) are killed, and the command line leaves with
``os._exit`` after its own clean-up has run (``birefvid.cli.main``).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import subprocess

_lock = threading.Lock()
_partial_files: set[str] = set()  # temporary files a worker is writing (an ONNX export)
_abandoned: list[threading.Thread] = []  # worker threads left running
_children: list["subprocess.Popen[Any]"] = []  # processes a worker waits on (an ONNX export): killed with it
_owners: dict[int, threading.Thread] = {}  # id(child): the thread waiting on it


def writing(path: str) -> None:
    """``path`` is a temporary file being written: removed if its writer is abandoned."""
    with _lock:
        _partial_files.add(path)


def written(path: str) -> None:
    """``path`` was renamed into place or removed by its writer."""
    with _lock:
        _partial_files.discard(path)


def spawned(child: "subprocess.Popen[Any]") -> None:
    """The calling worker thread waits on ``child`` (an export): killed if the worker is abandoned or ``end_children_of`` it."""
    with _lock:
        _children.append(child)
        _owners[id(child)] = threading.current_thread()


def end_children_of(thread: threading.Thread) -> None:
    """Kill the processes ``thread`` waits on (an export in a child), so that it fails at once rather than waiting the
    export out: a caller that stops waiting for the thread (``iter_masks``' loop, interrupted) but must still join it.
    Other threads' children (another run's export in the same process) are left alone."""
    with _lock:
        children = [child for child in _children if _owners.get(id(child)) is thread]
    for child in children:
        try:
            child.kill()
        except OSError:  # gone already
            pass


def reaped(child: "subprocess.Popen[Any]") -> None:
    """``child`` has ended and was waited for."""
    with _lock:
        if child in _children:
            _children.remove(child)
        _owners.pop(id(child), None)


def abandon(thread: threading.Thread) -> None:
    """``thread`` is left running native work: kill the processes it waits on (an export, which then leaves at
    once rather than running on for a minute after the command), remove its temporary files; the process must exit at once."""
    with _lock:
        files = list(_partial_files)
        _partial_files.clear()
        _abandoned.append(thread)
        children = list(_children)
    for child in children:
        # SIGKILL first, so the files can go: a killed process runs no more of its own code, so cannot make them again.
        # Not waited for: its end wakes the niced worker waiting on it, and a niced thread running on a busy machine
        # is slow to be scheduled, which an exit must do for each thread it ends (seconds, measured)
        try:
            child.kill()
        except OSError:  # gone already
            pass
    for path in files:
        try:
            os.unlink(path)
        except OSError:
            pass


class Abandoned(BaseException):
    """Raised in an abandoned worker thread by ``end_if_abandoned``: the thread unwinds and ends (its caller has left)."""


def end_if_abandoned() -> None:
    """Raise ``Abandoned`` when the calling thread has been abandoned; called where its work may stop (before each
    module of a model runs, ``runtime.live.run_niced``).

    Why: a live run stopped during its warm-up (the window closed, ``stop`` set, Ctrl-C) leaves the warm-up thread,
    which ran the model on to its end: in an API user's process that went on, seconds of CPU spent for nothing (the
    latency budget's timings, a big model's first frame), and ``must_exit_now`` said True until it ended. Native work
    (an engine's compile) is not stopped by this; an export runs in a child that ``abandon`` kills."""
    if _abandoned and threading.current_thread() in _abandoned:
        raise Abandoned


def threads_at_process_priority() -> None:
    """Best effort, as the process exits: this process's niced threads (live mode's model and the engine threads it
    started, ``runtime.priority``) get the main thread's priority back.

    Why: the process is gone only once each of its threads has exited, and the last one frees its memory (unmapping
    the model's and torch's, ~40 ms of kernel time). That was a niced model thread, which a busy machine schedules
    seldom: ``live`` stopped with six busy processes beside it called ``os._exit`` 0.05 s after the signal, then took
    1-8 s to end. Raising a thread's priority needs ``CAP_SYS_NICE`` (root, outside most containers) or an
    ``RLIMIT_NICE`` that allows it; without either this does nothing, and the exit takes what it took."""
    if not sys.platform.startswith("linux"):
        return
    try:
        base = os.getpriority(os.PRIO_PROCESS, os.getpid())  # the main thread's (the process's own nice value)
        tasks = [int(name) for name in os.listdir("/proc/self/task")]
    except (OSError, ValueError):
        return
    for tid in tasks:
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) > base:
                os.setpriority(os.PRIO_PROCESS, tid, base)
        except PermissionError:  # not allowed here: none of them would be
            return
        except OSError:  # ended meanwhile
            continue


def must_exit_now() -> bool:
    """True while a worker thread that was abandoned still runs: a normal interpreter exit would abort under it.

    Once it has finished (an export that completed meanwhile) nothing is left to abort under: an API user's
    process, or a later ``birefvid.cli.main()`` in it, was otherwise left with ``os._exit`` for good."""
    with _lock:
        _abandoned[:] = [t for t in _abandoned if t.is_alive()]
        return bool(_abandoned)


def begun(thread: threading.Thread, grace: float = 0.2) -> bool:
    """Whether ``thread`` began, waiting up to ``grace`` s: a signal landing in its ``start()`` leaves one that begins
    a moment later, or never, and ``join()`` refuses both until it does ("cannot join thread before it is started")."""
    if thread is threading.current_thread():  # it asks about itself: begun, and join() would refuse it for good
        return True
    deadline = time.monotonic() + grace
    while True:
        try:
            thread.join(0)  # the one public test of a begun thread: join() refuses any other
            return True
        except RuntimeError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
