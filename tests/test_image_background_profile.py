"""``--background`` picture behind a photo with its own colour profile (an iPhone's Display P3): the
background is converted into the photo's profile, so it looks as it did; sRGB photos are untouched."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from icc_profiles import p3_like_profile
from PIL import Image, ImageCms

from birefvid.cli import main
from birefvid.io.color_profile import convert_rgb

SIZE = (64, 48)
BACKDROP = (40, 200, 90)  # a saturated green: P3 and sRGB values for it differ by tens of levels


def _photo(path: Path, icc: bytes = None) -> None:
    from process_fixtures import scene_frame

    Image.fromarray(scene_frame(0, SIZE, False)).save(path, **({"icc_profile": icc} if icc else {}))


def _backdrop(path: Path, icc: bytes = None) -> None:
    Image.new("RGB", SIZE, BACKDROP).save(path, **({"icc_profile": icc} if icc else {}))


def _background_region() -> np.ndarray:
    from process_fixtures import interior, true_mask

    return interior(true_mask(0, SIZE), 3)[1]


def _as_seen(rgb: tuple[int, int, int], source: bytes = None, target: bytes = None) -> np.ndarray:
    """littleCMS's conversion of one colour, as a colour-managed viewer does it."""
    def prof(icc):
        return ImageCms.ImageCmsProfile(io.BytesIO(icc)) if icc else ImageCms.createProfile("sRGB")

    return np.array(ImageCms.profileToProfile(Image.new("RGB", (1, 1), rgb), prof(source), prof(target), outputMode="RGB")).reshape(3).astype(int)


def test_an_srgb_background_behind_a_p3_photo_is_converted_into_p3(tmp_path, red_key):
    p3 = p3_like_profile()
    _photo(tmp_path / "IMG_0001.png", p3)
    _backdrop(tmp_path / "beach.png")
    out = tmp_path / "cut.png"
    assert main(["image", str(tmp_path / "IMG_0001.png"), "-o", str(out), "--output", "composite",
                 "--background", str(tmp_path / "beach.png"), "-q"]) == 0  # fmt: skip
    with Image.open(out) as im:
        assert im.info.get("icc_profile") == p3  # the output is still the photo's P3
        picture = np.array(im.convert("RGB")).astype(int)
    expected = _as_seen(BACKDROP, None, p3)
    assert np.abs(expected - np.array(BACKDROP)).max() > 20  # the profiles differ enough to tell
    assert np.abs(picture[_background_region()] - expected).max() <= 1


def test_a_p3_background_behind_an_srgb_photo_is_converted_into_srgb(tmp_path, red_key):
    """The other way round (as for `process`, `batch` and `live`, whose video is shown as sRGB): a profiled picture is converted."""
    p3 = p3_like_profile()
    _photo(tmp_path / "photo.png")
    _backdrop(tmp_path / "beach.png", p3)
    out = tmp_path / "cut.png"
    assert main(["image", str(tmp_path / "photo.png"), "-o", str(out), "--output", "composite",
                 "--background", str(tmp_path / "beach.png"), "-q"]) == 0  # fmt: skip
    picture = np.array(Image.open(out).convert("RGB")).astype(int)
    assert np.abs(picture[_background_region()] - _as_seen(BACKDROP, p3, None)).max() <= 1


def test_an_srgb_background_behind_an_srgb_photo_keeps_its_values(tmp_path, red_key):
    _photo(tmp_path / "photo.png")
    _backdrop(tmp_path / "beach.png")
    out = tmp_path / "cut.png"
    assert main(["image", str(tmp_path / "photo.png"), "-o", str(out), "--output", "composite",
                 "--background", str(tmp_path / "beach.png"), "-q"]) == 0  # fmt: skip
    picture = np.array(Image.open(out).convert("RGB"))
    assert (picture[_background_region()] == BACKDROP).all()


def test_sixteen_bit_pictures_are_converted_too_and_a_damaged_profile_leaves_them(caplog):
    deep = np.full((2, 3, 3), [v * 257 for v in BACKDROP], np.uint16)
    converted = convert_rgb(deep, None, p3_like_profile())
    assert converted.dtype == np.uint16 and (converted[0, 0] // 257 == _as_seen(BACKDROP, None, p3_like_profile())).all()
    assert convert_rgb(deep, b"not a profile" * 20, None, what="background x.png") is deep
    assert "background x.png: its colours could not be converted" in caplog.text
