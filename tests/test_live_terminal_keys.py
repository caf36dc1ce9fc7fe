"""Switching a live run's effect with keys pressed in its terminal: a real pseudo-terminal (``pty``)
as the run's controlling terminal, in the foreground and, under a job-control shell, in the background."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import shlex
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from birefvid.job import EffectSpec
from birefvid.runtime.live_effects import EffectSwitch
from birefvid.runtime.terminal_keys import TerminalKeys
from live_e2e_tools import GREEN, decode_video, scene_clip, share, wait_for
from system_tools import need_binary

FAST_MODEL = ["--model", "tiny", "--device", "cpu", "--resolution", "64"]
STARTUP = 90.0  # python + torch + model start on a loaded 2-core machine


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scene_clip(tmp_path_factory.mktemp("keys") / "scene12s.mp4", 12.0, (160, 120), 24)


def _mode(fd: int) -> int:
    return termios.tcgetattr(fd)[3]


def _own_terminal() -> None:
    """In the child: a session of its own whose controlling terminal is stdin (the pty), as in a terminal window."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class _OnTerminal:
    """``argv`` with a fresh pseudo-terminal as its stdin and controlling terminal; stdout/stderr to files."""

    def __init__(self, argv: list[str], folder: Path) -> None:
        self.master, self.slave = pty.openpty()
        self.err_path = folder / "err.txt"
        with open(folder / "out.txt", "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(argv, cwd=folder, stdin=self.slave, stdout=out, stderr=err, preexec_fn=_own_terminal,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def __enter__(self) -> "_OnTerminal":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        os.close(self.master)
        os.close(self.slave)


def test_keys_in_the_terminal_switch_the_effect_and_its_mode_comes_back(tmp_path: Path, clip: Path) -> None:
    """A call's virtual camera has no window: b/g/n typed in birefvid's terminal switch the effect
    (no Enter, no echo), the recording switches with it, Ctrl-C still ends the run, and the terminal
    is as it was afterwards."""
    argv = [sys.executable, "-m", "birefvid.cli", "live", "--source", str(clip), "--realtime", "--loop", "--effect", "green",
            *FAST_MODEL, "--sink", "rec.mkv", "--duration", "40", "--stats-every", "0.5", "--report", "report.json"]  # fmt: skip
    with _OnTerminal(argv, tmp_path) as term:
        before = _mode(term.slave)
        assert before & termios.ICANON and before & termios.ECHO
        wait_for(lambda: "live: keys b blur, g green, n none, o overlay switch the effect" in term.stderr() or term.proc.poll() is not None,
                 STARTUP, "the keys' line")  # fmt: skip
        assert term.proc.poll() is None, term.stderr()[-3000:]
        wait_for(lambda: "live: source" in term.stderr(), STARTUP, "the first stats line (pictures showing)")
        running = _mode(term.slave)
        term.type("n")
        wait_for(lambda: "live: effect none (from the terminal)" in term.stderr(), 10, "the switch to none")
        term.type("\x1b[B\x1b[A\x1bOB")  # arrow keys (ESC [ B is the down arrow) are not b
        time.sleep(1.5)
        term.type("rg")  # r: no --background, refused with a warning; g: green again
        wait_for(lambda: "live: effect green (from the terminal)" in term.stderr(), 10, "the switch back to green")
        time.sleep(1.5)
        term.type("\x03")  # Ctrl-C, as a person ends the run: still a signal in key-by-key mode
        code = term.proc.wait(60)
        after = _mode(term.slave)
        err = term.stderr()
    assert code == 0 and "ended: interrupted" in err, err
    assert not running & (termios.ICANON | termios.ECHO), "the run did not read key by key"
    assert after == before, "the terminal's mode was not given back"
    assert "replace needs a --background" in err, err
    changes = json.loads((tmp_path / "report.json").read_text())["effect_changes"]
    assert [(c["effect"], c["by"]) for c in changes] == [("none", "terminal"), ("green", "terminal")], changes
    _, frames = decode_video(tmp_path / "rec.mkv")
    keyed = [share(f, GREEN) > 0.3 for f in frames]
    runs = [keyed[0]] + [k for prev, k in zip(keyed, keyed[1:]) if k != prev]
    assert runs == [True, False, True], f"{len(frames)} frames, keyed runs {runs}"


def test_a_run_in_the_background_leaves_the_terminal_alone(tmp_path: Path, clip: Path) -> None:
    """``birefvid live ... &`` in an interactive shell: reading the terminal or setting its mode from the
    background would stop the run (SIGTTIN, SIGTTOU); it runs to its end, and keys go to the shell."""
    bash = need_binary("bash", "bash")
    command = (f"{shlex.quote(sys.executable)} -m birefvid.cli live --source {shlex.quote(str(clip))} --realtime --loop --effect green {' '.join(FAST_MODEL)} "
               f"--sink rec.mkv --duration 4 --report report.json 2>err.txt & wait $!; echo exit=$? > done.txt; exit\n")  # fmt: skip
    master, slave = pty.openpty()
    try:
        shell = subprocess.Popen([bash, "--norc", "--noprofile", "-i"], cwd=tmp_path, stdin=slave, stdout=slave, stderr=slave,
                                 preexec_fn=_own_terminal, env={**os.environ, "PS1": "$ ", "PYTHONUNBUFFERED": "1"})  # fmt: skip
        try:
            os.write(master, command.encode())
            wait_for(lambda: "live: source" in _text(tmp_path / "err.txt") or (tmp_path / "done.txt").exists(), STARTUP, "the run's pictures")
            os.write(master, b"n")  # the shell's, not the run's
            wait_for(lambda: (tmp_path / "done.txt").exists(), 60, "the background run to end by itself")
        finally:
            if shell.poll() is None:
                shell.kill()
            shell.wait(30)
            _drain(master)
    finally:
        os.close(master)
        os.close(slave)
    err = _text(tmp_path / "err.txt")
    assert _text(tmp_path / "done.txt").strip() == "exit=0", err
    assert "live: keys" not in err and "from the terminal" not in err, err
    assert json.loads((tmp_path / "report.json").read_text())["effect_switches"] == 0


def test_keys_are_inert_without_a_terminal_or_a_switchable_effect(tmp_path: Path) -> None:
    with open(tmp_path / "file.txt", "w+") as not_a_terminal:
        keys = TerminalKeys(not_a_terminal)
        keys.attach(EffectSwitch(EffectSpec("blur")))
        assert not keys.active
    master, slave = pty.openpty()
    try:
        with os.fdopen(os.dup(slave), "rb", buffering=0) as stream:
            # a terminal, but an alpha run cannot switch; and this pty is not pytest's controlling terminal
            for effect in ("alpha", "blur"):
                keys = TerminalKeys(stream)
                keys.attach(EffectSwitch(EffectSpec(effect)))
                assert not keys.active
                keys.close()
        assert _mode(slave) & termios.ICANON
    finally:
        os.close(master)
        os.close(slave)


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _drain(fd: int) -> Optional[bytes]:
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 65536)
    except OSError:
        return None


