"""A stream output whose server or player goes away comes back; the run and its recordings go on.

Before, an RTSP server restarting (or a tcp:// player closing) ended the live run with an error and
threw its recordings away.
"""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path

import av
import pytest

from live_e2e_tools import LiveRun, end_process, ffmpeg_receiver, ffmpeg_rtsp_receiver, listening, scene_clip, stats_lines, wait_for
from live_media import free_port

FAST_MODEL = ["--model", "tiny", "--device", "cpu", "--resolution", "64"]
W, H = 160, 120


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scene_clip(tmp_path_factory.mktemp("republish") / "scene20s.mp4", 20.0, (W, H), 24, unique_seconds=2.0)


def _breaks_after_one_picture(name: str):
    """A stream (a ``LiveSink``) that takes one picture, then breaks as a publish to a server gone does."""
    import numpy as np

    from birefvid.errors import SinkError
    from birefvid.io.live_base import LiveSink

    class Once(LiveSink):
        sent = 0

        @property
        def name(self) -> str:
            return name

        def _send(self, picture: np.ndarray, t: float) -> None:
            self.sent += 1
            if self.sent > 1:
                raise SinkError(f"publishing to {name} failed after 1 frames: Broken pipe")

        def _close(self) -> None:
            pass

    return Once()


def _received(folder: Path) -> int:
    """Pictures the receiver in ``folder`` wrote so far (its raw RGB file: written frame by frame, unlike the md5 list)."""
    raw = folder / "rx.rgb"
    return raw.stat().st_size // (W * H * 3) if raw.exists() else 0


def test_streams_whose_receivers_restart_are_reconnected_and_the_recording_kept(tmp_path: Path, clip: Path) -> None:
    """An RTSP and a tcp:// stream output of one run, each with its own ffmpeg receiver: both receivers go away
    mid-run and come back, both streams reconnect and reach the new ones, and the recording beside them lost nothing.
    One run for both schemes (each stream has its own republisher; the schemes differ in how they reopen): a run
    each cost a second process and model start-up."""
    ports = {"rtsp": free_port(), "tcp": free_port()}
    urls = {"rtsp": f"rtsp://127.0.0.1:{ports['rtsp']}/out", "tcp": f"tcp://127.0.0.1:{ports['tcp']}"}

    def receiver(scheme: str, folder: Path):  # noqa: ANN202
        folder.mkdir()
        if scheme == "rtsp":
            return ffmpeg_rtsp_receiver(urls[scheme], folder, W, H)
        return ffmpeg_receiver(["-analyzeduration", "500000", "-i", f"tcp://127.0.0.1:{ports[scheme]}?listen=1&listen_timeout=60000"], folder, W, H)

    def reconnected(stderr: str, scheme: str) -> bool:
        return any(urls[scheme] in line and "reconnected" in line for line in stderr.splitlines())

    first = {scheme: receiver(scheme, tmp_path / f"{scheme}-first") for scheme in urls}
    second = {}
    try:
        for scheme, port in ports.items():
            wait_for(lambda: listening(port), 20, f"the first {scheme} receiver listening")
        args = ["--source", clip, "--realtime", "--effect", "green", *FAST_MODEL, "--sink", urls["rtsp"], "--sink", urls["tcp"],
                "--sink", "rec.mkv", "--report", "report.json", "-q"]  # fmt: skip
        with LiveRun(args, tmp_path) as run:
            for scheme in urls:
                wait_for(lambda: _received(tmp_path / f"{scheme}-first") >= 24, 90, f"a second of pictures at the first {scheme} receiver", run=run)
            for scheme in urls:  # the servers go away mid-run
                end_process(first[scheme])
                second[scheme] = receiver(scheme, tmp_path / f"{scheme}-second")
            for scheme, port in ports.items():
                # ffmpeg listens for one connection only: a reconnect that came within a poll's 0.1 s left no listening socket to see
                wait_for(lambda: listening(port) or reconnected(run.stderr(), scheme), 20, f"the restarted {scheme} receiver listening", run=run)
            for scheme in urls:  # reopening tries every 3 s at most
                wait_for(lambda: _received(tmp_path / f"{scheme}-second") >= 24, 8, f"pictures at the restarted {scheme} receiver", run=run)
            run.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]  # ends as --duration does, recordings kept, without waiting it out
            assert run.wait(60) == 0, run.stderr()[-3000:]
            stderr = run.stderr()
    finally:
        for proc in (*first.values(), *second.values()):
            end_process(proc)
    assert reconnected(stderr, "rtsp") and reconnected(stderr, "tcp"), stderr
    report = json.loads((tmp_path / "report.json").read_text())
    with av.open(str(tmp_path / "rec.mkv")) as container:
        recorded = sum(1 for packet in container.demux(video=0) if packet.size)
    assert report["ended_by"] == "terminated", report["ended_by"]
    assert recorded == report["frames_shown"] >= 48  # the recording lost nothing, before, during and after the outage


