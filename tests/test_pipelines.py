"""Smoke tests: the recipes in pipelines/ run as scripts over the public API."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).parent))
from media import make_video  # noqa: E402

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, PIPELINES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_video_to_alpha(tmp_path, pvt_b0_weights, capsys):
    clip = make_video(tmp_path / "in.mp4", n_frames=3, size=(64, 64))
    _load("video_to_alpha").main([str(clip.path), str(tmp_path / "out.mkv"), "--weights", str(pvt_b0_weights), "--resolution", "64"])
    assert _frames(tmp_path / "out.mkv") == 3
    assert '"frames": 3' in capsys.readouterr().out


def test_folder_batch_skips_finished_and_survives_a_bad_file(tmp_path, pvt_b0_weights):
    src = tmp_path / "videos"
    src.mkdir()
    make_video(src / "a.mp4", n_frames=2, size=(64, 64))
    make_video(src / "b.mp4", n_frames=2, size=(64, 64))
    (src / "broken.mp4").write_bytes(b"not a video")
    out = tmp_path / "out"
    args = [str(src), str(out), "--weights", str(pvt_b0_weights), "--resolution", "64", "--suffix", ".mkv"]
    module = _load("folder_batch")
    assert module.main(args) == 1  # broken.mp4 failed, the others were written
    assert sorted(p.name for p in out.iterdir()) == ["a.mkv", "b.mkv"]
    before = (out / "a.mkv").stat().st_mtime_ns
    assert module.main(args) == 1
    assert (out / "a.mkv").stat().st_mtime_ns == before  # finished outputs are not redone


def test_file_recipes_answer_bad_input_with_one_line(tmp_path, capsys):
    assert _load("video_to_alpha").main([str(tmp_path / "missing.mp4"), str(tmp_path / "out.mov")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error: input not found" in err[0], err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _load("folder_batch").main([str(empty), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"error: no videos in {empty}" in err[0], err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.mov").exists()


def _refused_before_the_model(tmp_path, capsys, suffix: str, names: tuple[str, ...]) -> str:
    """folder_batch over files ``names`` with ``suffix``: exit 2, one error line (returned), no model, no output folder."""
    src = tmp_path / "videos"
    src.mkdir()
    for name in names:
        (src / name).write_bytes(b"never read")
    module = _load("folder_batch")

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the check")

    module.Segmenter = no_model
    assert module.main([str(src), str(tmp_path / "out"), "--model", "tiny", "--suffix", suffix]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error:" in err[0], err
    assert not (tmp_path / "out").exists()
    return err[0]


def test_folder_batch_refuses_inputs_that_would_write_the_same_output(tmp_path, capsys):
    err = _refused_before_the_model(tmp_path, capsys, ".webm", ("a.mp4", "a.mkv"))
    assert "several inputs would write the same output a.webm" in err


def test_folder_batch_refuses_a_suffix_that_holds_no_alpha(tmp_path, capsys):
    assert ".mp4 holds no alpha channel" in _refused_before_the_model(tmp_path, capsys, ".mp4", ("a.mov", "b.mkv"))
