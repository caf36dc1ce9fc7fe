"""The process's peak resident memory, as ``bench`` reports it, on each system's own terms."""

from __future__ import annotations

import sys
from typing import Optional


def peak_rss_mb() -> Optional[int]:
    """Peak resident set size of this process in MiB, or None where the system does not say (Windows:
    no ``resource`` module). ``ru_maxrss`` is in KiB on Linux and the BSDs but in bytes on macOS."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / 2**20) if sys.platform == "darwin" else round(peak / 1024)
