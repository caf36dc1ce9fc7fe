"""Planar TIFFs (PlanarConfiguration 2: Photoshop's Pixel Order "Per Channel (RRGGBB)", some scanners' and GIS
tools'): read as the same picture as their interleaved twin. OpenCV decoded a 16-bit or float one as noise (and an
older OpenCV refused every one as "its TIFF data is damaged"), so the cut-out was of a picture nobody saw.

Each picture is written twice by tifffile, interleaved and per channel, and cut out by the red-key test model: the
two cut-outs must match, and match the scene (the model keys on red against blue)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from process_fixtures import interior, scene_frame, true_mask

from birefvid.cli import main

tifffile = pytest.importorskip("tifffile")  # scikit-image's dependency, which pysodmetrics brings

SIZE = (64, 48)


def scene(dtype: type) -> np.ndarray:
    """The red-key scene as RGB of ``dtype`` (0-1 for float), the subject's green at mid grey so depth shows."""
    picture = scene_frame(0, SIZE)
    top = 1.0 if np.dtype(dtype).kind == "f" else np.iinfo(dtype).max
    out = (picture.astype(np.float64) / 255 * top).astype(dtype)
    out[..., 1][true_mask(0, SIZE) > 0] = np.asarray(top / 2).astype(dtype)
    return out


def write_twins(folder: Path, picture: np.ndarray, compression: str | None = None,
                orientation: int | None = None) -> tuple[Path, Path]:
    """``picture`` (H, W, 3 or 4; the fourth straight alpha) as an interleaved and a planar TIFF, otherwise alike."""
    alpha = ("unassalpha",) if picture.shape[2] == 4 else None
    tags = [(274, 3, 1, orientation, True)] if orientation else []
    paths = []
    for layout, data in (("contig", picture), ("separate", np.moveaxis(picture, -1, 0))):
        path = folder / f"{layout}.tif"
        tifffile.imwrite(path, data, photometric="rgb", planarconfig=layout, extrasamples=alpha,
                         compression=compression, extratags=tags)  # fmt: skip
        paths.append(path)
    return paths[0], paths[1]


def cut_out(src: Path, out: Path) -> np.ndarray:
    """``birefvid image`` of ``src`` as an RGBA PNG, read back as RGBA ints (16-bit where the output is)."""
    assert main(["image", str(src), "-o", str(out), "-q"]) == 0
    return cv2.cvtColor(cv2.imread(str(out), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA).astype(int)


@pytest.mark.parametrize(
    "dtype, channels, compression",
    [(np.uint8, 3, None), (np.uint16, 4, "zlib"), (np.float32, 3, None)],
    ids=["8-bit RGB", "16-bit RGBA, ZIP", "float RGB"],
)
def test_a_planar_tiff_cuts_out_as_its_interleaved_twin(tmp_path, red_key, dtype, channels, compression):
    picture = scene(dtype)
    if channels == 4:  # a soft alpha ramp of its own, with steps 8 bits would merge
        ramp = np.linspace(20000, 60000, SIZE[0] * SIZE[1]).reshape(SIZE[1], SIZE[0]).astype(dtype)
        picture = np.dstack([picture, ramp])
    interleaved, planar = write_twins(tmp_path, picture, compression)
    twin = cut_out(interleaved, tmp_path / "twin.png")
    cut = cut_out(planar, tmp_path / "cut.png")
    assert cut.shape == twin.shape and np.abs(cut - twin).max() <= 1
    subject, background = interior(true_mask(0, SIZE))
    white = 255 if dtype == np.uint8 else 65535  # 16-bit and float pictures keep their depth
    assert (cut[..., 0][subject] == white).all()  # its colours, not noise
    if channels == 4:  # the file's own alpha over the subject, at 16 bits
        assert np.abs(cut[..., 3][subject] - picture[..., 3][subject]).max() <= 1
    else:  # opaque: the subject's mid grey green as it is, at the picture's depth
        assert (cut[..., 3][subject] == white).all() and (np.abs(cut[..., 1][subject] - white / 2) <= 1).all()
    assert (cut[..., 3][background] == 0).all()


def test_a_planar_tiff_stored_sideways_comes_out_upright(tmp_path, red_key):
    """Orientation 6 (the camera turned clockwise): the picture as viewers show it, turned as its interleaved twin."""
    picture = scene(np.uint16)
    interleaved, planar = write_twins(tmp_path, picture, orientation=6)
    twin = cut_out(interleaved, tmp_path / "twin.png")
    cut = cut_out(planar, tmp_path / "cut.png")
    assert cut.shape[:2] == (SIZE[0], SIZE[1])  # upright: its width and height swapped
    assert np.abs(cut - twin).max() <= 1
    upright = np.rot90(picture, -1).astype(int)  # what a viewer shows of orientation 6
    subject, _ = interior(np.rot90(true_mask(0, SIZE), -1))
    assert (cut[..., :3][subject] == upright[subject]).all()
