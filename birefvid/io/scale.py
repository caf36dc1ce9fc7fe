"""``--max-size N``: scale a source down so its longer side is at most N px, before anything else sees it.

A GIF or a web preview of a 4K clip wants a few hundred pixels, and every stage after the decoder
(the model's input resize, smoothing, compositing, encoding) then works on the small picture.
OpenCV's area filter averages the pixels each output pixel covers, the right filter for shrinking.
Sizes are rounded to even numbers, as 4:2:0 video needs, the longer side down (never over the limit);
the aspect ratio moves by about a pixel. A limit that would leave the shorter side under 8 px is refused.

Also here: non-square pixels resized to square ones for outputs that cannot record a pixel shape
(GIF, WebP, APNG), before ``--max-size`` applies, so its limit holds for the picture as shown.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import cv2

from birefvid.errors import ConfigError, option
from birefvid.frames import Frame, StreamInfo
from birefvid.io.base import MIN_PICTURE_SIDE, Source
from birefvid.io.formats import is_animation_target
from birefvid.io.live_base import square_pixel_size
from birefvid.io.untagged import rgb_matrix


def scaled_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) shrunk so the longer side is at most ``max_side``, aspect kept, even; never enlarged.

    The longer side becomes the even number at or under ``max_side`` (rounding the scaled side could
    overshoot an odd limit: 63 gave 64), the shorter one the nearest even size to the same scale. A
    shorter side that would fall under birefvid's 8 px is a ConfigError naming the smallest limit that
    works, rather than a picture squeezed out of its aspect.
    """
    long_side, short_side = max(width, height), min(width, height)
    if max_side >= long_side:
        return width, height
    new_long = max_side - max_side % 2
    new_short = _even_short(long_side, short_side, new_long)
    if new_short < MIN_PICTURE_SIDE:
        raise ConfigError(
            f"{option('max_size', max_side)} would make the {width}x{height} input {new_short} px on its shorter side; "
            f"birefvid needs at least {MIN_PICTURE_SIDE}: use {option('max_size', _smallest_limit(long_side, short_side))} or more"
        )
    return (new_long, new_short) if width >= height else (new_short, new_long)


def _even_short(long_side: int, short_side: int, new_long: int) -> int:
    """The shorter side at the scale that makes the longer one ``new_long``: the nearest even size (halves up)."""
    return 2 * int(short_side * new_long / long_side / 2 + 0.5)


def _smallest_limit(long_side: int, short_side: int) -> int:
    """The smallest ``max_side`` whose scaled shorter side is still 8 px (or the size itself, unscaled)."""
    limit = MIN_PICTURE_SIDE
    while limit < long_side and _even_short(long_side, short_side, limit) < MIN_PICTURE_SIDE:
        limit += 2
    return min(limit, long_side)


def still_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) of a still picture shrunk so its longer side is exactly ``max_side`` (never enlarged): unlike
    video, a still needs no even sides, and ``image --max-size 1001`` gives 1001 px, not 1000."""
    long_side, short_side = max(width, height), min(width, height)
    if max_side >= long_side:
        return width, height
    new_short = max(1, round(short_side * max_side / long_side))
    if new_short < MIN_PICTURE_SIDE:
        raise ConfigError(f"{option('max_size', max_side)} would make the {width}x{height} picture {new_short} px on its shorter side; "
                          f"birefvid needs at least {MIN_PICTURE_SIDE}")  # fmt: skip
    return (max_side, new_short) if width >= height else (new_short, max_side)


def shrink_still(max_side: int, *pictures: Any, whole: Optional[tuple[int, int]] = None) -> list[Any]:
    """``pictures`` (H x W [x C] arrays of one size, None passed through: a photo, its 16-bit copy, its own alpha)
    area-averaged down to ``still_size``, so the model, compositing and writing work on the small picture.
    ``whole``: the (width, height) they stand for when decoded smaller (a JPEG's draft), which sets that size."""
    first = next(p for p in pictures if p is not None)
    size = still_size(*(whole or (first.shape[1], first.shape[0])), max_side)
    if size == (first.shape[1], first.shape[0]):
        return list(pictures)
    return [None if p is None else cv2.resize(p, size, interpolation=cv2.INTER_AREA) for p in pictures]


def _matrix_by_size(info: StreamInfo, size: tuple[int, int]) -> bool:
    """Whether the YUV matrix of ``info``'s outputs is chosen again for ``size``: it was no fact of the source but a
    choice by its size (RGB pictures, or an untagged clip's assumed matrix), which resizing changes. A 720p plate or
    untagged 720p clip at 640x360 is then BT.601, as players that ignore the tag take that size; kept BT.709, it was
    up to 32 levels off in them. A matrix the source names is kept, as FFmpeg's scaler keeps it."""
    return (info.rgb_pictures or info.matrix_assumed) and size != (info.width, info.height)


class ResizedSource(Source):
    """``inner``'s frames resized to ``size`` (W, H), area-averaged when shrinking (frames already that size pass as they are)."""

    def __init__(self, inner: Source, size: tuple[int, int], **info_changes: Any) -> None:
        super().__init__()
        self.inner = inner
        self.size = size
        if _matrix_by_size(inner.info, size):
            info_changes = {"colorspace": rgb_matrix(*size), **info_changes}
        self._info: StreamInfo = dataclasses.replace(inner.info, width=size[0], height=size[1], **info_changes)
        shrinking = size[0] * size[1] < inner.info.width * inner.info.height
        self._interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR

    @property
    def info(self) -> StreamInfo:
        return self._info

    def deliver_deep(self) -> bool:
        return self.inner.deliver_deep()

    def __iter__(self) -> Iterator[Frame]:
        how = self._interpolation
        for frame in self.inner:
            if frame.image.shape[1::-1] != self.size:
                deep = None if frame.deep is None else cv2.resize(frame.deep, self.size, interpolation=how)
                coverage = None if frame.coverage is None else cv2.resize(frame.coverage, self.size, interpolation=how)
                frame = dataclasses.replace(frame, image=cv2.resize(frame.image, self.size, interpolation=how), deep=deep,
                                            coverage=coverage)  # fmt: skip
            yield frame

    def _close(self) -> None:
        self.inner.close()


class ScaledSource(ResizedSource):
    """``inner``'s frames shrunk to ``scaled_size(..., max_side)`` (frames already that small pass as they are)."""

    def __init__(self, inner: Source, max_side: int) -> None:
        info = inner.info
        super().__init__(inner, scaled_size(info.width, info.height, max_side))


class SquarePixelSource(ResizedSource):
    """``inner``'s frames of non-square pixels (a DVD's or D1 camera's) resized to square ones, for an output
    that cannot record a pixel shape (GIF, WebP, APNG): 720x480 at 10:11 becomes 654x480, not a squeezed 720x480."""

    def __init__(self, inner: Source) -> None:
        info = inner.info
        super().__init__(inner, square_pixel_size(info.width, info.height, info.sample_aspect_ratio), sample_aspect_ratio=None)


def needs_square_pixels(output: str | Path, info: StreamInfo) -> bool:
    """Whether ``output`` cannot say ``info``'s non-square pixel shape (an animation) and so gets square pixels."""
    return bool(info.sample_aspect_ratio) and info.sample_aspect_ratio != 1 and is_animation_target(output)
