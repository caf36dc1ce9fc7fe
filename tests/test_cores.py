"""A container's CPU quota sets the thread counts: torch, OpenVINO and x264 started a thread per host core."""

from __future__ import annotations

from pathlib import Path

import pytest

from birefvid.runtime import cores
from birefvid.runtime.cores import quota_cores


def _tree(tmp_path: Path, proc: str, files: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    root.mkdir(exist_ok=True)
    (tmp_path / "proc_cgroup").write_text(proc)
    return root, tmp_path / "proc_cgroup"


@pytest.mark.parametrize(
    "proc, files, want",
    [
        ("0::/\n", {"cpu.max": "150000 100000\n"}, 1.5),  # docker --cpus 1.5, v2, its own cgroup at the root
        ("0::/\n", {"cpu.max": "max 100000\n"}, None),  # no limit
        # Kubernetes' pod limit sits on the pod's folder, the container's says max: the smallest up the path
        ("0::/kubepods/pod1/ctr\n", {"kubepods/pod1/cpu.max": "200000 100000\n", "kubepods/pod1/ctr/cpu.max": "max 100000\n"}, 2.0),
        ("0::/docker/abc\n", {"cpu.max": "100000 100000\n"}, 1.0),  # the host's path, the container's own mount
        ("1:cpu,cpuacct:/docker/x\n0::/\n", {"cpu,cpuacct/docker/x/cpu.cfs_quota_us": "50000\n",
                                              "cpu,cpuacct/docker/x/cpu.cfs_period_us": "100000\n"}, 0.5),  # v1
        ("1:cpu,cpuacct:/\n", {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, None),
    ],
)
def test_the_quota_is_read_from_cgroup_v1_and_v2(tmp_path, proc, files, want):
    assert quota_cores(*_tree(tmp_path, proc, files)) == want


def test_no_cgroup_files_is_no_quota(tmp_path):
    assert quota_cores(tmp_path / "none", tmp_path / "no_proc_cgroup") is None


def test_threads_follow_a_quota_rounded_up_and_never_exceed_the_affinity(monkeypatch):
    monkeypatch.setattr(cores, "affinity_cores", lambda: 64)
    for quota, want in ((None, 64), (2.0, 2), (1.5, 2), (0.5, 1), (128.0, 64)):
        monkeypatch.setattr(cores, "quota_cores", lambda q=quota: q)
        assert cores.usable_cores.__wrapped__() == want
    monkeypatch.setattr(cores, "quota_cores", lambda: 2.0)
    from birefvid.runtime.priority import codec_threads

    cores.usable_cores.cache_clear()
    try:
        assert codec_threads("cpu") == 1  # a 64-core host limited to 2 CPUs is a small CPU: x264 on one thread
    finally:
        cores.usable_cores.cache_clear()


def test_birefvid_threads_caps_every_thread_count_of_a_run(monkeypatch):
    """Two runs at once on one machine each sized torch, OpenVINO and the codecs by every core; `OMP_NUM_THREADS`
    reached torch alone (OpenVINO, the default CPU engine, kept 2 threads and 2 streams on 2 cores). `BIREFVID_THREADS=N`
    counts as N usable cores wherever the thread counts are read, never raising them."""
    import torch

    from birefvid.runtime.priority import codec_threads

    monkeypatch.setattr(cores, "affinity_cores", lambda: 8)
    monkeypatch.setattr(cores, "quota_cores", lambda: None)
    for value, want in (("1", 1), ("3", 3), ("16", 8), ("", 8)):
        monkeypatch.setenv("BIREFVID_THREADS", value)
        assert cores.usable_cores.__wrapped__() == want
    monkeypatch.setattr(cores, "quota_cores", lambda: 2.0)
    monkeypatch.setenv("BIREFVID_THREADS", "4")
    assert cores.usable_cores.__wrapped__() == 2  # the smaller of the quota and the limit
    monkeypatch.setenv("BIREFVID_THREADS", "1")
    before = torch.get_num_threads()
    cores.usable_cores.cache_clear()
    try:
        torch.set_num_threads(2)
        cores.fit_torch_threads()  # what the Segmenter does on a CPU
        assert torch.get_num_threads() == 1
        assert codec_threads("cpu") == 1
    finally:
        torch.set_num_threads(before)
        cores.usable_cores.cache_clear()


@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5", "²", "１"])
def test_a_birefvid_threads_that_is_no_count_is_one_error_line(value, monkeypatch, capsys):
    from birefvid.cli import main

    monkeypatch.setenv("BIREFVID_THREADS", value)
    assert main(["models"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"birefvid: error: BIREFVID_THREADS='{value}' is not a number of threads"), err


def test_a_birefvid_threads_of_more_digits_than_int_reads_is_no_cap(monkeypatch):
    """A number past int()'s 4300 digits was a ValueError traceback, exit 1; it is more than any machine's cores."""
    from birefvid.thread_limit import thread_limit

    monkeypatch.setenv("BIREFVID_THREADS", "9" * 5000)
    assert thread_limit() >= 10**18
    monkeypatch.setenv("BIREFVID_THREADS", "007")
    assert thread_limit() == 7
