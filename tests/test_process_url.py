"""`process` on an http(s):// URL: read over the network like a file; bad addresses are one line."""

from __future__ import annotations

import contextlib
import functools
import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from birefvid.api import process_video
from birefvid.batch.runner import expand_inputs
from birefvid.cli import main
from birefvid.errors import ConfigError, SourceError
from birefvid.io import open_source
from live_media import free_port
from media import audio_duration, make_video
from process_fixtures import decoded_times, red_key_segmenter


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # no request lines in the test output
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A folder with a clip (H.264 + AAC), served on 127.0.0.1 for the tests of this module only."""
    folder = tmp_path_factory.mktemp("www")
    make_video(folder / "clip.mp4", n_frames=12, size=(64, 48), with_audio=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_url_is_processed_like_the_file_it_serves(tmp_path, served):
    folder, base = served
    seg = red_key_segmenter()
    report = process_video(f"{base}/clip.mp4", tmp_path / "url.mkv", kind="mask", segmenter=seg, smooth="none")
    process_video(folder / "clip.mp4", tmp_path / "file.mkv", kind="mask", segmenter=seg, smooth="none")
    assert report["frames"] == 12
    assert decoded_times(tmp_path / "url.mkv") == decoded_times(tmp_path / "file.mkv") == decoded_times(folder / "clip.mp4")
    assert audio_duration(tmp_path / "url.mkv") == pytest.approx(audio_duration(folder / "clip.mp4"), abs=0.05)


def test_a_missing_page_or_a_dead_server_is_one_line(tmp_path, served, capsys):
    _, base = served
    for url, why in ((f"{base}/nope.mp4", "404 Not Found"), (f"http://127.0.0.1:{free_port()}/clip.mp4", "Connection refused")):
        t0 = time.monotonic()
        assert main(["process", url, "-o", str(tmp_path / "out.mkv"), "--output", "mask", "--model", "tiny", "-q"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"birefvid: error: cannot read {url} ({err[0].split(' (', 1)[1]}"] and why in err[0], err
        assert time.monotonic() - t0 < 10
    assert list(tmp_path.iterdir()) == []


def test_a_signed_urls_token_stays_out_of_the_report_and_the_error_line(tmp_path, served, capsys):
    """A signed link (S3, GCS) carries its credential in the query: the run report, which people
    attach to bug reports, and the error line name the link without it."""
    import json

    _, base = served
    token = "S3CR3T-T0KEN"
    url = f"{base}/clip.mp4?X-Amz-Signature={token}&X-Amz-Expires=600"
    report = tmp_path / "report.json"
    process_video(url, tmp_path / "url.mkv", kind="mask", segmenter=red_key_segmenter(), smooth="none", report_path=report)
    written = json.loads(report.read_text())
    assert written["frames"] == 12 and token not in report.read_text()
    assert written["input"] == written["job"]["source"]["input"] == f"{base}/clip.mp4?X-Amz-Signature=***&X-Amz-Expires=600"
    assert main(["process", url.replace("clip", "nope"), "-o", str(tmp_path / "out.mkv"), "--model", "tiny", "-q"]) == 2
    err = capsys.readouterr().err
    assert "404 Not Found" in err and token not in err and "X-Amz-Signature=***" in err, err


def test_a_urls_password_stays_out_of_the_log_lines(tmp_path, served, capsys, caplog):
    """The lines saying a GIF drops the input's sound, or that the input has none, named the URL as given:
    `rtsp://admin:PASSWORD@...` or a signed link's token went to the terminal, a shared log, a bug report."""
    folder, base = served
    make_video(folder / "silent.mp4", n_frames=6, size=(64, 48))
    login = base.replace("http://", "http://admin:S3CRETPW@")
    for name, out in (("clip.mp4", "out.gif"), ("silent.mp4", "out.mkv")):
        url = f"{login}/{name}?X-Amz-Signature=S3CR3T-T0KEN"
        caplog.set_level("DEBUG", logger="birefvid")
        # --resolution 64: the lines are about the input's sound, not the model; tiny's 256² took most of the test's time
        assert main(["process", url, "-o", str(tmp_path / out), "--output", "mask", "--model", "tiny", "--resolution", "64", "-v"]) == 0
        err = capsys.readouterr().err + caplog.text
        caplog.clear()
        assert "S3CRETPW" not in err and "S3CR3T-T0KEN" not in err, err
        assert "admin:***@" in err, err  # the line is still there, naming the input


