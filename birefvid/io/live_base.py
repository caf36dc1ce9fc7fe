"""The two shapes of live-mode endpoints: a capture that always offers its newest frame, and a
display sink that takes one composed picture at a time.

Live mode differs from files: frames arrive on the source's clock, old frames are worth nothing
(newest wins), a network source may drop and come back, and outputs are pictures shown or sent
now, not batches encoded later. These contracts keep the live runner ignorant of which camera,
stream, window or server is on the other side.
"""

from __future__ import annotations

import abc
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Literal, Optional

import numpy as np

from birefvid.errors import SourceError, option
from birefvid.frames import Frame, StreamInfo
from birefvid.io.base import ClosesOnce, Finishes

if TYPE_CHECKING:
    from birefvid.io.live_audio import LiveAudioFeed
    from birefvid.runtime.live_effects import EffectSwitch

PictureKind = Literal["rgb", "rgba", "gray"]
SourceState = Literal["starting", "live", "reconnecting", "ended", "failed", "closed"]


@dataclass(frozen=True)
class CapturedFrame:
    """A frame as the live runner receives it.

    ``captured`` is ``time.monotonic()`` when the frame left the decoder (latency is measured from
    here; a file's first frame, which waits for the model's warm-up, is timed again when playing
    starts); ``generation`` counts connections, so a frame from after a reconnect has a higher one
    and the runner knows to reset smoothing; ``stream_time`` is seconds on the source's own clock
    (its pts), used to time recordings.
    """

    frame: Frame
    captured: float
    generation: int
    stream_time: float


class NoFirstPicture(SourceError):
    """``LiveSource.start`` waited its ``timeout`` without a frame (a stream still being retried);
    ``last_failure`` says why its latest try failed, when one did."""

    def __init__(self, message: str, last_failure: Optional[str] = None) -> None:
        super().__init__(message)
        self.last_failure = last_failure


class LiveSource(ClosesOnce):
    """A capture that runs on its own thread and keeps only the newest frame for the reader.

    ``start()`` opens the input (raising ``SourceError`` with one clear line when it cannot, after
    the retry policy) and returns its ``StreamInfo``; ``read(timeout)`` returns the newest frame
    not read before, or None when none arrived within ``timeout``; ``close()`` stops the capture
    thread, never hangs on a blocked network read, and is idempotent.
    """

    @abc.abstractmethod
    def start(self, timeout: Optional[float] = None, stop: Optional[threading.Event] = None) -> StreamInfo:
        """Open the input and start capturing; the first frame has been decoded when this returns
        (NoFirstPicture when none came within ``timeout`` seconds, if given, or before ``stop`` was set)."""

    @abc.abstractmethod
    def read(self, timeout: float) -> Optional[CapturedFrame]:
        """Newest unread frame, or None after ``timeout`` seconds without one."""

    def __init__(self) -> None:
        super().__init__()
        # written by the capture thread, read by anyone (single assignments: no lock needed)
        self._state: SourceState = "starting"
        self._error: Optional[BaseException] = None
        self._dropped = 0
        self._reconnects = 0
        self._reconnects_final = False  # the run took its final figures: a reconnect made now is not counted
        self._reconnects_lock = threading.Lock()
        self._captured = 0
        self._audio_feed: Optional["LiveAudioFeed"] = None

    @property
    def state(self) -> SourceState:
        """``live`` while frames flow; ``reconnecting`` during an outage; ``ended`` after the last
        frame of a finite input; ``failed`` when the retry policy gave up (see ``error``)."""
        return self._state

    @property
    def error(self) -> Optional[BaseException]:
        """Why the source failed (a ``SourceError``), once ``state`` is ``failed``."""
        return self._error

    @property
    def keeps_capturing(self) -> bool:
        """True for cameras and streams, whose frames keep coming (and the older ones go) whether
        read or not; False for a file, which waits for its reader."""
        return True

    @property
    def audio(self) -> Optional["LiveAudioFeed"]:
        """The source's sound for recordings, once ``start()`` returned (None: none, or not asked for)."""
        return self._audio_feed

    def finish_sound(self) -> None:
        """Before a normal stop finishes the recordings: let the sound of the newest picture reach ``audio`` (a
        microphone hands it over a moment later, see ``LiveCapture.finish_sound``); bounded, about a second at most."""

    @property
    def dropped(self) -> int:
        """Frames captured but replaced by a newer one before anyone read them."""
        return self._dropped

    @property
    def reconnects(self) -> int:
        """Successful reconnections so far."""
        return self._reconnects

    def final_reconnects(self) -> int:
        """Fix the reconnect count for the run's final report: one the capture thread completes while the run
        shuts down is then neither counted nor used (it was logged, "92 so far", but missing from the report)."""
        with self._reconnects_lock:
            self._reconnects_final = True
            return self._reconnects

    def _count_reconnect(self) -> bool:
        """Count a reconnect made on the capture thread; False, uncounted, once ``final_reconnects`` was called."""
        with self._reconnects_lock:
            if self._reconnects_final:
                return False
            self._reconnects += 1
            return True

    @property
    def frames_captured(self) -> int:
        """Frames decoded so far, read or not (the source fps is computed from this)."""
        return self._captured

    def close(self) -> None:
        """Stop the capture thread and release the input; safe to call twice and from any thread."""
        super().close()


