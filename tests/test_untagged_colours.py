"""Untagged video's colours (`--input-colors`): a video that names no YUV matrix (most H.264 from plain ffmpeg or
x264) is read as the players people judge by show it, HD as BT.709 and SD as BT.601, and its video outputs say so.

The model keeps everything (alpha 1), so the output's pixels are the source's; the clips are two frames of
lossless 4:4:4 H.264 colour bars, untagged, 1280x720 (the smallest size players take as HD) or 720x576.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_process_colours import colour_tags, keep_all  # noqa: F401 (a fixture)

from birefvid.cli import main

HD, SD = (1280, 720), (720, 576)
# (Kr, Kb) of each matrix: R = Y + 2(1-Kr) V, B = Y + 2(1-Kb) U, G from Y's weights
BT709, BT601 = (0.2126, 0.0722), (0.299, 0.114)


def untagged_bars(path: Path, size: tuple[int, int]) -> Path:
    """Two frames of colour bars, lossless 4:4:4 H.264 that names no matrix, primaries, transfer or range."""
    w, h = size
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"smptehdbars=s={w}x{h}:r=25", "-frames:v", "2",
                    "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p", str(path)], check=True)  # fmt: skip
    assert colour_tags(path) == (None, None, None, None)
    return path


def yuv444(path: Path, size: tuple[int, int]) -> np.ndarray:
    """The first frame's Y, U and V samples as FFmpeg decodes them, unconverted, (3, H, W) float."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "yuv444p", "-"],
                         capture_output=True, check=True).stdout  # fmt: skip
    return np.frombuffer(out, np.uint8).reshape(3, size[1], size[0]).astype(float)


def formula_rgb(yuv: np.ndarray, matrix: tuple[float, float]) -> np.ndarray:
    """Limited-range YUV samples (3, H, W) as 8-bit RGB (H, W, 3) float by ``matrix``'s formula, not by swscale."""
    kr, kb = matrix
    y, u, v = (yuv[0] - 16) / 219, (yuv[1] - 128) / 224, (yuv[2] - 128) / 224
    r, b = y + 2 * (1 - kr) * v, y + 2 * (1 - kb) * u
    g = (y - kr * r - kb * b) / (1 - kr - kb)
    return np.clip(np.stack([r, g, b], -1) * 255, 0, 255)


def first_png(folder: Path) -> np.ndarray:
    """The first PNG of a sequence as RGB float."""
    return cv2.imread(str(sorted(folder.glob("*.png"))[0]), cv2.IMREAD_COLOR)[..., ::-1].astype(float)


def cut(src: Path, out: Path, *options: str) -> None:
    assert main(["process", str(src), "-o", str(out), "--no-foreground", "--smooth", "none", "-q", *options]) == 0


@pytest.mark.parametrize(("size", "options", "matrix"), [
    (HD, (), BT709),  # as mpv, VLC, browsers, QuickTime and Resolve show it; FFmpeg's swscale alone reads BT.601
    (HD, ("--input-colors", "bt601"), BT601),
    (SD, ("--input-colors", "bt709"), BT709),
], ids=["hd", "hd-told-bt601", "sd-told-bt709"])  # fmt: skip
def test_an_untagged_clips_pngs_have_the_colours_players_show(tmp_path, keep_all, size, options, matrix):
    """A PNG sequence of an untagged clip: each pixel the formula's colour of the matrix players read it with
    (or the one the user names), within rounding. Read as BT.601 whatever its size, the HD bars' PNGs were up to
    41 levels away from what a player shows (3.8 on average)."""
    src = untagged_bars(tmp_path / "bars.mp4", size)
    out = tmp_path / "png"
    cut(src, out, "--output", "foreground", *options)
    diff = np.abs(first_png(out) - formula_rgb(yuv444(src, size), matrix))
    assert diff.max() < 0.75, f"max {diff.max():.2f}"  # rounding, and swscale's 1/65536 coefficients
    assert diff.mean() < 0.25


