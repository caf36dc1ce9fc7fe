"""``birefvid image - -o -``: a picture piped in, its cut-out piped out, as ``rembg i - -`` and ImageMagick do.

Real runs of the command line in a child process with real pipes (and a real terminal from ``pty``): what a shell
user gets. The seeded test weights on PyTorch at 64 px keep each run to the interpreter's start and a model load.
Refusals made before any picture is written, and the file run a piped one is compared with, go through
``birefvid.cli.main`` in this process, standard input a real pipe: a child's start (1.5-2 s of CI's time each) shows
nothing more there, while what reaches a real standard output (its bytes, a broken pipe, exit 141) keeps a child.
"""

from __future__ import annotations

import logging
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from media import scene_picture, write_scene_picture

from birefvid.cli import EXIT_BROKEN_PIPE, main


pytestmark = pytest.mark.usefixtures("one_cpu_thread")  # speed: conftest says why


MODEL_ARGS = ["--resolution", "64", "--device", "cpu", "--precision", "fp32", "--backend", "torch"]


def _birefvid(args: list[str], cwd: Path, stdin: object = subprocess.DEVNULL, stdout: object = subprocess.PIPE) -> subprocess.CompletedProcess:
    """``birefvid ARGS`` run as a shell runs it, ``stdin`` a file, bytes or a descriptor."""
    command = [sys.executable, "-m", "birefvid", *args]
    if isinstance(stdin, bytes):
        return subprocess.run(command, cwd=cwd, input=stdin, stdout=stdout, stderr=subprocess.PIPE, timeout=300)
    return subprocess.run(command, cwd=cwd, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, timeout=300)


def _main_reading(args: list[str], cwd: Path, data: bytes, monkeypatch: pytest.MonkeyPatch) -> int:
    """``birefvid ARGS`` run in this process from ``cwd``, its standard input a real pipe holding ``data``."""
    monkeypatch.chdir(cwd)
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "wb") as writer:  # small data: fits the pipe's buffer, then its end is seen
        writer.write(data)
    with os.fdopen(read_end, "r") as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        return main(args)


def _one_error_line_of_main(code: int, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture, words: str) -> None:
    """What ``_one_error_line`` checks of a child, of a run through ``main``: under pytest the log's lines reach
    pytest's handler, not standard error (``logging.basicConfig`` leaves a configured root alone), so a warning or
    notice the command would print is looked for there."""
    out, err = capsys.readouterr()
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("birefvid: error:") and words in err, err
    assert [r.getMessage() for r in caplog.records if r.name.startswith("birefvid") and r.levelno >= logging.WARNING] == []
    assert out == ""  # nothing on standard output


def _one_error_line(done: subprocess.CompletedProcess, words: str) -> None:
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("birefvid: error:") and words in err, err


def _sideways_jpeg(path: Path) -> Path:
    """A JPEG stored sideways with EXIF orientation 6, as phones save portrait photos."""
    exif = Image.Exif()
    exif[0x0112] = 6  # turn 90 degrees clockwise to display
    Image.fromarray(scene_picture(3)).save(path, exif=exif, quality=95)
    return path


def test_a_picture_piped_through_is_the_cut_out_the_file_run_writes(tmp_path, pvt_b0_weights):
    """``cat in.png | birefvid image - -o - > out.png``, and a sideways phone JPEG, come out as from files: the same
    RGBA pixels, the JPEG upright; nothing but the picture on stdout, the summary on stderr."""
    flat, phone = write_scene_picture(tmp_path / "flat.png"), _sideways_jpeg(tmp_path / "phone.jpg")
    weights = ["--weights", str(pvt_b0_weights), *MODEL_ARGS]
    assert main(["image", str(flat), str(phone), "-o", str(tmp_path / "files"), "-q", *weights]) == 0  # files: no pipe, no child
    for source in (flat, phone):
        with source.open("rb") as picture:
            done = _birefvid(["image", "-", "-o", "-", *weights], tmp_path, stdin=picture)
        assert done.returncode == 0, done.stderr.decode()
        assert done.stdout.startswith(b"\x89PNG\r\n\x1a\n")  # PNG, the default for a cut-out with alpha
        assert done.stderr.decode().strip().splitlines()[-1].endswith("of PNG to standard output")
        piped = cv2.imdecode(np.frombuffer(done.stdout, np.uint8), cv2.IMREAD_UNCHANGED)
        from_file = cv2.imread(str(tmp_path / "files" / f"{source.stem}.png"), cv2.IMREAD_UNCHANGED)
        assert piped.shape == from_file.shape == ((48, 64, 4) if source is flat else (64, 48, 4))  # the phone's upright
        assert np.array_equal(piped, from_file)