def test_reconnecting_asks_a_plain_socket_first() -> None:
    """PyAV opens an output holding Python's lock (an RTSP server that does not answer froze every
    thread for the open timeout): a reopening first connects with a plain socket, which waits
    without it, and says why it could not."""
    import socket

    from birefvid.errors import SinkError
    from birefvid.io.republish import tcp_reachable

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(SinkError, match=f"^cannot connect to 127.0.0.1:{port}: "):
        tcp_reachable(f"rtsp://127.0.0.1:{port}/out", 554, timeout=1.0)()
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(1)
        tcp_reachable(f"tcp://127.0.0.1:{listening.getsockname()[1]}", 0, timeout=1.0)()  # no error


def test_a_receiver_that_stops_reading_holds_up_only_its_own_stream() -> None:
    """A receiver that stops reading blocks the stream's write until the network timeout (5 s): send()
    must return at once meanwhile, skipping the oldest pictures for that stream alone, so the
    recording and the other outputs lose nothing (a SIGSTOPped tcp:// player cost a recording 5 s of
    pictures, and the preview froze for as long)."""
    import threading

    import numpy as np

    from birefvid.io.live_base import LiveSink
    from birefvid.io import republish

    class StalledStream(LiveSink):
        """Its first send waits until released, as a write to a receiver that stopped reading does."""

        def __init__(self) -> None:
            super().__init__()
            self.entered, self.release = threading.Event(), threading.Event()
            self.got: list[float] = []

        @property
        def name(self) -> str:
            return "tcp://127.0.0.1:9"

        def _send(self, picture: np.ndarray, t: float) -> None:
            self.entered.set()
            if not self.got:
                self.release.wait(60.0)  # until the test releases it, after its sends
            self.got.append(t)

        def _close(self) -> None:
            pass

    inner = StalledStream()
    sink = republish.RepublishingSink(lambda: inner)
    picture = np.zeros((8, 8, 3), np.uint8)
    sent = threading.Event()

    def send_all() -> None:
        sink.send(picture, 0.0)
        assert inner.entered.wait(30)  # the sender thread is inside the stalled write
        for i in range(1, 20):
            sink.send(picture, i / 25)
        sent.set()

    # The receiver stays stalled until the sends are over (60 s at most): a send() that waited on it would still be
    # waiting after 20 s, where all twenty return in milliseconds (not a bound on their speed: 0.5 s was, beside
    # a stall of 2 s, and a loaded machine's thread switches come near it).
    sender = threading.Thread(target=send_all, daemon=True)
    sender.start()
    try:
        assert sent.wait(20), "send() waited on a stalled receiver"
    finally:
        inner.release.set()
        sender.join(30)
    sink.close()
    kept = republish.QUEUE_PICTURES
    assert inner.got == [0.0] + [i / 25 for i in range(20 - kept, 20)]  # in order, the newest kept
    assert sink.behind == 19 - kept


