"""Send live pictures to a virtual camera (pyvirtualcam, the optional ``birefvid[virtualcam]`` extra).

Video-call apps then pick "birefvid" up as a webcam. On Linux the camera is a v4l2loopback
device; on Windows and macOS it is OBS's Virtual Camera. A camera carries no alpha, so rgba is
not accepted (the runner composes it first); gray is sent as rgb. The runner paces the frames.
"""

from __future__ import annotations

import logging
import sys
from fractions import Fraction
from typing import Any, Optional

import numpy as np

from birefvid.errors import SinkError
from birefvid.io.live_base import LiveSink, square_pixel_size, to_square_pixels

log = logging.getLogger(__name__)

_NO_PYVIRTUALCAM = "the virtual camera sink needs pyvirtualcam: pip install 'birefvid[virtualcam]'"


def _how_to_get_a_camera() -> str:
    """The platform's way to provide a virtual camera device."""
    if sys.platform.startswith("linux"):
        return (
            "load the v4l2loopback kernel module (Debian/Ubuntu: sudo apt install v4l2loopback-dkms; "
            "then sudo modprobe v4l2loopback exclusive_caps=1)"
        )
    return "install OBS Studio (28 or newer) and start its Virtual Camera once"


def _one_line(error: BaseException) -> str:
    """pyvirtualcam reports one line per backend it tried; join them for a one-line error."""
    return "; ".join(part.strip() for part in str(error).splitlines() if part.strip()) or type(error).__name__


class VirtualCamSink(LiveSink):
    """A virtual webcam showing each rgb (or gray) picture of exactly ``width`` x ``height``."""

    accepts = frozenset({"rgb", "gray"})
    holds_last = True

    def __init__(self, *, width: int, height: int, fps: float, device: Optional[str] = None,
                 sample_aspect_ratio: Optional[Fraction] = None) -> None:  # fmt: skip
        """Open the virtual camera (the first free one unless ``device``); SinkError when there is none.

        ``sample_aspect_ratio``: the pictures' pixel shape when not square (a D1 camera's 12:11); a call
        shows a camera's pixels square, so the camera is as wide as the picture is meant to be."""
        super().__init__()
        if width <= 0 or height <= 0 or not fps > 0:
            raise ValueError(f"a virtual camera needs a positive size and fps, got {width}x{height} at {fps}")
        self.width, self.height, self.fps = width, height, fps
        self.sample_aspect_ratio = sample_aspect_ratio
        cam_width, cam_height = square_pixel_size(width, height, sample_aspect_ratio)
        try:
            import pyvirtualcam
        except ImportError as e:
            raise SinkError(_NO_PYVIRTUALCAM) from e
        try:
            self._cam: Any = pyvirtualcam.Camera(
                width=cam_width, height=cam_height, fps=fps, fmt=pyvirtualcam.PixelFormat.RGB, device=device
            )
        except Exception as e:  # pyvirtualcam raises RuntimeError, its backends may raise others
            where = f"virtual camera {device}" if device else "a virtual camera"
            raise SinkError(f"cannot open {where} ({_one_line(e)}); {_how_to_get_a_camera()}") from e
        self._device = device
        log.info("virtual camera %s open at %dx%d, %g fps", self._cam.device, cam_width, cam_height, fps)

    @property
    def name(self) -> str:
        return f"virtualcam:{self._device}" if self._device else "virtualcam"

    @property
    def device(self) -> str:
        """The device the camera appears as (e.g. /dev/video2, or "OBS Virtual Camera")."""
        return str(self._cam.device)

    def _send(self, picture: np.ndarray, t: float) -> None:
        kind = self.check_picture(picture, self.width, self.height, " (a camera has no alpha)")
        frame = np.repeat(picture[:, :, None], 3, axis=2) if kind == "gray" else np.ascontiguousarray(picture)
        frame = to_square_pixels(frame, self.sample_aspect_ratio)
        try:
            self._cam.send(frame)
        except Exception as e:
            raise SinkError(f"the virtual camera {self.device} stopped taking frames ({_one_line(e)})") from e

    def _close(self) -> None:
        self._cam.close()
