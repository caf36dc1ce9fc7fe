"""The birefvid error hierarchy.

Every error a user can cause is a ``BirefvidError``. Each class also subclasses the matching
Python built-in (``OSError``, ``ValueError``, ...) so callers that already catch those keep
working. Messages say what was wrong, what was expected and how to fix it; the CLI prints
them as one line and exits with code 2.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import shlex
import signal
import threading
import unicodedata
from typing import Any, Callable, Iterator, Optional


# ``log.warning(..., extra=NOTICE)``: a line every run shows, as a warning is, about work that takes a while
# (a first export, a download, a wait), not a problem: the CLI prints it without "warning:", so a script
# grepping for warnings, or a user reading them, is not sent after a normal first run
NOTICE = {"notice": True}
# a notice whose URL must be shown whole: the CLI hides URL secrets in every other line (``cli.CliLogFormatter``);
# ``-q`` keeps it too, as it keeps a result: it is the network preview's one showing of the token other machines need
SHOWS_SECRET = {"notice": True, "shows_secret": True, "kept_when_quiet": True}


class BirefvidError(Exception):
    """Base class of every error birefvid raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (a Ray worker's, a process pool's) as what it is, whatever its ``__init__`` takes: the default,
        ``type(self)(*self.args)``, gave an ``__init__`` with more arguments than its message too few (``SourceLost``'s
        ``report``, once ``PipelineError``'s ``stage``), and the driver got Ray's 'Failed to deserialize exception'."""
        return (_unpickled, (type(self), self.args, self.__dict__))


def _unpickled(kind: type[BirefvidError], args: tuple[Any, ...], state: dict[str, Any]) -> BirefvidError:
    """A pickled ``BirefvidError`` made again without calling its ``__init__``: its message and attributes put back."""
    # an OSError has a layout of its own (errno, filename): ``kind.__new__`` found ValueError's first for
    # OfflineError and WeightsNotFoundError (a ValueError and an OSError), which refuses to make one
    error = (OSError if issubclass(kind, OSError) else Exception).__new__(kind, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class ConfigError(BirefvidError, ValueError):
    """An option, flag or config file has an invalid value."""


class SourceError(BirefvidError, OSError):
    """An input (file, folder, camera, stream) is missing, unreadable or not media."""


class SinkError(BirefvidError, OSError):
    """An output cannot be written (unwritable folder, unsupported codec, exists already)."""


class OutputKeptError(SinkError):
    """A finished output found its name taken at the commit and was kept under ``kept`` instead: the run
    still fails (exit 2), and a script or service reads where its result went, none of it thrown away."""

    def __init__(self, message: str, kept: Optional[os.PathLike[str] | str] = None) -> None:
        super().__init__(message)
        self.kept = kept


class WeightsError(BirefvidError, ValueError):
    """A checkpoint is missing, not a checkpoint, or does not fit the chosen backbone."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """A checkpoint file does not exist."""


class OfflineError(WeightsError, ConnectionError):
    """Weights must be downloaded but the hub cannot be reached and nothing is cached."""


class DataError(BirefvidError, ValueError):
    """Training or evaluation data is malformed (missing masks, mismatched sizes, ...)."""


class PipelineError(BirefvidError, RuntimeError):
    """A pipeline stage failed; ``stage`` names it and ``__cause__`` holds the original error."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage


# -- naming options in messages -------------------------------------------------------------------
# The same check serves the CLI and the Python API, but a user of one should read the name they
# typed: ``--overwrite`` on the command line, ``overwrite=True`` in Python. Messages call
# ``option(...)``; the CLI switches the style for the duration of a command.
_CLI_STYLE: contextvars.ContextVar[bool] = contextvars.ContextVar("birefvid_cli_style", default=False)
# API parameter -> CLI flag, where the two names differ beyond "_" vs "-"
_CLI_FLAGS = {"kind": "--output", "report_path": "--report", "latency_budget_ms": "--latency-budget", "record_preset": "--preset", "record_segment": "--segment"}
# (API parameter, value) -> CLI flag, for booleans the CLI spells as a negative switch
_CLI_SWITCHES: dict[tuple[str, object], str] = {("foreground", False): "--no-foreground", ("audio", False): "--no-audio", ("subtitles", False): "--no-subtitles", ("deinterlace", False): "--no-deinterlace", ("carry", False): "--no-carry"}


# option -> the name a command gives it instead (``train`` takes a model or weights file as --init)
_ALIASES: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("birefvid_option_aliases", default={})


@contextlib.contextmanager
def options_named(**aliases: str) -> Iterator[None]:
    """Within this block, ``option(name)`` names ``aliases[name]`` instead: shared loaders then point
    a ``train --init`` user at --init, not at the --weights and --model that train does not have."""
    token = _ALIASES.set({**_ALIASES.get(), **aliases})
    try:
        yield
    finally:
        _ALIASES.reset(token)


def option(name: str, value: object = None) -> str:
    """How the user names option ``name`` (set to ``value``): ``--blur-sigma 4`` on the CLI, ``blur_sigma=4`` in Python."""
    name = _ALIASES.get().get(name, name)
    if _CLI_STYLE.get():
        if (name, value) in _CLI_SWITCHES:
            return _CLI_SWITCHES[(name, value)]
        flag = _CLI_FLAGS.get(name, "--" + name.replace("_", "-"))
        return flag if value is None or value is True else f"{flag} {value}"
    return name if value is None else f"{name}={value!r}"


def input_not_found(path: object, role: str = "input") -> str:
    """'input not found: PATH' (``role``: what the path is, ``predictions`` for eval); for the README's sample
    (``samples/scene.mp4``), which a pip install lacks, how to make it. A path that is, or goes through, a symbolic link
    in a loop is said to be one (``ln -s clip.mp4 clip.mp4``): 'not found' sent the user looking for a missing file
    where ``ls`` shows one."""
    from birefvid.file_names import link_loop  # light: no PyAV

    loop = link_loop(str(path))
    if loop:
        return f"cannot read {role} {path}: {loop}"
    message = f"{role} not found: {path}"
    parts = str(path).replace("\\", "/").split("/")
    if parts[-2:] in (["samples", "scene.mp4"], ["samples", "scene_mask.mkv"]):
        message += " (the README's sample clip: `python -m birefvid.data.sample` writes it into ./samples)"
    elif _as_input_glob(path):  # what -o takes: a compositor's plate.####.png, which no file is named
        message += (f" (a sequence pattern names outputs; an image sequence is read from its folder or a glob: "
                    f"{shlex.quote(os.path.dirname(str(path)) or '.')} or {shlex.quote(_as_input_glob(path) or '')})")
    elif _written_now(path):
        message += (f" (a birefvid run is writing it now, as {_written_now(path)}: a live recording or an output not finished; "
                    f"it appears under this name when that run ends)")
    elif _spelt_apart(str(path)):
        message += (" (its folder holds that name in other Unicode code points, its accents composed or decomposed as "
                    "macOS writes them, which look alike: name it by tab completion, or rename it)")
    return message


def _written_now(path: object) -> Optional[str]:
    """``atomic.written_now`` for an input path (imported here only when an input is missing: it imports this module)."""
    if not isinstance(path, (str, os.PathLike)) or "://" in str(path):
        return None
    from birefvid.io.atomic import written_now

    found = written_now(path)
    return None if found is None else str(found)


def _as_input_glob(path: object) -> Optional[str]:
    """``sequence_names.as_input_glob``, imported here only when an input is missing (it imports this module)."""
    from birefvid.sequence_names import as_input_glob

    return as_input_glob(str(path))


def _spelt_apart(path: str) -> bool:
    """True when ``path`` is missing but its folder holds a name equal to its own in Unicode's composed form
    (NFC): ``café.mp4`` typed on Linux against a ``café.mp4`` copied from a Mac (NFD), which look alike."""
    folder, name = os.path.split(path)
    key = unicodedata.normalize("NFC", name)
    try:
        return any(entry != name and unicodedata.normalize("NFC", entry) == key for entry in os.listdir(folder or "."))
    except (OSError, ValueError):
        return False


def sink_named(spec: str) -> str:
    """How the user names the live output ``spec``: ``--sink SPEC`` on the CLI, ``the sink 'SPEC'`` in Python."""
    return f"--sink {spec}" if _CLI_STYLE.get() else f"the sink {spec!r}"


@contextlib.contextmanager
def cli_naming() -> Iterator[None]:
    """Within this block, ``option()`` names options as command-line flags."""
    token = _CLI_STYLE.set(True)
    try:
        yield
    finally:
        _CLI_STYLE.reset(token)


def in_caller_context(target: Callable[..., None]) -> Callable[..., None]:
    """``target`` bound to a copy of the caller's context: run on another thread, its messages still
    name options the caller's way (``--flag`` under the CLI)."""
    context = contextvars.copy_context()
    return lambda *args, **kwargs: context.run(target, *args, **kwargs)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, ``docker stop``, systemd), raised in the main thread by the
    command line (``cli.sigterm_as_interrupt``): a KeyboardInterrupt, so it ends a run as Ctrl-C
    does (a live run keeps its recordings, a file run removes its unfinished output), where
    Python's default would kill the process at once and leave temporary files behind. SIGHUP (the
    terminal or SSH session closed) is one too, unless ignored (``nohup``); ``signum`` says which."""

    def __init__(self, signum: int = 15) -> None:
        super().__init__()
        self.signum = signum


_received: list[int] = []  # the termination signals the command line's handler raised, this run


def note_signal(signum: Optional[int]) -> None:
    """Record a termination signal raised as ``Terminated`` (None: forget them, a new run starts)."""
    if signum is None:
        _received.clear()
    else:
        _received.append(signum)


def stopped_by(exc: BaseException) -> Optional[int]:
    """The signal behind ``exc``: its own for ``Terminated``; for a plain KeyboardInterrupt the one the
    handler raised, since Ray's ``ray.wait`` catches that exception and raises a plain one instead."""
    if isinstance(exc, Terminated):
        return exc.signum
    if isinstance(exc, KeyboardInterrupt) and _received:
        return _received[0]
    return None


