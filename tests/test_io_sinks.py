"""Sinks: every kind and container keeps frame count, pts, size and alpha; bad requests fail at open time."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
import subprocess

import numpy as np
import pytest

from birefvid.errors import SinkError
from birefvid.frames import StreamInfo
from birefvid.io import open_sink, open_source
from birefvid.io.formats import choose_encoder
from media import listdir, make_video, pattern_frame, read_alpha, read_video


def _info(w=64, h=48, tb=Fraction(1, 25), rate=Fraction(25), **kw) -> StreamInfo:
    return StreamInfo(width=w, height=h, time_base=tb, average_rate=rate, **kw)


def _alpha_plane(i: int, w: int, h: int) -> np.ndarray:
    """A smooth ramp with a hard-edged opaque block: tests both soft and binary alpha."""
    y, x = np.mgrid[0:h, 0:w]
    a = ((x + y * 2 + i * 7) * 255 // (w + 2 * h + 7 * 8)).astype(np.uint8)
    a[h // 4 : h // 2, w // 4 : w // 2] = 255
    a[-3:, :] = 0
    return a


def _batch(kind: str, n: int, w: int, h: int) -> np.ndarray:
    if kind == "alpha":
        return np.stack([np.dstack([pattern_frame(i, (w, h)), _alpha_plane(i, w, h)]) for i in range(n)])
    if kind == "mask":
        return np.stack([_alpha_plane(i, w, h) for i in range(n)])
    return np.stack([pattern_frame(i, (w, h)) for i in range(n)])


def _write(path, kind, info, pts, **kw):
    images = _batch(kind, len(pts), info.width, info.height)
    with open_sink(path, kind=kind, info=info, **kw) as sink:
        half = len(pts) // 2  # two batches, as a runner would send
        sink.write(images[:half], pts[:half])
        sink.write(images[half:], pts[half:])
    return images


def _err(a, b) -> tuple[int, float]:
    d = np.abs(np.asarray(a).astype(np.int16) - np.asarray(b).astype(np.int16))
    return int(d.max()), float(d.mean())


ALPHA_CASES = [  # (output, decoded pixel formats with alpha, max alpha error, mean RGB error)
    ("out.mov", ("yuva444p12le", "yuva444p10le"), 3, 4),
    ("out.mkv", ("yuva444p",), 0, 4),  # FFV1 is lossless, and its alpha plane is the matte itself
    ("out.webm", ("yuva420p",), 12, 6),
]


def test_prores_4444_at_480p_has_no_stray_samples(tmp_path):
    """FFmpeg 8.1's swscale, converting to 10-bit formats on slice threads, corrupted a few samples of
    854x480 frames (up to half the range, the alpha plane too); the sink converts those on one thread."""
    info = _info(854, 480)
    images = _write(tmp_path / "a.mov", "alpha", info, [0, 1, 2, 3])
    _, alpha, _ = read_alpha(tmp_path / "a.mov")
    rgb = np.stack(read_video(tmp_path / "a.mov").images)[..., :3]
    # one thread: alpha within 1 level, colour within 3 here; on slice threads 85 and 130 levels off
    assert _err(alpha, images[..., 3])[0] <= 3
    assert _err(rgb, images[..., :3])[0] <= 8


@pytest.mark.parametrize("name,fmts,tol,rgb_tol", ALPHA_CASES)
def test_alpha_video_keeps_alpha_pts_and_count(tmp_path, name, fmts, tol, rgb_tol):
    info = _info()
    pts = [0, 1, 2, 3, 4, 5]
    images = _write(tmp_path / name, "alpha", info, pts)
    got_pts, alpha, pix_fmt = read_alpha(tmp_path / name)
    assert pix_fmt in fmts
    d = read_video(tmp_path / name)
    assert (d.width, d.height) == (64, 48)
    assert d.times == [p * info.time_base for p in pts]
    worst, _ = _err(alpha, images[..., 3])
    assert worst <= tol
    _, mean_rgb = _err(np.stack(d.images)[..., :3], images[..., :3])
    assert mean_rgb < rgb_tol  # straight (not premultiplied) colour survives under the alpha
    assert listdir(tmp_path) == [name]


@pytest.mark.parametrize("name,mean_tol", [("a.mkv", 0.0), ("a.mov", 0.15), ("a.webm", 0.0)])
def test_soft_alpha_is_written_without_bias(tmp_path, name, mean_tol):
    """swscale's RGBA -> yuva conversion wrote every other soft alpha value one level high (+0.5 on average, ProRes'
    10 bits alike): a lossless FFV1 cut-out was not the matte, and eval scored birefvid's own alpha outputs worse."""
    info = _info()
    n = 1 if name == "a.webm" else 2
    images = _batch("alpha", n, info.width, info.height)
    images[..., 3] = np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1))  # every 8-bit step from 0 to 252
    with open_sink(tmp_path / name, kind="alpha", info=info, **({"crf": 0} if name == "a.webm" else {})) as sink:
        sink.write(images, list(range(n)))
    from birefvid.eval.readers import open_masks  # as eval reads it: ProRes' 12 bits, not swscale's 8

    got = np.stack([np.asarray(m, np.float64) * (255 if m.dtype.kind == "f" else 1) for m in open_masks(tmp_path / name)])
    assert abs(float(np.mean(got - images[..., 3]))) <= mean_tol + 1e-9



