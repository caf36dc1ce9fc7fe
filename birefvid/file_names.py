"""How long a file's own name may be: a light module (no PyAV), so a job's options are checked before any heavy import."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Optional

# the longest file name most filesystems take (ext4, XFS, Btrfs, APFS, NTFS; bytes or UTF-16 units)
NAME_MAX = 255


def name_too_long(path: str | Path) -> Optional[str]:
    """Why ``path``'s own name is one no disk takes (over ``NAME_MAX`` bytes), or None: said in a line
    up front, where the first look at it was OSError 'File name too long' in a traceback (exit 1)."""
    size = len(os.fsencode(Path(path).name))
    return f"its name is {size} bytes long, over the {NAME_MAX} a file system takes" if size > NAME_MAX else None


def link_loop(path: str | Path) -> Optional[str]:
    """Why ``path`` cannot be reached because it, or a folder on the way to it, is a symbolic link in a loop (``ln -s
    loop loop``, or two links leading to each other), or None. Said in one line up front: Python's first look at such a
    path (``Path.resolve``) raised ``RuntimeError: Symlink loop`` in a traceback (exit 1)."""
    try:
        os.stat(path)
    except OSError as e:
        if e.errno != errno.ELOOP:
            return None
    except ValueError:  # a NUL in the name: not this question
        return None
    else:
        return None
    whole = Path(path)
    for step in (*reversed(whole.parents), whole):  # the first of its steps that loops: the link to name
        try:
            os.stat(step)
        except OSError as e:
            if e.errno == errno.ELOOP:
                return f"{step} is a symbolic link in a loop, or leads through one ({os.strerror(errno.ELOOP)}); remove it or name another path"
    return f"{path} is a symbolic link in a loop, or leads through one ({os.strerror(errno.ELOOP)}); remove it or name another path"


def special_file(path: str | Path) -> Optional[str]:
    """What ``path`` (followed through links) is when it exists and is neither a file nor a folder: ``a character device``
    (``/dev/null``, a terminal), ``a named pipe``, ``a socket``, ``a block device``; else None. An output is written to a
    temporary file renamed onto its name, and a rename onto such an entry replaced it: run as root, ``--report /dev/null``
    or ``-o out.mkv`` linked to ``/dev/null`` made ``/dev/null`` a plain file, every program's after it."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    for test, kind in ((stat.S_ISCHR, "a character device"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return None


