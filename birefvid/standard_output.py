"""Standard output whose failed writes are remembered until the command line has said so.

What a command prints on standard output (``models``' table, ``--report -``, ``image -o -``'s picture) is its result. A
write there can fail: a full disk (``> /dev/full``), a closed descriptor (``>&-``), a reader that left (``| head``), an
I/O error. Python raises that failure once, and from whichever call happened to flush: a traceback from inside a
``print`` (exit 1), or nothing at all when the caller swallowed it (argparse's ``--version`` ignores a failed write,
and a failed flush drops its buffer, so the next flush "succeeds"): exit 0 with the output lost. GNU tools keep an
error flag on the stream and check it before they exit ("write error: No space left on device", exit 1); this module
is that flag, and ``birefvid.cli`` reads it at the points where the output must have left.

A standard output that a parent left non-blocking (``O_NONBLOCK`` on a pipe or socket it shares, as Node.js or an
event loop does) is no failure: a write that finds the pipe full waits until the reader has taken some, as on a
blocking pipe, instead of Python's ``BlockingIOError`` (an error line) or, unbuffered (``PYTHONUNBUFFERED=1``, Docker
images' usual setting), the rest dropped without a word.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import select
import sys
from typing import Any, Iterable, Optional

_failure: list[Optional[OSError]] = [None]  # the first failed write since install(), until settle()d
_settled = [False]  # the failure was reported (the CLI's error line) or excused (a side channel's warning)


class _Checked:
    """A text or binary stream (standard output or its ``buffer``) whose write and flush failures are remembered.

    After a failure every later write fails the same way: a write that went through after a dropped buffer would
    leave output with a hole in it, which a reader cannot tell from a whole one. Once the failure has been reported,
    writes are dropped, so the interpreter's own final flush adds no second report."""

    def __init__(self, stream: Any, given: Any = None) -> None:
        self._stream = stream
        self._given = stream if given is None else given  # what install() found, for restore()
        self._buffer: Optional[_Checked] = None

    def write(self, data: Any) -> int:
        self._check()
        if _settled[0]:
            return len(data)
        try:
            return self._stream.write(data)
        except OSError as e:
            _failed(e)
            raise

    def writelines(self, lines: Iterable[Any]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._check()
        if _settled[0]:
            return
        try:
            self._stream.flush()
        except OSError as e:
            _failed(e)
            raise

    @property
    def buffer(self) -> "_Checked":
        """The binary stream beneath (``image -o -`` writes a picture's bytes), checked the same way."""
        if self._buffer is None:
            self._buffer = _Checked(self._stream.buffer)
        return self._buffer

    def _check(self) -> None:
        failure = _failure[0]
        if failure is not None and not _settled[0]:
            raise _failed(type(failure)(failure.errno, failure.strerror))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _failed(error: OSError) -> OSError:
    """``error``, remembered as standard output's failure (the first one) and marked as raised by it."""
    if _failure[0] is None:
        _failure[0] = error
    error.birefvid_standard_output = True  # type: ignore[attr-defined]
    return error


def raised_by(error: BaseException) -> bool:
    """Whether ``error`` is a failed write to standard output (not the output video's, say)."""
    return getattr(error, "birefvid_standard_output", False)


class _WaitingWriter(io.RawIOBase):
    """A non-blocking descriptor written as a blocking one is: every byte, waiting for room when the pipe is full.

    The descriptor's ``O_NONBLOCK`` flag is left as it is: it belongs to an open file description that the parent
    may share (its own standard output, given to the child), and clearing it would change how the parent's writes
    behave."""

    def __init__(self, fd: int, *, closefd: bool = False) -> None:
        super().__init__()
        self._fd = fd
        self._closefd = closefd  # a copy of its own (``waiting_file``): closed with it

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        """A terminal's, as the stream it replaces says: a progress bar is drawn on it (a parent may leave a terminal non-blocking too)."""
        return os.isatty(self._fd)

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        written = 0
        while written < len(view):
            try:
                written += os.write(self._fd, view[written:])
            except BlockingIOError:
                select.select([], [self._fd], [])  # room in the pipe (or the reader gone: the next write says which)
        return written

    def close(self) -> None:
        """Closes the view, not the descriptor: standard output stays open for the interpreter and child processes."""
        if self._closefd and not self.closed:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        super().close()


def waiting_file(fd: int, *, encoding: Optional[str] = "utf-8") -> Any:
    """A text file writing into ``fd`` (a copy the file owns and closes) that waits for room where ``fd`` is
    non-blocking, rather than fail with EAGAIN: a report named by ``/dev/stdout`` or ``/dev/fd/3`` of a parent's
    non-blocking pipe (``io.atomic.open_into``)."""
    return io.TextIOWrapper(io.BufferedWriter(_WaitingWriter(fd, closefd=True)), encoding=encoding, newline=None)


def waiting_view(stream: Any, fd: int = 1) -> Any:
    """``stream`` if it is no non-blocking standard output (``fd`` 2: standard error), else a text stream on the same
    descriptor, with the same encoding, errors and buffering, whose writes wait for room rather than fail with EAGAIN.

    Standard error needs it as much: Python's is unbuffered, and an unbuffered write that finds the pipe full is
    dropped without a word, so a Node.js parent whose event loop was busy lost warnings and the error line itself."""
    try:
        if stream.fileno() != fd or os.get_blocking(fd) or not isinstance(stream, io.TextIOWrapper):
            return stream
    except (AttributeError, OSError, ValueError):  # no descriptor: a caller's StringIO, pytest's capture, Jupyter's
        return stream
    stream.flush()
    unbuffered = not hasattr(stream.buffer, "raw")  # PYTHONUNBUFFERED=1, python -u: each write goes out at once
    raw = _WaitingWriter(fd)
    return io.TextIOWrapper(raw if unbuffered else io.BufferedWriter(raw), encoding=stream.encoding,
                            errors=stream.errors, newline="\n", line_buffering=stream.line_buffering,
                            write_through=unbuffered or stream.write_through)


def install() -> Any:
    """Point ``sys.stdout`` at a checked view of itself, with no failure yet; returns what to restore."""
    given = sys.stdout
    _failure[0], _settled[0] = None, False
    if given is not None and not isinstance(given, _Checked):
        sys.stdout = _Checked(waiting_view(given), given)
    return given


def restore(given: Any) -> None:
    """``sys.stdout`` back to the stream ``install()`` found, unless something else replaced it since; what a
    view of it still buffers is written first."""
    checked = sys.stdout
    if isinstance(checked, _Checked) and checked._given is given:
        if checked._stream is not given:
            try:
                checked._stream.flush()
            except OSError as e:
                _failed(e)
        sys.stdout = given


def failure() -> Optional[OSError]:
    """The failed write to standard output that no one has reported or excused yet, or None."""
    return None if _settled[0] else _failure[0]


def flushed() -> Optional[OSError]:
    """Flush standard output (its buffered rest must have left now) and return ``failure()``."""
    stream = sys.stdout
    if stream is not None:
        try:
            stream.flush()
        except OSError as e:
            if not isinstance(stream, _Checked):
                _failed(e)
    return failure()


def settle() -> None:
    """The failure has been said: reported as an error, or excused by a side channel that warned it stops
    (``batch --progress-json -``, ``live --stats-json -``); later writes are dropped."""
    if _failure[0] is not None:
        _settled[0] = True


def describe(error: OSError) -> str:
    """The error line's words for a failed write to standard output, as GNU tools say it ("write error: ...")."""
    reason = error.strerror or str(error)
    if error.errno is not None and error.errno == errno.EBADF:
        reason += " (it is closed, or open only for reading)"
    return f"cannot write to standard output: {reason}"

