"""SIGTERM (kill, timeout, docker stop, systemd) ends a run as Ctrl-C does, never leaving half-written files.

Python's default for SIGTERM kills the process on the spot: a live run lost every recording and
left its hidden ``.NAME.partial-*`` files behind.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from live_e2e_tools import LiveRun, scene_clip, stats_lines, wait_for

FAST_MODEL = ["--model", "tiny", "--device", "cpu", "--resolution", "64"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scene_clip(tmp_path_factory.mktemp("signals") / "scene20s.mp4", 20.0, (160, 120), 24, unique_seconds=2.0)


def _partials(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name)


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for packet in container.demux(video=0) if packet.size)


def test_sigterm_ends_a_live_run_and_keeps_its_recordings(tmp_path: Path, clip: Path) -> None:
    args = ["--source", clip, "--realtime", "--effect", "blur", *FAST_MODEL, "--sink", "rec.mp4", "--sink", "rec.webm",
            "--segment", "2", "--stats-every", "0.5", "--stats-json", "stats.jsonl", "--report", "report.json"]  # fmt: skip
    with LiveRun(args, tmp_path) as run:
        wait_for(lambda: sum(s["frames_shown"] for s in stats_lines(tmp_path / "stats.jsonl")) >= 60, 90, "60 frames shown", run=run)
        run.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        stopped = time.monotonic()
        assert run.wait(30) == 0, run.stderr()[-3000:]
        assert time.monotonic() - stopped < 10
    assert _partials(tmp_path) == []  # no temporary file is left behind
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ended_by"] == "terminated"
    for name in ("rec.mp4", "rec.webm"):  # every part, the unfinished last one too: the run ended normally
        parts = [tmp_path / p for p in report["recorded"][name]]
        assert len(parts) >= 2 and sum(_frames(p) for p in parts) == report["frames_shown"]


@pytest.mark.parametrize("sig, code, word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGHUP, 129, "hung up")])
def test_sigterm_stops_a_file_run_without_leaving_its_output(tmp_path: Path, clip: Path, sig, code, word) -> None:
    """SIGHUP (the terminal or SSH session closed) killed the run at once and left its hidden
    .out.partial-*.mp4 behind (hundreds of MB on a long run); it is handled as SIGTERM now."""
    cmd = [sys.executable, "-m", "birefvid.cli", "process", str(clip), "-o", "out.mp4", "--output", "green", *FAST_MODEL]
    expected = code
    with open(tmp_path / "err.txt", "wb") as err:
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 90
        while not (_partials(tmp_path) and "processed " in (tmp_path / "err.txt").read_text()):  # well into the run
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "err.txt").read_text()[-3000:]
            time.sleep(0.05)
        proc.send_signal(sig)
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = (tmp_path / "err.txt").read_text()
    assert code == expected, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == f"birefvid: {word}"
    assert not (tmp_path / "out.mp4").exists() and _partials(tmp_path) == []


def test_a_run_under_nohup_ignores_sighup(tmp_path: Path, clip: Path) -> None:
    """``nohup birefvid process ...``: a hang-up the caller chose to ignore does not stop the run."""
    cmd = [sys.executable, "-m", "birefvid.cli", "process", str(clip), "-o", "out.mp4", "--output", "green", "--end", "2", *FAST_MODEL]
    with open(tmp_path / "err.txt", "wb") as err:
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not _partials(tmp_path):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "err.txt").read_text()[-3000:]
            time.sleep(0.05)
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(90) == 0, (tmp_path / "err.txt").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (tmp_path / "out.mp4").stat().st_size > 0 and _partials(tmp_path) == []


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_stopping_live_during_its_one_off_export_exits_cleanly(tmp_path: Path, clip: Path, sig: int, code: int, word: str) -> None:
    """Ctrl-C during the first export of a size (torch's exporter, 10-60 s, on the warm-up thread)
    aborted the process: "terminate called without an active exception", exit 134, and the export's
    partial file left in the cache. Python 3.11's Thread.join, interrupted, also took the running
    thread for ended. It now exits at once with the signal's code and takes the partial file with it."""
    cache = tmp_path / "cache"  # empty: the run must export
    args = ["--source", clip, "--realtime", "--effect", "blur", *FAST_MODEL, "--backend", "onnxruntime", "--sink", "rec.mp4", "--duration", "60"]
    with LiveRun(args, tmp_path, env={"BIREFVID_CACHE_DIR": str(cache)}) as run:
        wait_for(lambda: "exporting" in run.stderr(), 90, "the export to start", run=run)
        time.sleep(1.0)  # inside torch's exporter
        run.proc.send_signal(sig)  # type: ignore[union-attr]
        stopped = time.monotonic()
        assert run.wait(30) == code, run.stderr()[-3000:]
        assert time.monotonic() - stopped < 10
    err = run.stderr()
    assert f"birefvid: {word}" in err and "terminate called" not in err, err
    # the export's lock file stays (as pip's and the Hugging Face cache's do): removing it would let a
    # run still waiting on the old one and a new run both take "the" lock
    left = [p.name for p in (cache / "onnx").iterdir() if not (p.name.startswith(".") and p.name.endswith(".onnx.lock"))]
    assert left == [], "the interrupted export left its partial file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["birefvid.err", "birefvid.out", "cache"]


def test_sigterm_swallowed_into_a_plain_interrupt_still_exits_143(capsys: pytest.CaptureFixture[str]) -> None:
    """Ray's ray.wait catches the exception the SIGTERM handler raises and raises a plain
    KeyboardInterrupt: a scheduler's stop must still read as 143 'terminated', not as Ctrl-C."""
    import os

    from birefvid.cli import guarded
    from birefvid.errors import Terminated

    def work() -> int:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except Terminated:
            raise KeyboardInterrupt from None  # as Ray's C++ wait loop does
        return 0

    assert guarded("birefvid", work) == 143
    assert "birefvid: terminated" in capsys.readouterr().err
