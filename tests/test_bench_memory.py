"""``bench``'s peak memory: MiB on Linux and macOS (whose ru_maxrss is in bytes, not KiB), None where unknown."""

from __future__ import annotations

import builtins
import re
import sys
from types import SimpleNamespace

import pytest

from birefvid.benchmark.memory import peak_rss_mb


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_the_peak_matches_what_linux_reports():
    status = open("/proc/self/status").read()
    hwm_kib = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))
    assert abs(peak_rss_mb() - hwm_kib / 1024) <= 8  # the same high-water mark, read a moment apart


def test_macos_reports_bytes(monkeypatch):
    import resource

    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(resource, "getrusage", lambda who: SimpleNamespace(ru_maxrss=512 * 2**20))
    assert peak_rss_mb() == 512  # was 524288 "MB": bytes taken for KiB


def test_without_resource_the_peak_is_unknown(monkeypatch):
    real_import = builtins.__import__

    def no_resource(name, *args, **kwargs):
        if name == "resource":
            raise ImportError("No module named 'resource'")  # as on Windows
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_resource)
    assert peak_rss_mb() is None


def test_the_table_says_when_the_peak_is_unknown():
    from birefvid.commands.bench import _table

    figures = {"model": "m", "backend": "torch", "precision": "fp32", "device": "cpu", "resolution": [64, 64], "batch_size": 1,
               "fps": 1.0, "reference_fps": 1.0, "speedup": 1.0, "max_abs_diff": 0.0, "mean_abs_diff": 0.0,
               "gflop_per_frame": 1.0, "gflops_achieved": 1.0, "reference_gflops_achieved": 1.0, "export_seconds": None,
               "peak_rss_mb": None, "machine": {}}
    row = next(line for line in _table(figures).splitlines() if line.startswith("peak memory"))
    assert "unknown RSS" in row and "None" not in row
