"""Login names for messages about files another user owns (a sticky folder's, a shared cache's)."""

from __future__ import annotations


def user_name(uid: int) -> str:
    """``uid``'s login name, or "uid 1234" where it has none (a container's random uid) or the system has no ``pwd``."""
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"