def test_an_error_line_or_a_log_line_hides_a_url_it_names_in_passing():
    """The last guard: whatever names a URL in running text (an error, a traceback under -v) shows it without its secrets."""
    import logging

    from birefvid.cli import CliLogFormatter
    from birefvid.urls import hide_urls_in

    text = "cannot open 'rtsp://admin:pw123456@cam/1' (refused), nor rtmp://live.example/app/sk-live-123, see out/a.mov"
    assert hide_urls_in(text) == "cannot open 'rtsp://admin:***@cam/1' (refused), nor rtmp://live.example/app/***, see out/a.mov"
    record = logging.LogRecord("birefvid.io.x", logging.WARNING, __file__, 1, "read %s", ("http://u:pw123456@h/x.mp4",), None)
    assert CliLogFormatter().format(record) == "birefvid: warning: read http://u:***@h/x.mp4"


def test_a_password_holding_a_quote_is_hidden_whole_in_running_text():
    """The URL in a line was taken to end at a quote, so a password holding one (FFmpeg takes it as typed) was cut
    there: `rtsp://admin:pa"ss@cam/1` printed `ss` and the host, `admin:it'sme` printed `sme`."""
    from birefvid.urls import hide_urls_in

    assert hide_urls_in('cannot open rtsp://admin:pa"ss@cam/1 (refused)') == "cannot open rtsp://admin:***@cam/1 (refused)"
    assert hide_urls_in("cannot open 'rtsp://admin:it'sme@cam/1'") == "cannot open 'rtsp://admin:***@cam/1'"
    assert hide_urls_in("see 'rtsp://cam/1' or mail bob@example.org") == "see 'rtsp://cam/1' or mail bob@example.org"


def test_batch_and_decord_say_what_to_do_with_a_url(served):
    _, base = served
    with pytest.raises(SourceError, match=r"^batch reads local files and folders .* run `birefvid process` on the URL"):
        expand_inputs([f"{base}/clip.mp4"])
    with pytest.raises(ConfigError, match=r"^decord reads local files only"):
        open_source(f"{base}/clip.mp4", decoder="decord")


@pytest.mark.parametrize("faststart", [False, True])
def test_live_plays_a_video_file_url_as_a_file(tmp_path, served, faststart):
    """An MP4 on a web server is read as a file by `live` (paced by --realtime, ending at its end), not
    probed as a stream: that could not find an index at the file's end, and each end counted as a lost
    stream with timestamps that ran away."""
    import av

    from birefvid.api import build_live_job, run_live

    folder, base = served
    name = "clip.mp4"
    if faststart:
        name = "clip_fast.mp4"
        with av.open(str(folder / "clip.mp4")) as src, av.open(str(folder / name), "w", options={"movflags": "+faststart"}) as out:
            streams = {s.index: out.add_stream_from_template(s) for s in src.streams}
            for packet in src.demux():
                if packet.dts is not None:
                    packet.stream = streams[packet.stream.index]
                    out.mux(packet)
    out_path = tmp_path / "rec.mkv"
    report = run_live(build_live_job(f"{base}/{name}", [str(out_path)], effect="mask", realtime=True), segmenter=red_key_segmenter())
    # every frame read, in its place: shown, or dropped by live pacing on a machine too loaded to keep up (CI
    # beside other work dropped one of the 12), never a lost stream's runaway times
    shown, whole = report["frames_shown"], decoded_times(folder / "clip.mp4")
    assert report["ended_by"] == "source ended" and shown + report["stats"]["dropped"] == 12 and shown >= 9, report
    recorded = decoded_times(out_path)
    assert len(recorded) == shown and set(recorded) <= set(whole) and recorded == sorted(recorded)


