"""OpenVINO's first compile of a model is announced, once: after the export's lines a first run went silent for
3-10 s on 2 cores (tiny at 256x256; more for bigger models) before its first frame, the wait a new user most
wonders about; a later run, which loads the compiled blob in well under a second, says nothing."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from birefvid.backends.engines import COMPILE_NOTICE_AFTER_S, CompileNotice
from system_tools import need_module

COMPILING = "compiling the model for OpenVINO at 64x64"


def _image(tmp_path: Path, cache: Path, out: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "BIREFVID_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "birefvid", "image", str(tmp_path / "in.jpg"), "-o", str(tmp_path / out),
                           "--model", "tiny", "--resolution", "64", "--backend", "openvino"],
                          capture_output=True, text=True, timeout=600, env=env)  # fmt: skip


def test_a_first_run_announces_the_compile_once_and_a_second_run_is_quiet(tmp_path):
    need_module("openvino", "openvino")
    Image.fromarray(np.full((48, 64, 3), 128, np.uint8)).save(tmp_path / "in.jpg")
    cache = tmp_path / "cache"  # fresh: this run exports tiny at 64x64 and compiles it
    first = _image(tmp_path, cache, "a.png")
    assert first.returncode == 0, first.stderr
    lines = first.stderr.splitlines()
    said = [i for i, line in enumerate(lines) if COMPILING in line]
    assert len(said) == 1, lines
    assert lines[said[0]] == f"birefvid: {COMPILING} (the first time at this size and setting; cached in {cache / 'openvino'})"
    assert any(line.startswith("birefvid: exported in") for line in lines[: said[0]]), "announced before the export ended"
    assert lines[said[0] + 1].startswith("birefvid: compiled in "), lines
    second = _image(tmp_path, cache, "b.png")
    assert second.returncode == 0, second.stderr
    assert "compil" not in second.stderr and "export" not in second.stderr, second.stderr


def test_a_compile_not_known_to_be_first_is_announced_once_it_lasts(tmp_path, caplog):
    """A blob missing for another reason (a new precision, another command's batch mode, a cleared cache) is found
    out only by waiting: the notice comes once the compile has taken COMPILE_NOTICE_AFTER_S."""
    caplog.set_level(logging.WARNING, logger="birefvid.backends.engines")
    with CompileNotice("64x64", tmp_path, first=False):
        deadline = time.monotonic() + COMPILE_NOTICE_AFTER_S + 60  # a generous bound: the timer thread on a loaded machine
        while COMPILING not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if COMPILING in m] and messages[-1].startswith("compiled in "), messages


@pytest.mark.parametrize("cached", [False, True])
def test_a_quick_compile_or_a_cached_load_says_nothing(tmp_path, caplog, cached):
    caplog.set_level(logging.DEBUG, logger="birefvid.backends.engines")
    with CompileNotice("64x64", tmp_path, first=False) as notice:
        notice.loaded_from_cache = cached
    time.sleep(COMPILE_NOTICE_AFTER_S + 0.5)  # the timer, had it not been cancelled, would have said it by now
    assert not caplog.records, caplog.text
