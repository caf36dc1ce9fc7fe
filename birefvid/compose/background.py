"""Background frames for compositing: a flat colour, a still picture, or a stream of pictures.

Pictures are scaled to cover the output size and centre-cropped (like CSS ``object-fit: cover``),
so they fill the frame without distortion. This module only turns pixels into tensors; reading
image and video files is ``birefvid.io``'s job, and ``birefvid.runtime.backgrounds`` joins the two.
"""

from __future__ import annotations

from typing import Optional, Protocol, Sequence, Union

import cv2
import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from ..colors import parse_color

Size = tuple[int, int]  # (width, height)
# seconds an output frame's time may go back and be held (frames a little out of order); further back is a clock
# that started over (a caller's second clip, a source that restarted its clock): the video plays on from there
BACK_HELD_S = 0.25
DeviceLike = Union[torch.device, str, None]


class FrameProvider(Protocol):
    """Anything that hands out RGB pictures one at a time and can be closed (a looping video)."""

    def next_frame(self) -> np.ndarray: ...

    # optional: ``frame_at(seconds) -> np.ndarray``, the picture shown that long after the first (a video by its timestamps)

    def close(self) -> None: ...


def _check_size(size: Size) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ConfigError(f"background size must be (width, height), got {size!r}") from None
    if width <= 0 or height <= 0:
        raise ConfigError(f"background size must be positive (width, height), got {size!r}")
    return width, height


def cover(image: np.ndarray, size: Size, pixel_aspect: float = 1.0) -> np.ndarray:
    """Scale an RGB (h, w, 3) uint8 array to cover ``size`` (width, height), then centre-crop to it.

    ``pixel_aspect``: how much wider than tall the output's pixels are shown, relative to the
    picture's (an anamorphic DV frame's 32/27 for a square-pixel photo): the picture is covered
    as it will be seen, so a circle in it stays a circle on screen.
    """
    width, height = size
    h, w = image.shape[:2]
    seen_w = w / pixel_aspect  # the picture's width in output pixels, before scaling
    scale = max(width / seen_w, height / h)
    new_w, new_h = max(width, round(seen_w * scale)), max(height, round(h * scale))
    if (new_w, new_h) != (w, h):
        interpolation = cv2.INTER_AREA if new_w * new_h < w * h else cv2.INTER_LINEAR
        image = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return np.ascontiguousarray(image[top : top + height, left : left + width])


def _as_unit_float(pixels: Tensor) -> Tensor:
    """uint8 or uint16 pixels as float in [0, 1]."""
    scale = 65535.0 if pixels.dtype == torch.uint16 else 255.0
    return pixels.float().div_(scale)


class Background:
    """Source of background frames (n, 3, H, W) uint8 at a fixed output size; close() is idempotent.

    ``pixel_aspect`` is the output's pixel aspect over the pictures' (see ``cover``). ``deep``: frames
    come as float in [0, 1] instead, from the picture's 16 bits where it has them (a 16-bit PNG or
    TIFF, a 10-bit video), for a compositor that writes more than 8 bits.
    """

    def __init__(self, size: Size, device: DeviceLike = None, pixel_aspect: float = 1.0, deep: bool = False) -> None:
        self.width, self.height = _check_size(size)
        self.pixel_aspect = float(pixel_aspect)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.deep = deep
        self.closed = False

    def frames(self, n: int, times: Optional[Sequence[Optional[float]]] = None) -> Tensor:
        """Return the next ``n`` background frames as uint8 (n, 3, H, W) on ``device`` (float in [0, 1] when ``deep``).

        ``times``: the output frames' times in seconds (any origin; None where unknown), so that a video
        background plays at its own speed whatever the output's frame rate; without them, one frame each."""
        if self.closed:
            raise ValueError(f"{type(self).__name__} is closed")
        if n < 0:
            raise ValueError(f"frames(n) needs n >= 0, got {n}")
        if times is not None and len(times) != n:
            raise ValueError(f"frames(n, times) needs n times, got {len(times)} for n={n}")
        return self._frames(int(n), times)

    def _frames(self, n: int, times: Optional[Sequence[Optional[float]]] = None) -> Tensor:
        raise NotImplementedError

    def close(self) -> None:
        """Release files and decoders; safe to call more than once."""
        self.closed = True

    def __enter__(self) -> "Background":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StillBackground(Background):
    """A still picture (H, W, 3) uint8 RGB (or uint16 for a ``deep`` one), scaled to cover the frame;
    frames() returns a broadcast view (do not write into it)."""

    def __init__(self, image: np.ndarray, size: Size, device: DeviceLike = None, pixel_aspect: float = 1.0, deep: bool = False) -> None:
        super().__init__(size, device, pixel_aspect, deep)
        picture = cover(image, (self.width, self.height), self.pixel_aspect)
        self._image = torch.from_numpy(picture).permute(2, 0, 1).contiguous().to(self.device)
        if deep:
            self._image = _as_unit_float(self._image)

    def _frames(self, n: int, times: Optional[Sequence[Optional[float]]] = None) -> Tensor:
        return self._image.unsqueeze(0).expand(n, -1, -1, -1)


