"""Write an image sequence into a folder that appears atomically: PNG or TIFF (RGBA for alpha, gray for mask, RGB for
rgb; 8 or 16 bits a sample), or OpenEXR (half floats: the mask as one channel, colour as linear light, premultiplied)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple, Optional

import av
import cv2
import numpy as np

from birefvid.errors import SinkError
from birefvid.io.atomic import AtomicDir, AtomicFile
from birefvid.io.base import Sink
from birefvid.io.exr import ExrColour, ExrTiming, exr_matte, exr_picture, exr_pixel_aspect
from birefvid.io.layout import check_images
from birefvid.sequence_names import SEQUENCE_FORMATS, SequencePattern

log = logging.getLogger(__name__)

NAME_PATTERN = "frame_{:0{width}d}.png"  # in write order, from ``first_number`` (1, or the start timecode's frame)
_TO_BGR = {"alpha": cv2.COLOR_RGBA2BGRA, "rgb": cv2.COLOR_RGB2BGR}
# TIFF: LZW with the horizontal predictor (OpenCV's, as ``write_image``'s TIFFs), the compression every TIFF reader has
# (Photoshop's default; Nuke, After Effects, Fusion read it). Adobe Deflate was 6-20 % smaller but 3-5x slower to
# write: a 1080p RGBA frame took 235 ms against LZW's 50 (PNG's 144), and 10-20 % larger files cost less than that.
_TIFF_PARAMS = [cv2.IMWRITE_TIFF_COMPRESSION, 5]
class ImageSequenceSink(Sink):
    """Files ``frame_000001.png``... in a temporary folder renamed onto ``path`` on ``close()``.

    ``first_number``: the first file's number; ``digits``: the least the numbers are padded to; ``pattern``: the
    user's names instead (``matte.%04d.png``: ``matte.1001.png``..., padded as it says), whose ending chooses the
    format: ``.png``, ``.tif``/``.tiff`` (RGBA with straight alpha, LZW) or ``.exr`` (half float; colour needs
    ``colour``, how the source's values become linear light: ``io.exr.exr_colour``);
    ``numbers_per_pts``: set for a numbered sequence's frames (``StreamInfo.numbered``), whose numbers, gaps included,
    are ``first_number`` + pts x it; ``sample_aspect_ratio``: the source's pixel shape when not square, which an
    EXR's ``pixelAspectRatio`` records (PNG and TIFF sequences keep the pixels as they are); ``timing``: an EXR's
    ``framesPerSecond`` and each file's ``timeCode``, by its number (``io.exr.exr_timing``; PNG and TIFF hold neither).
    """

    def __init__(self, path: Path, kind: str, width: int, height: int, *, compression: int = 3, first_number: int = 1,
                 digits: int = 6, overwrite: bool = True, pattern: Optional[SequencePattern] = None,
                 numbers_per_pts: Optional[Fraction] = None, colour: Optional[ExrColour] = None,
                 sample_aspect_ratio: Optional[Fraction] = None, timing: Optional[ExrTiming] = None) -> None:  # fmt: skip
        super().__init__()
        self.path = Path(path)
        self.kind = kind
        self.width, self.height = width, height
        self.suffix = pattern.suffix.lower() if pattern else ".png"
        self.format = SEQUENCE_FORMATS[self.suffix]
        if self.format == "OpenEXR" and kind != "mask" and colour is None:  # open_sink finds it; this guards the API
            raise SinkError(f"{self.path}: OpenEXR colour needs the source's transfer to linearise it (colour=exr_colour(info, path))")
        self._colour = colour
        self._tables = colour.tables() if colour is not None and self.format == "OpenEXR" else None
        self._params = [cv2.IMWRITE_PNG_COMPRESSION, int(compression)]
        self._count = 0
        self._first, self._digits, self._pattern = first_number, digits, pattern
        self._per_pts = numbers_per_pts
        self._pixel_aspect = exr_pixel_aspect(sample_aspect_ratio)
        self._timing = timing
        self._dir = AtomicDir(self.path, overwrite=overwrite)  # False: never deletes what was put in the folder meanwhile
        self._bytes = 0

    @property
    def codec(self) -> str:
        """The files' format for the report, as FFmpeg names it: png, tiff or exr."""
        return {"PNG": "png", "TIFF": "tiff", "OpenEXR": "exr"}[self.format]

    @property
    def sample_bits(self) -> int:
        return 16  # uint16 pictures become 16-bit PNGs and TIFFs; EXR's half floats are 16 bits too

    def frames_held(self) -> Optional[int]:
        return self._count

    def bytes_written(self) -> Optional[int]:
        return self._bytes

    def _validate(self, images: np.ndarray) -> None:
        check_images(images, self.kind, self.width, self.height, deep=True)  # uint16: 16-bit PNGs

    def _write(self, images: np.ndarray, pts: Sequence[Optional[int]]) -> None:
        for image, at in zip(images, pts):
            number = self._first + (round(at * self._per_pts) if self._per_pts is not None and at is not None else self._count)
            name = self._pattern.name(number) if self._pattern else NAME_PATTERN.format(number, width=self._digits)
            target = self._dir.temp / name
            self._count += 1
            data = self._encode(image, target, number)
            try:
                target.write_bytes(data)
                self._bytes += len(data)
            except OSError as e:
                raise SinkError(f"cannot write {target} ({e.strerror or e}: disk full or folder removed?)") from e

    def _encode(self, image: np.ndarray, target: Path, number: int) -> bytes:
        """``image``'s file in the sequence's format, numbered ``number`` (an EXR's timeCode is that frame's). Encoded
        here and written by Python: OpenCV's imwrite opens no name outside Windows' code page (C:\\Users\\李)."""
        if self.kind == "mask":
            image = image[..., 0] if image.ndim == 3 else image
        elif self.format != "OpenEXR":  # FFmpeg takes RGB(A), OpenCV BGR(A)
            image = cv2.cvtColor(image, _TO_BGR[self.kind])
        try:
            if self.format == "OpenEXR":
                timing = self._timing.attributes(number) if self._timing else []
                if self.kind == "mask":
                    return exr_matte(image, self._pixel_aspect, timing)
                return exr_picture(image, self._colour, self._tables, self._pixel_aspect, timing)  # type: ignore[arg-type]
            ok, data = cv2.imencode(self.suffix, image, _TIFF_PARAMS if self.format == "TIFF" else self._params)
        except (cv2.error, av.FFmpegError) as e:
            raise SinkError(f"cannot write {target}: {e}") from e
        if not ok:
            raise SinkError(f"cannot write {target}: the picture could not be encoded as {self.format}")
        if self.format == "TIFF":  # OpenCV leaves out ExtraSamples, without which editors take alpha for a 4th channel
            return _tiff_tags(data.tobytes(), self.kind == "alpha", None)
        return data.tobytes()

    def output_entry(self) -> AtomicDir:
        return self._dir

    def _close(self) -> None:
        if self._count == 0:
            log.warning("no frames were written to %s", self.path)
        self._dir.commit()
        log.info("wrote %d %s files to %s", self._count, self.format, self.path)

    def _abort(self) -> None:
        self._dir.discard()


# still-image formats ``write_image`` writes, and whether each holds transparency
STILL_FORMATS: dict[str, bool] = {".png": True, ".webp": True, ".jpg": False, ".jpeg": False, ".tif": True, ".tiff": True}
DEEP_FORMATS = frozenset({".png", ".tif", ".tiff"})  # those holding 16 bits a sample
JPEG_QUALITY = 95  # cut-outs are looked at closely: fewer ringing artefacts along the edge than the usual 75-90
WEBP_MAX_SIDE = 16383
WEBP_QUALITY = 90  # lossy colour; libwebp keeps the alpha plane lossless, so soft edges stay exact
JPEG_XMP_ID = b"http://ns.adobe.com/xap/1.0/\0"  # what an APP1 segment holding XMP starts with (XMP spec part 3)
MAX_JPEG_XMP = 65535 - 2 - len(JPEG_XMP_ID)  # the most one APP1 segment holds; more needs extended XMP


class PixelDensity(NamedTuple):
    """A picture's pixel density: ``x`` and ``y`` per inch (``per_inch``), or only their ratio, the pixels' shape."""

    x: float
    y: float
    per_inch: bool


def write_image(
    path: Path, pixels: np.ndarray, icc: Optional[bytes] = None, density: Optional[PixelDensity] = None, exif: Optional[bytes] = None,
    *, overwrite: bool = True, quality: Optional[int] = None, xmp: Optional[bytes] = None,
) -> None:
    """One picture, RGBA (H, W, 4), RGB (H, W, 3) or gray (H, W), as PNG, JPEG, WebP or TIFF by ``path``'s suffix,
    written atomically: a temp file beside ``path``, renamed when complete. uint16 pictures become 16-bit PNGs or TIFFs.
    ``icc``: the RGB colour profile the pixels are in (a Display P3 phone photo's), embedded so viewers show them
    as the source; OpenCV's encoders write none, and untagged pixels are taken as sRGB (washed-out colour).
    ``density``: the source's DPI (or non-square pixels' shape), kept in PNG, JPEG and TIFF so a 300 dpi product
    shot still prints at its size; WebP has no field for it. ``exif``: TIFF-structured EXIF (``io.exif``), kept in
    all four (a TIFF's in its IFD0 and Exif IFD, as cameras' TIFFs have it). ``xmp``: an XMP packet (``io.xmp``), kept in all four (a JPEG
    goes without one over ``MAX_JPEG_XMP`` bytes, with a log line: extended XMP is not written). ``quality``: JPEG's and WebP's, 1-100 (None: ``JPEG_QUALITY``,
    ``WEBP_QUALITY``); PNG and TIFF are lossless."""
    suffix = path.suffix.lower()
    if suffix not in STILL_FORMATS:
        raise SinkError(f"cannot write {path}: expected {', '.join(STILL_FORMATS)}")
    if pixels.ndim == 3 and pixels.shape[2] == 4 and not STILL_FORMATS[suffix]:
        raise SinkError(f"{path}: JPEG has no transparency; write .png, .webp or .tif, or choose an opaque output")
    if pixels.dtype == np.uint16 and suffix not in DEEP_FORMATS:
        raise SinkError(f"{path}: 16-bit pictures are written as PNG or TIFF only")
    if suffix == ".webp" and max(pixels.shape[:2]) > WEBP_MAX_SIDE:  # libwebp's limit: OpenCV said only "could not encode"
        raise SinkError(f"{path}: WebP holds pictures up to {WEBP_MAX_SIDE} pixels a side, this one is "
                        f"{pixels.shape[1]}x{pixels.shape[0]}; write .png or .tif")  # fmt: skip
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    jpeg, webp = (JPEG_QUALITY, WEBP_QUALITY) if quality is None else (quality, quality)
    # JPEG with full-resolution colour (4:4:4, as Photoshop saves at high quality): libjpeg's 4:2:0 halves it, and a red
    # product's edge on white bled pink into the white, up to 54 levels at quality 95 (20 in 4:4:4), for 16 % more bytes
    full_colour = [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    params = {".jpg": [cv2.IMWRITE_JPEG_QUALITY, jpeg, *full_colour], ".jpeg": [cv2.IMWRITE_JPEG_QUALITY, jpeg, *full_colour],
              ".webp": [cv2.IMWRITE_WEBP_QUALITY, webp]}.get(suffix, [])  # fmt: skip
    if suffix in (".tif", ".tiff") and density is not None:  # LZW (OpenCV's default); resolution unit 2: inch, 1: none
        params = [cv2.IMWRITE_TIFF_RESUNIT, 2 if density.per_inch else 1,
                  cv2.IMWRITE_TIFF_XDPI, max(1, round(density.x)), cv2.IMWRITE_TIFF_YDPI, max(1, round(density.y))]  # fmt: skip
    atomic = AtomicFile(path, overwrite=overwrite)  # False: a file another run wrote meanwhile is refused, not replaced
    try:
        ok, data = cv2.imencode(suffix, pixels, params)
        if not ok:
            raise SinkError(f"could not encode {path}")
        encoded = data.tobytes()
        if icc and pixels.ndim == 3 and suffix not in (".tif", ".tiff"):  # TIFF: with its other tags below
            encoded = _with_icc(suffix, encoded, icc, pixels.shape[1], pixels.shape[0], pixels.shape[2] == 4)
        if suffix in (".tif", ".tiff"):
            encoded = _tiff_tags(encoded, pixels.ndim == 3 and pixels.shape[2] == 4, icc if pixels.ndim == 3 else None, xmp, exif)
        elif density is not None:
            encoded = _with_density(suffix, encoded, density)
        if exif and suffix not in (".tif", ".tiff"):
            encoded = _with_exif(suffix, encoded, exif, pixels.shape[1], pixels.shape[0], pixels.ndim == 3 and pixels.shape[2] == 4)
        if xmp and suffix in (".jpg", ".jpeg") and len(xmp) > MAX_JPEG_XMP:
            log.warning("%s: the photo's XMP (%d KB) is more than a JPEG's one segment holds (64 KB); the JPEG is written without it "
                        "(.png, .tif and .webp keep it)", path, len(xmp) // 1024)  # fmt: skip
        elif xmp and suffix not in (".tif", ".tiff"):
            encoded = _with_xmp(suffix, encoded, xmp, pixels.shape[1], pixels.shape[0], pixels.ndim == 3 and pixels.shape[2] == 4)
        try:
            atomic.temp.write_bytes(encoded)
        except OSError as e:  # a full disk, a quota
            raise SinkError(f"cannot write {path}: {e.strerror or e}") from e
        atomic.commit()
    finally:
        atomic.discard()


def pixel_density(info: dict) -> Optional[PixelDensity]:
    """The pixel density Pillow read into an image's ``info`` (PNG pHYs, JPEG JFIF or EXIF, TIFF resolution), or
    None when it says nothing beyond square pixels."""
    dpi = info.get("dpi")
    if dpi and len(dpi) == 2 and min(float(dpi[0]), float(dpi[1])) > 1:  # 1: Pillow's for a TIFF that says nothing
        return PixelDensity(float(dpi[0]), float(dpi[1]), True)
    ratio = info.get("aspect") or info.get("resolution") or (info.get("jfif_density") if info.get("jfif_unit") == 0 else None)
    if ratio and len(ratio) == 2 and min(float(ratio[0]), float(ratio[1])) > 0 and float(ratio[0]) != float(ratio[1]):
        return PixelDensity(float(ratio[0]), float(ratio[1]), False)
    return None


def _with_density(suffix: str, data: bytes, density: PixelDensity) -> bytes:
    """OpenCV's encoded ``data`` with ``density``: a PNG pHYs chunk, or the JFIF header's density (OpenCV writes
    1:1 without a unit there); WebP (no such field) is returned as it is."""
    import struct
    import zlib

    if suffix == ".png":  # pixels per metre, or (unit 0) their ratio only; before the pixels, right after IHDR
        scale = 1 / 0.0254 if density.per_inch else 1.0
        x, y = (max(1, min(0xFFFFFFFF, round(v * scale))) for v in (density.x, density.y))
        body = b"pHYs" + struct.pack(">IIB", x, y, 1 if density.per_inch else 0)
        return data[:33] + struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body)) + data[33:]
    if suffix in (".jpg", ".jpeg") and data[2:4] == b"\xff\xe0" and data[6:11] == b"JFIF\0":
        big = max(density.x, density.y)
        scale = 65535 / big if big > 65535 else 1.0  # JFIF's 16 bits: a huge ratio keeps its shape
        x, y = (max(1, round(v * scale)) for v in (density.x, density.y))
        return data[:13] + struct.pack(">BHH", 1 if density.per_inch else 0, x, y) + data[18:]
    return data


def rgb_profile(icc: Optional[bytes]) -> Optional[bytes]:
    """``icc`` when it is an RGB colour profile (what an RGB output can carry), else None (a CMYK JPEG's or a gray one's)."""
    return icc if icc and len(icc) >= 128 and icc[16:20] == b"RGB " else None


def _with_icc(suffix: str, data: bytes, icc: bytes, width: int, height: int, alpha: bool) -> bytes:
    """OpenCV's encoded ``data`` with the colour profile ``icc`` added: PNG iCCP, JPEG APP2, WebP ICCP chunks.

    Written here, not by re-encoding with Pillow (which takes ``icc_profile=``): Pillow cannot write the
    16-bit RGB(A) PNGs deep pictures need, and one encoder for every picture keeps the outputs alike."""
    import struct
    import zlib

    if suffix == ".png":  # iCCP right after IHDR (8 + 25 bytes), before the pixels, as the PNG spec asks
        body = b"iCCP" + b"ICC Profile\0\0" + zlib.compress(icc)
        chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
        return data[:33] + chunk + data[33:]
    if suffix in (".jpg", ".jpeg"):  # APP2 ICC_PROFILE segments of <= 65519 bytes each, after SOI and JFIF's APP0
        parts = [icc[i : i + 65519] for i in range(0, len(icc), 65519)]
        segments = b"".join(b"\xff\xe2" + struct.pack(">H", 16 + len(part)) + b"ICC_PROFILE\0" + bytes([n + 1, len(parts)]) + part
                            for n, part in enumerate(parts))  # fmt: skip
        at = 2 + 2 + struct.unpack(">H", data[4:6])[0] if data[2:4] == b"\xff\xe0" else 2
        return data[:at] + segments + data[at:]
    # WebP: the extended layout (VP8X with the ICC flag) and an ICCP chunk right after it
    head, chunks = _webp_extended(data, 0x20, width, height, alpha)
    return _riff(head + _webp_chunk(b"ICCP", icc) + chunks)


def _with_exif(suffix: str, data: bytes, exif: bytes, width: int, height: int, alpha: bool) -> bytes:
    """Encoded ``data`` with TIFF-structured ``exif`` added: a PNG eXIf chunk before the pixels, a JPEG APP1
    segment after JFIF's APP0 (before the ICC profile's APP2), a WebP EXIF chunk at the end (its VP8X flag set)."""
    import struct
    import zlib

    if suffix == ".png":
        body = b"eXIf" + exif
        return data[:33] + struct.pack(">I", len(exif)) + body + struct.pack(">I", zlib.crc32(body)) + data[33:]
    if suffix in (".jpg", ".jpeg"):
        segment = b"\xff\xe1" + struct.pack(">H", 2 + 6 + len(exif)) + b"Exif\0\0" + exif
        at = 2 + 2 + struct.unpack(">H", data[4:6])[0] if data[2:4] == b"\xff\xe0" else 2
        return data[:at] + segment + data[at:]
    head, chunks = _webp_extended(data, 0x08, width, height, alpha)
    return _riff(head + chunks + _webp_chunk(b"EXIF", exif))


def _with_xmp(suffix: str, data: bytes, xmp: bytes, width: int, height: int, alpha: bool) -> bytes:
    """Encoded ``data`` with the XMP packet ``xmp`` added where readers look for it: a PNG iTXt chunk keyed
    ``XML:com.adobe.xmp`` (uncompressed, as the XMP spec asks) before the pixels, a JPEG APP1 segment after the
    JFIF and EXIF ones (the EXIF APP1 stays first), a WebP ``XMP `` chunk last (its VP8X flag set)."""
    import struct
    import zlib

    if suffix == ".png":
        body = b"iTXt" + b"XML:com.adobe.xmp\0" + b"\0\0" + b"\0\0" + xmp  # not compressed; no language or translated key
        return data[:33] + struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body)) + data[33:]
    if suffix in (".jpg", ".jpeg"):
        at = 2
        while data[at : at + 1] == b"\xff" and data[at + 1 : at + 2] in (b"\xe0", b"\xe1"):
            at += 2 + struct.unpack(">H", data[at + 2 : at + 4])[0]
        return data[:at] + b"\xff\xe1" + struct.pack(">H", 2 + len(JPEG_XMP_ID) + len(xmp)) + JPEG_XMP_ID + xmp + data[at:]
    head, chunks = _webp_extended(data, 0x04, width, height, alpha)
    return _riff(head + chunks + _webp_chunk(b"XMP ", xmp))


