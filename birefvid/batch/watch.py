"""``birefvid batch --watch``: a watch folder. What is in the folders is processed, then each video that appears later,
once it is complete; the model is loaded once for the whole watch.

A file is complete once its size, modification time and inode have not changed for ``settle`` seconds, as
this process sees them (not by comparing its mtime with the clock: a network share's clock may differ).
Exports and copies in progress are so left alone, and so are the names downloaders and
copiers give a file until it is whole (``.part``, ``.crdownload``, ``.tmp``, ...) and hidden files
(``rsync``'s ``.clip.mp4.XXXXXX``).

The folders are polled with ``os.scandir``: it works the same on Linux, macOS, Windows and on network
shares (SMB, NFS), where inotify and FSEvents miss changes made by other machines, and it needs no
dependency. A poll lists the names and stats of the watched folders only (80 ms of CPU at 5,000 files); the
manifest is read again only when it changed (``EarlierOutputs``).

The files that settle together are run as one batch (``run_locked``, under one lock for the whole watch), so
everything the batch does holds here: the manifest, resuming, skipping what is done. A file handled once is
looked at again only when it changes (a new version dropped over it); the manifest then decides as a rerun
would: a video done from that very file is skipped, one from a changed file is out of date and refused
unless ``--overwrite``. A video that fails is said in one line and left until it changes again, or the watch
is restarted.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

from ..errors import ConfigError, SinkError, SourceError
from ..extensions import VIDEO_EXTENSIONS
from ..io.animated_source import is_animated_webp
from ..job import FileJob
from . import DEFAULT_SETTLE  # seconds unchanged: a local copy or export writes far more often than that
from ..linked_folders import leads_back_up
from ..runtime.load_failure import is_load_failure
from .manifest import WORK_DIR, RunLock
from .progress import BatchProgress
from .runner import Executor, Found, InputsSkipped, StopRequested, output_key, _earlier_outputs, _once_each, _why_stopped, _without_sound_only_mxf, check_distinct_outputs, run_locked

log = logging.getLogger(__name__)

# names a file has while a browser, a copier or an exporter is still writing it, renamed when done
IN_PROGRESS = (".part", ".crdownload", ".tmp", ".download", ".partial", ".filepart")
POLL_SECONDS = 1.0  # between looks at the folders when idle

Identity = tuple[int, int, int]  # inode, size, mtime_ns
MakeJob = Callable[[Found], FileJob]


def _identity(st: os.stat_result) -> Identity:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _candidate(name: str) -> bool:
    """Whether a file of this name may be a video to process: not hidden, not being downloaded, a video's extension."""
    low = name.lower()
    return not name.startswith(".") and not low.endswith(IN_PROGRESS) and os.path.splitext(low)[1] in VIDEO_EXTENSIONS | {".webp"}


# a scan: each candidate's path as listed (the key a watch knows it by), with its subfolder (mirrored under the
# output folder) and identity. Strings, not Paths: pathlib's parsing was three quarters of a poll's time
Scan = dict[str, tuple[Path, Identity]]


def scan(folder: Path, out_dir: Path, *, recursive: bool, skip: frozenset[str] = frozenset()) -> Scan:
    """The candidate videos in ``folder`` (and its subfolders with ``recursive``, as ``expand_inputs`` walks them:
    hidden folders, the output folder and loops left out); ``skip``: the batch's outputs, as real paths."""
    out_real = os.path.realpath(out_dir)
    found: Scan = {}

    def walk(here: str, sub: Path, ancestors: frozenset[str]) -> None:
        try:
            entries = list(os.scandir(here))
        except OSError:
            return  # gone, or unreadable: expand_inputs warned at the start
        real_here = os.path.realpath(here)  # once a folder, not once a file
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_file():
                    if _candidate(entry.name) and os.path.join(real_here, entry.name) not in skip:
                        found[entry.path] = (sub, _identity(entry.stat()))
                elif recursive and entry.is_dir():
                    real = os.path.realpath(entry.path)
                    if real != out_real and not leads_back_up(real, ancestors):
                        walk(entry.path, sub / entry.name, ancestors | {real})
            except OSError:
                continue  # removed as we looked

    walk(str(folder), Path(), frozenset({os.path.realpath(folder)}))
    return found


