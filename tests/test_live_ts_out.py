"""MPEG-TS publishing over UDP and TCP: Debian's ffmpeg, as the player, receives and decodes every frame sent."""

from __future__ import annotations

import contextlib
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from birefvid.errors import SinkError
from birefvid.io.live_audio import LiveAudioFeed
from birefvid.io.live_sinks import open_live_sink
from birefvid.io.ts_sink import MpegTsPublishSink, stream_url
from live_media import flash_and_tone, free_port, moving_bar_picture, open_when_listening, send_until_broken
from system_tools import need_binary

FPS = 24


def _receiver(url: str, folder: Path) -> subprocess.Popen:
    """ffmpeg reading ``url`` until the stream ends: every frame to out.md5 (framemd5) and out.rgb (raw RGB)."""
    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    each = ["-map", "0:v", "-fps_mode", "passthrough"]
    cmd = [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "warning", "-i", url,
        *each, "-enc_time_base", "1/90000", "-f", "framemd5", str(folder / "out.md5"),
        *each, "-pix_fmt", "rgb24", "-f", "rawvideo", str(folder / "out.rgb"),
    ]  # fmt: skip
    with open(folder / "ffmpeg.log", "w") as log:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)


def _udp_bound(port: int) -> bool:
    """Whether a UDP socket is bound to ``port`` (the receiver is ready: datagrams sent before are lost)."""
    needle = f":{port:04X} "
    return any(needle in line for name in ("/proc/net/udp", "/proc/net/udp6") for line in Path(name).read_text().splitlines()[1:])


