"""Turn decoded pictures into upright uint8 RGB arrays (rotation metadata, any pixel format)."""

from __future__ import annotations

import logging

import av
import numpy as np

log = logging.getLogger(__name__)


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Rotate ``image`` counter-clockwise by ``rotation`` degrees (the display-matrix angle) so it displays upright."""
    k = round(rotation / 90) % 4
    if rotation % 90:
        log.warning("display rotation %s is not a multiple of 90 degrees; using %d", rotation, k * 90)
    return np.ascontiguousarray(np.rot90(image, k)) if k else image


def frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """Convert any decoded pixel format (10-bit, YUV, gray, palette) to uint8 RGB with the frame's own colour tags."""
    return frame.to_ndarray(format="rgb24")


def rotated_size(width: int, height: int, rotation: int) -> tuple[int, int]:
    """Display size after a display-matrix rotation."""
    return (height, width) if round(rotation / 90) % 2 else (width, height)