def test_alpha_webm_encoder_holds_no_frames_back(tmp_path):
    """libvpx held 25 frames back in each of its two encoders (colour, alpha) for alt-ref frames FFmpeg turns off
    with alpha: the same packets, and 8K .webm needed 10.2 GB. Each frame written now comes out at once."""
    info = _info()
    images = _batch("alpha", 6, info.width, info.height)
    with open_sink(tmp_path / "a.webm", kind="alpha", info=info) as sink:
        sink.write(images, list(range(6)))
        assert sink._packets == 6  # packets muxed before the flush: none held in the encoder
    _, alpha, _ = read_alpha(tmp_path / "a.webm")
    assert len(alpha) == 6

def test_alpha_png_sequence_exact(tmp_path):
    info = _info()
    images = _write(tmp_path / "frames", "alpha", info, list(range(4)))
    files = listdir(tmp_path / "frames")
    assert files == [f"frame_{i:06d}.png" for i in range(1, 5)]
    _, alpha, fmt = read_alpha(tmp_path / "frames")
    assert fmt == "rgba" and np.array_equal(alpha, images[..., 3])
    with open_source(tmp_path / "frames") as src:  # RGB comes back exactly too
        assert np.array_equal(next(iter(src)).image, images[0, ..., :3])
    assert listdir(tmp_path) == ["frames"]


def test_a_png_sequence_under_a_name_outside_windows_code_page(tmp_path, monkeypatch):
    """OpenCV's imwrite and imread open file names in Windows' ANSI code page: a PNG sequence under
    C:\\Users\\李 failed on its first frame ("cannot write ... disk full or folder removed?")."""
    import cv2

    from birefvid.io.readback import iter_alpha

    def narrow(call):
        def refuse(name, *args):
            if not str(name).isascii():
                raise cv2.error("imwrite_('...'): can't open file for writing")  # as OpenCV on Windows
            return call(name, *args)
        return refuse

    monkeypatch.setattr(cv2, "imwrite", narrow(cv2.imwrite))
    monkeypatch.setattr(cv2, "imread", narrow(cv2.imread))
    (tmp_path / "李").mkdir()
    images = _write(tmp_path / "李" / "frames", "alpha", _info(), list(range(2)))
    assert listdir(tmp_path / "李" / "frames") == ["frame_000001.png", "frame_000002.png"]
    assert np.array_equal(np.stack(list(iter_alpha(tmp_path / "李" / "frames"))), images[..., 3])


@pytest.mark.parametrize("name", ["日" * 80 + ".mov", "a" * 251 + ".gif", "f" * 255], ids=["japanese-mov", "gif", "png-folder"])
def test_an_output_named_as_long_as_the_disk_allows_is_written(tmp_path, name):
    """A name of 80 Japanese characters (240 bytes) is a valid file name, but its temporary name beside it
    (``.NAME.partial-XXXXXXXX.mov``) was not: 'cannot create a file in ...: File name too long'."""
    from birefvid.io.atomic import write_text_atomic

    _write(tmp_path / name, "alpha", _info(), [0, 1])
    write_text_atomic(tmp_path / (name[:-5] + ".json"), "{}", "--report")
    assert sorted(listdir(tmp_path)) == sorted([name, name[:-5] + ".json"])
    assert (tmp_path / name).is_dir() == (name == "f" * 255)


@pytest.mark.parametrize("target", ["seq/", "existing_dir"])
def test_sequence_targets(tmp_path, target):
    if target == "existing_dir":
        (tmp_path / target).mkdir()
    info = _info()
    _write(str(tmp_path / target), "mask", info, [0, 1])
    folder = tmp_path / target.rstrip("/")
    import cv2

    img = cv2.imread(str(folder / "frame_000001.png"), cv2.IMREAD_UNCHANGED)
    assert img.ndim == 2 and np.array_equal(img, _alpha_plane(0, 64, 48))  # L, exact


@pytest.mark.parametrize("name,tol", [("m.mp4", 4), ("m.mkv", 0), ("m.mov", 2), ("m.webm", 12)])
def test_mask_video(tmp_path, name, tol):
    info = _info()
    pts = [0, 1, 2, 3]
    images = _write(tmp_path / name, "mask", info, pts)
    d = read_video(tmp_path / name, "gray")
    assert d.times == [p * info.time_base for p in pts]
    worst, mean = _err(np.stack(d.images), images)
    assert mean < 1.5 and worst <= max(tol, 2) * (8 if name.endswith((".mp4", ".webm")) else 1)