def test_closing_a_stream_whose_receiver_never_reads_again_ends(monkeypatch) -> None:
    """An RTSP receiver that stops reading for good blocks the stream's write for ever (FFmpeg retries
    each packet): close() must give up on that stream after a few seconds, so the run ends and its
    recordings are committed (the process hung at its end, leaving the recording a temporary file)."""
    import threading
    import time

    import numpy as np

    from birefvid.io import republish
    from birefvid.io.live_base import LiveSink
    from birefvid.io.republish import RepublishingSink

    class DeadStream(LiveSink):
        def __init__(self) -> None:
            super().__init__()
            self.entered, self.release = threading.Event(), threading.Event()
            self.closed = False

        @property
        def name(self) -> str:
            return "rtsp://127.0.0.1:9/out"

        def _send(self, picture: np.ndarray, t: float) -> None:
            self.entered.set()
            self.release.wait(60.0)  # until the test has timed close(): never, as far as close() can tell

        def _close(self) -> None:
            self.closed = True

    # close() gives up after CLOSE_WAIT_S (3 s), here 0.5 s; the bound sits far from both it and the stream's 60 s stall
    # (it was 5 s against close()'s own 3 s, which a loaded machine's thread start and switches came near).
    monkeypatch.setattr(republish, "CLOSE_WAIT_S", 0.5)
    inner = DeadStream()
    sink = RepublishingSink(lambda: inner)
    try:
        sink.send(np.zeros((8, 8, 3), np.uint8), 0.0)
        assert inner.entered.wait(30)
        started = time.monotonic()
        sink.close()
        took = time.monotonic() - started
    finally:
        inner.release.set()
    assert took < 20.0, f"close() took {took:.1f} s"
    assert not inner.closed  # its thread still holds it: left unfinished


def test_a_stop_landing_while_the_streams_thread_starts_ends_the_stream_opened() -> None:
    """Ctrl-C or SIGTERM landing as the stream's thread started: the stream just opened (an RTMP stream's ffmpeg
    child, in its own session so Ctrl-C does not reach it) was left open, the child waiting for pictures."""
    import threading

    from birefvid.io.republish import RepublishingSink
    from birefvid.io.rtmp_sink import RtmpPublishSink

    children = []

    def open_stream() -> RtmpPublishSink:
        stream = RtmpPublishSink(f"rtmp://127.0.0.1:{free_port()}/live/stream", width=160, height=120, fps=15, kind="rgb")
        children.append(stream._child)
        return stream

    real_start = threading.Thread.start

    def start_then_signal(thread: threading.Thread) -> None:
        real_start(thread)
        if thread.name.startswith("birefvid-stream"):
            raise KeyboardInterrupt  # the signal handler's raise, as start() returns

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(threading.Thread, "start", start_then_signal)
        with pytest.raises(KeyboardInterrupt):
            RepublishingSink(open_stream)
    [child] = children
    try:
        child.wait(3)  # ended with the stream, not left waiting for pictures
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_an_output_that_reopens_but_fails_before_it_works_quietens_as_one_that_is_down(caplog) -> None:
    """An RTMP server that takes the connection and refuses the stream (a revoked stream key) opens each reopening
    and fails it at its first picture: each reopening was an outage of its own, so every retry was a warning for
    ever (a line every 3 s in the journal), where a server that is down quietens after six. One outage now."""
    import time

    import numpy as np

    from birefvid.errors import SinkError
    from birefvid.io.live_base import LiveSink
    from birefvid.io.reconnect import LOUD_RETRIES, Backoff
    from birefvid.io.republish import RepublishingSink

    opened = []

    class RefusedStream(LiveSink):
        """Opens; the first stream takes one picture, each later one refuses its first, as the server does."""

        def __init__(self) -> None:
            super().__init__()
            self.works = not opened
            opened.append(self)

        @property
        def name(self) -> str:
            return "rtmp://127.0.0.1:1935/live/***"

        def _send(self, picture: np.ndarray, t: float) -> None:
            if not self.works:
                raise SinkError("publishing to rtmp://127.0.0.1:1935/live/*** failed: the server refused the stream")
            self.works = False

        def _close(self) -> None:
            pass

    caplog.set_level(logging.DEBUG, logger="birefvid")
    sink = RepublishingSink(RefusedStream, policy=Backoff(initial=0.01, maximum=0.02))
    picture = np.zeros((8, 8, 3), np.uint8)
    deadline = time.monotonic() + 60  # generous: a loaded CI box; it takes well under a second
    i = 0
    while len(opened) < 3 * LOUD_RETRIES and time.monotonic() < deadline:
        sink.send(picture, i / 25)
        i += 1
        time.sleep(0.005)
    sink.abort()
    retries = [r for r in caplog.records if "; retry " in r.getMessage()]
    assert len(opened) >= 3 * LOUD_RETRIES and len(retries) >= 2 * LOUD_RETRIES, len(opened)
    loud = [r.getMessage() for r in retries if r.levelno >= logging.WARNING]
    assert len(loud) == LOUD_RETRIES, loud  # the rest at debug level, until a minute has passed
    assert "further retries are logged once every 60 s" in loud[-1], loud[-1]


