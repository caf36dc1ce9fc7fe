"""Logged warnings read like the CLI's own lines (``birefvid: warning: ...``): they said
``WARNING birefvid.commands.options: ...`` beside ``birefvid: error:`` and ``birefvid: warning:``
lines printed directly, two styles for one reader and for a script's grep."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

from birefvid.cli import CliLogFormatter, build_parser


def _formatted(formatter: logging.Formatter, name: str, level: int, message: str) -> str:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.propagate, logger.level = False, logging.DEBUG
    try:
        logger.log(level, message)
    finally:
        logger.removeHandler(handler)
        logger.propagate, logger.level = True, logging.NOTSET
    return out.getvalue()


def test_a_logged_warning_is_one_birefvid_warning_line(tmp_path):
    bad = tmp_path / "notavideo.mp4"
    bad.write_bytes(b"not a video")
    run = subprocess.run([sys.executable, "-m", "birefvid", "process", str(bad), "-o", str(tmp_path / "x.mkv"), "--fps", "30"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 2
    lines = run.stderr.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"birefvid: warning: --fps sets an image sequence's frame rate: {bad} keeps its own timing"), lines
    assert lines[1].startswith(f"birefvid: error: {bad} is not a readable video"), lines


def test_verbose_names_the_module_and_other_libraries_keep_their_name():
    quiet, verbose = CliLogFormatter(), CliLogFormatter(verbose=True)
    assert _formatted(quiet, "birefvid.io.audio", logging.WARNING, "no sound") == "birefvid: warning: no sound\n"
    assert _formatted(verbose, "birefvid.io.audio", logging.WARNING, "no sound") == "birefvid: warning: no sound [birefvid.io.audio]\n"
    assert _formatted(verbose, "birefvid.io.audio", logging.DEBUG, "opened") == "birefvid: debug: opened [birefvid.io.audio]\n"
    assert _formatted(quiet, "birefvid.runtime", logging.INFO, "ready") == "birefvid: ready\n"
    assert _formatted(quiet, "ray.worker", logging.ERROR, "lost") == "ray.worker: error: lost\n"


def test_another_librarys_lines_are_joined_but_a_traceback_in_them_and_verbose_keep_their_lines():
    """huggingface_hub's two-line retry warning is one line; a traceback a library logged as text ("; "-joined frames,
    unreadable) and anything under -v keep their lines."""
    quiet, verbose = CliLogFormatter(), CliLogFormatter(verbose=True)
    retry = "Error while downloading from http://m/x: peer closed\nTrying to resume download..."
    assert _formatted(quiet, "huggingface_hub.file_download", logging.WARNING, retry) == (
        "huggingface_hub.file_download: warning: Error while downloading from http://m/x: peer closed; Trying to resume download...\n")
    frames = 'export fell back:\nTraceback (most recent call last):\n  File "x.py", line 5, in f\nZeroDivisionError: division by zero'
    for formatter in (quiet, verbose):
        assert _formatted(formatter, "torch.onnx", logging.WARNING, frames) == f"torch.onnx: warning: {frames}\n"
    assert _formatted(verbose, "huggingface_hub.file_download", logging.WARNING, retry) == f"huggingface_hub.file_download: warning: {retry}\n"


def test_verbose_works_after_the_command_too():
    """`-v` put where users put options (after the command) was "unrecognized arguments: -v"."""
    parser = build_parser()
    for command in (["process", "a.mp4", "-o", "b.mov"], ["live", "--source", "0"], ["image", "a.jpg", "-o", "b.png"], ["models"]):
        assert parser.parse_args([*command, "-v"]).verbose is True
        assert parser.parse_args(["-v", *command]).verbose is True  # before it, as before
        assert parser.parse_args(command).verbose is False


def test_a_notice_is_shown_without_calling_it_a_warning():
    """A first run's "exporting tiny to ONNX" read "birefvid: warning: exporting ...", and a script
    grepping for warnings, or a user, took a normal first run for a problem."""
    from birefvid.errors import NOTICE

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(CliLogFormatter())
    logger = logging.getLogger("birefvid.backends.export")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("exported in %.1f s", 12.0, extra=NOTICE)
        logger.warning("the cache cannot be written")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    assert out.getvalue().splitlines() == ["birefvid: exported in 12.0 s", "birefvid: warning: the cache cannot be written"]


def test_an_uncaught_exception_s_traceback_hides_url_secrets():
    """A bug's traceback quotes what it met (PyAV names the URL it opened: an rtsp:// login, a stream key), and
    tracebacks are pasted into bug reports; Python printed them whole, in the main thread and in others."""
    import subprocess
    import sys

    code = (
        "import threading; from birefvid.cli import hide_secrets_in_tracebacks; hide_secrets_in_tracebacks()\n"
        "def fail(): raise RuntimeError('cannot open rtmp://live.example/app/sk-live-SECRETKEY')\n"
        "t = threading.Thread(target=fail, name='sender'); t.start(); t.join()\n"
        "raise OSError(\"cannot open 'rtsp://admin:S3CRETPW@cam/1'\")\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "S3CRETPW" not in run.stderr and "SECRETKEY" not in run.stderr, run.stderr
    assert "OSError: cannot open 'rtsp://admin:***@cam/1'" in run.stderr, run.stderr
    assert "Exception in thread sender:" in run.stderr and "rtmp://live.example/app/***" in run.stderr, run.stderr