@pytest.mark.parametrize("name,codec", [("r.mp4", "h264"), ("r.mov", "h264"), ("r.mkv", "h264"), ("r.webm", "vp9")])
def test_rgb_video(tmp_path, name, codec):
    info = _info()
    pts = [0, 1, 2, 3, 4]
    images = _write(tmp_path / name, "rgb", info, pts)
    d = read_video(tmp_path / name, "rgb24")
    assert d.codec == codec and d.pix_fmt == "yuv420p"
    assert d.times == [p * info.time_base for p in pts]
    assert _err(np.stack(d.images), images)[1] < 5


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "gbrp"])
@pytest.mark.parametrize("colour", [{}, {"dst_colorspace": "ITU709", "dst_color_range": 1}, {"dst_colorspace": "ITU601", "dst_color_range": 2}])
@pytest.mark.parametrize("size", [(48, 64), (17, 33)])
def test_rgb_pictures_convert_to_the_same_bytes_through_rgba(pix_fmt, colour, size):
    """Sinks widen RGB to RGBA before swscale (a faster path): the encoder must get exactly the bytes
    the plain RGB conversion gives, for every YUV layout, bit depth, matrix and range they write
    (8-bit full range through 16 bits, ``to_yuv``)."""
    import av
    from av.video.reformatter import VideoReformatter

    from birefvid.io._pixels import RgbToYuv, to_yuv

    rng = np.random.default_rng(7)
    convert = RgbToYuv(pix_fmt, **colour)
    for _ in range(2):  # the second picture reuses the widening buffer
        picture = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        want = to_yuv(VideoReformatter(), av.VideoFrame.from_ndarray(picture, format="rgb24"), pix_fmt, threads=1, **colour)
        got = convert(picture.copy())
        assert got.format.name == pix_fmt and (got.width, got.height) == (size[1], size[0])
        depth = 2 if pix_fmt.endswith("le") else 1
        for a, b in zip(got.planes, want.planes):  # the visible samples of each row, not the rows' padding
            rows = [np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width * depth] for plane in (a, b)]
            assert np.array_equal(*rows)
    # a strided view (every other column of a wider picture) converts as its contiguous copy does
    wide = rng.integers(0, 256, (size[0], size[1] * 2, 3), dtype=np.uint8)
    view, copy = convert(wide[:, ::2]), RgbToYuv(pix_fmt, **colour)(np.ascontiguousarray(wide[:, ::2]))
    for a, b in zip(view.planes, copy.planes):
        depth = 2 if pix_fmt.endswith("le") else 1
        rows = [np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width * depth] for plane in (a, b)]
        assert np.array_equal(*rows)


@pytest.mark.parametrize("threads,want", [(1, 1), (None, 0)])
def test_rgb_conversion_follows_the_sinks_threads(tmp_path, threads, want):
    """A file job's sink on a small CPU (threads=1) converts RGB to YUV on its own thread: slice threads
    cost more CPU there and hid it from the encode stage's figure; without a count swscale picks."""
    info = _info()
    with open_sink(tmp_path / "r.mp4", kind="rgb", info=info, threads=threads) as sink:
        sink.write(_batch("rgb", 2, info.width, info.height), [0, 1])
        assert sink._rgb_to_yuv is not None and sink._rgb_to_yuv.options["threads"] == want


@pytest.mark.parametrize("name,kind", [("m.mkv", "mask"), ("r.mkv", "rgb"), ("a.mkv", "alpha"), ("r.mp4", "rgb")])
def test_a_caller_may_reuse_its_buffer_after_each_write(tmp_path, name, kind):
    """Whether a frame goes to the encoder as given (FFV1 gray masks) or converted first, the sink
    never keeps a reference to the caller's pixels: the next frame may be drawn into the same array."""
    info = _info()
    images = _batch(kind, 4, info.width, info.height)
    buffer = np.empty_like(images[:1])
    with open_sink(tmp_path / name, kind=kind, info=info) as sink:
        for i in range(len(images)):
            buffer[:] = images[i]
            sink.write(buffer, [i])
        buffer[:] = 0  # after the last write, before the encoder is flushed
    fmt = {"mask": "gray", "rgb": "rgb24", "alpha": "rgba"}[kind]
    decoded = np.stack(read_video(tmp_path / name, fmt).images)
    decoded = decoded[..., None] if kind == "mask" else decoded
    expected = images[..., None] if kind == "mask" else images
    assert len(decoded) == 4
    for i in range(4):
        assert _err(decoded[i], expected[i])[1] < 5, f"frame {i}"
        if i:
            assert _err(decoded[i], expected[i])[1] < _err(decoded[i], expected[i - 1])[1]  # not a neighbour's pixels


@pytest.mark.parametrize("name,kind", [("a.mov", "alpha"), ("a.mkv", "alpha"), ("a.webm", "alpha"),
                                       ("r.mp4", "rgb"), ("m.mp4", "mask"), ("r.webm", "rgb")])
def test_vfr_pts_and_nonzero_start_preserved(tmp_path, name, kind):
    tb = Fraction(1, 1000)
    pts = [1000, 1033, 1080, 1095, 1170, 1200, 1290]  # starts at 1 s, irregular steps
    info = _info(tb=tb, rate=Fraction(25))
    _write(tmp_path / name, kind, info, pts)
    d = read_video(tmp_path / name, "gray" if kind == "mask" else "rgba")
    assert d.times == [p * tb for p in pts]


def test_ntsc_time_base_exact_in_mov(tmp_path):
    tb = Fraction(1001, 30000)
    _write(tmp_path / "n.mov", "alpha", _info(tb=tb, rate=Fraction(30000, 1001)), list(range(5)))
    d = read_video(tmp_path / "n.mov")
    assert d.times == [p * tb for p in range(5)]


@pytest.mark.parametrize("name,kind", [("o.mp4", "rgb"), ("o.mov", "alpha"), ("o.webm", "alpha"),
                                       ("o.mov", "mask"), ("o.mkv", "rgb")])
def test_odd_size_kept_exactly(tmp_path, name, kind):
    info = _info(w=65, h=49)
    _write(tmp_path / name, kind, info, [0, 1, 2])
    d = read_video(tmp_path / name, "rgba")
    assert (d.width, d.height) == (65, 49) and len(d.pts) == 3


def test_source_to_sink_round_trip_keeps_pts(tmp_path):
    """The runner's path: pts and time base from a real (x264, B-frames) source go straight to the sink."""
    g = make_video(tmp_path / "in.mp4", n_frames=8, with_audio=False)
    with open_source(g.path) as src:
        info = src.info
        frames = list(src)
    with open_sink(tmp_path / "out.mov", kind="alpha", info=info) as sink:
        for f in frames:
            sink.write(np.dstack([f.image, np.full(f.image.shape[:2], 200, np.uint8)])[None], [f.pts])
    d = read_video(tmp_path / "out.mov")
    assert d.times == g.times


