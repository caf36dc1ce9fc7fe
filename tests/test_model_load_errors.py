"""A model that fails to load with an error not birefvid's own (torch's RuntimeError from a checkpoint it cannot take, a
MemoryError, a reader's OSError) is one error line and exit 2 in every command, as on a Ray worker, not a traceback and
exit 1 (a bug's). The load alone is made to fail, with torch's own text; the commands, their inputs and outputs are real."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from media import scene_picture
from test_batch_media import MODEL, keyframed_clip

from birefvid.cli import main

TORCH_SAID = ("Error(s) in loading state_dict for BiRefNet:\n\tWhile copying the parameter named \"bb.w\", an exception "
              "occurred : ('Only Tensors of floating point and complex dtype can require gradients',).")  # fmt: skip
# the first line alone ("Error(s) in loading state_dict for BiRefNet:") says nothing: the one after it is kept too
LINE = ("birefvid: error: model: could not load the model: RuntimeError: Error(s) in loading state_dict for BiRefNet: While "
        "copying the parameter named \"bb.w\", an exception occurred : ('Only Tensors of floating point and complex dtype can "
        "require gradients',).")  # fmt: skip
WAIT = 300  # seconds a watch may wait: it must end on the error long before


@pytest.fixture
def torch_refuses(monkeypatch) -> None:
    """Every model load raises torch's own RuntimeError."""
    from birefvid.runtime import file_job

    def refuse(*_args, **_kwargs):
        raise RuntimeError(TORCH_SAID)

    monkeypatch.setattr(file_job, "segmenter_for", refuse)


def _argv(command: str, tmp_path: Path) -> tuple[list[str], Path]:
    """The command line of ``command`` on real inputs, and where its output would go."""
    drop = tmp_path / "drop"
    drop.mkdir()
    clip = keyframed_clip(drop / "a.mp4", 3)
    if command == "image":
        picture = tmp_path / "a.png"
        cv2.imwrite(str(picture), scene_picture(0))
        return ["image", str(picture), "-o", str(tmp_path / "a_cut.png"), *MODEL], tmp_path / "a_cut.png"
    if command == "process":
        return ["process", str(clip), "-o", str(tmp_path / "a.mkv"), "--output", "mask", *MODEL], tmp_path / "a.mkv"
    if command == "live":
        return ["live", "--source", str(clip), "--sink", str(tmp_path / "rec.mkv"), "--duration", "5", *MODEL], tmp_path / "rec.mkv"
    if command == "serve":
        return ["serve", "--host", "127.0.0.1", "--port", "0", *MODEL], tmp_path / "none"
    watch = ["--watch", "--settle", "0.5", "--watch-for", str(WAIT)] if command == "batch --watch" else []
    return ["batch", str(drop), "-o", str(tmp_path / "out"), "--output", "mask", *watch, *MODEL], tmp_path / "out" / "a.mkv"


@pytest.mark.parametrize("command", ["batch", "batch --watch", "process", "image", "live", "serve"])
def test_a_model_load_that_raises_a_torch_error_is_one_line_exit_2(tmp_path, capsys, torch_refuses, command):
    """A local batch ended in a traceback, exit 1, where a Ray batch said it in one line, exit 2; process and image
    did the same, and live and serve still did after those were fixed. A watch stops with it, rather than skipping
    each video dropped in as that video's fault."""
    argv, output = _argv(command, tmp_path)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == LINE, err
    assert not output.exists()
