"""Write-then-rename for outputs: a failed or interrupted run never leaves a file that looks complete.

A video goes to ``.NAME.partial-XXXX.EXT`` beside the target (the real extension stays last so
FFmpeg picks the right muxer) and an image sequence to a hidden temporary folder; ``commit``
moves it onto the target with ``os.replace``, ``discard`` removes it. Without overwrite, a target
another program made meanwhile is never replaced: the finished output is committed beside it as
``NAME (2).EXT`` and the commit raises ``OutputKeptError`` naming that file.

While it is written, the temporary entry is held under an ``flock`` (``writer_lock``), which the kernel drops when the
writer ends, however it ends: ``being_written`` tells a live writer's entry (another ``process`` or ``batch`` run
writing the same name) from one a killed run left, so clean-ups never remove another run's work in progress.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import stat
import sys
import tempfile
import time
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

from birefvid.errors import OutputKeptError, SinkError, option
from birefvid.extensions import MASK_EXTENSIONS, VIDEO_EXTENSIONS
from birefvid.file_names import NAME_MAX, descriptor_given, json_name_left_empty, link_loop, name_too_long, open_descriptor, special_file
from birefvid.sequence_names import sequence_folder
from birefvid.users import owner_phrase, user_name

log = logging.getLogger(__name__)

# Windows refuses to rename onto a file another program holds open (PermissionError): a virus scanner
# or the search indexer reading a file just written lets go within moments, so the rename is retried
# this long there; a player showing the earlier output holds it for good (see ``commit``)
REPLACE_RETRY_S = 3.0


def replace(src: str | Path, dst: str | Path) -> None:
    """``os.replace``, retried on Windows for up to ``REPLACE_RETRY_S`` while the target is held open."""
    deadline = time.monotonic() + REPLACE_RETRY_S
    pause = 0.05
    while True:
        try:
            os.replace(src, dst)
            return
        except PermissionError:
            if sys.platform != "win32" or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(2 * pause, 0.5)


_RANDOM_CHARS = 8  # what mkstemp and mkdtemp add


WRITER_LOCK_TRIES, WRITER_LOCK_WAIT_S = 200, 0.01  # a checker's shared lock lasts microseconds: 2 s is ample


def writer_lock(path: str | Path, fd: Optional[int] = None) -> Optional[int]:
    """Hold an exclusive ``flock`` on ``path`` (a temporary file or folder being written; ``fd``: one already open on
    it, taken over) for as long as the returned descriptor stays open; None where there is no ``flock`` (Windows)
    or it fails (the entry is then simply not marked, as before)."""
    try:
        import fcntl
    except ImportError:  # Windows
        if fd is not None:
            os.close(fd)
        return None
    try:
        if fd is None:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        for _ in range(WRITER_LOCK_TRIES):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # another run's ``being_written`` holds its shared lock for a moment (a batch clean-up, a process run's
                # partial warning looking at the folder now): given up at once, the entry went unmarked for its whole
                # life, and the next clean-up removed this run's work in progress
                time.sleep(WRITER_LOCK_WAIT_S)
        else:
            raise BlockingIOError
    except OSError:
        if fd is not None:
            os.close(fd)
        return None
    with contextlib.suppress(OSError):
        st = os.fstat(fd)
        _HELD[fd] = (st.st_dev, st.st_ino)
    return fd


def release_writer_lock(fd: Optional[int]) -> None:
    """Close a descriptor ``writer_lock`` returned (None: nothing), which lets go of its lock."""
    if fd is None:
        return
    _HELD.pop(fd, None)
    with contextlib.suppress(OSError):
        os.close(fd)


# the writer locks this process holds, as descriptor: (device, inode). A forked child (multiprocessing's fork start
# method, a library's worker) shares each lock until it closes its copy: a run SIGKILLed beside a child that outlived
# it left its partial marked as written now, so batch neither removed nor named it as a killed run's leftover
_HELD: dict[int, tuple[int, int]] = {}


def _drop_held_in_child() -> None:
    for fd, identity in list(_HELD.items()):
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) == identity:  # still that entry (a descriptor number closed and reused is left)
                os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_held_in_child)


def being_written(path: str | Path) -> bool:
    """True when a live writer holds ``path`` (a ``.NAME.partial-*`` entry) under its ``writer_lock``: a run writing
    it now, in this process or another, not a leftover of one killed. False where that cannot be told (no ``flock``).

    True, too, for a partial (``.NAME.partial-*``) this user may not open (``PermissionError``): another user's partial, made 0600 by mkstemp,
    whose lock cannot be tested. Taken as a leftover, a batch run of a second user in a shared group-writable folder
    removed the first user's work in progress, and named it a killed run's."""
    try:
        import fcntl
    except ImportError:  # Windows
        return False
    try:
        # O_NONBLOCK: a named pipe of a partial's name (no writer makes one) waited forever for a writer, and with it
        # the batch or process run looking for leftovers
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except PermissionError:
        # cannot be told: another user's partial, perhaps being written now, so left alone. Only a partial's name: any
        # file this user may not read (another user's 0600 video given as input) was said to be written by a run now
        return final_name(path) is not None
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # releases the shared lock taken for the test
    return False


def fit_name(name: str, around: str) -> str:
    """``name`` cut short (at a character) so that with ``around`` (the rest of a temporary name) and mkstemp's
    random part it is a name the disk takes: an output named with 240 bytes (80 Japanese characters) is
    valid, and its temporary name beside it was refused as 'File name too long'."""
    room = NAME_MAX - _RANDOM_CHARS - len(os.fsencode(around))
    while len(os.fsencode(name)) > room:
        name = name[:-1]
    return name


# how many names ``NAME (2).EXT``, ``NAME (3).EXT``... a finished output whose name was taken tries
KEEP_TRIES = 1000


def kept_name(target: Path, n: int, *, is_dir: bool = False) -> Path:
    """``clip (n).webm`` beside ``clip.webm`` (``frames (n)`` for a folder), as file managers name a copy: where a
    finished output goes when another program took its name while it was written."""
    mark = f" ({n})"
    suffix = "" if is_dir else target.suffix
    stem = target.name[: len(target.name) - len(suffix)] if suffix else target.name
    room = NAME_MAX - len(os.fsencode(mark + suffix))
    while len(os.fsencode(stem)) > room:
        stem = stem[:-1]
    return target.with_name(f"{stem}{mark}{suffix}")


def partial_prefix(name: str, suffix: str = "") -> str:
    """``.NAME.partial-``, the start of a temporary entry's name beside an output (``suffix`` after the random
    part), ``NAME`` cut to fit (``fit_name``)."""
    return f".{fit_name(name, f'..partial-{suffix}')}.partial-"


def final_name(partial: str | Path) -> Optional[str]:
    """The output name a ``.NAME.partial-XXXX.EXT`` (or a folder's ``.NAME.partial-XXXX``) is renamed to when its
    writer commits it (a name cut short for the disk stays short), or None for a name that is no partial's."""
    name = Path(partial).name
    at = name.rfind(".partial-")
    if not name.startswith(".") or at < 1:
        return None
    rest = name[at + len(".partial-"):]
    return name[1:at] + (Path(rest).suffix if "." in rest else "")


def written_now(target: str | Path) -> Optional[Path]:
    """A partial entry of ``target`` that a live writer holds now (a live recording, a ``process`` or ``batch`` output
    not yet committed), or None: what an input that is not there yet is being written as."""
    target = Path(target)
    try:
        names = [e.name for e in os.scandir(target.parent or ".") if e.name.startswith(".") and ".partial-" in e.name]
    except OSError:
        return None
    marks = ((partial_prefix(target.stem, target.suffix), target.suffix), (partial_prefix(target.name), ""))
    for name in sorted(names):
        if any(name.startswith(p) and name.endswith(s) for p, s in marks) and being_written(target.parent / name):
            return target.parent / name
    return None


def _umask() -> int:
    """The process umask (read by setting and restoring it; there is no read-only call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def apply_default_permissions(path: Path, is_dir: bool) -> None:
    """mkstemp/mkdtemp create 0600/0700 entries; give the finished output the mode a plain open() would."""
    os.chmod(path, (0o777 if is_dir else 0o666) & ~_umask())


def through_link(target: Path) -> Path:
    """Where an output named by a symbolic link goes: the file or folder the link leads to (as ``ffmpeg -y`` and ``cp``
    write), so the temporary entry is made beside that and renamed onto it, and the link stays. Renamed onto the link
    itself, it replaced the link with a file or folder of its own: ``-o renders`` linked to an empty folder on another
    disk put the frames beside the link, on this one, and the link was gone."""
    return Path(os.path.realpath(target)) if os.path.islink(target) else target


def refuse_link_loop(path: str | Path, what: str = "output") -> None:
    """SinkError when ``path`` (``what`` names it: ``output``, ``--report``) or a folder on the way to it is a symbolic
    link in a loop: its first look (``Path.resolve``) was a ``RuntimeError: Symlink loop`` traceback, exit 1."""
    loop = link_loop(path)
    if loop:
        raise SinkError(f"cannot write {what} {path}: {loop}")


def check_target(path: Path, *, overwrite: bool, is_dir: bool, replaces: Optional[bool] = None) -> None:
    """Fail early when ``path`` exists (without ``overwrite``), is the wrong kind, or its folder is unwritable.

    A ``path`` that is a symbolic link is checked where it leads, where the output is written (``through_link``): a
    link to a missing file is a missing output, as ``ffmpeg`` takes it (it said "output exists", and with
    ``--overwrite`` the run was written there), and the folder that must exist and be writable is the linked file's
    (a link into a missing or read-only folder passed the checks and failed at the output's first write).

    ``replaces``: whether the run will replace an existing ``path`` (default: ``overwrite``); False where an existing
    one is let be but kept (``image --skip-existing``), which another user's in a sticky folder may then be."""
    refuse_link_loop(path)
    real = through_link(path)
    leads = f", where {path} leads" if real != path else ""
    kind = special_file(path)
    if kind:  # the run's rename would replace it (/dev/null made a plain file), --overwrite or not
        raise SinkError(f"output {path} is {kind}{f' ({real})' if real != path else ''}, not a file a video or picture is written to; name a file")
    renamed_onto = overwrite if replaces is None else replaces
    if real.exists():
        if is_dir and real.is_dir() and not _holds_anything(path, real):
            renamed_onto = True  # an empty folder is a fine place for a PNG sequence, which the commit renames onto it
        elif not overwrite:
            owner = _sticky_owner(real, real.parent)
            if owner:  # "use --overwrite" sent the user to a refusal (_check_replaceable)
                raise SinkError(f"output exists: {path}; it belongs to {owner}, and {real.parent} is a shared folder (sticky, as /tmp "
                                f"is) where only a file's owner may replace it ({option('overwrite', True)} is refused too); name another output")  # fmt: skip
            raise SinkError(f"output exists: {path} (use {option('overwrite', True)})")
        elif is_dir and not real.is_dir():
            raise SinkError(f"output {path} is a file but an image-sequence folder was requested; remove it first")
        elif not is_dir and real.is_dir():
            raise SinkError(f"output {path} is a folder but a video file was requested; pick a file name")
    parent = real.parent
    if parent.exists() and not parent.is_dir():
        raise SinkError(f"cannot write {path}: {parent} is a file, not a folder")
    if not parent.is_dir():
        raise SinkError(f"output folder does not exist: {parent}{leads} (create it first)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SinkError(f"output folder is not writable: {parent}{leads}")
    if renamed_onto:
        _check_replaceable(path, real, parent)


def _holds_anything(path: Path, real: Path) -> bool:
    """Whether the folder ``real`` (where ``path`` leads) holds anything; SinkError for one this user may not read
    (another user's 0700 folder): its PermissionError was a traceback, exit 1."""
    try:
        return any(real.iterdir())
    except PermissionError as e:
        raise SinkError(f"cannot write output {path}: it is a folder this user may not read ({e.strerror or e}"
                        f"{_owner_of(real)}); name another output") from e


def _check_replaceable(path: Path, real: Path, parent: Path) -> None:
    """Fail when ``real`` exists in a sticky folder (``/tmp``, a shared ``chmod 1777`` drop folder) and belongs to
    another user: there only a file's owner (or the folder's) may rename over it, so ``--overwrite`` ran the whole
    job and failed at its commit, "cannot move the finished output onto ...: Operation not permitted", the work lost."""
    owner = _sticky_owner(real, parent)
    if owner:
        leads = f" (where it leads, {real})" if real != path else ""
        raise SinkError(f"cannot replace {path}{leads}: it belongs to {owner}, and {parent} is a shared folder "
                        "(sticky, as /tmp is) where only a file's owner may replace it; name another output")  # fmt: skip


def _sticky_owner(real: Path, parent: Path) -> Optional[str]:
    """The login name of ``real``'s owner where this user may not rename onto it: another user's entry in a sticky
    folder ``parent`` that is not this user's either (root may); None otherwise, or where ``real`` is gone."""
    if not hasattr(os, "geteuid") or os.geteuid() == 0:
        return None
    try:
        folder, entry = os.stat(parent), os.lstat(real)
    except OSError:
        return None  # gone meanwhile: nothing to replace
    uid = os.geteuid()
    if folder.st_mode & stat.S_ISVTX and entry.st_uid != uid and folder.st_uid != uid:
        return user_name(entry.st_uid)
    return None


def _owner_of(path: Path) -> str:
    """", it belongs to USER" for an entry of another user; empty otherwise."""
    try:
        uid = os.lstat(path).st_uid
    except OSError:
        return ""
    return f"; it belongs to {user_name(uid)}" if hasattr(os, "geteuid") and uid != os.geteuid() else ""


def _local_read(read: Optional[str | Path]) -> Optional[str]:
    """The local path a run reads for ``read``: a ``file://`` URL's path (``live --source file:///x/clip.mp4`` plays that
    file, as ``io.live_target`` strips it), None for nothing or any other URL."""
    if read is None:
        return None
    text = str(read)
    if text[:7].lower() == "file://":
        return text[len("file://") :]
    return None if "://" in text else text


def check_replaces_no_input(target: str | Path, reads: Iterable[Optional[str | Path]]) -> None:
    """Fail when writing ``target`` would replace a file the run reads (``reads``: the input, a background;
    a folder or glob of images; colours and URLs pass): committed, it is renamed over the same file, or a
    PNG-sequence folder over the folder that holds it, so ``process clip.mp4 -o clip.mp4 --overwrite``
    replaced the video with its cut-out and ``process plate/ -o plate/ --overwrite`` the plate with its frames."""
    # a pattern (out/matte.%04d.png) fills its folder; realpath, as Path.resolve raised RuntimeError (a traceback) on
    # links in a loop, which check_target refuses in one line
    out = Path(os.path.realpath(sequence_folder(target)))
    for read in reads:
        if read is None:
            continue
        text = _local_read(read)
        if text is None:
            continue
        globbed = any(c in text for c in "*?[") and not os.path.lexists(text)  # `clip [1].mp4` is a file, not a pattern
        paths = [Path(p) for p in glob.glob(text)] if globbed else [Path(text)]
        for path in paths:
            if not os.path.exists(path):  # nor one in a folder closed to this user (another's home): opening it says so
                continue
            path = path.resolve()
            if path == out or out in path.parents or any(one_file_by_case(out, p) for p in (path, *path.parents)):
                raise SinkError(f"writing {target} would replace {read}, which this run reads; write to another file or folder")


def check_report_path(report_path: Optional[str | Path]) -> None:
    """The report's folder must exist, and its name be one a disk takes, before hours of work are spent (here, not in
    ``runtime.file_job``, so ``image`` and ``live`` check it before torch and PyAV are imported)."""
    too_long = name_too_long(report_path) if report_path is not None else None
    if too_long:  # else OSError 'File name too long' in a traceback, from the first look at it
        raise SinkError(f"cannot write {option('report_path')} {report_path}: {too_long}; pick a shorter name")
    if report_path is not None:
        refuse_link_loop(report_path, option("report_path"))
        empty = json_name_left_empty(report_path)
        if empty:  # else a hidden .json beside the output, which no ls shows
            raise SinkError(f"cannot write {option('report_path')} {report_path}: {empty}")
    if report_path is not None and open_descriptor(report_path) is not None:  # written through the descriptor: how it
        # is open counts, not its file's folder (`sudo -u svc birefvid ... --report /dev/fd/3 3> /root/runs/r.json`: a
        # PermissionError traceback from the folder root's shell opened it in)
        refuse_unusable_descriptor(report_path, option("report_path"))
        return
    try:
        if report_path is not None and not Path(report_path).resolve().parent.is_dir():
            raise SinkError(f"{option('report_path')} folder does not exist: {Path(report_path).resolve().parent}")
        if report_path is not None and Path(report_path).is_dir():
            raise SinkError(f"{option('report_path')} {report_path} is a folder; give a file name, e.g. {Path(report_path) / 'report.json'}")
    except PermissionError as e:  # a folder on the way closed to this user: a traceback, exit 1
        raise SinkError(f"cannot write {option('report_path')} {report_path}: {e.strerror} ({e.filename})") from None
    if report_path is not None:
        check_json_replaceable(report_path, option("report_path"))


def check_report_replaces_nothing(
    report: Optional[str | Path], what: str, reads: Iterable[Optional[str | Path]], writes: Iterable[Optional[str | Path]] = ()
) -> None:
    """Fail when a report or score file (``what`` names its option: ``--report``, ``--json``) would replace a file the
    run reads (``reads``: an input, a background, predictions or ground truth; a folder's own media files too) or one it
    writes (``writes``: its outputs). Such a file is rewritten on every run, as a log is, without ``--overwrite``: so
    ``eval clip.mkv gt/ --json clip.mkv`` replaced the predictions with their scores, and ``process clip.mp4 -o cut.mkv
    --report cut.mkv`` the finished video with its report, both exit 0."""
    if report is None or str(report) == "-":
        return
    refuse_link_loop(report, what)
    refuse_unusable_descriptor(report, what)  # before the work: refused only as the report was written, after it
    target = Path(report).resolve()
    for read in reads:
        local = _local_read(read)
        if local is None:
            continue
        folder = Path(local).resolve()
        if folder.is_dir() and folder in target.parents and target.exists() and _media_file(target):
            raise SinkError(f"{what} {report} would write into {target.name} in {read}, which this run reads; name another file")
        try:
            check_replaces_no_input(target, [read])
        except SinkError:
            shown = read if os.path.lexists(local) else f"{target.name}, one of {read}"  # a glob: the file it matched
            raise SinkError(f"{what} {report} would write into {shown}, which this run reads; name another file") from None
    for written in writes:
        if written is None:
            continue
        out = Path(written).resolve()
        if out == target or one_file_by_case(target, out):
            raise SinkError(f"{what} {report} would write into the output {written}, which this run writes; name another file")


def _media_file(path: Path) -> bool:
    """True for a file a folder is read for: a picture, mask or video (not a JSON or text file beside them)."""
    return path.suffix.lower() in MASK_EXTENSIONS or path.suffix.lower() in VIDEO_EXTENSIONS


def one_file_by_case(a: Path, b: Optional[Path]) -> bool:
    """True when ``a`` and ``b`` are spelt alike but for letter case and name one file: on macOS' (and
    Windows') case-insensitive disks ``-o Clip.mp4 --overwrite`` was renamed over the input clip.mp4."""
    if b is None or a == b or str(a).casefold() != str(b).casefold():
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def name_fold(name: str) -> str:
    """``name`` as a disk that ignores letter case and Unicode composition compares it (macOS, Windows, an exFAT card)."""
    return unicodedata.normalize("NFC", name).lower()


def folds_names(folder: str | Path) -> bool:
    """True when the disk under ``folder`` (or its nearest existing parent) takes ``Clip.mov`` and ``clip.mov``, or
    a composed and a decomposed ``café.mov``, for one file; asked by making a probe file there and removing it."""
    where = Path(folder)
    while not where.is_dir() and where != where.parent:
        where = where.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".birefvid-Case-\u00e9-", dir=where)
    except (OSError, ValueError):
        return False
    os.close(fd)
    try:
        name = os.path.basename(probe)
        return any(os.path.exists(os.path.join(where, other)) for other in (name.swapcase(), unicodedata.normalize("NFD", name)))
    except (OSError, ValueError):
        return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)


def check_output_file(path: str | Path, what: str) -> None:
    """Fail early, before the work, when the file ``path`` (``what`` names it: ``--json``) cannot be
    written: it is a folder, its folder is missing, neither it nor its folder is writable, or its name is over 255 bytes."""
    p = Path(path)
    too_long = name_too_long(p)
    if too_long:  # else OSError 'File name too long' in a traceback, from the first look at it
        raise SinkError(f"cannot write {what} {p}: {too_long}; pick a shorter name")
    refuse_link_loop(p, what)
    refuse_unusable_descriptor(p, what)  # /dev/fd/9 with no 9 given: said now, not after the work
    if open_descriptor(p) is not None:  # written through the descriptor, open for writing: the name's file's
        # permissions and folder are not asked (`sudo -u svc birefvid ... --progress-json /dev/stdout | tee log`, a
        # unit's StandardOutput=file: the pipe or file is root's and was 'not writable', though the run writes it)
        return
    empty = json_name_left_empty(p)
    if empty:  # else a hidden .json, which no ls shows
        raise SinkError(f"cannot write {what} {p}: {empty}")
    parent = p.resolve().parent
    if p.is_dir():
        raise SinkError(f"{what} {p} is a folder; name a file")
    if not parent.is_dir():
        raise SinkError(f"{what} folder does not exist: {parent}")
    writable = os.access(p, os.W_OK) if p.exists() else os.access(parent, os.W_OK | os.X_OK)
    if not writable:
        raise SinkError(f"{what} {p} is not writable{_unwritable_why(p)}" if p.exists()
                        else f"{what} folder is not writable: {parent}{_unwritable_why(parent)}")  # fmt: skip
    check_json_replaceable(p, what)


def _unwritable_why(path: Path) -> str:
    """Why ``path``, which this user may not write, is so, as a clause: " (a read-only file system)" on a read-only
    mount, where its owner is not why (root was told "it belongs to alice, mode 0644" of a file on a read-only
    volume, and no chmod of hers would help); else whose it is where another user's (``owner_phrase``)."""
    try:
        if hasattr(os, "statvfs") and os.statvfs(path).f_flag & os.ST_RDONLY:
            return " (a read-only file system)"
    except OSError:
        pass
    return "" if path.is_dir() else owner_phrase(path)


def check_json_replaceable(path: str | Path, what: str) -> None:
    """SinkError, before the work, where the JSON file ``path`` (``what`` names the option) is another user's in a
    sticky folder: ``write_text_atomic`` renames onto it, which only its owner may there, so the run did its work and
    ended "cannot write it (Operation not permitted)", exit 2. A device, pipe or descriptor is written into: let be."""
    p = Path(path)
    if not p.exists() or special_file(p) or open_descriptor(p) is not None:
        return
    real = through_link(p)
    try:
        _check_replaceable(p, real, real.parent)
    except SinkError as e:
        raise SinkError(f"{what} {e}") from None


class _AtomicTarget:
    """A temporary ``temp`` beside ``target``; ``commit()`` moves it into place, ``discard()`` removes it.

    ``hold = True`` (set before ``commit()``, by a run committing several outputs together): the entry a commit
    replaces is kept aside, hidden, until ``settle()`` drops it, and ``undo()`` takes the commit back, putting
    that entry back (or removing the output where there was none), when a later output of the run fails its commit.
    """

    target: Path
    temp: Path
    is_dir = False
    what = "output"
    _done = False
    hold = False
    _old: Optional[Path] = None  # hold: a hidden folder beside the target holding the entry the commit replaced, as "x"
    _was_empty_dir = False  # hold: the commit renamed onto an empty folder, which undo() makes again
    _placed: Optional[Path] = None  # where the commit put the output (the target, or NAME (2) beside it)
    _placed_id: Optional[tuple[int, int]] = None  # its (device, inode): undo() removes it only while it is still this run's
    _lock: Optional[int] = None  # the writer_lock on ``temp``, held until the commit or discard
    _lock_pid: Optional[int] = None  # the process that took it: a forked child's copy of the number is not its lock

    def _release(self) -> None:
        """Let go of the writer lock on the temporary entry (idempotent). In a forked child the descriptor was closed as
        it started (``_drop_held_in_child``) and its number may be a file the child opened since: closing it again lost
        that file (a multiprocessing worker's log, EBADF), so only the process that took the lock closes it."""
        fd, self._lock = self._lock, None
        if self._lock_pid == os.getpid():
            release_writer_lock(fd)

    def __del__(self) -> None:
        self._release()

    def commit(self) -> None:
        """Move the finished temporary entry onto the target (replacing it); idempotent."""
        if self._done:
            return
        try:
            self._commit()
        finally:
            if self._done:
                self._release()

    def _commit(self) -> None:
        try:
            apply_default_permissions(self.temp, is_dir=self.is_dir)
            self._placed_id = _identity(self.temp)
            self._placed = self.target  # before the move: a Ctrl-C just after it still finds it (``in_place``) to take back
            self._move_or_put_back()
        except OutputKeptError as e:  # committed beside the target: nothing left to discard
            self._done = True
            self._placed = Path(e.kept) if e.kept is not None else None
            raise
        except SinkError:  # said already
            self.discard()
            raise
        except PermissionError as e:
            if sys.platform != "win32":
                self.discard()
                raise SinkError(f"cannot move the finished {self.what} onto {self.target}: {e.strerror or e}") from e
            self._done = True  # finished work is kept: the old output is open in a player, and hours of work were deleted
            raise SinkError(f"cannot replace {self.target}: another program has it open ({e.strerror or e}); the finished "
                            f"{self.what} is kept as {self.temp}: close that program and rename it") from e  # fmt: skip
        except OSError as e:
            self.discard()
            raise SinkError(f"cannot move the finished {self.what} onto {self.target}: {e.strerror or e}") from e
        self._done = True
        log.debug("committed %s", self.target)

    def _move_or_put_back(self) -> None:
        """``_move()``; one failing leaves the target as it found it (what ``hold`` had set aside goes back)."""
        try:
            self._move()
        except OutputKeptError:
            raise
        except BaseException:
            self._put_back()
            raise

    def _set_aside(self) -> None:
        """hold: keep the entry at the target, which the commit is about to replace, in a hidden folder beside it:
        a file as a second hard link (the target stays in place until the rename replaces it), else moved there."""
        if not self.hold or not os.path.lexists(self.target):
            return
        if not self.is_dir and self.target.is_dir() and not self.target.is_symlink():
            return  # a folder where a file goes: the rename fails, as without hold
        self._old = Path(tempfile.mkdtemp(prefix=partial_prefix(self.target.name)[: -len("partial-")] + "old-", dir=self.target.parent))
        kept = self._old / "x"
        if not self.is_dir:
            try:
                os.link(self.target, kept, follow_symlinks=False)
                return
            except OSError:  # a disk without hard links: moved aside instead, for the moment until the rename
                pass
        replace(self.target, kept)

    def _put_back(self) -> None:
        """Put the entry set aside back at the target, where nothing is there any more (a failed rename after it moved)."""
        old, self._old = self._old, None
        if old is None:
            return
        try:
            if not os.path.lexists(self.target):
                replace(old / "x", self.target)
        except OSError as e:
            log.warning("could not put %s back from %s: %s", self.target, old / "x", e.strerror or e)
            return
        shutil.rmtree(old, ignore_errors=True)

    @property
    def in_place(self) -> bool:
        """True when the commit has put this run's output in place (at the target or beside it), ``undo()``'s to take back."""
        return self._placed is not None and self._placed_id is not None and _identity(self._placed) == self._placed_id

    @property
    def replaced(self) -> bool:
        """True when a held commit replaced an entry that ``undo()`` would put back."""
        return self._old is not None or self._was_empty_dir

    def settle(self) -> None:
        """The commit stands: drop the entry it replaced, kept aside for ``undo()`` (idempotent)."""
        old, self._old = self._old, None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def undo(self) -> list[str]:
        """Take a held commit back: remove the output it put in place (only while it is still this run's) and put back
        what it replaced. Returns what could not be done, as phrases for an error message (empty: all done)."""
        placed, self._placed = self._placed, None
        problems: list[str] = []
        if placed is not None and self._placed_id is not None and _identity(placed) == self._placed_id:
            try:
                if self._old is not None and placed == self.target and not self.is_dir:
                    replace(self._old / "x", self.target)  # the old file back in one rename: the name is never missing
                    shutil.rmtree(self._old, ignore_errors=True)
                    self._old = None
                elif placed.is_dir() and not placed.is_symlink():
                    shutil.rmtree(placed)
                else:
                    placed.unlink()
            except OSError as e:
                problems.append(f"{placed} could not be removed ({e.strerror or e})")
        self._put_back()
        if self._old is not None:
            problems.append(f"{self.target} could not be put back: it is in {self._old}")
        if self._was_empty_dir and placed == self.target and not os.path.lexists(self.target):
            with contextlib.suppress(OSError):
                os.mkdir(self.target)
        return problems

    def discard(self) -> None:
        """Remove the temporary entry if it is still there (idempotent)."""
        if self._done:
            return
        self._done = True
        try:
            self._remove()
        finally:
            self._release()

    def _move(self) -> None:
        raise NotImplementedError

    def _remove(self) -> None:
        raise NotImplementedError

    def _take(self, name: Path) -> bool:
        """Move the temporary entry to ``name`` if nothing is there (False: taken), never replacing anything."""
        raise NotImplementedError

    def _keep_beside(self, why: str) -> OutputKeptError:
        """The finished entry committed under the first free ``NAME (2).EXT``, ``(3)``... beside the taken target,
        as an error saying where (``why``: what took the target): hours of work were thrown away on that conflict."""
        kept: Optional[Path] = None
        try:
            for n in range(2, 2 + KEEP_TRIES):
                name = kept_name(self.target, n, is_dir=self.is_dir)
                if self._take(name):
                    kept = name
                    break
        except OSError as e:
            log.warning("could not keep %s beside %s: %s", self.temp, self.target, e.strerror or e)
        if kept is None:  # no free name, or the folder refused: the temporary entry itself stays
            kept = self.temp
        self._done = True
        log.debug("kept %s as %s", self.target, kept)
        return OutputKeptError(f"output exists: {self.target} ({why}); this run's {self.what} is kept as {kept} "
                               f"(rename it, or use {option('overwrite', True)} to replace)", kept=kept)  # fmt: skip


class AtomicFile(_AtomicTarget):
    """A temporary file beside ``target`` that becomes ``target`` on ``commit()``.

    ``overwrite=False``: a target that appeared while the file was written (two requests of a service
    writing one name at once) is not replaced: the file is committed as ``NAME (2).EXT`` and the commit
    raises ``OutputKeptError`` with that path.
    """

    def __init__(self, target: Path, *, overwrite: bool = True) -> None:
        self.target = through_link(Path(target))
        self.overwrite = overwrite
        suffix = self.target.suffix
        try:
            fd, tmp = tempfile.mkstemp(prefix=partial_prefix(self.target.stem, suffix), suffix=suffix, dir=self.target.parent)
        except OSError as e:
            raise SinkError(f"cannot create a file in {self.target.parent}: {e.strerror or e}") from e
        self.temp = Path(tmp)
        self._lock = writer_lock(tmp, fd)  # kept open (the writer opens the file by its name), closed at the commit or discard
        self._lock_pid = os.getpid()

    def _move(self) -> None:
        if self.overwrite:
            self._set_aside()
            replace(self.temp, self.target)
            return
        try:
            os.link(self.temp, self.target)  # fails if the target exists, atomically: no other writer is replaced
        except FileExistsError:
            if _same_file(self.temp, self.target):  # NFS: a retried link call that had made it says EEXIST
                self._remove()
                return
            raise self._keep_beside("written by something else while this run wrote it") from None
        except OSError:  # a disk without hard links (FAT, some network shares): the check then the rename
            if os.path.lexists(self.target):
                raise self._keep_beside("written by something else while this run wrote it") from None
            replace(self.temp, self.target)
            return
        self._remove()

    def _take(self, name: Path) -> bool:
        try:
            os.link(self.temp, name)
        except FileExistsError:
            return False
        except OSError:  # no hard links here: the check then the rename
            if os.path.lexists(name):
                return False
            replace(self.temp, name)
            return True
        self._remove()
        return True

    def _remove(self) -> None:
        try:
            self.temp.unlink()
        except FileNotFoundError:
            pass
        except OSError as e:  # pragma: no cover - depends on the filesystem
            log.warning("could not remove temporary output %s: %s", self.temp, e)


def _identity(path: Path) -> Optional[tuple[int, int]]:
    """``path``'s (device, inode), not following a link (None when it is gone)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` are links to one file (False when either is gone)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


class AtomicDir(_AtomicTarget):
    """A hidden temporary folder beside ``target`` that becomes ``target`` on ``commit()``.

    ``overwrite=False``: the commit replaces a missing or still empty folder only; one that something
    was put into meanwhile (or a file of that name) is never moved aside and deleted: the sequence is
    committed as ``NAME (2)`` and the commit raises ``OutputKeptError`` with that path.
    """

    is_dir = True
    what = "image sequence"

    def __init__(self, target: Path, *, overwrite: bool = True) -> None:
        self.target = through_link(Path(target))
        self.overwrite = overwrite
        try:
            self.temp = Path(tempfile.mkdtemp(prefix=partial_prefix(self.target.name), dir=self.target.parent))
        except OSError as e:
            raise SinkError(f"cannot create a folder in {self.target.parent}: {e.strerror or e}") from e
        self._lock = writer_lock(self.temp)
        self._lock_pid = os.getpid()

    def _move(self) -> None:
        if not self.overwrite:
            self._move_onto_empty()
            return
        if self.hold:
            self._set_aside()  # the folder, a file or a link moved into a hidden folder until settle()
            replace(self.temp, self.target)
        elif self.target.is_dir() and not self.target.is_symlink():
            # os.replace cannot replace a non-empty folder: move the old one aside first.
            old = Path(tempfile.mkdtemp(prefix=partial_prefix(self.target.name)[: -len("partial-")] + "old-", dir=self.target.parent))
            replace(self.target, old / "x")
            replace(self.temp, self.target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            if self.target.exists() or self.target.is_symlink():
                self.target.unlink()
            replace(self.temp, self.target)

    def _move_onto_empty(self) -> None:
        """Rename onto the target only while it is missing or an empty folder: POSIX's rename does that
        check atomically; Windows', which refuses any existing target, gets the empty folder removed first."""
        if self.target.is_symlink():  # a link made there while this run wrote (one named by -o is followed: through_link)
            if self.hold:
                self._set_aside()
            else:
                self.target.unlink()
            replace(self.temp, self.target)
            return
        self._was_empty_dir = self.target.is_dir()
        try:
            try:
                os.rename(self.temp, self.target)
            except FileExistsError:
                if sys.platform != "win32" or not self.target.is_dir() or self.target.is_symlink():
                    raise
                os.rmdir(self.target)  # fails (OSError) if anything is in it
                os.rename(self.temp, self.target)
        except OSError:
            if not os.path.lexists(self.target):
                raise
            raise self._keep_beside("something was put there while this run wrote it") from None

    def _take(self, name: Path) -> bool:
        if os.path.lexists(name):
            return False
        try:
            os.rename(self.temp, name)  # onto a missing name (or a folder made empty meanwhile: nothing lost)
        except OSError:
            if os.path.lexists(name):
                return False
            raise
        return True

    def _remove(self) -> None:
        shutil.rmtree(self.temp, ignore_errors=True)


# how long a named pipe's reader is waited for when the run opens it to write (a report, JSON lines): a `cat pipe` or
# `jq . < pipe` started with the run or just after; then one line, where open() waited for ever, the run's work done
PIPE_READER_WAIT_S = 5.0


def refuse_unusable_descriptor(path: str | Path, what: str) -> None:
    """SinkError where ``path`` names one of this process's descriptors (``/dev/fd/9``, ``/dev/stdout``) that a report
    cannot go through: one the command was not started with (``descriptor_given``: whatever the run put on that number
    since, a cache blob or a worker's pipe, or nothing), or one open for reading only (``9< file``). Said by the checks
    before any work (``check_report_replaces_nothing``, ``check_output_file``) as by ``open_into`` at the end: the
    refusal came only once the report was written, after the hours of work it reports."""
    fd = open_descriptor(path)
    if fd is None:
        return
    import fcntl

    if not descriptor_given(fd):  # an internal file or pipe on that number now (fd 9: a cache blob, a worker's
        # pipe), written into in the run's name; or none, 'Bad file descriptor'
        raise SinkError(f"{what} {path} names descriptor {fd}, which the run was not started with; "
                        f"open it in the shell ({fd}> file) or name a file") from None
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except OSError:  # closed since: said by open_into's dup
        return
    if flags & os.O_ACCMODE == os.O_RDONLY:  # `9< file`: its first write failed 'Bad file descriptor'
        raise SinkError(f"{what} {path}: descriptor {fd} is open for reading only; open it for writing ({fd}> file)") from None


def open_into(path: str | Path, mode: str, what: str, *, encoding: Optional[str] = "utf-8"):
    """``path`` opened to be written into, not renamed onto, as a shell's ``>``/``>>`` does: a file object the caller
    closes. A name for one of this process's descriptors (``/dev/stdout``, ``/dev/fd/3``: ``open_descriptor``) is that
    descriptor, its offset and O_APPEND the shell's; reopened by name, ``--report /dev/stdout >> run.log`` cut the log to
    the report. A named pipe with no reader is waited for ``PIPE_READER_WAIT_S``, then refused in one line: ``open()``
    waited for ever, a finished run hung on its report (``--stats-json`` before any work). SinkError naming ``what``."""
    fd = open_descriptor(path)
    if fd is not None:
        refuse_unusable_descriptor(path, what)
        for stream in (sys.stdout, sys.stderr):  # what the run printed so far goes first, in order
            with contextlib.suppress(Exception):
                stream.flush()
        try:
            copy = os.dup(fd)
            if os.get_blocking(copy):
                return os.fdopen(copy, mode, encoding=encoding)
            # a parent's non-blocking pipe (Node.js): the copy shares its O_NONBLOCK, and a full pipe failed the report
            # with EAGAIN where the name reopened (a blocking description) waited for room; waited for, as stdout is
            from birefvid.standard_output import waiting_file

            return waiting_file(copy, encoding=encoding)
        except OSError as e:
            raise SinkError(f"{what} {path}: cannot write it ({e.strerror or e})") from None
    if special_file(path) == "a named pipe":
        import errno
        import fcntl

        deadline = time.monotonic() + PIPE_READER_WAIT_S
        while True:
            try:
                raw = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as e:
                if e.errno != errno.ENXIO:  # ENXIO: no reader yet
                    raise SinkError(f"{what} {path}: cannot write it ({e.strerror or e})") from None
                if time.monotonic() >= deadline:
                    raise SinkError(f"{what} {path} is a named pipe that no program reads (waited {PIPE_READER_WAIT_S:g} s); "
                                    "start its reader first, or name a file") from None
                time.sleep(0.05)
        fcntl.fcntl(raw, fcntl.F_SETFL, fcntl.fcntl(raw, fcntl.F_GETFL) & ~os.O_NONBLOCK)  # a slow reader is waited for
        return os.fdopen(raw, mode, encoding=encoding)
    try:
        return open(path, mode, encoding=encoding)  # noqa: SIM115 - the caller closes it
    except OSError as e:
        raise SinkError(f"{what} {path}: cannot write it ({e.strerror or e})") from None


def write_text_atomic(path: str | Path, text: str, what: str) -> None:
    """Write ``text`` to ``path`` through a hidden temporary file beside it, renamed over it when whole.

    For the JSON a script reads after a run (``--report``, ``--json``): a reader never sees half a
    file, a run stopped while writing it (SIGTERM, a full disk) leaves the earlier file as it was
    and no temporary one, and a write that fails is a SinkError naming ``what`` (the option), not a
    traceback. The file gets the mode a plain ``open()`` would give it. A name that is a device or a pipe
    (``--report /dev/null``) is written into, not renamed onto; a symbolic link's file is replaced and the link kept.
    """
    if special_file(path) or open_descriptor(path) is not None:
        # /dev/null, a named pipe, /dev/stdout (a pipe, a terminal, or the file of `> run.log`): written into, as a
        # shell's `>` does; a rename replaced the device, or the log standard output went to
        f = open_into(path, "w", what)  # its SinkError as it is
        try:
            with f:
                f.write(text)
        except OSError as e:
            raise SinkError(f"{what} {path}: cannot write it ({e.strerror or e})") from None
        return
    target = through_link(Path(path))  # a link stays and its file is replaced, as for every other output
    try:
        fd, tmp = tempfile.mkstemp(prefix=partial_prefix(target.name), dir=target.parent)
    except OSError as e:
        raise SinkError(f"{what} {path}: cannot write it ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        apply_default_permissions(Path(tmp), is_dir=False)
        replace(tmp, target)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise SinkError(f"{what} {path}: cannot write it ({e.strerror or e})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
