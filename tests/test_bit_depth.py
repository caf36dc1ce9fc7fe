"""Deep sources (10 bits and more) keep their depth in outputs that hold it, and 8-bit runs stay as they were.

The inputs are lossless 10-bit FFV1 with gradients too fine for 8 bits: a red square (the red-key
test model's subject, alpha exactly 1 inside) over a blue background. Errors are measured in
10-bit levels against the source's own decoded 16-bit pictures, on the square's interior.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from birefvid.api import process_video
from birefvid.cli import main
from birefvid.frames import Frame
from birefvid.io.formats import choose_encoder, sample_bits
from birefvid.runtime.depth import composite_bits, wanted_bits
from process_fixtures import interior, red_key_segmenter, square_box, true_mask

SIZE = (64, 48)
N = 4
LEVEL = 64  # one 10-bit level in 16-bit units


def deep_frame(index: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    """16-bit RGB (H, W, 3): a blue background and a red square, each a horizontal ramp of ~40 10-bit levels."""
    w, h = size
    ramp = np.linspace(0.0, 0.04, w)[None, :]
    img = np.zeros((h, w, 3))
    img[..., 0], img[..., 1], img[..., 2] = 0.05 + ramp, 0.10 + ramp, 0.80 - ramp
    top, left, sh, sw = square_box(index, size)
    img[top : top + sh, left : left + sw, 0] = 0.80 + ramp[:, left : left + sw]
    img[top : top + sh, left : left + sw, 1] = 0.30 + ramp[:, left : left + sw]
    img[top : top + sh, left : left + sw, 2] = 0.10
    return (img * 65535).round().astype(np.uint16)


def write_deep_clip(path: Path, *, codec: str = "ffv1", pix_fmt: str = "yuv444p10le", trc: int | None = None, n: int = N) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25, options={"x265-params": "log-level=error"} if codec == "libx265" else {})
        stream.width, stream.height, stream.pix_fmt = *SIZE, pix_fmt
        if trc is not None:
            cc = stream.codec_context
            cc.color_trc, cc.color_primaries, cc.colorspace = trc, 9, 9
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(deep_frame(i), format="rgb48le").reformat(format=pix_fmt)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def decoded(path: Path, fmt: str) -> list[np.ndarray]:
    """The file's pictures as ``fmt``; 16-bit RGB from YUV by the standard's formula (birefvid's converter: PyAV's
    own ``to_ndarray`` puts limited-range white at 65283, 0.4% dark, which hid the same error the other way in outputs)."""
    from birefvid.io._pixels import RgbConverter, _is_yuv

    convert, pictures = RgbConverter(threads=1), []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            picture = f.to_ndarray(format=fmt)
            if fmt in ("rgb48le", "rgba64le") and _is_yuv(f):
                picture[..., :3] = convert.deep(f)[1]
            pictures.append(picture)
    return pictures


def square_error(out: list[np.ndarray], src: list[np.ndarray]) -> float:
    """Mean |output - source| over the squares' interiors, in 10-bit levels."""
    errs = []
    for i, (o, s) in enumerate(zip(out, src)):
        inside, _ = interior(true_mask(i, SIZE))
        errs.append(np.abs(o[..., :3].astype(int) - s.astype(int))[inside].mean() / LEVEL)
    return float(np.mean(errs))


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # batch against process, exactly (conftest says why)


@pytest.fixture(scope="module")
def seg():
    return red_key_segmenter()


@pytest.fixture(scope="module")
def deep_clip(tmp_path_factory) -> Path:
    return write_deep_clip(tmp_path_factory.mktemp("deep") / "src10.mkv")


@pytest.fixture(scope="module")
def source_pictures(deep_clip) -> list[np.ndarray]:
    return decoded(deep_clip, "rgb48le")


