"""``birefvid image --background PICTURE``: the picture is decoded once a run, not again for each photo size
(an 8000x6000 JPEG took 1.2 s a decode, twice for a single photo: once to check it before the model loads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from icc_profiles import p3_like_profile
from PIL import Image

from birefvid.commands.image import _Backgrounds
from birefvid.runtime.backgrounds import open_background


def _shown(background) -> np.ndarray:
    return background.frames(1)[0].permute(1, 2, 0).numpy()


def test_the_picture_is_read_once_for_every_size(tmp_path: Path) -> None:
    picture = tmp_path / "beach.png"
    Image.new("RGB", (80, 60), (40, 200, 90)).save(picture, icc_profile=p3_like_profile())
    with open_background(str(picture), (32, 24), "cpu") as expected_srgb:
        srgb = _shown(expected_srgb)[0, 0]
    p3 = p3_like_profile()
    with open_background(str(picture), (20, 30), "cpu", profile=p3) as expected_p3:
        in_p3 = _shown(expected_p3)[0, 0]
    with _Backgrounds(str(picture)) as backgrounds:  # opened (decoded) here, before the model would load
        Image.new("RGB", (80, 60), (255, 0, 0)).save(picture)  # had the file been read again, red without a profile
        first = _shown(backgrounds.covering(32, 24, "cpu"))
        other = _shown(backgrounds.covering(20, 30, "cpu", profile=p3))
    assert first.shape == (24, 32, 3) and other.shape == (30, 20, 3)
    assert (first == srgb).all()  # the picture decoded when it was opened, with its own profile
    assert (other == in_p3).all()  # and converted from that profile into another photo's
