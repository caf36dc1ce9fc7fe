"""8-bit tiled TIFFs (``tiffcp -t``, ImageMagick's ``-define tiff:tile-geometry``, GIS tools, large-format scanners'
software) read as the same picture saved in strips, whatever their Orientation, channels and compression.

OpenCV 4.14 put the tiles of one stored with Orientation 2, 3, 6 or 7 where they are stored, each mirrored within
itself, and refused an uncompressed one of 16 x 16 gray or RGB tiles as damaged (libtiff's check of a raw tile read
from memory). Files are written by tifffile (no compression, deflate) and by libtiff's own ``tiffcp`` (LZW, JPEG), so
each tiled file has a striped twin of the same pixels to compare with; tile sizes leave partial tiles at the edges."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from process_fixtures import interior, scene_frame, true_mask
from system_tools import need_binary

from birefvid.cli import main
from birefvid.io.image_source import read_alpha, read_rgb_deep

tifffile = pytest.importorskip("tifffile")

# the stored pixels -> the upright picture, by Orientation (the TIFF's and EXIF's 1-8), as the TIFF specification says
UPRIGHT = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: np.rot90(a, 2), 4: lambda a: a[::-1],
           5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
           8: lambda a: np.rot90(a, 1)}  # fmt: skip
CHANNELS = {"gray": 1, "RGB": 3, "RGBA": 4}


def stored_pixels(kind: str, seed: int = 5) -> np.ndarray:
    """Random 8-bit pixels, 40 x 56 (not whole 16 x 16 tiles: the right and bottom tiles are partial), so a tile in
    the wrong place, mirrored or dropped shows; RGBA with straight alpha, 0 to 255."""
    pixels = np.random.default_rng(seed).integers(0, 255, (40, 56, CHANNELS[kind]), endpoint=True).astype(np.uint8)
    return pixels[..., 0] if kind == "gray" else pixels


def write(path: Path, pixels: np.ndarray, orientation: int, **layout) -> Path:
    """``pixels`` as a TIFF with that Orientation tag, in tifffile's ``layout`` (tile, compression, planarconfig)."""
    extra = {"extrasamples": ["unassalpha"]} if pixels.ndim == 3 and pixels.shape[2] == 4 else {}
    photometric = "minisblack" if pixels.ndim == 2 else "rgb"
    tifffile.imwrite(path, pixels, photometric=photometric, extratags=[(274, 3, 1, orientation, False)], **extra, **layout)
    return path


def read(path: Path) -> tuple[np.ndarray, object]:
    """What ``birefvid image`` reads of ``path``: its 8-bit RGB picture and its own alpha (None when opaque)."""
    rgb, deep = read_rgb_deep(path)
    assert deep is None
    return rgb, read_alpha(path)


def expected(pixels: np.ndarray, orientation: int) -> tuple[np.ndarray, object]:
    """The picture a viewer shows of ``pixels`` stored in that Orientation: upright RGB, and the alpha upright too."""
    upright = np.ascontiguousarray(UPRIGHT[orientation](pixels))
    if upright.ndim == 2:
        return np.dstack([upright] * 3), None
    return upright[..., :3], (upright[..., 3] if upright.shape[2] == 4 else None)


def assert_reads_as(path: Path, pixels: np.ndarray, orientation: int) -> None:
    rgb, alpha = read(path)
    want_rgb, want_alpha = expected(pixels, orientation)
    np.testing.assert_array_equal(rgb, want_rgb)
    if want_alpha is None:
        assert alpha is None
    else:
        np.testing.assert_array_equal(alpha, want_alpha)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("kind", ["gray", "RGB"])
def test_an_uncompressed_tiled_tiff_reads_upright_in_every_orientation(tmp_path, kind, orientation):
    """16 x 16 tiles, no compression: gray and RGB were refused as damaged, even upright; each now reads as the
    same pixels, upright."""
    pixels = stored_pixels(kind)
    assert_reads_as(write(tmp_path / "tiled.tif", pixels, orientation, tile=(16, 16)), pixels, orientation)


@pytest.mark.parametrize("orientation", [2, 3, 6, 7])
@pytest.mark.parametrize(("kind", "compression"), [("gray", "zlib"), ("RGB", "zlib"), ("RGBA", "zlib"), ("RGBA", None)])
def test_a_tiled_tiff_stored_mirrored_reads_upright(tmp_path, kind, compression, orientation):
    """Tiles of 32 x 16 (not square: a tile's width and length are not mixed up), deflate (ZIP) or, for RGBA, none,
    in the orientations that put the tiles in the wrong places: upright, alpha included."""
    pixels = stored_pixels(kind)
    path = write(tmp_path / "tiled.tif", pixels, orientation, tile=(16, 32), compression=compression)
    assert_reads_as(path, pixels, orientation)


