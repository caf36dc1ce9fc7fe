"""8-bit tiled TIFFs (``tiffcp -t``, ImageMagick's ``-define tiff:tile-geometry``, GIS tools, large-format scanners'
software), decoded by libtiff through OpenCV as strips, so they read as the same picture saved in strips.

OpenCV 4.14 decodes an 8-bit tiled TIFF a tile at a time with libtiff's ``TIFFReadRGBATile``, and gets two things wrong:

- each tile comes back mirrored by the file's Orientation, but OpenCV puts it where it is stored, not where the
  mirror takes it: a picture stored with Orientation 2, 3, 6 or 7 comes out with its tiles in the wrong places;
- an uncompressed tile whose size is not a multiple of 1 KiB (a 16 x 16 gray or RGB tile) fails libtiff 4.7's
  check of a raw tile's size when read from memory, as ``cv2.imdecode`` reads it, and the picture is "damaged".

Why strips: the first IFD is rewritten, in place, to say the same bytes are a picture one tile wide, each tile one
strip stacked under the one before, in Orientation 1. libtiff then decodes every tile as it decodes any strip (each
compression it has, predictor, JPEG tables, YCbCr, palette, alpha), and OpenCV's strip reading has neither fault;
the tiles are put in place here and the picture turned upright by its Orientation. Pillow reads tiles too but keeps
no 16 bits and ignores Orientation, and tifffile needs imagecodecs for LZW and JPEG: libtiff through OpenCV is the
decoder birefvid reads every other TIFF with, so a tiled picture comes out as its striped twin, pixel for pixel.
The file is not copied (its IFD is put back after), and a tile row is decoded at a time: at most the picture, its
upright copy and one tile row are held. 16-bit and float tiled TIFFs OpenCV reads right itself (``TIFFReadEncodedTile``)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import numpy as np

from birefvid.io.tiff_tags import INT_TYPES, Field, FirstIfd, first_ifd, ifd_kept, inline, write_ifd

# numpy for TIFF's (and EXIF's) Orientation 2-8, stored -> upright: flips, then quarter turns counter-clockwise
UPRIGHT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1], 3: lambda a: np.rot90(a, 2), 4: lambda a: a[::-1], 5: lambda a: np.rot90(a[:, ::-1], 1),
    6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a[:, ::-1], -1), 8: lambda a: np.rot90(a, 1)}  # fmt: skip

_WIDTH, _LENGTH, _BITS, _STRIP_OFFSETS, _ORIENTATION, _SAMPLES = 256, 257, 258, 273, 274, 277
_ROWS_PER_STRIP, _STRIP_COUNTS, _PLANAR, _SAMPLE_FORMAT = 278, 279, 284, 339
_TILE_WIDTH, _TILE_LENGTH, _TILE_OFFSETS, _TILE_COUNTS = 322, 323, 324, 325
_SHORT, _LONG = 3, 4
# a strip this many rows at most: OpenCV refuses a picture over 2^20 rows (OPENCV_IO_MAX_IMAGE_HEIGHT)
_MAX_ROWS = 1 << 16

Decoder = Callable[[np.ndarray], Optional[np.ndarray]]  # cv2.imdecode with the caller's flags: None when it fails


@dataclass(frozen=True)
class TileGrid:
    """Where an 8-bit tiled TIFF's tiles lie: the picture's size as stored, a tile's, and its Orientation (1-8)."""

    width: int
    height: int
    tile_width: int
    tile_length: int
    orientation: int

    @property
    def across(self) -> int:
        """Tiles in a tile row (the last one reaching past the picture's right edge, padded)."""
        return -(-self.width // self.tile_width)

    @property
    def down(self) -> int:
        """Tile rows."""
        return -(-self.height // self.tile_length)


def tile_grid(data: memoryview) -> Optional[TileGrid]:
    """The tile grid of a TIFF whose first picture is tiled, interleaved (or one channel) and of 8 bits or fewer a
    sample, as OpenCV decodes through libtiff's RGBA tile reading; None for any other picture, or a header too
    damaged to say (OpenCV's own reading, as before)."""
    ifd = first_ifd(data)
    if ifd is None or not {_TILE_WIDTH, _TILE_LENGTH, _TILE_OFFSETS, _TILE_COUNTS} <= ifd.entries.keys():
        return None
    try:
        width, length, tile_width, tile_length, samples, planar, bits, sample_format, orientation = (
            ifd.values(data, tag) for tag in (_WIDTH, _LENGTH, _TILE_WIDTH, _TILE_LENGTH, _SAMPLES, _PLANAR, _BITS,
                                              _SAMPLE_FORMAT, _ORIENTATION))  # fmt: skip
        offsets, counts = (ifd.values(data, tag) for tag in (_TILE_OFFSETS, _TILE_COUNTS))
    except struct.error:
        return None
    if len(width) != 1 or len(length) != 1 or len(tile_width) != 1 or len(tile_length) != 1:
        return None
    if (planar or [1]) != [1] and (samples or [1]) != [1]:
        return None  # planar: image_source splits it into one-channel pictures, each read here
    if max(bits or [1]) > 8 or set(sample_format or [1]) - {1, 2}:
        return None  # 16-bit and float tiles OpenCV reads right (TIFFReadEncodedTile, its own orientation)
    grid = TileGrid(width[0], length[0], tile_width[0], tile_length[0], (orientation or [1])[0])
    if min(grid.width, grid.height, grid.tile_width, grid.tile_length) < 1 or grid.orientation not in range(1, 9):
        return None
    if len(offsets) != grid.across * grid.down or len(counts) != len(offsets):
        return None
    return grid


def decode_tiled(data: np.ndarray, grid: TileGrid, decode: Decoder) -> Optional[np.ndarray]:
    """The picture of the tiled TIFF whose bytes are ``data`` (writable: its IFD is rewritten for a while, then put
    back), upright by its Orientation, as ``decode`` (``cv2.imdecode`` with the caller's flags) gives a striped
    picture: gray, BGR or BGRA. None when a tile does not decode (damaged or cut off), as OpenCV's None says."""
    stored = _stored_picture(data, grid, decode)
    if stored is None or grid.orientation == 1:
        return stored
    return np.ascontiguousarray(UPRIGHT[grid.orientation](stored))  # the stored one is dropped on return


def _stored_picture(data: np.ndarray, grid: TileGrid, decode: Decoder) -> Optional[np.ndarray]:
    """The picture as stored (not yet turned), put together a tile row, or a part of one, at a time."""
    view = memoryview(data)
    ifd = first_ifd(view)
    assert ifd is not None
    picture: Optional[np.ndarray] = None
    group = max(1, min(grid.across, _MAX_ROWS // grid.tile_length))  # tiles decoded together, as one strip picture
    with ifd_kept(data, ifd):
        for row in range(grid.down):
            for first in range(0, grid.across, group):
                count = min(group, grid.across - first)
                _write_strips_ifd(data, ifd, grid, row * grid.across + first, count)
                strip = decode(data)
                if strip is None or strip.shape[:2] != (grid.tile_length * count, grid.tile_width):
                    return None
                if picture is None:
                    picture = np.empty((grid.height, grid.width) + strip.shape[2:], strip.dtype)
                _place(picture, strip, grid, row, first, count)
    return picture


def _place(picture: np.ndarray, strip: np.ndarray, grid: TileGrid, row: int, first: int, count: int) -> None:
    """Copy ``count`` tiles stacked in ``strip`` to tile row ``row`` from tile column ``first``, cut at the edges."""
    top, left = row * grid.tile_length, first * grid.tile_width
    rows = min(grid.tile_length, grid.height - top)
    columns = min(count * grid.tile_width, grid.width - left)
    tiles = strip.reshape((count, grid.tile_length, grid.tile_width) + strip.shape[2:])
    side_by_side = tiles.swapaxes(0, 1).reshape((grid.tile_length, count * grid.tile_width) + strip.shape[2:])
    picture[top:top + rows, left:left + columns] = side_by_side[:rows, :columns]


def _write_strips_ifd(data: np.ndarray, ifd: FirstIfd, grid: TileGrid, first: int, count: int) -> None:
    """Rewrite the first IFD, where it is, to describe tiles ``first`` to ``first + count - 1`` as a picture one tile
    wide, a strip each, stacked, in Orientation 1; every other tag (compression, photometric, JPEG tables, colour
    map, extra samples) as it is. It has one entry fewer than the tiled IFD (three strip tags for four tile tags),
    so it fits where that one was."""
    order, field_size = ifd.order, 8 if ifd.big else 4
    tags = {tag: (e.kind, e.count, e.field) for tag, e in ifd.entries.items()
            if tag not in (_TILE_WIDTH, _TILE_LENGTH, _TILE_OFFSETS, _TILE_COUNTS, _ROWS_PER_STRIP, _STRIP_OFFSETS,
                           _STRIP_COUNTS)}  # fmt: skip
    tags[_WIDTH] = inline(order, field_size, _LONG, [grid.tile_width])
    tags[_LENGTH] = inline(order, field_size, _LONG, [grid.tile_length * count])
    tags[_ROWS_PER_STRIP] = inline(order, field_size, _LONG, [grid.tile_length])
    if _ORIENTATION in tags:
        tags[_ORIENTATION] = inline(order, field_size, _SHORT, [1])
    for strip_tag, tile_tag in ((_STRIP_OFFSETS, _TILE_OFFSETS), (_STRIP_COUNTS, _TILE_COUNTS)):
        tags[strip_tag] = _part_of(data, ifd, tile_tag, first, count)
    write_ifd(data, ifd, tags)


def _part_of(data: np.ndarray, ifd: FirstIfd, tag: int, first: int, count: int) -> Field:
    """An entry for values ``first`` to ``first + count - 1`` of the array ``tag`` holds: inline when they fit in a
    value field (libtiff reads them from there then), else pointing into the array where it lies in the file."""
    entry = ifd.entries[tag]
    code, size = INT_TYPES[entry.kind]
    field_size = len(entry.field)
    if count * size <= field_size:  # the parsed field, for an array inline: the IFD's bytes are rewritten by now
        if entry.count * size <= field_size:
            values = list(struct.unpack_from(f"{ifd.order}{entry.count}{code}", entry.field))[first:first + count]
        else:
            at = ifd.values_at(tag) + first * size
            values = list(struct.unpack(f"{ifd.order}{count}{code}", data[at:at + count * size].tobytes()))
        return inline(ifd.order, field_size, entry.kind, values)
    where = ifd.values_at(tag) + first * size
    return entry.kind, count, struct.pack(ifd.order + ("Q" if ifd.big else "I"), where)
