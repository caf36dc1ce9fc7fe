"""GIF, animated WebP and APNG outputs: transparency where the mask is 0, each frame's time, looping.

The outputs are read back with Pillow, a decoder independent of the FFmpeg that wrote them (and
FFmpeg cannot read animated WebP). The red-key test model (process_fixtures) makes alpha exactly
1 on the red square and 0 on the blue background, checked on each region's interior.
"""

from __future__ import annotations

import logging
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from birefvid.api import process_video
from birefvid.cli import main
from birefvid.frames import StreamInfo
from birefvid.io.animated_sink import AnimatedImageSink, gif_quantize
from birefvid.io.formats import choose_encoder
from birefvid.io.last_delay import apng_delay, apng_set_last_delay, webp_set_last_end
from birefvid.io.record_sink import RecordingSink
from process_fixtures import (
    RED,
    FailingRedKey,
    interior,
    make_scene,
    max_err,
    partial_leftovers,
    red_key_segmenter,
    true_mask,
)

SIZE = (64, 48)
N = 6
FORMATS = ("gif", "webp", "apng")
# alpha / RGB tolerance on the interiors: GIF's transparency is on/off and its red is a palette
# entry; WebP codes colour lossy (libwebp quality 90) and alpha losslessly; APNG is lossless
ALPHA_TOL = {"gif": 0, "webp": 0, "apng": 0}
RGB_TOL = {"gif": 2, "webp": 12, "apng": 0}


@pytest.fixture(scope="module")
def seg():
    return red_key_segmenter()


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """6 frames, 64x48, lossless, 25 fps, with AAC audio (which these formats cannot hold)."""
    return make_scene(tmp_path_factory.mktemp("in") / "scene.mov", N, SIZE)


def read_animation(path: Path) -> tuple[list[np.ndarray], list[float], int | None]:
    """Every frame as RGBA, each frame's duration in ms, and the loop count (0: forever), via Pillow."""
    with Image.open(path) as im:
        frames, durations = [], []
        for k in range(im.n_frames):
            im.seek(k)
            frames.append(np.asarray(im.convert("RGBA")))
            durations.append(float(im.info["duration"]))
        return frames, durations, im.info.get("loop")


@pytest.mark.parametrize("fmt", FORMATS)
def test_alpha_animation_is_transparent_where_the_mask_is_0(tmp_path, scene, seg, fmt, caplog):
    out = tmp_path / f"cut.{fmt}"
    with caplog.at_level(logging.WARNING):
        report = process_video(scene.path, out, kind="alpha", segmenter=seg, smooth="none")
    assert report["frames"] == N
    frames, durations, loop = read_animation(out)
    assert len(frames) == N
    assert loop == 0, "the animation loops forever"
    assert durations[:-1] == [40.0] * (N - 1)  # 25 fps
    for i, rgba in enumerate(frames):
        fg, bg = interior(true_mask(i, SIZE))
        assert max_err(rgba[..., 3], 255, fg) <= ALPHA_TOL[fmt], f"frame {i}: subject not opaque"
        assert max_err(rgba[..., 3], 0, bg) <= ALPHA_TOL[fmt], f"frame {i}: background not transparent"
        assert max_err(rgba[..., :3], RED, fg) <= RGB_TOL[fmt], f"frame {i}: subject colour changed"
    assert "cannot hold audio" in caplog.text
    assert partial_leftovers(tmp_path) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_variable_frame_times_are_kept(tmp_path, seg, fmt):
    pts = [0, 40, 100, 120, 200, 240, 330]
    src = make_scene(tmp_path / "vfr.mov", len(pts), SIZE, pts=pts, time_base=Fraction(1, 1000), with_audio=False)
    out = tmp_path / f"vfr.{fmt}"
    process_video(src.path, out, kind="alpha", segmenter=seg, smooth="none")
    _, durations, _ = read_animation(out)
    assert durations[:-1] == [float(b - a) for a, b in zip(pts, pts[1:])]


