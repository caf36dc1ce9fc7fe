"""Read a folder or glob of still images as a video: sorted by name, one size, time_base = 1/fps, pts = the index, or a
numbered plate's frame number less its first (gaps kept)."""

from __future__ import annotations

import contextlib
import functools
import glob
import logging
import os
import re
import shlex
import unicodedata
import warnings
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import cv2
import numpy as np

from birefvid.errors import SourceError, input_not_found
from birefvid.extensions import HEIF_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from birefvid.frames import Frame, StreamInfo
from birefvid.io import heif
from birefvid.io.base import Source, check_picture_size
from birefvid.io.native_stderr import native_lines_dropped
from birefvid.io.plate_formats import PLATE_EXTENSIONS, unread_plate_reason
from birefvid.io.tiff_gray_alpha import GrayAlpha, decode_gray_alpha, gray_alpha
from birefvid.io.tiff_tags import FirstIfd, first_ifd
from birefvid.io.tiff_premultiplied import associated_alpha, unpremultiplied
from birefvid.io.tiff_tiles import UPRIGHT, decode_tiled, tile_grid
from birefvid.io.untagged import rgb_matrix
from birefvid.sequence_names import name_template, numbered_name
from birefvid.pixel_limit import OPENCV_DEFAULT_PIXELS, OPENCV_PIXELS_ENV, opencv_pixel_limit
from birefvid.users import owner_phrase

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

GLOB_CHARS = frozenset("*?[")


def is_glob(text: str) -> bool:
    """True when ``text`` is a glob pattern rather than a plain path: a file or folder that exists under that
    very name (``clip [1080p].mp4``, ``take?.mov``) is itself, not a pattern that matched nothing."""
    return any(c in GLOB_CHARS for c in text) and not os.path.lexists(text)


