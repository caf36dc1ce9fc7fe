"""Guided upsampling of the model's matte to the frame's size: edges that follow the picture.

BiRefNet sees the frame at its inference size (1024² for the published models, 256² for ``tiny``)
and its matte is brought to the frame's size by bilinear interpolation, which blurs the edge of a
4K or 1080p frame over several pixels. He and Sun's *fast guided filter* (arXiv:1505.00996) with
a colour guide instead fits, in each small window at the inference size, alpha as a linear
function of the frame's colour (alpha ≈ a·RGB + b), upsamples the coefficients a and b, and
applies them to the full-size colours: the edge lands where the picture's edge is, also between
colours of equal brightness. The fit is used only on the matte's soft band and across its steps,
with a margin; off the band the coefficients are set to a = 0, b = alpha before upsampling, so
there the result is exactly the bilinear matte and texture in a flat background or inside the
subject cannot leak into it.

Radius 1 and eps 1e-4 at the inference size, and the colour guide over a gray one, were chosen
with ``scripts/bench_edges.py`` (generated scenes with exact mattes, ``tiny`` at 256²). On a CPU
the work is OpenCV's box filters and resizes, the fit only inside the band's bounding box;
elsewhere the same steps in torch. The two agree within 3e-7 on flat colours; on noisy pictures,
where a fit is steep, float32 rounding at full size leaves up to ~0.01 between them.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .resample import resize

#: window radius at the inference size, and the regulariser of the local linear fit
RADIUS = 1
EPS = 1e-4
#: alpha from one to the other is soft; the fit is used on soft pixels and across steps
SOFT_LOW, SOFT_HIGH = 0.01, 0.99
#: the band grows by this many pixels at the inference size (a few at the frame's size)
BAND_MARGIN = 1

# the six distinct products of two colour channels, for the guide's 3x3 covariance
_PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))


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


def _fit(guide, alpha, eps: float, box: Callable, solve: Callable):  # type: ignore[no-untyped-def,type-arg]
    """The colour guided filter's smoothed coefficients at the inference size, numpy or torch alike.

    ``guide`` (..., 3) and ``alpha`` (...) channel-last; ``box`` is the window mean over the spatial
    axes, ``solve(cov, rhs)`` solves the per-pixel 3x3 systems. Returns a (..., 3) and b (...).
    """
    mean_i, mean_p = box(guide), box(alpha)
    cov_ip = box(guide * alpha[..., None]) - mean_i * mean_p[..., None]
    products = box(_stack([guide[..., i] * guide[..., j] for i, j in _PAIRS]))
    var = [products[..., k] - mean_i[..., i] * mean_i[..., j] for k, (i, j) in enumerate(_PAIRS)]
    a = solve(var, eps, cov_ip)
    b = mean_p - (a * mean_i).sum(-1)
    return box(a), box(b)


def _stack(planes):  # type: ignore[no-untyped-def]
    return torch.stack(planes, -1) if isinstance(planes[0], Tensor) else np.stack(planes, -1)


def _solve_symmetric(var, eps: float, rhs):  # type: ignore[no-untyped-def]
    """Σ⁻¹ rhs per pixel for Σ = [[rr rg rb] [rg gg gb] [rb gb bb]] + eps·I, by its adjugate (numpy or torch)."""
    rr, rg, rb, gg, gb, bb = var
    rr, gg, bb = rr + eps, gg + eps, bb + eps
    inv = (gg * bb - gb * gb, gb * rb - rg * bb, rg * gb - gg * rb, rr * bb - rb * rb, rg * rb - rr * gb, rr * gg - rg * rg)
    det = rr * inv[0] + rg * inv[1] + rb * inv[2]
    i_rr, i_rg, i_rb, i_gg, i_gb, i_bb = inv
    x, y, z = rhs[..., 0], rhs[..., 1], rhs[..., 2]
    return _stack([i_rr * x + i_rg * y + i_rb * z, i_rg * x + i_gg * y + i_gb * z, i_rb * x + i_gb * y + i_bb * z]) / det[..., None]


def _upsample_cv2(image: Tensor, alpha: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """One frame (3, H, W) uint8 and its matte (h, w) float32 -> (H, W) float32, with OpenCV."""
    h, w = alpha.shape
    rgb = np.ascontiguousarray(image.permute(1, 2, 0).numpy())  # decoded frames are channel-last already: no copy
    H, W = rgb.shape[:2]
    # the fit in float64: variances are small differences of large sums, and float32 lost ~1% of a
    # to that (OpenCV's and torch's sums then disagreed); at the inference size it costs little
    guide = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA).astype(np.float64) / 255  # what the model saw

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, (2 * radius + 1,) * 2, borderType=cv2.BORDER_REFLECT_101)  # as torch's "reflect" pad

    band = _band_cv2(alpha)
    a, b = np.zeros((h, w, 3), np.float32), alpha.copy()
    if band.any():
        # the fit only where it is used: the band's bounding box and the 2r + 1 pixels around it that
        # its two box filters read, so the band's values are the same as from a fit of the whole frame
        x, y, bw, bh = cv2.boundingRect(band)
        reach = 2 * radius + 1
        y0, y1, x0, x1 = max(0, y - reach), min(h, y + bh + reach), max(0, x - reach), min(w, x + bw + reach)
        fit = _fit(guide[y0:y1, x0:x1], alpha[y0:y1, x0:x1].astype(np.float64), eps, box, _solve_symmetric)
        a[y0:y1, x0:x1], b[y0:y1, x0:x1] = fit
    off = band == 0  # off the band a = 0 and b = alpha: the bilinear matte itself, exactly
    a[off], b[off] = 0.0, alpha[off]
    weighted = cv2.multiply(cv2.resize(a, (W, H), interpolation=cv2.INTER_LINEAR), rgb, scale=1 / 255, dtype=cv2.CV_32F)
    out = cv2.transform(weighted, np.ones((1, 3), np.float32))  # a·RGB, summed over the channels
    out += cv2.resize(b, (W, H), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0, out=out)


def _band_cv2(alpha: np.ndarray) -> np.ndarray:
    """uint8 (h, w), nonzero on soft pixels and on both sides of a hard step (bilinear makes it soft at
    the frame's size), grown by ``BAND_MARGIN``."""
    step = cv2.morphologyEx(alpha, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > SOFT_LOW
    band = ((cv2.inRange(alpha, SOFT_LOW, SOFT_HIGH) > 0) | step).astype(np.uint8)
    return cv2.dilate(band, np.ones((2 * BAND_MARGIN + 1,) * 2, np.uint8)) if BAND_MARGIN else band


def _upsample_torch(images: Tensor, alphas: Tensor, radius: int, eps: float) -> Tensor:
    """The same steps in torch (GPU frames, or float frames): box filters as reflect-padded average pools."""
    H, W = images.shape[-2:]
    h, w = alphas.shape[-2:]
    colour = images.float() * (1 / 255 if images.dtype == torch.uint8 else 1.0)
    guide = F.adaptive_avg_pool2d(colour, (h, w)) if H % h == 0 and W % w == 0 else F.interpolate(colour, (h, w), mode="area")
    if images.dtype == torch.uint8:
        guide = torch.round(guide * 255) / 255  # whole levels, as OpenCV's byte resize gives them
    k = 2 * radius + 1

    def box(x: Tensor) -> Tensor:  # channel-last (N, h, w[, C]) in and out
        planar = x.unsqueeze(-1) if x.dim() == 3 else x
        planar = planar.permute(0, 3, 1, 2)
        mean = F.avg_pool2d(F.pad(planar, (radius,) * 4, mode="reflect"), k, stride=1)
        mean = mean.permute(0, 2, 3, 1)
        return mean[..., 0] if x.dim() == 3 else mean

    exact = torch.float32 if images.device.type == "mps" else torch.float64  # see _upsample_cv2; MPS has no float64
    fit = _fit(guide.permute(0, 2, 3, 1).to(exact), alphas[:, 0].to(exact), eps, box, _solve_symmetric)
    a, b = (c.float() for c in fit)
    neighbours_max = F.max_pool2d(F.pad(alphas, (1,) * 4, mode="replicate"), 3, stride=1)
    neighbours_min = -F.max_pool2d(F.pad(-alphas, (1,) * 4, mode="replicate"), 3, stride=1)
    step = (neighbours_max - neighbours_min) > SOFT_LOW
    band = (((alphas >= SOFT_LOW) & (alphas <= SOFT_HIGH)) | step).float()  # inclusive, as cv2.inRange
    if BAND_MARGIN:
        band = F.max_pool2d(band, 2 * BAND_MARGIN + 1, stride=1, padding=BAND_MARGIN)
    on = band[:, 0] > 0
    a = torch.where(on[..., None], a, torch.zeros_like(a)).permute(0, 3, 1, 2)
    b = torch.where(on, b, alphas[:, 0]).unsqueeze(1)
    full = (resize(a, (H, W), "bilinear") * colour).sum(1, keepdim=True) + resize(b, (H, W), "bilinear")
    return full.clamp_(0.0, 1.0)
