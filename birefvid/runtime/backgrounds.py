"""Open a ``--background``: a colour, a still image or a looping video, as a compose ``Background``.

Joins ``birefvid.io`` (reading files) and ``birefvid.compose`` (pixels to tensors), which know
nothing of each other. Files are told apart by extension; an unknown one is tried as an image,
then as a video.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..compose.background import Background, ColorBackground, DeviceLike, Size, StillBackground, StreamBackground
from ..colors import is_color
from ..errors import SourceError
from ..extensions import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from ..io.color_profile import convert_rgb, embedded_rgb_profile
from ..io.image_source import read_rgb_deep
from ..io.looping_source import LoopingVideoSource


def open_background(
    spec: Union[str, os.PathLike], size: Size, device: DeviceLike = None, pixel_aspect: Optional[Fraction] = None, deep: bool = False,
    profile: Optional[bytes] = None,
) -> Background:
    """A colour string, an image file or a video file (looped), covering ``size`` (width, height).

    ``pixel_aspect``: the output's (an anamorphic source's), so the picture looks right as shown;
    a background video's own pixel aspect is taken into account too. ``deep``: frames as float in
    [0, 1] from the picture's own 16 bits or the video's 10 and more (for a deep output).
    ``profile``: the output's RGB colour profile (a Display P3 photo's; None: sRGB, as video is
    shown): a picture is converted into it from its own (sRGB unless it embeds one).
    """
    aspect = float(pixel_aspect or 1)
    if isinstance(spec, str) and is_color(spec):
        return ColorBackground(spec, size, device, deep=deep)
    path = Path(spec)
    if not path.is_file():
        raise SourceError(
            f"background not found: {path} (expected a colour such as '#00ff00', 'green' or '0,255,0', "
            "or the path of an image or video file)"
        )
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return StillBackground(_in_profile(_read_image(path, deep), path, profile), size, device, aspect, deep)
    if suffix not in VIDEO_EXTENSIONS:
        try:
            picture = _picture(path, deep)
        except SourceError:
            pass  # not an image: try it as a video
        else:
            return StillBackground(_in_profile(picture, path, profile), size, device, aspect, deep)
    try:
        source = LoopingVideoSource(path, deep=deep)
    except SourceError as exc:
        raise SourceError(f"background video unreadable: {path} ({exc})") from exc
    try:
        return StreamBackground(source, size, device, aspect / float(source.pixel_aspect or 1), deep)
    except BaseException:
        source.close()
        raise


def _in_profile(picture: np.ndarray, path: Path, profile: Optional[bytes]) -> np.ndarray:
    """``picture`` (read from ``path``) converted from its own colour profile into ``profile``."""
    return convert_rgb(picture, embedded_rgb_profile(path), profile, what=f"background {path}")


def _picture(path: Path, deep: bool) -> np.ndarray:
    """The picture as uint8 RGB, or for ``deep`` its 16 bits where the file has them (else its 8)."""
    image, wide = read_rgb_deep(path)
    return (wide if wide is not None else image) if deep else image


def _read_image(path: Path, deep: bool = False) -> np.ndarray:
    try:
        return _picture(path, deep)
    except SourceError as exc:
        raise SourceError(f"background image unreadable: {path} (expected PNG, JPEG, BMP, WebP or TIFF)") from exc