@pytest.mark.parametrize("name,kind", [("c.mp4", "rgb"), ("a.mov", "alpha"), ("a.webm", "alpha"), ("a.mkv", "alpha")])
@pytest.mark.parametrize("tags", [(1, 1, 1), (9, 9, 18)], ids=["bt709", "bt2020-hlg"])
def test_colour_tags_copied_into_the_decoded_pictures(tmp_path, name, kind, tags):
    """An HDR (HLG) phone clip's tags reach what a player decodes: ProRes writes colour into every
    frame's header, so the frames need them as well as the stream (they said "unknown" there)."""
    import av

    space, primaries, trc = tags
    info = _info(color_range=1, colorspace=space, color_primaries=primaries, color_trc=trc)
    _write(tmp_path / name, kind, info, [0, 1])
    with av.open(str(tmp_path / name)) as c:
        for f in c.decode(video=0):
            assert (int(f.colorspace), int(f.color_primaries), int(f.color_trc)) == tags
            if kind == "rgb":
                assert int(f.color_range) == 1


@pytest.mark.parametrize("name,kind,codec,range_", [("a.mov", "alpha", None, 1), ("g.mov", "rgb", "prores_ks", 1), ("a.mkv", "alpha", None, 2)])
def test_a_full_range_source_keeps_its_colours(tmp_path, name, kind, codec, range_):
    """A full-range (yuvj, phone or webcam) clip: ProRes cannot say full range, so it gets limited-range
    samples (it had full-range ones read as limited: (192, 64, 32) came back (203, 57, 19)); FFV1 keeps full."""
    import av

    info = _info(color_range=2, colorspace=5)
    colour = np.array([192, 64, 32], np.uint8)
    images = np.broadcast_to(colour, (2, info.height, info.width, 3))
    if kind == "alpha":
        images = np.concatenate([images, np.full((2, info.height, info.width, 1), 255, np.uint8)], axis=-1)
    with open_sink(tmp_path / name, kind=kind, info=info, codec=codec) as sink:
        sink.write(np.ascontiguousarray(images), [0, 1])
    with av.open(str(tmp_path / name)) as c:
        frame = next(c.decode(video=0))
        assert int(frame.color_range) == range_
    got = np.stack(read_video(tmp_path / name, "rgb24").images)
    assert np.abs(got.astype(int) - colour).max() <= 2


def test_crf_bitrate_and_codec_overrides(tmp_path):
    info = _info()
    _write(tmp_path / "lo.mp4", "rgb", info, list(range(4)), crf=40)
    _write(tmp_path / "hi.mp4", "rgb", info, list(range(4)), crf=5)
    assert (tmp_path / "lo.mp4").stat().st_size < (tmp_path / "hi.mp4").stat().st_size
    _write(tmp_path / "b.mkv", "rgb", info, list(range(4)), codec="libvpx-vp9", bitrate="200k")
    assert read_video(tmp_path / "b.mkv").codec == "vp9"
    _write(tmp_path / "p.mkv", "alpha", info, list(range(2)), codec="prores_ks")
    assert read_alpha(tmp_path / "p.mkv")[2].startswith("yuva444p")
    masks = _write(tmp_path / "g.mkv", "mask", info, list(range(2)), codec="libx264", pix_fmt="gray", crf=0)
    # FFmpeg's h264 decoder reports 4:0:0 streams as yuv420p with neutral chroma
    assert _err(np.stack(read_video(tmp_path / "g.mkv", "gray").images), masks)[0] <= 2


def _x264_settings(path: Path) -> str:
    """The settings x264 writes into its stream (an SEI message: 'options: ... subme=2 ...')."""
    data = path.read_bytes()
    start = data.index(b"options: ")
    return data[start : data.index(b"\x00", start)].decode("ascii", "replace")


def test_x264_defaults_to_veryfast_and_preset_overrides(tmp_path):
    info = _info()
    _write(tmp_path / "d.mp4", "rgb", info, list(range(3)))
    _write(tmp_path / "m.mp4", "rgb", info, list(range(3)), preset="medium")
    default, medium = _x264_settings(tmp_path / "d.mp4"), _x264_settings(tmp_path / "m.mp4")
    assert "subme=2" in default and " ref=1 " in default  # what x264's veryfast preset sets
    assert "subme=7" in medium and " ref=3 " in medium  # and medium
    assert len(read_video(tmp_path / "d.mp4").pts) == 3


