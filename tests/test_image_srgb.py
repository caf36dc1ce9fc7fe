"""``birefvid image --srgb``: a Display P3 or Adobe RGB photo's cut-out converted to sRGB, for shops that need sRGB."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from icc_profiles import p3_like_profile

from birefvid.cli import main

SUBJECT = (200, 100, 50)  # kept by the red-key model (red over blue); the blue around it is dropped


def _p3_photo(path: Path) -> bytes:
    icc = p3_like_profile()
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[:] = (0, 0, 255)
    pixels[12:36, 16:48] = SUBJECT
    Image.fromarray(pixels).save(path, icc_profile=icc)
    return icc


def _in_srgb(rgb: tuple[int, int, int], icc: bytes) -> np.ndarray:
    """What littleCMS makes of ``rgb`` in profile ``icc`` on an sRGB screen: what a colour-managed viewer shows."""
    patch = Image.new("RGB", (1, 1), rgb)
    srgb = ImageCms.profileToProfile(patch, ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"), outputMode="RGB")
    return np.array(srgb)[0, 0].astype(int)


@pytest.mark.parametrize("out, extra", [("cut.png", []), ("cut.webp", []), ("white.jpg", ["--output", "composite", "--background", "white"])])
def test_srgb_converts_the_colours_and_writes_no_profile(tmp_path, red_key, out, extra):
    photo = tmp_path / "IMG_0001.png"
    icc = _p3_photo(photo)
    assert main(["image", str(photo), "-o", str(tmp_path / out), "--srgb", *extra, "-q"]) == 0
    with Image.open(tmp_path / out) as im:
        assert "icc_profile" not in im.info  # untagged: taken as sRGB everywhere, kept so by shops that drop profiles
        picture = np.array(im.convert("RGBA")).astype(int)
    expected = _in_srgb(SUBJECT, icc)
    assert np.abs(expected - SUBJECT).max() >= 10  # the test means something: P3's values differ from sRGB's
    assert np.abs(picture[20:28, 24:40, :3] - expected).max() <= (4 if out.endswith(".jpg") else 2)
    if out.endswith(".jpg"):
        assert picture[2:6, 2:6, :3].min() >= 250  # white stays white
    else:
        assert picture[20:28, 24:40, 3].min() == 255 and picture[2:6, 2:6, 3].max() == 0  # the alpha as it was


def test_an_srgb_photo_is_left_as_it_is(tmp_path, red_key):
    photo = tmp_path / "plain.png"
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[:] = (0, 0, 255)
    pixels[12:36, 16:48] = SUBJECT
    Image.fromarray(pixels).save(photo)
    assert main(["image", str(photo), "-o", str(tmp_path / "cut.png"), "--srgb", "-q"]) == 0
    assert (np.array(Image.open(tmp_path / "cut.png"))[20:28, 24:40, :3] == SUBJECT).all()


def test_srgb_marks_the_exif_colour_space_srgb(tmp_path, red_key):
    """A phone's P3 photo says ColorSpace "uncalibrated" in its EXIF; its sRGB cut-out says sRGB."""
    photo, icc = tmp_path / "IMG_0002.jpg", p3_like_profile()
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[:] = (0, 0, 255)
    pixels[12:36, 16:48] = SUBJECT
    exif = Image.Exif()
    exif[0x010F] = "Apple"
    exif.get_ifd(0x8769)[0xA001] = 0xFFFF
    Image.fromarray(pixels).save(photo, quality=95, exif=exif, icc_profile=icc)
    for flag, space in (([], 0xFFFF), (["--srgb"], 1)):
        out = tmp_path / f"cut{len(flag)}.png"
        assert main(["image", str(photo), "-o", str(out), *flag, "-q"]) == 0
        with Image.open(out) as im:
            assert im.getexif().get_ifd(0x8769).get(0xA001) == space and im.getexif().get(0x010F) == "Apple"


@pytest.mark.parametrize("extra", [["--output", "green", "--key-color", "#00b140"], ["--output", "composite", "--background", "#00b140"]])
def test_srgb_writes_a_key_or_background_colour_as_given(tmp_path, red_key, extra):
    """A colour given on the command line is the sRGB output's own values: a keyer set to #00b140 finds #00b140
    (it was composited in the photo's P3 and converted with it, written 0,182,36)."""
    photo = tmp_path / "IMG_0003.png"
    icc = _p3_photo(photo)
    out = tmp_path / "cut.png"
    assert main(["image", str(photo), "-o", str(out), *extra, "--srgb", "-q"]) == 0
    picture = np.array(Image.open(out).convert("RGB")).astype(int)
    assert np.abs(picture[2:6, 2:6] - (0, 177, 64)).max() <= 1, picture[2, 2]
    assert np.abs(picture[20:28, 24:40] - _in_srgb(SUBJECT, icc)).max() <= 2  # the subject still converted


def test_srgb_marks_the_xmp_colour_space_srgb_and_drops_the_profile_name(tmp_path, red_key):
    """A P3 photo's XMP names its profile and says "uncalibrated"; its sRGB cut-out, untagged, says sRGB and names none
    (a DAM showing "Display P3" for it would be wrong). Without --srgb both stay, with the profile."""
    import xml.etree.ElementTree as ET

    photo = tmp_path / "IMG_0003.jpg"
    icc = p3_like_profile()
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[:] = (0, 0, 255)
    pixels[12:36, 16:48] = SUBJECT
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           '<rdf:Description rdf:about="" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" xmlns:exif="http://ns.adobe.com/exif/1.0/"'
           ' xmlns:dc="http://purl.org/dc/elements/1.1/" photoshop:ICCProfile="Display P3"><exif:ColorSpace>65535</exif:ColorSpace>'
           '<dc:subject><rdf:Bag><rdf:li>sneaker</rdf:li></rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>')  # fmt: skip
    Image.fromarray(pixels).save(photo, quality=95, icc_profile=icc, xmp=xmp.encode())
    ps, exif = "{http://ns.adobe.com/photoshop/1.0/}ICCProfile", "{http://ns.adobe.com/exif/1.0/}ColorSpace"
    for flags, name, space in [(["--srgb"], None, "1"), ([], "Display P3", "65535")]:
        assert main(["image", str(photo), "-o", str(tmp_path / "cut.png"), "--overwrite", *flags, "-q"]) == 0
        with Image.open(tmp_path / "cut.png") as im:
            description = ET.fromstring(im.info["xmp"]).find(".//{http://www.w3.org/1999/02/22-rdf-syntax-ns#}Description")
            assert (description.get(ps), description.findtext(exif)) == (name, space)
            assert description.find(".//{http://www.w3.org/1999/02/22-rdf-syntax-ns#}li").text == "sneaker"
            assert ("icc_profile" in im.info) == (not flags)
