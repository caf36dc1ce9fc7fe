"""Plan a batch, skip what the manifest says is finished, run the chunks on an executor, join each video's chunks.

The driver alone writes the manifest and joins; executors only run chunks. A video is finished once
its output is committed (atomically) and the manifest says so; its chunk files are then removed.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Optional, Protocol, Sequence

from ..errors import NOTICE, ConfigError, SinkError, SourceError, input_not_found, option
from ..extensions import HEIF_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, batch_extension
from ..file_names import name_too_long
from ..io.animated_source import frame_durations, is_animated_webp
from ..io.atomic import being_written, check_replaces_no_input, check_target, folds_names, name_fold, partial_prefix, refuse_link_loop, through_link
from ..io import open_source
from ..io.factory import is_sequence_target
from ..io.base import is_url
from ..io.scale import scaled_size
from ..job import FileJob
from ..linked_folders import leads_back_up
from . import DEFAULT_CHUNK_FRAMES
from .chunk import ChunkTask, chunk_shift, make_folder
from .hooks import crash_hook_for
from .join import join_chunks
from .killed import KILLS_TO_SKIP, RunningChunk
from .leftovers import note_stale_partials
from .local import ClusterLost, LocalExecutor, OnFailure, OnFrames, OnResult, Skip, WorkerDied
from .manifest import WORK_DIR, Manifest, earlier_outputs as _earlier_outputs, RunLock, before_input_colors, fingerprint, older_fingerprints
from .plan import Chunk, header_frames, overlap_for, plan_chunks, probe_video
from .progress import BatchProgress

# a TIFF or OpenEXR sequence's files, as a pattern: the names a PNG folder's files have (``io.image_sink.NAME_PATTERN``,
# ``frame_000001.png``, six digits or more, numbered from the start timecode's frame), in the other formats
SEQUENCE_NAMES = {"tif": "frame_%06d.tif", "exr": "frame_%06d.exr"}

# default container per output kind (the same defaults `process` documents)
DEFAULT_EXT = {"alpha": ".mov", "mask": ".mkv", "foreground": ".mp4", "green": ".mp4", "composite": ".mp4", "blur": ".mp4", "overlay": ".mp4"}

log = logging.getLogger(__name__)


class Executor(Protocol):
    """Runs chunk tasks and reports each result; ``LocalExecutor`` and ``RayExecutor`` are the two.

    A chunk that raises ``SourceError`` (its input damaged) goes to ``on_failure`` when given, and
    the executor goes on with the tasks ``skip`` does not refuse; any other error ends the run.
    """

    where: str
    workers: int

    def run(
        self, tasks: Sequence[ChunkTask], on_result: OnResult, on_frames: Optional[OnFrames] = None,
        on_failure: Optional[OnFailure] = None, skip: Optional[Skip] = None,
    ) -> None: ...

    def close(self) -> None: ...


class NoWorkers:
    """The executor of a run with no chunk left to compute: nothing is started (``--ray`` took seconds to find that out)."""

    where = "nothing left to compute, no worker started"
    workers = 0

    def run(
        self, tasks: Sequence[ChunkTask], on_result: OnResult, on_frames: Optional[OnFrames] = None,
        on_failure: Optional[OnFailure] = None, skip: Optional[Skip] = None,
    ) -> None:
        if tasks:
            raise RuntimeError(f"{len(tasks)} chunk(s) to run on no worker")  # a planning bug, not the user's

    def close(self) -> None:
        pass


@dataclass
class VideoPlan:
    """One input: its job, its chunks, and where the chunk files go."""

    name: str
    job: FileJob
    chunks: list[Chunk]
    frames: int
    work_dir: Path
    time_base: Fraction = Fraction(1)  # of the chunks' pts
    done: set[int] = field(default_factory=set)

    @property
    def output(self) -> Path:
        """The output on disk: a video file, or an image sequence's folder (``output_place``)."""
        return output_place(self.job.output.path)

    @property
    def is_folder(self) -> bool:
        """Whether the output is a PNG-sequence folder: told by the job's path (``2024.06.01 talk/``), as a dotted
        name's "extension" (``.01 talk``) is no container."""
        return is_sequence_target(self.job.output.path)

    def chunk_target(self, index: int) -> str:
        """Where chunk ``index`` is written, as the worker's output path (the final output, its trailing ``/`` kept,
        when the video is one chunk)."""
        if len(self.chunks) == 1 and self.chunks[0].start_pts is None:
            return str(self.job.output.path)
        return str(self.work_dir / f"chunk-{index:05d}{self.output.suffix}")

    def chunk_path(self, index: int) -> Path:
        """``chunk_target`` as a path, to look at."""
        return Path(self.chunk_target(index))


