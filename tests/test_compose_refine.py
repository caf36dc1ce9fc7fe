"""Matte shaping (--threshold, --grow/--shrink, --feather): what each does to a matte's pixels, the
torch path (GPUs) equal to the OpenCV one (CPU), and every way in (process, image, live, the job)."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from PIL import Image

from birefvid.api import build_file_job, build_live_job, process_video, run_live
from birefvid.cli import main
from birefvid.compose.compositor import Compositor
from birefvid.compose.refine import disk, refine_mattes, refine_torch
from birefvid.job import FileJob, MatteSpec
from media import read_alpha
from process_fixtures import interior, make_scene, red_key_segmenter, scene_frame, true_mask

SIZE = (64, 48)


def square(h: int = 40, w: int = 50, box: tuple[int, int, int, int] = (10, 12, 20, 24)) -> torch.Tensor:
    """A (1, 1, h, w) hard matte: 1 on a (top, left, height, width) box, 0 elsewhere."""
    top, left, bh, bw = box
    m = torch.zeros(1, 1, h, w)
    m[..., top : top + bh, left : left + bw] = 1.0
    return m


def bbox(plane: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the pixels over 0.5."""
    ys, xs = np.nonzero(plane > 0.5)
    return int(ys.min()), int(xs.min()), int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)


def test_threshold_makes_the_matte_hard_at_t():
    ramp = torch.linspace(0, 1, 101).view(1, 1, 1, 101)
    out = refine_mattes(ramp, MatteSpec(threshold=0.5))[0, 0, 0].numpy()
    assert set(np.unique(out)) == {0.0, 1.0}
    assert out[:50].max() == 0 and out[50:].min() == 1  # 0.5 itself is kept


@pytest.mark.parametrize("grow", [1, 3, -2])
def test_grow_and_shrink_move_every_edge_by_that_many_pixels(grow):
    out = refine_mattes(square(), MatteSpec(grow=grow))[0, 0].numpy()
    assert set(np.unique(out)) == {0.0, 1.0}
    assert bbox(out) == (10 - grow, 12 - grow, 20 + 2 * grow, 24 + 2 * grow)


def test_a_subject_at_the_frame_edge_is_not_shrunk_away_from_it():
    """The border counts as neither subject nor background: a person cut by the frame stays cut by the frame."""
    m = square(box=(20, 0, 20, 50))  # touches the left, right and bottom edges
    out = refine_mattes(m, MatteSpec(grow=-3))[0, 0].numpy()
    assert bbox(out) == (23, 0, 17, 50)


def test_grow_rounds_corners_as_a_disk_does():
    out = refine_mattes(square(), MatteSpec(grow=3))[0, 0].numpy()
    assert out[10 - 3, 12 - 3] == 0  # the corner of the grown box is cut: a disk, not a square
    assert out[10 - 3, 12] == 1 and out[10, 12 - 3] == 1
    assert disk(2).tolist() == [[0, 1, 1, 1, 0], [1] * 5, [1] * 5, [1] * 5, [0, 1, 1, 1, 0]]


def test_feather_ramps_a_hard_edge_over_about_that_many_pixels():
    edge = torch.zeros(1, 1, 8, 80)
    edge[..., 40:] = 1.0
    row = refine_mattes(edge, MatteSpec(feather=8))[0, 0, 4].numpy()
    assert row[39] < 0.5 < row[40] and row[39] + row[40] == pytest.approx(1.0, abs=1e-5)  # the edge stays put
    ramp = np.nonzero((row > 0.16) & (row < 0.84))[0]
    assert 7 <= len(ramp) <= 9  # 16% to 84% over ~8 px
    assert row[:20].max() < 1e-3 and row[60:].min() > 1 - 1e-3  # far from the edge nothing changes


def test_the_input_matte_is_left_alone_and_no_options_change_nothing():
    m = square()
    before = m.clone()
    refine_mattes(m, MatteSpec(0.5, -2, 3.0))
    assert torch.equal(m, before)
    assert refine_mattes(m, MatteSpec()) is m


