"""Guided upsampling of the model's matte to the frame's size: edges that follow the picture.

BiRefNet sees the frame at its inference size (1024² for the published models, 256² for ``tiny``)
and its matte is brought to the frame's size by bilinear interpolation, which blurs the edge of a
4K or 1080p frame over several pixels. He and Sun's *fast guided filter* (arXiv:1505.00996)
instead fits, in each small window at the inference size, alpha as a linear function of the
frame's brightness (alpha ≈ a·I + b), upsamples the coefficients a and b, and applies them to the
full-size brightness: the edge lands where the picture's edge is. The result is used only on the
matte's soft band and across its steps, with a margin (there the coefficients are set to a = 0,
b = alpha before upsampling, so the result is exactly the bilinear matte), so texture in a flat
background or inside the subject cannot leak into it.

Gray guide, radius 1 and eps 1e-5 at the inference size were chosen with
``scripts/bench_edges.py`` (generated scenes with exact mattes, ``tiny`` at 256²).
On a CPU the work is OpenCV's box filters and resizes; elsewhere the same steps in torch.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .resample import resize

#: window radius at the inference size, and the regulariser of the local linear fit
RADIUS = 1
EPS = 1e-5
#: alpha from one to the other is soft; the guided result is used on soft pixels and across steps
SOFT_LOW, SOFT_HIGH = 0.01, 0.99
#: the band grows by this many pixels at the inference size (a few at the frame's size)
BAND_MARGIN = 1

# BT.601 luma weights, as OpenCV's RGB -> gray
_LUMA = (0.299, 0.587, 0.114)


def guided_upsample(images: Tensor, alphas: Tensor, radius: int = RADIUS, eps: float = EPS) -> Tensor:
    """Mattes (N, 1, h, w) in [0, 1] brought to the frames' size (N, 3, H, W, uint8) along the frames' edges.

    Float32 (N, 1, H, W) on the frames' device; unchanged when the sizes already match.
    """
    size = tuple(images.shape[-2:])
    if tuple(alphas.shape[-2:]) == size:
        return alphas
    if images.device.type == "cpu" and images.dtype == torch.uint8:
        out = [_upsample_cv2(image, alpha[0].float().contiguous().numpy(), radius, eps) for image, alpha in zip(images, alphas)]
        return torch.from_numpy(np.stack(out)[:, None])
    return _upsample_torch(images, alphas.float(), radius, eps)


def _upsample_cv2(image: Tensor, alpha: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """One frame (3, H, W) uint8 and its matte (h, w) float32 -> (H, W) float32, with OpenCV."""
    h, w = alpha.shape
    rgb = np.ascontiguousarray(image.permute(1, 2, 0).numpy())  # decoded frames are channel-last already: no copy
    H, W = rgb.shape[:2]
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    guide = cv2.resize(gray, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) * np.float32(1 / 255)  # what the model saw
    a, b = _coefficients(guide, alpha, eps, lambda x: cv2.boxFilter(x, -1, (2 * radius + 1,) * 2, borderType=cv2.BORDER_REFLECT))
    # off the band a = 0 and b = alpha: there the result is the bilinear matte itself, exactly
    off = _band_cv2(alpha) == 0
    a[off], b[off] = 0.0, alpha[off]
    out = cv2.multiply(cv2.resize(a, (W, H), interpolation=cv2.INTER_LINEAR), gray, scale=1 / 255, dtype=cv2.CV_32F)
    out += cv2.resize(b, (W, H), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0, out=out)


def _band_cv2(alpha: np.ndarray) -> np.ndarray:
    """uint8 (h, w), nonzero on soft pixels and on both sides of a hard step (bilinear makes it soft at
    the frame's size), grown by ``BAND_MARGIN``."""
    step = cv2.morphologyEx(alpha, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > SOFT_LOW
    band = ((cv2.inRange(alpha, SOFT_LOW, SOFT_HIGH) > 0) | step).astype(np.uint8)
    return cv2.dilate(band, np.ones((2 * BAND_MARGIN + 1,) * 2, np.uint8)) if BAND_MARGIN else band


def _coefficients(guide, alpha, eps: float, box):  # type: ignore[no-untyped-def]
    """The fast guided filter's smoothed a and b at the inference size, numpy or torch alike (``box``: the window mean)."""
    mean_i, mean_p = box(guide), box(alpha)
    cov = box(guide * alpha) - mean_i * mean_p
    var = box(guide * guide) - mean_i * mean_i
    a = cov / (var + eps)
    b = mean_p - a * mean_i
    return box(a), box(b)


def _upsample_torch(images: Tensor, alphas: Tensor, radius: int, eps: float) -> Tensor:
    """The same steps in torch (GPU frames, or float frames): box filters as reflect-padded average pools."""
    H, W = images.shape[-2:]
    h, w = alphas.shape[-2:]
    weights = torch.tensor(_LUMA, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    scale = 1 / 255 if images.dtype == torch.uint8 else 1.0
    gray = (images.float() * weights).sum(dim=1, keepdim=True) * scale
    guide = F.adaptive_avg_pool2d(gray, (h, w)) if H % h == 0 and W % w == 0 else F.interpolate(gray, (h, w), mode="area")
    k = 2 * radius + 1

    def box(x: Tensor) -> Tensor:
        return F.avg_pool2d(F.pad(x, (radius,) * 4, mode="reflect"), k, stride=1)

    a, b = _coefficients(guide, alphas, eps, box)
    neighbours_max = F.max_pool2d(F.pad(alphas, (1,) * 4, mode="replicate"), 3, stride=1)
    neighbours_min = -F.max_pool2d(F.pad(-alphas, (1,) * 4, mode="replicate"), 3, stride=1)
    step = (neighbours_max - neighbours_min) > SOFT_LOW
    band = (((alphas >= SOFT_LOW) & (alphas <= SOFT_HIGH)) | step).float()  # inclusive, as cv2.inRange
    if BAND_MARGIN:
        band = F.max_pool2d(band, 2 * BAND_MARGIN + 1, stride=1, padding=BAND_MARGIN)
    on = band > 0
    a, b = torch.where(on, a, torch.zeros_like(a)), torch.where(on, b, alphas)
    return (resize(a, (H, W), "bilinear") * gray + resize(b, (H, W), "bilinear")).clamp_(0.0, 1.0)