def _webp_chunk(fourcc: bytes, payload: bytes) -> bytes:
    """One RIFF chunk, padded to an even length."""
    import struct

    return fourcc + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")


def _webp_extended(data: bytes, flag: int, width: int, height: int, alpha: bool) -> tuple[bytes, bytes]:
    """A WebP file's VP8X header with ``flag`` set (made for a simple file) and the chunks after it."""
    import struct

    if data[12:16] == b"VP8X":
        head = data[12:30]
        return head[:8] + bytes([head[8] | flag]) + head[9:], data[30:]
    flags = flag | (0x10 if alpha else 0)
    head = b"VP8X" + struct.pack("<I", 10) + bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return head, data[12:]


def _riff(chunks: bytes) -> bytes:
    """A WebP file of ``chunks`` (VP8X first)."""
    import struct

    body = b"WEBP" + chunks
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _tiff_tags(data: bytes, alpha: bool, icc: Optional[bytes], xmp: Optional[bytes] = None, exif: Optional[bytes] = None) -> bytes:
    """OpenCV's TIFF ``data`` with the tags it leaves out: ExtraSamples "unassociated alpha" for an RGBA picture
    (without it, image editors take the 4th sample for an extra channel, not transparency), the ICC profile,
    the XMP packet (tag 700, BYTE, as the XMP spec stores it in TIFF) and the EXIF (``_tiff_exif``).

    A new first IFD holding the old entries and these is appended, with the profile, and the header pointed at it:
    the old entries' offsets stay valid, so nothing else moves."""
    import struct

    if not alpha and not icc and not xmp and not exif:
        return data
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    entries = {struct.unpack(order + "H", data[at : at + 2])[0]: data[at : at + 12] for at in range(ifd + 2, ifd + 2 + 12 * count, 12)}
    (next_ifd,) = struct.unpack(order + "I", data[ifd + 2 + 12 * count : ifd + 6 + 12 * count])
    out = bytearray(data)
    if len(out) % 2:
        out += b"\0"  # TIFF offsets are word-aligned
    if alpha:  # SHORT, one value, 2 = unassociated (straight) alpha, inline
        entries[338] = struct.pack(order + "HHI", 338, 3, 1) + struct.pack(order + "H", 2) + b"\0\0"
    if icc:  # UNDEFINED bytes at an offset
        entries[34675] = struct.pack(order + "HHII", 34675, 7, len(icc), len(out))
        out += icc + (b"\0" if len(icc) % 2 else b"")
    if xmp:
        entries[700] = struct.pack(order + "HHII", 700, 1, len(xmp), len(out))
        out += xmp + (b"\0" if len(xmp) % 2 else b"")
    if exif:
        added, block = _tiff_exif(exif, order, len(out))
        for tag, entry in added.items():
            entries.setdefault(tag, entry)  # the picture's own structure (OpenCV's) wins over a clash
        out += block
    at = len(out)
    out += struct.pack(order + "H", len(entries)) + b"".join(entries[tag] for tag in sorted(entries)) + struct.pack(order + "I", next_ifd)
    out[4:8] = struct.pack(order + "I", at)
    return bytes(out)


