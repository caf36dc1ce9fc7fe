"""Backgrounds (colour, image, looping video) and colour parsing."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from birefvid.compose import ColorBackground, StillBackground, StreamBackground, cover, parse_color
from birefvid.runtime.backgrounds import open_background
from birefvid.errors import ConfigError, SourceError

SIZE = (64, 48)  # (width, height)
LEVELS = [0, 60, 120, 180, 240]


def _write_video(path: Path, levels: list[int], width: int = 40, height: int = 20, codec: str = "ffv1") -> Path:
    """A short video whose frame i is a flat grey of ``levels[i]`` (lossless FFV1 by default)."""
    with av.open(str(path), mode="w", format="matroska" if codec == "ffv1" else None) as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        for level in levels:
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), level, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize(
    "spec, rgb",
    [
        ("#00ff00", (0, 255, 0)),
        ("00FF00", (0, 255, 0)),
        ("#f00", (255, 0, 0)),
        ("green", (0, 255, 0)),
        (" White ", (255, 255, 255)),
        ("0,255,0", (0, 255, 0)),
        ("12, 34 ,56", (12, 34, 56)),
        ("(1,2,3)", (1, 2, 3)),
        ((7, 8, 9), (7, 8, 9)),
        ("255,255,255,255", (255, 255, 255)),  # rembg's -bgc R G B A, opaque
        ("255 255 255 255", (255, 255, 255)),  # ... as rembg users type it, quoted
        ("0 177 64", (0, 177, 64)),
        ("#00b140ff", (0, 177, 64)),  # CSS's #rrggbbaa
    ],
)
def test_parse_color(spec, rgb) -> None:
    assert parse_color(spec) == rgb


@pytest.mark.parametrize("spec, alpha", [("255,255,255,0", 0), ("255 255 255 128", 128), ("#ffffff80", 128)])
def test_a_see_through_colour_is_refused_as_a_colour_not_looked_for_as_a_file(spec, alpha) -> None:
    """rembg's -bgc with alpha < 255 was 'background not found: 255,255,255,0', as if it were a file name."""
    with pytest.raises(ConfigError, match=f"has alpha {alpha}: a background or key colour is opaque.*--output alpha"):
        open_background(spec, SIZE)


@pytest.mark.parametrize("bad", ["", "#12345", "gren", "0,256,0", "1,2", "#gg0000", (1, 2), (0.5, 1, 2), (1, 2, 300)])
def test_parse_color_rejects_bad_input(bad) -> None:
    with pytest.raises(ConfigError, match=r"expected '#rrggbb', 'rrggbb', '#rgb', 'r,g,b'.*green"):
        parse_color(bad)
    with pytest.raises(ValueError):  # ConfigError is also a ValueError
        parse_color(bad)


def test_cover_keeps_aspect_and_centres() -> None:
    """A 40x40 square centred in a 200x100 image stays square after covering 64x48."""
    image = np.full((100, 200, 3), 255, np.uint8)
    image[30:70, 80:120] = 0
    out = cover(image, SIZE)
    assert out.shape == (48, 64, 3)
    dark = out[..., 0] < 128
    rows, cols = np.nonzero(dark)
    h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert abs(int(h) - int(w)) <= 1 and 18 <= h <= 21  # scale max(64/200, 48/100) = 0.48: 40 px -> ~19
    assert abs((rows.min() + rows.max()) / 2 - 23.5) <= 1 and abs((cols.min() + cols.max()) / 2 - 31.5) <= 1


def test_cover_crops_the_long_side() -> None:
    """Covering a portrait frame from a landscape image keeps only its middle third."""
    image = np.zeros((30, 90, 3), np.uint8)
    image[:, :30] = (255, 0, 0)
    image[:, 30:60] = (0, 255, 0)
    image[:, 60:] = (0, 0, 255)
    out = cover(image, (20, 30))
    assert out.shape == (30, 20, 3)
    assert (out[..., 1] == 255).all() and (out[..., 0] == 0).all()


def test_a_circle_stays_round_on_screen_for_non_square_pixels() -> None:
    """DV widescreen stores 720x480 pixels shown 32/27 times wider than tall: the photo is covered as
    it will be seen, so a round dot in it is narrower in stored pixels and round on screen."""
    image = np.full((480, 854, 3), 255, np.uint8)  # a 16:9 photo, square pixels
    cv2.circle(image, (427, 240), 100, (0, 0, 0), -1)
    for aspect, stored_width in ((1.0, 200), (32 / 27, 200 * 27 / 32)):
        out = cover(image, (720, 480), aspect)
        rows, cols = np.nonzero(out[..., 0] < 128)
        assert out.shape == (480, 720, 3) and rows.max() - rows.min() + 1 == pytest.approx(200, abs=2)
        assert cols.max() - cols.min() + 1 == pytest.approx(stored_width, abs=2)  # x aspect on screen: 200 wide


