"""Helpers for the end-to-end tests of ``birefvid live`` (tests/test_live_e2e.py).

* ``scene_clip`` writes an H.264 clip of the procedural scenes the shipped ``tiny`` model was
  trained on (``birefvid.data.make_clip``), so its masks are good enough at 64 px for a test to
  see the key colour where the background is; no B-frames and a short GOP, so an RTSP client that
  (re)connects mid-stream gets a keyframe within half a second.
* ``LiveRun`` runs ``python -m birefvid.cli live ...`` as a subprocess with its output in files
  (no pipe can fill up and stall it) and kills it, bounded, whatever happens in the test.
* ``xvfb`` starts a private X server; ``chromium_screenshot`` loads a page in headless Chromium;
  ``listening`` tells whether a TCP port listens without connecting to it (ffmpeg's RTSP listen
  mode takes exactly one connection, so a probe would use it up).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import av
import cv2
import numpy as np
import pytest

from system_tools import need_binary, own_temp_dir

MAGENTA = (255, 0, 255)
GREEN = (0, 255, 0)


# ---------------------------------------------------------------- media


def scene_clip(
    path: Path, seconds: float, size: tuple[int, int] = (160, 120), fps: int = 24, gop: int = 12, seed: int = 7,
    unique_seconds: float = 6.0,
) -> Path:
    """An H.264 .mp4 of ``make_clip(seed)``: one vivid subject moving over a muted, panning background.

    Only ``unique_seconds`` of scenes are rendered (that is the slow part); a longer clip plays
    them forwards and backwards in turn, so the motion never jumps.
    """
    from birefvid.data import make_clip

    w, h = size
    n = round(seconds * fps)
    scenes = [image for image, _ in make_clip(seed, min(n, max(2, round(unique_seconds * fps))), (h, w))]
    cycle = scenes + scenes[-2:0:-1]  # 0 1 .. k-1 k-2 .. 1, then 0 again
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        stream.options = {
            "bf": "0", "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0",
            "preset": "ultrafast", "tune": "zerolatency",
        }  # fmt: skip
        for i in range(n):
            image = cycle[i % len(cycle)]
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def share(image: np.ndarray, colour: tuple[int, int, int], tolerance: int = 60) -> float:
    """Fraction of the (H, W, 3) rgb ``image``'s pixels within ``tolerance`` (per channel) of ``colour``."""
    if image.size == 0:
        return 0.0
    return float((np.abs(image.astype(np.int16) - np.asarray(colour, np.int16)).max(axis=2) < tolerance).mean())


def decode_video(path: Path) -> tuple[list[float], list[np.ndarray]]:
    """(presentation times in seconds, rgb frames) of every frame of ``path``'s video, decoded with PyAV."""
    times: list[float] = []
    frames: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            times.append(float(frame.time) if frame.time is not None else float("nan"))
            frames.append(frame.to_ndarray(format="rgb24"))
    return times, frames


def decode_jpeg(data: bytes) -> np.ndarray:
    """The rgb pixels of a JPEG; fails the test when ``data`` is not a complete, decodable JPEG."""
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9", "not a complete JPEG"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "the JPEG does not decode"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"unreadable image {path}"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


# ---------------------------------------------------------------- the birefvid process


