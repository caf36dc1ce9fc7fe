"""An output named by a device or a named pipe (``/dev/null``, ``>(jq .)``, a link to either). Every output is written to a
temporary file renamed onto its name, and the rename replaced the device itself: run as root, ``--report /dev/null`` or
``-o out.mkv`` linked to ``/dev/null`` with ``--overwrite`` left ``/dev/null`` a plain file, every later program's.
A named pipe stands in for the device here (no root needed, and no risk to the machine's ``/dev/null``)."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from pathlib import Path

import pytest

from birefvid.cli import main
from media import make_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("clip") / "clip.mp4", n_frames=3).path


def a_pipe(path: Path) -> Path:
    os.mkfifo(path)
    return path


def test_a_report_named_by_a_pipe_is_written_into_it(tmp_path, capsys, clip):
    """``eval --json`` (as ``--report``: the same writer) into a named pipe a reader holds open: the JSON comes out of the
    pipe and the pipe is still one. It was renamed onto: the pipe became a plain file, the reader got nothing."""
    pipe = a_pipe(tmp_path / "scores.json")
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)  # open before the writer: it then never blocks
    try:
        assert main(["eval", str(clip), str(clip), "--json", str(pipe), "-q"]) == 0, capsys.readouterr().err
        assert stat.S_ISFIFO(os.lstat(pipe).st_mode)
        text = os.read(reader, 1 << 16).decode()
    finally:
        os.close(reader)
    assert "frames" in json.loads(text) or json.loads(text)  # the whole JSON came through
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.json"]  # no temporary file left


def test_a_report_named_by_a_link_keeps_the_link(tmp_path, capsys, clip):
    """As every other output: the file the link leads to is written and the link stays (it was replaced by a file)."""
    (tmp_path / "real.json").write_text("{}")
    (tmp_path / "link.json").symlink_to("real.json")
    assert main(["eval", str(clip), str(clip), "--json", str(tmp_path / "link.json"), "-q"]) == 0, capsys.readouterr().err
    assert (tmp_path / "link.json").is_symlink()
    assert json.loads((tmp_path / "real.json").read_text()) != {}


def model(weights: Path) -> list[str]:
    return ["--overwrite", "--output", "mask", "--weights", str(weights), "--device", "cpu", "--resolution", "64", "-q"]


def one_line(capsys, code: int, said: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and said in err[0], (code, err)


def test_a_live_recording_linked_to_a_pipe_is_refused_before_any_work(tmp_path, capsys, clip, pvt_b0_weights):
    """A recording linked to a pipe, with ``--overwrite``: one line, exit 2, the pipe untouched (``process`` and ``batch``
    refused a pipe already; ``live`` renamed its recording onto it)."""
    pipe = a_pipe(tmp_path / "sink")
    (tmp_path / "rec.mkv").symlink_to("sink")
    one_line(capsys, main(["live", "--source", str(clip), "--sink", str(tmp_path / "rec.mkv"), "--duration", "1",
                           *model(pvt_b0_weights)[:1], *model(pvt_b0_weights)[3:]]), "is a named pipe")
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.mkv", "sink"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="making a device node (mknod) needs root")
def test_a_video_output_linked_to_a_device_is_refused_before_any_work(tmp_path, capsys, clip, pvt_b0_weights):
    """``ln -s /dev/null out.mkv`` then ``--overwrite``, as root: the device was replaced by the video. A twin of
    /dev/null (character device 1,3) made in the test's folder stands in for it."""
    device = tmp_path / "null"
    os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    (tmp_path / "out.mkv").symlink_to("null")
    one_line(capsys, main(["process", str(clip), "-o", str(tmp_path / "out.mkv"), *model(pvt_b0_weights)]), "is a character device")
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null", "out.mkv"]


def test_a_report_named_by_an_open_descriptor_goes_through_it(tmp_path, capsys, clip):
    """``--report /dev/stdout >> run.log 2>&1``: ``/dev/stdout`` leads (``/proc/self/fd/1``) to the log the shell opened
    for appending. The report was renamed onto the log, the lines before it gone (the run's own 'wrote' line too); now it
    is written through the descriptor, after them. A descriptor of the test's own (``/proc/self/fd/N``) stands in."""
    log = tmp_path / "run.log"
    log.write_text("earlier line\n")
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        (tmp_path / "stdout").symlink_to(f"/proc/self/fd/{fd}")
        assert main(["eval", str(clip), str(clip), "--json", str(tmp_path / "stdout"), "-q"]) == 0, capsys.readouterr().err
    finally:
        os.close(fd)
    text = log.read_text()
    assert text.startswith("earlier line\n"), text[:80]
    assert json.loads(text[len("earlier line\n"):])
    assert (tmp_path / "stdout").is_symlink()


