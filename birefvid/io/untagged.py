"""Which YUV matrix an untagged video is read with: the one the players people judge by would use.

A video that names no matrix (most H.264 made with plain ffmpeg or x264, many screen recorders' and
editors' exports) is decoded by FFmpeg's swscale as BT.601 whatever its size. mpv, VLC, Chrome,
Firefox, QuickTime, Resolve and Premiere take untagged HD (wider than 1279 or taller than 576) as
BT.709: read as BT.601, a 720p clip's PNGs were up to 41 levels away from what its player showed on
saturated bars (3.8 on average), and a ``--background`` composited into it moved as much on screen.
``auto`` guesses as the players do; ``bt709`` and ``bt601`` say what the user knows.

The choices are ``job.INPUT_COLORS``, which the job checks before any heavy import.
"""

from __future__ import annotations

from typing import Optional

# libav AVColorSpace values: what a source's tag or the choice above names
BT709, UNSPECIFIED, SMPTE170M = 1, 2, 6
_CHOSEN = {"bt709": BT709, "bt601": SMPTE170M}
# libav AVColorSpace value -> its name in messages, as ffprobe says it
MATRIX_NAMES = {0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "ycgco", 9: "bt2020nc", 10: "bt2020c"}
# libav AVColorSpace value -> the swscale matrix name PyAV accepts
SWS_MATRIX = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "ITU601", 7: "SMPTE240M", 9: "BT2020", 10: "BT2020"}


def is_hd(width: int, height: int) -> bool:
    """Whether players take an untagged picture of this stored size as BT.709 (mpv's and VLC's rule: HD is wider
    than 1279 or taller than PAL's 576 lines)."""
    return width >= 1280 or height > 576


def rgb_matrix(width: int, height: int) -> int:
    """The AVColorSpace value RGB pictures of this size (a PNG or TIFF plate, a GIF, a live sink's pictures) are
    converted to YUV with, and their video outputs tagged with: BT.709 for HD, BT.601 (``smpte170m``) below it.

    Such a source names no matrix, so the choice is the output's: the one players take untagged video of that size
    as, so that one which ignores the tag shows the same colours. swscale's default alone is BT.601 whatever the
    size: a 720p plate's H.264, left untagged, was shown as BT.709 by mpv, VLC and browsers, up to 34 levels off."""
    return BT709 if is_hd(width, height) else SMPTE170M


def untagged(colorspace: Optional[int]) -> bool:
    """Whether a decoded YUV picture names no matrix (libav's unspecified, or no value at all)."""
    return colorspace is None or colorspace in (UNSPECIFIED, 3)  # 3: reserved, which FFmpeg reads as unspecified


def assumed_matrix(colorspace: Optional[int], width: int, height: int, choice: str = "auto") -> Optional[int]:
    """The AVColorSpace value to read an untagged source of ``width`` x ``height`` (as stored) with, which its
    video outputs are then tagged with; None where nothing is assumed: the source names its matrix (its tag wins),
    or ``auto`` on SD, which stays BT.601 and untagged, as FFmpeg and every player already agree there."""
    if not untagged(colorspace):
        return None
    if choice == "auto":
        return BT709 if is_hd(width, height) else None
    return _CHOSEN[choice]
