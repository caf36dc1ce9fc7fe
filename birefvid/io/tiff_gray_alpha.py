"""Gray + alpha TIFFs (two samples a pixel: ImageMagick's ``-colorspace gray -alpha on``, tifffile's minisblack with
an extra sample, GIMP's and Photoshop's gray layers saved with transparency), decoded by libtiff through OpenCV as
a one-channel gray picture twice as wide, so they read as the same picture saved as a gray + alpha PNG does.

OpenCV 4.14 reads a two-sample TIFF through libtiff's 8-bit RGBA interface whatever its depth and hands back gray
alone: a 16-bit one came out 8-bit (its 16 bits lost), a tiled 16-bit one as wrong values (off by up to 255), and
its alpha was dropped, which ``IMREAD_UNCHANGED`` does not bring back. Pillow, which birefvid read such alpha with,
opens no 16-bit gray + alpha TIFF, nor a big-endian BigTIFF at all.

Why twice as wide: gray and alpha samples alternate in the decoded bytes, so the same bytes are a one-sample gray
picture of width 2W. The first IFD is rewritten in place (and put back after) to say so; libtiff then decodes it
with every byte-stream compression it has (none, LZW, deflate, PackBits; LZMA and zstd where built in), 8 or 16
bits, either byte order, classic or BigTIFF, strips or tiles (an 8-bit tiled one through ``tiff_tiles``), and the
samples are split here. The two things that depend on the sample count are done here instead of by libtiff: the
horizontal predictor (each sample differenced from the one a pixel before, not the sample before) and the
Orientation."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import numpy as np

from birefvid.io.tiff_tags import FirstIfd, first_ifd, ifd_kept, inline, write_ifd
from birefvid.io.tiff_tiles import UPRIGHT

_WIDTH, _LENGTH, _BITS, _COMPRESSION, _PHOTOMETRIC, _ORIENTATION, _SAMPLES = 256, 257, 258, 259, 262, 274, 277
_PLANAR, _PREDICTOR, _TILE_WIDTH, _TILE_OFFSETS, _EXTRA_SAMPLES, _SAMPLE_FORMAT = 284, 317, 322, 324, 338, 339
_PER_SAMPLE = (280, 281, 340, 341)  # Min/MaxSampleValue, SMin/SMaxSampleValue: one value a sample, 2 then 1
_SHORT, _LONG = 3, 4
_MIN_IS_BLACK = 1
# compressions whose decoded bytes do not depend on the samples a pixel (not JPEG, whose components do)
_BYTE_STREAMS = frozenset({1, 5, 8, 32946, 32773, 34925, 50000})  # none, LZW, deflate (2), PackBits, LZMA, zstd
_NO_PREDICTOR, _HORIZONTAL = 1, 2
_MAX_WIDTH = 1 << 20  # OpenCV refuses a picture wider (OPENCV_IO_MAX_IMAGE_WIDTH)

Decoder = Callable[[np.ndarray], Optional[np.ndarray]]  # cv2.imdecode(..., IMREAD_UNCHANGED) or alike: None if it fails


@dataclass(frozen=True)
class GrayAlpha:
    """What a gray + alpha TIFF's reading here needs of its first IFD: its size as stored, depth, Orientation (1-8),
    whether its samples are differenced (predictor 2) and, for a tiled one, a tile's width (where that restarts)."""

    width: int
    height: int
    bits: int
    orientation: int
    predictor: bool
    tile_width: Optional[int]


