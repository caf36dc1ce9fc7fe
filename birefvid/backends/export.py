"""BiRefNet to ONNX with standard operators only, and a cache of exports per weights, size and batch.

The decoder's deformable convolution exports as ``GridSample`` + a 1x1 ``Conv`` in row bands (see
``models/deform.py``), so the file loads in any ONNX runtime without custom operators. Exports take
10-60 s on a 2-core CPU, so each (weights, input size, batch) is exported once and kept in
``$BIREFVID_CACHE_DIR`` (default ``~/.cache/birefvid``), written to a temporary name and renamed.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import io
import logging
import os
import stat
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

import torch

from .. import __version__, exiting
from ..errors import NOTICE, SinkError, option
from ..user_paths import expand_home
from ..users import user_name
from .cache_trust import file_distrust, folder_distrust

if TYPE_CHECKING:
    import subprocess

log = logging.getLogger(__name__)

CACHE_ENV = "BIREFVID_CACHE_DIR"
OPSET = 18
GRAPH_VERSION = 5  # bump when the exported graph changes (e.g. how the deformable convolution is built; 5: the output named)
INPUT_NAME, OUTPUT_NAME = "x", "logits"  # the names docs/speed.md gives a user's own ONNX Runtime or OpenVINO code


def cache_dir() -> Path:
    """Where exported models (and OpenVINO's compiled blobs) are kept. A leading ``~`` in either variable is the home
    folder, as ``HF_HOME`` and ``TORCH_HOME`` read it: set where no shell expands it (a Dockerfile's ``ENV``, a systemd
    unit, a ``.env`` file, ``os.environ`` in a notebook), it made a folder named ``~`` in each working folder, a
    cache apiece, each exporting the model again."""
    root = os.environ.get(CACHE_ENV) or os.path.join(os.environ.get("XDG_CACHE_HOME") or _home() / ".cache", "birefvid")
    return Path(expand_home(root))



def _home() -> Path:
    """The home folder, or ``/`` (as Docker gives a uid without a passwd entry) where none can be found."""
    try:
        return Path.home()
    except RuntimeError:  # HOME unset and no passwd entry for this uid
        return Path("/")


_fallbacks_said: set[str] = set()


def _usable(folder: Path) -> Optional[str]:
    """None when files can be made in ``folder`` (made now if missing), else why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        file = next((p for p in (folder, *folder.parents) if p.is_file()), None)  # "Not a directory" named none
        return f"{file} is a file, not a folder" if file is not None else e.strerror or str(e)
    return None if os.access(folder, os.W_OK | os.X_OK) else "not writable"


def _remedy(wanted: str) -> str:
    """How to give the cache ``wanted`` ("a writable folder"): set the variable, or, when it is set already (it named the
    folder that failed), point it elsewhere; "set BIREFVID_CACHE_DIR" told a user who had set it to do so."""
    if os.environ.get(CACHE_ENV):
        return f"{CACHE_ENV} is {os.environ[CACHE_ENV]}: point it at {wanted}"
    return f"set {CACHE_ENV} to {wanted}"


def fallback_cache_dir() -> Path:
    """The cache used when ``cache_dir()`` cannot be written: a folder of this user's in the temporary
    folder (``/tmp/birefvid-cache-UID``), kept between runs on this machine."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"birefvid-cache-{uid}"


def writable_cache_dir(sub: str) -> Path:
    """``cache_dir() / sub`` made if missing; where that cannot be written (a read-only home in a CI
    container, a cache baked read-only into an image) ``fallback_cache_dir() / sub`` instead, with one
    warning saying so, rather than failing the run. SinkError if neither can be written."""
    primary = cache_dir() / sub
    why = _usable(primary)
    distrust = folder_distrust(primary)  # a read-only one too: its baked files are linked below, and run
    if why is None and distrust is None:
        return primary
    root = fallback_cache_dir()
    try:
        root.mkdir(mode=0o700, exist_ok=True)
        st = root.lstat()  # not through a link: another user's link there could be pointed elsewhere once checked
    except OSError as e:
        raise SinkError(f"cannot write the cache {primary} ({why}) nor {root} ({e.strerror or e}); {_remedy('a writable folder')}") from e
    if hasattr(os, "getuid") and (not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022):
        # someone else's folder (or link) in a shared /tmp: models from there would run as ours
        raise SinkError(f"cannot write the cache {primary} ({why}), and {root} is not this user's own; {_remedy('a writable folder')}")
    folder = root / sub
    why_not = _usable(folder)
    if why_not is not None:
        raise SinkError(f"cannot write the cache {primary} ({why}) nor {folder} ({why_not}); {_remedy('a writable folder')}")
    if str(primary.parent) not in _fallbacks_said:  # once a run, not once per sub-folder
        _fallbacks_said.add(str(primary.parent))
        if distrust is not None:
            log.warning("the cache %s is not used: %s, and a model put there would run as yours; using %s instead (%s)",
                        primary.parent, distrust, root, _remedy("a folder of your own"))  # fmt: skip
        else:
            log.warning("the cache %s cannot be written (%s): using %s instead (%s)", primary.parent, why, root,
                        _remedy("a writable folder to keep it elsewhere"))  # fmt: skip
    _drop_distrusted_links(folder)
    if distrust is None:  # a read-only cache's files are linked; another user's are not
        _link_baked(primary, folder)
    return folder


def _drop_distrusted_links(folder: Path) -> None:
    """Remove the links in ``folder`` to files another user could have written: a version before this check
    linked a read-only cache's blobs whoever owned them, and OpenVINO would go on loading them through the link."""
    try:
        links = [Path(entry.path) for entry in os.scandir(folder) if entry.is_symlink()]
    except OSError:
        return
    for link in links:
        # another user could have written it, or this user cannot read it (a version before this check linked a
        # 0600 blob, whose loading then failed in every run)
        if file_distrust(link) is not None or not os.access(link, os.R_OK):
            with contextlib.suppress(OSError):
                link.unlink()


def _link_baked(primary: Path, folder: Path) -> None:
    """Link each file of the read-only ``primary`` into the fallback ``folder`` where it has none, unless another user
    could have written it (``file_distrust``): OpenVINO reads its compiled blobs from the one folder it writes, so a blob baked into an image was compiled
    again in every container (seconds to tens of seconds a start). A stale one it replaces with a file."""
    try:
        names = [entry.name for entry in os.scandir(primary) if entry.is_file() and not entry.name.startswith(".")]
    except OSError:  # missing or unreadable: nothing baked
        return
    for name in names:
        target = folder / name
        if file_distrust(primary / name) is not None:  # another user's file in a root folder: they can rewrite it
            continue
        if not os.access(primary / name, os.R_OK):  # made 0600 by another user (umask 077): compiled again instead
            continue
        if not os.path.lexists(target):
            try:
                os.symlink(primary / name, target)
            except OSError:  # no symlinks (Windows without the privilege): compiled again, as before
                return


def weights_digest(model: torch.nn.Module) -> str:
    """A short hash of every parameter and buffer: two models share an export only if their weights are equal.

    Hashed afresh at each call (0.16 s for 44M parameters, ``general`` ~0.8 s): no cheap sign tells weights changed
    (``p.data.add_()`` and writes through ``.numpy()`` bump no version counter), and a stale digest loads the
    export of other weights. An engine, whose weights are fixed once it exported, keeps its own (``_ExportedEngine``)."""
    h = hashlib.blake2b(digest_size=8)
    for key, tensor in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


# the exporter's own progress lines ("[torch.onnx] Obtain model graph ..."), in the order it prints them, and the
# step each begins as birefvid says it; the file's writing is the last. Lines it prints otherwise are not steps
EXPORT_STEPS = (
    ("Obtain model graph", "capturing the model's graph (torch.export)"),
    ("Run decomposition", "decomposing it into basic operations"),
    ("Translate the graph into ONNX", "translating it to ONNX"),
)
SAVE_STEP = "writing the file"


class ExportSteps(io.TextIOBase):
    """Stands in for standard output during an export: the exporter prints where it is, and each step it begins
    is said as a notice (``export step 2 of 4: ... (14 s in)``), the rest dropped; a 20-60 s export showed
    nothing between its first and last line. There is no percentage to give: the exporter reports its steps only."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.done: set[int] = set()
        self._line = ""

    def write(self, text: str) -> int:
        self._line += text
        while "\n" in self._line:
            line, self._line = self._line.split("\n", 1)
            self._read(line)
        return len(text)

    def _read(self, line: str) -> None:
        if "[torch.onnx]" not in line or line.rstrip().endswith("\u2705"):  # a step's "... \u2705" says it ended
            return
        for number, (said, what) in enumerate(EXPORT_STEPS, 1):
            if said in line:
                self.step(number, what)
                return

    def step(self, number: int, what: str) -> None:
        """Say that step ``number`` begins, once (the exporter retries a failed graph capture with the same line)."""
        if number in self.done:
            return
        self.done.add(number)
        log.warning("export step %d of %d: %s (%.0f s in)", number, len(EXPORT_STEPS) + 1, what, time.perf_counter() - self.start, extra=NOTICE)


def export_onnx(model: torch.nn.Module, path: str | Path, size: tuple[int, int], batch: int = 1) -> float:
    """Export ``model`` (eval, fp32) for input (batch, 3, h, w) to ``path``; returns the seconds it took.

    Uses the dynamo exporter (the TorchScript one, ~3x cheaper for PVT, fails on Swin's shifted windows and its PVT
    file ran slower in OpenVINO: docs/performance.md); each step it begins is said (``ExportSteps``).
    Written to a temporary name and renamed, so ``path`` is whole or absent. Off the main thread (live mode's
    warm-up, ``iter_masks``' model thread) the export runs in a child process that a stop kills at once
    (``export_worker``); on the main thread, where Ctrl-C interrupts it directly, in this process.
    """
    path = Path(path)
    start = time.perf_counter()
    if _saved_ahead_as(model) is None:  # one saved ahead was made so then, on a thread a stop need not wait for
        model = model.eval().to("cpu", torch.float32)
    from ..io.atomic import fit_name, release_writer_lock, writer_lock  # an output named as long as the disk allows still has a temporary name

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=fit_name(path.stem, "..onnx.partial") + ".", suffix=".onnx.partial", dir=path.parent)
    except OSError as e:  # a read-only or missing folder
        raise SinkError(f"cannot write {path}: {e.strerror or e}") from e
    lock = writer_lock(tmp, fd)  # held while this run writes it: a later export tells it from a killed run's
    exiting.writing(tmp)
    try:
        steps = ExportSteps(start)
        if not _in_child_wanted() or not _export_in_child(model, tmp, path, size, batch, steps):
            _save(export_here(model, size, batch, steps), tmp, path)
        else:
            _commit(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        exiting.written(tmp)
        release_writer_lock(lock)
    return time.perf_counter() - start


def export_here(model: torch.nn.Module, size: tuple[int, int], batch: int, steps: ExportSteps) -> object:
    """Run the exporter on ``model`` in this process: the ONNX program, not yet saved. The exporter's progress is
    said through ``steps``; its other output and warnings, which do not concern our users, are dropped."""
    example = torch.zeros(batch, 3, *size)
    with contextlib.redirect_stdout(steps), warnings.catch_warnings(), _quiet("onnxscript", "onnx_ir"), _imports_undone_on_interrupt():
        warnings.simplefilter("ignore")
        # optimize=False: the exporter's own graph optimisation took most of the export (tiny at 256²:
        # 66 -> 39 s here; swin_v1_t at 512²: 146 -> 30 s) for nothing the engines keep: OpenVINO, ONNX
        # Runtime and TensorRT fold the same constants when they load the file (OpenVINO's fp32 output
        # bit-identical, its speed equal; its first compile takes ~10 s longer, once: the blob is cached)
        # named, or the output is the exporter's name for the graph's last node ("conv2d_118"), which changes with the graph
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=OPSET, external_data=False, optimize=False,
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME])
        steps.step(len(EXPORT_STEPS) + 1, SAVE_STEP)
    return program


def _in_child_wanted() -> bool:
    """Whether to export in a child process: off the main thread, where no signal can interrupt the exporter and
    its hold on the GIL delays the main thread's stop, and where a Python interpreter can be started (not a frozen app).
    On the main thread a stop interrupts the export within a second even on a loaded machine, and a child's
    start (a fresh interpreter importing torch: 2-4 s) would only add to the first run's wait."""
    return threading.current_thread() is not threading.main_thread() and not getattr(sys, "frozen", False) and bool(sys.executable)


def _export_in_child(model: torch.nn.Module, tmp: str, path: Path, size: tuple[int, int], batch: int, steps: ExportSteps) -> bool:
    """Export ``model`` to ``tmp`` in a child process (``export_worker``), saying its steps through ``steps``.

    Returns False, having written nothing, when the model cannot be handed over (a class the child cannot import,
    one that does not pickle): the caller then exports in this process. Raises SinkError when ``tmp`` cannot be
    written, RuntimeError when the exporter fails. The child is killed if this thread is interrupted, and by
    ``exiting.abandon`` when the main thread leaves it waiting (Ctrl-C or SIGTERM during a live run's warm-up)."""
    with _model_file(model, path) as (model_file, owned):
        if model_file is None:
            return False
        child: Optional[subprocess.Popen[bytes]] = None
        messages: Optional[_Messages] = None
        try:
            argv = [model_file, tmp, str(size[0]), str(size[1]), str(batch), str(torch.get_num_threads()), str(os.getpid())]
            child, messages = _start_worker(argv)
            exiting.spawned(child)
            return _follow(child, messages, steps, model_file if owned else None, path)
        except BaseException:  # Ctrl-C on this thread, or any failure: the export must not run on unwatched
            if child is not None and child.poll() is None:
                child.kill()
            raise
        finally:
            if child is not None:
                child.wait()
                exiting.reaped(child)
            if messages is not None:
                messages.close()


# models saved ahead for the export processes (``saved_for_export``): (model, its file, or None where it does not pickle)
_saved_ahead: list[tuple[torch.nn.Module, Optional[str]]] = []


@contextlib.contextmanager
def saved_for_export(model: torch.nn.Module) -> Iterator[None]:
    """Save ``model`` for the export processes now, on the calling thread, rather than on the thread that exports.

    Why: ``torch.save`` is Python that holds the GIL (0.1 s for ``tiny`` on an idle machine). On live mode's niced
    warm-up thread, preempted by a loaded machine's other work, it took 2-4 s, and a Ctrl-C or SIGTERM landing then
    waited that long, as the main thread could not run. Called on the main thread before the warm-up starts, where
    a stop interrupts it at once. The file is in the cache's own folder (the export process loads it with pickle,
    so only this user may write there) and is removed when the block ends. Where the cache cannot be written the
    export is left to save it (and to say why it cannot)."""
    model = model.eval().to("cpu", torch.float32)  # as export_onnx hands it over (in place: the engine's is already so)
    try:
        fd, file = tempfile.mkstemp(prefix=".model.", suffix=".pt.partial", dir=writable_cache_dir("onnx"))
    except (OSError, SinkError) as e:
        log.debug("the model is not saved ahead for its export (%s)", e)
        yield
        return
    from ..io.atomic import release_writer_lock, writer_lock

    lock = writer_lock(file, fd)  # held while in use: a later export removes it only once this run is gone
    exiting.writing(file)
    entry: tuple[torch.nn.Module, Optional[str]] = (model, file)
    try:
        log.debug("saving the model for its export process")
        try:
            torch.save(model, file)
        except OSError as e:  # a full disk: the export says it, in its own words, if it runs
            log.debug("the model is not saved ahead for its export (%s)", e.strerror or e)
            yield
            return
        except Exception as e:  # noqa: BLE001 - a module with a lambda or hook pickles with one of several errors
            log.debug("the model cannot be handed to an export process (%s: %s): it will export in this one", type(e).__name__, e)
            entry = (model, None)
        _saved_ahead.append(entry)
        try:
            yield
        finally:
            _saved_ahead.remove(entry)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(file)
        exiting.written(file)
        release_writer_lock(lock)


def _saved_ahead_as(model: torch.nn.Module) -> Optional[tuple[Optional[str]]]:
    """``(file,)`` where ``saved_for_export`` saved ``model`` (file None: it does not pickle), else None."""
    return next(((file,) for saved, file in list(_saved_ahead) if saved is model), None)


@contextlib.contextmanager
def _model_file(model: torch.nn.Module, path: Path) -> Iterator[tuple[Optional[str], bool]]:
    """The file the export process loads ``model`` from, and whether it is this export's own (removed once loaded):
    the one ``saved_for_export`` saved, or one saved now in ``path``'s folder (the trusted cache), removed after.
    None where the model does not pickle."""
    ahead = _saved_ahead_as(model)
    if ahead is not None:
        yield ahead[0], False
        return
    try:
        fd, model_file = tempfile.mkstemp(prefix=".model.", suffix=".pt.partial", dir=path.parent)  # the trusted cache folder
    except OSError as e:
        raise SinkError(f"cannot write {path}: {e.strerror or e}") from e
    from ..io.atomic import release_writer_lock, writer_lock

    lock = writer_lock(model_file, fd)
    exiting.writing(model_file)
    try:
        try:
            torch.save(model, model_file)
            pickled = True
        except OSError as e:
            raise SinkError(f"cannot write {path}: {e.strerror or e}") from e
        except Exception as e:  # noqa: BLE001 - a module with a lambda or hook pickles with one of several errors
            log.debug("the model cannot be handed to an export process (%s: %s): exporting here", type(e).__name__, e)
            pickled = False
        yield (model_file if pickled else None), True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(model_file)
        exiting.written(model_file)
        release_writer_lock(lock)


def _start_worker(argv: list[str]) -> tuple["subprocess.Popen[bytes]", "_Messages"]:
    """Start ``export_worker`` with this process's interpreter and import path (a model class of the caller's own
    module must load there too), in a session of its own: a terminal's Ctrl-C reaches this process, which ends it.
    Returns the process and the reader of its messages."""
    import subprocess

    here = [p or os.getcwd() for p in sys.path]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(here))
    if os.name != "posix":
        flags = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        child = subprocess.Popen([sys.executable, "-m", "birefvid.backends.export_worker", *argv], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, env=env, creationflags=flags)  # fmt: skip
        return child, _Messages(child, child.stdout.fileno(), None)  # type: ignore[union-attr]
    read, write = os.pipe()
    try:
        child = subprocess.Popen([sys.executable, "-m", "birefvid.backends.export_worker", *argv], stdin=subprocess.DEVNULL,
                                 stdout=write, env=env, start_new_session=True)  # fmt: skip
    except BaseException:
        os.close(read)
        os.close(write)
        raise
    return child, _Messages(child, read, write)


class _Messages:
    """The export process's message lines, read as they come.

    On POSIX this process keeps the pipe's writing end open too, so the child's death (killed by
    ``exiting.abandon`` as the run stops) does not wake the niced thread reading it: a thread woken then runs at
    its low priority on a busy machine, and the process's exit, which must schedule every thread to end it, waited
    seconds for it. A child that dies unasked is noticed by polling it every ``CHILD_POLL_S`` instead of at end of file.
    """

    CHILD_POLL_S = 1.0

    def __init__(self, child: "subprocess.Popen[bytes]", read: int, write: Optional[int]) -> None:
        self.child, self.read, self.write = child, read, write
        self._buffer = b""

    def __iter__(self) -> Iterator[str]:
        import select

        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                yield line.decode(errors="replace")
            if self.write is not None and not select.select([self.read], [], [], self.CHILD_POLL_S)[0]:
                if self.child.poll() is not None:  # ended without a last word (a crash, killed from outside)
                    os.close(self.write)  # what it wrote is read to its end below
                    self.write = None
                continue
            data = os.read(self.read, 65536)
            if not data:
                return
            self._buffer += data

    def close(self) -> None:
        for fd in (self.read, self.write):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _follow(child: "subprocess.Popen[bytes]", messages: _Messages, steps: ExportSteps, model_file: Optional[str], path: Path) -> bool:
    """Read the child's messages until it ends; True once it has written its file, False if it could not load the model.
    ``model_file``, the model's file for this export alone, is removed once the child has read it."""
    import json

    for line in messages:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("loaded"):
            log.debug("the export process started and read the model in %.1f s", time.perf_counter() - steps.start)
            if model_file is not None:
                with contextlib.suppress(OSError):
                    os.unlink(model_file)  # read: up to 900 MB need not stay on the disk for the export's minute
        elif "step" in message:
            steps.step(int(message["step"]), str(message["what"]))
        elif message.get("done"):
            return True
        elif message.get("error") == "load":
            log.debug("the export process could not rebuild the model (%s): exporting here", message.get("message"))
            return False
        elif message.get("error") == "write":
            raise SinkError(f"cannot write {path}: {message.get('message')}")
        elif "error" in message:
            log.debug("the export process failed:\n%s", message.get("trace", ""))
            raise RuntimeError(f"the ONNX export failed: {message.get('message')}")
    code = child.wait()
    raise RuntimeError(f"the ONNX export process ended unexpectedly (exit code {code})")


@contextlib.contextmanager
def _imports_undone_on_interrupt() -> Iterator[None]:
    """Forget the modules a Ctrl-C (a notebook's interrupt) cut off halfway through the exporter's first imports.

    The exporter imports hundreds of modules on first use (onnxscript, onnx, torch.export, ...). A package whose
    import is interrupted leaves ``sys.modules``, but its submodules loaded so far stay, and importing it again
    does not attach them: every later export in that process failed ("module 'onnxscript' has no attribute
    'values'") until the kernel was restarted. Those orphans are dropped here, so the next export imports them whole.
    """
    before = set(sys.modules)
    try:
        yield
    except BaseException:
        for name in [name for name in sys.modules if name not in before]:
            parts = name.split(".")
            if any(".".join(parts[:i]) not in sys.modules for i in range(1, len(parts))):
                del sys.modules[name]
        raise


def _save(program: object, tmp: str, path: Path) -> None:
    """Write the exported ``program`` to ``tmp`` and move it onto ``path``; a full disk or a quota is a
    one-line SinkError (the caller removes the partial file)."""
    try:
        program.save(tmp)  # type: ignore[attr-defined]
    except OSError as e:
        raise SinkError(f"cannot write {path}: {e.strerror or e}") from e
    _commit(tmp, path)


def _commit(tmp: str, path: Path) -> None:
    """Move the whole export ``tmp`` onto ``path`` (one rename: a later run finds it whole or not at all)."""
    try:
        _plain_mode(tmp)
        os.replace(tmp, path)
    except PermissionError as e:
        # Windows (no export lock there): another run exported the same model meanwhile and has its file
        # open, which Windows will not rename over; that export is this one, so it is used. Elsewhere the
        # lock rules that out: a refusal is real (a sticky folder's file of another user) and the file is not ours
        if sys.platform != "win32" or not path.is_file():
            raise SinkError(f"cannot write {path}: {e.strerror or e}") from e
        log.debug("%s was exported by another run meanwhile (%s): using it", path.name, e.strerror or e)
    except OSError as e:
        raise SinkError(f"cannot write {path}: {e.strerror or e}") from e


def _plain_mode(path: str) -> None:
    """Give a file made by mkstemp (0600) the mode a plain open() would (0644 under the usual umask), as
    ``io.atomic`` does for the other outputs: an exported model is meant to be copied to, and served from,
    other accounts and machines."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def share_blobs(folder: Path) -> None:
    """Make this user's compiled blobs in ``folder`` readable by all, as exports are: OpenVINO writes them 0440, so a
    cache baked into a container image could not be read by the uid the container runs as, which compiled anew."""
    if not hasattr(os, "getuid"):  # Windows: no such modes
        return
    mask = os.umask(0)
    os.umask(mask)
    readable = 0o444 & ~mask
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid() and (st.st_mode & readable) != readable:
                os.chmod(entry.path, (st.st_mode & 0o777) | readable)
        except OSError:  # gone meanwhile (another run's compile), or not ours to change
            continue


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """Silence the exporter's INFO chatter (hundreds of lines per export) even under ``--verbose``."""
    saved = [(logging.getLogger(name), logging.getLogger(name).level) for name in loggers]
    for logger, _ in saved:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


def cached_onnx_path(model: torch.nn.Module, size: tuple[int, int], batch: int = 1, digest: Optional[str] = None) -> Path:
    """Where the export of ``model`` at (h, w) = ``size`` is kept: one file per weights, size, batch and graph
    (``digest``: ``weights_digest(model)`` where the caller has it)."""
    backbone = getattr(model, "backbone_name", "model")
    name = f"birefnet-{backbone}-{digest or weights_digest(model)}-{size[0]}x{size[1]}-b{batch}-v{__version__}-g{GRAPH_VERSION}-op{OPSET}.onnx"
    return cache_dir() / "onnx" / name


def onnx_cached(model: torch.nn.Module, size: tuple[int, int], batch: int = 1, digest: Optional[str] = None) -> bool:
    """True when ``cached_onnx`` finds this export on disk (the cache, or the fallback one) and would not export it."""
    name = cached_onnx_path(model, size, batch, digest).name
    return _trusted_export(cache_dir() / "onnx" / name) or _trusted_export(fallback_cache_dir() / "onnx" / name)


_distrust_said: set[str] = set()


def _trusted_export(path: Path) -> bool:
    """True when ``path`` is an export this user may load: a file that only this user or root could have written
    (``cache_trust``). One another user could have planted is passed by, with a warning, and exported anew."""
    if not path.is_file():
        return False
    why = file_distrust(path)
    if why is None and not os.access(path, os.R_OK):
        # another user's cache made under umask 077 (0600): OpenVINO's "Unable to read the model" traceback, exit 1
        if str(path) not in _distrust_said:
            _distrust_said.add(str(path))
            log.warning("the cached export %s cannot be read by this user (%s): exported again (`chmod a+r` it "
                        "where the cache is shared)", path, _owner_and_mode(path))  # fmt: skip
        return False
    if why is None:
        return True
    if str(path) not in _distrust_said:
        _distrust_said.add(str(path))
        log.warning("the cached export %s is not used: %s, and a model put there would run as yours; "
                    "it is passed by (%s)", path.name, why, _remedy("a folder of your own"))  # fmt: skip
    return False


def _owner_and_mode(path: Path) -> str:
    try:
        st = path.stat()
    except OSError as e:
        return e.strerror or str(e)
    return f"{user_name(st.st_uid)}'s, mode {stat.S_IMODE(st.st_mode):04o}"


def cached_onnx(model: torch.nn.Module, size: tuple[int, int], batch: int = 1, say_time: bool = True,
                digest: Optional[str] = None) -> tuple[Path, Optional[float]]:  # fmt: skip
    """The cached export of ``model`` at (h, w) = ``size``, exporting it first if needed.

    Returns (path, seconds the export took now, or None when it came from the cache); ``say_time``: a
    notice says how long the export took (``birefvid export``'s own summary says it instead).
    """
    backbone = getattr(model, "backbone_name", "model")
    path = cached_onnx_path(model, size, batch, digest)
    if _trusted_export(path):  # a read-only cache (baked into an image) is read as any other
        return path, None
    path = writable_cache_dir("onnx") / path.name
    if _trusted_export(path):  # exported by an earlier run that fell back too
        return path, None
    with export_lock(path):
        if _trusted_export(path):  # another birefvid exported it while this one waited
            return path, None
        remove_dead_partials(path)
        log.warning("exporting %s at %dx%d to ONNX (once per weights and size; cached in %s)", backbone, size[1], size[0], path.parent,
                    extra=NOTICE)  # fmt: skip
        try:
            seconds = export_onnx(model, path, size, batch)
        except SinkError as e:
            if not _disk_full(e, path.parent):
                raise
            # "cannot write .../onnx/birefnet-...onnx: No space left on device" named neither the cache nor a way out
            raise SinkError(f"the model cache {path.parent} has no room for the export of {backbone} ({_disk_full(e, path.parent)}); "
                            f"free some space there, or {_remedy('a folder on a disk with room')}") from e  # fmt: skip
    if say_time:
        log.warning("exported in %.1f s", seconds, extra=NOTICE)
    return path, seconds


def _disk_full(error: BaseException, folder: Path) -> Optional[str]:
    """Why a failed export into ``folder`` failed, where it was for want of space (a full disk, a quota); else None."""
    cause = error.__cause__
    if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
        return os.strerror(cause.errno)
    return next((os.strerror(n) for n in (errno.ENOSPC, errno.EDQUOT) if os.strerror(n) in str(error)), None)


def remove_dead_partials(path: Path) -> list[Path]:
    """Remove what exports of ``path`` and their model hand-overs killed outright (SIGKILL, the OOM killer, a
    container stopped) left in the cache: ``NAME.XXXXXXXX.onnx.partial`` (as large as the export: 73 MB for ``tiny``,
    ~900 MB for ``general``) and ``.model.XXXXXXXX.pt.partial``, one more at each killed first run, never removed. Run
    under ``export_lock``; a file a live run holds (``atomic.being_written``: another model's export, a live run's
    model saved ahead) is left. Returns what was removed."""
    from ..io.atomic import being_written, fit_name

    prefix = glob.escape(fit_name(path.stem, "..onnx.partial") + ".")
    removed = []
    for pattern in (prefix + "?" * 8 + ".onnx.partial", ".model." + "?" * 8 + ".pt.partial"):
        for leftover in path.parent.glob(pattern):
            if leftover.is_file() and not leftover.is_symlink() and not being_written(leftover):
                with contextlib.suppress(OSError):
                    leftover.unlink()
                    removed.append(leftover)
    if removed:
        log.debug("removed what killed exports left: %s", ", ".join(p.name for p in removed))
    return removed


@contextlib.contextmanager
def export_lock(path: Path, poll: float = 0.2) -> Iterator[None]:
    """Hold the lock on exporting ``path`` among this machine's birefvid processes (and threads).

    Without it, runs started together on an empty cache (two terminals, a batch's Ray workers) each
    spent the 10-60 s export on the same file, side by side on the same cores. The lock is an
    ``flock`` on a file beside the export, released when its holder ends, however it ends; a run
    waiting for it says so once and still answers Ctrl-C. Where ``flock`` is missing (Windows) or the
    lock file cannot be made, each run exports for itself, as before.
    """
    try:
        import fcntl

        fd = os.open(path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except (ImportError, OSError):
        yield
        return
    try:
        said = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not said:
                    log.warning("waiting for another birefvid process exporting the same model (%s)", path.name, extra=NOTICE)
                    said = True
                time.sleep(poll)
        yield
    finally:
        os.close(fd)  # releases the lock


def export_file(model: torch.nn.Module, path: str | Path, size: tuple[int, int], batch: int = 1, *, overwrite: bool = True) -> Optional[float]:
    """Write the export of ``model`` at (h, w) = ``size`` to ``path`` (``birefvid export``), through the cache:
    a model the default backend already exported, or exported before, is copied in seconds
    instead of exported again for a minute. Returns the seconds an export took now, None when it was cached.
    A cache that cannot be written is passed by: the export goes straight to ``path``. A ``path`` that is a symbolic
    link is written where it leads, the link kept, as every output (``io.atomic.through_link``). ``overwrite=False``:
    a file another run put at ``path`` while this one exported (two ``birefvid export`` of one name at once) is kept,
    and this run ends with "output exists" (its export stays cached: a rerun with ``--overwrite`` takes seconds)."""
    from ..io.atomic import through_link

    path = through_link(Path(path))
    try:
        cached, seconds = cached_onnx(model, size, batch, say_time=False)  # the command's summary says it
    except SinkError as e:
        log.debug("export cache unusable (%s): exporting straight to %s", e, path)
        return export_onnx(model, path, size, batch)
    _place(cached, path, overwrite=overwrite)
    return seconds


_FICLONE = 0x40049409  # Linux's ioctl: the destination shares the source's blocks copy-on-write


def _clone(src: Path, dst: str) -> bool:
    """Make ``dst`` (an existing, empty file) a copy-on-write clone of ``src``; False where the file system (or the
    platform) cannot, and the caller copies."""
    if not sys.platform.startswith("linux"):
        return False
    import fcntl

    try:
        with open(src, "rb") as source, open(dst, "wb") as target:
            fcntl.ioctl(target.fileno(), _FICLONE, source.fileno())
        return True
    except OSError:
        return False


def _link_new(tmp: str, path: Path) -> None:
    """Put ``tmp`` at ``path`` only while nothing is there (a hard link fails atomically on an existing name; where the
    disk has none, the check then the rename), else "output exists": another run wrote ``path`` meanwhile."""
    try:
        os.link(tmp, path)
        return
    except FileExistsError:
        pass
    except OSError:  # a disk without hard links (FAT, some network shares)
        if not os.path.lexists(path):
            os.replace(tmp, path)
            return
    raise SinkError(f"output exists: {path} (written by another run while this one exported; use {option('overwrite', True)} "
                    f"to replace it: the export is cached, so that takes seconds)")  # fmt: skip


def _place(cached: Path, path: Path, *, overwrite: bool = True) -> None:
    """Put a copy of the cached file at ``path`` under a temporary name, renamed when complete. A copy of its own,
    never a hard link: the user's file is theirs to change, and a hard link shared the cache's inode, so an in-place
    write to it (``onnx.save`` or ``onnxsim`` over the same name, ``: > model.onnx``) changed the cached model too,
    and every later run loaded that (a truncated one: a traceback, exit 1). A copy-on-write clone where the file
    system makes one (Btrfs, XFS: no second 900 MB on disk), else a plain copy."""
    import shutil

    from ..io.atomic import fit_name

    try:
        fd, tmp = tempfile.mkstemp(prefix=fit_name(path.stem, "..onnx.partial") + ".", suffix=".onnx.partial", dir=path.parent)
    except OSError as e:
        raise SinkError(f"cannot write {path}: {e.strerror or e}") from e
    os.close(fd)
    exiting.writing(tmp)
    try:
        if not _clone(cached, tmp):
            shutil.copyfile(cached, tmp)
        _plain_mode(tmp)
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    except SinkError:
        raise
    except OSError as e:  # a full disk, a quota
        raise SinkError(f"cannot write {path}: {e.strerror or e}") from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        exiting.written(tmp)