class InputsSkipped(SourceError):
    """The end of a run that skipped some inputs (unreadable, damaged) after processing the others: each was said
    as it happened, in a progress line, so a watch, which goes on after such a run, need not say them again."""

    def __init__(self, message: str, inputs: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.inputs = list(inputs)  # the inputs skipped, as given


class StopRequested(Exception):
    """A run abandoned because its ``stop`` event was set (the Python watch's ``stop()``): ended as Ctrl-C ends it,
    from a thread no signal reaches. An ``Exception``, so that a frame callback raising it ends a chunk as a
    ``process_video`` progress function's exception does (its output aborted), and no ``SourceError``, which
    would have the video skipped as damaged and the run go on."""

    def __init__(self) -> None:
        super().__init__("stop requested")


class OutputRefused(SinkError):
    """An output one input cannot have, found while planning it (the colour of HDR video into OpenEXR): that video is
    skipped with a line naming it, as an unreadable one is, and the others go on; a single input's is the run's error."""


class Found(NamedTuple):
    """An input video and the subfolder (under the folder it was found in) its output mirrors."""

    path: Path
    sub: Path = Path()


def expand_inputs(inputs: Sequence[str], out_dir: Optional[Path] = None, *, recursive: bool = False, allow_empty: bool = False) -> list[Found]:
    """Files as given; a folder stands for the video files (and animated WebPs) in it, sorted, and with
    ``recursive`` for those in its subfolders at any depth too. Missing ones fail at once.

    In a folder, hidden files and folders (macOS' ``._clip.mp4`` resource forks, a run's
    ``.clip.partial-*``, the batch's own ``.birefvid-batch``) are not inputs, nor are the outputs
    an earlier batch wrote into ``out_dir`` (its manifest lists them), nor, with ``recursive``,
    anything under ``out_dir`` when it lies inside the folder: with the outputs beside the inputs,
    a rerun would take ``clip.mov`` for a new input that writes ``clip.mov`` too; nor the outputs
    another batch's manifest in the folder or a subfolder lists (an earlier run's ``--output-dir``). A file named on
    its own is always an input. A file found again (a symlink and its target, a file named and in
    a named folder) is one input: the same video processed twice would waste the run or clash.
    No video at all is an error unless ``allow_empty`` (a watch waits for them).
    """
    found: list[Found] = []
    ours = _earlier_outputs(out_dir)
    skip = os.path.realpath(out_dir) if out_dir is not None else None
    for text in inputs:
        if is_url(text):
            raise SourceError(f"batch reads local files and folders (it seeks to split videos); download {text} first, "
                              "or run `birefvid process` on the URL")  # fmt: skip
        p = Path(text)
        _refuse_closed(p)
        if p.is_dir():
            # the folder named may itself hold an earlier batch's outputs (`--output-dir clips/` beside the
            # inputs): a batch of it into another folder took clip.mkv for an input clashing with clip.mp4
            theirs = _earlier_outputs(p) - ours
            if theirs:
                _note_earlier_outputs(p, theirs)
            mine = ours | theirs
            if recursive:
                in_folder = sorted(_tree(p, Path(), frozenset({os.path.realpath(p)}), skip, mine), key=lambda f: f.sub / f.path.name)
            else:
                in_folder = [Found(f) for f in sorted(f for f in p.iterdir() if not f.name.startswith(".") and f.is_file() and _is_video(f) and f.resolve() not in mine)]
                for f in sorted(p.iterdir()):
                    _note_dangling(f)
                _note_subfolders(p, out_dir)
                _note_pictures(p, in_folder, mine)
            found.extend(_without_sound_only_mxf(in_folder))
        elif p.is_file():
            found.append(Found(p))
        else:
            raise SourceError(input_not_found(p))
    if not found and not allow_empty:
        raise SourceError("no video files among the inputs" + _pictures_hint(inputs))
    return _once_each(found)


def _refuse_closed(p: Path) -> None:
    """SourceError where ``p`` cannot be looked at (in a folder closed to this user: another user's home): its
    ``is_dir`` raised PermissionError, a traceback, where the line says which folder and whose it is."""
    from ..users import unreadable_line

    said = unreadable_line(p)  # a missing one: input_not_found says so, with its hints
    if said:
        raise SourceError(said)


def _pictures_hint(inputs: Sequence[str]) -> str:
    """Where a folder given holds still pictures, the command that cuts them out: rembg's `p` and
    transparent-background's `--source DIR` users gave `batch` their photos and were told only 'no video files'."""
    for text in inputs:
        p = Path(text)
        if p.is_dir() and any(f.suffix.lower() in IMAGE_EXTENSIONS | HEIF_EXTENSIONS and f.is_file() for f in p.iterdir()):
            return (f"; {p} holds pictures: `birefvid image {p} -o OUT` cuts out each one, "
                    f"`birefvid process {p} -o OUT` takes them as the frames of one video")  # fmt: skip
    return ""


def _tree(folder: Path, sub: Path, ancestors: frozenset[str], skip: Optional[str], ours: set[Path]) -> Iterator[Found]:
    """The videos under ``folder`` at any depth, with their subfolder; linked folders are followed,
    but not one that leads back to a folder above it (a loop) nor the output folder; a subfolder that
    cannot be read (a drive's lost+found) is passed by with a warning, where it ended the walk in a traceback."""
    try:
        entries = list(folder.iterdir())
    except OSError as e:
        if sub == Path():  # the folder the user named: nothing of it can be read
            raise SourceError(f"cannot read folder {folder}: {e.strerror or e}") from None
        log.warning("%s: not read (%s)", folder, e.strerror or e)
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            real = os.path.realpath(entry)
            if real == skip:
                _note_output_folder(entry, ours)
            elif leads_back_up(real, ancestors):
                log.warning("%s is a link to %s, a folder that holds it: not followed (the search would go round)", entry, real)
            else:
                # another batch's output folder (an earlier --output-dir): its outputs are not new inputs
                theirs = _earlier_outputs(entry) - ours
                if theirs:
                    _note_earlier_outputs(entry, theirs)
                yield from _tree(entry, sub / entry.name, ancestors | {real}, skip, ours | theirs)
        elif entry.is_file() and _is_video(entry) and entry.resolve() not in ours:
            yield Found(entry, sub)
        else:
            _note_dangling(entry)


def _note_dangling(entry: Path) -> None:
    """Warn when ``entry`` is a link named as a video whose target is gone (a moved drive, a deleted clip):
    it was left out without a word, where a zero-byte clip.mp4 is named as unreadable."""
    if not entry.name.startswith(".") and entry.is_symlink() and not entry.exists() and entry.suffix.lower() in VIDEO_EXTENSIONS:
        log.warning("%s is a link to %s, which does not exist: left out", entry, os.readlink(entry))


def _note_output_folder(folder: Path, ours: set[Path]) -> None:
    """Warn when the output folder, left out of a recursive search, holds videos this batch did not
    write: they would otherwise be left out without a word."""
    theirs = sum(1 for f in folder.rglob("*") if f.is_file() and _is_video(f) and f.resolve() not in ours
                 and not any(part.startswith(".") for part in f.relative_to(folder).parts))  # fmt: skip
    if theirs:
        log.warning("%s is the output folder, not searched: %s in it %s not processed; name %s as an input to include %s",
                    folder, f"{theirs} video{'s' if theirs > 1 else ''}", "are" if theirs > 1 else "is",
                    "them" if theirs > 1 else "it", "them" if theirs > 1 else "it")  # fmt: skip


def _note_earlier_outputs(folder: Path, theirs: set[Path]) -> None:
    """Warn that the outputs an earlier batch wrote into ``folder`` (its manifest lists them) are left
    out of a recursive search, so masks of masks are not made without a word."""
    n = sum(1 for f in theirs if f.is_file())
    if n:
        log.warning("%s holds the outputs of an earlier batch (its %s): %s not searched; name %s as an input to include %s",
                    folder, WORK_DIR, f"{n} video{'s' if n > 1 else ''} in it {'are' if n > 1 else 'is'}",
                    "them" if n > 1 else "it", "them" if n > 1 else "it")  # fmt: skip


def _once_each(found: list[Found]) -> list[Found]:
    """Each real file once (by device and inode): a symlink and its target, or a video reached twice,
    keep the name without links in it (else the first), and one warning line says which were dropped."""
    groups: dict[tuple[object, object], list[Found]] = {}
    for f in found:
        st = f.path.stat()
        # a file system that gives no file ids (a Windows network share, st_ino 0) made every input one file
        key = (st.st_dev, st.st_ino) if st.st_ino else ("path", os.path.normcase(os.path.realpath(f.path)))
        groups.setdefault(key, []).append(f)
    keep = {id(next((f for f in group if _unlinked(f.path)), group[0])) for group in groups.values()}
    dropped = [(f, next(k for k in group if id(k) in keep)) for group in groups.values() for f in group if id(f) not in keep]
    if dropped:
        shown = ", ".join(f"{f.path} ({'named twice' if f.path == k.path else f'= {k.path}'})" for f, k in dropped[:3]) + (f" and {len(dropped) - 3} more" if len(dropped) > 3 else "")
        log.warning("%s the same %s as another input (a link, or named twice), processed once: %s",
                    "1 input is" if len(dropped) == 1 else f"{len(dropped)} inputs are", "file" if len(dropped) == 1 else "files", shown)  # fmt: skip
    return [f for f in found if id(f) in keep]


def _unlinked(path: Path) -> bool:
    """True when no part of ``path`` is a symlink: the file's own name, not a link's."""
    return os.path.realpath(path) == os.path.abspath(path)


def _note_subfolders(folder: Path, out_dir: Optional[Path]) -> None:
    """Warn that ``folder``'s subfolders are not searched: their videos would otherwise be left out without a word."""
    skip = out_dir.resolve() if out_dir is not None else None
    subs = sorted(d.name for d in folder.iterdir() if not d.name.startswith(".") and d.is_dir() and d.resolve() != skip and not _only_outputs(d))
    if subs:
        shown = ", ".join(subs[:3]) + (f" and {len(subs) - 3} more" if len(subs) > 3 else "")
        log.warning("%s: %s not searched (%s): batch takes the videos directly in a folder; add --recursive, or name a subfolder as an input, to include it",
                    folder, "1 subfolder is" if len(subs) == 1 else f"{len(subs)} subfolders are", shown)  # fmt: skip


def _only_outputs(folder: Path) -> bool:
    """Whether ``folder`` is an earlier batch's output folder holding no video but the outputs its manifest lists:
    nothing in it is an input, with ``--recursive`` or without, so the "not searched" warning named it as a
    subfolder the user forgot (a batch run twice with ``-o clips/masks`` and ``-o clips/alpha``)."""
    outputs = _earlier_outputs(folder)
    if not outputs:
        return False
    # not into an output's own folder (``--ext png``: a folder of frames each, hundreds of thousands of PNGs stat'ed
    # for a warning) nor a hidden one (the work folder); a name's ending before a stat: a video is rare among them
    for here, subs, files in os.walk(folder):
        subs[:] = [s for s in subs if not s.startswith(".") and Path(here, s).resolve() not in outputs]
        for f in (Path(here, name) for name in files if not name.startswith(".")):
            if f.suffix.lower() in VIDEO_EXTENSIONS | {".webp"} and f.is_file() and _is_video(f) and f.resolve() not in outputs:
                return False
    return True


def _note_pictures(folder: Path, videos: list[Found], outputs: set[Path]) -> None:
    """Warn that the still pictures beside ``folder``'s videos are not read, naming the command that cuts them out, as
    ``image`` names the videos beside its pictures: a shoot's stills and clips in one folder lost the stills unsaid.
    An animated WebP left out as an earlier batch's output (``outputs``, resolved: ``--ext webp`` written beside
    the inputs) is a video, not a picture: a rerun called it one, and sent the user to cut it out with ``image``."""
    taken = {f.path for f in videos}

    def still(f: Path) -> bool:
        return f not in taken and f.is_file() and f.resolve() not in outputs and not _is_video(f)

    pictures = sorted(f.name for f in folder.iterdir() if not f.name.startswith(".") and f.suffix.lower() in IMAGE_EXTENSIONS | HEIF_EXTENSIONS and still(f))
    if pictures and videos:  # none: the run's error says so, with this hint
        shown = ", ".join(pictures[:3]) + (f" and {len(pictures) - 3} more" if len(pictures) > 3 else "")
        count = "1 picture is" if len(pictures) == 1 else f"{len(pictures)} pictures are"
        log.warning("%s: %s not read (%s): batch takes videos; `birefvid image %s -o OUT` cuts out pictures", folder, count, shown, folder)


def _without_sound_only_mxf(found: list[Found]) -> list[Found]:
    """``found`` less the MXF files that hold sound only: OP-Atom keeps each sound channel in an MXF of its own
    (a P2 card's AUDIO/, an Avid MediaFiles folder), beside the picture's; they are the clips' sound, not
    videos that failed. A notice (shown without -v: files left out are no secret) per folder that held them
    says how many were left out, naming that folder (a subfolder under --recursive), not the one given."""
    import av

    def sound_only(path: Path) -> bool:
        try:
            with av.open(str(path)) as c:
                return not c.streams.video and bool(c.streams.audio)
        except (av.FFmpegError, OSError, ValueError):
            return False  # unreadable: an input, reported as such

    dropped = [f for f in found if f.path.suffix.lower() == ".mxf" and sound_only(f.path)]
    folders: dict[Path, int] = {}
    for f in dropped:
        folders[f.path.parent] = folders.get(f.path.parent, 0) + 1
    for folder, n in folders.items():
        log.warning("%s: %d MXF file%s hold%s sound only (OP-Atom, one channel a file) and %s left out", folder, n,
                    "s" if n > 1 else "", "" if n > 1 else "s", "are" if n > 1 else "is", extra=NOTICE)  # fmt: skip
    return [f for f in found if f not in dropped]


def _is_video(path: Path) -> bool:
    """A video file by its extension, or an animated WebP (a still one is an image, not a video)."""
    suffix = path.suffix.lower()
    return suffix in VIDEO_EXTENSIONS or (suffix == ".webp" and is_animated_webp(path))


def check_distinct_outputs(outputs: Sequence[str | Path], inputs: Optional[Sequence[str | Path]] = None, out_dir: Optional[Path] = None) -> None:
    """ConfigError when several inputs would write the same output (``a.mp4`` and ``a.mkv`` both to ``a.mov``):
    refused before any work, since the second would skip or replace the first's. With ``inputs`` (in
    the order of ``outputs``) the error names the inputs of the first clash: in a folder of
    hundreds, the output's name alone leaves the user to find them. With ``out_dir`` outputs are
    compared by their path under it (a recursive batch mirrors subfolders), and an output inside
    another's PNG-sequence folder clashes too."""
    names = [output_key(o, out_dir) if out_dir is not None else output_place(o).name for o in outputs]
    if inputs is not None and out_dir is not None:
        check_name_lengths(outputs, inputs)
        _check_nesting(names, inputs)
    folded = [name_fold(n) for n in names]  # Clip.mov and clip.mov: one file on an exFAT card or a Mac's disk
    why = ""
    if out_dir is not None and len(set(folded)) < len(set(names)) and folds_names(out_dir):
        names, why = [names[folded.index(f)] for f in folded], " (one file on this disk, which does not tell letter case apart)"
    dupes = sorted({n for n in names if names.count(n) > 1})
    if not dupes:
        _check_links_apart(outputs, inputs)
        if inputs is not None:
            _check_no_output_is_an_input(outputs, inputs)
        return
    if inputs is not None:
        clash = [str(i) for i, n in zip(inputs, names) if n == dupes[0]]
        more = f" ({len(dupes) - 1} other output name{'s clash' if len(dupes) > 2 else ' clashes'} too: {', '.join(dupes[1:4])}{', ...' if len(dupes) > 4 else ''})" if len(dupes) > 1 else ""
        raise ConfigError(f"{', '.join(clash[:-1])} and {clash[-1]} would all write {dupes[0]}{more}; rename them or run them apart"
                          if len(clash) > 2 else f"{clash[0]} and {clash[1]} would both write {dupes[0]}{why}{more}; rename one or run them apart")  # fmt: skip
    raise ConfigError(f"several inputs would write the same output {', '.join(dupes)} (inputs with the same name); rename them or run them apart")


def _check_links_apart(outputs: Sequence[str | Path], inputs: Optional[Sequence[str | Path]]) -> None:
    """ConfigError when two outputs of other names lead to one file or folder through a symbolic link (``out/a.mkv``
    and ``out/b.mkv`` both to ``../shared/same.mkv``, or ``out/b.mkv`` to ``a.mkv``): each is written where its link leads, so the last one done replaced
    the other's, exit 0 and one output short."""
    seen: dict[str, int] = {}
    for i, output in enumerate(outputs):
        real = os.path.normcase(os.path.realpath(output_place(output)))  # a link to another output's name clashes too
        if real in seen:
            j = seen[real]
            whose = f" (of {inputs[j]} and {inputs[i]})" if inputs is not None else ""
            raise ConfigError(f"the outputs {output_place(outputs[j])} and {output_place(output)}{whose} lead to one file, {real}, through a symbolic link, and "
                              f"the second written would replace the first; make each link lead to its own file, or remove one")
        seen[real] = i


def _check_no_output_is_an_input(outputs: Sequence[str | Path], inputs: Sequence[str | Path]) -> None:
    """ConfigError when an output leads (through a symbolic link: ``out/b.mkv`` to ``../in/a.mkv``) to another input of
    the batch: with ``--overwrite`` the second video's output was renamed onto the first's input, exit 0, the source gone
    (each plan checks an output against its own input only, and that at its turn, after earlier videos' work)."""
    read = {os.path.normcase(os.path.realpath(i)): i for i in inputs if "://" not in str(i)}
    for output, source in zip(outputs, inputs):
        real = os.path.normcase(os.path.realpath(output_place(output)))
        other = read.get(real)
        if other is not None and str(other) != str(source):
            raise ConfigError(f"the output {output_place(output)} (of {source}) leads to {other}, an input of this batch, "
                              f"through a symbolic link, and writing it would replace that input; make the link lead elsewhere, or remove it")


def check_name_lengths(outputs: Sequence[str | Path], inputs: Sequence[str | Path]) -> None:
    """ConfigError naming the first input whose output name no disk takes (a 252-byte ``clip.ts`` makes
    ``clip.webm``, 255 + 1): before any work, where the run stopped on it in a traceback."""
    for output, source in zip(outputs, inputs):
        too_long = name_too_long(output_place(output))  # a sequence's folder, named after the input
        if too_long:
            raise ConfigError(f"{source} would write {output_place(output).name}, but {too_long}; rename the input or pick a shorter --ext")


def _check_nesting(names: Sequence[str], inputs: Sequence[str | Path]) -> None:
    """ConfigError when one output would lie inside another (``--ext png`` makes ``day1/`` a folder
    of frames, and ``day1/extra.mp4`` of a recursive batch would write into it)."""
    by_name = dict(zip(names, inputs))
    for name, source in zip(names, inputs):
        outer = next((str(parent) for parent in Path(name).parents if str(parent) in by_name), None)
        if outer is not None:
            raise ConfigError(f"{by_name[outer]} would write the folder {outer} and {source} would write {name} inside it; "
                              "rename one or run them apart")  # fmt: skip


def check_not_pattern(output_dir: str | Path) -> None:
    """An image-sequence pattern given as the output folder (``-o out/m.%04d.png``, as ``process`` takes it) is one line:
    it was made a folder of that very name, holding each video's output. ``output_dir`` as typed: a trailing slash
    (``out/m.%04d.png/``) says folder, as in ``process``, and ``Path`` drops it."""
    from ..sequence_names import sequence_pattern

    out_dir = Path(output_dir)
    if out_dir.is_dir():
        return  # a folder of that name already there is the user's to write into
    try:
        pattern = sequence_pattern(output_dir)
    except SinkError:  # a pattern of another picture format, or with two fields: a pattern all the same
        pattern = True  # type: ignore[assignment]
    if pattern:
        ext = batch_extension(pattern.suffix) if isinstance(pattern, tuple) else "png"  # out/m.####.exr: --ext exr
        ext = ext if ext in ("png", *SEQUENCE_NAMES) else "png"
        raise ConfigError(f"{option('output_dir')} {out_dir} is a sequence pattern, as birefvid process -o takes one; batch writes into "
                          f"a folder, and each video's frames into a folder of its name with {option('ext', ext)} "
                          f"({option('output_dir', str(out_dir.parent))} {option('ext', ext)})")  # fmt: skip


def prepare_output_dir(out_dir: Path) -> None:
    """Create ``out_dir`` (and its parents) and make sure this run can write there: a folder under a
    file, a read-only disk or missing permissions are one line before any work, not a traceback."""
    refuse_link_loop(out_dir, option("output_dir"))  # mkdir said 'File exists'
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SinkError(f"cannot create the output folder {out_dir}: {e.strerror or e}") from e
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise SinkError(f"output folder is not writable: {out_dir}")


def output_for(input_path: Path, out_dir: Path, ext: str, sub: Path = Path()) -> str:
    """``DIR/<sub>/<input stem><ext>`` (``sub``: the input's subfolder, mirrored); ``ext`` ``png`` means a PNG-sequence
    folder ``DIR/<sub>/<input stem>/``, its trailing ``/`` kept: ``2024.06.01 talk`` was taken for a ``.01 talk`` file;
    ``tif`` and ``exr`` the same folder as a pattern of the same file names (``DIR/<input stem>/frame_%06d.tif``), whose
    ending ``open_sink`` writes the format by."""
    folder = out_dir / sub
    if ext == "png":
        return f"{folder / input_path.stem}{os.sep}"
    if ext in SEQUENCE_NAMES:
        return str(folder / input_path.stem / SEQUENCE_NAMES[ext])
    return str(folder / f"{input_path.stem}{ext}")


def output_place(output: str | Path) -> Path:
    """What a batch output is on disk: a TIFF or OpenEXR sequence's folder (``clip/`` of ``clip/frame_%06d.tif``), else
    the output's own path (a video file, a PNG folder). The manifest, the done checks and the partials go by it."""
    path = Path(output)
    return path.parent if path.name in SEQUENCE_NAMES.values() else path


def output_key(output: str | Path, out_dir: Path) -> str:
    """An output's name in the batch (its manifest key): its path under ``out_dir`` (``s1/a.mkv``),
    so that outputs of like-named videos in different subfolders stay apart."""
    place = output_place(output)  # a TIFF/EXR sequence by its folder, as a PNG one
    for o, d in ((place, Path(out_dir)), (Path(os.path.abspath(place)), Path(os.path.abspath(out_dir)))):
        try:
            return o.relative_to(d).as_posix()
        except ValueError:
            continue
    return place.name


def _splittable(job: FileJob) -> bool:
    """Whether chunks of this job can be joined: a video container, and no looping background video."""
    if is_sequence_target(job.output.path) or Path(job.output.path).suffix.lower() in (".gif", ".webp", ".apng"):
        return False  # PNG sequences and animated pictures (FFmpeg cannot read animated WebP back): one piece per video
    if job.output.kind == "composite" and job.output.background and Path(job.output.background).is_file():
        from ..extensions import IMAGE_EXTENSIONS

        # a video background plays from its first frame on: each chunk would start it again
        return Path(job.output.background).suffix.lower() in IMAGE_EXTENSIONS
    return True


def plan_video(job: FileJob, out_dir: Path, chunk_frames: Optional[int]) -> VideoPlan:
    """Probe the input and split it into chunks at keyframes (one chunk when it cannot or need not be split)."""
    src = Path(job.source.input)
    name = output_key(job.output.path, out_dir)
    _check_max_size(job)
    _check_sequence(job)
    if is_animated_webp(src):  # read whole, with Pillow: FFmpeg can neither decode nor seek in it
        frames = len(frame_durations(src))
        return VideoPlan(name, job, [Chunk(0, 0, frames)], frames, out_dir / WORK_DIR / name)
    declared = header_frames(src, job.source.video_stream)  # cheap: a short video is not scanned packet by packet
    from ..io.video_source import file_skip, skipped_error

    # a damaged Cluster the demuxer skips, or an MPEG-TS file's lost frames, unsaid: refused now, as process refuses it
    skip = file_skip(src, job.source.video_stream)
    if skip is not None:
        raise skipped_error(src, skip)
    if job.source.decoder == "decord":  # what decord would decode wrongly is refused now, not after a model pass
        open_source(src, "decord", input_colors=job.source.input_colors).close()
    if chunk_frames and _splittable(job) and job.source.decoder == "pyav" and (declared is None or declared > chunk_frames):
        probe = probe_video(src, job.source.video_stream)
        chunks = plan_chunks(probe, chunk_frames, *overlap_for(job))
        frames, time_base = (probe.frames, probe.time_base) if probe else (declared or 0, Fraction(1))
    else:
        chunks, frames, time_base = [Chunk(0, 0, 0)], declared or 0, Fraction(1)
    if len(chunks) == 1:
        chunks = [Chunk(0, 0, frames)]  # read and written whole, exactly as `process` does
    return VideoPlan(name, job, chunks, frames, out_dir / WORK_DIR / name, time_base)


def _check_sequence(job: FileJob) -> None:
    """What ``process`` refuses of a TIFF or OpenEXR sequence of this input, refused while planning (``OutputRefused``),
    not by its worker once the model is loaded, which ended the whole batch: the colour of HDR or log video into
    OpenEXR, and a folder holding files other than the sequence's own (``--ext png``'s frames of an earlier run)."""
    from ..compose.compositor import SINK_KIND
    from ..io.exr import exr_colour
    from ..sequence_names import SYSTEM_FILES, sequence_pattern

    path = job.output.path
    if Path(path).name not in SEQUENCE_NAMES.values():
        return
    pattern = sequence_pattern(path)
    if pattern is None:
        return
    if job.output.overwrite and pattern.folder.is_dir():  # without --overwrite, the folder's being there is refused
        # as ``check_previous_run`` tells them, which the worker's ``open_sink`` would run: a browser's files and a
        # Mac's ``._`` companions of the frames are the sequence's
        foreign = sorted(p.name for p in pattern.folder.iterdir() if not pattern.matches(p.name) and p.name not in SYSTEM_FILES
                         and not (p.name.startswith("._") and pattern.matches(p.name[2:])))  # fmt: skip
        if foreign:
            raise OutputRefused(f"{job.source.input}: its output folder {pattern.folder} holds files other than {pattern.shown} "
                                f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}), which a sequence's folder does not "
                                f"replace; remove the folder, or write to another {option('output_dir')}")  # fmt: skip
    if pattern.suffix != ".exr" or SINK_KIND[job.output.kind] == "mask":
        return  # a matte is no colour: any input's goes to OpenEXR
    with open_source(job.source.input, job.source.decoder, fps=job.source.fps, video_stream=job.source.video_stream,
                     input_colors=job.source.input_colors) as source:  # fmt: skip
        info = source.info  # as the input is, before HDR is shown as SDR to the sequence
    try:
        exr_colour(info, job.source.input)  # the line names the input, not its output's pattern
    except SinkError as exc:
        raise OutputRefused(str(exc)) from None


