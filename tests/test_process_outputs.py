"""`birefvid process` / `process_video`: every output kind and container, audio, timing, and the CLI.

Pixel checks use the red-key test model (see process_fixtures): alpha is exactly 1 on the red
square and 0 on the blue background, so outputs are compared with what they must be on the
interior of each region (>= 3 px from the square's edge, since resizing softens edges). Inputs
are lossless (PNG in MOV) so any error comes from the output codec alone.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path
from typing import Optional

import av
import cv2
import numpy as np
import pytest

from birefvid.api import process_video
from birefvid.cli import main
from birefvid.io.formats import has_alpha
from birefvid.job import FileJob
from birefvid.commands.progress import FrameProgress
from media import audio_duration, hide_leading_frames, make_video, read_alpha, read_video
from process_fixtures import (
    BLUE,
    RED,
    decoded_times,
    interior,
    make_scene,
    max_err,
    partial_leftovers,
    red_key_segmenter,
    scene_frame,
    true_mask,
    write_scene_images,
)

SIZE = (64, 48)
N = 6
# x264 at crf 0 is lossless on the YUV planes; what is left is RGB <-> YUV 4:2:0 rounding (interior
# pixels are >= 3 px from an edge, so chroma subsampling only averages equal colours): 1 level measured.
RGB_TOL = 3
YELLOW = (255, 255, 0)


@pytest.fixture(scope="module")
def seg():
    return red_key_segmenter()


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """6 frames, 64x48, lossless video with green stripes in the (blue) background, plus AAC audio."""
    return make_scene(tmp_path_factory.mktemp("in") / "scene.mov", N, SIZE, textured=True)


@pytest.fixture(scope="module")
def bg_image(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A background image of the clip's size (no scaling): a smooth yellow-to-cyan gradient."""
    w, h = SIZE
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.linspace(255, 0, w).astype(np.uint8)[None, :]
    img[..., 1] = 255
    img[..., 2] = np.linspace(0, 255, w).astype(np.uint8)[None, :]
    path = tmp_path_factory.mktemp("bg") / "bg.png"
    assert cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return path, img


BG_VIDEO_COLORS = [(255, 255, 0), (0, 255, 255), (128, 128, 128)]


@pytest.fixture(scope="module")
def bg_video(tmp_path_factory) -> Path:
    """A 3-frame lossless background video (one flat colour per frame) that the 6-frame clip loops twice."""
    w, h = SIZE
    frames = [np.full((h, w, 3), c, np.uint8) for c in BG_VIDEO_COLORS]
    path = tmp_path_factory.mktemp("bgv") / "bg.mov"
    make_video(path, n_frames=3, size=SIZE, frames=frames, codec="png", pix_fmt="rgb24", with_audio=False)
    return path


def _run(scene, out, seg, **kw):
    kw.setdefault("smooth", "none")
    report = process_video(scene.path, out, segmenter=seg, **kw)
    assert report["frames"] == N
    return report


def _check_timing(scene, out: Path) -> None:
    """Same frame count and the same presentation times (exact, whatever the time base) as the input."""
    assert decoded_times(out) == decoded_times(scene.path)


def _check_audio(scene, out: Path) -> None:
    """The audio track is there and as long as the input's, within one frame."""
    got, want = audio_duration(out), audio_duration(scene.path)
    assert got is not None, f"{out.name} has no audio"
    assert abs(got - want) <= 1 / float(scene.fps), (got, want)


# -- alpha ---------------------------------------------------------------------------------------
ALPHA_CASES = [  # (output name, pixel-format prefix, alpha tolerance, RGB tolerance on the subject)
    ("out.mov", "yuva444p", 3, 4),  # ProRes 4444 (decodes as yuva444p12le)
    ("out.webm", "yuva420p", 12, 8),  # VP9 with the alpha side channel (read back with libvpx-vp9)
    ("out.mkv", "yuva444p", 1, 2),  # FFV1: lossless planes, 1 level from the RGB <-> YUV matrix
]


@pytest.mark.parametrize("name,fmt,atol,rgb_tol", ALPHA_CASES)
def test_alpha_video_matches_mask(tmp_path, scene, seg, name, fmt, atol, rgb_tol):
    out = tmp_path / name
    _run(scene, out, seg, kind="alpha")
    pts, alpha, pix_fmt = read_alpha(out)
    assert pix_fmt.startswith(fmt)
    assert len(pts) == N
    rgba = read_video(out, "rgba").images
    for i in range(N):
        fg, bg = interior(true_mask(i, SIZE))
        assert max_err(alpha[i], 255, fg) <= atol, f"frame {i}: subject not opaque"
        assert max_err(alpha[i], 0, bg) <= atol, f"frame {i}: background not transparent"
        assert max_err(rgba[i][..., :3], RED, fg) <= rgb_tol, f"frame {i}: subject colour changed"
    _check_timing(scene, out)
    _check_audio(scene, out)
    assert partial_leftovers(tmp_path) == []


