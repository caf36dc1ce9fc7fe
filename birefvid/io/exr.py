"""OpenEXR pictures for compositors (Nuke, Fusion, Houdini), written by FFmpeg's EXR encoder through PyAV.

A matte is one half-float channel ``Y`` from 0 to 1. Colour is scene-linear light, as EXR holds it: the source's
encoded values are decoded with the inverse of its transfer function (``exr_colour`` says which), kept in the
source's primaries (the ``chromaticities`` attribute says which), and a cut-out's RGB is premultiplied by its alpha,
OpenEXR's convention ("RGB values are premultiplied by alpha", https://openexr.com/en/latest/TechnicalIntroduction.html).

OpenCV's EXR writer is off in its wheels unless OPENCV_IO_ENABLE_OPENEXR is set before it first runs, hence FFmpeg's.
Half floats (what compositors keep pictures in) and ZIP over 16 scanlines, lossless; FFmpeg has no PIZ.
"""

from __future__ import annotations

import functools
import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Optional

import av
import numpy as np

from birefvid.errors import SinkError, option
from birefvid.frames import StreamInfo
from birefvid.io.trim import TIMECODE, shift_timecode

log = logging.getLogger(__name__)

_EXR_OPTIONS = {"format": "half", "compression": "zip16"}

Curve = Callable[[np.ndarray], np.ndarray]  # encoded value in [0, 1] -> linear light, float64


def _bt709(v: np.ndarray) -> np.ndarray:
    """BT.709's OETF inverted (BT.2020's and SMPTE 170M's, the same curve): the scene light a camera encoded.
    What Nuke's ``rec709`` colourspace and OCIO's "Utility - Rec.709 - Camera" do when they read video."""
    return np.where(v < 0.081, v / 4.5, np.power((v + 0.099) / 1.099, 1 / 0.45))


def _smpte240m(v: np.ndarray) -> np.ndarray:
    """SMPTE 240M's OETF inverted (early HD)."""
    return np.where(v < 4 * 0.0228, v / 4, np.power((v + 0.1115) / 1.1115, 1 / 0.45))