def test_a_gif_s_last_frame_stays_as_long_as_the_source_shows_it(tmp_path, seg):
    """FFmpeg's GIF muxer gave the last frame 40 ms whatever the source: a 10 fps GIF flashed it at each loop, and
    a GIF's held last frame (backgroundremover's -tg users cut out GIFs too) was cut to 40 ms."""
    src = make_scene(tmp_path / "slow.mov", 4, SIZE, fps=10, with_audio=False)
    process_video(src.path, tmp_path / "slow.gif", kind="alpha", segmenter=seg, smooth="none")
    assert read_animation(tmp_path / "slow.gif")[1] == [100.0] * 4
    frames = [Image.fromarray(f) for f in src.frames[:3]]  # distinct pictures: Pillow merges equal ones
    frames[0].save(tmp_path / "held.gif", save_all=True, append_images=frames[1:], duration=[100, 200, 700], loop=0)
    process_video(tmp_path / "held.gif", tmp_path / "cut.gif", kind="alpha", segmenter=seg, smooth="none")
    assert read_animation(tmp_path / "cut.gif")[1] == [100.0, 200.0, 700.0]


@pytest.mark.parametrize("fmt", ["webp", "apng"])
def test_webp_and_apng_keep_a_held_last_frame(tmp_path, seg, fmt):
    """A sticker GIF holding its last frame (100/200/300 ms) came out with it cut short: libwebp gave it the mean
    of the others (150 ms), FFmpeg's APNG muxer the one before's (200 ms). The finished file is patched."""
    src = make_scene(tmp_path / "s.mov", 3, SIZE, fps=10, with_audio=False)
    frames = [Image.fromarray(f) for f in src.frames[:3]]  # distinct pictures: Pillow merges equal ones
    frames[0].save(tmp_path / "held.gif", save_all=True, append_images=frames[1:], duration=[100, 200, 300], loop=0)
    out = tmp_path / f"cut.{fmt}"
    process_video(tmp_path / "held.gif", out, kind="alpha", segmenter=seg, smooth="none")
    got, durations, loop = read_animation(out)
    assert len(got) == 3 and loop == 0 and durations == [100.0, 200.0, 300.0]
    if fmt == "apng":  # FFmpeg reads the patched chunk too; neither it nor Pillow checks CRCs, browsers do
        data = out.read_bytes()
        at, crcs_ok = 8, []
        while at < len(data):
            length = int.from_bytes(data[at : at + 4], "big")
            crcs_ok.append(zlib.crc32(data[at + 4 : at + 8 + length]) == int.from_bytes(data[at + 8 + length : at + 12 + length], "big"))
            at += 12 + length
        assert at == len(data) and all(crcs_ok)
        with av.open(str(out)) as c:
            assert [f.duration * f.time_base for f in c.decode(video=0)] == [Fraction(1, 10), Fraction(2, 10), Fraction(3, 10)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_matroska_video_starting_after_0_keeps_its_last_frame_s_time(tmp_path, seg, fmt):
    """FFmpeg's Matroska muxer tags where the video ends, not how long it lasts: a video starting at 23 ms (AAC's
    priming, remuxed from MPEG-TS) was taken 23 ms longer, and its last frame held that much longer."""
    src = make_scene(tmp_path / "late.mkv", 3, SIZE, fps=10, pts=[23, 123, 223], time_base=Fraction(1, 1000),
                     codec="ffv1", pix_fmt="bgr0", with_audio=False)  # fmt: skip
    out = tmp_path / f"cut.{fmt}"
    process_video(src.path, out, kind="alpha", segmenter=seg, smooth="none")
    assert read_animation(out)[1] == [100.0, 100.0, 100.0]


def test_a_live_webp_whose_last_frames_repeat_ends_on_time(tmp_path):
    """libwebp merges a frame that repeats the one before into it: the merged last frame lasts both frames' time."""
    out = tmp_path / "session.webp"
    sink = RecordingSink(out, width=16, height=16, fps=10, kind="rgba")
    pictures = np.zeros((4, 16, 16, 4), np.uint8)
    for i in range(3):
        pictures[i, i : i + 4, 2:8] = (255, 0, 0, 255)
    pictures[3] = pictures[2]
    for picture, t in zip(pictures, [0, 0.1, 0.3, 0.6]):
        sink.send(picture, t)
    sink.close()
    assert read_animation(out)[1] == [100.0, 200.0, 600.0]  # the last frame, 0.6 s, lasts as long as the gap before it


def test_last_frame_patches_leave_unexpected_files_as_they_are(tmp_path):
    """A still PNG or WebP, or a cut-short APNG, is left byte for byte as it was."""
    assert apng_delay(Fraction(1001, 30000)) == (1001, 30000) and apng_delay(Fraction(2)) == (2, 1)
    still = Image.fromarray(np.zeros((4, 4, 4), np.uint8))
    still.save(tmp_path / "still.png")
    still.save(tmp_path / "still.webp")
    frames = [Image.fromarray(np.full((4, 4, 4), v, np.uint8)) for v in (0, 255)]
    frames[0].save(tmp_path / "cut.apng", save_all=True, append_images=frames[1:], duration=[100, 100])
    (tmp_path / "cut.apng").write_bytes((tmp_path / "cut.apng").read_bytes()[:-20])
    for name, patch in [("still.png", apng_set_last_delay), ("cut.apng", apng_set_last_delay), ("still.webp", webp_set_last_end)]:
        before = (tmp_path / name).read_bytes()
        assert patch(tmp_path / name, 1) is False
        assert (tmp_path / name).read_bytes() == before, name


def test_a_60_fps_gif_keeps_its_speed(tmp_path, seg):
    """Browsers show GIF delays under 20 ms as 100 ms: frames closer than that are left out, and the time kept."""
    src = make_scene(tmp_path / "fast.mov", 12, SIZE, fps=60, with_audio=False)
    out = tmp_path / "fast.gif"
    process_video(src.path, out, kind="alpha", segmenter=seg, smooth="none")
    frames, durations, _ = read_animation(out)
    assert len(frames) == 6  # every other frame of 60 fps
    assert min(durations) >= 20
    assert sum(durations[:-1]) == pytest.approx(1000 * 10 / 60, abs=10)  # first to last shown frame: 10 intervals
    fg, _ = interior(true_mask(2, SIZE))
    assert max_err(frames[1][..., 3], 255, fg) == 0  # the second GIF frame is the source's third


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_greenscreen_animation_is_opaque_key_colour_around_the_subject(tmp_path, scene, seg, fmt):
    out = tmp_path / f"green.{fmt}"
    process_video(scene.path, out, kind="green", segmenter=seg, smooth="none")
    frames, _, _ = read_animation(out)
    assert len(frames) == N
    for i, rgba in enumerate(frames):
        fg, bg = interior(true_mask(i, SIZE))
        assert rgba[..., 3].min() == 255
        assert max_err(rgba[..., :3], RED, fg) <= RGB_TOL[fmt]
        # lossy WebP: a pixel the animation encoder finds unchanged keeps the chroma bleed it had
        # beside the square's edge a frame before (up to 84 levels, red on green); on average it is the key
        background_error = np.abs(rgba[..., :3][bg].astype(int) - (0, 255, 0)).mean()
        assert background_error <= (0 if fmt == "gif" else 4), f"frame {i}: background {background_error:.2f} from the key"


def test_mask_gif_is_the_matte(tmp_path, scene, seg):
    out = tmp_path / "matte.gif"
    process_video(scene.path, out, kind="mask", segmenter=seg, smooth="none")
    frames, _, _ = read_animation(out)
    for i, rgba in enumerate(frames):
        fg, bg = interior(true_mask(i, SIZE))
        assert max_err(rgba[..., 0], 255, fg) == 0 and max_err(rgba[..., 0], 0, bg) == 0


def test_a_failed_run_leaves_no_animation(tmp_path, scene):
    out = tmp_path / "cut.gif"
    with pytest.raises(RuntimeError, match="exploded"):
        process_video(scene.path, out, kind="alpha", segmenter=red_key_segmenter(FailingRedKey(fail_at=3)), smooth="none", batch_size=1)
    assert not out.exists()
    assert partial_leftovers(tmp_path) == []


def test_png_file_target_points_to_apng_or_a_folder(tmp_path, scene, pvt_b0_weights, capsys):
    rc = main(["process", str(scene.path), "-o", str(tmp_path / "cut.png"), "--weights", str(pvt_b0_weights),
               "--resolution", "64", "-q"])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("birefvid: error:") and ".apng" in err[0]


def test_gif_quantize_keeps_transparency_and_colours():
    h, w = 40, 64
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[..., 0] = np.linspace(0, 255, w).astype(np.uint8)[None]  # a gradient: more colours than a palette holds
    rgba[..., 1] = np.linspace(0, 255, h).astype(np.uint8)[:, None]
    rgba[..., 2] = 90
    rgba[:, : w // 2, 3] = 255
    rgba[:, w // 2 :, 3] = 127  # under half opaque: transparent
    rgba[0, 0, :3] = 0  # a colour that could collide with the transparent entry's
    indices, palette = gif_quantize(rgba)
    assert indices.shape == (h, w) and palette.shape == (256, 4)
    assert palette[255, 0] == 0 and (palette[:255, 0] == 255).all()  # ARGB: only entry 255 is transparent
    assert (indices[:, w // 2 :] == 255).all() and (indices[:, : w // 2] != 255).all()
    shown = palette[indices[:, : w // 2], 1:].astype(int)
    assert np.abs(shown - rgba[:, : w // 2, :3]).mean() < 4  # dithered onto the frame's own palette


def test_live_recording_to_gif(tmp_path):
    out = tmp_path / "session.gif"
    sink = RecordingSink(out, width=64, height=48, fps=25, kind="rgba")
    for i in range(5):
        picture = np.zeros((48, 64, 4), np.uint8)
        picture[..., 0] = 255
        picture[10:30, 5 + 5 * i : 25 + 5 * i, 3] = 255
        sink.send(picture, i / 25)
    sink.close()
    frames, durations, _ = read_animation(out)
    assert len(frames) == 5 and durations[:-1] == [40.0] * 4
    assert frames[4][20, 30, 3] == 255 and frames[4][20, 5, 3] == 0


def test_webp_keeps_soft_alpha_exactly(tmp_path):
    """WebP's alpha plane is lossless: a half-transparent edge comes back as written."""
    out = tmp_path / "soft.webp"
    info = StreamInfo(32, 32, Fraction(1, 1000), average_rate=Fraction(25))
    sink = AnimatedImageSink(out, choose_encoder(out, "alpha", 32, 32), info)
    rgba = np.zeros((2, 32, 32, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = np.linspace(0, 255, 32).astype(np.uint8)[None, None, :]
    sink.write(rgba, [0, 40])
    sink.close()
    frames, _, _ = read_animation(out)
    assert np.array_equal(frames[0][..., 3], rgba[0, ..., 3])  # (libwebp merges the identical second frame into the first)


def test_a_browser_shows_the_animations_with_transparency(tmp_path, scene, seg):
    """Headless Chromium draws each animation over a magenta page: magenta where the mask is 0, red on the subject."""
    from live_e2e_tools import chromium_screenshot

    scale, w, h = 3, *SIZE
    tags = []
    for k, fmt in enumerate(FORMATS):
        process_video(scene.path, tmp_path / f"cut.{fmt}", kind="alpha", segmenter=seg, smooth="none")
        tags.append(f'<img src="cut.{fmt}" style="position:absolute;left:{k * w * scale}px;top:0;'
                    f'width:{w * scale}px;height:{h * scale}px;image-rendering:pixelated">')  # fmt: skip
    page = tmp_path / "page.html"
    page.write_text(f'<html><body style="margin:0;background:#ff00ff">{"".join(tags)}</body></html>')
    shot = chromium_screenshot(page.as_uri(), tmp_path / "shot.png", tmp_path / "profile", size=(640, 240))
    # whichever frame the browser is on: rows 0-5 are background in every frame, and the square
    # covers x 19-27, y 12-35 in all six
    for k, fmt in enumerate(FORMATS):
        left = k * w * scale
        background = shot[2 * scale : 4 * scale, left + 10 * scale : left + 50 * scale].reshape(-1, 3).astype(int)
        subject = shot[20 * scale : 28 * scale, left + 21 * scale : left + 26 * scale].reshape(-1, 3).astype(int)
        assert np.abs(background - (255, 0, 255)).max() <= 2, f"{fmt}: the page does not show through"
        assert np.abs(subject - RED).max() <= RGB_TOL[fmt] + 2, f"{fmt}: the subject is not drawn"


def test_an_animated_webp_output_goes_back_in(tmp_path, scene, seg, pvt_b0_weights):
    """A sticker birefvid wrote is an input too (read with Pillow: FFmpeg cannot decode it), every frame at its time."""
    sticker = tmp_path / "sticker.webp"
    process_video(scene.path, sticker, kind="alpha", segmenter=seg, smooth="none")
    out = tmp_path / "out.mov"
    assert main(["process", str(sticker), "-o", str(out), "--weights", str(pvt_b0_weights), "--resolution", "64", "-q"]) == 0
    with av.open(str(out)) as c:
        times = [float(f.time) for f in c.decode(video=0)]
    assert times == pytest.approx([i / 25 for i in range(N)])


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_frame_the_subject_fills_does_not_stay_under_the_next(tmp_path, fmt):
    """Opaque everywhere, then nearly all transparent: the second frame must not show the first through
    its transparent pixels (FFmpeg's GIF encoder kept them; each GIF frame is now cleared after it)."""
    out = tmp_path / f"fill.{fmt}"
    info = StreamInfo(33, 17, Fraction(1, 1000), average_rate=Fraction(25))
    sink = AnimatedImageSink(out, choose_encoder(out, "alpha", 33, 17), info)
    rgba = np.zeros((4, 17, 33, 4), np.uint8)
    rgba[1, ..., 0], rgba[1, ..., 3] = 200, 255  # the subject fills the frame
    rgba[2, 5, 5] = (10, 20, 30, 255)  # then is one pixel
    rgba[3, :, 10:, 3] = 255  # then fills most of it again
    sink.write(rgba, [0, 40, 80, 120])
    sink.close()
    frames, _, _ = read_animation(out)
    assert [int(np.abs(f[..., 3].astype(int) - want[..., 3]).max()) for f, want in zip(frames, rgba)] == [0, 0, 0, 0]
    if fmt == "gif":  # FFmpeg's own GIF decoder agrees
        with av.open(str(out)) as c:
            alphas = [f.to_ndarray(format="rgba")[..., 3] for f in c.decode(video=0)]
        assert len(alphas) == 4 and all(np.array_equal(a, want[..., 3]) for a, want in zip(alphas, rgba))


def _anamorphic_clip(path: Path, n: int = 3) -> Path:
    """88x64 pictures of 12:11 pixels (96x64 as shown), a 22x24 px red square on blue (24x24 as shown), moving."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"qp": "0"})
        stream.width, stream.height, stream.pix_fmt = 88, 64, "yuv444p"
        stream.codec_context.sample_aspect_ratio = Fraction(12, 11)
        for i in range(n):
            picture = np.zeros((64, 88, 3), np.uint8)
            picture[..., 2] = 255
            picture[20:44, 33 + 2 * i : 55 + 2 * i] = RED  # moving: WebP merges frames that repeat
            out.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        out.mux(stream.encode(None))
    return path


@pytest.mark.parametrize("fmt", FORMATS)
def test_non_square_pixels_are_made_square(tmp_path, seg, fmt, caplog):
    """A DVD's or D1 camera's pixels are not square, and an animation cannot say so: a GIF of them came
    out squeezed (with a warning). It is now as wide as the video is shown; --max-size limits that."""
    clip = _anamorphic_clip(tmp_path / "d1.mp4")
    out = tmp_path / f"out.{fmt}"
    with caplog.at_level(logging.WARNING):
        process_video(clip, out, kind="alpha", segmenter=seg, smooth="none")
    assert "squeezed" not in caplog.text
    frames, _, _ = read_animation(out)
    assert len(frames) == 3 and frames[0].shape[:2] == (64, 96)
    ys, xs = np.nonzero(frames[0][..., 3] > 127)
    assert ys.max() - ys.min() + 1 == 24 and abs((xs.max() - xs.min() + 1) - 24) <= 1, "the square is not square"
    small = tmp_path / f"small.{fmt}"
    process_video(clip, small, kind="alpha", segmenter=seg, smooth="none", max_size=48)
    assert read_animation(small)[0][0].shape[:2] == (32, 48)  # the limit holds for the picture as shown


def test_a_live_recording_to_gif_of_non_square_pixels_is_made_square(tmp_path):
    out = tmp_path / "session.gif"
    sink = RecordingSink(out, width=22, height=6, fps=25, kind="rgb", sample_aspect_ratio=Fraction(12, 11))
    picture = np.zeros((6, 22, 3), np.uint8)
    picture[:, :11] = RED
    for i in range(3):
        sink.send(picture, i / 25)
    sink.close()
    frames, _, _ = read_animation(out)
    assert frames[0].shape[:2] == (6, 24)
    assert np.all(frames[0][:, :11, 0] > 200) and np.all(frames[0][:, 13:, 0] < 50)
