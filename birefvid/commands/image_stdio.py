"""``birefvid image - -o -``: a picture read from standard input, its cut-out written to standard output.

Shell users pipe pictures (``cat in.jpg | birefvid image - -o - > out.png``), as rembg's ``i - -`` and ImageMagick
do. ``process`` and ``batch`` refuse ``-`` (a video is read more than once, an output is renamed into place), but a
still picture is small and read whole: its bytes are saved to a private temporary folder, cut out there by the very
code that cuts out files (EXIF orientation, colour profile, DPI, every ``--output``), and the finished file is copied
to standard output only once it is wholly encoded, so a failure leaves standard output empty.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import logging
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Mapping

from ..errors import BirefvidError, ConfigError, SinkError, SourceError
from ..file_names import leads_to_standard_output

STDIN, STDOUT = "-", "-"
# how messages name the streams, and how the report does (its `input` and `output` say "-", as given)
SAID = {"input": "standard input", "output": "standard output"}
# what `--ext` may name for `-o -`, as written into a folder: the file type of the bytes on standard output
STDOUT_FORMATS = {"png": ".png", "webp": ".webp", "jpg": ".jpg", "jpeg": ".jpg", "tif": ".tif", "tiff": ".tif"}
# ISO-BMFF brands of an iPhone's HEIC (``ftyp`` box): told apart so that without pillow-heif the line names the extra
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"}
_KNOWN = "PNG, JPEG, WebP, TIFF, BMP, GIF, AVIF or HEIC"

log = logging.getLogger(__name__)


def uses_standard_streams(args: argparse.Namespace) -> bool:
    """Whether the run reads its picture from standard input (``-``) or writes its cut-out to standard output (``-o -``)."""
    return STDIN in (str(i) for i in args.inputs) or str(args.out) == STDOUT


def run_piped(args: argparse.Namespace, work: Callable[[argparse.Namespace, Mapping[str, str]], int]) -> int:
    """Run ``work`` (the image command on files) with standard input saved to a file and ``-o -`` pointed at one,
    then copy that file to standard output. ``work`` gets the arguments naming the files, and how the report names
    them (``-``); messages and warnings name them "standard input" and "standard output"."""
    check_streams(args)
    to_stdout = str(args.out) == STDOUT
    with _private_folder() as folder:
        inner = copy.copy(args)
        said: dict[str, str] = {}
        reported: dict[str, str] = {}
        if args.inputs == [STDIN]:
            source = save_standard_input(Path(folder))
            inner.inputs = [str(source)]
            inner.stdin_file = str(source)  # hints that name a command to run name a file to save, not this one
            said[str(source)], reported[str(source)] = SAID["input"], STDIN
        if to_stdout:
            target = Path(folder) / f"cut-out{stdout_suffix(args.ext)}"
            inner.out, inner.quiet = str(target), True  # its own summary line, below (--ext, checked, names its suffix)
            said[str(target)], reported[str(target)] = SAID["output"], STDOUT
        report = _report_held(args, inner, Path(folder)) if to_stdout else None
        with _messages_naming(said), _stdout_kept_clear(to_stdout):
            try:
                code = work(inner, reported)
            except BirefvidError:
                try:
                    _report_released(report, args)  # the report of a failed run (inputs skipped) says why
                except SinkError as unwritten:  # the run's own error comes first: it says why
                    log.warning("%s", unwritten)
                raise
        if to_stdout:
            data = target.read_bytes()
            write_all(sys.stdout.buffer, data)  # a reader that left (`| head -c 10`) raises BrokenPipeError: exit 141, as elsewhere
            sys.stdout.flush()  # a full disk or a closed stdout raises here: the report, held back, is not written
            _report_released(report, args)
            if not args.quiet:
                print(f"wrote {len(data):,} bytes of {target.suffix[1:].upper()} to standard output", file=sys.stderr)
    return code


def _report_held(args: argparse.Namespace, inner: argparse.Namespace, folder: Path) -> Path | None:
    """Where the run writes ``--report FILE`` of a ``-o -`` run until the picture is out, or None without one.

    The report says the picture went to standard output; written before it had (``> /dev/full``, ``>&-``), it said so
    of a picture that was lost. Its own folder is checked now, before any work, as the run would have."""
    from ..io.atomic import check_report_path

    if args.report is None:
        return None
    check_report_path(args.report)
    held = folder / "report.json"
    inner.report = str(held)
    return held


def _report_released(held: Path | None, args: argparse.Namespace) -> None:
    """The held report written to ``--report FILE``, whole or not at all (none when the run wrote none)."""
    from ..errors import option
    from ..io.atomic import write_text_atomic

    if held is not None and held.exists():
        write_text_atomic(args.report, held.read_text(encoding="utf-8"), option("report"))


def write_all(stream: BinaryIO, data: bytes) -> None:
    """Write every byte of ``data`` to ``stream`` and flush it, or raise.

    A reader that leaves while a write waits on a full pipe makes the kernel return the bytes the pipe took (a short
    write, no error), and Python's buffered ``write`` returns that count rather than raising: the rest is written
    here, so the next write raises ``BrokenPipeError`` (exit 141) instead of the run claiming the whole picture."""
    view = memoryview(data)
    while view:
        view = view[stream.write(view) :]
    stream.flush()


def check_streams(args: argparse.Namespace) -> None:
    """ConfigError, before standard input is read or the model loads, for a use of ``-`` that cannot work."""
    inputs = [str(i) for i in args.inputs]
    if STDIN in inputs and len(inputs) > 1:
        raise ConfigError("standard input (-) holds one picture, cut out alone (cat photo.jpg | birefvid image - -o cut.png); "
                          "save it to a file to cut it out with other inputs")  # fmt: skip
    if str(args.out) == STDOUT:
        _check_stdout_run(args, inputs)
    if inputs == [STDIN] and Path(str(args.out)).suffix.lower() == ".exr":  # process reads files: the line had 'process standard input'
        from .image import _exr_is_process

        raise SinkError(_exr_is_process(None, Path(str(args.out))))
    if STDIN in inputs and _is_terminal(sys.stdin):  # else the run waits for a picture typed at the keyboard
        raise ConfigError("standard input is a terminal, not a picture: pipe one in (cat photo.jpg | birefvid image - -o cut.png)")


def _check_stdout_run(args: argparse.Namespace, inputs: list[str]) -> None:
    """The refusals of ``-o -``: one picture only, nothing else on standard output, no terminal (as ``gzip`` does)."""
    from ..io.image_source import is_glob

    if len(inputs) > 1:
        raise ConfigError(f"-o - writes one picture to standard output, and {len(inputs)} inputs need an output folder (-o cutouts/)")
    if inputs[0] != STDIN and (Path(inputs[0]).is_dir() or is_glob(inputs[0])):
        raise ConfigError(f"-o - writes one picture to standard output, and {inputs[0]} names "
                          f"{'a folder' if Path(inputs[0]).is_dir() else 'a glob'}: name one picture, or an output folder (-o cutouts/)")  # fmt: skip
    if args.recursive:
        raise ConfigError("-o - writes one picture to standard output; --recursive is for folders (-o cutouts/)")
    if args.skip_existing:
        raise ConfigError("--skip-existing keeps pictures already written, and standard output (-o -) holds none; drop it")
    if args.report == "-":
        raise ConfigError("--report - and -o - would both write to standard output; name a report file (--report run.json)")
    if args.report is not None and leads_to_standard_output(args.report):  # /dev/stdout, or `> cut.png --report cut.png`
        raise ConfigError(f"--report {args.report} is where standard output goes, and -o - writes the picture there; "
                          "name another report file (--report run.json)")
    suffix = stdout_suffix(args.ext)
    if suffix == ".jpg" and args.output == "rgba":
        raise ConfigError("--ext jpg: JPEG has no transparency; write --ext png, webp or tif, or choose an opaque --output "
                          "(foreground, mask, green, composite, blur, overlay)")  # fmt: skip
    if _is_terminal(sys.stdout):  # a picture's bytes garble the terminal: refused, as gzip does
        raise ConfigError("not writing a picture to a terminal: redirect standard output (-o - > cut.png) or pipe it on (-o - | ...)")


def stdout_suffix(ext: object) -> str:
    """The file type ``--ext`` names for ``-o -`` (``png``, ``.webp``, ``jpeg``, ``tiff``; PNG when not given);
    ConfigError for another."""
    if ext is None:
        return ".png"
    name = str(ext).strip().lower().lstrip(".")
    if name not in STDOUT_FORMATS:
        raise ConfigError(f"--ext {ext}: expected png, webp, jpg or tif for -o - (the picture written to standard output)")
    return STDOUT_FORMATS[name]


def save_standard_input(folder: Path) -> Path:
    """Standard input's bytes saved in ``folder`` under the suffix of the picture they hold (the readers go by it);
    SourceError, one line, when it is empty or holds no picture ``image`` reads."""
    stream = getattr(sys.stdin, "buffer", sys.stdin)
    try:
        data = stream.read() if stream is not None else b""  # a closed stdin (`<&-`) is an empty one
    except OSError as e:  # a terminal hung up, a socket reset
        raise SourceError(f"cannot read standard input ({e.strerror or e})") from None
    if not data:
        raise SourceError(f"standard input is empty: pipe a picture in ({_KNOWN}), e.g. cat photo.jpg | birefvid image - -o cut.png")
    raw = folder / "standard-input"
    try:
        raw.write_bytes(data)
    except OSError as e:  # a full temporary disk: one line, not a traceback
        raise SinkError(f"cannot save standard input's picture in {folder.parent} ({e.strerror or e}); set TMPDIR to a folder with room") from None
    return raw.rename(raw.with_suffix(_picture_suffix(raw, data)))


def _picture_suffix(path: Path, data: bytes) -> str:
    """The suffix of the picture at ``path`` (``data``: its bytes), from its header; SourceError when it is none."""
    from PIL import Image

    from ..extensions import PILLOW_SUFFIXES
    from ..io import heif
    from ..io.image_source import opened_unlimited

    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS and not heif.available():
        raise SourceError(f"standard input holds a HEIC/HEIF picture: {heif.INSTALL}")
    heif.available()  # registers pillow-heif's opener, where installed, so a HEIC is told apart too
    try:
        with opened_unlimited(path) as im:  # the header only; the size limits are the reader's, as for a file
            kind = im.format
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise SourceError(f"standard input holds no picture birefvid reads ({_KNOWN}; a video is cut out from a file, "
                          "with birefvid process)") from None  # fmt: skip
    if kind not in PILLOW_SUFFIXES:
        raise SourceError(f"standard input holds a {kind} picture; birefvid image reads {_KNOWN}")
    return PILLOW_SUFFIXES[kind]


@contextlib.contextmanager
def _private_folder() -> Iterator[str]:
    """A temporary folder only this user reads, removed at the end; SinkError, one line, when none can be made."""
    try:
        made = tempfile.TemporaryDirectory(prefix="birefvid-image-")
    except OSError as e:  # TMPDIR unwritable or missing
        raise SinkError(f"cannot make a temporary folder for the picture ({e.strerror or e}); set TMPDIR to a writable folder") from None
    with made as folder:
        yield folder


def _is_terminal(stream: object) -> bool:
    """Whether ``stream`` is a terminal (False where it is closed or no file)."""
    try:
        return bool(stream is not None and stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False


@contextlib.contextmanager
def _messages_naming(said: Mapping[str, str]) -> Iterator[None]:
    """Errors and warnings name the temporary files as the streams they stand for: "standard input is 1x1 pixels",
    not a path in /tmp the user never gave."""
    if not said:
        yield
        return
    pattern = re.compile("|".join(re.escape(p) for p in sorted(said, key=len, reverse=True)))

    def shown(text: str) -> str:
        return pattern.sub(lambda m: said[m.group(0)], text)

    def rename(record: logging.LogRecord) -> bool:
        record.msg, record.args = shown(record.getMessage()), None
        return True

    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(rename)
    try:
        yield
    except BirefvidError as e:
        e.args = (shown(str(e)),)
        raise
    finally:
        for handler in handlers:
            handler.removeFilter(rename)


@contextlib.contextmanager
def _stdout_kept_clear(guard: bool) -> Iterator[None]:
    """While ``guard``, whatever the run would print on standard output goes to standard error: a line a library
    prints (or a C library writes to descriptor 1) would corrupt the picture that follows it there."""
    if not guard:
        yield
        return
    sys.stdout.flush()
    saved_fd, saved = os.dup(1), sys.stdout
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stdout = saved
        os.dup2(saved_fd, 1)
        os.close(saved_fd)
