"""Live sources against real inputs: a paced video file, GStreamer's RTSP server (killed, stalled and
restarted underneath the reader), unreachable and silent addresses, a missing camera.

Each test takes a few seconds; every source is closed and no capture thread may outlive its test.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional

import av
import numpy as np
import pytest

from birefvid.errors import ConfigError, SourceError
from birefvid.io.live_base import CapturedFrame, LiveSource, NoFirstPicture
from birefvid.io.live_source import open_live_source
from birefvid.io.live_target import _dshow_video_devices, parse_source_spec
from birefvid.io.reconnect import Backoff, GaveUp, retry
from live_media import RtspServer, free_port, free_udp_port, make_clip, make_ts_stamped_twice, read_count, read_for, square_frame
from system_tools import need_binary


def _live_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("birefvid live")]


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    """Every test must stop its capture threads: close() joins them."""
    yield
    assert _live_threads() == []


@pytest.fixture(scope="module")
def clip2s(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("live") / "clip2s.mp4", seconds=2.0)


@pytest.fixture(scope="module")
def clip30s(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Long enough that the RTSP server never reaches its end during a test."""
    return make_clip(tmp_path_factory.mktemp("live") / "clip30s.mp4", seconds=30.0)


def _wait_state(src: LiveSource, state: str, within: float) -> float:
    """Seconds until ``src.state == state``, reading (and discarding) frames meanwhile; fails after ``within``."""
    t0 = time.monotonic()
    while src.state != state:
        assert time.monotonic() - t0 < within, f"state stayed {src.state!r}, expected {state!r}"
        src.read(0.02)
    return time.monotonic() - t0


def _read_until_ended(src: LiveSource, within: float) -> list[CapturedFrame]:
    """Every frame read until the source ends; fails after ``within`` s (a fixed reading time ended early on a loaded box)."""
    frames, t0 = [], time.monotonic()
    while (f := src.read(0.5)) is not None or src.state != "ended":  # an ended source may still hold its last frame
        assert time.monotonic() - t0 < within, f"state stayed {src.state!r} after {len(frames)} frames"
        if f is not None:
            frames.append(f)
    return frames


# ---------------------------------------------------------------- backoff policy