@pytest.mark.parametrize(("size", "options", "tag", "matrix"), [
    (HD, (), "bt709", BT709),
    (HD, ("--input-colors", "bt601"), "smpte170m", BT601),
    (SD, ("--input-colors", "bt709"), "bt709", BT709),
], ids=["hd", "hd-told-bt601", "sd-told-bt709"])  # fmt: skip
def test_a_background_composited_into_an_untagged_clip_keeps_its_colour(tmp_path, keep_all, size, options, tag, matrix):
    """``--output composite --background`` into an untagged clip, the subject cut away (``--invert``): the
    background's colour, decoded by the formula of the matrix the output names (or of the one players take
    untagged video of its size as), is the one asked for. Converted with BT.601 and left untagged, an HD clip's
    #3060c0 (48,96,192) came back as BT.709 players show it at 43,98,197."""
    src = untagged_bars(tmp_path / "bars.mp4", size)
    out = tmp_path / "composite.mkv"
    cut(src, out, "--output", "composite", "--background", "#3060c0", "--invert", "--codec", "libx264", "--crf", "0",
        "--pix-fmt", "yuv444p", *options)  # fmt: skip
    assert colour_tags(out)[0] == tag
    got = formula_rgb(yuv444(out, size), matrix)[8:-8, 8:-8]  # away from the edges: the matte is 0 everywhere but feathered
    assert np.abs(got - (0x30, 0x60, 0xC0)).max() <= 1.0


def test_a_matrix_the_clip_names_is_kept(tmp_path, keep_all, caplog):
    """``--input-colors`` is for video that names no matrix: an HD clip tagged BT.709 stays BT.709, with a warning."""
    w, h = HD
    src = tmp_path / "tagged.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"smptehdbars=s={w}x{h}:r=25", "-frames:v", "2",
                    "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p", "-colorspace", "bt709", str(src)], check=True)  # fmt: skip
    out = tmp_path / "png"
    with caplog.at_level("WARNING", logger="birefvid"):
        cut(src, out, "--output", "foreground", "--input-colors", "bt601")
    assert "names its colour matrix (bt709), which is kept" in caplog.text
    assert np.abs(first_png(out) - formula_rgb(yuv444(src, HD), BT709)).max() < 0.75


def test_an_unknown_choice_is_one_line(tmp_path, capsys):
    """A mistyped choice is refused by the parser, naming the choices."""
    with pytest.raises(SystemExit) as exit_info:
        main(["process", str(tmp_path / "x.mp4"), "-o", str(tmp_path / "o.mp4"), "--input-colors", "rec709"])
    assert exit_info.value.code != 0
    assert "bt709" in capsys.readouterr().err


def test_an_untagged_hd_clip_shrunk_below_hd_is_bt601(tmp_path, keep_all):
    """``--max-size 640`` on an untagged 720p clip: read as BT.709 (its size's matrix, as players show it), then written
    at 640x360 with the matrix that size calls for, BT.601, and tagged so, as a shrunk PNG plate's video is: players
    that read the tag and those that guess by size agree. It kept the BT.709 assumed of the source, which a player
    guessing by the output's size showed up to 34 levels off."""
    src = untagged_bars(tmp_path / "bars.mp4", HD)
    out = tmp_path / "small.mkv"
    cut(src, out, "--output", "foreground", "--max-size", "640", "--codec", "libx264", "--crf", "0", "--pix-fmt", "yuv444p")
    assert colour_tags(out)[0] == "smpte170m"
    small = (640, 360)
    want = cv2.resize(formula_rgb(yuv444(src, HD), BT709).astype(np.float32), small, interpolation=cv2.INTER_AREA)
    diff = np.abs(formula_rgb(yuv444(out, small), BT601) - want)
    # the shrunk picture's rounding to 8-bit RGB, then its YUV samples', which the formula's saturated colours magnify
    assert diff.max() <= 2.5, f"max {diff.max():.2f}"
    assert diff.mean() < 0.3, f"mean {diff.mean():.2f}"