def test_q_in_the_terminal_ends_the_run_as_in_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """The keys' line says how to end the run, and q does it (the window's q did; the terminal's was ignored)."""
    import threading

    monkeypatch.setattr(TerminalKeys, "_holder", lambda self: os.getpgrp())  # this pty stands for the run's foreground terminal
    master, slave = pty.openpty()
    lines: list[str] = []
    quit_key = threading.Event()
    try:
        with os.fdopen(os.dup(slave), "rb", buffering=0) as stream, TerminalKeys(stream, lines.append, on_quit=quit_key.set) as keys:
            switch = EffectSwitch(EffectSpec("blur"))
            keys.attach(switch)
            assert lines and "q ends the run" in lines[0], lines
            os.write(master, b"nq")
            assert quit_key.wait(5), "q did not end the run"
            assert switch.effect == "none" and "live: q pressed, ending the run" in lines
    finally:
        os.close(master)
        os.close(slave)


def test_q_during_the_first_export_with_a_recording_ends_cleanly(tmp_path: Path, clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """q pressed while a first run exports the model (20-40 s on a laptop, before any picture) ended a run that
    records with a ZeroDivisionError traceback and exit 1: the end's hint divided the dropped frames by none shown.
    It ends with the summary line, exit 0 and no recording."""
    argv = [sys.executable, "-m", "birefvid.cli", "live", "--source", str(clip), "--realtime", "--loop", "--effect", "blur",
            *FAST_MODEL, "--backend", "onnxruntime", "--sink", "rec.mp4", "--duration", "60"]  # fmt: skip
    monkeypatch.setenv("BIREFVID_CACHE_DIR", str(tmp_path / "cache"))  # empty: the run must export
    with _OnTerminal(argv, tmp_path) as term:
        wait_for(lambda: "exporting" in term.stderr() or term.proc.poll() is not None, STARTUP, "the export to start")
        assert term.proc.poll() is None, term.stderr()[-3000:]
        term.type("q")
        code = term.proc.wait(60)
        err = term.stderr()
    assert code == 0 and "Traceback" not in err, err
    assert "live: showed no picture; ended: stop before the first picture" in err, err
    assert not (tmp_path / "rec.mp4").exists()


def test_a_stop_landing_while_the_keys_thread_starts_is_the_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C or SIGTERM landing in the keys thread's start(), before it began: close() joined it, which join()
    refuses ("cannot join thread before it is started"), so the run ended with that RuntimeError's traceback
    instead of exit 130 or 143."""
    import threading

    monkeypatch.setattr(TerminalKeys, "_holder", lambda self: os.getpgrp())  # this pty stands for the run's foreground terminal
    master, slave = pty.openpty()
    real_start = threading.Thread.start

    def signal_in_start(thread: threading.Thread) -> None:
        if thread.name != "terminal-keys":
            return real_start(thread)
        raise KeyboardInterrupt  # the signal handler's raise, before the thread began

    try:
        with pytest.raises(KeyboardInterrupt):
            with os.fdopen(os.dup(slave), "rb", buffering=0) as stream, TerminalKeys(stream) as keys:
                with monkeypatch.context() as patched:
                    patched.setattr(threading.Thread, "start", signal_in_start)
                    keys.attach(EffectSwitch(EffectSpec("blur")))
    finally:
        os.close(master)
        os.close(slave)