def list_images(folder_or_glob: str | Path, extensions: frozenset[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files of a folder (or matching a glob) with one of ``extensions``, in natural name order. A folder's hidden
    files are left out, as a glob's ``*`` leaves them: macOS writes ``._plate.1001.png`` (AppleDouble, no picture)
    beside each frame on an exFAT or network drive, and it stopped the run as "not a readable image"."""
    text = str(folder_or_glob)
    if is_glob(text):
        paths = [Path(p) for p in glob.glob(text)]
    else:
        folder = Path(text)
        if not folder.exists():
            raise SourceError(input_not_found(folder))
        if not folder.is_dir():
            raise SourceError(f"{folder} is not a folder of images")
        paths = [p for p in folder.iterdir() if not p.name.startswith(".")]
    images = sorted((p for p in paths if p.suffix.lower() in extensions and p.is_file()), key=natural_key)
    unread = [p for p in paths if p.suffix.lower() in PLATE_EXTENSIONS.keys() - extensions and p.is_file()]
    if len(unread) > len(images):  # an EXR plate with a preview.png beside it was a one-frame video of the preview
        plates = unread_plate_reason(paths, text, beside=images)
        if plates:
            raise SourceError(plates)
    if unread:
        log.warning("%s: %d %s file%s left out (%s): birefvid does not read %s", text, len(unread),
                    PLATE_EXTENSIONS[unread[0].suffix.lower()], "" if len(unread) == 1 else "s", unread[0].name,
                    "it" if len(unread) == 1 else "them")  # fmt: skip
    if not images:
        kinds = ", ".join(sorted(extensions))
        if not is_glob(text) and Path(text).suffix.lower() in VIDEO_EXTENSIONS - IMAGE_EXTENSIONS - {".gif"}:
            # a folder named like a video (an unpacked download, a camera card's folder): "no images found" alone read
            # as if the video had been looked into for pictures
            raise SourceError(f"{text} is a folder, not a video, and holds no images (a folder is read as an image "
                              f"sequence: expected files ending in {kinds})")  # fmt: skip
        raise SourceError(f"no images found in {text} (expected files ending in {kinds})")
    return images


def name_key(name: str) -> str:
    """``name`` as files made on different systems are matched by (a picture with its mask, a prediction with its
    truth): in composed form (NFC), as typed on Linux and Windows, since macOS writes names decomposed (NFD), and
    a ``café.jpg`` from a Mac 'had no mask' beside its ``café_mask.png``."""
    return unicodedata.normalize("NFC", name)


def natural_key(path: Path) -> tuple:
    """Sort 'f2.png' before 'f10.png' (and zero-padded names as usual)."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))


# gray stays gray and 16 bits stay 16 until scaled below; unlike IMREAD_UNCHANGED, these flags turn
# the picture upright by its EXIF orientation (a phone photo stored sideways) and drop alpha
_READ_FLAGS = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH


def read_rgb(path: Path) -> np.ndarray:
    """Read one image as uint8 RGB, upright as viewers show it (alpha dropped, gray expanded, 16-bit scaled down)."""
    return read_rgb_deep(path)[0]


def read_rgb_deep(path: Path, scale: int = 1) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Read one image as uint8 RGB and, when the file is 16-bit (PNG, TIFF) or a 10/12-bit HEIC, as uint16 RGB too (else None).
    ``scale`` 2, 4 or 8: a JPEG decoded at that fraction of its size (``io.jpeg_draft``: ``image --max-size``)."""
    try:
        return _read_rgb_deep(path, scale)
    except PermissionError as e:  # another user's 0600 picture: a PermissionError traceback, exit 1
        raise SourceError(f"cannot read {path}: {e.strerror or e}{owner_phrase(path)}") from e


def _read_rgb_deep(path: Path, scale: int) -> tuple[np.ndarray, Optional[np.ndarray]]:
    if heif.is_heif(path):  # neither OpenCV nor Pillow reads HEIC
        return heif.read_heif(path)
    image = _decode(path, scale)
    if image.dtype == np.uint8 and (image.ndim == 2 or path.suffix.lower() in _PROFILED_SUFFIXES):  # gray, or maybe CMYK
        managed = _by_profile(path, image.shape[:2], scale)
        if managed is not None:
            return managed, None
    deep = None
    if image.dtype.kind == "f":  # a float TIFF: 0-1 is black to white, taken to 16 bits as a 16-bit TIFF's
        image = _float_to_16_bits(image[..., :-1] if _has_alpha(image) else image, path)
    if image.dtype == np.uint16:
        deep = _to_rgb(image)
        return cv2.convertScaleAbs(deep, alpha=1 / 257.0), deep  # rounded, as a video's deep frames are
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return _to_rgb(image), deep


def _has_alpha(image: np.ndarray) -> bool:
    """Gray + alpha or BGRA, as IMREAD_UNCHANGED hands a float TIFF over."""
    return image.ndim == 3 and image.shape[2] in (2, 4)


def _float_to_16_bits(image: np.ndarray, path: Path) -> np.ndarray:
    """A float picture's 0-1 as 0-65535 (uint16, same channels): the file's own encoding kept, as a 16-bit TIFF's is,
    not turned from linear light (a float TIFF says nothing of its transfer, and Photoshop's and most apps' hold the
    picture as shown). Over 1 is clipped to white with a warning, once a folder; NaN or infinity is refused."""
    if not np.isfinite(image).all():
        raise SourceError(f"{path} holds NaN or infinite values, which are no colour: fix those pixels (a render's or "
                          "a filter's broken ones) and save it again")  # fmt: skip
    top = float(image.max())
    if top > 1.0:
        _warn_over_one(path, top)
    return np.rint(np.clip(image, 0.0, 1.0, dtype=np.float32) * 65535.0).astype(np.uint16)


_WARNED_OVER_ONE: set[Path] = set()  # the folders whose float pictures over 1 were said: once a folder, not a frame


def _warn_over_one(path: Path, top: float) -> None:
    """Say, once for ``path``'s folder, that its values over 1 (HDR, scene-linear light) are clipped, and the fix."""
    folder = path.parent.resolve()
    if folder in _WARNED_OVER_ONE:
        return
    _WARNED_OVER_ONE.add(folder)
    log.warning("%s: float values over 1 (up to %.3g) are clipped to white, and so are any in the other pictures of %s: "
                "that is HDR or scene-linear light, not a picture as shown; render it through its view transform "
                "(sRGB, Filmic, AgX, ACES output) as a 16-bit PNG or TIFF first, as for EXR", path, top, path.parent)  # fmt: skip


_PROFILED_SUFFIXES = frozenset({".jpg", ".jpeg", ".tif", ".tiff", ".png"})  # where CMYK and gray + alpha pictures come
_MANAGED = {"CMYK": b"CMYK", "L": b"GRAY", "LA": b"GRAY"}  # Pillow's mode: the profile's colour space it goes with


def _by_profile(path: Path, shape: tuple[int, ...], scale: int = 1) -> Optional[np.ndarray]:
    """A CMYK or gray 8-bit picture that embeds its own profile (a catalogue shot's "Coated FOGRA39", Photoshop's
    "Dot Gain 20%" gray) as sRGB, converted by littleCMS through that profile, upright; None for any other picture.
    OpenCV's conversion ignores the profile (R = 255 - C - K; gray as sRGB gray), so rich blacks, the paper's
    tone and gray midtones came out wrong, and the profile, which an RGB output cannot carry, was then dropped.
    ``scale``: a JPEG's draft, decoded at 1/2, 1/4 or 1/8 as OpenCV decoded it (``shape``)."""
    import io

    from PIL import Image, ImageCms, ImageOps

    try:
        with opened_unlimited(path) as im:
            icc = im.info.get("icc_profile")
            if not icc or _MANAGED.get(im.mode) != icc[16:20]:
                return None
            if scale > 1:  # Pillow's draft picks the largest of 1/8, 1/4, 1/2 that keeps this size: 1/scale
                im.draft(im.mode, (im.width // scale, im.height // scale))
            try:
                profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
                source = ImageOps.exif_transpose(im if im.mode != "LA" else im.convert("L"))  # its alpha is read_alpha's
                rgb = ImageCms.profileToProfile(source, profile, ImageCms.createProfile("sRGB"), outputMode="RGB")
            except (OSError, ValueError, ImageCms.PyCMSError) as e:  # a damaged profile: OpenCV's conversion, as before
                log.warning("%s: its colour profile could not be used (%s); converted without it", path, e)
                return None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):  # Pillow cannot read what OpenCV did
        return None
    picture = np.array(rgb)  # a writable copy: torch takes it as it is
    return picture if picture.shape[:2] == tuple(shape[:2]) else None  # turned otherwise than OpenCV did: OpenCV's, as before


@contextlib.contextmanager
def opened_unlimited(path: Path) -> Iterator["Image.Image"]:
    """``PIL.Image.open(path)`` without Pillow's decompression-bomb limit, for the header and alpha of a picture
    OpenCV has decoded (under its own limit): a 140-megapixel panorama printed Pillow's two-line Python
    warning, and from 179 megapixels its colour profile, DPI and own alpha were dropped without a word."""
    from PIL import Image

    if heif.is_heif(path):
        heif.available()  # registers pillow-heif's opener, where installed, so the header of a HEIC is read too
    _pillow_exif_warning_off()
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as im:
            yield im
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _pillow_exif_warning_off() -> None:
    """Pillow's "Corrupt EXIF data" warnings ignored from now on. Pillow misparses a big-endian ("MM") BigTIFF's IFD
    and, before giving up on the file, printed that two-line Python warning under every `birefvid image -q` run on
    one; birefvid opens pictures with Pillow for their header and alpha only, reads them through libtiff where Pillow
    fails, and says a damaged file in its own one line, so the warning only ever named a file that reads right. Set
    where Pillow opens a picture (a filter set at import is lost when that import ran inside a ``catch_warnings``),
    not around it: ``catch_warnings`` is not thread-safe, and `serve` opens pictures on several threads."""
    warnings.filterwarnings("ignore", message="(possibly )?corrupt exif", category=UserWarning, module=r"PIL\.")


def read_alpha(path: Path, deep: bool = False) -> Optional[np.ndarray]:
    """The picture's own transparency (H, W), upright as ``read_rgb`` is, or None when it has none or is opaque
    throughout: an already cut-out PNG's hidden pixels keep their colour, which read_rgb shows. uint8, or
    uint16 for a 16-bit picture (PNG, TIFF; ``deep``: ``read_rgb_deep`` found it one), whose soft alpha has steps
    8 bits would merge."""
    from PIL import Image, ImageOps

    try:
        with opened_unlimited(path) as im:
            if im.mode not in ("RGBA", "LA", "PA", "La", "RGBa") and "transparency" not in im.info:
                return None  # the header says so: no second decode for an opaque photo
            by_libtiff = im.format == "TIFF" and im.mode in ("RGBA", "RGBa")  # Pillow leaves one stored turned 5-8 as stored
            alpha = _deep_alpha(path, im, deep) if by_libtiff or (deep and im.mode in ("RGBA", "LA")) else None
            if alpha is None:
                alpha = np.array(ImageOps.exif_transpose(im).convert("RGBA").getchannel("A"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):  # Pillow cannot read what OpenCV did
        alpha = _tiff_alpha(path, deep)  # Pillow opens no float or 16-bit gray + alpha TIFF, nor an "MM" BigTIFF
        if alpha is None:
            return None
    return None if alpha.min() == np.iinfo(alpha.dtype).max else alpha


def _tiff_alpha(path: Path, deep: bool) -> Optional[np.ndarray]:
    """The alpha of a TIFF Pillow does not open, as libtiff decodes it (``imdecode``), upright: uint16 for ``deep``
    (a 16-bit or float picture's), else uint8; None for a picture without alpha, or no TIFF. Pillow opens no float
    RGB(A) or 16-bit gray + alpha TIFF, and misreads a big-endian ("MM") BigTIFF's header, so their alpha was lost.
    Its colour (and a float one's values) were checked by ``read_rgb_deep``, which reads it first."""
    data = np.fromfile(str(path), dtype=np.uint8)
    if first_ifd(memoryview(data)) is None:
        return None
    with opencv_silenced():
        decoded = imdecode(data, cv2.IMREAD_UNCHANGED)
    if decoded is None or not _has_alpha(decoded):
        return None
    alpha = decoded[..., -1]
    if alpha.dtype.kind == "f":
        alpha = _float_to_16_bits(alpha, path)
        return alpha if deep else cv2.convertScaleAbs(alpha, alpha=1 / 257.0)  # rounded, as its colours are
    if alpha.dtype == np.uint16 and not deep:
        return (alpha >> 8).astype(np.uint8)  # its high byte, as Pillow reads a 16-bit PNG's alpha (``_deep_alpha``)
    return np.ascontiguousarray(alpha) if alpha.dtype in (np.uint8, np.uint16) else None


_ORIENT = UPRIGHT  # numpy for Pillow's exif_transpose methods, by EXIF orientation (2-8), as for TIFF's


def _deep_alpha(path: Path, im: "Image.Image", deep: bool = True) -> Optional[np.ndarray]:
    """The alpha of an RGBA or gray+alpha file as OpenCV decodes it, upright: 16 bits kept for a 16-bit one when
    ``deep`` (Pillow opens those as 8-bit RGBA, their alpha cut to 256 steps), else 8; None for another picture.
    OpenCV keeps a PNG stored turned as stored when it keeps alpha: its EXIF turn is applied here, as Pillow applies it
    to the 8-bit alpha. A TIFF comes from libtiff already upright (turned again, an orientation-6 TIFF's alpha lay
    across its picture), and Pillow's own reading of an uncompressed RGBA TIFF stored turned 5-8 (a quarter turn)
    keeps it as stored while its size says turned: such alpha is libtiff's here, whatever its depth."""
    if im.format not in ("PNG", "TIFF"):
        return None
    data = np.fromfile(str(path), dtype=np.uint8)
    with _png_lines_dropped(data), opencv_silenced():
        decoded = imdecode(data, cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.dtype not in (np.uint8, np.uint16) or decoded.ndim != 3 or decoded.shape[2] not in (2, 4):
        return None
    turn = _ORIENT.get(im.getexif().get(0x0112, 1)) if im.format == "PNG" else None
    alpha = decoded[..., -1]
    if alpha.dtype == np.uint16 and not deep:
        alpha = (alpha >> 8).astype(np.uint8)  # as Pillow reads a 16-bit file's alpha: its high byte
    return np.ascontiguousarray(turn(alpha) if turn else alpha)


def _to_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def check_picture(path: Path) -> None:
    """SourceError unless ``path`` decodes whole, as ``birefvid image`` reads it: ``process`` and ``live`` read a single
    JPEG through FFmpeg, whose decoder shows a cut-off JPEG's missing part grey without a word."""
    _decode(path)


def _cv_log_level() -> tuple[Callable[[], int], Callable[[int], object], int]:
    """OpenCV's log-level getter, setter and silent level: ``cv2.utils.logging`` where the wheel has it (4.14 does, 4.12 not),
    else the top-level ``cv2.getLogLevel``/``setLogLevel`` that every 4.x has, 0 being silent there too."""
    logging_ = getattr(cv2.utils, "logging", None)
    if logging_ is not None:
        return logging_.getLogLevel, logging_.setLogLevel, logging_.LOG_LEVEL_SILENT
    return cv2.getLogLevel, cv2.setLogLevel, 0


@contextlib.contextmanager
def opencv_silenced() -> Iterator[None]:
    """OpenCV's own log lines off within the block, for calls whose failure birefvid says in its one line."""
    get_level, set_level, silent = _cv_log_level()
    level = get_level()
    set_level(silent)
    try:
        yield
    finally:
        set_level(level)


def _png_lines_dropped(data: np.ndarray) -> contextlib.AbstractContextManager[None]:
    """For a PNG's bytes, ``native_lines_dropped`` (libpng's own stderr lines kept off it); else nothing is redirected."""
    if bytes(data[:8]) == b"\x89PNG\r\n\x1a\n":
        return native_lines_dropped()
    return contextlib.nullcontext()


# OpenCV's flags for a JPEG decoded at 1/2, 1/4, 1/8 (libjpeg's DCT-domain scaling): with IMREAD_ANYCOLOR the
# "GRAYSCALE" in their names drops out, so gray stays gray and colour colour, as at full size
_REDUCED_FLAGS = {1: 0, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4, 8: cv2.IMREAD_REDUCED_GRAYSCALE_8}


def _decode(path: Path, scale: int = 1) -> np.ndarray:
    """The image at ``path`` as OpenCV decodes it (BGR or BGRA or gray, 8 or 16 bits), upright; ``scale`` 2, 4, 8:
    a JPEG at that fraction of its size (OpenCV's limit on pixels then counts the reduced picture's)."""
    data = np.fromfile(str(path), dtype=np.uint8)
    if _is_float_tiff(data):  # OpenCV refuses float RGBA unless unchanged; libtiff turns it upright either way
        return decode_picture(data, cv2.IMREAD_UNCHANGED, path)
    return decode_picture(data, _READ_FLAGS | _REDUCED_FLAGS[scale], path)


def _is_float_tiff(data: np.ndarray) -> bool:
    """Whether the bytes are a TIFF whose first picture is floating point (SampleFormat 3)."""
    return _tiff_sample(memoryview(data))[0] == 3  # not a copy: the header is often at the end, after the pixels


def _straight_alpha_at(data: memoryview) -> Optional[int]:
    """Where the ExtraSamples value of an interleaved 8-bit RGBA TIFF with unassociated (straight) alpha, Photoshop's
    transparency, lies in its bytes; None for any other picture. libtiff's RGBA reading, which OpenCV uses for 8-bit
    TIFFs, premultiplies such colours (200 at alpha 128 read as 100), darkening a cut-out's soft parts."""
    import struct

    ifd = first_ifd(data)
    if ifd is None or _EXTRA_SAMPLES not in ifd.entries:
        return None
    try:
        extra, samples, bits = (ifd.values(data, tag) for tag in (_EXTRA_SAMPLES, _SAMPLES, _BITS))
        planar = ifd.values(data, _PLANAR) or [1]
    except struct.error:
        return None
    if extra != [_UNASSOCIATED] or samples != [4] or set(bits) != {8} or planar != [1]:
        return None
    return ifd.values_at(_EXTRA_SAMPLES)


@contextlib.contextmanager
def _straight_alpha_kept(data: np.ndarray) -> Iterator[np.ndarray]:
    """``data``, or for an 8-bit straight-alpha RGBA TIFF (``_straight_alpha_at``) its bytes saying the alpha is
    associated (premultiplied) instead, within the block: libtiff then hands the colours over as stored, and still
    turns the picture upright by its Orientation as it reads it (a scanner's or camera's TIFF stored turned).
    Patched in place and put back after, or in a copy of read-only bytes: no second copy of a large file."""
    import struct

    at = _straight_alpha_at(memoryview(data))
    if at is None:
        yield data
        return
    ifd = first_ifd(memoryview(data))
    assert ifd is not None
    patched = data if data.flags.writeable else data.copy()
    stored = bytes(patched[at:at + 2])
    patched[at:at + 2] = np.frombuffer(struct.pack(ifd.order + "H", _ASSOCIATED), dtype=np.uint8)
    try:
        yield patched
    finally:
        patched[at:at + 2] = np.frombuffer(stored, dtype=np.uint8)


def _tiff_sample(data: bytes | memoryview) -> tuple[int, int]:
    """(SampleFormat, BitsPerSample) of a TIFF's (or BigTIFF's) first picture, from its header, wherever in the file it
    is (libtiff and Photoshop write it after the pixels): (1, 8) is 8-bit unsigned, (3, 32) float; (0, 0) for bytes
    that are no TIFF or whose header is cut off."""
    import struct

    ifd = first_ifd(data)
    if ifd is None:
        return 0, 0
    try:  # the first sample's: all are alike; the TIFF defaults are 1 bit a sample, unsigned
        return (ifd.values(data, _SAMPLE_FORMAT) or [1])[0], (ifd.values(data, _BITS) or [1])[0]
    except struct.error:
        return 0, 0


def imdecode(data: np.ndarray, flags: int) -> Optional[np.ndarray]:
    """``cv2.imdecode(data, flags)``, TIFFs read as ``_imdecode_stored`` says, and a TIFF with associated
    (premultiplied) alpha, which libtiff hands over as stored in every layout, with its colours divided by that alpha
    (``tiff_premultiplied``): decoded with its alpha for that, which is then dropped unless ``flags`` keep it, as
    OpenCV drops it. Whether the alpha is associated is read before ``_straight_alpha_kept`` patches a straight one's
    header to say it is (so libtiff leaves those colours as stored): a straight one is never divided."""
    reduced = flags != cv2.IMREAD_UNCHANGED and flags & _REDUCED_BITS  # a JPEG's draft: no TIFF is read so
    if reduced or not associated_alpha(memoryview(data)):
        return _imdecode_stored(data, flags)
    picture = _imdecode_stored(data, cv2.IMREAD_UNCHANGED)
    if picture is None or picture.ndim != 3 or picture.shape[2] not in (2, 4):
        return picture  # no alpha came with it (OpenCV's own reading of a gray + alpha one it was left): as decoded
    unpremultiplied(picture)
    return picture if flags == cv2.IMREAD_UNCHANGED else _alpha_dropped(picture)


def _alpha_dropped(picture: np.ndarray) -> np.ndarray:
    """A gray + alpha or BGRA picture without its alpha, as OpenCV hands it over when not asked to keep it."""
    return np.ascontiguousarray(picture[..., 0] if picture.shape[2] == 2 else picture[..., :3])


def _imdecode_stored(data: np.ndarray, flags: int) -> Optional[np.ndarray]:
    """``cv2.imdecode(data, flags)``, but a planar TIFF (Photoshop's Pixel Order "Per Channel (RRGGBB)", some scanners'
    and GIS tools'), whose 16-bit and float pictures OpenCV decodes as noise and older OpenCV refuses whole, is
    decoded a channel at a time: each channel is the same file's gray picture (``_planar_tiff_planes``), which
    libtiff decodes as it does any (its compression, predictor and orientation), so it reads as its interleaved twin.
    An 8-bit RGBA TIFF with straight alpha keeps its colours as stored (``_straight_alpha_kept``), an 8-bit tiled
    one reads as its striped twin (``tiff_tiles``), and a gray + alpha one as its PNG twin (``tiff_gray_alpha``):
    its depth kept, and its alpha too under ``IMREAD_UNCHANGED``.

    Those three rewrite a few header bytes of a writable ``data`` in place for the call and put them back after (no
    copy of a large file): ``data`` must be the caller's own for the call's length, as every caller's ``np.fromfile``
    is, never bytes another thread decodes or reads meanwhile, nor a writable memory map of the file itself."""
    planes = _planar_tiff_planes(data)
    if planes is None:
        layout = gray_alpha(memoryview(data))
        if layout is not None and 2 * layout.width * layout.height <= opencv_pixel_limit():
            return _gray_alpha_read(data, layout, flags)
        with _straight_alpha_kept(data) as stored:
            return _decode_interleaved(stored, flags)
    if not planes:
        return None
    channels = [_decode_interleaved(plane(), cv2.IMREAD_UNCHANGED) for plane in planes]  # one copy of the file at a time
    if any(c is None or c.ndim != 2 or c.shape != channels[0].shape for c in channels):
        return None  # a channel libtiff cannot decode: damaged, as the whole file would be
    colour, alpha = channels[:3] if len(channels) >= 3 else channels[:1], channels[3:4] if len(channels) >= 3 else channels[1:2]
    if flags != cv2.IMREAD_UNCHANGED:  # as _READ_FLAGS give an interleaved picture: its alpha dropped
        alpha = []
    kept = colour[::-1] + alpha  # RGB(A) as OpenCV's BGR(A)
    return kept[0] if len(kept) == 1 else np.dstack(kept)


def _gray_alpha_read(data: np.ndarray, layout: GrayAlpha, flags: int) -> Optional[np.ndarray]:
    """A gray + alpha TIFF as ``flags`` ask: (H, W, 2) gray and alpha under ``IMREAD_UNCHANGED``, else its gray alone,
    as OpenCV hands over a gray + alpha PNG (its alpha is ``read_alpha``'s); 8 or 16 bits as stored, upright."""
    writable = data if data.flags.writeable else data.copy()  # its IFD is rewritten while it is decoded
    pairs = decode_gray_alpha(writable, layout, lambda wide: _decode_interleaved(wide, cv2.IMREAD_UNCHANGED))
    if pairs is None or flags == cv2.IMREAD_UNCHANGED:
        return pairs
    return np.ascontiguousarray(pairs[..., 0])


def _decode_interleaved(data: np.ndarray, flags: int) -> Optional[np.ndarray]:
    """``cv2.imdecode(data, flags)``, but an 8-bit tiled TIFF is decoded a tile row at a time as strips, which
    OpenCV 4.14 reads right (``tiff_tiles``: it put the tiles of one stored mirrored in the wrong places, and refused
    an uncompressed one of small tiles). One over OpenCV's pixel limit, or decoded scaled down (``IMREAD_REDUCED_*``),
    is left to OpenCV, which refuses or scales it as it does any picture."""
    reduced = flags != cv2.IMREAD_UNCHANGED and flags & _REDUCED_BITS  # UNCHANGED is -1: every bit set
    grid = None if reduced else tile_grid(memoryview(data))
    if grid is None or grid.width * grid.height > opencv_pixel_limit():
        return cv2.imdecode(data, flags)
    writable = data if data.flags.writeable else data.copy()  # its IFD is rewritten while it is decoded
    return decode_tiled(writable, grid, lambda strips: cv2.imdecode(strips, flags))


# the bits of OpenCV's IMREAD_REDUCED_* flags (2, 4, 8: 16, 32, 64), whatever the colour bit beside them
_REDUCED_BITS = cv2.IMREAD_REDUCED_GRAYSCALE_2 | cv2.IMREAD_REDUCED_GRAYSCALE_4 | cv2.IMREAD_REDUCED_GRAYSCALE_8


# the classic TIFF tags a planar picture's channels are re-described by; the rest of its header is kept as it is
_WIDTH, _BITS, _PHOTOMETRIC, _STRIP_OFFSETS, _SAMPLES = 256, 258, 262, 273, 277
_STRIP_COUNTS, _PLANAR, _EXTRA_SAMPLES, _TILE_OFFSETS, _TILE_COUNTS, _SAMPLE_FORMAT = 279, 284, 338, 324, 325, 339
_ICC = 34675  # an RGB profile, which a gray channel's description must not claim
# a value per channel (Min/MaxSampleValue, SMin/SMaxSampleValue: ImageMagick writes them), whose count libtiff
# refuses in a one-channel header: optional, and dropped from it
_PER_SAMPLE = (280, 281, 340, 341)
_RGB, _MIN_IS_BLACK = 2, 1
_ORIENTATION = 274
_ASSOCIATED, _UNASSOCIATED = 1, 2  # ExtraSamples: premultiplied alpha, straight alpha


def _planar_tiff_planes(data: np.ndarray) -> Optional[list[Callable[[], np.ndarray]]]:
    """The channels of a planar (PlanarConfiguration 2) RGB, RGBA, gray + alpha TIFF's first picture, each as a call
    that makes the bytes of a one-channel TIFF (made when decoded, so a large file is not held four times over): the file's own bytes with a new first header (IFD) appended that names that
    channel's strips or tiles, as a gray picture of the same size, depth, compression and orientation, classic TIFF
    or BigTIFF as the file is. None for any other picture (interleaved, one channel, CMYK, a cut-off header):
    OpenCV's own decoding, as before; [] for one whose pixels are cut off (damaged)."""
    import struct

    view = memoryview(data)
    ifd = first_ifd(view)
    if ifd is None:
        return None
    try:
        samples, planar, photometric = (ifd.values(view, tag) for tag in (_SAMPLES, _PLANAR, _PHOTOMETRIC))
        tiled = _TILE_OFFSETS in ifd.entries
        offsets = ifd.values(view, _TILE_OFFSETS if tiled else _STRIP_OFFSETS)
        counts = ifd.values(view, _TILE_COUNTS if tiled else _STRIP_COUNTS)
    except struct.error:
        return None
    if planar != [2] or not samples or samples[0] < 2 or photometric not in ([_RGB], [_MIN_IS_BLACK]):
        return None
    spp = samples[0]
    per_plane = len(offsets) // spp
    if per_plane == 0 or len(offsets) != per_plane * spp or len(counts) != len(offsets):
        return None
    if any(o + c > data.size for o, c in zip(offsets, counts)):
        return []  # cut off: its strips would be read from the header appended after them
    return [functools.partial(_plane_file, data, ifd, s, offsets[s * per_plane:(s + 1) * per_plane],
                              counts[s * per_plane:(s + 1) * per_plane], tiled) for s in range(spp)]  # fmt: skip


def _plane_file(data: np.ndarray, ifd: FirstIfd, sample: int, offsets: list[int], counts: list[int],
                tiled: bool) -> np.ndarray:
    """``data`` with a one-channel IFD appended, made first, naming channel ``sample``'s ``offsets`` and ``counts``;
    in the file's own layout, classic TIFF or BigTIFF (8-byte counts and offsets, LONG8 strip offsets)."""
    import struct

    order, big = ifd.order, ifd.big
    field = "6x" if big else "2x"  # a SHORT left-justified in its entry's 8- or 4-byte value field
    offset_code, offset_kind = ("Q", 16) if big else ("I", 4)
    end = data.size + (data.size % 2)  # an IFD starts on a word boundary
    tags = {tag: (e.kind, e.count, e.field) for tag, e in ifd.entries.items()}
    for tag in (_EXTRA_SAMPLES, _ICC, *_PER_SAMPLE):
        tags.pop(tag, None)
    for tag in (_BITS, _SAMPLE_FORMAT):  # one value each: the channel's (per-channel depths of the same format)
        if tag in tags:
            values = ifd.values(memoryview(data), tag)
            tags[tag] = (3, 1, struct.pack(order + "H" + field, values[min(sample, len(values) - 1)]))
    tags[_SAMPLES] = (3, 1, struct.pack(order + "H" + field, 1))
    tags[_PLANAR] = (3, 1, struct.pack(order + "H" + field, 1))
    tags[_PHOTOMETRIC] = (3, 1, struct.pack(order + "H" + field, _MIN_IS_BLACK))
    count_code, entry_code = ("Q", "HHQ") if big else ("H", "HHI")
    entry_size = 20 if big else 12  # tag, type, count, value field
    ifd_size = struct.calcsize(order + count_code) + entry_size * len(tags) + struct.calcsize(order + offset_code)
    arrays = end + ifd_size  # the channel's offsets, then its counts, after the IFD when more than one each
    offset_tag, count_tag = (_TILE_OFFSETS, _TILE_COUNTS) if tiled else (_STRIP_OFFSETS, _STRIP_COUNTS)
    extra = b""
    for tag, values in ((offset_tag, offsets), (count_tag, counts)):
        packed = struct.pack(f"{order}{len(values)}{offset_code}", *values)
        if len(values) == 1:
            tags[tag] = (offset_kind, 1, packed)
        else:
            tags[tag] = (offset_kind, len(values), struct.pack(order + offset_code, arrays + len(extra)))
            extra += packed
    header = struct.pack(order + count_code, len(tags)) + b"".join(
        struct.pack(order + entry_code, tag, kind, length) + value for tag, (kind, length, value) in sorted(tags.items())
    ) + struct.pack(order + offset_code, 0)
    start = bytes(data[:8]) + struct.pack(order + "Q", end) if big else bytes(data[:4]) + struct.pack(order + "I", end)
    padding = b"\x00" * (end - data.size)
    tail = np.frombuffer(padding + header + extra, dtype=np.uint8)
    return np.concatenate([np.frombuffer(start, dtype=np.uint8), data[len(start):], tail])  # one copy of the file


def decode_picture(data: np.ndarray, flags: int, path: Path) -> np.ndarray:
    """``cv2.imdecode(data, flags)`` of the bytes of the picture at ``path``, or SourceError saying why it is not
    readable (``unreadable_reason``, or its size over OpenCV's limit), with no line of OpenCV's or libpng's."""
    get_level, set_level, silent = _cv_log_level()
    level = get_level()
    set_level(silent)  # a damaged file gets our one line, not libpng's as well
    try:
        with _png_lines_dropped(data):  # libpng prints past OpenCV's log level
            image = imdecode(data, flags) if data.size else None
    except cv2.error as e:  # its size check is an assertion: a picture over its limit raised it, a traceback
        raise SourceError(f"{path} is not a readable image ({too_large(path) or str(e).strip().splitlines()[-1]})") from None
    finally:
        set_level(level)
    if image is None:
        why = unreadable_reason(data.tobytes())
        raise SourceError(f"{path} is not a readable image" + (f" ({why})" if why else ""))
    return image


def too_large(path: Path) -> Optional[str]:
    """Why a picture OpenCV refused is too large, from its header, or None when the header says otherwise: a PNG
    of a few hundred KB may declare 40000x40000 (a decompression bomb, or a scan of a wall), 1.6 gigapixels."""
    from PIL import Image

    try:
        with opened_unlimited(path) as im:
            width, height = im.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    limit = opencv_pixel_limit()  # as OpenCV reads it: 2000MB is 2000 x 2^20
    if width * height <= limit:
        return None
    if limit == 0:  # read by many as no limit: OpenCV then refuses every picture, and "0.0 megapixels, more than the 0.0" said nothing
        return f"{OPENCV_PIXELS_ENV}=0 lets OpenCV decode no picture at all: 0 is not 'no limit'; raise it, or unset it for OpenCV's {_megapixels(OPENCV_DEFAULT_PIXELS)} megapixels"
    if limit < _SMALL_LIMIT:  # megapixels would read 0.0 or 0.1 (a limit written in megapixels: 100 for 100 million)
        return (f"it is {width}x{height}, {width * height:,} pixels, more than the {limit:,} pixels OpenCV decodes; "
                f"{OPENCV_PIXELS_ENV} counts whole pixels: raise it, or unset it")
    return (f"it is {width}x{height} pixels, {_megapixels(width * height)} megapixels, more than the {_megapixels(limit)} "
            f"OpenCV decodes; scale it down first, or raise {OPENCV_PIXELS_ENV} where the memory allows")


# an OpenCV pixel limit under this is said in whole pixels: as megapixels it reads 0.0 or 0.1
_SMALL_LIMIT = 200_000


def _megapixels(pixels: int) -> str:
    """``1,600`` for 1.6e9 pixels, ``1.2`` for 1.2e6: a tenth where it tells a picture from a limit set low (1MB)."""
    return f"{pixels / 1e6:,.0f}" if pixels >= 10_000_000 else f"{pixels / 1e6:.1f}"


# the first bytes of the formats OpenCV reads, and the end marker of those that have one
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"), (b"BM", "BMP"),
               (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"II+\x00", "TIFF"), (b"MM\x00+", "TIFF"))  # classic, BigTIFF
_ENDINGS = {"PNG": b"IEND", "JPEG": b"\xff\xd9"}


# ISO BMFF brands of still pictures (HEIC, HEIF, AVIF, a Canon CR3 raw): an ``ftyp`` box that is no video's, whether
# the brand is its major one or one of those it is compatible with (a HEIF may name ``miaf`` or ``mif1`` there alone)
_PICTURE_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"mif2", b"msf1", b"miaf",
                             b"avif", b"avis", b"crx "})


def _ftyp_brands(data: bytes) -> set[bytes]:
    """The brands of an ISO BMFF ``ftyp`` box at the start of ``data``: its major brand and the compatible ones."""
    size = int.from_bytes(data[:4], "big")
    end = min(len(data), size if 16 <= size <= 4096 else 16)
    return {data[8:12]} | {data[i : i + 4] for i in range(16, end - 3, 4)}


def _video_container(data: bytes) -> Optional[str]:
    """The container a video's bytes are in (``MP4/MOV``, ``Matroska/WebM``, ...), or None: a clip saved or renamed
    under a picture's name (``frame.png`` that is an MP4) was "not a readable image", with no word of why."""
    if data[4:8] == b"ftyp" and not _ftyp_brands(data) & _PICTURE_BRANDS:
        return "MP4/MOV"
    if data[4:8] in (b"moov", b"mdat", b"wide", b"free"):  # a QuickTime file without ftyp
        return "MP4/MOV"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "Matroska/WebM"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "AVI"
    if data.startswith(b"FLV\x01"):
        return "FLV"
    if len(data) >= 3 * 188 and all(data[i] == 0x47 for i in (0, 188, 376)):
        return "MPEG-TS"
    return None


def unreadable_reason(data: bytes) -> Optional[str]:
    """Why a picture's bytes did not decode, in a few words a user can act on, or None when nothing plain shows:
    an empty file, a PNG or JPEG cut off before its end marker (an interrupted download or copy), or bytes that
    are no picture's (a web page or text file saved under a picture's name, or a video's: an MP4 named ``.png``)."""
    if not data:
        return "the file is empty, 0 bytes"
    kind = next((name for magic, name in _SIGNATURES if data.startswith(magic)), None)
    if kind is None:
        if data[4:8] == b"ftyp" and data[8:12] == b"crx ":  # ISO BMFF as an MP4 is, but a photo
            return "a Canon CR3 raw photo, which is not decoded here: develop or export it as TIFF or JPEG first"
        video = _video_container(data)
        if video:
            return f"it holds a video ({video}), not a picture: cut videos with `birefvid process`"
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return None  # a WebP: its decoder's own failure
        head = data[:512].lstrip()
        if head[:1] == b"<" or all(32 <= c < 127 or c in (9, 10, 13) for c in head):
            return "it holds text, not a picture: a web page or text file under a picture's name?"
        return None
    sample = _tiff_sample(data) if kind == "TIFF" else (0, 0)
    if sample in ((3, 16), (3, 24)):
        return (f"a {sample[1]}-bit float TIFF, which OpenCV does not decode: save it as 32-bit "
                "float or 16-bit TIFF (Photoshop: Bit Depth 32-bit float)")  # fmt: skip
    ending = _ENDINGS.get(kind)
    if ending and ending not in data[-64:]:
        return f"a {kind} cut off before its end, as an interrupted download or copy leaves it"
    return f"its {kind} data is damaged"


# what renders and scans (converted) deliver a plate in: its gaps are failed frames, and a picture beside it no frame
PLATE_PICTURES = frozenset({".png", ".tif", ".tiff"})
NTSC_RATES = tuple(Fraction(n * 1000, 1001) for n in (24, 30, 48, 60, 120))  # 23.976, 29.97, 47.952, 59.94, 119.88


def sequence_rate(fps: float | Fraction) -> Fraction:
    """An image sequence's exact rate: 23.976 (or 23.98), 29.97, 59.94 ... are the NTSC rates editors mean by them,
    24000/1001 and so on (a decimal 2997/125 fell between an editor's rates), whole and other rates as given."""
    rate = Fraction(fps).limit_denominator(1001 * 1000)
    return next((ntsc for ntsc in NTSC_RATES if rate != round(ntsc) and abs(rate - ntsc) < Fraction(1, 200)), rate)


def sequence_timecode(files: list[Path], rate: Fraction) -> Optional[str]:
    """The start timecode a numbered sequence stands for (``plate_1001.png``... : frame 1001), as editors read an
    image sequence's, so a cut-out keeps the plate's numbers; None unless the names are one sequence's numbers."""
    numbers = sequence_numbers(files)
    if numbers is None:
        return None
    from birefvid.io.trim import shift_timecode  # imports PyAV, which an image job does not need otherwise

    return shift_timecode("00:00:00:00", numbers[0], rate)


def sequence_numbers(files: list[Path]) -> Optional[list[int]]:
    """The frame numbers of a numbered sequence (``plate_1001.png``, ``plate_1002.png``, ``plate_1004.png``: 1001,
    1002, 1004), gaps a failed render leaves included; None for names that are not one sequence's (photos named by
    date and time)."""
    parts = [numbered_name(f.name) for f in files]
    if all(parts):
        last = [p.number for p in parts]  # type: ignore[union-attr]
        if last == list(range(last[0], last[0] + len(files))):
            return last
    return _numbers_with_gaps(files)


def split_strays(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """``files`` as (a plate's frames, the pictures beside it that are none of them: ``preview.png`` beside
    ``plate.1001.png``...), when more than half the files are one name's numbered PNG or TIFF sequence; else (``files``,
    []). Names alike but for another number (screenshots named by date and time) are all kept: they are no frames.
    SourceError for two numbered sequences (``shotA_0001.png``... and ``shotB_0001.png``...): which one is meant?"""
    if len(files) < 3 or sequence_numbers(files) is not None:
        return files, []
    groups: dict[tuple[str, str], list[Path]] = {}
    for f in files:
        parts = numbered_name(f.name)
        if parts and f.suffix.lower() in PLATE_PICTURES:
            groups.setdefault(parts.key, []).append(f)
    frames = max(groups.values(), key=len, default=[])
    if 2 * len(frames) <= len(files) or sequence_numbers(frames) is None:
        return files, []
    kept = set(frames)
    strays = [f for f in files if f not in kept]
    template = name_template(frames[0].name)
    if any(name_template(f.name) == template for f in strays):  # 10.15.32.png beside 10.16.02.png: times, not frames
        return files, []
    other = next((g for g in groups.values() if g is not frames and len(g) > 1 and sequence_numbers(g) is not None), None)
    if other is not None:
        parts = numbered_name(frames[0].name)
        assert parts is not None
        one = shlex.quote(str(frames[0].parent / f"{glob.escape(parts.prefix)}*{parts.rest}"))
        raise SourceError(f"{frames[0].parent} holds two numbered sequences, {frames[0].name} to {frames[-1].name} and "
                          f"{other[0].name} to {other[-1].name}; name the one to process with a glob: {one}")  # fmt: skip
    return frames, strays


def _numbers_with_gaps(files: list[Path]) -> Optional[list[int]]:
    """The numbers of one name's PNG or TIFF sequence with frames missing, at most as many as it holds; else None. A
    camera's ``IMG_0001.jpg``, ``IMG_0003.jpg`` skip its deleted photos, which are no missing frames."""
    if len(files) < 2 or any(f.suffix.lower() not in PLATE_PICTURES for f in files):
        return None
    parts = [numbered_name(f.name) for f in files]
    if not all(parts) or len({p.key for p in parts}) != 1:  # type: ignore[union-attr]
        return None
    numbers = [p.number for p in parts]  # type: ignore[union-attr]
    span = numbers[-1] - numbers[0] + 1
    if any(b <= a for a, b in zip(numbers, numbers[1:])) or span == len(numbers) or span > 2 * len(numbers):
        return None
    return numbers


def _videos_in(folder_or_glob: str | Path) -> list[Path]:
    """The videos (by extension) in a folder, in name order; [] for a glob or a path that is no folder."""
    folder = Path(folder_or_glob)
    if is_glob(str(folder_or_glob)) or not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file() and not p.name.startswith(".")),
                  key=natural_key)


def sequence_gaps(files: list[Path]) -> list[int]:
    """The frame numbers missing from a numbered sequence (``plate_1001.png``, ``plate_1002.png``,
    ``plate_1005.png``: 1003 and 1004), as a render that failed on some frames leaves it; [] for a
    whole sequence, or names that are not one sequence's (other stems, photos named by date and time)."""
    numbers = _numbers_with_gaps(files)
    if numbers is None:
        return []
    return sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))


