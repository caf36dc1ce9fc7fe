"""Folders where writing or listing fails for real: read-only, full, or unreadable. Import from any test: ``from fs_fixtures import read_only_dir, full_dir``.

A normal user gets a read-only folder from ``chmod``; root writes through that, so as root the
folder is a read-only tmpfs instead. A full disk is a tiny tmpfs, which needs root. Where mounting
is not allowed (no root, a container without CAP_SYS_ADMIN) the test is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest


def _mount_tmpfs(path: Path, options: str) -> None:
    """Mount a tmpfs on ``path`` with ``options``, or skip the test saying why not."""
    if os.geteuid() != 0:
        pytest.skip("a tmpfs mount needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")


@contextlib.contextmanager
def _mounted(path: Path, options: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    _mount_tmpfs(path, options)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextlib.contextmanager
def read_only_dir(path: Path) -> Iterator[Path]:
    """``path`` as an empty folder no one can write into, for the block's duration."""
    if os.geteuid() == 0:
        with _mounted(path, "ro,size=64k") as folder:
            yield folder
        return
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o555)
    try:
        yield path
    finally:
        path.chmod(0o755)


@contextlib.contextmanager
def full_dir(path: Path, size: str = "64k") -> Iterator[Path]:
    """``path`` as a folder on a disk of ``size`` (tmpfs; root only), for the block's duration."""
    with _mounted(path, f"size={size}") as folder:
        yield folder


@contextlib.contextmanager
def read_only_copy(path: Path, files: dict[str, Path], owners: Optional[dict[str, int]] = None) -> Iterator[Path]:
    """``path`` as a read-only folder holding ``files`` (name inside it -> file copied there), as a
    cache baked into a container image is: a tmpfs filled, then remounted read-only (root only);
    ``owners``: a file or folder inside it -> the uid (and gid) it is given, the user who wrote it."""
    import shutil

    size = sum(src.stat().st_size for src in files.values()) + (1 << 20)
    with _mounted(path, f"size={size}") as folder:
        for name, src in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, folder / name)  # with its mtime, as an image layer keeps it (OpenVINO hashes it)
        for name, uid in (owners or {}).items():
            os.chown(folder / name, uid, uid)
        done = subprocess.run(["mount", "-o", "remount,ro", str(folder)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot remount a tmpfs read-only here ({done.stderr.strip()})")
        yield folder


def unreadable_folders(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Listing a folder called ``name`` fails with EACCES, as a drive's lost+found does for a user: as root
    (CI) a chmod 000 folder is still readable, so ``Path.iterdir`` is made to refuse it."""
    listing = Path.iterdir

    def iterdir(self: Path) -> Iterator[Path]:
        if self.name == name:
            raise PermissionError(13, "Permission denied", str(self))
        return listing(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)


def read_only_system(argv: list[str]) -> list[str]:
    """``argv`` run with every file system read-only, as in a container with a read-only root file system and no
    volume (not even /tmp): a mount namespace of its own, so root too gets EROFS. Skips where it cannot be made."""
    import shutil

    if shutil.which("unshare") is None:
        pytest.skip("no unshare here (util-linux)")
    how = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]
    script = (
        "mount --make-rprivate / || exit 97; "
        "for m in $(awk '{print $5}' /proc/self/mountinfo); do case $m in /proc*|/sys*|/dev*) ;; "
        '*) mount -o remount,bind,ro "$m" 2>/dev/null ;; esac; done; '
        "touch /.rw-probe 2>/dev/null && exit 98; "
        'exec "$@"'
    )
    probe = subprocess.run([*how, "sh", "-c", script, "sh", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a read-only mount namespace here (exit {probe.returncode}: {probe.stderr.strip()})")
    return [*how, "sh", "-c", script, "sh", *argv]


@contextlib.contextmanager
def standard_output_onto(target: int | Path) -> Iterator[None]:
    """Descriptor 1 of this process on ``target`` (a descriptor, a pipe's writing end, or a file opened as the shell's
    ``> file`` opens it) while the block runs, as a shell starts a command, then put back: for a command run in the
    test's process (``main([...])``) that looks at where standard output goes."""
    import sys

    sys.stdout.flush()
    fd = target if isinstance(target, int) else os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    saved = os.dup(1)
    try:
        os.dup2(fd, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        if fd is not target:
            os.close(fd)