def _check_max_size(job: FileJob) -> None:
    """A --max-size too small for this input is refused while planning (ConfigError), as ``process``
    refuses it, not by the worker after the batch has started and written its manifest."""
    if job.source.max_size is None:
        return
    with open_source(job.source.input, job.source.decoder, fps=job.source.fps, video_stream=job.source.video_stream) as source:
        scaled_size(source.info.width, source.info.height, job.source.max_size)


def run_batch(
    jobs: Sequence[FileJob], out_dir: Path, executor_factory: Callable[[], Executor], progress: BatchProgress, *, chunk_frames: Optional[int] = DEFAULT_CHUNK_FRAMES
) -> dict[str, Any]:
    """Run every job (one per input video) into ``out_dir``; returns the progress totals."""
    out_dir = Path(out_dir)
    check_whole_videos(jobs)
    check_distinct_outputs([j.output.path for j in jobs], [j.source.input for j in jobs], out_dir)
    lock = RunLock(out_dir)
    lock.acquire()
    try:
        return run_locked(jobs, out_dir, executor_factory, progress, chunk_frames)
    finally:
        lock.release()


def check_whole_videos(jobs: Sequence[FileJob]) -> None:
    """ConfigError for a job a batch cannot run: a time range (start/end) or extra outputs (``also``)."""
    trimmed = [j.source.input for j in jobs if j.source.trimmed]
    if trimmed:
        raise ConfigError(f"batch processes whole videos; {trimmed[0]} has a time range (start/end): use birefvid process for a part")
    if any(j.also for j in jobs):  # its chunks, joins and manifest know one output a video
        raise ConfigError(f"batch writes one output a video; {option('also')} is for birefvid process (process_video)")


