"""The watch folder from Python: ``watch_videos`` (runs until stopped, a callback per video) and ``start_watch`` (on a
thread of its own: iterate it for the results, ``stop()`` it from any thread).

Both run the loop of ``birefvid batch --watch`` (``watch.watch_batch``): the same settling, manifest, resuming and
skipping, one model loaded for the whole watch. What the command line stops with a signal is stopped here with a
``threading.Event``: a signal reaches only the main thread, and a Flask request, a Celery worker or a notebook's
background thread is elsewhere. Setting it abandons the video in hand as Ctrl-C does (no output of it, no
``.partial`` file; its finished chunks kept for the next watch) and ends an idle watch at once.

Only light modules are imported here: ``birefvid.api`` re-exports these names, and ``import birefvid.api`` loads no
torch or PyAV.
"""

from __future__ import annotations

import atexit
import logging
import math
import numbers
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Optional, Sequence, Union

from ..errors import ConfigError, SourceError, option
from ..said_once import once_a_run
from . import DEFAULT_CHUNK_FRAMES, DEFAULT_SETTLE

if TYPE_CHECKING:
    from ..job import FileJob
    from .manifest import RunLock
    from .progress import BatchProgress
    from .runner import Found

PathLike = Union[str, Path]
Status = Literal["done", "already_done", "failed"]


@dataclass(frozen=True)
class WatchResult:
    """What became of one video the watch took: ``done`` (``output`` written), ``already_done`` (an earlier run or
    watch made ``output`` from this very file with these options) or ``failed`` (``error`` says why; the watch went on,
    and takes the file again once it changes)."""

    input: str
    output: Optional[str]
    status: Status
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        """True when the output is there: done now or before."""
        return self.status != "failed"


OnResult = Callable[[WatchResult], None]


class _Results:
    """Turns a watch's progress events into ``WatchResult``s: a run names a video by its output's name in the output
    folder, so the jobs the watch makes are remembered to give each result its input."""

    def __init__(self, out_dir: Path, on_result: OnResult) -> None:
        self.out_dir = out_dir
        self.on_result = on_result
        self.jobs: dict[str, tuple[str, str]] = {}  # output's name in the batch -> (input, output)

    def made(self, job: "FileJob") -> None:
        from .runner import output_key, output_place

        place = output_place(job.output.path)  # a TIFF/EXR sequence's folder, ``out/clip/`` as a PNG one's
        output = job.output.path if place == Path(job.output.path) else f"{place}{os.sep}"
        self.jobs[output_key(job.output.path, self.out_dir)] = (job.source.input, output)

    def __call__(self, event: str, fields: dict[str, Any]) -> None:
        if event in ("video_done", "video_skipped"):
            source, output = self.jobs.get(fields["video"], (fields["video"], fields.get("output", "")))
            self.on_result(WatchResult(source, output, "done" if event == "video_done" else "already_done"))
        elif event in ("video_unreadable", "video_failed") and "input" in fields:
            self.on_result(WatchResult(str(fields["input"]), None, "failed", fields.get("error")))


@dataclass
class _Prepared:
    """A watch checked and ready: its folders, jobs and executor, and the output folder's lock, held."""

    folders: list[Path]
    out_dir: Path
    suffix: str
    options: dict[str, Any]
    executor: Callable[[], Any]
    lock: "RunLock"
    recursive: bool
    chunk_frames: Optional[int]
    settle: float
    watch_for: Optional[float]
    progress: Optional["BatchProgress"]

    def run(self, stop: Optional[threading.Event], on_result: Optional[OnResult]) -> dict[str, Any]:
        """The watch, on the calling thread, until ``stop`` is set or ``watch_for`` passes; releases the lock."""
        from .progress import BatchProgress
        from .watch import watch_batch

        progress = self.progress or BatchProgress(quiet=True)
        results = _Results(self.out_dir, on_result) if on_result is not None else None
        if results is not None:
            progress.listeners.append(results)
        try:
            return watch_batch(self.folders, self.out_dir, lambda found: self._job(found, results), self.executor, progress,
                               recursive=self.recursive, chunk_frames=self.chunk_frames, settle=self.settle, watch_for=self.watch_for,
                               stop=stop, lock=self.lock, raise_skipped=False)  # fmt: skip
        finally:
            if results is not None:
                progress.listeners.remove(results)
            if self.progress is None:
                progress.close()
            else:
                self.progress.release()

    def _job(self, found: "Found", results: Optional[_Results]) -> "FileJob":
        from ..api import build_file_job
        from .runner import check_name_lengths, output_for

        out = output_for(found.path, self.out_dir, self.suffix, found.sub)
        check_name_lengths([out], [found.path])
        job = build_file_job(found.path, out, **self.options)
        if results is not None:
            results.made(job)
        return job