@pytest.mark.parametrize("orientation", [1, 6, 7])
def test_a_planar_tiled_tiff_reads_as_its_interleaved_twin(tmp_path, orientation):
    """Planar (Photoshop's "Per Channel") and tiled: each channel is decoded as a tiled gray picture, which had the
    same faults (refused uncompressed, tiles misplaced turned 6 or 7)."""
    pixels = stored_pixels("RGBA")
    for compression in (None, "zlib"):
        path = write(tmp_path / f"planar-{compression}.tif", np.ascontiguousarray(pixels.transpose(2, 0, 1)), orientation,
                     tile=(16, 16), planarconfig="separate", compression=compression)  # fmt: skip
        assert_reads_as(path, pixels, orientation)


def tiffcp(source: Path, target: Path, *options: str) -> Path:
    """libtiff's tiffcp (Debian's libtiff-tools) copying ``source`` with ``options`` (``-t`` tiles, ``-c`` compression)."""
    subprocess.run([need_binary("tiffcp", "libtiff-tools"), *options, str(source), str(target)], check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    return target


@pytest.mark.parametrize("orientation", [3, 6])
@pytest.mark.parametrize("kind", ["gray", "RGB", "RGBA"])
def test_an_lzw_tiled_tiff_from_tiffcp_reads_as_its_striped_twin(tmp_path, kind, orientation):
    """``tiffcp -t -c lzw`` (16 x 16 tiles, libtiff's own writer) against ``tiffcp -s -c lzw`` of the same picture:
    pixel for pixel, alpha included."""
    source = write(tmp_path / "source.tif", stored_pixels(kind), orientation)
    tiled = tiffcp(source, tmp_path / "tiled.tif", "-t", "-w", "16", "-l", "16", "-c", "lzw")
    striped = tiffcp(source, tmp_path / "striped.tif", "-s", "-r", "16", "-c", "lzw")
    (rgb, alpha), (twin_rgb, twin_alpha) = read(tiled), read(striped)
    np.testing.assert_array_equal(rgb, twin_rgb)
    np.testing.assert_array_equal(alpha, twin_alpha)  # both None for gray and RGB
    np.testing.assert_array_equal(rgb, expected(stored_pixels(kind), orientation)[0])


@pytest.mark.parametrize("orientation", [2, 6, 7])
def test_a_jpeg_tiled_tiff_reads_as_libtiff_decodes_it(tmp_path, orientation):
    """JPEG-in-TIFF tiles (YCbCr, 2 x 2 chroma, as ``tiffcp -c jpeg`` and GIS tools write them) are lossy, so they are
    checked against Pillow's own libtiff decoding of the same file, turned by its Orientation: exactly that picture."""
    source = write(tmp_path / "source.tif", stored_pixels("RGB"), orientation)
    tiled = tiffcp(source, tmp_path / "tiled.tif", "-t", "-w", "16", "-l", "16", "-c", "jpeg")
    with Image.open(tiled) as im:
        assert im.info.get("compression") == "jpeg"
        truth = np.array(ImageOps.exif_transpose(im).convert("RGB"))
    rgb, alpha = read(tiled)
    assert alpha is None
    np.testing.assert_array_equal(rgb, truth)


def test_a_cut_out_of_a_tiled_tiff_stored_turned_is_upright(tmp_path, red_key):
    """The whole of `birefvid image`: a tiled RGB TIFF stored turned (Orientation 6, as a scanner or camera leaves a
    portrait), uncompressed in 16 x 16 tiles, is cut out upright (it was 'not a readable image')."""
    picture = scene_frame(0, (64, 48))
    src = write(tmp_path / "scan.tif", np.ascontiguousarray(np.rot90(picture, 1)), 6, tile=(16, 16))
    out = tmp_path / "cut.png"
    assert main(["image", str(src), "-o", str(out), "-q"]) == 0
    cut = cv2.cvtColor(cv2.imread(str(out), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
    subject, background = interior(true_mask(0, (64, 48)))
    assert cut.shape[:2] == picture.shape[:2]
    assert (np.abs(cut[..., :3][subject].astype(int) - picture[subject]) <= 1).all()
    assert (cut[..., 3][subject] == 255).all() and (cut[..., 3][background] == 0).all()


def test_a_tile_row_taller_than_opencv_takes_is_decoded_in_parts(tmp_path, monkeypatch):
    """A tile row is decoded as one strip picture a tile wide, unless stacking its tiles would pass the rows OpenCV
    takes (a 100000-pixel-wide GIS mosaic in 16 x 256 tiles): then a few tiles at a time, each in its place. The
    limit is lowered here so that a small picture, 4 tiles across, is decoded 2 tiles at a time."""
    monkeypatch.setattr("birefvid.io.tiff_tiles._MAX_ROWS", 32)
    pixels = stored_pixels("RGBA")
    assert_reads_as(write(tmp_path / "tiled.tif", pixels, 6, tile=(16, 16), compression="zlib"), pixels, 6)
