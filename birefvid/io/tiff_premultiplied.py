"""TIFFs whose alpha is associated (premultiplied: ExtraSamples 1), read with their colours un-premultiplied.

Nuke, Houdini, Blender and After Effects write a premultiplied render's TIFF so, and so does libtiff's own RGBA
writer: each colour is stored already multiplied by its alpha (a 200 at alpha 128 stored as 100). libtiff hands such
colours over as stored, whatever the depth (its RGBA reading premultiplies only straight alpha), so a cut-out's soft
edges and half-transparent parts came out dark, darkened a second time by the output's straight alpha, and the model
saw them dark. Here they are divided by their alpha after decoding, rounded and clipped to the type's range, so the
picture is its straight-alpha twin's within the rounding the premultiplied file already holds.

A pixel of alpha 0 keeps its colour as stored: black in a premultiplied render, or the light of a glow or flare added
over with no coverage, which a straight-alpha file's hidden pixels keep too (they show what a viewer shows).

Which files: RGB + one associated alpha (4 samples) and gray + one associated alpha (2 samples), 8- or 16-bit or
float, in any layout the TIFF readers here handle (strips, tiles, planar, either byte order, BigTIFF): the decision
is the header's, the division is done on the decoded picture, so every layout goes the same way."""

from __future__ import annotations

import struct

import cv2
import numpy as np

from birefvid.io.tiff_tags import first_ifd

_PHOTOMETRIC, _SAMPLES, _EXTRA_SAMPLES = 262, 277, 338
_MIN_IS_BLACK, _RGB = 1, 2
_ASSOCIATED = 1  # ExtraSamples: premultiplied alpha (2 is straight, 0 unspecified)
_SAMPLES_WITH_ALPHA = {_MIN_IS_BLACK: 2, _RGB: 4}  # gray + alpha, RGB + alpha
_BAND = 256  # rows un-premultiplied at a time: the 32-bit working copy of a band, not of a 48 MP picture


def associated_alpha(data: memoryview) -> bool:
    """Whether the TIFF whose bytes are ``data`` is gray or RGB with one associated (premultiplied) alpha sample;
    False for any other picture, or bytes that are no TIFF or whose header is cut off."""
    ifd = first_ifd(data)
    if ifd is None or _EXTRA_SAMPLES not in ifd.entries:
        return False
    try:
        extra, samples, photometric = (ifd.values(data, tag) for tag in (_EXTRA_SAMPLES, _SAMPLES, _PHOTOMETRIC))
    except struct.error:
        return False
    return extra == [_ASSOCIATED] and len(photometric) == 1 and samples == [_SAMPLES_WITH_ALPHA.get(photometric[0])]


def unpremultiplied(picture: np.ndarray) -> np.ndarray:
    """``picture`` (H, W, 2 or 4: gray or BGR, then alpha; uint8, uint16 or float) with its colours divided by its
    alpha where that is over 0, in place, and returned. Integers are rounded to nearest and clipped to the type's
    maximum (a colour stored above its alpha: light added over); floats are divided as they are (values over 1 are
    the float reading's to clip and say). Another picture is returned as it is."""
    if picture.ndim != 3 or picture.shape[2] not in (2, 4):
        return picture
    colour, alpha = picture[..., :-1], picture[..., -1:]
    if picture.dtype.kind == "f":
        np.divide(colour, alpha, out=colour, where=alpha > 0)
        return picture
    if picture.dtype not in (np.uint8, np.uint16):
        return picture
    if picture.dtype == np.uint8 and picture.shape[2] == 4:
        return _divided_by_opencv(picture)
    top = int(np.iinfo(picture.dtype).max)
    for start in range(0, picture.shape[0], _BAND):
        _divide_band(colour[start:start + _BAND], alpha[start:start + _BAND], top)
    return picture


def _divided_by_opencv(picture: np.ndarray) -> np.ndarray:
    """An 8-bit 4-channel ``picture`` divided by OpenCV's ``mRGBA2RGBA``, in place: the same rounding as
    ``_divide_band`` (to nearest, clipped) at a fraction of its time (0.1 s for 12 MP against 0.9 s, measured on a
    shared 2-core machine). It makes alpha 0 black, so the stored colour is put back there."""
    hidden = picture[..., 3] == 0
    kept = picture[hidden]
    divided = cv2.cvtColor(picture, cv2.COLOR_mRGBA2RGBA, dst=picture if picture.flags.c_contiguous else None)
    if divided is not picture:  # a view OpenCV could not write into: a new array
        picture[...] = divided
    picture[hidden] = kept
    return picture


def _divide_band(colour: np.ndarray, alpha: np.ndarray, top: int) -> None:
    """``colour * top / alpha`` rounded to nearest in exact integer arithmetic, written back into ``colour`` where
    ``alpha`` is over 0. 32 bits hold it: 65535 * 65535 + 32767 < 2^32."""
    wide = colour.astype(np.uint32)
    held = alpha.astype(np.uint32)
    quotient = (wide * top + held // 2) // np.maximum(held, 1)
    np.minimum(quotient, top, out=quotient)
    np.copyto(colour, quotient, where=held > 0, casting="unsafe")