def test_backoff_doubles_caps_and_jitters() -> None:
    policy = Backoff(initial=0.5, maximum=4.0, rng=random.Random(1))
    assert [policy.ceiling(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    for n in range(1, 7):
        delays = [policy.delay(n) for _ in range(200)]
        assert policy.ceiling(n) / 2 <= min(delays) and max(delays) <= policy.ceiling(n)  # equal jitter
        assert max(delays) - min(delays) > policy.ceiling(n) / 4  # and it does jitter
    full = Backoff(initial=0.5, maximum=4.0, jitter="full", rng=random.Random(2))
    assert min(full.delay(4) for _ in range(200)) < 1.0
    assert not Backoff(max_retries=None).exhausted(10**6)
    assert Backoff(max_retries=2).exhausted(2) and not Backoff(max_retries=2).exhausted(1)
    with pytest.raises(ValueError):
        Backoff(initial=2.0, maximum=1.0)


def test_retry_counts_attempts_and_stops_on_the_event() -> None:
    calls = []

    def failing() -> None:
        calls.append(time.monotonic())
        raise OSError("refused")

    with pytest.raises(GaveUp, match=r"^refused \(gave up after 3 attempts\)$"):
        retry(failing, Backoff(initial=0.01, maximum=0.02, max_retries=2), threading.Event(), what="x")
    assert len(calls) == 3
    # a stream that was lost: every call is a retry
    calls.clear()
    with pytest.raises(GaveUp, match=r"after 2 attempts"):
        retry(failing, Backoff(initial=0.01, maximum=0.02, max_retries=2), threading.Event(), what="x", first_failure="eof")
    assert len(calls) == 2
    # a set stop event ends a long backoff sleep at once
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    t0 = time.monotonic()
    assert retry(failing, Backoff(initial=30, maximum=60), stop, what="x") is None
    assert time.monotonic() - t0 < 10  # the stop 0.2 s in, a loaded machine's late timer; the backoff's 30 s far off



def test_a_long_outage_logs_a_line_a_minute_not_one_a_retry(caplog) -> None:
    """A camera off for the night is retried every 5-10 s forever: a warning each time put thousands of
    lines a night into the journal, -q or not. The first retries are each told, a reason not yet given
    is too, and then one line every ``quiet_every`` seconds saying how long the input has been out."""
    reasons = iter(["Connection refused"] * 40 + ["404 Not Found"] + ["Connection refused"] * 40)

    def failing() -> None:
        raise OSError(next(reasons))

    caplog.set_level(logging.DEBUG, logger="birefvid.io.reconnect")
    t0 = time.monotonic()
    with pytest.raises(GaveUp):
        retry(failing, Backoff(initial=0.01, maximum=0.02, max_retries=80), threading.Event(), what="lost cam",
              first_failure="end of stream", reason_of=str, quiet_every=0.5)  # fmt: skip
    took = time.monotonic() - t0
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    every = [r.getMessage() for r in caplog.records if "; retry " in r.getMessage()]
    assert len(every) == 80, "each retry is still logged, at debug level (-v) once the warnings thin out"
    assert warned[:6] == [m for m in every[:6]] and "logged once every 0.5 s" in warned[5]
    assert any(m.startswith("lost cam: 404 Not Found; retry 42/80") for m in warned), "a new reason is told at once"
    assert sum("Connection refused" in m for m in warned[7:]) <= took / 0.5 + 1  # at most one line a quiet_every
    assert any("(out for " in m for m in warned), warned


# ---------------------------------------------------------------- specs


def test_the_readmes_sample_missing_says_how_to_make_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # a pip install: no samples/ folder
    with pytest.raises(SourceError, match=r"input not found: samples/scene\.mp4 \(.*`python -m birefvid\.data\.sample`"):
        open_live_source("samples/scene.mp4")


def test_spec_errors_are_one_line_and_immediate(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"input not found: .*nope\.mp4"):
        open_live_source(str(tmp_path / "nope.mp4"))
    with pytest.raises(SourceError, match=r"unsupported stream scheme ftp://"):
        open_live_source("ftp://127.0.0.1/x")
    with pytest.raises(ConfigError):
        open_live_source("rtsp://127.0.0.1/x", read_timeout=0)
    with pytest.raises(ConfigError):
        open_live_source("rtsp://127.0.0.1/x", max_retries=-1)
    target = parse_source_spec("rtsp://me:secret@127.0.0.1:8554/cam")
    assert "secret" not in target.name and target.options["rtsp_transport"] == "tcp"
    # an http(s) camera file is read as a file; MPEG-TS (.mts too) and HTTP-FLV names may be live streams
    kinds = {url: parse_source_spec(f"http://127.0.0.1/{url}").kind for url in ("a.mxf", "a.mov", "live.flv", "cam.mts", "cam.ts")}
    assert kinds == {"a.mxf": "file", "a.mov": "file", "live.flv": "network", "cam.mts": "network", "cam.ts": "network"}
    assert "fflags" not in target.options  # "nobuffer" would drop the first keyframe (see below)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="V4L2 device paths are Linux")
def test_an_icecast_ogg_mount_is_a_live_stream_not_a_file() -> None:
    """An Icecast camera at http://host:8000/cam.ogv is live, as an MPEG-TS .ts is: read as a file (once
    .ogv counted as a video file), a dropped connection ended the run ("source ended") where a stream reconnects."""
    from birefvid.job import is_stream_spec

    url = "http://127.0.0.1:8000/cam.ogv"
    assert parse_source_spec(url).kind == "network" and is_stream_spec(url)
    assert parse_source_spec("http://127.0.0.1/clip.mp4").kind == "file"


def test_missing_camera_fails_at_once() -> None:
    index = next(i for i in range(10, 200) if not os.path.exists(f"/dev/video{i}"))
    t0 = time.monotonic()
    with pytest.raises(SourceError) as info:
        open_live_source(str(index)).start()
    assert str(info.value) == f"camera {index} not found (/dev/video{index} does not exist)"
    with pytest.raises(SourceError, match=rf"camera /dev/video{index} not found"):
        open_live_source(f"/dev/video{index}")
    assert time.monotonic() - t0 < 0.5


def test_a_device_that_is_no_camera_is_one_line_saying_so(tmp_path: Path) -> None:
    """/dev/null given as the camera (it exists and is no camera), in a process of its own: OpenCV's native "[ WARN:0@0.4]
    global cap.cpp:212 open VIDEOIO(V4L2): ..." came before birefvid's error line, which said "cannot open /dev/null
    (busy, or no permission to read it?)": it is neither busy nor forbidden, and the line sent the user after a call
    app or the 'video' group. The line is alone now, and says what the device is not."""
    proc = subprocess.run([sys.executable, "-m", "birefvid", "live", "--source", "/dev/null", "--sink", f"http://127.0.0.1:{free_port()}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == ["birefvid: error: cannot open camera /dev/null: /dev/null is no camera (not a video4linux "
                                        "device: cameras are /dev/videoN)"], proc.stderr  # fmt: skip


# ---------------------------------------------------------------- asking a camera for a size and rate


@pytest.mark.parametrize(
    "platform, v4l2, spec, fmt, options, backend",
    [
        ("linux", True, "/dev/null", "v4l2", {"fflags": "nobuffer", "video_size": "1280x720", "framerate": "25"}, "av"),
        ("linux", False, "/dev/null", None, {}, "opencv"),  # PyAV's wheels: OpenCV's V4L2, asked through its properties
        ("darwin", True, "0", "avfoundation", {"framerate": "25", "video_size": "1280x720"}, "av"),  # 25 replaces the default 30
    ],
)
def test_a_camera_is_asked_for_the_size_and_rate_given(monkeypatch, platform, v4l2, spec, fmt, options, backend) -> None:
    import av

    monkeypatch.setattr(sys, "platform", platform)
    formats = set(av.formats_available) | {"v4l2"} if v4l2 else set(av.formats_available) - {"v4l2"}
    monkeypatch.setattr(av, "formats_available", formats)
    target = parse_source_spec(spec, camera_size=(1280, 720), camera_fps=25.0)
    assert (target.kind, target.format, target.options, target.backend) == ("camera", fmt, options, backend)
    assert (target.camera_size, target.camera_fps) == ((1280, 720), 25.0)
    assert parse_source_spec(spec).options.get("video_size") is None  # nothing asked: the driver's choice


def test_on_windows_each_index_opens_its_own_camera_when_two_share_a_name(monkeypatch) -> None:
    """Two webcams of one model are both "USB Camera" to DirectShow, and video=USB Camera opens the first:
    --source 1 showed camera 0. FFmpeg's video_device_number picks among devices of one name."""
    from birefvid.io import live_target

    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(live_target, "_list_dshow_video_devices", lambda: ["USB Camera", "OBS Virtual Camera", "USB Camera"])
    first, obs, second = (parse_source_spec(i) for i in "012")
    assert (first.url, first.format, first.options) == ("video=USB Camera", "dshow", {})
    assert (obs.url, obs.options) == ("video=OBS Virtual Camera", {})
    assert (second.url, second.options) == ("video=USB Camera", {"video_device_number": "1"})
    with pytest.raises(SourceError, match=r'camera 3 not found \(DirectShow lists 3 video device\(s\): "USB Camera", '):
        parse_source_spec("3")


def test_camera_settings_are_refused_for_streams_and_files(clip2s: Path) -> None:
    from birefvid.api import build_live_job
    from birefvid.errors import cli_naming

    with pytest.raises(ConfigError, match="camera_size and camera_fps apply to cameras, not to rtsp://me:\\*\\*\\*@"):
        parse_source_spec("rtsp://me:pw@127.0.0.1/cam", camera_fps=30.0)
    with cli_naming(), pytest.raises(ConfigError, match=f"^--camera-size applies to cameras \\(--source 0 or /dev/video0\\), not to {clip2s}$"):
        build_live_job(str(clip2s), "out.mp4", camera_size="1280x720")
    for bad, words in [("1280", "is not WxH"), ("1280x720x3", "is not WxH"), ("8x8", "is not a camera picture size")]:
        with pytest.raises(ConfigError, match=words):
            build_live_job("0", "out.mp4", camera_size=bad)
    with pytest.raises(ConfigError, match="camera_fps must be a frame rate above 0"):
        build_live_job("0", "out.mp4", camera_fps=-30)


def test_a_camera_that_gives_another_mode_is_used_with_a_warning(clip2s: Path, caplog) -> None:
    """OpenCV's capture takes what a driver allows; here a file capture, which allows no change at all."""
    import cv2

    from birefvid.frames import StreamInfo
    from birefvid.io.live_connections import ask_camera, check_camera_mode
    from birefvid.io.live_target import LiveTarget

    cap = cv2.VideoCapture(str(clip2s))
    try:
        ask_camera(cap, (1280, 720), 30.0)
        ok, bgr = cap.read()
    finally:
        cap.release()
    assert ok and bgr.shape == (120, 160, 3)  # what it delivers, unchanged
    target = LiveTarget("camera", "camera 0", "/dev/video0", camera_size=(1280, 720), camera_fps=30.0)
    with caplog.at_level(logging.WARNING, logger="birefvid.io.live_connections"):
        check_camera_mode(target, StreamInfo(width=160, height=120, time_base=Fraction(1, 24), average_rate=Fraction(24)))
        check_camera_mode(target, StreamInfo(width=1280, height=720, time_base=Fraction(1, 30), average_rate=Fraction(30)))  # as asked: nothing to say
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == ["camera 0 delivers 160x120, not 1280x720 and 24 fps, not 30: it does not offer what was asked "
                        "(v4l2-ctl --list-formats-ext lists what it does)"]  # fmt: skip
    caplog.clear()
    windows = LiveTarget("camera", "camera 0", "video=Integrated Camera", "dshow", camera_size=(1280, 720))
    with caplog.at_level(logging.WARNING, logger="birefvid.io.live_connections"):
        check_camera_mode(windows, StreamInfo(width=640, height=480, time_base=Fraction(1, 30), average_rate=Fraction(30)))
    assert 'ffmpeg -f dshow -list_options true -i "video=Integrated Camera" lists what it does' in caplog.text  # Windows has no v4l2-ctl


def test_dshow_device_list_is_parsed() -> None:
    log_text = (
        '[dshow @ 0000021] "Integrated Camera" (video)\n'
        '[dshow @ 0000021]   Alternative name "@device_pnp_\\\\?\\usb#vid_04f2"\n'
        '[dshow @ 0000021] "Microphone (Realtek Audio)" (audio)\n'
        '[dshow @ 0000021] "OBS Virtual Camera" (video, audio)\n'
        '[dshow @ 0000021] "Broken" (none)\n'
    )
    assert _dshow_video_devices(log_text) == ["Integrated Camera", "OBS Virtual Camera"]


# ---------------------------------------------------------------- files


def test_realtime_file_arrives_on_schedule_and_ends(clip2s: Path) -> None:
    """A file played in real time hands each frame over when its pts says, never ahead of it (not in a
    burst), and ends. A loaded 2-core box only ever makes frames late or lets the reader miss one: the
    bounds on lateness and drops are wide for that, the bound on earliness, where the bug shows, is not."""
    with open_live_source(str(clip2s), realtime=True) as src:
        info = src.start()
        assert (info.width, info.height, info.average_rate) == (160, 120, 24)
        frames = _read_until_ended(src, within=10.0)  # 10 s: room for a stalled capture thread, not the 2 s clip's pace
        assert src.state == "ended"
        t0 = time.monotonic()
        # at once: nothing more will come (a read that waited would take its 30 s, far from a loaded machine's pause)
        assert src.read(30.0) is None and time.monotonic() - t0 < 10
    assert src.frames_captured == 48 and len(frames) + src.dropped == 48
    # newest frame wins: a reader late by a frame's 42 ms loses one (0-3 of 48 seen under load, none idle); a burst loses most
    assert src.dropped <= 4, src.dropped
    indices = [f.frame.index for f in frames]
    assert indices == sorted(set(indices)) and indices[0] == 0 and indices[-1] == 47, indices
    assert {f.generation for f in frames} == {0}
    assert frames[0].stream_time == 0.0
    assert frames[-1].stream_time == pytest.approx(47 / 24, abs=1e-3)
    late = [(f.captured - frames[0].captured) - f.stream_time for f in frames]
    # The schedule starts when the reader takes frame 0, so frame 1 may come up to a frame (42 ms) early;
    # a burst brings frame 47 1.9 s early.
    assert -min(late) < 0.1, late
    # Late: a stalled capture thread restarts the schedule (past 0.25 s behind), so stalls add up; seen
    # 0.36 s on a 2-core box loaded 8 times over. Pacing twice too slow would make frame 47 2 s late.
    assert max(late) < 1.0, late
    assert 47 / 24 - 0.1 < frames[-1].captured - frames[0].captured < 47 / 24 + 1.0


def test_a_file_not_paced_waits_for_a_slow_reader_and_loses_no_frame(clip2s: Path) -> None:
    """Without realtime a file is read as fast as the reader takes it: a model warming up on the first
    frame (the sample played this way once showed 1 frame of 48) or a slow reader costs no frame."""
    with open_live_source(str(clip2s)) as src:
        src.start()
        first = src.read(5.0)
        time.sleep(0.5)  # the model's warm-up
        got = [first]
        while (f := src.read(1.0)) is not None:
            got.append(f)
            if len(got) < 6:
                time.sleep(0.05)
        assert src.state == "ended"
    assert [f.frame.index for f in got] == list(range(48)) and src.dropped == 0


def test_slow_reader_gets_the_newest_frame_and_drops_are_counted(clip2s: Path) -> None:
    with open_live_source(str(clip2s), realtime=True) as src:
        src.start()
        got = []
        while (f := src.read(1.0)) is not None:
            got.append(f)
            time.sleep(0.25)  # a model far slower than the camera
        assert src.state == "ended"
    assert 6 <= len(got) <= 12
    assert src.frames_captured == 48
    assert src.dropped + len(got) == 48 and src.dropped >= 30
    indices = [f.frame.index for f in got]
    assert indices == sorted(indices) and got[-1].frame.index == 47
    # newest wins: what a read returns is at most a frame or two old
    assert all(time.monotonic() - f.captured < 1.0 for f in got[-1:])
    assert all(b - a >= 4 for a, b in zip(indices[1:-1], indices[2:-1]))


def test_looping_file_keeps_going_with_increasing_stream_time(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip1s.mp4", seconds=1.0)
    with open_live_source(str(clip), realtime=True, loop=True) as src:
        info = src.start()
        assert info.frame_count is None and info.duration is None
        # read until the third restart, not for a fixed time: a loaded machine lets the reader miss frames (newest wins),
        # 43 of 62 in 2.6 s seen; 20 s is room for a stalled capture thread, not the 3 s of stream time
        frames, t0 = [], time.monotonic()
        while not frames or frames[-1].generation < 3:
            assert time.monotonic() - t0 < 20, f"{len(frames)} frames, generations {sorted({f.generation for f in frames})}"
            if (f := src.read(0.5)) is not None:
                frames.append(f)
        took = time.monotonic() - t0
        assert src.state == "live"
    times = [f.stream_time for f in frames]
    assert all(b > a for a, b in zip(times, times[1:]))
    # played in real time, each loop too, never ahead (a loaded machine only makes it later)
    assert took >= times[-1] - times[0] - 0.05, (took, times[0], times[-1])
    assert {f.generation for f in frames} >= {0, 1, 2}
    # the loop joins seamlessly: the frames count on across restarts (24 a loop), each one frame interval after the one before
    assert all(f.generation == f.frame.index // 24 and f.stream_time == pytest.approx(f.frame.index / 24, abs=1e-3) for f in frames), [
        (f.generation, f.frame.index, f.stream_time) for f in frames]  # fmt: skip
    assert src.reconnects == 0


# ---------------------------------------------------------------- RTSP


def test_rtsp_stream_is_pulled(clip30s: Path) -> None:
    with RtspServer(clip30s) as server, open_live_source(server.url) as src:
        t0 = time.monotonic()
        info = src.start()
        first = src.read(2.0)
        to_first = time.monotonic() - t0
        assert first is not None and to_first < 3.0, to_first
        assert (info.width, info.height) == (160, 120) and first.frame.image.shape == (120, 160, 3)
        assert first.frame.image[..., 2].mean() > 60  # the blue background came through as blue
        # 24 pictures waited for (1 s at 24 fps; ~36 came in 1.5 s idle), not counted in a fixed 1.5 s: a loaded machine's
        # reader misses some (the newest picture wins), which says nothing of the pull
        frames = read_count(src, 24, within=20.0)
        assert src.state == "live" and src.reconnects == 0
    assert len(frames) >= 24
    times = [first.stream_time] + [f.stream_time for f in frames]
    assert all(b > a for a, b in zip(times, times[1:]))
    # stream time runs with the wall clock (seconds, not time-base ticks: those would be off by factors); a loaded
    # CI box delivers the first frames in a burst after the handshake, 0.33 s late of 1.5 s once, hence 0.6
    assert times[-1] - times[0] == pytest.approx(frames[-1].captured - first.captured, abs=0.6)
    print(f"rtsp: first frame {to_first:.2f} s after start()")


def test_rtsp_camera_that_refuses_tcp_is_received_over_udp(clip30s: Path, caplog) -> None:
    """A camera that answers RTP over TCP with 461 (FFmpeg: "Protocol not supported") was retried over TCP
    forever; it is asked for UDP instead, at once."""
    with RtspServer(clip30s, udp_only=True) as server, caplog.at_level(logging.INFO, logger="birefvid.io.live_connections"):
        with open_live_source(server.url) as src:
            t0 = time.monotonic()
            info = src.start(timeout=10)
            first = src.read(2.0)
            answered = time.monotonic() - t0
            frames = read_count(src, 12, within=20.0)  # waited for, not counted in a fixed second (a loaded reader misses some)
            # at once, not after TCP tries: start()'s 10 s would run out first (the bound is what a loaded machine's
            # handshake leaves below them)
            assert answered < 8 and src.reconnects == 0
    assert (info.width, info.height) == (160, 120) and first is not None and len(frames) >= 12
    assert any("refuses RTP over TCP: receiving it over UDP" in r.getMessage() for r in caplog.records)


def test_rtsp_stream_whose_only_keyframe_is_its_first_is_pulled(tmp_path: Path) -> None:
    # FFmpeg's "nobuffer" flag threw away the packets read while probing, the first keyframe with
    # them: a stream with a long GOP (here one keyframe in 3 s) gave no picture until the next one
    clip = make_clip(tmp_path / "one_gop.mp4", seconds=3.0, gop=1000)
    with RtspServer(clip) as server, open_live_source(server.url, max_retries=0) as src:
        src.start()
        first = src.read(2.0)
        assert first is not None and first.stream_time == 0.0
        assert len(read_count(src, 12, within=20.0)) >= 12  # waited for: a loaded reader misses some of a second's 24


def test_an_rtsp_streams_pixel_shape_is_known(tmp_path: Path) -> None:
    """A D1 camera's 12:11 pixels (4:3 at 704x576), which its recordings must keep."""
    clip = tmp_path / "d1.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=24, options={"preset": "ultrafast", "bf": "0"})
        stream.width, stream.height, stream.pix_fmt = 176, 144, "yuv420p"
        stream.codec_context.sample_aspect_ratio = Fraction(12, 11)
        for i in range(48):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((144, 176, 3), 5 * i, np.uint8), format="rgb24")))
        out.mux(stream.encode(None))
    with RtspServer(clip) as server, open_live_source(server.url, max_retries=0) as src:
        assert src.start(timeout=10).sample_aspect_ratio == Fraction(12, 11)


def test_rtsp_server_restart_reconnects_without_restarting_the_source(clip30s: Path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="birefvid")
    server = RtspServer(clip30s).start()
    try:
        with open_live_source(server.url, backoff_initial=0.2, backoff_max=0.5) as src:
            src.start()
            before = read_for(src, 0.8)
            assert before
            t_kill = time.monotonic()
            server.stop()  # SIGKILL: the connection drops as in a crash
            _wait_state(src, "reconnecting", within=3.0)
            time.sleep(0.5)  # a few refused attempts
            assert src.state == "reconnecting" and src.reconnects == 0
            server.start()
            t_up = time.monotonic()
            _wait_state(src, "live", within=8.0)
            t_live = time.monotonic()
            after = read_count(src, 15, within=20.0)  # waited for, not counted in a fixed second: a loaded reader misses some
            assert src.reconnects == 1 and src.state == "live"
    finally:
        server.stop()
    assert {f.generation for f in before} == {0}
    assert after and {f.generation for f in after} == {1}
    assert len(after) >= 15
    times = [f.stream_time for f in before + after]
    assert all(b > a for a, b in zip(times, times[1:]))  # the restarted clip did not go back in time
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert retries and all(m.startswith(f"lost {server.url}: ") for m in retries)
    assert any("end of stream" in m or "Connection" in m for m in retries)
    print(f"rtsp: live {t_live - t_up:.2f} s after the server was back ({t_live - t_kill:.2f} s after the kill)")


def _read_across_a_restart(first: Path, then: Path) -> tuple[RtspServer, list, list]:  # type: ignore[type-arg]
    """An RTSP server serving ``first``, read for a moment, restarted with ``then`` and read again after the reconnect:
    the server, the pictures before and those after."""
    server = RtspServer(first).start()
    try:
        with open_live_source(server.url, backoff_initial=0.2, backoff_max=0.5) as src:
            src.start()
            before = read_for(src, 0.8)
            server.stop()
            _wait_state(src, "reconnecting", within=3.0)
            server.clip = then
            server.start()
            _wait_state(src, "live", within=8.0)
            after = read_for(src, 1.0)
    finally:
        server.stop()
    return server, before, after

def test_a_stream_back_at_another_size_is_scaled_to_the_first(tmp_path: Path, caplog) -> None:
    """An RTSP server restarted with a clip of another size and rate: the pictures after the
    reconnect come at the run's first size, with one warning (they failed every sink, which ended
    the run and discarded its recording)."""
    caplog.set_level(logging.WARNING, logger="birefvid")
    small = make_clip(tmp_path / "small.mp4", seconds=20.0, size=(160, 120), fps=24)
    large = make_clip(tmp_path / "large.mp4", seconds=20.0, size=(200, 150), fps=15)
    server, before, after = _read_across_a_restart(small, large)
    assert before and after and {f.generation for f in after} == {1}
    assert {f.frame.image.shape for f in before + after} == {(120, 160, 3)}
    assert all(f.frame.coverage is None for f in before + after)  # the same shape, scaled: no bars
    warned = [r.getMessage() for r in caplog.records if "scaled" in r.getMessage()]
    assert warned and set(warned) == {f"{server.url}: the pictures are now 200x150, the run's are 160x120; scaled to 160x120"}


def test_a_stream_back_in_another_shape_keeps_it_inside_bars(tmp_path: Path, caplog) -> None:
    """A 4:3 camera's server restarted with a 16:9 clip: its pictures were stretched to 4:3 without a word."""
    caplog.set_level(logging.WARNING, logger="birefvid")
    narrow = make_clip(tmp_path / "narrow.mp4", seconds=20.0, size=(160, 120), fps=24)
    wide = make_clip(tmp_path / "wide.mp4", seconds=20.0, size=(160, 90), fps=24)
    server, before, after = _read_across_a_restart(narrow, wide)
    assert before and after and {f.generation for f in after} == {1}
    assert {f.frame.image.shape for f in before + after} == {(120, 160, 3)}
    for f in after:  # 160x90 in the middle, black bars of 15 rows above and below, transparent (alpha 0)
        image, coverage = f.frame.image, f.frame.coverage
        assert not image[:15].any() and not image[105:].any() and image[16:104].mean() > 20
        assert coverage is not None and not coverage[:15].any() and not coverage[105:].any() and (coverage[15:105] == 255).all()
    assert all(f.frame.coverage is None for f in before)  # opaque pictures carry no alpha
    warned = [r.getMessage() for r in caplog.records if "shape is kept" in r.getMessage()]
    assert warned == [f"{server.url}: the pictures are now 160x90, the run's are 160x120, another shape; the shape is kept, "
                      "scaled to 160x90 inside 160x120 with black bars"]  # fmt: skip


def test_a_stream_back_with_other_pixel_shapes_keeps_the_shape_shown(tmp_path: Path, caplog) -> None:
    """An RTSP server restarted with a clip of the same size but 4:3 pixels (160x90 shown 213x90, wider): only the size was
    compared after a reconnect, so its pictures went on as they came, shown squeezed with the run's square pixels."""
    caplog.set_level(logging.WARNING, logger="birefvid")
    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    for name, sar in (("square", "1"), ("wide", "4/3")):
        subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", f"color=c=red:size=160x90:rate=24:duration=20,setsar={sar}",
                        "-c:v", "libx264", "-g", "24", "-bf", "0", "-pix_fmt", "yuv420p", str(tmp_path / f"{name}.mp4")],
                       check=True)  # fmt: skip
    server, before, after = _read_across_a_restart(tmp_path / "square.mp4", tmp_path / "wide.mp4")
    assert before and after and {f.generation for f in after} == {1}
    assert {f.frame.image.shape for f in before + after} == {(90, 160, 3)}
    assert all(f.frame.coverage is None for f in before)
    for f in after:  # 213x90 shown, fitted into 160x90 square pixels: 160x68 with bars of 11 rows above and below
        image, coverage = f.frame.image, f.frame.coverage
        assert not image[:11].any() and not image[79:].any() and (image[12:78, :, 0] > 200).all()
        assert coverage is not None and not coverage[:11].any() and not coverage[79:].any() and (coverage[11:79] == 255).all()
    warned = [r.getMessage() for r in caplog.records if "shape is kept" in r.getMessage()]
    assert warned == [f"{server.url}: the pictures are now 160x90 (pixels 4:3), the run's are 160x90, another shape; the shape is "
                      "kept, scaled to 160x68 inside 160x90 with black bars"]  # fmt: skip


