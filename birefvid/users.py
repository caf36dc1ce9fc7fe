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
    except PermissionError:
        return _closed_folder_phrase(Path(path))
    except OSError:
        return ""


def _closed_folder_phrase(path: Path) -> str:
    """" (the folder /home/alice, on its way, is closed to you: it belongs to alice, mode 0700)" where ``path``
    cannot even be looked at because a folder above it may not be entered (another user's home, a umask-077
    folder); empty where none is found so (or it is this user's own)."""
    if not hasattr(os, "geteuid"):
        return ""
    for folder in reversed(Path(os.path.abspath(path)).parents):  # from / down: the first one closed
        try:
            st = os.stat(folder)
        except OSError:
            return ""
        if not os.access(folder, os.X_OK):
            if st.st_uid == os.geteuid():
                return ""
            return f" (the folder {folder}, on its way, is closed to you: it belongs to {user_name(st.st_uid)}, mode {st.st_mode & 0o777:04o})"
    return ""


def unreadable_line(path: str | Path) -> str | None:
    """"cannot read PATH: Permission denied (the folder ..., on its way, is closed to you: ...)" where ``path`` cannot
    even be looked at (a folder above it closed to this user: another user's home), for the commands' input checks,
    whose Path.exists()/is_file() raise PermissionError there (a traceback); None where it can, or is only missing."""
    try:
        os.stat(path)
    except PermissionError as e:
        return f"cannot read {path}: {e.strerror or 'Permission denied'}{owner_phrase(path)}"
    except OSError:
        pass
    return None
