"""Moving RGB pixels between colour profiles, for a picture put behind a photo that has its own.

A phone photo is in Display P3 (an iPhone's JPEG or HEIC), a studio one often in Adobe RGB; its
cut-out keeps that profile so viewers show it right. A ``--background`` picture (sRGB unless it
embeds a profile) composited into it as raw values would then be shown through the photo's
profile: its colours over-saturated, or dull. littleCMS (Pillow's ``ImageCms``) converts it into
the photo's profile first.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Optional

import numpy as np

log = logging.getLogger(__name__)


def embedded_rgb_profile(path: Path) -> Optional[bytes]:
    """The RGB ICC profile ``path`` embeds, or None (none, an unreadable header, or not an RGB profile)."""
    from PIL import Image

    from .image_sink import rgb_profile
    from .image_source import opened_unlimited

    try:
        with opened_unlimited(path) as im:
            return rgb_profile(im.info.get("icc_profile"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def convert_rgb(pixels: np.ndarray, source: Optional[bytes], target: Optional[bytes], what: str = "picture",
                into: str = "the photo's colour profile") -> np.ndarray:
    """``pixels`` (HxWx3 uint8, or uint16 for a deep picture) from profile ``source`` to ``target``
    (None for either: sRGB), perceptual intent; returned unchanged when both are the same profile.

    Pillow's littleCMS binding converts 8-bit RGB only, so a 16-bit picture is converted at 8 bits
    and widened back (correct colours matter more behind a cut-out than its last bits). A damaged
    profile leaves the pixels as they are (the very array), with a warning naming ``what`` and ``into``.
    """
    if (source or None) == (target or None):
        return pixels
    from PIL import Image, ImageCms

    deep = pixels.dtype == np.uint16
    narrow = (pixels // 257 if deep else pixels).astype(np.uint8, copy=False)  # rounding down: within a level

    def profile(icc: Optional[bytes]) -> "ImageCms.ImageCmsProfile":
        return ImageCms.ImageCmsProfile(io.BytesIO(icc)) if icc else ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))

    try:
        picture = Image.fromarray(np.ascontiguousarray(narrow), "RGB")
        converted = np.array(ImageCms.profileToProfile(picture, profile(source), profile(target), outputMode="RGB"))
    except (OSError, ValueError, ImageCms.PyCMSError) as e:
        log.warning("%s: its colours could not be converted into %s (%s); used as they are", what, into, e)
        return pixels
    return converted.astype(np.uint16) * 257 if deep else converted


def srgb_colours(image: np.ndarray, deep: Optional[np.ndarray], icc: bytes, what: object) -> tuple[np.ndarray, Optional[np.ndarray], Optional[bytes]]:
    """``image --srgb``: a photo's RGB ``image`` (uint8) and its 16-bit copy ``deep`` (or None) in profile ``icc``
    converted to sRGB, and the profile left to embed: None. A profile that cannot be used leaves all three as they were
    (the very arrays), with a warning; a 16-bit copy is converted at 8-bit precision (Pillow's littleCMS binding), said too."""
    converted = convert_rgb(image, icc, None, str(what), into="sRGB")
    if converted is image:  # a damaged profile: the pixels keep it, as they were
        return image, deep, icc
    if deep is not None:
        log.warning("%s: --srgb converts 16-bit colour at 8-bit precision (Pillow's littleCMS binding)", what)
        deep = convert_rgb(deep, icc, None, str(what), into="sRGB")
    return converted, deep, None
