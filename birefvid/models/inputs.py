"""What BiRefNet expects at its input: RGB in [0, 1], normalised with ImageNet's mean and std."""

from __future__ import annotations

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """RGB float in [0, 1], (..., 3, H, W) -> the model's input (same shape, device and dtype)."""
    shape = (3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(shape)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(shape)
    return (x - mean) / std