def gray_alpha(data: memoryview) -> Optional[GrayAlpha]:
    """The layout of a TIFF whose first picture is interleaved unsigned 8- or 16-bit gray + one extra sample,
    compressed as a byte stream (``_BYTE_STREAMS``); None for any other picture or a header too damaged to say
    (OpenCV's own reading, as before)."""
    ifd = first_ifd(data)
    if ifd is None or _EXTRA_SAMPLES not in ifd.entries:
        return None
    try:
        width, height, bits, compression, photometric, orientation, samples, planar, predictor, sample_format, tile = (
            ifd.values(data, tag) for tag in (_WIDTH, _LENGTH, _BITS, _COMPRESSION, _PHOTOMETRIC, _ORIENTATION,
                                              _SAMPLES, _PLANAR, _PREDICTOR, _SAMPLE_FORMAT, _TILE_WIDTH))  # fmt: skip
    except struct.error:
        return None
    if samples != [2] or photometric != [_MIN_IS_BLACK] or (planar or [1]) != [1] or len(set(bits)) != 1:
        return None
    if bits[0] not in (8, 16) or set(sample_format or [1]) != {1} or (compression or [1])[0] not in _BYTE_STREAMS:
        return None
    if len(width) != 1 or len(height) != 1 or (predictor or [1])[0] not in (_NO_PREDICTOR, _HORIZONTAL):
        return None
    layout = GrayAlpha(width[0], height[0], bits[0], (orientation or [1])[0], (predictor or [1])[0] == _HORIZONTAL,
                       tile[0] if len(tile) == 1 else None)  # fmt: skip
    if min(layout.width, layout.height) < 1 or 2 * layout.width > _MAX_WIDTH or layout.orientation not in range(1, 9):
        return None
    return layout


def decode_gray_alpha(data: np.ndarray, layout: GrayAlpha, decode: Decoder) -> Optional[np.ndarray]:
    """The picture of the gray + alpha TIFF whose bytes are ``data`` (writable: its IFD is rewritten for a while, then
    put back) as (H, W, 2), gray then alpha, uint8 or uint16 as stored, upright by its Orientation; None when libtiff
    cannot decode it (damaged or cut off), as OpenCV's None says."""
    ifd = first_ifd(memoryview(data))
    assert ifd is not None
    with ifd_kept(data, ifd):
        write_ifd(data, ifd, _one_sample_tags(ifd, layout))
        wide = decode(data)
    dtype = np.uint8 if layout.bits == 8 else np.uint16
    if wide is None or wide.shape != (layout.height, 2 * layout.width) or wide.dtype != dtype:
        return None
    pairs = wide.reshape(layout.height, layout.width, 2)
    if layout.predictor:
        pairs = _undifferenced(pairs, layout.tile_width or layout.width)
    upright = UPRIGHT.get(layout.orientation)
    return np.ascontiguousarray(upright(pairs) if upright else pairs)


def _one_sample_tags(ifd: FirstIfd, layout: GrayAlpha) -> dict[int, tuple[int, int, bytes]]:
    """The first IFD's entries re-describing its picture as one gray sample a pixel, twice as wide (tiles too), in
    Orientation 1 and with no predictor: the decoded bytes are the same, only what libtiff does with them differs."""
    order, field_size = ifd.order, 8 if ifd.big else 4
    tags = {tag: (e.kind, e.count, e.field) for tag, e in ifd.entries.items()
            if tag not in (_EXTRA_SAMPLES, *_PER_SAMPLE)}  # fmt: skip
    tags[_WIDTH] = inline(order, field_size, _LONG, [2 * layout.width])
    tags[_SAMPLES] = inline(order, field_size, _SHORT, [1])
    tags[_BITS] = inline(order, field_size, _SHORT, [layout.bits])
    if _SAMPLE_FORMAT in tags:
        tags[_SAMPLE_FORMAT] = inline(order, field_size, _SHORT, [1])
    if _ORIENTATION in tags:
        tags[_ORIENTATION] = inline(order, field_size, _SHORT, [1])
    if _PREDICTOR in tags:
        tags[_PREDICTOR] = inline(order, field_size, _SHORT, [_NO_PREDICTOR])
    if layout.tile_width is not None:
        tags[_TILE_WIDTH] = inline(order, field_size, _LONG, [2 * layout.tile_width])
    return tags


def _undifferenced(pairs: np.ndarray, run: int) -> np.ndarray:
    """The samples of a picture stored with TIFF's horizontal predictor: each row's differences summed (wrapping, as
    the predictor's are), per sample, from the start of each strip row or tile row (``run`` pixels apart)."""
    summed = np.empty_like(pairs)
    for left in range(0, pairs.shape[1], run):
        np.cumsum(pairs[:, left:left + run], axis=1, dtype=pairs.dtype, out=summed[:, left:left + run])
    return summed