def test_a_stream_whose_pixel_shape_changes_midway_keeps_the_shape_shown(tmp_path: Path, caplog) -> None:
    """An RTSP stream of 16:9 square pixels that goes on at the same size with 4:3 pixels (wider, 64:27): PyAV's frames
    do not say their pixel shape, and the pictures after the change were shown squeezed to 16:9."""
    caplog.set_level(logging.WARNING, logger="birefvid")
    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    for name, sar, colour in (("a", "1", "red"), ("b", "4/3", "blue")):
        subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", f"color=c={colour}:size=160x90:rate=25:duration=2,setsar={sar}",
                        "-c:v", "libx264", "-g", "25", "-bf", "0", "-pix_fmt", "yuv420p", "-f", "mpegts", str(tmp_path / f"{name}.ts")],
                       check=True)  # fmt: skip
    (tmp_path / "list.txt").write_text(f"file '{tmp_path / 'a.ts'}'\nfile '{tmp_path / 'b.ts'}'\n")
    clip = tmp_path / "clip.mp4"
    subprocess.run([ffmpeg, "-v", "error", "-f", "concat", "-safe", "0", "-i", str(tmp_path / "list.txt"), "-c", "copy", str(clip)], check=True)
    server = RtspServer(clip).start()
    try:
        with open_live_source(server.url) as src:
            src.start()
            frames = read_for(src, 3.5)
    finally:
        server.stop()
    red = [f.frame.image for f in frames if f.frame.image[45, 80, 0] > 200]
    blue = [f.frame.image for f in frames if f.frame.image[45, 80, 2] > 200]
    assert red and blue and all(image.shape == (90, 160, 3) for image in red + blue)
    assert all(image[:, :, 0].min() > 200 for image in red)  # the first part fills the picture
    for image in blue:  # 160x68 in the middle, black above and below
        assert not image[:11].any() and not image[79:].any() and image[12:78, :, 2].min() > 200
    warned = [r.getMessage() for r in caplog.records if "shape is kept" in r.getMessage()]
    assert warned and "from 160x90 to 160x90 (pixels 4:3) at frame 50" in warned[0], warned


