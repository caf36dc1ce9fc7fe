"""The batch manifest: which videos and chunks are finished, so a rerun skips them.

One JSON file per output folder (``DIR/.birefvid-batch/manifest.json``), written only by the driver,
replaced atomically on every change (write a temporary file, ``os.replace``), so an interrupted run
leaves either the old or the new state. A video's entry holds a fingerprint of everything its output
depends on (the job, the input's size and mtime, the chunk plan); a changed fingerprint redoes it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

from ..errors import SinkError
from ..io.atomic import apply_default_permissions

SCHEMA = "birefvid.batch-manifest/1"
WORK_DIR = ".birefvid-batch"


# settings that change how fast a video is made, not what comes out: a rerun with another value
# keeps finished videos (batch size changes an fp32 output by float rounding only)
SPEED_ONLY = (("inference", "batch_size"), ("queue_size",))


def earlier_outputs(out_dir: Optional[Path]) -> set[Path]:
    """The outputs (resolved) that the manifest in ``out_dir`` records; none when there is no readable one. Here, light
    (no PyAV): ``birefvid batch`` reads it before its imports, as ``expand_inputs`` does first, so a link loop among
    them is said before a missing input there too."""
    if out_dir is None:
        return set()
    try:
        videos = json.loads((Path(out_dir) / WORK_DIR / "manifest.json").read_text()).get("videos", {})
        return {(Path(out_dir) / name).resolve() for name in videos}  # keyed by output name, wherever the run was started from
    except (OSError, ValueError, AttributeError, TypeError):
        return set()  # an unreadable manifest is reported when the run opens it


def fingerprint(job: dict[str, Any], input_path: str, chunking: dict[str, Any], *, as_spelled: bool = False, speed: bool = False) -> str:
    """A hash of the job (less ``overwrite`` and the ``SPEED_ONLY`` settings), the input file's
    identity and the chunking settings.

    The input and output paths count as the files they name (resolved), not as they were spelled:
    ``batch clips/`` rerun as ``batch /home/me/clips/``, or from another folder, is the same work,
    and must not redo (or refuse) every finished video. ``as_spelled`` hashes them as given, and
    ``speed`` keeps the speed-only settings: the fingerprints older manifests recorded, accepted so
    that they stay valid.
    """
    data = json.loads(json.dumps(job))
    data.get("output", {}).pop("overwrite", None)
    if not as_spelled:
        for part, key in (("source", "input"), ("output", "path")):
            if isinstance(data.get(part, {}).get(key), str):
                data[part][key] = os.path.realpath(data[part][key])
    if not speed:
        for *parents, key in SPEED_ONLY:
            section = data
            for name in parents:
                section = section.get(name, {})
            section.pop(key, None)
    st = Path(input_path).stat()
    blob = json.dumps({"job": data, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "chunking": chunking}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def older_fingerprints(job: dict[str, Any], input_path: str, chunking: dict[str, Any]) -> tuple[str, ...]:
    """The fingerprints earlier versions recorded for the same work (see ``fingerprint``)."""
    return (
        fingerprint(job, input_path, chunking, speed=True),
        fingerprint(job, input_path, chunking, as_spelled=True, speed=True),
    )


def before_input_colors(job: dict[str, Any]) -> Optional[dict[str, Any]]:
    """``job`` as versions without ``--input-colors`` described it (no ``source.input_colors``), or None where none
    of them could have run it: a matrix named (they read every untagged video as BT.601, and tagged nothing)."""
    if job.get("source", {}).get("input_colors") != "auto":
        return None
    data = json.loads(json.dumps(job))
    del data["source"]["input_colors"]
    return data


class Manifest:
    """Finished videos and chunks of one output folder, persisted after every change."""

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / WORK_DIR / "manifest.json"
        self.videos: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError) as exc:
                raise SinkError(f"batch manifest {self.path} is unreadable ({exc}); remove it to start afresh") from exc
            videos = data.get("videos", {}) if isinstance(data, dict) else None
            if not isinstance(videos, dict) or not all(isinstance(v, dict) for v in videos.values()):  # edited by hand, or another program's
                raise SinkError(f"batch manifest {self.path} is not a batch manifest (no JSON object of videos); remove it to start afresh")
            if data.get("schema") != SCHEMA:
                raise SinkError(f"batch manifest {self.path} has schema {data.get('schema')!r}, not {SCHEMA!r}; remove it to start afresh")
            self.videos = data.get("videos", {})

    def entry(self, key: str, fp: str, info: dict[str, Any], also: Sequence[str] = (), job_fp: Optional[str] = None,
              older_job_fps: Sequence[str] = ()) -> dict[str, Any]:
        """The video's entry, reset when its fingerprint changed (different job, input or chunking).

        An entry recorded under one of ``also`` (the same work fingerprinted an older way) is kept,
        re-keyed to ``fp``. A finished video whose ``job_fp`` (the fingerprint without the chunking;
        or one of ``older_job_fps``, its older forms) is unchanged is kept too: how it was split does
        not make its output out of date, only its unfinished chunks would be.
        """
        entry = self.videos.get(key)
        if entry is not None and entry.get("fingerprint") in also:
            entry["fingerprint"] = fp
        if (entry is not None and job_fp is not None and entry.get("status") == "done"
                and entry.get("job_fingerprint") in (job_fp, *older_job_fps)):
            entry["fingerprint"], entry["job_fingerprint"] = fp, job_fp
        if entry is None or entry.get("fingerprint") != fp:
            entry = {"fingerprint": fp, "job_fingerprint": job_fp, "status": "pending", "chunks_done": {}, **info}
            self.videos[key] = entry
        elif entry.get("job_fingerprint") is None:
            entry["job_fingerprint"] = job_fp  # an entry written before these were recorded
        return entry

    def chunk_done(self, key: str, index: int, frames: int) -> None:
        self.videos[key]["chunks_done"][str(index)] = frames
        self.save()

    def is_chunk_done(self, key: str, index: int) -> bool:
        return str(index) in self.videos[key]["chunks_done"]

    def video_done(self, key: str, frames: int) -> None:
        entry = self.videos[key]
        entry["status"], entry["frames"] = "done", frames
        self.save()

    def save(self) -> None:
        """Write the manifest atomically; a full disk or a folder gone read-only is a one-line SinkError."""
        try:
            self._write()
        except OSError as e:
            raise SinkError(f"cannot write the batch manifest {self.path}: {e.strerror or e}") from e

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".manifest-", suffix=".json", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(_one_video_a_line(self.videos))
            apply_default_permissions(Path(tmp), is_dir=False)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _one_video_a_line(videos: dict[str, dict[str, Any]]) -> str:
    """The manifest as JSON with one video a line: as easy to read and grep as ``indent=2``, and written
    2.4x faster, by json's C encoder (``indent`` takes its Python one: 69 against 29 ms a save at 10,000
    videos, and a save follows every chunk)."""
    rows = ",\n".join(f"  {json.dumps(key)}: {json.dumps(entry)}" for key, entry in videos.items())
    return f'{{"schema": {json.dumps(SCHEMA)}, "videos": {{\n{rows}\n}}}}\n' if rows else f'{{"schema": {json.dumps(SCHEMA)}, "videos": {{}}}}\n'


def refuse_others_work(work: Path) -> None:
    """SinkError where the work folder ``work`` (``DIR/.birefvid-batch``) is another user's that this one may not write:
    their batch made it under their umask (0755, 0700), so this user's rerun in a shared output folder cannot lock or
    record anything there. It said "cannot write in the output folder DIR: Permission denied" of a folder this user
    may write, naming neither the folder at fault nor its owner."""
    if not hasattr(os, "geteuid") or os.access(work, os.W_OK | os.X_OK):
        return
    try:
        st = work.stat()
    except OSError:
        return
    if st.st_uid == os.geteuid():
        return
    from ..users import user_name

    group = _group_name(st.st_gid)
    if st.st_gid == os.getegid() or st.st_gid in os.getgroups():  # made under umask 022 or 077: the group may not write
        fix = f"`chmod -R g+rwX {work}` (a umask of 002 lets the group in from the start)"
    else:  # their private group (umask 002 outside a setgid folder): group-writable for no one else
        fix = "`chgrp -R` it to a group you share and `chmod -R g+rwX` it"
    raise SinkError(f"cannot write in {work}, the work folder of {user_name(st.st_uid)}'s batch into {work.parent} (mode "
                    f"{stat.S_IMODE(st.st_mode):04o}, group '{group}'): write to another --output-dir, or have them {fix}")  # fmt: skip


def _group_name(gid: int) -> str:
    """``gid``'s group name, or the number where it has none (or the system has no ``grp``)."""
    try:
        import grp

        return grp.getgrgid(gid).gr_name
    except (ImportError, KeyError):
        return str(gid)