def test_ext_names_the_format_written_to_stdout_and_a_file_output_reads_stdin(tmp_path, pvt_b0_weights):
    """``--ext webp`` gives WebP bytes; ``- -o cut.png`` reads the pipe and writes a file, its report naming ``-``."""
    import json

    photo = write_scene_picture(tmp_path / "photo.png").read_bytes()
    weights = ["--weights", str(pvt_b0_weights), *MODEL_ARGS]
    done = _birefvid(["image", "-", "-o", "-", "--ext", "webp", "--output", "mask", "-q", *weights], tmp_path, stdin=photo)
    assert done.returncode == 0 and done.stdout[:4] == b"RIFF" and done.stdout[8:12] == b"WEBP", done.stderr.decode()
    assert done.stderr == b""  # -q: nothing else
    done = _birefvid(["image", "-", "-o", "cut.png", "--report", "-", *weights], tmp_path, stdin=photo)
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    assert report["written"] == [{"input": "-", "output": "cut.png", "bit_depth": 8}]
    assert cv2.imread(str(tmp_path / "cut.png"), cv2.IMREAD_UNCHANGED).shape == (48, 64, 4)


@pytest.mark.parametrize("data, words", [(b"", "standard input is empty"), (b"<html><body>404</body></html>", "standard input holds no picture")],
                         ids=["empty", "a-web-page"])  # fmt: skip
def test_what_is_no_picture_on_stdin_is_one_line_and_nothing_on_stdout(tmp_path, pvt_b0_weights, data, words, capsys, caplog, monkeypatch):
    code = _main_reading(["image", "-", "-o", "-", "--weights", str(pvt_b0_weights), *MODEL_ARGS], tmp_path, data, monkeypatch)
    _one_error_line_of_main(code, capsys, caplog, words)


def test_a_run_that_fails_after_reading_the_picture_leaves_stdout_empty(tmp_path):
    """The model fails to load once the picture is read: one line, and not a byte on stdout for ``> out.png``."""
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"junk")
    photo = write_scene_picture(tmp_path / "photo.png").read_bytes()
    done = _birefvid(["image", "-", "-o", "-", "--weights", str(junk), *MODEL_ARGS], tmp_path, stdin=photo)
    _one_error_line(done, "not a BiRefNet checkpoint")
    assert done.stdout == b""


def test_a_reader_that_left_ends_the_run_as_a_closed_pipe_does_elsewhere(tmp_path, pvt_b0_weights):
    """``... -o - | head -c 10`` with the reader gone before the picture comes: exit 141, no traceback."""
    photo = write_scene_picture(tmp_path / "photo.png")
    command = [sys.executable, "-m", "birefvid", "image", "-", "-o", "-", "--weights", str(pvt_b0_weights), *MODEL_ARGS]
    with photo.open("rb") as picture:
        proc = subprocess.Popen(command, cwd=tmp_path, stdin=picture, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdout.close()  # the reader leaves: the picture's write fails
        err = proc.stderr.read().decode()
        assert proc.wait(300) == EXIT_BROKEN_PIPE, err
    assert "Traceback" not in err


def test_a_reader_that_leaves_mid_picture_ends_the_run_as_a_closed_pipe_does(tmp_path, pvt_b0_weights):
    """``... -o - | head -c 10`` with the picture larger than the pipe: the reader leaves while the write waits on it.

    The kernel then reports the bytes it took (a short write), not an error, and Python's buffered ``write`` passes
    that count on: a run that did not check it said "wrote N bytes" and exited 0 with most of the picture lost."""
    noise = np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8)  # a PNG of MBs: past any pipe's buffer
    cv2.imwrite(str(tmp_path / "noise.png"), noise)
    command = [sys.executable, "-m", "birefvid", "image", "noise.png", "-o", "-", "--weights", str(pvt_b0_weights), *MODEL_ARGS]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert len(proc.stdout.read(10)) == 10  # the write has begun and fills the pipe
    proc.stdout.close()  # then the reader leaves, as head -c 10 does
    err = proc.stderr.read().decode()
    assert proc.wait(300) == EXIT_BROKEN_PIPE, err
    assert "Traceback" not in err and "wrote" not in err, err


