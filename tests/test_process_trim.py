"""`process --start/--end`: the frames of a time range, re-timed to 0, with sound, subtitles, chapters
and timecode moved with them; seeking lands on the right frames; bad ranges fail in one line.

The red-key model (process_fixtures) makes frame k's alpha the red square of frame k, so which
source frames an output holds is read from its pixels.
"""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from birefvid.api import build_file_job, process_video
from birefvid.cli import main
from birefvid.errors import ConfigError, SourceError
from birefvid.io import open_source
from birefvid.io.trim import TrimmedSource, parse_time, shift_timecode
from birefvid.job import FileJob
from live_media import flash_and_tone, flash_and_tone_onsets, make_flash_clip
from media import add_subtitles, audio_duration, chapter_marks, make_video, merge_audio, read_alpha, shift_timestamps, subtitle_cues
from process_fixtures import decoded_times, interior, make_scene, max_err, partial_leftovers, red_key_segmenter, scene_frame, true_mask
from system_tools import need_binary

SIZE = (64, 48)


@pytest.fixture(scope="module")
def seg():
    return red_key_segmenter()


def source_frames_in(out: Path, n_source: int) -> list[int]:
    """Which source frame each output frame shows: the one whose square its alpha matches best (the
    square moves 3 px a frame, so neighbours differ in a band 3 px wide on each side)."""
    _, alpha, _ = read_alpha(out)
    found = []
    for a in alpha:
        errors = [np.abs(a.astype(int) - true_mask(k, SIZE)).mean() for k in range(n_source)]
        best = int(np.argmin(errors))
        fg, bg = interior(true_mask(best, SIZE))
        assert max(max_err(a, 255, fg), max_err(a, 0, bg)) <= 3, "an output frame matches no source frame"
        found.append(best)
    return found


def test_a_range_keeps_its_frames_retimed_to_zero(tmp_path, seg):
    src = make_scene(tmp_path / "in.mov", 20, SIZE)  # 25 fps, with sound
    out = tmp_path / "part.mov"
    starts = []
    report = process_video(src.path, out, kind="alpha", segmenter=seg, smooth="none", start=0.2, end=0.6, on_start=starts.append)
    assert report["frames"] == 10 and starts == [10]  # progress knows the count up front
    assert decoded_times(out) == [Fraction(k, 25) for k in range(10)]
    assert source_frames_in(out, 20) == list(range(5, 15))
    assert audio_duration(out) == pytest.approx(0.4, abs=0.05)
    assert report["job"]["source"]["start"] == 0.2 and report["job"]["source"]["end"] == 0.6


def test_the_sound_stays_in_sync(tmp_path, seg):
    """A flash and a tone that start at 1.5 s start at 0.5 s after --start 1 (the flash on the frame at 0.52 s)."""
    clip = make_flash_clip(tmp_path / "flash.mp4", seconds=3.0, flash=(1.5, 2.5), size=(64, 48))
    out = tmp_path / "part.mp4"
    process_video(clip, out, kind="blur", segmenter=seg, smooth="none", start=1.0, end=2.2)  # (gray frames: all background)
    bright, tone, video_end, sound_end = flash_and_tone(out)
    assert bright == pytest.approx(0.52, abs=1e-6)  # the first frame at or after 1.5 s is at 1.52 s (25 fps)
    assert tone == pytest.approx(0.5, abs=0.025)  # AAC is cut at its packets (~21 ms)
    assert video_end == pytest.approx(1.2, abs=1e-6)
    assert sound_end == pytest.approx(1.2, abs=0.05)


def test_seeking_in_a_long_gop_lands_on_the_right_frames(tmp_path, seg):
    """H.264 with a keyframe every 10 frames (and B-frames): the decode starts at the keyframe before
    the range and the frames before it are dropped."""
    frames = [scene_frame(k, SIZE) for k in range(40)]
    src = make_video(tmp_path / "gop.mp4", n_frames=40, size=SIZE, frames=frames, codec="libx264", pix_fmt="yuv444p", with_audio=False)
    out = tmp_path / "part.mkv"
    process_video(src.path, out, kind="alpha", segmenter=seg, smooth="none", start=1.0, end=1.2)
    assert source_frames_in(out, 40) == [25, 26, 27, 28, 29]


