"""scripts/gpu_check.py, the one-run check of every CUDA path: its wiring, run on the CPU.

On a GPU machine ``python scripts/gpu_check.py`` runs the same checks on cuda; here ``--device cpu``
proves each selected path runs end to end and that CUDA-only paths say they were skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"


def _run(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "BIREFVID_BACKEND": "torch"}
    return subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=300, env=env)


def test_cpu_run_passes_its_paths_and_skips_the_cuda_only_ones(tmp_path):
    report = tmp_path / "gpu.json"
    # two frames: pipeline-mask runs `process` twice (the CPU reference, then the device: the CPU again here), and a
    # frame is ~0.3-0.9 s of tiny at 256 px on CI's loaded cores; two moving frames still tell a misaligned or reordered
    # output from the reference (levels max 235 with the frames swapped), which is what this CPU run can check
    done = _run("--device", "cpu", "--frames", "2", "--only", "transfer,pipeline-mask,nvenc-h264,fp16", "--json", str(report))
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {r["path"]: r for r in json.loads(report.read_text())["paths"]}
    assert {name: r["status"] for name, r in rows.items()} == {"transfer": "PASS", "pipeline-mask": "PASS", "nvenc-h264": "SKIP", "fp16": "SKIP"}
    assert rows["pipeline-mask"]["figures"]["levels_vs_cpu"]["max"] <= 1  # the CPU against itself (a level: threads sum in any order)
    assert rows["nvenc-h264"]["note"] == "CUDA only"
    lines = done.stdout.splitlines()
    assert any(line.startswith("PASS  transfer") for line in lines) and lines[-1].startswith("4 of 4 paths passed or skipped")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer on machines without CUDA")
def test_without_cuda_it_says_so_in_one_line():
    done = _run()
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == "no CUDA device here: every path needs one (--device cpu runs the checks on the CPU)"
