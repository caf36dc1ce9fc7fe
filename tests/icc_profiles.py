"""Small ICC v2 profiles made here (none but sRGB ships with Pillow or Debian's base): a CMYK input
profile, a gray display profile and an RGB display profile with Display P3's primaries."""

from __future__ import annotations

import itertools
import struct

D50 = (0.9642, 1.0, 0.8249)


def s15(v: float) -> bytes:
    """An ICC s15Fixed16Number."""
    return struct.pack(">i", round(v * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + b"\0" * 4 + s15(x) + s15(y) + s15(z)


def _desc(text: bytes) -> bytes:
    text += b"\0"
    return b"desc" + b"\0" * 4 + struct.pack(">I", len(text)) + text + b"\0" * 8 + b"\0" * 2 + b"\0" * 67


def _gamma(value: float) -> bytes:
    return b"curv" + b"\0" * 4 + struct.pack(">IH", 1, round(value * 256)) + b"\0\0"


def profile(device_class: bytes, colour_space: bytes, pcs: bytes, name: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    """An ICC v2 profile: a 128-byte header, the tag table, then the tags (desc, wtpt and cprt added)."""
    tags = [(b"desc", _desc(name)), (b"wtpt", _xyz(*D50)), (b"cprt", b"text" + b"\0" * 4 + b"none\0"), *tags]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body + b"\0" * ((-len(body)) % 4)
    header = (struct.pack(">I", offset + len(data)) + b"\0" * 4 + bytes([2, 0x10, 0, 0]) + device_class + colour_space + pcs
              + b"\0" * 12 + b"acsp" + b"\0" * 28 + s15(D50[0]) + s15(D50[1]) + s15(D50[2]) + b"\0" * 48)
    assert len(header) == 128, len(header)
    return header + struct.pack(">I", len(tags)) + table + data


def cmyk_profile() -> bytes:
    """A CMYK input profile (A2B0: a lut16 to Lab on a 2-point grid): its black is a dark grey, its cyan a
    teal, unlike OpenCV's naive R = 255 - C - K."""

    def lab16(L: float, a: float, b: float) -> bytes:
        return struct.pack(">HHH", round(L / 100 * 0xFF00), round((a + 128) * 256), round((b + 128) * 256))

    clut = b""
    for c, m, y, k in itertools.product((0, 1), repeat=4):  # first channel slowest
        L = 93 - 30 * c - 35 * m - 8 * y - 70 * k
        a = 2 - 30 * c + 60 * m - 5 * y
        b = 8 - 40 * c - 5 * m + 70 * y
        clut += lab16(max(L, 5), max(-120, min(120, a)), max(-120, min(120, b)))
    lut = (b"mft2" + b"\0" * 4 + bytes([4, 3, 2, 0]) + b"".join(s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
           + struct.pack(">HH", 2, 2) + struct.pack(">HH", 0, 65535) * 4 + clut + struct.pack(">HH", 0, 65535) * 3)
    return profile(b"scnr", b"CMYK", b"Lab ", b"test CMYK", [(b"A2B0", lut)])


def gray_profile(gamma: float = 1.0) -> bytes:
    """A gray display profile (kTRC: one gamma); at gamma 1 its midtones are far lighter than the same
    values read as sRGB gray."""
    return profile(b"mntr", b"GRAY", b"XYZ ", b"test gray", [(b"kTRC", _gamma(gamma))])


# Display P3's primaries, adapted to the D50 profile connection space (the columns of its matrix)
P3_COLUMNS = ((0.5151, 0.2412, -0.0011), (0.2920, 0.6922, 0.0419), (0.1571, 0.0666, 0.7841))


def p3_like_profile(gamma: float = 2.2) -> bytes:
    """An RGB display profile with Display P3's primaries and a plain gamma: what an iPhone photo embeds,
    near enough (the real one's curve is sRGB's)."""
    columns = [(b"rXYZ", _xyz(*P3_COLUMNS[0])), (b"gXYZ", _xyz(*P3_COLUMNS[1])), (b"bXYZ", _xyz(*P3_COLUMNS[2]))]
    curves = [(sig, _gamma(gamma)) for sig in (b"rTRC", b"gTRC", b"bTRC")]
    return profile(b"mntr", b"RGB ", b"XYZ ", b"test P3", [*columns, *curves])
