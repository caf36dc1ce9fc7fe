"""The two shapes every media endpoint takes: a frame source and an image sink.

Both own a file or codec context, so both close idempotently and are context managers.
"""

from __future__ import annotations

import abc
import os
import re
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Optional

import numpy as np

from birefvid.errors import SourceError
from birefvid.frames import Frame, StreamInfo

if TYPE_CHECKING:
    import av.container

    from birefvid.io.atomic import _AtomicTarget

# a smaller picture holds no subject to cut out, and codecs and compositing refuse pictures of 1 px
MIN_PICTURE_SIDE = 8
# inputs a file job may read over the network (a live stream is ``birefvid live``'s)
URL_SCHEMES = ("http", "https")
# seconds a media file read over http(s) may take to answer, to open and to deliver more data
URL_TIMEOUT_S = 30.0


def is_url(text: object) -> bool:
    """True when ``text`` is an http(s):// address rather than a local path."""
    return isinstance(text, str) and text.split("://", 1)[0].lower() in URL_SCHEMES and "://" in text


def ffmpeg_name(path: object) -> str:
    """A local file's name as FFmpeg opens it: ``./`` before a relative name whose first part FFmpeg takes for a
    protocol (``cam:1.mp4``, a camera's ``2024-05-01T12:30:00.mp4``: 'Protocol not found'); others as they are."""
    text = str(path)
    head = re.split(r"[/\\]", text, maxsplit=1)[0]
    if ":" not in head or is_url(text) or os.path.isabs(text) or re.match(r"^[A-Za-z]:[/\\]", text):
        return text
    return os.path.join(".", text)


def open_media(path: object) -> "av.container.InputContainer":
    """``av.open(path)`` for reading its sound, subtitles or chapters; a URL with ``URL_TIMEOUT_S``: without one, a
    server that stopped sending hung the run for good, and a Ctrl-C (a notebook's stop button) with it. A URL
    that does not answer in time is a SourceError, which the probes (``has_audio``, ...) pass on: it says
    nothing about what the input holds, and read as "no sound" it dropped the sound without a word."""
    import av

    name = ffmpeg_name(path)
    if not is_url(name):
        return av.open(name)
    try:
        return av.open(name, timeout=URL_TIMEOUT_S)
    except av.error.ExitError as e:  # FFmpeg's words for its timeout: "Immediate exit requested"
        raise url_timed_out(name) from e


def url_timed_out(name: str) -> SourceError:
    """The error for a URL that sent nothing for ``URL_TIMEOUT_S``, when opened or partway through (FFmpeg's ExitError)."""
    from birefvid.urls import shown_url

    return SourceError(f"no answer from {shown_url(name)} within {URL_TIMEOUT_S:g} s")


def check_picture_size(width: int, height: int, name: object) -> None:
    """SourceError naming ``name`` when a picture is too small to work on (under 8 px a side)."""
    if min(width, height) < MIN_PICTURE_SIDE:
        raise SourceError(f"{name} is {width}x{height} pixels; birefvid needs at least {MIN_PICTURE_SIDE}x{MIN_PICTURE_SIDE}")


class Once:
    """A flag set exactly once, by whichever thread gets there first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.done = False

    def claim(self) -> bool:
        """Set the flag; True for the one caller that set it, False for everyone after."""
        with self._lock:
            first, self.done = not self.done, True
            return first


class ClosesOnce(abc.ABC):
    """``close()`` runs ``_close()`` exactly once, from any thread; a context manager closes on exit."""

    def __init__(self) -> None:
        self._close_once = Once()

    @abc.abstractmethod
    def _close(self) -> None:
        """Release the underlying resources (called once)."""

    @property
    def closed(self) -> bool:
        """True once ``close()`` ran."""
        return self._close_once.done

    def close(self) -> None:
        """Release the resources; safe to call more than once and from any thread."""
        if self._close_once.claim():
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

    def deliver_deep(self) -> bool:
        """Ask for each frame's 16-bit picture too (``Frame.deep``), before iterating; False when this source cannot."""
        return False

    def _claim_iteration(self) -> None:
        """Call first in ``__iter__``: a source is read once, and never after ``close()``."""
        name = type(self).__name__
        if getattr(self, "_iterated", False):
            raise RuntimeError(f"{name} can be iterated only once; open a new one to read again")
        if self.closed:
            raise ValueError(f"{name} is closed")
        self._iterated = True


