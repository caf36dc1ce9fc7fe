"""TIFFs with associated (premultiplied) alpha, ExtraSamples 1: what Nuke, Houdini, Blender and After Effects write
for a premultiplied render, ImageMagick with ``-define tiff:alpha=associated``, and libtiff's own ``tiff2rgba``.
Their colours are stored multiplied by alpha (200 at alpha 128 stored as 100); they read as their straight-alpha twin.

birefvid took them as straight: a cut-out's soft edges and half-transparent parts came out dark, were darkened a
second time by the output's straight alpha, and the model saw them dark. Each file here is written by a real writer
from a straight picture, and compared with that picture within the rounding the premultiplied file holds: storing
``round(c * a / max)`` loses up to half a level, which dividing by ``a / max`` again grows to ``max / a / 2``, plus
half a level rounding the result (so within 1 where alpha is at least half)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from process_fixtures import RedKey, interior, red_key_segmenter, scene_frame, true_mask
from system_tools import need_binary

from birefvid.cli import main
from birefvid.io.image_source import read_alpha, read_rgb_deep

tifffile = pytest.importorskip("tifffile")

SIZE = (64, 48)


def soft_layer(bits: int, channels: int = 3, size: tuple[int, int] = (20, 12)) -> tuple[np.ndarray, np.ndarray]:
    """(colour (H, W, channels), alpha (H, W)) of ``bits`` bits, straight: random colours (a 16-bit one with low bits
    an 8-bit reading would lose), alpha 0 to full across the lower half (down to the levels where a premultiplied
    file keeps little) and half over the upper, a soft edge, so an undivided reading shows at once."""
    rng = np.random.default_rng(bits + channels)
    top = 255 if bits == 8 else 65535
    dtype = np.uint8 if bits == 8 else np.uint16
    w, h = size
    colour = rng.integers(top // 4, top, (h, w, channels), endpoint=True).astype(dtype)
    alpha = np.broadcast_to(np.linspace(0, top, w), (h, w)).astype(dtype).copy()
    alpha[: h // 2] = top // 2 + 1
    return colour, alpha


def premultiplied(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``colour`` times ``alpha`` as a premultiplying writer stores it, rounded to the nearest level."""
    top = np.iinfo(colour.dtype).max
    return np.rint(colour.astype(np.float64) * alpha[..., None] / top).astype(colour.dtype)