def test_a_background_videos_own_pixel_shape_counts(tmp_path) -> None:
    """A 4:3 background stored squeezed (pixels twice as wide) behind a square-pixel output: unsqueezed."""
    path = tmp_path / "bg.mov"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = 32, 48, "rgb24"
        stream.codec_context.sample_aspect_ratio = 2  # shown 64x48
        picture = np.zeros((48, 32, 3), np.uint8)
        picture[:, :8] = 255  # the left quarter as shown
        picture[12:24, :] = 255  # and a band across, a quarter of the height from the top
        out.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        out.mux(stream.encode(None))
    with open_background(path, SIZE) as bg:  # SIZE is 64x48, square pixels
        frame = bg.frames(1)[0, 0].numpy()
    # seen as 64x48 it fits as it is; taken as 32x48 it would be doubled in height and cropped
    assert (frame[:, :15] > 200).all() and (frame[:11, 17:] < 50).all() and (frame[25:, 17:] < 50).all()
    assert (frame[13:23, 17:] > 200).all()


def test_color_background(tmp_path) -> None:
    with open_background("green", SIZE, device="cpu") as bg:
        assert isinstance(bg, ColorBackground)
        frames = bg.frames(3)
    assert frames.shape == (3, 3, 48, 64) and frames.dtype == torch.uint8
    assert (frames == torch.tensor([0, 255, 0], dtype=torch.uint8).view(1, 3, 1, 1)).all()


def test_image_background(tmp_path) -> None:
    path = tmp_path / "bg.png"
    rgb = np.zeros((96, 128, 3), np.uint8)
    rgb[..., 0] = 200  # red
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    with open_background(str(path), SIZE) as bg:
        assert isinstance(bg, StillBackground)
        frames = bg.frames(2)
    assert frames.shape == (2, 3, 48, 64)
    assert (frames[:, 0] == 200).all() and (frames[:, 1:] == 0).all()


def test_a_transparent_pngs_hidden_colours_stay_hidden(tmp_path, caplog) -> None:
    """A background PNG with see-through parts showed the colours they hide (green here) and a logo's
    unblended edge; they are shown over black now, with a warning saying so."""
    path = tmp_path / "logo.png"
    bgra = np.zeros((48, 64, 4), np.uint8)
    bgra[:, :32] = (0, 0, 200, 255)  # opaque red
    bgra[:, 32:48] = (0, 255, 0, 0)  # transparent, hiding green
    bgra[:, 48:] = (0, 0, 200, 128)  # half see-through red
    cv2.imwrite(str(path), bgra)
    with caplog.at_level("WARNING"), open_background(str(path), SIZE) as bg:
        frame = bg.frames(1)[0].permute(1, 2, 0).numpy()
    assert (frame[:, :32] == (200, 0, 0)).all()
    assert (frame[:, 32:48] == 0).all(), "the transparent part shows its hidden colour"
    assert (np.abs(frame[:, 48:].astype(int) - (100, 0, 0)) <= 1).all()
    assert "transparent parts" in caplog.text and "over black" in caplog.text


def test_video_background_loops_and_covers(tmp_path) -> None:
    path = _write_video(tmp_path / "bg.mkv", LEVELS)
    with open_background(path, SIZE) as bg:
        assert isinstance(bg, StreamBackground)
        first = bg.frames(3)
        rest = bg.frames(9)
        assert bg.source.loops >= 2
    frames = torch.cat([first, rest])
    assert frames.shape == (12, 3, 48, 64)
    means = frames.float().mean(dim=(1, 2, 3))
    expected = torch.tensor([LEVELS[i % 5] for i in range(12)], dtype=torch.float32)
    assert torch.allclose(means, expected, atol=3)


def test_video_background_follows_the_output_frames_times(tmp_path) -> None:
    """By time, a 10 fps background (0.5 s a loop) under frames at 0.25 s steps shows every other frame and loops;
    the first time given is its start, and a gap of an hour is passed over by whole loops, not decoded."""
    path = _write_video(tmp_path / "bg.mkv", LEVELS)  # 10 fps
    with open_background(path, SIZE) as bg:
        t0 = 100.0  # an output that does not start at 0 (a trimmed run's pts)
        times = [t0 + 0.2 * i for i in range(6)]  # 0, 0.2, ... 1.0 s from its start
        frames = torch.cat([bg.frames(2, times[:2]), bg.frames(4, times[2:])])
        later = bg.frames(2, [t0 + 3600.05, t0 + 3600.35])  # 7200 loops on: its frames 0 and 3
        assert bg.source.loops <= 4, "the hour's loops were decoded"
    means = frames.float().mean(dim=(1, 2, 3)).tolist()
    assert np.allclose(means, [LEVELS[i] for i in (0, 2, 4, 1, 3, 0)], atol=3)
    assert np.allclose(later.float().mean(dim=(1, 2, 3)).tolist(), [LEVELS[0], LEVELS[3]], atol=3)


