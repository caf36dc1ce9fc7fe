"""Gray + alpha TIFFs (ImageMagick's ``-colorspace gray -alpha on``, GIMP's and Photoshop's gray layers with
transparency) read as the same picture saved as a 16-bit gray + alpha PNG does: 16 bits kept, alpha kept, upright;
and a big-endian ("MM") BigTIFF keeps its alpha as the little-endian one does.

OpenCV read a two-sample TIFF through libtiff's 8-bit RGBA path (a 16-bit one came out 8-bit, a tiled one off by up
to 255, its alpha dropped), and Pillow, which read TIFF alpha, opens no 16-bit gray + alpha TIFF and misreads a
big-endian BigTIFF's header (printing a "Corrupt EXIF data" warning on the way). Files are written by tifffile, and
by libtiff's own tiffcp for LZW with the horizontal predictor and for big-endian copies."""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from process_fixtures import interior, scene_frame, true_mask
from system_tools import need_binary

from birefvid.cli import main
from birefvid.io.image_source import read_alpha, read_rgb_deep

tifffile = pytest.importorskip("tifffile")

# the upright picture -> what a file of that Orientation stores (6 and 8 turn the other way to stand upright)
STORED = {1: lambda a: a, 3: lambda a: np.rot90(a, 2), 6: lambda a: np.rot90(a, 1), 7: lambda a: np.rot90(a, 2).swapaxes(0, 1)}


def gray_alpha_layer(bits: int) -> np.ndarray:
    """(H, W, 2) gray and alpha, 8 or 16 bits: a smooth gray ramp (where the predictor's differences matter) with
    random low bits (which an 8-bit reading loses), alpha random, 21 x 37 (partial 16 x 16 tiles at the edges)."""
    rng = np.random.default_rng(bits)
    h, w = 21, 37
    if bits == 8:
        gray = np.broadcast_to(np.linspace(10, 240, w), (h, w)).astype(np.uint8)
        return np.dstack([gray, rng.integers(0, 255, (h, w), endpoint=True).astype(np.uint8)])
    gray = np.broadcast_to(np.linspace(1000, 64000, w), (h, w)).astype(np.uint16) + rng.integers(0, 255, (h, w)).astype(np.uint16)
    return np.dstack([gray, rng.integers(0, 65535, (h, w), endpoint=True).astype(np.uint16)])


def write_gray_alpha(path: Path, layer: np.ndarray, orientation: int = 1, **layout) -> Path:
    """``layer`` (upright gray + straight alpha) stored turned by ``orientation``, tagged so, with tifffile's
    ``layout`` (byteorder, bigtiff, tile, compression)."""
    tifffile.imwrite(path, np.ascontiguousarray(STORED[orientation](layer)), photometric="minisblack",
                     extrasamples=["unassalpha"], extratags=[(274, 3, 1, orientation, False)], **layout)  # fmt: skip
    return path


def png_twin(path: Path, layer: np.ndarray) -> Path:
    """The same picture as a PNG of its depth: gray replicated, alpha kept (what a gray + alpha PNG reads as)."""
    gray, alpha = layer[..., 0], layer[..., 1]
    cv2.imwrite(str(path), np.dstack([gray, gray, gray, alpha]))
    return path


def assert_reads_alike(tiff: Path, png: Path) -> None:
    """``tiff`` reads as ``png``: its 8-bit and 16-bit colours, and its alpha at either depth."""
    (rgb, deep), (twin_rgb, twin_deep) = read_rgb_deep(tiff), read_rgb_deep(png)
    np.testing.assert_array_equal(rgb, twin_rgb)
    assert (deep is None) == (twin_deep is None)
    if deep is not None:
        np.testing.assert_array_equal(deep, twin_deep)
    for deep_alpha in (False, True):
        twin_alpha = read_alpha(png, deep=deep_alpha)
        alpha = read_alpha(tiff, deep=deep_alpha)
        assert alpha is not None and alpha.dtype == twin_alpha.dtype
        np.testing.assert_array_equal(alpha, twin_alpha)


LAYOUTS = {"strips": {}, "tiled": {"tile": (16, 16)}, "deflate": {"compression": "zlib"},
           "big-endian BigTIFF": {"byteorder": ">", "bigtiff": True}}  # fmt: skip