def test_a_descriptor_the_run_was_not_started_with_is_refused(tmp_path, capsys, clip, monkeypatch):
    """``--report /dev/fd/9`` where the shell opened no 9: by the time the report was written the run had put a file of
    its own on 9 (a model's cache blob, a worker's pipe), and the report went into it. The run was not given 9: one line,
    exit 2, that file untouched. A file opened once the command has started stands in for the run's own."""
    import birefvid.cli as cli

    inner = tmp_path / "internal.bin"
    inner.write_text("the run's own data\n")
    link = tmp_path / "fd"
    real_main = cli._main
    held = []

    def run_with_a_file_of_its_own(argv):
        held.append(os.open(inner, os.O_WRONLY | os.O_APPEND))
        link.symlink_to(f"/proc/self/fd/{held[0]}")
        return real_main(argv)

    monkeypatch.setattr(cli, "_main", run_with_a_file_of_its_own)
    try:
        one_line(capsys, main(["eval", str(clip), str(clip), "--json", str(link), "-q"]), "which the run was not started with")
    finally:
        for fd in held:
            os.close(fd)
    assert inner.read_text() == "the run's own data\n"


def test_a_descriptor_open_for_reading_is_said_so(tmp_path, capsys, clip):
    """``--report /dev/fd/3 3< file``: one line that says the descriptor is open for reading, where it said 'Bad file
    descriptor'."""
    source = tmp_path / "ro.txt"
    source.write_text("kept\n")
    fd = os.open(source, os.O_RDONLY)
    try:
        (tmp_path / "fd").symlink_to(f"/proc/self/fd/{fd}")
        one_line(capsys, main(["eval", str(clip), str(clip), "--json", str(tmp_path / "fd"), "-q"]), "open for reading only")
    finally:
        os.close(fd)
    assert source.read_text() == "kept\n"


def in_a_child_that_is_not_root(call) -> str:
    """``call()`` in a forked child, as nobody where the test runs as root (whom no permission bit stops): what it
    raised, as ``Type: message``, or "" where it returned."""
    said, told = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(said)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setresgid(65534, 65534, 65534)
                os.setresuid(65534, 65534, 65534)
            try:
                call()
            except BaseException as e:  # noqa: BLE001 - reported to the parent
                os.write(told, f"{type(e).__name__}: {e}".encode() or b"?")
        finally:
            os._exit(0)
    os.close(told)
    os.waitpid(child, 0)
    with os.fdopen(said, "rb") as reason:
        return reason.read().decode()


def test_a_descriptor_open_for_writing_is_not_refused_for_its_files_permissions(tmp_path):
    """``sudo -u svc birefvid batch ... --progress-json /dev/fd/3 3>> /var/log/b.jsonl`` (or a unit's
    ``StandardOutput=file:``): the shell opened root's file for the run, which writes through the descriptor, but the
    checks asked whether the name's file was writable by the run's user, and its folder readable: '--progress-json
    /dev/fd/3 is not writable', or a PermissionError traceback (exit 1) from ``--report``'s check. A file in a folder
    closed once the file was opened stands in; as root, the checks run in a child that has become nobody."""
    from birefvid.io.atomic import check_output_file
    from birefvid.runtime.file_job import check_report_path

    closed = tmp_path / "closed"
    closed.mkdir()
    log = closed / "b.jsonl"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.chmod(log, 0o444)
    os.chmod(closed, 0o000)

    def checked_then_written():  # the checks, then a line through the descriptor, as the run writes its JSON lines
        check_output_file(f"/dev/fd/{fd}", "--progress-json")
        check_report_path(f"/dev/fd/{fd}")
        os.write(fd, b'{"event": "start"}\n')

    try:
        assert in_a_child_that_is_not_root(checked_then_written) == ""
        # a report named in that folder, not through a descriptor: one line, not a traceback
        said = in_a_child_that_is_not_root(lambda: check_report_path(closed / "r.json"))
        assert said.startswith("SinkError: cannot write ") and said.endswith(f"r.json: Permission denied ({closed})"), said
    finally:
        os.close(fd)
        os.chmod(closed, 0o755)
        os.chmod(log, 0o644)
    assert log.read_text() == '{"event": "start"}\n'


def a_number_no_descriptor_has() -> int:
    for fd in range(1000, 1100):
        try:
            os.fstat(fd)
        except OSError:
            return fd
    raise AssertionError("no free descriptor number in 1000-1099")


@pytest.mark.parametrize("given", ["none", "for reading"])
def test_a_report_descriptor_it_cannot_go_through_is_refused_before_the_work(tmp_path, capsys, clip, pvt_b0_weights, given):
    """``process --report /dev/fd/9`` where the shell opened no 9, or opened it ``9< file``: refused only once the
    report was written, after the whole video was made (exit 2, 'the output was written and is kept'). Now one line
    before any work, no output made."""
    held = None
    if given == "none":
        fd = a_number_no_descriptor_has()
    else:
        (tmp_path / "ro.txt").write_text("kept\n")
        fd = held = os.open(tmp_path / "ro.txt", os.O_RDONLY)
    try:
        code = main(["process", str(clip), "-o", str(tmp_path / "out.mkv"), "--report", f"/dev/fd/{fd}", *model(pvt_b0_weights)])
    finally:
        if held is not None:
            os.close(held)
    one_line(capsys, code, "which the run was not started with" if given == "none" else "open for reading only")
    assert not (tmp_path / "out.mkv").exists()