def test_an_mpeg_ts_is_read_from_the_top_when_its_seek_overshoots(tmp_path, seg):
    frames = [scene_frame(k, SIZE) for k in range(30)]
    src = make_video(tmp_path / "cam.ts", n_frames=30, size=SIZE, frames=frames, codec="libx264", pix_fmt="yuv444p", with_audio=False)
    out = tmp_path / "part.mkv"
    process_video(src.path, out, kind="alpha", segmenter=seg, smooth="none", start=0.8, end=1.0)
    assert source_frames_in(out, 30) == [20, 21, 22, 23, 24]
    assert decoded_times(out)[0] == 0


def test_subtitles_and_chapters_move_with_the_range(tmp_path, seg):
    plain = make_scene(tmp_path / "in.mp4", 25, SIZE, with_audio=False, lossless=False)
    film = add_subtitles(plain.path, tmp_path / "film.mkv", [("subrip", "eng", [(100, 300, "before"), (400, 700, "across"), (800, 900, "inside"),
                                                                             (950, 990, "after")])],
                         [(0, 500, "A"), (500, 800, "B"), (800, 1000, "C")])  # fmt: skip
    out = tmp_path / "part.mkv"
    process_video(film, out, kind="mask", segmenter=seg, smooth="none", start=0.5, end=0.92)
    (codec, language, cues), = subtitle_cues(out)
    assert language == "eng"
    # the output starts with the first frame at or after 0.5 s, the one at 0.52 s (25 fps); "across"
    # shows from there on, "after" starts after the end
    assert [(a, b, text) for a, b, text in cues] == [(0.0, 0.18, b"across"), (0.28, 0.38, b"inside")]
    assert chapter_marks(out) == [(0.0, 0.28, "B"), (0.28, 0.4, "C")]


def test_a_cue_showing_at_the_end_of_the_range_stops_there(tmp_path, seg):
    """A subtitle still on screen at ``--end`` kept its whole time, so the file outlasted its pictures (a
    1 s cut of an OBS take with a cue across its end lasted 1.5 s, the last half second black)."""
    plain = make_scene(tmp_path / "in.mp4", 25, SIZE, with_audio=False, lossless=False)
    film = add_subtitles(plain.path, tmp_path / "film.mkv", [("subrip", "eng", [(600, 700, "inside"), (850, 1000, "over the end")])],
                         [(0, 1000, "A")])  # fmt: skip
    out = tmp_path / "part.mkv"
    process_video(film, out, kind="mask", segmenter=seg, smooth="none", start=0.5, end=0.92)
    (_, _, cues), = subtitle_cues(out)
    assert cues == [(0.08, 0.18, b"inside"), (0.33, 0.4, b"over the end")]  # the range is 0.52 to 0.92 s
    with av.open(str(out)) as c:
        assert float(c.duration / av.time_base) <= 0.4 + 1e-3


def test_the_start_timecode_moves_with_the_range(tmp_path, seg):
    src = make_scene(tmp_path / "cam.mov", 20, SIZE, with_audio=False, timecode="01:00:00:00")
    out = tmp_path / "part.mov"
    process_video(src.path, out, kind="alpha", segmenter=seg, smooth="none", start=0.2)
    with av.open(str(out)) as c:
        assert c.streams.video[0].metadata.get("timecode") == "01:00:00:05"


def test_an_image_sequence_can_be_trimmed(tmp_path, seg):
    folder = tmp_path / "frames"
    folder.mkdir()
    import cv2

    for k in range(12):
        cv2.imwrite(str(folder / f"f_{k:03d}.png"), cv2.cvtColor(scene_frame(k, SIZE), cv2.COLOR_RGB2BGR))
    out = tmp_path / "part.mkv"
    process_video(folder, out, kind="alpha", segmenter=seg, smooth="none", fps=10, start=0.5, end=0.8)
    assert source_frames_in(out, 12) == [5, 6, 7]


def test_the_cli_takes_clock_times(tmp_path, pvt_b0_weights, capsys):
    src = make_scene(tmp_path / "in.mov", 10, SIZE, with_audio=False)
    out = tmp_path / "part.mkv"
    rc = main(["process", str(src.path), "-o", str(out), "--output", "mask", "--start", "0:00.12", "--end", "0.2",
               "--weights", str(pvt_b0_weights), "--resolution", "64", "-q"])  # fmt: skip
    assert rc == 0
    assert len(decoded_times(out)) == 2


