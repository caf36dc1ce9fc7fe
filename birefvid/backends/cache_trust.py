"""Whether another user of this machine could have written a cached model, or the folder it is read from.

An exported ONNX model or an OpenVINO blob in the cache is loaded without any check of what it
computes: in a cache another user can write (``BIREFVID_CACHE_DIR`` at a shared ``chmod 1777`` or
``0777`` folder), they could plant the export of the name a run looks for (the name is the weights'
digest, the same on every machine), and every run of this user would then use their model: one
whose matte is all foreground turns a call's background blur off and shows the room. So a cached
file is used only when it, its folder and the folders above it can be changed by this user or root only.
"""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path
from typing import Optional


def _owned(st: os.stat_result) -> bool:
    return st.st_uid in (os.getuid(), 0)


def _writable_by_others(st: os.stat_result) -> bool:
    """Writable by every user, or by a group other than this user's private one (``_private_group``: a group-writable
    home under umask 002 is no shared one, but a 2775 folder of ``users``, every user's primary group on some systems, is)."""
    return bool(st.st_mode & 0o002) or (bool(st.st_mode & 0o020) and not _private_group(st.st_gid))


@functools.lru_cache(maxsize=8)
def _private_group(gid: int) -> bool:
    """Whether ``gid`` holds this user alone: their primary group, named as they are (user private groups) with no
    one else listed in it; where no name is known (a container's uid without a passwd entry), their primary group."""
    if gid != os.getgid():
        return False
    try:
        import grp
        import pwd
    except ImportError:
        return True
    try:
        me, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(gid)
    except KeyError:
        return True
    return group.gr_name == me and set(group.gr_mem) <= {me}


def _name(uid: int) -> str:
    """``users.user_name``; imported when used, as this module is also loaded on its own (as a file, outside the package)."""
    try:
        from ..users import user_name
    except ImportError:
        return f"uid {uid}"
    return user_name(uid)


def _who(path: Path, st: os.stat_result) -> str:
    if not _owned(st):
        return f"{path} is another user's ({_name(st.st_uid)})"  # a name, as the other lines about their files say
    return f"{path} can be written by other users (mode {stat.S_IMODE(st.st_mode):o})"


def folder_distrust(folder: Path) -> Optional[str]:
    """Why files in ``folder`` could have been put there by another user, or None: ``folder`` must be this user's
    or root's and writable by no one else (a sticky bit does not help: anyone may add files), and each folder
    above it, and above where a link to it leads, writable by no one else unless sticky (as /tmp is: there nobody
    can rename another's folder away)."""
    if os.name != "posix":
        return None  # Windows: the folders' ACLs decide
    try:
        st = os.stat(folder)
    except OSError:
        return None  # not there: nothing in it to trust or not
    if not _owned(st) or _writable_by_others(st):
        return _who(folder, st)
    # the folders above it as named and, where a link leads elsewhere, above where it leads
    parents = dict.fromkeys([*Path(os.path.abspath(folder)).parents, *Path(os.path.realpath(folder)).parents])
    for parent in parents:
        try:
            st = os.stat(parent)
        except OSError:
            continue
        if _writable_by_others(st) and not st.st_mode & stat.S_ISVTX:
            return f"{parent} can be written by other users (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def file_distrust(path: Path) -> Optional[str]:
    """Why the cached file ``path`` could have been written by another user, or None (see ``folder_distrust``);
    a link is followed (the fallback cache links a read-only cache's files), and must be this user's or root's too."""
    if os.name != "posix":
        return None
    try:
        link, st = os.lstat(path), os.stat(path)
    except OSError:
        return None
    if not _owned(link):
        return _who(path, link)
    if not _owned(st) or _writable_by_others(st):
        return _who(path, st)
    where = folder_distrust(path.parent)
    if where is None and stat.S_ISLNK(link.st_mode):
        where = folder_distrust(Path(os.path.realpath(path)).parent)
    return where
