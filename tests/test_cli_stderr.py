"""Standard error that cannot take a line at once costs no run its result, its exit status or its lines.

A parent that left the pipe non-blocking (Node.js, Electron, some CI runners) and reads it late, and a log on a full
disk, are real: the run's warnings and error line must still arrive (or, on a full disk, the run go on without them)."""

from __future__ import annotations

import fcntl
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from media import make_video, read_video, write_scene_picture

ROOT = Path(__file__).resolve().parents[1]
F_SETPIPE_SZ = 1031  # Linux's fcntl for a pipe's size (fcntl.F_SETPIPE_SZ from Python 3.10 on)
LATE_S = 8.0  # the longest the reader leaves the pipe full: far longer than a birefvid takes to reach its first line
# select() and pselect6() by machine: a birefvid seen in one for room to write fd 2 is waiting for the late reader
_SELECT_SYSCALLS = {"x86_64": {"23", "270"}, "aarch64": {"72"}}.get(platform.machine(), set())


def _waiting_to_write_stderr(pid: int) -> bool:
    """Whether a thread of process ``pid`` waits in select() for room to write its fd 2 and for nothing else, as
    birefvid's writer does when the pipe is full (Linux's /proc/PID/task/*/syscall: number, nfds, readfds, writefds).
    False where that cannot be read: the reader then waits out LATE_S."""
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            number, nfds, readfds, writefds = (task / "syscall").read_text().split()[:4]
        except (OSError, ValueError):  # the thread ended, the process is gone, or no /proc here
            continue
        if number in _SELECT_SYSCALLS and nfds == "0x3" and readfds == "0x0" and writefds != "0x0":
            return True
    return False


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _run_with_a_full_non_blocking_stderr(args: list[str]) -> tuple[int, str]:
    """Run birefvid with stderr a pipe set non-blocking and full to the brim, whose reader starts reading only when the
    run has ended or LATE_S has passed; returns the exit status and what birefvid wrote there."""
    r, w = os.pipe()
    fcntl.fcntl(w, F_SETPIPE_SZ, 4096)
    os.set_blocking(w, False)  # as a Node.js parent leaves it: on the open file the child shares
    filled = 0
    try:
        while True:
            filled += os.write(w, b"." * 512)
    except BlockingIOError:
        pass
    child = subprocess.Popen([sys.executable, "-m", "birefvid", *args], stdout=subprocess.DEVNULL, stderr=w, env=_env())
    os.close(w)
    chunks: list[bytes] = []

    def late_reader() -> None:
        # reads once birefvid waits for room (a wait the test sees, not a fixed 8 s), has ended, or LATE_S has passed
        deadline = time.monotonic() + LATE_S
        while child.poll() is None and time.monotonic() < deadline and not _waiting_to_write_stderr(child.pid):
            time.sleep(0.1)
        while chunk := os.read(r, 65536):
            chunks.append(chunk)

    reader = threading.Thread(target=late_reader)
    reader.start()
    try:
        code = child.wait(timeout=300)
    finally:
        child.kill()
        reader.join(timeout=60)
        os.close(r)
    return code, b"".join(chunks)[filled:].decode()


def test_a_bad_input_s_error_line_waits_for_a_late_reader_of_a_non_blocking_stderr(tmp_path):
    """Python's stderr is unbuffered, and its write to a full non-blocking pipe was dropped without a word: a Node.js
    parent got exit 2 and no line saying why."""
    code, err = _run_with_a_full_non_blocking_stderr(["image", str(tmp_path / "missing.png"), "-o", str(tmp_path / "x.png")])
    assert code == 2
    assert err == f"birefvid: error: input not found: {tmp_path / 'missing.png'}\n"


def test_a_run_s_warning_and_summary_wait_for_a_late_reader_and_its_output_is_whole(tmp_path, pvt_b0_weights):
    clip = make_video(tmp_path / "clip.mp4", n_frames=4, size=(64, 48), with_audio=False).path
    out = tmp_path / "out.mov"
    code, err = _run_with_a_full_non_blocking_stderr(["process", str(clip), "-o", str(out), "--weights", str(pvt_b0_weights),
                                                      "--resolution", "64", "--backend", "torch", "--fps", "30"])  # fmt: skip
    assert code == 0, err
    lines = err.splitlines()
    assert lines[0].startswith("birefvid: warning: --fps sets an image sequence's frame rate"), lines
    assert lines[-1].startswith(f"wrote {out}: 4 frames"), lines
    assert len(read_video(out).images) == 4


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_log_on_a_full_disk_costs_its_lines_not_the_run_or_its_exit_status(tmp_path, pvt_b0_weights):
    """`2>>run.log` on a full disk (here /dev/full) ended a run that had written its picture with a traceback and
    exit 1, and a bad input with exit 1 instead of 2: scripts read the status, and the log could not say why."""
    with open("/dev/full", "w") as full:
        bad = subprocess.run([sys.executable, "-m", "birefvid", "image", str(tmp_path / "missing.png"), "-o", str(tmp_path / "x.png")],
                             stderr=full, stdout=subprocess.DEVNULL, env=_env(), timeout=120)  # fmt: skip
        picture = write_scene_picture(tmp_path / "in.png")
        good = subprocess.run([sys.executable, "-m", "birefvid", "image", str(picture), "-o", str(tmp_path / "out.png"),
                               "--weights", str(pvt_b0_weights), "--resolution", "64", "--backend", "torch"],
                              stderr=full, stdout=subprocess.DEVNULL, env=_env(), timeout=300)  # fmt: skip
    assert bad.returncode == 2
    assert good.returncode == 0
    assert (tmp_path / "out.png").stat().st_size > 0


def test_a_terminal_left_non_blocking_still_gets_the_progress_bar(tmp_path, pvt_b0_weights):
    """A terminal's stderr that a parent left non-blocking (a Node.js tool run in a terminal) is written through a
    waiting view; that view must still say it is a terminal, or the bar gave way to the log lines of a pipe."""
    import pty

    clip = make_video(tmp_path / "clip.mp4", n_frames=4, size=(64, 48), with_audio=False).path
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 columns wide: an empty bar
    os.set_blocking(slave, False)
    child = subprocess.Popen([sys.executable, "-m", "birefvid", "process", str(clip), "-o", str(tmp_path / "out.mov"),
                              "--weights", str(pvt_b0_weights), "--resolution", "64", "--backend", "torch"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, env=_env())  # fmt: skip
    os.close(slave)
    shown = b""
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child's end closed
                break
            if not chunk:
                break
            shown += chunk
    finally:
        assert child.wait(timeout=300) == 0, shown
        os.close(master)
    assert b"4/4" in shown and b"frame/s" in shown, shown  # tqdm's bar, not "processed 4/4 frames" lines
