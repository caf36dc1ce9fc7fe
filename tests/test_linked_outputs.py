"""Two outputs of one run that lead to one file through symbolic links: each output is written where its link leads, so
the second one done replaced the first's, exit 0 and an output short. Refused in one line before any work."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from birefvid.cli import main
from media import make_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("clip") / "clip.mp4", n_frames=3).path


def model(weights: Path) -> list[str]:
    return ["--output", "mask", "--weights", str(weights), "--device", "cpu", "--resolution", "64", "-q"]


def one_line(capsys, code: int, *said: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and all(s in err[0] for s in said), (code, err)
    return err[0]


@pytest.mark.parametrize("links", [{"a.mkv": "../shared/same.mkv", "b.mkv": "../shared/same.mkv"}, {"b.mkv": "a.mkv"}])
def test_batch_outputs_linked_to_one_file(tmp_path, capsys, clip, pvt_b0_weights, links):
    inputs, out, shared = tmp_path / "in", tmp_path / "out", tmp_path / "shared"
    for folder in (inputs, out, shared):
        folder.mkdir()
    for name in ("a", "b"):
        shutil.copy(clip, inputs / f"{name}.mp4")
    for name, target in links.items():
        (out / name).symlink_to(target)
    one_line(capsys, main(["batch", str(inputs), "-o", str(out), *model(pvt_b0_weights)]), "a.mkv", "b.mkv", "lead to one file")
    assert sorted(p.name for p in out.iterdir()) == sorted(links) and not any(shared.iterdir())


def test_process_also_linked_to_the_main_output(tmp_path, capsys, clip, pvt_b0_weights):
    (tmp_path / "green.mkv").symlink_to("out.mkv")
    one_line(capsys, main(["process", str(clip), "-o", str(tmp_path / "out.mkv"), "--also", f"green={tmp_path / 'green.mkv'}",
                           *model(pvt_b0_weights)]), "are the same file")
    assert [p.name for p in tmp_path.iterdir()] == ["green.mkv"]


def test_batch_output_linked_to_another_input_is_refused_before_any_work(tmp_path, capsys, clip, pvt_b0_weights):
    """``out/b.mkv`` a link to ``in/a.mkv``, another input of the batch, with ``--overwrite``: b's mask was renamed onto
    a's source, exit 0, the video gone. Each output was checked against its own input only."""
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir(), out.mkdir()
    shutil.copy(clip, inputs / "a.mkv")
    shutil.copy(clip, inputs / "b.mp4")
    (out / "b.mkv").symlink_to("../in/a.mkv")
    before = (inputs / "a.mkv").read_bytes()
    one_line(capsys, main(["batch", str(inputs), "-o", str(out), "--ext", ".mkv", "--overwrite", *model(pvt_b0_weights)]),
             "b.mkv", "a.mkv", "an input of this batch")
    assert (inputs / "a.mkv").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["b.mkv"]