@pytest.mark.parametrize("name,tag", [("h.mp4", "hvc1"), ("h.mov", "hvc1"), ("h.mkv", None)])
def test_hevc_is_tagged_hvc1_in_mp4_and_mov_and_x265_keeps_quiet(tmp_path, capfd, name, tag):
    """Apple's players (QuickTime, Safari, iOS) play HEVC in MP4/MOV only under the hvc1 tag, not
    FFmpeg's default hev1; x265's ~25 "x265 [info]" lines went to stderr even under -q."""
    import av

    _write(tmp_path / name, "rgb", _info(), list(range(3)), codec="libx265")
    with av.open(str(tmp_path / name)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "hevc" and stream.frames in (0, 3)
        if tag is not None:
            assert stream.codec_tag == tag
    assert len(read_video(tmp_path / name).pts) == 3
    assert "x265 [info]" not in capfd.readouterr().err


def test_prores_runs_at_a_fixed_quantiser_set_by_crf(tmp_path):
    info = _info()
    images = _write(tmp_path / "q2.mov", "alpha", info, list(range(3)))  # default quantiser 2
    _write(tmp_path / "q12.mov", "alpha", info, list(range(3)), crf=12)
    assert (tmp_path / "q12.mov").stat().st_size < (tmp_path / "q2.mov").stat().st_size
    _, alpha, pix_fmt = read_alpha(tmp_path / "q2.mov")
    assert pix_fmt.startswith("yuva444p")
    assert _err(alpha, images[..., 3])[0] <= 1  # the alpha plane is not what the quantiser coarsens
    _, mean_rgb = _err(np.stack(read_video(tmp_path / "q2.mov").images)[..., :3], images[..., :3])
    assert mean_rgb < 2


def test_pts_none_are_filled_from_rate(tmp_path):
    info = _info(tb=Fraction(1, 1000))
    _write(tmp_path / "n.mkv", "rgb", info, [None, None, None])
    assert read_video(tmp_path / "n.mkv").pts == [0, 40, 80]


# -- errors: raised at open time, nothing left behind --------------------------------------------

@pytest.mark.parametrize(
    "name,kind,kw,match",
    [
        ("a.mp4", "alpha", {}, r"cannot write alpha output to \.mp4 files \(\.mp4 holds no alpha channel: .*\); supported: \.mov \(prores_ks"),
        ("a.avi", "alpha", {}, r"cannot write alpha output to \.avi files; supported: \.mov"),  # no alpha-channel hint: .avi takes nothing
        ("a.mov", "alpha", {"codec": "libx264"}, r"codec libx264 cannot write alpha output into \.mov; \.mov supports prores_ks"),
        ("a.avi", "rgb", {}, r"cannot write rgb output to \.avi files; supported: .*\.mp4"),
        ("a.webm", "rgb", {"codec": "libx264"}, r"\.webm supports libvpx-vp9"),
        ("a.mov", "alpha", {"pix_fmt": "yuv444p10le"}, "alpha output needs a pixel format with alpha"),
        ("a.mov", "alpha", {"pix_fmt": "nv12"}, "prores_ks cannot encode pix_fmt nv12"),
        ("a.mp4", "rgb", {"bitrate": "fast"}, "is not a bitrate"),
        ("seq", "alpha", {"codec": "prores_ks"}, "image sequences are always lossless PNG, which takes no codec"),
        ("a.mov", "matte", {}, "unknown output kind"),
        ("a.mp4", "rgb", {"preset": "quick"}, "unknown preset 'quick' for libx264; expected one of: ultrafast"),
        ("a.mkv", "alpha", {"preset": "fast"}, "ffv1 has no speed presets"),
        ("a.mov", "alpha", {"crf": 0}, r"ProRes quantiser \(crf\) runs 1 \(best\) to 64, got 0"),  # --crf under the CLI
        # past its range FFmpeg's avcodec_open2 line came after the model loaded (ProRes), or x264 used 51 without a word
        ("a.mov", "alpha", {"crf": 65}, r"ProRes quantiser \(crf\) runs 1 \(best\) to 64, got 65"),
        ("a.mp4", "rgb", {"crf": 1000}, r"libx264's constant quality \(crf\) runs 0 \(best\) to 51, got 1000"),
        ("a.webm", "rgb", {"crf": 64}, r"libvpx-vp9's constant quality \(crf\) runs 0 \(best\) to 63, got 64"),
        ("a.mp4", "rgb", {"crf": 20, "bitrate": "1M"}, r"crf \(constant quality\) and bitrate \(a target rate\) exclude each other"),
        # a PNG folder took them and wrote lossless PNGs anyway
        ("seq", "rgb", {"crf": 20}, r"image sequences are always lossless PNG, which takes no crf"),
        ("seq", "mask", {"bitrate": "8M", "preset": "slow"}, r"takes no bitrate, preset"),
        # NVENC's pixel formats are FFmpeg's fixed list whatever the GPU: a wrong one is no reason to blame the GPU
        ("a.mp4", "mask", {"codec": "h264_nvenc", "pix_fmt": "gray"}, "h264_nvenc cannot encode pix_fmt gray; it supports yuv420p"),
        ("a.mp4", "rgb", {"codec": "hevc_nvenc", "pix_fmt": "cuda"}, "hevc_nvenc cannot encode pix_fmt cuda"),  # frames on the GPU: never given
        # NVENC's cq 0 is its automatic quality, not lossless; over 51 it cannot start
        ("a.mp4", "rgb", {"codec": "h264_nvenc", "crf": 0}, r"NVENC's constant quality \(crf\) runs 1 \(best\) to 51, got 0"),
        ("a.mkv", "rgb", {"codec": "hevc_nvenc", "crf": 52}, r"NVENC's constant quality \(crf\) runs 1 \(best\) to 51, got 52"),
    ],
)
def test_bad_requests(tmp_path, name, kind, kw, match):
    with pytest.raises(SinkError, match=match):
        open_sink(tmp_path / name, kind=kind, info=_info(), **kw)
    assert listdir(tmp_path) == []


@pytest.mark.parametrize("codec", ["h264_nvenc", "hevc_nvenc"])
def test_nvenc_names_accepted_and_fail_clearly_without_gpu(tmp_path, codec):
    info = _info(192, 108)  # over NVENC's minimum frame size (145x49 for H.264), so a GPU machine encodes it
    try:
        sink = open_sink(tmp_path / "n.mp4", kind="rgb", info=info, codec=codec)
    except SinkError as e:
        assert f"cannot start the {codec} encoder" in str(e) and "NVIDIA" in str(e)
        assert "minimum" not in str(e)  # this size is not the reason
        assert listdir(tmp_path) == []
        return
    with sink:  # a machine with an NVIDIA GPU: it must actually work
        sink.write(_batch("rgb", 2, 192, 108), [0, 1])
    assert len(read_video(tmp_path / "n.mp4").pts) == 2


def test_nvenc_encodes_on_the_gpu_the_model_runs_on():
    """A run on cuda:1 encoded on GPU 0 (FFmpeg's NVENC takes the first GPU unless told): the device's index goes to NVENC."""
    assert choose_encoder(Path("a.mp4"), "rgb", 192, 108, codec="h264_nvenc", gpu=1).options["gpu"] == "1"
    assert "gpu" not in choose_encoder(Path("a.mp4"), "rgb", 192, 108, codec="hevc_nvenc").options  # cuda without an index: FFmpeg's choice
    assert "gpu" not in choose_encoder(Path("a.mp4"), "rgb", 192, 108, gpu=1).options  # x264 has no such option


def test_nvenc_on_frames_under_its_minimum_size_says_so(tmp_path):
    """NVENC refuses small frames (144x144 in FFmpeg trac #9251) even on a GPU: "needs a GPU" alone misleads there."""
    with pytest.raises(SinkError, match=r"cannot start the h264_nvenc encoder .*64x48 is under 145x49.*libx264 takes"):
        open_sink(tmp_path / "n.mp4", kind="rgb", info=_info(64, 48), codec="h264_nvenc")
    assert listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["o.mov", "frames"])
