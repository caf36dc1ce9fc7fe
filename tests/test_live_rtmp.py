"""``birefvid live --sink rtmp://...``: publishing to a real RTMP server (nginx with its RTMP module),
as a streamer sends to YouTube Live or Twitch.

The server records what it is sent, so the tests read back exactly what reached it: the composed
pictures, the sound in sync, every picture the run showed. Also: the stream comes back when the
server restarts, a server that accepts and never answers holds nothing up (the stream goes through
an ffmpeg child), a dead server or a missing ffmpeg is one error line, and the stream key never
appears on screen.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from live_e2e_tools import (
    GREEN, LiveRun, check_sound_in_sync, decode_video, run_live_cli, run_live_in_process, scene_clip, share, stats_lines, wait_for,
)  # fmt: skip
from live_media import free_port, make_flash_clip
from nginx_rtmp import NginxRtmp
from system_tools import need_binary

FPS = 24
FAST_MODEL = ["--model", "tiny", "--device", "cpu", "--resolution", "64"]
STARTUP = 90.0  # python + torch + model start on a loaded 2-core machine
KEY = "s3cret-k3y"  # a stream key: must never be printed
PASSWORD = "pa55-w0rd"  # an rtmp://USER:PASSWORD@ login: neither


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("rtmp_clips")
    return {
        "scene": scene_clip(folder / "scene20s.mp4", 20.0, (160, 120), FPS),
        # the picture turns white and a tone plays from 1.5 to 2.5 s: where they land shows the sync
        "flash": make_flash_clip(folder / "flash.mp4", seconds=6.0, flash=(1.5, 2.5)),
    }


@pytest.fixture()
def ffmpeg() -> str:
    return need_binary("ffmpeg", "ffmpeg")


def _frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_rtmp_output_reaches_a_real_server_with_its_sound_in_sync(tmp_path: Path, clips: dict[str, Path], ffmpeg: str,
                                                                 monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    """A file with sound to an RTMP server and to a recording at once: both carry the sound in sync with the pictures
    (the recording's check stands for tests/test_live_e2e.py's file-with-sound run, which would repeat this one).
    Run in this process: what is checked is what reached the server and the files, and the stream's ffmpeg child is a
    process of its own either way; a process of birefvid's own would add seconds of start-up on a loaded machine."""
    with NginxRtmp(tmp_path / "server") as server:
        args = ["--source", clips["flash"], "--realtime", "--effect", "blur", *FAST_MODEL, "--duration", "3.5",
                "--sink", f"{server.url}/{KEY}", "--sink", "rec.mkv", "--report", "report.json"]  # fmt: skip
        code, err = run_live_in_process(args, tmp_path, monkeypatch, capfd)
        time.sleep(0.5)  # the server closes its recording when the publisher has gone
    assert code == 0, err
    assert KEY not in err, err
    [received] = server.recorded(KEY)
    with av.open(str(received)) as c:
        assert [s.codec_context.name for s in c.streams.video] == ["h264"]
    check_sound_in_sync(received, "aac")
    report_text = (tmp_path / "report.json").read_text()
    assert KEY not in report_text  # reports get attached to bug reports; a key lets anyone stream on the channel
    report = json.loads(report_text)
    assert report["sinks"][0] == report["job"]["sinks"][0] == f"{server.url}/***", report["sinks"]
    shown = report["frames_shown"]
    assert _frames(tmp_path / "rec.mkv") == shown
    check_sound_in_sync(tmp_path / "rec.mkv", "aac")
    [stream] = report["streams"]
    assert stream["taken"] and stream["reconnects"] == 0 and stream["sink"] == f"{server.url}/***", stream
    assert shown - 3 <= stream["pictures_sent"] <= shown, (stream, shown)
    assert "no connection worked" not in err, err
    # every picture reached the server, unless the stream's own thread fell behind on a loaded machine
    assert shown - 3 <= _frames(received) <= shown, (_frames(received), shown)
    assert not _children_sending_to(server.port), "an ffmpeg child outlived the run"


def test_rtmp_output_comes_back_after_the_server_restarts(tmp_path: Path, clips: dict[str, Path], ffmpeg: str) -> None:
    server = NginxRtmp(tmp_path / "server", unique=True).start()
    stats = tmp_path / "s.jsonl"
    args = ["--source", clips["scene"], "--realtime", "--effect", "green", *FAST_MODEL, "--duration", "9",
            "--sink", f"{server.url}/{KEY}", "--sink", "rec.mp4", "--stats-json", stats, "--stats-every", "0.5"]  # fmt: skip
    try:
        with LiveRun(args, tmp_path) as run:
            # stats lines count the frames of their own interval
            wait_for(lambda: sum(s["frames_shown"] for s in stats_lines(stats)) >= 2 * FPS, STARTUP, "2 s shown", run=run)
            server.stop()  # the server goes away mid-run, then comes back on the same port
            time.sleep(1.0)
            server.start()
            code = run.wait(60)
        time.sleep(0.5)
    finally:
        server.stop()
    err = run.stderr()
    assert code == 0, err
    assert KEY not in err, err
    first, *later = server.recorded(KEY)
    assert later, f"nothing was published after the restart: {server.recorded(KEY)}"
    after = _frames(later[-1])
    assert after >= 2 * FPS, f"only {after} frames reached the restarted server"
    _, pictures = decode_video(later[-1])
    assert 0.3 < share(pictures[-1], GREEN) < 0.97  # composed pictures, not a black or frozen stream
    # the recording lost nothing meanwhile
    final = stats_lines(stats)[-1]
    assert final.get("final"), final
    assert _frames(tmp_path / "rec.mp4") == final["frames_shown"]


