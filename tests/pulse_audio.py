"""A real PulseAudio server for the microphone tests: a silent "room" that tests play sound into.

``PulseServer`` runs Debian's ``pulseaudio`` on a private socket with one null sink, ``room``;
its monitor, ``room.monitor``, is the microphone: ALSA's ``pulse`` device (the plugin from
``libasound2-plugins``, which serves ``default`` on a desktop) records it when ``PULSE_SERVER``
and ``PULSE_SOURCE`` say so (``env``). ``Speaker`` plays PCM into the room through ``pacat``,
paced by the test, so the test knows when a sound starts. The server stops by itself after
``lifetime`` seconds even if a test dies without closing it.
"""

from __future__ import annotations

import glob
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Optional

import numpy as np

from system_tools import _missing, need_binary

RATE = 48000


def need_alsa_pulse_plugin() -> None:
    """Skip (fail under CI) unless ALSA's PulseAudio plugin and the system's ALSA configuration are installed."""
    if not glob.glob("/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so") or not os.path.isfile("/usr/share/alsa/alsa.conf"):
        _missing("ALSA's PulseAudio plugin", "apt-get install libasound2-plugins libasound2-data")


class PulseServer:
    """``with PulseServer(folder) as pulse:`` a running server; ``pulse.env`` points clients at it."""

    def __init__(self, folder: Path, lifetime: float = 120.0) -> None:
        self.pulseaudio = need_binary("pulseaudio", "pulseaudio")
        self.pacat = need_binary("pacat", "pulseaudio-utils")
        need_alsa_pulse_plugin()
        self.folder = folder
        self.socket = folder / "pulse.sock"
        self.lifetime = lifetime
        self.proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def env(self) -> dict[str, str]:
        # XDG_RUNTIME_DIR: a client without one (pacat, ALSA's plugin) left a /tmp/pulse-* folder of its own too
        return {"PULSE_SERVER": f"unix:{self.socket}", "PULSE_SOURCE": "room.monitor", "PULSE_SINK": "room", "XDG_RUNTIME_DIR": str(self.folder)}

    def __enter__(self) -> "PulseServer":
        log = open(self.folder / "pulseaudio.log", "wb")
        self.proc = subprocess.Popen(
            ["timeout", str(self.lifetime), self.pulseaudio, "--daemonize=no", "--exit-idle-time=-1", "-n", "--use-pid-file=no",
             "--disable-shm=yes", "--log-target=stderr", f"--load=module-null-sink sink_name=room rate={RATE}",
             f"--load=module-native-protocol-unix socket={self.socket} auth-anonymous=1"],
            # its runtime folder in the test's own: without XDG_RUNTIME_DIR PulseAudio made a /tmp/pulse-* one and left it
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HOME": str(self.folder), "XDG_RUNTIME_DIR": str(self.folder)},
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 15
        while not self.socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError("pulseaudio did not start: " + (self.folder / "pulseaudio.log").read_text()[-2000:])
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Speaker:
    """Plays 16-bit stereo PCM into the room in 10 ms pieces on the wall clock: ``play(samples)``
    returns the monotonic time its first sample was handed to PulseAudio."""

    CHUNK = RATE // 100

    def __init__(self, pulse: PulseServer) -> None:
        self.proc = subprocess.Popen(
            [pulse.pacat, "--playback", "--device=room", "--format=s16le", f"--rate={RATE}", "--channels=2", "--latency-msec=20"],
            stdin=subprocess.PIPE, env={**os.environ, **pulse.env},
        )  # fmt: skip
        self._next = time.monotonic()
        self._lock = threading.Lock()  # a player thread writes while the test may close
        self._closed = False

    def play(self, samples: np.ndarray) -> float:
        """Mono float samples in [-1, 1], written in real time after what was played before."""
        pcm = np.repeat((np.clip(samples, -1, 1) * 32767).astype("<i2")[:, None], 2, axis=1)
        first = None
        for start in range(0, len(pcm), self.CHUNK):
            self._next = max(self._next, time.monotonic())
            delay = self._next - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            first = time.monotonic() if first is None else first
            with self._lock:
                if self._closed:
                    break
                assert self.proc.stdin is not None
                self.proc.stdin.write(pcm[start : start + self.CHUNK].tobytes())
                self.proc.stdin.flush()
            self._next += len(pcm[start : start + self.CHUNK]) / RATE
        return first if first is not None else time.monotonic()

    def close(self) -> None:
        """Stop playing (a ``play`` on another thread returns) and end ``pacat``."""
        with self._lock:
            self._closed = True
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def tone(seconds: float, frequency: float, level: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return level * np.sin(2 * np.pi * frequency * t)
