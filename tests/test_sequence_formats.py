"""TIFF and OpenEXR image-sequence outputs, as compositors (Nuke, Fusion, After Effects) ask for them: `-o
out/rgba.%04d.tif` writes RGBA TIFFs with straight alpha (8 or 16 bits, as PNGs), `-o out/m.%04d.exr --output mask`
(or `--also mask=...exr`) the matte as one half-float channel; colour into EXR is one error line. Each file is read
back by readers other than the OpenCV that wrote it: FFmpeg for the pixels, tifffile for the TIFF tags, and the EXR
header parsed from its bytes."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from birefvid.api import process_video
from birefvid.cli import main
from birefvid.io.image_sink import ImageSequenceSink
from birefvid.sequence_names import sequence_pattern
from process_fixtures import interior, red_key_segmenter, scene_frame, true_mask, write_scene_images

SIZE = (64, 48)
NUMBERS = (1001, 1002, 1003)


@pytest.fixture(scope="module")
def seg():
    return red_key_segmenter()


@pytest.fixture
def plate(tmp_path) -> Path:
    """Three frames `plate.1001.png` ... `plate.1003.png`, a compositor's plate."""
    for number, path in zip(NUMBERS, write_scene_images(tmp_path / "plate", len(NUMBERS), SIZE)):
        path.rename(path.parent / f"plate.{number}.png")
    return tmp_path / "plate"


@pytest.fixture
def run(pvt_b0_weights):
    def _run(*args: object) -> int:
        return main(["process", *map(str, args), "--weights", str(pvt_b0_weights), "--resolution", "64", "--device", "cpu", "-q"])

    return _run


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def decoded(path: Path, pix_fmt: str, channels: int, dtype: str) -> np.ndarray:
    """``path``'s one picture as FFmpeg decodes it, (H, W, channels) of ``dtype``."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"],
                         capture_output=True, check=True, timeout=60).stdout  # fmt: skip
    return np.frombuffer(raw, dtype).reshape(SIZE[1], SIZE[0], channels)


def tiff_tags(path: Path) -> tuple[int, int, tuple[int, ...], int]:
    """(bits a sample, samples a pixel, ExtraSamples, compression) of a TIFF, as tifffile reads its tags."""
    tifffile = pytest.importorskip("tifffile")  # scikit-image's, which pysodmetrics brings
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        return page.bitspersample, page.samplesperpixel, tuple(int(e) for e in page.extrasamples), int(page.compression)


def exr_header(path: Path) -> dict[str, bytes]:
    """An OpenEXR file's header attributes (name -> value bytes), read as the spec lays them out."""
    data = path.read_bytes()
    assert data[:4] == b"\x76\x2f\x31\x01", "not an OpenEXR file"
    at, attributes = 8, {}
    while data[at] != 0:
        name_end = data.index(b"\0", at)
        type_end = data.index(b"\0", name_end + 1)
        (size,) = struct.unpack("<i", data[type_end + 1 : type_end + 5])
        attributes[data[at:name_end].decode()] = data[type_end + 5 : type_end + 5 + size]
        at = type_end + 5 + size
    return attributes


