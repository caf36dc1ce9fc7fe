"""Turning (uint8 RGB image, float mask) pairs into the normalized tensors the model trains on."""

from __future__ import annotations

import numpy as np
import torch

from birefvid.models.inputs import IMAGENET_MEAN, IMAGENET_STD, normalize

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "parse_size", "to_sample"]


def to_sample(image: np.ndarray, mask: np.ndarray, flip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, W, 3) uint8 + (H, W) float in [0, 1] -> normalized (3, H, W) float32 and (1, H, W) float32."""
    if flip:
        image, mask = image[:, ::-1], mask[:, ::-1]
    x = normalize(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0))
    m = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)).clamp_(0.0, 1.0).unsqueeze(0)
    return x, m


def parse_size(size: "int | tuple[int, int]") -> tuple[int, int]:
    """Accept an int (square) or an (h, w) pair; both sides must be positive."""
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be positive, got {size!r}")
    return h, w