@dataclass
class Settling:
    """Files seen, each with the identity it has had since when (monotonic seconds), and those already handled."""

    settle: float
    seen: dict[str, tuple[Identity, float]] = field(default_factory=dict)
    handled: dict[str, Identity] = field(default_factory=dict)

    def look(self, found: Scan, now: float) -> tuple[dict[str, Found], list[tuple[str, bool]]]:
        """Take in a scan; returns the files complete now (unchanged for ``settle`` s, not handled as they are), by
        their key, and the files newly seen, each with whether it was handled before (changed since), to say they are waited for."""
        for gone in set(self.seen) - set(found):
            del self.seen[gone]
        for gone in set(self.handled) - set(found):
            del self.handled[gone]  # deleted: dropped again, even as the same file, it is looked at anew
        ready: dict[str, Found] = {}
        new: list[tuple[str, bool]] = []
        for path, (sub, ident) in found.items():
            if self.handled.get(path) == ident:
                continue
            before = self.seen.get(path)
            if before is None or before[0] != ident:
                if before is None:
                    new.append((path, path in self.handled))
                self.seen[path] = (ident, now)
            elif now - before[1] >= self.settle:
                ready[path] = Found(Path(path), sub)
        return ready, new

    def done(self, keys: Iterable[str]) -> None:
        """These files (by the keys ``look`` gave them) were handled (processed, skipped or refused) as they are now."""
        for key in keys:
            entry = self.seen.pop(key, None)
            if entry is not None:
                self.handled[key] = entry[0]

    def waiting(self) -> int:
        return len(self.seen)


class KeptExecutor:
    """The executor of a watch: made for the first run with chunks to compute, kept for the next ones (the
    model stays loaded, Ray stays up), closed at the end. A run that stops or fails closes it itself."""

    def __init__(self, make: Callable[[], Executor]) -> None:
        self._make = make
        self._executor: Optional[Executor] = None
        self.handed = False  # given to the run now going on

    def __call__(self) -> Executor:
        if self._executor is None:
            self._executor = self._make()
        self.handed = True
        return self._executor

    def forget(self) -> None:
        """The run it was handed to closed it (stopped or failed): the next run makes a new one."""
        self._executor = None

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.close()


@dataclass
class WatchTotals:
    """What a watch has done so far, for its own lines."""

    done: int = 0
    # input -> why, of the inputs skipped and not processed since: a clip skipped half copied and then processed whole
    # is no skipped input of the watch (its count, and --watch-for's exit 2, named it), one skipped in two versions is one
    failed: dict[str, str] = field(default_factory=dict)

    def skipped(self, source: str, why: str) -> None:
        self.failed.pop(source, None)  # named where it now stands: among the latest
        self.failed[source] = why

    def processed(self, sources: Iterable[str]) -> None:
        """These inputs were processed (or found done): skipped no more."""
        for source in sources:
            self.failed.pop(source, None)

    def fields(self) -> dict[str, Any]:
        """The JSON fields of a watch's own events: named apart from a run's ``videos_done``, which count that run only."""
        return {"watch_videos_done": self.done, "watch_videos_failed": len(self.failed)}