def test_video_background_times_rounded_to_the_millisecond_name_its_frames(tmp_path) -> None:
    """A Matroska input's pts are whole milliseconds (24 fps: 0, 42, 83, ...): 83 ms, short of a 48 fps background's
    frame at 83.3 ms, showed the one before it, so frames were skipped and repeated irregularly."""
    with open_background(_write_video(tmp_path / "bg.mkv", LEVELS), SIZE) as bg:  # 10 fps
        frames = bg.frames(5, [0.0, 0.0997, 0.1997, 0.2996, 0.3999])
    assert np.allclose(frames.float().mean(dim=(1, 2, 3)).tolist(), LEVELS, atol=3)


def test_a_frame_without_a_time_keeps_the_background_of_the_last_time(tmp_path) -> None:
    """A frame with no pts among timed ones (or live's held picture recomposed after a switch) took ``next_frame``
    behind ``frame_at``'s back: a frame skipped, and at the video's end the file reopened under ``frame_at``,
    which then decoded a whole loop again in one call and counted a loop too many."""
    with open_background(_write_video(tmp_path / "bg.mkv", LEVELS), SIZE) as bg:  # 10 fps, 0.5 s a loop
        before = bg.frames(5, [0.0, 0.1, 0.2, 0.3, 0.4])
        untimed = bg.frames(1, [None])
        after = bg.frames(3, [0.5, 0.6, 0.7])
        assert bg.source.loops == 1, "a loop decoded twice"
    means = torch.cat([before, untimed, after]).float().mean(dim=(1, 2, 3)).tolist()
    assert np.allclose(means, [*LEVELS, LEVELS[4], *LEVELS[:3]], atol=3)


def test_a_one_frame_background_video_is_not_reopened_at_each_step(tmp_path) -> None:
    """A still GIF (or any one-frame video) was closed, reopened and decoded again each time its one frame's
    duration was up, every output frame under a video at its rate: ~7 ms a frame for a 256 px GIF against 0.15."""
    with open_background(_write_video(tmp_path / "one.mkv", [90]), SIZE) as bg:  # 10 fps: 0.1 s a "loop"
        frames = bg.frames(30, [0.04 * i for i in range(30)])
        assert bg.source.loops <= 1, f"reopened {bg.source.loops} times"
    assert np.allclose(frames.float().mean(dim=(1, 2, 3)).tolist(), [90] * 30, atol=3)


def test_a_live_background_video_resumes_after_a_gap_rather_than_decoding_it(tmp_path) -> None:
    """Live asked the video for its frame at the time after an outage or a while on another effect, decoded through
    the time in between in one call: 1.6 s of a frozen display after 25 s of a 360p one. Past ``BACKGROUND_GAP_S``
    it resumes where it was; a gap within it is played through as before."""
    from birefvid.runtime.live import BACKGROUND_GAP_S

    levels = [5 * i for i in range(40)]  # 10 fps: 4 s a loop
    with open_background(_write_video(tmp_path / "bg.mkv", levels), SIZE) as bg:
        bg.max_gap = BACKGROUND_GAP_S  # as run_live_job sets it
        frames = bg.frames(4, [50.0, 50.1, 50.1 + BACKGROUND_GAP_S + 1, 50.2 + BACKGROUND_GAP_S + 1])
        within = bg.frames(1, [50.2 + 2 * BACKGROUND_GAP_S])  # 1 s short of the gap: played through
    means = torch.cat([frames, within]).float().mean(dim=(1, 2, 3)).tolist()
    assert np.allclose(means, [levels[i] for i in (0, 1, 1, 2, 2 + int(BACKGROUND_GAP_S * 10 - 10))], atol=3), means