@pytest.mark.parametrize(
    "args,message",
    [
        (["--start", "5"], "has no frames from 5 s; the video lasts 0.400 s"),
        (["--start", "0.3", "--end", "0.1"], "--end (0.1 s) must come after --start (0.3 s)"),
    ],
)
def test_a_range_outside_the_video_is_one_error_line(tmp_path, pvt_b0_weights, capsys, args, message):
    src = make_scene(tmp_path / "in.mov", 10, SIZE, with_audio=False)
    out = tmp_path / "part.mkv"
    rc = main(["process", str(src.path), "-o", str(out), "--output", "mask", *args, "--weights", str(pvt_b0_weights), "--resolution", "64", "-q"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("birefvid: error:") and message in err[0], err
    assert not out.exists() and partial_leftovers(tmp_path) == []


def test_a_range_given_in_the_sources_timecode_is_named_as_such(tmp_path):
    """An editor reads 01:00:00:10 on a clip in the NLE and types --start 1:00:00.4: the error said only that a
    0.4 s clip has no frames from 3600.4 s. It says the range counts from the first frame, and what that is."""
    src = make_video(tmp_path / "cam.mov", n_frames=10, size=SIZE, with_audio=False, timecode="01:00:00:00")
    with open_source(src.path) as inner:
        with pytest.raises(SourceError) as err:
            TrimmedSource(inner, start=3600.2, end=3600.32)
    assert "not from its timecode 01:00:00:00: on that timecode this is --start 0.200 --end 0.320" in str(err.value)
    with open_source(src.path) as inner, pytest.raises(SourceError) as err:
        TrimmedSource(inner, start=3600.1, end=3600.3)  # between frames (2.5 and 7.5 in): said as given, not a frame early
    assert "on that timecode this is --start 0.100 --end 0.300" in str(err.value)
    with open_source(src.path) as inner, pytest.raises(SourceError) as err:
        TrimmedSource(inner, start=5)  # past the end whatever the timecode: no hint
    assert "timecode" not in str(err.value)


def test_a_time_that_is_not_a_time_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["process", "in.mp4", "-o", str(tmp_path / "x.mkv"), "--start", "1:2:3:4"])
    assert exc.value.code == 2
    assert "is not a time" in capsys.readouterr().err


@pytest.mark.parametrize("offset", [Fraction(36000), Fraction(2**33, 90000) - Fraction(1, 5)], ids=["clock-at-10h", "across-the-wrap"])
def test_a_broadcast_ts_clock_starts_the_output_at_zero(tmp_path, seg, offset):
    """An MPEG-TS recorded from a broadcast counts from its clock: at 10 h a 0.4 s clip became a MOV
    10 hours long; read across the 33-bit wrap its first frames came before 0 and MOV hid them."""
    frames = [scene_frame(k, SIZE) for k in range(10)]
    g = make_video(tmp_path / "in.mkv", n_frames=10, size=SIZE, frames=frames, codec="libx264", pix_fmt="yuv444p", audio_codec="aac")
    src = shift_timestamps(g.path, tmp_path / "cap.ts", offset)
    out = tmp_path / "out.mov"
    report = process_video(src, out, kind="alpha", segmenter=seg, smooth="none")
    assert report["frames"] == 10
    assert decoded_times(out) == [Fraction(k, 25) for k in range(10)]
    assert source_frames_in(out, 10) == list(range(10))
    with av.open(str(out)) as c:
        assert c.duration / av.time_base < 1  # not a 10-hour file
    assert audio_duration(out) == pytest.approx(0.4, abs=0.05)


def test_a_matroska_file_that_starts_before_zero_keeps_every_frame_in_sync(tmp_path, seg):
    """`-output_ts_offset -0.5 -avoid_negative_ts disabled` (a cut of a longer recording): Matroska reads
    the frames before 0 back without timestamps, and `process` failed ("pts 0 does not increase")."""
    import subprocess

    clip = make_flash_clip(tmp_path / "flash.mp4", seconds=2.0, flash=(1.0, 1.5), size=(64, 48))
    early = tmp_path / "early.mkv"
    subprocess.run([need_binary("ffmpeg", "ffmpeg"), "-v", "error", "-i", str(clip), "-c", "copy", "-output_ts_offset",
                    "-0.5", "-avoid_negative_ts", "disabled", str(early)], check=True)  # fmt: skip
    out = tmp_path / "out.mp4"
    starts = []
    report = process_video(early, out, kind="blur", segmenter=seg, smooth="none", on_start=starts.append)
    assert report["frames"] == 50 and starts == [50]  # progress knew the count: 2 s, not the tag's 1.5
    assert decoded_times(out) == [Fraction(k, 25) for k in range(50)]
    bright, tone, video_end, _ = flash_and_tone(out)
    assert bright == pytest.approx(1.0, abs=1e-6)  # the first frame of the flash, where the source shows it
    assert tone == pytest.approx(1.0, abs=0.025)  # and the sound with it


def test_a_trimmed_job_round_trips_and_batch_refuses_it(tmp_path):
    job = build_file_job("in.mp4", "out.mkv", kind="mask", start=1.5, end=3.0)
    assert FileJob.from_json(job.to_json()) == job
    from birefvid.batch.progress import BatchProgress
    from birefvid.batch.runner import run_batch

    with pytest.raises(ConfigError, match="batch processes whole videos"):
        run_batch([job], tmp_path, lambda: None, BatchProgress(quiet=True))  # type: ignore[arg-type]


def test_trimmed_source_reports_the_range(tmp_path):
    src = make_scene(tmp_path / "in.mov", 20, SIZE, with_audio=False)
    with open_source(src.path) as whole, TrimmedSource(whole, 0.3, 0.5) as part:
        assert part.info.frame_count == 5 and part.info.duration == pytest.approx(0.18)  # frames 8-12: from 0.32 s to the end, 0.5 s
        assert part.window.start == pytest.approx(0.32) and part.window.end == pytest.approx(0.5)
        got = list(part)
    assert [f.pts * f.time_base for f in got] == [Fraction(k, 25) for k in range(5)] and [f.index for f in got] == list(range(5))


def test_time_and_timecode_arithmetic():
    assert parse_time("12.5") == 12.5 and parse_time("1:02.5") == 62.5 and parse_time("01:02:03") == 3723
    for bad in ("", "1:2:3:4", "-1", "1e3", "abc", "1.5:00"):
        with pytest.raises(ValueError):
            parse_time(bad)
    assert shift_timecode("01:00:00:00", 25 * 61 + 3, Fraction(25)) == "01:01:01:03"
    ntsc = Fraction(30000, 1001)  # drop-frame: frame numbers 0 and 1 of each minute but every tenth are skipped
    assert shift_timecode("00:00:59;29", 1, ntsc) == "00:01:00;02"
    assert shift_timecode("00:09:59;29", 1, ntsc) == "00:10:00;00"
    assert shift_timecode("00:00:00;00", 17982, ntsc) == "00:10:00;00"
    assert shift_timecode("not a timecode", 5, Fraction(25)) is None
    # a night shoot's time-of-day timecode cut after midnight: SMPTE hours run 00-23 (it gave 24:00:00:08)
    assert shift_timecode("23:59:59:20", 13, Fraction(25)) == "00:00:00:08"
    assert shift_timecode("23:59:59;29", 1, ntsc) == "00:00:00;00"  # a tenth minute: no numbers dropped


@pytest.mark.parametrize("out_name,kind,tracks", [("cut.mp4", "green", 1), ("cut.mkv", "alpha", 2)])
def test_an_audio_track_silent_in_the_part_kept_is_named_in_a_warning(tmp_path, seg, caplog, out_name, kind, tracks):
    """A microphone track that stops before ``--start``: MP4/MOV leave an empty track out, so the cut-out had one
    audio track fewer than the source without a word (an editor's track layout no longer matched)."""
    src = make_scene(tmp_path / "desk.mov", 25, SIZE, with_audio=True)
    mic = make_video(tmp_path / "mic.mov", n_frames=5, size=SIZE, with_audio=True, audio_seconds=0.2)
    both = merge_audio(src.path, [mic.path], tmp_path / "take.mov", ["eng", "fra"])
    process_video(both, tmp_path / out_name, kind=kind, segmenter=seg, smooth="none", start=0.6)
    with av.open(str(tmp_path / out_name)) as c:
        assert len(c.streams.audio) == tracks
    said = [r.getMessage() for r in caplog.records if "audio track 2 (fra) has no sound in the part kept" in r.getMessage()]
    assert len(said) == 1 and ("left out" in said[0]) == (tracks == 1), said
    caplog.clear()
    process_video(both, tmp_path / f"whole{Path(out_name).suffix}", kind=kind, segmenter=seg, smooth="none")
    assert not [r for r in caplog.records if "no sound" in r.getMessage()]  # the whole take: both tracks have sound



def _decoded_sound(path: Path) -> tuple[float, int, np.ndarray]:
    """(the first decoded sample's time, the rate, the mono samples) of ``path``'s sound, as PyAV (libavformat,
    edit lists honoured) decodes it."""
    with av.open(str(path)) as c:
        decoded = list(c.decode(audio=0))
        rate = c.streams.audio[0].codec_context.sample_rate
    return float(decoded[0].pts * decoded[0].time_base), rate, np.concatenate([f.to_ndarray().mean(axis=0) for f in decoded])


@pytest.mark.parametrize("ext", [".mp4", ".mov", ".mkv", ".webm"])
def test_sound_cut_mid_packet_starts_with_the_picture(tmp_path, seg, ext):
    """--start 1.5 (first frame 1.52 s) falls a quarter into an AAC packet (1024 samples at 48 kHz: 1.5147-1.5360 s).
    MOV/MP4 keep that packet and 0.1 s before it (the decoder's pre-roll) behind their edit list, as `ffmpeg -ss -c copy`
    does: the sound plays from 0, sample for sample the source's from 1.52 s. It started at the next packet, 16 ms late,
    its first 21 ms faded in. Matroska, without an edit list, still starts at that packet, in step. WebM re-encodes to
    Opus the same packets' sound from 0 (it started 17 ms late). Either way the tone that starts with the flash at 2.0 s
    starts with it, to the millisecond."""
    clip = make_flash_clip(tmp_path / "flash.mp4", seconds=3.0, flash=[(1.0, 1.7), (2.0, 2.5)], size=(64, 48))
    out = tmp_path / f"part{ext}"
    process_video(clip, out, kind="blur", segmenter=seg, smooth="none", start=1.5, end=2.3)
    source_start, rate, source = _decoded_sound(clip)
    assert source_start == 0 and rate == 48000
    start, _, sound = _decoded_sound(out)
    cut = round(1.52 * rate)  # the output's 0 in the source's sound, where the tone plays
    if ext == ".mkv":
        assert 0 < start < 1024 / rate  # the first packet that starts after the cut
        at = round(start * rate) + 1024  # that packet is decoded without the one before: compared from the next
        assert np.abs(sound[1024 : 1024 + 4800] - source[cut + at : cut + at + 4800]).max() < 1e-3
    else:
        assert start == 0
        lossy = 0.1 if ext == ".webm" else 1e-3  # Opus's re-encoding (0.05 here) or the copy (0)
        assert np.abs(sound[:4800] - source[cut : cut + 4800]).max() < lossy  # the first 0.1 s, from the first sample
    flashes, tones = flash_and_tone_onsets(out)
    assert [t for _, t in flashes] == [pytest.approx(0.48)]
    assert tones[-1] == pytest.approx(0.48, abs=0.001)


def test_a_custom_order_pcm_track_is_cut_with_the_others(tmp_path, seg):
    """A MOV with two PCM tracks, the second in a custom channel order (copied raw, ``RawPcmTrack``), cut at --start 1.5
    (first frame 1.52 s, a quarter into a 1024-sample packet). The first track kept the packet the cut falls in behind the
    edit list and started at 0; the second began at the next packet, 16 ms later, the two tracks out of step. Now both
    start at 0 with the same samples. Read by ffmpeg's command line: PyAV must not touch the source's custom layout."""
    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    src = tmp_path / "two_pcm.mov"
    pan = "pan=7.1|" + "|".join(f"c{i}=c0" for i in range(8))  # the same tone in 8 channels, in the order pan lists
    subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=25:duration=3",
                    "-f", "lavfi", "-i", "aevalsrc=sin(2*PI*(200+300*t)*t):s=48000:d=3", "-filter_complex",
                    f"[1]asplit[a][b];[b]{pan}[p]", "-map", "0:v", "-map", "[a]", "-map", "[p]", "-c:v", "libx264",
                    "-c:a", "pcm_s16le", str(src)], check=True, timeout=60)  # fmt: skip
    out = tmp_path / "part.mov"
    process_video(src, out, kind="blur", segmenter=seg, smooth="none", start=1.5, end=2.3)

    def first_channel(track: int) -> np.ndarray:
        run = subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-i", str(out), "-map", f"0:a:{track}", "-af", "pan=mono|c0=c0",
                              "-f", "s16le", "-"], capture_output=True, check=True, timeout=60)  # fmt: skip
        return np.frombuffer(run.stdout, np.int16)

    probe = subprocess.run([need_binary("ffprobe", "ffmpeg"), "-v", "error", "-select_streams", "a", "-show_entries",
                            "stream=start_time", "-of", "csv=p=0", str(out)], capture_output=True, text=True, check=True)  # fmt: skip
    assert probe.stdout.split() == ["0.000000", "0.000000"]  # the second track started at 0.016000
    plain, custom = first_channel(0), first_channel(1)
    assert len(plain) == len(custom) and np.array_equal(plain, custom)