def test_a_udp_stream_whose_clock_leaps_an_hour_ahead_goes_on_as_after_a_cut(tmp_path: Path) -> None:
    """An MPEG-TS sender restarted on the same UDP port (no reconnect: UDP has no connection) went on
    with its clock an hour ahead: the pictures' stream time leapt an hour, so a 40 s recording lasted
    3616 s and held an hour of encoded silence. A leap past the wall clock is now a cut, as a step
    back is, and the sound of the new clock follows its pictures instead of landing an hour late."""
    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    parts = []
    for i, offset in enumerate((0, 3600)):
        part = tmp_path / f"sender{i}.ts"
        subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=24:duration=1",
                        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1", "-c:v", "libx264", "-preset", "ultrafast",
                        "-bf", "0", "-g", "12", "-c:a", "aac", "-output_ts_offset", str(offset), "-f", "mpegts", str(part)], check=True)  # fmt: skip
        parts.append(part.read_bytes())
    data, port = b"".join(parts), free_udp_port()

    def send() -> None:  # the two senders, one after the other, paced to ~2 s as -re would
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
            chunks = [data[i : i + 1316] for i in range(0, len(data), 1316)]
            for chunk in chunks:
                out.sendto(chunk, ("127.0.0.1", port))
                time.sleep(2.0 / len(chunks))

    with open_live_source(f"udp://127.0.0.1:{port}", audio=True, read_timeout=3.0) as src:
        sender = threading.Thread(target=send)
        sender.start()
        src.start(timeout=10)
        sound = src.audio.subscribe()  # type: ignore[union-attr]  # the feed keeps the last seconds for it
        frames = read_for(src, 3.0)
        sender.join(timeout=10)
        frames += read_for(src, 1.0)  # a busy machine paces the sender late: what it sent last is read too
        assert src.reconnects == 0
    times = [f.stream_time for f in frames]
    # more than one sender's 24 frames: both were read, across the leap (the first ones sent may come before FFmpeg
    # listens, more of them on a loaded machine: 30 of the 48 were read there, where this said > 30)
    assert len(frames) > 24 and all(b > a for a, b in zip(times, times[1:]))
    assert max(b - a for a, b in zip(times, times[1:])) < 0.5 and times[-1] < 3.0, times
    heard = [t for t, _, _ in sound.take_until(None, {0: 0.0})]
    assert len(heard) > 50 and max(heard) < 3.0, heard[-5:]


