"""``image --square``: a picture padded to a square canvas, centred, as web shops show products in square tiles.

The padding is marked hidden in the picture's own alpha, so every output fills it as it fills what a transparent
picture hides: transparent in the cut-out, the background colour or picture in a composite, the key colour in
green, 0 in the mask. The padding copies the picture's edge pixels, so the model sees a plain continuation (a
product shot's white sweep) and a blurred background extends smoothly.
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np


def pad_square(image: np.ndarray, deep: Optional[np.ndarray], alpha: Optional[np.ndarray]) -> tuple[np.ndarray, Optional[np.ndarray], np.ndarray]:
    """``image`` (H x W x 3 uint8), its 16-bit copy ``deep`` (or None) and its own ``alpha`` (H x W, uint8 or uint16 as the
    file's; None: opaque) padded to a centred square; the returned alpha is 0 on the padding (16-bit when ``deep`` is)."""
    height, width = image.shape[:2]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    if alpha is None:
        dtype = np.uint16 if deep is not None else np.uint8
        alpha = np.full((height, width), np.iinfo(dtype).max, dtype)
    if side == height == width:
        return image, deep, alpha
    edges = (top, side - height - top, left, side - width - left)

    def padded(picture: np.ndarray, border: int) -> np.ndarray:
        return cv2.copyMakeBorder(picture, *edges, border, value=0)

    return padded(image, cv2.BORDER_REPLICATE), None if deep is None else padded(deep, cv2.BORDER_REPLICATE), padded(alpha, cv2.BORDER_CONSTANT)