@pytest.mark.parametrize("bit_depth,bits", [(8, 8), (16, 16)])
def test_a_tiff_sequence_is_straight_rgba_in_the_plates_numbers(tmp_path, plate, seg, bit_depth, bits):
    """Straight alpha: a soft edge's pixel keeps the source's colour at full strength (premultiplied, alpha 0.5 would
    halve it); ExtraSamples says so (2, unassociated), which Nuke and Photoshop read as straight; 16 bits with
    `--bit-depth 16`, as a PNG sequence is."""
    out = tmp_path / "out"
    process_video(plate, out / "rgba.%04d.tif", kind="alpha", segmenter=seg, smooth="none", feather=3, foreground=False,
                  bit_depth=bit_depth)  # fmt: skip
    assert names(out) == [f"rgba.{n}.tif" for n in NUMBERS]
    for i, number in enumerate(NUMBERS):
        path = out / f"rgba.{number}.tif"
        assert tiff_tags(path) == (bits, 4, (2,), 5)  # LZW
        picture = decoded(path, "rgba64le", 4, "<u2").astype(np.int64) if bits == 16 else decoded(path, "rgba", 4, "u1").astype(np.int64)
        top = 65535 if bits == 16 else 255
        source = scene_frame(i, SIZE).astype(np.int64) * (top // 255)
        alpha = picture[..., 3]
        half = (alpha > 0.35 * top) & (alpha < 0.65 * top)
        assert half.sum() >= 8, "the feathered edge has pixels of alpha near 0.5"
        assert np.abs(picture[..., :3][half] - source[half]).max() <= top // 255, "colour under a soft edge kept whole"
        fg, bg = interior(true_mask(i, SIZE), margin=6)  # past the feather
        assert alpha[fg].min() >= top - top // 64 and alpha[bg].max() <= top // 64


def test_an_exr_matte_is_one_half_float_channel_exactly_0_and_1(tmp_path, plate, seg):
    """`--output mask` into `m.%04d.exr`: one channel, Y (OpenEXR's gray), half floats, ZIP; the matte 0.0 and 1.0
    exactly where it is clear and solid, and in the plate's numbers."""
    out = tmp_path / "m"
    process_video(plate, out / "m.%04d.exr", kind="mask", segmenter=seg, smooth="none")
    assert names(out) == [f"m.{n}.exr" for n in NUMBERS]
    for i, number in enumerate(NUMBERS):
        path = out / f"m.{number}.exr"
        header = exr_header(path)
        channel, _, pixel_type = header["channels"].partition(b"\0")
        assert channel == b"Y" and struct.unpack("<i", pixel_type[:4])[0] == 1  # one channel list entry: Y, HALF
        assert len(header["channels"]) == len(b"Y\0") + 16 + 1, "one channel"
        assert header["compression"] == b"\x03"  # ZIP_COMPRESSION, 16 scanlines a block
        matte = decoded(path, "grayf32le", 1, "<f4")[..., 0]
        fg, bg = interior(true_mask(i, SIZE))
        assert (matte[fg] == 1.0).all() and (matte[bg] == 0.0).all()
        assert matte.min() >= 0.0 and matte.max() <= 1.0


def test_also_an_exr_matte_beside_a_tiff_fill(tmp_path, plate, seg):
    """The two-file workflow for a compositor: the fill as 16-bit TIFFs, the matte as EXR, both in the plate's numbers."""
    process_video(plate, tmp_path / "fgr" / "fgr.####.tif", kind="foreground", segmenter=seg, smooth="none", bit_depth=16,
                  also=[("mask", str(tmp_path / "pha" / "pha.####.exr"))])  # fmt: skip
    assert names(tmp_path / "fgr") == [f"fgr.{n}.tif" for n in NUMBERS]
    assert names(tmp_path / "pha") == [f"pha.{n}.exr" for n in NUMBERS]
    assert tiff_tags(tmp_path / "fgr" / "fgr.1001.tif") == (16, 3, (), 5)
    matte = decoded(tmp_path / "pha" / "pha.1002.exr", "grayf32le", 1, "<f4")[..., 0]
    fg, bg = interior(true_mask(1, SIZE))
    assert (matte[fg] == 1.0).all() and (matte[bg] == 0.0).all()


def test_an_exr_matte_keeps_the_levels_between(tmp_path):
    """The 8- and 16-bit matte scaled to 0-1, each level within half precision of it (half floats: 11 bits of mantissa)."""
    for dtype, top in ((np.uint8, 255), (np.uint16, 65535)):
        levels = np.linspace(0, top, SIZE[0] * SIZE[1]).round().astype(dtype).reshape(SIZE[1], SIZE[0])
        folder = tmp_path / f"m{top}"
        sink = ImageSequenceSink(folder, "mask", *SIZE, pattern=sequence_pattern(folder / "m.%04d.exr"))
        sink.write(levels[None], [0])
        sink.close()
        matte = decoded(folder / "m.0001.exr", "grayf32le", 1, "<f4")[..., 0]
        want = levels / top
        assert np.abs(matte - want).max() <= 2**-11 and matte[0, 0] == 0.0 and matte[-1, -1] == 1.0


def test_an_exr_matte_level_is_the_nearest_half(tmp_path):
    """Each level is the half float nearest to it, as OpenEXR's own library (Imath's half) and so Nuke write it:
    FFmpeg's encoder cut float32 to half, every level in 0.5-1 (a matte's soft edge and near-solid core) one step
    of 2^-11 low, 65483 of the 65536 16-bit levels off their nearest half and 65534 (0.99998) written as 0.99951."""
    levels = np.arange(65536, dtype=np.uint16)[-SIZE[0] * SIZE[1]:].reshape(SIZE[1], SIZE[0])  # the top levels
    folder = tmp_path / "m"
    sink = ImageSequenceSink(folder, "mask", *SIZE, pattern=sequence_pattern(folder / "m.%04d.exr"))
    sink.write(levels[None], [0])
    sink.close()
    matte = decoded(folder / "m.0001.exr", "grayf32le", 1, "<f4")[..., 0]
    nearest = (levels / 65535.0).astype(np.float16).astype(np.float32)  # numpy's half: round to nearest, ties to even
    assert np.array_equal(matte, nearest), f"{(matte != nearest).sum()} levels off their nearest half"
    assert np.abs(matte - levels / 65535.0).max() <= 2**-12  # half a step of half precision in 0.5-1


@pytest.mark.parametrize("kind", ["alpha", "foreground", "composite"])
def test_colour_into_exr_is_one_error_line(tmp_path, plate, run, capsys, kind):
    """EXR is scene-linear, and birefvid's colour is display-referred: refused in one line naming what is written."""
    assert run(plate, "-o", tmp_path / "out" / "c.%04d.exr", "--output", kind, *(["--background", "#808080"] if kind == "composite" else [])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("birefvid: error:"), err
    assert "OpenEXR sequences are written for the matte only (--output mask" in err[0] and ".tif" in err[0], err
    assert not (tmp_path / "out").exists()
    assert run(plate, "-o", tmp_path / "a.mov", "--also", f"alpha={tmp_path / 'x' / 'x.%04d.exr'}") == 2
    assert "matte only" in capsys.readouterr().err and not (tmp_path / "a.mov").exists() and not (tmp_path / "x").exists()