class LiveRun:
    """``birefvid live ARGS`` as a subprocess in ``folder``; stdout/stderr go to files there.

    Use as a context manager: leaving it kills the process (and waits for it), so no test leaves
    a birefvid behind, whatever fails.
    """

    def __init__(self, args: Sequence[Any], folder: Path, env: Optional[dict[str, Optional[str]]] = None, name: str = "birefvid") -> None:
        """``env`` is added to this process's environment; a None value removes that variable."""
        self.args = [str(a) for a in args]
        self.folder = folder
        self.stdout_path = folder / f"{name}.out"
        self.stderr_path = folder / f"{name}.err"
        merged: dict[str, Optional[str]] = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.env = {key: value for key, value in merged.items() if value is not None}
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.started = 0.0

    def start(self) -> "LiveRun":
        cmd = [sys.executable, "-m", "birefvid.cli", "live", *self.args]
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, cwd=self.folder, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        self.started = time.monotonic()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float) -> int:
        """The exit code; fails the test (with stderr) when the process is still running after ``timeout``."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"birefvid live did not end within {timeout:g} s; stderr:\n{self.stderr()[-3000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def __enter__(self) -> "LiveRun":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def run_live_cli(
    args: Sequence[Any], folder: Path, env: Optional[dict[str, Optional[str]]] = None, timeout: float = 60.0
) -> tuple[int, str]:
    """Run ``birefvid live ARGS`` to its end: (exit code, stderr)."""
    with LiveRun(args, folder, env) as run:
        code = run.wait(timeout)
        return code, run.stderr()


def run_live_in_process(
    args: Sequence[Any], folder: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
    env: Optional[dict[str, Optional[str]]] = None,
) -> tuple[int, str]:
    """``birefvid live ARGS`` through the command's own ``main`` in this process, in ``folder``: (exit
    code, stderr with the log lines as the command prints them). For runs whose checks need no process of their
    own: runs that fail before any real work, and whole runs checked by what they wrote and said, where a process
    start-up for each (3-9 s on a loaded machine) buys nothing. Keep ``LiveRun`` for signals, a real process's exit,
    and runs whose failure would be a hang (a process can be timed out; a call in this one cannot). ``env`` as for
    ``LiveRun``."""
    import logging

    from birefvid.cli import _log_handler, main

    monkeypatch.chdir(folder)
    for key, value in (env or {}).items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    capfd.readouterr()
    handler = _log_handler(False)  # on the captured stderr: main's own basicConfig defers to pytest's log handlers
    logging.getLogger().addHandler(handler)
    try:
        code = main(["live", *(str(a) for a in args)])
    finally:
        logging.getLogger().removeHandler(handler)
    return code, capfd.readouterr().err


def stats_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a --stats-json file (a line still being written is left out)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            out.append(json.loads(line))
    return out


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1, run: Optional[LiveRun] = None) -> Any:
    """Poll ``check()`` until it returns something truthy (returned); fails after ``timeout`` naming ``what``.

    With ``run``, also fails at once when that birefvid process ended meanwhile.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if run is not None and not run.alive():
            pytest.fail(f"birefvid ended (exit {run.proc.returncode}) while waiting for {what}:\n{run.stderr()[-3000:]}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            detail = f"; birefvid stderr:\n{run.stderr()[-3000:]}" if run is not None else ""
            pytest.fail(f"no {what} within {timeout:g} s{detail}")
        time.sleep(interval)


# ---------------------------------------------------------------- network


def listening(port: int) -> bool:
    """Whether something listens on TCP ``port`` (IPv4 or IPv6), read from /proc without connecting."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 3 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    return True
    return False


class UdpRecorder:
    """A UDP player's socket: every datagram that reaches 127.0.0.1:``port`` goes, as it came, into
    ``path`` (the MPEG-TS a player demuxes), from a first one within ``first_wait`` seconds until
    ``quiet`` seconds pass without one (the stream ended). Bound on creation, so a sender started
    after it loses nothing; port 0 lets the kernel pick a free one, with no window for another to take it.

    Not ffmpeg reading udp:// itself: its MPEG-TS probe runs for a set span of stream time, and the
    stream's length before its second picture (the still the model warmed up on, 0.3-2.7 s under
    load) decides whether it finds the picture size (0.5 s: exit 1, "unspecified size", in 5 runs of
    6 under load) or waits past the stream's end."""

    def __init__(self, path: Path, first_wait: float, quiet: float = 3.0) -> None:
        self.path = path
        self.datagrams = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # a loaded box may leave the thread unscheduled a while
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self._waits = (first_wait, quiet)
        self._thread = threading.Thread(target=self._record, name="udp-recorder", daemon=True)
        self._thread.start()

    def _record(self) -> None:
        with self._sock, open(self.path, "wb") as out:
            self._sock.settimeout(self._waits[0])
            with contextlib.suppress(TimeoutError):
                while True:
                    out.write(self._sock.recv(65536))
                    self.datagrams += 1
                    self._sock.settimeout(self._waits[1])

    def wait(self, timeout: float) -> int:
        """The number of datagrams kept, once the stream has ended; fails the test when it goes on past ``timeout``."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            pytest.fail(f"the UDP stream still flowed {timeout:g} s after its sender ended")
        return self.datagrams


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str, bytes]:
    """(status, content type, body); status 0 when nothing answers (connection refused, reset, timeout)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()
    except (urllib.error.URLError, OSError):
        return 0, "", b""


