"""The process's one OpenVINO ``Core``.

Why one: each ``Core`` loads a CPU plugin of its own, and that plugin (OpenVINO's ``SigAltStackSetup``, made for AMX's
large signal frames) gives the thread that loads it a new alternate signal stack, saving the thread's previous one;
released, it unmaps that stack, but puts the previous one back only when its own is still the thread's. So two plugins
released in the order they were loaded (two models, or a model's latency and throughput compiles, freed oldest first)
leave the thread's signal stack on unmapped memory, and the next signal whose handler runs on it (Python's Ctrl-C and
SIGTERM handlers, faulthandler's) kills the process with a SIGSEGV: exit 139, no traceback, no clean-up. One ``Core``
kept for the process loads the plugin once and never releases it, so its stack stays mapped. It also spares each
compile the plugin's load.

The cost: the kept plugin keeps a released model's worker threads for the next model compiled with the same settings,
at the priority of the thread that made them, so a live run's model compiled on a niced thread runs at normal priority
in a process that ran an OpenVINO model before (docs/live.md). ``CACHE_DIR`` goes in each ``compile_model``'s config,
which OpenVINO applies to that compile alone: each run's ``BIREFVID_CACHE_DIR`` is the one used."""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_core: list[Any] = []


def openvino_core() -> Any:
    """The ``openvino.Core`` every compile and query of this process uses (OpenVINO's Core is thread-safe), made on first use."""
    with _lock:
        if not _core:
            import openvino as ov

            _core.append(ov.Core())
        return _core[0]
