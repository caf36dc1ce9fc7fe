"""decord (--decoder decord): the same frames and timestamps as PyAV, or one line naming --decoder pyav."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from birefvid.errors import SourceError, cli_naming
from birefvid.io import VideoFileSource, open_source
from birefvid.io.video_source import refuse_cut_off
from media import make_video
from system_tools import need_binary, need_module

PATTERN = "testsrc2=size=128x96:rate=25:duration=1.2"  # 30 frames


@pytest.fixture(autouse=True)
def _decord() -> None:
    need_module("decord", '"birefvid[decord]"')


def ffmpeg(out: Path, *args: str) -> Path:
    """``out`` written by the ffmpeg program from ``args`` (inputs and encoder options), as users' files are made."""
    exe = need_binary("ffmpeg", "ffmpeg")
    subprocess.run([exe, "-y", "-v", "error", *args, str(out)], check=True, timeout=60)
    return out


def frames(path: Path, decoder: str) -> tuple[list[float], list[np.ndarray]]:
    with open_source(path, decoder) as src:
        got = list(src)
    return [float(f.pts * f.time_base) for f in got], [f.image for f in got]


def test_times_count_from_the_streams_start(tmp_path):
    """decord counts frame times from the stream's start: a Matroska/WebM file with B-frames remuxed from MP4 or with
    Opus sound (video from 0.021 or 0.007 s) and a video starting after its sound were refused as edit-list cuts."""
    lavfi = ["-f", "lavfi", "-i", PATTERN]
    sound = ["-f", "lavfi", "-i", "sine=duration=2:sample_rate=48000"]
    files = [
        ffmpeg(tmp_path / "bframes.mkv", "-i", str(ffmpeg(tmp_path / "b.mp4", *lavfi, *sound, "-c:v", "libx264", "-bf", "3", "-c:a", "aac", "-shortest")), "-c", "copy"),
        ffmpeg(tmp_path / "opus.webm", *lavfi, *sound, "-c:v", "libvpx-vp9", "-c:a", "libopus", "-shortest"),
        ffmpeg(tmp_path / "late.mkv", "-itsoffset", "0.4", *lavfi, *sound, "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-c:a", "aac"),
        ffmpeg(tmp_path / "late.mp4", "-itsoffset", "0.4", *lavfi, *sound, "-map", "0:v", "-map", "1:a", "-c:v", "libx264",
               "-c:a", "aac", "-fps_mode", "passthrough"),  # fmt: skip
    ]
    for path in files:
        times, pictures = frames(path, "decord")
        ref_times, ref_pictures = frames(path, "pyav")
        assert len(times) == 30 and times == ref_times, path.name
        assert times[0] > 0.0, path.name  # each starts late, which is the point
        assert max(np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(pictures, ref_pictures)) < 8  # the same frames


@pytest.mark.parametrize(("name", "codec", "words"), [("a.mpg", "mpeg2video", "MPEG-PS"), ("a.ts", "libx264", "MPEG-TS")])
def test_containers_without_an_index_are_refused(tmp_path, name, codec, words):
    """decord seeks by frame index: on an MPEG-PS it gave frame 12 as frame 0 (and repeats at the end), on an
    MPEG-TS with B-frames it failed at frame 0 with DECORD_REWIND_RETRY_MAX advice."""
    path = ffmpeg(tmp_path / name, "-f", "lavfi", "-i", PATTERN, "-c:v", codec, "-bf", "2")
    with cli_naming(), pytest.raises(SourceError, match=rf"is {words}, a container without a frame index.*use the PyAV decoder \(--decoder pyav\)$"):
        open_source(path, "decord")
    assert len(frames(path, "pyav")[0]) == 30  # the way out reads it