def ffmpeg_rtsp_receiver(url: str, folder: Path, width: int, height: int) -> subprocess.Popen[bytes]:
    """Debian's ffmpeg listening at ``url`` for one RTSP publisher (see ``ffmpeg_receiver``)."""
    return ffmpeg_receiver(["-rtsp_flags", "listen", "-listen_timeout", "60", "-i", url], folder, width, height)


def ffmpeg_receiver(input_args: list[str], folder: Path, width: int, height: int, frames: Optional[int] = None) -> subprocess.Popen[bytes]:
    """Debian's ffmpeg reading the stream ``input_args`` name: every received frame (or the first
    ``frames``, then it exits) goes to ``rx.md5`` (framemd5) and ``rx.rgb`` (raw rgb24, ``width`` x
    ``height``); its log to ``ffmpeg.log``."""
    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    each = ["-map", "0:v", "-fps_mode", "passthrough", *(["-frames:v", str(frames)] if frames else [])]
    cmd = [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "warning",
        *input_args, *each, "-f", "framemd5", str(folder / "rx.md5"),
        *each, "-s", f"{width}x{height}", "-pix_fmt", "rgb24", "-f", "rawvideo", str(folder / "rx.rgb"),
    ]  # fmt: skip
    with open(folder / "ffmpeg.log", "wb") as log:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)


def end_process(proc: subprocess.Popen[Any]) -> None:
    """Kill ``proc`` (one we started) if it still runs, and reap it."""
    if proc.poll() is None:
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


# ---------------------------------------------------------------- browser


def chromium_screenshot(url: str, shot: Path, profile: Path, size: tuple[int, int] = (640, 480), budget_ms: int = 1500) -> np.ndarray:
    """Load ``url`` in headless Chromium (a fresh profile) and return its screenshot as rgb."""
    chromium = need_binary("chromium", "chromium")
    cmd = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}", f"--screenshot={shot}",
        f"--virtual-time-budget={budget_ms}", url,
    ]  # fmt: skip
    with own_temp_dir("chromium-") as env:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL, env=env)
    assert done.returncode == 0 and shot.is_file(), f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    return read_png(shot)


# ---------------------------------------------------------------- X server


@contextlib.contextmanager
def xvfb(size: tuple[int, int] = (640, 480)) -> Iterator[str]:
    """A private Xvfb on a display number it picks itself (-displayfd); yields its name, e.g. ":3".

    -noreset: by default the server resets when its last client leaves, and a window opened in
    that moment fails.
    """
    binary = need_binary("Xvfb", "xvfb")
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        [binary, "-displayfd", str(write_end), "-screen", "0", f"{size[0]}x{size[1]}x24", "-nolisten", "tcp", "-noreset"],
        pass_fds=(write_end,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 20)
        number = os.read(read_end, 64).decode().strip() if ready else ""
        if not number.isdigit():
            server.kill()
            _, err = server.communicate(timeout=10)
            pytest.fail(f"Xvfb did not start within 20 s: {err.decode(errors='replace')[-500:]}")
        yield f":{number}"
    finally:
        os.close(read_end)
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)


def window_geometry(display: str, title: str) -> Optional[tuple[int, int, int, int]]:
    """(x, y, width, height) of the window named ``title`` on ``display``; None when there is none."""
    import re

    xwininfo = need_binary("xwininfo", "x11-utils")
    found = subprocess.run([xwininfo, "-display", display, "-name", title], capture_output=True, text=True, timeout=20)
    if found.returncode != 0:
        return None
    keys = ("Absolute upper-left X", "Absolute upper-left Y", "Width", "Height")
    values = [re.search(rf"{key}:\s+(-?\d+)", found.stdout) for key in keys]
    if not all(values):
        return None
    x, y, w, h = (int(v.group(1)) for v in values)  # type: ignore[union-attr]
    return x, y, w, h


def screen_grab(display: str, target: Path) -> np.ndarray:
    """The whole screen of ``display`` as rgb, grabbed from the X server (ImageMagick's ``import``)."""
    grab = need_binary("import", "imagemagick")
    subprocess.run([grab, "-display", display, "-window", "root", f"png:{target}"], check=True, timeout=30,
                   stdin=subprocess.DEVNULL, capture_output=True)  # fmt: skip
    return read_png(target)


