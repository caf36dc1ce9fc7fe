"""The virtual camera sink: one clear error without a camera device, and what it sends when there is one.

The machines that run these tests have pyvirtualcam but no v4l2loopback kernel module, so opening
a camera must fail with a one-line SinkError that says how to get one. What ``send`` hands to the
camera is checked against a recording stand-in for ``pyvirtualcam.Camera``.
"""

from __future__ import annotations

import glob
import re
import sys

import numpy as np
import pytest

from birefvid.errors import SinkError
from birefvid.io.virtualcam_sink import VirtualCamSink
from system_tools import need_module

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="v4l2loopback is the Linux virtual camera")


@pytest.fixture
def pyvirtualcam():
    need_module("pyvirtualcam", "'birefvid[virtualcam]'")
    import pyvirtualcam

    return pyvirtualcam


def _assert_explains_v4l2loopback(error: SinkError) -> None:
    message = str(error)
    assert "\n" not in message, f"not one line: {message!r}"
    assert "v4l2loopback" in message and "sudo modprobe v4l2loopback exclusive_caps=1" in message, message
    assert isinstance(error.__cause__, RuntimeError), "pyvirtualcam's own error should be the cause"


@linux_only
def test_without_a_loopback_device_the_error_is_one_line_on_v4l2loopback(pyvirtualcam):
    if glob.glob("/dev/video*"):
        pytest.skip("this machine has video devices; the test needs one without a virtual camera")
    with pytest.raises(SinkError) as caught:
        VirtualCamSink(width=64, height=48, fps=30)
    _assert_explains_v4l2loopback(caught.value)
    assert "No v4l2 loopback device found" in str(caught.value), "pyvirtualcam's reason should be kept"


@linux_only
def test_a_missing_device_path_is_named_in_the_error(pyvirtualcam):
    with pytest.raises(SinkError) as caught:
        VirtualCamSink(width=64, height=48, fps=30, device="/dev/birefvid-no-such-camera")
    _assert_explains_v4l2loopback(caught.value)
    assert "/dev/birefvid-no-such-camera" in str(caught.value)


def test_a_camera_takes_rgb_and_gray_but_not_rgba():
    assert VirtualCamSink.accepts == {"rgb", "gray"}
    assert VirtualCamSink.holds_last is True


def test_without_pyvirtualcam_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)  # makes `import pyvirtualcam` raise ImportError
    with pytest.raises(SinkError, match=re.escape("pip install 'birefvid[virtualcam]'")):
        VirtualCamSink(width=64, height=48, fps=30)


class _RecordingCamera:
    """Stands in for pyvirtualcam.Camera: checks the frame the way it does and keeps what it was sent."""

    last: "_RecordingCamera"

    def __init__(self, width, height, fps, *, fmt, device=None, **kw):
        self.width, self.height, self.fps, self.fmt = width, height, fps, fmt
        self.device = device or "/dev/video7"
        self.frames: list[np.ndarray] = []
        self.closed = 0
        _RecordingCamera.last = self

    def send(self, frame: np.ndarray) -> None:
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8 or not frame.flags.c_contiguous:
            raise ValueError(f"unexpected frame {frame.shape} {frame.dtype}")
        self.frames.append(frame.copy())

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def camera(pyvirtualcam, monkeypatch):
    monkeypatch.setattr(pyvirtualcam, "Camera", _RecordingCamera)
    sink = VirtualCamSink(width=8, height=6, fps=25)
    yield sink
    sink.close()


def test_send_passes_rgb_as_is_and_gray_as_rgb(camera, pyvirtualcam):
    cam = _RecordingCamera.last
    assert cam.fmt == pyvirtualcam.PixelFormat.RGB and (cam.width, cam.height, cam.fps) == (8, 6, 25)
    assert camera.device == "/dev/video7" and camera.name == "virtualcam"
    rgb = np.random.default_rng(1).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    camera.send(rgb[:, :, ::-1][:, :, ::-1], 0.0)  # a non-contiguous view must arrive as contiguous rgb
    gray = rgb[:, :, 0].copy()
    camera.send(gray, 0.04)
    assert len(cam.frames) == 2
    assert np.array_equal(cam.frames[0], rgb)
    assert all(np.array_equal(cam.frames[1][:, :, c], gray) for c in range(3))


def test_send_refuses_rgba_and_a_wrong_size(camera):
    with pytest.raises(ValueError, match="no alpha"):
        camera.send(np.zeros((6, 8, 4), np.uint8), 0.0)
    with pytest.raises(ValueError, match="opened for 8x6, got a 10x6 picture"):
        camera.send(np.zeros((6, 10, 3), np.uint8), 0.0)
    assert _RecordingCamera.last.frames == []


def test_a_camera_that_stops_taking_frames_is_a_sink_error(camera, monkeypatch):
    def broken(frame):
        raise RuntimeError("device disappeared\nsecond line")

    monkeypatch.setattr(_RecordingCamera.last, "send", broken)
    with pytest.raises(SinkError, match="stopped taking frames") as caught:
        camera.send(np.zeros((6, 8, 3), np.uint8), 0.0)
    assert "\n" not in str(caught.value) and "device disappeared; second line" in str(caught.value)


def test_close_is_idempotent(camera):
    camera.close()
    camera.close()
    camera.abort()
    assert _RecordingCamera.last.closed == 1
    with pytest.raises(ValueError, match="after close"):
        camera.send(np.zeros((6, 8, 3), np.uint8), 0.0)


def test_device_choice_reaches_pyvirtualcam_and_names_the_sink(pyvirtualcam, monkeypatch):
    monkeypatch.setattr(pyvirtualcam, "Camera", _RecordingCamera)
    with VirtualCamSink(width=8, height=6, fps=30, device="/dev/video3") as sink:
        assert sink.device == "/dev/video3" and sink.name == "virtualcam:/dev/video3"
    assert _RecordingCamera.last.closed == 1


def test_non_square_pixels_make_a_camera_as_wide_as_the_picture_is_meant_to_be(pyvirtualcam, monkeypatch):
    """A D1 camera's 12:11 pixels: a call shows a camera's pixels square, so 704x576 looked squeezed."""
    from fractions import Fraction

    monkeypatch.setattr(pyvirtualcam, "Camera", _RecordingCamera)
    picture = np.zeros((6, 22, 3), np.uint8)
    picture[:, :11] = (255, 0, 0)  # left half red, right half blue
    picture[:, 11:] = (0, 0, 255)
    with VirtualCamSink(width=22, height=6, fps=25, sample_aspect_ratio=Fraction(12, 11)) as sink:
        cam = _RecordingCamera.last
        assert (cam.width, cam.height) == (24, 6)
        sink.send(picture, 0.0)
        with pytest.raises(ValueError, match="opened for 22x6"):  # the pictures stay the stream's size
            sink.send(np.zeros((6, 24, 3), np.uint8), 0.04)
    shown = cam.frames[0]
    assert np.all(shown[:, :11] == (255, 0, 0)) and np.all(shown[:, 13:] == (0, 0, 255))
