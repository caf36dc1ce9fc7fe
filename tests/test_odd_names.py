"""File names a user meets that are not plain words: bytes that are no UTF-8 (``caf\\xe9.mp4`` from an old NAS), very long
names. What the command says of them on stderr, and that its outputs and ``--report`` still name the real file."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest

from birefvid.cli import main
from media import make_video

LATIN1 = os.fsdecode(b"caf\xe9")  # what Python makes of the byte 0xE9 in a name: the surrogate U+DCE9


def stderr_bytes(monkeypatch):
    """A stderr as Python's own on a UTF-8 terminal (``backslashreplace``), whose bytes the test reads (set in the test's
    body: pytest puts its own capture back after the fixtures are set up)."""
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace", write_through=True)
    monkeypatch.setattr(sys, "stderr", err)

    def read() -> bytes:
        err.flush()
        return err.buffer.getvalue()

    return read


def model(weights: Path) -> list[str]:
    return ["--weights", str(weights), "--device", "cpu", "--resolution", "64", "--output", "mask"]


def test_an_error_line_shows_a_byte_that_is_no_utf8_as_a_shell_names_it(tmp_path, monkeypatch, pvt_b0_weights):
    """``\\udce9``, the name of no file, was shown for the byte 0xE9; now ``\\xe9``, as ``$'caf\\xe9.mp4'`` names it."""
    stderr = stderr_bytes(monkeypatch)
    bad = tmp_path / f"{LATIN1}.mp4"
    bad.write_text("not a video")
    assert main(["process", str(bad), "-o", str(tmp_path / "out.mkv"), *model(pvt_b0_weights)]) == 2
    err = stderr()
    assert b"/caf\\xe9.mp4 is not a readable video" in err and b"udce9" not in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_the_summary_shows_it_and_the_report_keeps_the_real_name(tmp_path, monkeypatch, pvt_b0_weights):
    stderr = stderr_bytes(monkeypatch)
    clip = make_video(tmp_path / f"{LATIN1}.mp4", n_frames=3, with_audio=False).path
    out, report = tmp_path / f"{LATIN1}.mkv", tmp_path / "report.json"
    assert main(["process", str(clip), "-o", str(out), "--report", str(report), *model(pvt_b0_weights)]) == 0
    err = stderr()
    assert b"caf\\xe9.mkv" in err and b"udce9" not in err, err
    assert out.is_file()
    job = json.loads(report.read_text())["job"]  # JSON's \udce9: json.loads gives the surrogate back, the real file's name
    assert os.fsencode(job["source"]["input"]) == os.fsencode(clip) and Path(job["output"]["path"]) == out


def test_batch_progress_lines_show_it_too(tmp_path, monkeypatch, pvt_b0_weights):
    """The progress lines (what each video became, which was skipped and why) go through the same stderr."""
    stderr = stderr_bytes(monkeypatch)
    folder = tmp_path / "in"
    folder.mkdir()
    make_video(folder / f"{LATIN1}.mp4", n_frames=3, with_audio=False)
    (folder / f"{LATIN1}2.mp4").write_text("not a video")
    main(["batch", str(folder), "-o", str(tmp_path / "out"), *model(pvt_b0_weights)])
    err = stderr()
    assert b"caf\\xe9.mkv: wrote " in err and b"skipped: " in err and b"caf\\xe92.mp4" in err and b"udce9" not in err, err
    assert (tmp_path / "out" / f"{LATIN1}.mkv").is_file()


def test_image_into_a_folder_refuses_a_cut_out_name_over_255_bytes_before_any_work(tmp_path, capsys, pvt_b0_weights):
    """A 251-byte ``NAME.png`` is a fine picture, but its cut-out ``NAME.webp`` is 256 bytes: the first look at it was
    an OSError 'File name too long' traceback (exit 1); ``batch`` said it in a line already."""
    from PIL import Image

    picture = tmp_path / f"{'a' * 251}.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(picture)
    (tmp_path / "cut").mkdir()  # there already (a folder yet to be made failed only after the work, at the rename)
    code = main(["image", str(picture), "-o", str(tmp_path / "cut"), "--ext", "webp", "--weights", str(pvt_b0_weights), "--device", "cpu"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("birefvid: error:"), lines
    assert "its name is 256 bytes long" in lines[0] and "--ext" in lines[0], lines
    assert list((tmp_path / "cut").iterdir()) == []


@pytest.mark.parametrize("command", [["process", "clip.mp4", "-o"], ["image", "a.png", "-o"], ["batch", "in/", "-o"], ["process", "clip.mp4", "-o", "x.mkv", "--report"]])
def test_an_output_named_with_a_leading_dash_gets_the_way_to_write_it(tmp_path, capsys, monkeypatch, command):
    """``-o -take2.mkv``: an output not there yet, taken for an option; argparse said only 'expected one argument'."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main([*command, "-take2.mkv"])
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith("expected one argument (-take2.mkv was taken for an option: to name that file, "
                                                 "write ./-take2.mkv)"), lines  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_a_name_with_a_line_break_keeps_the_error_to_one_line(tmp_path, capsys, pvt_b0_weights):
    """A file name may hold a newline (``$'take\\n2.mp4'``): the error line was split in two at it."""
    bad = tmp_path / "take\n2.mp4"
    bad.write_text("not a video")
    assert main(["process", str(bad), "-o", str(tmp_path / "out.mkv"), *model(pvt_b0_weights)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "take\\n2.mp4 is not a readable video" in lines[0], lines


@pytest.mark.parametrize("command", [["process", "{clip}", "--output", "mask", "-o", ".mkv"], ["process", "{clip}", "--output", "mask", "-o", "x.mkv", "--also", "green=.mov"],
                                     ["image", "{picture}", "-o", ".png"]])  # fmt: skip
def test_an_output_named_by_an_extension_alone_is_refused(tmp_path, capsys, monkeypatch, pvt_b0_weights, command):
    """``-o .mkv`` (a script's ``-o "$name.mkv"`` with ``$name`` empty) wrote a hidden folder of PNG frames named .mkv, exit 0."""
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    clip = make_video(tmp_path / "clip.mp4", n_frames=3, with_audio=False).path
    Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "a.png")
    argv = [word.format(clip=clip, picture=tmp_path / "a.png") for word in command]
    assert main([*argv, "--weights", str(pvt_b0_weights), "--device", "cpu", "--resolution", "64"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "is an extension alone" in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "clip.mp4"]


def test_an_output_named_png_alone_is_told_a_name_that_process_takes(tmp_path, capsys, monkeypatch, pvt_b0_weights):
    """``process -o .png`` was told 'name the file, as clip.png', which process refuses in turn (a video's frames go in
    a folder): the line now names a folder and a sequence pattern too, and the pattern it names is written."""
    import re

    monkeypatch.chdir(tmp_path)
    clip = make_video(tmp_path / "clip.mp4", n_frames=2, with_audio=False).path
    options = ["--output", "mask", "--weights", str(pvt_b0_weights), "--device", "cpu", "--resolution", "64", "-q"]
    assert main(["process", str(clip), "-o", ".png", *options]) == 2
    line = capsys.readouterr().err.strip()
    named = re.search(r"as frames/ or (\S+)$", line)
    assert named and "\n" not in line, line
    assert main(["process", str(clip), "-o", named[1], *options]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["matte.0001.png", "matte.0002.png"]


NEWLINE = "take\n2"  # a name with a line break, as a shell's $'take\n2.mp4' makes it


def test_a_line_break_in_a_name_keeps_the_wrote_line_one_line(tmp_path, capsys, pvt_b0_weights):
    """``wrote take\\n2.mkv: ...``: the summary line was split in two by the name, as error lines were."""
    clip = make_video(tmp_path / f"{NEWLINE}.mp4", n_frames=2, with_audio=False).path
    out = tmp_path / f"{NEWLINE}.mkv"
    assert main(["process", str(clip), "-o", str(out), "--weights", str(pvt_b0_weights), "--device", "cpu", "--resolution", "64",
                 "--output", "mask"]) == 0
    assert out.is_file()  # the real name on disk
    wrote = [line for line in capsys.readouterr().err.splitlines() if "frames in" in line]
    assert len(wrote) == 1 and wrote[0].startswith("wrote ") and "take\\n2.mkv: " in wrote[0], wrote


def test_a_line_break_in_a_name_keeps_batch_progress_one_line(tmp_path):
    """Batch's progress lines naming such a file: each one line, the name written ``\\n``; the JSON lines keep the
    real name."""
    from birefvid.batch.progress import BatchProgress

    stream = io.StringIO()
    progress = BatchProgress(stream=stream, json_path=tmp_path / "events.jsonl")
    progress.start(1, 1, 2, 1, "local")
    progress.chunk_done(f"{NEWLINE}.mp4", 0, 2, 1.0)
    progress.video_done(f"{NEWLINE}.mp4", f"out/{NEWLINE}.mkv")
    progress.close()
    lines = stream.getvalue().splitlines()
    assert all(line.startswith("[videos ") for line in lines), lines
    assert any("take\\n2.mp4" in line for line in lines), lines
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert any(NEWLINE in str(v) for e in events for v in e.values()), events


def test_a_line_break_in_a_name_keeps_our_warning_one_line():
    """A warning of ours naming such a file (``log.warning("%s: ...", path)``) was kept whole, split by the name."""
    import logging

    from birefvid.cli import CliLogFormatter

    record = logging.LogRecord("birefvid.batch.runner", logging.WARNING, __file__, 1, "%s: a warning about it", (Path(f"{NEWLINE}.mp4"),), None)
    line = CliLogFormatter().format(record)
    assert line == "birefvid: warning: take\\n2.mp4: a warning about it", line


@pytest.mark.parametrize("argv", [
    ["process", "{clip}", "-o", "{tmp}/out.mkv", "--report", "{tmp}/.json"],
    ["eval", "{clip}", "{clip}", "--json", "{tmp}/.json"],
    ["batch", "{clip}", "-o", "{tmp}/outs", "--progress-json", "{tmp}/.jsonl"],
    ["live", "--source", "{clip}", "--sink", "{tmp}/rec.mkv", "--duration", "1", "--stats-json", "{tmp}/.json"],
])
def test_a_json_file_named_by_an_extension_alone_is_refused(tmp_path, capsys, argv):
    """``--report "$name.json"`` with ``$name`` empty wrote a hidden ``.json`` that no ``ls`` shows (exit 0), where
    ``-o .mkv`` is refused: one line, exit 2, before any work (no model: the refusal comes first)."""
    clip = make_video(tmp_path / "clip.mp4", n_frames=2, with_audio=False).path
    code = main([a.format(clip=clip, tmp=tmp_path) for a in argv] + (["--weights", "nowhere.safetensors"] if argv[0] != "eval" else []))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "extension alone" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_a_line_break_in_a_name_logged_by_mapping_keeps_the_warning_one_line():
    """``log.warning("%(name)s ...", {"name": path})``: the formatter escaped a tuple's names only, so a mapping's passed
    the line break through and split the warning in two. Names in either, escaped; other arguments as they are."""
    import logging
    from pathlib import Path

    from birefvid.cli import CliLogFormatter

    def line(args) -> str:
        record = logging.LogRecord("birefvid.x", logging.WARNING, __file__, 1, "%(name)s: %(n)d frames", args, None)
        return CliLogFormatter().format(record)

    assert line({"name": "take\n2.mkv", "n": 3}) == line({"name": Path("take\n2.mkv"), "n": 3}) == "birefvid: warning: take\\n2.mkv: 3 frames"
