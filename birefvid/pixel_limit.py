"""OpenCV's limit on a picture's pixels, ``OPENCV_IO_MAX_IMAGE_PIXELS``, read as OpenCV reads it: a value OpenCV
cannot read (``2e9``, ``2GB``, empty) aborts the whole process as ``cv2`` is imported, with a C++ ``terminate``
line and exit 134, so the command line checks it first. No ``cv2`` import here, nor in ``birefvid.io``, whose
package imports it."""

from __future__ import annotations

import os
import re

from birefvid.errors import ConfigError

OPENCV_PIXELS_ENV = "OPENCV_IO_MAX_IMAGE_PIXELS"
OPENCV_DEFAULT_PIXELS = 1 << 30  # its CV_IO_MAX_IMAGE_PIXELS where the environment sets none
_READABLE = re.compile(r"([0-9]+)(KB|Kb|kb|MB|Mb|mb)?")  # OpenCV's parser: digits, then KB or MB (times 1024)


def opencv_pixel_limit() -> int:
    """The most pixels OpenCV decodes (``2000000000``, ``2000MB``: 2000 x 2^20), or ConfigError for a value
    of ``OPENCV_IO_MAX_IMAGE_PIXELS`` OpenCV cannot read, which would abort the process at ``import cv2``."""
    value = os.environ.get(OPENCV_PIXELS_ENV)
    if value is None:
        return OPENCV_DEFAULT_PIXELS
    match = _READABLE.fullmatch(value)
    if match is None or int(match[1]) >= 1 << 64:
        raise ConfigError(f"{OPENCV_PIXELS_ENV}={value!r} is not a number OpenCV can read (it would stop at once): give whole "
                          "pixels, such as 2000000000, or a number followed by KB or MB (times 1024), such as 2000MB; or unset it")
    return int(match[1]) << {"": 0, "k": 10, "m": 20}[(match[2] or "")[:1].lower()]
