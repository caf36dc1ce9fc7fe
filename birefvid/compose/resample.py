"""Resizing of (N, C, H, W) tensors: OpenCV on the CPU, ``F.interpolate`` elsewhere.

Hand-dispatched rather than always ``F.interpolate``: on the CPU torch resizes channel-first
tensors an order of magnitude slower than OpenCV resizes the same pixels channel-last (bilinear
360p -> 720p, 3 channels: 23 ms against 1.2 ms on one core here), and the file pipeline resizes
every frame. OpenCV's results equal torch's to float rounding: INTER_LINEAR is bilinear with
half-pixel centres (``align_corners=False``), INTER_AREA is the area average (``mode="area"``).
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

_CV_MAX_CHANNELS = 512  # OpenCV's CV_CN_MAX


def on_cpu_float32(x: Tensor) -> bool:
    """True when ``x`` can go through OpenCV: a float32 CPU tensor without autograd history."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and not x.requires_grad


def resize(x: Tensor, size: tuple[int, int], mode: Literal["area", "bilinear"]) -> Tensor:
    """Resize float (N, C, H, W) to (N, C, h, w): ``area`` to shrink, ``bilinear`` (half-pixel) to grow.

    The result may be channel-last in memory (a view); torch ops accept either layout.
    """
    h, w = int(size[0]), int(size[1])
    if tuple(x.shape[-2:]) == (h, w):
        return x
    if not on_cpu_float32(x) or x.shape[1] > _CV_MAX_CHANNELS:
        if mode == "bilinear":
            return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        return F.interpolate(x, size=(h, w), mode="area")
    interpolation = cv2.INTER_AREA if mode == "area" else cv2.INTER_LINEAR
    channels = x.shape[1]
    # each frame is resized into its slice of one (N, h, w, C) array: stacking per-frame results
    # copied them all once more (two 720p mattes: 1.0 -> 0.5 ms on one core here)
    # (from torch's allocator: with np.empty, 3 of 10 profiling processes here ran ~2.5 ms a 720p
    # frame slower, none of 8 with this; the allocator state behind it was not pinned down)
    out = torch.empty((x.shape[0], h, w) + ((channels,) if channels > 1 else ()), dtype=torch.float32).numpy()
    for item, dst in zip(x, out):
        hwc = np.ascontiguousarray(item.permute(1, 2, 0).numpy())  # free when the frame is channel-last already
        cv2.resize(hwc if channels > 1 else hwc[..., 0], (w, h), dst=dst, interpolation=interpolation)
    return torch.from_numpy(out.reshape(x.shape[0], h, w, channels)).permute(0, 3, 1, 2)


def resize_uint8(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Area-shrink uint8 CPU frames (N, 3, H, W) with OpenCV; the result is (N, 3, h, w), channel-last in memory.

    For thumbnails: shrinking the bytes avoids a full-size float copy of each frame.
    """
    h, w = int(size[0]), int(size[1])
    out = [shrink_area(np.ascontiguousarray(item.permute(1, 2, 0).numpy()), (h, w)).reshape(h, w, -1) for item in x]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)


def resize_uint8_to_float(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Area-shrink uint8 CPU frames (N, 3, H, W) to float32 (N, 3, h, w) in [0, 1], channel-first in memory.

    ``resize_uint8(x, size).float() / 255`` without its last rounding: exact halvings in bytes,
    then the non-integer remainder of the shrink, if any, in float. OpenCV's general area path is
    ~1.6x faster on float32 pixels than on bytes (720p to 426x240 after the halving: 1.2 against
    0.75 ms on one core here, 0.06 ms for the conversion), and the result is no longer rounded to
    whole levels (within half a level of the byte path).
    """
    h, w = int(size[0]), int(size[1])
    out = torch.empty((x.shape[0], x.shape[1], h, w), dtype=torch.float32)
    for i, item in enumerate(x):
        image = _halve_while_twice(np.ascontiguousarray(item.permute(1, 2, 0).numpy()), (h, w))
        pixels = image.astype(np.float32) * np.float32(1.0 / 255.0)
        if image.shape[:2] != (h, w):
            pixels = cv2.resize(pixels, (w, h), interpolation=cv2.INTER_AREA)
        out[i] = torch.from_numpy(pixels.reshape(h, w, -1)).permute(2, 0, 1)
    return out


def _halve_while_twice(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` (H, W, C) halved exactly (OpenCV's SIMD area path) while both sides stay even and >= 2x ``size``."""
    h, w = size
    while image.shape[0] % 2 == 0 and image.shape[1] % 2 == 0 and image.shape[0] >= 2 * h and image.shape[1] >= 2 * w:
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return image


def shrink_area(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """OpenCV area shrink of an (H, W, C) uint8 image to (h, w), halving exactly first while it stays >= 2x.

    OpenCV's exact-halving path is SIMD and its general area path is not: 720p to 426x240 (1/3) took
    2.8 ms on one core here, halving first then 1/1.5 1.4 ms; 1080p to 480x270 2.2 against 0.6 ms.
    Each halving rounds to whole levels (thumbnails move by < 0.4 grey level on average), and a
    non-integer remainder averages over a slightly wider footprint than one area pass.
    """
    h, w = size
    image = _halve_while_twice(image, (h, w))
    if image.shape[:2] == (h, w):
        return image
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
