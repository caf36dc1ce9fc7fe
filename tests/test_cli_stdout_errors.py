"""Standard output that cannot be written: a full disk (``> /dev/full``), a closed descriptor (``>&-``), a reader that left.

What a command prints there is its result, so a failed write is one ``birefvid: error:`` line naming standard output
and the reason, exit 2 (141 for a reader that left, quietly, as a shell reports it); never a traceback (exit 1), nor
exit 0 with the result lost (``--version`` was, argparse ignoring the write). Real runs of the command line in a
child process, standard output pointed at the real thing; a reader that left is tests/test_cli_broken_pipe.py's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


pytestmark = pytest.mark.usefixtures("one_cpu_thread")  # speed: conftest says why


FULL = "No space left on device"
CLOSED = "Bad file descriptor"
IMAGE_MODEL = ["--resolution", "64", "--device", "cpu", "--precision", "fp32", "--backend", "torch"]

needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="a system with /dev/full (Linux, BSD)")


def _run(args: list[str], cwd: Path, stdout: str, stdin: object = subprocess.DEVNULL) -> tuple[int, str]:
    """``birefvid ARGS`` with standard output ``full`` (/dev/full) or ``closed`` (``>&-``); its exit status and
    standard error. (A pipe whose reader left, ``| head``, is tests/test_cli_broken_pipe.py's.)"""
    command = [sys.executable, "-m", "birefvid", *args]
    env = {**os.environ, "TMPDIR": str(cwd / "tmp")}  # the run's temporary files, looked for afterwards
    (cwd / "tmp").mkdir(exist_ok=True)
    if stdout == "full":
        with open("/dev/full", "wb") as full:
            done = subprocess.run(command, cwd=cwd, env=env, stdin=stdin, stdout=full, stderr=subprocess.PIPE, timeout=300)
    else:  # os.close in the child: the shell's `>&-`
        done = subprocess.run(command, cwd=cwd, env=env, stdin=stdin, stderr=subprocess.PIPE, preexec_fn=lambda: os.close(1), timeout=300)
    return done.returncode, done.stderr.decode()


def _one_error_line(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("birefvid: error: ") and "Traceback" not in err, err
    assert "standard output" in lines[0] and all(w in lines[0] for w in words), err


@needs_dev_full
@pytest.mark.parametrize("args", [["models"], ["--version"], ["--help"], ["models", "--help"]], ids=" ".join)
def test_a_full_disk_is_one_error_line_for_a_table_and_for_help(tmp_path, args):
    """``birefvid models > /dev/full`` ended in a traceback (exit 1); ``--version`` and ``--help`` exited 0, their
    text lost: argparse ignores a failed write, and the buffer the exit flush could not write was dropped."""
    _one_error_line(*_run(args, tmp_path, "full"), FULL)


@pytest.mark.parametrize("args", [["models"], ["--version"]], ids=" ".join)
def test_a_closed_stdout_is_one_error_line_not_a_silent_success(tmp_path, args):
    """``birefvid models >&-`` exited 0 having printed nothing: the closed descriptor was pointed at devnull (so the
    next file opened would not take its number) and the table went there."""
    _one_error_line(*_run(args, tmp_path, "closed"), CLOSED)


@pytest.mark.parametrize("stdout", [pytest.param("full", marks=needs_dev_full), "closed"])
def test_a_picture_for_stdout_that_cannot_be_written_is_one_line_and_leaves_nothing(tmp_path, pvt_b0_weights, stdout):
    """``birefvid image - -o - > /dev/full`` (or ``>&-``): one line, exit 2, and the run's temporary copies gone.
    With ``--report run.json`` the report said the picture went to standard output ("-"), written before the picture
    was lost: it is held back until the picture is out, so none is written here (one is when it is out: below)."""
    from media import write_scene_picture

    picture = write_scene_picture(tmp_path / "in.png")
    args = ["image", "-", "-o", "-", "--report", "run.json", "--weights", str(pvt_b0_weights), *IMAGE_MODEL]
    with picture.open("rb") as source:
        code, err = _run(args, tmp_path, stdout, stdin=source)
    _one_error_line(code, err, FULL if stdout == "full" else CLOSED)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "tmp"]  # no run.json, no temporary copy
    assert [p.name for p in (tmp_path / "tmp").iterdir() if not p.name.startswith("torchinductor_")] == []  # torch's own cache


def test_a_report_file_of_a_picture_for_stdout_is_written_once_the_picture_is_out(tmp_path, pvt_b0_weights):
    """``image - -o - --report run.json``: the report is written once the picture is out, and says it went to the
    stream. (Its picture lost to a full disk, none is written: the test above.)"""
    import json

    from media import write_scene_picture

    picture = write_scene_picture(tmp_path / "in.png")
    args = ["image", "-", "-o", "-", "--report", "run.json", "--weights", str(pvt_b0_weights), *IMAGE_MODEL]
    with picture.open("rb") as source:
        done = subprocess.run([sys.executable, "-m", "birefvid", *args], cwd=tmp_path, stdin=source, capture_output=True, timeout=300)
    assert done.returncode == 0 and done.stdout.startswith(b"\x89PNG"), done.stderr.decode()
    report = json.loads((tmp_path / "run.json").read_text())
    assert report["output"] == "-" and [w["output"] for w in report["written"]] == ["-"]  # the stream, not a held file


@pytest.mark.parametrize("stdout", [pytest.param("full", marks=needs_dev_full), "closed"])
def test_a_report_for_stdout_that_cannot_be_written_says_the_video_was_kept(tmp_path, stdout):
    """``birefvid process ... --report - > /dev/full``: the video was written, the report lost, and the run ended in a
    traceback (exit 1). Now one line that says both (exit 2). (A reader that left, ``| head``, exits 141 quietly:
    tests/test_cli_broken_pipe.py.)"""
    from media import make_video

    clip = make_video(tmp_path / "clip.mp4", n_frames=3, size=(64, 48), with_audio=False).path
    args = ["process", str(clip), "-o", "out.mkv", "--output", "mask", "--model", "tiny", "--device", "cpu",
            "--resolution", "64", "--report", "-", "-q"]  # fmt: skip
    _one_error_line(*_run(args, tmp_path, stdout), "--report -", FULL if stdout == "full" else CLOSED, "the video out.mkv was written and kept")
    assert (tmp_path / "out.mkv").stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "tmp") == ["clip.mp4", "out.mkv"]  # no partial file beside it