def _wait(check, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _connect_tcp(url: str, **kw) -> MpegTsPublishSink:
    return open_when_listening(MpegTsPublishSink, url, **kw)


def _check_received(folder: Path, sent: list[np.ndarray], w: int, h: int) -> None:
    n = len(sent)
    lines = (folder / "out.md5").read_text().splitlines()
    frames = [line for line in lines if not line.startswith("#")]
    assert len(frames) == n, f"ffmpeg decoded {len(frames)} of {n} frames"
    tb = Fraction(next(line for line in lines if line.startswith("#tb 0:")).split(":")[1].strip())
    times = [float(int(line.split(",")[1]) * tb) for line in frames]
    assert np.allclose(np.diff(times), 1 / FPS, atol=0.0001), times[:5]
    ew, eh = w + w % 2, h + h % 2  # odd sizes are padded to even for yuv420p
    raw = np.fromfile(folder / "out.rgb", np.uint8)
    assert raw.size == n * eh * ew * 3
    got = raw.reshape(n, eh, ew, 3)[:, :h, :w]
    got = got[..., 1] if sent[0].ndim == 2 else got
    errors = [float(np.abs(g.astype(int) - s.astype(int)).mean()) for g, s in zip(got, sent)]
    assert max(errors) < 6, f"decoded frames differ from the sent ones by up to {max(errors):.1f} levels"
    for i in (1, n // 2, n - 2):  # each decoded frame is its own picture: nothing dropped, repeated or reordered
        for j in (i - 1, i + 1):
            assert errors[i] < float(np.abs(got[i].astype(int) - sent[j].astype(int)).mean())


@pytest.mark.parametrize("kind,w,h", [("rgb", 128, 96), ("gray", 63, 47)])
def test_udp_player_receives_every_frame(tmp_path, kind, w, h):
    port = free_port()
    proc = _receiver(f"udp://127.0.0.1:{port}?timeout=2000000", tmp_path)  # ends 2 s after the last datagram
    sent = [moving_bar_picture(i, w, h) for i in range(48)]
    if kind == "gray":
        sent = [p[..., 1].copy() for p in sent]
    try:
        _wait(lambda: _udp_bound(port) or proc.poll() is not None, 10, "ffmpeg to bind its UDP port")
        with MpegTsPublishSink(f"udp://127.0.0.1:{port}", width=w, height=h, fps=FPS, kind=kind) as sink:
            for i, pic in enumerate(sent):
                sink.send(pic, 5.0 + i / FPS)  # a live t need not start at 0: the stream does
                time.sleep(0.002)  # paced a little, as live frames are, so the receive buffer never overflows
        assert sink.frames_sent == len(sent)
        assert proc.wait(timeout=20) == 0, (tmp_path / "ffmpeg.log").read_text()
    finally:
        proc.kill()
        proc.wait()
    _check_received(tmp_path, sent, w, h)



def test_a_stream_says_the_sources_pixel_shape(tmp_path):
    """A D1 camera's 704x576 is 4:3 only with its 12:11 pixels: the re-stream's H.264 says so (its VUI),
    so a player shows the scene as the camera does; it was sent with square pixels, squeezed."""
    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    port = free_port()
    with open(tmp_path / "ffmpeg.log", "w") as log:
        proc = subprocess.Popen([ffmpeg, "-nostdin", "-loglevel", "warning", "-i", f"udp://127.0.0.1:{port}?timeout=2000000",
                                 "-map", "0:v", "-c", "copy", str(tmp_path / "got.ts")], stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip
    try:
        _wait(lambda: _udp_bound(port) or proc.poll() is not None, 10, "ffmpeg to bind its UDP port")
        sink = open_live_sink(f"udp://127.0.0.1:{port}", width=176, height=144, fps=FPS, kind="rgb", sample_aspect_ratio=Fraction(12, 11))
        with sink:
            for i in range(24):
                sink.send(moving_bar_picture(i, 176, 144), i / FPS)
                time.sleep(0.002)
        assert proc.wait(timeout=20) == 0, (tmp_path / "ffmpeg.log").read_text()
    finally:
        proc.kill()
        proc.wait()
    with av.open(str(tmp_path / "got.ts")) as c:
        stream = c.streams.video[0]
        assert (stream.width, stream.height) == (176, 144)
        assert stream.sample_aspect_ratio == Fraction(12, 11)

def test_tcp_player_receives_every_frame_and_its_leaving_is_an_error(tmp_path):
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = _receiver(f"{url}?listen=1&listen_timeout=20000", tmp_path)
    w, h = 96, 64
    sent = [moving_bar_picture(i, w, h) for i in range(30)]
    try:
        with _connect_tcp(url, width=w, height=h, fps=FPS, kind="rgb") as sink:
            for i, pic in enumerate(sent):
                sink.send(pic, i / FPS)
        assert proc.wait(timeout=20) == 0, (tmp_path / "ffmpeg.log").read_text()
    finally:
        proc.kill()
        proc.wait()
    _check_received(tmp_path, sent, w, h)

    proc = _receiver(f"{url}?listen=1&listen_timeout=20000", tmp_path)
    try:
        sink = _connect_tcp(url, width=w, height=h, fps=FPS, kind="rgb")
        sink.send(sent[0], 0.0)
    finally:
        proc.kill()
        proc.wait()
    send_until_broken(sink, lambda i: sent[i % len(sent)], 1, FPS, f"^sending to {url} failed after")


def test_no_tcp_listener_fails_at_once_naming_the_url():
    url = f"tcp://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(SinkError, match=f"^cannot send to {url}: .*refused.*listening there") as info:
        MpegTsPublishSink(url, width=64, height=48, fps=FPS, kind="rgb", open_timeout=2.0)
    assert time.monotonic() - t0 < 2.5 and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "url,match",
    [
        ("udp://127.0.0.1", r"needs a host and a port \(0 to 65535\), e.g. udp://127.0.0.1:5000"),
        ("tcp://127.0.0.1:5000?listen=1", "cannot wait for one to connect; for players that connect, use the sink 'udp://...'"),
        ("udp://@:5000", r"e.g. udp://127.0.0.1:5000 \(udp://@:PORT is what the player listens on; here give the player's address\)"),
        ("udp://obs-pc.invalid:5000", r"^cannot send to udp://obs-pc.invalid:5000: unknown host 'obs-pc.invalid' \(.*\); check the name"),
        ("tcp://obs-pc.invalid:5000", r"^cannot send to tcp://obs-pc.invalid:5000: unknown host 'obs-pc.invalid'"),
    ],
)
def test_bad_addresses_say_what_to_do(url, match):
    with pytest.raises(SinkError, match=match):
        MpegTsPublishSink(url, width=64, height=48, fps=FPS, kind="rgb")


def test_stream_options_are_added_unless_given():
    assert stream_url("udp://10.0.0.2:5000", 5) == "udp://10.0.0.2:5000?pkt_size=1316"
    assert stream_url("udp://10.0.0.2:5000?pkt_size=188&ttl=4", 5) == "udp://10.0.0.2:5000?pkt_size=188&ttl=4"
    assert stream_url("tcp://player:9000", 1.5) == "tcp://player:9000?timeout=1500000"


def test_srt_without_libsrt_says_how_to_get_srt():
    # PyAV's PyPI wheels carry no libsrt; where a build has it this test has nothing to check
    try:
        with av.open("srt://127.0.0.1:1?connect_timeout=100", "w", format="mpegts") as probe:
            probe.add_stream("mpeg1video", rate=24).width = 16
            probe.start_encoding()
    except av.ProtocolNotFoundError:
        pass
    except (av.FFmpegError, OSError, ValueError):
        pytest.skip("this PyAV's FFmpeg has SRT")
    with pytest.raises(SinkError, match=r"^cannot send to srt://127.0.0.1:9000: this FFmpeg build \(PyAV's\) cannot send srt://.*MediaMTX"):
        MpegTsPublishSink("srt://127.0.0.1:9000", width=64, height=48, fps=FPS, kind="rgb")


def test_alpha_is_refused_with_a_file_sink_hint():
    with pytest.raises(SinkError, match=r"no alpha.*\.webm, \.mov or \.mkv"):
        MpegTsPublishSink("udp://127.0.0.1:5000", width=64, height=48, fps=FPS, kind="rgba")


def test_sound_lands_with_its_pictures_when_the_stream_starts_after_it(tmp_path):
    """The stream's clock starts at its first picture (0.3 s into the source here); the sound captured
    before that is left out rather than moved, so the tone and the flash at 1.5 s stay together."""
    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    port = free_port()
    rx = subprocess.Popen([ffmpeg, "-nostdin", "-loglevel", "error", "-analyzeduration", "500000", "-i",
                           f"udp://127.0.0.1:{port}?timeout=2000000", "-map", "0", "-c", "copy", str(tmp_path / "rx.mkv")],
                          stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait(lambda: _udp_bound(port) or rx.poll() is not None, 10, "ffmpeg to bind its UDP port")
        feed, rate, done = LiveAudioFeed(48000, "mono"), 48000, 0
        feed.set_offset(0, 0.0)  # as the live runner does at the first picture it shows
        with MpegTsPublishSink(f"udp://127.0.0.1:{port}", width=64, height=48, fps=25, kind="rgb", audio=feed) as sink:
            for i in range(75):
                t = 0.3 + i / 25
                while done < round((t + 0.04) * rate):  # the capture runs a frame ahead of the display
                    at = np.arange(done, done + 1024) / rate
                    tone = np.where((at >= 1.5) & (at < 2.5), 0.5 * np.sin(2 * np.pi * 440 * at), 0.0).astype(np.float32)
                    frame = av.AudioFrame.from_ndarray(tone[None], format="fltp", layout="mono")
                    frame.sample_rate = rate
                    feed.push(done / rate, frame)
                    done += 1024
                sink.send(np.full((48, 64, 3), 230 if 1.5 <= t < 2.5 else 30, np.uint8), t)
                time.sleep(0.005)
        assert rx.wait(timeout=20) == 0
    finally:
        rx.kill()
        rx.wait()
    bright, tone, video_end, sound_end = flash_and_tone(tmp_path / "rx.mkv")
    assert bright is not None and tone is not None and abs(bright - tone) < 0.005, (bright, tone)
    assert abs(sound_end - video_end) < 0.05, (video_end, sound_end)


def test_a_reopened_stream_goes_on_with_the_runs_clock(tmp_path):
    """A receiver that stays open while the stream is reopened (a UDP player, OBS; here one byte
    stream fed by both TCP connections) must see the clock go on, later by the outage, sound too:
    the reopened stream started again at 0, so the receiver saw its clock go back and froze."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    parts: list[bytearray] = [bytearray(), bytearray()]

    def receive() -> None:  # the first connection is reset after half a second; the second is read to its end
        for part in parts:
            conn, _ = listener.accept()
            opened = time.monotonic()
            with conn:
                while data := conn.recv(65536):
                    part.extend(data)
                    if part is parts[0] and time.monotonic() - opened > 0.5:
                        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")  # close with a reset
                        break

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    rate, fps, done = 48000, 25, 0
    feed = LiveAudioFeed(rate, "mono")
    feed.set_offset(0, 7.0)  # as the live runner does: the source's sound starts with its first picture, at 7 s
    sink = open_live_sink(f"tcp://127.0.0.1:{port}", width=64, height=48, fps=fps, kind="rgb", audio=feed)
    times: list[float] = []
    after = 0  # pictures sent since the stream came back
    start = time.monotonic()
    with listener, sink:
        for i in range(int(8 * fps)):
            t = 7.0 + i / fps  # the run's clock: the source's, past 0 when the stream opens
            while done < round((t - 7.0 + 0.04) * rate):
                frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                frame.sample_rate = rate
                feed.push(done / rate, frame)
                done += 1024
            sink.send(np.full((48, 64, 3), 20 + 2 * (i % 100), np.uint8), t)
            times.append(t)
            after += sink.reconnects > 0
            if after > fps // 2:
                break
            time.sleep(max(0.0, start + i / fps - time.monotonic()))  # in real time: the outage lasts what reopening takes
    receiver.join(5)
    assert sink.reconnects == 1 and parts[1], "the stream was not reopened"

    (tmp_path / "stayed.ts").write_bytes(parts[0] + parts[1])  # what a receiver that stayed open reads
    (tmp_path / "rejoined.ts").write_bytes(parts[1])  # what a player that connected again reads
    with av.open(str(tmp_path / "stayed.ts")) as c:
        pts = {"video": [], "audio": []}
        for packet in c.demux():
            if packet.pts is not None:
                pts[packet.stream.type].append(float(packet.pts * packet.time_base))
    for kind, seen in pts.items():
        assert seen and all(b > a for a, b in zip(seen, seen[1:])), f"the {kind} clock went back: {seen}"
    with av.open(str(tmp_path / "rejoined.ts")) as c:  # it plays by itself too, from a keyframe
        packets = [p for p in c.demux() if p.pts is not None]
        sound = next(float(p.pts * p.time_base) for p in packets if p.stream.type == "audio")
        first = next(f for p in packets if p.stream.type == "video" for f in p.decode())
        index = len(times) - sum(p.stream.type == "video" for p in packets)  # the first picture the reopened stream carried
    shown = float(first.pts * first.time_base)
    # the reopened stream's first picture sits where the run's clock has it, past the outage's skipped pictures
    assert index > 3 and abs(shown - (times[index] - times[0])) < 0.03, (shown, index)
    assert abs(sound - shown) < 0.05, (sound, shown)  # its sound with it


def test_pictures_keep_flowing_while_the_sources_sound_stops(tmp_path):
    """A camera with a microphone goes away: the run goes on sending its last picture, but no sound comes.
    FFmpeg's muxer holds pictures for sound up to 10 s by default, so a UDP player got nothing for 10 s
    (and one joining then, nothing at all), then everything 10 s late. The pictures must arrive as they are sent."""
    import socket

    fps, rate, done = 25, 48000, 0
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.05)
    port = receiver.getsockname()[1]
    feed = LiveAudioFeed(rate, "mono")
    feed.set_offset(0, 0.0)  # as the live runner does at the first picture it shows
    got = bytearray()
    with receiver, MpegTsPublishSink(f"udp://127.0.0.1:{port}", width=64, height=48, fps=fps, kind="rgb", audio=feed) as sink:
        start = time.monotonic()
        for i in range(4 * fps):  # 1 s with sound, then 3 s of held pictures without any
            t = i / fps
            while t < 1.0 and done < round((t + 0.04) * rate):
                frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                frame.sample_rate = rate
                feed.push(done / rate, frame)
                done += 1024
            sink.send(np.full((48, 64, 3), 20 + i, np.uint8), t)
            while (wait := start + (i + 1) / fps - time.monotonic()) > 0 or not got:  # in real time, reading as a player does
                try:
                    got.extend(receiver.recv(65536))
                except socket.timeout:
                    if wait <= 0:
                        break
        with contextlib.suppress(socket.timeout):
            while True:  # what had arrived before the stream was closed (closing sends whatever was held)
                got.extend(receiver.recv(65536))
    (tmp_path / "rx.ts").write_bytes(got)
    with av.open(str(tmp_path / "rx.ts")) as c:
        shown = [float(p.pts * p.time_base) for p in c.demux(video=0) if p.pts is not None]
    # 0.5 s is what the muxer may hold pictures for sound now; the last 0.5 s more for a loaded machine's reading
    assert shown and max(shown) - min(shown) > 2.9, f"pictures received up to {max(shown, default=0) - min(shown, default=0):.2f} s of 3.96 s sent"