def check_sound_in_sync(path: Path, codec: str) -> None:
    """The recording or stream at ``path`` carries ``codec`` sound, its flash and tone start together, and the two end together."""
    from live_media import flash_and_tone

    with av.open(str(path)) as c:
        assert [s.codec_context.name for s in c.streams.audio] == [codec]
    bright, tone, video_end, sound_end = flash_and_tone(path)
    assert bright is not None and tone is not None, (bright, tone)
    print(f"{path.name}: flash at {bright:.3f} s, tone at {tone:.3f} s; pictures end {video_end:.3f} s, sound {sound_end:.3f} s")
    # the picture and the tone start together (within two frames: a frame the display path drops
    # moves the flash onto the next one), and the sound lasts as long as the pictures
    assert abs(bright - tone) <= 0.08, f"the flash shows at {bright:.3f} s, the tone starts at {tone:.3f} s"
    assert abs(sound_end - video_end) <= 0.15, f"the pictures end at {video_end:.3f} s, the sound at {sound_end:.3f} s"


def check_every_flash_in_sync(path: Path, codec: str, flash_seconds: float = 0.5, end_slack: float = 0.15) -> None:
    """The recording or stream at ``path`` of a clip that flashes again and again (``make_flash_clip``
    with several spans, each ``flash_seconds`` long) carries ``codec`` sound; every flash it shows has
    its tone with it, every picture shown while a tone plays is bright, and sound and pictures end together.

    For a stream that plays from the moment birefvid connects: the model's start-up (3-10 s under
    load) decides which flashes the run shows, so no single one is waited for. ``end_slack``: how far apart sound and
    pictures may end (a variable-rate camera's last picture, on a still scene, stands for up to its own interval)."""
    from live_media import _brightness_and_sound, flash_and_tone, flash_and_tone_onsets

    with av.open(str(path)) as c:
        assert [s.codec_context.name for s in c.streams.audio] == [codec]
    flashes, tones = flash_and_tone_onsets(path)
    frames = _brightness_and_sound(path)[0]
    _, _, video_end, sound_end = flash_and_tone(path)
    if frames[0][1] > 128:  # the run opened in the middle of a flash: its tone plays from the first picture
        flashes.insert(0, (frames[0][0], frames[0][0]))
    print(f"{path.name}: flashes between {[(round(a, 3), round(b, 3)) for a, b in flashes]}, tones at {[round(float(t), 3) for t in tones]}; "
          f"pictures end {video_end:.3f} s, sound {sound_end:.3f} s")  # fmt: skip
    assert flashes and tones, (flashes, tones)

    # a flash began somewhere between its last dark picture and its first bright one (a live run drops
    # pictures when it falls behind), and a dropped frame on the display path moves it one more frame
    def together(tone: float, before: float, flash: float) -> bool:
        return min(before, flash - 0.08) - 0.02 <= tone <= flash + 0.08

    for before, flash in flashes:
        if flash == frames[0][0] and frames[0][1] > 128 and tones[0] <= frames[0][0] + 0.2:
            continue  # opened in a flash: its tone plays from the sound's start, which a receiver may set a little later
        assert any(together(tone, before, flash) for tone in tones), f"no tone with the flash at {flash:.3f} s: tones at {[round(float(t), 3) for t in tones]}"
    # a tone may have no picture at all: sound plays on while a start-up under load holds the first
    # picture (2.3 s seen) or the run skips pictures to catch up; but any picture shown in its midst is its flash
    sound_start = min(tones + [frames[0][0]])
    for tone in tones:
        if tone - sound_start < 0.2 and frames[0][1] > 128:  # the run opened in a flash: its tone's end, of unknown length
            continue
        dark = [t for t, level in frames if tone + 0.08 <= t <= tone + flash_seconds - 0.08 and level <= 128]
        assert not dark, f"the tone at {tone:.3f} s plays over dark pictures at {[round(t, 3) for t in dark]}"
    assert abs(sound_end - video_end) <= end_slack, f"the pictures end at {video_end:.3f} s, the sound at {sound_end:.3f} s"
