"""OpenVINO's first compile of a model is announced, once: after the export's lines a first run went silent for
3-10 s on 2 cores (tiny at 256x256; more for bigger models) before its first frame, the wait a new user most
wonders about; a later run, which loads the compiled blob in well under a second, says nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

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
    assert lines[said[0]] == f"birefvid: {COMPILING} (once per size; cached in {cache / 'openvino'})"
    assert any(line.startswith("birefvid: exported in") for line in lines[: said[0]]), "announced before the export ended"
    assert lines[said[0] + 1].startswith("birefvid: compiled in "), lines
    second = _image(tmp_path, cache, "b.png")
    assert second.returncode == 0, second.stderr
    assert "compil" not in second.stderr and "export" not in second.stderr, second.stderr
