"""``birefvid image --max-size`` (a shop's picture size from a 50 MP photo), ``--square`` (its square tiles) and ``--quality``."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from process_fixtures import interior, scene_frame, true_mask

from birefvid.cli import main


def _photo(path: Path, size=(96, 64)) -> np.ndarray:
    rgb = scene_frame(0, size)
    Image.fromarray(rgb).save(path)
    return rgb


def _one_line_error(capsys, code: int, pattern: str) -> None:
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("birefvid: error:"), lines
    assert pattern in lines[0], lines[0]


@pytest.mark.parametrize("limit, size", [(48, (48, 32)), (49, (49, 33))])  # a still's sides need not be even
def test_max_size_shrinks_the_picture_before_the_cut_out(tmp_path, red_key, limit, size):
    photo, out = tmp_path / "shoe.png", tmp_path / "shoe_white.png"  # PNG: exact, no JPEG ringing to allow for
    rgb = _photo(photo)
    assert main(["image", str(photo), "-o", str(out), "--output", "composite", "--background", "white", "--max-size", str(limit), "-q"]) == 0
    picture = np.array(Image.open(out).convert("RGB")).astype(int)
    assert (picture.shape[1], picture.shape[0]) == size
    small = cv2.resize(true_mask(0, (96, 64)), size, interpolation=cv2.INTER_AREA)
    subject, background = interior(small, 2)
    assert np.abs(picture[background] - 255).max() <= 1  # white around it, at the small size, no halo
    assert np.abs(picture[subject] - rgb[true_mask(0, (96, 64)) > 0][0]).max() <= 1


def test_max_size_keeps_a_16_bit_picture_and_its_own_alpha(tmp_path, red_key):
    rgb = scene_frame(0, (96, 64)).astype(np.uint16) * 257
    alpha = np.full((64, 96), 65535, np.uint16)
    alpha[:, -8:] = 1000  # a soft strip of background only 16 bits hold
    photo, out = tmp_path / "deep.png", tmp_path / "cut.png"
    cv2.imwrite(str(photo), np.dstack([rgb[..., ::-1], alpha]))
    assert main(["image", str(photo), "-o", str(out), "--max-size", "48", "-q"]) == 0
    written = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16 and written.shape == (32, 48, 4)
    assert written[:, -4:, 3].max() <= 1000  # the picture's own transparency, shrunk with it, at 16 bits
    assert written[10:22, 4:16, 3].min() == 65535  # the subject (the red square, 4..36 x 16..48 at full size), opaque


def test_a_smaller_picture_than_max_size_is_not_enlarged(tmp_path, red_key):
    photo, out = tmp_path / "shoe.png", tmp_path / "cut.png"
    _photo(photo)
    assert main(["image", str(photo), "-o", str(out), "--max-size", "2000", "-q"]) == 0
    assert Image.open(out).size == (96, 64)


def test_quality_sets_jpeg_and_webp_quality(tmp_path, red_key):
    photo = tmp_path / "shoe.png"
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((64, 96, 3)) * 255).astype(np.uint8)).save(photo)  # noise: quality shows in the size
    sizes = {}
    for quality in (None, 40):
        for ext in (".jpg", ".webp"):
            out = tmp_path / f"q{quality}{ext}"
            extra = [] if quality is None else ["--quality", str(quality)]
            kind = ["--output", "composite", "--background", "white"] if ext == ".jpg" else []
            assert main(["image", str(photo), "-o", str(out), *kind, *extra, "-q"]) == 0
            sizes[quality, ext] = out.stat().st_size
    assert sizes[40, ".jpg"] < sizes[None, ".jpg"] * 0.6
    assert sizes[40, ".webp"] < sizes[None, ".webp"] * 0.8


@pytest.mark.parametrize("args, pattern", [
    (["--max-size", "4"], "--max-size must be a whole number of pixels, 8 or more, got 4"),
    (["--quality", "0"], "--quality must be 1 to 100"),
    (["--quality", "101"], "--quality must be 1 to 100"),
])  # fmt: skip
def test_bad_size_or_quality_is_one_line_before_any_work(tmp_path, capsys, monkeypatch, args, pattern):
    photo = tmp_path / "shoe.png"
    _photo(photo)

    def no_model(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("birefvid.runtime.file_job.segmenter_for", no_model)
    _one_line_error(capsys, main(["image", str(photo), "-o", str(tmp_path / "cut.jpg"), "--output", "mask", *args]), pattern)
    assert not (tmp_path / "cut.jpg").exists()


def test_a_max_size_that_leaves_a_panorama_under_8_px_is_one_line(tmp_path, red_key, capsys):
    photo = tmp_path / "pano.png"
    Image.fromarray(np.zeros((10, 400, 3), np.uint8)).save(photo)
    _one_line_error(capsys, main(["image", str(photo), "-o", str(tmp_path / "cut.png"), "--max-size", "100"]), "8")
    assert not (tmp_path / "cut.png").exists()


@pytest.mark.parametrize("output, extra, fill", [
    ("composite", ["--background", "white"], (255, 255, 255, 255)),  # the shop's white square
    ("rgba", [], (None, None, None, 0)),  # transparent around the cut-out
    ("green", ["--key-color", "#00b140"], (0, 177, 64, 255)),
    ("mask", [], (0, 0, 0, 255)),
])  # fmt: skip
def test_square_pads_each_picture_centred_with_what_its_output_shows_as_background(tmp_path, red_key, output, extra, fill):
    photo, out = tmp_path / "shoe.png", tmp_path / "square.png"
    _photo(photo)  # 96 x 64: a band of 16 px above and below
    assert main(["image", str(photo), "-o", str(out), "--output", output, *extra, "--square", "-q"]) == 0
    picture = np.array(Image.open(out).convert("RGBA")).astype(int)
    assert picture.shape[:2] == (96, 96)
    for band in (picture[:16], picture[-16:]):
        for channel, value in enumerate(fill):
            if value is not None:
                assert np.abs(band[..., channel] - value).max() <= 1, (channel, band[..., channel].min(), band[..., channel].max())
    subject = picture[16 + 16 + 4 : 16 + 48 - 4, 4 + 4 : 36 - 4]  # the red square, 4..36 x 16..48 in the photo, 16 px lower
    assert subject[..., 3].min() == 255 and (output == "mask" or np.abs(subject[..., :3] - (255, 0, 0)).max() <= 1)


def test_square_after_max_size_and_at_16_bits(tmp_path, red_key):
    rgb = scene_frame(0, (96, 64)).astype(np.uint16) * 257
    photo, out = tmp_path / "deep.png", tmp_path / "cut.png"
    cv2.imwrite(str(photo), rgb[..., ::-1].copy())
    assert main(["image", str(photo), "-o", str(out), "--max-size", "48", "--square", "-q"]) == 0
    written = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16 and written.shape == (48, 48, 4)
    assert written[:8, :, 3].max() == 0 and written[-8:, :, 3].max() == 0  # padding transparent
    assert written[8 + 10 : 8 + 22, 4:16, 3].min() == 65535  # the subject, 8 px lower
