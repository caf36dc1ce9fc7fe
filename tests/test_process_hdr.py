"""HDR phone video (HLG, PQ) into outputs with no colour tags (GIF, WebP, APNG, PNG) comes out as SDR screens show it;
video containers keep the HDR signal and its tags.

The clips are lossless 10-bit FFV1 made from known sRGB colours by the standards' formulas, written
out here independently of birefvid: sRGB -> linear BT.709 -> BT.2020 -> 203 cd/m² white -> PQ or HLG.
"""

from __future__ import annotations

import glob
import logging
import shutil
import subprocess
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from birefvid.api import process_video
from birefvid.io.hdr import HLG, PQ, HdrToSdr
from process_fixtures import interior, red_key_segmenter, square_box, true_mask

SIZE = (64, 48)
N = 3
SUBJECT = (200, 60, 40)  # sRGB: reddish, so the red-key model keeps it, with alpha 1 inside
BACKDROP = (40, 80, 200)
BT709_TO_BT2020 = np.array([[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]])


def hdr_signal(srgb: np.ndarray, trc: int) -> np.ndarray:
    """sRGB uint8 (..., 3) -> the PQ or HLG signal in [0, 1] of the same colours, BT.2020, white at 203 cd/m² (ITU-R BT.2408)."""
    s = srgb / 255.0
    nits = np.where(s <= 0.04045, s / 12.92, ((s + 0.055) / 1.055) ** 2.4) @ BT709_TO_BT2020.T * 203.0
    if trc == PQ:
        m1, m2, c1, c2, c3 = 0.1593017578125, 78.84375, 0.8359375, 18.8515625, 18.6875
        y = np.clip(nits / 10000, 0, 1) ** m1
        return ((c1 + c2 * y) / (1 + c3 * y)) ** m2
    luma = np.maximum(nits @ np.array([0.2627, 0.6780, 0.0593]), 1e-9)[..., None]
    scene = np.clip(nits / 1000 * (luma / 1000) ** (-0.2 / 1.2), 0, 1)  # BT.2100's inverse OOTF, 1000 cd/m² display
    a = 0.17883277
    b, c = 1 - 4 * a, 0.5 - a * np.log(4 * a)
    return np.where(scene <= 1 / 12, np.sqrt(3 * scene), a * np.log(np.maximum(12 * scene - b, 1e-9)) + c)


def sdr_frame(index: int) -> np.ndarray:
    """The clip's frame as SDR: the subject square over the backdrop."""
    w, h = SIZE
    img = np.empty((h, w, 3), np.uint8)
    img[:] = BACKDROP
    top, left, sh, sw = square_box(index, SIZE)
    img[top : top + sh, left : left + sw] = SUBJECT
    return img


def write_hdr_clip(path: Path, trc: int) -> Path:
    """Lossless 10-bit BT.2020 video of ``sdr_frame``s in ``trc`` (PQ or HLG), tagged as a phone tags it."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=30)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv444p10le"
        cc = stream.codec_context
        cc.color_trc, cc.color_primaries, cc.colorspace, cc.color_range = trc, 9, 9, 1
        for i in range(N):
            signal = np.round(hdr_signal(sdr_frame(i), trc) * 65535).astype(np.uint16)
            frame = av.VideoFrame.from_ndarray(signal, format="rgb48le")
            frame = frame.reformat(format="yuv444p10le", dst_colorspace="BT2020", dst_color_range=1)
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def read_pictures(path: Path) -> list[np.ndarray]:
    """An animated picture's frames, or a PNG folder's pictures, as RGB(A) uint8."""
    if path.is_dir():
        files = sorted(glob.glob(str(path / "*.png")))
        return [(cv2.cvtColor(cv2.imread(f, cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA) / 257).round().astype(np.uint8) for f in files]
    with Image.open(path) as im:
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.array(im.convert("RGBA")))
        return frames


def subject_colour(pictures: list[np.ndarray]) -> np.ndarray:
    """Mean RGB over the subject square's interior of every picture."""
    return np.mean([p[..., :3][interior(true_mask(i, SIZE))[0]].mean(0) for i, p in enumerate(pictures)], axis=0)


@pytest.fixture(scope="module")
def seg():
    return red_key_segmenter()


@pytest.mark.parametrize("trc", [HLG, PQ], ids=["hlg", "pq"])
@pytest.mark.parametrize("target", ["cut.gif", "cut.apng", "frames"])
def test_hdr_into_an_untagged_output_shows_as_sdr(tmp_path, seg, trc, target, caplog):
    """An iPhone's HLG or an Android's PQ clip into a GIF, APNG or PNG sequence: the colours are the SDR
    picture's within a few levels, not the HDR signal read as sRGB (PQ's (200, 60, 40) came out (123, 87, 68),
    washed out and grey), and a warning says so."""
    clip = write_hdr_clip(tmp_path / "phone.mkv", trc)
    with caplog.at_level(logging.WARNING):
        report = process_video(clip, tmp_path / target, segmenter=seg)
    assert report["frames"] == N
    pictures = read_pictures(tmp_path / target)
    assert len(pictures) == N
    assert np.abs(subject_colour(pictures) - SUBJECT).max() < 4
    assert any("converted to SDR" in r.getMessage() and ("HLG" if trc == HLG else "PQ") in r.getMessage() for r in caplog.records)


