"""The two shapes every media endpoint takes: a frame source and an image sink.

Both own a file or codec context, so both close idempotently and are context managers.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Iterator, Sequence
from typing import Optional

import numpy as np

from birefvid.frames import Frame, StreamInfo


class ClosesOnce(abc.ABC):
    """``close()`` runs ``_close()`` exactly once, from any thread; a context manager closes on exit."""

    def __init__(self) -> None:
        self._closed = False
        self._close_lock = threading.Lock()

    @abc.abstractmethod
    def _close(self) -> None:
        """Release the underlying resources (called once)."""

    @property
    def closed(self) -> bool:
        """True once ``close()`` ran."""
        return self._closed

    def close(self) -> None:
        """Release the resources; safe to call more than once and from any thread."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._close()

    def __enter__(self):  # noqa: ANN204 - returns the subclass
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Source(ClosesOnce):
    """Yields upright uint8 RGB ``Frame``s in presentation order and describes its stream."""

    @property
    @abc.abstractmethod
    def info(self) -> StreamInfo:
        """Size (after rotation), timing and colour facts of the stream."""

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Frame]:
        """Decode frames from the start; a source is read once, by one thread."""


class Sink(abc.ABC):
    """Receives batches of images with their pts; ``close()`` commits the output, ``abort()`` discards it.

    Calls are serialised by a lock so a runner may ``abort()`` from another thread while a
    writer thread is inside ``write()``.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._finished = False

    def write(self, images: np.ndarray, pts: Sequence[Optional[int]]) -> None:
        """Encode a batch of N images (layout set by the sink's kind) stamped with ``pts``."""
        with self._lock:
            if self._finished:
                raise ValueError("write() on a sink that is already closed or aborted")
            if len(pts) != len(images):
                raise ValueError(f"write() got {len(images)} images but {len(pts)} pts")
            self._validate(images)
            try:
                self._write(images, pts)
            except BaseException:
                self._finished = True
                self._abort()
                raise

    def close(self) -> None:
        """Flush the encoder, finalise the container and move it onto the target path (idempotent)."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
            try:
                self._close()
            except BaseException:
                self._abort()
                raise

    def abort(self) -> None:
        """Drop everything written so far and remove the temporary output (idempotent)."""
        with self._lock:
            if self._finished:
                # close() may have failed midway; _abort is itself idempotent.
                self._abort()
                return
            self._finished = True
            self._abort()

    @abc.abstractmethod
    def _validate(self, images: np.ndarray) -> None:
        """Raise ValueError when ``images`` does not have this sink's layout (nothing is aborted)."""

    @abc.abstractmethod
    def _write(self, images: np.ndarray, pts: Sequence[Optional[int]]) -> None: ...

    @abc.abstractmethod
    def _close(self) -> None: ...

    @abc.abstractmethod
    def _abort(self) -> None: ...

    def __enter__(self) -> "Sink":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