def test_alpha_png_sequence_is_exact(tmp_path, scene, seg):
    out = tmp_path / "frames"
    _run(scene, out, seg, kind="alpha")
    files = sorted(out.iterdir())
    assert [f.name for f in files] == [f"frame_{i:06d}.png" for i in range(1, N + 1)]  # no audio or other files
    _, alpha, _ = read_alpha(out)
    for i, f in enumerate(files):
        rgba = cv2.cvtColor(cv2.imread(str(f), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
        assert rgba.shape == (SIZE[1], SIZE[0], 4)
        fg, bg = interior(true_mask(i, SIZE))
        assert (alpha[i][fg] == 255).all() and (alpha[i][bg] == 0).all()
        assert (rgba[..., :3][fg] == RED).all()
    assert partial_leftovers(tmp_path) == []


# -- mask ----------------------------------------------------------------------------------------
MASK_CASES = [  # (output name, tolerance): FFV1 gray and PNG are exact; x264 at its default crf 18 is lossy
    ("mask.mkv", 0),
    ("mask.mp4", 4),
    ("maskdir", 0),
]


@pytest.mark.parametrize("name,tol", MASK_CASES)
def test_mask_output(tmp_path, scene, seg, name, tol):
    out = tmp_path / name
    _run(scene, out, seg, kind="mask")
    if out.is_dir():
        files = sorted(out.glob("*.png"))
        assert len(files) == N and len(list(out.iterdir())) == N
        masks = [cv2.imread(str(f), cv2.IMREAD_UNCHANGED) for f in files]
        assert all(m.ndim == 2 for m in masks), "mask PNGs are single-channel"
    else:
        decoded = read_video(out, "gray")
        masks = decoded.images
        assert len(masks) == N
        if name.endswith(".mkv"):
            assert decoded.pix_fmt == "gray"
        _check_timing(scene, out)
        _check_audio(scene, out)
    for i, m in enumerate(masks):
        assert m.shape == (SIZE[1], SIZE[0])
        fg, bg = interior(true_mask(i, SIZE))
        assert max_err(m, 255, fg) <= tol and max_err(m, 0, bg) <= tol, f"frame {i}"
    assert partial_leftovers(tmp_path) == []


# -- foreground (RVM's fgr: the cut-out's colours, opaque) -----------------------------------------
def _png_rgb(folder: Path) -> list[np.ndarray]:
    """The pictures of a PNG sequence in RGB order, with the channels they were stored with (3 or 4)."""
    images = [cv2.imread(str(f), cv2.IMREAD_UNCHANGED) for f in sorted(folder.glob("*.png"))]
    return [cv2.cvtColor(i, cv2.COLOR_BGRA2RGBA if i.shape[2] == 4 else cv2.COLOR_BGR2RGB) for i in images]


@pytest.mark.parametrize("foreground", [True, False])
def test_foreground_is_the_alpha_outputs_colours_without_alpha(tmp_path, scene, seg, foreground):
    fgr, rgba = tmp_path / "fgr", tmp_path / "rgba"
    _run(scene, fgr, seg, kind="foreground", foreground=foreground)
    _run(scene, rgba, seg, kind="alpha", foreground=foreground)
    got, want = _png_rgb(fgr), _png_rgb(rgba)
    assert len(got) == N and all(g.shape == (SIZE[1], SIZE[0], 3) for g in got)  # RGB PNGs: no alpha channel
    for i in range(N):
        assert (got[i] == want[i][..., :3]).all(), f"frame {i}: not the alpha output's colours"
        fg, _ = interior(true_mask(i, SIZE))
        assert (got[i][fg] == scene.frames[i][fg]).all(), f"frame {i}: the subject changed"
        if not foreground:  # --no-foreground: the source's colours everywhere, as the alpha output carries them
            assert (got[i] == scene.frames[i]).all(), f"frame {i}"


def test_foreground_mp4_is_opaque_with_sound_beside_its_mask_from_one_pass(tmp_path, scene, seg):
    fgr, pha = tmp_path / "fgr.mp4", tmp_path / "pha.mkv"
    _run(scene, fgr, seg, kind="foreground", crf=0, also=[("mask", pha)])
    decoded = read_video(fgr, "rgba")
    assert decoded.codec == "h264" and not has_alpha(decoded.pix_fmt), decoded.pix_fmt  # no alpha plane
    masks = read_video(pha, "gray").images
    for i, img in enumerate(decoded.images):
        fg, bg = interior(true_mask(i, SIZE))
        assert (img[..., 3] == 255).all()
        assert max_err(img[..., :3], scene.frames[i], fg) <= RGB_TOL, f"frame {i}: subject changed"
        assert max_err(masks[i], 255, fg) == 0 and max_err(masks[i], 0, bg) == 0, f"frame {i}: mask"
    _check_timing(scene, fgr)
    _check_audio(scene, fgr)


# -- greenscreen, composite, blur (H.264 .mp4) ----------------------------------------------------
def test_greenscreen_is_key_colour_on_background(tmp_path, scene, seg):
    out = tmp_path / "green.mp4"
    _run(scene, out, seg, kind="green", crf=0)
    images = read_video(out, "rgb24").images
    assert len(images) == N
    for i, img in enumerate(images):
        fg, bg = interior(true_mask(i, SIZE))
        assert max_err(img, (0, 255, 0), bg) <= RGB_TOL, f"frame {i}: background is not the key colour"
        assert max_err(img, scene.frames[i], fg) <= RGB_TOL, f"frame {i}: subject changed"
    _check_timing(scene, out)
    _check_audio(scene, out)


def test_greenscreen_custom_key_colour(tmp_path, scene, seg):
    out = tmp_path / "key.mp4"
    _run(scene, out, seg, kind="green", key_color="#ff00ff", crf=0)
    img = read_video(out, "rgb24").images[2]
    fg, bg = interior(true_mask(2, SIZE))
    assert max_err(img, (255, 0, 255), bg) <= RGB_TOL


def test_composite_over_colour(tmp_path, scene, seg):
    out = tmp_path / "comp.mp4"
    _run(scene, out, seg, kind="composite", background="#ffff00", crf=0)
    images = read_video(out, "rgb24").images
    assert len(images) == N
    for i, img in enumerate(images):
        fg, bg = interior(true_mask(i, SIZE))
        assert max_err(img, YELLOW, bg) <= RGB_TOL, f"frame {i}"
        assert max_err(img, scene.frames[i], fg) <= RGB_TOL, f"frame {i}"
    _check_timing(scene, out)
    _check_audio(scene, out)


def test_composite_over_image(tmp_path, scene, seg, bg_image):
    path, bg_pixels = bg_image
    out = tmp_path / "comp_img.mp4"
    # 4:4:4: the gradient changes colour every pixel, which 4:2:0 chroma would average away
    _run(scene, out, seg, kind="composite", background=str(path), crf=0, pix_fmt="yuv444p")
    images = read_video(out, "rgb24").images
    assert len(images) == N
    for i, img in enumerate(images):
        fg, bg = interior(true_mask(i, SIZE))
        assert max_err(img, bg_pixels, bg) <= RGB_TOL, f"frame {i}: background is not the image"
        assert max_err(img, scene.frames[i], fg) <= RGB_TOL, f"frame {i}"
    _check_timing(scene, out)


def test_composite_over_looping_video(tmp_path, scene, seg, bg_video):
    out = tmp_path / "comp_vid.mp4"
    _run(scene, out, seg, kind="composite", background=str(bg_video), crf=0)
    images = read_video(out, "rgb24").images
    assert len(images) == N  # the output follows the input, not the 3-frame background
    for i, img in enumerate(images):
        fg, bg = interior(true_mask(i, SIZE))
        assert max_err(img, BG_VIDEO_COLORS[i % 3], bg) <= RGB_TOL, f"frame {i}: background frame {i % 3} expected"
        assert max_err(img, scene.frames[i], fg) <= RGB_TOL, f"frame {i}"
    _check_timing(scene, out)


RATE_COLORS = [(255, 255, 0), (0, 255, 255), (128, 128, 128), (255, 0, 255), (0, 0, 0), (255, 255, 255)]


@pytest.mark.parametrize(
    "timing, shown",
    [
        ({"fps": 50}, [0, 2, 4, 0, 2, 4]),  # twice the clip's 25 fps: every other frame, looped after 0.12 s
        ({"fps": 25, "pts": [0, 40, 200, 240, 280, 320], "time_base": Fraction(1, 1000)}, [0, 1, 1, 1, 1, 2]),  # a pause
    ],
    ids=["50fps", "vfr"],
)
def test_a_background_video_plays_at_its_own_speed(tmp_path, scene, seg, timing, shown):
    """Its frames went one to an output frame: a 50 fps background under 25 fps video played at half speed, a
    variable frame rate one lost its pauses. Now the frame on screen at each output frame's time is taken."""
    w, h = SIZE
    path = tmp_path / "bg.mov"
    make_video(path, n_frames=6, size=SIZE, frames=[np.full((h, w, 3), c, np.uint8) for c in RATE_COLORS],
               codec="png", pix_fmt="rgb24", with_audio=False, **timing)  # fmt: skip
    out = tmp_path / "comp.mp4"
    _run(scene, out, seg, kind="composite", background=str(path), crf=0)
    images = read_video(out, "rgb24").images
    for i, img in enumerate(images):
        fg, bg = interior(true_mask(i, SIZE))
        assert max_err(img, RATE_COLORS[shown[i]], bg) <= RGB_TOL, f"frame {i}: background frame {shown[i]} expected"
        assert max_err(img, scene.frames[i], fg) <= RGB_TOL, f"frame {i}"


def test_blur_blurs_background_only(tmp_path, scene, seg):
    out = tmp_path / "blur.mp4"
    _run(scene, out, seg, kind="blur", blur_sigma=4, crf=0)
    images = read_video(out, "rgb24").images
    assert len(images) == N
    for i, img in enumerate(images):
        src = scene.frames[i]
        fg, bg = interior(true_mask(i, SIZE))
        assert max_err(img, src, fg) <= RGB_TOL, f"frame {i}: subject is not sharp"
        diff = np.abs(img.astype(int) - src.astype(int))[bg].mean()
        assert diff > 20, f"frame {i}: background stripes not blurred (mean diff {diff:.1f})"
        # the blurred background stays background-coloured: no red from the subject bleeds in
        assert img[bg][:, 0].max() <= RGB_TOL + 40, f"frame {i}: subject colour haloes into the background"
    _check_timing(scene, out)
    _check_audio(scene, out)


@pytest.mark.parametrize("smooth", ["ema", "lookahead"])
def test_smoothing_keeps_frame_count_and_pts(tmp_path, seg, smooth):
    """Smoothers hold frames back (look-ahead): every frame must still come out once, with its own pts."""
    src = make_scene(tmp_path / "in.mov", 7, SIZE, with_audio=False)
    out = tmp_path / "m.mkv"
    report = process_video(src.path, out, kind="mask", segmenter=seg, smooth=smooth, smooth_window=2, batch_size=2)
    assert report["frames"] == 7
    assert decoded_times(out) == decoded_times(src.path)
    masks = read_video(out, "gray").images
    for i, m in enumerate(masks):  # each mask belongs to its own frame (the square moves 3 px a frame)
        fg, bg = interior(true_mask(i, SIZE), margin=6)
        assert m[fg].min() >= 128 and m[bg].max() <= 127, f"frame {i}: mask paired with the wrong frame"


# -- alpha == mask with a real BiRefNet ----------------------------------------------------------
def test_alpha_equals_mask_with_birefnet(tmp_path, pvt_b0_weights):
    clip = make_video(tmp_path / "in.mov", n_frames=5, size=SIZE, codec="png", pix_fmt="rgb24", with_audio=False)
    opts = dict(weights=pvt_b0_weights, resolution=64, device="cpu", precision="fp32")
    process_video(clip.path, tmp_path / "a.mkv", kind="alpha", **opts)
    process_video(clip.path, tmp_path / "m.mkv", kind="mask", **opts)
    _, alpha, fmt = read_alpha(tmp_path / "a.mkv")
    masks = np.stack(read_video(tmp_path / "m.mkv", "gray").images)
    assert fmt == "yuva444p" and alpha.shape == masks.shape == (5, SIZE[1], SIZE[0])
    assert masks.max() - masks.min() > 10, "the model output is flat; the comparison would prove nothing"
    assert np.abs(alpha.astype(int) - masks.astype(int)).max() <= 1  # FFV1 alpha plane: 1 level from conversion


# -- audio ---------------------------------------------------------------------------------------
def test_no_audio_option_drops_audio(tmp_path, scene, seg):
    out = tmp_path / "na.mov"
    _run(scene, out, seg, kind="alpha", audio=False)
    assert audio_duration(scene.path) is not None
    assert audio_duration(out) is None
    _check_timing(scene, out)


def test_no_audio_cli_flag(tmp_path, scene, pvt_b0_weights):
    out = tmp_path / "na.mkv"
    code = main(["process", str(scene.path), "-o", str(out), "--output", "mask", "--no-audio",
                 "--weights", str(pvt_b0_weights), "--resolution", "64", "--device", "cpu", "-q"])  # fmt: skip
    assert code == 0
    assert audio_duration(out) is None
    assert len(read_video(out, "gray").images) == N


def test_a_clip_named_like_a_protocol_is_read_with_its_sound(tmp_path, scene, seg, monkeypatch):
    """FFmpeg took the start of ``cam:1.mp4`` or a camera's ``2024-05-01T12:30:00.mov``, named from where
    the command runs, for a protocol: 'is not a readable video (Protocol not found)'."""
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copy(scene.path, "2024-05-01T12:30:00.mov")
    report = process_video("2024-05-01T12:30:00.mov", "cam:1.mkv", kind="mask", segmenter=seg)
    assert report["frames"] == N and audio_duration(tmp_path / "cam:1.mkv") == pytest.approx(audio_duration(scene.path), abs=0.05)


def test_webm_audio_is_reencoded_to_opus(tmp_path, scene, seg):
    """AAC cannot go into WebM: it is re-encoded (Opus), not dropped."""
    out = tmp_path / "a.webm"
    _run(scene, out, seg, kind="alpha")
    with av.open(str(out)) as c:
        assert c.streams.audio and c.streams.audio[0].codec_context.name == "opus"
    _check_audio(scene, out)


# -- timing and geometry -------------------------------------------------------------------------
def test_variable_frame_rate_keeps_pts(tmp_path, seg):
    pts = [0, 40, 100, 120, 200, 240, 333]
    src = make_scene(tmp_path / "vfr.mov", len(pts), SIZE, pts=pts, time_base=Fraction(1, 1000))
    want = decoded_times(src.path)
    assert want == [Fraction(p, 1000) for p in pts]
    for name, kind in (("vfr.mp4", "green"), ("vfr.mkv", "mask"), ("vfr_a.mov", "alpha")):
        out = tmp_path / name
        report = process_video(src.path, out, kind=kind, segmenter=seg, smooth="lookahead")
        assert report["frames"] == len(pts)
        assert decoded_times(out) == want, name


def test_mp4_cut_between_keyframes_is_processed_whole(tmp_path, seg):
    """An MP4 cut with `ffmpeg -ss T -c copy` (an edit list hides the GOP before T, which the header
    still counts) is processed: the frames it shows, at their times, with its audio."""
    src = make_scene(tmp_path / "full.mp4", 10, SIZE, lossless=False)
    cut = hide_leading_frames(src.path, tmp_path / "cut.mp4", 4, src.fps)
    want = decoded_times(cut)
    assert want == [Fraction(i, 25) for i in range(6)]
    out = tmp_path / "green.mp4"
    report = process_video(cut, out, kind="green", segmenter=seg, smooth="lookahead")
    assert report["frames"] == 6
    assert decoded_times(out) == want
    got, expected = audio_duration(out), audio_duration(cut)
    assert got is not None and abs(got - expected) <= 1 / 25, (got, expected)


def test_rotated_input_gives_upright_output(tmp_path, seg):
    src = make_scene(tmp_path / "rot.mov", 4, SIZE, rotation=90, with_audio=False)
    out = tmp_path / "rot.mkv"
    process_video(src.path, out, kind="mask", segmenter=seg, smooth="none")
    decoded = read_video(out, "gray")
    assert (decoded.width, decoded.height) == (SIZE[1], SIZE[0])
    with av.open(str(out)) as c:
        assert all((f.rotation or 0) == 0 for f in c.decode(video=0)), "output must be upright, not tagged"
    for i, m in enumerate(decoded.images):
        upright = np.rot90(true_mask(i, SIZE), 1)  # display rotation 90 = counter-clockwise
        fg, bg = interior(upright)
        assert (m[fg] == 255).all() and (m[bg] == 0).all(), f"frame {i}: mask not upright"


def test_mirrored_front_camera_input_gives_the_picture_players_show(tmp_path, seg):
    """A display matrix that flips left to right (a front camera's; ``ffprobe`` shows rotation -180) was turned upside down."""
    frames = [np.roll(scene_frame(i, SIZE), 8, axis=0) for i in range(4)]  # the square off the middle: a flip shows
    src = make_video(tmp_path / "selfie.mov", n_frames=4, size=SIZE, frames=frames, codec="png", pix_fmt="rgb24", flip="h", with_audio=False)
    out = tmp_path / "selfie.mkv"
    process_video(src.path, out, kind="mask", segmenter=seg, smooth="none")
    decoded = read_video(out, "gray")
    assert (decoded.width, decoded.height) == SIZE
    for i, m in enumerate(decoded.images):
        shown = np.roll(true_mask(i, SIZE), 8, axis=0)[:, ::-1]
        fg, bg = interior(shown)
        assert (m[fg] == 255).all() and (m[bg] == 0).all(), f"frame {i}: mask not flipped as players show it"


def test_odd_size_is_kept(tmp_path, seg):
    size = (63, 47)
    src = make_scene(tmp_path / "odd_in.mov", 4, size, with_audio=False)
    for name, kind in (("odd.mp4", "green"), ("odd.mov", "alpha"), ("odd.webm", "alpha")):
        out = tmp_path / name
        process_video(src.path, out, kind=kind, segmenter=seg, smooth="none", crf=0 if kind == "green" else None)
        decoded = read_video(out, "rgba")
        assert (decoded.width, decoded.height) == size, name
        assert len(decoded.images) == 4
        fg, bg = interior(true_mask(3, size))
        img = decoded.images[3]
        if kind == "green":
            assert max_err(img[..., :3], (0, 255, 0), bg) <= RGB_TOL
            assert max_err(img[..., :3], RED, fg) <= RGB_TOL
        else:
            assert max_err(img[..., 3], 255, fg) <= 12 and max_err(img[..., 3], 0, bg) <= 12


def _pixel_aspect(path: Path) -> Fraction:
    with av.open(str(path)) as c:
        return Fraction(c.streams.video[0].sample_aspect_ratio or 1)


def test_non_square_pixels_are_kept_where_the_file_can_record_them(tmp_path, seg, caplog):
    """An anamorphic source (4:3 pixels, shown 16:9, as DV/HDV/DVD) must not come out squeezed."""
    src = make_scene(tmp_path / "dv.mp4", 4, SIZE, lossless=False, with_audio=False, sample_aspect_ratio=Fraction(4, 3))
    assert _pixel_aspect(src.path) == Fraction(4, 3)
    for name, kind in (("g.mp4", "green"), ("a.mov", "alpha"), ("g.mkv", "green")):  # H.264 carries it in Matroska too
        out = tmp_path / name
        process_video(src.path, out, kind=kind, segmenter=seg, smooth="none")
        assert _pixel_aspect(out) == Fraction(4, 3), name
    with caplog.at_level("WARNING", logger="birefvid"):
        process_video(src.path, tmp_path / "m.mkv", kind="mask", segmenter=seg, smooth="none")  # FFV1: it cannot
    assert "pixels are not square (aspect 4/3)" in caplog.text and "write .mov or .mp4" in caplog.text


def test_a_background_is_fitted_as_an_anamorphic_output_is_shown(tmp_path, seg):
    """Pixels shown twice as wide as tall: a square-pixel 128x48 picture fills the 64x48 stored frame
    squeezed to half its width (not cropped to its middle half, which is all black here)."""
    gray = [np.full((48, 64, 3), 128, np.uint8)] * 3  # no red: the red-key model leaves only background
    src = make_video(tmp_path / "dv.mov", n_frames=3, size=(64, 48), frames=gray, codec="png", pix_fmt="rgb24",
                     with_audio=False, sample_aspect_ratio=Fraction(2))  # fmt: skip
    picture = np.zeros((48, 128, 3), np.uint8)
    picture[:, :32] = 255  # its left quarter
    assert cv2.imwrite(str(tmp_path / "bg.png"), picture)
    out = tmp_path / "c.mkv"
    process_video(src.path, out, kind="composite", background=str(tmp_path / "bg.png"), segmenter=seg, smooth="none",
                  codec="ffv1", pix_fmt="yuv444p")  # fmt: skip
    for frame in read_video(out, "rgb24").images:
        luma = frame.mean(axis=2)
        assert (luma[:, :15] > 230).all() and (luma[:, 17:] < 25).all()  # the left quarter of 64: 16 columns


def _timecode(path: Path) -> Optional[str]:
    with av.open(str(path)) as c:
        return next((v for k, v in c.streams.video[0].metadata.items() if k.lower() == "timecode"), None)


def _reel_name(path: Path) -> Optional[str]:
    """The reel name of the timecode: a MOV's tmcd track's, else the video's tag (Matroska)."""
    with av.open(str(path)) as c:
        tables = [s.metadata for s in c.streams.data] + [c.streams.video[0].metadata]
        return next((v for t in tables for k, v in t.items() if k.lower() == "reel_name"), None)


def test_start_timecode_and_the_files_tags_are_kept(tmp_path, seg):
    """A camera's start timecode survives, so the cut-out conforms to the source in an NLE, and so do
    the file's own tags: a phone video's creation time (photo apps sort by it), its title. The timecode's reel
    name (the camera card's, in the tmcd track) too: Resolve and Avid conform by reel and timecode, and it was lost."""
    tags = {"creation_time": "2024-06-01T10:20:30.000000Z", "title": "Holiday"}
    src = make_scene(tmp_path / "cam.mov", 4, SIZE, with_audio=False, timecode="01:00:10:05", tags=tags, reel_name="A001C003")
    assert _timecode(src.path) == "01:00:10:05" and _reel_name(src.path) == "A001C003"
    for name, kind in (("a.mov", "alpha"), ("g.mp4", "green"), ("m.mkv", "mask"), ("a.webm", "alpha")):
        out = tmp_path / name
        process_video(src.path, out, kind=kind, segmenter=seg, smooth="none")
        assert _timecode(out) == "01:00:10:05", name
        assert _reel_name(out) == (None if name.endswith(".mp4") else "A001C003"), name  # MP4's tmcd track has no name
        with av.open(str(out)) as c:
            assert {k: c.metadata.get(k) for k in tags} == tags, name
    with av.open(str(tmp_path / "a.mov")) as c:
        assert [s.type for s in c.streams] == ["video", "data"]  # MOV: a tmcd track, as editors read it


def test_a_phones_quicktime_keys_are_kept(tmp_path, seg):
    """An iPhone stores where and when (with its time zone) a video was taken, and on what, as QuickTime
    metadata keys; MOV/MP4 outputs dropped them (FFmpeg writes them only when asked), so the cut-out lost
    its place on the map and its local date in photo apps."""
    tags = {"com.apple.quicktime.location.ISO6709": "+48.8584+002.2945+035.000/", "com.apple.quicktime.make": "Apple",
            "com.apple.quicktime.creationdate": "2026-07-04T12:20:30+0200", "title": "Paris"}
    src = make_scene(tmp_path / "IMG_0001.mov", 3, SIZE, with_audio=False, tags=tags)
    with av.open(str(src.path)) as c:
        assert {k: c.metadata.get(k) for k in tags} == tags
    for name, kind in (("a.mov", "alpha"), ("g.mp4", "green"), ("m.mkv", "mask")):
        out = tmp_path / name
        process_video(src.path, out, kind=kind, segmenter=seg, smooth="none")
        with av.open(str(out)) as c:
            got = {k.lower(): v for k, v in c.metadata.items()}  # Matroska writes tag names in capitals
        assert {k: got.get(k.lower()) for k in tags} == tags, name


@pytest.mark.parametrize("rate,timecode,first", [(Fraction(24000, 1001), "01:00:00:00", 86400),
                                                  (Fraction(30000, 1001), "01:00:00;00", 107892)])  # drop-frame: 108000 - 108
def test_a_png_sequence_is_numbered_from_the_start_timecode(tmp_path, seg, rate, timecode, first):
    """A PNG folder cannot hold a timecode track: editors (Resolve) read an image sequence's timecode from its
    frame numbers, so the files start at the timecode's frame (the sequence used to start at 1, the timecode lost)."""
    src = make_scene(tmp_path / "cam.mov", 6, SIZE, fps=rate, with_audio=False, timecode=timecode)
    process_video(src.path, tmp_path / "seq", kind="alpha", segmenter=seg, smooth="none")
    assert sorted(p.name for p in (tmp_path / "seq").iterdir()) == [f"frame_{first + i:06d}.png" for i in range(6)]
    process_video(src.path, tmp_path / "cut", kind="mask", segmenter=seg, smooth="none", start=0.1)  # a part: its own frame
    assert sorted(p.name for p in (tmp_path / "cut").iterdir()) == [f"frame_{first + i:06d}.png" for i in range(3, 6)]
    untimed = make_scene(tmp_path / "plain.mov", 2, SIZE, with_audio=False)
    process_video(untimed.path, tmp_path / "plain", kind="alpha", segmenter=seg, smooth="none")
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == ["frame_000001.png", "frame_000002.png"]


def _frame_times(path: Path) -> tuple[list[Fraction], Fraction]:
    """Each frame's time in seconds and the video's time base."""
    with av.open(str(path)) as c:
        video = c.streams.video[0]
        return sorted(p.pts * video.time_base for p in c.demux(video) if p.pts is not None), video.time_base


@pytest.mark.parametrize("rate", [Fraction(24000, 1001), Fraction(30000, 1001), Fraction(24)])
def test_a_millisecond_source_at_a_broadcast_rate_gives_mov_and_mp4_its_exact_rate(tmp_path, seg, rate):
    """Matroska counts in milliseconds, so a 23.976 fps clip's frames are 41 or 42 ms apart; copied into MOV that
    way, editors saw a variable rate (and the timecode track ran at 1000/42 fps). They land on the exact grid."""
    src = make_scene(tmp_path / "obs.mkv", 8, SIZE, fps=rate, with_audio=False, codec="ffv1", pix_fmt="bgr0", timecode="01:00:00:00")
    times, tb = _frame_times(src.path)
    assert tb == Fraction(1, 1000) and times != [i / rate for i in range(8)]  # the source is rounded
    for name, kind in (("a.mov", "alpha"), ("g.mp4", "green")):
        process_video(src.path, tmp_path / name, kind=kind, segmenter=seg, smooth="none")
        times, tb = _frame_times(tmp_path / name)
        assert times == [i / rate for i in range(8)], name
        assert (1 / (rate * tb)).denominator == 1, name  # a whole number of ticks a frame: equal durations
        with av.open(str(tmp_path / name)) as c:
            assert c.streams.video[0].average_rate == rate and _timecode(tmp_path / name) == "01:00:00:00", name
    process_video(src.path, tmp_path / "cut.mov", kind="alpha", segmenter=seg, smooth="none", start=0.1)
    assert _frame_times(tmp_path / "cut.mov")[0] == [i / rate for i in range(5)]  # a part: from 0, on the grid too


def test_an_mpeg_ts_at_23_976_starting_late_gives_mov_its_exact_rate_from_its_first_frame(tmp_path, seg):
    """MPEG-TS counts in 1/90000 s (3753 or 3754 ticks a 23.976 fps frame) and starts late: the grid counts
    from the first frame, which keeps its time."""
    rate = Fraction(24000, 1001)
    pts = [126000 + round(i * 90000 / rate) for i in range(8)]  # from 1.4 s, as ffmpeg's MPEG-TS muxer starts
    src = make_scene(tmp_path / "cam.ts", 8, SIZE, fps=rate, with_audio=False, lossless=False, pts=pts, time_base=Fraction(1, 90000))
    source_times, _ = _frame_times(src.path)
    assert source_times[0] == Fraction(7, 5) and source_times != [source_times[0] + i / rate for i in range(8)]
    process_video(src.path, tmp_path / "a.mov", kind="alpha", segmenter=seg, smooth="none")
    times, _ = _frame_times(tmp_path / "a.mov")
    assert [t - times[0] for t in times] == [i / rate for i in range(8)]
    assert abs(times[0] - source_times[0]) <= Fraction(1, 1000)  # MOV's edit list holds the late start in ms


def test_image_sequence_input(tmp_path, seg):
    write_scene_images(tmp_path / "seq", 5, SIZE)
    out = tmp_path / "seq.mp4"
    report = process_video(tmp_path / "seq", out, kind="mask", segmenter=seg, smooth="none", fps=10)
    assert report["frames"] == 5
    assert decoded_times(out) == [Fraction(i, 10) for i in range(5)]
    assert audio_duration(out) is None
    m = read_video(out, "gray").images[4]
    fg, bg = interior(true_mask(4, SIZE))
    assert max_err(m, 255, fg) <= 4 and max_err(m, 0, bg) <= 4


@pytest.mark.parametrize("fps,rate", [("24000/1001", Fraction(24000, 1001)), ("23.976", Fraction(24000, 1001)),
                                      ("29.97", Fraction(30000, 1001)), ("25", Fraction(25))])
def test_an_image_sequence_at_an_ntsc_rate_is_exact(tmp_path, seg, fps, rate):
    """`--fps 24000/1001` was a usage error, and 23.976 gave 2997/125 fps, between an editor's rates: a plate
    rendered for a 23.976 timeline now comes out at 24000/1001, as editors mean 23.976."""
    from birefvid.cli import build_parser

    given = build_parser().parse_args(["process", "seq", "-o", "a.mov", "--fps", fps]).fps
    write_scene_images(tmp_path / "seq", 3, SIZE)
    out = tmp_path / "a.mov"
    process_video(tmp_path / "seq", out, kind="alpha", segmenter=seg, smooth="none", fps=given)
    assert decoded_times(out) == [i / rate for i in range(3)]
    with av.open(str(out)) as c:
        assert c.streams.video[0].average_rate == rate


def test_a_numbered_plate_keeps_its_frame_numbers(tmp_path, seg):
    """A VFX plate `plate_1001.png`... came back as `frame_000001.png`... and its MOV had no timecode: the numbers
    are its timecode, as editors read an image sequence's, so the outputs keep them. Photos named by date do not."""
    for i, path in enumerate(write_scene_images(tmp_path / "plate", 3, SIZE)):
        path.rename(tmp_path / "plate" / f"plate_{1001 + i}.png")
    process_video(tmp_path / "plate", tmp_path / "out", kind="alpha", segmenter=seg, smooth="none", fps=24)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["frame_001001.png", "frame_001002.png", "frame_001003.png"]
    process_video(tmp_path / "plate", tmp_path / "a.mov", kind="alpha", segmenter=seg, smooth="none", fps=24)
    assert _timecode(tmp_path / "a.mov") == "00:00:41:17"  # frame 1001 at 24 fps
    for i, path in enumerate(sorted((tmp_path / "plate").iterdir())):
        path.rename(tmp_path / "plate" / f"IMG_20240601_1200{10 * i:02d}.png")
    process_video(tmp_path / "plate", tmp_path / "photos", kind="alpha", segmenter=seg, smooth="none", fps=24)
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == ["frame_000001.png", "frame_000002.png", "frame_000003.png"]


def test_ten_bit_input(tmp_path, seg):
    src = make_scene(tmp_path / "ten.mkv", 5, SIZE, lossless=False, codec="libx264", pix_fmt="yuv420p10le")
    with av.open(str(src.path)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p10le"
    out = tmp_path / "ten.mov"
    report = process_video(src.path, out, kind="alpha", segmenter=seg, smooth="none")
    assert report["frames"] == 5
    _, alpha, _ = read_alpha(out)
    for i in range(5):
        fg, bg = interior(true_mask(i, SIZE))
        assert max_err(alpha[i], 255, fg) <= 3 and max_err(alpha[i], 0, bg) <= 3
    assert decoded_times(out) == decoded_times(src.path)


# -- CLI -----------------------------------------------------------------------------------------
def _cli(scene, out, weights, *extra):
    return ["process", str(scene.path), "-o", str(out), "--weights", str(weights),
            "--resolution", "64", "--device", "cpu", *extra]  # fmt: skip


def test_cli_writes_output_and_report(tmp_path, scene, pvt_b0_weights, capsys):
    out, report = tmp_path / "cli.mov", tmp_path / "run.json"
    assert main(_cli(scene, out, pvt_b0_weights, "-q", "--report", str(report))) == 0
    _, alpha, fmt = read_alpha(out)
    assert fmt.startswith("yuva") and alpha.shape == (N, SIZE[1], SIZE[0])
    data = json.loads(report.read_text())
    assert data["frames"] == N
    assert data["wall_seconds"] > 0
    assert set(data["stage_seconds"]) >= {"decode", "segment", "encode"}
    assert all(v >= 0 for v in data["stage_seconds"].values())
    assert set(data["stage_cpu_seconds"]) == set(data["stage_seconds"])  # each stage thread's CPU beside its busy time
    assert data["stage_cpu_seconds"]["segment"] > 0  # the model ran on that thread (eager torch here)
    job = FileJob.from_dict(data["job"])  # the report holds the job as given, and it round-trips
    assert job.output.kind == "alpha" and job.output.path == str(out) and job.output.audio is True
    assert job.inference.device == "cpu" and job.inference.resolution == (64, 64) and job.smoothing.kind == "lookahead"
    assert job.model.weights == str(pvt_b0_weights)
    resolved = data["resolved"]  # what "auto" and the defaults became on this machine
    assert resolved["device"] == "cpu" and resolved["resolution"] == [64, 64] and resolved["backbone"] == "pvt_v2_b0"
    from birefvid.backends import cpu_has_native_bf16

    assert resolved["backend"] == "torch"  # the suite's default (tests/conftest.py); users get OpenVINO on x86
    assert resolved["precision"] == ("bf16" if cpu_has_native_bf16() else "fp32") and resolved["batch_size"] == 1
    assert capsys.readouterr().err == ""  # -q: nothing on stderr


def test_cli_progress_is_plain_lines_when_not_a_tty(tmp_path, scene, pvt_b0_weights, capsys, monkeypatch):
    import birefvid.commands.process as process_cmd

    monkeypatch.setattr(process_cmd, "FrameProgress", lambda quiet: FrameProgress(quiet=quiet, every_seconds=0))
    out = tmp_path / "cli.mkv"
    assert main(_cli(scene, out, pvt_b0_weights, "--output", "mask")) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err, "a progress bar was drawn on a non-terminal"
    lines = err.splitlines()
    progress = [ln for ln in lines if ln.startswith("processed ")]
    assert progress and re.fullmatch(rf"processed {N}/{N} frames \(\d+\.\d fps, ETA 0:00:00\)", progress[-1])
    assert lines[-1].startswith(f"wrote {out}: {N} frames")


def test_frame_progress_lines(capsys):
    p = FrameProgress(quiet=False, every_seconds=0)
    p.start(10)
    for _ in range(4):
        p.advance(2)
    p.close()
    lines = capsys.readouterr().err.splitlines()
    assert [ln.split(" (")[0] for ln in lines] == [f"processed {k}/10 frames" for k in (2, 4, 6, 8)]
    assert re.search(r"\(\d+\.\d fps\)$", lines[0])  # the first batch alone, its warm-up included: no ETA yet
    assert all(re.search(r"\(\d+\.\d fps, ETA \d+:\d\d:\d\d\)$", ln) for ln in lines[1:])

    quiet = FrameProgress(quiet=True, every_seconds=0)
    quiet.start(None)
    quiet.advance(3)
    assert capsys.readouterr().err == "" and quiet.done == 3

    unknown = FrameProgress(quiet=False, every_seconds=0)
    unknown.start(None)  # frame count unknown: no total, no ETA
    unknown.advance(1)
    assert re.fullmatch(r"processed 1 frames \(\d+\.\d fps\)\n", capsys.readouterr().err)


def test_the_terminal_bars_eta_leaves_out_the_first_batchs_warm_up(capsys, monkeypatch):
    """On a terminal the bar's rate, and so its ETA, counted the first batch's time, mostly the model's warm-up, as
    the log lines did: after 7 batches it said several times what was left (its rate is a running average, slow
    to forget the warm-up). The rate counts from the first batch on, as the lines' does.

    The bar reads a clock this test moves (tqdm's), 4 s for the first batch, 0.15 s for each after it: with real sleeps
    the bound compared two readings of a loaded machine's uneven clock (and the test slept 5 s)."""
    import sys

    import tqdm.std

    clock = [1000.0]
    monkeypatch.setattr(tqdm.std, "time", lambda: clock[0])
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    p = FrameProgress(quiet=False)
    p.start(3000)
    clock[0] += 4.0  # the first inference's warm-up: an engine's compile, its thread pool started
    p.advance(8)
    for _ in range(6):
        clock[0] += 0.15  # above tqdm's 0.1 s between redraws: each batch is drawn
        p.advance(8)
    drawn = capsys.readouterr().err
    p.close()
    h, m, s = re.findall(r"<(?:(\d+):)?(\d+):(\d\d),", drawn)[-1]
    shown_left = int(h or 0) * 3600 + int(m) * 60 + int(s)
    actually_left = (3000 - 56) / (8 / 0.15)  # 55 s; counting the warm-up, 56 frames in 4.9 s said 258 s
    assert abs(shown_left - actually_left) <= 0.2 * actually_left, (shown_left, actually_left, drawn.split("\r")[-1])


def test_the_log_lines_eta_leaves_out_the_first_batchs_warm_up(tmp_path, pvt_b0_weights, capsys, monkeypatch):
    """Off a terminal the first line of a first run said "ETA 0:03:54" for 24 s of work: the rate counted from the
    start, the first batch's warm-up included. It counts from the first batch now, and no ETA is said before.

    The progress lines read a clock this test moves: 3 s for the first inference (an engine's compile, its thread pool
    started), 0.1 s a frame after it. Timed by the real clock, a loaded machine's uneven frames made the ETA a guess
    (it failed under load: 48 s said for 21 s of work), where the point is which time it counts from."""
    import types

    import birefvid.commands.process as process_cmd
    import birefvid.commands.progress as progress
    from birefvid.runtime.segmenter import Segmenter

    clip = make_scene(tmp_path / "long.mov", 24, SIZE, textured=True)
    real_predict, calls, clock = Segmenter.predict, [], [1000.0]

    def warming_up(self, images, **kw):
        clock[0] += 3.0 if not calls else 0.1 * len(images)
        calls.append(len(images))
        return real_predict(self, images, **kw)

    printed: list[tuple[str, float, int]] = []  # each line, with the clock and the frames done when it was made

    class Recorded(FrameProgress):
        def line(self, now: float) -> str:
            text = super().line(now)
            printed.append((text, now, self.done))
            return text

    monkeypatch.setattr(progress, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    monkeypatch.setattr(Segmenter, "predict", warming_up)
    monkeypatch.setattr(process_cmd, "FrameProgress", lambda quiet: Recorded(quiet=quiet, every_seconds=0))
    assert main(_cli(clip, tmp_path / "m.mkv", pvt_b0_weights, "--output", "mask")) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("processed ")]
    assert len(lines) >= 3 and "ETA" not in lines[0] and lines == [text for text, _, _ in printed], lines
    (_, first_at, first_done), start = printed[0], 1000.0
    told_apart = 0  # lines where counting from the start would have said another ETA
    for text, now, done in printed[1:]:
        h, m, s = re.search(r"ETA (\d+):(\d\d):(\d\d)", text).groups()
        eta = int(h) * 3600 + int(m) * 60 + int(s)
        # the frames left at the rate since the first batch landed; from the start, the 3 s warm-up counted in. Judged
        # by the clock when the line was made: the model runs batches ahead of the lines, more of them on a loaded
        # machine (a bound from the frames left alone failed there)
        from_first = (24 - done) * (now - first_at) / (done - first_done)
        from_start = (24 - done) * (now - start) / done
        assert abs(eta - from_first) <= 1, (text, from_first, from_start, lines, calls)
        told_apart += from_start - from_first >= 2
    assert told_apart, (lines, calls)


def test_no_partial_files_after_success(tmp_path, scene, seg):
    out = tmp_path / "ok.mkv"
    _run(scene, out, seg, kind="mask")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.mkv"]
    assert out.stat().st_mode & 0o777 != 0o600  # umask permissions, not mkstemp's


def test_scene_helpers_are_consistent():
    """The scene's colours and mask agree (guards the other tests' ground truth)."""
    img, m = scene_frame(2, SIZE), true_mask(2, SIZE)
    assert (img[m > 0] == RED).all() and (img[m == 0] == BLUE).all()


CLEAR_FROM = 18  # the column from which the sources below are transparent, across the red square


def _scene_with_own_alpha(i: int) -> np.ndarray:
    """The red-square scene as RGBA, transparent from column CLEAR_FROM on: the square's red stays under it."""
    rgba = np.dstack([scene_frame(i, SIZE), np.full(SIZE[::-1], 255, np.uint8)])
    rgba[:, CLEAR_FROM:, 3] = 0
    return rgba


def _write_own_alpha(tmp_path: Path, form: str) -> Path:
    frames = [_scene_with_own_alpha(i) for i in range(3)]
    if form == "png-seq":
        folder = tmp_path / "seq"
        folder.mkdir()
        for i, f in enumerate(frames):
            assert cv2.imwrite(str(folder / f"f_{i:03d}.png"), cv2.cvtColor(f, cv2.COLOR_RGBA2BGRA))
        return folder
    codec, pix_fmt, ext = {"prores": ("prores_ks", "yuva444p10le", ".mov"), "png-mov": ("png", "rgba", ".mov"),
                           "ffv1": ("ffv1", "yuva420p", ".mkv"), "vp9": ("libvpx-vp9", "yuva420p", ".webm")}[form]  # fmt: skip
    path = tmp_path / f"in{ext}"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = *SIZE, pix_fmt
        if codec == "prores_ks":
            stream.options = {"profile": "4444"}
        if codec == "libvpx-vp9":
            stream.options = {"lossless": "1"}
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(f, format="rgba")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


@pytest.mark.parametrize("form", ["prores", "png-mov", "ffv1", "vp9", "png-seq"])
def test_a_sources_own_alpha_is_kept(tmp_path, seg, form):
    """A source with its own alpha (ProRes 4444 from an editor, a PNG sequence or PNG-in-MOV, FFV1, VP9 with alpha as birefvid's own .webm) hides what
    lies under its transparent pixels. Its alpha was dropped, so the subject there came out opaque: the
    cut-out showed what the source hides (a red square's hidden half at alpha 255). `birefvid image` kept a
    picture's own alpha; `process` now multiplies the matte by the source's as well, for every output
    (VP9's alpha only libvpx-vp9 decodes: FFmpeg's own vp9 decoder drops it)."""
    src = _write_own_alpha(tmp_path, form)
    out = tmp_path / "cut.mov"
    process_video(src, out, kind="alpha", segmenter=seg, smooth="none")
    _, alpha, _ = read_alpha(out)
    hidden = np.zeros(SIZE[::-1], bool)
    hidden[:, CLEAR_FROM + 2 :] = True  # a margin from the alpha's edge, which chroma subsampling softens
    shown = np.zeros(SIZE[::-1], bool)
    shown[:, : CLEAR_FROM - 2] = True
    for i in range(3):
        fg, _ = interior(true_mask(i, SIZE))
        assert alpha[i][fg & hidden].max() <= 2, f"frame {i}: the source's transparent pixels came out opaque"
        assert alpha[i][fg & shown].min() >= 250  # the subject where the source shows it stays opaque
    mask = tmp_path / "mask.mkv"
    process_video(src, mask, kind="mask", segmenter=seg, smooth="none")
    m = read_video(mask, "gray").images[0]
    fg, _ = interior(true_mask(0, SIZE))
    assert m[fg & hidden].max() <= 2 and m[fg & shown].min() >= 250


def test_a_bt709_camera_clips_subject_keeps_its_colour_in_the_cut_out(tmp_path, seg):
    """Where the matte is 1 the cut-out's RGB is the source's, by BT.709's formula: a limited-range 4:2:0
    clip (what cameras and phones write) lost up to 1.7 levels of green that way before."""
    from media import yuv_to_rgb

    subject, background = (120, 100, 170), (60, 200, 100)  # a warm orange (R > B: the red key's subject), a blue
    n = 3
    path = tmp_path / "cam.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"qp": "0", "preset": "ultrafast"})  # lossless YUV
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        cc = stream.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 1, 1, 1, 1
        for i in range(n):
            inside = true_mask(i, SIZE) > 0
            frame = av.VideoFrame(*SIZE, "yuv420p")
            for p, plane in enumerate(frame.planes):
                pixels = np.where(inside, subject[p], background[p]).astype(np.uint8)
                if p:  # chroma at half size
                    pixels = cv2.resize(pixels, (plane.width, plane.height), interpolation=cv2.INTER_AREA)
                rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
                rows[:, : plane.width] = pixels
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    folder = tmp_path / "cut"
    process_video(path, folder, segmenter=seg, kind="alpha", smooth="none")
    want = yuv_to_rgb(subject, colorspace=1)
    for i, f in enumerate(sorted(folder.iterdir())):
        rgba = cv2.cvtColor(cv2.imread(str(f), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
        fg, _ = interior(true_mask(i, SIZE))
        assert (rgba[..., 3][fg] == 255).all()
        err = np.abs(rgba[..., :3][fg].astype(float) - want).max(axis=0)
        assert err.max() <= 1, f"frame {i}: RGB {err.round(2)} levels from the source's colour {want.round(2)}"
