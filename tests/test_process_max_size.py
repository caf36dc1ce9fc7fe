"""`--max-size`: the output scaled down (longer side at most N, aspect kept, even sizes), the whole run
working at that size; timing and sound unchanged; batch chunks too; bad values refused."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from birefvid.api import process_video
from birefvid.cli import main
from birefvid.io.scale import scaled_size
from media import audio_duration, read_alpha
from process_fixtures import decoded_times, interior, make_scene, max_err, red_key_segmenter, true_mask
from test_batch_media import MODEL, keyframed_clip, manifest

SIZE = (64, 48)


@pytest.fixture(scope="module")
def seg():
    return red_key_segmenter()


def test_the_output_is_scaled_down_with_the_same_frames_times_and_sound(tmp_path, seg):
    src = make_scene(tmp_path / "in.mov", 6, SIZE)
    out = tmp_path / "small.mov"
    process_video(src.path, out, kind="alpha", segmenter=seg, smooth="none", max_size=32)
    _, alpha, _ = read_alpha(out)
    assert alpha.shape == (6, 24, 32)
    for k, a in enumerate(alpha):
        want = cv2.resize(true_mask(k, SIZE), (32, 24), interpolation=cv2.INTER_AREA)
        fg, bg = interior(want, margin=2)
        assert max_err(a, 255, fg) <= 3 and max_err(a, 0, bg) <= 3, f"frame {k}: the matte is not the scaled subject"
    assert decoded_times(out) == decoded_times(src.path)
    assert audio_duration(out) == pytest.approx(audio_duration(src.path), abs=0.05)


def test_a_rotated_phone_video_is_scaled_upright(tmp_path, seg):
    src = make_scene(tmp_path / "phone.mp4", 4, SIZE, rotation=90, lossless=False, pix_fmt="yuv444p", with_audio=False)
    out = tmp_path / "small.mkv"
    process_video(src.path, out, kind="mask", segmenter=seg, smooth="none", max_size=32)
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert (v.width, v.height) == (24, 32)  # 48x64 upright, longer side 32


def test_a_small_video_is_not_enlarged(tmp_path, seg):
    src = make_scene(tmp_path / "in.mov", 3, SIZE, with_audio=False)
    out = tmp_path / "same.mkv"
    process_video(src.path, out, kind="mask", segmenter=seg, smooth="none", max_size=640)
    with av.open(str(out)) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == SIZE


def test_batch_chunks_are_scaled_alike(tmp_path):
    src = keyframed_clip(tmp_path / "long.mp4", 24)
    out = tmp_path / "out"
    assert main(["batch", str(src), "--output-dir", str(out), "--output", "mask", "--chunk-frames", "6", "--max-size", "32", "-q", *MODEL]) == 0
    assert manifest(out)["videos"]["long.mkv"]["chunks"] == 4
    with av.open(str(out / "long.mkv")) as c:
        v = c.streams.video[0]
        frames = [f.width for f in c.decode(v)]
    assert len(frames) == 24 and set(frames) == {32}


def test_a_size_under_8_px_is_one_error_line(tmp_path, capsys):
    rc = main(["process", "in.mp4", "-o", str(tmp_path / "x.mkv"), "--max-size", "4"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--max-size must be a whole number of pixels, 8 or more" in err[0]


def test_scaled_size():
    assert scaled_size(1920, 1080, 480) == (480, 270)
    assert scaled_size(1080, 1920, 480) == (270, 480)
    assert scaled_size(1280, 720, 1280) == (1280, 720)  # already fits: unchanged, odd sides too
    assert scaled_size(641, 361, 1000) == (641, 361)
    assert scaled_size(4000, 30, 100) == (100, 8)  # never under birefvid's 8 px
    assert np.all(np.array(scaled_size(1000, 562, 500)) % 2 == 0)