def test_existing_output_needs_overwrite(tmp_path, name):
    target = tmp_path / name
    if name == "frames":
        target.mkdir()
        (target / "old.png").write_bytes(b"x")
    else:
        target.write_bytes(b"old")
    with pytest.raises(SinkError, match=rf"output exists: .*{name} \(use overwrite=True\)"):
        open_sink(target, kind="alpha", info=_info())
    _write(target, "alpha", _info(), [0, 1], overwrite=True)
    if name == "frames":
        assert listdir(target) == ["frame_000001.png", "frame_000002.png"]
    else:
        assert read_video(target).pts == [0, 1]
    assert listdir(tmp_path) == [name]


def test_unwritable_or_missing_folder(tmp_path):
    with pytest.raises(SinkError, match="output folder does not exist"):
        open_sink(tmp_path / "nope" / "o.mov", kind="alpha", info=_info())
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        import os

        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        with pytest.raises(SinkError, match="not writable"):
            open_sink(ro / "o.mov", kind="alpha", info=_info())
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("name", ["o.mov", "o.webm", "frames"])
def test_exception_inside_with_aborts_and_leaves_nothing(tmp_path, name):
    with pytest.raises(RuntimeError, match="boom"):
        with open_sink(tmp_path / name, kind="alpha", info=_info()) as sink:
            sink.write(_batch("alpha", 2, 64, 48), [0, 1])
            raise RuntimeError("boom")
    assert listdir(tmp_path) == []


def test_close_and_abort_idempotent(tmp_path):
    sink = open_sink(tmp_path / "o.mkv", kind="rgb", info=_info())
    sink.write(_batch("rgb", 2, 64, 48), [0, 1])
    sink.close()
    sink.close()
    sink.abort()  # after a successful close, abort must not delete the committed file
    assert listdir(tmp_path) == ["o.mkv"]
    sink = open_sink(tmp_path / "p.mkv", kind="rgb", info=_info())
    sink.abort()
    sink.abort()
    sink.close()
    assert listdir(tmp_path) == ["o.mkv"]
    with pytest.raises(ValueError, match=r"write\(\) after close\(\) or abort\(\)"):
        sink.write(_batch("rgb", 1, 64, 48), [0])


def test_bad_batch_shape_is_rejected_without_aborting(tmp_path):
    with open_sink(tmp_path / "o.mkv", kind="alpha", info=_info()) as sink:
        with pytest.raises(ValueError, match=r"alpha sink needs images shaped \(N, H, W, 4\)"):
            sink.write(np.zeros((1, 48, 64, 3), np.uint8), [0])
        with pytest.raises(ValueError, match="opened for 64x48"):
            sink.write(np.zeros((1, 40, 64, 4), np.uint8), [0])
        with pytest.raises(ValueError, match="2 images but 1 pts"):
            sink.write(np.zeros((2, 48, 64, 4), np.uint8), [0])
        sink.write(_batch("alpha", 1, 64, 48), [0])
    assert read_video(tmp_path / "o.mkv").pts == [0]


def test_encoder_error_midway_aborts(tmp_path):
    with open_sink(tmp_path / "o.mp4", kind="rgb", info=_info()) as sink:
        sink.write(_batch("rgb", 2, 64, 48), [5, 6])
        with pytest.raises(SinkError, match=r"encoding frame 2 into .*o\.mp4 failed: pts 6 does not increase"):
            sink.write(_batch("rgb", 1, 64, 48), [6])  # pts must increase
    assert listdir(tmp_path) == []


def test_mask_accepts_trailing_channel(tmp_path):
    with open_sink(tmp_path / "m.mkv", kind="mask", info=_info()) as sink:
        sink.write(_batch("mask", 2, 64, 48)[..., None], [0, 1])
    assert np.array_equal(np.stack(read_video(tmp_path / "m.mkv", "gray").images), _batch("mask", 2, 64, 48))


