"""``--start`` / ``--end`` times read from the command line: seconds, ``MM:SS`` or ``HH:MM:SS[.ms]``.

Apart from ``trim.py`` (whose ``TrimmedSource`` needs torch, PyAV and OpenCV) so that argparse reads a time,
and refuses a mistyped one, without importing them: ``process --start abc`` took 1.5-2 s of imports to say so.
"""

from __future__ import annotations

import math
import re


def _parse_clock(text: str) -> float:
    """Seconds from up to three colon-separated parts, only the last with a fraction; ValueError otherwise."""
    parts = text.split(":")
    if len(parts) > 3 or not all(re.fullmatch(r"\d+(\.\d*)?", p) for p in parts) or any("." in p for p in parts[:-1]):
        raise ValueError(text)
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + float(part)
    return seconds


def parse_time(text: str) -> float:
    """Seconds from ``12.5``, ``1:02.5`` (MM:SS) or ``1:02:03.5`` (HH:MM:SS); ValueError otherwise."""
    value = _parse_clock(str(text).strip())
    if not math.isfinite(value):
        raise ValueError(text)
    return value
