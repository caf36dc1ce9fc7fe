"""``birefvid image --report FILE`` (``-``: standard output): what was written, kept and skipped, the time each step
took and the model, as ``process --report`` says for a video; written whole, or not at all, with nothing else lost."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from birefvid.cli import main
from system_tools import need_module

MODEL_ARGS = ["--resolution", "64", "--device", "cpu", "--precision", "fp32"]
ROUNDING = 0.004  # the report rounds each figure to the millisecond: a sum of six rounded ones may pass the rounded wall by 3.5 ms


def _picture(seed: int, deep: bool = False) -> np.ndarray:
    """A 48x64 BGR picture: a noisy background and a red disc; 16-bit when ``deep``."""
    rng = np.random.default_rng(seed)
    img = (rng.random((48, 64, 3)) * 60 + 40).astype(np.uint8)
    cv2.circle(img, (32, 24), 16, (40, 60, 230), -1)
    return img.astype(np.uint16) * 257 if deep else img


@pytest.fixture()
def photos(tmp_path) -> Path:
    """A folder of two 8-bit JPEGs and a 16-bit PNG."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"a{i}.jpg"), _picture(i))
    cv2.imwrite(str(folder / "deep.png"), _picture(2, deep=True))
    return folder


def _image(*argv: str, weights: Path) -> int:
    return main(["image", *argv, "--weights", str(weights), *MODEL_ARGS])


def test_the_report_says_what_was_written_how_long_it_took_and_with_which_model(tmp_path, photos, pvt_b0_weights, capsys):
    out, report = tmp_path / "cut", tmp_path / "run.json"
    assert _image(str(photos), "-o", str(out), "--output", "composite", "--background", "white", "--shrink", "1",
                  "--report", str(report), weights=pvt_b0_weights) == 0  # fmt: skip
    data = json.loads(report.read_text())
    assert data["output"] == str(out) and data["pictures"] == 3 and data["kept"] == [] and data["unreadable"] == []
    assert [(w["input"], w["output"], w["bit_depth"]) for w in data["written"]] == [
        (str(photos / "a0.jpg"), str(out / "a0.png"), 8), (str(photos / "a1.jpg"), str(out / "a1.png"), 8),
        (str(photos / "deep.png"), str(out / "deep.png"), 16)]  # fmt: skip
    for w in data["written"]:  # what the report says is what is on disk
        assert cv2.imread(w["output"], cv2.IMREAD_UNCHANGED).dtype == (np.uint16 if w["bit_depth"] == 16 else np.uint8)
    assert set(data["stage_seconds"]) == {"read", "segment", "compose", "write"}
    assert data["stage_seconds"]["segment"] > 0 and data["load_seconds"] > 0
    assert data["wall_seconds"] >= data["load_seconds"] + sum(data["stage_seconds"].values()) - ROUNDING
    assert data["pictures_per_second"] > 0
    assert data["resolved"]["backbone"] == "pvt_v2_b0" and data["resolved"]["device"] == "cpu" and data["resolved"]["resolution"] == [64, 64]
    options = data["options"]
    assert options["output"] == "composite" and options["background"] == "white" and options["shrink"] == 1
    assert options["model"]["weights"] == str(pvt_b0_weights) and options["inference"]["precision"] == "fp32"
    assert capsys.readouterr().out == ""  # a file asked for: nothing on standard output


def test_report_dash_prints_the_json_alone_on_standard_output(tmp_path, photos, pvt_b0_weights, capsys):
    assert _image(str(photos / "a0.jpg"), "-o", str(tmp_path / "a0.png"), "--report", "-", weights=pvt_b0_weights) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)  # nothing else on stdout: a pipe to jq reads it
    assert [w["output"] for w in data["written"]] == [str(tmp_path / "a0.png")]
    assert captured.err.strip() == f"wrote {tmp_path / 'a0.png'}"  # the summary stays on stderr
    assert not (Path.cwd() / "-").exists()


def test_a_run_with_unreadable_pictures_still_reports_what_it_wrote(tmp_path, photos, pvt_b0_weights, capsys):
    (photos / "broken.png").write_bytes(b"not a png")
    report = tmp_path / "run.json"
    assert _image(str(photos), "-o", str(tmp_path / "cut"), "-q", "--report", str(report), weights=pvt_b0_weights) == 2
    data = json.loads(report.read_text())
    assert data["unreadable"] == [str(photos / "broken.png")] and data["pictures"] == 3
    assert "1 of 4 images could not be read" in data["error"]
    assert capsys.readouterr().err.count("\n") == 1  # the one error line


def test_a_report_folder_that_does_not_exist_is_refused_before_any_work(tmp_path, photos, pvt_b0_weights, capsys):
    out = tmp_path / "cut"
    assert _image(str(photos), "-o", str(out), "--report", str(tmp_path / "gone" / "r.json"), weights=pvt_b0_weights) == 2
    assert capsys.readouterr().err.strip() == f"birefvid: error: --report folder does not exist: {tmp_path / 'gone'}"
    assert not out.exists()


