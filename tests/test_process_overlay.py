"""``--output overlay``: the picture with the subject tinted and its edge outlined, to check a matte.

Pixel checks use the red-key test model (see process_fixtures): alpha is exactly 1 on the red square and 0 on
the blue, green-striped background, so the overlay must be the frame itself on the background's interior, the
frame blended with the tint on the subject's, and the tint itself in a thin line along the square's edge.
The tint is yellow, not the default red, so that its blend with the red subject differs from the subject, and
no pixel of the scene (red, blue, cyan stripes) is the line's colour.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from birefvid.cli import main
from birefvid.compose.compositor import Compositor
from birefvid.job import FileJob
from media import audio_duration, read_video
from process_fixtures import decoded_times, interior, make_scene, max_err, square_box, true_mask

SIZE = (64, 48)
YELLOW = (255, 255, 0)
# red (255, 0, 0) and yellow at half strength, rounded half up as every output is: 127.5 -> 128
RED_UNDER_YELLOW = (255, 128, 0)
# x264 at crf 0 in 4:4:4 is lossless on the YUV planes: what is left is RGB <-> YUV rounding (4:2:0 would average the
# background's 3-pixel stripes)
RGB_TOL = 3


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A lossless 6-frame clip with sound, at a variable frame rate: its frame times are not a multiple of one rate."""
    pts = [0, 40, 100, 120, 200, 333]
    return make_scene(tmp_path_factory.mktemp("in") / "scene.mov", len(pts), SIZE, textured=True, pts=pts, time_base=Fraction(1, 1000))


def _png_rgb(folder: Path) -> list[np.ndarray]:
    return [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in sorted(folder.glob("*.png"))]


