"""Compositing: alpha, mask, greenscreen, composite and blur outputs, plus foreground estimation."""

from .background import Background, ColorBackground, ImageBackground, VideoBackground, cover, open_background
from .colors import parse_color
from .filters import box_mean, smooth_blur
from .foreground import estimate_foreground
from .ops import blur_background, composite, greenscreen, to_mask, to_rgba

__all__ = [
    "Background",
    "ColorBackground",
    "ImageBackground",
    "VideoBackground",
    "blur_background",
    "box_mean",
    "composite",
    "cover",
    "estimate_foreground",
    "greenscreen",
    "open_background",
    "parse_color",
    "smooth_blur",
    "to_mask",
    "to_rgba",
]
