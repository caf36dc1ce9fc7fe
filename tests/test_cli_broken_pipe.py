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
    error line on stdout, where a script reads data. Now it goes nowhere, and the exit code says it."""
    cmd = [sys.executable, "-m", "birefvid.cli", "process", "missing.mp4", "-o", "out.webm"]
    done = subprocess.run(cmd, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, preexec_fn=lambda: os.close(2), timeout=60)
    assert (done.returncode, done.stdout) == (2, b"")


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