def _prepare(
    caller: str, folders: Union[PathLike, Sequence[PathLike]], output_dir: PathLike, *, stop: Any, on_result: Any, settle: float,
    watch_for: Optional[float], ext: Optional[str], recursive: bool, ray: Optional[str], workers: Optional[int], cpus_per_worker: float,
    gpus_per_worker: float, chunk_frames: Optional[int], progress: Optional["BatchProgress"], options: dict[str, Any],
) -> _Prepared:
    """Every check the command makes before a watch starts (keywords, folders, output format, model), then the output
    folder made and locked: a mistake is raised to the caller, not to the watch's thread."""
    from ..api import _check_control, _check_keywords, build_file_job, model_and_inference
    from ..extensions import batch_extension
    from .runner import DEFAULT_EXT, check_background, check_not_pattern, check_output_format, check_whole_videos, executor_for, output_for, prepare_output_dir

    _check_keywords(caller, options, build_file_job, model_and_inference)
    _check_control(caller, None, None, None, stop)
    if on_result is not None and not callable(on_result):
        raise TypeError(f"{caller}() on_result must be a function of a WatchResult, or None, got {on_result!r}")
    _check_seconds("settle", settle)
    if watch_for is not None:
        _check_seconds("watch_for", watch_for)
    where = _folders(folders)
    out_dir = Path(output_dir)
    check_not_pattern(output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{option('output_dir')} {out_dir} is a file, not a folder")
    suffix = batch_extension(ext) if ext else DEFAULT_EXT[options.get("kind", "alpha")]
    # every job writes the same container with the same options: checked on the job of a video to come
    template = build_file_job(where[0] / "clip.mp4", output_for(Path("clip.mp4"), out_dir, suffix), **options)
    check_whole_videos([template])
    check_background(options.get("background"))
    check_output_format(template)
    _check_model(template, ray, gpus_per_worker)
    prepare_output_dir(out_dir)
    from .manifest import RunLock

    if progress is not None:
        progress.claim(f"the watch of {', '.join(str(f) for f in where)} into {out_dir}")
    lock = RunLock(out_dir)
    try:
        lock.acquire()  # here: "another batch is writing there" reaches the caller
    except BaseException:
        if progress is not None:
            progress.release()
        raise
    executor = executor_for(template, ray, workers=workers, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker)
    return _Prepared(where, out_dir, suffix, options, executor, lock, recursive, chunk_frames or None, settle, watch_for, progress)


def _check_seconds(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < math.inf:
        raise ConfigError(f"{option(name)} must be a number of seconds above 0, got {value!r}")


def _folders(folders: Union[PathLike, Sequence[PathLike]]) -> list[Path]:
    """The folders to watch: one path, or a list of them; each must be a folder that exists (a watch waits for what is
    dropped in, so a file or a missing folder is a mistake, said now)."""
    given = [folders] if isinstance(folders, (str, os.PathLike)) else list(folders)
    if not given:
        raise ConfigError("no folder to watch: give one or more folders")
    for folder in given:
        if not os.path.exists(folder):
            raise SourceError(f"input not found: {folder} (a watch watches folders that exist: make it first)")
        if not os.path.isdir(folder):
            raise ConfigError(f"a watch watches folders, and {folder} is not one: name the folder it is dropped into")
    return [Path(folder) for folder in given]


def _check_model(job: "FileJob", ray: Optional[str], gpus_per_worker: float) -> None:
    """The model, device and precision refusals the first video would make, or a missing Ray, made before any work."""
    from ..commands.batch import check_model_here, check_ray_address, check_ray_device

    if ray is not None:
        from .ray_executor import import_ray

        check_ray_address(ray)
        check_ray_device(job.inference.device, gpus_per_worker)
        import_ray()
        return
    check_model_here(SimpleNamespace(model=job.model.model, weights=job.model.weights, backbone=job.model.backbone, device=job.inference.device,
                                     backend=job.inference.backend, precision=job.inference.precision))  # fmt: skip


@once_a_run
def watch_videos(
    folders: Union[PathLike, Sequence[PathLike]],
    output_dir: PathLike,
    *,
    on_result: Optional[OnResult] = None,
    stop: Optional[threading.Event] = None,
    settle: float = DEFAULT_SETTLE,
    watch_for: Optional[float] = None,
    ext: Optional[str] = None,
    recursive: bool = False,
    ray: Optional[str] = None,
    workers: Optional[int] = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    chunk_frames: Optional[int] = DEFAULT_CHUNK_FRAMES,
    progress: Optional["BatchProgress"] = None,
    **options: Any,
) -> dict[str, Any]:
    """``birefvid batch --watch`` from Python: process the videos in ``folders`` into ``output_dir``, then each that
    appears once complete, until ``stop`` is set (from any thread) or ``watch_for`` seconds pass; returns the totals.

    ``on_result(WatchResult)`` is called on this thread as each video is done, found done, or fails (the watch goes
    on); an exception it raises ends the watch and comes back as raised. ``options`` are ``process_video``'s keywords
    (kind, model, resolution, smooth, codec, overwrite, ...); ``settle``: seconds a file must stay unchanged to count as
    complete; ``ext``, ``recursive``, ``ray``, ``workers``, ``chunk_frames`` and ``progress`` (a ``BatchProgress``, for
    lines or JSON lines, one running watch's at a time: ConfigError otherwise) as ``batch_videos`` takes them. Setting ``stop`` abandons the video in hand as Ctrl-C does
    (nothing of it that looks complete); the totals are ``watch_videos_done``, ``watch_videos_failed``, ``failed``
    (input: why, of those left skipped) and ``ended_by`` ("stop" or "watch_for"). Skipped inputs raise nothing: each
    was a result.
    """
    prepared = _prepare("watch_videos", folders, output_dir, stop=stop, on_result=on_result, settle=settle, watch_for=watch_for,
                        ext=ext, recursive=recursive, ray=ray, workers=workers, cpus_per_worker=cpus_per_worker,
                        gpus_per_worker=gpus_per_worker, chunk_frames=chunk_frames, progress=progress, options=options)  # fmt: skip
    return prepared.run(stop, on_result)


_END = object()  # after the last result: the watch has ended

# watches started, each struck off once its thread has ended (not once its loop has: the thread frees the model last)
_watches: list["VideoWatch"] = []
_watches_lock = threading.Lock()
_watches_waited = [False]  # _stop_watches_at_exit registered with atexit


def _running_at_exit(watch: "VideoWatch") -> None:
    """List ``watch`` for ``_stop_watches_at_exit``, which is registered with ``atexit`` at the first watch."""
    with _watches_lock:
        if not _watches_waited[0]:
            atexit.register(_stop_watches_at_exit)
            _watches_waited[0] = True
        _watches[:] = [w for w in _watches if w._thread.is_alive()]
        _watches.append(watch)


log = logging.getLogger(__name__)
# seconds one call of a watch's on_result may run on at the exit before the exit goes on without it: a callback that
# never returns (a bounded queue whose reader, the main thread, has ended) held the process open forever
ON_RESULT_AT_EXIT_S = 10.0


def _stop_watches_at_exit() -> None:
    """At the interpreter's exit, stop each watch still running and wait for its thread to end.

    Why: a script that leaves its ``for result in watch`` loop without ``stop()`` (a ``break``, an exception) ended
    with the watch's daemon thread mid-video, inside PyAV, OpenVINO or PyTorch; the exit ended that thread where it
    next took the GIL, which inside their C++ aborts the process ("terminate called without an active exception",
    every exit of 20 measured mid-video). Stopped here, the video in hand is abandoned at its next batch of frames,
    as ``stop()`` abandons it, so the wait is short; a watch's own handlers and outputs are left as ``stop()`` leaves
    them. A model load the watch leaves behind is ``batch.local``'s to wait for, whichever handler runs first; an
    ``on_result`` that does not return is not waited for forever (``_wait_at_exit``)."""
    with _watches_lock:
        running = [w for w in _watches if w._thread.is_alive()]
    for watch in running:
        watch._stop.set()
    for watch in running:
        _wait_at_exit(watch)


def _wait_at_exit(watch: "VideoWatch") -> None:
    """Wait for ``watch``'s thread to end, unless one call of its ``on_result`` outlasts ``ON_RESULT_AT_EXIT_S``:
    that is the user's code waiting on something the exit took away, and the thread is left in it (a daemon blocked
    in Python code ends with the process cleanly; only one inside PyTorch's or PyAV's C++ aborts it), with a warning."""
    seen: Optional[tuple[int, float]] = None  # (which call of on_result, when this wait first saw it running)
    while watch._thread.is_alive():
        call = watch._on_result_running
        if call is None:
            seen = None
        elif seen is None or seen[0] != call:
            seen = (call, time.monotonic())
        elif time.monotonic() - seen[1] > ON_RESULT_AT_EXIT_S:
            log.warning("the watch's on_result has not returned in %g s at the exit; exiting without it", ON_RESULT_AT_EXIT_S)
            return
        watch._thread.join(0.05)


class VideoWatch:
    """A watch running on a thread of its own, from ``start_watch``: iterate it for each video's ``WatchResult`` as it
    comes (the loop ends when the watch ends, raising what ended it, if anything but ``stop``); ``stop()`` from any
    thread; ``with start_watch(...) as watch:`` stops it on leaving the block."""

    def __init__(self, prepared: _Prepared, on_result: Optional[OnResult]) -> None:
        self._prepared = prepared
        self._on_result = on_result
        self._stop = threading.Event()
        # unbounded: the watch never waits for a reader (a result is a few short strings; thousands are nothing)
        self._results: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._totals: Optional[dict[str, Any]] = None
        self._error: Optional[BaseException] = None
        self._on_result_calls = 0
        self._on_result_running: Optional[int] = None  # the number of the on_result call running, for the exit's wait
        # a daemon: the exit joins other threads before atexit's handlers run, and a watch nobody stops never ends;
        # not left running by the exit either: ``_stop_watches_at_exit`` stops it and waits for it
        self._thread = threading.Thread(target=once_a_run(self._run), name="birefvid-watch", daemon=True)

    def _start(self) -> "VideoWatch":
        try:
            _running_at_exit(self)
            self._thread.start()
        except BaseException:
            self._prepared.lock.release()
            if self._prepared.progress is not None:
                self._prepared.progress.release()
            raise
        return self

    def _run(self) -> None:
        try:
            self._totals = self._prepared.run(self._stop, self._deliver)
        except BaseException as exc:  # raised to whoever reads the results or stops the watch
            self._error = exc
        finally:
            self._results.put(_END)

    def _deliver(self, result: WatchResult) -> None:
        self._results.put(result)
        if self._on_result is not None:
            self._on_result_calls += 1
            self._on_result_running = self._on_result_calls
            try:
                self._on_result(result)
            finally:
                self._on_result_running = None

    def __iter__(self) -> Iterator[WatchResult]:
        while True:
            item = self._results.get()
            if item is _END:
                self._results.put(_END)  # another loop over the watch ends too
                if self._error is not None:
                    raise self._error
                return
            yield item

    @property
    def running(self) -> bool:
        """True until the watch has ended (stopped, ``watch_for`` passed, or failed)."""
        return self._thread.is_alive()

    def stop(self, timeout: Optional[float] = None) -> dict[str, Any]:
        """Stop the watch and wait for it (at most ``timeout`` seconds: ``TimeoutError`` after that); returns its totals,
        or raises what ended it. The video in hand is abandoned (no output of it) at its next batch of frames; a model
        still loading is not waited for (it finishes unseen in the background, and the interpreter's exit waits for it)."""
        self._stop.set()
        return self.wait(timeout)

    def wait(self, timeout: Optional[float] = None) -> dict[str, Any]:
        """Wait for the watch to end (``watch_for``, or ``stop()`` from another thread); returns its totals, or raises
        what ended it."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the watch did not end in {timeout:g} s")
        if self._error is not None:
            raise self._error
        assert self._totals is not None
        return self._totals

    def __enter__(self) -> "VideoWatch":
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        # an error of the watch itself surfaces through the loop or stop(); leaving the block raises nothing more


def start_watch(
    folders: Union[PathLike, Sequence[PathLike]],
    output_dir: PathLike,
    *,
    on_result: Optional[OnResult] = None,
    settle: float = DEFAULT_SETTLE,
    watch_for: Optional[float] = None,
    ext: Optional[str] = None,
    recursive: bool = False,
    ray: Optional[str] = None,
    workers: Optional[int] = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    chunk_frames: Optional[int] = DEFAULT_CHUNK_FRAMES,
    progress: Optional["BatchProgress"] = None,
    **options: Any,
) -> VideoWatch:
    """``watch_videos`` on a thread of its own (``birefvid-watch``), started at once; returns the ``VideoWatch``.

    Its checks (keywords, folders, output format, model choice, the output folder's lock) are made here, on the
    caller's thread, and raise here. ``on_result`` is called on the watch's thread, besides the results the
    ``VideoWatch`` yields.
    """
    prepared = _prepare("start_watch", folders, output_dir, stop=None, on_result=on_result, settle=settle, watch_for=watch_for,
                        ext=ext, recursive=recursive, ray=ray, workers=workers, cpus_per_worker=cpus_per_worker,
                        gpus_per_worker=gpus_per_worker, chunk_frames=chunk_frames, progress=progress, options=options)  # fmt: skip
    return VideoWatch(prepared, on_result)._start()