def one_line(text: str) -> str:
    """``text`` with the line breaks a file name can hold (``$'take\\n2.mp4'``) written ``\\n`` and ``\\r``, as a shell's
    ``$'...'`` names the file: an error, warning or ``wrote`` line is one line, which a log's reader or a ``grep
    'birefvid: error:'`` takes whole; such a name split it in two."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


_DESCRIPTOR = re.compile(r"/(?:dev|proc/(?:self|thread-self|\d+))/fd/(\d+)")


def open_descriptor(path: str | Path) -> Optional[int]:
    """The number of this process's open descriptor that ``path`` names, or None: ``/dev/stdout`` (a link to
    ``/proc/self/fd/1``), ``/dev/fd/3``, ``/proc/self/fd/1``, or a link leading to one. Such a name is the descriptor the
    shell opened (``> run.log``, ``>> run.log``, ``2>&1``): a report renamed onto the file it leads to replaced that
    file, the lines before the report gone, and one opened again by name (``open('/dev/stdout', 'w')``) cut it to
    nothing; written through the descriptor itself, it lands where the shell sends standard output."""
    hop = os.path.abspath(str(path))
    for _ in range(40):  # the kernel's own limit on links followed
        match = _DESCRIPTOR.fullmatch(hop)
        if match and (hop.startswith("/dev/") or hop.split("/")[2] in ("self", "thread-self", str(os.getpid()))):
            return int(match[1])
        try:
            hop = os.path.normpath(os.path.join(os.path.dirname(hop), os.readlink(hop)))
        except (OSError, ValueError):
            return None
    return None


def leads_to_standard_output(path: str | Path) -> bool:
    """Whether ``path`` names the file, pipe or socket standard output goes to: ``/dev/stdout``, ``/dev/fd/3`` of
    ``3>&1``, or ``cut.png`` of ``> cut.png``. A report written there went into the picture or JSON lines the run sends
    to standard output (``image -o - --report /dev/stdout``: the report after the PNG's bytes), or was renamed onto
    them (``--report cut.png > cut.png``: the picture gone), exit 0. A character device (a terminal, ``/dev/null``) is
    not counted: writes there are lines on a screen, or nothing."""
    import stat

    try:
        named, held = os.stat(path), os.fstat(1)
    except (OSError, ValueError):
        return False
    return not stat.S_ISCHR(held.st_mode) and (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


# the descriptors the command was started with (``cli.main`` notes them): None outside it, where a program calling the
# API holds its descriptors itself and any it names is its own
_GIVEN: list[Optional[frozenset[int]]] = [None]


def descriptors_open_now() -> frozenset[int]:
    """The descriptors open in this process now (the listing's own one left out: it is closed once listed)."""
    try:
        listed = os.listdir("/proc/self/fd")
    except OSError:
        return frozenset({0, 1, 2})
    held = set()
    for name in listed:
        try:
            os.fstat(int(name))
        except (OSError, ValueError):
            continue
        held.add(int(name))
    return frozenset(held)


def note_descriptors_given(given: Optional[frozenset[int]]) -> Optional[frozenset[int]]:
    """Note ``given`` as the descriptors the command was started with (the shell's ``> run.log``, ``3>> log``); returns
    what was noted before, for the caller to put back."""
    before, _GIVEN[0] = _GIVEN[0], given
    return before


def descriptor_given(fd: int) -> bool:
    """Whether ``fd`` is one the command was started with (always, outside a command): ``--report /dev/fd/9`` where the
    shell opened no 9 named whatever the run had put on 9 since, a cache file or a worker's pipe, and wrote into it."""
    return _GIVEN[0] is None or fd in _GIVEN[0]


# what surrogateescape makes of a byte that is no UTF-8 in a file name: U+DC80 to U+DCFF
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def shown_bytes(text: str) -> str:
    """``text`` with each byte of a file name that is no UTF-8 (``caf\\xe9.mp4`` from an old NAS or a Windows-1252 zip,
    which Python holds as the surrogate U+DCE9) written ``\\xe9``, as a shell's ``$'caf\\xe9.mp4'`` names that file
    (what a user can type back; ``ls -b`` writes it in octal): stderr's ``backslashreplace`` showed ``caf\\udce9.mp4``, the name of no file, in error lines,
    progress and warnings."""
    return _ESCAPED_BYTE.sub(lambda m: f"\\x{ord(m[0]) - 0xDC00:02x}", text)


JSON_EXTENSIONS = frozenset({".json", ".jsonl", ".ndjson"})


def json_name_left_empty(path: str | Path) -> Optional[str]:
    """Why a JSON file the run writes (``--report``, ``--json``, ``--progress-json``, ``--stats-json``) named by an
    extension alone (``--report .json``, a script's ``--report "$name.json"`` with ``$name`` empty) is refused, or None:
    it was written as a hidden file, which ``ls`` does not show, and the script's reader found no report."""
    name = Path(str(path)).name
    if name.lower() not in JSON_EXTENSIONS:
        return None
    return f"the name is an extension alone (a name before it left empty, as a script's empty variable makes?); name the file, as report{name}"


def only_an_extension(path: str | Path) -> Optional[str]:
    """Why an output named ``path`` is refused when its name is an extension alone (``-o .mkv``, ``-o out/.png``), or None.
    ``Path`` reads such a name as a hidden one with no extension, so ``process -o .mkv`` wrote a hidden folder of PNG
    frames named ``.mkv``, exit 0; ffmpeg writes a hidden Matroska file. Either is seldom what was meant: a script's
    ``-o "$name.mkv"`` with ``$name`` left empty makes that name."""
    from .extensions import MASK_EXTENSIONS, VIDEO_EXTENSIONS

    name = Path(str(path)).name
    if not name.startswith(".") or "." in name[1:] or name.lower() not in VIDEO_EXTENSIONS | MASK_EXTENSIONS | {".apng"}:
        return None
    said = "the name is an extension alone (a name before it left empty, as a script's empty variable makes?)"
    if name.lower() in VIDEO_EXTENSIONS | {".apng", ".webp"}:  # a file of frames: clip.webp is an animated WebP
        return f"{said}; name the file, as clip{name}, or a folder for a PNG sequence"
    # a picture's ending (-o .png): one picture's file (image), but a video's frames need a folder (process refuses clip.png)
    from .sequence_names import SEQUENCE_FORMATS

    pattern = f"frames/matte.%04d{name}" if name.lower() in SEQUENCE_FORMATS else "frames/matte.%04d.png"
    return f"{said}; name the file, as clip{name} for one picture, or a folder for a video's frames, as frames/ or {pattern}"