class RunLock:
    """One batch at a time per output folder: ``DIR/.birefvid-batch/lock`` holds the host and pid of the run.

    The run holds an exclusive ``flock`` on the file, which the kernel drops when the process dies
    however it dies: a lock left by a killed run is taken over, exactly once when two reruns start
    together (reading a dead pid and deleting its file let both in), and a reused pid does not keep
    it. Where the file system has no ``flock`` the pid decides: a lock of this host whose pid is gone
    is taken over; one from another host cannot be checked, so the error says how to remove it.
    """

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / WORK_DIR / "lock"
        self._held = False
        self._fd: Optional[int] = None

    def acquire(self) -> None:
        import socket

        work = self.path.parent
        if (work.exists() or work.is_symlink()) and not work.is_dir():
            raise SinkError(f"{work} is a file, not the batch's work folder; remove it, or write to another output folder")
        try:  # os.access can say yes where writing fails (root on a read-only mount, a FUSE or SMB share)
            work.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SinkError(f"cannot write in the output folder {work.parent}: {e.strerror or e}") from e
        refuse_others_work(work)
        host = socket.gethostname()
        me = f"{host} {os.getpid()}"
        if not _has_flock():  # Windows: the file's own existence is the lock (an empty one made here would refuse every run)
            self._acquire_by_pid(host, me)
            return
        for _ in range(5):
            try:
                fd, created = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644), True
            except FileExistsError:
                try:  # not through a link: in a shared output folder, another user's link had the run write into a file of theirs choosing
                    fd, created = os.open(self.path, os.O_CREAT | os.O_RDWR | getattr(os, "O_NOFOLLOW", 0), 0o644), False
                except OSError as e:
                    if e.errno == errno.EACCES:  # another user's, made 0644 under their umask: theirs running, or left
                        if self._clear_others_lock() is None:
                            self._acquire_by_pid(host, me)
                            return
                        continue
                    if e.errno != errno.ELOOP:
                        raise
                    raise SinkError(f"{self.path} is a link, not a lock a batch made; remove it") from None
            except OSError as e:
                raise SinkError(f"cannot write in the output folder {self.path.parent.parent}: {e.strerror or e}") from e
            try:
                locked = _flock(fd)
            except BaseException:
                os.close(fd)
                raise
            if locked is False:
                os.close(fd)
                self._refuse()
            if locked is None:  # no flock on this file system: the file's own existence is the lock
                os.close(fd)
                if created:  # the empty file just made would be taken for another run's lock
                    self.path.unlink(missing_ok=True)
                self._acquire_by_pid(host, me)
                return
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # its holder removed it as we opened it: lock the new one
                os.close(fd)
                continue
            with os.fdopen(os.dup(fd), "r+") as f:
                owner = f.read().split()
                if owner and owner[0] != host:  # another host's run: its flock may not reach this host
                    os.close(fd)
                    self._refuse()
                f.seek(0)
                f.truncate()
                f.write(me + "\n")
            self._fd, self._held = fd, True
            return
        self._refuse()

    def _clear_others_lock(self) -> Optional[bool]:
        """Another user's lock that this one may not open to write (their batch made it 0644, in an output folder the
        group shares, as the work folder's refusal advises): refused as another batch while its run holds it, and
        removed where that run is gone (killed: its flock dropped) for the caller to make this run's own; None where
        there is no flock. Opening it to write was a PermissionError traceback, run or no run."""
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return True  # its run ended meanwhile: the caller makes a new one
        except OSError as e:
            raise SinkError(f"cannot read the batch lock {self.path}: {e.strerror or e}") from e
        try:
            locked = _flock(fd)  # flock needs no write access: read-only is enough to tell a live run
            if locked is False:
                self._refuse()
            if locked:  # held here, so no run holds it: a run that opened it meanwhile sees another inode and retries
                self.path.unlink(missing_ok=True)
            return locked
        finally:
            os.close(fd)

    def _refuse(self) -> None:
        try:
            owner = self.path.read_text().strip() or "?"
        except OSError:
            owner = "?"
        import socket

        if owner == f"{socket.gethostname()} {os.getpid()}":  # removing the lock would let a second writer in beside it
            raise SinkError(f"another birefvid batch is writing to {self.path.parent.parent}, in this process (pid {os.getpid()}): "
                            "stop() the watch start_watch returned (a notebook's earlier cell), or wait for it") from None  # fmt: skip
        raise SinkError(f"another birefvid batch is writing to {self.path.parent.parent} (host and pid: {owner}); "
                        f"wait for it, or remove {self.path} if that run is gone") from None  # fmt: skip

    def _acquire_by_pid(self, host: str, me: str) -> None:
        """The lock without flock: created exclusively; a dead pid of this host's is taken over."""
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._stale(host):
                    self._refuse()
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(me + "\n")
            self._held = True
            return
        self._refuse()

    def _stale(self, host: str) -> bool:
        """True when the lock names a process of this host that no longer runs."""
        try:
            owner_host, pid = self.path.read_text().split()
            if owner_host != host:
                return False
            return not _pid_alive(int(pid))
        except (OSError, ValueError):
            return False  # unreadable

    def release(self) -> None:
        """Drop the lock, and the work folder with it when nothing else is in it (a run refused before any work)."""
        if self._held:
            self.path.unlink(missing_ok=True)  # while still locked: a run waiting on this file sees it gone and retries
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            try:
                self.path.parent.rmdir()
            except OSError:
                pass  # the manifest or chunk files are in it
            self._held = False


def _has_flock() -> bool:
    """True where Python has ``fcntl.flock`` (not on Windows)."""
    import importlib.util

    return importlib.util.find_spec("fcntl") is not None


def _pid_alive(pid: int) -> bool:
    """True when process ``pid`` of this machine runs (or may: one we cannot ask). Never signals it:
    on Windows ``os.kill(pid, 0)`` is TerminateProcess, which would kill the batch holding the lock."""
    if sys.platform == "win32":
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process
    return True


def _windows_pid_alive(pid: int) -> bool:
    """``_pid_alive`` on Windows: OpenProcess, then whether its exit code is still STILL_ACTIVE."""
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:  # ERROR_INVALID_PARAMETER (87): no such process; access denied: one that runs
        return ctypes.get_last_error() != 87  # type: ignore[attr-defined]
    try:
        code = ctypes.c_ulong()
        return not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)) or code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def _flock(fd: int) -> Optional[bool]:
    """An exclusive, non-blocking flock on ``fd``: True when taken, False when another process holds
    it, None where there is no flock (Windows, a file system without it)."""
    try:
        import fcntl
    except ImportError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return None
    return True