def test_temp_file_keeps_real_extension(tmp_path):
    sink = open_sink(tmp_path / "o.webm", kind="alpha", info=_info())
    names = listdir(tmp_path)
    sink.abort()
    assert len(names) == 1 and names[0].startswith(".o.partial-") and Path(names[0]).suffix == ".webm"


def test_committed_outputs_get_umask_permissions_not_mkstemp_ones(tmp_path):
    """mkstemp makes 0600 files; a finished output must be readable like any file the user writes."""
    import os
    import stat

    from birefvid.io.atomic import AtomicDir, AtomicFile

    old = os.umask(0o022)
    try:
        f = AtomicFile(tmp_path / "out.mov")
        f.commit()
        d = AtomicDir(tmp_path / "frames")
        d.commit()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.mov").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "frames").stat().st_mode) == 0o755


def test_on_windows_a_held_output_is_retried_and_a_finished_one_never_deleted(tmp_path, monkeypatch):
    """Windows refuses to rename onto a file another program has open (PermissionError). A scanner reading
    the earlier output for a moment failed the run; a player showing it made the finished video be deleted."""
    import os
    import sys

    real_replace = os.replace
    refusals = iter([True, True])  # a virus scanner holds the target for two tries

    def held(src, dst):
        if next(refusals, False):
            raise PermissionError(13, "Access is denied")
        real_replace(src, dst)

    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(os, "replace", held)
    target = tmp_path / "out.mp4"
    target.write_bytes(b"the earlier output")
    sink = open_sink(target, kind="rgb", info=_info(), overwrite=True)
    sink.write(np.zeros((1, 48, 64, 3), np.uint8), [0])
    sink.close()
    assert target.stat().st_size > 100 and listdir(tmp_path) == ["out.mp4"]

    def player(src, dst):
        raise PermissionError(13, "Access is denied")

    monkeypatch.setattr(os, "replace", player)
    monkeypatch.setattr("birefvid.io.atomic.REPLACE_RETRY_S", 0.1)
    sink = open_sink(target, kind="rgb", info=_info(), overwrite=True)
    sink.write(np.zeros((1, 48, 64, 3), np.uint8), [0])
    with pytest.raises(SinkError, match=r"another program has it open .* the finished output is kept as .*\.out\.partial-"):
        sink.close()
    sink.abort()
    kept = [n for n in listdir(tmp_path) if n.startswith(".out.partial-")]
    assert len(kept) == 1 and (tmp_path / kept[0]).stat().st_size > 100


@pytest.mark.parametrize("name,kind,limit", [("a.mp4", "rgb", 16384), ("a.mkv", "mask", 16384), ("a.webp", "alpha", 16383)])
def test_a_picture_wider_than_the_encoder_takes_is_refused_before_any_work(tmp_path, name, kind, limit):
    # a stitched panorama: x264 and libwebp refuse to start, and the run ended with "Generic error in an external library"
    with pytest.raises(SinkError, match=rf"encodes pictures up to {limit} pixels a side, and {name}'s would be 16400x64: "
                                        rf"max_size={limit} scales it down"):  # fmt: skip
        open_sink(tmp_path / name, kind=kind, info=_info(16400, 64), codec="libx264" if kind == "mask" else None)
    assert listdir(tmp_path) == []
    _write(tmp_path / name, kind, _info(limit, 64), [0, 1], codec="libx264" if kind == "mask" else None)  # at the limit it works


def test_a_wide_still_webp_says_what_holds_it(tmp_path):
    from birefvid.io.image_sink import write_image

    with pytest.raises(SinkError, match=r"WebP holds pictures up to 16383 pixels a side, this one is 16400x64; write \.png"):
        write_image(tmp_path / "pano.webp", np.zeros((64, 16400, 4), np.uint8))
    assert listdir(tmp_path) == []


@pytest.mark.parametrize("frames", [1, 2])
def test_x265_clip_shorter_than_its_delay_is_written(tmp_path, frames):
    # x265 leaves such a clip's dts uninitialised: the MP4 muxer failed the run at its end ("Not yet implemented")
    for attempt in range(3):  # the garbage is whatever memory held: three clips, each must be written
        path = tmp_path / f"short{attempt}.mp4"
        _write(path, "rgb", _info(), list(range(frames)), codec="libx265")
        assert len(read_video(path).pts) == frames