def _srgb(v: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1's sRGB EOTF: how a picture file's values are shown, and what Nuke's ``sRGB`` colourspace undoes."""
    return np.where(v <= 0.04045, v / 12.92, np.power((v + 0.055) / 1.055, 2.4))


def _power(gamma: float) -> Curve:
    return lambda v: np.power(v, gamma)


# AVColorTransferCharacteristic -> (its name in messages, its decoding to linear light)
_CURVES: dict[int, tuple[str, Curve]] = {
    1: ("BT.709", _bt709), 6: ("BT.709", _bt709), 14: ("BT.709", _bt709), 15: ("BT.709", _bt709),
    11: ("BT.709", _bt709),  # IEC 61966-2-4 (xvYCC): BT.709's curve, extended below 0 and above 1, which RGB clips
    2: ("BT.709", _bt709), 0: ("BT.709", _bt709), 3: ("BT.709", _bt709),  # video that says nothing (or a reserved value): as HD video, BT.709
    13: ("sRGB", _srgb), 4: ("gamma 2.2", _power(2.2)), 5: ("gamma 2.8", _power(2.8)),
    7: ("SMPTE 240M", _smpte240m), 8: ("linear", lambda v: v),
}  # fmt: skip
_HDR = {16: "PQ", 18: "HLG"}
_OTHER_NAMES = {9: "logarithmic", 10: "logarithmic (sqrt)", 12: "BT.1361", 17: "SMPTE 428 (DCI XYZ)"}

# AVColorPrimaries -> CIE xy of red, green, blue and white, as OpenEXR's ``chromaticities`` lists them
_D65, _C = (0.3127, 0.3290), (0.310, 0.316)
_CHROMATICITIES: dict[int, tuple[float, ...]] = {
    1: (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, *_D65),  # BT.709, sRGB
    4: (0.67, 0.33, 0.21, 0.71, 0.14, 0.08, *_C),  # BT.470 M
    5: (0.64, 0.33, 0.29, 0.60, 0.15, 0.06, *_D65),  # BT.470 BG (PAL)
    6: (0.630, 0.340, 0.310, 0.595, 0.155, 0.070, *_D65),  # SMPTE 170M (NTSC)
    7: (0.630, 0.340, 0.310, 0.595, 0.155, 0.070, *_D65),  # SMPTE 240M
    8: (0.681, 0.319, 0.243, 0.692, 0.145, 0.049, *_C),  # generic film
    9: (0.708, 0.292, 0.170, 0.797, 0.131, 0.046, *_D65),  # BT.2020
    10: (1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1 / 3, 1 / 3),  # SMPTE 428 (CIE XYZ)
    11: (0.680, 0.320, 0.265, 0.690, 0.150, 0.060, 0.314, 0.351),  # DCI-P3
    12: (0.680, 0.320, 0.265, 0.690, 0.150, 0.060, *_D65),  # Display P3
    22: (0.630, 0.340, 0.295, 0.605, 0.155, 0.077, *_D65),  # EBU 3213
}


@dataclass(frozen=True)
class ExrColour:
    """How a source's RGB becomes an EXR's: ``transfer`` named, ``curve`` decoding it, the ``chromaticities`` written."""

    transfer: str
    curve: Curve
    chromaticities: tuple[float, ...]

    def tables(self) -> dict[np.dtype, np.ndarray]:
        """Each 8- and 16-bit code's linear light, float32: a look-up a sample instead of a power."""
        return {np.dtype(dtype): self.curve(np.arange(top + 1, dtype=np.float64) / top).astype(np.float32)
                for dtype, top in ((np.uint8, 255), (np.uint16, 65535))}  # fmt: skip


def exr_colour(info: StreamInfo, target: str | Path) -> ExrColour:
    """The linearisation of ``info``'s pictures for an EXR at ``target``, or SinkError (one line) for a transfer
    that is not decoded here: HDR (PQ, HLG) and log curves.

    ``color_trc`` None is a picture file's (an image sequence, an animated WebP): sRGB, as every viewer shows
    them, and so is untagged RGB video (``_pictures_curve``); video with a transfer tag is decoded with its OETF inverted, untagged video with BT.709's (scene light:
    BT.1886's display gamma 2.4 would give darker midtones that Nuke's rec709 Write does not give back)."""
    trc = info.color_trc
    if trc in _HDR:
        raise SinkError(f"{target}: the input is HDR ({_HDR[trc]}), whose colour birefvid does not linearise into OpenEXR; "  # type: ignore[index]
                        f"write .mov (ProRes 4444 keeps the HDR) or .tif (shown as SDR), or the matte alone "
                        f"({option('output', 'mask')}) as EXR")  # fmt: skip
    name, curve = ("sRGB", _srgb) if _pictures_curve(info) else _CURVES.get(trc, ("", _srgb))  # type: ignore[arg-type]
    if not name:
        raise SinkError(f"{target}: the input's transfer is {_OTHER_NAMES.get(trc, f'#{trc}')}, which birefvid does not "  # type: ignore[arg-type]
                        f"linearise into OpenEXR; write .tif (16-bit) and linearise it in the compositor")  # fmt: skip
    primaries = info.color_primaries if info.color_primaries in _CHROMATICITIES else 1  # untagged: BT.709, EXR's own default
    return ExrColour(name, curve, _CHROMATICITIES[primaries])  # type: ignore[index]


def _pictures_curve(info: StreamInfo) -> bool:
    """Whether ``info``'s pictures are decoded with sRGB's curve as picture files: a picture file's (no transfer at
    all), or RGB video that names none (an APNG, a GIF, RGB FFV1, PNG-in-MOV: pictures put in a video file, which
    FFmpeg reports as unspecified). Taken as untagged YUV video, by BT.709's OETF inverted, their linear light came out
    21% brighter than the same pictures' as a PNG plate at code 128, 53% at 64."""
    return info.color_trc is None or (info.rgb_pictures and info.color_trc in (0, 2, 3))  # 0, 3: reserved, as unspecified


Attribute = tuple[str, str, bytes]  # an OpenEXR header attribute: name, type name, value bytes


def exr_matte(mask: np.ndarray, pixel_aspect: Fraction = Fraction(1), timing: Sequence[Attribute] = ()) -> bytes:
    """One OpenEXR file of ``mask`` (H, W) uint8 or uint16, as half floats from 0 to 1: the 8- or 16-bit matte scaled,
    0 and the top level exactly 0.0 and 1.0. Its one channel is "Y", OpenEXR's name for a gray picture, which OpenCV,
    OpenImageIO and FFmpeg read as one and Nuke takes into its alpha as it does "A". ``pixel_aspect``: one pixel's
    width over its height, the source's (``exr_pixel_aspect``); ``timing``: the frame's ``exr_timing`` attributes."""
    return _with_attributes(_encode(_nearest_halves(mask.dtype == np.uint16)[mask], "grayf32le", pixel_aspect), timing)


@functools.lru_cache(maxsize=2)
def _nearest_halves(deep: bool) -> np.ndarray:
    """Each 8-bit (or 16-bit, ``deep``) matte level's value from 0 to 1 as the nearest half float, held as float32: a
    table, ~5 ms a 1080p frame (``_encode`` then finds them halves already)."""
    top = 65535 if deep else 255
    return (np.arange(top + 1) / top).astype(np.float16).astype(np.float32)


def exr_picture(picture: np.ndarray, colour: ExrColour, tables: Optional[dict[np.dtype, np.ndarray]] = None,
                pixel_aspect: Fraction = Fraction(1), timing: Sequence[Attribute] = ()) -> bytes:  # fmt: skip
    """One OpenEXR file of ``picture``, RGB (H, W, 3) or straight-alpha RGBA (H, W, 4), uint8 or uint16: half-float
    R, G, B (and A) in linear light, RGB premultiplied by A, with ``colour``'s chromaticities.
    ``tables``: ``colour.tables()``, made once a sequence; ``pixel_aspect``, ``timing``: as ``exr_matte``'s."""
    light = (tables or colour.tables())[picture.dtype][picture[..., :3]]
    if picture.shape[2] == 4:
        alpha = picture[..., 3].astype(np.float32) / np.float32(np.iinfo(picture.dtype).max)
        light = np.dstack([light * alpha[..., None], alpha])
    data = _encode(light, "gbrapf32le" if picture.shape[2] == 4 else "gbrpf32le", pixel_aspect)
    chromaticities = ("chromaticities", "chromaticities", struct.pack("<8f", *colour.chromaticities))
    return _with_attributes(data, [chromaticities, *timing])


def exr_pixel_aspect(sample_aspect_ratio: Optional[Fraction]) -> Fraction:
    """The ``pixelAspectRatio`` of a source whose pixels are ``sample_aspect_ratio`` (None or 0: square): 1 or theirs."""
    return Fraction(sample_aspect_ratio) if sample_aspect_ratio and sample_aspect_ratio > 0 else Fraction(1)


# SMPTE 12M's frame field counts 0-29: 50 and 59.94/60 fps frames go in pairs, the second flagged (ST 12-1, as FFmpeg
# writes them), and faster rates have no timecode frame to give
_PAIRED_ABOVE, _TIMECODE_MAX_RATE = 30, 60
_FIELD_PHASE = 1 << 15  # in OpenEXR's TV60 packing, which its files hold whatever the rate
_INT32, _UINT32 = 2**31 - 1, 2**32 - 1


@dataclass(frozen=True)
class ExrTiming:
    """What an OpenEXR sequence's headers say of time, as Nuke, Resolve/Fusion, OpenImageIO and ``exrheader`` read it:
    ``framesPerSecond``, the source's ``rate``, and each frame's SMPTE ``timeCode``, from ``start`` (the timecode of the
    file numbered ``first``; None: no timeCode) counted on by the file's number, drop-frame as ``shift_timecode`` counts."""

    rate: Fraction
    start: Optional[str] = None
    first: int = 0

    def attributes(self, number: int) -> list[Attribute]:
        """The header attributes of the file numbered ``number``: framesPerSecond, and its timeCode where it has one."""
        attributes: list[Attribute] = [("framesPerSecond", "rational", struct.pack("<iI", self.rate.numerator, self.rate.denominator))]
        timecode = shift_timecode(self.start, number - self.first, self.rate) if self.start else None
        packed = smpte_time_and_flags(timecode, self.rate) if timecode else None
        if packed is not None:
            attributes.append(("timeCode", "timecode", struct.pack("<II", packed, 0)))  # no user bits
        return attributes


def exr_timing(rate: Optional[Fraction], timecode: Optional[str], first: int) -> Optional[ExrTiming]:
    """An EXR sequence's ``ExrTiming`` for a source at ``rate`` (None: a source without one, no timing written) whose
    ``timecode`` (None: none) is that of the file numbered ``first``. The rate is kept exact (24000/1001, not 23.976),
    reduced only where OpenEXR's 32-bit rational cannot hold it."""
    if not rate or rate <= 0:
        return None
    rate = Fraction(rate)
    if rate.numerator > _INT32 or rate.denominator > _UINT32:
        rate = rate.limit_denominator(1001)
    if timecode and round(rate) > _TIMECODE_MAX_RATE:
        log.info("OpenEXR timeCode left out: SMPTE 12M counts frames up to %d fps, the input is %g (framesPerSecond is written)",
                 _TIMECODE_MAX_RATE, float(rate))  # fmt: skip
        timecode = None
    return ExrTiming(rate, timecode, first)


def smpte_time_and_flags(timecode: str, rate: Fraction) -> Optional[int]:
    """``timecode`` (HH:MM:SS:FF, HH:MM:SS;FF drop-frame) at ``rate`` as OpenEXR's ``timeCode`` ``timeAndFlags``: SMPTE
    12M binary-coded decimal in its TV60 packing (ImfTimeCode.h), bits 0-5 the frame, 6 drop-frame, 8-14 seconds,
    15 field/phase, 16-22 minutes, 24-29 hours; None when it cannot be held (more than 60 fps, a field out of range)."""
    m = TIMECODE.fullmatch(timecode.strip())
    nominal = round(rate)
    if m is None or not 0 < nominal <= _TIMECODE_MAX_RATE:
        return None
    hours, minutes, seconds, frame = int(m[1]), int(m[2]), int(m[3]), int(m[5])
    flags = (1 << 6) if m[4] != ":" else 0
    if nominal > _PAIRED_ABOVE:  # 50p, 59.94p: the pair's number, its second frame flagged
        flags |= _FIELD_PHASE if frame % 2 else 0
        frame //= 2
    if hours > 23 or minutes > 59 or seconds > 59 or frame > 29:
        return None

    def bcd(value: int) -> int:
        return (value // 10) << 4 | value % 10

    return bcd(frame) | bcd(seconds) << 8 | bcd(minutes) << 16 | bcd(hours) << 24 | flags


def _encode(pixels: np.ndarray, pix_fmt: str, pixel_aspect: Fraction) -> bytes:
    """``pixels`` (float32, RGB(A) order or gray) as one EXR file, half floats, ZIP. Each value is first made its
    nearest half (numpy's rounding, as OpenEXR's own library's): FFmpeg's encoder cuts float32 to half, which put every
    value from 0.5 to 1 a step (2^-11) low, 65534/65535 as 0.99951; a value that is a half already passes as it is.

    ``pixel_aspect`` is set on the encoder even when 1: FFmpeg writes ``pixelAspectRatio``, which OpenEXR requires in
    every header, only when told a pixel shape, and without it an anamorphic plate reached Nuke squeezed."""
    pixels = pixels.astype(np.float16).astype(np.float32)
    frame = av.VideoFrame.from_ndarray(pixels, format=pix_fmt)  # RGB(A) order in, FFmpeg's G, B, R(, A) planes out
    context = av.CodecContext.create("exr", "w")
    context.width, context.height, context.pix_fmt = pixels.shape[1], pixels.shape[0], pix_fmt
    context.time_base = Fraction(1, 25)  # one picture: FFmpeg asks for a time base, which EXR does not store
    context.sample_aspect_ratio = pixel_aspect
    context.options = dict(_EXR_OPTIONS)
    packets = context.encode(frame) + context.encode(None)  # a context per picture: no frame threads to hold one back
    return b"".join(bytes(packet) for packet in packets)


def _with_attributes(data: bytes, attributes: Sequence[Attribute]) -> bytes:
    """A single-part scanline EXR ``data`` with header ``attributes`` added (FFmpeg writes no chromaticities, timeCode
    or framesPerSecond).

    They go at the header's end; the line offset table after it holds absolute file offsets, each moved by the bytes
    added. Its length is read from its own first entry, the first chunk, which follows it."""
    if not attributes:
        return data
    at = 8
    while data[at] != 0:  # name\0 type\0 size value ...
        type_end = data.index(b"\0", data.index(b"\0", at) + 1)
        (size,) = struct.unpack("<i", data[type_end + 1 : type_end + 5])
        at = type_end + 5 + size
    added = b"".join(name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value
                     for name, kind, value in attributes)  # fmt: skip
    table = at + 1
    (first,) = struct.unpack("<Q", data[table : table + 8])
    count = (first - table) // 8
    offsets = struct.unpack(f"<{count}Q", data[table : table + 8 * count])
    moved = struct.pack(f"<{count}Q", *(offset + len(added) for offset in offsets))
    return data[:at] + added + b"\0" + moved + data[table + 8 * count :]