def _silent_server(seconds: float) -> tuple[int, threading.Event]:
    """A TCP port on 127.0.0.1 that accepts connections and never says a word (a hung RTMP server), for ``seconds``."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        held = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not done.is_set():
            try:
                held.append(listener.accept()[0])
            except socket.timeout:
                pass
        for conn in held:
            conn.close()
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1], done


# A write stuck on the silent server holds for WRITE_TIMEOUT_S (5 s) at least, so a run it holds up shows nothing for
# that long; a loaded 2-core machine pauses the run for a fraction of that. Frames shown are counted a stats line at a
# time rather than against a total for the run (6 s of the 8 at 24 fps, which a loaded machine came within 23 frames of).
HELD_UP_S = 4.0


def _assert_pictures_kept_coming(lines: list[dict], run_seconds: float) -> None:
    """The run's stats lines (every 0.5 s) say that pictures were shown all along: each line came on time (the display
    loop was never held) and no stretch of lines as long as ``HELD_UP_S`` showed none (nor was the sinks' thread)."""
    assert sum(line["seconds"] for line in lines) >= run_seconds - 1, lines  # the lines cover the run
    late = [line for line in lines if line["seconds"] >= HELD_UP_S]
    assert not late, f"the display loop was held up: {late}"
    without = longest = 0.0
    for line in lines:
        without = without + line["seconds"] if line["frames_shown"] == 0 else 0.0
        longest = max(longest, without)
    print(f"longest stats line {max(line['seconds'] for line in lines):.2f} s, longest without a picture {longest:.2f} s")
    assert longest < HELD_UP_S, f"no picture shown for {longest:.1f} s: {lines}"


def _children_sending_to(port: int) -> list[str]:
    """Command lines of running processes that name ``port`` in an rtmp:// address (ffmpeg children)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"rtmp://127.0.0.1:{port}/" in cmdline and "birefvid.cli" not in cmdline:
            found.append(cmdline)
    return found


def test_a_silent_rtmp_server_holds_up_neither_the_run_nor_its_recording(tmp_path: Path, clips: dict[str, Path], ffmpeg: str) -> None:
    """PyAV's own RTMP output froze the whole process on such a server; through the ffmpeg child it
    costs that stream alone: the recording keeps every picture and the run ends on time."""
    port, done = _silent_server(120)
    stats = tmp_path / "s.jsonl"
    args = ["--source", clips["scene"], "--realtime", "--effect", "green", *FAST_MODEL, "--duration", "8",
            "--sink", f"rtmp://127.0.0.1:{port}/live/{KEY}", "--sink", "rec.mp4", "--report", "report.json",
            "--stats-json", stats, "--stats-every", "0.5"]  # fmt: skip
    try:
        with LiveRun(args, tmp_path) as run:
            code = run.wait(STARTUP + 30)
            took = time.monotonic() - run.started
    finally:
        done.set()
    err = run.stderr()
    assert code == 2, err  # a stream that never worked: exit 2 at the end, the run and its recording went on
    assert KEY not in err, err
    assert "/live/***" in err and ("timed out" in err or "read nothing" in err), err  # the stream said why it failed
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ended_by"] == "duration"
    assert _frames(tmp_path / "rec.mp4") == report["frames_shown"]
    lines = [line for line in stats_lines(stats) if not line.get("final")]
    print(f"silent rtmp server: run took {took:.1f} s, {report['frames_shown']} frames shown, stats {report['stats']}")
    _assert_pictures_kept_coming(lines, run_seconds=8)
    assert not _children_sending_to(port), "an ffmpeg child outlived the run"


def test_a_stream_its_server_never_took_is_named_at_the_end_of_the_run(tmp_path: Path, clips: dict[str, Path], ffmpeg: str,
                                                                      monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    """A mistyped application or a refused key: the run and its recording go on (the server may
    come round), but the end of the run says plainly that nothing was streamed, in an error line and exit 2, and the
    report too.
    In this process, its lines as the command prints them (a real process's are test_a_key_with_a_trailing_slash_...'s)."""
    with NginxRtmp(tmp_path / "server") as server:
        args = ["--source", clips["scene"], "--realtime", "--effect", "green", *FAST_MODEL, "--duration", "4",
                "--sink", f"rtmp://127.0.0.1:{server.port}/nosuchapp/{KEY}", "--sink", "rec.mp4", "--report", "report.json"]  # fmt: skip
        code, err = run_live_in_process(args, tmp_path, monkeypatch, capfd)
    assert code == 2, err  # an output asked for that never worked: a failed run for a script (it was exit 0)
    report = json.loads((tmp_path / "report.json").read_text())
    [stream] = report["streams"]
    assert not stream["taken"] and stream["last_error"], stream
    error = [line for line in err.splitlines() if line.startswith("birefvid: error:")]
    assert len(error) == 1 and f"rtmp://127.0.0.1:{server.port}/nosuchapp/***: no connection worked" in error[0], err
    assert KEY not in err, err
    assert _frames(tmp_path / "rec.mp4") == report["frames_shown"]
    assert not server.recorded(KEY)


def test_bad_rtmp_outputs_are_one_error_line(tmp_path: Path, clips: dict[str, Path], ffmpeg: str, monkeypatch: pytest.MonkeyPatch,
                                           capfd: pytest.CaptureFixture[str]) -> None:
    base = ["--source", clips["scene"], *FAST_MODEL, "--duration", "1", "--sink", "rec.mp4"]
    port = free_port()
    code, err = run_live_in_process([*base, "--sink", f"rtmp://127.0.0.1:99999/live/{KEY}"], tmp_path, monkeypatch, capfd)
    lines = [line for line in err.splitlines() if line.startswith("birefvid: error:")]
    assert code == 2 and len(lines) == 1, err
    assert "rtmp://127.0.0.1:99999/live/***" in lines[0] and "port is not a number" in lines[0], lines[0]
    assert KEY not in err and "Traceback" not in err, err

    code, err = run_live_in_process([*base, "--sink", "rtmp://127.0.0.1/live"], tmp_path, monkeypatch, capfd)
    assert code == 2 and "stream key" in err and "Traceback" not in err, err

    no_ffmpeg = tmp_path / "empty-bin"
    no_ffmpeg.mkdir()
    code, err = run_live_in_process([*base, "--sink", f"rtmp://127.0.0.1:{port}/live/{KEY}"], tmp_path, monkeypatch, capfd, {"PATH": str(no_ffmpeg)})
    assert code == 2 and "ffmpeg program" in err and KEY not in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty-bin"], "a failed run left files"


def test_stream_keys_are_hidden_wherever_the_address_is_shown() -> None:
    from birefvid.io.rtmp_sink import redacted
    from birefvid.job import carries_sound

    assert redacted("rtmp://a.rtmp.youtube.com/live2/abcd-1234-efgh") == "rtmp://a.rtmp.youtube.com/live2/***"
    assert redacted("rtmps://live-api-s.facebook.com:443/rtmp/FB-123?s_bl=1&s_sc=9") == "rtmps://live-api-s.facebook.com:443/rtmp/***"
    assert redacted("rtmp://user:pw@host/app/key") == "rtmp://user:***@host/app/***"
    assert redacted("rtmp://host/app") == "rtmp://host/app"  # no key to hide
    assert redacted("rtmp://[::1]:1935/live/key") == "rtmp://[::1]:1935/live/***"
    assert carries_sound("rtmp://host/app/key") and carries_sound("rtmps://host/app/key")


def test_the_stream_keeps_under_the_bitrate_services_allow(tmp_path: Path, ffmpeg: str) -> None:
    """Noise, the hardest picture to compress, sent for 3 s at 640x360 and 30 fps: what reaches the
    server keeps within the cap (0.1 bit a pixel a frame, ~690 kbit/s here) a service enforces, where
    x264 left alone would send tens of Mbit/s."""
    import numpy as np

    from birefvid.io.rtmp_sink import RtmpPublishSink, stream_kbps

    w, h, fps = 640, 360, 30
    rng = np.random.default_rng(0)
    with NginxRtmp(tmp_path / "server") as server:
        sink = RtmpPublishSink(f"{server.url}/{KEY}", width=w, height=h, fps=fps, kind="rgb")
        for i in range(3 * fps):
            sink.send(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), i / fps)
        sink.close()
        time.sleep(0.5)
    [received] = server.recorded(KEY)
    with av.open(str(received)) as c:
        sizes = [p.size for p in c.demux(video=0) if p.size]
    assert len(sizes) == 3 * fps
    # after the first second, which the one-second buffer may spend at once (services allow it too)
    kbps = sum(sizes[fps:]) * 8 / 2 / 1000
    print(f"noise at {w}x{h}: {kbps:.0f} kbit/s after the first second, against a cap of {stream_kbps(w, h, fps)}")
    assert kbps <= 1.1 * stream_kbps(w, h, fps), kbps


def _publish_for(sink, seconds: float, fps: int = 15, size: tuple[int, int] = (160, 120)) -> int:  # type: ignore[no-untyped-def]
    """Send grey pictures to ``sink`` at ``fps`` for ``seconds`` of wall time, as the runner does; the number sent."""
    import numpy as np

    w, h = size
    picture = np.full((h, w, 3), 128, np.uint8)
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < seconds:
        sink.send(picture, sent / fps)
        sent += 1
        time.sleep(1 / fps)
    return sent


def test_a_server_that_refuses_the_stream_is_not_reported_reconnected(tmp_path: Path, ffmpeg: str, caplog: pytest.LogCaptureFixture) -> None:
    """The ffmpeg child connects only once it has pictures, so opening one always worked: a server
    that refused the stream (an application it does not serve, as with a mistyped address) was
    "reconnected" and lost again twice a second, three warnings each time, forever. Now a new stream
    counts only once the server has taken it, and the attempts back off as for a server that is down.
    A login in the address stays out of the warnings: ffmpeg names the address it was given in its error
    (rtmp://pub:PASSWORD@host/nosuchapp: Input/output error), which every warning line quoted whole."""
    from birefvid.io.live_sinks import open_live_sink

    with NginxRtmp(tmp_path / "server") as server:
        url = f"rtmp://pub:{PASSWORD}@127.0.0.1:{server.port}/nosuchapp/{KEY}"  # nginx serves only "live"
        with caplog.at_level("WARNING"):
            sink = open_live_sink(url, width=160, height=120, fps=15, kind="rgb")
            try:
                _publish_for(sink, 8.0)
            finally:
                sink.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert not any("reconnected" in w for w in warnings), warnings
    assert sink.reconnects == 0  # type: ignore[attr-defined]
    # attempts 0.5, 1, 2, 3 s apart at most: a few lines in 8 s, not the dozens of before
    assert len(warnings) <= 12, warnings
    assert all(KEY not in w and PASSWORD not in w for w in warnings), warnings
    assert any("pub:***@" in w for w in warnings), warnings  # ffmpeg's own words were quoted, the login hidden
    assert not _children_sending_to(server.port), "an ffmpeg child outlived the stream"


def test_a_server_that_is_down_gets_the_stream_back_once_it_returns(tmp_path: Path, ffmpeg: str, caplog: pytest.LogCaptureFixture) -> None:
    """While the server is down no ffmpeg child is started for nothing (the port is asked first, as
    for the first connection), and the stream is said to be back once, when the server took it."""
    from birefvid.io.live_sinks import open_live_sink

    server = NginxRtmp(tmp_path / "server", unique=True).start()
    try:
        with caplog.at_level("WARNING"):
            sink = open_live_sink(f"{server.url}/{KEY}", width=160, height=120, fps=15, kind="rgb")
            try:
                _publish_for(sink, 1.0)
                server.stop()
                _publish_for(sink, 6.0)
                server.start()
                wait = time.monotonic() + 30
                while sink.reconnects == 0 and time.monotonic() < wait:  # type: ignore[attr-defined]
                    _publish_for(sink, 0.5)
                _publish_for(sink, 1.0)
            finally:
                sink.close()
    finally:
        time.sleep(0.5)
        server.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert sink.reconnects == 1, warnings  # type: ignore[attr-defined]
    assert sum("reconnected" in w for w in warnings) == 1, warnings
    assert len(warnings) <= 12, warnings
    assert len(server.recorded(KEY)) == 2, server.recorded(KEY)  # before and after: no publishing in between


def test_stream_keys_are_hidden_after_a_trailing_slash_and_in_a_repeated_sink() -> None:
    """A key pasted with a slash after it (rtmp://host/app/KEY/) was shown whole in every message,
    and a --sink given twice showed its key in the error line."""
    from birefvid.api import build_live_job
    from birefvid.errors import ConfigError
    from birefvid.io.live_sinks import open_live_sinks
    from birefvid.io.rtmp_sink import redacted

    assert redacted(f"rtmp://a.rtmp.youtube.com/live2/{KEY}/") == "rtmp://a.rtmp.youtube.com/live2/***"
    url = f"rtmp://127.0.0.1:1935/live/{KEY}"
    with pytest.raises(ConfigError) as job_error:
        build_live_job("0", [url, url]).validate()
    with pytest.raises(ConfigError) as sinks_error:
        open_live_sinks([url, url], width=64, height=64, fps=30, kind="rgb")
    for error in (job_error, sinks_error):
        assert KEY not in str(error.value) and "/live/***" in str(error.value), str(error.value)


def test_a_key_with_a_trailing_slash_is_hidden_in_the_error_line(tmp_path: Path, clips: dict[str, Path], ffmpeg: str) -> None:
    """In a real process: the one error line of a run that never started, as the command prints it (a port that is no
    number: a server that is only down is waited for, its lines hiding the key as well, see the late-server test)."""
    args = ["--source", clips["scene"], *FAST_MODEL, "--duration", "1", "--sink", f"rtmp://127.0.0.1:99999/live/{KEY}/"]
    code, err = run_live_cli(args, tmp_path, timeout=STARTUP)
    assert code == 2 and "rtmp://127.0.0.1:99999/live/***" in err, err
    assert KEY not in err, err


def test_a_stopped_stream_frees_its_encoder_at_once(ffmpeg: str) -> None:
    """Each reconnection left the old stream's x264 encoder (its threads and frame buffers) alive
    until a full garbage collection, which a long live run may not see for hours: the pipe held the
    stream through its error hook, a cycle. A stopped stream is now freed as soon as it is dropped."""
    import gc
    import weakref

    import numpy as np

    from birefvid.errors import SinkError
    from birefvid.io.rtmp_sink import RtmpPublishSink

    port = free_port()  # nothing listens: the child fails after its first pictures
    gc.disable()
    try:
        sink = RtmpPublishSink(f"rtmp://127.0.0.1:{port}/live/{KEY}", width=160, height=120, fps=15, kind="rgb")
        deadline = time.monotonic() + 60
        with pytest.raises(SinkError):
            while time.monotonic() < deadline:
                sink.send(np.zeros((120, 160, 3), np.uint8), 0.0)
                time.sleep(0.02)
        sink.abort()
        sink._reader.join(10)  # the child's pipes are closed: its readers end
        sink._progress.join(10)
        freed = weakref.ref(sink)
        del sink
        assert freed() is None, "the stopped stream is still held (only a garbage collection would free it)"
    finally:
        gc.enable()


def _command_lines_naming(text: str) -> list[str]:
    """Command lines of running processes that contain ``text`` (what ``ps`` shows every user)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(cmdline)
    return found


@pytest.mark.skipif(os.name != "posix", reason="the key goes to ffmpeg through a pipe on POSIX only")
def test_the_stream_key_stays_out_of_the_ffmpeg_childs_command_line(tmp_path: Path, ffmpeg: str) -> None:
    """The ffmpeg child got the whole address on its command line, which every user of the machine
    reads with ps (/proc/PID/cmdline): the stream key, which lets anyone broadcast on the channel,
    was on show for the whole stream. It now goes to the child through a pipe; the server still gets it."""
    from birefvid.io.live_sinks import open_live_sink

    key = f"k3y-{os.getpid()}-{free_port()}"  # unique: no other process names it
    with NginxRtmp(tmp_path / "server") as server:
        sink = open_live_sink(f"{server.url}/{key}", width=160, height=120, fps=15, kind="rgb")
        try:
            _publish_for(sink, 1.0)
            children = _children_sending_to(server.port)
            leaks = _command_lines_naming(key)
            _publish_for(sink, 1.0)
        finally:
            sink.close()
        time.sleep(0.5)
        recorded = server.recorded(key)
    assert children, "no ffmpeg child was seen sending"
    assert not leaks, leaks
    assert len(recorded) == 1 and _frames(recorded[0]) >= 10, recorded


@pytest.mark.skipif(os.name != "posix", reason="the address goes to the child through a pipe on POSIX only")
def test_a_login_in_the_address_stays_out_of_every_command_line(tmp_path: Path, ffmpeg: str) -> None:
    """rtmp://USER:PASSWORD@HOST/APP/KEY: FFmpeg takes a login only inside the address, so the ffmpeg child had it (and
    the key) on its command line, which every user of the machine reads. A PyAV child now reads the address from a
    pipe; the server still gets the stream, whole."""
    from birefvid.io.live_sinks import open_live_sink

    key, password = f"k3y-{os.getpid()}-{free_port()}", f"pw-{os.getpid()}-{free_port()}"  # unique: no other process names them
    with NginxRtmp(tmp_path / "server") as server:  # nginx asks for no login: the address with one must still publish
        sink = open_live_sink(f"rtmp://pub:{password}@127.0.0.1:{server.port}/live/{key}", width=160, height=120, fps=15, kind="rgb")
        try:
            _publish_for(sink, 1.0)
            child = sink._current._child  # type: ignore[attr-defined]  # the RTMP stream inside its reconnecting wrapper
            children = [Path(f"/proc/{child.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()] if child and child.poll() is None else []
            leaks = _command_lines_naming(password) + _command_lines_naming(key)
            _publish_for(sink, 1.0)
            assert sink._current.confirmed  # type: ignore[attr-defined]  # the child said the server took the stream
        finally:
            sink.close()
        time.sleep(0.5)
        recorded = server.recorded(key)
    assert not leaks, leaks
    assert children and "rtmp_push.py" in children[0], children
    assert len(recorded) == 1 and _frames(recorded[0]) >= 20, recorded


@pytest.mark.skipif(os.name != "posix", reason="the address goes to the child through a pipe on POSIX only")
def test_a_silent_server_behind_a_login_address_fails_the_stream_within_its_timeout(ffmpeg: str) -> None:
    """The PyAV child has no -rw_timeout (PyAV opens the address without options): a server that accepts and never
    answers would hold it for ever; its alarm ends it after the open timeout, and the stream fails saying so."""
    from birefvid.errors import SinkError
    from birefvid.io.rtmp_sink import RtmpPublishSink

    port, done = _silent_server(30)
    sink = RtmpPublishSink(f"rtmp://pub:{PASSWORD}@127.0.0.1:{port}/live/{KEY}", width=160, height=120, fps=15, kind="rgb", open_timeout=1.0)
    started = time.monotonic()
    try:
        with pytest.raises(SinkError, match=r"the server did not take the stream within 1 s") as failed:
            while time.monotonic() - started < 15:
                sink.send(np.zeros((120, 160, 3), np.uint8), time.monotonic() - started)
                time.sleep(1 / 15)
        # the alarm (1 s), then the write that finds the child gone; without it the sends go on for the loop's 15 s
        assert time.monotonic() - started < 12
        assert PASSWORD not in str(failed.value) and KEY not in str(failed.value)
        assert sink.confirmed is False
    finally:
        sink.abort()
        done.set()


def test_stream_keys_are_split_off_the_address_as_ffmpeg_splits_them() -> None:
    from birefvid.io.rtmp_sink import key_options

    assert key_options("rtmp://a.rtmp.youtube.com/live2/abcd-1234") == (
        "rtmp://a.rtmp.youtube.com/live2", {"rtmp_app": "live2", "rtmp_playpath": "abcd-1234"})
    assert key_options("rtmps://live-api-s.facebook.com:443/rtmp/FB-1?s_bl=1") == (
        "rtmps://live-api-s.facebook.com:443/rtmp", {"rtmp_app": "rtmp", "rtmp_playpath": "FB-1?s_bl=1"})
    assert key_options("rtmp://h/app/instance/key")[1] == {"rtmp_app": "app/instance", "rtmp_playpath": "key"}
    assert key_options("rtmp://h/live/clip.mp4")[1]["rtmp_playpath"] == "mp4:clip.mp4"
    assert key_options("rtmp://h/live/name.flv")[1]["rtmp_playpath"] == "name"
    assert key_options(f"rtmp://h/live/{KEY}/") == ("rtmp://h/", {"rtmp_app": f"live/{KEY}"})
    assert key_options("rtmp://h/app") == ("rtmp://h/app", {})  # no key


def _send_with_a_tone(sink, feed, fps: int, seconds: int = 2, size: tuple[int, int] = (160, 120), sound_late_s: float = 0.0) -> None:  # type: ignore[no-untyped-def]
    """``seconds`` of grey pictures to ``sink``, with a 440 Hz tone on every channel of ``feed`` a little ahead of them
    (as a capture gives it), then the sink closed. ``sound_late_s``: the sound, stamped with its pictures, reaches
    the feed only from that picture time on (a microphone with a large buffer, a camera whose sound lags)."""
    rate, layout = feed.rate, feed.layout
    channels = av.AudioLayout(layout).nb_channels
    feed.set_offset(0, 0.0)  # as the runner does at the first picture
    done = 0
    for i in range(seconds * fps):
        while i / fps >= sound_late_s and done < round((i / fps + 0.1) * rate):  # captured a little ahead of the pictures
            frame = av.AudioFrame(format="fltp", layout=layout, samples=1024)
            t = (done + np.arange(1024)) / rate
            for plane in frame.planes[:channels]:
                data = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32).tobytes()
                plane.update(data + bytes(plane.buffer_size - len(data)))
            frame.sample_rate = rate
            feed.push(done / rate, frame)
            done += 1024
        sink.send(np.full((size[1], size[0], 3), 128, np.uint8), i / fps)
    sink.close()


@pytest.mark.skipif(os.name != "posix", reason="the address goes to the child through a pipe on POSIX only")
def test_a_login_address_carries_the_sound_too(tmp_path: Path, ffmpeg: str) -> None:
    """The PyAV child behind a login address opened its input after 32 bytes: a stream whose sound came first (it is
    captured ahead of the pictures) had its video still 0x0, the child failed ("Invalid argument") and the server got
    nothing, every reconnect alike. Pictures and sound both reach the server now."""
    from birefvid.io.live_audio import LiveAudioFeed
    from birefvid.io.rtmp_sink import RtmpPublishSink

    fps = 15
    feed = LiveAudioFeed(48000, "stereo")
    with NginxRtmp(tmp_path / "server") as server:
        url = server.url.replace("rtmp://", f"rtmp://pub:{PASSWORD}@", 1)
        sink = RtmpPublishSink(f"{url}/{KEY}", width=160, height=120, fps=fps, kind="rgb", audio=feed)
        _send_with_a_tone(sink, feed, fps)
        time.sleep(0.5)
        recorded = server.recorded(KEY)
    assert len(recorded) == 1 and recorded[0].stat().st_size > 0, recorded
    with av.open(str(recorded[0])) as c:
        assert [(s.codec_context.name, s.codec_context.channels) for s in c.streams.audio] == [("aac", 2)]
        loud = np.abs(np.concatenate([f.to_ndarray().ravel() for f in c.decode(audio=0)])).mean()
    assert loud > 0.1, loud
    assert _frames(recorded[0]) == 2 * fps

def test_a_surround_sources_sound_reaches_the_server_as_stereo(tmp_path: Path, ffmpeg: str, caplog: pytest.LogCaptureFixture) -> None:
    """A film's 5.1 played live to RTMP: PyAV's FFmpeg wrote surround AAC as Enhanced RTMP's multichannel
    packets, Debian's ffmpeg child refused to copy them and the stream never started (reconnecting
    forever, no picture either). Now it is mixed down to stereo (what Twitch and Facebook take), said once."""
    import numpy as np

    from birefvid.io.live_audio import LiveAudioFeed
    from birefvid.io.rtmp_sink import RtmpPublishSink

    fps = 15
    feed = LiveAudioFeed(48000, "5.1")
    with NginxRtmp(tmp_path / "server") as server:
        with caplog.at_level("WARNING"):
            sink = RtmpPublishSink(f"{server.url}/{KEY}", width=160, height=120, fps=fps, kind="rgb", audio=feed)
        _send_with_a_tone(sink, feed, fps)
        time.sleep(0.5)
    [received] = server.recorded(KEY)
    with av.open(str(received)) as c:
        assert [(s.codec_context.name, s.codec_context.channels) for s in c.streams.audio] == [("aac", 2)]
        loud = np.abs(np.concatenate([f.to_ndarray().ravel() for f in c.decode(audio=0)])).mean()
    assert loud > 0.1, loud  # the tone is there, not silence
    assert _frames(received) == 2 * fps
    assert [r.getMessage() for r in caplog.records if "mixed down" in r.getMessage()] == [
        f"rtmp://127.0.0.1:{server.port}/live/***: the 5.1 sound of the source is mixed down to stereo, the most it carries"
    ]


def test_sound_that_reaches_the_stream_a_second_after_its_pictures_does_not_fail_it(tmp_path: Path, ffmpeg: str) -> None:
    """The live muxers hold pictures at most 0.5 s for sound, so sound arriving later than that (a microphone with a
    large buffer, a camera whose sound lags) came after the first pictures were written. AAC's first packet is stamped
    1024 samples before its first sample, before those pictures, and FFmpeg's FLV writer refuses anything stamped before
    the first packet it wrote: every RTMP connection failed ("Invalid argument") at its first sound. Now the stream
    goes on, with its sound, starting with the pictures it belongs to."""
    from birefvid.io.live_audio import LiveAudioFeed
    from birefvid.io.rtmp_sink import RtmpPublishSink

    fps = 15
    feed = LiveAudioFeed(48000, "stereo")
    with NginxRtmp(tmp_path / "server") as server:
        sink = RtmpPublishSink(f"{server.url}/{KEY}", width=160, height=120, fps=fps, kind="rgb", audio=feed)
        _send_with_a_tone(sink, feed, fps, seconds=3, sound_late_s=1.0)
        time.sleep(0.5)
    [received] = server.recorded(KEY)
    with av.open(str(received)) as c:
        video_start = float(c.streams.video[0].start_time * c.streams.video[0].time_base)
        sound = list(c.decode(audio=0))
        loud = np.abs(np.concatenate([f.to_ndarray().ravel() for f in sound])).mean()
        sound_start = float(sound[0].pts * sound[0].time_base)
    assert loud > 0.1, loud  # the tone is there, not silence
    assert _frames(received) == 3 * fps
    # the sound still starts with the first picture, as it was stamped (AAC's priming and a millisecond later), not a second late
    assert 0 <= sound_start - video_start < 0.05, (video_start, sound_start)


@pytest.mark.skipif(os.name != "posix", reason="the address goes to the child through a pipe on POSIX only")
def test_a_login_child_stuck_on_a_stalled_server_ends_within_its_timeout(tmp_path: Path, ffmpeg: str) -> None:
    """The PyAV child (rtmp_push) has no -rw_timeout: once the server stopped reading, it waited in a write for ever,
    and outlived a birefvid killed meanwhile (in its own session, nothing reaches it). Its alarm now ends it within its
    timeout, as ffmpeg's -rw_timeout ends the ffmpeg child; the server here is nginx, stopped (SIGSTOP) mid-stream."""
    import signal
    import subprocess

    from birefvid.io.rtmp_sink import push_command

    flv = tmp_path / "noise.flv"  # noise: megabytes, more than the socket buffers between the child and the server hold
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "nullsrc=s=320x240:r=25,geq=random(1)*255:128:128",
                    "-t", "6", "-c:v", "flv", "-q:v", "2", str(flv)], check=True)  # fmt: skip
    data = flv.read_bytes()
    assert len(data) > 12_000_000
    with NginxRtmp(tmp_path / "server") as server:
        read, write = os.pipe()
        os.write(write, f"rtmp://pub:{PASSWORD}@127.0.0.1:{server.port}/live/{KEY}".encode())
        os.close(write)
        child = subprocess.Popen(push_command(read, 1.0), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, pass_fds=(read,), start_new_session=True)  # fmt: skip
        os.close(read)
        nginx = int((tmp_path / "server" / "nginx.pid").read_text())
        try:
            assert child.stdin is not None and child.stdout is not None
            child.stdin.write(data[:2_000_000])  # what the child probes before it connects
            child.stdin.flush()
            timer = threading.Timer(30, child.kill)  # a child that never connects must not hang the test on readline
            timer.daemon = True
            timer.start()
            assert child.stdout.readline().strip() == b"progress=continue"  # the server took the stream
            os.kill(nginx, signal.SIGSTOP)

            def feed() -> None:  # blocks once the child stops reading, as birefvid's writes did
                try:
                    child.stdin.write(data[2_000_000:])  # type: ignore[union-attr]
                except (BrokenPipeError, ValueError):
                    pass

            threading.Thread(target=feed, daemon=True).start()
            started = time.monotonic()
            code = child.wait(20)  # stuck for ever before: TimeoutExpired
            assert time.monotonic() - started < 10
            assert code == -signal.SIGALRM
            timer.cancel()
        finally:
            os.kill(nginx, signal.SIGCONT)
            if child.poll() is None:
                child.kill()
            child.wait()


