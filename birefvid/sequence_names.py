"""File-name patterns for an image-sequence output: ``out/matte.%04d.png`` (ffmpeg's) or ``out/matte.####.tif`` (Nuke's).

Compositors conform a matte to its plate by name and number (``plate.1001.png`` -> ``matte.1001.png``); a pattern
names the files, its folder is the sequence's folder, exactly as ``-o out/`` would be.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple, Optional

from birefvid.errors import SinkError, option
from birefvid.extensions import IMAGE_EXTENSIONS

# ffmpeg's %d / %0Nd and Nuke's #### (one # a digit); a name holds one
_FIELD = r"%(?:0[1-9]\d*)?d|#+"
_TOKEN = re.compile(_FIELD)
# a name whose number field is right before its extension, as sequences are named
_FIELD_LAST = re.compile(rf"(.*?)({_FIELD})(\.[A-Za-z0-9]+)")
# the endings a pattern may have: a picture format's (those of SEQUENCE_FORMATS are written; the others are one error line)
_PICTURES = frozenset({*IMAGE_EXTENSIONS, ".exr", ".dpx", ".cin"})
# the formats an image-sequence output is written in, by a pattern's ending (a folder, ``-o out/``, is PNG)
SEQUENCE_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".exr": "OpenEXR"}


# what a file browser leaves in a folder it showed (macOS' Finder, Windows' Explorer): no one's render, so a pattern's
# folder holding them is still a previous run's; with them, --overwrite was refused once the folder had been looked at
SYSTEM_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


class NumberedName(NamedTuple):
    """A file name split around its last number: ``plate.1001.png`` is ``plate.``, ``1001``, ``.png``."""

    prefix: str
    digits: str
    rest: str  # what follows the number, the extension included

    @property
    def number(self) -> int:
        """The frame number."""
        return int(self.digits)

    @property
    def key(self) -> tuple[str, str]:
        """What the names of one sequence's frames share (the extension's case aside: ``.PNG`` is ``.png``)."""
        return self.prefix, self.rest.lower()


_NUMBERED = re.compile(r"(.*?)(\d+)(\D*)")


def numbered_name(name: str) -> Optional[NumberedName]:
    """``name`` split around its last number, or None for a name without one: the one reading of a frame's name that
    the input's sequences, its gaps and strays, and the EXR/DPX conversion line share."""
    match = _NUMBERED.fullmatch(name)
    return NumberedName(*match.groups()) if match else None


def name_template(name: str) -> str:
    """``name`` with each of its numbers as ``#`` (``Screenshot 2024-06-01 at 10.15.32.png``: ``Screenshot #-#-# at
    #.#.#.png``): names alike but for their numbers."""
    return re.sub(r"\d+", "#", name.lower())


class SequencePattern(NamedTuple):
    """``folder/PREFIX<number padded to digits>SUFFIX``."""

    folder: Path
    prefix: str
    suffix: str
    digits: int
    token: str  # as written: %04d or ####

    @property
    def shown(self) -> str:
        """The pattern's file name as the user wrote it (``matte.####.png``)."""
        return f"{self.prefix}{self.token}{self.suffix}"

    def name(self, number: int) -> str:
        """The file name of frame ``number`` (wider than ``digits`` when it needs more, as ffmpeg and Nuke write it)."""
        return f"{self.prefix}{number:0{self.digits}d}{self.suffix}"

    def matches(self, name: str) -> bool:
        """Whether ``name`` is one of this pattern's files (a previous run's)."""
        middle = name[len(self.prefix) : len(name) - len(self.suffix)] if len(name) > len(self.prefix) + len(self.suffix) else ""
        return name.startswith(self.prefix) and name.endswith(self.suffix) and middle.isdigit() and len(middle) >= self.digits


