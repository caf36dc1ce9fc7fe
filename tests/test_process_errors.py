"""`birefvid process` failures: exit code 2, one `birefvid: error:` line that says what is wrong, and
nothing left at the target path (no output, no `.NAME.partial-*` temporary file or folder)."""

from __future__ import annotations

import _thread
import gc
import json
import signal
import threading
import time
from pathlib import Path

import pytest

from birefvid.api import iter_masks, process_video
from birefvid.cli import main
from birefvid.errors import PipelineError, SinkError, SourceError
from media import damage_packet, make_video, read_video, swap_frame_times
from process_fixtures import (
    FailingRedKey,
    birefvid_threads,
    make_scene,
    partial_leftovers,
    red_key_segmenter,
    write_audio_only,
    write_scene_images,
)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A small valid input (H.264 .mp4 with audio) in its own folder."""
    return make_video(tmp_path_factory.mktemp("clip") / "clip.mp4", n_frames=6).path


@pytest.fixture
def run(pvt_b0_weights, red_key):
    """``process`` as typed, with the red-key test module (conftest's ``red_key``) in place of the seeded pvt_v2_b0 it
    loads: these tests are about inputs, outputs and their one-line errors, which no model changes, and the model's
    load and frames were most of their CPU (a damaged file's tests decode and cut out 40-48 frames up to the damage)."""

    def _run(*args: str) -> int:
        return main(["process", *map(str, args), "--weights", str(pvt_b0_weights),
                     "--resolution", "64", "--device", "cpu", "-q"])  # fmt: skip

    return _run


def one_error_line(capsys, code: int, *phrases: str) -> str:
    """Exit code 2 and exactly one stderr line, `birefvid: error: ...`, containing every phrase."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1, lines
    assert lines[0].startswith("birefvid: error:"), lines[0]
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


def assert_nothing_written(folder: Path, *expected: str) -> None:
    """``folder`` holds exactly ``expected`` (the inputs): no output and no temporary leftovers."""
    assert partial_leftovers(folder) == []
    assert sorted(p.name for p in folder.iterdir()) == sorted(expected)


# -- inputs --------------------------------------------------------------------------------------
def test_missing_input(tmp_path, capsys, run):
    out = tmp_path / "out.mov"
    one_error_line(capsys, run(tmp_path / "nope.mp4", "-o", out), "input not found", "nope.mp4")
    assert_nothing_written(tmp_path)


def test_an_input_named_in_other_code_points_says_so(tmp_path, capsys, run):
    """``café.mp4`` typed on Linux names another file than the ``café.mp4`` copied from a Mac (decomposed, NFD):
    'input not found' beside a file of that very look, with no word why."""
    import unicodedata

    make_video(tmp_path / unicodedata.normalize("NFD", "café.mp4"), n_frames=2, with_audio=False)
    one_error_line(capsys, run(tmp_path / unicodedata.normalize("NFC", "café.mp4"), "-o", tmp_path / "o.mkv", "--output", "mask"),
                   "input not found", "in other Unicode code points", "tab completion")


def test_a_recording_a_live_run_is_still_writing_says_so(tmp_path, capsys, run, clip):
    """`birefvid live ... --sink rec.mkv` running, a `process` of the recording in another terminal: `rec.mkv` said a
    bare "input not found" (the recording is written as `.rec.partial-XXXX.mkv` and renamed at its end), and that hidden
    file, read while written, "is not a readable video (the file is empty, 0 bytes)", or its frames so far. Both now
    say a run is writing it and under which name to process it once that run ends; a killed run's partial is not that."""
    from birefvid.io.atomic import AtomicFile

    live = AtomicFile(tmp_path / "rec.mkv")  # the live run's recording, as its sink holds it
    live.temp.write_bytes(clip.read_bytes())  # frames so far
    one_error_line(capsys, run(tmp_path / "rec.mkv", "-o", tmp_path / "o.mkv", "--output", "mask"),
                   "input not found", "a birefvid run is writing it now, as", str(live.temp), "under this name when that run ends")
    one_error_line(capsys, run(live.temp, "-o", tmp_path / "o.mkv", "--output", "mask"),
                   f"{live.temp} is being written by another birefvid run now", f"renamed to {tmp_path / 'rec.mkv'} when that run ends")
    live.discard()
    dead = tmp_path / ".rec.partial-k1ll3d01.mkv"  # a killed recording's: nobody writes it
    dead.write_bytes(clip.read_bytes())
    line = one_error_line(capsys, run(tmp_path / "rec.mkv", "-o", tmp_path / "o.mkv", "--output", "mask"), "input not found")
    assert "writing it now" not in line
    assert not (tmp_path / "o.mkv").exists()


def test_the_readmes_sample_missing_says_how_to_make_it(tmp_path, capsys, monkeypatch):
    """A pip install has no samples/ folder: the quick start's command names the module that writes the clip."""
    monkeypatch.chdir(tmp_path)
    code = main(["process", "samples/scene.mp4", "-o", "scene.webm", "--model", "tiny"])
    one_error_line(capsys, code, "input not found: samples/scene.mp4", "python -m birefvid.data.sample")
    assert_nothing_written(tmp_path)


def test_a_glob_the_shell_expanded_gets_advice(tmp_path, capsys, run):
    names = [tmp_path / f"f{i}.png" for i in range(3)]  # what `birefvid process frames/*.png` passes unquoted
    one_error_line(capsys, run(*names, "-o", tmp_path / "out.mov"), "process takes one input, got 3", "quote the pattern")
    assert not (tmp_path / "out.mov").exists()


def test_a_photo_to_a_png_points_at_image(tmp_path, capsys, run):
    """rembg's `i` users cut a photo out with process: the error listed video formats, not the command for pictures."""
    photo = tmp_path / "shoe.jpg"
    photo.write_bytes(b"a picture")
    one_error_line(capsys, run(photo, "-o", tmp_path / "cut.png"), "process writes videos",
                   f"run `birefvid image {photo} -o {tmp_path / 'cut.png'}`")  # fmt: skip
    assert_nothing_written(tmp_path, "shoe.jpg")


@pytest.mark.parametrize("name", ["sticker.webp", "anim.png"])
def test_an_animated_picture_to_a_png_is_not_sent_to_image(tmp_path, capsys, run, name):
    """An animated WebP or APNG to cut.png was sent to `image`, which cuts out its first frame only and sends it back
    to process: the error names .apng and the folder, which keep every frame."""
    from PIL import Image

    frames = [Image.new("RGB", (32, 32), (40 * i, 0, 0)) for i in range(3)]
    source = tmp_path / name
    frames[0].save(source, save_all=True, append_images=frames[1:], duration=100)
    one_error_line(capsys, run(source, "-o", tmp_path / "cut.png"), ".apng writes one animated PNG")
    assert_nothing_written(tmp_path, name)


def test_a_file_whose_name_starts_with_a_dash_gets_advice(tmp_path, capsys, monkeypatch):
    """``process -take1.mp4 -o x.mov`` said only 'the following arguments are required: input': argparse took the
    file for an option. Now the error names the file and the way to give it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-take1.mp4").write_bytes(b"")
    with pytest.raises(SystemExit) as exit_:
        main(["process", "-take1.mp4", "-o", "x.mov"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "-take1.mp4 was taken for an option: to name that file, write ./-take1.mp4" in err, err


def test_report_dash_prints_the_report_on_standard_output(tmp_path, capsys, run, clip, monkeypatch):
    """`--report -`, as `eval --json -` is written, wrote a file named "-" and printed nothing for the pipe (jq)."""
    monkeypatch.chdir(tmp_path)
    assert run(clip, "-o", "out.mkv", "--output", "mask", "--report", "-") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["frames"] == 6 and report["output"] == "out.mkv"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mkv"]


def test_standard_input_is_refused_with_the_way_round(tmp_path, capsys, run, monkeypatch):
    """`ffmpeg ... - | birefvid process - ...`: one line saying to save the stream first, not "input not found"."""
    monkeypatch.chdir(tmp_path)
    one_error_line(capsys, run("-", "-o", "out.mov"), "reading from standard input (-) is not supported", "save the stream to a file")
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("content, why", [
    (b"", "(the file is empty, 0 bytes)"),
    (b"<!DOCTYPE html><html><body>403 Forbidden</body></html>\n", "(it holds text, not a video: a web page or text file under a video's name?)"),
])  # fmt: skip
def test_an_empty_file_or_a_web_page_says_so_not_invalid_data(tmp_path, capsys, run, content, why):
    """A zero-byte clip (a copy that failed, a camera card's placeholder) and a web page saved as .mp4 both said FFmpeg's
    "Invalid data found when processing input", as any damage does; image said "the file is empty" already."""
    fake = tmp_path / "clip.mp4"
    fake.write_bytes(content)
    one_error_line(capsys, run(fake, "-o", tmp_path / "out.mov"), f"{fake} is not a readable video {why}")
    assert_nothing_written(tmp_path, "clip.mp4")


def test_text_file_named_mp4(tmp_path, capsys, run):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 20)
    one_error_line(capsys, run(fake, "-o", tmp_path / "out.mov"), "notes.mp4", "not a readable video")
    assert_nothing_written(tmp_path, "notes.mp4")


@pytest.mark.parametrize("name", ["voice.m4a", "voice.wav"])
def test_audio_only_file(tmp_path, capsys, run, name):
    audio = write_audio_only(tmp_path / name)
    one_error_line(capsys, run(audio, "-o", tmp_path / "out.mov"), name, "no video stream")
    assert_nothing_written(tmp_path, name)


def test_a_picture_too_small_to_work_on(tmp_path, capsys, run):
    src = make_video(tmp_path / "dot.mkv", n_frames=3, size=(4, 4), with_audio=False, codec="ffv1", pix_fmt="yuv444p").path
    one_error_line(capsys, run(src, "-o", tmp_path / "out.mov"), "dot.mkv is 4x4 pixels; birefvid needs at least 8x8")
    assert_nothing_written(tmp_path, "dot.mkv")


def test_song_with_cover_art_is_not_a_video(tmp_path, capsys, run):
    song = write_audio_only(tmp_path / "song.mp4", cover=True)  # its only "video" is the album cover
    one_error_line(capsys, run(song, "-o", tmp_path / "out.mp4"), "song.mp4", "no video stream", "cover picture")
    assert_nothing_written(tmp_path, "song.mp4")


def test_corrupt_data_midway_fails_and_leaves_nothing(tmp_path, capsys, run):
    src = make_video(tmp_path / "good.mp4", n_frames=8, with_audio=False).path
    bad = damage_packet(src, tmp_path / "bad.mp4", 4)
    src.unlink()
    for out in (tmp_path / "out.mov", tmp_path / "frames"):  # a video file and a PNG folder
        line = one_error_line(capsys, run(bad, "-o", out), "bad.mp4", "frame ")
        assert "damaged" in line or "corrupt" in line, line
        assert_nothing_written(tmp_path, "bad.mp4")


def test_an_mp4_cut_off_before_its_index_says_so(tmp_path, capsys, run):
    """An interrupted download of an MP4 (index at the end) said only "Invalid data found when processing input"."""
    src = make_video(tmp_path / "good.mp4", n_frames=8).path
    data = src.read_bytes()
    assert data.rfind(b"moov") > data.find(b"mdat")  # written last, as encoders do unless told to stream
    src.unlink()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    one_error_line(capsys, run(cut, "-o", tmp_path / "out.mov"), "cut.mp4", "without its index", "interrupted download")
    assert_nothing_written(tmp_path, "cut.mp4")


@pytest.mark.parametrize("where", ["sound", "video"])
def test_an_mp4_cut_off_within_its_index_says_so(tmp_path, capsys, run, where):
    """A download cut inside the index (the moov box, written last) left FFmpeg the tracks listed before
    the cut: cut in the sound's track, the video came out without its sound, exit 0, nothing said; cut in
    the video's, "has no video stream" (or a traceback for a ProRes MOV)."""
    src = make_video(tmp_path / "good.mp4", n_frames=8).path
    data = src.read_bytes()
    src.unlink()
    moov = data.rfind(b"moov") - 4
    tracks = [i - 4 for i in range(moov, len(data)) if data[i:i + 4] == b"trak"]
    assert len(tracks) == 2 and moov > data.find(b"mdat")  # the video's track, then the sound's
    end = tracks[1] + 200 if where == "sound" else tracks[0] + 100
    (tmp_path / "cut.mp4").write_bytes(data[:end])
    one_error_line(capsys, run(tmp_path / "cut.mp4", "-o", tmp_path / "out.mov"), "cut.mp4", "cut off within its index",
                   "interrupted download")  # fmt: skip
    assert_nothing_written(tmp_path, "cut.mp4")


def test_a_streaming_mp4_cut_off_in_its_media_data_fails(tmp_path, capsys, run):
    """An MP4 made for streaming (index first, `-movflags +faststart`, as web videos are) cut off near its end:
    every frame was there, the sound's last packets were not (one "damaged audio packet" warning), exit 0."""
    import subprocess

    from system_tools import need_binary

    src = make_video(tmp_path / "good.mp4", n_frames=8).path
    fast = tmp_path / "fast.mp4"
    subprocess.run([need_binary("ffmpeg", "ffmpeg"), "-v", "error", "-i", str(src), "-c", "copy", "-movflags", "+faststart",
                    str(fast)], check=True)  # fmt: skip
    src.unlink()
    data = fast.read_bytes()
    fast.unlink()
    assert data.find(b"moov") < data.find(b"mdat")
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) * 97 // 100])
    one_error_line(capsys, run(tmp_path / "cut.mp4", "-o", tmp_path / "out.mov"), "cut.mp4 is not a whole video",
                   "cut off (its mdat box", "interrupted download")  # fmt: skip
    assert_nothing_written(tmp_path, "cut.mp4")
    from birefvid.io.video_source import mp4_index_problem

    (tmp_path / "padded.mp4").write_bytes(data + bytes(range(256)) * 8)
    assert mp4_index_problem(tmp_path / "padded.mp4") is None  # bytes appended after a whole file cut nothing off


@pytest.mark.parametrize("name", ["cut.mkv", "cut.webm", "sound.mkv"])
def test_a_matroska_file_cut_off_near_its_end_fails(tmp_path, capsys, run, name):
    """A Matroska/WebM download cut off in its last frames came out a frame or two short, exit 0, nothing
    said (the check allowed 3 frames short of the declared length), and one cut where only sound is left
    (sound.mkv: every frame there) lost the sound's end; its Segment's size says it is cut off."""
    codec = "ffv1" if name.endswith(".mkv") else "libvpx-vp9"
    sound = name.startswith("sound")
    src = make_video(tmp_path / f"whole{Path(name).suffix}", n_frames=8, with_audio=sound, codec=codec, pix_fmt="yuv420p",
                     audio_seconds=1.5 if sound else None).path  # fmt: skip
    data = src.read_bytes()
    src.unlink()
    (tmp_path / name).write_bytes(data[: len(data) * 95 // 100])
    one_error_line(capsys, run(tmp_path / name, "-o", tmp_path / "out.mov"), name, "is not a whole video", "truncated",
                   "--end before where it breaks off processes the frames that are there")  # fmt: skip
    assert_nothing_written(tmp_path, name)


def test_a_matroska_file_cut_off_is_refused_before_its_frames_are_decoded(tmp_path, capsys, run):
    """A cut-off Matroska file was refused only once decoded to its end (minutes of a long file): its Segment's size
    says so before the first frame. --end before the cut, the escape hatch, still processes the frames there."""
    src = make_video(tmp_path / "whole.mkv", n_frames=20, with_audio=False, codec="ffv1", pix_fmt="yuv420p").path
    data = src.read_bytes()
    src.unlink()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 90 // 100])
    masks = iter_masks(cut, segmenter=red_key_segmenter())
    with pytest.raises(SourceError, match="cut.mkv is not a whole video: the file is truncated"):
        next(masks)  # not one frame first: it yielded every frame there before refusing the file
    assert run(cut, "-o", tmp_path / "out.mkv", "--output", "mask", "--end", "0.4") == 0
    assert len(read_video(tmp_path / "out.mkv", "gray").images) == 10
    one_error_line(capsys, run(cut, "-o", tmp_path / "late.mkv", "--end", "5"), "cut.mkv", "decoding stopped at frame", "truncated")
    assert not (tmp_path / "late.mkv").exists()


@pytest.mark.parametrize("scale", [0, 1])
def test_a_video_whose_time_scale_is_damaged_is_one_line_not_one_frame(tmp_path, capsys, run, scale):
    """An MP4 whose video time scale (its mdhd's) was zeroed or set to 1 by a flipped byte read as one frame of 8 at
    exit 0, nothing said: FFmpeg takes the frames for 512 s apart and demuxes only the first; batch planned it too."""
    import struct

    src = make_video(tmp_path / "good.mp4", n_frames=8, with_audio=False).path
    data = bytearray(src.read_bytes())
    src.unlink()
    mdhd = data.find(b"mdhd")
    at = mdhd + 8 + (16 if data[mdhd + 4] == 1 else 8)  # version and flags, creation and modification times
    assert struct.unpack(">I", data[at:at + 4])[0] > 25  # the video track's ticks a second
    data[at:at + 4] = struct.pack(">I", scale)
    (tmp_path / "odd.mp4").write_bytes(data)
    one_error_line(capsys, run(tmp_path / "odd.mp4", "-o", tmp_path / "out.mov"), "odd.mp4", "timing is broken",
                   "8 frames declared", "the file is damaged")  # fmt: skip
    assert_nothing_written(tmp_path, "odd.mp4")
    code = main(["batch", str(tmp_path / "odd.mp4"), "--output-dir", str(tmp_path / "out"), "--model", "tiny", "-q"])
    assert code == 2 and "odd.mp4: its video's timing is broken" in capsys.readouterr().err
    assert not list((tmp_path / "out").rglob("*.mkv")) and not list((tmp_path / "out").rglob("*.mov"))


def test_a_video_stream_of_an_unknown_codec_is_one_line(tmp_path, capsys, run):
    """A stream FFmpeg has no decoder for (a damaged sample description: codec id 0) raised AttributeError, a traceback."""
    src = make_video(tmp_path / "good.mp4", n_frames=4, with_audio=False).path
    data = src.read_bytes()
    src.unlink()
    at = data.rfind(b"avc1")
    (tmp_path / "odd.mp4").write_bytes(data[:at] + b"zzzz" + data[at + 4:])
    one_error_line(capsys, run(tmp_path / "odd.mp4", "-o", tmp_path / "out.mov"), "odd.mp4", "codec is unknown")
    assert_nothing_written(tmp_path, "odd.mp4")


def test_a_gif_cut_off_midway_fails_and_leaves_nothing(tmp_path, capsys, run):
    """A GIF declares no length, so one cut off midway (an interrupted download) came out as a shorter
    animation, exit 0; its missing trailer says it is incomplete. One padded with zeros stays fine."""
    from PIL import Image

    from process_fixtures import scene_frame

    pictures = [Image.fromarray(scene_frame(i, (64, 48))) for i in range(6)]
    whole = tmp_path / "whole.gif"
    pictures[0].save(whole, save_all=True, append_images=pictures[1:], duration=40, loop=0)
    data = whole.read_bytes()
    whole.unlink()
    (tmp_path / "cut.gif").write_bytes(data[: len(data) * 6 // 10])
    one_error_line(capsys, run(tmp_path / "cut.gif", "-o", tmp_path / "out.mov"), "cut.gif", "truncated")
    assert_nothing_written(tmp_path, "cut.gif")
    (tmp_path / "padded.gif").write_bytes(data + bytes(16))
    assert run(tmp_path / "padded.gif", "-o", tmp_path / "out.mov") == 0


def test_a_gif_with_a_hole_midway_fails_and_leaves_nothing(tmp_path, capsys, run):
    """A zeroed range (a preallocated download's missing piece) ends FFmpeg's GIF demuxer quietly there: the
    animation came out with half its frames, exit 0; the trailer is intact, but the blocks break off."""
    from PIL import Image

    from process_fixtures import scene_frame

    pictures = [Image.fromarray(scene_frame(i, (64, 48))) for i in range(6)]
    whole = tmp_path / "whole.gif"
    pictures[0].save(whole, save_all=True, append_images=pictures[1:], duration=40, loop=0)
    data = bytearray(whole.read_bytes())
    whole.unlink()
    data[len(data) // 2: len(data) * 6 // 10] = bytes(len(data) * 6 // 10 - len(data) // 2)
    (tmp_path / "hole.gif").write_bytes(data)
    one_error_line(capsys, run(tmp_path / "hole.gif", "-o", tmp_path / "out.mov"), "hole.gif", "is not a whole video",
                   "damaged after its frame")  # fmt: skip
    assert_nothing_written(tmp_path, "hole.gif")


def test_a_single_jpeg_cut_off_is_refused_as_image_refuses_it(tmp_path, capsys, run):
    """A photo cut off halfway (an interrupted copy) was cut out with its missing half grey, exit 0, nothing said."""
    from PIL import Image

    from process_fixtures import scene_frame

    whole = tmp_path / "whole.jpg"
    Image.fromarray(scene_frame(0, (64, 48))).save(whole, quality=90)
    data = whole.read_bytes()
    whole.unlink()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    one_error_line(capsys, run(tmp_path / "cut.jpg", "-o", tmp_path / "out.mov"), "cut.jpg is not a readable image")  # .png: image's job, said first
    assert_nothing_written(tmp_path, "cut.jpg")


def test_timestamps_going_backwards_fail_at_the_frame_with_a_remedy(tmp_path, capsys, run):
    src = make_video(tmp_path / "good.mov", n_frames=6, with_audio=False, codec="mjpeg", pix_fmt="yuvj420p").path
    bad = swap_frame_times(src, tmp_path / "xvid.mov", 2)
    src.unlink()
    one_error_line(capsys, run(bad, "-o", tmp_path / "out.mkv"), "xvid.mov: frame 3's timestamp (0.080 s) is not after frame 2's (0.120 s)",
                   "out of order", "re-encode it first")  # fmt: skip
    assert_nothing_written(tmp_path, "xvid.mov")


def test_corrupt_data_api_raises_source_error(tmp_path):
    """The same failure through the API: the source's own error, not a wrapped one, and all threads end."""
    src = make_video(tmp_path / "good.mp4", n_frames=8, with_audio=False).path
    bad = damage_packet(src, tmp_path / "bad.mp4", 4)
    with pytest.raises(SourceError, match=r"bad\.mp4.*frame [1-7]\b"):
        process_video(bad, tmp_path / "out.mkv", kind="mask", segmenter=red_key_segmenter(), smooth="none")
    assert not (tmp_path / "out.mkv").exists() and partial_leftovers(tmp_path) == []
    assert birefvid_threads() == []


# -- outputs -------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["input", "output"])
def test_a_dash_is_refused_in_the_same_words_by_process_and_batch(tmp_path, capsys, monkeypatch, where):
    """process, image and batch said three different things for `-` (batch not even whether the input or -o was wrong);
    `image` now reads and writes `-` (test_image_stdio), `--also mask=-` is refused in these words too."""
    from birefvid.cli import main

    monkeypatch.chdir(tmp_path)
    lines = []
    if where == "output":
        assert main(["process", "x.mov", "-o", "out.mkv", "--also", "mask=-"]) == 2
        lines.append(capsys.readouterr().err.strip())
    for command, example in (("process", "x.mov"), ("batch", "x.mov")):
        argv = [command, "-", "-o", "out"] if where == "input" else [command, example, "-o", "-"]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        lines.append(err[0])
    words = ("reading from standard input (-) is not supported: inputs are read from named files" if where == "input"
             else "writing to standard output (-) is not supported: an output is written under a temporary name")  # fmt: skip
    assert all(line.startswith(f"birefvid: error: {words}") for line in lines), lines
    # the same sentence, but for each command's own example of what to save or name instead
    assert len({line.split("; ")[0] for line in lines}) == 1, lines
    assert all(line.endswith("and name that" if where == "input" else "and read that") for line in lines), lines
    assert list(tmp_path.iterdir()) == []


def test_output_folder_missing(tmp_path, capsys, run, clip):
    out = tmp_path / "no" / "such" / "dir" / "out.mov"
    one_error_line(capsys, run(clip, "-o", out), "output folder does not exist", str(out.parent))
    assert_nothing_written(tmp_path)


def test_standard_output_is_refused_not_made_a_folder_named_dash(tmp_path, capsys, run, clip, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_error_line(capsys, run(clip, "-o", "-"), "writing to standard output (-) is not supported", "name a file")
    assert_nothing_written(tmp_path)  # was: a folder "-" of PNG frames


def test_output_under_a_regular_file(tmp_path, capsys, run, clip):
    (tmp_path / "file.txt").write_text("x")
    out = tmp_path / "file.txt" / "out.mov"
    one_error_line(capsys, run(clip, "-o", out), str(tmp_path / "file.txt"), "not a folder")
    assert_nothing_written(tmp_path, "file.txt")
    assert (tmp_path / "file.txt").read_text() == "x"


def test_a_report_onto_a_full_disk_is_one_line_and_keeps_the_earlier_report(tmp_path, capsys, run, clip):
    """``--report`` that cannot be written (a full disk at the end of a CI job): an OSError traceback
    and an empty report.json were left before; now one line naming --report, exit 2, the earlier
    report as it was and no temporary file (scripts read the report: whole or not at all). The line says
    the video itself was written and kept: exit 2 alone read as "the output failed"."""
    from fs_fixtures import full_dir

    with full_dir(tmp_path / "full", "4k") as full:
        (full / "r.json").write_text('{"frames": 6}\n')  # the earlier run's: it fills the disk's one page
        code = run(clip, "-o", tmp_path / "out.mkv", "--output", "mask", "--report", full / "r.json")
        one_error_line(capsys, code, "--report", "r.json: cannot write it (No space left on device)",
                       f"the output {tmp_path / 'out.mkv'} was written and is kept")
        assert (tmp_path / "out.mkv").stat().st_size > 0
        assert sorted(p.name for p in full.iterdir()) == ["r.json"]
        assert (full / "r.json").read_text() == '{"frames": 6}\n'


def test_unknown_extension(tmp_path, capsys, run, clip):
    one_error_line(capsys, run(clip, "-o", tmp_path / "out.xyz"), ".xyz", "supported:", ".mov", ".webm")
    assert_nothing_written(tmp_path)


def test_alpha_into_mp4_is_refused(tmp_path, capsys, run, clip):
    line = one_error_line(capsys, run(clip, "-o", tmp_path / "out.mp4", "--output", "alpha"), "alpha", ".mp4")
    assert ".mov (prores_ks" in line and ".webm (libvpx-vp9)" in line, "the message should list what works"
    assert_nothing_written(tmp_path)


def test_unknown_preset_is_refused(tmp_path, capsys, run, clip):
    code = run(clip, "-o", tmp_path / "g.mp4", "--output", "green", "--preset", "turbo")
    one_error_line(capsys, code, "unknown preset 'turbo' for libx264", "veryfast")
    assert_nothing_written(tmp_path)


def test_preset_reaches_the_encoder(tmp_path, capsys, run, clip):
    assert run(clip, "-o", tmp_path / "g.mp4", "--output", "green", "--preset", "ultrafast") == 0
    data = (tmp_path / "g.mp4").read_bytes()
    settings = data[data.index(b"options: ") :][:600]
    assert b"subme=0" in settings and b"me=dia" in settings  # x264's ultrafast settings


def test_existing_output_needs_overwrite(tmp_path, capsys, run, clip):
    out = tmp_path / "out.mkv"
    out.write_bytes(b"keep me")
    one_error_line(capsys, run(clip, "-o", out, "--output", "mask"), "output exists", "--overwrite")
    assert out.read_bytes() == b"keep me"
    assert_nothing_written(tmp_path, "out.mkv")

    assert run(clip, "-o", out, "--output", "mask", "--overwrite") == 0
    assert capsys.readouterr().err == ""
    assert out.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # now a Matroska file
    assert_nothing_written(tmp_path, "out.mkv")


def test_partial_files_of_killed_runs_are_named_not_piled_up(tmp_path, caplog, run, clip):
    """A cron job's `process` run killed outright (the OOM killer, systemd's SIGKILL after its stop timeout) leaves its
    hidden `.out.partial-XXXX.mkv`; each killed rerun added one more, unseen, each as large as its video. The next
    run that finishes names them, with the `rm` to remove them, and removes none (another run may be writing one)."""
    left = [tmp_path / ".out.partial-k1ll3d01.mkv", tmp_path / ".out.partial-k1ll3d02.mkv"]
    for path in left:
        path.write_bytes(b"half a video")
    other = tmp_path / ".other.partial-abcd1234.mkv"  # another output's: not this run's business
    other.write_bytes(b"x")
    with caplog.at_level("WARNING"):
        assert run(clip, "-o", tmp_path / "out.mkv", "--output", "mask") == 0
    said = [r.getMessage() for r in caplog.records if "partial" in r.getMessage()]
    assert len(said) == 1 and "2 partial files" in said[0] and "rm -rf" in said[0], said
    assert all(str(path) in said[0] for path in left) and ".other.partial" not in said[0]
    assert all(path.exists() for path in [*left, other])


def test_the_partial_file_of_a_run_writing_the_same_output_now_is_not_named_as_a_killed_runs(tmp_path, caplog, run, clip):
    """Two `process` runs of one `-o` in two terminals: the one finishing first warned that the other's partial file
    was "left by a run killed while writing" and gave the `rm -rf` for it, while that run was still filling it. A
    writer holds its partial under a lock: only a killed run's (no lock) is named."""
    from birefvid.io.atomic import AtomicFile

    dead = tmp_path / ".out.partial-k1ll3d01.mkv"
    dead.write_bytes(b"half a video")
    live = AtomicFile(tmp_path / "out.mkv")  # the other run's sink, encoding now
    with caplog.at_level("WARNING"):
        assert run(clip, "-o", tmp_path / "out.mkv", "--output", "mask") == 0
    said = [r.getMessage() for r in caplog.records if "partial" in r.getMessage()]
    assert len(said) == 1 and "1 partial file" in said[0] and str(dead) in said[0] and str(live.temp) not in said[0], said
    assert live.temp.exists()
    live.discard()


def test_an_output_made_by_another_program_during_the_run_keeps_this_runs_result(tmp_path, clip):
    """Another program wrote out.mkv while `process` (no --overwrite) worked: the finished result was thrown away
    with "output exists". Now it is kept as `out (2).mkv`, the run still fails (SinkError, exit 2), and the
    exception and the --report name the kept file for a service to act on."""
    from birefvid.errors import OutputKeptError

    out = tmp_path / "out.mkv"
    with pytest.raises(OutputKeptError, match=r"output exists: .*out\.mkv .*kept as .*out \(2\)\.mkv") as caught:
        process_video(clip, out, kind="mask", segmenter=red_key_segmenter(), smooth="none", report_path=tmp_path / "r.json",
                      on_start=lambda total: out.write_bytes(b"someone else's"))  # fmt: skip
    kept = tmp_path / "out (2).mkv"
    assert caught.value.kept == kept and out.read_bytes() == b"someone else's"
    assert kept.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # this run's Matroska file, whole
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["output"] == str(kept) and report["frames"] == 6 and "kept as" in report["error"]
    assert_nothing_written(tmp_path, "out.mkv", "out (2).mkv", "r.json")


def test_existing_png_folder_needs_overwrite(tmp_path, capsys, run, clip):
    out = tmp_path / "frames"
    out.mkdir()
    (out / "old.png").write_bytes(b"old")
    one_error_line(capsys, run(clip, "-o", out, "--output", "mask"), "output exists")
    assert sorted(p.name for p in out.iterdir()) == ["old.png"]
    assert run(clip, "-o", out, "--output", "mask", "--overwrite") == 0
    assert sorted(p.name for p in out.iterdir()) == [f"frame_{i:06d}.png" for i in range(1, 7)]
    assert_nothing_written(tmp_path, "frames")


def test_an_output_named_by_a_link_to_an_empty_folder_goes_where_the_link_leads(tmp_path, run, clip):
    """`-o renders` linked to an empty folder (on another disk, say) replaced the link with a new folder of frames
    beside it, without --overwrite: the frames were not where the link leads, and the link was gone."""
    real = tmp_path / "disk" / "renders"
    real.mkdir(parents=True)
    link = tmp_path / "renders"
    link.symlink_to(real, target_is_directory=True)
    assert run(clip, "-o", link, "--output", "mask") == 0
    assert link.is_symlink() and sorted(p.name for p in real.iterdir()) == [f"frame_{i:06d}.png" for i in range(1, 7)]
    assert_nothing_written(tmp_path, "disk", "renders")
    assert_nothing_written(tmp_path / "disk", "renders")


def test_overwriting_an_output_named_by_a_link_replaces_the_file_it_leads_to(tmp_path, run, clip):
    """As `ffmpeg -y` and `cp` do: the link stays, and the file it leads to is the new output."""
    real = tmp_path / "disk" / "out.mkv"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "out.mkv"
    link.symlink_to(real)
    assert run(clip, "-o", link, "--output", "mask", "--overwrite") == 0
    assert link.is_symlink() and real.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # now a Matroska file
    assert_nothing_written(tmp_path / "disk", "out.mkv")


def test_an_output_named_by_a_link_to_a_missing_file_is_written_where_it_leads(tmp_path, run, clip):
    """The output is written where a link leads, so a link to a file not there yet is a missing output, as ffmpeg
    takes it: without --overwrite it said "output exists: out.mkv (use --overwrite)", where nothing existed."""
    real = tmp_path / "disk" / "out.mkv"
    real.parent.mkdir()
    link = tmp_path / "out.mkv"
    link.symlink_to(real)
    assert run(clip, "-o", link, "--output", "mask") == 0
    assert link.is_symlink() and real.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"
    assert_nothing_written(tmp_path / "disk", "out.mkv")


@pytest.mark.parametrize("output", ["out.mkv", "frames"])
def test_an_output_named_by_a_link_into_a_missing_folder_names_that_folder(tmp_path, capsys, run, clip, output):
    """The folder checked was the link's own: a link into a folder that does not exist passed, and the run failed at
    its temporary file, "cannot create a file in ..."; said now as any missing output folder is, naming where the link
    leads."""
    link = tmp_path / output
    link.symlink_to(tmp_path / "gone" / output)
    one_error_line(capsys, run(clip, "-o", link, "--output", "mask"),
                   f"output folder does not exist: {tmp_path / 'gone'}, where {link} leads (create it first)")
    assert sorted(p.name for p in tmp_path.iterdir()) == [output]


def test_an_output_named_by_a_link_into_a_read_only_folder_names_that_folder(tmp_path, capsys, run, clip):
    """The link's own folder was checked for writing, not the one the output is written to."""
    from fs_fixtures import read_only_dir

    link = tmp_path / "out.mkv"
    with read_only_dir(tmp_path / "ro") as ro:
        link.symlink_to(ro / "out.mkv")
        one_error_line(capsys, run(clip, "-o", link, "--output", "mask", "--overwrite"),
                       f"output folder is not writable: {ro}, where {link} leads")
        assert list(ro.iterdir()) == []


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_output_named_by_links_in_a_loop_is_one_line(tmp_path, capsys, run, clip, overwrite):
    """`-o a.mkv` where a.mkv -> b.mkv -> a.mkv: the replace check's Path.resolve raised "RuntimeError: Symlink loop" (a
    traceback); no write gets through such a link, and with --overwrite it would have replaced the link by the file."""
    a, b = tmp_path / "a.mkv", tmp_path / "b.mkv"
    a.symlink_to(b)
    b.symlink_to(a)
    one_error_line(capsys, run(clip, "-o", a, "--output", "mask", *(["--overwrite"] if overwrite else [])),
                   f"cannot write output {a}: {a} is a symbolic link in a loop")
    assert a.is_symlink() and b.is_symlink()


@pytest.mark.parametrize("output", ["link", "pattern"])
def test_partial_files_of_killed_runs_are_named_where_they_were_made(tmp_path, caplog, run, clip, output):
    """A file's partial is made beside the file a link leads to, and named after it; a pattern's beside the folder
    it fills, named after that folder: both were looked for beside the name given (`.out.partial-*` beside the link,
    `.m.%04d.partial-*` beside the pattern) and never named."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if output == "link":
        target = tmp_path / "out.mkv"
        target.symlink_to(disk / "real.mkv")
        (disk / "real.mkv").write_bytes(b"old")
        left = disk / ".real.partial-k1ll3d01.mkv"
        left.write_bytes(b"half a video")
    else:
        target = disk / "frames" / "m.%04d.png"
        left = disk / ".frames.partial-k1ll3d01"
        left.mkdir()
    with caplog.at_level("WARNING"):
        assert run(clip, "-o", target, "--output", "mask", "--overwrite") == 0
    said = [r.getMessage() for r in caplog.records if r.name == "birefvid.batch.leftovers"]
    assert len(said) == 1 and str(left) in said[0], said
    assert left.exists()


@pytest.mark.parametrize("target", ["same", "dotted", "its-folder", "background", "bracketed"])
def test_an_output_that_would_replace_what_the_run_reads_is_refused(tmp_path, capsys, run, target):
    """`process clip.mp4 -o clip.mp4 --overwrite` replaced the video with its cut-out (exit 0), and
    `-o .` the folder holding it with a PNG sequence of it, the clip and its neighbours gone (as ffmpeg
    says "Output same as Input", `birefvid image` already refused this): one line, and every file kept."""
    # `clip [1].mp4` is a file name, not a glob pattern that matched nothing (and so guarded nothing)
    video = make_video(tmp_path / ("clip [1].mp4" if target == "bracketed" else "clip.mp4"), n_frames=3).path
    other = make_video(tmp_path / "other.mp4", n_frames=3, with_audio=False).path
    before = video.read_bytes()
    args = {"same": [video, "-o", video], "dotted": [video, "-o", tmp_path / ".." / tmp_path.name / "clip.mp4"],
            "its-folder": [video, "-o", f"{tmp_path}/"],
            "background": [other, "-o", video, "--output", "composite", "--background", video],
            "bracketed": [video, "-o", video]}[target]
    one_error_line(capsys, run(*args, "--overwrite"), "would replace", video.name if target != "its-folder" else "")
    assert video.read_bytes() == before
    assert_nothing_written(tmp_path, video.name, "other.mp4")


@pytest.mark.parametrize("target", ["output", "also", "input"])
def test_a_report_that_would_replace_a_video_of_the_run_is_refused(tmp_path, capsys, run, target):
    """`--report` is rewritten on every run, as a log is, without `--overwrite`: `-o cut.mkv --report cut.mkv` wrote the
    cut-out and then replaced it with its report, and `--report clip.mp4` replaced the input, both exit 0."""
    video = make_video(tmp_path / "clip.mp4", n_frames=3).path
    before = video.read_bytes()
    named = {"output": tmp_path / "cut.mkv", "also": tmp_path / "green.mp4", "input": video}[target]
    code = run(video, "-o", tmp_path / "cut.mkv", "--output", "mask", "--also", f"green={tmp_path / 'green.mp4'}", "--report", named)
    one_error_line(capsys, code, f"--report {named} would write into", named.name)
    assert video.read_bytes() == before
    assert_nothing_written(tmp_path, "clip.mp4")


def test_an_output_spelt_as_the_input_in_another_case_is_refused(tmp_path, capsys, run):
    """On macOS' case-insensitive disk ``process clip.mp4 -o Clip.mp4 --overwrite`` names the input itself,
    and the cut-out was renamed over it. A hard link stands in for that disk here (one file, two spellings)."""
    import os

    video = make_video(tmp_path / "clip.mp4", n_frames=3).path
    os.link(video, tmp_path / "Clip.mp4")
    before = video.read_bytes()
    one_error_line(capsys, run(video, "-o", tmp_path / "Clip.mp4", "--output", "green", "--overwrite"), "would replace", "clip.mp4")
    assert video.read_bytes() == before


def test_a_png_sequence_onto_its_own_folder_is_refused(tmp_path, capsys, run):
    """`process plate/ -o plate/ --overwrite` replaced the plate's frames with their cut-outs."""
    write_scene_images(tmp_path / "plate", 3, (64, 48))
    for output in (tmp_path / "plate", f"{tmp_path / 'plate'}/", tmp_path):
        one_error_line(capsys, run(tmp_path / "plate", "-o", output, "--overwrite"), "would replace", "plate")
    assert sorted(p.name for p in (tmp_path / "plate").iterdir()) == ["f_000.png", "f_001.png", "f_002.png"]
    assert_nothing_written(tmp_path, "plate")


# -- composite backgrounds -----------------------------------------------------------------------
def test_composite_background_file_missing(tmp_path, capsys, run, clip):
    out = tmp_path / "out.mp4"
    code = run(clip, "-o", out, "--output", "composite", "--background", tmp_path / "beach.jpg")
    one_error_line(capsys, code, "background", "beach.jpg")
    assert_nothing_written(tmp_path)


def test_composite_background_folder_is_named_a_folder(tmp_path, capsys, run, clip):
    """A folder given as --background was reported "background not found", though it is right there."""
    (tmp_path / "beach").mkdir()
    code = run(clip, "-o", tmp_path / "out.mp4", "--output", "composite", "--background", tmp_path / "beach")
    one_error_line(capsys, code, "background", "beach is a folder")
    assert_nothing_written(tmp_path, "beach")


def test_a_background_picture_cut_off_says_so_not_expected_png(tmp_path, capsys, run, clip):
    """A PNG background cut off by a download was "unreadable ... (expected PNG, JPEG, BMP, WebP or TIFF)": it is a PNG."""
    from PIL import Image

    Image.new("RGB", (64, 48), (10, 120, 200)).save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "whole.png").unlink()
    (tmp_path / "beach.png").write_bytes(data[: len(data) // 2])
    code = run(clip, "-o", tmp_path / "out.mp4", "--output", "composite", "--background", tmp_path / "beach.png")
    one_error_line(capsys, code, f"background image unreadable: {tmp_path / 'beach.png'} (a PNG cut off before its end, as an "
                                 "interrupted download or copy leaves it)")  # fmt: skip
    assert_nothing_written(tmp_path, "beach.png")


def test_composite_without_background(tmp_path, capsys, run, clip):
    one_error_line(capsys, run(clip, "-o", tmp_path / "out.mp4", "--output", "composite"), "composite", "--background")
    assert_nothing_written(tmp_path)


def test_background_with_another_output_kind(tmp_path, capsys, run, clip):
    code = run(clip, "-o", tmp_path / "out.mp4", "--output", "green", "--background", "#ff0000")
    one_error_line(capsys, code, "--background", "composite")
    assert_nothing_written(tmp_path)


# -- failures while running ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["out.mov", "frames"])
def test_segmenter_exception_mid_run(tmp_path, name):
    src = make_scene(tmp_path / "in.mov", 6)
    module = FailingRedKey(fail_at=3)
    out = tmp_path / name
    with pytest.raises(PipelineError, match=r"^segment: RuntimeError: model exploded on call 3$") as info:
        process_video(src.path, out, kind="alpha", segmenter=red_key_segmenter(module), smooth="none", batch_size=1)
    assert info.value.stage == "segment"
    assert isinstance(info.value.__cause__, RuntimeError)
    assert module.calls == 3, "the pipeline must stop at the first error"
    assert_nothing_written(tmp_path, "in.mov")
    assert birefvid_threads() == [], "pipeline threads still running"


def test_stop_event_discards_the_output(tmp_path):
    """A caller that stops the run (GUI cancel) gets an error, not a truncated file that looks complete."""
    src = make_scene(tmp_path / "in.mov", 10, with_audio=False)
    stop = threading.Event()
    done = []

    def progress(n: int) -> None:
        done.append(n)
        if sum(done) >= 2:
            stop.set()

    out = tmp_path / "out.mkv"
    with pytest.raises(PipelineError, match="stopped") as info:
        process_video(src.path, out, kind="mask", segmenter=red_key_segmenter(), smooth="none", stop=stop, progress=progress)
    assert info.value.stage == "interrupted"
    assert sum(done) < 10
    assert_nothing_written(tmp_path, "in.mov")
    assert birefvid_threads() == []


def test_a_failing_run_leaves_a_stop_event_shared_with_other_runs_unset(tmp_path):
    """A service passes one shutdown event to all its runs: one run failing set it, and every run after
    (and any at the same time) ended as "interrupted"."""
    src = make_scene(tmp_path / "in.mov", 3, with_audio=False)
    shutdown = threading.Event()
    seg = red_key_segmenter()

    def client_gone(n: int) -> None:
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        process_video(src.path, tmp_path / "a.mkv", kind="mask", segmenter=seg, smooth="none", stop=shutdown, progress=client_gone)
    assert not shutdown.is_set()
    report = process_video(src.path, tmp_path / "b.mkv", kind="mask", segmenter=seg, smooth="none", stop=shutdown)
    assert report["frames"] == 3 and (tmp_path / "b.mkv").is_file()


def test_ctrl_c_exits_130_and_leaves_nothing(tmp_path, capsys, monkeypatch, pvt_b0_weights):
    """Ctrl-C (KeyboardInterrupt in the main thread) mid-run: exit 130, threads joined, no output."""
    import birefvid.commands.process as process_cmd
    from birefvid.commands.progress import FrameProgress

    class InterruptingProgress(FrameProgress):
        def advance(self, n: int) -> None:
            super().advance(n)
            if self.done == 2:
                _thread.interrupt_main()  # what the terminal's SIGINT does
                time.sleep(1.0)  # hold the sink so the run is still mid-way when the main thread reacts

    monkeypatch.setattr(process_cmd, "FrameProgress", InterruptingProgress)
    src = make_scene(tmp_path / "in.mov", 10, with_audio=False)
    # Python's own Ctrl-C handler, as in a terminal: a suite started where SIGINT is ignored (a
    # script's background job) inherits SIG_IGN, and interrupt_main() then does nothing (exit 0).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    # A simulated SIGINT handled inside a finaliser that the garbage collector runs is reported as
    # "Exception ignored" and lost (CPython). After many tests there is much garbage, so collect it
    # first and keep the collector off meanwhile.
    gc.collect()
    gc.disable()
    try:
        code = main(["process", str(src.path), "-o", str(tmp_path / "out.mov"), "--weights", str(pvt_b0_weights),
                     "--resolution", "64", "--device", "cpu", "-q"])  # fmt: skip
    finally:
        gc.enable()
        signal.signal(signal.SIGINT, previous)
    assert code == 130
    assert capsys.readouterr().err.strip() == "birefvid: interrupted"
    assert_nothing_written(tmp_path, "in.mov")
    assert birefvid_threads() == []


def test_bad_key_color_fails_before_the_model_loads(tmp_path, capsys):
    from birefvid.cli import main

    clip = tmp_path / "in.mp4"
    clip.write_bytes(b"")  # never opened: the colour is checked first
    code = main(["process", str(clip), "-o", str(tmp_path / "g.mp4"), "--output", "green", "--key-color", "chartreuse-ish", "--weights", str(tmp_path / "none.pth")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "chartreuse-ish" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_a_disk_that_fills_up_is_said_in_plain_words(tmp_path):
    """FFmpeg's line named the hidden temporary file, already removed, and not that the output is lost."""
    from fs_fixtures import full_dir

    src = make_scene(tmp_path / "in.mov", 40, (256, 192), textured=True, with_audio=False)
    with full_dir(tmp_path / "small", "256k") as small:  # fills at frame ~4, long before the free-space check's first look
        with pytest.raises(SinkError, match=r"failed: the disk is full \(No space left on device\); out.mov is not kept: free some space"):
            process_video(src.path, small / "out.mov", kind="alpha", segmenter=red_key_segmenter(), smooth="none", batch_size=4)
        assert list(small.iterdir()) == []


def test_another_program_filling_the_disk_does_not_stop_a_run_that_fits(tmp_path, monkeypatch):
    """The projection came from the drop in free space: a copy of 9 GB beside the run's first 50 frames
    made it ask for terabytes and stop a run that fitted. It now counts the output's own bytes."""
    import birefvid.runtime.disk_watch as disk_watch

    monkeypatch.setattr(disk_watch, "FIRST_CHECK_SECONDS", 0.0)
    monkeypatch.setattr(disk_watch, "EVERY_SECONDS", 0.0)
    free = iter([10_000_000_000, 1_000_000_000])  # at the start, then after another program wrote 9 GB
    monkeypatch.setattr(disk_watch, "free_bytes", lambda folder: next(free))
    watch = disk_watch.DiskWatch(tmp_path / "out.mov", 1000, written=lambda: 50 * 20_000)  # 20 kB a frame
    watch.advance(50)  # projects ~19 MB more against 1 GB free: goes on
    assert watch.done == 50


def test_an_output_that_cannot_fit_stops_early_with_one_line(tmp_path, monkeypatch):
    """A two-hour ProRes 4444 output is hundreds of GB: the disk filled up hours in, and the failed run
    kept nothing. Now the size is projected from the first frames and a run that clearly cannot fit
    stops then, saying how much it needs against the free space, with nothing left behind."""
    import birefvid.runtime.disk_watch as disk_watch
    from fs_fixtures import full_dir

    monkeypatch.setattr(disk_watch, "FIRST_CHECK_SECONDS", 0.0)  # the first projection after 30 s, in a real run
    monkeypatch.setattr(disk_watch, "EVERY_SECONDS", 0.0)
    monkeypatch.setattr(disk_watch, "MIN_FRAMES", 4)
    src = make_scene(tmp_path / "in.mov", 150, (256, 192), textured=True, with_audio=False)  # ~20 KB a frame in ProRes
    done: list[int] = []  # frames written
    with full_dir(tmp_path / "small", "1m") as small:  # full at ~50 frames; the muxer writes 256 KB at a time
        with pytest.raises(SinkError, match=r"will not fit on its disk: its first \d+ frames took .* has \d+ MB free; stopped now, not when the disk fills up"):
            process_video(src.path, small / "out.mov", kind="alpha", segmenter=red_key_segmenter(), smooth="none",
                          batch_size=4, progress=done.append)  # fmt: skip
        assert sum(done) < 150
        assert list(small.iterdir()) == []



def _damaged_midway(tmp_path: Path, ext: str) -> Path:
    """A 64 px H.264 clip of 48 frames (25 fps, a keyframe every 12, one encoder thread: the same bytes everywhere) with
    400 bytes of packet 18 (0.72 s) overwritten: a packet the decoder rejects midway."""
    import subprocess

    ok = tmp_path / f"ok{ext}"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25,noise=alls=30:allf=t", "-frames:v", "48",
                    "-c:v", "libx264", "-threads", "1", "-g", "12", "-pix_fmt", "yuv420p", "-y", str(ok)], check=True)  # fmt: skip
    return damage_packet(ok, tmp_path / f"bad{ext}", 18, length=400)


def test_a_damaged_frame_is_numbered_from_the_files_start_after_a_start_too(tmp_path, run, capsys):
    """After ``--start`` (a seek to the keyframe before it) the failing frame was numbered from that keyframe: frame 6
    of the seek, where the file's frame is 18, and a time to pass to --end could not be read off it. Now the file's
    number and its time from the first frame, which the --end hint stays before."""
    import re

    bad, out = _damaged_midway(tmp_path, ".mp4"), tmp_path / "out.mkv"
    lines = [one_error_line(capsys, run(bad, "-o", out, "--output", "mask", *start), "the file is damaged") for start in ([], ["--start", "0.5"])]
    found = [re.search(r"decoding failed at frame (\d+) \((\d+\.\d{3}) s in: .*--end (\d+\.\d{3}) processes", line) for line in lines]
    assert all(found), lines
    (number, seconds, end), again = found[0].groups(), found[1].groups()
    assert again == (number, seconds, end) and int(number) >= 12, lines  # past the keyframe at 0.48 s the seek lands on
    assert float(seconds) == int(number) / 25 and float(end) < float(seconds), lines
    assert not out.exists()


def test_a_damaged_frame_of_a_variable_frame_rate_file_is_its_own_number_and_time(tmp_path, run, capsys):
    """A variable frame rate (20 frames at 10 fps, then 40 at 50 fps, as a phone records): the frame number and time
    were worked out from the average rate, so the damaged frame 40 (2.400 s) was '1.867 s in', before the --end hint
    beside it (2.380), and after a --start 'frame 61' of a 60-frame file. Both now come from the file's packets."""
    import re
    import subprocess

    from media import damage_packet

    vfr = tmp_path / "vfr.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=50", "-frames:v", "60",
                    "-vf", "setpts='if(lt(N,20),N*5,100+(N-20))/TB/50'", "-fps_mode", "vfr", "-c:v", "libx264", "-g", "12",
                    "-bf", "0", "-pix_fmt", "yuv420p", str(vfr)], check=True)  # fmt: skip
    bad, out = damage_packet(vfr, tmp_path / "bad.mp4", 40, length=400), tmp_path / "out.mkv"
    lines = [one_error_line(capsys, run(bad, "-o", out, "--output", "mask", *start), "the file is damaged") for start in ([], ["--start", "2.1"])]
    found = [re.search(r"decoding failed at frame (\d+) \((\d+\.\d{3}) s in: .*--end (\d+\.\d{3}) processes", line) for line in lines]
    assert all(found), lines
    assert [f.groups() for f in found] == [("40", "2.400", "2.380")] * 2, lines
    assert not out.exists()


def test_a_matroska_cluster_ffmpeg_skips_is_refused_and_its_good_parts_named(tmp_path, run, capsys):
    """A .mkv whose damaged Cluster FFmpeg's demuxer skips, logging it only: process wrote an output of the frames left
    (37 of 48) and exited 0, unwarned. It is refused as a file damaged midway is, nothing written, and the --end and
    --start its line names process the parts either side of the skipped data."""
    import re
    import subprocess

    from media import damage_cluster

    ok = tmp_path / "ok.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25,noise=alls=30:allf=t", "-frames:v", "48",
                    "-c:v", "libx264", "-threads", "1", "-g", "12", "-pix_fmt", "yuv420p", "-y", str(ok)], check=True)  # fmt: skip
    bad, out = damage_cluster(ok, tmp_path / "bad.mkv", 2), tmp_path / "out.mkv"
    line = one_error_line(capsys, run(bad, "-o", out, "--output", "mask"), "bad.mkv: the file is damaged at frame",
                          "FFmpeg skipped data it could not read there (")  # fmt: skip
    assert_nothing_written(tmp_path, "ok.mkv", "bad.mkv")
    m = re.search(r"; --end (\d+\.\d{3}) processes the part before the damage, --start (\d+\.\d{3}) the part from the next "
                  r"keyframe after it \(if that decodes\)$", line)  # fmt: skip
    assert m and 0 < float(m[1]) < float(m[2]) < 1.92, line
    assert run(bad, "-o", out, "--output", "mask", "--end", m[1]) == 0, capsys.readouterr().err
    assert len(read_video(out, "gray").pts) == round(float(m[1]) * 25)  # every frame before the last one decoded
    rest = tmp_path / "rest.mkv"
    assert run(bad, "-o", rest, "--output", "mask", "--start", m[2]) == 0, capsys.readouterr().err
    assert len(read_video(rest, "gray").pts) == 48 - round(float(m[2]) * 25)


def test_a_live_matroska_files_lost_last_cluster_is_refused_with_the_part_before_it_named(tmp_path, run, capsys):
    """A live recording (.mkv, no Duration) whose last Cluster's header is damaged: the demuxer skips the Cluster (84 of
    88 frames) and process wrote the shorter output, exit 0, unwarned. It is refused before any work, nothing written,
    and the --end its line names (no --start: nothing follows the damage) processes the part before it."""
    import re
    import subprocess

    from test_mkv_damage_last_cluster import zero_last_cluster_header

    ok = tmp_path / "ok.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25", "-f", "lavfi", "-i", "sine", "-t", "3.5",
                    "-c:v", "libx264", "-threads", "1", "-c:a", "aac", "-cluster_time_limit", "500", "-live", "1", "-y", str(ok)],
                   check=True)  # fmt: skip
    bad, out = tmp_path / "bad.mkv", tmp_path / "out.mkv"
    zero_last_cluster_header(ok, bad)
    line = one_error_line(capsys, run(bad, "-o", out, "--output", "mask"), "bad.mkv: the file is damaged at frame 84",
                          "FFmpeg skipped data it could not read there (the last Cluster's header")  # fmt: skip
    assert_nothing_written(tmp_path, "ok.mkv", "bad.mkv")
    m = re.search(r"; --end (\d+\.\d{3}) processes the part before the damage$", line)
    assert m and 3 < float(m[1]) < 3.36, line
    assert run(bad, "-o", out, "--output", "mask", "--end", m[1]) == 0, capsys.readouterr().err
    assert len(read_video(out, "gray").pts) == round(float(m[1]) * 25)


def test_a_damaged_packet_behind_b_frames_is_numbered_as_ffprobe_lists_it(tmp_path, run, capsys, monkeypatch):
    """With B-frames the decoder holds frames back: a damaged packet was said as the first frame it had not handed out
    (frame 38 at 2.360 s), not the frame whose packet ffprobe lists as damaged (39 at 2.380 s). Now the packet's own
    frame, after a --start too; the --end hint stays before every frame the decoder held back. (One decoding thread, as
    on a small CPU: with frame threads an error comes back with a later packet, and the line says what it said before.)"""
    import re

    import birefvid.runtime.priority as priority

    monkeypatch.setattr(priority, "usable_cores", lambda: 2)  # codec_threads: 1 decoding thread, on any machine
    import subprocess

    from media import damage_packet

    vfr = tmp_path / "vfr.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=50", "-frames:v", "60",
                    "-vf", "setpts='if(lt(N,20),N*5,100+(N-20))/TB/50'", "-fps_mode", "vfr", "-c:v", "libx264", "-g", "12",
                    "-bf", "2", "-pix_fmt", "yuv420p", str(vfr)], check=True)  # fmt: skip
    listed = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=pts_time", "-of", "csv=p=0",
                             str(vfr)], check=True, capture_output=True, text=True).stdout.split()  # fmt: skip
    shown = sorted(float(t) for t in listed)
    damaged = float(listed[40])  # the 41st packet in the file's (decoding) order
    assert shown.index(damaged) != 40, "no B-frame reorder here: the test proves nothing"
    bad, out = damage_packet(vfr, tmp_path / "bad.mp4", 40, length=400), tmp_path / "out.mkv"
    lines = [one_error_line(capsys, run(bad, "-o", out, "--output", "mask", *start), "the file is damaged") for start in ([], ["--start", "2.1"])]
    found = [re.search(r"decoding failed at frame (\d+) \((\d+\.\d{3}) s in: ", line) for line in lines]
    assert all(found), lines
    assert [f.groups() for f in found] == [(str(shown.index(damaged)), f"{damaged:.3f}")] * 2, lines
    assert not out.exists()