def _tiff_exif(exif: bytes, order: str, offset: int) -> tuple[dict[int, bytes], bytes]:
    """TIFF-structured ``exif`` (``io.exif``: IFD0's descriptive tags and the Exif IFD) as IFD0 entries for a TIFF
    in byte ``order`` ("<" or ">"), and the block to write at ``offset`` that their values and the Exif IFD are in.

    Pillow lays the IFD out for ``offset`` (the same serialisation PNG's and WebP's EXIF get); its entries are
    taken into the picture's IFD0, where TIFF keeps Make, Model, Artist and the Exif IFD pointer; the block's own
    entry table goes unused. An EXIF that cannot be laid out again is left out (it was read once already)."""
    import struct

    from PIL import Image

    try:
        parsed = Image.Exif()
        parsed.load(b"Exif\0\0" + exif)
        parsed.endian = order
        block = parsed.tobytes(offset)[6 + 8 :]  # less "Exif\0\0" and the TIFF header: the IFD itself
    except (OSError, ValueError, KeyError, TypeError, SyntaxError, struct.error) as e:
        log.warning("the photo's EXIF could not be written into the TIFF (%s); it is written without it", e)
        return {}, b""
    (count,) = struct.unpack(order + "H", block[:2])
    entries = {struct.unpack(order + "H", block[at : at + 2])[0]: block[at : at + 12] for at in range(2, 2 + 12 * count, 12)}
    return entries, block + (b"\0" if len(block) % 2 else b"")