def test_a_stream_whose_server_starts_after_the_run_is_connected_once_it_is_up(tmp_path: Path, clip: Path) -> None:
    """An RTSP server started after the matting (a service manager starting both at once, an operator starting the
    run first): the first connection's refusal ended the run with an error, where the same server going down mid-run
    was an outage the run rode out. Now the run goes on, says so, connects once the server is up, and the recording
    beside it holds every picture shown."""
    url = f"rtsp://127.0.0.1:{free_port()}/out"
    args = ["--source", clip, "--realtime", "--effect", "green", *FAST_MODEL, "--sink", url, "--sink", "rec.mkv", "--report", "report.json",
            "--stats-every", "1", "--stats-json", "stats.jsonl", "-q"]  # fmt: skip
    receiver = None

    def down_in_stats() -> list[dict]:
        return [line for line in stats_lines(tmp_path / "stats.jsonl") if url in (line.get("outputs_down") or {})]

    try:
        with LiveRun(args, tmp_path) as run:
            # the down server is said at once, before the model's warm-up; the run goes on (it exited with that error)
            wait_for(lambda: "the run goes on without this output" in run.stderr(), 60, "the line saying the output waits", run=run)
            # and each stats line names the output down, and since when (once the retry lines have gone quiet, nothing did)
            wait_for(down_in_stats, 90, "a stats line naming the output down", run=run)
            (tmp_path / "rx").mkdir()
            receiver = ffmpeg_rtsp_receiver(url, tmp_path / "rx", W, H)
            wait_for(lambda: _received(tmp_path / "rx") >= 24, 90, "a second of pictures at the late receiver", run=run)
            # up again: a later stats line no longer names it (the lines before the receiver started all did)
            wait_for(lambda: stats_lines(tmp_path / "stats.jsonl")[-1].get("outputs_down") == {}, 30, "a stats line without the output", run=run)
            run.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            assert run.wait(60) == 0, run.stderr()[-3000:]
            stderr = run.stderr()
    finally:
        if receiver is not None:
            end_process(receiver)
    lines = stderr.splitlines()
    assert not any(line.startswith("birefvid: error") for line in lines), stderr
    assert any(f"{url}: connected after " in line for line in lines), stderr
    assert not any("reconnected" in line for line in lines), stderr  # its first connection, not a reconnection
    report = json.loads((tmp_path / "report.json").read_text())
    [stream] = report["streams"]
    assert stream["taken"] and stream["reconnects"] == 0 and stream["pictures_sent"] >= 24, stream
    with av.open(str(tmp_path / "rec.mkv")) as container:
        recorded = sum(1 for packet in container.demux(video=0) if packet.size)
    assert recorded == report["frames_shown"] >= 24  # the recording lost nothing while the output waited