@needs_dev_full
def test_serve_whose_start_line_cannot_be_written_stops_with_one_line(tmp_path):
    """``birefvid serve > /dev/full``: the start line (the URL a script reads) failed in a traceback; now one line,
    exit 2, the server closed."""
    _one_error_line(*_run(["serve", "--model", "tiny", "--device", "cpu", "--port", "0"], tmp_path, "full"), FULL)


def _read_when_full(command: list[str], cwd: Path, env: dict[str, str], stdin: object = subprocess.DEVNULL) -> tuple[int, bytes, str]:
    """Run ``command`` with standard output a pipe its parent left non-blocking (``O_NONBLOCK``, as Node.js and event
    loops leave theirs), read only once the pipe is full: the writer has then met EAGAIN. Its exit status, every byte
    it wrote, and its standard error."""
    import fcntl
    import termios
    import time

    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETFL, fcntl.fcntl(write_end, fcntl.F_GETFL) | os.O_NONBLOCK)
    err_path = cwd / "stderr.txt"
    with err_path.open("wb") as err_file:  # read afterwards: a stderr pipe could fill and stall the run
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=stdin, stdout=write_end, stderr=err_file)
    os.close(write_end)
    capacity = fcntl.fcntl(read_end, getattr(fcntl, "F_GETPIPE_SZ", 1032))
    waiting = bytearray(4)
    deadline = time.monotonic() + 300  # a model load on a loaded CI machine: generous
    while proc.poll() is None and time.monotonic() < deadline:
        fcntl.ioctl(read_end, termios.FIONREAD, waiting)
        if int.from_bytes(waiting, sys.byteorder) > capacity - 4096:  # short writes fill a page each only to a whole line
            break
        time.sleep(0.05)
    time.sleep(0.5)  # the writer, finding the pipe full, has its EAGAIN now
    data = b""
    while chunk := os.read(read_end, 1 << 16):
        data += chunk
    os.close(read_end)
    return proc.wait(300), data, err_path.read_text()


def test_a_picture_for_a_non_blocking_pipe_waits_for_its_reader(tmp_path, pvt_b0_weights):
    """``image - -o -`` into a pipe a parent left non-blocking, its reader busy: the picture larger than the pipe met
    EAGAIN, which ended the run with "cannot write to standard output: write could not complete without blocking"
    (exit 2, most of the picture lost). A full pipe is a reader not ready yet: the run waits for it, exit 0."""
    import cv2
    import numpy as np

    noise = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)  # a PNG of far over a pipe's 64 KiB
    cv2.imwrite(str(tmp_path / "noise.png"), noise)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as a plain `python` runs it
    command = [sys.executable, "-m", "birefvid", "image", "noise.png", "-o", "-", "--weights", str(pvt_b0_weights), *IMAGE_MODEL]
    code, data, err = _read_when_full(command, tmp_path, env)
    assert code == 0 and "error" not in err, err
    assert data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82"), (len(data), err)  # the whole picture
    assert f"wrote {len(data):,} bytes" in err


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "PYTHONUNBUFFERED"])
def test_text_for_a_non_blocking_pipe_is_all_written(tmp_path, unbuffered):
    """Lines a command prints on standard output as ``cli.main`` installs it (a report, ``--progress-json -``'s lines)
    into a pipe left non-blocking: buffered, the first EAGAIN was an error; unbuffered (``PYTHONUNBUFFERED=1``, as most
    Docker images set), Python's text layer ignored the write the pipe refused and the rest was dropped without a
    word, exit 0. (No command prints this much text quickly, so the lines are printed as a command would.)"""
    program = (
        "import sys\n"
        "from birefvid import standard_output\n"
        "given = standard_output.install()\n"
        "for i in range(20000):\n"
        "    print(f'line {i:05d} ' + 'x' * 40)\n"
        "failure = standard_output.flushed()\n"
        "standard_output.restore(given)\n"
        "sys.exit(f'failed: {failure!r}' if failure else 0)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"} | ({"PYTHONUNBUFFERED": "1"} if unbuffered else {})
    code, data, err = _read_when_full([sys.executable, "-c", program], tmp_path, env)
    assert code == 0 and err == "", err
    lines = data.decode().splitlines()
    assert len(lines) == 20000 and lines[-1].startswith("line 19999 "), (len(lines), err)