@pytest.mark.skipif(os.name != "posix", reason="the address goes to the child through a pipe on POSIX only")
def test_a_sender_that_fails_at_the_stream_end_is_reported(tmp_path: Path, ffmpeg: str) -> None:
    """The child's exit status was not looked at: a server gone before the stream's end (its last pictures, the
    trailer) made the login child exit 1 ("Broken pipe") and the run said nothing. The stream's summary and the
    run's stream problems now say so, without the password or the key."""
    import signal

    from birefvid.api import live_stream_problems
    from birefvid.io.live_sinks import open_live_sink

    with NginxRtmp(tmp_path / "server") as server:
        sink = open_live_sink(f"rtmp://pub:{PASSWORD}@127.0.0.1:{server.port}/live/{KEY}", width=160, height=120, fps=15, kind="rgb")
        try:
            published = _publish_for(sink, 1.0)
            wait_for(lambda: sink._current is not None and sink._current.confirmed, 10, "the server taking the stream")  # type: ignore[attr-defined]
            # every picture handed to the child before the server goes (on a loaded machine the stream's thread lags:
            # a picture written after the kill failed the stream itself, not its end), then the child's pipe drained
            wait_for(lambda: sink.sent + sink.behind + sink.skipped == published, 10, "the queued pictures reaching the child")  # type: ignore[attr-defined]
            time.sleep(0.3)
            os.kill(int((tmp_path / "server" / "nginx.pid").read_text()), signal.SIGKILL)
            server._proc.wait(10)  # type: ignore[union-attr]  # gone, its sockets closed, before the stream's end is sent
        finally:
            sink.close()
    summary = sink.summary()  # type: ignore[attr-defined]
    assert summary["taken"] and "the stream's end may not have reached the server" in summary["end_error"], summary
    assert "Broken pipe" in summary["end_error"], summary
    [problem] = live_stream_problems({"streams": [summary]})
    assert problem.startswith(f"rtmp://pub:***@127.0.0.1:{server.port}/live/***: the stream's end"), problem
    assert PASSWORD not in problem and KEY not in problem