def _on_a_terminal(args: list[str], cwd: Path, stdin_is_terminal: bool) -> tuple[subprocess.CompletedProcess, bytes]:
    """``birefvid ARGS`` with stdout (else stdin) a real terminal (``pty``), and what reached that terminal."""
    leader, follower = pty.openpty()
    try:
        picture = write_scene_picture(cwd / "photo.png").open("rb")
        with picture:
            if stdin_is_terminal:
                done = _birefvid(args, cwd, stdin=follower)
            else:
                done = _birefvid(args, cwd, stdin=picture, stdout=follower)
        shown = b""
        while select.select([leader], [], [], 0)[0]:
            shown += os.read(leader, 65536)
        return done, shown
    finally:
        os.close(follower)
        os.close(leader)


def test_a_terminal_is_refused_on_stdout_and_on_stdin_as_gzip_does(tmp_path, pvt_b0_weights):
    """A picture's bytes would garble the terminal, and a terminal on stdin would wait for a picture typed in."""
    weights = ["--weights", str(pvt_b0_weights), *MODEL_ARGS]
    done, shown = _on_a_terminal(["image", "-", "-o", "-", *weights], tmp_path, stdin_is_terminal=False)
    _one_error_line(done, "not writing a picture to a terminal")
    assert shown == b""
    done, _ = _on_a_terminal(["image", "-", "-o", "cut.png", *weights], tmp_path, stdin_is_terminal=True)
    _one_error_line(done, "standard input is a terminal")
    assert not (tmp_path / "cut.png").exists()


@pytest.mark.parametrize("report", ["/dev/stdout", "cut.png"])
def test_a_report_leading_to_where_the_picture_goes_is_refused(tmp_path, pvt_b0_weights, report):
    """``image - -o - --report /dev/stdout > cut.png``: the report went into cut.png after the picture's bytes, and
    ``--report cut.png > cut.png`` renamed the report onto the picture (the picture gone), both exit 0, where
    ``--report -`` is refused. Now the same one line, before any work."""
    write_scene_picture(tmp_path / "photo.png")
    with open(tmp_path / "cut.png", "wb") as out:
        done = _birefvid(["image", "-", "-o", "-", "--report", report, "--weights", str(pvt_b0_weights), *MODEL_ARGS], tmp_path,
                         stdin=(tmp_path / "photo.png").read_bytes(), stdout=out)
    _one_error_line(done, "is where standard output goes")
    assert (tmp_path / "cut.png").read_bytes() == b""


@pytest.mark.parametrize("args, words", [
    (["-", "photo.png", "-o", "out"], "standard input (-) holds one picture"),
    (["photo.png", "photo2.png", "-o", "-"], "2 inputs need an output folder"),
    ([".", "-o", "-"], ". names a folder"),
    (["-", "-o", "-", "--report", "-"], "--report - and -o - would both write to standard output"),
    (["-", "-o", "-", "--ext", "jpg"], "JPEG has no transparency"),
    (["-", "-o", "-", "--ext", "gif"], "expected png, webp, jpg or tif"),
    # process reads a file: the line named the saved picture "standard input" as one (`birefvid process standard input -o`)
    (["-", "-o", "cut.exr"], "from a file, not standard input: save the picture (photo.png), then birefvid process photo.png -o cut/cut.%04d.exr"),
], ids=["stdin-with-others", "several-to-stdout", "folder-to-stdout", "two-on-stdout", "jpeg-with-alpha", "gif", "exr"])  # fmt: skip
def test_what_cannot_go_through_a_pipe_is_one_line_before_any_work(tmp_path, args, words, capsys, caplog, monkeypatch):
    write_scene_picture(tmp_path / "photo.png")
    write_scene_picture(tmp_path / "photo2.png")
    code = _main_reading(["image", *args], tmp_path, (tmp_path / "photo.png").read_bytes(), monkeypatch)
    _one_error_line_of_main(code, capsys, caplog, words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png", "photo2.png"]
