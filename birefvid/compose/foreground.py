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
import math
from typing import NamedTuple

import cv2
import numpy as np
import torch
from torch import Tensor

from ._checks import as_float, check_alphas, check_images
from .band import BAND_EPS
from .filters import box_mean
from .resample import on_cpu_float32, resize, resize_uint8_to_float

logger = logging.getLogger(__name__)

_EPS = 1e-5
_HALF_EPS = BAND_EPS / 2  # soft-band threshold, halved against rounding in the bilinear upsample


def _blur_fusion(image: Tensor, fg: Tensor, bg: Tensor, alpha: Tensor, radius: int) -> tuple[Tensor, Tensor]:
    """One blur-fusion step: returns the corrected foreground F' and the blurred background B_blur."""
    inv = 1.0 - alpha
    # One box pass over all eight channels: F*a (3), a (1), B*(1-a) (3), 1-a (1).
    means = box_mean(torch.cat([fg * alpha, alpha, bg * inv, inv], dim=1), radius)
    fg_blur = means[:, 0:3] / (means[:, 3:4] + _EPS)
    bg_blur = means[:, 4:7] / (means[:, 7:8] + _EPS)
    fg_new = fg_blur + alpha * (image - alpha * fg_blur - inv * bg_blur)
    return fg_new.clamp_(0.0, 1.0), bg_blur


def estimate_foreground(
    images: Tensor, alphas: Tensor, radius: int = 90, refine_radius: int = 6, work_scale: int = 1
) -> Tensor:
    """Estimate spill-free subject colours (N, 3, H, W) float in [0, 1] from frames and their mattes.

    ``images`` are float in [0, 1] (uint8 is accepted and scaled); ``alphas`` are (N, 1, H, W).
    ``radius`` is the first, coarse pass; ``refine_radius`` the second. Cost is independent of
    both radii. Where alpha is 1 the result equals the source; where alpha is 0 it is undefined
    (but finite) and is hidden by any compositing.

    ``work_scale`` k > 1 runs blur-fusion on frames area-shrunk by k (radii shrunk with them)
    and carries the result back as ``F = I + (1 - a) D``, with D = (F - I) / (1 - a) = F - B the
    subject-minus-background colour estimated at the small size and upsampled. Under the
    compositing equation D is as smooth as the colours either side of the edge, so it survives the
    round trip, while I and a keep their full resolution: F equals the source exactly where alpha
    is 1, and the cost is ~1/k^2 of the full-size estimate (the file pipeline's mattes come from
    a 256-1024 px model anyway, so the small size loses no detail the matte had).
    """
    check_images(images)
    check_alphas(alphas, images)
    if int(radius) < 1 or int(refine_radius) < 1:
        raise ValueError(f"estimate_foreground radii must be >= 1, got radius={radius}, refine_radius={refine_radius}")
    if int(work_scale) < 1:
        raise ValueError(f"estimate_foreground work_scale must be >= 1, got {work_scale}")
    image = as_float(images)
    alpha = alphas.to(image.dtype).clamp(0.0, 1.0)
    k = int(work_scale)
    if k == 1 or min(image.shape[-2:]) < 4 * k:
        return _estimate(image, alpha, int(radius), int(refine_radius))
    diff = resize(foreground_difference(images, alpha, radius, refine_radius, k).difference, tuple(image.shape[-2:]), "bilinear")
    return diff.mul_(1.0 - alpha).add_(image).clamp_(0.0, 1.0)


class SmallForeground(NamedTuple):
    """Blur-fusion at a reduced size: the subject colours F and D = (F - I) / (1 - a), (N, 3, h, w) each."""

    foreground: Tensor
    difference: Tensor