@contextlib.contextmanager
def stops_kept() -> Iterator[None]:
    """Within this block, a Ctrl-C or SIGTERM that native code turned into an ordinary error is raised as the stop it was.

    Why: the KeyboardInterrupt (or ``Terminated``) raised by the signal's handler while C code holds the call can come
    out as that code's own error, unchained: safetensors' reader, interrupted, raised ``ValueError: could not determine
    the shape of object type 'torch.storage.UntypedStorage'``, which the checkpoint loader reported as "not a BiRefNet
    checkpoint" (exit 2, the user told that a good file was damaged) where the run should stop as for any Ctrl-C.
    Ctrl-C is noted by a handler of its own on the main thread (only over Python's, as ``finishing`` does); SIGTERM by
    the command line's (``note_signal``)."""
    pressed: list[int] = []
    ours = threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.default_int_handler

    def interrupt(signum: int, frame: object) -> None:
        pressed.append(signum)
        raise KeyboardInterrupt

    if ours:
        signal.signal(signal.SIGINT, interrupt)
    terminations = len(_received)
    try:
        yield
    except Exception as exc:
        if len(_received) > terminations:
            raise Terminated(_received[terminations]) from exc
        if pressed:
            raise KeyboardInterrupt from exc
        raise
    finally:
        if ours:
            signal.signal(signal.SIGINT, signal.default_int_handler)


