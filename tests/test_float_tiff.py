"""32-bit float TIFFs (Photoshop's "32 Bits/Channel", Nuke's and Resolve's float TIFF, a plate rendered float): read
as the picture they hold, values 0-1 being black to white as in a 16-bit TIFF, and kept at 16 bits where the output
holds them. They were read as black (0.5 cast to 0), and a float RGBA TIFF was "not a readable image".

The pictures are the red-key scene (``process_fixtures``) with the subject's green at 0.5: the test model keys on red
against blue, so the matte is right only where the model saw the colours, and the green shows the level kept."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from process_fixtures import interior, scene_frame, true_mask

from birefvid.cli import main

SIZE = (64, 48)
GREY = 0.5


def float_scene(index: int = 0, size: tuple[int, int] = SIZE) -> np.ndarray:
    """The scene as float32 RGB in 0-1, the subject's green at ``GREY`` (32767.5 in 16 bits: not an 8-bit level x 257)."""
    picture = scene_frame(index, size).astype(np.float32) / 255
    picture[..., 1][true_mask(index, size) > 0] = GREY
    return picture


def write_float_tiff(path: Path, picture: np.ndarray, alpha: np.ndarray | None = None) -> Path:
    """``picture`` (and straight ``alpha``) as an RGB(A) float TIFF of its dtype, as Photoshop or Nuke writes one."""
    if picture.dtype == np.float16:  # OpenCV writes no half floats
        path.write_bytes(half_float_tiff(picture))
        return path
    bgr = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR) if picture.dtype == np.float32 else picture[..., ::-1]
    assert cv2.imwrite(str(path), bgr if alpha is None else np.dstack([bgr, alpha.astype(picture.dtype)]))
    return path


def half_float_tiff(picture: np.ndarray) -> bytes:
    """An uncompressed RGB TIFF of 16-bit floats (SampleFormat 3), Adobe's TIFF Technical Note 3."""
    import struct

    h, w, _ = picture.shape
    pixels = picture.astype("<f2").tobytes()
    entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 3, 8), (259, 3, 1, 1), (262, 3, 1, 2), (273, 4, 1, 20),
               (277, 3, 1, 3), (278, 4, 1, h), (279, 4, 1, len(pixels)), (284, 3, 1, 1), (339, 3, 3, 14)]  # fmt: skip
    head = b"II*\x00" + struct.pack("<I", 20 + len(pixels)) + struct.pack("<3H", 16, 16, 16) + struct.pack("<3H", 3, 3, 3)
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:  # a SHORT value left-justified in its 4 bytes, as TIFF stores it
        ifd += struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0) if kind == 3 and count == 1 else struct.pack("<I", value))
    return head + pixels + ifd + b"\x00\x00\x00\x00"


def regions(index: int = 0, size: tuple[int, int] = SIZE) -> tuple[np.ndarray, np.ndarray]:
    return interior(true_mask(index, size))


def rgba(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA).astype(int)


