"""HEIC/HEIF stills (an iPhone's photos) through the optional pillow-heif: neither OpenCV nor Pillow reads them.

Imported lazily, on the first HEIF picture: pillow-heif is an extra (``birefvid[heic]``), and loading its
libheif costs startup time that a run without HEIF pictures should not pay."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Optional

import numpy as np

from ..errors import SourceError
from ..extensions import HEIF_EXTENSIONS

if TYPE_CHECKING:
    from .hdr import HdrToSdr

log = logging.getLogger(__name__)

INSTALL = "reading HEIC/HEIF needs pillow-heif: pip install 'birefvid[heic]'"


def is_heif(path: Path) -> bool:
    """True when ``path`` is named as a HEIC/HEIF picture."""
    return path.suffix.lower() in HEIF_EXTENSIONS


@functools.lru_cache(maxsize=1)
def _module() -> Optional[ModuleType]:
    try:
        import pillow_heif
    except ImportError:
        return None
    pillow_heif.register_heif_opener()  # Image.open then reads the header (profile, alpha) as for any picture
    return pillow_heif


def available() -> bool:
    """True when pillow-heif is installed (its Pillow opener is then registered)."""
    return _module() is not None


def read_heif(path: Path) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """The primary image of a HEIC/HEIF file as uint8 RGB, upright, and for a 10- or 12-bit one as uint16 RGB
    too (else None), as ``read_rgb_deep`` gives other pictures; one line naming the extra when it is missing."""
    import cv2

    heif = _module()
    if heif is None:
        raise SourceError(f"{path}: {INSTALL}")
    try:
        # the primary image (a burst or an edited photo holds several); libheif applies the file's rotation and
        # mirroring (irot/imir: how an iPhone stores a portrait photo), which HEIF says outrank EXIF's orientation
        picture = heif.open_heif(path, convert_hdr_to_8bit=False)
        bits = int(picture.info.get("bit_depth") or 8)
        pixels = np.asarray(picture)
    except (OSError, ValueError, RuntimeError, SyntaxError) as e:  # pillow-heif raises these for damaged or foreign files
        raise SourceError(f"{path} is not a readable image ({e})") from None
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    pixels = pixels[..., :3]  # its alpha is read_alpha's
    to_sdr = _hdr_to_sdr(path, picture.info.get("nclx_profile"))
    if pixels.dtype == np.uint8:
        if to_sdr is not None:
            return to_sdr(pixels)[0], None
        return np.array(pixels), None  # a writable copy: the decoder's buffer is read-only, and torch takes it as it is
    # pillow-heif shifts 10/12-bit samples to the top of 16 bits (1023 -> 65472): rescaled so white stays 65535
    top = (1 << bits) - 1
    samples = pixels.astype(np.uint32) >> (16 - bits)
    deep = ((samples * 65535 + top // 2) // top).astype(np.uint16)
    if to_sdr is not None:
        return to_sdr(deep, deep=True)
    return cv2.convertScaleAbs(deep, alpha=1 / 257.0), deep  # rounded, as a 16-bit PNG's 8-bit picture is


def _hdr_to_sdr(path: Path, nclx: Optional[dict]) -> Optional[HdrToSdr]:
    """The SDR conversion of an HDR (PQ or HLG) HEIF still, as a Sony's HLG or a Canon's PQ HEIF is, with a warning;
    None for SDR. PNG, WebP, JPEG and TIFF cannot mark HDR: its signal as it is looked washed out and grey there."""
    from .hdr import BT2020, HDR_NAMES, HdrToSdr

    transfer = (nclx or {}).get("transfer_characteristics")
    if transfer not in HDR_NAMES:
        return None
    log.warning("%s is HDR (%s), which the picture written cannot mark as such: its colours are converted to SDR (sRGB), "
                "as an SDR screen shows them", path, HDR_NAMES[transfer])  # fmt: skip
    return HdrToSdr(transfer, bt2020=nclx.get("color_primaries") in (2, BT2020))  # type: ignore[union-attr]