def test_a_10_bit_source_keeps_its_depth_in_prores_4444(tmp_path, seg, deep_clip, source_pictures):
    deep = process_video(deep_clip, tmp_path / "deep.mov", segmenter=seg, report_path=tmp_path / "r.json")
    flat = process_video(deep_clip, tmp_path / "flat.mov", segmenter=seg, bit_depth=8)
    assert deep["resolved"]["bit_depth"] == 10 and flat["resolved"]["bit_depth"] == 8
    assert json.loads((tmp_path / "r.json").read_text())["job"]["output"]["bit_depth"] == "auto"
    out = decoded(tmp_path / "deep.mov", "rgba64le")
    assert len(out) == N
    deep_err, flat_err = square_error(out, source_pictures), square_error(decoded(tmp_path / "flat.mov", "rgba64le"), source_pictures)
    # ProRes at quantiser 2 is near-lossless; 8-bit pictures are up to two 10-bit levels off before it
    assert deep_err < 0.5, deep_err
    assert flat_err > 2 * deep_err and flat_err > 0.6, (flat_err, deep_err)
    for i, picture in enumerate(out):  # the alpha plane: opaque inside (FFmpeg decodes ProRes alpha at 12 bits), clear outside
        inside, outside = interior(true_mask(i, SIZE))
        assert (picture[..., 3][inside] >= 65520).all() and (picture[..., 3][outside] == 0).all()