def run_locked(
    jobs: Sequence[FileJob], out_dir: Path, executor_factory: Callable[[], Executor], progress: BatchProgress, chunk_frames: Optional[int],
    *, in_watch: bool = False, note_leftovers: bool = True, stop: Optional[threading.Event] = None,
) -> dict[str, Any]:
    """``run_batch`` once it holds the output folder's lock.

    ``stop``: once set, the next frames a chunk reports raise ``StopRequested``, and the run ends as a signal ends it.

    ``in_watch``: a run of a watch (``birefvid.batch.watch``), which runs one after another under one lock: a bad
    input is skipped even when it is the only one (the watch goes on), and the executor, which keeps the model
    loaded, is left open after a run that ends normally (closed, as always, when a run is stopped or fails, so
    no Ray worker writes on). ``note_leftovers``: name what killed runs left (once a watch is enough).
    """
    alone = len(jobs) == 1 and not in_watch  # a single input's damage is the run's error
    manifest = Manifest(out_dir)
    running = RunningChunk(out_dir / WORK_DIR)
    left = running.take_left_behind()  # the chunk a killed run was cutting out (the OOM killer's victim?)
    plans, todo = [], []
    unreadable: list[tuple[str, str]] = []  # (input, why): skipped so one bad file does not stop the folder
    refused: set[str] = set()  # of those, inputs readable but refused the output asked for (HDR colour into OpenEXR)
    killing: dict[str, str] = {}  # video name -> why: skipped this time, runs were killed on it again and again
    for job in jobs:
        finished = _finished_plan(manifest, job, out_dir)
        if finished is not None:
            plans.append(finished)
            continue
        try:
            plan = plan_video(job, out_dir, chunk_frames)
        except (SourceError, OutputRefused) as exc:
            if alone:
                raise
            unreadable.append((job.source.input, str(exc)))
            if isinstance(exc, OutputRefused):
                refused.add(job.source.input)
            continue
        # `--output-dir` the inputs' own folder with their extension: the joined chunks were renamed over the input
        check_replaces_no_input(plan.output, [job.source.input, job.output.background])
        chunking = {"chunks": [c.to_dict() for c in plan.chunks]}
        fp = fingerprint(job.to_dict(), job.source.input, chunking)
        # --overwrite replaces outputs that are out of date or not this batch's; a video finished with
        # this very job is kept even so: redoing it gives the same file, and an interrupted --overwrite
        # run rerun as it was typed would otherwise start over on every video, never to finish
        made_before = plan.name in manifest.videos  # an output of this batch, not someone else's file
        before = manifest.videos.get(plan.name)
        spec = job.to_dict()
        also, older_job_fps, recoloured = _earlier_fingerprints(job, spec, chunking, before)
        entry = manifest.entry(plan.name, fp, {"input": job.source.input, "input_path": os.path.realpath(job.source.input),
                                               "output": str(plan.output), "chunks": len(plan.chunks), "output_before": _identity(plan.output)},
                               also=also, job_fp=fingerprint(spec, job.source.input, {}), older_job_fps=older_job_fps)  # fmt: skip
        plans.append(plan)
        if entry["status"] == "done" and plan.output.exists():
            continue
        if left is not None and left[0] == plan.name and _killed_again(job.source.input, *left[1:]):
            killing[plan.name] = f"the last {left[2]} runs were killed while cutting it out (out of memory?); the next rerun tries it again"
            continue
        if (entry is before and plan.output.exists() and not job.output.overwrite
                and "output_before" in entry and entry["output_before"] != _identity(plan.output)):
            # not the file that was there when this job was planned: made by a run of this very job that was
            # killed (SIGKILL, a Ray worker finishing as its driver died) after the output was renamed into
            # place but before the manifest said so; made again
            plan.job = job = replace(job, output=replace(job.output, overwrite=True))
        elif made_before and plan.output.exists() and not job.output.overwrite:
            _refuse_stale(plan.output, job.source.input, before, recoloured)
        _check_output(plan.output, overwrite=job.output.overwrite, is_dir=plan.is_folder)  # before any work
        if not plan.output.exists():
            # this run's to write: one that appears meanwhile comes from the Ray workers of a run killed
            # just before (they finish their chunk as their driver dies), and must not end this one
            plan.job = job = replace(job, output=replace(job.output, overwrite=True))
        plan.done = {c.index for c in plan.chunks if manifest.is_chunk_done(plan.name, c.index) and plan.chunk_path(c.index).exists()}
        todo.append(plan)
    manifest.save()
    unmade = _folders_not_there(todo, out_dir)  # the output subfolders this run may make (a recursive batch's mirror)
    # every chunk done already (a rerun of a finished batch, or only joins left): no executor, so no Ray start-up (seconds)
    executor = executor_factory() if any(len(p.done) < len(p.chunks) for p in todo) else NoWorkers()
    if isinstance(executor, LocalExecutor):  # a Ray worker's death is Ray's to see (WorkerDied)
        executor.running = running
        executor.stop = stop  # a watch's stop() is not kept waiting by the model's load
    tasks: list[ChunkTask] = []
    by_name = {p.name: p for p in todo}
    try:
        progress.start(len(plans), sum(len(p.chunks) for p in plans), sum(p.frames for p in plans), executor.workers, executor.where)
        for source, why in unreadable:
            progress.unreadable_video(source, why)
        pending = {p.name for p in todo}
        for plan in plans:
            if plan.name in killing:
                progress.failed_video(plan.name, plan.job.source.input, killing[plan.name])
            elif plan.name not in pending:
                progress.skipped_video(plan.name, plan.frames, len(plan.chunks))
        for plan in todo:
            for chunk in plan.chunks:
                if chunk.index in plan.done:
                    progress.skipped_chunk(plan.name, chunk.index, chunk.frames)
                else:
                    tasks.append(_task(plan, chunk))
            if len(plan.done) == len(plan.chunks):
                _finish_video(plan, manifest, progress)  # every chunk done earlier; the join was interrupted

        def on_result(task: ChunkTask, result: dict[str, Any]) -> None:
            plan = by_name[task.video]
            index = task.chunk["index"]
            plan.done.add(index)
            if len(plan.chunks) == 1:  # read whole: its planned count was the header's estimate (an MPEG-TS joined
                # from pieces declared 101 frames for 100, so the progress stopped at 100/101 and the manifest said 101)
                progress.recount(plan.frames, result["frames"])
                plan.frames = result["frames"]
            manifest.chunk_done(plan.name, index, result["frames"])
            progress.chunk_done(plan.name, index, result["frames"], result["seconds"], result.get("worker"))
            if len(plan.done) == len(plan.chunks):
                _finish_video(plan, manifest, progress)

        failed: dict[str, str] = {}  # video name -> why: damage found while a chunk decoded
        died: set[str] = set()  # of those, videos whose chunk killed its Ray worker every time

        def on_failure(task: ChunkTask, exc: SourceError) -> None:
            if alone:
                raise exc  # nothing else to go on with: the error is the run's
            if isinstance(exc, WorkerDied):
                remove_partials(output_place(task.path), is_dir=is_sequence_target(task.path), ours=not task.whole,
                                killed=True)  # what the dead worker was writing
            if task.video not in failed:
                failed[task.video] = str(exc)
                if isinstance(exc, WorkerDied):
                    died.add(task.video)
                progress.failed_video(task.video, by_name[task.video].job.source.input, str(exc))

        def on_frames(task: ChunkTask, frames: int) -> None:
            if stop is not None and stop.is_set():
                raise StopRequested()  # from the chunk's progress: its output is aborted, as an interrupt's is
            progress.running(task.video, task.chunk["index"], frames)

        if hasattr(executor, "on_retry"):  # a Ray run's chunk tried again on another worker: said, as a chunk_retried event
            executor.on_retry = lambda task, why: progress.retried_chunk(task.video, task.chunk["index"], why)
        executor.run(tasks, on_result, on_frames, on_failure=on_failure, skip=lambda task: task.video in failed)
    except BaseException as exc:
        try:
            executor.close()
        finally:
            _drop_unfinished(tasks, by_name, killed=True)  # stopped midway (SIGTERM, Ctrl-C, an error): Ray workers killed mid-write leave theirs
            for plan in todo:  # the folders made for chunks never begun: empty, they looked like work in progress
                _remove_empty_work_dir(plan, manifest)
            _remove_if_empty(unmade)  # a subfolder made for an output never written (a full disk) looked like output
            progress.stopped(_why_stopped(exc))
        if isinstance(exc, ClusterLost):  # one line that says what is kept: which videos are done, and that a rerun resumes
            raise ClusterLost(f"{exc}; {_done_so_far(plans, manifest)}, a rerun of the same command resumes "
                              f"(finished chunks are kept)") from None  # fmt: skip
        raise
    if not in_watch:
        executor.close()
    # a skipped video's chunk whose worker died after renaming it: kept its folder. No worker was killed here (each that
    # died was cleaned up after as it failed): a live `process` run writing a skipped video's output is not waited for
    _drop_unfinished(tasks, by_name, killed=False)
    for plan in todo:  # a video skipped on its first chunks (damaged, its worker dead) left its chunk folder empty
        _remove_empty_work_dir(plan, manifest)
    _remove_if_empty(unmade)  # and the output subfolder made for it
    summary = progress.finish()
    if note_leftovers:
        note_stale_partials(out_dir, manifest.videos)  # what killed runs left, of any video (this run's own are removed as each finishes)
    inputs = {p.name: p.job.source.input for p in plans}
    _report_skipped(len(jobs), len(plans), unreadable, [(inputs[name], why) for name, why in (failed | killing).items()],
                    {inputs[name] for name in died}, {inputs[name] for name in killing}, earlier=progress.videos_skipped, refused=refused)  # fmt: skip
    return summary