def _ranges(numbers: list[int]) -> str:
    """1003, 1004, 1007 -> '1003-1004, 1007'."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


class ImageSequenceSource(Source):
    """Still images as frames; all must share the first image's size. Numbered files give the start timecode."""

    def __init__(self, folder_or_glob: str | Path, fps: float | Fraction = 25) -> None:
        super().__init__()
        rate = sequence_rate(fps)
        if rate <= 0:
            raise SourceError(f"image sequence fps must be positive, got {fps}")
        videos = _videos_in(folder_or_glob)
        try:
            self.files = list_images(folder_or_glob, IMAGE_EXTENSIONS | HEIF_EXTENSIONS)  # an iPhone's burst or time-lapse: HEIC
        except SourceError:
            if videos:  # a folder of clips, handed to `process` as one would to `batch`
                raise SourceError(f"{folder_or_glob} holds videos, not the pictures of an image sequence: process one "
                                  f"with `birefvid process {videos[0]} -o OUT`, all of them with `birefvid batch`") from None  # fmt: skip
            raise
        self.files, strays = split_strays(self.files)
        if strays:  # a preview or contact sheet beside a plate: not one of its frames, as Nuke's plate.####.png reads it
            log.warning("%s: %s left out: not part of the numbered sequence %s to %s", folder_or_glob,
                        ", ".join(p.name for p in strays[:3]) + (f" and {len(strays) - 3} more" if len(strays) > 3 else ""),
                        self.files[0].name, self.files[-1].name)  # fmt: skip
        if videos:
            log.warning("%s: %d video%s in it left out (%s): a folder is an image sequence of its pictures; "
                        "`birefvid batch` processes its videos", folder_or_glob, len(videos),
                        "" if len(videos) == 1 else "s", ", ".join(v.name for v in videos[:3]) + (", ..." if len(videos) > 3 else ""))  # fmt: skip
        first, first_deep = read_rgb_deep(self.files[0])
        height, width = first.shape[:2]
        check_picture_size(width, height, self.files[0])
        numbers = sequence_numbers(self.files)
        # each picture at its number's time (plate.1004.png 3 frames after plate.1001.png, 1003 missing or not)
        self._pts = [n - numbers[0] for n in numbers] if numbers else list(range(len(self.files)))
        self._info = StreamInfo(
            width=width,
            height=height,
            time_base=1 / rate,
            average_rate=rate,
            frame_count=len(self.files),
            duration=float((self._pts[-1] + 1) / rate),
            bit_depth=16 if first_deep is not None else 8,
            timecode=sequence_timecode(self.files, rate),
            numbered=numbers is not None,
            colorspace=rgb_matrix(width, height),  # RGB pictures name no YUV matrix: a video output's, by its size
            rgb_pictures=True,
        )
        missing = sequence_gaps(self.files)
        if missing:  # a frame left out of a plate: the outputs keep the numbers, so they still line up with the plate
            shown = _ranges(missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
            one = len(missing) == 1
            log.warning("%s: %s %s of the numbered sequence %s missing; the outputs keep the plate's numbers: a PNG "
                        "sequence leaves %s out too, a video writes the frame before a gap again in %s place (constant "
                        "rate, as editors expect), and a GIF, WebP or APNG shows that frame longer", folder_or_glob,
                        "frame" if one else "frames", shown, "is" if one else "are", "it" if one else "them",
                        "its" if one else "their")  # fmt: skip
        self._deep = False

    def deliver_deep(self) -> bool:
        """Frames carry the 16-bit pictures of a 16-bit sequence (an 8-bit picture among them is widened)."""
        self._deep = True
        return True

    @property
    def info(self) -> StreamInfo:
        return self._info

    def __iter__(self) -> Iterator[Frame]:
        tb = self._info.time_base
        for index, path in enumerate(self.files):
            if self.closed:
                return
            image, deep = read_rgb_deep(path)
            if self._deep and deep is None:
                deep = image.astype(np.uint16) * 257
            if image.shape[:2] != (self._info.height, self._info.width):
                raise SourceError(
                    f"{path} is {image.shape[1]}x{image.shape[0]} but the sequence is "
                    f"{self._info.width}x{self._info.height} (from {self.files[0].name}); all images must be one size"
                )
            coverage = read_alpha(path)  # a PNG's or TIFF's own transparency, None for an opaque picture
            yield Frame(image=image, pts=self._pts[index], time_base=tb, index=index, deep=deep if self._deep else None, coverage=coverage)

    def _close(self) -> None:
        pass  # files are opened one at a time