def test_a_server_without_range_requests_is_not_called_a_damaged_file(tmp_path, served, capsys):
    """python -m http.server sends whole files only: an MP4 whose index follows its frames (bigger than
    FFmpeg's read buffer) cannot be read from it. The file is fine, so the line says what is wrong."""
    import numpy as np

    folder, base = served
    noise = np.random.default_rng(0).integers(0, 256, size=(12, 256, 256, 3), dtype=np.uint8)
    make_video(folder / "moov_last.mp4", n_frames=12, size=(256, 256), frames=list(noise), with_audio=False)
    data = (folder / "moov_last.mp4").read_bytes()
    assert data.find(b"moov") > data.find(b"mdat") and len(data) > 200_000  # index after the frames, past the buffer
    url = f"{base}/moov_last.mp4"
    assert main(["process", url, "-o", str(tmp_path / "out.mkv"), "--output", "mask", "--model", "tiny", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"birefvid: error: {url}: reading stopped at frame 0"), err
    assert "HTTP range requests" in err[0] and "damaged" not in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_a_server_that_never_answers_is_one_line_saying_so(tmp_path, capsys, monkeypatch):
    """FFmpeg ends the wait with "Immediate exit requested"; the line says what happened instead."""
    import socket

    import birefvid.io.video_source as video_source

    monkeypatch.setattr(video_source, "URL_TIMEOUT_S", 1.0)
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/clip.mp4"
        assert main(["process", url, "-o", str(tmp_path / "out.mkv"), "--output", "mask", "--model", "tiny", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"birefvid: error: cannot read {url} (no answer within 1 s)"], err
    assert list(tmp_path.iterdir()) == []


def test_a_signed_urls_token_stays_out_of_the_audio_error_line(tmp_path, served):
    """The audio is opened on its own after the pictures: a link that stopped answering there (it
    expired, the server went away) gave an error line with the link's token in it."""
    import av

    from birefvid.errors import SinkError
    from birefvid.io.audio import AudioTracks

    _, base = served
    token = "S3CR3T-T0KEN"
    with av.open(str(tmp_path / "out.mkv"), "w") as out:
        with pytest.raises(SinkError) as error:
            AudioTracks(f"{base}/gone.mp4?X-Amz-Signature={token}", out, "matroska")
    assert token not in str(error.value) and "X-Amz-Signature=***" in str(error.value), str(error.value)


def test_a_server_that_stops_answering_after_the_pictures_ends_the_run_instead_of_hanging_it(tmp_path, served, monkeypatch):
    """The sound, subtitles and chapters are read over connections of their own, opened without the pictures'
    timeout: a server that stopped answering there hung process_video for good, and a notebook's stop button
    with it (the run's threads cannot leave a read that never returns)."""
    import birefvid.io.base as base
    import birefvid.io.video_source as video_source

    folder, _ = served
    monkeypatch.setattr(base, "URL_TIMEOUT_S", 1.0)
    monkeypatch.setattr(video_source, "URL_TIMEOUT_S", 1.0)
    data = (folder / "clip.mp4").read_bytes()

    def reply(conn: socket.socket, n: int) -> None:  # the pictures' connection gets the whole file; the others no answer
        if n == 0:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(data) + data)
            conn.close()

    outcome: list[BaseException] = []

    def run() -> None:
        try:
            process_video(url, tmp_path / "out.mkv", kind="mask", segmenter=red_key_segmenter(), smooth="none")
        except BaseException as e:  # noqa: BLE001 - checked below
            outcome.append(e)

    with _answering_server(reply) as url:
        runner = threading.Thread(target=run, daemon=True)
        runner.start()
        runner.join(timeout=20)
    assert not runner.is_alive(), "process_video still waits on a server that stopped answering"
    assert outcome and str(outcome[0]) == f"no answer from {url} within 1 s", outcome  # not a video without its sound
    assert list(tmp_path.iterdir()) == []


def test_a_server_whose_sound_stalls_partway_is_the_same_one_line(tmp_path, monkeypatch):
    """The sound's own connection stopping partway through a run ended it with the encode stage's
    "ExitError: [Errno 1414092869] Immediate exit requested"; now it is the line a URL that never answers gives."""
    import av

    import birefvid.io.base as base
    from birefvid.io.audio import AudioTrack

    monkeypatch.setattr(base, "URL_TIMEOUT_S", 1.0)
    clip = tmp_path / "clip.mp4"
    make_video(tmp_path / "slow.mp4", n_frames=50, size=(64, 48), with_audio=True)
    with av.open(str(tmp_path / "slow.mp4")) as src, av.open(str(clip), "w", options={"movflags": "+faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in src.streams}  # the index first: opens from the top
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    data = clip.read_bytes()

    def reply(conn: socket.socket, n: int) -> None:  # the whole length announced, a half sent, then nothing
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(data)
                     + data[: len(data) // 2])  # fmt: skip

    with _answering_server(reply) as url, av.open(str(tmp_path / "out.mka"), "w") as out:
        track = AudioTrack(url, out, "matroska")
        try:
            with pytest.raises(SourceError) as stalled:
                track.write_until(None)
        finally:
            track.close()
    assert str(stalled.value) == f"no answer from {url} within 1 s"


@contextlib.contextmanager
def _answering_server(reply: Callable[[socket.socket, int], None]) -> Iterator[str]:
    """A URL on 127.0.0.1 whose n-th connection gets ``reply(conn, n)`` and is then held open, unanswered, until the
    ``with`` ends: a server that stops answering, which a read without a timeout waits on for good."""
    done = threading.Event()

    def serve(listener: socket.socket) -> None:
        n = 0
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            reply(conn, n)
            n += 1
            threading.Thread(target=lambda c=conn: (done.wait(60), c.close()), daemon=True).start()

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    threading.Thread(target=serve, args=(listener,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/clip.mp4"
    finally:
        done.set()
        listener.close()