def test_a_file_damaged_midway_names_the_end_and_start_that_process_its_good_parts(tmp_path, run, capsys):
    """A file damaged midway is still refused (no partial output that looks whole), but its line now says which --end
    processes the frames before the damage and which --start those from the next keyframe after it; both then work."""
    import re

    bad, out = _damaged_midway(tmp_path, ".mp4"), tmp_path / "out.mkv"
    line = one_error_line(capsys, run(bad, "-o", out, "--output", "mask"), "bad.mp4: decoding failed at frame", "the file is damaged")
    assert not out.exists()
    m = re.search(r"; --end (\d+\.\d{3}) processes the part before the damage, --start (\d+\.\d{3}) the part from the next "
                  r"keyframe after it \(if that decodes\)$", line)  # fmt: skip
    assert m and 0 < float(m[1]) < 0.72 < float(m[2]) < 1.92, line
    assert run(bad, "-o", out, "--output", "mask", "--end", m[1]) == 0, capsys.readouterr().err
    assert len(read_video(out, "gray").pts) == round(float(m[1]) * 25)  # every frame before the last one decoded
    rest = tmp_path / "rest.mkv"
    assert run(bad, "-o", rest, "--output", "mask", "--start", m[2]) == 0, capsys.readouterr().err
    assert len(read_video(rest, "gray").pts) == 48 - round(float(m[2]) * 25)
    # --start inside the damaged part: the line names the --start past it alone
    line = one_error_line(capsys, run(bad, "-o", out, "--output", "mask", "--start", str(float(m[2]) - 0.2)), "the file is damaged")
    assert line.endswith(f"; --start {m[2]} processes the part from the next keyframe after it (if that decodes)"), line


def test_the_damage_hint_names_no_start_past_the_users_end(tmp_path, run, capsys):
    """With an --end before the next keyframe after the damage (0.92 s here), the line said "--start 0.920 the part from
    the next keyframe": with that --end, a --start the run then refused as not before it."""
    bad, out = _damaged_midway(tmp_path, ".mp4"), tmp_path / "out.mkv"
    line = one_error_line(capsys, run(bad, "-o", out, "--output", "mask", "--end", "0.9"), "the file is damaged")
    assert line.endswith("; --end 0.600 processes the part before the damage"), line
