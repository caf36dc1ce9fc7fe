"""Animated WebP as input: every frame, at its own time, with the pixels it was made of.

The animations are made here with Pillow (lossless, so decoded pixels equal the generated ones),
6 frames of 96x64 shown for 40, 80, 40, 120, 60 and 40 ms. FFmpeg decodes still WebP only, so
``open_source`` reads these with Pillow; a still WebP still goes through FFmpeg.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from birefvid.cli import main
from birefvid.errors import SourceError
from birefvid.frames import Frame
from birefvid.io import open_source
from birefvid.io.animated_source import AnimatedWebPSource, is_animated_webp
from birefvid.io.base import Source
from birefvid.io.trim import TrimmedSource
from birefvid.io.video_source import VideoFileSource

W, H = 96, 64
DURATIONS = [40, 80, 40, 120, 60, 40]  # ms
STARTS = [0, 40, 120, 160, 280, 340]  # each frame's start: the durations before it, summed
FAST_MODEL = ["--model", "tiny", "--device", "cpu", "--resolution", "64", "-q"]


def frames_rgb(n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` distinct noisy RGB frames (every pixel differs from frame to frame, so none is merged)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(n)]


def write_webp(path: Path, frames: list[np.ndarray], durations: list[int]) -> Path:
    """A lossless animated WebP of ``frames`` (RGB or RGBA), each shown ``durations[i]`` ms, looping."""
    pictures = [Image.fromarray(f) for f in frames]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=durations, lossless=True, exact=True, loop=0)
    return path


@pytest.fixture(scope="module")
def anim(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    frames = frames_rgb(len(DURATIONS))
    return write_webp(tmp_path_factory.mktemp("webp") / "anim.webp", frames, DURATIONS), frames


def read_all(path: Path) -> tuple[Source, list[Frame]]:
    with open_source(path) as source:
        return source, list(source)


def decoded_times(path: Path) -> list[float]:
    """Each frame's time in seconds, as FFmpeg reads the file back."""
    with av.open(str(path)) as c:
        return [float(f.time) for f in c.decode(video=0)]


def test_frames_times_and_pixels_are_those_written(anim):
    path, frames = anim
    source, got = read_all(path)
    assert isinstance(source, AnimatedWebPSource)
    info = source.info
    assert (info.width, info.height, info.frame_count) == (W, H, 6)
    assert info.time_base == Fraction(1, 1000) and info.duration == pytest.approx(0.38)
    assert info.average_rate == Fraction(6000, 380)  # 6 frames in 380 ms
    assert [f.pts for f in got] == STARTS and [f.index for f in got] == list(range(6))
    for i, (frame, want) in enumerate(zip(got, frames)):
        assert frame.image.dtype == np.uint8 and frame.image.shape == (H, W, 3)
        assert np.array_equal(frame.image, want), f"frame {i} differs"
    with Image.open(path) as im:  # Pillow's own clock agrees
        pillow = []
        for k in range(im.n_frames):
            im.seek(k)
            im.load()
            pillow.append(im.info["timestamp"])
    assert pillow == STARTS
    with open_source(path, "decord") as other:  # no video decoder reads it: Pillow does, whichever was asked for
        assert isinstance(other, AnimatedWebPSource)


def test_transparent_pixels_are_seen_over_black(tmp_path):
    rgba = []
    for k, rgb in enumerate(frames_rgb(4, seed=1)):
        alpha = np.tile(np.linspace(0, 255, W).astype(np.uint8), (H, 1))
        alpha[: 8 + 4 * k] = 0  # a transparent band that grows, and opaque at the right edge
        rgba.append(np.dstack([rgb, alpha]))
    path = write_webp(tmp_path / "cut.webp", rgba, [40] * 4)
    _, got = read_all(path)
    assert len(got) == 4
    for frame, want in zip(got, rgba):
        a = want[..., 3:].astype(int)
        expected = (want[..., :3].astype(int) * a + 127) // 255
        assert np.array_equal(frame.image, expected)
        assert frame.image[0].max() == 0  # the transparent band is black


