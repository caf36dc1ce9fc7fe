"""Output piped into a reader that stops early (``birefvid eval ... | head -2``) ends quietly: no
BrokenPipeError traceback, exit 141 as a shell reports a writer whose reader left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from birefvid.cli import EXIT_BROKEN_PIPE


def test_a_closed_stdout_pipe_exits_quietly(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "birefvid.cli", "models"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader leaves before the command prints anything: its first write fails
    err = proc.stderr.read().decode()
    assert proc.wait(60) == EXIT_BROKEN_PIPE, err
    assert err == ""


def test_a_closed_stderr_does_not_send_errors_to_stdout(tmp_path: Path) -> None:
    """``birefvid ... 2>&-``: Python makes sys.stderr None, and print(file=sys.stderr) then printed the
    error line on stdout, where a script reads data. Now it goes nowhere, and the exit code says it.
    The error is one the job finds before torch loads (~2 s less a run): where it is found does not matter here."""
    cmd = [sys.executable, "-m", "birefvid.cli", "process", "missing.mp4", "-o", "out.webm", "--output", "green", "--key-color", "nope"]
    done = subprocess.run(cmd, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, preexec_fn=lambda: os.close(2), timeout=60)
    assert (done.returncode, done.stdout) == (2, b"")


def test_a_log_reader_that_leaves_does_not_end_the_run(tmp_path: Path) -> None:
    """``birefvid process ... 2>&1 >/dev/null | head -1`` or a log shipper that died: the next line on
    stderr raised BrokenPipeError, and the run ended with exit 1 and no output. Diagnostics that
    cannot be written are dropped now; the run finishes and its output is there."""
    from media import make_video

    clip = make_video(tmp_path / "clip.mp4", n_frames=4, size=(64, 48)).path
    cmd = [sys.executable, "-m", "birefvid.cli", "process", str(clip), "-o", "out.mkv", "--output", "mask",
           "--model", "tiny", "--device", "cpu", "--resolution", "64"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc.stderr.close()  # the reader leaves at once: the summary line at the end fails to be written
    assert proc.wait(120) == 0
    assert (tmp_path / "out.mkv").stat().st_size > 0


def test_other_broken_pipes_are_not_hidden(monkeypatch) -> None:
    """Only a closed stdout is the reader having had enough; a pipe to some other process failing is an error."""
    from birefvid import cli

    def work() -> int:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "_stdout_gone", lambda: False)
    try:
        cli.guarded("birefvid", work)
    except BrokenPipeError:
        return
    raise AssertionError("the BrokenPipeError was swallowed")