def test_a_clock_that_goes_back_plays_the_background_on_rather_than_freezing_it(tmp_path) -> None:
    """Times that go back (an API caller's second clip through one compositor, a source whose clock started over)
    froze the background on its last frame until the time caught up with it again (``frame_at`` decodes forward
    only): 2 s back, 2 s of a still. It plays on, a frame's step after the last; a little back is held."""
    levels = [5 * i for i in range(40)]  # 10 fps: 4 s a loop
    with open_background(_write_video(tmp_path / "bg.mkv", levels), SIZE) as bg:
        first = bg.frames(30, [0.1 * i for i in range(30)])  # frames 0..29
        again = bg.frames(5, [1.0 + 0.1 * i for i in range(5)])  # the clock back 2 s: frames 30..34
        swapped = bg.frames(2, [1.35, 1.5])  # 0.05 s back: held on frame 34, then on at 1.5 s (frame 35)
    means = torch.cat([first, again, swapped]).float().mean(dim=(1, 2, 3)).tolist()
    assert np.allclose(means, [levels[i] for i in [*range(35), 34, 35]], atol=3), means


def test_one_compositor_called_from_two_threads_keeps_each_calls_times(tmp_path) -> None:
    """The times of a call were kept on the compositor between ``__call__`` and the background's turn, so another
    thread's call in between replaced them: ``frames(n, times) needs n times, got 0 for n=1`` (any background)."""
    import sys
    import threading

    from birefvid.compose.compositor import Compositor

    errors: list[str] = []
    compositor = Compositor("composite", background=ColorBackground("#808080", SIZE, "cpu"))

    def work(n: int) -> None:
        images = torch.zeros((n, 3, SIZE[1], SIZE[0]), dtype=torch.uint8)
        alphas = torch.zeros((n, 1, SIZE[1], SIZE[0]))
        try:
            for _ in range(150):
                assert compositor(images, alphas, times=[0.1 * i for i in range(n)]).shape[0] == n
        except Exception as exc:  # noqa: BLE001  # said below, from the main thread
            errors.append(repr(exc))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns often: the race shows in a few calls rather than by chance
    try:
        threads = [threading.Thread(target=work, args=(n,)) for n in (1, 3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors[:1]


def test_a_deep_composite_takes_each_frames_own_time(tmp_path) -> None:
    """The 16-bit path composites a batch a frame at a time on the CPU: frame i still gets the background at time i."""
    from birefvid.compose.compositor import Compositor

    with open_background(_write_video(tmp_path / "bg.mkv", LEVELS), SIZE, deep=True) as bg:
        compositor = Compositor("composite", background=bg, bits=16, foreground=False)
        images = torch.zeros((3, 3, SIZE[1], SIZE[0]), dtype=torch.uint8)
        alphas = torch.zeros((3, 1, SIZE[1], SIZE[0]))  # all background
        first = compositor(images, alphas, images.float(), times=[5.0, 5.2, 5.4])
        second = compositor(images[:2], alphas[:2], images[:2].float(), times=[5.5, 5.7])
    means = torch.cat([first, second]).float().mean(dim=(1, 2, 3)).div(257).tolist()
    assert np.allclose(means, [LEVELS[i] for i in (0, 2, 4, 0, 2)], atol=3)


def test_video_with_unknown_extension_is_probed(tmp_path) -> None:
    path = _write_video(tmp_path / "clip.bin", LEVELS[:2])
    with open_background(path, SIZE) as bg:
        assert isinstance(bg, StreamBackground)
        assert bg.frames(3).shape == (3, 3, 48, 64)


def test_close_is_idempotent(tmp_path) -> None:
    bg = open_background(_write_video(tmp_path / "bg.mkv", LEVELS[:1]), SIZE)
    bg.close()
    bg.close()
    with pytest.raises(ValueError, match="closed"):
        bg.frames(1)


def test_missing_background_file(tmp_path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(SourceError, match="background not found: .*nope.png"):
        open_background(str(missing), SIZE)
    with pytest.raises(OSError):  # SourceError is also an OSError
        open_background(tmp_path / "nope.mp4", SIZE)


@pytest.mark.parametrize("name", ["bad.png", "bad.mp4", "bad.dat"])
def test_unreadable_background_file(tmp_path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"this is not media" * 10)
    with pytest.raises(SourceError, match="unreadable"):
        open_background(str(path), SIZE)


def test_bad_size_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="width, height"):
        ColorBackground("black", (0, 10))


def test_rotated_background_video_is_upright(tmp_path) -> None:
    """A phone video used as a background is shown the way it was filmed (display matrix applied)."""
    from media import make_video

    clip = make_video(tmp_path / "phone.mp4", n_frames=2, size=(64, 48), rotation=90, with_audio=False)
    upright = np.rot90(clip.frames[0], k=1)  # 48 wide, 64 tall
    with open_background(clip.path, (48, 64)) as bg:
        first = bg.frames(1)[0].permute(1, 2, 0).numpy()
    assert np.abs(first.astype(int) - upright.astype(int)).mean() < 8
