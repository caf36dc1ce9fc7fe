"""Background frames for compositing: a flat colour, a still image, or a looping video.

Images and videos are scaled to cover the output size and centre-cropped (like CSS
``object-fit: cover``), so they fill the frame without distortion. A video background plays
one of its frames per output frame (no frame-rate conversion) and loops when it ends.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterator, Optional, Union

import av
import cv2
import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, SourceError
from .colors import is_color, parse_color

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif", ".mpg", ".mpeg", ".ts"})

Size = tuple[int, int]  # (width, height)
DeviceLike = Union[torch.device, str, None]


def _check_size(size: Size) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ConfigError(f"background size must be (width, height), got {size!r}") from None
    if width <= 0 or height <= 0:
        raise ConfigError(f"background size must be positive (width, height), got {size!r}")
    return width, height


def cover(image: np.ndarray, size: Size) -> np.ndarray:
    """Scale an RGB (h, w, 3) uint8 array to cover ``size`` (width, height), then centre-crop to it."""
    width, height = size
    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    if (new_w, new_h) != (w, h):
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return np.ascontiguousarray(image[top : top + height, left : left + width])


class Background:
    """Source of background frames (n, 3, H, W) uint8 at a fixed output size; close() is idempotent."""

    def __init__(self, size: Size, device: DeviceLike = None) -> None:
        self.width, self.height = _check_size(size)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.closed = False

    def frames(self, n: int) -> Tensor:
        """Return the next ``n`` background frames as uint8 (n, 3, H, W) on ``device``."""
        if self.closed:
            raise ValueError(f"{type(self).__name__} is closed")
        if n < 0:
            raise ValueError(f"frames(n) needs n >= 0, got {n}")
        return self._frames(int(n))

    def _frames(self, n: int) -> Tensor:
        raise NotImplementedError

    def close(self) -> None:
        """Release files and decoders; safe to call more than once."""
        self.closed = True

    def __enter__(self) -> "Background":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _StillBackground(Background):
    """A background that never changes; frames() returns a broadcast view (do not write into it)."""

    def __init__(self, image: np.ndarray, size: Size, device: DeviceLike = None) -> None:
        super().__init__(size, device)
        self._image = torch.from_numpy(image).permute(2, 0, 1).contiguous().to(self.device)

    def _frames(self, n: int) -> Tensor:
        return self._image.unsqueeze(0).expand(n, -1, -1, -1)


class ColorBackground(_StillBackground):
    """A flat colour ("#00ff00", "green", "0,255,0" or an RGB triple)."""

    def __init__(self, color: Union[str, tuple[int, int, int]], size: Size, device: DeviceLike = None) -> None:
        width, height = _check_size(size)
        self.color = parse_color(color)
        image = np.empty((height, width, 3), dtype=np.uint8)
        image[:] = self.color
        super().__init__(image, size, device)


class ImageBackground(_StillBackground):
    """A still image file, scaled to cover the frame and centre-cropped."""

    def __init__(self, path: Union[str, os.PathLike], size: Size, device: DeviceLike = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"background not found: {self.path}")
        bgr = cv2.imread(str(self.path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SourceError(f"background image unreadable: {self.path} (expected PNG, JPEG, BMP, WebP or TIFF)")
        super().__init__(cover(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), _check_size(size)), size, device)


class VideoBackground(Background):
    """A video file decoded with PyAV, one frame per output frame, looping at its end.

    The first frame is decoded on open, so an unreadable file fails here rather than mid-run.
    Rotation metadata is not applied.
    """

    def __init__(self, path: Union[str, os.PathLike], size: Size, device: DeviceLike = None) -> None:
        super().__init__(size, device)
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"background not found: {self.path}")
        self._container: Optional[av.container.InputContainer] = None
        self._decoded: Optional[Iterator[av.VideoFrame]] = None
        self.loops = 0
        self._pending: Optional[np.ndarray] = None
        self._open()
        try:
            self._pending = self._next_frame()  # fail at open, not mid-pipeline
        except SourceError:
            self.close()
            raise

    def _open(self) -> None:
        """(Re)open the file from its start; reopening is more robust than seeking for looping."""
        self._close_container()
        try:
            self._container = av.open(str(self.path), mode="r")
        except (av.error.FFmpegError, OSError) as exc:
            raise SourceError(f"background video unreadable: {self.path} ({exc})") from exc
        if not self._container.streams.video:
            self._close_container()
            raise SourceError(f"background video unreadable: {self.path} has no video stream")
        self._decoded = self._container.decode(self._container.streams.video[0])

    def _next_frame(self) -> np.ndarray:
        if self._pending is not None:
            frame, self._pending = self._pending, None
            return frame  # type: ignore[return-value]
        for attempt in range(2):
            try:
                frame = next(self._decoded)  # type: ignore[arg-type]
            except StopIteration:
                if attempt == 1:
                    break
                self.loops += 1
                logger.debug("background video %s ended; looping (loop %d)", self.path, self.loops)
                self._open()
                continue
            except av.error.FFmpegError as exc:
                raise SourceError(f"background video unreadable: {self.path} ({exc})") from exc
            return cover(frame.to_ndarray(format="rgb24"), (self.width, self.height))
        raise SourceError(f"background video has no decodable frames: {self.path}")

    def _frames(self, n: int) -> Tensor:
        if n == 0:
            return torch.empty((0, 3, self.height, self.width), dtype=torch.uint8, device=self.device)
        batch = np.stack([self._next_frame() for _ in range(n)])
        return torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous().to(self.device)

    def _close_container(self) -> None:
        if self._container is not None:
            container, self._container, self._decoded = self._container, None, None
            container.close()

    def close(self) -> None:
        """Close the decoder and file; safe to call more than once."""
        self._close_container()
        super().close()


def open_background(
    spec: Union[str, os.PathLike], size: Size, device: DeviceLike = None
) -> Background:
    """Open a background from a colour string, an image file or a video file, decided in that order.

    Files are told apart by extension; an unknown extension is tried as an image, then as a video.
    """
    if isinstance(spec, str) and is_color(spec):
        return ColorBackground(spec, size, device)
    path = Path(spec)
    if not path.is_file():
        raise SourceError(
            f"background not found: {path} (expected a colour such as '#00ff00', 'green' or '0,255,0', "
            "or the path of an image or video file)"
        )
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return ImageBackground(path, size, device)
    if suffix in VIDEO_EXTENSIONS:
        return VideoBackground(path, size, device)
    if cv2.imread(str(path), cv2.IMREAD_COLOR) is not None:
        return ImageBackground(path, size, device)
    return VideoBackground(path, size, device)
