"""``birefvid image --max-size`` on a large JPEG decodes it at 1/2, 1/4 or 1/8 (libjpeg's DCT-domain scaling), not
whole: a 96-megapixel photo for a 2048 px cut-out cost 288 MB of RGB and its full decode time."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms, ImageOps

from icc_profiles import cmyk_profile

ORIENTATION = 0x0112


def _photo(size: tuple[int, int]) -> np.ndarray:
    """A photo-like RGB picture (W, H): a lit backdrop, a red subject off centre (top left) and a little grain."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.dstack([40 + 60 * x / w, 90 + 80 * y / h, 200 - 50 * x / w]).astype(np.float32)
    rgb[h // 8 : h // 2, w // 8 : w // 2] = (220, 30, 25)
    grain = np.random.default_rng(0).normal(0, 4, (h, w, 1))
    return np.clip(rgb + grain, 0, 255).astype(np.uint8)


def _upright_whole(path: Path, icc: bytes | None = None) -> np.ndarray:
    """What a whole decode shows: turned upright by its EXIF, through its CMYK profile where it has one."""
    with Image.open(path) as im:
        if icc is not None:
            shown = ImageCms.profileToProfile(im, ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"), outputMode="RGB")
        else:
            shown = ImageOps.exif_transpose(im).convert("RGB")
    return np.array(shown)


def test_max_size_decodes_a_large_jpeg_reduced_upright_and_as_a_whole_decode_shrunk(tmp_path):
    """With OpenCV allowed 150,000 pixels, 803x601 JPEGs (482,603 pixels) are refused whole, so cut out at all only
    when decoded at 1/2 (402x301) for ``--max-size 101``. A phone's photo stored sideways (EXIF orientation 6) comes out upright
    at the size a whole decode gives, and a catalogue's CMYK JPEG through its own profile (Pillow's draft, the same
    scale), both within a small difference of the whole picture decoded and shrunk."""
    folder, out = tmp_path / "shoot", tmp_path / "cut"
    folder.mkdir()
    upright = Image.fromarray(_photo((601, 803)))  # a portrait, 601 wide
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # stored turned a quarter to the left; viewers turn it back
    upright.transpose(Image.Transpose.ROTATE_90).save(folder / "phone.jpg", exif=exif, quality=92)
    icc = cmyk_profile()
    Image.fromarray(_photo((803, 601))).convert("CMYK").save(folder / "catalogue.jpg", icc_profile=icc, quality=92)
    env = {**os.environ, "OPENCV_IO_MAX_IMAGE_PIXELS": "150000"}
    argv = [sys.executable, "-m", "birefvid", "image", str(folder), "-o", str(out), "--max-size", "101", "--output", "foreground",
            "--no-foreground", "--model", "tiny", "-q"]  # the picture's own colours: what was decoded, shrunk
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for name, size, profile in (("catalogue", (101, 76), icc), ("phone", (76, 101), None)):
        written = np.array(Image.open(out / f"{name}.png").convert("RGB")).astype(int)
        assert (written.shape[1], written.shape[0]) == size, name  # 601x803 at 101 px: 75.6 rounds to 76, as from a whole decode
        expected = cv2.resize(_upright_whole(folder / f"{name}.jpg", profile), size, interpolation=cv2.INTER_AREA).astype(int)
        difference = np.abs(written - expected)
        # a draft differs from a whole decode by a few levels at single edge pixels: 0.2-0.3 mean, 2-6 at the 99th percentile here
        assert difference.mean() < 1.0 and np.percentile(difference, 99) <= 12, (name, difference.mean(), np.percentile(difference, 99))
    subject = written[76 // 8 + 2 : 101 // 2 - 2, 76 // 8 + 2 : 76 // 2 - 2]  # the phone's: at the top left, upright
    assert np.abs(subject.mean(axis=(0, 1)) - (220, 30, 25)).max() < 12, subject.mean(axis=(0, 1))
