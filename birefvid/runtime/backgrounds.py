"""Open a ``--background``: a colour, a still image or a looping video, as a compose ``Background``.

Joins ``birefvid.io`` (reading files) and ``birefvid.compose`` (pixels to tensors), which know
nothing of each other. Files are told apart by extension; an unknown one is tried as an image,
then as a video.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np

from ..compose.background import Background, ColorBackground, DeviceLike, Size, StillBackground, StreamBackground
from ..colors import is_color, parse_color
from ..errors import SourceError
from ..extensions import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from ..io.color_profile import convert_rgb, embedded_rgb_profile
from ..io.hdr import SdrToHdr
from ..io.image_source import read_alpha, read_rgb_deep, too_large, unreadable_reason
from ..io.looping_source import LoopingVideoSource
from ..said_once import first_time_about_file

log = logging.getLogger(__name__)


def open_background(
    spec: Union[str, os.PathLike], size: Size, device: DeviceLike = None, pixel_aspect: Optional[Fraction] = None, deep: bool = False,
    profile: Optional[bytes] = None, hdr: Optional[SdrToHdr] = None, pictures: Optional[dict] = None,
) -> Background:
    """A colour string, an image file or a video file (looped), covering ``size`` (width, height).

    ``pixel_aspect``: the output's (an anamorphic source's), so the picture looks right as shown;
    a background video's own pixel aspect is taken into account too. ``deep``: frames as float in
    [0, 1] from the picture's own 16 bits or the video's 10 and more (for a deep output).
    ``profile``: the output's RGB colour profile (a Display P3 photo's; None: sRGB, as video is
    shown): a picture is converted into it from its own (sRGB unless it embeds one).
    ``hdr``: the output is HDR video (``io.hdr.hdr_output``): the colour, picture or SDR video is
    converted to its signal, so its white is the subject's white rather than the format's peak.
    ``pictures``: a dict the caller keeps while it opens the same background at several sizes (``birefvid image``'s
    photos): a picture file is decoded into it once (with its own colour profile), by depth, rather than at each
    size (an 8000x6000 JPEG took 1.2 s to decode each time).
    """
    aspect = float(pixel_aspect or 1)
    if isinstance(spec, str) and is_color(spec):
        if hdr is not None:
            return StillBackground(hdr(_flat(spec, deep)), size, device, deep=deep)
        return ColorBackground(spec, size, device, deep=deep)
    path = Path(spec)
    if path.is_dir():
        raise SourceError(f"background {path} is a folder; give an image or video file, or a colour")
    if not path.is_file():
        raise SourceError(
            f"background not found: {path} (expected a colour such as '#00ff00', 'green' or '0,255,0', "
            "or the path of an image or video file)"
        )
    suffix = path.suffix.lower()
    convert = _converter(hdr, deep)
    if pictures is not None and deep in pictures:
        picture, own = pictures[deep]
        return StillBackground(convert(convert_rgb(picture, own, profile, what=f"background {path}")), size, device, aspect, deep)
    if suffix in IMAGE_EXTENSIONS:
        picture = _read_image(path, deep)
        if pictures is not None:
            pictures[deep] = (picture, embedded_rgb_profile(path))
        return StillBackground(convert(_in_profile(picture, path, profile)), size, device, aspect, deep)
    if suffix not in VIDEO_EXTENSIONS:
        try:
            picture = _picture(path, deep)
            if pictures is not None:
                pictures[deep] = (picture, embedded_rgb_profile(path))
        except SourceError:
            pass  # not an image: try it as a video
        else:
            return StillBackground(convert(_in_profile(picture, path, profile)), size, device, aspect, deep)
    try:
        source = LoopingVideoSource(path, deep=deep)
    except SourceError as exc:
        raise SourceError(f"background video unreadable: {path} ({exc})") from exc
    try:
        pictures = source if hdr is None or source.hdr else _Converted(source, hdr)  # an HDR background video is taken as it is
        return StreamBackground(pictures, size, device, aspect / float(source.pixel_aspect or 1), deep)
    except BaseException:
        source.close()
        raise


class SharedBackground(Background):
    """One opened background served to several compositors of one run (``process --also`` with composite outputs of
    the same ``--background`` and depth): each view's n-th ``frames`` call gets the n-th batch of the background,
    made once by whichever view asks first, instead of one decoder per output decoding the same video (a 720p
    one is ~8 ms of CPU a frame). Every view must ask the same batches in the same order, as the compositors of
    one run do; ``close()`` of a view leaves the background open: its opener closes it."""

    def __init__(self, background: Background, group: "Optional[_Shares]" = None) -> None:
        super().__init__((background.width, background.height), background.device, background.pixel_aspect, background.deep)
        self.background = background
        self._shares = group or _Shares(background)
        self._shares.views += 1
        self._taken = 0  # batches this view has been handed

    def view(self) -> "SharedBackground":
        """Another view of the same background, for one more compositor."""
        return SharedBackground(self.background, self._shares)

    def _frames(self, n: int, times=None):
        shares, k = self._shares, self._taken
        self._taken += 1
        asked = (n, None if times is None else tuple(times))
        if k == shares.made:  # the first view to ask for this batch makes it
            frames = self.background.frames(n, times)
            shares.made += 1
            if shares.views > 1:
                shares.pending[k] = [asked, frames, shares.views - 1]
            return frames
        kept = shares.pending.get(k)
        if kept is None or kept[0] != asked:
            raise RuntimeError(f"a shared background's batch {k} was asked for as {asked}, not as the other outputs asked")
        kept[2] -= 1
        if kept[2] == 0:
            del shares.pending[k]
        return kept[1]


class _Shares:
    """What ``SharedBackground`` views of one background share: the batches made and not yet taken by every view."""

    def __init__(self, background: Background) -> None:
        self.background = background
        self.views = 0
        self.made = 0
        self.pending: dict = {}  # batch number -> [(n, times), frames, views still to take it]


def _in_profile(picture: np.ndarray, path: Path, profile: Optional[bytes]) -> np.ndarray:
    """``picture`` (read from ``path``) converted from its own colour profile into ``profile``."""
    return convert_rgb(picture, embedded_rgb_profile(path), profile, what=f"background {path}")


def _converter(hdr: Optional[SdrToHdr], deep: bool) -> Callable[[np.ndarray], np.ndarray]:
    """A picture as the output needs it: as it is for SDR, else converted to the HDR signal (from 16 bits for a deep output)."""
    if hdr is None:
        return lambda picture: picture
    return lambda picture: hdr(picture.astype(np.uint16) * 257 if deep and picture.dtype == np.uint8 else picture)


def _flat(color: str, deep: bool) -> np.ndarray:
    """A 1x1 picture of ``color``, uint16 for a deep output (so its conversion keeps 16 bits), else uint8."""
    rgb = np.array([[parse_color(color)]], np.uint8)
    return rgb.astype(np.uint16) * 257 if deep else rgb


class _Converted:
    """A background video's SDR frames as an HDR output's signal."""

    def __init__(self, source: LoopingVideoSource, convert: SdrToHdr) -> None:
        self.source, self.convert = source, convert

    def next_frame(self) -> np.ndarray:
        return self.convert(self.source.next_frame())

    def frame_at(self, seconds: float) -> np.ndarray:
        return self.convert(self.source.frame_at(seconds))

    def close(self) -> None:
        self.source.close()


def _picture(path: Path, deep: bool) -> np.ndarray:
    """The picture as uint8 RGB, or for ``deep`` its 16 bits where the file has them (else its 8); a
    transparent PNG's see-through parts over black, with a warning."""
    image, wide = read_rgb_deep(path)
    picture = (wide if wide is not None else image) if deep else image
    alpha = read_alpha(path, deep=picture.dtype == np.uint16)
    if alpha is None:
        return picture
    # nothing lies behind a background: its see-through pixels showed the colours they hide (often
    # garbage, or a logo's unblended edge); over black, as a video player shows an alpha video
    if first_time_about_file(path, "background transparency"):  # image opens it for each size of picture: said once
        log.warning("background %s has transparent parts; they are shown over black (flatten it to choose another colour)", path)
    weight = alpha.astype(np.float32)[..., None] / float(np.iinfo(alpha.dtype).max)
    return np.rint(picture * weight).astype(picture.dtype)


def _read_image(path: Path, deep: bool = False) -> np.ndarray:
    try:
        return _picture(path, deep)
    except SourceError as exc:  # why, where the file shows it (a PNG cut off is a PNG: "expected PNG" misled)
        try:
            why = too_large(path) or unreadable_reason(Path(path).read_bytes())
        except OSError:
            why = None
        raise SourceError(f"background image unreadable: {path} ({why or 'expected PNG, JPEG, BMP, WebP or TIFF'})") from exc