def _send_paced(data: bytes, port: int, seconds: float, until: Optional[threading.Event] = None) -> None:
    """Send ``data`` to 127.0.0.1:``port`` in MPEG-TS datagrams spread over ``seconds``, as ``-re`` would
    (stopping early once ``until`` is set)."""
    chunks = [data[i : i + 1316] for i in range(0, len(data), 1316)]
    t0 = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for i, chunk in enumerate(chunks):
            if until is not None and until.is_set():
                return
            out.sendto(chunk, ("127.0.0.1", port))
            time.sleep(max(0.0, t0 + seconds * (i + 1) / len(chunks) - time.monotonic()))


def test_a_camera_that_stamps_two_pictures_a_tick_keeps_the_wall_clocks_timeline(tmp_path: Path) -> None:
    """A 24 fps camera whose timestamps tick at 12 Hz (each one twice): every repeat was taken for a
    cut and moved the clock on by a frame, so 4 s of camera lasted 4.9 s in a recording (and its
    sound stretched with it). The repeated picture now goes between its neighbours, on the camera's clock."""
    data, port = make_ts_stamped_twice(tmp_path / "twice.ts", 4.0).read_bytes(), free_udp_port()
    with open_live_source(f"udp://127.0.0.1:{port}", read_timeout=3.0) as src:
        sender = threading.Thread(target=_send_paced, args=(data, port, 4.0))
        sender.start()
        src.start(timeout=10)
        frames = read_for(src, 4.5)
        sender.join()
    times = [f.stream_time for f in frames]
    assert len(frames) > 60 and all(b > a for a, b in zip(times, times[1:]))
    span, camera = times[-1] - times[0], (frames[-1].frame.index - frames[0].frame.index) / 24
    assert abs(span - camera) < 0.15, f"{camera:.2f} s of camera pictures span {span:.2f} s of the recording's clock"
    assert min(np.diff(times)) > 0.03  # every picture shows for about its frame, none squeezed to a tick


