"""``birefvid image``: RGBA/mask PNGs whose alpha equals the Segmenter's, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from birefvid.cli import main
from birefvid.runtime import Segmenter

MODEL_ARGS = ["--resolution", "64", "--device", "cpu", "--precision", "fp32"]


def _scene(seed: int, size=(48, 64)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = (rng.random((*size, 3)) * 60 + 40).astype(np.uint8)
    cv2.circle(img, (size[1] // 2, size[0] // 2), size[0] // 3, (230, 60, 40), -1)
    return img


@pytest.fixture()
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), cv2.cvtColor(_scene(0), cv2.COLOR_RGB2BGR))
    return path


def _expected_alpha(weights: Path, image_rgb: np.ndarray) -> np.ndarray:
    seg = Segmenter(weights=str(weights), resolution=64, device="cpu", precision="fp32")
    return np.round(seg(image_rgb)[0] * 255).astype(np.uint8)


def test_rgba_png_alpha_equals_segmenter(tmp_path, photo, pvt_b0_weights, capsys):
    out = tmp_path / "cut.png"
    assert main(["image", str(photo), "-o", str(out), "--weights", str(pvt_b0_weights), *MODEL_ARGS]) == 0
    assert capsys.readouterr().err.strip() == f"wrote {out}"  # says what it wrote, as process does
    rgba = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (48, 64, 4)
    expected = _expected_alpha(pvt_b0_weights, _scene(0))
    assert np.abs(rgba[..., 3].astype(int) - expected).max() <= 1  # same model, same input: rounding only
    assert len(np.unique(rgba[..., 3])) > 4  # a real matte, not a constant
    source = cv2.imread(str(photo))
    opaque = rgba[..., 3] == 255
    if opaque.any():  # colour is the source's wherever the subject is fully opaque
        assert np.abs(rgba[..., :3][opaque].astype(int) - source[opaque]).max() <= 1


def test_mask_output_and_folder_input(tmp_path, pvt_b0_weights):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        cv2.imwrite(str(src / f"img{i}.jpg"), cv2.cvtColor(_scene(i), cv2.COLOR_RGB2BGR))
    out = tmp_path / "masks"
    assert main(["image", str(src), "-o", str(out), "--output", "mask", "-q", "--weights", str(pvt_b0_weights), *MODEL_ARGS]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["img0.png", "img1.png"]
    mask = cv2.imread(str(out / "img1.png"), cv2.IMREAD_UNCHANGED)
    assert mask.ndim == 2 and mask.dtype == np.uint8
    rgb = cv2.cvtColor(cv2.imread(str(src / "img1.jpg")), cv2.COLOR_BGR2RGB)
    assert np.abs(mask.astype(int) - _expected_alpha(pvt_b0_weights, rgb)).max() <= 1


def _one_line_error(capsys, code: int, pattern: str) -> None:
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("birefvid: error:")
    assert pattern in lines[0], lines[0]


def test_missing_input(tmp_path, capsys, pvt_b0_weights):
    code = main(["image", str(tmp_path / "nope.png"), "-o", str(tmp_path / "out"), "--weights", str(pvt_b0_weights)])
    _one_line_error(capsys, code, "input not found")
    assert not (tmp_path / "out").exists()


def test_unreadable_image_leaves_nothing(tmp_path, capsys, pvt_b0_weights):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    out = tmp_path / "out.png"
    _one_line_error(capsys, main(["image", str(bad), "-o", str(out), "--weights", str(pvt_b0_weights), *MODEL_ARGS]), "not a readable image")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.png"]  # no output, no temp file


def test_unreadable_image_in_a_folder_is_skipped_and_named(tmp_path, capfd, pvt_b0_weights):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(2):
        cv2.imwrite(str(src / f"img{i}.jpg"), cv2.cvtColor(_scene(i), cv2.COLOR_RGB2BGR))
    (src / "img0b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png")  # between the two
    code = main(["image", str(src), "-o", str(out), "-q", "--weights", str(pvt_b0_weights), *MODEL_ARGS])
    # capfd, not capsys: libpng's own complaints would go straight to file descriptor 2
    _one_line_error(capfd, code, f"1 of 3 images could not be read or used and were skipped: {src / 'img0b.png'} (the other 2 were written")
    assert sorted(p.name for p in out.iterdir()) == ["img0.png", "img1.png"]


def test_a_picture_too_small_to_work_on(tmp_path, capsys, pvt_b0_weights):
    dot = tmp_path / "dot.png"
    cv2.imwrite(str(dot), np.full((1, 1, 3), 128, np.uint8))
    code = main(["image", str(dot), "-o", str(tmp_path / "out.png"), "--weights", str(pvt_b0_weights), *MODEL_ARGS])
    _one_line_error(capsys, code, "dot.png is 1x1 pixels; birefvid needs at least 8x8")


def test_phone_photo_is_cut_out_upright(tmp_path, pvt_b0_weights):
    """A JPEG stored sideways with EXIF orientation 6 (how phones save portrait photos) comes out as viewers show it."""
    path, out = tmp_path / "phone.jpg", tmp_path / "phone.png"
    exif = Image.Exif()
    exif[0x0112] = 6  # turn 90 degrees clockwise to display
    Image.fromarray(_scene(3)).save(path, exif=exif, quality=95)
    assert main(["image", str(path), "-o", str(out), "-q", "--weights", str(pvt_b0_weights), *MODEL_ARGS]) == 0
    rgba = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (64, 48, 4)
    stored = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)  # the pixels as stored, sideways
    upright = np.ascontiguousarray(np.rot90(stored, -1))
    assert np.abs(rgba[..., 3].astype(int) - _expected_alpha(pvt_b0_weights, upright)).max() <= 1


def test_existing_output_needs_overwrite(tmp_path, photo, capsys, pvt_b0_weights):
    out = tmp_path / "cut.png"
    out.write_bytes(b"keep me")
    _one_line_error(capsys, main(["image", str(photo), "-o", str(out), "--weights", str(pvt_b0_weights)]), "output exists")
    assert out.read_bytes() == b"keep me"
    assert main(["image", str(photo), "-o", str(out), "--overwrite", "--weights", str(pvt_b0_weights), *MODEL_ARGS]) == 0
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape == (48, 64, 4)


@pytest.mark.parametrize(
    "make,extra,pattern",
    [
        (lambda d: d / "missing.pth", [], "weights file not found"),
        (lambda d: (d / "junk.pth").write_bytes(b"junk") and d / "junk.pth", [], "not a BiRefNet checkpoint"),
        (None, ["--backbone", "swin_v1_t"], "does not fit backbone swin_v1_t"),
    ],
    ids=["missing", "not-a-checkpoint", "wrong-backbone"],
)
def test_bad_weights(tmp_path, photo, capsys, pvt_b0_weights, make, extra, pattern):
    weights = make(tmp_path) if make else pvt_b0_weights
    out = tmp_path / "cut.png"
    _one_line_error(capsys, main(["image", str(photo), "-o", str(out), "--weights", str(weights), *extra]), pattern)
    assert not out.exists()


def test_bad_resolution(tmp_path, photo, capsys, pvt_b0_weights):
    code = main(["image", str(photo), "-o", str(tmp_path / "c.png"), "--weights", str(pvt_b0_weights), "--resolution", "100"])
    _one_line_error(capsys, code, "multiples of 32")