class ColorBackground(StillBackground):
    """A flat colour ("#00ff00", "green", "0,255,0" or an RGB triple)."""

    def __init__(self, color: Union[str, tuple[int, int, int]], size: Size, device: DeviceLike = None, deep: bool = False) -> None:
        width, height = _check_size(size)
        self.color = parse_color(color)
        image = np.empty((height, width, 3), dtype=np.uint8)
        image[:] = self.color
        super().__init__(image, size, device, deep=deep)


class StreamBackground(Background):
    """Frames from a provider (e.g. a looping video from ``birefvid.io``), one per output frame, each
    scaled to cover the output; ``close()`` also closes the provider."""

    def __init__(self, source: FrameProvider, size: Size, device: DeviceLike = None, pixel_aspect: float = 1.0, deep: bool = False) -> None:
        """``deep``: the provider hands out uint16 pictures (or uint8 ones, widened)."""
        super().__init__(size, device, pixel_aspect, deep)
        self.source = source
        self._start: Optional[float] = None  # the first output frame's time: the background's first frame goes there
        self._last = 0.0  # the last time asked of ``frame_at``, from ``_start``
        self._step = 0.0  # the last step forward between two times: the one a clock that went back is taken to make
        # the most the video moves on between two pictures asked for; past it, it resumes where it was (live: after an
        # outage or a while on another effect, where decoding the time in between in one call froze the display)
        self.max_gap: Optional[float] = None

    def _picture(self, at: Optional[float]) -> np.ndarray:
        """The provider's picture for an output frame at ``at`` seconds (None: its next one, or, once frames have
        come with times, the one of the last time: ``next_frame`` behind ``frame_at``'s back skipped a frame, and at
        the video's end reopened it under ``frame_at``, which then decoded a whole loop again in one call)."""
        frame_at = getattr(self.source, "frame_at", None)
        if frame_at is None or (at is None and self._start is None):
            return self.source.next_frame()
        if at is not None:
            if self._start is None:
                self._start = at
            elif self.max_gap is not None and at - self._start - self._last > self.max_gap:
                self._start = at - self._last
            elif at - self._start < self._last - BACK_HELD_S:  # the clock went back: a frame's step on, not frozen
                self._start = at - self._last - self._step  # until it caught up (frame_at decodes forward only)
            last, self._last = self._last, max(0.0, at - self._start)
            if self._last > last:
                self._step = self._last - last
        return frame_at(self._last)

    def _frames(self, n: int, times: Optional[Sequence[Optional[float]]] = None) -> Tensor:
        if n == 0:
            return torch.empty((0, 3, self.height, self.width), dtype=torch.float32 if self.deep else torch.uint8, device=self.device)
        at = list(times) if times is not None else [None] * n
        batch = np.stack([cover(self._picture(t), (self.width, self.height), self.pixel_aspect) for t in at])
        frames = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous().to(self.device)
        return _as_unit_float(frames) if self.deep else frames

    def close(self) -> None:
        """Close the provider; safe to call more than once."""
        if not self.closed:
            self.source.close()
        super().close()
