"""Sources: upright RGB frames with untouched pts, clear errors for bad input."""

from __future__ import annotations

import os
import re
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

import pytest

from birefvid.errors import ConfigError, SourceError, cli_naming
from birefvid.io import ImageSequenceSource, VideoFileSource, open_source
from system_tools import need_binary, need_module
from media import damage, damage_cluster, damage_packet, hide_leading_frames, make_images, make_resizing_video, make_sound_only, make_video, pattern_frame, shift_timestamps


def _mean_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_video_source_frames_pts_and_info(tmp_path):
    g = make_video(tmp_path / "in.mp4", n_frames=6, size=(64, 48), with_audio=True)
    with VideoFileSource(g.path) as src:
        info = src.info
        frames = list(src)
    assert (info.width, info.height) == (64, 48)
    assert info.frame_count == 6 and info.average_rate == 25
    assert [f.index for f in frames] == list(range(6))
    assert [f.pts * f.time_base for f in frames] == g.times
    assert all(f.time_base == info.time_base for f in frames)
    for f, ref in zip(frames, g.frames):
        assert f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8
        assert _mean_err(f.image, ref) < 6


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_metadata_gives_upright_frames(tmp_path, rotation):
    g = make_video(tmp_path / "rot.mp4", n_frames=2, size=(64, 48), rotation=rotation, with_audio=False)
    with open_source(g.path) as src:
        frames = list(src)
        info = src.info
    expected = np.rot90(g.frames[0], k=rotation // 90)
    assert (info.height, info.width) == expected.shape[:2]
    assert frames[0].image.shape == expected.shape
    assert _mean_err(frames[0].image, expected) < 6


@pytest.mark.parametrize("flip", ["h", "v"])
def test_mirroring_display_matrix_gives_the_picture_players_show(tmp_path, flip):
    """A display matrix that mirrors (a front camera's) reads as an angle alone in ``VideoFrame.rotation``: a
    left-right flip as -180 degrees, a top-bottom one as 0. It was turned upside down, or left as stored; ffmpeg 5.1+
    (and players) show it flipped, and so does every output now (``batch``'s chunks and ``live`` read it the same way)."""
    g = make_video(tmp_path / "selfie.mp4", n_frames=2, size=(64, 48), flip=flip, with_audio=False)
    with open_source(g.path) as src:
        frames = list(src)
        info = src.info
    expected = g.frames[0][:, ::-1] if flip == "h" else g.frames[0][::-1]
    assert (info.width, info.height) == (64, 48)
    assert _mean_err(frames[0].image, expected) < 6
    assert _mean_err(frames[1].image, g.frames[1][:, ::-1] if flip == "h" else g.frames[1][::-1]) < 6


def test_upright_turns_every_kind_of_array_as_numpy_would():
    """``upright`` turns with OpenCV (a tenth of numpy's strided copy): the same pixels as ``np.rot90`` for each of the
    eight orientations, for 8-bit RGB, 16-bit RGB (deep outputs), one-channel alpha and odd sizes, each C-contiguous."""
    from birefvid.io._pixels import upright

    rng = np.random.default_rng(7)
    for shape, dtype in (((48, 64, 3), np.uint8), ((49, 65, 3), np.uint16), ((7, 5), np.uint8)):
        image = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)
        for rotation in (0, 90, 180, 270, -90, -180):
            k = round(rotation / 90) % 4
            for mirrored, expected in ((False, np.rot90(image, k)), (True, np.rot90(image[:, ::-1], (k + 2) % 4))):
                turned = upright(image, rotation, mirrored)
                assert turned.dtype == dtype and turned.flags.c_contiguous
                assert np.array_equal(turned, expected), (shape, rotation, mirrored)


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_every_orientation_reads_as_ffmpeg_autorotates_it(tmp_path, rotation):
    """Each turn with and without a left-right mirror (the eight orientations, EXIF's 1-8): the picture and its size
    are what ``ffmpeg -i`` gives, whose autorotate (5.1 to 7.x: transpose clock/cclock, or cclock_flip/clock_flip when
    the matrix mirrors, hflip/vflip by the matrix's signs at 180 and 0) players follow."""
    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    for flip in (None, "h"):
        g = make_video(tmp_path / f"o{flip}.mp4", n_frames=1, size=(64, 48), rotation=rotation, flip=flip, with_audio=False)
        with open_source(g.path) as src:
            image = next(iter(src)).image
            size = (src.info.width, src.info.height)
        raw = subprocess.run([ffmpeg, "-v", "error", "-i", str(g.path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                             check=True, capture_output=True).stdout  # fmt: skip
        shown = np.frombuffer(raw, np.uint8).reshape(image.shape) if len(raw) == image.size else None
        assert shown is not None, (rotation, flip, image.shape, len(raw))
        assert size == (image.shape[1], image.shape[0]), (rotation, flip)
        assert _mean_err(image, shown) < 3, (rotation, flip)  # another orientation is off by ~57


def test_a_turned_and_mirrored_webm_with_alpha_reads_as_ffmpeg_shows_it(tmp_path):
    """VP9 with alpha is decoded by libvpx-vp9 opened bare, whose frames lack the stream's display matrix: a rotated or
    mirrored WebM cut-out was read as stored, 64x48 where ``ffmpeg -c:v libvpx-vp9`` gives 48x64, turned and flipped."""
    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    path = tmp_path / "cutout.webm"
    with av.open(str(path), "w") as out:
        v = out.add_stream("libvpx-vp9", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuva420p"
        v.set_display_rotation(90, hflip=True, vflip=False)
        for i in range(2):
            rgba = np.dstack([pattern_frame(i, (64, 48)), np.full((48, 64), 255, np.uint8)])
            rgba[:20, :20, 3] = 0  # a transparent corner: where it lands tells the turn and the mirror
            frame = av.VideoFrame.from_ndarray(rgba, format="rgba")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    raw = subprocess.run([ffmpeg, "-v", "error", "-c:v", "libvpx-vp9", "-i", str(path), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "rgba", "-"], check=True, capture_output=True).stdout  # fmt: skip
    shown = np.frombuffer(raw, np.uint8).reshape(64, 48, 4)  # ffmpeg's autorotate: 48 wide, 64 high
    with open_source(path) as src:
        first = next(iter(src))
        assert (src.info.width, src.info.height) == (48, 64)
    assert first.image.shape == (64, 48, 3) and first.coverage is not None
    assert _mean_err(first.image, shown[..., :3]) < 8
    assert _mean_err(first.coverage, shown[..., 3]) < 8


@pytest.mark.parametrize("orientation", [2, 5])
def test_camera_motion_jpeg_with_exif_reads_as_its_orientation_says(tmp_path, orientation):
    """A camera's Motion JPEG clip keeps each picture's EXIF; FFmpeg 8 hands it on as side data of a type PyAV 18 has
    no name for (31), and turns the orientation into a display matrix. Reading that matrix raised ``ValueError: 31 is
    not a valid Type``: ``process`` ended in a traceback. It reads as EXIF says (2: mirrored, 5: mirrored and turned)."""
    from PIL import Image

    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    picture = pattern_frame(3, (64, 48))
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(picture).save(tmp_path / "photo.jpg", exif=exif.tobytes(), quality=95)
    clip = tmp_path / "camera.avi"
    subprocess.run([ffmpeg, "-v", "error", "-framerate", "5", "-loop", "1", "-i", str(tmp_path / "photo.jpg"), "-c", "copy",
                    "-frames:v", "3", str(clip)], check=True)  # fmt: skip
    with open_source(clip) as src:
        frames = list(src)
        info = src.info
    expected = picture[:, ::-1] if orientation == 2 else picture.swapaxes(0, 1)  # EXIF 5: transposed
    assert (info.width, info.height) == (expected.shape[1], expected.shape[0])
    assert len(frames) == 3
    assert all(_mean_err(f.image, expected) < 6 for f in frames)


def test_odd_size_and_10bit_yuv444(tmp_path):
    g = make_video(tmp_path / "odd.mkv", n_frames=3, size=(65, 49), pix_fmt="yuv444p10le", with_audio=False)
    with VideoFileSource(g.path) as src:
        frames = list(src)
        assert (src.info.width, src.info.height) == (65, 49)
    assert frames[0].image.shape == (49, 65, 3) and frames[0].image.dtype == np.uint8
    assert _mean_err(frames[0].image, g.frames[0]) < 4


def test_10bit_420_and_gray_inputs(tmp_path):
    g = make_video(tmp_path / "ten.mp4", n_frames=3, pix_fmt="yuv420p10le", with_audio=False)
    with VideoFileSource(g.path) as src:
        assert _mean_err(next(iter(src)).image, g.frames[0]) < 8
    g = make_video(tmp_path / "gray.mkv", n_frames=2, codec="ffv1", pix_fmt="gray", with_audio=False)
    with VideoFileSource(g.path) as src:
        img = next(iter(src)).image
    assert img.shape == (48, 64, 3) and np.array_equal(img[..., 0], img[..., 1])


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_variable_frame_rate_pts_pass_through(tmp_path, ext):
    pts = [0, 33, 80, 95, 170, 200]  # milliseconds, irregular
    g = make_video(tmp_path / f"vfr{ext}", n_frames=6, pts=pts, time_base=Fraction(1, 1000), with_audio=False)
    with VideoFileSource(g.path) as src:
        times = [f.pts * f.time_base for f in src]
    assert times == g.times


def test_missing_file(tmp_path):
    with pytest.raises(SourceError, match="input not found: .*nope.mp4"):
        VideoFileSource(tmp_path / "nope.mp4")


def test_not_media(tmp_path):
    p = tmp_path / "text.mp4"
    p.write_text("hello " * 200)
    with pytest.raises(SourceError, match=r"text.mp4 is not a readable video \("):
        open_source(p)


def test_no_video_stream(tmp_path):
    p = make_sound_only(tmp_path / "audio.m4a", "aac", 1024)
    with pytest.raises(SourceError, match="has no video stream"):
        VideoFileSource(p)


def _noisy(n: int) -> list[np.ndarray]:
    return [np.random.default_rng(i).integers(0, 255, (48, 64, 3), dtype=np.uint8) for i in range(n)]


def _noisy_planes(n: int) -> list[np.ndarray]:
    """Noise as 4:2:0 planes: the encoder gets them as they are, so the file has the same bytes on every CPU (FFmpeg's
    RGB to YUV conversion does not) and a cut or damage at a byte offset hits the same frame everywhere."""
    return [np.random.default_rng(i).integers(16, 236, (72, 64), dtype=np.uint8) for i in range(n)]


@pytest.mark.parametrize("ext", [".mp4", ".mov"])
def test_corrupt_packet_names_the_frame(tmp_path, ext):
    # Measured (FFmpeg 8): overwriting the start of H.264 packet 6 in MP4/MOV makes avcodec_send_packet
    # fail after 4 frames came out (frame threading and B-frames delay output), so the error names frame 4.
    g = make_video(tmp_path / f"ok{ext}", n_frames=12, with_audio=False, frames=_noisy(12))
    bad = damage_packet(g.path, tmp_path / f"bad{ext}", 6)
    with VideoFileSource(bad) as src:
        got = []
        with pytest.raises(SourceError, match=rf"bad{ext}: decoding failed at frame 4 .*damaged"):
            for f in src:
                got.append(f.index)
    assert got == [0, 1, 2, 3]


def test_corrupt_packet_in_mkv_is_reported_as_damaged(tmp_path):
    # Measured: the Matroska demuxer loses sync at the damaged block ("Invalid track number") and ends quietly after
    # 6 frames; the file's own structure shows the block it skipped (the declared duration, 0.48 s, did before).
    g = make_video(tmp_path / "ok.mkv", n_frames=12, with_audio=False, frames=_noisy(12))
    bad = damage_packet(g.path, tmp_path / "bad.mkv", 6)
    with VideoFileSource(bad) as src:
        with pytest.raises(SourceError, match=r"bad.mkv: the file is damaged at frame 6: FFmpeg skipped data it could not read") as e:
            list(src)
    # process's line adds the --end that keeps the frames before the damage: the last one decoded (frame 5, 0.2 s), left out
    from birefvid.errors import cli_naming
    from birefvid.io.video_source import salvage_hint

    with cli_naming():
        assert salvage_hint(e.value) == "; --end 0.200 processes the part before the damage"


def _clustered(path: Path, codec: str) -> Path:
    """48 frames of 64 px noise at 25 fps, a keyframe (and so a Matroska Cluster) every 12, one encoder thread: the same
    bytes everywhere."""
    subprocess.run([need_binary("ffmpeg", "ffmpeg"), "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25,noise=alls=30:allf=t",
                    "-frames:v", "48", "-c:v", codec, "-threads", "1", "-g", "12", "-pix_fmt", "yuv420p", "-y", str(path)], check=True)  # fmt: skip
    return path


@pytest.mark.parametrize("ext, codec", [(".mkv", "libx264"), (".webm", "libvpx-vp9")])
def test_a_cluster_the_matroska_demuxer_skips_is_damage_with_its_good_parts_named(tmp_path, caplog, ext, codec):
    """A Matroska/WebM file with a damaged Cluster (a bad sector, a broken copy): FFmpeg's demuxer logs "Element at 0x...
    exceeds containing master element" and reads on from the next Cluster, raising nothing, so the file read as whole
    without the Cluster's frames (37 or 36 of 48), exit 0, no word. It is now an error at the skip, with where the frames
    before it end and the next keyframe after it (process's salvage hint); the intact file reads whole, unwarned, and
    none of libav's own messages (the decoders') reaches the log."""
    ok = _clustered(tmp_path / f"ok{ext}", codec)
    bad = damage_cluster(ok, tmp_path / f"bad{ext}", 2)
    with caplog.at_level("DEBUG"):
        with VideoFileSource(ok) as src:
            assert len(list(src)) == 48
        with VideoFileSource(bad) as src, pytest.raises(SourceError, match=rf"bad{ext}: the file is damaged at frame \d+: FFmpeg skipped "
                                                                           r"data it could not read there \(.+\), so frames or sound are missing") as e:  # fmt: skip
            list(src)
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING" or r.name.startswith("libav")] == []
    # measured: 0.72 and 1.36 s (.mkv), 0.84 and 1.44 s (.webm), either side of the skipped Cluster
    assert 0 < e.value.good_until < e.value.resumes_at < 1.92, (e.value.good_until, e.value.resumes_at)


def test_a_skipped_last_cluster_is_damage_though_within_the_declared_lengths_slack(tmp_path):
    """The last Cluster skipped (2 frames): the stream ended within the three frames a stream may end early by, so the
    file read as whole; the demuxer's message says data was skipped after the last frame read."""
    ok = _clustered(tmp_path / "ok.mkv", "libx264")
    clusters = ok.read_bytes().count(b"\x1f\x43\xb6\x75")
    bad = damage_cluster(ok, tmp_path / "bad.mkv", clusters - 1)
    with VideoFileSource(bad) as src, pytest.raises(SourceError, match=r"bad.mkv: the file is damaged at frame \d+: FFmpeg skipped"):
        list(src)


def test_decord_is_refused_a_cluster_the_matroska_demuxer_skips_as_pyav_is(tmp_path):
    """``--decoder decord`` read past the skipped Cluster as PyAV did; its source now carries the damage PyAV's probe
    found, and ``refuse_skipped`` (process, the API) refuses it before any frame, as for PyAV."""
    need_module("decord", "decord")
    from birefvid.io.decord_source import DecordSource
    from birefvid.io.video_source import refuse_skipped

    bad = damage_cluster(_clustered(tmp_path / "ok.mkv", "libx264"), tmp_path / "bad.mkv", 2)
    with DecordSource(bad) as src:
        with pytest.raises(SourceError, match=r"bad.mkv: the file is damaged at frame \d+: FFmpeg skipped"):
            refuse_skipped(src, None, None)
        refuse_skipped(src, None, src.skipped.good_until)  # a part before the damage is processed


_WHOLE_MATROSKA = {  # ffmpeg's ways of writing a whole Matroska/WebM file, each read by the structure walk
    "sound": ["-c:v", "libx264", "-c:a", "aac"],
    "webm-sound": ["-c:v", "libvpx", "-deadline", "realtime", "-c:a", "libopus", "-f", "webm"],
    "live (Clusters of unknown size)": ["-c:v", "libx264", "-c:a", "aac", "-live", "1"],
    "Cues first": ["-c:v", "libx264", "-c:a", "aac", "-reserve_index_space", "4000"],  # a Void after them
    "small Clusters, FLAC": ["-c:v", "libx264", "-bf", "0", "-c:a", "flac", "-cluster_time_limit", "200"],
    "BlockGroups, attachment, tags": ["-c:v", "mpeg4", "-c:a", "pcm_s16le", "-metadata", "title=x", "-attach", "{font}",
                                      "-metadata:s:t", "mimetype=application/x-truetype-font"],
    "piped (no Cues, sizes unknown)": ["-c:v", "libx264", "-c:a", "aac", "-f", "matroska", "pipe:1"],
}


@pytest.mark.parametrize("case", list(_WHOLE_MATROSKA))
def test_whole_matroska_files_show_no_skipped_data(tmp_path, case):
    """The structure walk that finds a damaged Cluster finds nothing in whole files of every layout ffmpeg writes (live
    Clusters of unknown size, Cues before the Clusters, a Void, BlockGroups, attachments, tags, a pipe's), nor in one
    cut off (a recording killed mid-write: a different error, the cut-off one), and the frames all read."""
    from birefvid.io.mkv_damage import skipped_data

    font = tmp_path / "f.ttf"
    font.write_bytes(b"not really a font")
    args = [a.replace("{font}", str(font)) for a in _WHOLE_MATROSKA[case]]
    path = tmp_path / ("clip.webm" if "webm" in case else "clip.mkv")
    out = subprocess.run([need_binary("ffmpeg", "ffmpeg"), "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25",
                          "-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", "2", *args,
                          *(() if args[-1] == "pipe:1" else ("-y", str(path)))], check=True, capture_output=True)  # fmt: skip
    if args[-1] == "pipe:1":
        path.write_bytes(out.stdout)
    assert skipped_data(path) is None
    with VideoFileSource(path) as src:
        assert len(list(src)) == 50
    cut = tmp_path / f"cut{path.suffix}"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    assert skipped_data(cut) is None


def _set_size(data: bytearray, at: int, grow: int) -> None:
    """Add ``grow`` to the EBML size at ``at`` of ``data``, in the same bytes."""
    length = 9 - data[at].bit_length()
    value = int.from_bytes(data[at : at + length], "big") & ((1 << (7 * length)) - 1)
    data[at : at + length] = ((1 << (7 * length)) | (value + grow)).to_bytes(length, "big")


def test_a_cluster_whose_size_runs_into_the_next_one_loses_nothing(tmp_path):
    """A Cluster whose size is damaged too large holds the next Cluster's ID where a block should be: FFmpeg's demuxer
    ends the Cluster there (or resyncs to that very Cluster) and reads every frame, but the walk called it damage and
    the whole file was refused. A Cluster of known size now ends at a top-level element, as one of unknown size does."""
    from birefvid.io.mkv_damage import skipped_data

    data = bytearray(_clustered(tmp_path / "ok.mkv", "libx264").read_bytes())
    second = [m.start() for m in re.finditer(re.escape(b"\x1f\x43\xb6\x75"), data)][1]
    _set_size(data, second + 4, 300)
    bad = tmp_path / "big.mkv"
    bad.write_bytes(bytes(data))
    assert skipped_data(bad) is None
    with VideoFileSource(bad) as src:
        assert len(list(src)) == 48


@pytest.mark.parametrize("where", ["Tags ID", "Tags size", "SeekHead ID"])
def test_damage_before_the_first_cluster_loses_nothing(tmp_path, where):
    """Damage in what comes before the first Cluster (a SeekHead, the Tags ffmpeg writes there): the demuxer resyncs to
    the first Cluster and reads every frame, but the walk called it damage at frame 0 and the whole file was refused.
    The Cues say where the first Cluster is: found there, nothing is lost; a damaged first Cluster is still found."""
    from birefvid.io.mkv_damage import skipped_data
    from media import damage_cluster

    ok = tmp_path / "ok.mkv"
    subprocess.run([need_binary("ffmpeg", "ffmpeg"), "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25",
                    "-frames:v", "48", "-c:v", "libx264", "-g", "12", "-metadata", "title=x", "-y", str(ok)], check=True)  # fmt: skip
    data = bytearray(ok.read_bytes())
    first = data.find(b"\x1f\x43\xb6\x75")
    element = data.rfind(b"\x12\x54\xc3\x67" if where.startswith("Tags") else b"\x11\x4d\x9b\x74", 0, first)  # not the SeekHead's
    assert 0 < element < first
    if where.endswith("ID"):
        data[element] = 0
    else:
        _set_size(data, element + 4, 30)  # it runs into the first Cluster
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(bytes(data))
    assert skipped_data(bad) is None
    with VideoFileSource(bad) as src:
        assert len(list(src)) == 48
    damage_cluster(bad, tmp_path / "worse.mkv", 2)  # and a Cluster further on: still found
    skip = skipped_data(tmp_path / "worse.mkv")
    assert skip is not None and 0 < skip.frame < 48, skip
    data = bytearray(ok.read_bytes())
    data[first] = 0  # the first Cluster's own ID: its frames are lost
    bad.write_bytes(bytes(data))
    skip = skipped_data(bad)
    assert skip is not None and skip.frame == 0 and skip.offset == first, skip


def test_a_block_of_a_track_the_file_has_not_is_damage(tmp_path):
    """A block whose track number is damaged (9 in a file of one track): FFmpeg's demuxer logs "Invalid track number 9"
    and skips to the next Cluster (37 of 48 frames read, exit 0, no word), but the walk read the block as whole."""
    from birefvid.io.mkv_damage import skipped_data

    data = bytearray(_clustered(tmp_path / "ok.mkv", "libx264").read_bytes())
    pos = [m.start() for m in re.finditer(re.escape(b"\x1f\x43\xb6\x75"), data)][1] + 4
    pos += 9 - data[pos].bit_length()  # the Cluster's data: its children up to its first SimpleBlock
    while data[pos] != 0xA3:
        pos += 1 + (9 - data[pos + 1].bit_length()) + (int.from_bytes(data[pos + 1 : pos + 1 + 9 - data[pos + 1].bit_length()], "big")
                                                         & ((1 << 7 * (9 - data[pos + 1].bit_length())) - 1))  # fmt: skip
    data[pos + 1 + 9 - data[pos + 1].bit_length()] = 0x89  # its track number: 9
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(bytes(data))
    skip = skipped_data(bad)
    assert skip is not None and "a block of track 9, which the file has not" in skip.what and 0 < skip.frame < 48, skip
    with VideoFileSource(bad) as src, pytest.raises(SourceError, match=r"bad.mkv: the file is damaged at frame \d+: FFmpeg skipped"):
        list(src)


def test_a_damaged_cluster_of_unknown_size_is_found(tmp_path):
    """A live writer that cannot seek back (a stream's recorder, OBS) leaves its Segment's and Clusters' sizes
    unknown: the walk reads such a Cluster's children up to the next top-level element, reads the whole file as whole,
    and finds the damage in one as in a sized one."""
    from birefvid.io.mkv_damage import skipped_data
    from media import unknown_cluster_sizes

    ok = unknown_cluster_sizes(_clustered(tmp_path / "sized.mkv", "libx264"), tmp_path / "ok.mkv")
    assert skipped_data(ok) is None
    with VideoFileSource(ok) as src:
        assert len(list(src)) == 48
    bad = damage_cluster(ok, tmp_path / "bad.mkv", 2)
    skip = skipped_data(bad)
    assert skip is not None and 0 < skip.good_until < skip.resumes_at < 1.92 and 0 < skip.frame < 48, skip
    with VideoFileSource(bad) as src, pytest.raises(SourceError, match=r"bad.mkv: the file is damaged at frame \d+: FFmpeg skipped"):
        list(src)


def test_a_recording_cut_off_mid_frame_keeps_every_frame_with_a_warning(tmp_path, caplog):
    """A camera's MPEG-TS recording that ends mid-frame (power lost, disk full) decodes its last frame
    concealed; that refused the whole file, with advice (strict=False) no command-line user could follow.
    It is kept, as ffmpeg keeps it, with one warning; ``strict`` still refuses it."""
    g = make_video(tmp_path / "cam.ts", n_frames=24, with_audio=False, frames=_noisy_planes(24), codec="libx264")
    data = g.path.read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[: len(data) // 2 // 188 * 188])  # mid-frame, at a packet's end: the file says nothing of it
    # one decoding thread: with frame threads whether FFmpeg flags the cut frame concealed varies run to run
    with caplog.at_level("WARNING"), VideoFileSource(cut, threads=1) as src:
        assert [f.index for f in src] == list(range(12))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [warnings[0]] and "cut.ts: frame 11 is damaged" in warnings[0] and "kept" in warnings[0], warnings
    assert src.concealed == 1
    with VideoFileSource(cut, strict=True, threads=1) as strict:
        with pytest.raises(SourceError, match=r"cut.ts: frame 11 is damaged .*re-encode or repair"):
            list(strict)


def _lose_ts_packets(path: Path, out: Path, frames: list[int]) -> Path:
    """Copy an MPEG-TS file without the 188-byte packets of the second half of each listed frame, as a lossy network
    drops them from a camera's stream (a packet or two lost mid-frame may go unnoticed: the decoder reads on)."""
    import av

    with av.open(str(path)) as container:
        starts = [p.pos for p in container.demux(video=0) if p.size] + [path.stat().st_size]
    data = path.read_bytes()
    lost = set()
    for i in frames:  # frames are stored in the order shown: the encoder made no B-frames of noise
        lost.update(range(starts[i] + (starts[i + 1] - starts[i]) // 2 // 188 * 188, starts[i + 1], 188))
    out.write_bytes(b"".join(data[at : at + 188] for at in range(0, len(data), 188) if at not in lost))
    return out


def test_frames_damaged_on_the_way_are_kept_and_counted_once(tmp_path, caplog):
    """Packets lost from a camera damage frame after frame: one warning for the first, one count at the end."""
    g = make_video(tmp_path / "cam.ts", n_frames=24, with_audio=False, frames=_noisy_planes(24), codec="libx264")
    bad = _lose_ts_packets(g.path, tmp_path / "bad.ts", [4, 14])
    with caplog.at_level("WARNING"), VideoFileSource(bad, threads=1) as src:
        assert len(list(src)) == 24
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2 and "frame 4 is damaged" in warnings[0], warnings
    assert warnings[1].endswith("2 frames were damaged and kept as the decoder concealed them (frames 4 to 14)"), warnings
    caplog.clear()
    for _ in range(3):  # live --source bad.ts --loop reads it at every pass: 22 warnings in 8 s, said once now
        with caplog.at_level("WARNING"), VideoFileSource(bad, threads=1) as src:
            assert len(list(src)) == 24 and src.concealed == 2
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_a_cut_off_mpegts_warning_counts_the_frames_from_start_that_were_processed(tmp_path, caplog):
    """`process cut.ts --start 1` processed the frames from 1 s to the cut, but the warning counted every frame
    from the file's start (37 where 13 were processed): it now says how many the run kept, from --start."""
    from birefvid.io.trim import TrimmedSource

    g = make_video(tmp_path / "cam.ts", n_frames=24, with_audio=False, frames=_noisy_planes(24), codec="libx264")
    data = g.path.read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[: len(data) * 8 // 10 // 188 * 188 + 100])
    with caplog.at_level("WARNING"), TrimmedSource(VideoFileSource(cut, threads=1), start=0.5) as part:
        kept = len(list(part))
    assert 0 < kept < 12, kept
    warnings = [r.getMessage() for r in caplog.records if "MPEG-TS" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].endswith(f"; its {kept} frames from start to the cut were kept, as ffmpeg keeps them"), warnings


def test_an_mpegts_recording_cut_off_keeps_its_frames_and_says_it_was_cut(tmp_path, caplog):
    """A camera's MPEG-TS recording stopped abruptly (a card pulled), or a .ts download interrupted, was processed at
    exit 0 with nothing said: it declares no length. It ends partway through a 188-byte packet, which says so; its
    frames before the cut are kept, as many as ffmpeg reads, with a warning. A whole file gets none."""
    import av

    g = make_video(tmp_path / "cam.ts", n_frames=24, with_audio=False, frames=_noisy_planes(24), codec="libx264")
    data = g.path.read_bytes()
    assert len(data) % 188 == 0
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[: len(data) * 6 // 10 // 188 * 188 + 100])  # 100 bytes into a packet
    with av.open(str(cut)) as container:
        ffmpeg_frames = sum(1 for _ in container.decode(video=0))
    assert 8 < ffmpeg_frames < 24
    with caplog.at_level("WARNING"), VideoFileSource(cut, threads=1) as src:
        assert len(list(src)) == ffmpeg_frames
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "MPEG-TS" in r.getMessage()]
    assert warnings == [f"{cut}: the file ends partway through an MPEG-TS packet, as a recording stopped abruptly or an "
                        f"interrupted download leaves it; its {ffmpeg_frames} frames before the cut were kept, as ffmpeg keeps them"]
    caplog.clear()
    with caplog.at_level("WARNING"), VideoFileSource(g.path, threads=1) as src:
        assert len(list(src)) == 24
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    for _ in range(3):  # live --source cut.ts --loop reads it again and again: 41 warnings in 8 s; said once
        with caplog.at_level("WARNING"), VideoFileSource(cut, threads=1) as src:
            assert len(list(src)) == ffmpeg_frames
    assert not [r for r in caplog.records if "MPEG-TS" in r.getMessage()]


def test_truncated_mkv_is_an_error(tmp_path):
    # Measured: a Matroska file cut in half decodes its first frames then ends quietly; the declared
    # stream duration shows it is short.
    g = make_video(tmp_path / "ok.mkv", n_frames=12, with_audio=False,
                   frames=_noisy(12))
    cut = damage(g.path, tmp_path / "cut.mkv", at=0.5, mode="truncate")
    with VideoFileSource(cut) as src:
        with pytest.raises(SourceError, match=r"cut.mkv: decoding stopped at frame \d+\b.*truncated"):
            list(src)


@pytest.mark.parametrize("name", ["cut.jpg", "cut.png"])
def test_a_single_picture_cut_off_is_refused_as_birefvid_image_refuses_it(tmp_path, name):
    """FFmpeg decodes a JPEG cut off halfway with its missing half grey, without a word, so `process` and
    `live --source` used it; a PNG's failure read "[Errno 1094995529] ... 'avcodec_send_packet()'"."""
    from PIL import Image

    Image.fromarray(_noisy(1)[0]).save(tmp_path / f"whole{name[3:]}")
    data = (tmp_path / f"whole{name[3:]}").read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    kind = "JPEG" if name.endswith(".jpg") else "PNG"
    with pytest.raises(SourceError, match=rf"^{tmp_path / name} is not a readable image \(a {kind} cut off before its end, as an "
                                          r"interrupted download or copy leaves it\)$"):
        VideoFileSource(tmp_path / name)
    with VideoFileSource(tmp_path / f"whole{name[3:]}") as whole:  # a whole one is still a one-frame video
        assert len(list(whole)) == 1


def test_pictures_read_with_an_opencv_whose_wheel_lacks_utils_logging(tmp_path, monkeypatch):
    """opencv-python-headless 4.8-4.12 (pyproject's floor is 4.12) have no ``cv2.utils.logging``: every
    picture read (``birefvid image``, a one-frame ``process``) failed with an AttributeError there."""
    import cv2
    from PIL import Image

    from birefvid.io.image_source import check_picture

    logging_ = getattr(cv2.utils, "logging", cv2)  # an old wheel has only the top-level functions
    monkeypatch.setattr(cv2, "getLogLevel", logging_.getLogLevel, raising=False)  # where those wheels have them
    monkeypatch.setattr(cv2, "setLogLevel", logging_.setLogLevel, raising=False)
    monkeypatch.delattr(cv2.utils, "logging", raising=False)
    Image.fromarray(_noisy(1)[0]).save(tmp_path / "whole.png")
    check_picture(tmp_path / "whole.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:100])
    with pytest.raises(SourceError, match=r"is not a readable image \(a PNG cut off before its end"):
        check_picture(tmp_path / "cut.png")
    assert logging_.getLogLevel() != 0  # OpenCV's own messages are back on afterwards


def test_a_frame_count_its_own_duration_belies_is_not_taken_for_a_truncated_file(tmp_path):
    """An MP4 whose index's sample count had a bit flipped (10 frames counted 1073741834) failed "decoding stopped at
    frame 10 of 1073741834; the file is truncated" though every frame, and its declared duration, was there."""
    g = make_video(tmp_path / "ten.mp4", n_frames=10, with_audio=False)
    data = bytearray(g.path.read_bytes())
    data[data.find(b"stts") + 12] |= 0x40  # the first entry's sample count: 0x4000000a
    (tmp_path / "flipped.mp4").write_bytes(data)
    with VideoFileSource(tmp_path / "flipped.mp4") as src:
        assert src.info.frame_count == 10 and len(list(src)) == 10


def test_ffmpegs_error_numbers_stay_out_of_messages():
    """A decoder's bare -1 read "[Errno 1] Operation not permitted" (a damaged ProRes frame)."""
    import errno

    import av

    from birefvid.io.video_source import ffmpeg_reason

    for code, words in ((errno.EPERM, "invalid data"), (errno.EINVAL, "invalid data"), (1094995529, "Invalid data found when processing input")):
        with pytest.raises(av.FFmpegError) as caught:
            av.error.err_check(-code, "avcodec_send_packet()")  # as a decoder's failure reaches PyAV
        assert ffmpeg_reason(caught.value) == words


def test_mp4_cut_between_keyframes_gives_the_frames_it_shows(tmp_path):
    # `ffmpeg -ss T -c copy` keeps the GOP before T behind an edit list: the header counts 12 frames,
    # 7 are shown. That is a whole file, not a truncated one.
    g = make_video(tmp_path / "full.mp4", n_frames=12, with_audio=False, frames=_noisy(12))
    cut = hide_leading_frames(g.path, tmp_path / "cut.mp4", 5, g.fps)
    with VideoFileSource(g.path) as src:
        full = [f.image for f in src]
    with VideoFileSource(cut) as src:
        assert src.info.frame_count == 7  # the progress total: what will be shown
        frames = list(src)
    assert [f.pts * f.time_base for f in frames] == [Fraction(i, 25) for i in range(7)]
    assert all(np.array_equal(f.image, want) for f, want in zip(frames, full[5:]))


def _phone_cut(tmp_path) -> tuple[list[float], Path]:
    """A phone-like MOV (variable rate in 1/600 s, bursts at 24-30 fps between gaps of seconds, a keyframe every
    12 frames, B-frames, 20 s of AAC; the gaps are what a 20-minute clip's frames are, without encoding them) and ``ffmpeg -ss 10.3 -c copy`` of it: the presentation times (seconds)
    the cut shows, and the cut. Its edit list makes FFmpeg drop 12 samples from the index outright."""
    import subprocess

    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    tb = Fraction(1, 600)
    pts = [0, 20, 2595, 2618, 2641, 2666, 2688, 2709, 2731, 5607, 5631, 5652, 5674, 5694, 5716, 5740, 5762, 7381, 7403,
           7428, 7450, 9546, 9567, 9590, 9612, 9633, 11541, 11562]
    src = tmp_path / "phone.mov"
    with av.open(str(src), "w") as out:
        v = out.add_stream("libx264", rate=30)
        v.width, v.height, v.pix_fmt, v.time_base = 64, 48, "yuv420p", tb
        v.codec_context.time_base, v.options = tb, {"bf": "2", "g": "12", "x264-params": "scenecut=0:b-adapt=0"}
        a = out.add_stream("aac", rate=48000)
        for i, p in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(pattern_frame(i, (64, 48)), format="rgb24")
            frame.pts, frame.time_base = p, tb
            out.mux(v.encode(frame))
        out.mux(v.encode())
        for k in range(0, 20 * 48000, 1024):
            sound = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            sound.sample_rate, sound.pts = 48000, k
            out.mux(a.encode(sound))
        out.mux(a.encode())
    cut = tmp_path / "cut.mp4"
    subprocess.run([ffmpeg, "-v", "error", "-ss", "10.3", "-i", str(src), "-c", "copy", str(cut)], check=True)
    with av.open(str(cut)) as c:
        shown = sorted(float(f.pts * f.time_base) for f in c.decode(video=0))
    return shown, cut


def test_mp4_cut_whose_edit_list_drops_samples_from_the_index_is_whole(tmp_path):
    # a phone clip cut with `ffmpeg -ss 10.3 -c copy`: the header counts 28 samples, FFmpeg drops 12 before the
    # keyframe the edit list starts from and hides 5 more; the 11 it shows were "frame 11 of 23; truncated"
    shown, cut = _phone_cut(tmp_path)
    with av.open(str(cut)) as c:
        assert c.streams.video[0].frames > len(c.streams.video[0].index_entries)  # the case: samples dropped outright
    with VideoFileSource(cut) as src:
        frames = list(src)
    assert len(frames) == len(shown) > 0
    assert [float(f.pts * f.time_base) for f in frames] == pytest.approx(shown, abs=1e-6)
    from birefvid.batch.plan import probe_video

    probe = probe_video(cut)  # batch plans its chunks from the packets: as whole
    assert probe is not None and probe.frames == len(shown)


def test_mkv_that_starts_late_is_whole_and_cut_short_is_not(tmp_path):
    # a piece of a longer recording (`ffmpeg -f segment` keeps the timestamps running): FFmpeg's
    # Matroska muxer declares where the stream ends (1.9 s), not how long it lasts (0.4 s)
    g = make_video(tmp_path / "ok.mkv", n_frames=10, with_audio=False, frames=_noisy(10))
    late = shift_timestamps(g.path, tmp_path / "late.mkv", Fraction(3, 2))
    with VideoFileSource(late) as src:
        frames = list(src)
    assert [f.pts * f.time_base for f in frames] == [Fraction(3, 2) + Fraction(i, 25) for i in range(10)]
    cut = damage(late, tmp_path / "cut.mkv", at=0.5, mode="truncate")
    with VideoFileSource(cut) as src:
        with pytest.raises(SourceError, match=r"cut.mkv: decoding stopped at frame \d+\b.*truncated"):
            list(src)


def test_mkv_that_starts_before_zero_gives_its_first_frames_the_times_before(tmp_path):
    # `ffmpeg -output_ts_offset -0.2 -avoid_negative_ts disabled` (or a cut of a longer recording):
    # Matroska reads the frames before 0 back without a pts; numbered from 0 by the encoder, they
    # collided with the timestamped frames after them and `process` failed ("pts 0 does not increase")
    import subprocess

    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    g = make_video(tmp_path / "ok.mp4", n_frames=10, with_audio=True, frames=_noisy(10))
    early = tmp_path / "early.mkv"
    subprocess.run([ffmpeg, "-v", "error", "-i", str(g.path), "-c", "copy", "-output_ts_offset", "-0.2",
                    "-avoid_negative_ts", "disabled", str(early)], check=True)  # fmt: skip
    with VideoFileSource(early) as src:
        assert src.info.frame_count == 10  # the Matroska tag says where the stream ends (0.2 s): 0.4 s long
        frames = list(src)
    assert [f.pts * f.time_base for f in frames] == [Fraction(i - 5, 25) for i in range(10)]
    # in their order: each decoded frame is nearest the one made for its place
    assert [min(range(10), key=lambda j: _mean_err(f.image, g.frames[j])) for f in frames] == list(range(10))


def test_mkvmerge_s_duration_tag_of_a_video_starting_late_is_its_length(tmp_path):
    """mkvmerge's DURATION tag says how long a track lasts (its statistics: last end less first start), FFmpeg's where
    it ends: a video mkvmerge delayed by 1 s was read 1 s short (10 frames of 20, and a GIF's last frame with it).
    With mkvmerge's NUMBER_OF_FRAMES beside the tag, the reading that agrees with it is taken; FFmpeg's own still reads."""
    import re
    import subprocess

    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    made = tmp_path / "ffmpeg.mkv"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-frames:v", "20", "-output_ts_offset", "1",
                    "-c:v", "ffv1", "-metadata:s:v", "_STATISTICS_WRITING_APP=mkvmerge v80.0 64-bit", "-metadata:s:v", "NUMBER_OF_FRAMES=20",
                    str(made)], check=True)  # fmt: skip
    data = made.read_bytes()
    end = re.search(rb"00:00:03\.0+", data)  # FFmpeg's tag: the video ends at 3 s
    assert end is not None
    # mkvmerge's: lasts 2 s; its Info names libebml as the muxing application (MuxingApp, ID 4D80) and mkvmerge as the
    # writing one (5741), while the ENCODER tag of the file it remuxed (Lavf..., FFmpeg's) stays, as mkvmerge keeps it
    data = data.replace(end.group(), end.group().replace(b"03.", b"02."))
    data, apps = re.subn(rb"(?<=\x4d\x80|\x57\x41)([\x80-\xff])Lavf", lambda m: m[1] + b"mkvm", data)
    assert apps == 2 and b"ENCODER" in data and b"Lavf" in data
    (tmp_path / "mkvmerge.mkv").write_bytes(data)
    for name in ("ffmpeg.mkv", "mkvmerge.mkv"):
        with VideoFileSource(tmp_path / name) as src:
            assert src.info.duration == pytest.approx(2.0) and src.info.frame_count in (None, 20), name
            assert len(list(src)) == 20


def test_ffmpeg_segment_of_an_mkvmerge_file_reads_its_own_length(tmp_path):
    """ffmpeg's segment muxer (and any -c copy remux) keeps an mkvmerge file's NUMBER_OF_FRAMES, now stale (the whole
    file's 60), beside its own DURATION tag (where the segment ends: 4 s for one from 2 to 4 s). The stale count agreed
    better with reading the tag as a length: the segment's 20 frames were read as 4 s, and a GIF of it lasted 4 s."""
    import subprocess

    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    whole = tmp_path / "whole.mkv"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-frames:v", "60", "-g", "10", "-c:v", "ffv1",
                    "-metadata:s:v", "_STATISTICS_WRITING_APP=mkvmerge v80.0 64-bit", "-metadata:s:v", "NUMBER_OF_FRAMES=60",
                    str(whole)], check=True)  # fmt: skip
    subprocess.run([ffmpeg, "-v", "error", "-i", str(whole), "-c", "copy", "-f", "segment", "-segment_time", "2",
                    str(tmp_path / "seg%d.mkv")], check=True)  # fmt: skip
    with VideoFileSource(tmp_path / "seg1.mkv") as src:
        assert src._stream.metadata.get("NUMBER_OF_FRAMES") == "60"  # the stale count is there
        assert src.info.duration == pytest.approx(2.0) and src.info.frame_count == 20
        assert len(list(src)) == 20


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_an_mkv_fed_through_a_named_pipe_is_not_opened_again_for_its_muxer(tmp_path):
    """Telling FFmpeg's Matroska files from mkvmerge's reads the file's Info element; a named pipe's data is read once,
    and opening it again after its writer finished waited for another writer for good."""
    import subprocess
    import threading

    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    late = tmp_path / "late.mkv"  # starts at 1 s, with a count beside its DURATION tag: the case that asks for the muxer
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-frames:v", "20", "-output_ts_offset", "1",
                    "-c:v", "ffv1", "-metadata:s:v", "NUMBER_OF_FRAMES=20", str(late)], check=True)  # fmt: skip
    pipe = tmp_path / "pipe.mkv"
    os.mkfifo(pipe)
    threading.Thread(target=lambda: pipe.write_bytes(late.read_bytes()), daemon=True).start()  # a small file: the writer ends at once
    read: list[int] = []

    def run() -> None:
        with VideoFileSource(pipe) as src:
            read.append(len(list(src)))

    reader = threading.Thread(target=run, daemon=True)
    reader.start()
    reader.join(timeout=30)
    if reader.is_alive():  # unblock the stuck open so the thread ends with the test
        with open(pipe, "wb"):
            pass
    assert read == [20]


def test_mkv_of_a_still_picture_over_a_song_is_whole(tmp_path):
    # `ffmpeg -i cover.jpg -i song.mp3 -c:v libx264 song.mkv`: one frame and 3 s of sound. Matroska has
    # no stream duration, so FFmpeg gave the video the file's 3 s; its DURATION tag says 0.04 s
    g = make_video(tmp_path / "song.mkv", n_frames=1, with_audio=True, audio_seconds=3.0)
    with VideoFileSource(g.path) as src:
        assert src.info.duration == pytest.approx(0.04, abs=0.03)
        assert len(list(src)) == 1


def test_picture_size_change_midway_is_scaled_to_the_first_size(tmp_path, caplog):
    # a browser's MediaRecorder (WebRTC) drops the resolution when bandwidth falls, then restores it
    path = tmp_path / "call.webm"
    make_resizing_video(path, [((64, 48), 4), ((32, 24), 3), ((64, 48), 2)])
    with caplog.at_level("WARNING", logger="birefvid"), VideoFileSource(path) as src:
        frames = list(src)
    assert (src.info.width, src.info.height) == (64, 48)
    assert [f.image.shape for f in frames] == [(48, 64, 3)] * 9
    assert [f.pts * f.time_base for f in frames] == [Fraction(i, 25) for i in range(9)]
    assert "changes from 64x48 to 32x24 at frame 4; scaled back to 64x48" in caplog.text


def test_truncated_mp4_cannot_open(tmp_path):
    g = make_video(tmp_path / "ok.mp4", n_frames=8, with_audio=False)
    cut = damage(g.path, tmp_path / "cut.mp4", at=0.6, mode="truncate")  # the index (moov) is at the end
    with pytest.raises(SourceError, match="is not a readable video"):
        VideoFileSource(cut)


def test_a_fragmented_mp4_cut_off_in_its_last_fragment_says_a_remux_keeps_the_rest(tmp_path):
    """A fragmented MP4 (OBS's crash-safe recording, a camera's) stopped midway was refused with "download or copy
    it again": a recording has no copy elsewhere, and ``ffmpeg -c copy`` keeps its whole fragments."""
    import av

    with av.open(str(tmp_path / "rec.mp4"), "w", options={"movflags": "frag_keyframe+empty_moov"}) as out:
        stream = out.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        for i in range(12):
            out.mux(stream.encode(_frame(i)))
        out.mux(stream.encode(None))
    data = (tmp_path / "rec.mp4").read_bytes()
    assert data.find(b"moov") < data.find(b"moof") < data.rfind(b"mdat")
    (tmp_path / "cut.mp4").write_bytes(data[: data.rfind(b"mdat") + 200])
    with pytest.raises(SourceError, match=r"fragmented MP4 cut off in its last fragment .*recording stopped.*ffmpeg -i cut.mp4 -c copy fixed.mp4"):
        VideoFileSource(tmp_path / "cut.mp4")


def _frame(i: int):
    """A 64x48 picture that changes with ``i``."""
    import av

    picture = np.zeros((48, 64, 3), np.uint8)
    picture[:, : 4 * (i + 1)] = 200
    frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
    frame.pts = i
    return frame


def test_a_raw_dv_file_keeps_its_frame_rate_and_is_read_whole(tmp_path):
    """FFmpeg 8 reads a raw .dv (a FireWire capture, dvgrab's) at 60000 fps, its time base's: every DV file
    failed as "truncated or damaged" at its end, and its outputs would have run at 60000 fps."""
    import av

    path = tmp_path / "capture.dv"
    with av.open(str(path), "w", format="dv") as out:
        v = out.add_stream("dvvideo", rate=25)
        v.width, v.height, v.pix_fmt = 720, 576, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((576, 720, 3), 60 * i, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    with VideoFileSource(path) as src:
        assert src.info.average_rate == 25
        frames = list(src)
    assert [f.pts * f.time_base for f in frames] == [Fraction(i, 25) for i in range(3)]


def test_an_mxf_keeps_its_timecode_but_not_its_writers_identity(tmp_path):
    """An MXF's tags name the program that wrote it (company, product, versions) and the material's UMIDs, which
    Avid relinks by: carried into the cut-out's tags, they claimed it was that file. Its timecode stays."""
    import av

    path = tmp_path / "A001C001.mxf"
    with av.open(str(path), "w", format="mxf") as out:
        v = out.add_stream("mpeg2video", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv422p"
        v.metadata["timecode"] = "10:00:00:00"
        for i in range(2):
            out.mux(v.encode(_frame(i)))
        out.mux(v.encode(None))
    with VideoFileSource(path) as src:
        assert src.info.timecode == "10:00:00:00" and src.info.tags == ()


def test_close_is_idempotent_and_stops_iteration(tmp_path):
    g = make_video(tmp_path / "in.mkv", n_frames=6, with_audio=False)
    src = VideoFileSource(g.path)
    it = iter(src)
    next(it)
    src.close()
    src.close()
    assert list(it) == []
    with pytest.raises(RuntimeError, match="only once"):
        iter(src)


def test_image_sequence_folder_and_glob(tmp_path):
    make_images(tmp_path / "seq", n=3, mode="RGB")
    make_images(tmp_path / "seq", n=1, mode="RGBA", names=["img_003.png"])
    (tmp_path / "seq" / "notes.txt").write_text("ignored")
    with open_source(tmp_path / "seq", fps=30) as src:
        frames = list(src)
        info = src.info
    assert len(frames) == 4 and info.frame_count == 4
    assert info.time_base == Fraction(1, 30) and [f.pts for f in frames] == [0, 1, 2, 3]
    assert np.array_equal(frames[0].image, pattern_frame(0, (64, 48)))
    assert np.array_equal(frames[3].image, pattern_frame(0, (64, 48)))  # RGBA -> RGB drops alpha
    with open_source(str(tmp_path / "seq" / "img_00[12].png")) as src:
        assert len(list(src)) == 2


def test_a_file_or_folder_named_with_glob_characters_is_itself_not_a_pattern(tmp_path):
    """`process "clip [1080p].mp4"`, as downloaders name videos, said 'no images found in clip [1080p].mp4':
    the existing file was taken for a glob pattern (`[1080p]` a character class) that matched nothing."""
    video = make_video(tmp_path / "clip [1080p] #1?.mp4", n_frames=3, with_audio=False).path
    with open_source(video) as src:
        assert len(list(src)) == 3
    make_images(tmp_path / "Take [2]*", n=2, mode="RGB")
    with open_source(tmp_path / "Take [2]*", fps=30) as src:
        assert len(list(src)) == 2


def test_a_folder_named_like_a_video_is_said_to_be_a_folder(tmp_path, capfd):
    """`process talk.mp4` where talk.mp4 is an (empty) folder said 'no images found in talk.mp4', as if the video had
    been searched for pictures; `live --source` already said it was a folder. Nothing is written."""
    from birefvid.cli import main

    (tmp_path / "talk.mp4").mkdir()
    out = tmp_path / "cut.mkv"
    assert main(["process", str(tmp_path / "talk.mp4"), "-o", str(out), "--model", "tiny", "-q"]) == 2
    lines = capfd.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"birefvid: error: {tmp_path / 'talk.mp4'} is a folder, not a video, "
                                                   "and holds no images"), lines  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["talk.mp4"]
    (tmp_path / "shots").mkdir()  # a folder with no video's name keeps the plain line
    with pytest.raises(SourceError, match=r"^no images found in .*shots"):
        open_source(tmp_path / "shots")


def test_image_sequence_gray_natural_order(tmp_path):
    make_images(tmp_path / "s", n=3, mode="L", names=["f2.png", "f10.png", "f1.png"])
    with ImageSequenceSource(tmp_path / "s") as src:
        assert [p.name for p in src.files] == ["f1.png", "f2.png", "f10.png"]
        img = next(iter(src)).image
    assert img.shape == (48, 64, 3)


def test_image_sequence_size_mismatch_names_file(tmp_path):
    make_images(tmp_path / "s", n=2)
    make_images(tmp_path / "s", n=1, size=(32, 32), names=["img_009.png"])
    with ImageSequenceSource(tmp_path / "s") as src:
        with pytest.raises(SourceError, match=r"img_009.png is 32x32 but the sequence is 64x48"):
            list(src)


def test_image_sequence_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images found"):
        ImageSequenceSource(tmp_path / "empty")
    with pytest.raises(SourceError, match="input not found"):
        ImageSequenceSource(tmp_path / "missing")


def test_a_numbered_sequence_with_missing_frames_says_which(tmp_path, caplog):
    """A plate a render farm left frames out of (1003, 1004, 1007) was played back to back without a
    word: every picture after a gap a frame early against the plate's numbers, and no timecode. Each picture is
    now at its number's time, with the first number's timecode, and a warning names the gaps."""
    make_images(tmp_path / "plate", n=5, names=[f"plate_{n}.png" for n in (1001, 1002, 1005, 1006, 1008)])
    with caplog.at_level("WARNING", logger="birefvid"), ImageSequenceSource(tmp_path / "plate", fps=25) as src:
        assert [f.pts for f in src] == [0, 1, 4, 5, 7] and src.info.timecode == "00:00:40:01" and src.info.numbered
        assert src.info.frame_count == 5 and src.info.duration == pytest.approx(8 / 25)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "frames 1003-1004, 1007 of the numbered sequence are missing" in warnings[0], warnings
    assert "a PNG sequence leaves them out too, a video writes the frame before a gap again in their place" in warnings[0], warnings
    caplog.clear()
    make_images(tmp_path / "whole", n=3, names=["f_1.png", "f_2.png", "f_3.png"])
    make_images(tmp_path / "photos", n=2, names=["IMG_20240101_120000.jpg", "IMG_20240101_123000.jpg"])
    for folder in ("whole", "photos"):  # a whole sequence, and photos named by the time they were taken
        with caplog.at_level("WARNING", logger="birefvid"), ImageSequenceSource(tmp_path / folder) as src:
            list(src)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_photos_and_screenshots_are_all_frames_one_each(tmp_path, caplog):
    """A plate's gaps and strays are no photo's: a camera's IMG_0001.jpg, IMG_0003.jpg... (deleted photos) were timed
    with gaps, held twice as long, and beach.jpg and an edited copy beside them were left out; screenshots named by
    the time were split by their seconds, two of five left out and the rest timed by them. Each picture is now a
    frame, in name order, and nothing is said."""
    make_images(tmp_path / "holiday", n=8, ext=".jpg", names=[f"IMG_{n:04d}.jpg" for n in (1, 3, 4, 7, 8, 9)] + ["IMG_0004 (1).jpg", "beach.jpg"])
    times = ["10.15.32", "10.15.33", "10.15.35", "10.16.02", "11.02.10"]
    make_images(tmp_path / "shots", n=5, names=[f"Screenshot 2024-06-01 at {t}.png" for t in times])
    for folder, count in (("holiday", 8), ("shots", 5)):
        with caplog.at_level("WARNING", logger="birefvid"), ImageSequenceSource(tmp_path / folder) as src:
            assert [f.pts for f in src] == list(range(count)) and src.info.duration == pytest.approx(count / 25)
            assert len(src.files) == count and not src.info.numbered
    assert not [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def test_two_numbered_sequences_in_one_folder_are_one_error_line(tmp_path):
    """shotA_0001.png... (6) and shotB_0001.png... (4) in one folder: shotB's frames were left out, taken for stray
    pictures; which shot is meant is the user's to say, with the glob the line names."""
    make_images(tmp_path / "renders", n=10, names=[f"shotA_{n:04d}.png" for n in range(1, 7)] + [f"shotB_{n:04d}.png" for n in range(1, 5)])
    with pytest.raises(SourceError, match=r"renders holds two numbered sequences, shotA_0001.png to shotA_0006.png and "
                                          r"shotB_0001.png to shotB_0004.png; name the one to process with a glob: '\S*/renders/shotA_\*.png'$"):
        ImageSequenceSource(tmp_path / "renders")
    with ImageSequenceSource(f"{tmp_path}/renders/shotA_*.png") as src:
        assert [f.name for f in src.files] == [f"shotA_{n:04d}.png" for n in range(1, 7)]


def test_a_folder_of_videos_is_not_taken_for_an_image_sequence(tmp_path, caplog):
    """`process clips/` said only "no images found"; a folder of clips with one picture among them (a
    thumbnail) came out as a one-frame video of that picture, the clips left out without a word."""
    (tmp_path / "clips").mkdir()
    make_video(tmp_path / "clips" / "a.mp4", n_frames=2, with_audio=False)
    make_video(tmp_path / "clips" / "b.mov", n_frames=2, with_audio=False)
    with pytest.raises(SourceError, match=r"clips holds videos, not the pictures .*`birefvid process \S*a\.mp4 -o OUT`, all of them with `birefvid batch`"):
        ImageSequenceSource(tmp_path / "clips")
    make_images(tmp_path / "clips", n=1, names=["thumb.png"])
    with caplog.at_level("WARNING", logger="birefvid"), ImageSequenceSource(tmp_path / "clips") as src:
        assert len(list(src)) == 1
    assert "2 videos in it left out (a.mp4, b.mov)" in caplog.text


def test_decord_source_matches_pyav(tmp_path):
    need_module("decord", '"birefvid[decord]"')
    pts = [0, 40, 90, 130, 200]
    g = make_video(tmp_path / "vfr.mkv", n_frames=5, pts=pts, time_base=Fraction(1, 1000), with_audio=False)
    with open_source(g.path, decoder="decord") as src:
        frames = list(src)
        assert (src.info.width, src.info.height) == (64, 48)
    assert [f.pts * f.time_base for f in frames] == g.times
    with VideoFileSource(g.path) as ref:
        for a, b in zip(frames, ref):  # the same frames; decord's own YUV -> RGB is 1-2 levels darker than the formula
            assert _mean_err(a.image, b.image) < 4


@pytest.mark.parametrize("rotation", ["90", "180", "270"])
def test_decord_reads_rotated_videos_upright(tmp_path, rotation):
    """All were refused ("decord 0.6 mis-sizes rotated videos"), but decord 0.6.0 turns those tagged as FFmpeg tags
    them (a phone's) upright as PyAV does; those it decodes wrongly are still refused (test_decord_refuses_rotated)."""
    need_module("decord", '"birefvid[decord]"')
    ffmpeg, plain, path = need_binary("ffmpeg", "ffmpeg"), tmp_path / "a.mp4", tmp_path / "rot.mp4"
    # 128x96: at 64x48 decord 0.6.0 mis-sizes its turned pictures (64x64) and fails; the tag is set as a remux sets it
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=128x96:rate=25:duration=0.2", "-c:v", "libx264", str(plain)], check=True)
    subprocess.run([ffmpeg, "-v", "error", "-i", str(plain), "-c", "copy", "-metadata:s:v", f"rotate={rotation}", str(path)], check=True)
    with open_source(path, decoder="decord") as src, VideoFileSource(path) as ref:
        frames, expected = list(src), list(ref)
        assert (src.info.width, src.info.height) == (ref.info.width, ref.info.height) == ((96, 128) if rotation != "180" else (128, 96))
    assert [f.image.shape for f in frames] == [f.image.shape for f in expected]
    assert len(frames) == 5 and all(_mean_err(a.image, b.image) < 8 for a, b in zip(frames, expected))  # 4:2:0 chroma: up to 7


def test_decord_refuses_rotated(tmp_path):
    need_module("decord", '"birefvid[decord]"')
    g = make_video(tmp_path / "rot.mp4", n_frames=2, size=(64, 48), rotation=-90, with_audio=False)  # decord 0.6.0 fails at its frame 0
    with cli_naming(), pytest.raises(SourceError, match=r"rotation tag, which decord 0.6 decodes wrongly here; use the PyAV decoder \(--decoder pyav\)$"):
        open_source(g.path, decoder="decord")


def test_decord_refuses_a_cut_whose_edit_list_hides_frames(tmp_path):
    # decord 0.6 labels the shown pictures with the hidden frames' times (-0.2 s for the first one
    # here) and pads the end with repeats: wrong output, so it is refused with the way out
    need_module("decord", '"birefvid[decord]"')
    g = make_video(tmp_path / "a.mp4", n_frames=30, fps=25, with_audio=False)
    cut = hide_leading_frames(g.path, tmp_path / "cut.mp4", 5, 25)  # as `ffmpeg -ss 0.2 -c copy` leaves it
    with pytest.raises(SourceError, match=r"hides its first 5 frames behind an edit list .*decoder='pyav'"):
        open_source(cut, decoder="decord")
    with open_source(g.path, decoder="decord") as src:  # the uncut file is fine
        assert len(list(src)) == src.info.frame_count == 30


def test_decord_keeps_the_streams_facts(tmp_path):
    need_module("decord", '"birefvid[decord]"')
    g = make_video(tmp_path / "dv.mov", n_frames=3, with_audio=False, sample_aspect_ratio=Fraction(16, 15),
                   timecode="01:02:03:04", tags={"title": "Take 3"})  # fmt: skip
    with open_source(g.path, decoder="decord") as src, VideoFileSource(g.path) as ref:
        assert src.info.sample_aspect_ratio == ref.info.sample_aspect_ratio == Fraction(16, 15)
        assert src.info.timecode == ref.info.timecode == "01:02:03:04"
        assert dict(src.info.tags)["title"] == "Take 3"


def test_decord_missing_is_config_error(monkeypatch, tmp_path):
    import builtins
    import importlib

    real = importlib.import_module

    def fake(name, *a, **k):
        if name == "decord":
            raise ImportError("no decord")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fake)
    from birefvid.io.decord_source import DecordSource

    with pytest.raises(ConfigError, match=r"decord is not installed: pip install 'birefvid\[decord\]'"):
        DecordSource(tmp_path / "x.mp4")
    assert builtins  # keep the import used


def test_timestamps_going_back_name_the_likely_cause(tmp_path):
    """Every out-of-order file was told "DivX/XviD with packed B-frames?" and to re-encode: wrong for MPEG-TS
    recordings joined end to end (cat a.ts b.ts: ffmpeg -c copy lines the parts up, sound included) and for an MP4
    counting whole seconds (its frames' times are lost; re-encoding keeps them lost)."""
    from media import swap_frame_times

    parts = [make_video(tmp_path / f"{name}.ts", n_frames=8, with_audio=False, codec="libx264").path for name in "ab"]
    (tmp_path / "joined.ts").write_bytes(b"".join(p.read_bytes() for p in parts))
    mjpeg = make_video(tmp_path / "mjpeg.mov", n_frames=6, with_audio=False, codec="mjpeg", pix_fmt="yuvj420p").path
    seconds = swap_frame_times(mjpeg, tmp_path / "seconds.mov", 2, timescale=1)
    for path, words in ((tmp_path / "joined.ts", " s back, as where recordings were joined end to end (cat a.ts b.ts) or the sender "
                                                 "restarted; remux it, which puts the parts one after another: ffmpeg -i joined.ts -c copy fixed.mkv"),
                        (seconds, "the file counts time in steps of 1 s (time base 1/1), too coarse to tell its frames apart")):  # fmt: skip
        with pytest.raises(SourceError) as caught, VideoFileSource(path) as source:
            list(source)
        assert words in str(caught.value) and "DivX" not in str(caught.value), str(caught.value)
    with pytest.raises(SourceError, match="DivX/XviD with packed B-frames"), VideoFileSource(swap_frame_times(mjpeg, tmp_path / "x.mov", 2)) as source:
        list(source)  # a frame swapped with its neighbour keeps the packed B-frames remedy


def test_decord_with_an_image_sequence_is_refused(tmp_path):
    """It was ignored without a word: the pictures were read with OpenCV whatever --decoder said."""
    from birefvid.errors import cli_naming

    make_images(tmp_path / "plate", n=2)
    for sequence in (tmp_path / "plate", str(tmp_path / "plate" / "*.png")):
        with cli_naming(), pytest.raises(ConfigError, match="--decoder decord decodes video files; .* is an image sequence.*leave --decoder out"):
            open_source(sequence, decoder="decord")
    with open_source(tmp_path / "plate") as source:  # the default reads it
        assert len(list(source)) == 2


def test_unknown_decoder(tmp_path):
    g = make_video(tmp_path / "in.mkv", n_frames=2, with_audio=False)
    with pytest.raises(ConfigError, match="unknown decoder"):
        open_source(g.path, decoder="opencv")  # type: ignore[arg-type]


class _ReformatSpy:
    """Stands in for a VideoReformatter (a Cython type that cannot be subclassed) and records each call's thread count."""

    def __init__(self, real) -> None:
        self.real, self.threads = real, []

    def reformat(self, frame, **kwargs):
        self.threads.append(kwargs.get("threads"))
        return self.real.reformat(frame, **kwargs)


@pytest.mark.parametrize("threads", [1, 0])
def test_a_file_converts_its_frames_with_one_context_on_the_decoders_threads(tmp_path, threads):
    """frame.to_ndarray builds a swscale context and thread pool for every frame (two new threads a
    frame on 2 cores); a source keeps one for its stream, with the decoder's thread count."""
    g = make_video(tmp_path / "in.mp4", n_frames=5, size=(64, 48), with_audio=False)
    with VideoFileSource(g.path, threads=threads) as src:
        spy = src._to_rgb._reformatter = _ReformatSpy(src._to_rgb._reformatter)
        frames = list(src)
    assert len(frames) == 5
    assert spy.threads == [threads] * 5
    for f, ref in zip(frames, g.frames):
        assert _mean_err(f.image, ref) < 6


def test_one_rgb_conversion_follows_format_changes_fits_size_changes_and_keeps_earlier_arrays():
    import av

    from birefvid.io._pixels import RgbConverter

    def frame(i: int, size: tuple[int, int], fmt: str) -> "av.VideoFrame":
        return av.VideoFrame.from_ndarray(pattern_frame(i, size), format="rgb24").reformat(format=fmt)

    frames = [frame(0, (64, 48), "yuv420p"), frame(1, (33, 17), "yuv444p"), frame(2, (64, 48), "gray"),
              frame(3, (64, 48), "yuv420p10le"), frame(4, (32, 24), "yuv420p")]  # fmt: skip
    convert = RgbConverter(threads=1)
    images = [convert(f) for f in frames]  # all held until the end: none may be overwritten by a later frame
    for i, (f, image) in enumerate(zip(frames, images)):
        assert image.dtype == np.uint8 and image.shape == (48, 64, 3), f"frame {i}"  # the first frame's size
        if i == 1:  # another shape keeps it: 64x33 in the middle, black above and below
            assert not image[:7].any() and not image[40:].any()
            image = image[7:40]
        width, height = (64, 33) if i == 1 else (64, 48)  # the same shape (32x24) fills the picture
        want = f.reformat(format="rgb24", width=width, height=height, interpolation="AREA")
        # the same picture, scaled the same (YUV takes the exact planar path, ~2 levels brighter than PyAV's)
        assert _mean_err(image, want.to_ndarray(format="rgb24")) < 3, f"frame {i}"
    assert convert.alpha(frames[4]) is None  # opaque: the picture fills the frame
    bars = convert.alpha(frames[1])
    assert bars is not None and not bars[:7].any() and not bars[40:].any() and (bars[7:40] == 255).all()


# YUV colours (8-bit levels) of a skin tone, a sky, a red, a green, white and black: what decoders must turn into RGB
_YUV_COLOURS = [(120, 100, 170), (81, 90, 240), (145, 54, 34), (41, 240, 110), (60, 140, 120), (235, 128, 128), (16, 128, 128)]


@pytest.mark.parametrize("fmt", ["yuv420p", "nv12", "yuv420p10le", "yuv422p10le", "yuvj422p"])
@pytest.mark.parametrize("colorspace, full", [(1, False), (6, False), (1, True)])
def test_yuv_pictures_become_rgb_by_the_standards_formula(fmt, colorspace, full):
    """Where the matte is 1 the cut-out's colour is the source's: swscale's packed-RGB path from 4:2:0/4:2:2
    made every 8-bit colour up to 1.7 levels darker and 10-bit ones up to 2.9."""
    from birefvid.io._pixels import RgbConverter
    from media import flat_yuv_frame, yuv_to_rgb

    full = full or fmt.startswith("yuvj")
    bits = 10 if "p10" in fmt else 8
    worst = 0.0
    for yuv in _YUV_COLOURS:
        scaled = [c * 2 ** (bits - 8) for c in yuv]
        image = RgbConverter(threads=1)(flat_yuv_frame(fmt, scaled, colorspace=colorspace, full=full))
        want = yuv_to_rgb(scaled, bits=bits, colorspace=colorspace, full=full)
        worst = max(worst, float(np.abs(image.reshape(-1, 3).astype(float) - want).max()))
    # 10-bit full range (rare) comes down to 8 bits by a shift, 940 -> 235 where the formula says 234.3
    assert worst <= (1.0 if full and bits > 8 else 0.55), f"{fmt}: RGB up to {worst:.2f} levels from the formula"


@pytest.mark.parametrize("fmt, bits", [("yuva444p10le", 10), ("yuva444p12le", 12)])
def test_a_deep_sources_own_alpha_is_rounded_not_raised(fmt, bits):
    """A ProRes 4444 or FFV1 10-bit source's own transparency cuts into the matte: swscale's RGBA read put half
    of a 10-bit matte's soft values a level high (12-bit: 15%), as eval's reader did before it read the plane."""
    import av

    from birefvid.io._pixels import RgbConverter

    top = (1 << bits) - 1
    alpha = np.tile(np.arange(top + 1, dtype=np.uint16), (4, 1))  # every level, one per column
    frame = av.VideoFrame(top + 1, 4, fmt)
    for i, plane in enumerate(frame.planes):
        rows = np.full((plane.height, plane.line_size // 2), 1 << (bits - 1), np.uint16)
        rows[:, : top + 1] = alpha if i == 3 else rows[:, : top + 1]
        plane.update(rows.tobytes())
    got = RgbConverter(threads=1).alpha(frame)
    assert got is not None and got.dtype == np.uint8
    assert np.array_equal(got, np.floor(alpha * (255 / top) + 0.5).astype(np.uint8))


def test_a_damaged_frames_file_times_run_out_of_time_once_a_source(tmp_path, monkeypatch):
    """A damaged frame's number and time are read off the file's packets, up to ``FILE_TIMES_SECONDS``; in a file too long
    for that (a 4-hour recording after ``--start 3:58:00``) every concealed frame spent the whole time again: 8 damaged
    frames, 40 s of demuxing. A try that ran out of time is not made again (the numbers then come from the rate)."""
    import birefvid.io.video_source as video_source

    g = make_video(tmp_path / "clip.mp4", n_frames=4, with_audio=False)
    opened = []
    real_open = video_source.av.open
    with VideoFileSource(g.path) as src:
        monkeypatch.setattr(video_source, "FILE_TIMES_SECONDS", -1.0)  # every read runs out of time at its first packet
        monkeypatch.setattr(video_source.av, "open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
        assert [src._file_times(i) for i in (0, 1, 2)] == [None] * 3
        assert src._file_number(2) == 2  # the estimate still numbers it
    assert len(opened) == 1, opened
