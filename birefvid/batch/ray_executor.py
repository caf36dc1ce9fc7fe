"""Run chunks on Ray actors that each keep a model loaded: one per GPU, or per ``cpus_per_worker`` CPU slots.

A worker process that dies mid-chunk is restarted by Ray (``max_restarts``) and its chunk tried again by the driver on
the first worker that is up (``MAX_RESTARTS`` times), not by Ray on the same worker: a worker lost with its node (the
machine gone, its raylet killed) spent Ray's retries in seconds, before Ray marked the node dead, and its restart then
waited for ever where the nodes left had no room for it. The chunk file is written atomically, so the half-written one
is never used. A run whose workers are all lost, with no room left for one, stops after ``NO_ROOM_SECONDS``; one whose
cluster head stops answering stops after ``HEAD_LOST_SECONDS`` (``ClusterLost``: finished chunks kept, a rerun resumes).
Ray is an optional dependency (``pip install "birefvid[ray]"``), imported only here and only when used.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

from ..errors import ConfigError, PipelineError, SourceError, Terminated, option
from ..job import FileJob
from .chunk import ChunkTask, run_chunk
from ..runtime.load_failure import could_not_load, failed_loading, is_load_failure
from .local import ClusterLost, OnFailure, OnFrames, OnResult, Skip, WorkerDied, counting, deliver

log = logging.getLogger(__name__)

# a worker killed mid-chunk is restarted and its chunk retried this many times before the run fails
MAX_RESTARTS = 3
# seconds a run with chunks left waits for a worker to come back up (Ray restarting it, on a node with room) while none is
# up: every worker lost with its node, the nodes left full. Past it the run stops (a rerun resumes), where it waited for ever
NO_ROOM_SECONDS = 300.0
# seconds without an answer from the cluster's head (its GCS) before the run stops: Ray itself ended the driver after 60 s
# (exit 1, its own log line, the run's temporary files left behind)
HEAD_LOST_SECONDS = 20.0
# seconds one look at the head waits for its answer
HEAD_ASKED_SECONDS = 2.0
# videos in a row whose chunks kill their worker every time before the run stops (fewer: those videos are skipped)
DEATHS_IN_A_ROW = 3
# seconds between the driver's looks at the running chunks' frame counts
POLL_SECONDS = 2.0
# seconds to wait for a Ray address given as HOST:PORT to answer
CONNECT_SECONDS = 10.0


def import_ray() -> Any:
    """The ``ray`` module, or one clear error naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f'{option("ray")} needs Ray, which is not installed: pip install "birefvid[ray]"') from None
    return ray


@contextlib.contextmanager
def _keeping_sigterm() -> Iterator[None]:
    """Put back the SIGTERM handler ``ray.init`` replaces (with ``sys.exit``, under a C++ handler that
    aborted the process): a scheduler's SIGTERM must stop the run as Ctrl-C does (exit 143, workers
    stopped, their temporary files removed), not kill the driver mid-way with exit -6."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    except SystemExit as exc:
        if exc.code != signal.SIGTERM:
            raise
        raise Terminated(signal.SIGTERM) from None  # it came while ray.init ran, under Ray's own handler
    finally:
        if main and previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _unwrap(outcome: Any) -> dict[str, Any]:
    """A chunk's result, or the error it ended with raised again."""
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome  # type: ignore[no-any-return]


def in_drivers_folder(folder: Optional[str]) -> None:
    """Work in the driver's working folder, where it exists on this node, so relative paths (``--weights
    runs/ft/model.safetensors``, the inputs, ``--output-dir``) name what they name on the driver.

    A worker starts in the folder its node's Ray was started from (``ray start``), not the driver's: there
    ``runs/ft/model.safetensors`` was not found, or named another file."""
    if folder and os.path.isdir(folder):
        os.chdir(folder)


def _answers(address: str) -> None:
    """One error line at once where nothing listens at a ``HOST:PORT`` or ``ray://HOST:PORT`` address (or at the one
    ``RAY_ADDRESS`` gives ``auto``), or where what answers there is no gRPC server, as Ray's GCS and client server are
    (a web server, the dashboard's 8265, ssh): Ray itself retried for minutes (over 200 s here for ``--ray 127.0.0.1:1``,
    over 100 s for a web server's port) before saying anything, and a SIGTERM waited for it."""
    said = ""
    if address == "auto":  # ray.init reads RAY_ADDRESS for "auto" (a stale one hung it as long)
        address, said = os.environ.get("RAY_ADDRESS", ""), " (RAY_ADDRESS)"
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or "://" in host:
        return  # "auto" without RAY_ADDRESS, or a form Ray reads its own way (RAY_ADDRESS=http://HEAD:8265 is said well)
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS) as conn:
            if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
                return  # a TLS cluster's servers answer TLS only, not the plain HTTP/2 hello below
            answer = _grpc_hello(conn)
    except OSError as exc:
        raise ConnectionError(f"nothing answers at {host}:{port}{said} ({exc.strerror or exc}); is Ray running there (ray status), "
                              f"and is the port the head's (6379, or 10001 for ray://)?") from None  # the caller's one line
    if answer is not None:
        raise ConnectionError(f"{host}:{port}{said} answers, but not as Ray does ({answer}); is the port the head's "
                              f"(6379, or 10001 for ray://), not its dashboard's (8265) or another server's?") from None


