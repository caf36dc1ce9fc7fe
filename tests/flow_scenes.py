"""Textured moving-disc scenes for the optical-flow tests (``test_flow``, ``test_carry``).

Each scene is a textured disc (radius 40 px) over a textured background at 320x240; the
texture has structure at several scales, like real footage, so DIS has something to lock on
at every pyramid level. Thumbnails are 160x120, so a move of (dx, dy) full-resolution pixels
is (dx/2, dy/2) thumbnail pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

H, W = 240, 320
R = 40  # disc radius
X0, Y0 = 100, 80  # disc's top-left corner in frame A


def _texture(h: int, w: int, seed: int) -> np.ndarray:
    """uint8 RGB noise with structure at 32, 16, 8, 4 and 2 px."""
    rng = np.random.default_rng(seed)
    tex = np.zeros((h, w, 3), np.float32)
    for cell, weight in [(32, 1.0), (16, 0.7), (8, 0.5), (4, 0.3), (2, 0.2)]:
        coarse = rng.random((h // cell + 2, w // cell + 2, 3)).astype(np.float32)
        tex += weight * cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    tex -= tex.min()
    return (tex * (255 / tex.max())).astype(np.uint8)


_BG = _texture(H, W, 1)
_OBJ = _texture(2 * R, 2 * R, 2)
_yy, _xx = np.mgrid[: 2 * R, : 2 * R]
_DISC = (_xx - R + 0.5) ** 2 + (_yy - R + 0.5) ** 2 < R**2


def scene(dx: int = 0, dy: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Frame (H, W, 3) uint8 RGB with the disc moved by (dx, dy) from frame A, and its true mask."""
    frame, mask = _BG.copy(), np.zeros((H, W), np.float32)
    x, y = X0 + dx, Y0 + dy
    frame[y : y + 2 * R, x : x + 2 * R][_DISC] = _OBJ[_DISC]
    mask[y : y + 2 * R, x : x + 2 * R][_DISC] = 1.0
    return frame, mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0.5, b > 0.5
    return float((a & b).sum() / (a | b).sum())


def thumb_region(mask: np.ndarray, erode: int) -> np.ndarray:
    """Boolean region of a full-res 0/1 mask at thumbnail size, eroded ``erode`` px to skip edges."""
    small = cv2.resize(mask, (W // 2, H // 2), interpolation=cv2.INTER_AREA)
    return cv2.erode(small, np.ones((erode, erode), np.uint8)) > 0.99
