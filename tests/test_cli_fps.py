"""``--fps`` sets an image sequence's rate; given with a video, which keeps its own timing, it says so
instead of being ignored without a word (users take it for a frame-rate change)."""

from __future__ import annotations

import av
from PIL import Image
from process_fixtures import make_scene, scene_frame

from birefvid.cli import main

FPS_WARNING = "--fps sets an image sequence's frame rate"


def _rate(path) -> float:
    with av.open(str(path)) as container:
        return float(container.streams.video[0].average_rate)


def test_fps_with_a_video_warns_and_the_video_keeps_its_rate(tmp_path, red_key, caplog):
    src = make_scene(tmp_path / "clip.mov", 6, with_audio=False).path
    assert main(["process", str(src), "-o", str(tmp_path / "out.mkv"), "--output", "mask", "--fps", "30", "-q"]) == 0
    assert [r.getMessage() for r in caplog.records if FPS_WARNING in r.getMessage()] == [
        f"{FPS_WARNING}: {src} keeps its own timing (change a video's rate with ffmpeg -i IN -r RATE OUT first)"
    ]
    assert abs(_rate(tmp_path / "out.mkv") - _rate(src)) < 0.01


def test_fps_with_an_image_sequence_sets_its_rate_without_a_warning(tmp_path, red_key, caplog):
    (tmp_path / "frames").mkdir()
    for i in range(4):
        Image.fromarray(scene_frame(i, (64, 48), False)).save(tmp_path / "frames" / f"f{i:03d}.png")
    assert main(["process", str(tmp_path / "frames"), "-o", str(tmp_path / "out.mkv"), "--output", "mask", "--fps", "30", "-q"]) == 0
    assert not [r for r in caplog.records if FPS_WARNING in r.getMessage()]
    assert abs(_rate(tmp_path / "out.mkv") - 30) < 0.01


def test_a_video_without_fps_gets_no_warning(tmp_path, red_key, caplog):
    src = make_scene(tmp_path / "clip.mov", 4, with_audio=False).path
    assert main(["process", str(src), "-o", str(tmp_path / "out.mkv"), "--output", "mask", "-q"]) == 0
    assert not [r for r in caplog.records if FPS_WARNING in r.getMessage()]


def test_batch_says_it_once_for_all_its_videos(tmp_path, red_key, caplog):
    (tmp_path / "in").mkdir()
    for name in ("a.mov", "b.mov"):
        make_scene(tmp_path / "in" / name, 4, with_audio=False)
    assert main(["batch", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out"), "--output", "mask", "--fps", "30", "-q"]) == 0
    assert [r.getMessage() for r in caplog.records if FPS_WARNING in r.getMessage()] == [
        f"{FPS_WARNING}: every video keeps its own timing (change a video's rate with ffmpeg -i IN -r RATE OUT first)"
    ]
