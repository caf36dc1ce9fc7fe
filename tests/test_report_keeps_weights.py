"""A report option (``--json``, ``--report``, ``--stats-json``, ``--progress-json``) never replaces the checkpoint a run
reads: ``bench --weights w.safetensors --json w.safetensors`` (a slip of tab completion) replaced the 31 MB checkpoint
with 669 bytes of figures, and ``process``/``image --report`` did the same, all exit 0; ``live --stats-json``
appended its lines to it. Each is now one line before the model loads, the checkpoint kept byte for byte."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from birefvid.cli import main
from media import make_video

TINY = Path(__file__).resolve().parent.parent / "birefvid" / "assets" / "tiny.safetensors"


def _picture(path: Path) -> str:
    cv2.imwrite(str(path), np.full((48, 64, 3), 128, np.uint8))
    return str(path)


def _refused(capsys, argv: list[str], option: str, report: Path) -> None:
    """Exit 2 and one line naming the option and the checkpoint; progress lines (bench's) aside."""
    code = main(argv)
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("birefvid: error:")]
    assert code == 2 and len(err) == 1, err
    assert f"{option} {report} would write into" in err[0] and "which this run reads" in err[0], err


@pytest.mark.parametrize("how", ["--weights", "--model", "snapshot folder"])
def test_bench_json_never_replaces_the_checkpoint(tmp_path, capsys, how):
    if how == "snapshot folder":  # `hf download --local-dir`: the folder is named, its model.safetensors read
        folder = tmp_path / "snapshot"
        folder.mkdir()
        weights = shutil.copy(TINY, folder / "model.safetensors")
        given = ["--weights", str(folder)]
    else:
        weights = shutil.copy(TINY, tmp_path / "w.safetensors")
        given = [how, str(weights)]
    before = Path(weights).read_bytes()
    argv = ["bench", *given, "--resolution", "64", "--device", "cpu", "--runs", "1", "--clip-frames", "0", "--json", str(weights)]
    _refused(capsys, argv, "--json", Path(weights))
    assert Path(weights).read_bytes() == before


@pytest.mark.parametrize("command", ["process", "image", "batch", "live --report", "live --stats-json"])
def test_every_report_option_keeps_the_checkpoint(tmp_path, capsys, command):
    weights = shutil.copy(TINY, tmp_path / "w.safetensors")
    before = Path(weights).read_bytes()
    (tmp_path / "in").mkdir()
    clip = make_video(tmp_path / "in" / "clip.mp4", n_frames=2, with_audio=False).path
    model = ["--weights", str(weights), "--resolution", "64", "--device", "cpu"]
    argv, option = {
        "process": (["process", str(clip), "-o", str(tmp_path / "cut.mkv"), "--report", str(weights)], "--report"),
        "image": (["image", _picture(tmp_path / "pic.png"), "-o", str(tmp_path / "cut.png"), "--report", str(weights)], "--report"),
        "batch": (["batch", str(clip.parent), "-o", str(tmp_path / "out"), "--progress-json", str(weights)], "--progress-json"),
        "live --report": (["live", "--source", str(clip), "--sink", str(tmp_path / "rec.mkv"), "--report", str(weights)], "--report"),
        "live --stats-json": (["live", "--source", str(clip), "--sink", str(tmp_path / "rec.mkv"), "--stats-json", str(weights)],
                              "--stats-json"),
    }[command]  # fmt: skip
    _refused(capsys, [*argv, *model], option, Path(weights))
    assert Path(weights).read_bytes() == before


@pytest.mark.parametrize("how", ["registry name beside a folder of that name", "report beside a snapshot's checkpoint"])
def test_a_report_in_a_folder_the_model_is_not_read_from_is_written(tmp_path, capsys, monkeypatch, how):
    """Only the checkpoint the loader reads is kept from reports: ``--model tiny`` is the registry's model even beside a
    folder called tiny/, and a snapshot folder's other files are not read, yet a report already in either (last run's)
    was refused as 'which this run reads'."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "tiny"
    folder.mkdir()
    if how.startswith("registry"):
        model = ["--model", "tiny"]
    else:
        shutil.copy(TINY, folder / "model.safetensors")
        model = ["--weights", "tiny/"]
    (folder / "report.json").write_text("{}")  # the last run's
    argv = ["image", _picture(tmp_path / "pic.png"), "-o", "cut.png", "--report", "tiny/report.json", *model, "--resolution", "64", "--device", "cpu"]
    assert main(argv) == 0, capsys.readouterr().err
    assert (folder / "report.json").read_text() != "{}"