@pytest.mark.skipif(os.name != "posix", reason="the address goes to the child through a pipe on POSIX only")
def test_a_login_child_ended_by_its_alarm_mid_stream_says_the_server_stopped_taking_it(tmp_path: Path, ffmpeg: str) -> None:
    """The login child's alarm (its -rw_timeout) also ends it when a server that took the stream stops reading it; the
    stream's error then said "the server did not take the stream within 5 s", 400 pictures after it had taken it. The
    signal is sent here as the alarm sends it: filling the sockets of a stopped server takes over 30 s."""
    import signal

    from birefvid.errors import SinkError
    from birefvid.io.rtmp_sink import RtmpPublishSink

    with NginxRtmp(tmp_path / "server") as server:
        sink = RtmpPublishSink(f"rtmp://pub:{PASSWORD}@127.0.0.1:{server.port}/live/{KEY}", width=160, height=120, fps=15, kind="rgb")
        try:
            _publish_for(sink, 1.0)
            wait_for(lambda: sink.confirmed, 10, "the server taking the stream")
            os.kill(sink._child.pid, signal.SIGALRM)  # type: ignore[union-attr]
            with pytest.raises(SinkError) as failed:
                _publish_for(sink, 10.0)
        finally:
            sink.abort()
    message = str(failed.value)
    assert "ffmpeg stopped (the server took nothing for 5 s: it stopped taking the stream)" in message, message
    assert "did not take the stream" not in message and PASSWORD not in message and KEY not in message


