"""TIFFs as scanners, cameras and image editors store them: turned by their Orientation tag, big-endian ("MM"),
BigTIFF, compressed or tiled, with straight (unassociated) alpha, Photoshop's transparency. Each is read as the
picture a viewer shows: upright, its colours as stored, its own alpha upright with them.

Files are written with tifffile (scikit-image's, which the dev extras bring), which stores exactly what it is given,
Orientation included, so the expected picture is the stored one turned as the TIFF specification says."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from process_fixtures import interior, scene_frame, true_mask

from birefvid.cli import main
from birefvid.io.image_source import read_alpha, read_rgb_deep

tifffile = pytest.importorskip("tifffile")

SIZE = (64, 48)

# the stored pixels -> the upright picture, by Orientation (the TIFF's and EXIF's 1-8): flips, then quarter turns
UPRIGHT = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: np.rot90(a, 2), 4: lambda a: a[::-1],
           5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
           8: lambda a: np.rot90(a, 1)}  # fmt: skip
# the upright picture -> what a file of that Orientation stores
STORED = {**{o: UPRIGHT[o] for o in (1, 2, 3, 4, 5, 7)}, 6: UPRIGHT[8], 8: UPRIGHT[6]}


def soft_layer() -> np.ndarray:
    """An 8-bit layer with transparency (H, W, 4, straight alpha): random colours, alpha 0 to 255 across its lower
    half and 128 over its upper (a soft edge), so a premultiplied reading (colour x alpha) or a turned alpha shows."""
    rng = np.random.default_rng(7)
    h, w = 12, 20
    colours = rng.integers(64, 255, (h, w, 3), endpoint=True).astype(np.uint8)
    alpha = np.broadcast_to(np.linspace(0, 255, w), (h, w)).astype(np.uint8)
    alpha[: h // 2] = 128
    return np.dstack([colours, alpha])


def write_tiff(path: Path, stored: np.ndarray, orientation: int = 1, **layout) -> Path:
    """``stored`` (RGBA, straight alpha) as a TIFF with that Orientation tag, ``layout`` tifffile's (byteorder,
    bigtiff, compression, tile)."""
    tifffile.imwrite(path, stored, photometric="rgb", extrasamples=["unassalpha"],
                     extratags=[(274, 3, 1, orientation, False)], **layout)  # fmt: skip
    return path


LAYOUTS = {"big-endian": {"byteorder": ">"}, "BigTIFF": {"bigtiff": True}, "deflate": {"compression": "zlib"},
           "tiled": {"tile": (16, 16)}}  # fmt: skip


def check_layer_read(path: Path, layer: np.ndarray) -> None:
    """``path`` reads as ``layer``: upright, its colours as stored, its alpha upright with them."""
    rgb, deep = read_rgb_deep(path)
    assert deep is None and rgb.shape == layer.shape[:2] + (3,)
    np.testing.assert_array_equal(rgb, layer[..., :3])
    np.testing.assert_array_equal(read_alpha(path), layer[..., 3])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_an_8_bit_straight_alpha_tiff_reads_upright_with_its_colours_and_alpha(tmp_path, orientation):
    """libtiff's RGBA reading, which OpenCV uses for 8-bit TIFFs, premultiplied straight alpha's colours (200 at
    alpha 128 read as 100: a cut-out's soft parts came out dark), and Pillow's reading, used to avoid that, does not
    turn a TIFF; Pillow's alpha of an uncompressed one turned a quarter (5-8) lay as stored, not upright."""
    layer = soft_layer()
    check_layer_read(write_tiff(tmp_path / "layer.tif", STORED[orientation](layer), orientation), layer)


# tiled TIFFs in every orientation, compression and channel count: test_tiled_tiff.py
@pytest.mark.parametrize("orientation", [1, 8])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_straight_alpha_reads_in_each_tiff_layout(tmp_path, layout, orientation):
    """Big-endian (Photoshop on PowerPC Macs, some scanners), BigTIFF (over 4 GB, or GIS tools), deflate, tiled: the
    straight-alpha TIFF reads the same; a BigTIFF's colours were premultiplied."""
    layer = soft_layer()
    check_layer_read(write_tiff(tmp_path / "layer.tif", STORED[orientation](layer), orientation, **LAYOUTS[layout]), layer)


def test_a_cut_out_of_a_straight_alpha_tiff_stored_turned_keeps_its_soft_colours(tmp_path, red_key):
    """The whole of `birefvid image`: a half-transparent layer saved turned (orientation 6, a portrait from a
    camera or scanner) comes out upright, its colours as stored, not at half brightness."""
    picture = scene_frame(0, SIZE)
    layer = np.dstack([picture, np.full(picture.shape[:2], 128, np.uint8)])
    src = write_tiff(tmp_path / "layer.tif", STORED[6](layer), 6)
    assert main(["image", str(src), "-o", str(tmp_path / "cut.png"), "-q"]) == 0
    cut = cv2.cvtColor(cv2.imread(str(tmp_path / "cut.png"), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA).astype(int)
    subject, _ = interior(true_mask(0, SIZE))
    assert cut.shape[:2] == picture.shape[:2]
    assert (np.abs(cut[..., :3][subject] - picture[subject]) <= 1).all()
    assert (np.abs(cut[..., 3][subject] - 128) <= 1).all()


@pytest.mark.parametrize(("kind", "planar"), [("float", "contig"), ("16-bit", "separate"), ("float", "separate")])
def test_a_bigtiff_reads_as_its_classic_twin(tmp_path, kind, planar):
    """A BigTIFF (what libtiff, GDAL and scanners' software write past 4 GB, and some always) of 16-bit or float RGBA,
    interleaved or planar (Photoshop's "Per Channel"), reads as the same picture and alpha as a classic TIFF: a float
    one was "not a readable image", a planar one noise, as OpenCV decodes those itself."""
    rng = np.random.default_rng(3)
    layer = rng.random((12, 20, 4)).astype(np.float32)
    if kind == "16-bit":
        layer = np.rint(layer * 65535).astype(np.uint16)
    stored = layer if planar == "contig" else np.ascontiguousarray(layer.transpose(2, 0, 1))
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, stored, photometric="rgb", planarconfig=planar, extrasamples=["unassalpha"], bigtiff=True)
    expected = layer if kind == "16-bit" else np.rint(layer * 65535).astype(np.uint16)
    _, deep = read_rgb_deep(path)
    assert deep is not None
    np.testing.assert_array_equal(deep, expected[..., :3])
    np.testing.assert_array_equal(read_alpha(path, deep=True), expected[..., 3])


def test_a_cut_off_bigtiff_is_one_line_saying_its_data_is_damaged(tmp_path, capsys, red_key):
    """A BigTIFF cut off by an interrupted copy: one error line naming it damaged, as a classic TIFF's says (it
    said only 'not a readable image'), exit 2, and no output written."""
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, soft_layer(), photometric="rgb", extrasamples=["unassalpha"], bigtiff=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 3 // 4])
    out = tmp_path / "cut.png"
    assert main(["image", str(path), "-o", str(out), "-q"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("birefvid: error:") and str(path) in lines[0], lines
    assert "its TIFF data is damaged" in lines[0]
    assert not out.exists() and list(tmp_path.iterdir()) == [path]
