"""Segmenter in a notebook: the picture forms users hold (PIL, OpenCV BGR, float, grey, 16-bit, tensors,
paths) give the mask of the same RGB pixels; forms that would give a wrong mask are refused with one
line; ``cutout`` gives an RGBA PIL image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import birefvid
from birefvid.errors import SourceError
from process_fixtures import make_scene

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # two threads on a busy 2-core host took 20x longer a call


@pytest.fixture(scope="module")
def seg(b0_segmenter):
    return b0_segmenter


@pytest.fixture(scope="module")
def rgb():
    """A 48×64 picture whose channels differ everywhere, so a channel swap changes what the model sees."""
    rng = np.random.default_rng(3)
    picture = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    picture[..., 0] //= 2  # red darker than blue on average: BGR read as RGB is a different picture
    return picture


def test_pil_images_give_the_mask_of_their_pixels(seg, rgb):
    want = seg(rgb)
    np.testing.assert_array_equal(seg(Image.fromarray(rgb)), want)
    np.testing.assert_array_equal(seg(Image.fromarray(rgb).convert("RGBA")), want)  # the model sees the colour, not the alpha
    grey = Image.fromarray(rgb).convert("L")
    np.testing.assert_array_equal(seg(grey), seg(np.dstack([np.asarray(grey)] * 3)))
    palette = Image.fromarray(rgb).convert("P")
    np.testing.assert_array_equal(seg(palette), seg(np.asarray(palette.convert("RGB"))))
    assert [a.shape for a in seg.segment_each([Image.fromarray(rgb), Image.fromarray(rgb[:20, :30])])] == [(48, 64), (20, 30)]


def test_opencv_bgr_arrays_are_said_with_bgr_true(seg, rgb):
    bgr = np.ascontiguousarray(rgb[..., ::-1])  # what cv2.imread gives
    np.testing.assert_array_equal(seg(bgr, bgr=True), seg(rgb))
    assert np.abs(seg(bgr) - seg(rgb)).max() > 1e-3  # read as RGB it is another picture: the flag matters
    bgra = np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)])  # cv2.IMREAD_UNCHANGED of a PNG with alpha
    np.testing.assert_array_equal(seg(bgra, bgr=True), seg(rgb))
    batch = torch.from_numpy(np.stack([bgr, bgr])).permute(0, 3, 1, 2)
    np.testing.assert_array_equal(seg(batch, bgr=True), seg(np.stack([rgb, rgb])))
    with pytest.raises(ValueError, match="bgr=True is for arrays"):
        seg(Image.fromarray(rgb), bgr=True)


def test_float_grey_and_16_bit_arrays(seg, rgb):
    want = seg(rgb)
    np.testing.assert_array_equal(seg(rgb.astype(np.float32) / 255), want)
    np.testing.assert_array_equal(seg(rgb / 255.0), want)  # float64, as numpy arithmetic gives
    np.testing.assert_array_equal(seg(rgb.astype(np.uint16) * 257), want)  # a 16-bit PNG read with IMREAD_UNCHANGED
    grey = rgb[..., 1]
    np.testing.assert_array_equal(seg(grey), seg(np.dstack([grey] * 3)))
    np.testing.assert_array_equal(seg(grey[..., None]), seg(np.dstack([grey] * 3)))


def test_tensors_torchvision_style(seg, rgb):
    # the same alphas to float rounding: a (1, 3, H, W) tensor and a list batch differently, and on a CPU without
    # AVX-512 their kernels round differently (6e-8 apart in 4% of pixels), where an AVX-512 one gave equal bits
    want = seg(rgb)
    chw = torch.from_numpy(rgb).permute(2, 0, 1)
    np.testing.assert_allclose(seg(chw), want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(seg(chw.float() / 255), want, rtol=0, atol=1e-6)  # ToTensor(): (3, H, W) float in [0, 1]
    np.testing.assert_allclose(seg(chw[None].float() / 255), want, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "make_bad, message",
    [
        (lambda p: p.astype(np.float32), r"must be in \[0, 1\], this one spans"),  # 0-255 floats: all would be "white"
        (lambda p: np.ascontiguousarray(p.transpose(2, 0, 1)), r"channel-first; pass H×W×C"),
        (lambda p: p.astype(np.int64), r"got int64; e.g. array.astype\(np.uint8\)"),
        (lambda p: p > 128, "got bool"),
        (lambda p: np.full(p.shape, np.nan, np.float32), r"must be in \[0, 1\]"),
        (lambda p: p[..., :2], r"expected an H×W, H×W×3 or H×W×4 array"),
        (lambda p: torch.from_numpy(p), r"channel-first \(C, H, W\).*permute\(2, 0, 1\)"),
        (lambda p: torch.from_numpy(p).permute(2, 0, 1)[None].float(), r"float tensor must be in \[0, 1\]"),
        (lambda p: Image.fromarray(p[..., 0].astype(np.int32) * 200, "I"), "holds values beyond 0-255"),
        (lambda p: p.tolist(), "expected a numpy array, a PIL image, a torch tensor or a file path, got list"),
        (lambda p: Image.fromarray(p).crop((10, 5, 10, 25)), r"the picture is empty \(0x20 pixels\)"),  # was torch's RuntimeError
        (lambda p: p[:0] / 255.0, r"the picture is empty \(64x0 pixels\)"),  # so was a float one
    ],
)
def test_wrong_pictures_get_one_clear_line(seg, rgb, make_bad, message):
    with pytest.raises(ValueError, match=message) as caught:
        seg(make_bad(rgb))
    assert "\n" not in str(caught.value)
    # a caller's mistake, as docs/api.md says: a service's `except BirefvidError` answers it as a bad upload, not a crash
    assert isinstance(caught.value, birefvid.ConfigError)


def test_not_a_picture_at_all(seg):
    with pytest.raises(TypeError, match="expected a picture or a list of pictures, got object"):
        seg(object())
    with pytest.raises(ValueError, match="segment_each takes a list"):
        seg.segment_each(np.zeros((8, 8, 3), np.uint8))


def test_image_paths(seg, rgb, tmp_path):
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    np.testing.assert_array_equal(seg(str(tmp_path / "photo.png")), seg(rgb))
    np.testing.assert_array_equal(seg([tmp_path / "photo.png"]), seg(rgb))
    with pytest.raises(SourceError, match="input not found"):
        seg(tmp_path / "nope.png")
    clip = make_scene(tmp_path / "clip.mp4", 3, codec="libx264", pix_fmt="yuv420p", with_audio=False).path
    with pytest.raises(SourceError, match="is a video, not a picture: .*iter_masks"):
        seg(clip)


def test_cutout_is_an_rgba_pil_image_with_the_mask_as_alpha(seg, rgb):
    cut = seg.cutout(Image.fromarray(rgb), foreground=False)
    assert isinstance(cut, Image.Image) and cut.mode == "RGBA" and cut.size == (64, 48)
    pixels = np.asarray(cut)
    np.testing.assert_array_equal(pixels[..., :3], rgb)  # no foreground estimate: the picture's own colours
    assert np.abs(pixels[..., 3] / 255.0 - seg(rgb)[0]).max() <= 0.5 / 255 + 1e-6
    np.testing.assert_array_equal(np.asarray(seg.cutout(np.ascontiguousarray(rgb[..., ::-1]), bgr=True, foreground=False)), pixels)
    estimated = np.asarray(seg.cutout(rgb))  # the default: colours at soft edges estimated, as `birefvid image` does
    np.testing.assert_array_equal(estimated[..., 3], pixels[..., 3])


def test_cutout_keeps_what_a_transparent_picture_hides(seg, rgb):
    own = np.full(rgb.shape[:2], 255, np.uint8)
    own[:, :32] = 0  # an already cut-out PNG: its left half is transparent
    cut = np.asarray(seg.cutout(Image.fromarray(np.dstack([rgb, own]), "RGBA"), foreground=False))
    assert (cut[:, :32, 3] == 0).all()
    np.testing.assert_array_equal(cut[:, 32:, 3], np.asarray(seg.cutout(rgb, foreground=False))[:, 32:, 3])


def test_many_same_sized_pictures_go_to_the_model_a_few_at_a_time(seg, rgb, monkeypatch):
    """A hundred same-sized pictures went to the model as one batch: out of a GPU's memory, with an error
    naming a batch size segment_each has no way to set."""
    pictures = [np.roll(rgb, i, axis=1) for i in range(9)]
    batches: list[int] = []
    real = type(seg).predict
    monkeypatch.setattr(type(seg), "predict", lambda self, images, **kw: batches.append(images.shape[0]) or real(self, images, **kw))
    alphas = seg(pictures)
    assert batches == [4, 4, 1]  # the file pipeline's batch on CUDA
    np.testing.assert_array_equal(alphas[-1], seg(pictures[-1])[0])