def test_a_video_with_its_own_alpha_is_refused(tmp_path):
    """decord gives RGB only: a ProRes 4444 or VP9 file's own transparency was dropped without a word."""
    rgba = ["-f", "lavfi", "-i", f"{PATTERN},format=rgba,geq=r='r(X,Y)':g='g(X,Y)':b='b(X,Y)':a='if(lt(X,64),255,40)'"]
    for path in (ffmpeg(tmp_path / "a.webm", *rgba, "-c:v", "libvpx-vp9", "-pix_fmt", "yuva420p"),
                 ffmpeg(tmp_path / "a.mov", *rgba, "-c:v", "prores_ks", "-profile:v", "4", "-pix_fmt", "yuva444p10le")):  # fmt: skip
        with pytest.raises(SourceError, match=r"carries its own alpha \(transparency\), which decord 0.6 drops; use the PyAV decoder"):
            open_source(path, "decord")
        with VideoFileSource(path) as src:  # PyAV keeps it
            assert next(iter(src)).coverage is not None
    opaque = ffmpeg(tmp_path / "b.mov", "-f", "lavfi", "-i", PATTERN, "-c:v", "prores_ks", "-profile:v", "3")
    assert len(frames(opaque, "decord")[0]) == 30  # ProRes without alpha is read


@pytest.mark.parametrize("flip", ["h", "v"])
def test_a_mirroring_display_matrix_is_refused(tmp_path, flip):
    """decord ignores a display matrix's mirroring (a front camera's): a top-bottom flip, whose angle reads 0, was read
    as stored without a word, the picture upside down next to what players and the PyAV decoder show."""
    g = make_video(tmp_path / "selfie.mp4", n_frames=3, size=(64, 48), flip=flip, with_audio=False)
    with cli_naming(), pytest.raises(SourceError, match=r"has a display matrix that mirrors it, which decord 0.6 decodes wrongly here; use the PyAV decoder \(--decoder pyav\)$"):
        open_source(g.path, "decord")
    assert len(frames(g.path, "pyav")[0]) == 3  # the way out reads it


def test_a_codec_decord_cannot_decode_is_named(tmp_path):
    """decord 0.6 has no AV1 decoder: it said 'not a readable video (decord: ... Check failed: st_nb >= 0 ...)'."""
    path = ffmpeg(tmp_path / "av1.mp4", "-f", "lavfi", "-i", PATTERN, "-c:v", "libaom-av1", "-cpu-used", "8")
    with cli_naming(), pytest.raises(SourceError, match=r"decord cannot decode its AV1 video; use the PyAV decoder \(--decoder pyav\)$"):
        open_source(path, "decord")


def test_a_cut_off_matroska_file_is_refused_as_with_pyav(tmp_path):
    """A truncated MKV gave its first 18 frames of 30 quietly with decord, where PyAV refuses it."""
    whole = ffmpeg(tmp_path / "a.mkv", "-f", "lavfi", "-i", PATTERN, "-c:v", "libx264")
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    with open_source(cut, "decord") as src, pytest.raises(SourceError, match="is not a whole video: the file is truncated"):
        refuse_cut_off(src, None)  # what process and the API call before the first frame
    with open_source(whole, "decord") as src:
        refuse_cut_off(src, None)


def test_frames_timed_before_zero_are_named_as_such(tmp_path):
    """An -ss copy cut into Matroska with -avoid_negative_ts disabled times its pre-roll frames before 0; decord gives them
    no time, and the refusal called them 'hidden behind an edit list', which Matroska has none of."""
    src = ffmpeg(tmp_path / "src.mp4", "-f", "lavfi", "-i", PATTERN, "-c:v", "libx264", "-g", "10", "-bf", "2")
    cut = ffmpeg(tmp_path / "cut.mkv", "-ss", "0.5", "-i", str(src), "-c", "copy", "-avoid_negative_ts", "disabled")
    times = frames(cut, "pyav")[0]
    before = sum(1 for t in times if t < 0)
    assert before > 0  # PyAV reads them, timed before 0
    with cli_naming(), pytest.raises(SourceError, match=rf"cut.mkv: its first {before} frames are timed before 0 \(negative timestamps\), "
                                                        r"which decord 0.6 reads as frames without a time; use the PyAV decoder \(--decoder pyav\)$"):  # fmt: skip
        open_source(cut, "decord")


def test_a_url_names_the_pyav_decoder_in_the_commands_words():
    """`process URL --decoder decord` said '(decoder='pyav')', the Python API's words, where every other refusal of decord
    says --decoder pyav on the command line."""
    from birefvid.errors import ConfigError

    with cli_naming(), pytest.raises(ConfigError, match=r"^decord reads local files only; read http://127\.0\.0\.1:9/a\.mp4 with the PyAV decoder \(--decoder pyav\)$"):
        open_source("http://127.0.0.1:9/a.mp4", "decord")
