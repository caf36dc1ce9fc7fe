"""A photo's EXIF as its cut-out carries it: the camera, lens, exposure and capture date kept, for
photo libraries that sort and search by them; the GPS position, the embedded thumbnail (the
original photo, background and all) and the orientation's turn (the pixels are written upright) left out."""

from __future__ import annotations

import logging
import struct
from typing import Optional

from PIL import Image

log = logging.getLogger(__name__)

EXIF_IFD = 0x8769
MAKER_NOTE = 0x927C
COLOR_SPACE, SRGB = 0xA001, 1
# IFD0's tags that describe the photo, not the file: a TIFF's own IFD0 (its strips, compression,
# resolution) is what Pillow reads as its EXIF, and the pixels' density is written apart
DESCRIPTIVE = (0x010E, 0x010F, 0x0110, 0x0132, 0x013B, 0x8298)  # description, make, model, date, artist, copyright
# Exif-IFD tags that no longer hold: the stored picture's size (a sideways photo's, turned since), the interop pointer
STALE = (0xA002, 0xA003, 0xA005)
# the most a JPEG APP1 segment holds (65535 less its length field and "Exif\0\0")
MAX_EXIF_BYTES = 65533 - 6


def cutout_exif(im: Image.Image) -> Optional[bytes]:
    """The EXIF of the opened picture ``im`` for its cut-out, as TIFF-structured bytes (what PNG's eXIf and
    WebP's EXIF chunks hold; JPEG's APP1 adds ``Exif\\0\\0``), or None when it has none worth keeping.

    Made afresh from the descriptive IFD0 tags and the Exif IFD: no GPS IFD, no IFD1 (the thumbnail),
    no orientation (the pixels are upright). A camera's maker note is dropped when it would not fit a
    JPEG's one segment (64 KB)."""
    try:
        source = im.getexif()
        exif = Image.Exif()
        for tag in DESCRIPTIVE:
            if tag in source:
                exif[tag] = source[tag]
        details = {tag: value for tag, value in source.get_ifd(EXIF_IFD).items() if tag not in STALE}
        if details:
            exif.get_ifd(EXIF_IFD).update(details)
        if not exif and not details:
            return None  # nothing but a position, an orientation or the file's own structure
        data = exif.tobytes()
        if len(data) - 6 > MAX_EXIF_BYTES:
            exif.get_ifd(EXIF_IFD).pop(MAKER_NOTE, None)
            data = exif.tobytes()
    except (OSError, ValueError, KeyError, TypeError, SyntaxError, struct.error) as e:  # damaged: the cut-out goes without it
        log.warning("%s: its EXIF could not be read (%s); the cut-out is written without it", getattr(im, "filename", "picture"), e)
        return None
    data = data[6:] if data.startswith(b"Exif\0\0") else data
    return data if 8 < len(data) <= MAX_EXIF_BYTES else None


def marked_srgb(exif: bytes) -> bytes:
    """``cutout_exif``'s ``exif`` with its ColorSpace (when it has one) set to sRGB, for pixels converted to sRGB: a phone's
    Display P3 photo says "uncalibrated" there, which no longer holds once the picture is sRGB and untagged."""
    try:
        parsed = Image.Exif()
        parsed.load(b"Exif\0\0" + exif)
        details = parsed.get_ifd(EXIF_IFD)
        if details.get(COLOR_SPACE, SRGB) == SRGB:
            return exif
        details[COLOR_SPACE] = SRGB
        data = parsed.tobytes()
    except (OSError, ValueError, KeyError, TypeError, SyntaxError, struct.error):  # as it was: it was read once already
        return exif
    data = data[6:] if data.startswith(b"Exif\0\0") else data
    return data if len(data) <= MAX_EXIF_BYTES else exif