@pytest.mark.parametrize("landing", ["birefvid-rtmp-stderr", "birefvid-rtmp-progress", "opening the muxer"])
def test_a_stop_landing_while_the_stream_opens_ends_its_ffmpeg_child(monkeypatch, landing: str) -> None:
    """Ctrl-C or SIGTERM landing after the ffmpeg child started but before the sink was made (its pipe readers
    starting, the muxer and encoder opening) left the child running in its own session, where Ctrl-C does not reach
    it: a stray ffmpeg for as long as an API user's process (or its last traceback) kept its pipe open."""
    import subprocess

    from birefvid.io import rtmp_sink

    need_binary("ffmpeg", "ffmpeg")
    children: list[subprocess.Popen] = []

    class Recorded(subprocess.Popen):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            children.append(self)

    real_start, real_open = threading.Thread.start, av.open

    def start_then_signal(thread: threading.Thread) -> None:
        real_start(thread)
        if thread.name == landing:
            raise KeyboardInterrupt  # the signal handler's raise, as start() returns

    def open_then_signal(*args, **kwargs):
        real_open(*args, **kwargs).close()
        raise KeyboardInterrupt

    monkeypatch.setattr(rtmp_sink.subprocess, "Popen", Recorded)
    with monkeypatch.context() as patched:
        patched.setattr(threading.Thread, "start", start_then_signal)
        if landing == "opening the muxer":
            patched.setattr(rtmp_sink.av, "open", open_then_signal)
        with pytest.raises(KeyboardInterrupt):
            rtmp_sink.RtmpPublishSink(f"rtmp://127.0.0.1:{free_port()}/live/{KEY}", width=160, height=120, fps=15, kind="rgb")
    [child] = children
    try:
        assert child.wait(3) is not None  # ended with the sink, not left waiting for pictures
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_server_started_after_the_stream_gets_it_once_it_is_up(tmp_path: Path, ffmpeg: str, caplog: pytest.LogCaptureFixture) -> None:
    """nginx started after the run: its refused port ended the run with an error at the start. Now the stream starts
    in an outage, no ffmpeg child is started while the port refuses, and it connects once the server is up."""
    from birefvid.io.live_sinks import open_live_sink

    server = NginxRtmp(tmp_path / "server")
    try:
        with caplog.at_level("WARNING"):
            sink = open_live_sink(f"{server.url}/{KEY}", width=160, height=120, fps=15, kind="rgb")
            try:
                _publish_for(sink, 1.0)
                assert not _children_sending_to(server.port)  # nothing started for a port that refuses
                server.start()
                wait = time.monotonic() + 30
                while not sink.taken and time.monotonic() < wait:  # type: ignore[attr-defined]
                    _publish_for(sink, 0.5)
                _publish_for(sink, 1.0)
            finally:
                sink.close()
    finally:
        time.sleep(0.5)
        server.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert sink.taken and sink.reconnects == 0, warnings  # type: ignore[attr-defined]
    assert any("the run goes on without this output" in w for w in warnings), warnings
    assert sum("connected after" in w for w in warnings) == 1 and not any("reconnected" in w for w in warnings), warnings
    assert all(KEY not in w for w in warnings), warnings
    assert _frames(server.recorded(KEY)[0]) >= 15


def test_an_rtmp_host_name_that_does_not_resolve_is_an_error_at_once_not_waited_for(ffmpeg: str) -> None:
    """A mistyped server name is a wrong address, as it is for rtsp:// and tcp://: since a server down at the start is
    waited for, the failed look-up was taken for a server down (the plain socket check's OSError) and the run
    retried it forever, exit 0 at its end. One error line at once, naming the host, the key hidden."""
    from birefvid.errors import SinkError
    from birefvid.io.live_sinks import open_live_sink
    from birefvid.io.republish import Unreachable, tcp_reachable

    with pytest.raises(SinkError, match="unknown host 'nosuchserver.invalid'") as wrong:
        open_live_sink(f"rtmp://nosuchserver.invalid/live/{KEY}", width=64, height=48, fps=10, kind="rgb")
    assert KEY not in str(wrong.value) and "rtmp://nosuchserver.invalid/live/***" in str(wrong.value), wrong.value
    with pytest.raises(SinkError, match="unknown host") as checked:  # the socket check itself: a wrong address, not a server down
        tcp_reachable("rtmp://nosuchserver.invalid/live/x", 1935)()
    assert not isinstance(checked.value, Unreachable)
