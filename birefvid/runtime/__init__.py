"""Runtime: device and precision choice, the Segmenter, and the staged pipeline runner."""

from .device import pick_device, pick_dtype
from .segmenter import Segmenter, parse_resolution

__all__ = ["Segmenter", "parse_resolution", "pick_device", "pick_dtype"]
