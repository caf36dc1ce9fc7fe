"""Login names for messages about files another user owns (a sticky folder's, a shared cache's)."""

from __future__ import annotations

import os
from pathlib import Path


def user_name(uid: int) -> str:
    """``uid``'s login name, or "uid 1234" where it has none (a container's random uid) or the system has no ``pwd``."""
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"


def owner_phrase(path: str | Path) -> str:
    """" (it belongs to USER, mode 0600)" for a file of another user, to follow "Permission denied"; empty otherwise
    (this user's, or where that cannot be told), so a user knows whom to ask to share it."""
    try:
        st = os.stat(path)
        if not hasattr(os, "geteuid") or st.st_uid == os.geteuid():
            return ""
        return f" (it belongs to {user_name(st.st_uid)}, mode {st.st_mode & 0o777:04o})"
    except OSError:
        return ""
