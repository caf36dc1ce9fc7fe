"""How many CPU cores this process may really use: its affinity, and a container's CPU quota.

``os.cpu_count()`` is the host's: in a container limited to 2 CPUs on a 64-core host (``docker run
--cpus 2``, a Kubernetes CPU limit) torch, OpenVINO and x264 each started a thread per host core, and
the quota throttled them all (ten-millisecond stalls in the middle of every frame). torch follows the
affinity (``taskset``, ``--cpuset-cpus``) but nothing reads the quota, so it is read here, from the
cgroup files (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``), the smallest along the cgroup's path up.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from pathlib import Path
from typing import Callable, Optional

from ..thread_limit import THREADS_ENV, thread_limit

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def affinity_cores() -> int:
    """The cores this process may run on (``taskset``, ``--cpuset-cpus``), else the machine's."""
    getter = getattr(os, "sched_getaffinity", None)  # not on macOS or Windows
    if getter is not None:
        try:
            return max(1, len(getter(0)))
        except OSError:
            pass
    return os.cpu_count() or 1


def quota_cores(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> Optional[float]:
    """The CPU quota of this process's cgroup in cores (1.5 for ``--cpus 1.5``), or None when there is none."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:  # not Linux, or no /proc
        return None
    quotas: list[float] = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        rel = path.strip().lstrip("/")
        if controllers == "":  # cgroup v2: one tree
            quotas += _along(root, rel, _v2_quota)
        elif "cpu" in controllers.split(","):  # cgroup v1: the cpu controller's own tree
            for mount in (root / controllers, root / "cpu", root / "cpu,cpuacct"):
                if mount.is_dir():
                    quotas += _along(mount, rel, _v1_quota)
                    break
    return min(quotas) if quotas else None


def _along(mount: Path, rel: str, read: Callable[[Path], Optional[float]]) -> list[float]:
    """The quotas ``read`` finds from the cgroup's folder up to the mount; a container that sees its own
    cgroup as the mount's root (a cgroup namespace) finds it at the root."""
    found = []
    folder = mount / rel if rel else mount
    while True:
        quota = read(folder)
        if quota is not None:
            found.append(quota)
        if folder == mount or mount not in folder.parents:
            break
        folder = folder.parent
    if not found and rel:  # the path is the host's, the mount the container's own cgroup
        quota = read(mount)
        if quota is not None:
            found.append(quota)
    return found


def _v2_quota(folder: Path) -> Optional[float]:
    try:
        quota, period = (folder / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _v1_quota(folder: Path) -> Optional[float]:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


@functools.lru_cache(maxsize=1)
def usable_cores() -> int:
    """Cores worth a thread each: the affinity's, fewer under a CPU quota (rounded up: 1.5 CPUs run 2), fewer
    still where ``BIREFVID_THREADS`` asks (several runs sharing the machine)."""
    cores = affinity_cores()
    quota = quota_cores()
    if quota is not None and math.ceil(quota) < cores:
        log.debug("a CPU quota of %.2f cores: %d threads, not %d", quota, math.ceil(quota), cores)
        cores = max(1, math.ceil(quota))
    limit = thread_limit()
    if limit is not None and limit < cores:
        log.debug("%s=%d: %d threads, not %d", THREADS_ENV, limit, limit, cores)
        cores = limit
    return cores


def fit_torch_threads() -> None:
    """Fewer torch threads than it would start where a CPU quota allows fewer cores (never more)."""
    import torch

    cores = usable_cores()
    if torch.get_num_threads() > cores:
        torch.set_num_threads(cores)
