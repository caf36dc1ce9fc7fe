"""Pick the compositing op for an output kind: frames + alphas (on the device) -> output pixels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..job import OUTPUT_KINDS, OutputKind, check_output_options
from .background import Background
from ..colors import parse_color
from .foreground import estimate_foreground
from .ops import blur_background, composite, greenscreen, to_mask, to_rgba

__all__ = ["OUTPUT_KINDS", "SINK_KIND", "Compositor", "OutputKind"]

SINK_KIND = {"alpha": "alpha", "mask": "mask", "green": "rgb", "composite": "rgb", "blur": "rgb"}


@dataclass
class Compositor:
    """Turns uint8 frames (N, 3, H, W) and alphas (N, 1, H, W) into the output's pixels (N, C, H, W) uint8."""

    kind: OutputKind
    foreground: bool = True
    key: tuple[int, int, int] = (0, 255, 0)
    blur_sigma: float = 16.0
    background: Optional[Background] = None
    blur_work_scale: int = 1  # >1: blur at 1/k size (see blur_background), for live frame rates

    def __post_init__(self) -> None:
        check_output_options(self.kind, self.background is not None)
        self.key = parse_color(self.key)

    @property
    def sink_kind(self) -> str:
        """What the encoder receives: alpha (RGBA), mask (gray) or rgb."""
        return SINK_KIND[self.kind]

    def __call__(self, images: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
        if self.kind == "mask":
            return to_mask(alphas)
        fg = estimate_foreground(images.float() / 255.0, alphas) if self.foreground else None
        if self.kind == "alpha":
            return to_rgba(images, alphas, fg)
        if self.kind == "green":
            return greenscreen(images, alphas, self.key, fg)
        if self.kind == "blur":
            return blur_background(images, alphas, self.blur_sigma, fg, work_scale=self.blur_work_scale)
        assert self.background is not None
        return composite(images, alphas, self.background.frames(images.shape[0]), fg)