@pytest.mark.parametrize("named", ["input", "output"])
def test_a_report_that_would_replace_a_picture_of_the_run_is_refused(tmp_path, photos, pvt_b0_weights, capsys, named):
    """The report is rewritten on every run: `--report in/a0.jpg` replaced a photo with JSON, and `--report cut/a0.png` a
    cut-out just written, both exit 0."""
    before = (photos / "a0.jpg").read_bytes()
    (tmp_path / "cut").mkdir()
    report = photos / "a0.jpg" if named == "input" else tmp_path / "cut" / "a0.png"
    assert _image(str(photos), "-o", str(tmp_path / "cut"), "--report", str(report), weights=pvt_b0_weights) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"birefvid: error: --report {report} would write into") and err.count("\n") == 1, err
    assert (photos / "a0.jpg").read_bytes() == before and not any((tmp_path / "cut").iterdir())


def test_skip_existing_reports_the_pictures_it_kept(tmp_path, photos, pvt_b0_weights):
    out, report = tmp_path / "cut", tmp_path / "run.json"
    assert _image(str(photos), "-o", str(out), "-q", weights=pvt_b0_weights) == 0
    (out / "a1.png").unlink()
    assert _image(str(photos), "-o", str(out), "-q", "--skip-existing", "--report", str(report), weights=pvt_b0_weights) == 0
    data = json.loads(report.read_text())
    assert [w["output"] for w in data["written"]] == [str(out / "a1.png")]
    assert data["kept"] == [str(out / "a0.png"), str(out / "deep.png")]
    assert _image(str(photos), "-o", str(out), "-q", "--skip-existing", "--report", str(report), weights=pvt_b0_weights) == 0
    data = json.loads(report.read_text())  # nothing to do: no model loaded, and the report says so
    assert data["pictures"] == 0 and len(data["kept"]) == 3 and data["resolved"] is None


def test_a_first_onnx_export_is_reported_apart_from_the_model_time_and_its_compile_announced(tmp_path, photos, pvt_b0_weights, monkeypatch, caplog):
    """The export of the model to ONNX, on the first picture of a new size, was counted in `segment`: seconds of it
    against milliseconds a picture, which read as a slow model; `export_seconds` holds it now, as `process` keeps it apart.
    OpenVINO's first compile, after the export's lines, is announced once (a first run went silent for 3-10 s on 2
    cores there, the wait a new user most wonders about); a later run, which loads the compiled blob, says nothing."""
    need_module("openvino", "openvino")
    from birefvid.runtime import Segmenter
    from process_fixtures import RedKey

    cache = tmp_path / "cache"  # nothing exported yet
    monkeypatch.setenv("BIREFVID_CACHE_DIR", str(cache))
    # the smallest model that shows a first export: the red-key module's costs ~7 s of CPU where pvt_v2_b0's cost ~40,
    # and what is reported and said of an export and a compile does not depend on the model; a fresh one each run, as
    # the command loads its model, so the second run finds the export and the compiled blob in the cache
    monkeypatch.setattr("birefvid.runtime.file_job.segmenter_for",
                        lambda *a, **k: Segmenter(module=RedKey(), resolution=64, device="cpu", precision="fp32", backend="openvino"))
    report = tmp_path / "run.json"
    caplog.set_level(logging.INFO, logger="birefvid")
    assert _image(str(photos), "-o", str(tmp_path / "cut"), "--backend", "openvino", "--report", str(report), weights=pvt_b0_weights) == 0
    data = json.loads(report.read_text())
    assert data["pictures"] == 3 and data["resolved"]["backend"] == "openvino"
    assert data["stage_seconds"]["segment"] < data["resolved"]["export_seconds"] / 2  # three 64 px pictures' model time alone
    assert data["export_seconds"] > 0.5 and data["export_seconds"] >= data["resolved"]["export_seconds"] - 0.05
    assert data["wall_seconds"] >= data["load_seconds"] + data["export_seconds"] + sum(data["stage_seconds"].values()) - ROUNDING
    lines = [record.getMessage() for record in caplog.records]
    caplog.clear()
    compiling = f"compiling the model for OpenVINO at {MODEL_ARGS[MODEL_ARGS.index('--resolution') + 1]}x"
    said = [i for i, line in enumerate(lines) if compiling in line]
    assert len(said) == 1, lines
    assert lines[said[0]].endswith(f"(once per size; cached in {cache / 'openvino'})"), lines[said[0]]
    assert any(line.startswith("exported in") for line in lines[: said[0]]), "announced before the export ended"
    assert lines[said[0] + 1].startswith("compiled in "), lines
    again = tmp_path / "again.json"  # exported and compiled already: nothing to report, nothing said
    assert _image(str(photos), "-o", str(tmp_path / "cut2"), "--backend", "openvino", "--report", str(again), weights=pvt_b0_weights) == 0
    assert json.loads(again.read_text())["export_seconds"] == 0
    said_again = " ".join(record.getMessage() for record in caplog.records)
    assert "compil" not in said_again and "export" not in said_again, said_again