def sequence_pattern(path: str | Path) -> Optional[SequencePattern]:
    """The pattern ``path``'s file name holds (``matte.%04d.png``, ``matte.####.png``: the number field right before a
    picture's extension, as sequences are named), or None for a plain path (``take#2.mov`` is a video's name).

    SinkError for a pattern of a picture format not written (``.dpx``, ``.jpg``: ``SEQUENCE_FORMATS`` are) or one
    holding two frame-number fields."""
    text = str(path)
    name = Path(text).name
    match = _FIELD_LAST.fullmatch(name)
    if not match or text.endswith(("/", "\\")) or match[3].lower() not in _PICTURES:
        return None
    prefix, token, suffix = match.groups()
    if _TOKEN.search(prefix):
        raise SinkError(f"{text}: a sequence pattern holds one frame-number field (%04d or ####), this one two")
    if suffix.lower() not in SEQUENCE_FORMATS:
        raise SinkError(f"{text}: image sequences are written as PNG, TIFF or OpenEXR (the matte); end the pattern in .png, "
                        f".tif or .exr ({prefix}{token}.png), or name a video file")  # fmt: skip
    digits = len(token) if token.startswith("#") else int(token[1:-1] or 1)
    return SequencePattern(Path(text).parent, prefix, suffix, digits, token)


def as_input_glob(path: str | Path) -> Optional[str]:
    """For an input named as a sequence pattern (``plate/plate.####.png``, ``plate.%04d.png``), which is read from a
    folder or glob instead: the glob of its files (``plate/plate.*.png``); None for a name without a number field."""
    name = Path(str(path)).name
    match = _FIELD_LAST.fullmatch(name)
    if match is None or match[3].lower() not in _PICTURES:  # take#2.mp4 is a video's name
        return None
    return str(Path(str(path)).with_name(f"{match[1]}*{match[3]}"))


def sequence_folder(path: str | Path) -> Path:
    """The folder a PNG-sequence output ``path`` fills: a pattern's folder, else ``path`` itself."""
    pattern = sequence_pattern(path)
    return pattern.folder if pattern else Path(path)


def check_own_folder(path: str | Path) -> None:
    """SinkError when a PNG sequence ``path`` would fill the current folder (``-o matte.####.png``, ``-o ./``): its folder
    is written whole under a temporary name and renamed into place, which the current folder cannot be (the run ended
    in a traceback, its frames lost)."""
    folder = sequence_folder(path)
    if folder.resolve() != Path.cwd().resolve():
        return
    pattern = sequence_pattern(path)
    example = f"out/{pattern.shown}" if pattern else "out/"
    if pattern and "\\" in pattern.prefix and os.sep == "/":  # out\matte.%04d.png: Windows' separator, a plain letter here
        example = str(path).replace("\\", "/")
    raise SinkError(f"{path}: an image sequence is written into a folder of its own, created when the run succeeds, "
                    f"and this one is the current folder; name one, as {example}")  # fmt: skip


def check_previous_run(pattern: SequencePattern, *, overwrite: bool) -> None:
    """SinkError when the pattern's folder holds files other than the pattern's own (``comp/`` with other renders in
    it): only a previous run of the same sequence is replaced, with ``--overwrite``; said before 'use --overwrite',
    which would then be refused."""
    folder = pattern.folder
    if not folder.is_dir():
        return
    try:
        names = [p.name for p in folder.iterdir()]
    except PermissionError as e:  # another user's 0700 folder: a traceback, exit 1
        raise SinkError(f"cannot write {pattern.shown} into {folder}: it is a folder this user may not read "
                        f"({e.strerror or e}); name another folder") from e
    foreign = sorted(n for n in names if not pattern.matches(n) and n not in SYSTEM_FILES
                     and not (n.startswith("._") and pattern.matches(n[2:])))  # fmt: skip
    if foreign:
        raise SinkError(f"{folder} holds files other than {pattern.shown} "
                        f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}), and an image sequence's folder is "
                        f"its own (replaced whole with {option('overwrite', True)}); write the sequence into a folder of its own")  # fmt: skip


def is_sequence_target(path: str | Path) -> bool:
    """True when ``path`` names an image-sequence folder: no extension, an existing folder, a trailing slash (PNG), or
    a file-name pattern (``out/matte.%04d.png``, ``out/matte.####.tif``, ``out/matte.%04d.exr``)."""
    text = str(path)
    if sequence_pattern(text):
        return True
    p = Path(text)
    return text.endswith(("/", os.sep)) or p.is_dir() or p.suffix == ""