def test_only_a_server_that_cannot_be_reached_is_waited_for_at_the_start(caplog: pytest.LogCaptureFixture) -> None:
    """A refused connection (nothing listening yet) starts the output in an outage; a wrong address, or a port where
    something answers but not as an RTSP server, is still one error at once, since waiting would not mend it."""
    import socket
    import threading

    from birefvid.errors import SinkError
    from birefvid.io.live_sinks import open_live_sink
    from birefvid.io.republish import server_down, tcp_reachable
    from birefvid.io.rtsp_sink import RtspPublishSink

    size = {"width": 64, "height": 48, "fps": 10.0, "kind": "rgb"}
    for url in (f"rtsp://127.0.0.1:{free_port()}/out", f"tcp://127.0.0.1:{free_port()}"):
        with caplog.at_level(logging.WARNING):
            sink = open_live_sink(url, **size)
        sink.abort()
        assert any(url in r.getMessage() and "the run goes on without this output" in r.getMessage() for r in caplog.records), caplog.text
        assert sink.name == url and sink.summary()["taken"] is False  # type: ignore[attr-defined]

    with pytest.raises(SinkError, match="unknown host 'nosuchserver.invalid'"):
        open_live_sink("rtsp://nosuchserver.invalid:8554/out", **size)
    with pytest.raises(SinkError, match="needs a host and a port"):
        open_live_sink("tcp://127.0.0.1", **size)

    with socket.socket() as web:  # a web server on the port: it answers, but not as an RTSP server
        web.bind(("127.0.0.1", 0))
        web.listen(8)

        def answer() -> None:
            while True:
                try:
                    conn, _ = web.accept()
                except OSError:
                    return
                with conn:
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

        threading.Thread(target=answer, daemon=True).start()
        url = f"rtsp://127.0.0.1:{web.getsockname()[1]}/out"
        # the publisher open_live_sink makes, with a shorter wait than its 5 s (FFmpeg waits it out after the answer)
        with pytest.raises(SinkError, match="no RTSP answer") as refused:
            RtspPublishSink(url, open_timeout=1.0, **size)  # type: ignore[arg-type]
        assert not server_down(tcp_reachable(url, 554))(refused.value)  # the port answered: an error, not a wait


def test_a_hung_rtsp_server_is_asked_on_a_plain_socket_before_each_later_reopening(tmp_path: Path) -> None:
    """An RTSP server that takes connections and never answers (hung; a proxy whose upstream is gone): each reopening
    opened the stream in PyAV, which waits its 2 s timeout holding Python's lock, so the whole run froze 2 s of every
    3-5 s and its recording lost that time (a 28 s run recorded 21 s). The socket check before a reopening passed, the
    port taking connections. Now, after the first reopening that waited, the server must answer an RTSP OPTIONS on a
    plain socket, waited on without the lock, before PyAV tries again. Counted at the server: which requests came."""
    import socket
    import threading
    import time

    import numpy as np

    from birefvid.io.live_sinks import open_live_sink

    port = free_port()
    url = f"rtsp://127.0.0.1:{port}/out"
    receiver = ffmpeg_rtsp_receiver(url, tmp_path, W, H)
    requests: list[bytes] = []  # the first bytes of each connection that sent any, in order
    stop = threading.Event()
    picture = np.zeros((H, W, 3), np.uint8)

    def hung_server() -> None:
        with socket.socket() as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", port))
            server.listen(16)
            server.settimeout(0.1)
            held = []
            while not stop.is_set():
                try:
                    conn, _ = server.accept()
                except OSError:
                    continue
                held.append(conn)  # never answered, never closed until the end
                conn.settimeout(3.0)
                try:
                    data = conn.recv(4096)
                except OSError:
                    data = b""
                if data:
                    requests.append(data)
            for conn in held:
                conn.close()

    try:
        wait_for(lambda: listening(port), 20, "the receiver listening")
        sink = open_live_sink(url, width=W, height=H, fps=24, kind="rgb")
        try:
            for i in range(24):
                sink.send(picture, i / 24)
                time.sleep(1 / 24)
            end_process(receiver)  # the server goes away; a hung one takes its port
            threading.Thread(target=hung_server, daemon=True).start()
            i = 24
            deadline = time.monotonic() + 60  # generous: a loaded box; it takes about 5 s
            while len(requests) < 2 and time.monotonic() < deadline:
                sink.send(picture, i / 24)
                i += 1
                time.sleep(1 / 24)
        finally:
            sink.abort()
            stop.set()
    finally:
        end_process(receiver)
    assert len(requests) >= 2, requests
    first, second = requests[:2]
    assert b"Lavf" in first, first  # the first reopening: PyAV's, which waited its timeout
    assert second.startswith(b"OPTIONS ") and b"Lavf" not in second, second  # then the plain socket's question, not PyAV again


