"""``image --max-size`` on a large JPEG: decode it at 1/2, 1/4 or 1/8 of its size (libjpeg's DCT-domain scaling,
what Pillow's ``Image.draft`` and OpenCV's ``IMREAD_REDUCED_*`` flags ask for) instead of whole and then shrunk.

A 96-megapixel JPEG for a 2048 px cut-out was decoded to 288 MB of RGB (and copies of it on the way to numpy)
and its full decode time paid, for a picture then averaged down to a thirtieth of its pixels. libjpeg can leave out
the DCT coefficients a smaller picture has no room for, and the area filter then takes it to the exact size.

The reduced picture is kept at least ``REDUCING_GAP`` times the size it is shrunk to, as Pillow's
``Image.thumbnail`` does by default. Measured on scikit-image's photos saved as JPEG at quality 90 and shrunk to
a sixth: a draft 1.5 times the output came out 25-35 % softer than a whole decode (the variance of its Laplacian)
and differed by 0.6-6 levels of 255 on average; a draft 3 times the output is 4-10 % softer and within 0.4-1.9
(a 100 MP JPEG for 2048 px is drafted at 1/2, 2.9 times). Where the whole decode clips its ringing (saturated
fine stripes), the draft is the closer of the two to the picture that was saved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from birefvid.errors import ConfigError

REDUCING_GAP = 2
SCALES = (8, 4, 2)  # what libjpeg's scaled IDCT gives (it also does n/8, but only these are as cheap as they are exact)
_EXIF_ORIENTATION = 0x0112
_TURNED = frozenset({5, 6, 7, 8})  # EXIF orientations shown a quarter turn from how they are stored
_JPEG_START = b"\xff\xd8\xff"


@dataclass(frozen=True)
class Draft:
    """A JPEG to decode at 1/``scale``: ``width`` x ``height`` as stored, ``turned`` when its EXIF shows it a quarter turn."""

    scale: int
    width: int
    height: int
    turned: bool

    def stored(self) -> tuple[int, int]:
        """The reduced picture's (width, height) as stored (libjpeg rounds up, as Pillow's draft does)."""
        return math.ceil(self.width / self.scale), math.ceil(self.height / self.scale)

    def whole_size(self, decoded_width: int, decoded_height: int) -> Optional[tuple[int, int]]:
        """The (width, height) upright that a picture decoded at ``decoded_width`` x ``decoded_height`` stands for, so
        ``--max-size`` gives the same size as from a whole decode; None when the decoder did not reduce it (it is whole).

        The turn is the one the decoder applied, read off the decoded shape; only for a picture whose reduced sides
        are equal does it come from the EXIF tag (both readings then give that square's size within a pixel)."""
        width, height = self.stored()
        if (decoded_width, decoded_height) not in ((width, height), (height, width)):
            return None
        turned = self.turned if width == height else (decoded_width, decoded_height) != (width, height)
        return (self.height, self.width) if turned else (self.width, self.height)


def jpeg_draft(path: Path, max_side: int) -> Optional[Draft]:
    """How to decode the JPEG at ``path`` for ``--max-size max_side`` (a ``Draft``), or None to decode it whole: not a
    JPEG, not large enough for a 1/2 draft to stay ``REDUCING_GAP`` times the size it shrinks to, or a header Pillow
    cannot read (the whole decode then says why, as before)."""
    from PIL import Image

    from birefvid.io.image_source import opened_unlimited
    from birefvid.io.scale import still_size

    try:
        with open(path, "rb") as f:
            if f.read(3) != _JPEG_START:  # by its bytes: a camera's .JPG, an MPO, a JPEG saved as .png all count
                return None
        with opened_unlimited(path) as im:  # the header only
            width, height = im.size
            turned = im.getexif().get(_EXIF_ORIENTATION, 1) in _TURNED
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    try:
        target = still_size(width, height, max_side)  # as stored: a quarter turn swaps both alike
    except ConfigError:  # a panorama too thin for this limit: the whole decode's path says so, as before
        return None
    scale = next((s for s in SCALES if _fits(width, height, s, target)), None)
    return Draft(scale, width, height, turned) if scale is not None else None


def _fits(width: int, height: int, scale: int, target: tuple[int, int]) -> bool:
    """Whether ``width`` x ``height`` at 1/``scale`` is still ``REDUCING_GAP`` times ``target`` on both sides."""
    return math.ceil(width / scale) >= REDUCING_GAP * target[0] and math.ceil(height / scale) >= REDUCING_GAP * target[1]