class Finishes(abc.ABC):
    """An output that is either finished (``close()``: flush, commit) or discarded (``abort()``).

    Each happens once; calls are serialised by a lock, so a runner may ``abort()`` from another
    thread while a writer thread is inside a write. A ``close()`` that fails discards instead, and
    a context manager closes on success and aborts on an exception.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()  # serialises writes with close/abort
        self._finish_once = Once()

    def _check_open(self, call: str) -> None:
        """Call with the lock held before writing: fail when the output is already finished."""
        if self._finish_once.done:
            raise ValueError(f"{call}() after close() or abort() of this output")

    def close(self) -> None:
        """Finish the output (flush encoders, commit files, stop servers); idempotent."""
        with self._lock:
            if not self._finish_once.claim():
                return
            try:
                self._close()
            except BaseException:
                self._abort()
                raise

    def abort(self) -> None:
        """Discard what cannot be finished (temporary files) and release everything; idempotent."""
        with self._lock:
            if self._finish_once.claim():
                self._abort()

    @abc.abstractmethod
    def _close(self) -> None: ...

    @abc.abstractmethod
    def _abort(self) -> None: ...

    def __enter__(self):  # noqa: ANN204 - returns the subclass
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class Sink(Finishes):
    """Receives batches of images with their pts; ``close()`` commits the output, ``abort()`` discards it.

    ``finish()`` does all of ``close()`` but the commit (the encoders flushed, the file completed), so a run
    with several outputs finishes every one before it commits any: one failing to finish then leaves none.
    """

    _finished = False  # finish() done: only the commit is left

    def finish(self) -> None:
        """Complete the output short of committing it (``close()`` then only renames it); idempotent.
        A failure discards the output, as a failing ``close()`` does."""
        with self._lock:
            if self._finish_once.done or self._finished:
                return
            try:
                self._finish()
            except BaseException:
                self.abort()
                raise
            self._finished = True

    def _finish(self) -> None:
        """The part of ``_close()`` before the commit: flush encoders, write trailers (default: nothing to do)."""

    def output_entry(self) -> Optional["_AtomicTarget"]:
        """The temporary entry ``close()`` commits (None: a sink that writes no file), for a run committing several together."""
        return None

    def _check_open(self, call: str) -> None:
        if self._finished:
            raise ValueError(f"{call}() after finish() of this output")
        super()._check_open(call)

    @property
    def sample_bits(self) -> int:
        """Bits a sample of the written pictures holds: 8, or 10-16 for a sink that takes uint16 images and keeps them."""
        return 8

    def frames_held(self) -> Optional[int]:
        """Pictures the output holds so far (None where the sink cannot say): a video of a plate with a missing frame
        holds more than were read, the frame before written again in its place; a GIF fewer, those too close dropped."""
        return None

    def bytes_written(self) -> Optional[int]:
        """Bytes the output holds so far (its temporary file), or None where the sink cannot say: the
        free-space check projects a long run's size from it (``runtime.disk_watch``)."""
        return None

    def write(self, images: np.ndarray, pts: Sequence[Optional[int]]) -> None:
        """Encode a batch of N images (layout set by the sink's kind) stamped with ``pts``."""
        with self._lock:
            self._check_open("write")
            if len(pts) != len(images):
                raise ValueError(f"write() got {len(images)} images but {len(pts)} pts")
            self._validate(images)
            try:
                self._write(images, pts)
            except BaseException:
                self.abort()
                raise

    @abc.abstractmethod
    def _validate(self, images: np.ndarray) -> None:
        """Raise ValueError when ``images`` does not have this sink's layout (nothing is aborted)."""

    @abc.abstractmethod
    def _write(self, images: np.ndarray, pts: Sequence[Optional[int]]) -> None: ...