def _done_so_far(plans: list[VideoPlan], manifest: Manifest) -> str:
    """'2 of 5 videos done (a.mkv, b.mkv)': those the manifest has done, by name up to ``NAMED_DONE``."""
    done = [p.name for p in plans if manifest.videos.get(p.name, {}).get("status") == "done"]
    named = ", ".join(done[:NAMED_DONE]) + (f" and {len(done) - NAMED_DONE} more" if len(done) > NAMED_DONE else "")
    return f"{len(done)} of {len(plans)} video{'s' if len(plans) != 1 else ''} done" + (f" ({named})" if done else "")


NAMED_DONE = 5


def _killed_again(source: str, chunk: int, kills: int) -> bool:
    """Say that runs were killed while cutting out chunk ``chunk`` of ``source``; True once that is ``KILLS_TO_SKIP`` in a row."""
    where = f"{source} (chunk {chunk})"
    if kills >= KILLS_TO_SKIP:
        log.warning("the last %d runs were killed while cutting out %s, out of memory perhaps (`dmesg` names the OOM killer): "
                    "it is skipped this time so the others get done, and tried again on the next rerun", kills, where)  # fmt: skip
        return True
    log.warning("the last run was killed while cutting out %s, out of memory perhaps (`dmesg` names the OOM killer): trying it again", where)
    return False


