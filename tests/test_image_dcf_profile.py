"""A DSLR's Adobe RGB JPEG that says so in its EXIF alone (no ICC profile) keeps its colours in its cut-out."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from icc_profiles import p3_like_profile

from birefvid.cli import main

SUBJECT = (200, 100, 50)  # a terracotta pot; the red-key model keeps it (red over blue), drops the blue around it
# Adobe RGB (1998) to XYZ (D65) and XYZ to linear sRGB, as the specifications publish them
ADOBE_TO_XYZ = np.array([[0.5767309, 0.1855540, 0.1881852], [0.2973769, 0.6273491, 0.0752741], [0.0270343, 0.0706872, 0.9911085]])
XYZ_TO_SRGB = np.array([[3.2404542, -1.5371385, -0.4985314], [-0.9692660, 1.8760108, 0.0415560], [0.0556434, -0.2040259, 1.0572252]])


def _adobe_to_srgb(rgb: tuple[int, int, int]) -> np.ndarray:
    """What a colour-managed viewer shows for Adobe RGB values, worked out from the published matrices."""
    linear = np.clip((np.array(rgb) / 255.0) ** (563 / 256) @ ADOBE_TO_XYZ.T @ XYZ_TO_SRGB.T, 0, 1)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055) * 255


def _as_shown(path: Path) -> np.ndarray:
    """``path`` as a colour-managed viewer shows it on an sRGB screen: through its embedded profile, untagged as sRGB."""
    with Image.open(path) as im:
        rgb = im.convert("RGB")
        icc = im.info.get("icc_profile")
    if icc:
        rgb = ImageCms.profileToProfile(rgb, ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"), outputMode="RGB")
    return np.array(rgb).astype(int)


def _camera_jpeg(path: Path, color_space: int, interop: str | None = None, icc: bytes | None = None) -> None:
    """A camera JPEG: blue around a SUBJECT square, its EXIF's ColorSpace and InteropIndex as given."""
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[:] = (0, 0, 255)
    pixels[12:36, 16:48] = SUBJECT
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif.get_ifd(0x8769)[0xA001] = color_space
    if interop is not None:
        exif.get_ifd(0x8769)[0xA005] = {0x0001: interop, 0x0002: b"0100"}
    Image.fromarray(pixels).save(path, quality=100, subsampling=0, exif=exif, **({"icc_profile": icc} if icc else {}))


@pytest.mark.parametrize("color_space, interop", [(0xFFFF, "R03"), (2, None)])  # DCF's option file; a few cameras' ColorSpace 2
@pytest.mark.parametrize("out, extra", [("cut.png", []), ("cut.webp", []), ("white.jpg", ["--output", "composite", "--background", "white"])])
def test_an_adobe_rgb_camera_jpeg_keeps_its_colours(tmp_path, red_key, color_space, interop, out, extra):
    photo = tmp_path / "IMG_0001.JPG"
    _camera_jpeg(photo, color_space, interop)
    assert main(["image", str(photo), "-o", str(tmp_path / out), *extra, "-q"]) == 0
    shown = _as_shown(tmp_path / out)
    expected = _adobe_to_srgb(SUBJECT)  # (227, 100, 42); shown untagged, as sRGB, the pot was (200, 100, 50): dull
    assert np.abs(shown[20:28, 24:40] - expected).max() <= 4
    if "composite" in extra:
        assert shown[2:6, 2:6].min() >= 250  # white stays white


def test_an_srgb_camera_jpeg_stays_untagged(tmp_path, red_key):
    photo = tmp_path / "IMG_0002.JPG"
    _camera_jpeg(photo, 1, "R98")
    assert main(["image", str(photo), "-o", str(tmp_path / "cut.png"), "-q"]) == 0
    with Image.open(tmp_path / "cut.png") as im:
        assert "icc_profile" not in im.info


def test_an_embedded_profile_wins_over_the_exif_hint(tmp_path, red_key):
    photo, icc = tmp_path / "IMG_0003.JPG", p3_like_profile()
    _camera_jpeg(photo, 0xFFFF, "R03", icc=icc)
    assert main(["image", str(photo), "-o", str(tmp_path / "cut.png"), "-q"]) == 0
    with Image.open(tmp_path / "cut.png") as im:
        assert im.info["icc_profile"] == icc