def test_a_path_the_server_does_not_have_names_the_likely_causes(clip30s: Path, caplog) -> None:
    """A typo in the URL's path (the server answers 404) said only "Server returned 404 Not Found",
    on every retry and not at all in the line a run bounded by ``--duration`` ended with. It is still
    retried (a media server answers 404 until its camera publishes), but every line names the path
    and what to check, the final one included."""
    caplog.set_level(logging.WARNING, logger="birefvid")
    with RtspServer(clip30s) as server:
        url = server.url.replace("/cam", "/cma")
        with open_live_source(url, max_retries=1, backoff_initial=0.1, backoff_max=0.2) as src, pytest.raises(SourceError) as gave_up:
            src.start()
        with open_live_source(url, backoff_initial=0.1, backoff_max=0.2) as src, pytest.raises(NoFirstPicture) as waited:
            src.start(timeout=1.0)
    cause = "404 Not Found: the server has no stream at /cma (a typo in the URL's path? a media server such as MediaMTX"
    assert str(gave_up.value).startswith(f"cannot reach {url}: {cause}")
    assert (waited.value.last_failure or "").startswith(cause)
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert retries and all(cause in m for m in retries)


def test_an_mjpeg_camera_over_http_keeps_the_wall_clocks_timeline() -> None:
    """An IP camera's MJPEG over HTTP carries no timestamps; FFmpeg made them up at 25 fps, so a
    10 fps camera's pictures came 0.04 s apart and its recording played 2.5x too fast. Such pictures
    are now timed by the wall clock. The camera is birefvid's own preview (MJPEG at /stream.mjpg)."""
    from birefvid.io.http_preview import HttpPreviewSink

    camera, done = HttpPreviewSink("127.0.0.1", 0), threading.Event()

    def shoot() -> None:  # 10 pictures a second, until the test is done
        for i in range(100):
            camera.send(square_frame(i, (96, 64)), i / 10)
            if done.wait(0.1):
                return

    shooter = threading.Thread(target=shoot)
    shooter.start()
    try:
        with open_live_source(camera.url + "stream.mjpg", read_timeout=3.0) as src:
            src.start(timeout=10)
            frames = read_for(src, 2.5)
    finally:
        done.set()
        shooter.join()
        camera.close()
    assert len(frames) > 15
    span, wall = frames[-1].stream_time - frames[0].stream_time, frames[-1].captured - frames[0].captured
    assert abs(span - wall) < 0.2, f"{len(frames)} pictures over {wall:.2f} s span {span:.2f} s of the recording's clock"


def test_a_stream_whose_path_goes_away_mid_run_is_not_called_a_typo(clip30s: Path, caplog) -> None:
    """A stream that played and then answers 404 (a media server whose camera stopped publishing) is
    retried with a line saying the path no longer has a stream, not asking about a typo in the URL."""
    caplog.set_level(logging.WARNING, logger="birefvid")
    server = RtspServer(clip30s).start()
    elsewhere = RtspServer(clip30s, port=server.port, path="/other")
    try:
        with open_live_source(server.url, backoff_initial=0.2, backoff_max=0.5) as src:
            src.start()
            assert read_for(src, 0.5)
            server.stop()
            _wait_state(src, "reconnecting", within=3.0)
            elsewhere.start()  # the server is back, without the camera's path
            t0 = time.monotonic()
            while not any("404" in r.getMessage() for r in caplog.records):
                assert time.monotonic() - t0 < 8.0, [r.getMessage() for r in caplog.records]
                time.sleep(0.1)
    finally:
        server.stop()
        elsewhere.stop()
    lost = [r.getMessage() for r in caplog.records if "404" in r.getMessage()]
    assert all("the server no longer has a stream at /cam (its publisher stopped?)" in m and "typo" not in m for m in lost), lost