def one_line_error(capsys, code: int, *parts: str) -> None:
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("birefvid: error:"), lines
    for part in parts:
        assert part in lines[0], lines[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_float_tiff_is_its_picture_at_16_bits_and_at_8(tmp_path, red_key, dtype):
    src = write_float_tiff(tmp_path / "shot.tif", float_scene().astype(dtype))
    subject, background = regions()
    assert main(["image", str(src), "-o", str(tmp_path / "cut.png"), "-q"]) == 0
    deep = rgba(tmp_path / "cut.png")
    assert cv2.imread(str(tmp_path / "cut.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16  # its precision kept
    assert (deep[..., 3][subject] == 65535).all() and (deep[..., 3][background] == 0).all()  # the model saw red on blue
    assert (deep[..., 0][subject] == 65535).all() and (np.abs(deep[..., 1][subject] - 32768) <= 1).all()
    assert main(["image", str(src), "-o", str(tmp_path / "cut8.png"), "--bit-depth", "8", "-q"]) == 0
    shallow = rgba(tmp_path / "cut8.png")
    assert (shallow[..., 3][subject] == 255).all() and (np.abs(shallow[..., 1][subject] - 128) <= 1).all()


def test_a_float_tiffs_own_alpha_is_its_transparency_at_16_bits(tmp_path, red_key):
    """A cut-out saved as float RGBA: its alpha (a fine ramp) is the output's over the subject, as a 16-bit RGBA's is."""
    h, w = SIZE[1], SIZE[0]
    own = (0.3 + 0.6 * np.arange(w)[None, :] / w + 0.001 * np.arange(h)[:, None]).astype(np.float32) * np.ones((h, 1), np.float32)
    src = write_float_tiff(tmp_path / "layer.tif", float_scene(), own)
    subject, background = regions()
    assert main(["image", str(src), "-o", str(tmp_path / "cut.png"), "-q"]) == 0
    alpha = rgba(tmp_path / "cut.png")[..., 3]
    assert np.abs(alpha[subject] - np.round(own[subject] * 65535)).max() <= 1
    assert (alpha[background] == 0).all()
    assert main(["image", str(src), "-o", str(tmp_path / "mask.png"), "--output", "mask", "--bit-depth", "8", "-q"]) == 0
    mask = cv2.imread(str(tmp_path / "mask.png"), cv2.IMREAD_UNCHANGED).astype(int)
    assert np.abs(mask[subject] - np.round(own[subject] * 255)).max() <= 1


def test_a_float_rgba_tiff_over_64_kb_keeps_its_alpha(tmp_path, red_key):
    """libtiff and Photoshop write a TIFF's header after its pixels: a full-size float layer's is megabytes in."""
    size = (160, 120)  # 300 kB of float RGBA
    own = np.full(size[::-1], 0.75, np.float32)
    src = write_float_tiff(tmp_path / "layer.tif", float_scene(0, size), own)
    assert src.stat().st_size > 65536
    assert main(["image", str(src), "-o", str(tmp_path / "cut.png"), "-q"]) == 0
    subject, background = regions(0, size)
    cut = rgba(tmp_path / "cut.png")
    assert (np.abs(cut[..., 3][subject] - 49151) <= 1).all() and (cut[..., 3][background] == 0).all()  # 0.75, 16 bits


def test_values_over_1_are_clipped_with_one_warning_for_the_folder(tmp_path, red_key, caplog):
    """Scene-linear light (a render's highlights at 4.0) cannot be a display picture as it is: white, and said once."""
    (tmp_path / "in").mkdir()
    for i in range(3):
        write_float_tiff(tmp_path / "in" / f"hdr{i}.tif", float_scene() * 4.0)
    with caplog.at_level(logging.WARNING):
        assert main(["image", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-q"]) == 0
    said = [r.getMessage() for r in caplog.records if "over 1" in r.getMessage()]
    assert len(said) == 1, said
    assert "hdr0.tif" in said[0] and "clipped" in said[0] and "view transform" in said[0]
    cut = rgba(tmp_path / "out" / "hdr2.png")
    subject, _ = regions()
    assert (cut[..., 0][subject] == 65535).all() and (cut[..., 1][subject] == 65535).all()  # 2.0: white, not wrapped


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_is_one_line_naming_the_file(tmp_path, red_key, capsys, bad):
    picture = float_scene()
    picture[5, 7, 1] = bad
    src = write_float_tiff(tmp_path / "broken.tif", picture)
    one_line_error(capsys, main(["image", str(src), "-o", str(tmp_path / "cut.png"), "-q"]), str(src), "NaN or infinite")
    assert not (tmp_path / "cut.png").exists()


def test_a_float_tiff_plate_keeps_its_numbers_and_depth_in_process(tmp_path, red_key):
    plate = tmp_path / "plate"
    plate.mkdir()
    for i in range(3):
        write_float_tiff(plate / f"plate.{1001 + i}.tif", float_scene(i))
    assert main(["process", str(plate), "-o", str(tmp_path / "mattes/"), "--output", "alpha", "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "mattes").iterdir()) == [f"frame_{1001 + i:06d}.png" for i in range(3)]  # the plate's numbers
    for i in range(3):
        frame = cv2.imread(str(tmp_path / "mattes" / f"frame_{1001 + i:06d}.png"), cv2.IMREAD_UNCHANGED)
        assert frame.dtype == np.uint16
        subject, background = regions(i)
        cut = rgba(tmp_path / "mattes" / f"frame_{1001 + i:06d}.png")
        assert (cut[..., 3][subject] == 65535).all() and (cut[..., 3][background] == 0).all()
        assert (np.abs(cut[..., 1][subject] - 32768) <= 1).all()
    assert main(["process", str(plate), "-o", str(tmp_path / "cut.mov"), "--output", "alpha", "-q"]) == 0
    with av.open(str(tmp_path / "cut.mov")) as movie:
        stream = movie.streams.video[0]
        assert stream.codec_context.name == "prores" and stream.codec_context.pix_fmt.startswith("yuva444p1")  # 4444, 10 bits or more
        pictures = [f.to_ndarray(format="rgba64le") for f in movie.decode(stream)]
    assert len(pictures) == 3
    subject, _ = regions(0)
    assert np.abs(pictures[0][..., 1][subject].astype(int) - 32768).mean() < 4 * 64  # 10-bit YUV: a few levels


def test_a_float_rgba_tiff_plate_keeps_its_alpha_in_process(tmp_path, red_key):
    plate = tmp_path / "plate"
    plate.mkdir()
    own = np.ones(SIZE[::-1], np.float32)
    own[:, :24] = 0  # the left part cut away, as a roto'd plate is
    for i in range(2):
        write_float_tiff(plate / f"plate.{1001 + i}.tif", float_scene(i), own)
    assert main(["process", str(plate), "-o", str(tmp_path / "mattes/"), "--output", "mask", "-q"]) == 0
    for i in range(2):
        mask = cv2.imread(str(tmp_path / "mattes" / f"frame_{1001 + i:06d}.png"), cv2.IMREAD_UNCHANGED)
        full = np.iinfo(mask.dtype).max
        subject, _ = regions(i)
        hidden, shown = subject & (own == 0), subject & (own == 1)
        assert hidden.any() and shown.any()
        assert (mask[hidden] == 0).all() and (mask[shown] == full).all()  # the plate's own cut kept


def test_a_half_float_tiff_is_one_line_saying_what_to_save_it_as(tmp_path, red_key, capsys):
    """Photoshop saves 32-bit documents as 16- or 24-bit float TIFF too; OpenCV decodes neither, and the line
    said "its TIFF data is damaged", which sent users hunting for a broken file."""
    src = write_float_tiff(tmp_path / "half.tif", float_scene().astype(np.float16))
    code = main(["image", str(src), "-o", str(tmp_path / "cut.png"), "-q"])
    one_line_error(capsys, code, str(src), "16-bit float TIFF", "32-bit float or 16-bit")


@pytest.mark.parametrize("alpha", ["unassalpha", "assocalpha"])
def test_an_8_bit_rgba_tiffs_cut_out_shows_its_straight_colours(tmp_path, red_key, alpha):
    """Photoshop's transparency in an 8-bit TIFF is straight (unassociated) alpha: libtiff's RGBA reading, which OpenCV
    uses, premultiplied its colours (200 at alpha 128 read as 100), so a cut-out's half-transparent parts came out at
    half brightness. A premultiplied (associated) file holds them multiplied by its alpha (255 at 128 stored as 128)
    and is divided back (test_premultiplied_tiff.py): either way the cut-out shows the picture's colours."""
    tifffile = pytest.importorskip("tifffile")  # scikit-image's, which pysodmetrics brings
    picture = scene_frame(0, SIZE)
    own = np.full(SIZE[::-1], 128, np.uint8)
    stored = picture if alpha == "unassalpha" else np.rint(picture * (128 / 255)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "layer.tif", np.dstack([stored, own]), photometric="rgb", extrasamples=[alpha])
    assert main(["image", str(tmp_path / "layer.tif"), "-o", str(tmp_path / "cut.png"), "-q"]) == 0
    cut = rgba(tmp_path / "cut.png")
    subject, _ = regions()
    assert (np.abs(cut[..., :3][subject] - picture[subject]) <= 1).all()
    assert (np.abs(cut[..., 3][subject] - 128) <= 1).all()
