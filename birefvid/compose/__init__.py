"""Compositing: alpha, mask, greenscreen, composite, blur and overlay outputs, plus foreground estimation."""

from .background import Background, ColorBackground, StillBackground, StreamBackground, cover
from ..colors import parse_color
from .filters import box_mean, smooth_blur
from .foreground import estimate_foreground
from .ops import blur_background, composite, greenscreen, matte_edge, overlay, to_mask, to_rgba

__all__ = [
    "Background",
    "ColorBackground",
    "StillBackground",
    "StreamBackground",
    "blur_background",
    "box_mean",
    "composite",
    "cover",
    "estimate_foreground",
    "greenscreen",
    "matte_edge",
    "overlay",
    "parse_color",
    "smooth_blur",
    "to_mask",
    "to_rgba",
]