def _identity(path: Path) -> Optional[list[int]]:
    """Which file ``path`` is (inode, size, mtime), or None when there is none: a rename into place changes it."""
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def _earlier_fingerprints(job: FileJob, spec: dict[str, Any], chunking: dict[str, Any],
                          recorded: Optional[dict[str, Any]]) -> tuple[tuple[str, ...], tuple[str, ...], bool]:  # fmt: skip
    """``Manifest.entry``'s ``also`` and ``older_job_fps``: the fingerprints earlier versions recorded for this very
    work; and whether ``recorded`` (the video's entry) was made by a version without ``--input-colors`` from a video
    this one reads otherwise (untagged HD, read as BT.601 then and as BT.709 now), which makes its output out of date.

    An entry of those versions counts as this work where the video is read as they read it (SD, or a matrix of its
    own): a batch begun before the option keeps those videos and their finished chunks. Untagged HD's chunks are
    redone, so that all of a video's chunks are read with one matrix. The video is opened for it once, for such an
    entry only: the next run finds it under this version's fingerprint."""
    source = job.source.input
    also, job_fps = older_fingerprints(spec, source, chunking), older_fingerprints(spec, source, {})
    old = before_input_colors(spec)
    if recorded is None or old is None:
        return also, job_fps, False
    old_fps = (fingerprint(old, source, chunking), *older_fingerprints(old, source, chunking))
    old_job_fps = (fingerprint(old, source, {}), *older_fingerprints(old, source, {}))
    if recorded.get("fingerprint") not in old_fps and recorded.get("job_fingerprint") not in old_job_fps:
        return also, job_fps, False
    if not _read_as_before(job):
        return also, job_fps, True
    return also + old_fps, job_fps + old_job_fps, False


def _read_as_before(job: FileJob) -> bool:
    """Whether ``--input-colors auto`` reads ``job``'s video as versions without the option did: no matrix assumed
    (SD as BT.601, or the video's own tag), or decord, which still reads untagged video as BT.601 whatever its size."""
    if job.source.decoder == "decord":
        return True
    from ..io.video_source import VideoFileSource

    with VideoFileSource(job.source.input, video_stream=job.source.video_stream) as probe:
        return probe.assumed_matrix is None


def _finished_plan(manifest: Manifest, job: FileJob, out_dir: Path) -> Optional[VideoPlan]:
    """The plan of a video this very job finished in an earlier run, from the manifest, or None.

    Not probed again: a rerun to resume thousands of videos read every long one's packets first
    (0.3 s a 10-minute video) before the first unfinished one started. Only the job matters for a
    finished video, not how it was chunked (``Manifest.entry``).
    """
    name = output_key(job.output.path, out_dir)
    entry = manifest.videos.get(name)
    if not entry or entry.get("status") != "done" or not output_place(job.output.path).exists():
        return None
    spec = job.to_dict()
    try:
        same = entry.get("job_fingerprint") in (fingerprint(spec, job.source.input, {}), *older_fingerprints(spec, job.source.input, {}))
    except OSError:
        return None  # the input is gone: planning says so
    if not same:
        return None
    frames, chunks = int(entry.get("frames", 0)), max(1, int(entry.get("chunks", 1)))
    return VideoPlan(name, job, [Chunk(i, 0, 0) for i in range(chunks)], frames, out_dir / WORK_DIR / name)