def test_a_report_into_a_full_non_blocking_pipe_waits_for_room(tmp_path, capsys, clip, monkeypatch):
    """``--report /dev/stdout`` where a parent (Node.js) left its pipe non-blocking and its reader is slow: the report's
    copy of the descriptor shares the O_NONBLOCK, and a full pipe failed the report with EAGAIN ('write could not
    complete without blocking', exit 2, the report lost), where the name reopened waited for room. The reader here
    starts once the run waits on the pipe."""
    import select
    import threading
    import types

    import birefvid.standard_output as standard_output

    reader, writer = os.pipe()
    os.set_blocking(writer, False)
    filler = 0
    with contextlib.suppress(BlockingIOError):
        while True:
            filler += os.write(writer, b"x" * 4096)
    waiting, done = threading.Event(), threading.Event()

    def wait_for_room(*args):
        waiting.set()
        return select.select(*args)

    monkeypatch.setattr(standard_output, "select", types.SimpleNamespace(select=wait_for_room))
    data = bytearray()

    def read_once_the_run_waits():
        while not (waiting.wait(0.05) or done.is_set()):
            pass
        os.set_blocking(reader, False)
        while True:
            try:
                chunk = os.read(reader, 1 << 16)
            except BlockingIOError:
                if done.is_set():
                    return
                time.sleep(0.01)
                continue
            if not chunk:
                return
            data.extend(chunk)

    thread = threading.Thread(target=read_once_the_run_waits, daemon=True)
    thread.start()
    try:
        (tmp_path / "stdout").symlink_to(f"/proc/self/fd/{writer}")
        code = main(["eval", str(clip), str(clip), "--json", str(tmp_path / "stdout"), "-q"])
    finally:
        done.set()
        os.close(writer)
        thread.join(10)
        os.close(reader)
    assert code == 0, capsys.readouterr().err
    assert json.loads(bytes(data[filler:]))


def run_for_at_most(seconds: float, pipe: Path, call):
    """``call()`` in a thread; when it is still waiting on ``pipe`` after ``seconds``, a reader opened on the pipe lets it
    go (so a test of a hang fails, not hangs). What it returned or raised, and whether it had to be let go."""
    import threading

    out: dict = {}

    def target():
        try:
            out["value"] = call()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            out["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    hung = thread.is_alive()
    if hung:
        reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
        try:
            thread.join(10)
        finally:
            os.close(reader)
    return out, hung


def test_a_report_to_a_named_pipe_nobody_reads_does_not_hang_the_run(tmp_path, capsys, clip, monkeypatch):
    """``--json pipe`` with no reader: open() waited for ever after the work, the run never ended. Now the reader is waited
    for a while (``PIPE_READER_WAIT_S``, short here), then one line, exit 2, the pipe still a pipe."""
    from birefvid.io import atomic

    monkeypatch.setattr(atomic, "PIPE_READER_WAIT_S", 0.3, raising=False)
    pipe = a_pipe(tmp_path / "scores.json")
    out, hung = run_for_at_most(20, pipe, lambda: main(["eval", str(clip), str(clip), "--json", str(pipe), "-q"]))
    assert not hung
    one_line(capsys, out["value"], "is a named pipe that no program reads")
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)


@pytest.mark.parametrize("opener", ["stats", "progress"])
def test_json_lines_to_a_named_pipe_nobody_reads_do_not_hang(tmp_path, monkeypatch, opener):
    """``live --stats-json pipe`` and ``batch --progress-json pipe`` with no reader hung before any work, for ever."""
    from birefvid.batch.progress import BatchProgress
    from birefvid.errors import SinkError
    from birefvid.io import atomic
    from birefvid.runtime.live_stats import LiveStats

    monkeypatch.setattr(atomic, "PIPE_READER_WAIT_S", 0.3, raising=False)
    pipe = a_pipe(tmp_path / "lines.jsonl")
    make = (lambda: LiveStats(5.0, str(pipe))) if opener == "stats" else (lambda: BatchProgress(quiet=True, json_path=pipe))
    out, hung = run_for_at_most(20, pipe, make)
    assert not hung
    assert isinstance(out.get("error"), SinkError) and "no program reads" in str(out["error"]), out


def test_stats_lines_to_a_named_pipe_whose_reader_left_end_without_ending_the_run(tmp_path, caplog):
    """``live --stats-json pipe`` whose reader goes (a dashboard restarted, ``head -n 1 pipe``): the next line's write
    failed with EPIPE, a SinkError that ended the live run with exit 2 and threw its recording away. Now, as for
    ``--stats-json -``, a warning and the lines end, not the run."""
    import logging
    import time

    from birefvid.runtime.live_stats import LiveStats

    pipe = a_pipe(tmp_path / "lines.jsonl")
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
    stats = LiveStats(5.0, str(pipe))
    os.close(reader)
    with caplog.at_level(logging.WARNING):
        stats.emit(time.monotonic(), None)  # raised SinkError (Broken pipe)
        stats.emit(time.monotonic(), None)  # given up: nothing more tried
    stats.close()
    assert "reader has gone" in caplog.text