def test_hdr_into_a_video_container_keeps_its_signal_and_tags(tmp_path, seg, caplog):
    """FFV1 in Matroska says it is HLG: the HDR signal is kept as it is, and nothing is converted."""
    clip = write_hdr_clip(tmp_path / "phone.mkv", HLG)
    with caplog.at_level(logging.WARNING):
        process_video(clip, tmp_path / "cut.mkv", segmenter=seg)
    assert not any("converted to SDR" in r.getMessage() for r in caplog.records)
    with av.open(str(tmp_path / "cut.mkv")) as c:
        frame = next(c.decode(video=0))
        assert (int(frame.color_trc), int(frame.color_primaries)) == (HLG, 9)
        picture = frame.to_ndarray(format="rgba64le")
    signal = np.round(hdr_signal(np.array(SUBJECT, np.uint8), HLG) * 65535)
    inside, _ = interior(true_mask(0, SIZE))
    assert np.abs(picture[..., :3][inside].mean(0) - signal).max() < 4 * 64  # 4 10-bit levels


@pytest.mark.parametrize("trc", [HLG, PQ], ids=["hlg", "pq"])
def test_hdr_to_sdr_maps_white_black_and_highlights(trc):
    """Reference white lands just under SDR white (the highlight roll-off starts below it), black stays
    black, and the brightest signal is white, not wrapped round; brighter never maps darker."""
    convert = HdrToSdr(trc)
    grey = np.array([[[255, 255, 255], [0, 0, 0]]], np.uint8)
    white, black = np.round(hdr_signal(grey, trc) * 65535).astype(np.uint16)[0]
    ramp = np.repeat(np.linspace(0, 65535, 1024).astype(np.uint16)[None, :, None], 3, axis=2)
    sdr, deep = convert(np.stack([[white, black, ramp[0, -1]]]), deep=True)
    assert 240 <= sdr[0, 0, 0] <= 250 and sdr[0, 1].max() == 0 and sdr[0, 2].min() == 255
    assert deep is not None and deep.dtype == np.uint16 and abs(int(deep[0, 0, 0]) - int(sdr[0, 0, 0]) * 257) < 257
    assert (np.diff(convert(ramp)[0][0, :, 1].astype(int)) >= 0).all()


def backdrop_signal(path: Path) -> np.ndarray:
    """Mean 16-bit RGB of the first frame's background (outside the subject square, away from its edge)."""
    with av.open(str(path)) as c:
        picture = next(c.decode(video=0)).to_ndarray(format="rgb48le")
    _, outside = interior(true_mask(0, SIZE))
    return picture[outside].mean(0)


@pytest.mark.parametrize("trc", [HLG, PQ], ids=["hlg", "pq"])
@pytest.mark.parametrize("background", ["colour", "picture"])
def test_a_background_into_hdr_video_is_placed_at_hdr_white(tmp_path, seg, trc, background):
    """``--background white`` (or an sRGB picture) composited into a PQ or HLG video: its white is HDR's
    reference white (PQ 58%, HLG 75%), as the subject's white is, and its colours are theirs in BT.2020;
    it had been the format's peak (PQ's 10 000 cd/m², 50 times the subject's white)."""
    clip = write_hdr_clip(tmp_path / "phone.mkv", trc)
    colour = np.array([[[255, 255, 255]]], np.uint8) if background == "colour" else np.array([[[90, 170, 230]]], np.uint8)
    spec = "white"
    if background == "picture":
        spec = str(tmp_path / "sky.png")
        cv2.imwrite(spec, np.ascontiguousarray(np.broadcast_to(colour[..., ::-1], (30, 40, 3))))
    process_video(clip, tmp_path / "cut.mkv", segmenter=seg, kind="composite", background=spec, codec="ffv1")
    expected = hdr_signal(colour, trc)[0, 0] * 65535
    assert np.abs(backdrop_signal(tmp_path / "cut.mkv") - expected).max() < 3 * 64  # 3 10-bit levels


def write_scene_hdr_clip(path: Path, trc: int, n: int = 3, size: tuple[int, int] = (256, 144)) -> tuple[Path, list[np.ndarray]]:
    """A generated scene (what ``tiny`` knows) as lossless 10-bit PQ or HLG video; returns the path and its true masks."""
    from birefvid.data.scenes import make_clip

    w, h = size
    masks = []
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=30)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv444p10le"
        cc = stream.codec_context
        cc.color_trc, cc.color_primaries, cc.colorspace, cc.color_range = trc, 9, 9, 1
        for i, (image, mask) in enumerate(make_clip(3, n, (h, w))):
            signal = np.round(hdr_signal(image, trc) * 65535).astype(np.uint16)
            frame = av.VideoFrame.from_ndarray(signal, format="rgb48le").reformat(format="yuv444p10le", dst_colorspace="BT2020", dst_color_range=1)
            frame.pts = i
            out.mux(stream.encode(frame))
            masks.append(mask > 0.5)
        out.mux(stream.encode(None))
    return path, masks