def _why_stopped(exc: BaseException) -> str:
    """What ended a run early, in the words of its exit line: 'terminated' (SIGTERM), 'hung up', 'interrupted', or the error."""
    import signal

    from ..errors import stopped_by

    signum = stopped_by(exc)
    if signum is not None:
        return "terminated" if signum == signal.SIGTERM else "hung up"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return str(exc) or type(exc).__name__


def _refuse_stale(output: Path, source: str, before: Optional[dict[str, Any]] = None, recoloured: bool = False) -> None:
    """SinkError for an output an earlier batch made with other options, or from an input changed
    since: 'output exists' alone read as if someone else's file were in the way. Made from another
    input (``a.mov`` run apart from ``a.mp4``, as the clash error advises), the line names it: 'other
    options' sent the user to --overwrite, which replaced the other video's output."""
    if recoloured:
        raise SinkError(f"{output} was made by a birefvid that read untagged HD video as BT.601, which players show as BT.709 "
                        f"(saturated colours up to 40 levels off); {option('overwrite', True)} redoes it (and the others out of "
                        f"date: the videos that were read as now are kept), or write to another output folder to keep both")  # fmt: skip
    other = (before or {}).get("input_path")
    if other and other != os.path.realpath(source):
        raise SinkError(f"{output} was made by an earlier batch from {other}, not from {source}; write {source} to another output folder "
                        f"({option('overwrite', True)} would replace the other video's output)")  # fmt: skip
    raise SinkError(f"{output} was made by an earlier batch with other options, or from an input that has changed since; "
                    f"{option('overwrite', True)} redoes it (and the others out of date; those already made with these options are kept), or write to another output folder to keep both")  # fmt: skip


def _report_skipped(inputs: int, planned: int, unreadable: list[tuple[str, str]], failed: list[tuple[str, str]], died: Optional[set[str]] = None,
                    killing: Optional[set[str]] = None, *, earlier: int = 0, refused: frozenset[str] | set[str] = frozenset()) -> None:
    """One SourceError line for the inputs skipped along the way (exit code 2), after the rest were processed
    (or, ``earlier`` of them, found done by an earlier run: a rerun said it had processed videos it only skipped).
    ``refused``: those of ``unreadable`` that were read, and refused the output asked for (``OutputRefused``)."""
    if not unreadable and not failed:
        return
    skipped = unreadable + failed
    names = ", ".join(source for source, _ in skipped[:3]) + (f" and {len(skipped) - 3} more" if len(skipped) > 3 else "")
    what = []
    not_read = sum(1 for source, _ in unreadable if source not in refused)
    if not_read:
        what.append(f"{not_read} not {'a readable video' if not_read == 1 else 'readable videos'}")
    if len(unreadable) > not_read:
        what.append(f"{len(unreadable) - not_read} whose output was refused")
    died, killing = died or set(), killing or set()
    gone = sum(1 for source, _ in failed if source not in died | killing and not Path(source).exists())  # deleted or moved while the batch ran: not damaged
    if len(failed) > gone + len(died) + len(killing):
        what.append(f"{len(failed) - gone - len(died) - len(killing)} damaged midway")
    if gone:
        what.append(f"{gone} removed during the run")
    if died:
        what.append(f"{len(died)} whose Ray worker died every time")
    if killing:
        what.append(f"{len(killing)} that the last runs were killed on")
    raise InputsSkipped(f"{len(skipped)} of {inputs} inputs were skipped ({' and '.join(what)}): {names} "
                      f"({_the_others(planned - len(failed) - earlier, earlier)}the progress lines say why each was skipped)", [source for source, _ in skipped])  # fmt: skip


def _the_others(done: int, earlier: int) -> str:
    """What became of the inputs not skipped, for ``_report_skipped``: processed now, or done in an earlier run."""
    if not done and not earlier:
        return ""
    if not earlier:
        return f"{'the other one was' if done == 1 else f'the other {done} were'} processed; "
    if not done:
        return f"{'the other one was' if earlier == 1 else f'the other {earlier} were'} done in an earlier run, nothing was left to do; "
    return f"of the other {done + earlier}, {done} {'was' if done == 1 else 'were'} processed and {earlier} done in an earlier run; "


def _task(plan: VideoPlan, chunk: Chunk) -> ChunkTask:
    """The task for one chunk; chunk files always overwrite (a leftover is never a finished chunk)."""
    job = plan.job
    if len(plan.chunks) > 1:
        plan.work_dir.mkdir(parents=True, exist_ok=True)
        job = replace(job, output=replace(job.output, overwrite=True))
    return ChunkTask(plan.name, job.to_dict(), chunk.to_dict(), plan.chunk_target(chunk.index), crash_hook_for(job.source.input, chunk.index))


def _finish_video(plan: VideoPlan, manifest: Manifest, progress: BatchProgress) -> None:
    """Join the chunk files (when split), record the video as done, remove its chunk files and leftovers."""
    if len(plan.chunks) > 1:
        parts = [plan.chunk_path(c.index) for c in plan.chunks]
        missing = [p for p in parts if not p.exists()]
        if missing:
            raise SinkError(f"chunk file {missing[0]} is missing; rerun to redo it")
        make_folder(plan.output.parent)
        audio = plan.job.source.input if plan.job.output.audio else None
        if plan.output.exists() and not plan.job.output.overwrite:
            raise SinkError(f"output exists: {plan.output} (use {option('overwrite', True)})")
        shifts = [chunk_shift(p, c) * plan.time_base for p, c in zip(parts, plan.chunks)]
        subtitles = plan.job.source.input if plan.job.output.subtitles else None
        join_chunks(parts, plan.output, audio_from=audio, expected_frames=plan.frames, shifts=shifts,
                    subtitles_from=subtitles, chapters_from=plan.job.source.input, source_time_base=plan.time_base)  # fmt: skip
    manifest.video_done(plan.name, plan.frames)
    shutil.rmtree(plan.work_dir, ignore_errors=True)
    _remove_emptied_parents(plan, manifest)
    remove_partials(plan.output, is_dir=plan.is_folder)  # from a worker killed mid-write
    progress.video_done(plan.name, str(plan.output))


def _remove_emptied_parents(plan: VideoPlan, manifest: Manifest) -> None:
    """Remove the folders above ``plan``'s work folder in the work tree that are now empty (a subfolder's video)."""
    for parent in plan.work_dir.relative_to(manifest.path.parent).parents:
        if str(parent) != ".":
            with contextlib.suppress(OSError):
                (manifest.path.parent / parent).rmdir()


def _drop_unfinished(tasks: list[ChunkTask], plans: dict[str, VideoPlan], *, killed: bool) -> None:
    """Remove what the tasks not recorded as done left: partial files, and a chunk file renamed into place as its
    worker was killed or died, never recorded (the rerun redoes that chunk; kept, it held its chunk folder). ``killed``:
    the run was stopped and killed its workers, whose locks on whole outputs are waited for (``KILLED_WRITER_SECONDS``);
    at a normal end a held one is another run's, left at once: the wait made a batch that skipped a damaged video
    end 5 s late while a `process` run wrote that video's output name."""
    for task in tasks:
        if task.chunk["index"] not in plans[task.video].done:
            remove_partials(output_place(task.path), is_dir=is_sequence_target(task.path), ours=not task.whole, killed=killed)
            if not task.whole:  # a whole video's output is not this run's to remove
                Path(task.path).unlink(missing_ok=True)


def _folders_not_there(plans: Sequence[VideoPlan], out_dir: Path) -> list[Path]:
    """The folders between ``out_dir`` and each plan's output that do not exist yet, deepest first: the ones a
    recursive batch makes as each video starts (``make_folder``), in this process or on a worker."""
    missing: set[Path] = set()
    for plan in plans:
        for folder in plan.output.parents:
            if folder == out_dir or out_dir not in folder.parents or folder.exists():
                break
            missing.add(folder)
    return sorted(missing, key=lambda f: len(f.parts), reverse=True)