@pytest.mark.parametrize(
    "spec",
    [MatteSpec(0.5), MatteSpec(grow=4), MatteSpec(grow=-3), MatteSpec(feather=2.5), MatteSpec(0.4, -2, 3.0), MatteSpec(None, 7, 0.8),
     MatteSpec(invert=True), MatteSpec(0.5, 2, 1.0, invert=True), MatteSpec(min_area=2.0), MatteSpec(0.5, -1, 1.0, min_area=5.0)],
)
def test_the_torch_path_for_gpus_equals_opencv(spec):
    g = torch.Generator().manual_seed(1)
    soft = torch.nn.functional.avg_pool2d(torch.rand(2, 1, 37, 53, generator=g), 5, 1, 2)  # smooth, with every level
    assert torch.allclose(refine_torch(soft, spec), refine_mattes(soft, spec), atol=1e-6)


def test_the_compositor_keys_with_the_shaped_matte():
    """Greenscreen with a hard, shrunk matte: every pixel is the source or the key, the rim keyed out."""
    h, w = 40, 50
    images = torch.zeros(1, 3, h, w, dtype=torch.uint8)
    images[:, 0] = 200  # a red frame
    soft = torch.nn.functional.avg_pool2d(square(h, w), 5, 1, 2)  # a soft-edged box
    out = Compositor("green", matte=MatteSpec(threshold=0.5, grow=-2))(images, soft)[0].permute(1, 2, 0).numpy()
    colours = {tuple(int(v) for v in p) for p in out.reshape(-1, 3)}
    assert colours == {(200, 0, 0), (0, 255, 0)}
    opaque = (out == (200, 0, 0)).all(axis=2)
    assert bbox(opaque.astype(np.float32)) == (12, 14, 16, 20)


def blobs() -> torch.Tensor:
    """A soft-edged person-sized box, a soft speck of 3x3 solid pixels, and a faint wide haze (alpha 0.2)."""
    m = torch.zeros(1, 1, 60, 80)
    m[..., 10:50, 10:40] = 1.0
    m[..., 20:23, 60:63] = 1.0
    m = torch.nn.functional.avg_pool2d(m, 3, 1, 1)  # soft fringes around both
    m[..., 45:58, 50:78] = 0.2
    return m


def test_min_area_drops_specks_with_their_fringe_and_keeps_the_subject():
    m = blobs()
    out = refine_mattes(m, MatteSpec(min_area=1.0))[0, 0]  # 1% of 60x80 = 48 px: the speck has 9 solid ones
    assert torch.equal(out[:, :50], m[0, 0, :, :50])  # the subject, fringe and all, untouched
    assert out[17:26, 57:66].abs().max() == 0  # the speck and its soft fringe are gone
    assert out[45:58, 50:78].abs().max() == 0  # a faint haze has no solid pixels: it is a small part too
    kept = refine_mattes(m, MatteSpec(min_area=0.1))[0, 0]  # 0.1% = 5 px: the speck stays
    assert torch.equal(kept[17:26, 57:66], m[0, 0, 17:26, 57:66])


def test_min_area_alone_writes_its_result():
    m = blobs()
    assert torch.equal(refine_mattes(m, MatteSpec(min_area=50.0)), torch.zeros_like(m))  # every part under half the picture
    m[..., 45:58, 50:78] = 0.0  # without the haze nothing is under 1 px of solid area:
    assert torch.equal(refine_mattes(m, MatteSpec(min_area=0.01)), m)  # the matte as it was


def test_invert_swaps_subject_and_background_after_the_other_steps():
    m = square()
    out = refine_mattes(m, MatteSpec(grow=2, invert=True))[0, 0].numpy()
    assert np.array_equal(out, 1.0 - refine_mattes(m, MatteSpec(grow=2))[0, 0].numpy())
    assert out[0, 0] == 1 and out[20, 24] == 0


@pytest.fixture(scope="module")
def seg():
    return red_key_segmenter()


def test_process_writes_a_hard_shrunk_alpha(tmp_path, seg):
    size = (128, 96)  # twice the model's 64 px: its matte comes back with soft edges
    src = make_scene(tmp_path / "in.mov", 4, size, with_audio=False)
    plain, shaped = tmp_path / "plain", tmp_path / "shaped"
    process_video(src.path, plain, kind="alpha", segmenter=seg, smooth="none")
    report = process_video(src.path, shaped, kind="alpha", segmenter=seg, smooth="none", threshold=0.5, grow=-2)
    assert report["job"]["output"]["matte"] == {"threshold": 0.5, "grow": -2, "feather": 0.0, "invert": False, "min_area": 0.0,
                                                 "upsample": "bilinear"}
    _, soft, _ = read_alpha(plain)
    _, hard, _ = read_alpha(shaped)
    assert len(np.unique(soft)) > 2 and set(np.unique(hard)) == {0, 255}
    for k, a in enumerate(hard):
        truth = true_mask(k, size)
        inner, _ = interior(truth, margin=4)
        rim = (truth > 0) & ~interior(truth, margin=1)[0]  # the subject's outermost pixel ring
        assert (a[inner] == 255).all(), f"frame {k}: the subject's inside is not opaque"
        assert (a[rim] == 0).all(), f"frame {k}: the rim was not shrunk off"
        assert (a[truth == 0] == 0).all()