def watch_batch(
    folders: Sequence[Path], out_dir: Path, make_job: MakeJob, executor_factory: Callable[[], Executor], progress: BatchProgress, *,
    recursive: bool = False, chunk_frames: Optional[int] = None, settle: float = DEFAULT_SETTLE, poll: float = POLL_SECONDS,
    watch_for: Optional[float] = None, stop: Optional[threading.Event] = None, lock: Optional[RunLock] = None, raise_skipped: bool = True,
) -> dict[str, Any]:
    """Process the videos in ``folders`` into ``out_dir``, then each that appears, until stopped (a signal, or ``stop``
    set) or, with ``watch_for``, that many seconds after the start once no video is in hand; returns the watch's totals,
    with ``failed`` (input: why, of those left skipped) and ``ended_by`` ("stop" or "watch_for").

    ``stop`` set abandons the video in hand as a signal does (``StopRequested`` from its next frames) and ends an idle
    watch at once; the watch then returns, where a signal's exception goes on up. ``lock``: the output folder's,
    already held (the Python watch takes it before its thread starts); released at the end, as the watch's own.
    ``raise_skipped``: end with a SourceError naming the inputs skipped along the way (exit 2), as a batch does."""
    if not settle > 0:
        raise ConfigError(f"--settle must be above 0 seconds, got {settle:g}")
    poll = max(0.05, min(poll, settle / 2))  # a short settle is not made longer by the wait between looks
    if lock is None:
        lock = RunLock(out_dir)
        lock.acquire()
    kept = KeptExecutor(executor_factory)
    totals = WatchTotals()
    state = Settling(settle)
    ours = EarlierOutputs(out_dir)
    started = time.monotonic()
    ended_by = "watch_for"
    try:
        first, looked = True, False
        idle_said = False
        while True:
            if stop is not None and stop.is_set():
                raise StopRequested()
            now = time.monotonic()
            found = _scan_all(folders, out_dir, recursive, ours())
            ready, new = state.look(found, now)
            _say_seen(progress, new, settle, totals, looked_before=looked)
            looked = True
            if ready:
                _run_ready(list(ready.values()), out_dir, make_job, kept, progress, totals, chunk_frames, note_leftovers=first, stop=stop)
                first, idle_said = False, False
                state.done(ready)  # its keys
                continue  # look again at once: more may have settled meanwhile
            if watch_for is not None and now - started >= watch_for:
                break
            if not idle_said and not state.waiting():
                where = ", ".join(str(f) for f in folders)
                how = "Ctrl-C stops" if stop is None else "stop() ends it"
                progress.watch_event("watching", f"watching {where} for new videos ({how})", folders=[str(f) for f in folders], **totals.fields())
                idle_said = True
            if stop is None:
                time.sleep(poll)
            elif stop.wait(poll):  # an idle watch ends at once, not at the next look
                raise StopRequested()
    except BaseException as exc:
        if progress.stopped_reason is None:  # a run stopped midway has said so itself
            progress.watch_event("stopped", f"watch stopped ({_why_stopped(exc)}): {_summary(totals)}", reason=_why_stopped(exc), **totals.fields())
        if not isinstance(exc, StopRequested):
            raise
        ended_by = "stop"
    finally:
        try:
            kept.close()
        finally:
            lock.release()
    if ended_by == "watch_for":
        progress.watch_event("watch_end", f"watch done: {_summary(totals)}", **totals.fields())
    if totals.failed and raise_skipped:
        names = ", ".join(list(totals.failed)[:3]) + (f" and {len(totals.failed) - 3} more" if len(totals.failed) > 3 else "")
        raise SourceError(f"{len(totals.failed)} input{'s were' if len(totals.failed) > 1 else ' was'} skipped during the watch: {names} "
                          "(the progress lines say why each was skipped)")  # fmt: skip
    return {**totals.fields(), "failed": dict(totals.failed), "ended_by": ended_by}


def _say_seen(progress: BatchProgress, new: list[tuple[str, bool]], settle: float, totals: WatchTotals, *, looked_before: bool) -> None:
    """A line for each video found while watching; those there at the start in one line (a folder may hold thousands)."""
    if not new:
        return
    wait = f"processed once unchanged for {settle:g} s"
    if looked_before:
        for path, changed in new:
            progress.watch_event("video_seen", f"{path}: {'changed' if changed else 'found'}, {wait}", input=str(path), changed=changed, **totals.fields())
    else:
        progress.watch_event("video_seen", f"{len(new)} video{'s' if len(new) > 1 else ''} found, {wait}", inputs=len(new), **totals.fields())


def _summary(totals: WatchTotals) -> str:
    failed = f", {len(totals.failed)} skipped" if totals.failed else ""
    return f"{totals.done} video{'s' if totals.done != 1 else ''} processed{failed}"