def foreground_difference(
    images: Tensor,
    alphas: Tensor,
    radius: int = 90,
    refine_radius: int = 6,
    work_scale: int = 1,
    band_only: bool = False,
) -> SmallForeground:
    """Blur-fusion on frames shrunk by ``work_scale``: F, and D = (F - I) / (1 - a), the subject-minus-background colour.

    The subject colour at full size is then F = I + (1 - a) D (see ``estimate_foreground``), which
    ``birefvid.compose.band`` evaluates only where the matte is soft; the small F fills the
    transparent part of alpha outputs. D is float in [-1, 1], F in [0, 1].

    ``alphas`` may be at the frames' size (area-shrunk with them) or at any other, e.g. the
    model's: such a matte is resized straight to the work size (bilinear), which spares the
    caller's full-size upsample an area shrink back down. uint8 frames on the CPU are halved as
    bytes and only the small remainder of the shrink is done in float (``resize_uint8_to_float``:
    OpenCV's area average, within half a grey level of an all-float one), so no full-size float
    copy of a frame is made (together with the flow thumbnails' same change, 37 -> 33 ms of
    smoothing and compositing a 720p frame on one core here).

    ``band_only`` (for callers that read D only where the full-size matte is soft, as the band
    compositor does) runs blur-fusion only on the box around that band, widened by both radii:
    there D equals the whole-frame result (each box mean's window lies inside the crop or is
    clipped by the frame's own edges). Elsewhere D is 0 and F the shrunk frame. CPU only: on a GPU
    the whole-frame pass is cheap, and finding the box would wait on the device every frame.
    """
    check_images(images)
    _check_matte(alphas, images)
    k = max(1, int(work_scale))
    if min(images.shape[-2:]) < 4 * k:
        k = 1
    small_size = (max(1, images.shape[-2] // k), max(1, images.shape[-1] // k))
    owned = k > 1 and images.dtype == torch.uint8 and images.device.type == "cpu"  # a new tensor, not the caller's
    if owned:
        small_image = resize_uint8_to_float(images, small_size)  # channel-first: blur-fusion's ops ~15% faster so
    else:
        small_image = resize(as_float(images), small_size, "area")
    alpha = alphas.to(small_image.dtype)
    same_size = tuple(alpha.shape[-2:]) == tuple(images.shape[-2:])
    small_alpha = resize(alpha, small_size, "area" if same_size else "bilinear").clamp(0.0, 1.0)
    radii = (max(1, round(radius / k)), max(1, round(refine_radius / k)))
    if band_only and small_image.device.type == "cpu":  # a GPU does the whole frame in less than finding the box would sync
        return _band_only(small_image, small_alpha, alphas, images.shape[-2:], radii, owned)
    small_fg = _estimate(small_image, small_alpha, *radii)
    return SmallForeground(small_fg, _difference(small_fg, small_image, small_alpha))


def _difference(small_fg: Tensor, small_image: Tensor, small_alpha: Tensor) -> Tensor:
    """D = (F - I) / (1 - a), clamped to [-1, 1].

    Where a -> 1 it is noise, but it is multiplied by (1 - a) -> 0 again when used, so it never shows.
    """
    return (small_fg - small_image).div_((1.0 - small_alpha).clamp_(min=1.0 / 255.0)).clamp_(-1.0, 1.0)


# a band box covering more of the small frame than this is estimated whole: cropping saves little then
_WHOLE_FRAME = 0.7


def _band_only(
    small_image: Tensor, small_alpha: Tensor, matte: Tensor, frame_size: "torch.Size", radii: tuple[int, int],
    owned: bool = False,
) -> SmallForeground:
    """``foreground_difference`` with blur-fusion run per frame only on the crop around the matte's soft band.

    On the generated 720p clips the box, margins included, is about half of the frame, and so is
    the blur-fusion (15.3 -> 12.2 ms a frame with the shrink; results at the band identical).
    """
    h, w = small_image.shape[-2:]
    n, c = small_image.shape[:2]
    # D channel-last in memory: the band compositor samples it with OpenCV, which takes it so without a copy
    # F is written into the shrunk frame itself when that is this call's own (each crop is read before
    # it is overwritten): a frame-sized copy less
    fg = small_image if owned else small_image.clone()
    diff = small_image.new_zeros((n, h, w, c)).permute(0, 3, 1, 2)
    for i in range(small_image.shape[0]):
        box = _band_box(matte[i, 0], frame_size, (h, w), sum(radii) + 1)
        if box is None:
            continue  # no soft pixel: D is never read
        y0, y1, x0, x1 = box
        if (y1 - y0) * (x1 - x0) > _WHOLE_FRAME * h * w:
            y0, y1, x0, x1 = 0, h, 0, w
        image, alpha = small_image[i : i + 1, :, y0:y1, x0:x1], small_alpha[i : i + 1, :, y0:y1, x0:x1]
        crop_fg = _estimate(image, alpha, *radii)
        diff[i : i + 1, :, y0:y1, x0:x1] = _difference(crop_fg, image, alpha)  # before F may overwrite the image
        fg[i : i + 1, :, y0:y1, x0:x1] = crop_fg
    return SmallForeground(fg, diff)


def _band_box(
    matte: Tensor, frame_size: "torch.Size", small_size: tuple[int, int], margin: int
) -> "tuple[int, int, int, int] | None":
    """Rows and columns [y0, y1) x [x0, x1) of the small grid that hold, widened by ``margin``, every
    small pixel the band compositor samples D from; None when the matte has no soft pixel.

    The frame's alpha is the matte (h, w) upsampled bilinearly, so a frame pixel is soft only inside a
    cell of four matte pixels holding both one above 0 and one below 1 (thresholds halved against
    rounding): such cells lie where both masks, dilated by one pixel, meet.
    """
    plane = matte.float().contiguous().numpy()
    kernel = np.ones((3, 3), np.uint8)
    above = cv2.dilate((plane > _HALF_EPS).astype(np.uint8), kernel)
    below = cv2.dilate((plane < 1.0 - _HALF_EPS).astype(np.uint8), kernel)
    points = cv2.findNonZero(cv2.bitwise_and(above, below))
    if points is None:
        return None
    x, y, bw, bh = cv2.boundingRect(points)
    (mh, mw), (fh, fw), (sh, sw) = plane.shape, frame_size, small_size
    y0, y1 = _small_span(y, y + bh - 1, mh, fh, sh)
    x0, x1 = _small_span(x, x + bw - 1, mw, fw, sw)
    return max(0, y0 - margin), min(sh, y1 + 1 + margin), max(0, x0 - margin), min(sw, x1 + 1 + margin)


def _small_span(first: int, last: int, matte_len: int, frame_len: int, small_len: int) -> tuple[int, int]:
    """Small-grid pixels [lo, hi] whose bilinear samples cover frame pixels lying on matte pixels first..last."""
    # frame pixel x sits at matte position (x + 0.5) m/f - 0.5: the ones between first and last, then
    # their small positions (x + 0.5) s/f - 0.5, floored, plus one for the bilinear neighbour and
    # one more either side against rounding
    lo_frame = (first + 0.5) * frame_len / matte_len - 0.5
    hi_frame = (last + 0.5) * frame_len / matte_len - 0.5
    lo = math.floor((lo_frame + 0.5) * small_len / frame_len - 0.5) - 1
    hi = math.floor((hi_frame + 0.5) * small_len / frame_len - 0.5) + 2
    if first == 0:
        lo = 0  # frame pixels before the first matte centre are clamped onto it
    if last == matte_len - 1:
        hi = small_len - 1
    return max(0, lo), min(small_len - 1, hi)


def _check_matte(alphas: Tensor, images: Tensor) -> None:
    """``check_alphas`` for a matte of any size: only N and the device must match ``images``."""
    check_alphas(alphas)
    if alphas.shape[0] != images.shape[0]:
        raise ValueError(f"alphas {tuple(alphas.shape)} do not match images {tuple(images.shape)}: expected the same N")
    if alphas.device != images.device:
        raise ValueError(f"alphas are on {alphas.device} but images are on {images.device}; move both to one device")


def _estimate(image: Tensor, alpha: Tensor, radius: int, refine_radius: int) -> Tensor:
    """Two blur-fusion steps (coarse, then refine) at the given size."""
    if on_cpu_float32(image) and on_cpu_float32(alpha):
        return torch.stack([_estimate_planes(item, a[0], radius, refine_radius) for item, a in zip(image, alpha)])
    fg, bg = _blur_fusion(image, image, image, alpha, radius)
    fg, _ = _blur_fusion(image, fg, bg, alpha, refine_radius)
    return fg


# The CPU path below is the same arithmetic as _blur_fusion, written for OpenCV over separate
# (h, w) colour planes: torch's ops on the channel-first 8-channel stack and its box filter's
# layout round trips cost 2.5-4x as much (a 300x240 crop: 7.0-11.5 ms against 2.6-3.0 on one core
# here, results within 2e-7). OpenCV's box filter is fastest on 4-channel pixels, so the subject and background
# sums go through it as two such images rather than one of eight channels (0.39 against 0.82 ms).


def _estimate_planes(image: Tensor, alpha: np.ndarray | Tensor, radius: int, refine_radius: int) -> Tensor:
    """``_estimate`` of one frame (3, h, w) float32 CPU with its alpha (h, w), by OpenCV on colour planes."""
    planes = [np.ascontiguousarray(image[c].numpy()) for c in range(3)]
    a = np.ascontiguousarray(alpha.numpy() if isinstance(alpha, Tensor) else alpha)
    inv = 1.0 - a
    fg, bg = _blur_fusion_planes(planes, planes, planes, a, inv, radius)
    fg, _ = _blur_fusion_planes(planes, fg, bg, a, inv, refine_radius)
    return torch.from_numpy(np.stack(fg))


def _box_sums(planes: list[np.ndarray], radius: int) -> list[np.ndarray]:
    """Sums over each (2r+1)^2 window, zero outside the frame, of four (h, w) float32 planes."""
    size = (2 * radius + 1, 2 * radius + 1)
    return list(cv2.split(cv2.boxFilter(cv2.merge(planes), -1, size, normalize=False, borderType=cv2.BORDER_CONSTANT)))


def _window_counts(shape: tuple[int, ...], radius: int) -> np.ndarray:
    """How many pixels of an (h, w) frame each (2r+1)^2 window centred on it covers (windows clipped at the edges)."""

    def along(n: int) -> np.ndarray:
        i = np.arange(n)
        return (np.minimum(i + radius, n - 1) - np.maximum(i - radius, 0) + 1).astype(np.float32)

    return np.outer(along(shape[0]), along(shape[1]))


def _blur_fusion_planes(
    image: list[np.ndarray], fg: list[np.ndarray], bg: list[np.ndarray], a: np.ndarray, inv: np.ndarray, radius: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``_blur_fusion`` on (h, w) planes: box(F a) / box(a) is the ratio of window sums (the window's
    pixel count cancels, except in the epsilon, which is scaled by it to stay the same)."""
    sums_f = _box_sums([cv2.multiply(fg[0], a), cv2.multiply(fg[1], a), cv2.multiply(fg[2], a), a], radius)
    sums_b = _box_sums([cv2.multiply(bg[0], inv), cv2.multiply(bg[1], inv), cv2.multiply(bg[2], inv), inv], radius)
    eps = _EPS * _window_counts(a.shape, radius)
    over_a = 1.0 / (sums_f[3] + eps)
    over_inv = 1.0 / (sums_b[3] + eps)
    fg_new, bg_blur = [], []
    for c in range(3):
        f = sums_f[c] * over_a
        b = sums_b[c] * over_inv
        out = f + a * (image[c] - a * f - inv * b)
        fg_new.append(np.clip(out, 0.0, 1.0, out=out))
        bg_blur.append(b)
    return fg_new, bg_blur