def test_a_camera_that_comes_up_after_the_start_says_so(clip30s: Path, caplog) -> None:
    """A camera still booting when the run starts: its "cannot reach" warnings stopped when it came up, and
    nothing said so, so under -q (a journal) a run that got its camera read like one that hung. A line
    says the camera is connected, as "reconnected" does mid-run."""
    caplog.set_level(logging.WARNING, logger="birefvid")
    server = RtspServer(clip30s, path="/cam", auth="admin:s3cret")
    url = f"rtsp://admin:s3cret@127.0.0.1:{server.port}/cam"
    later = threading.Timer(1.0, server.start)
    later.start()
    try:
        with open_live_source(url, backoff_initial=0.2, backoff_max=0.5) as src:
            src.start(timeout=30)
            assert read_for(src, 0.5)
    finally:
        later.join()
        server.stop()
    said = [r.getMessage() for r in caplog.records]
    failed = sum("cannot reach" in m for m in said)
    assert failed >= 1, said
    shown = f"rtsp://admin:***@127.0.0.1:{server.port}/cam"
    assert said[-1] == f"{shown}: connected after {failed} failed tr{'y' if failed == 1 else 'ies'}", said
    assert not any("s3cret" in m for m in said)

def test_unreachable_url_gives_up_with_one_line(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="birefvid")
    url = f"rtsp://127.0.0.1:{free_port()}/cam"
    src = open_live_source(url, max_retries=2, backoff_initial=0.1, backoff_max=0.2)
    t0 = time.monotonic()
    with pytest.raises(SourceError) as info:
        src.start()
    assert time.monotonic() - t0 < 2.0
    message = str(info.value)
    assert message == f"cannot reach {url}: Connection refused (gave up after 3 attempts)"
    assert src.error is info.value
    logged = [r.getMessage() for r in caplog.records]
    assert [m.split("; ")[1].split(" in ")[0] for m in logged if "retry" in m] == ["retry 1/2", "retry 2/2"]
    src.close()


@pytest.mark.parametrize("login,hint", [("admin:wrong@", "check the user name and password"), ("", "add them to the URL")])
def test_a_refused_login_fails_at_once_and_hides_the_password(clip30s: Path, caplog, login: str, hint: str) -> None:
    """A wrong password (401) was retried forever, as a lost stream is: it never gets right, and many
    cameras lock the account after a few failed logins. It ends the start with one line instead."""
    caplog.set_level(logging.WARNING, logger="birefvid")
    with RtspServer(clip30s, auth="admin:s3cret") as server:
        url = server.url.replace("rtsp://", f"rtsp://{login}")
        src = open_live_source(url)  # retried forever by default
        t0 = time.monotonic()
        with pytest.raises(SourceError) as info:
            src.start(timeout=20)
        assert time.monotonic() - t0 < 5
        src.close()
        message = str(info.value)
        assert message.startswith(f"cannot open {server.url.replace('rtsp://', 'rtsp://admin:***@' if login else 'rtsp://')}: ")
        assert "401 Unauthorized" in message and hint in message and "wrong" not in message
        assert not [r for r in caplog.records if "retry" in r.getMessage()]
        with open_live_source(server.url.replace("rtsp://", "rtsp://admin:s3cret@")) as right:
            right.start(timeout=10)
            assert right.read(2.0) is not None


def test_srt_without_libsrt_fails_at_once_saying_what_to_do() -> None:
    url = f"srt://127.0.0.1:{free_port()}"
    src = open_live_source(url, max_retries=3, backoff_initial=10)  # a retry would wait 10 s; the answer is at once
    t0 = time.monotonic()
    try:
        with pytest.raises(SourceError) as info:
            src.start()
    finally:
        src.close()
    if "Protocol not found" not in str(info.value):
        pytest.skip(f"this PyAV's FFmpeg has SRT ({info.value})")  # PyAV's PyPI wheels do not
    assert time.monotonic() - t0 < 5, "a protocol the build lacks is retried"
    assert str(info.value).startswith(f"{url}: this FFmpeg build cannot open it") and "MediaMTX" in str(info.value)