class EarlierOutputs:
    """The outputs the output folder's manifest lists, as real paths, read again only when the manifest changes.

    The manifest grows by a video at every one a watch processes, and only the watch writes it (it holds the folder's
    lock); read, parsed and resolved at every poll, it cost an idle watch 33 ms of CPU a poll once 1,000 videos were
    done and 178 ms at 5,000: a fifth of a core, for a list that had not changed. The manifest is replaced whole
    (``os.replace``) at every save, so its inode, size and time tell a new one."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self._manifest = os.path.join(out_dir, WORK_DIR, "manifest.json")
        self._key: Optional[Identity] = None
        self._paths: frozenset[str] = frozenset()

    def __call__(self) -> frozenset[str]:
        try:
            key: Optional[Identity] = _identity(os.stat(self._manifest))
        except OSError:
            key = None  # none yet: no outputs to leave out
        if key != self._key:  # a manifest replaced between the stat and the read is read again at the next poll
            self._paths = frozenset(str(p) for p in _earlier_outputs(self.out_dir))
            self._key = key
        return self._paths


def _scan_all(folders: Sequence[Path], out_dir: Path, recursive: bool, ours: frozenset[str]) -> Scan:
    """Every candidate video of the watched folders, less ``ours``: the outputs the batch's manifest lists (the output
    folder may be the watched one)."""
    found: Scan = {}
    for folder in folders:
        for path, entry in scan(folder, out_dir, recursive=recursive, skip=ours).items():
            found.setdefault(path, entry)
    return found


def _run_ready(ready: list[Found], out_dir: Path, make_job: MakeJob, kept: KeptExecutor, progress: BatchProgress, totals: WatchTotals,
               chunk_frames: Optional[int], *, note_leftovers: bool, stop: Optional[threading.Event] = None) -> None:
    """Run the settled files as one batch; one whose job or output is refused before any work (an output out of
    date, a clash) is said in one line and the others are run one at a time, so it alone is skipped."""
    try:
        videos = [f for f in ready if f.path.suffix.lower() != ".webp" or is_animated_webp(f.path)]  # a still WebP is a picture
        videos = _once_each(_without_sound_only_mxf(videos))
    except OSError:  # one was deleted or moved as it settled: the run names it as removed
        videos = list(ready)
    if not videos:
        return
    finished: set[Path] = set()
    try:
        _run(videos, out_dir, make_job, kept, progress, totals, chunk_frames, note_leftovers, stop, finished)
    except (ConfigError, SinkError, SourceError) as exc:
        if is_load_failure(exc):  # the model cannot run (`--device mps` on a Ray worker): so for every video to come
            raise
        progress.stopped_reason = None  # a run that failed midway said `stopped`; the watch goes on, and may yet stop
        if len(videos) == 1:
            totals.skipped(str(videos[0].path), str(exc))
            progress.watch_event("video_failed", f"skipped: {videos[0].path}: {exc}", input=str(videos[0].path), error=str(exc), **totals.fields())
            return
        # those the batch finished before it failed were said done: run again, each was also said `video_skipped`
        # (the Python watch's `already_done` after its `done`) and counted by neither run
        for f in (f for f in videos if f.path not in finished):
            if stop is not None and stop.is_set():
                raise StopRequested()
            _run_ready([f], out_dir, make_job, kept, progress, totals, chunk_frames, note_leftovers=False, stop=stop)


def _run(videos: list[Found], out_dir: Path, make_job: MakeJob, kept: KeptExecutor, progress: BatchProgress, totals: WatchTotals,
         chunk_frames: Optional[int], note_leftovers: bool, stop: Optional[threading.Event] = None, finished: Optional[set[Path]] = None) -> None:
    """One batch of ``videos``; what it skipped (its progress lines said so) goes into ``totals``. ``finished``: given
    the paths of the videos it processed, also when it fails midway (they are done, and counted)."""
    jobs = [make_job(f) for f in videos]
    check_distinct_outputs([j.output.path for j in jobs], [j.source.input for j in jobs], out_dir)
    by_name = {output_key(j.output.path, out_dir): f.path for f, j in zip(videos, jobs)}
    made: list[Path] = []  # processed by this run, as its `video_done` events say

    def note(event: str, fields: dict[str, Any]) -> None:
        if event == "video_done" and fields.get("video") in by_name:
            made.append(by_name[fields["video"]])

    kept.handed = False
    skipped: list[str] = []
    progress.listeners.insert(0, note)  # first: a later listener that raises ends the run, the video done all the same
    try:
        run_locked(jobs, out_dir, kept, progress, chunk_frames, in_watch=True, note_leftovers=note_leftovers, stop=stop)
    except InputsSkipped as exc:  # each said in its progress line as it was skipped
        skipped = exc.inputs
        for source in skipped:
            totals.skipped(source, str(exc))
    except BaseException:
        if kept.handed:  # the run closed it as it stopped
            kept.forget()
        totals.done += len(made)
        totals.processed(str(p) for p in made)
        if finished is not None:
            finished.update(made)
        raise
    finally:
        progress.listeners.remove(note)
    totals.done += progress.videos_done - progress.videos_skipped
    totals.processed(j.source.input for j in jobs if j.source.input not in skipped)

