"""How much memory a piece of work keeps, counting only what given modules allocate.

tracemalloc traces the whole process: a test earlier in the same pytest-xdist worker may leave threads (a live run's,
a server's) allocating while the work runs, and a bound of tens of kilobytes then failed on a loaded CI machine
(28 KB once against a test's usual 9.5 KB). Allocations are kept when any frame of their traceback lies in one of
the modules: what their code, and the libraries it calls, hold on to.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from types import ModuleType
from typing import Callable


def kept_by(modules: list[ModuleType], work: Callable[[], object], depth: int = 1) -> int:
    """Bytes that ``work()`` left allocated from code of ``modules`` (a file, or a package's folder). ``depth``: the
    frames kept of each allocation's traceback, enough to reach the module's own frame through the libraries it
    calls (numpy's, pysodmetrics'); each frame kept slows a tight loop several times over."""
    ours = [tracemalloc.Filter(True, _pattern(m), all_frames=True) for m in modules]
    started = not tracemalloc.is_tracing()  # under PYTHONTRACEMALLOC (or -X tracemalloc) the run's tracing is left on
    if started:
        tracemalloc.start(depth)
    try:
        before = tracemalloc.take_snapshot().filter_traces(ours)
        work()
        after = tracemalloc.take_snapshot().filter_traces(ours)
    finally:
        if started:
            tracemalloc.stop()
    return sum(stat.size_diff for stat in after.compare_to(before, "filename"))


def _pattern(module: ModuleType) -> str:
    """The files of ``module``: its package's folder for a package, else its own file."""
    path = Path(module.__file__ or "")
    return str(path.parent / "*") if path.name == "__init__.py" else str(path)
