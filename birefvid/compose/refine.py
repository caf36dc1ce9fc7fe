"""Matte shaping before compositing: a hard threshold, growing or shrinking the edge, feathering, inverting.

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

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..job import MatteSpec

__all__ = ["disk", "refine_mattes"]


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


def _refine_cpu(alphas: Tensor, spec: MatteSpec) -> Tensor:
    out = torch.empty(alphas.shape, dtype=torch.float32)
    for i in range(alphas.shape[0]):
        plane, dst = alphas[i, 0].float().contiguous().numpy(), out[i, 0].numpy()
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
        # every step above wrote into dst, out's own plane
        if spec.invert:
            cv2.subtract(1.0, plane, dst=dst)
    return out


def refine_torch(alphas: Tensor, spec: MatteSpec) -> Tensor:
    """``refine_mattes`` in torch, for mattes on a GPU (runs anywhere; the CPU uses OpenCV)."""
    x = alphas.float()
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