def test_the_last_error_of_a_stream_that_never_worked_is_its_last_tries(caplog: pytest.LogCaptureFixture) -> None:
    """A server down at the start that comes up and then fails the stream (here: it takes each connection and hangs up
    at once): the report's ``last_error``, which the run's last warning quotes, still said the first try's
    "Connection refused" however many tries failed otherwise after it, sending the user to start a server that runs."""
    import socket
    import threading
    import time

    import numpy as np

    from birefvid.io.live_sinks import open_live_sink

    port = free_port()
    url = f"rtsp://127.0.0.1:{port}/out"
    with caplog.at_level(logging.WARNING):
        sink = open_live_sink(url, width=W, height=H, fps=10, kind="rgb")
    stop = threading.Event()
    hung_up = []  # connections the server took and closed, counted at the server

    def hanging_up() -> None:
        with socket.socket() as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", port))
            server.listen(8)
            server.settimeout(0.1)
            while not stop.is_set():
                try:
                    conn, _ = server.accept()
                except OSError:
                    continue
                conn.close()
                hung_up.append(1)

    picture = np.zeros((H, W, 3), np.uint8)
    try:
        assert "refused" in sink.summary()["last_error"]  # type: ignore[attr-defined]
        threading.Thread(target=hanging_up, daemon=True).start()
        deadline = time.monotonic() + 30  # generous: a loaded box; a retry comes within 3 s
        i = 0
        while "refused" in (sink.summary()["last_error"] or "") and time.monotonic() < deadline:  # type: ignore[attr-defined]
            sink.send(picture, i / 10)
            i += 1
            time.sleep(0.1)
    finally:
        sink.abort()
        stop.set()
    summary = sink.summary()  # type: ignore[attr-defined]
    assert hung_up and not summary["taken"], summary
    assert summary["last_error"] and "refused" not in summary["last_error"], summary
    assert url in summary["last_error"], summary


