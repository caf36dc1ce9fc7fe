"""Foreground colour estimation by blur-fusion (Forte & Pitie, ICIP 2021).

A matte says how opaque each pixel is, but at soft edges the source colour is a mix of
subject and background: composited elsewhere, the old background shows as a coloured fringe
("spill"). Blur-fusion estimates the pure subject colour F from local weighted means of the
subject (F_blur) and the background (B_blur) and one correction step toward the compositing
equation I = a F + (1 - a) B:

    F_blur = box(F a) / box(a),   B_blur = box(B (1 - a)) / box(1 - a)
    F'     = F_blur + a (I - a F_blur - (1 - a) B_blur)

run twice: first with F = B = I and a large radius (gathers colours from far inside each
region), then with F = F', B = B_blur and a small radius (restores local detail).
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from ._checks import as_float, check_alphas, check_images
from .filters import box_mean

logger = logging.getLogger(__name__)

_EPS = 1e-5


def _blur_fusion(image: Tensor, fg: Tensor, bg: Tensor, alpha: Tensor, radius: int) -> tuple[Tensor, Tensor]:
    """One blur-fusion step: returns the corrected foreground F' and the blurred background B_blur."""
    inv = 1.0 - alpha
    # One box pass over all eight channels: F*a (3), a (1), B*(1-a) (3), 1-a (1).
    means = box_mean(torch.cat([fg * alpha, alpha, bg * inv, inv], dim=1), radius)
    fg_blur = means[:, 0:3] / (means[:, 3:4] + _EPS)
    bg_blur = means[:, 4:7] / (means[:, 7:8] + _EPS)
    fg_new = fg_blur + alpha * (image - alpha * fg_blur - inv * bg_blur)
    return fg_new.clamp_(0.0, 1.0), bg_blur


def estimate_foreground(images: Tensor, alphas: Tensor, radius: int = 90, refine_radius: int = 6) -> Tensor:
    """Estimate spill-free subject colours (N, 3, H, W) float in [0, 1] from frames and their mattes.

    ``images`` are float in [0, 1] (uint8 is accepted and scaled); ``alphas`` are (N, 1, H, W).
    ``radius`` is the first, coarse pass; ``refine_radius`` the second. Cost is independent of
    both radii. Where alpha is 1 the result equals the source; where alpha is 0 it is undefined
    (but finite) and is hidden by any compositing.
    """
    check_images(images)
    check_alphas(alphas, images)
    if int(radius) < 1 or int(refine_radius) < 1:
        raise ValueError(f"estimate_foreground radii must be >= 1, got radius={radius}, refine_radius={refine_radius}")
    image = as_float(images)
    alpha = alphas.to(image.dtype).clamp(0.0, 1.0)
    fg, bg = _blur_fusion(image, image, image, alpha, int(radius))
    fg, _ = _blur_fusion(image, fg, bg, alpha, int(refine_radius))
    return fg
