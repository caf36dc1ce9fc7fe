"""The writer lock on an output's `.NAME.partial-*` entry (`io.atomic.writer_lock`, `being_written`)."""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading

from birefvid.io.atomic import AtomicFile, being_written


def test_a_partial_made_while_another_run_looks_at_it_is_still_marked(tmp_path, monkeypatch):
    """`being_written` takes a shared lock for a moment; a writer whose `writer_lock` came in that moment (a batch
    clean-up or another run's partial warning scanning the folder as this run made its file) gave up at once and left
    its entry unmarked for its whole life: the next clean-up removed its work in progress as a killed run's."""
    target = tmp_path / "out.mkv"
    looking = threading.Event()
    real_mkstemp = tempfile.mkstemp

    def mkstemp_while_looked_at(*args, **kwargs):  # the checker's shared lock taken between the file's making and its lock
        fd, name = real_mkstemp(*args, **kwargs)
        checker = os.open(name, os.O_RDONLY)
        fcntl.flock(checker, fcntl.LOCK_SH | fcntl.LOCK_NB)
        looking.set()
        threading.Timer(0.1, os.close, (checker,)).start()  # the checker lets go a moment later
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_while_looked_at)
    writing = AtomicFile(target)
    monkeypatch.undo()
    assert looking.is_set()
    try:
        assert being_written(writing.temp), "the live run's partial counts as a killed run's"
    finally:
        writing.discard()
    assert not writing.temp.exists()


def test_a_killed_runs_partial_is_a_leftover_though_a_child_it_forked_lives_on(tmp_path):
    """A forked child (multiprocessing's fork start method, a library's worker) shared the run's writer lock: the run
    SIGKILLed, its child still alive, its partial still counted as written now, so batch neither removed nor named it."""
    import signal
    import time

    read, write = os.pipe()
    run = os.fork()
    if run == 0:  # the run: writes an output, forks a helper, is killed
        try:
            writing = AtomicFile(tmp_path / "out.mkv")  # noqa: F841 - held open, as a run writing it
            helper = os.fork()
            if helper == 0:  # outlives the run
                time.sleep(30)
                os._exit(0)
            os.write(write, str(helper).encode())
        finally:
            os.kill(os.getpid(), signal.SIGKILL)
    os.close(write)
    helper = int(os.read(read, 32) or 0)
    os.close(read)
    os.waitpid(run, 0)
    try:
        assert helper and os.path.exists(f"/proc/{helper}")
        (partial,) = tmp_path.glob(".out.partial-*.mkv")
        assert not being_written(partial), "a killed run's partial counts as written now while its child lives"
    finally:
        if helper:
            os.kill(helper, signal.SIGKILL)


def test_a_named_pipe_of_a_partials_name_is_looked_at_without_waiting(tmp_path):
    """`being_written` opened each `.NAME.partial-*` entry to test its lock: a named pipe of that name waited for a
    writer forever, and the batch or process run looking for leftovers with it."""
    from birefvid.batch.leftovers import partials_beside

    fifo = tmp_path / ".a.partial-abcdefgh.mkv"
    os.mkfifo(fifo)
    found: list = []
    looking = threading.Thread(target=lambda: found.append(partials_beside([tmp_path / "a.mkv"])), daemon=True)
    looking.start()
    looking.join(10)
    stuck = looking.is_alive()
    if stuck:  # let the stuck open go (a writer at the other end), then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        looking.join(5)
    assert not stuck, "looking at a named pipe waited for its writer"
    assert found == [[fifo]]


def test_a_forked_child_letting_go_of_its_copy_keeps_the_file_it_opened_on_that_number(tmp_path):
    """The at-fork handler closes the child's copy of the lock descriptor; a file the child opens next takes that
    number, and the child dropping its copy of the parent's AtomicFile (``del``: __del__) closed it again, so the
    child's log lost its writes (EBADF). The parent's lock is kept either way."""
    writing = AtomicFile(tmp_path / "out.mkv")
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        code = 1
        try:
            os.close(read)
            with open(tmp_path / "child.log", "w") as log:
                reused = log.fileno() == writing._lock
                del writing  # noqa: F821 - the child's copy, let go
                log.write("kept\n")
            code = 0 if reused else 3
        except BaseException:
            code = 2
        finally:
            os.write(write, str(code).encode())
            os._exit(0)
    os.close(write)
    code = os.read(read, 8).decode()
    os.close(read)
    os.waitpid(child, 0)
    try:
        assert code == "0", {"1": "?", "2": "the child's log was closed under it (EBADF)", "3": "number not reused"}.get(code, code)
        assert (tmp_path / "child.log").read_text() == "kept\n"
        assert being_written(writing.temp)
    finally:
        writing.discard()
