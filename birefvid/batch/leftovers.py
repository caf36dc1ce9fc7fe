"""Temporary files (``.NAME.partial-*``) that killed writers left beside a batch's outputs, named once so they do not pile up unseen.

A run killed outright (SIGKILL, the OOM killer) cannot remove what it was writing; the file stayed,
hidden, until that very video was rerun. They are named, not removed: the run lock proves only that
no other batch *driver* writes here, not that nothing does (the Ray workers of a driver killed a
moment ago finish their chunk; a ``birefvid process`` run may write the same name), and deleting a
file a live writer is filling would lose its work. A live writer's own partial (``AtomicFile`` and ``AtomicDir`` hold an
``flock`` on it, ``atomic.being_written``) is left out of these lists, and ``runner.remove_partials`` never removes it.
"""

from __future__ import annotations

import logging
import os
import shlex
import stat
from pathlib import Path
from typing import Iterable

from ..io.atomic import being_written, partial_prefix, through_link
from ..sequence_names import sequence_folder
from ..users import user_name
from .manifest import WORK_DIR

log = logging.getLogger(__name__)

SHOWN = 3  # leftovers named in the warning; the rest are counted


def stale_partials(out_dir: Path, outputs: Iterable[str]) -> list[Path]:
    """The ``.NAME.partial-*`` entries beside ``outputs`` (names under ``out_dir``, as the manifest keys them)
    and under the batch's work folder (chunk files), sorted. Each folder is listed once: globbing per output
    read a 10,000-video folder 10,000 times."""
    out_dir = Path(out_dir)
    found = partials_beside(out_dir / name for name in outputs)
    work = out_dir / WORK_DIR
    if work.is_dir():
        found.extend(p for p in work.rglob(".*.partial-*"))
    return sorted({p for p in found if not being_written(p)})


def partials_beside(targets: Iterable[Path]) -> list[Path]:
    """The ``.NAME.partial-*`` entries beside each of ``targets`` (a video file, a picture folder or its pattern), sorted."""
    wanted: dict[Path, set[tuple[str, str]]] = {}
    for target in targets:
        # where the writer made them: beside the folder a pattern (out/matte.%04d.png) fills, and beside what a link
        # leads to, named after that (AtomicFile and AtomicDir follow a link named as the output)
        target = through_link(sequence_folder(Path(target)))
        marks = wanted.setdefault(target.parent, set())
        marks.add((partial_prefix(target.stem, target.suffix), target.suffix))  # a file's: ``.NAME.partial-XXXX.mov``
        marks.add((partial_prefix(target.name), ""))  # a PNG-sequence folder's, its whole name (``.2024.06.01 talk.partial-XXXX``)
    found: list[Path] = []
    for folder, marks in wanted.items():
        try:
            names = [e.name for e in os.scandir(folder) if e.name.startswith(".") and ".partial-" in e.name]
        except OSError:
            continue  # a subfolder not made yet, or gone
        found.extend(folder / n for n in names if any(n.startswith(p) and n.endswith(s) for p, s in marks))
    return sorted({p for p in found if not being_written(p)})  # a live run's (its writer_lock held) is no leftover


def others_partials(left: list[Path]) -> tuple[list[Path], list[Path]]:
    """``left`` split into those this user may remove and those another user's, in a folder where only their owner
    may (sticky, as /tmp is, or not writable here): the ``rm -rf`` the warning gave for those failed."""
    mine: list[Path] = []
    others: list[Path] = []
    for path in left:
        try:
            owner, folder = os.lstat(path).st_uid, os.stat(path.parent)
        except OSError:
            continue  # gone meanwhile
        kept = (folder.st_mode & stat.S_ISVTX and folder.st_uid != os.geteuid()) or not os.access(path.parent, os.W_OK | os.X_OK)
        (others if hasattr(os, "geteuid") and owner != os.geteuid() and os.geteuid() != 0 and kept else mine).append(path)
    return mine, others


def _note_others(others: list[Path]) -> None:
    if not others:
        return
    shown = " ".join(shlex.quote(str(p)) for p in others[:SHOWN])
    more = f" and {len(others) - SHOWN} more" if len(others) > SHOWN else ""
    owners = sorted({_owner(p) for p in others})
    log.warning("%s left by another user's run killed while writing: %s%s; %s belong%s to %s, who alone (or root) may "
                "remove %s there", f"{len(others)} partial file{'s' if len(others) > 1 else ''}", shown, more,
                "they" if len(others) > 1 else "it", "" if len(others) > 1 else "s", ", ".join(owners),
                "them" if len(others) > 1 else "it")  # fmt: skip


def _owner(path: Path) -> str:
    try:
        uid = os.lstat(path).st_uid
    except OSError:
        return "another user"
    return user_name(uid)


def note_partials_beside(targets: Iterable[Path]) -> list[Path]:
    """``process``'s warning, once its outputs are in place, of the partial files earlier runs of the same outputs
    left when killed outright (a cron job's run SIGKILLed by the OOM killer or systemd's stop timeout): hidden, one
    more at each killed rerun, each as large as the video it was writing. Named with the ``rm`` to remove them, not
    removed: another ``process`` run of the same name may be writing one now."""
    found = partials_beside(targets)
    left, others = others_partials(found)
    _note_others(others)
    if left:
        shown = " ".join(shlex.quote(str(p)) for p in left[:SHOWN])
        more = f" and {len(left) - SHOWN} more" if len(left) > SHOWN else ""
        log.warning("%s left by %s killed while writing (SIGKILL, the OOM killer): %s%s; `rm -rf` %s once no other "
                    "birefvid run writes there", f"{len(left)} partial file{'s' if len(left) > 1 else ''}",
                    "runs" if len(left) > 1 else "a run", shown, more, "them" if len(left) > 1 else "it")  # fmt: skip
    return found


def note_stale_partials(out_dir: Path, outputs: Iterable[str]) -> list[Path]:
    """Warn, in one line, of the partial files killed runs left for ``outputs``, and how to remove them; returns them."""
    found = stale_partials(out_dir, outputs)
    left, others = others_partials(found)
    _note_others(others)
    if not left:
        return found
    shown = " ".join(shlex.quote(str(p)) for p in left[:SHOWN])
    more = f" and {len(left) - SHOWN} more (`find {shlex.quote(str(out_dir))} -name '.*.partial-*' -prune` lists them)" if len(left) > SHOWN else ""
    # a rerun removes only what it still has to do: a video done already is skipped, its leftover kept
    log.warning("%s left by %s killed while writing (SIGKILL, the OOM killer): %s%s; `rm -rf` %s once no other birefvid "
                "run writes to %s (not removed here: Ray workers of a run killed just now, or a `birefvid process` of the "
                "same name, may still be writing; a rerun removes those of the videos it has yet to finish)",
                f"{len(left)} partial file{'s' if len(left) > 1 else ''}", "runs" if len(left) > 1 else "a run", shown, more,
                "them" if len(left) > 1 else "it", out_dir)  # fmt: skip
    return found
