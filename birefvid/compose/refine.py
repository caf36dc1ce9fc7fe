"""Matte shaping before compositing: dropping stray blobs, a hard threshold, growing or shrinking the edge,
feathering, inverting.

What users of background removers reach for when the model's soft edge is not what they want:
a hard edge for a clean key or a binary mask, a few pixels shrunk off to cut a rim of the old
background (the "halo"), or a softer edge for a video call. Done at the output's size, so the
pixel counts are the output's pixels, and on (N, 1, H, W) float mattes in [0, 1].

On the CPU OpenCV does it (a 1080p frame: ~1 ms to dilate by 2 px, ~2 ms to feather by 4);
elsewhere torch: a disk dilation as one max-pool per kernel row, a Gaussian from kornia. Both
give the same result (the tests compare them on the CPU).
"""

from __future__ import annotations

import functools
import math
from typing import Optional

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..job import MatteSpec

__all__ = ["disk", "refine_mattes", "small_parts"]


@functools.lru_cache(maxsize=32)
def disk(radius: int) -> np.ndarray:
    """A flat disk of ``radius`` pixels as a uint8 kernel (2r+1, 2r+1): the pixels within r + 0.5 of the centre.

    Not OpenCV's MORPH_ELLIPSE, whose small ellipses are lopsided (radius 2: rows of 1, 5, 5, 5, 1 pixels).
    """
    offsets = np.arange(-radius, radius + 1)
    return ((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= (radius + 0.5) ** 2).astype(np.uint8)


def feather_sigma(feather: float) -> float:
    """The Gaussian sigma of a feather of ``feather`` pixels: a hard edge then ramps from 16% to 84% over ``feather`` pixels."""
    return feather / 2.0


def _kernel_size(sigma: float) -> int:
    return 2 * math.ceil(3.0 * sigma) + 1


def refine_mattes(alphas: Tensor, spec: MatteSpec) -> Tensor:
    """``alphas`` (N, 1, H, W) float in [0, 1] shaped by ``spec``; a new tensor (the input is not changed)
    unless ``spec`` changes nothing, when ``alphas`` itself is returned."""
    if not spec.active:
        return alphas
    if alphas.device.type == "cpu":
        return _refine_cpu(alphas, spec)
    return refine_torch(alphas, spec)


# a part of the matte is a connected region above this level (so its soft fringe goes with it); its
# size is its pixels at or above one half, so a faint haze does not count as a large part
PART_LEVEL = 0.05


def small_parts(plane: np.ndarray, min_area: float) -> Optional[np.ndarray]:
    """Boolean (H, W): the pixels of the matte's separate parts whose solid area is under ``min_area``
    percent of the picture (None when there are none). 8-connected, in one OpenCV pass; with the
    clearing, ~7 ms a 1080p frame on one core here."""
    min_pixels = math.ceil(min_area / 100.0 * plane.size)
    count, labels = cv2.connectedComponents((plane > PART_LEVEL).astype(np.uint8), connectivity=8)
    if count <= 1:
        return None
    solid = np.bincount(labels[plane >= 0.5], minlength=count)
    drop = solid < min_pixels
    drop[0] = False  # label 0 is the background
    return drop[labels] if drop.any() else None


def _refine_cpu(alphas: Tensor, spec: MatteSpec) -> Tensor:
    out = torch.empty(alphas.shape, dtype=torch.float32)
    for i in range(alphas.shape[0]):
        plane, dst = alphas[i, 0].float().contiguous().numpy(), out[i, 0].numpy()
        if spec.min_area > 0:
            drop = small_parts(plane, spec.min_area)
            if drop is not None:  # cleared in out's plane, which the steps below then work on in place
                np.copyto(dst, plane)
                np.copyto(dst, np.float32(0.0), where=drop)
                plane = dst
        if spec.threshold is not None:  # OpenCV keeps values above its bound: the float32 just below T keeps T too
            below = float(np.nextafter(np.float32(spec.threshold), np.float32(0.0)))
            plane = cv2.threshold(plane, below, 1.0, cv2.THRESH_BINARY, dst=dst)[1]
        if spec.grow > 0:  # OpenCV's default border counts as neither subject nor background
            plane = cv2.dilate(plane, disk(spec.grow), dst=dst)
        elif spec.grow < 0:
            plane = cv2.erode(plane, disk(-spec.grow), dst=dst)
        if spec.feather > 0:
            sigma = feather_sigma(spec.feather)
            size = _kernel_size(sigma)
            plane = cv2.GaussianBlur(plane, (size, size), sigma, dst=dst, borderType=cv2.BORDER_REFLECT_101)
        if spec.invert:
            cv2.subtract(1.0, plane, dst=dst)
        elif not np.shares_memory(plane, dst):  # only min_area ran (or dropped nothing): not yet in out's plane
            np.copyto(dst, plane)
    return out


def refine_torch(alphas: Tensor, spec: MatteSpec) -> Tensor:
    """``refine_mattes`` in torch, for mattes on a GPU (runs anywhere; the CPU uses OpenCV)."""
    x = alphas.float()
    if spec.min_area > 0:  # connected parts have no torch kernel: found on a CPU copy, cleared on the device
        for i in range(x.shape[0]):
            drop = small_parts(x[i, 0].cpu().numpy(), spec.min_area)
            if drop is not None:
                x = x.clone() if x is alphas else x
                x[i, 0].masked_fill_(torch.from_numpy(drop).to(x.device), 0.0)
    if spec.threshold is not None:
        x = (x >= float(np.float32(spec.threshold))).to(torch.float32)  # compared in float32, as on the CPU
    if spec.grow > 0:
        x = _dilate(x, spec.grow)
    elif spec.grow < 0:
        x = -_dilate(-x, -spec.grow)
    if spec.feather > 0:
        from kornia.filters import gaussian_blur2d  # imported here: only non-CPU mattes need it

        sigma = feather_sigma(spec.feather)
        size = _kernel_size(sigma)
        x = gaussian_blur2d(x, (size, size), (sigma, sigma), border_type="reflect")
    if spec.invert:
        x = 1.0 - x
    return x if x is not alphas else x.clone()


def _dilate(x: Tensor, radius: int) -> Tensor:
    """Grey dilation of (N, 1, H, W) by ``disk(radius)``: per kernel row a horizontal max-pool, shifted
    vertically, then the maximum over rows. Max-pooling pads with -inf, like OpenCV's default border."""
    rows = disk(radius).sum(axis=1) // 2  # half-width of each row of the disk
    height = x.shape[-2]
    out = x.clone()
    for dy, half in zip(range(-radius, radius + 1), rows.tolist()):
        if abs(dy) >= height:
            continue
        pooled = F.max_pool2d(x, (1, 2 * half + 1), stride=1, padding=(0, half)) if half else x
        # out[y] = max(out[y], pooled[y + dy]) where y + dy lies in the frame
        if dy >= 0:
            target, source = out[..., : height - dy, :], pooled[..., dy:, :]
        else:
            target, source = out[..., -dy:, :], pooled[..., : height + dy, :]
        torch.maximum(target, source, out=target)
    return out
