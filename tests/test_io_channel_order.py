"""Audio in a custom channel order (a MOV's channel labels): PyAV 18 crashes the process when it so
much as reads such a layout, so birefvid never touches it. Every run here is a child process, so a
crash fails the test instead of ending the test session."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from birefvid.io.channel_order import custom_order_tracks
from media import make_video
from system_tools import need_binary

MODEL = ["--model", "tiny", "--resolution", "64", "--device", "cpu", "--backend", "torch", "--precision", "fp32"]


@pytest.fixture(scope="module")
def labelled_mov(tmp_path_factory) -> Path:
    """1 s of H.264 and 8-channel PCM whose channels ffmpeg's pan filter put in a custom order."""
    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    path = tmp_path_factory.mktemp("labelled") / "labelled.mov"
    pan = "pan=7.1|" + "|".join(f"c{i}=c0" for i in range(8))  # 8 copies of the tone, in the order pan lists
    subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=25:duration=1",
                    "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-af", pan, "-c:v", "libx264", "-c:a", "pcm_s16le",
                    str(path)], check=True, timeout=60)  # fmt: skip
    return path


def _process(src: Path, out: Path) -> subprocess.CompletedProcess:
    args = ["process", str(src), "-o", str(out), "--output", "green", *MODEL, "-q"]
    return subprocess.run([sys.executable, "-m", "birefvid.cli", *args], capture_output=True, text=True, timeout=300)


def _audio(path: Path) -> list[str]:
    """codec,channels,samples of each audio stream, read by a child process too."""
    probe = ("import av, os, sys\nc = av.open(sys.argv[1])\nfor s in c.streams.audio:\n"
             "    print(s.codec_context.name, sum(f.samples for f in c.decode(s)), flush=True)\nos._exit(0)")  # fmt: skip
    return subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=60).stdout.split("\n")[:-1]


def test_the_custom_order_is_found_without_touching_it(labelled_mov, tmp_path):
    assert custom_order_tracks(str(labelled_mov)) == {0: "8 channels (FL+FR+FC+LFE+SL+SR+BL+BR)"}
    plain = make_video(tmp_path / "plain.mov", n_frames=2, with_audio=True)
    assert custom_order_tracks(str(plain.path)) == {}


def test_the_probe_takes_a_name_outside_the_locales_code_page(labelled_mov, tmp_path):
    """Windows sends text to a child in its code page (cp1252), which 李.mov is not in: every video with
    sound under such a name failed with UnicodeEncodeError. Here an ASCII locale stands in for cp1252."""
    import os
    import shutil

    named = tmp_path / "李 é.mov"
    shutil.copyfile(labelled_mov, named)
    env = {**os.environ, "LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
    code = "import sys\nfrom birefvid.io.channel_order import custom_order_tracks\nprint(custom_order_tracks(sys.argv[1]))"
    run = subprocess.run([sys.executable, "-c", code, str(named)], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "{0: '8 channels (FL+FR+FC+LFE+SL+SR+BL+BR)'}"


@pytest.mark.parametrize("ext", [".mov", ".mkv"])
def test_pcm_in_a_custom_order_is_copied_as_it_is(labelled_mov, tmp_path, ext):
    run = _process(labelled_mov, tmp_path / f"out{ext}")
    assert run.returncode == 0, run.stderr[-2000:]  # before: "double free or corruption", killed by SIGABRT
    assert "copied with its channels in their order, unlabelled" in run.stderr
    assert _audio(tmp_path / f"out{ext}") == ["pcm_s16le 44100"]  # every sample of its 1 s at 44.1 kHz


def test_where_it_cannot_be_copied_it_is_left_out_and_the_video_is_written(labelled_mov, tmp_path):
    run = _process(labelled_mov, tmp_path / "out.mp4")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "is left out: PyAV crashes on its custom channel order; convert it first" in run.stderr
    assert _audio(tmp_path / "out.mp4") == [] and (tmp_path / "out.mp4").stat().st_size > 0


def test_live_mode_plays_such_a_file_without_its_sound(labelled_mov, tmp_path):
    args = ["live", "--source", str(labelled_mov), "--effect", "blur", "--sink", str(tmp_path / "rec.mkv"), *MODEL, "-q"]
    run = subprocess.run([sys.executable, "-m", "birefvid.cli", *args], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "its sound is left out of recordings and streams: PyAV crashes on its custom channel order" in run.stderr
    assert _audio(tmp_path / "rec.mkv") == []


def test_a_url_with_a_token_stays_out_of_the_probes_command_line():
    """The probe child got the source on its command line, which every user of the machine reads
    (ps, /proc/PID/cmdline): a URL's password or a signed link's token was on show for as long as the
    server took to answer. A server that answers nothing for 3 s holds the probe while we look."""
    import os
    import socket
    import threading
    import time

    token = f"t0ken{os.getpid()}x{time.monotonic_ns()}"
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    held = []

    def hold() -> None:
        conn, _ = server.accept()
        held.append(conn)
        time.sleep(3)
        conn.close()

    threading.Thread(target=hold, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/v.mp4?X-Amz-Signature={token}"
    probe = threading.Thread(target=custom_order_tracks, args=(url,), daemon=True)
    probe.start()
    seen = []
    deadline = time.monotonic() + 30  # the child imports PyAV first
    while time.monotonic() < deadline and not held:
        time.sleep(0.05)
    assert held, "the probe never connected"
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if token.encode() in cmdline and int(pid) != os.getpid():
                seen.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    probe.join(10)
    server.close()
    assert not seen, seen


def test_the_probe_of_a_url_whose_server_went_silent_gives_up_after_the_url_timeout(monkeypatch):
    """Every other read of a URL gives up after URL_TIMEOUT_S (30 s); this probe waited 120 s on a silent server."""
    import socket
    import threading
    import time

    import birefvid.io.base as base

    monkeypatch.setattr(base, "URL_TIMEOUT_S", 1.0)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)  # the connection is taken, and nothing ever answered
    url = f"http://127.0.0.1:{server.getsockname()[1]}/silent.mp4"
    found = []
    started = time.monotonic()
    probe = threading.Thread(target=lambda: found.append(custom_order_tracks(url)), daemon=True)
    probe.start()
    probe.join(12)  # the URL timeout, and the child's start (Python and PyAV) with room to spare
    server.close()
    assert found == [{}], f"the probe still waits after {time.monotonic() - started:.0f} s"