@pytest.mark.parametrize("orientation", [1, 6])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_16_bit_gray_alpha_tiff_reads_as_its_png_twin(tmp_path, layout, orientation):
    """16 bits and alpha kept, upright: it read as 8-bit gray (off by up to 253 when tiled), its alpha lost."""
    layer = gray_alpha_layer(16)
    tiff = write_gray_alpha(tmp_path / "layer.tif", layer, orientation, **LAYOUTS[layout])
    assert_reads_alike(tiff, png_twin(tmp_path / "layer.png", layer))
    _, deep = read_rgb_deep(tiff)
    np.testing.assert_array_equal(deep[..., 0], layer[..., 0])  # the stored 16 bits, not a rounding of both readings


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("layout", ["-t -w 16 -l 16", "-s -r 4"])
def test_an_lzw_gray_alpha_tiff_with_the_predictor_reads_as_its_png_twin(tmp_path, bits, layout):
    """libtiff's tiffcp writes LZW with the horizontal predictor (each sample differenced from the pixel before:
    read as one wide gray picture, it must be summed per sample, from each strip's or tile's left edge), big-endian,
    stored turned (Orientation 7: mirrored and turned a quarter)."""
    layer = gray_alpha_layer(bits)
    source = write_gray_alpha(tmp_path / "source.tif", layer, 7)
    tiff = tmp_path / "lzw.tif"
    subprocess.run([need_binary("tiffcp", "libtiff-tools"), "-B", "-c", "lzw:2", *layout.split(), str(source), str(tiff)],
                   check=True, capture_output=True)  # fmt: skip
    assert_reads_alike(tiff, png_twin(tmp_path / "layer.png", layer))


KINDS = {"RGBA": (4, "rgb"), "gray + alpha": (2, "minisblack")}


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("orientation", [1, 6])
def test_a_big_endian_bigtiff_keeps_its_alpha_as_the_little_endian_one(tmp_path, kind, bits, orientation):
    """Pillow misreads an "MM" BigTIFF's header, and its alpha, read through Pillow, was dropped: the cut-out's
    transparent parts came out opaque. It reads as the "II" BigTIFF of the same pixels, alpha and all."""
    channels, photometric = KINDS[kind]
    top = 255 if bits == 8 else 65535
    upright = np.random.default_rng(channels).integers(0, top, (12, 20, channels), endpoint=True)
    upright = upright.astype(np.uint8 if bits == 8 else np.uint16)
    files = {}
    for order in "<>":
        files[order] = tmp_path / f"{'II' if order == '<' else 'MM'}.tif"
        tifffile.imwrite(files[order], np.ascontiguousarray(STORED[orientation](upright)), photometric=photometric,
                         extrasamples=["unassalpha"], byteorder=order, bigtiff=True,
                         extratags=[(274, 3, 1, orientation, False)])  # fmt: skip
    for deep in (False, True):
        alpha = read_alpha(files[">"], deep=deep)
        assert alpha is not None, "its alpha was dropped"
        np.testing.assert_array_equal(alpha, read_alpha(files["<"], deep=deep))
    np.testing.assert_array_equal(read_alpha(files[">"], deep=bits == 16), upright[..., -1])
    for mm, ii in zip(read_rgb_deep(files[">"]), read_rgb_deep(files["<"])):
        assert (mm is None) == (ii is None)
        if mm is not None:
            np.testing.assert_array_equal(mm, ii)


def test_a_cut_out_of_a_big_endian_bigtiff_keeps_its_transparency_without_a_warning(tmp_path, red_key):
    """The whole of `birefvid image` on a half-transparent "MM" BigTIFF layer: the cut-out keeps the layer's own
    alpha (it came out opaque), and Pillow's two-line "Corrupt EXIF data" warning, printed under -q about a file
    that reads right, is gone."""
    picture = scene_frame(0, (64, 48))
    layer = np.dstack([picture, np.full(picture.shape[:2], 128, np.uint8)])
    src = tmp_path / "layer.tif"
    tifffile.imwrite(src, layer, photometric="rgb", extrasamples=["unassalpha"], byteorder=">", bigtiff=True)
    with warnings.catch_warnings(record=True) as seen:  # the filters as a user's run has them, warnings recorded
        assert main(["image", str(src), "-o", str(tmp_path / "cut.png"), "-q"]) == 0
    assert [str(w.message) for w in seen if "PIL" in w.filename] == []
    cut = cv2.imread(str(tmp_path / "cut.png"), cv2.IMREAD_UNCHANGED)
    subject, _ = interior(true_mask(0, (64, 48)))
    assert (np.abs(cut[..., 3][subject].astype(int) - 128) <= 1).all()
