"""How long a file's own name may be: a light module (no PyAV), so a job's options are checked before any heavy import."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

# the longest file name most filesystems take (ext4, XFS, Btrfs, APFS, NTFS; bytes or UTF-16 units)
NAME_MAX = 255


def name_too_long(path: str | Path) -> Optional[str]:
    """Why ``path``'s own name is one no disk takes (over ``NAME_MAX`` bytes), or None: said in a line
    up front, where the first look at it was OSError 'File name too long' in a traceback (exit 1)."""
    size = len(os.fsencode(Path(path).name))
    return f"its name is {size} bytes long, over the {NAME_MAX} a file system takes" if size > NAME_MAX else None
