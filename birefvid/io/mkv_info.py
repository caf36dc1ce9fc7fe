"""The muxing application a Matroska file names in its Info element (``Lavf61.7.100``, ``libebml v1.4.4 + ...``).

FFmpeg shows it as the ``encoder`` tag only where the file holds no ENCODER tag of its own, and mkvmerge keeps
the ENCODER tag of the file it remuxed (``Lavf...`` from an OBS or ffmpeg recording): only the Info element says
which program wrote the file, and so how its DURATION tags are meant (``video_source._tag_is_end``).
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Optional

EBML, SEGMENT, INFO, CLUSTER, MUXING_APP = 0x1A45DFA3, 0x18538067, 0x1549A966, 0x1F43B675, 0x4D80
_MAX_ELEMENTS = 64  # of the Segment's before its Info: SeekHead, Void, Tracks... in any order the file has them


def ebml_number(f: BinaryIO, keep_marker: bool) -> Optional[int]:
    """An EBML variable-length number read from ``f`` (an element ID with its length marker, or a size without
    it: -1 for "unknown", as a muxer that could not seek back leaves it); None at the end or on a bad byte."""
    first = f.read(1)
    if not first or first[0] == 0:
        return None
    length = 9 - first[0].bit_length()  # leading zeros + 1
    rest = f.read(length - 1)
    if len(rest) < length - 1:
        return None
    value = int.from_bytes(first + rest, "big")
    if keep_marker:
        return value
    value &= (1 << (7 * length)) - 1
    return -1 if value == (1 << (7 * length)) - 1 else value


def muxing_app(path: str | Path) -> Optional[str]:
    """The MuxingApp of the Matroska (or WebM) file ``path``; None where it has none or cannot be read."""
    try:
        with open(path, "rb") as f:
            if ebml_number(f, True) != EBML:
                return None
            size = ebml_number(f, False)
            if size is None or size < 0:
                return None
            f.seek(size, 1)
            if ebml_number(f, True) != SEGMENT or ebml_number(f, False) is None:
                return None
            for _ in range(_MAX_ELEMENTS):
                element, size = ebml_number(f, True), ebml_number(f, False)
                if element is None or size is None or size < 0 or element == CLUSTER:
                    return None
                if element != INFO:
                    f.seek(size, 1)
                    continue
                end = f.tell() + size
                while f.tell() < end:
                    child, length = ebml_number(f, True), ebml_number(f, False)
                    if child is None or length is None or length < 0:
                        return None
                    if child == MUXING_APP:
                        return f.read(length).rstrip(b"\0").decode("utf-8", "replace")
                    f.seek(length, 1)
                return None
    except OSError:
        return None
    return None
