#!/usr/bin/env python
"""A long `birefvid live` run's memory, minute by minute: a leak, a cache filling to a bound, or the allocator?

Runs ``birefvid live ARGS`` in this process and prints, at each of ``--marks`` (minutes), the
resident memory (``/proc/self/status``), glibc's own view of its heap (``mallinfo2``: bytes in
use by the program, bytes freed but kept by the allocator, large blocks it mmapped), the number of
Python objects the garbage collector tracks, threads and open files:

    python scripts/live_memory.py --marks 1,5,10,20 -- --source clip.mp4 --realtime --loop \\
        --model tiny --resolution 128 --sink rec.mkv --segment 60 --sink http://127.0.0.1:8090 --duration 1260

Resident memory that grows while "in use" and the object count stay flat is the allocator keeping
freed memory (fragmentation), not a leak. ``--trim`` calls ``malloc_trim(0)`` at each mark and
prints what it handed back; ``--trace`` starts tracemalloc (slow: run it on a quiet machine) and
prints the Python allocations that grew most since the previous mark (its own snapshots then
swell the resident and "kept free" columns: read those from a run without it). Linux with glibc only
(under ``LD_PRELOAD`` of another allocator the glibc columns are left out).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import sys
import threading
import time
import tracemalloc
from typing import Optional

MB = 2**20


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _libc() -> Optional[ctypes.CDLL]:
    """glibc with ``mallinfo2`` and ``malloc_trim``, or None (another libc, another allocator preloaded)."""
    if "LD_PRELOAD" in os.environ and os.environ["LD_PRELOAD"].strip():
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        return None
    return libc


def process_status() -> dict[str, int]:
    """Resident memory (KiB), threads and open files of this process, from /proc."""
    status: dict[str, int] = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "Threads"):
                status[key] = int(value.split()[0])
    status["fds"] = len(os.listdir("/proc/self/fd"))
    return status


def line(minute: float, libc: Optional[ctypes.CDLL]) -> str:
    """One row of the table at ``minute``."""
    s = process_status()
    row = f"{minute:6.1f} {s['VmRSS'] / 1024:9.1f} {s['RssAnon'] / 1024:9.1f}"
    if libc is not None:
        m = libc.mallinfo2()
        row += f" {m.uordblks / MB:9.1f} {m.fordblks / MB:9.1f} {m.hblkhd / MB:9.1f}"
    else:
        row += f" {'-':>9} {'-':>9} {'-':>9}"
    return row + f" {len(gc.get_objects()):10d} {s['Threads']:7d} {s['fds']:5d}"


def watch(marks: list[float], trim: bool, trace: bool, started: float) -> None:
    """Print a row at each mark (and with ``trim``/``trace`` what they show); runs on a daemon thread."""
    libc = _libc()
    print(f"{'minute':>6} {'rss MB':>9} {'anon MB':>9} {'in use':>9} {'kept free':>9} {'mmapped':>9} {'py objects':>10} {'threads':>7} {'fds':>5}", flush=True)
    previous = None
    for mark in marks:
        time.sleep(max(0.0, started + mark * 60 - time.monotonic()))
        print(line(mark, libc), flush=True)
        if trim and libc is not None:
            before = process_status()["VmRSS"]
            libc.malloc_trim(0)
            print(f"       malloc_trim(0): {before / 1024:.1f} -> {process_status()['VmRSS'] / 1024:.1f} MB resident", flush=True)
        if trace:
            snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
            if previous is not None:
                for stat in snapshot.compare_to(previous, "lineno")[:5]:
                    print(f"       {stat.size_diff / 1024:+9.0f} KiB {stat.count_diff:+7d} blocks  {stat.traceback[0]}", flush=True)
            previous = snapshot


def main(argv: Optional[list[str]] = None) -> int:
    """Run ``birefvid live`` with the arguments after ``--`` while printing its memory at each mark."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--marks", default="1,2,5,10,15,20", help="minutes at which to print a row (default 1,2,5,10,15,20)")
    ap.add_argument("--trim", action="store_true", help="malloc_trim(0) at each mark, printing what it handed back")
    ap.add_argument("--trace", action="store_true", help="tracemalloc: the Python allocations that grew most between marks")
    ap.add_argument("live_args", nargs=argparse.REMAINDER, help="-- then birefvid live's arguments")
    args = ap.parse_args(argv)
    live_args = args.live_args[1:] if args.live_args[:1] == ["--"] else args.live_args
    if not live_args:
        ap.error("give birefvid live's arguments after --")
    marks = sorted(float(m) for m in args.marks.split(","))
    if args.trace:
        tracemalloc.start(1)
    started = time.monotonic()
    threading.Thread(target=watch, args=(marks, args.trim, args.trace, started), daemon=True).start()
    from birefvid.cli import main as birefvid_main

    return birefvid_main(["live", *live_args])


if __name__ == "__main__":
    sys.exit(main())