@pytest.fixture(scope="module")
def tiny():
    from birefvid.runtime import Segmenter

    return Segmenter("tiny", device="cpu", precision="fp32", backend="torch")


@pytest.mark.parametrize("trc", [HLG, PQ], ids=["hlg", "pq"])
def test_the_model_finds_the_subject_in_hdr_video(tmp_path, tiny, trc):
    """The model sees HDR video as SDR, the pictures it knows, while the output keeps the HDR signal: fed the
    PQ or HLG signal itself, ``tiny`` found nothing (IoU 0.00) in a scene it cuts out of the SDR clip at 0.9."""
    clip, truth = write_scene_hdr_clip(tmp_path / "phone.mkv", trc)
    process_video(clip, tmp_path / "mask.mkv", segmenter=tiny, kind="mask", smooth="none")
    with av.open(str(tmp_path / "mask.mkv")) as c:
        masks = [f.to_ndarray(format="gray") > 127 for f in c.decode(video=0)]
    iou = [(m & t).sum() / (m | t).sum() for m, t in zip(masks, truth)]
    assert len(iou) == len(truth) and min(iou) > 0.8


def test_iter_masks_finds_the_subject_in_hdr_video_and_gives_the_frames_as_decoded(tmp_path, tiny):
    from birefvid.api import iter_masks

    clip, truth = write_scene_hdr_clip(tmp_path / "phone.mkv", PQ)
    pairs = list(iter_masks(clip, segmenter=tiny, smooth="none"))
    iou = [((m > 0.5) & t).sum() / ((m > 0.5) | t).sum() for (_, m), t in zip(pairs, truth)]
    assert len(iou) == len(truth) and min(iou) > 0.8
    with av.open(str(clip)) as c:
        assert np.array_equal(pairs[0][0], next(c.decode(video=0)).to_ndarray(format="rgb24"))  # the PQ signal, as decoded


@pytest.mark.parametrize("trc", [HLG, PQ], ids=["hlg", "pq"])
def test_live_shows_hdr_video_as_sdr(tmp_path, trc, caplog):
    """`birefvid live --source phone.mov`: live works in 8-bit SDR, so an HDR source is converted as it is
    captured; the PQ signal as it was came out (123, 87, 68) for (200, 60, 40), and ``tiny`` found nothing in it."""
    from birefvid.io.live_source import open_live_source

    clip = write_hdr_clip(tmp_path / "phone.mkv", trc)
    with caplog.at_level(logging.WARNING), open_live_source(str(clip)) as src:
        info = src.start()
        pictures = [f.frame.image for f in iter(lambda: src.read(5.0), None)]
    assert len(pictures) == N and info.color_trc not in (HLG, PQ)  # recordings are not tagged HDR
    assert np.abs(subject_colour(pictures) - SUBJECT).max() < 6  # from 8-bit signal: a little coarser than process
    assert any("live mode shows and records it as SDR" in r.getMessage() for r in caplog.records)


MASTER = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)"  # a P3-D65 1000 cd/m² grade


def hdr10_metadata(path: Path) -> dict[str, str]:
    """The mastering display and content light level side data of ``path``'s first frame, as ffprobe prints them."""
    out = subprocess.run(["ffprobe", "-v", "error", "-read_intervals", "%+#1", "-select_streams", "v", "-show_frames", str(path)],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    keys = ("red_x", "green_y", "white_point_x", "min_luminance", "max_luminance", "max_content", "max_average")
    return dict(line.split("=", 1) for line in out.splitlines() if line.split("=", 1)[0] in keys)


def test_an_hdr10_clips_mastering_display_and_max_cll_are_kept_in_x265(tmp_path, seg):
    """A PQ clip's HDR10 metadata (mastering display, MaxCLL/MaxFALL), by which TVs tone-map it, reaches the
    x265 output: it was dropped, so players assumed a default master instead of the grade's."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("needs the ffmpeg command")
    clip = tmp_path / "hdr10.mp4"
    picture = tmp_path / "frame.png"
    Image.fromarray(sdr_frame(0)).save(picture)
    subprocess.run([ffmpeg, "-v", "error", "-loop", "1", "-i", str(picture), "-frames:v", str(N), "-c:v", "libx265", "-pix_fmt", "yuv420p10le",
                    "-x265-params", f"log-level=error:hdr10=1:master-display={MASTER}:max-cll=1000,400", "-color_primaries", "bt2020",
                    "-color_trc", "smpte2084", "-colorspace", "bt2020nc", str(clip)], check=True)  # fmt: skip
    source = hdr10_metadata(clip)
    assert source["max_content"] == "1000" and source["min_luminance"] == "50/10000"
    process_video(clip, tmp_path / "cut.mp4", segmenter=seg, kind="composite", background="white", codec="libx265")
    assert hdr10_metadata(tmp_path / "cut.mp4") == source