def _remove_if_empty(folders: Sequence[Path]) -> None:
    """Remove those of ``folders`` (made by this run, deepest first) that hold nothing: a run stopped by a full disk,
    or a video skipped, left ``out/s2/`` made for an output never written, which looked like output. ``rmdir``
    removes only an empty folder, so nothing written there (by this run or anyone) goes."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _remove_empty_work_dir(plan: VideoPlan, manifest: Manifest) -> None:
    """Remove ``plan``'s chunk folder when a run (stopped, or ended with the video skipped) leaves nothing in it (no
    chunk finished), and the folders above it it empties; one holding finished chunks stays, for the rerun to resume from."""
    with contextlib.suppress(OSError):  # not made (one piece), or not empty: kept
        plan.work_dir.rmdir()
        _remove_emptied_parents(plan, manifest)


# seconds a stopped run waits for the workers it killed to let go of the partial files they held (their writer_lock)
KILLED_WRITER_SECONDS = 5.0


def _let_go(path: Path, seconds: float) -> bool:
    """Whether ``path``'s writer_lock is free, waiting up to ``seconds`` for a writer this run killed to end."""
    if being_written(path) and not os.access(path, os.R_OK):
        return False  # another user's, whose lock this user cannot test: a wait for it to let go was spent whole, for nothing
    deadline = time.monotonic() + seconds
    while being_written(path):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def remove_partials(target: Path, *, is_dir: bool = False, ours: bool = False, killed: bool = False) -> None:
    """Remove the temporary files and folders (``.NAME.partial-*``) that writers of ``target`` (a folder: ``is_dir``) left.

    An output named by a symbolic link is written where the link leads, its temporary entry beside that and named after
    it (``through_link``, as ``leftovers.partials_beside`` looks for them): looked for beside the link, under the link's
    name, a killed writer's file was never removed. An entry of that name that is itself a link is no writer's (they
    make files and folders), so it is left, and nothing it leads to is touched. One a live writer holds (``being_written``:
    a ``birefvid process`` or another batch's worker writing the same name now) is its work in progress, not a
    leftover: removing it lost that run's output at its commit ("No such file or directory"). ``ours``: a chunk file in this run's own work folder, which no other run
    writes (the batch lock), removed whatever holds it: a worker this run killed may hold it a moment longer (a SIGTERM's
    stop left its half-written chunk file behind). ``killed``: an output this run's killed worker was writing, whose
    lock is waited for a few seconds."""
    target = through_link(Path(target))
    # as AtomicFile and AtomicFolder name them (a long name cut short): a folder's whole name, a file's stem
    prefix = partial_prefix(target.name) if is_dir else partial_prefix(target.stem, target.suffix)
    for leftover in target.parent.glob(f"{glob.escape(prefix)}*"):  # `clip [1].mov` is no pattern
        if leftover.is_symlink() or not (ours or _let_go(leftover, KILLED_WRITER_SECONDS if killed else 0.0)):
            continue
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
            continue
        try:
            leftover.unlink(missing_ok=True)
        except PermissionError:
            # another user's, in a sticky folder (/tmp, a shared drop folder): only they may remove it. It ended
            # the batch with a traceback (exit 1) after the video was written, before it was recorded as done
            log.warning("cannot remove %s, a partial file a killed run left: %s", leftover,
                        "it belongs to another user, who can" if _owned_by_other(leftover) else "permission denied")  # fmt: skip


def _owned_by_other(path: Path) -> bool:
    try:
        return hasattr(os, "geteuid") and os.lstat(path).st_uid != os.geteuid()
    except OSError:
        return False


def _check_output(output: Path, *, overwrite: bool, is_dir: bool) -> None:
    """``check_target`` for an output whose subfolder a recursive batch has yet to create: the
    nearest folder that exists must be one this run can write into."""
    folder = output.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if folder == output.parent:
        check_target(output, overwrite=overwrite, is_dir=is_dir)
    elif not folder.is_dir():
        raise SinkError(f"cannot write {output}: {folder} is a file, not a folder")
    elif not os.access(folder, os.W_OK | os.X_OK):
        raise SinkError(f"output folder is not writable: {folder}")


def executor_for(job: FileJob, ray: Optional[str], *, workers: Optional[int] = None, cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0) -> Callable[[], Executor]:
    """A factory for the executor: here, one chunk after another (``ray`` None), or Ray actors at ``ray``."""

    def make() -> Executor:
        if ray is None:
            from .local import LocalExecutor

            return LocalExecutor(job)
        from .ray_executor import RayExecutor

        return RayExecutor(job, ray, workers=workers, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker)

    return make


def check_output_format(job: FileJob) -> None:
    """The output's container and encoding options fit its kind (``--ext .mp4`` for alpha, ``--crf`` on a PNG folder):
    refused before the output folder and its manifest are made, where the first chunk refused it after them and the
    line promised that a rerun of the same command would resume."""
    from ..compose.compositor import SINK_KIND
    from ..io.factory import check_sink_options

    out = job.output
    check_sink_options(out.path, SINK_KIND[out.kind], codec=out.codec, pix_fmt=out.pix_fmt, crf=out.crf, bitrate=out.bitrate, preset=out.preset)


def check_background(background: str | None) -> None:
    """A --background that is neither a colour nor a file fails here, not on every worker after its model loads."""
    from ..colors import is_color, parse_color
    from ..errors import SourceError

    if background is not None and is_color(background):
        parse_color(background)  # a see-through colour ('255,255,255,0') is refused here too
    if background is not None and not is_color(background) and Path(background).is_dir():
        raise SourceError(f"background {background} is a folder; give an image or video file, or a colour")
    if background is not None and not is_color(background) and not Path(background).is_file():
        raise SourceError(f"background not found: {background} (expected a colour such as '#00ff00', 'green' or '0,255,0', or an image or video file)")


def batch_videos(
    inputs: Sequence[str | Path],
    output_dir: str | Path,
    *,
    ext: Optional[str] = None,
    recursive: bool = False,
    ray: Optional[str] = None,
    workers: Optional[int] = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    chunk_frames: Optional[int] = DEFAULT_CHUNK_FRAMES,
    progress: Optional[BatchProgress] = None,
    **options: Any,
) -> dict[str, Any]:
    """``birefvid batch`` from Python: every input video into ``output_dir``; returns the totals.

    ``options`` are ``birefvid.api.build_file_job``'s keywords (kind, model, resolution, smooth,
    codec, overwrite, ...); ``recursive``: folders' subfolders too, mirrored under ``output_dir``;
    ``ray``: None (here), "local", "auto" or "ray://HOST:10001"; ``ext``: as ``--ext`` (``.mkv``, ``mkv``; ``png``, ``tif``
    or ``exr``, with a dot or not: a folder of PNG, TIFF or OpenEXR frames each).
    """
    from ..api import build_file_job

    out_dir = Path(output_dir)
    check_not_pattern(output_dir)
    suffix = batch_extension(ext) if ext else DEFAULT_EXT[options.get("kind", "alpha")]  # ".png" and "MKV" as the command takes them
    found = expand_inputs([str(i) for i in inputs], out_dir, recursive=recursive)
    jobs = [build_file_job(f.path, output_for(f.path, out_dir, suffix, f.sub), **options) for f in found]
    check_distinct_outputs([j.output.path for j in jobs], [j.source.input for j in jobs], out_dir)  # before the folder is made
    check_background(options.get("background"))  # as the command does: before any worker loads a model
    check_output_format(jobs[0])
    prepare_output_dir(out_dir)
    watch = progress or BatchProgress(quiet=True)
    try:
        factory = executor_for(jobs[0], ray, workers=workers, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker)
        return run_batch(jobs, out_dir, factory, watch, chunk_frames=chunk_frames)
    finally:
        if progress is None:
            watch.close()
