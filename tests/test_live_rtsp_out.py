"""RTSP publishing: Debian's ffmpeg, listening as an RTSP server, receives and decodes every frame sent."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from birefvid.errors import SinkError
from birefvid.io.rtsp_sink import RtspPublishSink
from live_media import free_port, moving_bar_picture, open_when_listening, send_until_broken
from system_tools import need_binary

FPS = 24



def _receiver(ffmpeg: str, url: str, folder: Path) -> subprocess.Popen:
    """ffmpeg as a one-shot RTSP server: every received frame goes to out.md5 (framemd5) and out.rgb (raw RGB)."""
    each = ["-map", "0:v", "-fps_mode", "passthrough"]
    cmd = [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "warning", "-rtsp_flags", "listen", "-listen_timeout", "20",
        "-i", url, *each, "-enc_time_base", "1/90000", "-f", "framemd5", str(folder / "out.md5"),
        *each, "-pix_fmt", "rgb24", "-f", "rawvideo", str(folder / "out.rgb"),
    ]
    with open(folder / "ffmpeg.log", "w") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)


def _connect(url: str, **kw) -> RtspPublishSink:
    return open_when_listening(RtspPublishSink, url, **kw)


@pytest.mark.parametrize("kind,w,h", [("rgb", 128, 96), ("gray", 63, 47)])
def test_ffmpeg_receives_every_frame(tmp_path, kind, w, h):
    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    url = f"rtsp://127.0.0.1:{free_port()}/out"
    proc = _receiver(ffmpeg, url, tmp_path)
    n = 48
    sent = [moving_bar_picture(i, w, h) for i in range(n)]
    if kind == "gray":
        sent = [p[..., 1].copy() for p in sent]
    try:
        sink = _connect(url, width=w, height=h, fps=FPS, kind=kind)
        time.sleep(0.5)  # as in live mode, where the model warms up after the sinks opened
        with sink:
            for i, pic in enumerate(sent):
                sink.send(pic, i / FPS)
        assert sink.frames_sent == n
        assert proc.wait(timeout=20) == 0, (tmp_path / "ffmpeg.log").read_text()
    finally:
        proc.kill()
        proc.wait()

    lines = (tmp_path / "out.md5").read_text().splitlines()
    frames = [line for line in lines if not line.startswith("#")]
    assert len(frames) == n, f"ffmpeg decoded {len(frames)} of {n} frames"
    tb = Fraction(next(line for line in lines if line.startswith("#tb 0:")).split(":")[1].strip())
    times = [float(int(line.split(",")[1]) * tb) for line in frames]
    # ffmpeg's RTSP demuxer leaves the first packet unstamped (its CLI then uses 0): check from the second on
    assert np.allclose(np.diff(times[1:]), 1 / FPS, atol=0.0001), times[:5]

    ew, eh = w + w % 2, h + h % 2  # odd sizes are padded to even for yuv420p
    raw = np.fromfile(tmp_path / "out.rgb", np.uint8)
    assert raw.size == n * eh * ew * 3
    got = raw.reshape(n, eh, ew, 3)[:, :h, :w]
    got = got[..., 1] if kind == "gray" else got
    errors = [float(np.abs(g.astype(int) - s.astype(int)).mean()) for g, s in zip(got, sent)]
    assert max(errors) < 6, f"decoded frames differ from the sent ones by up to {max(errors):.1f} levels"
    # each decoded frame is its own picture, not a neighbour's (nothing dropped, repeated or reordered)
    for i in (1, n // 2, n - 2):
        own = errors[i]
        for j in (i - 1, i + 1):
            assert own < float(np.abs(got[i].astype(int) - sent[j].astype(int)).mean())


def test_stream_time_starts_at_the_first_picture_not_at_open():
    """A player's clock (FFmpeg's, taken from RTCP sender reports) reads t for the picture sent at t."""
    url = f"rtsp://127.0.0.1:{free_port()}/out"
    got: list = []

    def receive() -> None:
        with av.open(url, options={"rtsp_flags": "listen", "listen_timeout": "15"}) as c:
            got.extend((p.pts, p.time_base) for p in c.demux(c.streams.video[0]) if p.size)

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    sink = _connect(url, width=64, height=48, fps=FPS, kind="rgb")
    time.sleep(0.5)  # the first picture comes well after the stream was announced
    with sink:
        for i in range(6):
            sink.send(moving_bar_picture(i, 64, 48), i / FPS)
    receiver.join(timeout=15)
    assert not receiver.is_alive() and len(got) == 6
    # the first packet has no pts (FFmpeg's demuxer), the others sit at i/FPS, not 0.5 s early
    times = [float(pts * tb) for pts, tb in got[1:]]
    assert np.allclose(times, [i / FPS for i in range(1, 6)], atol=0.01), times


def test_unreachable_or_silent_server_fails_fast_naming_the_url():
    url = f"rtsp://127.0.0.1:{free_port()}/live"
    t0 = time.monotonic()
    with pytest.raises(SinkError, match=f"^cannot publish to {url}: .*RTSP server") as info:
        RtspPublishSink(url, width=64, height=48, fps=FPS, kind="rgb", open_timeout=2.0)
    assert time.monotonic() - t0 < 2.5 and "\n" not in str(info.value)

    with socket.socket() as silent:  # accepts TCP connections but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"rtsp://127.0.0.1:{silent.getsockname()[1]}/live"
        t0 = time.monotonic()
        with pytest.raises(SinkError, match=f"^cannot publish to {url}: no RTSP answer"):
            RtspPublishSink(url, width=64, height=48, fps=FPS, kind="rgb", open_timeout=1.0)
        # the 1 s open timeout and ffmpeg's start (1.1-1.2 s here); a silent server is otherwise waited on for ever
        assert time.monotonic() - t0 < 8.0


def test_a_mistyped_host_is_named_not_an_input_output_error():
    """FFmpeg says only 'Input/output error' for a name that does not resolve."""
    url = "rtsp://mediamtx.invalid:8554/live"
    with pytest.raises(SinkError, match=r"^cannot publish to rtsp://mediamtx.invalid:8554/live: unknown host 'mediamtx.invalid'"):
        RtspPublishSink(url, width=64, height=48, fps=FPS, kind="rgb", open_timeout=1.0)


def test_alpha_is_refused_with_a_file_sink_hint():
    with pytest.raises(SinkError, match=r"no alpha.*\.webm, \.mov or \.mkv"):
        RtspPublishSink("rtsp://127.0.0.1:1/x", width=64, height=48, fps=FPS, kind="rgba")


def test_receiver_going_away_is_a_sink_error(tmp_path):
    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    url = f"rtsp://127.0.0.1:{free_port()}/out"
    proc = _receiver(ffmpeg, url, tmp_path)
    try:
        sink = _connect(url, width=64, height=48, fps=FPS, kind="rgb")
        for i in range(5):
            sink.send(moving_bar_picture(i, 64, 48), i / FPS)
    finally:
        proc.kill()
        proc.wait()
    send_until_broken(sink, lambda i: moving_bar_picture(i, 64, 48), 5, FPS, f"^publishing to {url} failed after")
