"""``--max-size N``: scale a source down so its longer side is at most N px, before anything else sees it.

A GIF or a web preview of a 4K clip wants a few hundred pixels, and every stage after the decoder
(the model's input resize, smoothing, compositing, encoding) then works on the small picture.
OpenCV's area filter averages the pixels each output pixel covers, the right filter for shrinking.
Sizes are rounded to even numbers, as 4:2:0 video needs; the aspect ratio moves by under a pixel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import cv2

from birefvid.frames import Frame, StreamInfo
from birefvid.io.base import MIN_PICTURE_SIDE, Source


def scaled_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) shrunk so the longer side is at most ``max_side``, aspect kept, even; never enlarged."""
    scale = max_side / max(width, height)
    if scale >= 1:
        return width, height

    def even(side: int) -> int:
        return max(MIN_PICTURE_SIDE, 2 * round(side * scale / 2))

    return even(width), even(height)


class ScaledSource(Source):
    """``inner``'s frames shrunk to ``scaled_size(..., max_side)`` (frames already that small pass as they are)."""

    def __init__(self, inner: Source, max_side: int) -> None:
        super().__init__()
        self.inner = inner
        info = inner.info
        self.size = scaled_size(info.width, info.height, max_side)
        self._info: StreamInfo = dataclasses.replace(info, width=self.size[0], height=self.size[1])

    @property
    def info(self) -> StreamInfo:
        return self._info

    def __iter__(self) -> Iterator[Frame]:
        for frame in self.inner:
            if frame.image.shape[1::-1] != self.size:
                frame = dataclasses.replace(frame, image=cv2.resize(frame.image, self.size, interpolation=cv2.INTER_AREA))
            yield frame

    def _close(self) -> None:
        self.inner.close()
