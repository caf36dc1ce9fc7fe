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
