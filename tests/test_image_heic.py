"""``birefvid image`` on HEIC/HEIF (an iPhone's photos) through the optional pillow-heif (``birefvid[heic]``):
upright, with their colour profile, 10 bits kept, the primary image of several; without the extra, one line
naming it. The HEIC files are encoded by pillow-heif itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from birefvid.cli import main
from birefvid.io import heif

SIZE = (64, 48)  # width, height


@pytest.fixture()
def pillow_heif():
    """pillow-heif, which the dev install includes (skipped with the reason elsewhere, failed under CI=true)."""
    from system_tools import need_module

    need_module("pillow_heif", "'birefvid[heic]'")
    import pillow_heif

    return pillow_heif


@pytest.fixture()
def without_pillow_heif(monkeypatch):
    """An environment without the extra: importing pillow_heif fails, as where it is not installed."""
    heif._module.cache_clear()
    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    yield
    heif._module.cache_clear()


def _scene(size=SIZE) -> np.ndarray:
    from process_fixtures import scene_frame

    return scene_frame(0, size)


def _regions(size=SIZE, margin: int = 4):
    from process_fixtures import interior, true_mask

    return interior(true_mask(0, size), margin)


def _write_heic(path: Path, rgb: np.ndarray, **save) -> None:
    """``rgb`` as a HEIC at quality 100 with full-resolution chroma (a phone's is 4:2:0; sharper edges here)."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    Image.fromarray(rgb).save(path, format="HEIF", quality=100, chroma=444, **save)


def _some_heic(path: Path) -> None:
    """A HEIC file: encoded where pillow-heif is installed, else only its header, which is never decoded without it."""
    try:
        _write_heic(path, _scene())
    except ImportError:
        path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic")


def test_a_lone_heic_without_the_extra_is_one_line_naming_it(tmp_path, capsys, without_pillow_heif, red_key):
    photo = tmp_path / "IMG_0001.HEIC"
    _some_heic(photo)
    code = main(["image", str(photo), "-o", str(tmp_path / "cut.png")])
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"birefvid: error: {photo}: reading HEIC/HEIF needs pillow-heif: pip install 'birefvid[heic]'"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["IMG_0001.HEIC"]


def test_a_folders_heic_without_the_extra_are_counted_in_one_warning(tmp_path, caplog, without_pillow_heif, red_key):
    """They were skipped without a word: the PNG was cut out and the iPhone's photos were not, silently."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    Image.fromarray(_scene()).save(src / "a.png")
    for name in ("IMG_0001.HEIC", "IMG_0002.heif"):
        _some_heic(src / name)
    assert main(["image", str(src), "-o", str(out), "-q"]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "HEIC" in r.getMessage()]
    assert len(warnings) == 1 and "skipped 2 HEIC/HEIF pictures" in warnings[0], warnings
    assert "pip install 'birefvid[heic]'" in warnings[0]
    assert sorted(p.name for p in out.iterdir()) == ["a.png"]


def test_an_iphone_portrait_is_cut_out_upright_with_its_profile(tmp_path, pillow_heif, red_key):
    """Stored sideways with a rotation (EXIF orientation 6, which pillow-heif writes as HEIF's irot) and a
    colour profile, in a folder beside a PNG: both are cut out, the HEIC as viewers show it, profile kept."""
    from PIL import ImageCms

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    Image.fromarray(_scene()).save(src / "a.png")
    upright = _scene((SIZE[1], SIZE[0]))  # 48 wide, 64 high, as shown
    exif = Image.Exif()
    exif[0x0112] = 6  # turn 90 degrees clockwise to display
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()  # an RGB profile, as Display P3 is
    _write_heic(src / "IMG_0001.HEIC", np.ascontiguousarray(np.rot90(upright, 1)), exif=exif.tobytes(), icc_profile=icc)
    assert main(["image", str(src), "-o", str(out), "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["IMG_0001.png", "a.png"]
    with Image.open(out / "IMG_0001.png") as im:
        assert im.info.get("icc_profile") == icc
        rgba = np.array(im)
    assert rgba.shape == (64, 48, 4)
    subject, background = _regions((SIZE[1], SIZE[0]))
    assert rgba[..., 3][subject].min() >= 250 and rgba[..., 3][background].max() <= 5
    assert np.abs(rgba[..., :3][subject].astype(int) - upright[subject]).max() <= 8  # HEVC at quality 100


def test_a_10_bit_heic_keeps_its_depth(tmp_path, pillow_heif, red_key):
    """A 10-bit HEIC gives a 16-bit cut-out, as a 16-bit PNG does, its white still full white."""
    from birefvid.io.image_source import read_rgb_deep

    xx = np.arange(SIZE[0])[None, :, None]
    yy = np.arange(SIZE[1])[:, None, None]
    deep = np.clip(_scene().astype(np.int64) * 257 + xx * 37 + yy * 11 - 1500, 0, 65535).astype(np.uint16)  # steps 8 bits lack
    deep[:8, :8] = 65535
    path = tmp_path / "hdr.heic"
    pillow_heif.from_bytes(mode="RGB;16", size=SIZE, data=deep.tobytes()).save(path, quality=100, chroma=444)
    _, read = read_rgb_deep(path)
    assert read is not None and read.dtype == np.uint16
    assert read[:8, :8].max() == 65535  # 1023 is white, not 65472 (pillow-heif's 10 bits shifted up)
    out = tmp_path / "cut.png"
    assert main(["image", str(path), "-o", str(out), "-q"]) == 0
    rgba = cv2.cvtColor(cv2.imread(str(out), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
    assert rgba.dtype == np.uint16
    subject, _ = _regions()
    colour = rgba[..., :3][subject].astype(int)
    assert np.abs(colour - deep[subject]).max() <= 512  # lossy 10 bits: a few of its steps (64 each)
    assert (colour % 257 != 0).mean() > 0.5  # not 8 bits widened


def test_of_several_images_the_primary_is_cut_out(tmp_path, pillow_heif, red_key, caplog):
    """A HEIC holding several images (a burst, an edit beside its original) is one photo: its primary image."""
    empty = np.zeros_like(_scene())
    empty[:] = _scene()[0, 0]  # background only: nothing to cut out
    container = pillow_heif.from_pillow(Image.fromarray(empty))
    container.add_from_pillow(Image.fromarray(_scene()))
    container.add_from_pillow(Image.fromarray(empty))
    path = tmp_path / "burst.heic"
    container.save(path, quality=100, chroma=444, primary_index=1)
    out = tmp_path / "cut.png"
    assert main(["image", str(path), "-o", str(out), "-q"]) == 0
    alpha = np.array(Image.open(out))[..., 3]
    subject, background = _regions()
    assert alpha[subject].min() >= 250 and alpha[background].max() <= 5
    assert f"{path} holds 3 images; its primary one is cut out" in caplog.text
    assert "birefvid process" not in caplog.text  # not an animation


def test_a_damaged_heic_is_one_line(tmp_path, capsys, pillow_heif, red_key):
    bad = tmp_path / "bad.heic"
    bad.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 40)
    assert main(["image", str(bad), "-o", str(tmp_path / "cut.png")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"birefvid: error: {bad} is not a readable image"), lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.heic"]


def test_importing_birefvid_does_not_load_pillow_heif():
    """libheif is loaded on the first HEIC picture, not by every command's start."""
    code = "import sys, birefvid, birefvid.cli, birefvid.commands.image, birefvid.io.image_source; print('pillow_heif' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("trc", [16, 18], ids=["pq", "hlg"])
def test_an_hdr_heif_is_cut_out_as_an_sdr_screen_shows_it(tmp_path, pillow_heif, red_key, trc, caplog):
    """A 10-bit PQ (a Canon's) or HLG (a Sony's) HEIF still comes out as SDR, with a warning, not as its signal:
    PNG cannot mark HDR, and the HLG signal as it was came out grey and washed out (red 135 of 165, green 67 of 50)."""
    from test_process_hdr import hdr_signal

    sdr = _scene()
    signal = np.round(hdr_signal(sdr.astype(np.float64), trc) * 65535).astype(np.uint16)  # BT.2020, white at 203 cd/m²
    path = tmp_path / "hdr.heif"
    pillow_heif.from_bytes(mode="RGB;16", size=SIZE, data=signal.tobytes()).save(
        path, quality=-1, chroma=444, color_primaries=9, transfer_characteristics=trc, matrix_coefficients=9, full_range_flag=1
    )
    out = tmp_path / "cut.png"
    assert main(["image", str(path), "-o", str(out), "-q"]) == 0
    rgba = cv2.cvtColor(cv2.imread(str(out), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
    assert rgba.dtype == np.uint16  # 10 bits in: still a 16-bit cut-out
    subject, _ = _regions()
    error = np.abs(rgba[..., :3][subject] / 257 - sdr[subject])
    assert error.mean() <= 3 and error.max() <= 10  # the SDR colours, within lossy 10-bit HEVC's error
    assert f"is HDR ({'PQ' if trc == 16 else 'HLG'})" in caplog.text and "converted to SDR" in caplog.text


def test_a_folder_of_heic_is_an_image_sequence_for_process(tmp_path, pillow_heif, red_key):
    """An iPhone burst or time-lapse (IMG_0001.HEIC ...) given to `process` was "no images found", though
    `image` reads the very files: each is a frame now, upright and in name order."""
    import av

    src, out = tmp_path / "burst", tmp_path / "matte.mkv"
    src.mkdir()
    for i in range(3):
        _write_heic(src / f"IMG_{i + 1:04d}.HEIC", _scene())
    assert main(["process", str(src), "-o", str(out), "--output", "mask", "--fps", "10", "-q"]) == 0
    with av.open(str(out)) as container:
        masks = [f.to_ndarray() for f in container.decode(video=0)]
    assert len(masks) == 3 and masks[0].shape == (SIZE[1], SIZE[0])
    subject, background = _regions()
    assert all(m[subject].min() >= 250 and m[background].max() <= 5 for m in masks)