class _SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never says a word (a hung camera); stops by itself."""

    def __init__(self, max_seconds: float = 20.0) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen()
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._end = time.monotonic() + max_seconds
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while time.monotonic() < self._end:
            try:
                self._conns.append(self._sock.accept()[0])
            except OSError:
                if self._sock.fileno() < 0:
                    return

    def close(self) -> None:
        self._end = 0
        self._thread.join(2)
        for c in self._conns:
            c.close()
        self._sock.close()


def test_silent_server_times_out_instead_of_hanging() -> None:
    silent = _SilentServer()
    try:
        url = f"rtsp://127.0.0.1:{silent.port}/cam"
        src = open_live_source(url, open_timeout=0.5, max_retries=1, backoff_initial=0.1, backoff_max=0.1)
        t0 = time.monotonic()
        with pytest.raises(SourceError, match=r"^cannot reach .*: no answer within 0\.5 s \(gave up after 2 attempts\)$"):
            src.start()
        # two tries of 0.5 s and a 0.1 s backoff; hanging on the silent server would never end
        assert time.monotonic() - t0 < 15
        src.close()
    finally:
        silent.close()


def _close_time(src: LiveSource) -> float:
    t0 = time.monotonic()
    src.close()
    return time.monotonic() - t0


def test_close_is_prompt_while_blocked_opening() -> None:
    silent = _SilentServer()
    try:
        src = open_live_source(f"rtsp://127.0.0.1:{silent.port}/cam", open_timeout=30, read_timeout=30)
        outcome: list[Optional[BaseException]] = []

        def starter() -> None:
            try:
                src.start()
                outcome.append(None)
            except SourceError as e:
                outcome.append(e)

        waiter = threading.Thread(target=starter)
        waiter.start()
        time.sleep(0.5)
        assert src.state == "starting"
        assert _close_time(src) < 10  # against the open's 30 s: a loaded machine's pause is no hang
        waiter.join(10)
        assert not waiter.is_alive() and isinstance(outcome[0], SourceError)
        assert src.state == "closed" and _live_threads() == []
    finally:
        silent.close()


def test_close_is_prompt_while_blocked_reading_a_stalled_stream(clip30s: Path) -> None:
    with RtspServer(clip30s) as server:
        src = open_live_source(server.url, read_timeout=30)
        src.start()
        assert read_for(src, 0.5)
        os.kill(server._proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]  # connection open, no data
        try:
            time.sleep(0.5)
            src.read(0.1)
            assert src.read(0.3) is None and src.state == "live"  # blocked in the network read
            assert _close_time(src) < 10  # against the read's 30 s: a loaded machine's pause is no hang
            assert _live_threads() == []
        finally:
            os.kill(server._proc.pid, signal.SIGCONT)  # type: ignore[union-attr]


def test_a_frozen_server_is_lost_after_the_read_timeout_not_twice_it(clip30s: Path) -> None:
    """A camera that froze with its connection open (SIGSTOP here) handed over one stale picture when
    FFmpeg's wait ran out, which started the wait again: the stream counted as lost only after twice
    ``--read-timeout``, and the stale picture was shown as live."""
    with RtspServer(clip30s) as server:
        src = open_live_source(server.url, read_timeout=1.5, backoff_initial=20, backoff_max=20)
        try:
            src.start()
            assert read_for(src, 0.5)
            os.kill(server._proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]
            frozen = time.monotonic()
            late = []
            while src.state == "live" and time.monotonic() - frozen < 5.0:
                if src.read(0.02) is not None:
                    late.append(time.monotonic() - frozen)
            lost_after = time.monotonic() - frozen
            # twice the read timeout (the bug) is 3.0 s or more; under it, 1.3 s of room for a loaded box's late thread
            assert src.state == "reconnecting" and lost_after < 2.8, (src.state, lost_after)
            assert not [t for t in late if t > 0.5], late  # no picture from before the freeze shown seconds later
        finally:
            os.kill(server._proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
            src.close()


def test_a_stream_whose_pictures_stop_while_its_sound_goes_on_is_lost(tmp_path: Path) -> None:
    """An MPEG-TS camera whose pictures stopped while its sound went on stayed "live" on a frozen
    picture for as long as the sound came (for ever, and the recording's part was never committed):
    the read timeout counted sound packets as data. It is now counted from the last picture."""
    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    sound = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration={}", "-c:a", "aac"]
    both, alone = tmp_path / "both.ts", tmp_path / "sound.ts"
    subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=24:duration=1",
                    *[a.format(1) for a in sound], "-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-g", "12",
                    "-streamid", "0:256", "-streamid", "1:257", "-f", "mpegts", str(both)], check=True)  # fmt: skip
    subprocess.run([ffmpeg, "-nostdin", "-v", "error", *[a.format(30) for a in sound], "-streamid", "0:257",
                    "-output_ts_offset", "1", "-f", "mpegts", str(alone)], check=True)  # fmt: skip
    port = free_udp_port()

    def send() -> None:  # a second of pictures and sound, then 30 s of sound alone on the same PIDs, until it is lost
        _send_paced(both.read_bytes(), port, 1.0)
        _send_paced(alone.read_bytes(), port, 30.0, until=lost)

    lost = threading.Event()
    sender = threading.Thread(target=send)
    with open_live_source(f"udp://127.0.0.1:{port}", audio=True, read_timeout=1.0, backoff_initial=20, backoff_max=20) as src:
        sender.start()
        try:
            src.start(timeout=10)
            # lost 1 s (the read timeout) after the last picture; the sound goes on for 30 s more, so a bound of 15 s is
            # far from both (3 s was, against 4 s of sound, near a loaded machine's late packets and thread)
            _wait_state(src, "reconnecting", within=15.0)
        finally:
            lost.set()
            sender.join()


def test_close_is_prompt_while_waiting_to_reconnect(clip30s: Path) -> None:
    server = RtspServer(clip30s).start()
    try:
        src = open_live_source(server.url, backoff_initial=20, backoff_max=20)
        src.start()
        server.stop()
        _wait_state(src, "reconnecting", within=3.0)
        threads_during = _live_threads()
        assert len(threads_during) == 1
        assert _close_time(src) < 10  # against the backoff's 20 s: a loaded machine's pause is no hang
        assert not threads_during[0].is_alive() and src.state == "closed"
        src.close()  # idempotent
    finally:
        server.stop()


def test_a_reconnect_made_while_the_run_shuts_down_is_not_left_out_of_its_report(clip2s: Path, caplog) -> None:
    """A reconnect completed after the run took its final figures (the sinks still finishing) was logged,
    "reconnected (92 so far)", while the report said 91: now the count stands once the report takes it."""
    src = open_live_source(str(clip2s))
    pumped, release = [], threading.Event()

    def pump_lost_once(conn):  # a picture, then the connection drops; a later connection plays until closed
        pumped.append(conn)
        if len(pumped) > 1:
            src._stop.wait()
            return None
        src._publish(np.zeros((src.info.height, src.info.width, 3), np.uint8), 0.0)
        return "connection reset by peer"

    def reconnect_late(reason):  # the stream answers again only after the run has ended
        release.wait(5)
        return src._connect()

    src._pump, src._reconnect = pump_lost_once, reconnect_late
    with caplog.at_level(logging.WARNING, logger="birefvid.io.live_source"):
        src.start(timeout=5)
        _wait_state(src, "reconnecting", 5)
        reported = src.final_reconnects()  # the runner's final figures
        release.set()
        src._thread.join(1.0)  # the capture thread does what it does with the late connection
        src.close()
    assert reported == 0 and src.reconnects == 0
    assert "reconnected" not in caplog.text


@pytest.mark.parametrize("landing", ["before it began", "as it began"])
def test_a_stop_landing_while_the_capture_thread_starts_is_the_stop(clip2s: Path, monkeypatch, landing: str) -> None:
    """Ctrl-C or SIGTERM landing in the capture thread's ``start()`` (the main thread waits there for the thread to
    begin) left a thread join() refuses ("cannot join thread before it is started"): the source's close raised that
    RuntimeError in place of the stop, a traceback and exit 1 instead of 130 or 143, with the thread still running."""
    real_start = threading.Thread.start

    def start_then_signal(thread: threading.Thread) -> None:
        if not thread.name.startswith("birefvid live"):
            return real_start(thread)
        if landing == "as it began":  # as Thread.start() does, up to its wait for the thread's first steps
            bootstrap = thread._bootstrap  # type: ignore[attr-defined]
            with threading._active_limbo_lock:  # type: ignore[attr-defined]
                threading._limbo[thread] = thread  # type: ignore[attr-defined]
            threading._start_new_thread(lambda: (time.sleep(0.05), bootstrap()), ())  # type: ignore[attr-defined]
        raise KeyboardInterrupt  # the signal handler's raise, within start()

    monkeypatch.setattr(threading.Thread, "start", start_then_signal)
    with pytest.raises(KeyboardInterrupt):
        with open_live_source(str(clip2s), realtime=True) as src:
            src.start()
    monkeypatch.undo()
    deadline = time.monotonic() + 3
    while _live_threads() and time.monotonic() < deadline:  # the thread that began sees the stop and ends by itself
        time.sleep(0.05)
