"""A symbolic link in a loop (``ln -s loop loop``) named where a command writes: one error line, exit 2, nothing written.

Python's first look at such a path (``Path.resolve``) raises ``RuntimeError: Symlink loop from ...``: every command
that took it as an output ended in that traceback, exit 1 (a dangling link, by contrast, is an output not made yet).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from birefvid.cli import guarded, main
from media import make_images, make_video

LOOP = "is a symbolic link in a loop"


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("clip") / "clip.mp4", n_frames=3).path


@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pictures")
    make_images(folder, n=1)
    return next(folder.iterdir())


def loop_at(path: Path) -> Path:
    """``path`` made a link to itself."""
    path.symlink_to(path.name)
    return path


def one_loop_line(capsys, code: int, named: str) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1, lines
    assert lines[0].startswith("birefvid: error:") and LOOP in lines[0] and named in lines[0], lines[0]
    return lines[0]


def only_links(folder: Path, *names: str) -> None:
    """Nothing written beside the links: no output, no temporary file."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


def model(weights: Path) -> list[str]:
    return ["--weights", str(weights), "--device", "cpu", "-q"]


@pytest.mark.parametrize("name", ["loop.mkv", "loop", "loop/out.mkv"])
def test_process_output(tmp_path, capsys, clip, pvt_b0_weights, name):
    loop_at(tmp_path / name.split("/")[0])
    one_loop_line(capsys, main(["process", str(clip), "-o", str(tmp_path / name), "--output", "mask", *model(pvt_b0_weights)]),
                  f"{tmp_path / name.split('/')[0]} {LOOP}")
    only_links(tmp_path, name.split("/")[0])


def test_process_also_and_report(tmp_path, capsys, clip, pvt_b0_weights):
    loop_at(tmp_path / "loop.mkv")
    out = tmp_path / "out.mkv"
    one_loop_line(capsys, main(["process", str(clip), "-o", str(out), "--output", "mask", "--also", f"green={tmp_path / 'loop.mkv'}",
                                *model(pvt_b0_weights)]), "loop.mkv")
    one_loop_line(capsys, main(["process", str(clip), "-o", str(out), "--output", "mask", "--report", str(tmp_path / "loop.mkv"),
                                *model(pvt_b0_weights)]), "--report")
    only_links(tmp_path, "loop.mkv")


@pytest.mark.parametrize("name", ["loop.png", "loop"])
def test_image_output(tmp_path, capsys, picture, pvt_b0_weights, name):
    loop_at(tmp_path / name)
    one_loop_line(capsys, main(["image", str(picture), "-o", str(tmp_path / name), *model(pvt_b0_weights)]), name)
    only_links(tmp_path, name)


def test_batch_output_folder_and_progress_json(tmp_path, capsys, clip, pvt_b0_weights):
    loop_at(tmp_path / "loop")
    one_loop_line(capsys, main(["batch", str(clip), "-o", str(tmp_path / "loop"), *model(pvt_b0_weights)]), "--output-dir")
    one_loop_line(capsys, main(["batch", str(clip), "-o", str(tmp_path / "out"), "--progress-json", str(tmp_path / "loop"),
                                *model(pvt_b0_weights)]), "--progress-json")
    only_links(tmp_path, "loop")


@pytest.mark.parametrize("segment", [[], ["--segment", "10"]])
def test_live_recording(tmp_path, capsys, clip, pvt_b0_weights, segment):
    loop_at(tmp_path / "loop.mkv")
    one_loop_line(capsys, main(["live", "--source", str(clip), "--sink", str(tmp_path / "loop.mkv"), "--duration", "1", *segment,
                                *model(pvt_b0_weights)]), "loop.mkv")
    only_links(tmp_path, "loop.mkv")


def test_live_stats_json(tmp_path, capsys, clip, pvt_b0_weights):
    loop_at(tmp_path / "loop")
    one_loop_line(capsys, main(["live", "--source", str(clip), "--sink", str(tmp_path / "out.mkv"), "--duration", "1",
                                "--stats-json", str(tmp_path / "loop"), *model(pvt_b0_weights)]), "--stats-json")
    only_links(tmp_path, "loop")


def test_export_output_before_the_export(tmp_path, capsys, pvt_b0_weights):
    loop_at(tmp_path / "loop.onnx")
    one_loop_line(capsys, main(["export", "-o", str(tmp_path / "loop.onnx"), "--weights", str(pvt_b0_weights)]), "loop.onnx")
    only_links(tmp_path, "loop.onnx")


def test_eval_json(tmp_path, capsys, clip):
    loop_at(tmp_path / "loop")
    one_loop_line(capsys, main(["eval", str(clip), str(clip), "--json", str(tmp_path / "loop")]), "--json")


@pytest.mark.parametrize("error", [RuntimeError("Symlink loop from '/x/loop'"), OSError(40, "Too many levels of symbolic links", "/x/loop")])
def test_a_loop_met_anywhere_else_is_one_line(capsys, error):
    """Where no check names the loop first, the error it raises is still one line, exit 2, not a traceback."""

    def work() -> int:
        raise error

    one_loop_line(capsys, guarded("birefvid", work), "/x/loop")


# A link in a loop named as an INPUT: it said "input not found: loop" while `ls` shows the file there; now the loop is
# named. Nothing is read, so no model is loaded (the refusal comes first).
@pytest.mark.parametrize("command", [
    ["process", "{loop}", "-o", "{out}/out.mkv"],
    ["process", "{loop}/clip.mp4", "-o", "{out}/out.mkv"],  # a folder on the way loops
    ["batch", "{loop}", "-o", "{out}/outs"],
    ["batch", "--watch", "{loop}", "-o", "{out}/outs"],
    ["image", "{loop}", "-o", "{out}/cut"],
    ["eval", "{loop}", "{clip}"],
    ["eval", "{clip}", "{loop}"],
    ["live", "--source", "{loop}", "--sink", "{out}/rec.mkv", "--duration", "1"],
])
def test_an_input_in_a_loop_is_named_as_one(tmp_path, capsys, clip, command):
    loop = loop_at(tmp_path / "loop.mp4")
    out = tmp_path / "out"
    out.mkdir()
    argv = [a.format(loop=loop, out=out, clip=clip) for a in command]
    line = one_loop_line(capsys, main(argv), f"{loop} {LOOP}")
    assert "not found" not in line, line
    assert "cannot read" in line, line
    only_links(tmp_path, "loop.mp4", "out")
    assert not any(out.iterdir())
