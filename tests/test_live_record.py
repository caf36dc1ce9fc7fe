"""Recording sink: live pictures land in a video file with their own times, alpha kept; failures leave no file."""

from __future__ import annotations

import os
import re
import time

import av
import numpy as np
import pytest

from birefvid.errors import SinkError
from birefvid.io.readback import decode_video_frames
from birefvid.io.record_sink import RecordingSink
from media import x264_settings

W, H, FPS, N = 64, 48, 24, 48


def _rgb(i: int) -> np.ndarray:
    """Smooth gradient with a bar moving 2 px a frame."""
    y, x = np.mgrid[0:H, 0:W]
    pic = np.dstack([x * 200 // W + 20, y * 200 // H + 20, np.full_like(x, 120)]).astype(np.uint8)
    pic[:, (2 * i) % (W - 8) : (2 * i) % (W - 8) + 8] = (240, 230, 30)
    return pic


def _alpha(i: int) -> np.ndarray:
    """Opaque block on a soft ramp, transparent bottom rows."""
    y, x = np.mgrid[0:H, 0:W]
    a = ((x + 2 * y + 3 * i) * 255 // (W + 2 * H + 3 * N)).astype(np.uint8)
    a[H // 4 : H // 2, W // 4 : W // 2] = 255
    a[-4:] = 0
    return a


def _times() -> list[float]:
    """24 fps with capture jitter, as a live source delivers (a recording must keep these, not i/24)."""
    return [i / FPS + (0.006 if i % 5 == 2 else 0.0) for i in range(N)]


def _pts_seconds(path) -> list[float]:
    """Presentation times of every packet, in presentation order (B-frames arrive out of it)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return sorted(float(p.pts * s.time_base) for p in c.demux(s) if p.pts is not None)


def _mean_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_rgb_mp4_keeps_every_picture_at_its_time(tmp_path):
    path = tmp_path / "live.mp4"
    times = _times()
    with RecordingSink(path, width=W, height=H, fps=FPS, kind="rgb") as sink:
        assert not sink.holds_last
        for i, t in enumerate(times):
            sink.send(_rgb(i), t)
    assert sink.frames_written == N and os.listdir(tmp_path) == ["live.mp4"]

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264" and float(stream.average_rate) == pytest.approx(FPS, rel=0.02)
        frames = list(c.decode(stream))
    assert len(frames) == N
    assert np.allclose([f.time for f in frames], times, atol=0.0011)
    for i in (0, N // 2, N - 1):
        assert _mean_err(frames[i].to_ndarray(format="rgb24"), _rgb(i)) < 4


@pytest.mark.parametrize("name,alpha_tol", [("live.webm", 3.0), ("live.mov", 2.0)])
def test_rgba_keeps_alpha(tmp_path, name, alpha_tol):
    path = tmp_path / name
    times = _times()
    with RecordingSink(path, width=W, height=H, fps=FPS, kind="rgba") as sink:
        for i, t in enumerate(times):
            sink.send(np.dstack([_rgb(i), _alpha(i)]), t)

    assert np.allclose(_pts_seconds(path), times, atol=0.0011)
    frames = list(decode_video_frames(path))  # libvpx-vp9 for WebM, which FFmpeg's vp9 decoder would strip
    assert len(frames) == N
    for i in (0, N // 2, N - 1):
        rgba = frames[i].to_ndarray(format="rgba")
        assert _mean_err(rgba[..., 3], _alpha(i)) < alpha_tol, f"frame {i} lost its alpha"
        opaque = _alpha(i) == 255
        assert _mean_err(rgba[..., :3][opaque], _rgb(i)[opaque]) < 6


def test_gray_records_the_mask_losslessly_in_mkv(tmp_path):
    path = tmp_path / "mask.mkv"
    with RecordingSink(path, width=W, height=H, fps=FPS, kind="gray") as sink:
        for i in range(10):
            sink.send(_alpha(i), i / FPS)
    with av.open(str(path)) as c:
        got = [f.to_ndarray() for f in c.decode(video=0)]
    assert len(got) == 10 and all(np.array_equal(g, _alpha(i)) for i, g in enumerate(got))


def test_pictures_within_one_millisecond_still_get_increasing_times(tmp_path):
    path = tmp_path / "dup.mp4"
    with RecordingSink(path, width=W, height=H, fps=FPS, kind="rgb") as sink:
        for i, t in enumerate([0.0, 0.0, 0.0004, 0.05]):
            sink.send(_rgb(i), t)
    assert _pts_seconds(path) == pytest.approx([0.0, 0.001, 0.002, 0.05], abs=1e-9)


def test_abort_leaves_no_file(tmp_path):
    sink = RecordingSink(tmp_path / "gone.mp4", width=W, height=H, fps=FPS, kind="rgb")
    for i in range(5):
        sink.send(_rgb(i), i / FPS)
    assert len(os.listdir(tmp_path)) == 1  # the temporary file, not yet the target
    sink.abort()
    sink.abort()
    sink.close()  # nothing to finish after an abort
    assert os.listdir(tmp_path) == []


def test_a_file_another_run_is_recording_is_refused_until_it_is_finished(tmp_path):
    """Two live runs in one app recording to one file: the second is refused at once (overwrite or not),
    where the later commit had silently replaced the first run's recording; free again once it is done."""
    path = tmp_path / "cam.mp4"
    first = RecordingSink(path, width=W, height=H, fps=FPS, kind="rgb")
    for overwrite in (False, True):
        with pytest.raises(SinkError, match=r"cam.mp4 is being recorded by another run in this process"):
            RecordingSink(tmp_path / "." / "cam.mp4", width=W, height=H, fps=FPS, kind="rgb", overwrite=overwrite)
    for i in range(3):
        first.send(_rgb(i), i / FPS)
    first.close()
    assert len(_pts_seconds(path)) == 3  # the first run's recording, whole
    RecordingSink(path, width=W, height=H, fps=FPS, kind="rgb", overwrite=True).abort()  # free again; an abort frees it too
    with RecordingSink(path, width=W, height=H, fps=FPS, kind="rgb", overwrite=True) as again:
        again.send(_rgb(0), 0.0)
    assert len(_pts_seconds(path)) == 1


def test_existing_target_needs_overwrite(tmp_path):
    path = tmp_path / "taken.mp4"
    path.write_bytes(b"keep me")
    with pytest.raises(SinkError, match="output exists"):
        RecordingSink(path, width=W, height=H, fps=FPS, kind="rgb")
    assert path.read_bytes() == b"keep me" and os.listdir(tmp_path) == ["taken.mp4"]
    with RecordingSink(path, width=W, height=H, fps=FPS, kind="rgb", overwrite=True) as sink:
        sink.send(_rgb(0), 0.0)
    assert len(_pts_seconds(path)) == 1


def test_a_recording_whose_name_another_process_took_meanwhile_is_kept_beside_it(tmp_path):
    """Two `birefvid live` processes recording to cam.mp4 (no --overwrite): the later one to stop replaced the
    earlier's recording at its commit. Now the earlier's stays, the later's is kept as `cam (2).mp4`, and its
    run fails naming it (``kept``, and ``files`` for the report)."""
    from birefvid.errors import OutputKeptError

    path = tmp_path / "cam.mp4"
    sink = RecordingSink(path, width=W, height=H, fps=FPS, kind="rgb")
    for i in range(3):
        sink.send(_rgb(i), i / FPS)
    path.write_bytes(b"the other process's recording")
    with pytest.raises(OutputKeptError, match=r"output exists: .*cam\.mp4 .*kept as .*cam \(2\)\.mp4") as caught:
        sink.close()
    assert caught.value.kept == tmp_path / "cam (2).mp4" and sink.files == [tmp_path / "cam (2).mp4"]
    assert path.read_bytes() == b"the other process's recording" and len(_pts_seconds(tmp_path / "cam (2).mp4")) == 3
    assert sorted(os.listdir(tmp_path)) == ["cam (2).mp4", "cam.mp4"]


@pytest.mark.parametrize(
    "name,kind,match",
    [
        ("out.avi", "rgb", r"cannot record rgb pictures to \.avi files; record to \.mov, \.mp4"),
        ("out.mp4", "rgba", r"cannot record rgba pictures to \.mp4 files \(\.mp4 holds no transparency.*\); record to \.mov"),
        ("missing/out.mp4", "rgb", "output folder does not exist"),
    ],
)
def test_bad_targets_fail_at_open(tmp_path, name, kind, match):
    with pytest.raises(SinkError, match=match):
        RecordingSink(tmp_path / name, width=W, height=H, fps=FPS, kind=kind)
    assert not any(tmp_path.rglob("*.*"))


@pytest.mark.parametrize("name, kind, effect, words", [
    ("out.avi", "rgb", "blur", "cannot record --effect blur to .avi files; record to .mov, .mp4, .m4v, .mkv, .webm, .gif, .webp or .apng"),
    ("out.mp4", "rgba", "alpha", "cannot record --effect alpha to .mp4 files (.mp4 holds no transparency; an effect without it"),
    ("out.mkv.part", "gray", "mask", "cannot record --effect mask to .part files"),
])
def test_a_refused_recording_names_the_effect_chosen(tmp_path, name, kind, effect, words):
    """It said "cannot write rgb output to .avi files": a picture kind the user never chose, for a recording of --effect blur."""
    from birefvid.errors import cli_naming

    with cli_naming(), pytest.raises(SinkError) as caught:
        RecordingSink(tmp_path / name, width=W, height=H, fps=FPS, kind=kind, effect=effect)
    assert words in str(caught.value) and " rgb" not in str(caught.value) and "output" not in str(caught.value), str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_preset_reaches_the_encoder(tmp_path):
    """A recording that cannot keep up at the live default can trade file size for speed (--preset)."""
    default, fast = tmp_path / "default.mp4", tmp_path / "fast.mp4"
    for path, preset in ((default, None), (fast, "ultrafast")):
        with RecordingSink(path, width=W, height=H, fps=FPS, kind="rgb", preset=preset) as sink:
            for i, t in enumerate(_times()[:8]):
                sink.send(_rgb(i), t)
    assert "subme=2" in x264_settings(default)  # veryfast
    settings = x264_settings(fast)
    assert "cabac=0" in settings and "subme=0" in settings  # ultrafast
    assert len(list(decode_video_frames(fast))) == 8


@pytest.mark.parametrize(
    "name, preset, match",
    [("live.mp4", "quick", "unknown preset 'quick' for libx264"), ("live.webm", "ultrafast", "libvpx-vp9 has no speed presets")],
)
def test_bad_preset_fails_at_open_and_leaves_no_file(tmp_path, name, preset, match):
    with pytest.raises(SinkError, match=match):
        RecordingSink(tmp_path / name, width=W, height=H, fps=FPS, kind="rgb", preset=preset)
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- recordings in parts (--segment)


def _feed_with_a_beep(seconds: float, beep_at: float):
    """A LiveAudioFeed and its pushes: quiet 440 Hz, loud for 0.2 s from ``beep_at``, in 0.1 s frames."""
    from birefvid.io.live_audio import LiveAudioFeed

    feed = LiveAudioFeed(48000, "mono")
    feed.set_offset(0, 0.0)  # as the live runner does at the first picture it shows
    pushes = []
    for i in range(round(seconds * 10)):
        t = np.arange(4800) / 48000 + i * 0.1
        level = 0.8 if beep_at <= i * 0.1 < beep_at + 0.2 else 0.02
        frame = av.AudioFrame.from_ndarray((level * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None], format="fltp", layout="mono")
        frame.sample_rate = 48000
        pushes.append((i * 0.1, frame))
    return feed, pushes


def _loudest_second(path) -> float:
    with av.open(str(path)) as c:
        frames = list(c.decode(audio=0))
    samples = np.concatenate([f.to_ndarray()[0] for f in frames])
    start = float(frames[0].pts * frames[0].time_base)
    window = 480  # 10 ms
    energy = np.abs(samples[: len(samples) // window * window]).reshape(-1, window).mean(axis=1)
    return start + float(np.argmax(energy > 0.3)) * window / 48000


def test_a_recording_in_parts_keeps_every_picture_and_its_sound_in_step(tmp_path):
    """5 s at 25 fps in parts of 2 s: three files from 0, 50 + 50 + 25 pictures, and a flash and a beep
    at 3.0 s in the live clock both at 1.0 s in the second file."""
    fps, flash = 25, 75
    feed, pushes = _feed_with_a_beep(5.0, beep_at=3.0)
    sink = RecordingSink(tmp_path / "cam.mp4", width=W, height=H, fps=fps, kind="rgb", audio=feed, segment_seconds=2.0)
    for i in range(5 * fps):
        t = i / fps
        while pushes and pushes[0][0] <= t + 0.05:  # the capture runs a little ahead of the display
            feed.push(*pushes.pop(0))
        sink.send(np.full((H, W, 3), 250 if i == flash else 30, np.uint8), t)
    sink.close()
    assert feed.subscribers == 0  # each finished part left the feed: none keeps queueing sound
    parts = sorted(tmp_path.iterdir())
    assert parts == sink.segments and len(parts) == 3
    assert all(re.fullmatch(r"cam-\d{8}-\d{6}(_\d{3})?\.mp4", p.name) for p in parts), parts  # _001...: written faster than real time
    counts = [len(_pts_seconds(p)) for p in parts]
    assert counts == [50, 50, 25] and all(_pts_seconds(p)[0] == 0.0 for p in parts)
    second = list(decode_video_frames(parts[1]))
    bright = [i for i, f in enumerate(second) if f.to_ndarray(format="rgb24").mean() > 128]
    assert bright == [flash - 50]  # picture 25 of the second file: 1.0 s
    assert abs(_loudest_second(parts[1]) - 1.0) < 0.05  # the beep with it (AAC's priming shifts it a frame at most)
    with av.open(str(parts[0])) as first:
        assert max(np.abs(f.to_ndarray()).max() for f in first.decode(audio=0)) < 0.3  # the beep is not in the first part


def _loud_times(path, rate: int = 48000) -> list[float]:
    """Start times (s, on the file's clock) of the 5 ms windows of the first audio track louder than 0.3."""
    with av.open(str(path)) as c:
        frames = list(c.decode(audio=0))
    samples = np.concatenate([f.to_ndarray()[0] for f in frames])
    start, window = float(frames[0].pts * frames[0].time_base), rate // 200
    energy = np.abs(samples[: len(samples) // window * window]).reshape(-1, window).max(axis=1)
    return [round(start + i * window / rate, 3) for i in np.flatnonzero(energy > 0.3)]


@pytest.mark.parametrize("name", ["cam.mp4", "cam.mkv"])
def test_parts_join_without_repeating_or_losing_sound(tmp_path, name):
    """Sound frames of 64 ms straddle the joint at 2.0 s: a click 40 ms before it is the first part's
    alone, near its end, and a click 20 ms after it the second part's alone, at 0.02 s; the first part's
    sound lasts exactly its 2 s (MP4's own duration) and the second's starts at its 0."""
    from birefvid.io.live_audio import LiveAudioFeed

    rate, size = 48000, 3072
    feed = LiveAudioFeed(rate, "mono")
    feed.set_offset(0, 0.0)
    n = np.arange(round(3.0 * rate))
    signal = 0.02 * np.sin(2 * np.pi * 440 * n / rate)
    for click in (1.96, 2.02):
        signal[round(click * rate) : round((click + 0.01) * rate)] = 0.8
    pushes = []
    for i in range(len(n) // size):
        frame = av.AudioFrame.from_ndarray(signal[i * size : (i + 1) * size].astype(np.float32)[None], format="fltp", layout="mono")
        frame.sample_rate = rate
        pushes.append((i * size / rate, frame))
    sink = RecordingSink(tmp_path / name, width=W, height=H, fps=25, kind="rgb", audio=feed, segment_seconds=2.0)
    for i in range(70):
        while pushes and pushes[0][0] <= i / 25 + 0.05:
            feed.push(*pushes.pop(0))
        sink.send(np.full((H, W, 3), 30, np.uint8), i / 25)
    sink.close()
    first, second = sink.segments
    assert _loud_times(first) and all(1.95 <= t < 1.98 for t in _loud_times(first)), _loud_times(first)
    assert _loud_times(second) and all(0.0 <= t < 0.04 for t in _loud_times(second)), _loud_times(second)
    with av.open(str(second)) as c:
        assert next(c.decode(audio=0)).pts == 0
    if name.endswith(".mp4"):  # its edit list holds the sound's own length, AAC's padding left out
        with av.open(str(first)) as c:
            audio = c.streams.audio[0]
            assert float(audio.duration * audio.time_base) == pytest.approx(2.0, abs=1e-3)


def test_an_aborted_recording_in_parts_keeps_the_finished_parts(tmp_path):
    sink = RecordingSink(tmp_path / "cam.mkv", width=W, height=H, fps=FPS, kind="rgb", segment_seconds=1.0)
    for i in range(FPS * 2 + 5):  # two whole parts and the start of a third
        sink.send(_rgb(i), i / FPS)
    sink.abort()
    kept = sorted(tmp_path.iterdir())
    assert len(kept) == 2 and [len(_pts_seconds(p)) for p in kept] == [FPS, FPS]  # no temporary file, no partial part
    assert sink.segments == kept


def test_parts_never_replace_files_from_an_earlier_run(tmp_path, monkeypatch):
    import birefvid.io.record_sink as record_sink

    monkeypatch.setattr(record_sink.time, "time", lambda: 1_800_000_000.0)  # every part starts in the same second
    names = []
    for _run in range(2):
        sink = RecordingSink(tmp_path / "cam.mp4", width=W, height=H, fps=FPS, kind="rgb", segment_seconds=1.0)
        for i in range(FPS + 2):
            sink.send(_rgb(i), i / FPS)
        sink.close()
        names += [p.name for p in sink.segments]
    stamp = record_sink.time.strftime("%Y%m%d-%H%M%S", record_sink.time.localtime(1_800_000_000.0))
    assert names == [f"cam-{stamp}.mp4", f"cam-{stamp}_001.mp4", f"cam-{stamp}_002.mp4", f"cam-{stamp}_003.mp4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == names  # sorted by name is in time order


def test_parts_of_a_recording_named_as_long_as_the_disk_allows_are_kept(tmp_path, monkeypatch):
    """``--sink`` 78 Japanese characters + ``.mp4`` (238 bytes) with ``--segment``: the stamped part names
    grew past 255 bytes, and the run stopped at the second part with 'sinks: OSError: File name too long'."""
    import birefvid.io.record_sink as record_sink

    monkeypatch.setattr(record_sink.time, "time", lambda: 1_800_000_000.0)  # every part starts in the same second
    sink = RecordingSink(tmp_path / ("日" * 78 + ".mp4"), width=W, height=H, fps=FPS, kind="rgb", segment_seconds=1.0)
    for i in range(FPS + 2):
        sink.send(_rgb(i), i / FPS)
    sink.close()
    stamp = record_sink.time.strftime("%Y%m%d-%H%M%S", record_sink.time.localtime(1_800_000_000.0))
    names = [p.name for p in sink.segments]  # the name cut short, its stamp kept
    assert [n.lstrip("日") for n in names] == [f"-{stamp}.mp4", f"-{stamp}_001.mp4"] and all(len(os.fsencode(n)) <= 255 for n in names)
    assert sorted(tmp_path.iterdir()) == sink.segments


def test_parts_stay_in_time_order_when_the_clock_goes_back(tmp_path, monkeypatch, caplog):
    """The local clock steps back an hour (DST's end, an NTP step) between parts: the parts named after the
    earlier clock sorted before the parts recorded an hour before them. Now they take the last part's time
    with _001, _002 until the clock passes it, with one warning, and no file is replaced."""
    import birefvid.io.record_sink as record_sink

    base = 1_800_000_000.0
    walls = [base, base + 1, base + 2, base + 3 - 3600, base + 4 - 3600, base + 5]  # each part's start on the clock
    now = [base]
    monkeypatch.setattr(record_sink.time, "time", lambda: now[0])
    sink = RecordingSink(tmp_path / "cam.mkv", width=W, height=H, fps=FPS, kind="rgb", segment_seconds=1.0)
    for part, wall in enumerate(walls):
        now[0] = wall
        for i in range(FPS):
            sink.send(_rgb(i), part + i / FPS)
    sink.close()
    stamp = lambda wall: record_sink.time.strftime("%Y%m%d-%H%M%S", record_sink.time.localtime(wall))  # noqa: E731
    names = [p.name for p in sink.segments]
    assert names == [f"cam-{stamp(base)}.mkv", f"cam-{stamp(base + 1)}.mkv", f"cam-{stamp(base + 2)}.mkv",
                     f"cam-{stamp(base + 2)}_001.mkv", f"cam-{stamp(base + 2)}_002.mkv", f"cam-{stamp(base + 5)}.mkv"]  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == names  # sorted by name is in time order
    assert [len(_pts_seconds(p)) for p in sink.segments] == [FPS] * 6
    assert sum("the clock went back" in r.getMessage() for r in caplog.records) == 1


def test_a_part_that_cannot_be_finished_fails_the_next_picture_and_is_not_listed(tmp_path):
    """Matroska holds a part's pictures until it closes, so a full disk shows at the close, on the closing
    thread. That error came only at the next part's end (an hour later with --segment 3600, that part then
    thrown away too) and the lost part stayed in ``segments`` (the report). Now the next picture fails."""
    from fs_fixtures import full_dir

    rng = np.random.default_rng(0)
    with full_dir(tmp_path / "full", "48k") as folder:
        sink = RecordingSink(folder / "cam.mkv", width=W, height=H, fps=FPS, kind="rgb", segment_seconds=1.0)
        sent = 0
        with pytest.raises(SinkError, match="No space left on device"):
            for sent in range(10 * FPS):
                sink.send(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), sent / FPS)  # noise: ~40 KB a part
                time.sleep(0.005)  # a real camera's pace leaves the closing thread time to finish
        sink.abort()
        assert sent < 3 * FPS, f"the failed close was reported {sent / FPS:.1f} s in"
        kept = sorted(p for p in folder.iterdir())
        assert sink.segments == kept and not [p for p in kept if p.name.startswith(".")]


def test_segment_needs_a_recording_and_a_sensible_length(tmp_path, capsys):
    from birefvid.cli import main

    clip = tmp_path / "x.mp4"
    clip.write_bytes(b"")
    for argv, words in [
        (["--sink", "http://127.0.0.1:0", "--segment", "60"], "--segment splits a recording into files; give a file --sink too"),
        (["--sink", str(tmp_path / "r.mp4"), "--segment", "0.5"], "--segment is the length of each recording file in seconds, at least 1; got 0.5"),
        # inf passed and ended in "sinks: OverflowError" once the model had loaded
        (["--sink", str(tmp_path / "r.mp4"), "--segment", "inf"], "--segment is the length of each recording file in seconds, at least 1; got inf"),
        (["--sink", str(tmp_path / "r.mp4"), "--blur-sigma", "inf"], "--blur-sigma must be a positive number of pixels (e.g. 16), got inf"),
    ]:
        assert main(["live", "--source", str(clip), "--model", "tiny", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err


@pytest.mark.parametrize("what", ["source", "background", "file-url"])
def test_a_recording_over_the_file_the_run_plays_is_refused_before_it_starts(tmp_path, capsys, what):
    """`live --source clip.mp4 --sink clip.mp4 --overwrite` replaced the clip with its own recording, exit 0 (`process`
    refuses that, --overwrite or not); the same for a --background video, and for a source named as a file:// URL
    (live plays it as the file; the check passed every URL by)."""
    from birefvid.cli import main

    from media import make_video

    clip = make_video(tmp_path / "clip.mp4", n_frames=4, size=(64, 48)).path
    before = clip.read_bytes()
    argv = ["--source", str(clip)] if what == "source" else ["--source", f"file://{clip}"] if what == "file-url" else [
        "--source", str(make_video(tmp_path / "src.mp4", n_frames=4, size=(64, 48)).path), "--effect", "replace", "--background", str(clip)]  # fmt: skip
    assert main(["live", *argv, "--sink", str(clip), "--overwrite", "--model", "tiny", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    read = f"file://{clip}" if what == "file-url" else clip
    assert err == [f"birefvid: error: writing {clip} would replace {read}, which this run reads; write to another file or folder"]
    assert clip.read_bytes() == before


def test_preset_help_promises_only_presets_a_recording_takes(tmp_path, capsys):
    """A live recording is x264 (or VP9): NVENC's p1-p7 are refused there, so the help must not offer them."""
    from birefvid.cli import main

    with pytest.raises(SystemExit):
        main(["live", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    start = text.index("--preset PRESET encoder")
    preset_help = text[start:text.index("--segment", start)]
    assert "NVENC p1-p7" not in preset_help and "never NVENC" in preset_help
    with pytest.raises(SinkError, match="unknown preset 'p4' for libx264"):
        RecordingSink(tmp_path / "live.mp4", width=W, height=H, fps=FPS, kind="rgb", preset="p4")


def test_a_refused_recording_offers_only_what_live_records(tmp_path):
    """Live records files only, but its error offered "or a folder for a PNG sequence", and a folder was then
    refused as "a path without extension files"."""
    for name, kind, words in [("frames", "rgba", "cannot record rgba pictures to frames, which has no extension; record to .mov"),
                              ("cut.mp4", "rgba", ".mp4 holds no transparency"), ("cut.png", "rgb", "(.apng records one animated PNG)")]:
        with pytest.raises(SinkError) as caught:
            RecordingSink(tmp_path / name, width=W, height=H, fps=FPS, kind=kind)
        assert words in str(caught.value) and "folder" not in str(caught.value), str(caught.value)
    assert list(tmp_path.iterdir()) == []
