"""The Adobe RGB colour profile a camera JPEG says it is in only through its EXIF (a DCF "option file").

A DSLR set to Adobe RGB (Canon's EOS, among others) embeds no ICC profile: its EXIF says ColorSpace
"uncalibrated" and InteropIndex "R03" (or, on a few cameras, ColorSpace 2), which Photoshop, Lightroom and
macOS read. The cut-out's EXIF goes without the interop pointer (``io.exif``), so it was untagged and shown
as sRGB: dull, desaturated colours. It gets an Adobe RGB (1998)-compatible profile instead, built here (no
such profile ships with Pillow or Debian's base) from the published primaries, D65 white and 563/256 gamma.
"""

from __future__ import annotations

import functools
import struct
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from PIL import Image

EXIF_IFD, INTEROP_IFD = 0x8769, 0xA005
COLOR_SPACE, INTEROP_INDEX = 0xA001, 0x0001
UNCALIBRATED, ADOBE_RGB = 0xFFFF, 2
# Adobe RGB (1998)'s primaries adapted to the ICC's D50 (Bradford), as Adobe's own profile holds them
COLORANTS = {b"rXYZ": (0.60974, 0.31111, 0.01947), b"gXYZ": (0.20528, 0.62567, 0.06087), b"bXYZ": (0.14919, 0.06322, 0.74457)}
D50, D65 = (0.9642, 1.0, 0.8249), (0.95045, 1.0, 1.08905)
GAMMA = 563  # 2.19921875 in u8Fixed8


def exif_hinted_profile(im: "Image.Image") -> Optional[bytes]:
    """The Adobe RGB profile for an RGB picture whose EXIF alone says it is Adobe RGB (see the module), else None."""
    if im.mode != "RGB":
        return None
    try:
        details = im.getexif().get_ifd(EXIF_IFD)
        space = details.get(COLOR_SPACE)
        index = im.getexif().get_ifd(INTEROP_IFD).get(INTEROP_INDEX) if space == UNCALIBRATED else None
    except (OSError, ValueError, KeyError, TypeError, SyntaxError, struct.error):  # damaged EXIF: as untagged
        return None
    if space == ADOBE_RGB or (isinstance(index, str) and index.strip("\0 ") == "R03"):
        return adobe_rgb_profile()
    return None


@functools.cache
def adobe_rgb_profile() -> bytes:
    """An ICC v2 display profile with Adobe RGB (1998)'s colorants, white point and tone curve (matrix/TRC)."""
    curve = b"curv" + b"\0" * 4 + struct.pack(">IH", 1, GAMMA) + b"\0\0"
    tags = [(b"desc", _desc(b"Adobe RGB (1998) compatible")), (b"cprt", b"text" + b"\0" * 4 + b"No copyright, use freely\0"),
            (b"wtpt", _xyz(D65)), *((sig, _xyz(xyz)) for sig, xyz in COLORANTS.items()),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]  # fmt: skip
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body + b"\0" * (-len(body) % 4)
    size = offset + len(data)
    header = (struct.pack(">I", size) + b"\0" * 4 + bytes([2, 0x10, 0, 0]) + b"mntr" + b"RGB " + b"XYZ " + b"\0" * 12 + b"acsp"
              + b"\0" * 24 + struct.pack(">I", 0) + _s15(D50) + b"\0" * 48)  # fmt: skip
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


def _s15(values: tuple[float, ...]) -> bytes:
    """ICC s15Fixed16Numbers."""
    return b"".join(struct.pack(">i", round(v * 65536)) for v in values)


def _xyz(values: tuple[float, float, float]) -> bytes:
    return b"XYZ " + b"\0" * 4 + _s15(values)


def _desc(text: bytes) -> bytes:
    """A v2 textDescriptionType: ASCII, then empty Unicode and ScriptCode parts."""
    return b"desc" + b"\0" * 4 + struct.pack(">I", len(text) + 1) + text + b"\0" + b"\0" * 8 + b"\0" * 3 + b"\0" * 67
