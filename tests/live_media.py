"""Test helpers for live sources: an H.264 clip made with PyAV and a real RTSP server around it.

``make_clip`` writes a moving coloured square as H.264 without B-frames and with a short GOP, so a
client that connects or reconnects mid-stream gets a keyframe within half a second.
``RtspServer`` runs ``tests/rtsp_server.py`` (GStreamer's RTSP server, under the distribution's
Python, which has ``gi``) as a subprocess on 127.0.0.1; it waits, bounded, until the port accepts
connections, and the server exits by itself after ``max_seconds`` even if a test forgets it.
"""

from __future__ import annotations

import select
import socket
import subprocess
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional, Sequence

import av
import numpy as np

from system_tools import need_system_python_module

SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
# gi, the RTSP server library, and the elements: qtdemux + rtph264pay (good), h264parse (bad)
GST_PACKAGES = "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"
_PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
    "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
    "missing = [e for e in ('filesrc', 'qtdemux', 'h264parse', 'rtph264pay') if not Gst.ElementFactory.find(e)]; "
    "assert not missing, missing"
)


def square_frame(index: int, size: tuple[int, int]) -> np.ndarray:
    """A dark blue RGB frame with an orange square that moves 3 px to the right per frame."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 2] = 90
    side = max(h // 6, 4)
    x = (index * 3) % (w - side)
    img[h // 2 - side // 2 : h // 2 + side // 2, x : x + side] = (255, 160, 0)
    return img


def make_clip(path: Path, seconds: float = 4.0, size: tuple[int, int] = (160, 120), fps: int = 24, gop: int = 12) -> Path:
    """Write an H.264 .mp4 (no B-frames, a keyframe every ``gop`` frames) of the moving square."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {
            "bf": "0", "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0",
            "preset": "ultrafast", "tune": "zerolatency",
        }
        for i in range(round(seconds * fps)):
            for packet in stream.encode(av.VideoFrame.from_ndarray(square_frame(i, size), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def make_ts_stamped_twice(path: Path, seconds: float, size: tuple[int, int] = (96, 64), fps: int = 24) -> Path:
    """An H.264 MPEG-TS of the moving square whose pictures come at ``fps`` but stamped on a clock of
    half that rate, each time twice (0, 0, 1/12, 1/12, ...), as some IP cameras send them."""
    step = 90000 * 2 // fps  # one tick of the coarse clock, in the 90 kHz units of MPEG-TS
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.options = {"bf": "0", "g": str(fps // 2), "preset": "ultrafast", "tune": "zerolatency"}
        frames = [av.VideoFrame.from_ndarray(square_frame(i, size), format="rgb24") for i in range(round(seconds * fps))]
        packets = [p for f in [*frames, None] for p in stream.encode(f)]
        for k, packet in enumerate(packets):
            packet.time_base = Fraction(1, 90000)
            packet.pts = 90000 + (k // 2) * step
            packet.dts = packet.pts - (1 - k % 2)  # the muxer wants increasing dts; the pictures' times repeat
            out.mux(packet)
    return path


def moving_bar_picture(i: int, w: int, h: int) -> np.ndarray:
    """Smooth gradient with a bright bar that moves 3 px a frame, so every frame differs from its neighbours."""
    y, x = np.mgrid[0:h, 0:w]
    pic = np.dstack([x * 200 // w + 30, y * 200 // h + 30, np.full_like(x, 90)]).astype(np.uint8)
    col = (i * 3) % (w - 8)
    pic[:, col : col + 8] = (250, 240, 20)
    return pic


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def stop_server(proc: Optional[subprocess.Popen[Any]], terminate: bool = False) -> str:
    """End a server a test started (killed, or sent SIGTERM with ``terminate``; nothing if None) and
    return what it wrote on stderr."""
    if proc is None:
        return ""
    if proc.poll() is None:
        proc.terminate() if terminate else proc.kill()
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err.decode(errors="replace") if isinstance(err, bytes) else (err or "")


def rtsp_server_python() -> str:
    """/usr/bin/python3 once it can run GStreamer's RTSP server; skips (fails under CI) otherwise."""
    return need_system_python_module(_PROBE, GST_PACKAGES)


class RtspServer:
    """``tests/rtsp_server.py`` serving ``clip`` at rtsp://127.0.0.1:PORT/cam, startable again on the same port."""

    def __init__(self, clip: Path, port: Optional[int] = None, path: str = "/cam", max_seconds: float = 60.0, audio: bool = False,
                 udp_only: bool = False, auth: Optional[str] = None, digest: bool = False, g711: Optional[str] = None) -> None:
        self.python = rtsp_server_python()
        self.clip = clip
        self.audio = audio  # serve the clip's AAC track too
        self.udp_only = udp_only  # refuse RTP over the RTSP connection, as some cameras do
        self.auth = auth  # "USER:PASSWORD" a client must give, as IP cameras ask (401 otherwise)
        self.digest = digest  # ask for it by HTTP Digest alone, as Hikvision and Dahua cameras do
        self.g711 = g711  # "pcmu" or "pcma": a .mkv's sound sent as 8 kHz G.711, as most IP cameras send theirs
        self.port = port or free_port()
        self.path = path
        self.max_seconds = max_seconds
        self.url = f"rtsp://127.0.0.1:{self.port}{path}"
        self._proc: Optional[subprocess.Popen[str]] = None

    def start(self, timeout: float = 15.0) -> "RtspServer":
        """Run the server and return once it printed ``ready`` and its port accepts connections."""
        if self._proc is not None:
            raise RuntimeError("the RTSP server is running already")
        cmd = [self.python, str(SERVER_SCRIPT), "--port", str(self.port), "--file", str(self.clip),
               "--path", self.path, "--max-seconds", str(self.max_seconds), *(["--audio"] if self.audio else []),
               *(["--udp-only"] if self.udp_only else []), *(["--auth", self.auth] if self.auth else []),
               *(["--digest"] if self.digest else []), *(["--g711", self.g711] if self.g711 else [])]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        line = ""
        while not line.startswith("ready") and time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            ready, _, _ = select.select([self._proc.stdout], [], [], 0.2)
            if ready:
                line = self._proc.stdout.readline()  # type: ignore[union-attr]
        while line.startswith("ready") and not _accepts(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not (line.startswith("ready") and _accepts(self.port)):
            err = self.stop()
            raise RuntimeError(f"RTSP server did not come up on port {self.port} within {timeout:g} s: {err.strip()}")
        return self

    def stop(self) -> str:
        """Kill the server (idempotent) and return what it wrote on stderr."""
        proc, self._proc = self._proc, None
        return stop_server(proc)

    def __enter__(self) -> "RtspServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_flash_clip(path: Path, seconds: float = 3.0, flash: tuple[float, float] | Sequence[tuple[float, float]] = (1.0, 2.0),
                    fps: int = 25, size: tuple[int, int] = (160, 120), rate: int = 48000) -> Path:  # fmt: skip
    """An H.264 (with B-frames) + AAC .mp4 whose picture turns white and whose sound plays a 440 Hz
    tone over the same ``flash`` seconds (one (start, end) span, or a list of them): where the two
    land in a recording shows its sync."""
    spans = [flash] if isinstance(flash[0], (int, float)) else list(flash)  # type: ignore[list-item]
    w, h = size
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "bf": "2", "g": str(fps)})
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        sound = out.add_stream("aac", rate=rate)
        sound.codec_context.layout = "mono"
        done = 0
        for i in range(round(seconds * fps)):
            lit = any(a <= i / fps < b for a, b in spans)
            out.mux(video.encode(av.VideoFrame.from_ndarray(np.full((h, w, 3), 230 if lit else 30, np.uint8), format="rgb24")))
            stop = round((i + 1) / fps * rate)
            while done < stop:
                n = min(1024, stop - done)
                t = np.arange(done, done + n) / rate
                on = np.logical_or.reduce([(t >= a) & (t < b) for a, b in spans])
                tone = np.where(on, 0.5 * np.sin(2 * np.pi * 440 * t), 0.0)
                frame = av.AudioFrame.from_ndarray(tone.astype(np.float32)[None], format="fltp", layout="mono")
                frame.sample_rate, frame.pts = rate, done
                out.mux(sound.encode(frame))
                done += n
        out.mux(video.encode(None))
        out.mux(sound.encode(None))
    return path


def make_camera_clip(path: Path, seconds: float, flash: Sequence[tuple[float, float]] = (), slow: Sequence[tuple[float, float]] = (),
                     fps: int = 25, slow_fps: float = 2, size: tuple[int, int] = (96, 64), rate: int = 8000) -> Path:  # fmt: skip
    """An IP camera's main stream as a Matroska file: H.265 (no B-frames, a keyframe a second) and 16-bit
    mono PCM at ``rate`` (which ``tests/rtsp_server.py --g711`` sends as G.711). The picture turns white and
    a 440 Hz tone plays over each ``flash`` span, as ``make_flash_clip``'s do; over each ``slow`` span the
    pictures come ``slow_fps`` a second instead of ``fps``, as a camera's "smart codec" sends a still scene
    (a variable frame rate: the times, in milliseconds, say when each picture was taken)."""
    w, h = size
    times: list[float] = []
    t = 0.0
    while t < seconds - 1e-9:
        times.append(t)
        t += 1 / (slow_fps if any(a <= t < b for a, b in slow) else fps)
    with av.open(str(path), "w", format="matroska") as out:
        video = out.add_stream("libx265", rate=fps)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        video.time_base = Fraction(1, 1000)
        video.codec_context.time_base = Fraction(1, 1000)
        video.options = {"preset": "ultrafast", "x265-params": f"bframes=0:keyint={fps}:min-keyint=1:log-level=error"}
        sound = out.add_stream("pcm_s16le", rate=rate)
        sound.codec_context.layout = "mono"
        done = 0
        for k, at in enumerate(times):
            lit = any(a <= at < b for a, b in flash)
            frame = av.VideoFrame.from_ndarray(np.full((h, w, 3), 230 if lit else 30, np.uint8), format="rgb24")
            frame.pts, frame.time_base = round(at * 1000), Fraction(1, 1000)
            out.mux(video.encode(frame))
            stop = round((times[k + 1] if k + 1 < len(times) else seconds) * rate)
            while done < stop:
                n = min(800, stop - done)
                s = np.arange(done, done + n) / rate
                on = np.logical_or.reduce([(s >= a) & (s < b) for a, b in flash]) if flash else np.zeros(n, bool)
                tone = np.where(on, 0.5 * np.sin(2 * np.pi * 440 * s), 0.0)
                chunk = av.AudioFrame.from_ndarray((tone * 32767).astype(np.int16)[None], format="s16", layout="mono")
                chunk.sample_rate, chunk.pts = rate, done
                out.mux(sound.encode(chunk))
                done += n
        out.mux(video.encode(None))
        out.mux(sound.encode(None))
    return path


def _brightness_and_sound(path: Path) -> tuple[list[tuple[float, float]], float, int, np.ndarray]:
    """((time, mean grey level) of each frame, the sound's start, its rate, its mono samples) of ``path``."""
    with av.open(str(path)) as c:
        frames = [(float(f.pts * f.time_base), f.to_ndarray(format="gray").mean()) for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        decoded = list(c.decode(audio=0))
        rate = c.streams.audio[0].codec_context.sample_rate
    start = float(decoded[0].pts * decoded[0].time_base)
    return frames, start, rate, np.concatenate([f.to_ndarray().mean(axis=0) for f in decoded])


def flash_and_tone(path: Path) -> tuple[Optional[float], Optional[float], float, float]:
    """(when the picture turns bright, when the tone starts, the video's end, the sound's end), in seconds."""
    frames, start, rate, samples = _brightness_and_sound(path)
    loud = np.nonzero(np.abs(samples) > 0.1)[0]
    step = float(np.median(np.diff([t for t, _ in frames]))) if len(frames) > 1 else 0.0  # a frame's length
    bright = next((t for t, level in frames if level > 128), None)
    return bright, (start + loud[0] / rate if len(loud) else None), frames[-1][0] + step, start + len(samples) / rate


def open_when_listening(sink_class: type, url: str, seconds: float = 10.0, **kw: object) -> Any:
    """``sink_class(url, open_timeout=2, **kw)`` once its receiver listens (ffmpeg takes a moment to
    bind): a refused connection is retried for up to ``seconds``."""
    from birefvid.errors import SinkError

    deadline = time.monotonic() + seconds
    while True:
        try:
            return sink_class(url, open_timeout=2.0, **kw)
        except SinkError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def send_until_broken(sink: Any, picture_at: Any, first: int, fps: float, match: str, seconds: float = 10.0) -> None:
    """Keep sending ``picture_at(i)`` from frame ``first`` on to a sink whose receiver is gone, until
    the SinkError matching ``match`` comes (the kernel may buffer a few frames before a broken pipe
    shows); fail if it has not within ``seconds``. The sink is aborted after, twice (idempotent)."""
    import pytest

    from birefvid.errors import SinkError

    deadline = time.monotonic() + seconds
    with pytest.raises(SinkError, match=match):
        for i in range(first, first + 5000):
            assert time.monotonic() < deadline, "sending kept succeeding after the receiver left"
            sink.send(picture_at(i), i / fps)
    sink.abort()
    sink.abort()


def flash_and_tone_onsets(path: Path) -> tuple[list[tuple[float, float]], list[float]]:
    """Every time the picture turns bright, as (the last dark picture's time, the first bright one's),
    and every time a tone starts (after 0.2 s of quiet), in seconds. The flash began somewhere between
    the two pictures: a live recording opens on the still the model warmed up on, and drops pictures
    when it falls behind, so the two can lie far apart."""
    frames, start, rate, samples = _brightness_and_sound(path)
    loud = np.abs(samples) > 0.1
    flashes = [(t_before, t) for (t, level), (t_before, before) in zip(frames[1:], frames[:-1]) if level > 128 >= before]
    tones: list[float] = []
    last = -1.0
    for i in np.nonzero(loud)[0]:
        t = start + i / rate
        if t - last > 0.2:
            tones.append(t)
        last = t
    return flashes, tones


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 free now, for a test's sender and the live source that listens on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_count(src: Any, count: int, within: float) -> list:
    """The pictures a live source gives until there are ``count``, waiting up to ``within`` s (generous: a count
    of pictures seen in a fixed time measures the machine's load as much as the source)."""
    frames, end = [], time.monotonic() + within
    while len(frames) < count and time.monotonic() < end:
        f = src.read(min(1.0, end - time.monotonic()))
        if f is not None:
            frames.append(f)
    return frames


def read_for(src: Any, seconds: float) -> list:
    """Every picture a live source (``birefvid.io.live_base.LiveSource``) gives in ``seconds``."""
    frames, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        f = src.read(end - time.monotonic())
        if f is not None:
            frames.append(f)
    return frames