def test_after_a_check_found_the_port_refused_the_next_try_opens_the_stream_itself(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A host that did not answer at first (a connect that timed out: here a listening port whose queue is full), then
    refuses (nothing listening yet), then a player that listens for one connection (ffmpeg ``-listen``, OBS's tcp://
    source): every try asked the plain socket first, so the check's empty connection was the first the player took,
    and it quit ("could not find codec parameters"); the stream never reached it. A check refused at once now lets the
    next try open the stream itself. Counted at the receiver: the pictures it wrote."""
    import socket
    import time

    import numpy as np

    from birefvid.io.republish import RepublishingSink, server_down, tcp_reachable
    from birefvid.io.ts_sink import MpegTsPublishSink

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(0)
    port = blocker.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port))  # the queue is full: the next connects time out
    url = f"tcp://127.0.0.1:{port}"
    reachable = tcp_reachable(url, 0, timeout=1.0)  # the run's waits are 5 s; 1 s is enough to be slow
    with caplog.at_level(logging.WARNING):
        sink = RepublishingSink(lambda: MpegTsPublishSink(url, width=W, height=H, fps=10, kind="rgb", open_timeout=1.0), reachable=reachable,
                                down_at_start=server_down(reachable), name=url, stream_type=MpegTsPublishSink)  # fmt: skip
    blocker.close()
    filler.close()
    picture = np.zeros((H, W, 3), np.uint8)
    receiver = None
    i = 0

    def pump(until, seconds: float) -> None:
        nonlocal i
        deadline = time.monotonic() + seconds
        while not until() and time.monotonic() < deadline:
            sink.send(picture, i / 10)
            i += 1
            time.sleep(0.1)

    try:
        assert sink.summary()["last_error"] and "timed out" in sink.summary()["last_error"]  # type: ignore[index]
        refused = f"cannot connect to 127.0.0.1:{port}: Connection refused"  # the socket check's own line
        pump(lambda: any(refused in r.getMessage() for r in caplog.records), 30)
        assert any(refused in r.getMessage() for r in caplog.records), caplog.text
        receiver = ffmpeg_receiver(["-f", "mpegts", "-i", f"{url}?listen=1"], tmp_path, W, H)
        wait_for(lambda: listening(port) or receiver.poll() is not None, 20, "the receiver listening")
        pump(lambda: _received(tmp_path) >= 10, 30)
    finally:
        sink.abort()
        if receiver is not None:
            end_process(receiver)
    assert _received(tmp_path) >= 10 and sink.taken, (tmp_path / "ffmpeg.log").read_text()[-500:]


# an RTSP server that answers OPTIONS and never ANNOUNCE, in a process of its own (PyAV's open holds this one's
# lock, so a server thread here could not answer the OPTIONS PyAV sends first): argv port, log of each ANNOUNCE's time
HALF_HUNG_SERVER = """
import socket, sys, threading, time
port, log = int(sys.argv[1]), open(sys.argv[2], "a", buffering=1)
def answer(conn):
    while True:
        try:
            data = conn.recv(4096)
        except OSError:
            return
        if not data:
            return
        if data.startswith(b"ANNOUNCE "):
            log.write(f"{time.monotonic()}\\n")  # and never answered
        elif data.startswith(b"OPTIONS "):
            cseq = next(line for line in data.split(b"\\r\\n") if line.lower().startswith(b"cseq:")).split(b":")[1].strip()
            conn.sendall(b"RTSP/1.0 200 OK\\r\\nCSeq: " + cseq + b"\\r\\nPublic: OPTIONS, ANNOUNCE, SETUP, RECORD\\r\\n\\r\\n")
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen(16)
while True:
    threading.Thread(target=answer, args=(server.accept()[0],), daemon=True).start()
"""


def test_a_server_that_answers_options_but_hangs_on_the_publish_is_reopened_seldom(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An RTSP server that answers OPTIONS and never ANNOUNCE (a proxy that answers for itself while its upstream is
    gone; a server stuck past its handshake) passes the plain-socket check, so each reopening opened the stream in
    PyAV again and waited its 2 s timeout holding Python's lock: 14.9 s of a 25 s outage frozen (7 reopenings). Once
    the check passed and the open after it still waited, reopenings are UNTOLD_REOPEN_EVERY_S apart. Counted at the
    server: after the first checked reopening, no other ANNOUNCE within 7 s (they came every 4-5 s). Load only
    spaces the tries further."""
    import subprocess
    import sys
    import time

    import numpy as np

    from birefvid.io.live_sinks import open_live_sink

    port = free_port()
    url = f"rtsp://127.0.0.1:{port}/out"
    receiver = ffmpeg_rtsp_receiver(url, tmp_path, W, H)
    log = tmp_path / "announces.txt"
    log.write_text("")
    picture = np.zeros((H, W, 3), np.uint8)

    def announces() -> list[float]:
        return [float(line) for line in log.read_text().split()]

    caplog.set_level(logging.WARNING, logger="birefvid.io.republish")
    server = None
    try:
        wait_for(lambda: listening(port), 20, "the receiver listening")
        sink = open_live_sink(url, width=W, height=H, fps=24, kind="rgb")
        try:
            for i in range(24):
                sink.send(picture, i / 24)
                time.sleep(1 / 24)
            end_process(receiver)  # the server goes away; a half-hung one takes its port
            server = subprocess.Popen([sys.executable, "-c", HALF_HUNG_SERVER, str(port), str(log)])
            i = 24
            deadline = time.monotonic() + 60  # generous: a loaded box; the first two come within about 7 s
            while (len(announces()) < 2 and time.monotonic() < deadline) or (announces()[1:] and time.monotonic() < announces()[1] + 7):
                sink.send(picture, i / 24)
                i += 1
                time.sleep(1 / 24)
        finally:
            sink.abort()
    finally:
        end_process(receiver)
        if server is not None:
            end_process(server)
    assert len(announces()) == 2, announces()  # PyAV's first reopening, then the one after the check passed; not a third yet
    assert "answers but does not take the stream" in caplog.text, caplog.text


def test_the_report_says_the_server_answered_but_did_not_take_the_stream() -> None:
    """A reopening that passed the check and still waited on the publish (a server answering OPTIONS, hanging on
    ANNOUNCE) left the publisher's "no RTSP answer (server down, unreachable or silent ...)" as the report's last_error,
    though the server had just answered. Fakes: the first stream takes one picture then breaks; every later open waits
    past SLOW_OPEN_S and fails; the check always passes."""
    import time

    import numpy as np

    from birefvid.io.live_base import LiveSink
    from birefvid.io.reconnect import Backoff
    from birefvid.errors import SinkError
    from birefvid.io.republish import SLOW_OPEN_S, RepublishingSink

    name = "rtsp://127.0.0.1:8554/out"
    opens: list[float] = []
    failed: list[int] = []  # the opens that have failed, by number

    def open_stream() -> LiveSink:
        opens.append(time.monotonic())
        if len(opens) == 1:
            return _breaks_after_one_picture(name)
        time.sleep(SLOW_OPEN_S + 0.2)
        failed.append(len(opens))
        raise SinkError(f"cannot publish to {name}: no RTSP answer (server down, unreachable or silent; waited up to 2 s)")

    sink = RepublishingSink(open_stream, policy=Backoff(initial=0.01, maximum=0.02), reachable=lambda: None)
    picture = np.zeros((8, 8, 3), np.uint8)
    deadline = time.monotonic() + 60  # generous: a loaded box; the three opens take about 2 s
    i = 0
    try:
        # the first open, the unchecked slow one, then the checked slow one, whose error is the last
        while 3 not in failed and time.monotonic() < deadline:
            sink.send(picture, i / 25)
            i += 1
            time.sleep(0.02)
        until = time.monotonic() + 5  # the error is recorded as the open returns: at once, a loaded box aside
        while "answers" not in (sink.last_error or "") and time.monotonic() < until:
            time.sleep(0.02)
    finally:
        sink.abort()
    assert len(opens) == 3, opens  # no fourth: the next waits UNTOLD_REOPEN_EVERY_S
    assert sink.last_error is not None and "the server answers but did not take the stream" in sink.last_error, sink.last_error
    assert "no RTSP answer" not in sink.last_error


def test_the_retry_line_says_the_wait_before_a_server_that_answers_but_does_not_take_the_stream(caplog: pytest.LogCaptureFixture) -> None:
    """Once the check passed and the open after it still waited, the next try comes UNTOLD_REOPEN_EVERY_S later, but
    the retry line said the backoff's own wait ("retry 3 in 0.0 s", "in 1.8 s" with the default policy): the wait
    came after the line, unsaid. Fakes as above: the first stream takes one picture then breaks; every later open waits
    past SLOW_OPEN_S and fails; the check always passes."""
    import re
    import time

    import numpy as np

    from birefvid.errors import SinkError
    from birefvid.io.live_base import LiveSink
    from birefvid.io.reconnect import Backoff
    from birefvid.io.republish import SLOW_OPEN_S, UNTOLD_REOPEN_EVERY_S, RepublishingSink

    name = "rtsp://127.0.0.1:8554/out"
    opens: list[float] = []

    def open_stream() -> LiveSink:
        opens.append(time.monotonic())
        if len(opens) == 1:
            return _breaks_after_one_picture(name)
        time.sleep(SLOW_OPEN_S + 0.2)
        raise SinkError(f"cannot publish to {name}: no RTSP answer (server down, unreachable or silent; waited up to 2 s)")

    def waits() -> list[float]:
        return [float(m.group(1)) for r in caplog.records if r.name == "birefvid.io.reconnect"
                for m in [re.search(r"; retry \d+ in ([0-9.]+) s", r.getMessage())] if m]  # fmt: skip

    caplog.set_level(logging.DEBUG, logger="birefvid.io.reconnect")
    sink = RepublishingSink(open_stream, policy=Backoff(initial=0.01, maximum=0.02), reachable=lambda: None)
    picture = np.zeros((8, 8, 3), np.uint8)
    deadline = time.monotonic() + 60  # generous: a loaded box; the three opens take about 2 s
    i = 0
    try:
        # the first open, the unchecked slow one, the checked slow one, and the retry line said after it
        while len(waits()) < 3 and time.monotonic() < deadline:
            sink.send(picture, i / 25)
            i += 1
            time.sleep(0.02)
    finally:
        sink.abort()
    assert len(opens) == 3, opens
    assert max(waits()[:2]) <= 0.05, waits()  # the backoff's own (0.01-0.02 s): the server had not answered the check yet
    # the third line comes after the checked open failed: its wait is the spacing's, less the moments since
    assert UNTOLD_REOPEN_EVERY_S - 5 <= waits()[2] <= UNTOLD_REOPEN_EVERY_S, caplog.text