_finishing: list[int] = [0]  # finishing() blocks now open, in any thread: nested ones must not end an outer one's
_finishing_lock = threading.Lock()
PRESSES_TO_ABANDON = 3  # Ctrl-C presses during finishing() that give up on it, as ffmpeg's "> 3 signals" does


@contextlib.contextmanager
def finishing(doing: str = "finishing the recordings", giving_up: str = "abandons them") -> Iterator[None]:
    """A block that completes what a run made (a live run committing its recordings): SIGTERM
    arriving meanwhile is not raised, since the run is ending anyway and would be left half-closed.
    Ctrl-C is held too: pressed twice, as people do, the second press discarded the whole recording
    the first had stopped; ``PRESSES_TO_ABANDON`` presses still give up (the block is bounded anyway).
    The held press's warning says what is being finished (``doing``) and what giving up does."""
    with _finishing_lock:
        _finishing[0] += 1
    restore = _hold_interrupts(doing, giving_up)
    try:
        yield
    finally:
        with _finishing_lock:
            _finishing[0] -= 1
        restore()


def _hold_interrupts(doing: str, giving_up: str) -> Callable[[], object]:
    """Make Ctrl-C (SIGINT) count presses instead of raising, until the returned function restores it.
    Only on the main thread (where Python handles signals) and only over Python's own handler."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return lambda: None
    presses = 0

    def held(signum: int, frame: object) -> None:
        nonlocal presses
        presses += 1
        if presses >= PRESSES_TO_ABANDON:
            raise KeyboardInterrupt
        if presses == 1:
            logging.getLogger("birefvid").warning("%s first (a few seconds at most); Ctrl-C %d more times %s", doing, PRESSES_TO_ABANDON - 1, giving_up)

    signal.signal(signal.SIGINT, held)
    return lambda: signal.signal(signal.SIGINT, signal.default_int_handler)


def termination_deferred() -> bool:
    """True inside ``finishing()`` (any of them, nested or on another thread). Read without the lock: the
    SIGTERM handler asks, and it may run on the main thread while that thread holds the lock."""
    return _finishing[0] > 0
