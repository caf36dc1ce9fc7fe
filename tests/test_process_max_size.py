"""`--max-size`: the output scaled down (longer side at most N, aspect kept, even sizes), the whole run
working at that size; timing and sound unchanged; batch chunks too; bad values refused."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from birefvid.api import process_video
from birefvid.cli import main
from birefvid.errors import ConfigError
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
    assert scaled_size(101, 77, 63) == (62, 48)  # an odd limit: the longer side stays under it (round(31.5) gave 64)
    assert scaled_size(77, 101, 63) == (48, 62)
    assert scaled_size(101, 77, 10) == (10, 8)  # the smallest limit that keeps the aspect
    assert np.all(np.array(scaled_size(1000, 562, 500)) % 2 == 0)


@pytest.mark.parametrize("size,limit,smallest", [((101, 77), 8, 10), ((4000, 30), 100, 934)])
def test_a_limit_that_would_squeeze_the_picture_under_8_px_is_refused(size, limit, smallest):
    with pytest.raises(ConfigError, match=rf"would make the {size[0]}x{size[1]} input .* use max_size={smallest} or more"):
        scaled_size(*size, limit)


def test_an_odd_limit_is_never_exceeded_and_a_too_small_one_is_one_line(tmp_path, seg, capsys):
    src = make_scene(tmp_path / "odd.mov", 2, (101, 77), with_audio=False)
    out = tmp_path / "small.mkv"
    process_video(src.path, out, kind="mask", segmenter=seg, smooth="none", max_size=63)
    with av.open(str(out)) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (62, 48)
    assert main(["process", str(src.path), "-o", str(tmp_path / "tiny.mkv"), "--max-size", "8", "--model", "tiny", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--max-size 8 would make the 101x77 input 6 px on its shorter side" in err[0], err
    assert "use --max-size 10 or more" in err[0]
    assert not (tmp_path / "tiny.mkv").exists()


def test_an_odd_sized_mp4_warns_it_will_not_play_and_the_advice_works(tmp_path, seg, caplog):
    """An odd-sized clip (a cropped or screen-recorded one) into H.264 is 4:4:4, which browsers, QuickTime
    and phones do not play: a warning says so and names the --max-size that makes it even 4:2:0."""
    src = make_scene(tmp_path / "odd.mov", 2, (65, 47), with_audio=False)
    with caplog.at_level("WARNING", logger="birefvid.io.factory"):
        process_video(src.path, tmp_path / "g.mp4", kind="green", segmenter=seg, smooth="none")
    said = [r.getMessage() for r in caplog.records if "odd size" in r.getMessage()]
    assert len(said) == 1 and "4:4:4" in said[0] and "max_size=64 makes it 64x46" in said[0]  # the API names options as keywords
    caplog.clear()
    with caplog.at_level("WARNING", logger="birefvid.io.factory"):
        process_video(src.path, tmp_path / "even.mp4", kind="green", segmenter=seg, smooth="none", max_size=64)
    assert not [r for r in caplog.records if "odd size" in r.getMessage()]
    with av.open(str(tmp_path / "even.mp4")) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.width, cc.height) == (64, 46) and cc.pix_fmt.startswith(("yuv420p", "yuvj420p"))  # 4:2:0 (the clip is full range)