def _outline(picture: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """Where ``picture`` (H, W, 3) is exactly ``color``: the drawn line (no pixel of the scene is yellow)."""
    return (picture == np.array(color, np.uint8)).all(axis=2)


def test_overlay_tints_the_subject_outlines_its_edge_and_keeps_the_rest(tmp_path, scene, red_key, capsys):
    video, frames = tmp_path / "check.mp4", tmp_path / "frames"
    argv = ["process", str(scene.path), "-o", str(video), "--output", "overlay", "--overlay-color", "yellow", "--crf", "0",
            "--pix-fmt", "yuv444p", "--also", f"overlay={frames}", "--smooth", "none", "-q"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    pictures = _png_rgb(frames)  # PNG: the overlay's exact pixels
    assert len(pictures) == len(scene.frames)
    for i, (picture, frame) in enumerate(zip(pictures, scene.frames)):
        subject, background = interior(true_mask(i, SIZE))
        assert (picture[background] == frame[background]).all(), f"frame {i}: the picture changed outside the subject"
        assert max_err(picture, RED_UNDER_YELLOW, subject) <= 1, f"frame {i}: the subject is not the frame half under the tint"
        line = _outline(picture, YELLOW)
        top, left, side, _ = square_box(i, SIZE)
        near_edge = np.zeros(line.shape, bool)
        near_edge[top - 2 : top + side + 2, left - 2 : left + side + 2] = True
        near_edge[top + 2 : top + side - 2, left + 2 : left + side - 2] = False
        assert line.any() and not (line & ~near_edge).any(), f"frame {i}: the outline is not along the subject's edge"
        for row in range(top + 3, top + side - 3):  # across each row of the square: the line on its left and right edge, thin
            assert 1 <= line[row, left - 2 : left + 3].sum() <= 2, f"frame {i} row {row}: left edge {line[row, left - 2 : left + 3]}"
            assert 1 <= line[row, left + side - 3 : left + side + 2].sum() <= 2, f"frame {i} row {row}: right edge"
    decoded = read_video(video, "rgb24").images  # the video: the same pictures, within the codec's rounding
    for i, (picture, exact) in enumerate(zip(decoded, pictures)):
        subject, background = interior(true_mask(i, SIZE))
        assert max_err(picture, exact, subject | background) <= RGB_TOL, f"frame {i}"
    assert decoded_times(video) == decoded_times(scene.path)  # every frame, at its own time
    got, want = audio_duration(video), audio_duration(scene.path)
    assert got is not None and abs(got - want) <= 0.04, (got, want)


@pytest.mark.parametrize("opacity", [0.0, 1.0])
def test_the_tint_s_strength_ranges_from_the_outline_alone_to_paint(opacity):
    frame = torch.full((1, 3, 12, 12), 100, dtype=torch.uint8)
    alphas = torch.zeros((1, 1, 12, 12))
    alphas[..., 3:9, 3:9] = 1.0
    out = Compositor("overlay", overlay_color="#00ff00", overlay_opacity=opacity)(frame, alphas)[0].permute(1, 2, 0).numpy()
    inside = out[5:7, 5:7]
    assert (inside == ((100, 100, 100) if opacity == 0 else (0, 255, 0))).all()
    assert _outline(out, (0, 255, 0))[3, 3:9].all() and _outline(out, (0, 255, 0))[2, 3:9].all()  # the line on both sides of the edge
    assert (out[:2] == 100).all() and (out[10:] == 100).all()


def test_a_deep_source_is_overlaid_at_16_bits():
    """A 10-bit source written to ProRes or FFV1 keeps its depth in the overlay too: alpha 0 is the source exactly."""
    frame = torch.full((1, 3, 12, 12), 100, dtype=torch.uint8)
    deep = torch.full((1, 3, 12, 12), 1000 / 65535)  # between two 8-bit levels
    alphas = torch.zeros((1, 1, 12, 12))
    alphas[..., 3:9, 3:9] = 1.0
    out = Compositor("overlay", bits=16)(frame, alphas, deep)
    assert out.dtype == torch.uint16
    assert (out[0, :, :2].int() == 1000).all()
    assert out[0, :, 5, 5].int().tolist() == [round((1000 + 65535) / 2), 500, 500]


def test_image_writes_the_overlay_of_a_picture(tmp_path, red_key):
    from process_fixtures import scene_frame

    photo, out = tmp_path / "shoe.png", tmp_path / "check.png"
    rgb = scene_frame(0, SIZE, textured=True)
    assert cv2.imwrite(str(photo), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert main(["image", str(photo), "-o", str(out), "--output", "overlay", "--overlay-color", "255,255,0", "--overlay-opacity", "50%", "-q"]) == 0
    picture = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    subject, background = interior(true_mask(0, SIZE))
    assert (picture[background] == rgb[background]).all()
    assert max_err(picture, RED_UNDER_YELLOW, subject) <= 1
    assert _outline(picture, YELLOW).any()


def test_a_pictures_own_transparency_shows_as_grey_checks_not_the_colour_stored_under_it(tmp_path, red_key):
    """A cut-out PNG whose transparent part stores green under alpha 0: the overlay showed that green, a colour the
    picture never shows. It shows the grey checks editors draw for transparency, and the opaque part as it is."""
    from birefvid.compose.ops import CHECKER_LEVELS

    photo, out = tmp_path / "cutout.png", tmp_path / "check.png"
    bgra = np.zeros((48, 64, 4), np.uint8)
    bgra[:, :, :3] = (0, 255, 0)  # green, hidden
    bgra[:, 32:] = (90, 60, 30, 255)  # the right half opaque: a brown picture
    assert cv2.imwrite(str(photo), bgra)
    assert main(["image", str(photo), "-o", str(out), "--output", "overlay", "-q"]) == 0
    picture = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB).astype(int)
    light, dark = (round(level * 255) for level in CHECKER_LEVELS)
    assert (picture[:, :30, 1] != 255).all()  # no hidden green
    assert set(np.unique(picture[:, :30])) == {light, dark}  # grey checks, both shades
    assert (picture[:, 34:] == (30, 60, 90)).all()  # the opaque half as it is (no subject in it for the red key)


def test_an_overlay_job_round_trips_and_other_jobs_json_is_unchanged(tmp_path):
    """A report's job rebuilds an overlay run; the tint's fields are left out at their defaults, so a batch started
    before the overlay existed keeps its fingerprints and resumes instead of redoing every video."""
    from birefvid.api import build_file_job

    job = build_file_job("in.mp4", tmp_path / "check.mp4", kind="overlay", overlay_color=(0, 255, 255), overlay_opacity=0.3)
    assert FileJob.from_json(job.to_json()) == job
    assert (job.output.overlay_color, job.output.overlay_opacity) == ("0,255,255", 0.3)
    plain = build_file_job("in.mp4", tmp_path / "out.mov").to_dict()
    assert not [key for key in plain["output"] if key.startswith("overlay")]


@pytest.mark.parametrize(
    "command,args,words",
    [
        ("process", ["--output", "overlay", "--overlay-opacity", "1.5"], "--overlay-opacity is the tint's strength from 0 (the outline alone) to 1"),
        ("process", ["--output", "overlay", "--overlay-opacity", "nan"], "--overlay-opacity is the tint's strength"),
        ("process", ["--output", "overlay", "--overlay-opacity", "half"], "argument --overlay-opacity: expected a fraction from 0 to 1 (0.5) or a percentage (50%), got 'half'"),
        ("process", ["--output", "overlay", "--overlay-opacity", "150%"], "--overlay-opacity is the tint's strength from 0 (the outline alone) to 1 (opaque), e.g. 0.5, got 1.5"),
        ("process", ["--output", "overlay", "--overlay-color", "nope"], "--overlay-color: not a colour: 'nope'"),
        ("process", ["--output", "overlay", "--overlay-color", "#ff000080"], "--overlay-color '#ff000080' has an alpha; give the colour "
                                                                             "opaque and its strength as --overlay-opacity"),
        ("process", ["--output", "green", "--overlay-color", "cyan"], "--overlay-color is only used with --output overlay or --also "
                                                                       "overlay=PATH, not --output green"),
        ("process", ["--output", "overlay", "--no-foreground"], "--no-foreground is only used with an output in colour"),
        ("image", ["--output", "overlay", "--overlay-opacity", "-0.1"], "--overlay-opacity is the tint's strength"),
        ("image", ["--overlay-opacity", "0.3"], "--overlay-opacity is only used with --output overlay, not --output rgba"),
    ],
)
def test_a_bad_tint_is_one_line_before_any_work(tmp_path, capsys, monkeypatch, command, args, words):
    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the check")

    monkeypatch.setattr("birefvid.runtime.file_job.segmenter_for", no_model)
    source = tmp_path / ("in.mp4" if command == "process" else "in.png")
    source.write_bytes(b"")  # never read: the options are refused first
    try:
        code = main([command, str(source), "-o", str(tmp_path / ("out.mp4" if command == "process" else "out.png")), *args])
    except SystemExit as exit:  # argparse's own refusals (a value that is no number) exit from the parser
        code = exit.code
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("birefvid: error: "), lines
    assert words in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [source.name]