def test_composite_with_invert_replaces_the_subject_and_keeps_the_scene(tmp_path, seg):
    """``--output composite --invert``: the person is covered, the scene around them stays as it was."""
    src = make_scene(tmp_path / "in.mov", 3, SIZE, with_audio=False)
    out = tmp_path / "covered"
    process_video(src.path, out, kind="composite", background="#ffffff", segmenter=seg, smooth="none", invert=True)
    frames = [np.array(Image.open(f)) for f in sorted(out.glob("*.png"))]
    assert len(frames) == 3
    for k, picture in enumerate(frames):
        subject, scene = interior(true_mask(k, SIZE), margin=2)
        assert (picture[subject] == 255).all(), f"frame {k}: the subject is not covered"
        assert (picture[scene] == scene_frame(k, SIZE)[scene]).all(), f"frame {k}: the scene changed"


def test_image_command_takes_the_same_options(tmp_path, monkeypatch, seg):
    picture = tmp_path / "in.png"
    Image.fromarray(scene_frame(0, SIZE)).save(picture)
    monkeypatch.setattr("birefvid.runtime.file_job.segmenter_for", lambda *a, **k: seg)
    out = tmp_path / "out.png"
    assert main(["image", str(picture), "-o", str(out), "--output", "mask", "--threshold", "0.5", "--feather", "3", "-q"]) == 0
    mask = np.array(Image.open(out))
    truth = true_mask(0, SIZE)
    inner, outer = interior(truth, margin=6)
    assert (mask[inner] == 255).all() and (mask[outer] == 0).all()
    soft = (mask > 0) & (mask < 255)
    assert soft.sum() >= 2 * 4 * 20  # the feathered edge: a soft ring several pixels wide around the square


def test_live_masks_are_shaped_too(tmp_path, seg):
    clip = make_scene(tmp_path / "cam.mov", 6, SIZE, with_audio=False)
    out = tmp_path / "out.mkv"  # a live mask recording in Matroska is lossless
    job = build_live_job(str(clip.path), [str(out)], effect="mask", smooth="none", carry=False, resolution=64, threshold=0.5, grow=2)
    run_live(job, segmenter=seg)
    with av.open(str(out)) as c:
        masks = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    assert len(masks) == 6
    side = int(np.sqrt((true_mask(0, SIZE) > 0).sum()))
    for k, m in enumerate(masks):  # a picture may show the mask of the one before (live): compare areas
        assert set(np.unique(m)) == {0, 255}
        assert (side + 2) ** 2 <= (m == 255).sum() <= (side + 6) ** 2, f"picture {k}: the mask did not grow by ~2 px a side"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--threshold", "1.5"], "--threshold must be between 0 and 1"),
        (["--threshold", "128"], "got 128.0; on the 0-255 scale 128 is 0.502"),  # as rembg users count
        (["--grow", "-2"], "--grow takes a number of pixels >= 0, got -2; use --shrink"),
        (["--feather", "-1"], "--feather must be 0 to 200 pixels"),
        (["--shrink", "500"], "--grow must be a whole number of pixels from -200 to 200"),
        (["--min-area", "100"], "--min-area must be a percentage of the picture from 0 to under 100"),
    ],
)
def test_bad_values_are_one_error_line(tmp_path, capsys, args, message):
    rc = main(["process", "in.mp4", "-o", str(tmp_path / "x.mkv"), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_the_job_round_trips_and_old_reports_still_load():
    job = build_file_job("a.mp4", "b.webm", threshold=0.6, grow=-1, feather=1.5)
    assert FileJob.from_json(job.to_json()) == job
    old = job.to_dict()
    del old["output"]["matte"]  # a report written before matte options existed
    assert FileJob.from_dict(old).output.matte == MatteSpec()