class LiveSink(Finishes):
    """Takes composed pictures one at a time: (H, W, 3) rgb, (H, W, 4) rgba or (H, W) gray uint8.

    A sink is opened by its constructor, which does every check that can fail (port in use,
    unwritable path, missing library or device) and raises ``SinkError`` with one clear line.
    ``send(picture, t)`` delivers one picture; ``t`` is seconds since the first picture on the
    source's clock (recorders and streams stamp it as the pts). ``close()`` finishes the output
    (a recording is committed), ``abort()`` discards it; both are idempotent.
    """

    #: picture kinds this sink can carry (e.g. H.264 streams carry no alpha)
    accepts: frozenset[str] = frozenset({"rgb", "rgba", "gray"})
    #: True for displays and streams that should keep showing the last picture while the source
    #: reconnects (the runner repeats it); False for recordings, which keep only what was captured
    holds_last: bool = True
    #: True when every call must come from the thread that opened the sink (GUI windows); the
    #: runner then feeds it from its own thread instead of the sink-writer thread
    needs_main_thread: bool = False

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """What the user passed as --sink (for logs and errors)."""

    def attach_effects(self, effects: "EffectSwitch") -> None:
        """Let this sink switch the run's effect (a ``runtime.live_effects.EffectSwitch``): the preview
        window's keys, the preview page's buttons. Other sinks only show what they are given."""

    def attach_source(self, source: "LiveSource") -> None:
        """Let this sink say what the run's source is doing (the preview page: "reconnecting");
        other sinks only show what they are given."""

    def send(self, picture: np.ndarray, t: float) -> None:
        """Deliver one picture; raises ``SinkError`` when the output broke."""
        with self._lock:
            self._check_open("send")
            self._send(picture, t)

    def idle(self, t: float) -> None:
        """The source is out at live time ``t``: nothing new to show; sinks that act on time alone
        (a recording in parts, whose part is over) do it now rather than at the next picture."""
        with self._lock:
            self._check_open("idle")
            self._idle(t)

    def _idle(self, t: float) -> None:
        """Nothing by default: displays and streams are given the last picture again instead."""

    def check_picture(self, picture: np.ndarray, width: int, height: int, why: str = "") -> PictureKind:
        """The picture's kind, after checking this sink accepts it and it has the size the sink was opened for."""
        kind = picture_kind(picture)
        if kind not in self.accepts:
            raise ValueError(f"sink {self.name} takes {' or '.join(sorted(self.accepts))} pictures{why}, got {kind}")
        if picture.shape[:2] != (height, width):
            raise ValueError(f"sink {self.name} was opened for {width}x{height}, got a {picture.shape[1]}x{picture.shape[0]} picture")
        return kind

    @abc.abstractmethod
    def _send(self, picture: np.ndarray, t: float) -> None: ...

    def _abort(self) -> None:
        self._close()


def pictures_named(kind: str, effect: Optional[str] = None) -> str:
    """How messages name what a sink is given: the ``effect`` the user chose (``--effect alpha``), else ``kind`` pictures."""
    return option("effect", effect) if effect else f"{kind} pictures"


def picture_kind(picture: np.ndarray) -> PictureKind:
    """rgb, rgba or gray from a picture's shape; ValueError for anything else."""
    if isinstance(picture, np.ndarray) and picture.dtype == np.uint8:
        if picture.ndim == 2:
            return "gray"
        if picture.ndim == 3 and picture.shape[2] in (3, 4):
            return "rgb" if picture.shape[2] == 3 else "rgba"
    got = f"{getattr(picture, 'dtype', type(picture).__name__)} {getattr(picture, 'shape', '')}"
    raise ValueError(f"a live picture must be uint8 (H, W), (H, W, 3) or (H, W, 4), got {got}")


#: side of one checkerboard square, in picture pixels
CHECKER_SQUARE = 16
#: grey levels of the checkerboard's light and dark squares
CHECKER_LIGHT, CHECKER_DARK = 204, 153


def checkerboard(height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8 light/dark grey squares, the usual backdrop that makes transparency visible."""
    ys = (np.arange(height) // CHECKER_SQUARE)[:, None]
    xs = (np.arange(width) // CHECKER_SQUARE)[None, :]
    level = np.where((ys + xs) % 2 == 0, CHECKER_LIGHT, CHECKER_DARK).astype(np.uint8)
    return np.repeat(level[:, :, None], 3, axis=2)


def over_checkerboard(picture: np.ndarray, board: Optional[np.ndarray] = None) -> np.ndarray:
    """An (H, W, 4) rgba picture shown over ``board`` (default: a fresh checkerboard), as (H, W, 3) uint8 rgb.

    Screens and JPEG have no alpha; the window and the browser preview both show it this way.
    """
    backdrop = (board if board is not None else checkerboard(*picture.shape[:2])).astype(np.uint16)
    alpha = picture[:, :, 3:4].astype(np.uint16)
    return ((picture[:, :, :3] * alpha + backdrop * (255 - alpha) + 127) // 255).astype(np.uint8)


def square_pixel_size(width: int, height: int, sample_aspect_ratio: Optional[Fraction]) -> tuple[int, int]:
    """(width, height) of a ``width`` x ``height`` picture of non-square pixels shown with square ones.

    A D1 camera's 704x576 at 12:11 is 768x576 on a screen (ffmpeg's ``scale=iw*sar:ih``: the width changes)."""
    if not sample_aspect_ratio or sample_aspect_ratio == 1:
        return width, height
    return max(1, round(width * sample_aspect_ratio)), height


def to_square_pixels(picture: np.ndarray, sample_aspect_ratio: Optional[Fraction]) -> np.ndarray:
    """``picture`` (H, W[, C]) resized to square pixels, for what shows pictures but cannot say their
    pixel shape (a window, a virtual camera, a browser's JPEG); unchanged when they are square already."""
    height, width = picture.shape[:2]
    size = square_pixel_size(width, height, sample_aspect_ratio)
    if size == (width, height):
        return picture
    import cv2

    shrinking = size[0] < width
    return cv2.resize(picture, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
