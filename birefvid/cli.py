"""The ``birefvid`` command: sub-commands and one-line errors.

Every ``BirefvidError`` becomes one line on stderr and exit code 2; Ctrl-C exits 130, SIGTERM
is handled as Ctrl-C (exit 143); output piped into a reader that stops early (``| head``) ends
quietly (exit 141), and standard output that cannot be written (a full disk, ``>&-``) is one error
line (exit 2, ``standard_output``). Command
modules import torch and the media stack only inside ``run``, so ``--help``, ``--version`` and
argument errors answer at once.
"""

from __future__ import annotations

import argparse
import atexit
import codecs
import contextlib
import errno
import locale
import logging
import os
import re
import select
import signal
import stat
import sys
import tempfile
import threading
import traceback
from typing import Any, Callable, Iterator, NoReturn, Optional, Sequence

from . import __version__, exiting, progress_bar, standard_output
from .errors import BirefvidError, SinkError, Terminated, cli_naming, note_signal, stopped_by, termination_deferred
from .file_names import descriptors_open_now, name_too_long, note_descriptors_given, one_line, shown_bytes
from .said_once import run_scope
from .urls import hide_urls_in

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a writer its reader left


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors name a file that starts with ``-``: ``process -take1.mp4 -o x.mov``
    said only 'the following arguments are required: input', the file taken for an option."""

    dashed: tuple[str, ...] = ()  # the command line's words that start with - and name a file or folder
    words: tuple[str, ...] = ()  # the command line's words
    bare = False  # the command line is a command alone (`birefvid process`): its usage is the answer

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        """One ``birefvid: error:`` line, exit 2, as every other bad input gets: argparse printed the command's
        whole usage (20 lines for process) and then ``birefvid process: error:``, which a grep for the
        documented prefix missed. A command given alone still gets its usage first."""
        name = self.dashed[0] if self.dashed else self._dashed_value(message)
        if name:
            message += f" ({name} was taken for an option: to name that file, write ./{name})"
        if self.bare:
            self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"birefvid: error: {one_line(message)}\n")

    def _dashed_value(self, message: str) -> Optional[str]:
        """The word after the option ``message`` says lacks its value when that word starts with ``-`` and is no option
        (``process clip.mp4 -o -take2.mkv``: an output not there yet, so not in ``dashed``), else None; argparse said
        only 'argument -o/--out: expected one argument'."""
        match = re.match(r"argument (\S+): expected one argument", message)
        if match is None:
            return None
        names = set(match[1].split("/"))
        for before, word in zip(self.words, self.words[1:]):
            if before in names and word.startswith("-") and word != "-" and word not in self._option_string_actions:
                return word
        return None

    def _read_args_from_files(self, arg_strings: list[str]) -> list[str]:
        """argparse's @FILE expansion, after checking each such FILE is a text file of arguments: a missing one was
        "[Errno 2] No such file or directory", and a video whose name starts with @ a traceback (it is not text)."""
        for arg in arg_strings:
            if arg and arg[0] in (self.fromfile_prefix_chars or ""):  # "" is in every string: an empty argument is none
                refusal = args_file_refusal(arg)
                if refusal is not None:
                    self.error(refusal)
        return super()._read_args_from_files(arg_strings)  # type: ignore[misc]

    def convert_arg_line_to_args(self, arg_line: str) -> list[str]:
        """One argument a line of an `@FILE`; a blank line is none (it was an empty argument: "unrecognized
        arguments:") and `--option value` (or `-o value`) on one line is two (it was one unknown word: "required: --source").
        Lines starting with `# ` are comments; a value may be quoted ("my beach.jpg"); spaces around a line and
        a BOM at the file's start (Windows Notepad writes one) are not part of it: each of these ended the run
        with "unrecognized arguments", "required: --source" or a file not found."""
        line = _unquoted(arg_line.strip().removeprefix("\ufeff").removeprefix(_BOM_AS_CP1252).strip())
        if not line or line == "#" or line.startswith(("# ", "#\t")):
            return []
        head, _, value = line.partition(" ")
        if (head.startswith("--") and "=" not in head) or head in self._option_string_actions:  # `-o out.mkv` too
            more = [w.partition("=")[0] for w in value.split()
                    if w.startswith("--") and w.partition("=")[0] in self._option_string_actions]
            if more:  # a command line pasted into the file: --source was "URL --effect green", --effect never set
                self.error(f"a line of the arguments file holds {head} and {more[0]}: write one option a line")
            return [head, _unquoted(value.strip())] if value.strip() else [head]
        name, equals, value = line.partition("=")
        if line.startswith("--") and equals:
            return [f"{name}={_unquoted(value.strip())}"]
        return [line]


_BOM_AS_CP1252 = "\ufeff".encode().decode("cp1252")  # Python 3.11 reads @FILE in the locale's encoding: Windows' cp1252


ARGS_FILE_HEAD = 65536  # bytes of an @FILE read to tell text from a picture or a video


def args_file_refusal(arg: str) -> Optional[str]:
    """Why ``arg`` (``@FILE``) names no file of arguments (missing, unreadable, not text), or None when it does
    (a pipe or terminal is taken unread); the message says how to name a file whose own name starts with @: ``./@NAME``."""
    path = arg[1:]
    hint = f"an argument starting with @ names a file of arguments, one a line; for a file named {arg}, write ./{arg}"
    try:
        kind = os.stat(path).st_mode
        if stat.S_ISFIFO(kind) or stat.S_ISSOCK(kind):
            return None  # a pipe (`@<(pass show cam)`, `@/dev/stdin`): a look here would use up what argparse then reads
        with open(path, "rb") as f:
            if stat.S_ISCHR(kind) and os.isatty(f.fileno()):
                return None  # `@/dev/stdin` typed at a terminal: the same, read once
            head = f.read(ARGS_FILE_HEAD)  # any other device too (`@/dev/zero`, a disk): argparse would read it for ever
    except OSError as e:
        return f"{arg}: cannot read the arguments file {path} ({e.strerror or e}); {hint}"
    decoder = codecs.getincrementaldecoder(locale.getpreferredencoding(False))()  # argparse reads it in this encoding
    try:
        text = b"\0" not in head and decoder.decode(head, final=len(head) < ARGS_FILE_HEAD) is not None  # a long head may end mid-character
    except UnicodeDecodeError:
        text = False
    if not text:
        return f"{arg}: {path} is not a text file of arguments; {hint}"
    return None


def _unquoted(value: str) -> str:
    """``value`` without one pair of matching quotes around it, as a shell would take them off."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per command."""
    from .commands import COMMANDS

    parser = _Parser(prog="birefvid", description="Cut subjects out of images, video and live streams with BiRefNet.")
    parser.add_argument("--version", action="version", version=f"birefvid {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    # before the command too (`birefvid -q process ...`), as -v; its own dest, or the command's default False replaced it
    parser.add_argument("-q", "--quiet", dest="quiet_before_command", action="store_true", help=QUIET_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        # `birefvid COMMAND @FILE` reads arguments from FILE, one a line, so a camera's password, a stream key or a
        # URL's login can stay out of the command line, which every user of the machine sees with ps (a service's too)
        command = sub.add_parser(name, help=module.HELP, description=module.HELP, fromfile_prefix_chars="@")
        # after the command too (`birefvid process a.mp4 -o b.mov -v`), where a user adds it; SUPPRESS keeps a leading -v
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log debug details")
        module.register(command)
        if "-q" not in command._option_string_actions:  # every command takes -q, so a script can pass it to any (models, serve)
            command.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    return parser


# what -q means in every command; each command's own --help says what it leaves out there
QUIET_HELP = "no progress, summary or informational lines (errors, warnings and the result still shown)"


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within this block (main thread only), SIGTERM raises ``Terminated``, and so does SIGHUP (a
    closed terminal or SSH session: it killed the run at once and left its ``.NAME.partial-*``
    file behind) unless the caller ignores it (``nohup``)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        if not termination_deferred():  # a live run committing its recordings finishes them
            note_signal(signum)
            raise Terminated(signum)

    signums = [signal.SIGTERM]
    hangup = getattr(signal, "SIGHUP", None)  # not on Windows
    if hangup is not None and signal.getsignal(hangup) is signal.SIG_DFL:
        signums.append(hangup)
    note_signal(None)
    previous = {signum: signal.signal(signum, terminate) for signum in signums}
    try:
        yield
    except KeyboardInterrupt as exc:
        signum = stopped_by(exc)
        if signum is not None and not isinstance(exc, Terminated):
            # Ray's ray.wait catches the exception a handler raises and raises a plain KeyboardInterrupt:
            # a scheduler's SIGTERM must still exit 143, not 130 as if someone had pressed Ctrl-C
            raise Terminated(signum) from exc
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def guarded(prog: str, work: Callable[[], Optional[int]]) -> int:
    """Run a command-line program's ``work`` the birefvid way: errors name --flags and become one
    line (``PROG: error: ...``, exit 2), Ctrl-C exits 130, SIGTERM is handled as Ctrl-C and exits
    143 when it stopped a run (a live run that ends by it finishes normally), a closed stdout
    pipe (``| head``) exits 141 without a traceback, and standard output that cannot be written (a
    full disk, a closed descriptor) is one error line, exit 2. The recipes in ``pipelines/`` use it too."""
    try:
        with cli_naming(), sigterm_as_interrupt():
            code = int(work() or 0)
            # the result must have left now: a reader gone (`| head`) or a full disk shows here, not in the
            # interpreter's exit flush, and a failure some code swallowed (a failed write it ignored) still counts
            failure = standard_output.flushed()
            if failure is None:
                return code
    except BirefvidError as exc:
        print(f"{prog}: error: {one_line(hide_urls_in(str(exc)))}", file=sys.stderr)
        return _failure_said(EXIT_USAGE)
    except (MemoryError, ImportError) as exc:
        said = _out_of_memory(exc)
        if said is None:
            raise
        print(f"{prog}: error: {said}", file=sys.stderr)
        return _failure_said(EXIT_USAGE)
    except RuntimeError as exc:
        said = _link_loop(exc)
        if said is None:
            raise
        print(f"{prog}: error: {one_line(said)}", file=sys.stderr)
        return _failure_said(EXIT_USAGE)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not standard_output.raised_by(exc):
            print(f"{prog}: error: {one_line(str(_link_loop(exc)))}", file=sys.stderr)
            return _failure_said(EXIT_USAGE)
        if exc.errno == errno.ENAMETOOLONG and exc.filename is not None and not standard_output.raised_by(exc):
            print(f"{prog}: error: {one_line(_name_too_long(exc))}", file=sys.stderr)
            return _failure_said(EXIT_USAGE)
        if standard_output.raised_by(exc):
            failure = exc
        elif isinstance(exc, BrokenPipeError) and _stdout_gone():  # a stdout main() did not check (a recipe's)
            failure = exc
        else:
            raise  # some other pipe or file (an encoder's, say): a real failure
    except Terminated as stopped:
        print(f"{prog}: {'terminated' if stopped.signum == signal.SIGTERM else 'hung up'}", file=sys.stderr)
        return _failure_said(128 + stopped.signum)  # 143 for SIGTERM, 129 for SIGHUP, as a shell reports them
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return _failure_said(EXIT_INTERRUPTED)
    return stdout_failed(prog, failure)




def _link_loop(exc: BaseException) -> Optional[str]:
    """One line for a path that runs into a symbolic link in a loop (``ln -s loop loop``) where no check named it first,
    or None for an error of another kind: ``Path.resolve`` says ``RuntimeError: Symlink loop from '/x/loop'``, a system
    call ``OSError`` ELOOP; either was a traceback, exit 1. The checks of the outputs (``io.atomic.refuse_link_loop``)
    say it before any work; this is for a path taken anywhere else."""
    if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
        where = exc.filename if exc.filename is not None else "a path"
    elif isinstance(exc, RuntimeError) and str(exc).startswith("Symlink loop from "):
        where = str(exc)[len("Symlink loop from ") :].strip("'\"")
    else:
        return None
    return f"{where} is a symbolic link in a loop, or leads through one ({os.strerror(errno.ELOOP)}); remove it or name another path"


def _name_too_long(exc: OSError) -> str:
    """One line for a path no file system takes (a name over 255 bytes, a path over 4096) where no check named it
    first: an input's first look (``Path.exists`` in ``process``, ``image``, ``batch``, ``live``) was OSError
    'File name too long' in a traceback, exit 1."""
    return f"cannot use {exc.filename}: {name_too_long(exc.filename) or os.strerror(errno.ENAMETOOLONG)}"


def _out_of_memory(exc: BaseException) -> Optional[str]:
    """One line for a run that the process's memory limit stopped, or None for an error of another kind. Under
    ``ulimit -v`` (RLIMIT_AS: a cron job's, a batch system's) torch's libraries could not even be mapped, and the
    ``ImportError: libtorch_cpu.so: failed to map segment from shared object`` traceback exited 1, "a bug"; a
    ``MemoryError`` in birefvid's own Python did the same."""
    text = str(exc)
    if isinstance(exc, ImportError) and "failed to map segment" not in text and "Cannot allocate memory" not in text:
        return None
    noexec = _on_noexec_mount(exc) if isinstance(exc, ImportError) and "Cannot allocate memory" not in text else None
    if noexec is not None:  # whatever the limits: an HPC node's `ulimit -v` beside a noexec /tmp holding the venv
        return (f"cannot load a library: {text} ({noexec} is on a file system mounted noexec, where no library can be "
                "loaded from: install it elsewhere, or remount it without noexec; `findmnt -T PATH` shows its options)")
    if isinstance(exc, ImportError) and "Cannot allocate memory" not in text and not _memory_limited():
        # glibc says the same for a library on a file system mounted noexec (a hardened /tmp or home holding the
        # virtual environment), which no memory limit explains: "out of memory ... raise it" sent users the wrong way
        return (f"cannot load a library: {text} (the process has no address-space limit, so not memory: is the file on "
                "a file system mounted noexec? `findmnt -T PATH` shows its options; install it elsewhere)")
    why = f"{type(exc).__name__}: {text}" if isinstance(exc, MemoryError) else text
    return (f"out of memory: {why or 'MemoryError'} (a memory limit on the process: `ulimit -v` counts address "
            "space, of which torch's libraries alone map several GB, so limit memory with a cgroup "
            "(`systemd-run -p MemoryMax=`, a container's limit) instead, or raise it; a smaller --max-size or "
            "--resolution needs less)")


def _on_noexec_mount(exc: ImportError) -> Optional[str]:
    """The library glibc could not map (the one its message names, else the module's file), where it lies on a file
    system mounted noexec: glibc's "failed to map segment from shared object" is the same words as under a memory
    limit, so with a limit set as well (``ulimit -v`` on a batch system) it was said as "out of memory"."""
    import re

    named = re.match(r"(.+?): failed to map segment", str(exc))
    for path in (named[1] if named else None, getattr(exc, "path", None)):
        try:
            if path and os.statvfs(path).f_flag & os.ST_NOEXEC:
                return str(path)
        except (OSError, ValueError):
            continue
    return None


def _memory_limited() -> bool:
    """True when the process has an address-space or data-size limit (``ulimit -v``, ``ulimit -d``): the limits a
    library's mapping fails against. A cgroup's limit fails no mapping (its OOM killer ends the process instead)."""
    import resource

    for which in (resource.RLIMIT_AS, resource.RLIMIT_DATA):
        if resource.getrlimit(which)[0] != resource.RLIM_INFINITY:
            return True
    return False


def stdout_failed(prog: str, failure: OSError) -> int:
    """The exit status for a failed write to standard output, said on stderr: a reader that left (``| head``) had
    what it wanted, exit 141 quietly; anything else (``No space left on device``, a closed descriptor) lost the
    result, one ``PROG: error:`` line and exit 2, as for any other output that cannot be written."""
    if not isinstance(failure, BrokenPipeError):
        print(f"{prog}: error: {standard_output.describe(failure)}", file=sys.stderr)
    return _failure_said(EXIT_BROKEN_PIPE if isinstance(failure, BrokenPipeError) else EXIT_USAGE)


def _failure_said(code: int) -> int:
    """``code``, the command's failure said in its one line: a failed write to standard output is part of it, not a
    second line at exit; the buffered rest goes nowhere instead of raising again in the interpreter's final flush."""
    if standard_output.failure() is not None:
        standard_output.settle()
        _silence_stdout()
    return code


def _stdout_gone() -> bool:
    """True when stdout is a pipe whose reader has closed it; where that cannot be asked, assume so."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
    except (AttributeError, OSError, ValueError):  # no poll() (Windows), or stdout is no file (tests capturing it)
        return True
    return any(events & select.POLLERR for _, events in poller.poll(0))


def _silence_stdout() -> None:
    """Point stdout at devnull, so the buffered rest is dropped at exit instead of raising a second
    BrokenPipeError there (the Python docs' recipe, see the ``signal`` module's note on SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):
        pass


def _fill_closed_standard_streams() -> None:
    """Point a standard stream the caller closed (``2>&-``, a daemon's closed descriptors) at devnull.

    Python makes a closed stderr ``None``, and ``print(..., file=sys.stderr)`` then writes to stdout:
    error lines and progress landed in what a script parses. Worse, the next file opened (the output
    video) would get descriptor 2, and whatever writes to it (FFmpeg's log, a warning from C code)
    would write into that file."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stdout is None:  # writes fail as on a closed descriptor (EBADF): one error line, not a result lost unsaid
        sys.stdout = open(os.open(os.devnull, os.O_RDONLY), "w")  # noqa: SIM115 - standard output, for the whole run
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")


def _escape_what_stdout_cannot_encode() -> None:
    """A stdout in a narrow code page escapes what it lacks (``\\u674e``), as stderr does, instead of raising:
    Windows writes a redirected stdout in its ANSI code page (cp1252), and ``birefvid eval ... > scores.txt``
    over a folder named 李 ended in a traceback after all the scoring. A UTF-8 stdout (a de_DE.UTF-8 desktop)
    writes a file name that is no UTF-8 (``caf\\xe9.mkv`` from an old NAS, a surrogate in Python) as its own
    bytes, as ``ls`` does, where it raised UnicodeEncodeError after the scoring too."""
    stream = sys.stdout
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "").replace("_", "")
    if encoding == "" or getattr(stream, "errors", None) != "strict":
        return
    try:
        stream.reconfigure(errors="surrogateescape" if encoding == "utf8" else "backslashreplace")  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        pass


class _DiagnosticStream:
    """sys.stderr that drops what it cannot write, and everything once its reader has gone.

    Progress, warnings and summaries are diagnostics: a log reader that left (``2>&1 >/dev/null |
    head -1``, a ``tee`` or log shipper that died) made the next progress line raise BrokenPipeError,
    which ended an hour-long run with exit 1 and threw its output away. Now the rest goes to devnull
    and the run finishes (a closed *stdout*, which carries data, still ends the command: exit 141).
    A log on a full disk (``2>>run.log``, ``2>/dev/full``) or another failed write costs that line only:
    it ended a run whose output was written with a traceback and exit 1, and a bad input with exit 1, not 2.
    A non-blocking stderr (``standard_output.waiting_view``) is waited on, as a blocking one is."""

    def __init__(self, stream: Any) -> None:
        self.given = stream  # what main() found, to put back
        self.gone = False  # its reader left: the rest goes to devnull
        self._stream = standard_output.waiting_view(stream, 2)

    def write(self, text: str) -> int:
        try:
            self._stream.write(shown_bytes(text))  # a file name's byte that is no UTF-8 as \xe9, not \udce9
            return len(text)
        except BrokenPipeError:
            self._gone()
        except OSError:  # this line is lost; the next may find room (a log's disk freed)
            pass
        return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._gone()
        except OSError:
            pass

    def _gone(self) -> None:
        self.gone = True
        try:  # the descriptor too: child processes (ffmpeg) and C code write to it directly
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._stream.fileno())
            os.close(null)
        except (AttributeError, OSError, ValueError):
            pass
        self._stream = open(os.devnull, "w")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _fill_home() -> None:
    """HOME=/ where it is unset and the uid has no passwd entry (OpenShift's random uid, ``env -i``, a
    systemd DynamicUser), as Docker sets it: ``import openvino`` raised "Could not determine home
    directory" there (exit 1 on the default backend), and Hugging Face's cache became a ``./~`` folder.
    The caches then fall back to ``/tmp/birefvid-cache-UID``, with a warning, as for any unwritable home."""
    if os.name == "posix" and os.path.expanduser("~") == "~":
        os.environ["HOME"] = "/"


def _no_openvino_telemetry() -> None:
    """Keep ``import openvino`` from sending its usage event (``openvino.tools.ovc`` does it at import, the consent
    assumed where no consent file exists): every CPU run of the command wrote ``~/intel/openvino_ga_cid`` and
    ``~/intel/stats``, opened a connection to Google Analytics from a cron job or a service, and forked a child that
    printed a ``KeyboardInterrupt`` traceback into the log when Ctrl-C (or ``timeout -s INT``, which signals the whole
    group) came while it was sending. With ``openvino_telemetry`` marked as missing, OpenVINO uses its own stub. For
    the command line only, before OpenVINO is imported: a program that imports birefvid keeps OpenVINO's own choice."""
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]


def _need_temp_dir() -> None:
    """SinkError when no temporary folder can be written (a container's read-only root file system with no volume at
    /tmp): torch makes one as it is imported, which ended every command with a FileNotFoundError traceback, exit 1."""
    try:
        tempfile.gettempdir()
    except OSError as e:
        raise SinkError("no writable temporary folder (tried $TMPDIR, /tmp, /var/tmp, /usr/tmp and the current folder): "
                        "set TMPDIR to a writable folder, or mount one at /tmp (in Kubernetes, an emptyDir)") from e


def _run(args: argparse.Namespace) -> int:
    """The command, once the process can run one: a temporary folder to write, and an OpenCV pixel limit that
    ``import cv2`` can read (a value it cannot, such as ``2e9``, aborted every command with exit 134)."""
    from .pixel_limit import opencv_pixel_limit  # outside .io, whose package imports cv2
    from .thread_limit import thread_limit

    _need_temp_dir()
    opencv_pixel_limit()
    thread_limit()  # BIREFVID_THREADS: a bad value is one line here, not a traceback once the model loads
    return args.run(args)


def _third_party_noise(record: logging.LogRecord) -> bool:
    """False for OpenVINO telemetry's lines about its consent file, which it logs as warnings on the root
    logger whenever the home folder cannot be written (a read-only root file system, HOME=/ for a random
    uid): three ``root: warning:`` lines in every run's log, about nothing birefvid does or needs."""
    return "openvino_telemetry" not in (record.pathname or "")


def hide_secrets_in_tracebacks() -> None:
    """Print an uncaught exception's traceback (the main thread's or another's) with URL secrets hidden: a bug's
    traceback quotes the values it met (PyAV names the URL it opened), and tracebacks get pasted into bug reports."""

    def on_main(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        sys.stderr.write(hide_urls_in("".join(traceback.format_exception(kind, value, tb))))

    def on_thread(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else threading.get_ident()
        text = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
        sys.stderr.write(hide_urls_in(f"Exception in thread {name}:\n{text}"))

    sys.excepthook = on_main
    threading.excepthook = on_thread


def console() -> NoReturn:
    """The ``birefvid`` console script and ``python -m birefvid``: ``main()`` on the command line's arguments, then
    the process ends with its status without the interpreter's teardown (``_leave_without_teardown``).

    Apart from ``main()`` because only here is the command all the process does: a program that calls ``main()`` and
    goes on keeps its own exit status and the atexit callbacks it registered before (the os._exit left from main()
    replaced a wrapper's failing status with birefvid's 0 and skipped its clean-up)."""
    _leave_without_teardown()
    sys.exit(main())


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``birefvid`` command on ``argv`` (None: the command line's, as ``console()`` does); returns its exit status."""
    # before anything of ours opens one: `--report /dev/fd/N` goes through N only where the run was started with it
    noted = note_descriptors_given(descriptors_open_now())
    if argv is None:  # the command line's own: a caller's main([...]) keeps its own hooks
        hide_secrets_in_tracebacks()
        _no_openvino_telemetry()
    _fill_home()
    _fill_closed_standard_streams()
    _escape_what_stdout_cannot_encode()
    given = sys.stderr
    sys.stderr = diagnostics = given if isinstance(given, _DiagnosticStream) else _DiagnosticStream(given)
    given_stdout = standard_output.install()
    code = 1  # a bug, unless the command says otherwise
    try:
        with run_scope():  # a command is one run: what it warns once, it warns again in a caller's next main([...])
            code = _main(argv)
        _exit_status[0] = code
        return code
    except SystemExit as exc:  # argparse's usage errors, --help, --version
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
        _exit_status[0] = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)  # as Python's own
        failure = standard_output.flushed()  # argparse ignores a failed write of --help or --version: exit 0, nothing out
        if failure is not None:
            code = _exit_status[0] = stdout_failed("birefvid", failure)
            raise SystemExit(code) from None
        raise
    finally:
        note_descriptors_given(noted)
        if sys.stderr is diagnostics and diagnostics.given is given and not diagnostics.gone:  # a caller's (a test's) own stream comes back
            with contextlib.suppress(OSError, ValueError):
                diagnostics.flush()  # what a view of it still buffers
            sys.stderr = given
        standard_output.restore(given_stdout)
        if argv is None:  # the console command, not a caller's main([...])
            _end_at_once_on_interrupt(code)


_exit_status: list[Optional[int]] = [None]  # the command line's exit status, once main() has it (used by console() only)


def _leave_without_teardown() -> None:
    """``console()``'s: once the command has ended and Python has joined its threads and run the other atexit callbacks, leave with
    ``os._exit``: the interpreter's teardown that follows does nothing a finished command needs (every output is
    committed, its files closed) yet took 1.6-2 s after torch was imported (its extension modules' finalizers), and
    10 s on a loaded machine, so a run stopped with Ctrl-C or SIGTERM lingered long after its last line.

    Registered as the command starts, so it runs after the callbacks of everything imported later (torch, Ray,
    multiprocessing, ``weakref.finalize``'s clean-ups); logging's, registered before, is run here. Standard output is
    flushed first, and a failure to write it said (the final flush os._exit skips is where Python reported it). Where
    the status is unknown (an exception escaped main()) or stderr cannot be flushed, the normal teardown goes on."""

    def leave() -> None:
        status = _exit_status[0]
        if status is None:
            return
        logging.shutdown()
        failure = standard_output.flushed()  # os._exit skips the final flush, which would have reported it (exit 120)
        if failure is not None:  # written after the command's own check: a bug's late print, but the output is lost
            status = stdout_failed("birefvid", failure)
        try:
            for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
                if stream is not None:
                    stream.flush()
        except Exception:  # noqa: BLE001 - Python's own teardown reports it, as before
            return
        exiting.threads_at_process_priority()
        os._exit(status & 0xFF)

    atexit.register(leave)


def _end_at_once_on_interrupt(code: int) -> None:
    """The command is done (its outputs kept or cleaned up): a Ctrl-C pressed while Python shuts down now (its
    atexit callbacks, torch's finalizers), as the second of two quick presses lands, ends the process at once with
    the command's own exit code, where it printed a KeyboardInterrupt traceback from an atexit callback."""
    if threading.current_thread() is not threading.main_thread():
        return

    def end(signum: int, frame: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.flush()
        os._exit(code)

    signal.signal(signal.SIGINT, end)


class CliLogFormatter(logging.Formatter):
    """Log lines in the form of the CLI's own (``birefvid: warning: ...``, as ``birefvid: error:``): one
    style for a reader or a script's grep, where logged warnings said ``WARNING birefvid.io.x: ...``.
    ``-v`` adds the logger's name; another library's lines are named by it (``ray: warning: ...``); a
    notice (``errors.NOTICE``: a first export, a download) reads ``birefvid: ...``."""

    def __init__(self, verbose: bool = False) -> None:
        super().__init__()
        self.verbose = verbose

    def formatMessage(self, record: logging.LogRecord) -> str:
        ours = record.name == "birefvid" or record.name.startswith("birefvid.")
        level = {"WARNING": "warning", "ERROR": "error", "CRITICAL": "error", "DEBUG": "debug"}.get(record.levelname, "")
        if getattr(record, "notice", False):  # errors.NOTICE: shown as a warning is, but it is none
            level = ""
        head = "birefvid" if ours else record.name
        # another library's message on lines of its own (huggingface_hub's "Error while downloading ...\nTrying to
        # resume download..."): one line, as each of ours is, so that a log keeps it together; under -v, or with a
        # traceback in its text (a library's `log.warning("...\n%s", format_exc())`), kept as written: "; "-joined
        # frames were unreadable
        whole = ours or self.verbose or "Traceback (most recent call last)" in record.message
        message = record.message if whole else "; ".join(part.strip() for part in record.message.splitlines() if part.strip())
        line = f"{head}: {level}: {message}" if level else f"{head}: {message}"
        return f"{line} [{record.name}]" if self.verbose and ours else line

    def format(self, record: logging.LogRecord) -> str:
        """The line (and a ``-v`` traceback) with URL passwords, stream keys and tokens hidden: a message
        that named its input as given (``http://admin:PW@cam/...``) gave the password to every log reader. A record
        logged with ``errors.SHOWS_SECRET`` (the network preview's URL: its one showing of the token) is kept whole."""
        if (record.name == "birefvid" or record.name.startswith("birefvid.")) and isinstance(record.args, (tuple, dict)):
            def flat(a: Any) -> Any:
                return one_line(str(a)) if isinstance(a, (str, os.PathLike)) and one_line(str(a)) != str(a) else a

            # a mapping too: log.warning("%(name)s ...", {"name": path}) passed its line break through
            named = {k: flat(v) for k, v in record.args.items()} if isinstance(record.args, dict) else tuple(flat(a) for a in record.args)
            if named != record.args:  # a file name with a line break (take\n2.mp4) split our warning in two
                record = logging.makeLogRecord({**record.__dict__, "args": named, "message": None})
        text = super().format(record)
        return text if getattr(record, "shows_secret", False) else hide_urls_in(text)


def _not_a_notice(record: logging.LogRecord) -> bool:
    """False for a notice (``errors.NOTICE``: a first export's steps, OpenVINO's first compile, a download, a wait for
    another run's export): under ``-q`` it is an informational line like a progress line, and a cron job or a CI step
    run with ``-q`` got eight of them on a first run, while warnings and errors are kept. A notice the user acts on
    is kept (``kept_when_quiet``: the network preview's URL with its token, shown nowhere else)."""
    return not getattr(record, "notice", False) or getattr(record, "kept_when_quiet", False)


def _log_handler(verbose: bool, quiet: bool = False) -> logging.Handler:
    """The stderr handler of the CLI's log lines, in its own style, without third-party noise (nor notices, ``quiet``)."""
    handler = logging.StreamHandler()
    handler.setFormatter(CliLogFormatter(verbose=verbose))
    handler.addFilter(_third_party_noise)
    if quiet:
        handler.addFilter(_not_a_notice)
    return handler


def _main(argv: Optional[Sequence[str]]) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # a bare `birefvid`: the commands and what each does, not "arguments are required"
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _Parser.dashed = tuple(a for a in argv if a.startswith("-") and a != "-" and os.path.lexists(a))
    _Parser.words = tuple(argv)
    _Parser.bare = len([a for a in argv if a not in ("-v", "--verbose", "-q", "--quiet")]) <= 1
    args = parser.parse_args(argv)
    args.quiet = bool(getattr(args, "quiet", False) or args.quiet_before_command)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, handlers=[_log_handler(args.verbose, args.quiet)])
    progress_bar.quiet_downloads = args.quiet  # a first run's model download: no bar under -q
    try:
        code = guarded("birefvid", lambda: _run(args))
    finally:
        progress_bar.quiet_downloads = False
    if exiting.must_exit_now():  # a worker is still in native code (a model export): a normal exit would abort under it
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
        exiting.threads_at_process_priority()
        os._exit(code)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