def assert_straight(read: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> None:
    """``read`` (H, W, C) is ``colour`` within what the premultiplied file kept of it: ``max / alpha / 2 + 1`` levels
    where alpha is over 0 (1 where it is at least half), and black (as stored) where it is 0."""
    top = np.iinfo(colour.dtype).max
    off = np.abs(read.astype(np.int64) - colour.astype(np.int64))
    held = np.broadcast_to(alpha[..., None], off.shape).astype(np.float64)
    bound = np.where(held >= (top + 1) // 2, 1, top / np.maximum(held, 1) / 2 + 1)
    worst = np.unravel_index(np.argmax(np.where(held > 0, off - bound, -1)), off.shape)
    assert (off[held > 0] <= bound[held > 0]).all(), f"{read[worst]} for {colour[worst]} at alpha {alpha[worst[:2]]}"
    assert (read[held == 0] == 0).all()


def straight_tiff(path: Path, colour: np.ndarray, alpha: np.ndarray) -> Path:
    """``colour`` (H, W, 3 RGB or 1 gray) with ``alpha`` as a TIFF marked straight (ExtraSamples 2), Photoshop's."""
    photometric = "rgb" if colour.shape[2] == 3 else "minisblack"
    tifffile.imwrite(path, np.dstack([colour, alpha]), photometric=photometric, extrasamples=["unassalpha"])
    return path


def imagemagick_premultiplied(tmp_path: Path, colour: np.ndarray, alpha: np.ndarray, *options: str) -> Path:
    """The straight picture saved by ImageMagick as a TIFF with associated alpha, as it premultiplies it."""
    convert = need_binary("convert", "imagemagick")
    tiff = tmp_path / "premultiplied.tif"
    subprocess.run([convert, str(straight_tiff(tmp_path / "straight-in.tif", colour, alpha)), *options, "-define",
                    "tiff:alpha=associated", str(tiff)], check=True, capture_output=True)  # fmt: skip
    return tiff


def tiff2rgba_premultiplied(tmp_path: Path, colour: np.ndarray, alpha: np.ndarray) -> Path:
    """The straight picture through libtiff's ``tiff2rgba``, whose RGBA reading premultiplies and which writes
    ExtraSamples 1: libtiff's own premultiplied TIFF."""
    straight = straight_tiff(tmp_path / "straight-in.tif", colour, alpha)
    tiff = tmp_path / "premultiplied.tif"
    subprocess.run([need_binary("tiff2rgba", "libtiff-tools"), str(straight), str(tiff)], check=True, capture_output=True)
    return tiff


def tifffile_premultiplied(tmp_path: Path, colour: np.ndarray, alpha: np.ndarray, **layout) -> Path:
    """The picture premultiplied here and stored by tifffile as it is given, ``layout`` tifffile's (byteorder,
    bigtiff, tile, planarconfig, compression)."""
    stored = np.dstack([premultiplied(colour, alpha), alpha])
    if layout.get("planarconfig") == "separate":
        stored = np.ascontiguousarray(stored.transpose(2, 0, 1))
    tiff = tmp_path / "premultiplied.tif"
    photometric = "rgb" if colour.shape[2] == 3 else "minisblack"
    tifffile.imwrite(tiff, stored, photometric=photometric, extrasamples=["assocalpha"], **layout)
    return tiff


WRITERS = {
    "tiff2rgba 8-bit": (8, 3, lambda tmp, c, a: tiff2rgba_premultiplied(tmp, c, a)),
    "ImageMagick 8-bit": (8, 3, lambda tmp, c, a: imagemagick_premultiplied(tmp, c, a)),
    "ImageMagick 16-bit": (16, 3, lambda tmp, c, a: imagemagick_premultiplied(tmp, c, a)),
    "ImageMagick 8-bit gray + alpha": (8, 1, lambda tmp, c, a: imagemagick_premultiplied(tmp, c, a, "-colorspace", "gray")),
    "8-bit big-endian BigTIFF": (8, 3, lambda tmp, c, a: tifffile_premultiplied(tmp, c, a, byteorder=">", bigtiff=True)),
    "8-bit tiled": (8, 3, lambda tmp, c, a: tifffile_premultiplied(tmp, c, a, tile=(16, 16))),
    "16-bit tiled": (16, 3, lambda tmp, c, a: tifffile_premultiplied(tmp, c, a, tile=(16, 16))),
    "16-bit planar": (16, 3, lambda tmp, c, a: tifffile_premultiplied(tmp, c, a, planarconfig="separate")),
    "16-bit gray + alpha big-endian": (16, 1, lambda tmp, c, a: tifffile_premultiplied(tmp, c, a, byteorder=">")),
    "8-bit gray + alpha tiled": (8, 1, lambda tmp, c, a: tifffile_premultiplied(tmp, c, a, tile=(16, 16))),
}  # fmt: skip


@pytest.mark.parametrize("writer", WRITERS)
def test_a_premultiplied_tiff_reads_as_its_straight_twin(tmp_path, writer):
    """Each writer's premultiplied TIFF, in each layout the readers handle, reads as the straight picture it was
    made from (its alpha unchanged): an 8-bit one's half-transparent 200 was read as 100."""
    bits, channels, write = WRITERS[writer]
    colour, alpha = soft_layer(bits, channels)
    tiff = write(tmp_path, colour, alpha)
    rgb, deep = read_rgb_deep(tiff)
    read = deep if bits == 16 else rgb
    assert read is not None and read.shape == colour.shape[:2] + (3,)
    assert_straight(read[..., :channels], colour, alpha)
    np.testing.assert_array_equal(read_alpha(tiff, deep=bits == 16), alpha)


def test_a_premultiplied_float_tiff_reads_as_its_straight_twin(tmp_path):
    """A float RGBA TIFF with associated alpha (Nuke's default for a float render) is divided too, at float
    precision, before it becomes 16 bits; one marked straight is not (docs/image.md, Float TIFF)."""
    rng = np.random.default_rng(5)
    colour = rng.random((12, 20, 3)).astype(np.float32)
    alpha = np.broadcast_to(np.linspace(0, 1, 20, dtype=np.float32), (12, 20)).copy()
    tiff = tmp_path / "render.tif"
    tifffile.imwrite(tiff, np.dstack([colour * alpha[..., None], alpha]), photometric="rgb", extrasamples=["assocalpha"])
    _, deep = read_rgb_deep(tiff)
    expected = np.rint(colour * 65535).astype(np.int64)
    held = alpha > 0
    assert deep is not None and (np.abs(deep.astype(np.int64) - expected)[held] <= 1).all()
    assert (deep[~held] == 0).all()


def cut_out(tmp_path: Path, source: Path, name: str) -> np.ndarray:
    """`birefvid image` of ``source`` to a PNG (16-bit for a 16-bit source), as RGBA."""
    out = tmp_path / f"{name}.png"
    assert main(["image", str(source), "-o", str(out), "-q"]) == 0
    return cv2.cvtColor(cv2.imread(str(out), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)


@pytest.mark.parametrize("bits", [8, 16])
def test_the_cut_out_of_a_premultiplied_tiff_is_its_straight_twins(tmp_path, red_key, bits):
    """The whole of `birefvid image` on a render saved premultiplied (ImageMagick's, as a compositing app's) and on
    the same picture saved straight: the cut-outs agree within the premultiplied file's rounding. The subject's
    soft parts (alpha half) came out at half brightness, and darker again under the output's alpha."""
    top = 255 if bits == 8 else 65535
    picture = scene_frame(0, SIZE).astype(np.uint16) * (top // 255)
    picture = picture.astype(np.uint8 if bits == 8 else np.uint16)
    _, alpha = soft_layer(bits, size=SIZE)
    twin = cut_out(tmp_path, straight_tiff(tmp_path / "straight.tif", picture, alpha), "twin")
    cut = cut_out(tmp_path, imagemagick_premultiplied(tmp_path, picture, alpha), "cut")
    assert cut.dtype == twin.dtype == (np.uint8 if bits == 8 else np.uint16)
    np.testing.assert_array_equal(cut[..., 3], twin[..., 3])  # the same matte: the model saw the same subject
    subject, _ = interior(true_mask(0, SIZE))
    shown = subject & (alpha > 0)
    assert (twin[..., 3][shown] > 0).all()  # the subject's soft parts are in the cut-out, where colour counts
    assert_straight(cut[..., :3] * shown[..., None], twin[..., :3] * shown[..., None], np.where(shown, alpha, 0))


class SeeingRedKey(RedKey):
    """The red-key model, keeping each input it is given (normalised, at its working size)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return super().forward(x)


def test_the_model_sees_a_premultiplied_tiffs_colours_unpremultiplied(tmp_path, monkeypatch):
    """What the model is given for a premultiplied 8-bit TIFF is what it is given for the straight twin, within a
    level: it saw the half-transparent layer at half brightness, a darker picture than the one the user sees."""
    model = SeeingRedKey()
    monkeypatch.setattr("birefvid.runtime.file_job.segmenter_for", lambda *a, **k: red_key_segmenter(model))
    colour, _ = soft_layer(8, size=SIZE)
    alpha = np.full(colour.shape[:2], 128, np.uint8)  # a half-transparent layer: within 1 level of its twin
    cut_out(tmp_path, straight_tiff(tmp_path / "straight.tif", colour, alpha), "twin")
    cut_out(tmp_path, tiff2rgba_premultiplied(tmp_path, colour, alpha), "cut")
    twin_input, premultiplied_input = model.seen
    level = float(twin_input.max() - twin_input.min()) / 255  # one 8-bit level, in the model's normalised units
    assert twin_input.shape == premultiplied_input.shape
    assert float((premultiplied_input - twin_input).abs().max()) <= 1.5 * level


def test_a_premultiplied_tiff_plate_cuts_out_as_its_straight_twin_in_process(tmp_path, red_key):
    """`process` of a numbered 16-bit TIFF plate rendered premultiplied (ImageMagick's, as a compositing app's)
    gives the cut-out frames of the same plate rendered straight, within the premultiplied rounding. Its alpha is
    half to full, where the two plates read within a level of each other: hidden pixels hold colour only in the
    straight one, and `process`'s output colours draw on neighbouring pixels (an opaque 30000 comes out 29989-29997)."""
    _, ramp = soft_layer(16, size=SIZE)
    alpha = (32768 + ramp // 2).astype(np.uint16)
    for kind in ("straight", "premultiplied"):
        (tmp_path / kind).mkdir()
    for i in range(2):
        picture = scene_frame(i, SIZE).astype(np.uint16) * 257
        picture[..., 1] = 30000 + 1000 * i  # a level of its own in each frame, which a 16-bit reading keeps
        straight_tiff(tmp_path / "straight" / f"plate.{1001 + i}.tif", picture, alpha)
        imagemagick_premultiplied(tmp_path, picture, alpha).rename(tmp_path / "premultiplied" / f"plate.{1001 + i}.tif")
    for kind in ("straight", "premultiplied"):
        assert main(["process", str(tmp_path / kind), "-o", str(tmp_path / f"{kind}-cut/"), "--output", "alpha", "-q"]) == 0
    for i in range(2):
        twin, cut = (cv2.imread(str(tmp_path / f"{kind}-cut" / f"frame_{1001 + i:06d}.png"), cv2.IMREAD_UNCHANGED)
                     for kind in ("straight", "premultiplied"))  # fmt: skip
        assert cut.dtype == twin.dtype == np.uint16
        np.testing.assert_array_equal(cut[..., 3], twin[..., 3])
        shown = interior(true_mask(i, SIZE))[0] & (alpha > 0)
        assert (twin[..., 3][shown] > 0).all()
        assert_straight(cut[..., :3] * shown[..., None], twin[..., :3] * shown[..., None], np.where(shown, alpha, 0))