def test_a_png_folder_that_got_files_meanwhile_is_not_deleted_without_overwrite(tmp_path):
    """`process clip.mp4 -o frames/` into an empty folder, and a file put there during the run: the commit
    moved the folder aside and deleted it with that file (exit 0). Now the run fails and the file stays."""
    info = _info()
    out = tmp_path / "frames"
    out.mkdir()  # empty: a fine place for a PNG sequence
    sink = open_sink(out, kind="mask", info=info)
    sink.write(_batch("mask", 2, info.width, info.height), [0, 1])
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SinkError, match=r"output exists: .*frames .*this run's image sequence is kept as .*frames \(2\)") as caught:
        sink.close()
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert caught.value.kept == tmp_path / "frames (2)"  # the finished frames, kept beside it, not thrown away
    assert sorted(p.name for p in (tmp_path / "frames (2)").iterdir()) == ["frame_000001.png", "frame_000002.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "frames (2)"]  # no temporary folder left
    fresh = tmp_path / "empty"
    fresh.mkdir()
    _write(fresh, "mask", info, [0, 1])  # a folder still empty is replaced as before
    assert sorted(p.name for p in fresh.iterdir()) == ["frame_000001.png", "frame_000002.png"]


def test_a_new_output_is_kept_when_the_link_says_it_exists_but_made_it(tmp_path, monkeypatch):
    """On NFS a link call retried after a lost reply says "exists" although the first one made the link: the
    run threw its own finished output's temporary away and failed with "output exists" over its own file."""
    import errno
    import os

    from birefvid.io.atomic import AtomicFile

    real_link = os.link

    def nfs_link(src, dst):
        real_link(src, dst)
        raise FileExistsError(errno.EEXIST, "File exists")

    monkeypatch.setattr(os, "link", nfs_link)
    f = AtomicFile(tmp_path / "out.mov", overwrite=False)
    f.temp.write_bytes(b"this run's cut-out")
    f.commit()
    assert (tmp_path / "out.mov").read_bytes() == b"this run's cut-out"
    assert os.stat(tmp_path / "out.mov").st_nlink == 1 and listdir(tmp_path) == ["out.mov"]

    def no_links(src, dst):  # FAT, exFAT, some SMB shares: the check, then the rename
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    g = AtomicFile(tmp_path / "out.mov", overwrite=False)
    g.temp.write_bytes(b"the second run's")
    with pytest.raises(SinkError, match=r"output exists: .*out\.mov .*kept as .*out \(2\)\.mov"):
        g.commit()
    assert (tmp_path / "out.mov").read_bytes() == b"this run's cut-out" and listdir(tmp_path) == ["out (2).mov", "out.mov"]
    assert (tmp_path / "out (2).mov").read_bytes() == b"the second run's"


def test_a_finished_video_whose_name_was_taken_meanwhile_is_kept_beside_it(tmp_path):
    """`process` without --overwrite, and another program wrote clip.webm during the run: the finished cut-out (hours
    of work) was deleted and the run failed with "output exists". Now it is kept as `clip (3).webm` (the next free
    name), the run still fails, and the error (and its ``kept``) says where it went."""
    from birefvid.errors import OutputKeptError

    info = _info()
    out = tmp_path / "clip.webm"
    sink = open_sink(out, kind="alpha", info=info, overwrite=False)
    sink.write(_batch("alpha", 2, info.width, info.height), [0, 1])
    out.write_bytes(b"someone else's")
    (tmp_path / "clip (2).webm").write_bytes(b"an older copy")
    with pytest.raises(OutputKeptError, match=r"output exists: .*clip\.webm \(written by something else.*kept as .*clip \(3\)\.webm") as caught:
        sink.close()
    assert caught.value.kept == tmp_path / "clip (3).webm"
    assert out.read_bytes() == b"someone else's" and (tmp_path / "clip (2).webm").read_bytes() == b"an older copy"
    assert len(read_video(caught.value.kept).pts) == 2
    assert listdir(tmp_path) == ["clip (2).webm", "clip (3).webm", "clip.webm"]  # no hidden temporary left


@pytest.mark.parametrize("name,codec", [("f.mp4", None), ("f.mkv", "ffv1")])
@pytest.mark.parametrize("deep", [False, True], ids=["8-bit", "16-bit"])
def test_full_range_8_bit_video_gets_the_formulas_samples(tmp_path, name, codec, deep):
    """RGB (8- or 16-bit pictures) into 8-bit full-range video: every sample is the BT.709 formula's, rounded.

    swscale rounds full-range 8-bit chroma down (a green cast of 1.5 levels in R and B), and 16-bit pictures
    had one level added to their chroma for it, measured on gray, which overshot once it converts right."""
    colours = np.array([[128, 128, 128], [200, 60, 40], [40, 180, 90], [60, 60, 200], [230, 230, 30]], np.uint8)
    info = _info(w=64, h=16 * len(colours), color_range=2, colorspace=1)
    image = np.repeat(np.repeat(colours[:, None], 16, 0), 64, 1)
    picture = image.astype(np.uint16) * 257 if deep else image
    with open_sink(tmp_path / name, kind="rgb", info=info, codec=codec, **({} if codec else {"crf": 0})) as sink:
        sink.write(np.ascontiguousarray(np.stack([picture, picture])), [0, 1])
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / name), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "yuvj444p", "-"],
                         capture_output=True, check=True).stdout  # fmt: skip
    planes = np.frombuffer(raw, np.uint8).reshape(3, info.height, info.width)
    got = planes[:, 8::16, 32].T.astype(float)  # each band's middle
    r, g, b = colours.T.astype(float)
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    want = np.stack([y, (b - y) / 1.8556 + 128, (r - y) / 1.5748 + 128], 1)
    assert np.abs(got - want).max() <= 0.5, (got - want).round(2).tolist()


def test_full_range_8_bit_conversion_is_exact_with_slice_threads():
    """8-bit full range converts through 16 bits, where swscale's slice threads corrupt samples (854x480 -> 16-bit
    4:2:0 on two threads: 6 conversions in 10 off): a sink asked for threads gets the one-thread result every time."""
    import av
    from av.video.reformatter import VideoReformatter

    from birefvid.io._pixels import RgbToYuv, to_yuv

    picture = np.random.default_rng(1).integers(0, 256, (480, 854, 3), dtype=np.uint8)
    colour = {"dst_colorspace": "ITU709", "dst_color_range": 2}
    want = to_yuv(VideoReformatter(), av.VideoFrame.from_ndarray(picture, format="rgb24"), "yuv420p", threads=1, **colour)
    for _ in range(6):  # a sink's first picture: a fresh conversion each time
        got = RgbToYuv("yuv420p", threads=2, **colour)(picture)
        for a, b in zip(got.planes, want.planes):
            rows = [np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width] for plane in (a, b)]
            assert np.array_equal(*rows)