def test_frames_of_10_ms_or_less_last_100_ms_as_in_browsers(tmp_path):
    path = write_webp(tmp_path / "zero.webp", frames_rgb(4), [0, 40, 10, 11])
    source, got = read_all(path)
    assert [f.pts for f in got] == [0, 100, 140, 240]  # 0 and 10 ms become 100 ms; 11 ms is kept
    assert source.info.duration == pytest.approx(0.251)


def test_a_time_range_of_an_animation(anim):
    path, frames = anim
    with TrimmedSource(open_source(path), 0.1, 0.3) as part:
        got = list(part)
    assert [f.pts for f in got] == [0, 40, 160]  # the frames at 120, 160 and 280 ms, from 0
    assert np.array_equal(got[0].image, frames[2])


def test_a_still_webp_still_goes_through_ffmpeg(tmp_path):
    path = tmp_path / "still.webp"
    picture = frames_rgb(1, seed=2)[0]
    Image.fromarray(picture).save(path, lossless=True)
    assert not is_animated_webp(path)
    source, got = read_all(path)
    assert isinstance(source, VideoFileSource)
    assert len(got) == 1 and np.array_equal(got[0].image, picture)


@pytest.mark.parametrize("keep", [0.5, -1], ids=["half", "all-but-1-byte"])
def test_a_truncated_animation_is_one_clear_error(anim, tmp_path, keep, capsys):
    path, _ = anim
    data = path.read_bytes()
    cut = tmp_path / "cut.webp"
    cut.write_bytes(data[: int(len(data) * keep)] if keep > 0 else data[:keep])
    assert is_animated_webp(cut)
    with pytest.raises(SourceError, match="truncated.*damaged"):
        open_source(cut)
    rc = main(["process", str(cut), "-o", str(tmp_path / "out.webm"), *FAST_MODEL])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "truncated" in err[0]
    assert not (tmp_path / "out.webm").exists()


def test_a_damaged_frame_is_one_clear_error_naming_it(anim, tmp_path):
    path, _ = anim
    data = bytearray(path.read_bytes())
    third = [i for i in range(len(data) - 4) if data[i : i + 4] == b"ANMF"][2]
    for k in range(third + 60, third + 260, 3):  # scramble frame 2's picture data, not the chunk sizes
        data[k] ^= 0x5A
    bad = tmp_path / "bad.webp"
    bad.write_bytes(bytes(data))
    with open_source(bad) as source:
        frames = iter(source)
        assert [next(frames).index for _ in range(2)] == [0, 1]
        with pytest.raises(SourceError, match="decoding failed at frame 2.*damaged"):
            next(frames)


def test_process_keeps_every_frame_and_its_time(anim, tmp_path):
    path, _ = anim
    out = tmp_path / "out.webm"
    assert main(["process", str(path), "-o", str(out), *FAST_MODEL]) == 0
    assert decoded_times(out) == pytest.approx([t / 1000 for t in STARTS])


def test_live_plays_an_animation_at_its_times(anim, tmp_path):
    path, _ = anim
    out = tmp_path / "session.mkv"
    assert main(["live", "--source", str(path), "--effect", "blur", "--sink", str(out), *FAST_MODEL[:-1]]) == 0
    assert decoded_times(out) == pytest.approx([t / 1000 for t in STARTS])


def test_batch_takes_animations_from_a_folder_and_leaves_stills(anim, tmp_path):
    path, _ = anim
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "sticker.webp").write_bytes(path.read_bytes())
    Image.fromarray(frames_rgb(1)[0]).save(inputs / "photo.webp")  # a still picture, not a video
    out = tmp_path / "out"
    assert main(["batch", str(inputs), "--output-dir", str(out), "--ext", ".webm", *FAST_MODEL]) == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["sticker.webm"]
    assert decoded_times(out / "sticker.webm") == pytest.approx([t / 1000 for t in STARTS])
