"""``birefvid image`` keeps a photo's EXIF (camera, exposure, capture date) in PNG, JPEG and WebP cut-outs, without
its GPS position, and with the orientation reset since the pixels are written upright."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from icc_profiles import p3_like_profile
from PIL import Image

from birefvid.cli import main

SIZE = (64, 48)  # width, height as shown
MAKE, MODEL, TAKEN = "Apple", "iPhone 15 Pro", "2026:11:30 10:04:05"


def _phone_photo(path: Path, icc: bytes = None) -> None:
    """A JPEG stored sideways (orientation 6: shown turned a quarter clockwise), with camera, date and position."""
    from process_fixtures import scene_frame

    upright = scene_frame(0, SIZE, False)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = MAKE, MODEL, 6
    exif.get_ifd(0x8769)[0x9003] = TAKEN  # DateTimeOriginal
    exif.get_ifd(0x8825).update({1: "N", 2: (51.0, 30.0, 12.5), 3: "W", 4: (0.0, 7.0, 40.0)})  # where it was taken
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1)))  # turned back a quarter: 6 shows it upright
    stored.save(path, quality=95, exif=exif.tobytes(), **({"icc_profile": icc} if icc else {}))


def _kept(path: Path) -> tuple[Image.Image, Image.Exif]:
    im = Image.open(path)
    return im, im.getexif()


@pytest.mark.parametrize("out, output", [("cut.png", "rgba"), ("cut.webp", "rgba"), ("white.jpg", "composite"), ("mask.png", "mask"),
                                         ("cut.tif", "rgba"), ("mask.tif", "mask")])
def test_camera_and_date_are_kept_and_the_position_is_not(tmp_path, red_key, out, output):
    _phone_photo(tmp_path / "IMG_0001.jpg")
    extra = ["--background", "white"] if output == "composite" else []
    assert main(["image", str(tmp_path / "IMG_0001.jpg"), "-o", str(tmp_path / out), "--output", output, *extra, "-q"]) == 0
    im, exif = _kept(tmp_path / out)
    assert im.size == SIZE  # upright...
    assert exif.get(0x0112, 1) == 1  # ...so no viewer turns it again
    assert (exif.get(0x010F), exif.get(0x0110)) == (MAKE, MODEL)
    assert exif.get_ifd(0x8769).get(0x9003) == TAKEN
    assert 0x8825 not in exif and not exif.get_ifd(0x8825)  # no GPS position in a picture made to be shared


@pytest.mark.parametrize("out", ["white.jpg", "cut.webp", "cut.png", "cut.tif"])
def test_exif_and_the_colour_profile_are_both_kept(tmp_path, red_key, out):
    icc = p3_like_profile()
    _phone_photo(tmp_path / "IMG_0002.jpg", icc)
    extra = ["--output", "composite", "--background", "white"] if out.endswith(".jpg") else []
    assert main(["image", str(tmp_path / "IMG_0002.jpg"), "-o", str(tmp_path / out), *extra, "-q"]) == 0
    im, exif = _kept(tmp_path / out)
    assert im.info.get("icc_profile") == icc and exif.get(0x0110) == MODEL
    im.load()  # the file still decodes whole
    assert im.size == SIZE


@pytest.mark.parametrize("out", ["white.jpg", "cut.webp", "cut.png"])
def test_no_exif_writes_none_and_keeps_the_colour_profile(tmp_path, red_key, out):
    """A web shop's pictures: no camera, date or copyright in them, but the colours still shown right."""
    icc = p3_like_profile()
    _phone_photo(tmp_path / "IMG_0003.jpg", icc)
    extra = ["--output", "composite", "--background", "white"] if out.endswith(".jpg") else []
    assert main(["image", str(tmp_path / "IMG_0003.jpg"), "-o", str(tmp_path / out), "--no-exif", *extra, "-q"]) == 0
    im, exif = _kept(tmp_path / out)
    assert not dict(exif) and "exif" not in im.info
    assert im.info.get("icc_profile") == icc and im.size == SIZE  # upright all the same


def test_a_photo_without_exif_gets_none(tmp_path, red_key):
    from process_fixtures import scene_frame

    Image.fromarray(scene_frame(0, SIZE, False)).save(tmp_path / "plain.png")
    assert main(["image", str(tmp_path / "plain.png"), "-o", str(tmp_path / "cut.webp"), "-q"]) == 0
    im, exif = _kept(tmp_path / "cut.webp")
    assert not exif and "exif" not in im.info


def test_a_maker_note_too_big_for_a_jpeg_segment_is_dropped_and_the_rest_kept(tmp_path):
    import io

    from birefvid.io.exif import MAX_EXIF_BYTES, cutout_exif

    exif = Image.Exif()
    exif[0x010F], exif[0x0131] = MAKE, "17.1"  # the camera's software did not make the cut-out: not kept
    exif.get_ifd(0x8769).update({0x9003: TAKEN, 0x927C: b"\x01" * 70_000})
    raw = exif.tobytes()
    assert len(raw) > 65535  # too big for one APP1 segment, as some cameras' notes are: put in a PNG
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG", exif=raw)
    with Image.open(buffer) as im:
        kept = cutout_exif(im)
    assert kept is not None and len(kept) <= MAX_EXIF_BYTES
    back = Image.Exif()
    back.load(b"Exif\0\0" + kept)
    assert back.get(0x010F) == MAKE and 0x0131 not in back
    assert back.get_ifd(0x8769).get(0x9003) == TAKEN and 0x927C not in back.get_ifd(0x8769)
