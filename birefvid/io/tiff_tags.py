"""The tags of a TIFF's first picture (its first IFD), read from the file's bytes: classic TIFF or BigTIFF, either
byte order ("II" Intel, "MM" Motorola, as Photoshop on old Macs and some scanners write). birefvid reads a few tags
OpenCV does not act on (SampleFormat, PlanarConfiguration, ExtraSamples, Orientation) to decide how a picture is
decoded; this is the one place their layout is parsed."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

Bytes = Union[bytes, bytearray, memoryview]

# the integer field types read here, by TIFF type code: SHORT, LONG and BigTIFF's LONG8, as (struct code, size)
INT_TYPES = {3: ("H", 2), 4: ("I", 4), 16: ("Q", 8)}

_CLASSIC, _BIG = 42, 43  # the version number after the byte order mark

Field = tuple[int, int, bytes]  # an entry as written: its type, count and value field (values, or their offset)


@dataclass(frozen=True)
class Entry:
    """One IFD entry: its field type, count and value field (the values themselves when they fit, else their offset),
    and where that value field lies in the file."""

    kind: int
    count: int
    field: bytes
    field_at: int


@dataclass(frozen=True)
class FirstIfd:
    """A TIFF's first IFD: ``order`` is struct's byte order ("<" or ">"), ``big`` a BigTIFF (8-byte offsets)."""

    order: str
    big: bool
    offset: int
    entries: dict[int, Entry]

    @property
    def offset_code(self) -> str:
        """struct's code for an offset in this file: 4 bytes, or 8 in a BigTIFF."""
        return "Q" if self.big else "I"

    def values(self, data: Bytes, tag: int) -> list[int]:
        """The integer (SHORT, LONG, LONG8) values of ``tag``, inline or where its offset points; [] when the tag is
        absent or of another type. struct.error when they lie past the end of ``data`` (a cut-off file)."""
        entry = self.entries.get(tag)
        if entry is None or entry.kind not in INT_TYPES:
            return []
        code, size = INT_TYPES[entry.kind]
        return list(struct.unpack_from(f"{self.order}{entry.count}{code}", data, self.values_at(tag)))

    def values_at(self, tag: int) -> int:
        """Where in the file ``tag``'s values lie: in its entry's value field when they fit there, else where it points."""
        entry = self.entries[tag]
        size = INT_TYPES.get(entry.kind, ("B", 1))[1]
        if size * entry.count <= len(entry.field):
            return entry.field_at
        (where,) = struct.unpack(self.order + self.offset_code, entry.field)
        return where


def first_ifd(data: Bytes) -> Optional[FirstIfd]:
    """The first IFD of the TIFF whose bytes are ``data`` (wherever in the file it lies: libtiff and Photoshop write
    it after the pixels), or None for bytes that are no TIFF or whose header is cut off or damaged."""
    order = {b"II": "<", b"MM": ">"}.get(bytes(data[:2]))
    if order is None:
        return None
    try:
        (version,) = struct.unpack_from(order + "H", data, 2)
        if version == _CLASSIC:
            (offset,) = struct.unpack_from(order + "I", data, 4)
            count_code, entry_format = "H", "HHI4s"
        elif version == _BIG:
            (offset,) = struct.unpack_from(order + "Q", data, 8)
            count_code, entry_format = "Q", "HHQ8s"
        else:
            return None
        (count,) = struct.unpack_from(order + count_code, data, offset)
        start = offset + struct.calcsize(order + count_code)
        size = struct.calcsize(order + entry_format)
        entries = {}
        for n in range(count):
            at = start + size * n
            tag, kind, length, field = struct.unpack_from(order + entry_format, data, at)
            entries[tag] = Entry(kind, length, field, at + size - len(field))
    except struct.error:  # cut off inside the header
        return None
    return FirstIfd(order, version == _BIG, offset, entries)


def ifd_size(ifd: FirstIfd, entries: int) -> int:
    """Bytes of an IFD of ``entries`` entries in this file's layout: its count, entries and next IFD's offset."""
    return (8 + 20 * entries + 8) if ifd.big else (2 + 12 * entries + 4)


def inline(order: str, field_size: int, kind: int, values: list[int]) -> Field:
    """An entry's (type, count, value field) holding ``values`` in the field itself, left-justified."""
    code, _ = INT_TYPES[kind]
    return kind, len(values), struct.pack(f"{order}{len(values)}{code}", *values).ljust(field_size, b"\x00")


@contextlib.contextmanager
def ifd_kept(data: np.ndarray, ifd: FirstIfd) -> Iterator[None]:
    """The bytes of the first IFD put back as they were after the block, however it ends: for a block that rewrites
    it in place (``write_ifd``) to have libtiff read the same pixels otherwise, without copying the file."""
    start, end = ifd.offset, ifd.offset + ifd_size(ifd, len(ifd.entries))
    kept = data[start:end].copy()
    try:
        yield
    finally:
        data[start:end] = kept


def write_ifd(data: np.ndarray, ifd: FirstIfd, tags: dict[int, Field]) -> None:
    """Rewrite the first IFD where it is, as ``tags`` (no more entries than it has, so it fits), its link to the next
    IFD kept: value fields that point elsewhere in the file still do, as nothing else moves."""
    field_size = 8 if ifd.big else 4
    old_size = ifd_size(ifd, len(ifd.entries))
    assert len(tags) <= len(ifd.entries)
    entry_code = "HHQ" if ifd.big else "HHI"
    body = struct.pack(ifd.order + ("Q" if ifd.big else "H"), len(tags)) + b"".join(
        struct.pack(ifd.order + entry_code, tag, kind, n) + field for tag, (kind, n, field) in sorted(tags.items()))
    body += data[ifd.offset + old_size - field_size:][:field_size].tobytes()  # the next IFD's offset
    data[ifd.offset:ifd.offset + len(body)] = np.frombuffer(body, dtype=np.uint8)