# HTTP/2's client preface and an empty SETTINGS frame: every gRPC server (Ray's GCS, its client server) answers with a
# SETTINGS frame of its own (type 4, the 4th byte of a frame's 9-byte header)
_H2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _grpc_hello(conn: socket.socket) -> Optional[str]:
    """None where the server at the other end of ``conn`` speaks HTTP/2, as gRPC does; else what it did instead."""
    got = b""
    try:
        conn.sendall(_H2_HELLO)
        while len(got) < 9:
            part = conn.recv(64)
            if not part:
                break
            got += part
    except socket.timeout:
        if not got:
            return f"no answer to an HTTP/2 hello in {CONNECT_SECONDS:g} s"
    except OSError as exc:  # reset: it hung up
        if not got:
            return f"it hung up on an HTTP/2 hello ({exc.strerror or exc})"
    if len(got) >= 9 and got[3] == 4:
        return None
    if not got:
        return "it hung up on an HTTP/2 hello"
    first = got.split(b"\n")[0].strip()[:40].decode("latin-1")
    return f"it said {first!r}" if first.isprintable() else f"it said {len(got)} bytes that are not HTTP/2's"


def _token_refused(exc: BaseException) -> bool:
    """Whether ``ray.init`` failed because the cluster refused the driver's token: Ray says so only in the error's cause
    (and in its C++ log lines above), not in the "Failed to connect to Ray cluster at HOST:PORT" it raises."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if "InvalidAuthToken" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


_COLOURS = re.compile(r"\x1b\[[0-9;]*m")


def _first_line(exc: BaseException) -> str:
    """The first line of Ray's error that says anything, as a notice is said (``_printable``): without the terminal
    colours Ray puts in it (``ESC[36mray::ChunkWorker.__init__() ESC[39m``: a log file or a non-terminal stderr got the
    escape codes in the one error line), nor any other escape sequence or control character. Only colours were taken
    out, so a cursor move and line erase (ESC[1A ESC[2K) quoted from a worker's error erased the terminal's line above
    the run's error line, and an OSC hyperlink or a BEL went out raw in it."""
    lines = [line for line in (_printable(raw) for raw in str(exc).splitlines()) if line]
    return lines[0] if lines else type(exc).__name__


def _ray_errors(ray: Any, *names: str) -> tuple[type[BaseException], ...]:
    """Those of Ray's exception classes named that this Ray has, for one ``except`` (a tuple in it must be flat)."""
    return tuple(error for error in (getattr(ray.exceptions, name, None) for name in names) if isinstance(error, type))


def telemetry_off() -> bool:
    """True where this process keeps OpenVINO from sending its usage event (the command line's: ``cli._no_openvino_telemetry``),
    so its Ray workers keep it from sending too."""
    return "openvino_telemetry" in sys.modules and sys.modules["openvino_telemetry"] is None


def local_ray_cpus(gpus_per_worker: float) -> dict[str, int]:
    """``ray.init``'s ``num_cpus`` for ``--ray local`` CPU workers: the cores this run may use (``usable_cores``:
    ``BIREFVID_THREADS``, ``taskset``, a CPU quota). Ray counted every core of the machine, so ``BIREFVID_THREADS=1``
    on 2 cores still started 2 workers of a thread each, and ``taskset -c 0`` 2 workers on the one core. GPU workers
    (one CPU slot each, as many as GPUs) are left to Ray's own count."""
    if gpus_per_worker > 0:
        return {}
    from ..runtime.cores import usable_cores

    return {"num_cpus": usable_cores()}


class ChunkWorker:
    """A Ray actor's body: loads the job's model once, then runs chunk after chunk."""

    def __init__(self, job: dict[str, Any], threads: int, folder: Optional[str] = None, no_telemetry: bool = False) -> None:
        if no_telemetry and "openvino" not in sys.modules:  # as the driver's command line (cli._no_openvino_telemetry)
            sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
        import torch

        from ..runtime.file_job import segmenter_for

        in_drivers_folder(folder)
        torch.set_num_threads(max(1, threads))
        spec = FileJob.from_dict(job)
        self.segmenter: Any = None
        self.failed: Optional[Exception] = None
        try:
            self.segmenter = segmenter_for(spec.model, spec.inference)
        except Exception as exc:  # noqa: BLE001 - kept for run(), which raises it to the driver
            # raised here, the actor is dead: its chunks came back as "the actor died" (a video's fault, skipped) under
            # pages of Ray's traceback, and the real error (weights missing on this node, torch's "CUDA out of memory",
            # a MemoryError) was lost. Kept for run(), it reaches the driver as one line and ends the run
            self.failed = exc
            failed_loading(exc)  # the run's error, not the chunk's video's

    def run(self, task: ChunkTask, counter: Any = None) -> dict[str, Any]:
        """Run one chunk; its frames so far go to ``counter`` (a ``FrameCounter`` actor) as it runs."""
        if self.failed is not None:
            raise self.failed
        progress = None
        if counter is not None:
            progress = counting(task, lambda t, total: counter.set.remote(t.video, t.chunk["index"], total))
        result = run_chunk(task, self.segmenter, progress)
        result["worker"] = os.getpid()
        return result


def token_without_home() -> bool:
    """Whether a local Ray cluster this run starts needs its token in ``RAY_AUTH_TOKEN``: Ray could not keep one in
    ``~/.ray/auth_token`` (a read-only or missing home: ``HOME=/nonexistent``, a container's random uid). Ray turns
    token authentication on for a cluster it starts and writes the token there first, so ``batch --ray local`` ended
    with its PermissionError's traceback, exit 1. A check only: nothing is made (``~/.ray`` was, as a side effect)."""
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return False
    try:
        folder = Path(os.path.join(Path.home(), ".ray"))  # as Ray finds it (expanduser gave "~" itself with no home at all)
        if (folder / "auth_token").is_file():
            return False
        there = folder
        while not there.exists() and there != there.parent:  # Ray makes the folders missing: the first that exists must take them
            there = there.parent
        return not (there.is_dir() and os.access(there, os.W_OK | os.X_OK))
    except (OSError, RuntimeError):  # no home at all
        return True


@contextlib.contextmanager
def local_token() -> Iterator[bool]:
    """While a local Ray cluster starts (``ray.init(address="local")``), a token in ``RAY_AUTH_TOKEN`` where the home
    cannot keep one (``token_without_home``; yields whether one was given). The cluster's processes, started then,
    keep it in their environment (readable by this user only, ``/proc/PID/environ``), and this driver's Ray has read
    it; the variable then goes from this process's environment: left there for good, a later ``ray.init`` of the same
    Python process to another cluster (the API, a notebook) sent this cluster's token, which that one refused."""
    if not token_without_home():
        yield False
        return
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    try:
        yield True
    finally:
        os.environ.pop("RAY_AUTH_TOKEN", None)


@contextlib.contextmanager
def _unsaid_token_auth_notice() -> Iterator[None]:
    """Drop Ray's "Token authentication is enabled for this Ray cluster" warning while it starts a local cluster.

    Ray (2.5x+) turns token authentication on for a cluster it starts and says so on every run, past ``-q``; the
    warning tells a user of ours nothing to do. Setting ``RAY_AUTH_MODE=token`` ourselves would silence it too, but
    only before Ray reads its config, which an earlier ``import ray`` may have done (the driver then fails to
    authenticate to its own cluster). A warning that auth is *disabled* (a user's ``RAY_AUTH_MODE``) still shows."""
    source = logging.getLogger("ray._private.authentication.authentication_token_setup")

    def unsaid(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled")

    source.addFilter(unsaid)
    try:
        yield
    finally:
        source.removeFilter(unsaid)


# seconds within which a raylet notice said already is not said again: Ray sends a lost node's "Raylet is terminated"
# once from each of that node's worker processes
NOTICE_REPEAT_SECONDS = 120.0
# lines of one raylet notice joined into its one line, at most
NOTICE_LINES = 4


# terminal escape sequences (ECMA-48): CSI (colours, and cursor moves and erasing: ESC[1A ESC[2K), OSC (a title, a
# hyperlink: ESC]8;;URL ESC\), and the others, ESC, intermediates, a final byte (ESC(B, which `tput sgr0` ends a colour
# with; ESC7 and ESC8, which save and restore the cursor; ESC c, a reset); then the control characters left, the C1
# ones too (U+0080-U+009F: U+009B is a CSI to xterm in UTF-8), written \xNN
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[ -/]*[0-~]")
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")


def _printable(line: str) -> str:
    """``line`` without terminal escape sequences, its other control characters written ``\\xNN``, its runs of spaces and
    tabs one space: a notice's cursor moves (ESC[1A ESC[2K) erased the terminal's line above it, our last warning or
    progress line, and a log file kept the raw codes."""
    plain = _CONTROLS.sub(lambda m: f"\\x{ord(m[0]):02x}", _ESCAPES.sub("", line))
    return " ".join(plain.split())


# a Python traceback's first line, and the line that names what it raised (``RuntimeError: Version mismatch: ...``)
_TRACEBACK = "Traceback (most recent call last):"
_RAISED = re.compile(r"[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning)(?::|$)")
# the prefix of a raylet's own log line (``[2026-12-07 14:09:38,559 E 13826 13826] (raylet) node_manager.cc:3517: ``)
_LOG_PREFIX = re.compile(r"\[\d{4}-\d\d-\d\d [\d:,.]+ [A-Z] \d+ \d+\] (?:\(\w+\) )?[\w.-]+:\d+: ")


def _raised(lines: list[str]) -> list[str]:
    """The error a traceback's lines end on: from the line naming the exception (after the last frame) to the end."""
    last_frame = max((i for i, line in enumerate(lines) if line.startswith('File "')), default=-1)
    for i in range(last_frame + 1, len(lines)):
        if _RAISED.match(lines[i]):
            return lines[i:i + 2 * NOTICE_LINES]
    return lines[-1:]


def notice_line(message: str) -> str:
    """One raylet notice as one line: its lines joined, up to one that announces what follows (``... Last 20 lines of
    the Raylet logs:``: the raylet's log, left out with its announcement), without tabs, runs of spaces or terminal
    colours. A notice that is, or goes on with, a Python traceback (the autoscaler's, the log monitor's or the
    dashboard's "... failed with the following error:", a worker's version mismatch) ends on the error it raised.

    Ray's first line alone cut "... has been marked dead ... This can happen when a (1) raylet crashes unexpectedly
    (OOM, etc.)" before its "(2) ...", and ended "Raylet is terminated ..." on "Last 20 lines of the Raylet logs:",
    announcing lines that were not there; a traceback's notice said "Traceback (most recent call last):", or "... failed
    with the following error:", and not the error."""
    lines = [line for line in (_printable(raw) for raw in message.splitlines()) if line]
    kept: list[str] = []
    for i, line in enumerate(lines):
        if line == _TRACEBACK:  # the error it ends on, not its frames
            kept.extend(_raised(lines[i + 1:]))
            break
        if line.endswith(":"):
            if _TRACEBACK in lines[i + 1:]:  # "... failed with the following error:", then the traceback
                kept.append(line)
                continue
            said, dot, _ = line.rpartition(". ")
            kept.append(said + dot.strip() if said else line)
            break
        kept.append(line)
        if len(kept) >= NOTICE_LINES:
            break
    return " ".join(kept)


def raylet_log_notices(lines: list[Any]) -> list[str]:
    """A raylet's own log lines, as Ray's log monitor hands a batch of them over (its ``raylet.err``: the OOM killer's
    "33 Workers (tasks / actors) killed due to memory pressure (OOM) ...", a blank line, then its advice "Refer to the
    documentation ... `RAY_memory_usage_threshold` ..."): one message for each log line's prefix, the prefix left out."""
    messages: list[list[str]] = []
    for raw in lines:
        line = _COLOURS.sub("", str(raw))
        prefix = _LOG_PREFIX.match(line)
        if prefix or not messages:
            messages.append([])
        messages[-1].append(line[prefix.end():] if prefix else line)
    return ["\n".join(message) for message in messages]


def raylet_notices_to_stderr(ray: Any) -> Any:
    """Say what Ray's raylets report to the driver (a node lost: "Raylet is terminated ...", then its log's last 20
    lines; "... has been marked dead"; the OOM killer's count of workers it killed, with its advice) as warnings on
    standard error, one line each (``notice_line``), once; returns the undo.

    Ray printed the first on standard output, among ``--progress-json -``'s JSON lines (30 lines of a raylet's log for
    one lost node), where a reader takes every line for an event; then on standard error, each message's first line, in
    the terminal's yellow (escape codes in a log file), the same one twice (from each of the node's processes), and
    cut mid-sentence. The raylet's own log lines (``raylet.err``, which Ray's log monitor sends) came through Ray's log
    printer, as a yellow ``(raylet)`` before each line, blank ones included. Its workers' own output is left as Ray
    prints it."""
    worker = getattr(getattr(ray, "_private", None), "worker", None)
    printed = getattr(worker, "print_to_stdstream", None)
    if printed is None:  # another Ray: its own way
        return lambda: None
    said: dict[str, float] = {}
    lock = threading.Lock()  # two of Ray's threads say them: its error listener and its log printer

    def say(messages: Iterable[str]) -> None:
        now = time.monotonic()
        for message in messages:
            line = notice_line(message)
            with lock:
                if not line or now - said.get(line, -NOTICE_REPEAT_SECONDS) < NOTICE_REPEAT_SECONDS:
                    continue
                said[line] = now
            log.warning("Ray: %s", line)

    # Ray's error listener's: raylet notices only. Its arguments passed on as given: Ray before 2.38 (pyproject allows
    # 2.10) calls print_to_stdstream(data) alone, so a required ``ignore_prefix`` raised TypeError in that thread at its
    # first notice: a traceback, and Ray's error listener dead for the rest of the process, the caller's later Ray use too
    def to_stderr(data: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        if data.get("pid") != "raylet":
            printed(data, *args, **kwargs)
            return
        say(str(message) for message in data.get("lines", []))

    worker.print_to_stdstream = to_stderr  # read at each call by Ray's thread that prints them (listen_error_messages)

    # the log printer's handler, bound to Ray's printer when the driver connected (ray.init): the raylet's log lines
    # are said as notices too, every worker's output passed on to it as it was
    dispatcher = getattr(worker, "global_worker_stdstream_dispatcher", None)
    handlers = getattr(dispatcher, "handlers", None)
    wrapped: dict[Any, Any] = {}  # {our handler: Ray's}

    def wrap(handler: Any) -> Any:
        def logs(data: dict[str, Any]) -> None:
            if data.get("pid") == "raylet":
                say(raylet_log_notices(list(data.get("lines", []))))
            else:
                handler(data)
        wrapped[logs] = handler
        return logs

    if isinstance(handlers, list) and hasattr(dispatcher, "_lock"):
        with dispatcher._lock:
            try:  # another Ray's handlers, not (name, handler) pairs: left as they are, Ray printing them its own way
                ours = [(name, wrap(handler) if name == "ray_print_logs" else handler) for name, handler in dispatcher.handlers]
            except (TypeError, ValueError):
                wrapped.clear()
            else:
                dispatcher.handlers = ours

    def undo() -> None:
        if getattr(worker, "print_to_stdstream", None) is to_stderr:
            worker.print_to_stdstream = printed
        if wrapped:
            with dispatcher._lock:
                dispatcher.handlers = [(name, wrapped.get(handler, handler)) for name, handler in dispatcher.handlers]

    return undo


class FrameCounter:
    """A Ray actor holding each running chunk's latest frame count, which the driver collects."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, int], int] = {}

    def set(self, video: str, chunk: int, frames: int) -> None:
        self.counts[(video, chunk)] = frames

    def take(self) -> dict[tuple[str, int], int]:
        counts, self.counts = self.counts, {}
        return counts


def say_gpus_unused(resources: dict[str, float], device: str, gpus_per_worker: float) -> None:
    """Warn when the cluster has GPUs that ``--device auto`` workers cannot use: Ray hides every GPU from an actor that
    reserves none (its CUDA_VISIBLE_DEVICES is empty), so a first ``--ray local`` run on a GPU machine ran every
    worker on the CPU without a word, at a fraction of ``process``'s speed there. ``--device cuda`` reserves one
    a worker by itself (``commands.batch``); ``--device cpu`` asks for the CPU."""
    gpus = resources.get("GPU", 0)
    if gpus <= 0 or gpus_per_worker > 0 or device != "auto":
        return
    log.warning(f"the Ray cluster has {gpus:g} GPU{'s' if gpus != 1 else ''}, which workers reserving none cannot see (Ray hides "
                f"them), so {option('device', 'auto')} runs every worker on the CPU; {option('gpus_per_worker', 1)} gives "
                f"each worker a GPU (one worker a GPU), {option('device', 'cpu')} keeps them on CPUs without this warning")  # fmt: skip


class RayExecutor:
    """Chunks spread over ``workers`` Ray actors, each fed a new chunk as soon as it finishes one."""

    def __init__(self, job: FileJob, address: str, *, workers: Optional[int] = None, cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0) -> None:
        ray = import_ray()
        self.ray = ray
        self._owns = False
        if not ray.is_initialized():
            try:
                with _keeping_sigterm():
                    if address == "local":
                        with local_token(), _unsaid_token_auth_notice():
                            # "local", not None: ray.init() with no address joins the cluster RAY_ADDRESS names, or the one a
                            # `ray start` on this machine left in /tmp/ray/ray_current_cluster (a cluster's own nodes)
                            ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True,
                                     **local_ray_cpus(gpus_per_worker))
                    else:
                        _answers(address)
                        ray.init(address=address, logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                if _token_refused(exc):  # Ray's own line was "Failed to connect to Ray cluster at HOST:PORT", 27 s on
                    raise ConfigError(f"cannot connect to the Ray cluster at {address!r}: it refused this driver's token (InvalidAuthToken); "
                                      "a cluster started with token authentication (Ray's default since 2.5x) needs RAY_AUTH_MODE=token "
                                      "here and its token: the head's ~/.ray/auth_token copied here, RAY_AUTH_TOKEN_PATH or "
                                      "RAY_AUTH_TOKEN") from exc  # fmt: skip
                raise ConfigError(f"cannot connect to the Ray cluster at {address!r}: {exc}") from exc
            except KeyboardInterrupt:
                if ray.is_initialized():  # stopped as Ray started: what it started goes too
                    ray.shutdown()
                raise
            self._owns = True
        self._notices_back = raylet_notices_to_stderr(ray)
        try:
            self._start(job, address, workers, cpus_per_worker, gpus_per_worker)
        except BaseException:  # refused (no room for the workers asked for): the Ray started here, and Ray's printer, as they were
            self._leave()
            raise

    def _start(self, job: FileJob, address: str, workers: Optional[int], cpus_per_worker: float, gpus_per_worker: float) -> None:
        ray = self.ray
        self.where = f"Ray {address}"
        resources = ray.cluster_resources()
        say_gpus_unused(resources, job.inference.device, gpus_per_worker)
        if workers is None:
            if gpus_per_worker > 0:
                workers = int(resources.get("GPU", 0) // gpus_per_worker)
            else:
                workers = int(resources.get("CPU", 1) // cpus_per_worker)
        if workers < 1:
            raise ConfigError(f"the Ray cluster ({resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs) has no room for one worker "
                              f"of {cpus_per_worker:g} CPUs and {gpus_per_worker:g} GPUs")  # fmt: skip
        need_cpu, need_gpu = workers * cpus_per_worker, workers * gpus_per_worker
        if need_cpu > resources.get("CPU", 0) or need_gpu > resources.get("GPU", 0):
            # an actor that does not fit would wait for resources forever, and its chunks with it
            raise ConfigError(f"{workers} workers of {cpus_per_worker:g} CPUs and {gpus_per_worker:g} GPUs need {need_cpu:g} CPUs and "
                              f"{need_gpu:g} GPUs; the Ray cluster has {resources.get('CPU', 0):g} and {resources.get('GPU', 0):g}")  # fmt: skip
        self.workers = workers
        self._cpus, self._gpus = cpus_per_worker, gpus_per_worker
        # max_task_retries=0: the driver retries a chunk whose worker died, on any worker that is up (run())
        actor = ray.remote(ChunkWorker).options(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_restarts=MAX_RESTARTS, max_task_retries=0)
        threads = max(1, int(cpus_per_worker))
        self._actor, self._job, self._threads = actor, job.to_dict(), threads
        self._folder = os.getcwd()
        # a worker imports OpenVINO in a process of its own, which sent OpenVINO's usage event (and wrote ~/intel) from
        # every worker of a `birefvid batch --ray` run, where the command line's own process sends none
        self._no_telemetry = telemetry_off()
        self._actors = [actor.remote(self._job, threads, self._folder, self._no_telemetry) for _ in range(workers)]
        # the counter's actor class, made (and sent to the head) once: each ray.remote(FrameCounter) is a class of its own,
        # sent to the head again as its first actor is made, a put that waits for the head without a timeout: a counter
        # lost with the head's node and made again hung the driver there until Ray ended it (exit 1, 60 s on), past the
        # head check and past a SIGTERM
        self._counter_class = ray.remote(FrameCounter).options(num_cpus=0)
        self._counter = self._counter_class.remote()
        self._running: dict[Any, tuple[ChunkTask, Any]] = {}
        # videos in a row whose chunk killed its worker every time, kept from run to run: a watch runs each video
        # dropped in on its own, and workers that die loading the model (the OOM killer) had each skipped as its fault
        self._dying: set[str] = set()
        # workers whose chunk died, until Ray has them up again: {their __ray_ready__ call: the worker}; kept from run to run
        self._starting: dict[Any, Any] = {}
        # workers Ray said were unavailable for now (their node not yet marked dead, or restarting): {the worker: when to
        # ask again}; kept from run to run
        self._unavailable: dict[Any, float] = {}
        # workers seen up (a chunk's result, or Ray's restart answered), by id(), and workers in a row gone for good
        # without ever being up: they die as they start (the OOM killer as the model loads, torch missing on their node)
        self._up: set[int] = set()
        self._never_up = 0
        # told of each chunk tried again, with why (the runner's progress says it: a `chunk_retried` event)
        self.on_retry: Optional[Callable[[ChunkTask, str], None]] = None
        self._address = address
        self._head_silent_since: Optional[float] = None
        self.head_lost = False

    def run(
        self, tasks: Iterable[ChunkTask], on_result: OnResult, on_frames: Optional[OnFrames] = None,
        on_failure: Optional[OnFailure] = None, skip: Optional[Skip] = None,
    ) -> None:
        ray = self.ray
        queue = deque(tasks)
        starting = self._starting
        unavailable = self._unavailable
        free = [a for a in self._actors if a not in starting.values() and a not in unavailable]
        running: dict[Any, tuple[ChunkTask, Any]] = {}
        self._running = running  # what close() waits on when the run is stopped midway
        counter = self._counter if on_frames is not None else None
        # one video's chunks running side by side on every worker (an 8K clip the OOM killer stops) are one death,
        # not a stop of the whole batch
        dying = self._dying
        deaths: dict[str, int] = {}  # chunk file -> times its worker died in it
        none_up_since: Optional[float] = None
        while queue or running:
            while queue and free:
                task = queue.popleft()
                if skip is not None and skip(task):
                    continue
                actor = free.pop()
                running[actor.run.remote(task, counter)] = (task, actor)
            if queue and not running and not free:  # every worker down: lost with its node, restarting elsewhere or no room left
                none_up_since = none_up_since if none_up_since is not None else time.monotonic()
                if time.monotonic() - none_up_since > NO_ROOM_SECONDS:
                    raise ClusterLost(f"no Ray worker has been up for {NO_ROOM_SECONDS:g} s: lost with their nodes (or dying as they "
                                      f"start), and {self._room()}")  # fmt: skip
            else:
                none_up_since = None
            for actor, due in list(unavailable.items()):  # asked again whether they are up, a poll after the last answer
                if due <= time.monotonic():
                    del unavailable[actor]
                    starting[actor.__ray_ready__.remote()] = actor
            if running or starting:
                done, _ = ray.wait([*running, *starting], num_returns=1, timeout=POLL_SECONDS)
            else:  # every worker unavailable for now: asked again after a poll
                done = []
                time.sleep(POLL_SECONDS)
            self._check_head()
            if on_frames is not None:
                by_key = {(t.video, t.chunk["index"]): t for t, _ in running.values()}
                for key, frames in self._frame_counts().items():
                    if key in by_key:
                        on_frames(by_key[key], frames)
                counter = self._counter  # a fresh one, where the last was lost with its node
            for ref in done:
                if ref in starting:  # a worker whose chunk died: up again (Ray restarted it), or gone for good
                    actor = starting.pop(ref)
                    try:
                        ray.get(ref)
                        free.append(actor)
                        self._is_up(actor)
                    except _ray_errors(ray, "ActorUnavailableError") as exc:  # Ray 2.2x+ (a DeveloperAPI)
                        # not up yet: its node not yet marked dead, or Ray restarting it (placed once a node has room). Not
                        # gone for good: taken for a dead worker, a fresh one was made in its place, and the old one, which Ray
                        # then restarted on the first node with room, kept that room to itself, unused: the fresh one, and the
                        # run, waited for room that a node joining the cluster had brought, until NO_ROOM_SECONDS ended it
                        log.debug("a Ray worker is not up yet (%s); asking again", _first_line(exc))
                        unavailable[actor] = time.monotonic() + POLL_SECONDS
                    # Ray restarts it no more: a fresh one takes its place, once up. A worker Ray's memory monitor killed
                    # for good (its restarts spent, as it loads the model or on a chunk) answers every call with
                    # OutOfMemoryError at once, not RayActorError: taken for one not up yet, it was asked again every
                    # poll for ever, never replaced nor counted, and the run ended NO_ROOM_SECONDS later saying its
                    # workers were "lost with their nodes" (a rerun the same). Killed here first (no restart), so one
                    # that was in fact being restarted leaves its room to the fresh one
                    except _ray_errors(ray, "RayActorError", "OutOfMemoryError") as exc:
                        if not isinstance(exc, ray.exceptions.RayActorError):
                            self._kill(actor)
                        self._gone_before_up(actor, exc)
                        fresh = self._replace(actor)
                        starting[fresh.__ray_ready__.remote()] = fresh
                    continue
                task, actor = running.pop(ref)
                try:
                    outcome: Any = self._get(ref, task)
                    dying.clear()
                    self._is_up(actor)
                except WorkerDied as exc:
                    if skip is not None and skip(task):  # its video failed meanwhile (another chunk's damage): not tried again,
                        # nor said to be ("chunk_retried ... try 2 of 4" after that video's video_failed); what the dead worker
                        # was writing removed as for any chunk given up on. Ray restarts the worker: back in use once up
                        starting[actor.__ray_ready__.remote()] = actor
                        deliver(task, functools.partial(_unwrap, exc), on_result, on_failure)
                        continue
                    deaths[task.path] = tries = deaths.get(task.path, 0) + 1
                    if tries <= MAX_RESTARTS:  # its process killed, or its node lost: the chunk again, on the first worker up
                        log.debug("%s; trying it again", exc)
                        if self.on_retry is not None:  # said: the run's output and JSON lines showed nothing of it
                            self.on_retry(task, f"its Ray worker was lost mid-chunk (its process or its node gone); running the chunk again, "
                                               f"try {tries + 1} of {MAX_RESTARTS + 1}")  # Ray's own words: -v
                        queue.appendleft(task)
                        starting[actor.__ray_ready__.remote()] = actor  # back in use once Ray has restarted it
                        continue
                    dying.add(task.video)
                    if len(dying) >= DEATHS_IN_A_ROW:  # not one video's fault: workers that cannot run at all (no memory for the model)
                        raise PipelineError("worker", f"Ray workers died on {len(dying)} videos in a row; the last: {exc}") from None
                    actor, outcome = self._replace(actor), exc
                except SourceError as exc:
                    outcome = exc
                    dying.clear()
                free.append(actor)
                deliver(task, functools.partial(_unwrap, outcome), on_result, on_failure)

    def _kill(self, actor: Any) -> None:
        """Stop a worker for good (Ray restarts it no more), best effort."""
        try:
            self.ray.kill(actor)
        except Exception as exc:  # noqa: BLE001 - it may be gone already
            log.debug("could not stop a Ray worker: %s", exc)

    def _is_up(self, actor: Any) -> None:
        self._up.add(id(actor))
        self._never_up = 0

    def _gone_before_up(self, actor: Any, exc: BaseException) -> None:
        """Count a worker Ray restarts no more that was never up; ``DEATHS_IN_A_ROW`` of them end the run.

        A worker that dies as it starts (the OOM killer as it loads the model, an error raised in its creation: torch
        missing on its node) never took its chunk again, so no video was ever skipped for it: fresh workers took its
        place one after another, each dying as it started, under a page of Ray's traceback each, until
        ``NO_ROOM_SECONDS`` said the cluster was lost and that a rerun resumes (it fails alike)."""
        if id(actor) in self._up:
            return
        self._never_up += 1
        if self._never_up >= DEATHS_IN_A_ROW:
            why = _first_line(exc)
            if isinstance(exc, getattr(self.ray.exceptions, "OutOfMemoryError", ())):
                why += "; RAY_memory_usage_threshold, where the cluster starts, sets where Ray's memory monitor kills"
            raise PipelineError("worker", f"{self._never_up} Ray workers in a row died as they started, Ray restarting each up to "
                                          f"{MAX_RESTARTS} times (out of memory loading the model, or an error as the worker starts: Ray's lines "
                                          f"above say which); the last: {why}") from None  # fmt: skip

    def _frame_counts(self) -> dict[tuple[str, int], int]:
        """The running chunks' latest frame counts; none this time where the counter was lost.

        The counter reserves no CPU, so Ray may place it on any node: a node lost mid-run (its raylet killed, the
        machine gone) took it along, and this poll's ``ActorDiedError`` ended the whole run in a traceback (exit 1),
        where the chunks themselves were being retried. A fresh counter takes its place; the counts are progress only."""
        ray = self.ray
        try:
            # bounded: a counter made again while the cluster's head is gone is never placed, and a get without a
            # timeout waited on it for ever, past the head check
            return ray.get(self._counter.take.remote(), timeout=POLL_SECONDS)  # type: ignore[no-any-return]
        except ray.exceptions.GetTimeoutError:
            return {}
        except _ray_errors(ray, "RayActorError", "OutOfMemoryError") as exc:  # killed by Ray's memory monitor too
            log.debug("the frame counter was lost (%s); starting another", _first_line(exc))
            self._counter = self._counter_class.remote()
            return {}

    def _room(self) -> str:
        """What the cluster's live nodes have free, said against one worker's needs."""
        try:
            free = self.ray.available_resources()
            nodes = sum(1 for n in self.ray.nodes() if n.get("Alive"))
        except Exception as exc:  # noqa: BLE001 - for a message only
            log.debug("could not read the cluster's resources: %s", exc)
            return "the cluster did not say what it has free"
        return (f"{nodes} node{'s' if nodes != 1 else ''} left with {free.get('CPU', 0):g} CPUs and {free.get('GPU', 0):g} GPUs free "
                f"for a worker of {self._cpus:g} CPUs and {self._gpus:g} GPUs")  # fmt: skip

    def _check_head(self) -> None:
        """``ClusterLost`` once the cluster's head (its GCS) has not answered for ``HEAD_LOST_SECONDS``.

        Chunks already running go on without the head (the workers and the driver talk directly), so a stopped head,
        its machine gone or the network to it cut showed nothing for a minute; then Ray ended the driver (exit 1, its own
        log line), leaving the lock, the running chunks' ``.partial-*`` files and no ``stopped`` line."""
        gcs = getattr(getattr(self.ray, "_private", None), "worker", None)
        client = getattr(getattr(gcs, "global_worker", None), "gcs_client", None)
        if client is None:  # Ray Client (ray://), or a Ray without it: Ray's own handling
            return
        try:
            client.internal_kv_get(b"birefvid-head-check", None, timeout=HEAD_ASKED_SECONDS)
            self._head_silent_since = None
            return
        except Exception as exc:  # noqa: BLE001 - any failure to answer (RpcError, GetTimeoutError, ...)
            log.debug("the Ray head did not answer: %s", exc)
        now = time.monotonic()
        if self._head_silent_since is None:
            self._head_silent_since = now
        elif now - self._head_silent_since >= HEAD_LOST_SECONDS:
            self.head_lost = True
            raise ClusterLost(f"the Ray cluster's head ({self._address}) has not answered for {HEAD_LOST_SECONDS:g} s: stopped, its "
                              f"machine gone or the network to it cut")  # fmt: skip

    def _replace(self, dead: Any) -> Any:
        """A new worker in place of one that died more often than Ray restarts it.

        The dead one is forgotten as seen up (``_up`` holds ``id()``s): CPython puts a new handle where a freed one was,
        so a fresh worker made after it, with its ``id()``, was taken for one seen up, and its death as it started was
        not counted towards ``DEATHS_IN_A_ROW`` (one more fresh worker, and its model load, each time)."""
        self._up.discard(id(dead))
        fresh = self._actor.remote(self._job, self._threads, self._folder, self._no_telemetry)
        self._actors = [fresh if a is dead else a for a in self._actors]
        return fresh

    def _get(self, ref: Any, task: ChunkTask) -> dict[str, Any]:
        """The chunk's result; a worker's error becomes the same one-line error a local run gives."""
        ray = self.ray
        from ..errors import BirefvidError

        try:
            return ray.get(ref)  # type: ignore[no-any-return]
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else None
            if isinstance(cause, BirefvidError):
                raise cause from None
            if cause is not None and is_load_failure(cause):  # torch's "CUDA out of memory" as the model moved to the GPU
                raise could_not_load(cause, on_ray=True) from None
            raise PipelineError("worker", f"chunk {task.chunk['index']} of {task.video} failed on a Ray worker: {cause or exc}") from None
        except getattr(ray.exceptions, "OutOfMemoryError", ()) as exc:  # Ray's memory monitor killed the worker (a RayError,
            # not a RayActorError: it passed by, and the whole batch stopped on its 90 lines: "batch stopped (2 worker(s) were killed ...")
            tries = MAX_RESTARTS + 1
            raise WorkerDied(f"chunk {task.chunk['index']} of {task.video}: its Ray worker died {tries} time{'s' if tries > 1 else ''}, the last killed by "
                             f"Ray's memory monitor, its node low on memory ({_first_line(exc)}); RAY_memory_usage_threshold, where the "
                             f"cluster starts, sets where it kills") from None  # fmt: skip
        except ray.exceptions.RayActorError as exc:
            tries = MAX_RESTARTS + 1
            why = _first_line(exc)  # Ray's text goes on for lines
            raise WorkerDied(f"chunk {task.chunk['index']} of {task.video}: its Ray worker died {tries} time{'s' if tries > 1 else ''} "
                             f"(out of memory, or a crash in native code?): {why}") from None  # fmt: skip

    def close(self) -> None:
        """Stop the workers, then Ray's printers put back as they were (and the Ray started here shut down), whatever
        stops the stopping: a second Ctrl-C or SIGTERM in its 10 s wait for the killed workers left Ray's notices
        printer and log printer ours, in a notebook's or service's process that goes on with Ray."""
        try:
            self._stop_workers()
        finally:
            self._leave()

    def _stop_workers(self) -> None:
        if self.head_lost:  # nothing to ask a cluster without its head (Ray's calls hang until it ends the process): leave
            self._actors, self._running = [], {}
            return
        for ref in self._running:  # cancelled first: a chunk of a worker killed below is not retried, nor "will be retried" printed
            try:
                self.ray.cancel(ref)
            except Exception as exc:  # noqa: BLE001 - best effort at shutdown
                log.debug("could not cancel a chunk: %s", exc)
        for actor in self._actors:
            try:
                self.ray.kill(actor)
            except Exception as exc:  # noqa: BLE001 - best effort at shutdown
                log.debug("could not stop a Ray worker: %s", exc)
        self._actors = []
        if self._running:  # stopped midway: wait (briefly) for the killed workers to go, so their files can be removed
            try:
                self.ray.wait(list(self._running), num_returns=len(self._running), timeout=10)
            except Exception as exc:  # noqa: BLE001 - best effort at shutdown
                log.debug("could not wait for the Ray workers to stop: %s", exc)
            self._running = {}
        try:
            self.ray.kill(self._counter)
        except Exception as exc:  # noqa: BLE001 - best effort at shutdown
            log.debug("could not stop the frame counter: %s", exc)

    def _leave(self) -> None:
        # the Ray started here shut down first, its printers ours until then: a lost node's "... has been marked dead"
        # notice that came after the last chunk, between the printers put back and the shutdown, went to standard
        # output in Ray's yellow, among `--progress-json -`'s JSON lines (CI under load)
        try:
            if self._owns:
                self.ray.shutdown()
        finally:
            getattr(self, "_notices_back", lambda: None)()