def test_the_report_gives_each_output_its_own_resolved_settings(tmp_path, seg, deep_clip):
    # resolved.bit_depth said 10 for a run whose --also WebM and GIF hold 8 bits: it described -o alone
    also = [("alpha", tmp_path / "cut.webm"), ("mask", tmp_path / "matte.mkv"), ("foreground", tmp_path / "frames"),
            ("green", tmp_path / "green.gif")]
    process_video(deep_clip, tmp_path / "deep.mov", segmenter=seg, also=also, report_path=tmp_path / "r.json")
    report = json.loads((tmp_path / "r.json").read_text())
    resolved, n = report["resolved"], report["frames"]
    assert resolved["bit_depth"] == 10  # -o's, as before
    assert resolved["outputs"] == [
        {"path": str(tmp_path / "deep.mov"), "kind": "alpha", "codec": "prores_ks", "bit_depth": 10, "frames": n},
        {"path": str(tmp_path / "cut.webm"), "kind": "alpha", "codec": "libvpx-vp9", "bit_depth": 8, "frames": n},
        {"path": str(tmp_path / "matte.mkv"), "kind": "mask", "codec": "ffv1", "bit_depth": 8, "frames": n},  # a mask's default stays 8-bit
        {"path": str(tmp_path / "frames"), "kind": "foreground", "codec": "png", "bit_depth": 16, "frames": n},
        {"path": str(tmp_path / "green.gif"), "kind": "green", "codec": "gif", "bit_depth": 8, "frames": n},
    ]
    with av.open(str(tmp_path / "cut.webm")) as c:  # what the report says is what was written
        assert sample_bits(c.streams.video[0].codec_context.pix_fmt) == 8
    assert cv2.imread(str(tmp_path / "frames" / "frame_000001.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16


def test_ffv1_and_png_outputs_of_a_deep_source_are_deep_and_lossless(tmp_path, seg, deep_clip, source_pictures):
    process_video(deep_clip, tmp_path / "a.mkv", segmenter=seg)
    with av.open(str(tmp_path / "a.mkv")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuva444p10le"
    assert square_error(decoded(tmp_path / "a.mkv", "rgba64le"), source_pictures) < 0.5
    process_video(deep_clip, tmp_path / "frames", segmenter=seg)
    pngs = sorted((tmp_path / "frames").glob("*.png"))
    assert len(pngs) == N
    pictures = [cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA) for p in pngs]
    assert all(p.dtype == np.uint16 for p in pictures)
    assert square_error(pictures, source_pictures) < 0.1  # PNG is exact: only the YUV -> RGB rounding is left


def test_a_12_bit_source_into_ffv1_alpha_is_16_bit_which_older_ffmpeg_decodes(tmp_path, seg):
    # FFV1 yuva444p12le, what a 12-bit source (ProRes 4444, birefvid's own .mov included) gave, is "format not
    # supported" to FFmpeg before 6.0 (Debian 12's ffmpeg 5.1 here): the cut-out could not be opened
    import subprocess

    from system_tools import need_binary

    clip = write_deep_clip(tmp_path / "src12.mkv", pix_fmt="yuv444p12le")
    source = decoded(clip, "rgb48le")
    process_video(clip, tmp_path / "a.mkv", segmenter=seg)
    with av.open(str(tmp_path / "a.mkv")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuva444p16le"
    assert square_error(decoded(tmp_path / "a.mkv", "rgba64le"), source) < 0.5  # as the 10-bit FFV1 test: YUV rounding only
    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    run = subprocess.run([ffmpeg, "-v", "error", "-i", str(tmp_path / "a.mkv"), "-f", "framemd5", "-"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stderr == "", run.stderr
    assert sum(1 for line in run.stdout.splitlines() if line and not line.startswith("#")) == N


def test_a_full_range_10_bit_source_keeps_its_levels_in_ffv1(tmp_path, seg):
    # swscale writes 16-bit RGB 65280 as full-range white but reads 10-bit full-range white as 65472: scaled by
    # the read one, a phone's full-range 10-bit clip came out of FFV1 up to 3 levels bright in its mid-tones
    clip = tmp_path / "full10.mkv"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv444p10le"
        stream.codec_context.color_range, stream.codec_context.colorspace = 2, 1
        for i in range(N):
            rgb = av.VideoFrame.from_ndarray(deep_frame(i), format="rgb48le")
            frame = rgb.reformat(format="yuv444p10le", dst_colorspace="ITU709", dst_color_range=2)
            frame.color_range, frame.colorspace = 2, 1
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    process_video(clip, tmp_path / "a.mkv", segmenter=seg)
    with av.open(str(tmp_path / "a.mkv")) as c:
        assert c.streams.video[0].codec_context.color_range == 2  # kept full range, as the source
    error = square_error(decoded(tmp_path / "a.mkv", "rgba64le"), decoded(clip, "rgb48le"))
    assert error < 0.3, error  # lossless FFV1: rounding only (1.2 levels, and green 1.9, before)


@pytest.mark.parametrize("pix_fmt", ["yuv444p10le", "yuv420p"])
def test_the_chroma_correction_saturates_at_both_ends(pix_fmt):
    # shift_chroma moves swscale's chroma by its measured centre error: the samples at the ends stay there,
    # the others move by the offset, and the luma is left alone
    from birefvid.io._pixels import shift_chroma

    top = (1 << sample_bits(pix_fmt)) - 1
    dtype = np.uint16 if top > 255 else np.uint8
    for offset in (1, -2):
        frame = av.VideoFrame(8, 4, pix_fmt)
        planes = [np.frombuffer(memoryview(p), dtype).reshape(p.height, -1)[:, : p.width] for p in frame.planes]
        for plane in planes:
            plane[:] = np.resize(np.array([0, 1, top // 2, top - 1, top], dtype), plane.shape)
        before = [plane.astype(int) for plane in planes]
        shift_chroma(frame, offset)
        assert (planes[0] == before[0]).all()
        for plane, was in zip(planes[1:], before[1:]):
            assert (plane == np.clip(was + offset, 0, top)).all()


def test_an_8_bit_source_keeps_the_8_bit_defaults(tmp_path, seg):
    from process_fixtures import make_scene

    clip = make_scene(tmp_path / "scene.mov", N, SIZE).path
    report = process_video(clip, tmp_path / "a.mkv", segmenter=seg)
    assert report["resolved"]["bit_depth"] == 8
    with av.open(str(tmp_path / "a.mkv")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuva444p"
    process_video(clip, tmp_path / "frames", segmenter=seg)
    assert cv2.imread(str(tmp_path / "frames" / "frame_000001.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint8


def test_green_in_10_bit_hevc_keeps_the_key_exact_and_the_subject_deep(tmp_path, seg, deep_clip, source_pictures):
    report = process_video(deep_clip, tmp_path / "g.mkv", segmenter=seg, kind="green", codec="ffv1")
    assert report["resolved"]["bit_depth"] == 10
    out = decoded(tmp_path / "g.mkv", "rgb48le")
    assert square_error(out, source_pictures) < 0.5
    for i, picture in enumerate(out):
        _, outside = interior(true_mask(i, SIZE))
        key = picture[outside].astype(int)
        assert np.abs(key - [0, 65535, 0]).max() <= 2 * LEVEL  # the key colour through 10-bit YUV 4:4:4
    process_video(deep_clip, tmp_path / "g.mp4", segmenter=seg, kind="green", codec="libx265")
    with av.open(str(tmp_path / "g.mp4")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p10le"


def test_a_deep_foreground_in_mov_defaults_to_10_bit_prores_422_hq(tmp_path, seg, deep_clip, source_pictures):
    # an editor's two-file workflow (foreground .mov + matte): H.264 cut the 10-bit source to 8-bit 4:2:0 unless
    # --codec prores_ks was given; .mp4 stays H.264 (delivery), and an 8-bit source's .mov too
    report = process_video(deep_clip, tmp_path / "fgr.mov", segmenter=seg, kind="foreground", also=[("mask", tmp_path / "pha.mov")])
    assert report["resolved"]["bit_depth"] == 10
    with av.open(str(tmp_path / "fgr.mov")) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.name, cc.pix_fmt, cc.profile) == ("prores", "yuv422p10le", "HQ")
    assert square_error(decoded(tmp_path / "fgr.mov", "rgb48le"), source_pictures) < 0.5
    process_video(deep_clip, tmp_path / "fgr.mp4", segmenter=seg, kind="foreground")
    with av.open(str(tmp_path / "fgr.mp4")) as c:
        assert (c.streams.video[0].codec_context.name, c.streams.video[0].codec_context.pix_fmt) == ("h264", "yuv420p")
    assert choose_encoder(Path("a.mov"), "rgb", 64, 48, bits=8).codec == "libx264"


@pytest.mark.parametrize("options", [{"preset": "slow"}, {"pix_fmt": "yuv420p"}, {"crf": 18}, {"bitrate": "2M"}],
                         ids=["preset", "pix_fmt", "crf", "bitrate"])  # fmt: skip
def test_h264_s_options_keep_a_deep_foreground_mov_in_h264(tmp_path, seg, deep_clip, options):
    # written for the documented H.264 default of .mov: with ProRes the default for a deep source, --preset slow and
    # --pix-fmt yuv420p failed the run (exit 2), and --crf 18 became ProRes's quantiser 18 (1 best, 2 its default)
    process_video(deep_clip, tmp_path / "fgr.mov", segmenter=seg, kind="foreground", **options)
    with av.open(str(tmp_path / "fgr.mov")) as c:
        assert (c.streams.video[0].codec_context.name, c.streams.video[0].codec_context.pix_fmt) == ("h264", "yuv420p")
        assert c.streams.video[0].frames == N


def test_bit_depth_16_gives_an_8_bit_source_a_16_bit_matte(tmp_path, seg):
    from process_fixtures import make_scene

    clip = make_scene(tmp_path / "scene.mov", N, SIZE).path
    report = process_video(clip, tmp_path / "m.mkv", segmenter=seg, kind="mask", bit_depth=16, feather=3)
    assert report["resolved"]["bit_depth"] == 16
    masks = decoded(tmp_path / "m.mkv", "gray16le")
    assert len(masks) == N
    inside, outside = interior(true_mask(0, SIZE), margin=5)
    assert (masks[0][inside] == 65535).all() and (masks[0][outside] == 0).all()
    edge = masks[0][(masks[0] > 0) & (masks[0] < 65535)]
    assert edge.size and (edge % 257 != 0).any()  # steps an 8-bit matte scaled up cannot have


def test_bit_depth_16_into_an_8_bit_output_says_so(tmp_path, seg, deep_clip, caplog):
    # H.264's default 8 bits were written without a word when 16 bits were asked for by name
    with caplog.at_level(logging.WARNING, logger="birefvid.runtime.depth"):
        report = process_video(deep_clip, tmp_path / "g.mp4", segmenter=seg, kind="green", bit_depth=16)
    assert report["resolved"]["bit_depth"] == 8
    assert any("bit_depth=16" in r.getMessage() and "libx264 writes 8 bits" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="birefvid.runtime.depth"):
        process_video(deep_clip, tmp_path / "g.mkv", segmenter=seg, kind="green", codec="ffv1", bit_depth=16)
    assert not caplog.records  # FFV1 holds them: nothing to say


def test_a_time_range_and_max_size_keep_the_depth(tmp_path, seg, deep_clip):
    report = process_video(deep_clip, tmp_path / "t.mov", segmenter=seg, start=0.04, max_size=32)
    assert report["frames"] == N - 1 and report["resolved"]["bit_depth"] == 10
    with av.open(str(tmp_path / "t.mov")) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (32, 24)


def test_hdr_into_8_bit_h264_warns_and_suggests_how_to_keep_the_depth(tmp_path, seg, caplog):
    clip = write_deep_clip(tmp_path / "hlg.mp4", codec="libx265", pix_fmt="yuv420p10le", trc=18, n=2)
    with caplog.at_level(logging.WARNING, logger="birefvid.runtime.depth"):
        report = process_video(clip, tmp_path / "g.mp4", segmenter=seg, kind="green")
    assert report["resolved"]["bit_depth"] == 8
    assert any("10-bit HDR (HLG)" in r.getMessage() and "libx265" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="birefvid.runtime.depth"):
        process_video(clip, tmp_path / "g8.mp4", segmenter=seg, kind="green", bit_depth=8)
    assert not caplog.records  # asked for 8 bits: nothing to warn about


def test_a_decoder_without_deep_pictures_plans_8_bits_and_says_so(tmp_path, seg, deep_clip, caplog):
    # decord gives 8-bit RGB only: the run was reported as 10-bit (an FFV1 yuva444p10le of 8-bit colour), silently
    from system_tools import need_module

    need_module("decord", '"birefvid[decord]"')
    with caplog.at_level(logging.WARNING, logger="birefvid.runtime.depth"):
        report = process_video(deep_clip, tmp_path / "d.mkv", segmenter=seg, decoder="decord")
    assert report["resolved"]["bit_depth"] == 8
    with av.open(str(tmp_path / "d.mkv")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuva444p"  # as for an 8-bit source
    assert any("8-bit pictures" in r.getMessage() and "pyav" in r.getMessage() for r in caplog.records)


def test_cli_refuses_an_unknown_bit_depth(tmp_path, deep_clip, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["process", str(deep_clip), "-o", str(tmp_path / "o.mov"), "--bit-depth", "12"])
    assert exc.value.code == 2
    assert "--bit-depth" in capsys.readouterr().err


def test_depth_rules():
    assert wanted_bits("auto", 10, "alpha") == 10 and wanted_bits("auto", 8, "alpha") == 8
    assert wanted_bits("auto", 10, "mask") == 8 and wanted_bits(16, 8, "mask") == 16 and wanted_bits(8, 12, "rgb") == 8
    assert composite_bits("auto", 10, "alpha", 10) == 16
    assert composite_bits("auto", 10, "rgb", 8) == 8  # H.264's 8 bits: nothing to keep
    assert composite_bits("auto", 8, "alpha", 10) == 8  # an 8-bit source into ProRes: the fast 8-bit path
    assert composite_bits("auto", 8, "mask", 10) == 16  # a float matte into a 10-bit mask keeps 10 bits
    assert composite_bits(8, 12, "alpha", 16) == 8
    mov = choose_encoder(Path("a.mov"), "alpha", 64, 48, bits=12)
    assert mov.pix_fmt == "yuva444p10le"  # ProRes is 10-bit whatever is asked
    assert choose_encoder(Path("a.mkv"), "alpha", 64, 48, bits=12).pix_fmt == "yuva444p16le"  # FFmpeg 5.1 cannot decode FFV1 yuva444p12le
    assert choose_encoder(Path("a.mp4"), "rgb", 64, 48, bits=10).pix_fmt == "yuv420p"  # H.264 stays 8-bit by default
    assert choose_encoder(Path("a.mkv"), "rgb", 64, 48, bits=10, pix_fmt="yuv420p").pix_fmt == "yuv420p"  # asked for: kept
    assert sample_bits("yuva444p10le") == 10 and sample_bits("rgba64be") == 16 and sample_bits("yuv420p") == 8


def test_frame_checks_its_deep_picture():
    image = np.zeros((4, 6, 3), np.uint8)
    Frame(image, 0, 1, 0, deep=np.zeros((4, 6, 3), np.uint16))
    with pytest.raises(ValueError, match="Frame.deep"):
        Frame(image, 0, 1, 0, deep=np.zeros((4, 6, 3), np.uint8))
    with pytest.raises(ValueError, match="Frame.deep"):
        Frame(image, 0, 1, 0, deep=np.zeros((4, 5, 3), np.uint16))


def test_batch_chunks_of_a_deep_source_join_into_what_process_writes(tmp_path):
    from test_batch_media import API_MODEL, MODEL, manifest

    clip = write_deep_clip(tmp_path / "long10.mov", codec="prores_ks", pix_fmt="yuv422p10le", n=12)  # every frame a keyframe
    process_video(clip, tmp_path / "ref.mkv", **API_MODEL)
    assert main(["batch", str(clip), "--output-dir", str(tmp_path / "out"), "--chunk-frames", "4", "--ext", ".mkv", "-q", *MODEL]) == 0
    got, ref = decoded(tmp_path / "out" / "long10.mkv", "rgba64le"), decoded(tmp_path / "ref.mkv", "rgba64le")
    assert len(got) == len(ref) == 12 and manifest(tmp_path / "out")["videos"]["long10.mkv"]["chunks"] == 3
    assert max(int(np.abs(g.astype(int) - r).max()) for g, r in zip(got, ref)) == 0  # FFV1 10-bit: the same pictures
    with av.open(str(tmp_path / "out" / "long10.mkv")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuva444p10le"


def test_batch_chunks_of_an_hdr_source_into_8_bit_h264_warn_once(tmp_path, caplog):
    # process and a one-chunk batch warned; a video split into chunks said nothing
    from test_batch_media import MODEL

    clip = tmp_path / "hlg.mkv"
    with av.open(str(clip), "w") as out:  # FFV1 with every frame a keyframe: chunks can start anywhere
        stream = out.add_stream("ffv1", rate=25, options={"g": "1"})
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv444p10le"
        cc = stream.codec_context
        cc.color_trc, cc.color_primaries, cc.colorspace = 18, 9, 9
        for i in range(12):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(deep_frame(i), format="rgb48le").reformat(format="yuv444p10le")))
        out.mux(stream.encode(None))
    with caplog.at_level(logging.WARNING, logger="birefvid.runtime.depth"):
        args = ["batch", str(clip), "--output-dir", str(tmp_path / "out"), "--output", "green", "--chunk-frames", "4", "-q", *MODEL]
        assert main(args) == 0
    from test_batch_media import manifest

    assert manifest(tmp_path / "out")["videos"]["hlg.mp4"]["chunks"] == 3
    warned = [r for r in caplog.records if "10-bit HDR (HLG)" in r.getMessage()]
    assert len(warned) == 1 and "libx265" in warned[0].getMessage()


def write_deep_pngs(folder: Path, n: int = N) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        paths.append(folder / f"f{i:03d}.png")
        assert cv2.imwrite(str(paths[-1]), cv2.cvtColor(deep_frame(i), cv2.COLOR_RGB2BGR))
    return paths


def test_image_keeps_a_16_bit_png_16_bit_and_exact(tmp_path):
    from test_batch_media import MODEL

    (src,) = write_deep_pngs(tmp_path / "in", 1)
    assert main(["image", str(src), "-o", str(tmp_path / "cut.png"), "--no-foreground", "-q", *MODEL]) == 0
    cut = cv2.cvtColor(cv2.imread(str(tmp_path / "cut.png"), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
    assert cut.dtype == np.uint16
    opaque = cut[..., 3] == 65535
    assert opaque.any() and (cut[..., :3][opaque] == deep_frame(0)[opaque]).all()  # PNG 16 in, PNG 16 out: exact
    assert main(["image", str(src), "-o", str(tmp_path / "cut8.png"), "--bit-depth", "8", "-q", *MODEL]) == 0
    assert cv2.imread(str(tmp_path / "cut8.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint8
    assert main(["image", str(src), "-o", str(tmp_path / "cut.webp"), "-q", *MODEL]) == 0  # WebP is 8-bit: written as such
    assert cv2.imread(str(tmp_path / "cut.webp"), cv2.IMREAD_UNCHANGED).dtype == np.uint8


def test_a_16_bit_png_sequence_keeps_its_depth_in_prores(tmp_path, seg):
    write_deep_pngs(tmp_path / "seq")
    report = process_video(tmp_path / "seq", tmp_path / "seq.mov", segmenter=seg)
    assert report["frames"] == N and report["resolved"]["bit_depth"] == 10
    truth = [deep_frame(i) for i in range(N)]
    assert square_error(decoded(tmp_path / "seq.mov", "rgba64le"), truth) < 0.5


def test_a_16_bit_background_picture_and_a_10_bit_background_video_stay_deep(tmp_path, seg, deep_clip):
    plate = (np.linspace(0.30, 0.34, SIZE[0])[None, :, None] * np.ones((SIZE[1], 1, 3)) * 65535).round().astype(np.uint16)
    assert cv2.imwrite(str(tmp_path / "plate.png"), cv2.cvtColor(plate, cv2.COLOR_RGB2BGR))
    video = write_deep_clip(tmp_path / "bg10.mkv", n=2)  # its square differs from the clip's: compare outside both
    for background, truth in ((tmp_path / "plate.png", lambda i: plate), (video, lambda i: decoded(video, "rgb48le")[i % 2])):
        out = tmp_path / f"c_{background.stem}.mkv"
        report = process_video(deep_clip, out, segmenter=seg, kind="composite", background=str(background), codec="ffv1", smooth="none")
        assert report["resolved"]["bit_depth"] == 10
        errors = []
        for i, picture in enumerate(decoded(out, "rgb48le")):
            _, outside = interior(true_mask(i, SIZE))
            _, outside_bg = interior(true_mask(i % 2, SIZE))
            where = outside & outside_bg
            errors.append(np.abs(picture.astype(int) - truth(i))[where].mean() / LEVEL)
        assert np.mean(errors) < 0.3, (background.name, errors)  # an 8-bit background is ~1-1.5 levels off


@pytest.mark.parametrize("channels,fmt", [(4, "yuva444p10le"), (4, "yuva444p16le"), (4, "rgba64be"), (3, "yuv444p12le"), (3, "rgb48be")])
def test_planar_deep_frames_convert_exactly_as_packed_ones(channels, fmt):
    """The sinks hand deep 4:4:4 and RGB conversions planar pictures (no transposing copy): the same samples."""
    from av.video.reformatter import VideoReformatter

    from birefvid.io._pixels import planar_deep_frame

    rng = np.random.default_rng(1)
    picture = rng.integers(0, 65536, (channels, 77, 101), dtype=np.uint16).transpose(1, 2, 0)  # odd width: padded rows
    options = {"threads": 1, "dst_colorspace": "ITU709", "dst_color_range": 1} if fmt.startswith("yuv") else {"threads": 1}
    planar = VideoReformatter().reformat(planar_deep_frame(picture), format=fmt, **options)
    packed = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgba64le" if channels == 4 else "rgb48le")
    packed = VideoReformatter().reformat(packed, format=fmt, **options)
    row_bytes = 2 * (channels if fmt.startswith("rgb") else 1)  # packed RGB: one plane of every channel
    for a, b in zip(planar.planes, packed.planes):
        rows = [np.frombuffer(memoryview(p), np.uint8)[: p.height * p.line_size].reshape(p.height, p.line_size)[:, : p.width * row_bytes] for p in (a, b)]
        assert np.array_equal(*rows)


def test_a_white_background_is_video_white_in_a_10_bit_output_not_above_it(tmp_path, seg, deep_clip):
    """Where the matte is 0 the background's colour is written as it is: white at 10-bit video white (940),
    where swscale's own scale of 16-bit RGB put it at 943, 0.4% too bright (broadcast QC flags that)."""
    out = tmp_path / "w.mkv"
    process_video(deep_clip, out, segmenter=seg, kind="composite", background="white", codec="ffv1", smooth="none")
    with av.open(str(out)) as c:
        frames = list(c.decode(video=0))
    assert frames[0].format.name == "yuv444p10le" and frames[0].color_range in (0, 1)  # limited range, as tagged
    for i, f in enumerate(frames):
        _, outside = interior(true_mask(i, SIZE))
        y, u, v = (np.frombuffer(memoryview(p), np.uint16).reshape(p.height, -1)[:, : p.width][outside] for p in f.planes[:3])
        assert (y == 940).all() and (u == 512).all() and (v == 512).all(), (np.unique(y), np.unique(u), np.unique(v))


def test_deep_pictures_of_yuv_follow_the_standards_formula():
    """16-bit RGB of 10- and 12-bit YUV (ProRes, HEVC, DNxHR) is the formula's: swscale alone gave white 65283, 0.4% dark."""
    from birefvid.io._pixels import RgbConverter
    from media import flat_yuv_frame, yuv_to_rgb

    for fmt, bits in (("yuv420p10le", 10), ("yuv422p10le", 10), ("yuv444p12le", 12)):
        for full in (False, True):
            for yuv in ((235, 128, 128), (120, 100, 170), (60, 140, 120)):
                scaled = [c * 2 ** (bits - 8) for c in yuv]
                image, deep = RgbConverter(threads=1).deep(flat_yuv_frame(fmt, scaled, full=full))
                want = yuv_to_rgb(scaled, bits=bits, full=full) * 257
                err = np.abs(deep.reshape(-1, 3).astype(float) - want).max() / LEVEL
                assert err < 0.3, f"{fmt} {'full' if full else 'limited'} {yuv}: {err:.2f} 10-bit levels from the formula"
