"""A POSTed body told apart as a picture the image command reads, and its size checked, from its header alone."""

from __future__ import annotations

import io
import threading

from ..extensions import PILLOW_SUFFIXES as INPUT_SUFFIXES
from .request_error import RequestError

# Pillow's own pixel limit is a global that picture_suffix lifts for a moment: one request at a time, or two
# overlapping requests could restore it in the wrong order and leave it lifted for the decoding that follows
_PILLOW_LIMIT = threading.Lock()


def picture_suffix(body: bytes, max_pixels: int) -> str:
    """The file suffix the picture in ``body`` is read under, from its header (nothing decoded); RequestError 415
    when it is not a picture the image command reads, 413 when it has more than ``max_pixels`` pixels."""
    from PIL import Image, UnidentifiedImageError

    from ..io import heif

    heif.available()  # registers pillow-heif's opener where installed, so HEIC is told apart too
    with _PILLOW_LIMIT:
        limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # our own limit below, with a plain reply, instead of Pillow's warning or error
        try:
            with Image.open(io.BytesIO(body)) as im:
                kind, (width, height) = im.format, im.size
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            raise RequestError(415, "the body is not a picture (PNG, JPEG, WebP, TIFF, BMP, GIF, AVIF or HEIC)") from None
        finally:
            Image.MAX_IMAGE_PIXELS = limit
    if kind not in INPUT_SUFFIXES:
        raise RequestError(415, f"{kind} pictures are not read; send PNG, JPEG, WebP, TIFF, BMP, GIF, AVIF or HEIC")
    if width * height > max_pixels:
        raise RequestError(413, f"the picture is {width}x{height} pixels, more than the server's {max_pixels:,} (--max-pixels)")
    return INPUT_SUFFIXES[kind]
