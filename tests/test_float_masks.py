"""Float alpha mattes (32-bit TIFF, as Nuke, After Effects and matting sets save them): read as soft alpha in [0, 1]
by ``birefvid eval`` and ``birefvid train``, never as 0/1 masks whose soft edges turn hard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import birefvid.commands
from birefvid.cli import main
from birefvid.commands import eval as eval_cmd
from birefvid.data import FolderDataset
from birefvid.errors import DataError

H, W = 48, 64


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
    """Make sure ``eval`` is a command (a no-op once birefvid/commands registers it)."""
    if "eval" not in birefvid.commands.COMMANDS:
        monkeypatch.setitem(birefvid.commands.COMMANDS, "eval", eval_cmd)


def _matte(shift: int = 0) -> np.ndarray:
    """A float32 matte with soft edges: a box whose left and right sides ramp over 16 pixels, the top at 0.9."""
    ramp = np.clip((np.arange(W, dtype=np.float32) - 8 - shift) / 16, 0, 1)
    ramp = np.minimum(ramp, ramp[::-1]) * np.float32(0.9)
    alpha = np.zeros((H, W), np.float32)
    alpha[8:40] = ramp
    return alpha


def _tiffs(folder: Path, mattes: list[np.ndarray], ext: str = ".tif") -> Path:
    folder.mkdir(parents=True)
    for i, m in enumerate(mattes):
        assert cv2.imwrite(str(folder / f"{i:05d}{ext}"), m)
    return folder


def _eval(pred: Path, gt: Path, tmp_path: Path) -> dict:
    out = tmp_path / "scores.json"
    assert main(["eval", str(pred), str(gt), "--json", str(out), "-q"]) == 0
    return json.loads(out.read_text())["summary"]


def test_float_tiff_truth_scores_itself_perfect_and_a_binarized_copy_imperfect(tmp_path):
    mattes = [_matte(s) for s in range(3)]
    gt = _tiffs(tmp_path / "gt", mattes)
    same = _tiffs(tmp_path / "same", mattes)
    hard = _tiffs(tmp_path / "hard", [(m >= 0.5).astype(np.float32) for m in mattes])
    perfect = _eval(same, gt, tmp_path)
    assert perfect["mae"] == 0 and perfect["grad"] == 0 and perfect["conn"] == 0
    binarized = _eval(hard, gt, tmp_path)
    # read as soft, the hard copy is off along every ramp; read as 0/1 (the old reading) both were the same
    soft_error = float(np.mean([np.abs((m >= 0.5) - m).mean() for m in mattes]))
    assert binarized["mae"] == pytest.approx(soft_error, rel=1e-4) and binarized["mae"] > 0.05


def test_float_truth_scores_an_8_bit_prediction_of_the_same_matte(tmp_path):
    """A soft 8-bit PNG prediction against a float TIFF truth: scored within a level of 8-bit rounding."""
    mattes = [_matte(s) for s in range(2)]
    gt = _tiffs(tmp_path / "gt", mattes)
    pred = tmp_path / "pred"
    pred.mkdir()
    for i, m in enumerate(mattes):
        cv2.imwrite(str(pred / f"{i:05d}.png"), np.round(m * 255).astype(np.uint8))
    assert _eval(pred, gt, tmp_path)["mae"] < 0.5 / 255


def test_nan_in_a_float_mask_is_one_line_naming_the_file(tmp_path, capsys):
    mattes = [_matte(), _matte()]
    mattes[1][20, 20] = np.nan
    gt = _tiffs(tmp_path / "gt", mattes)
    pred = _tiffs(tmp_path / "pred", [_matte(), _matte()])
    assert main(["eval", str(pred), str(gt)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "00001.tif" in err[0] and "NaN" in err[0] and "Traceback" not in err[0]


def _pair(root: Path, stem: str, mask: np.ndarray, ext: str) -> None:
    (root / "im").mkdir(parents=True, exist_ok=True)
    (root / "gt").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "im" / f"{stem}.png"), np.full((H, W, 3), 128, np.uint8))
    assert cv2.imwrite(str(root / "gt" / f"{stem}{ext}"), mask)


def test_training_keeps_a_float_matte_s_soft_labels(tmp_path):
    matte = _matte()
    _pair(tmp_path, "a", matte, ".tif")
    _, mask = FolderDataset(tmp_path, (H, W), flip=False)[0]
    np.testing.assert_allclose(mask[0].numpy(), matte, atol=1e-6)  # 0.9 stays 0.9, the ramps stay ramps
    assert float(mask.max()) == pytest.approx(0.9)


def test_a_set_mixing_8_bit_16_bit_and_float_masks_reads_each_on_one_scale(tmp_path):
    """A float matte whose maximum is under 1 beside 8- and 16-bit masks of the same matte crashed (np.iinfo)."""
    matte = _matte()
    _pair(tmp_path, "a", np.round(matte * 255).astype(np.uint8), ".png")
    _pair(tmp_path, "b", np.round(matte * 65535).astype(np.uint16), ".png")
    _pair(tmp_path, "c", matte, ".tif")
    ds = FolderDataset(tmp_path, (H, W), flip=False)
    for i in range(3):
        np.testing.assert_allclose(ds[i][1][0].numpy(), matte, atol=0.5 / 255 + 1e-6)


def test_nan_in_a_training_mask_names_the_file(tmp_path):
    matte = _matte()
    matte[0, 0] = np.inf
    _pair(tmp_path, "a", matte, ".tif")
    with pytest.raises(DataError, match=r"a\.tif holds NaN or infinite"):
        FolderDataset(tmp_path, (H, W), flip=False)[0]


def _exr(path: Path, alpha: np.ndarray, colour: "np.ndarray | None" = None, half: bool = False) -> Path:
    """An OpenEXR file written by ffmpeg (its own encoder, not the OpenCV that reads it): a grey matte as one Y
    channel, or with ``colour`` (H, W, 3 RGB float) an RGBA cut-out; ``half``: 16-bit floats, as Nuke writes."""
    if colour is None:
        fmt, raw = "grayf32le", alpha.astype("<f4").tobytes()
    else:  # gbrapf32le: planes G, B, R, A
        fmt, raw = "gbrapf32le", np.stack([colour[..., 1], colour[..., 2], colour[..., 0], alpha]).astype("<f4").tobytes()
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", fmt, "-s", f"{W}x{H}", "-i", "-",
           "-c:v", "exr", "-format", "half" if half else "float", "-frames:v", "1", str(path)]
    subprocess.run(cmd, input=raw, check=True)
    return path


def test_exr_truth_and_predictions_are_read_as_soft_alpha(tmp_path):
    mattes = [_matte(s) for s in range(2)]
    for name in ("gt", "same", "hard", "cutout"):
        (tmp_path / name).mkdir()
    red = np.zeros((H, W, 3), np.float32)
    red[..., 0] = 0.8
    for i, m in enumerate(mattes):
        _exr(tmp_path / "gt" / f"{i:04d}.exr", m)
        _exr(tmp_path / "same" / f"{i:04d}.exr", m, half=True)
        _exr(tmp_path / "hard" / f"{i:04d}.exr", (m >= 0.5).astype(np.float32))
        _exr(tmp_path / "cutout" / f"{i:04d}.exr", m, colour=red)  # a render: scored by its alpha, not its red
    gt = tmp_path / "gt"
    assert _eval(tmp_path / "same", gt, tmp_path)["mae"] < 1e-3  # half floats: within their rounding
    assert _eval(tmp_path / "cutout", gt, tmp_path)["mae"] == 0
    assert _eval(tmp_path / "hard", gt, tmp_path)["mae"] > 0.05


def test_training_reads_exr_masks_soft(tmp_path):
    matte = _matte()
    (tmp_path / "im").mkdir()
    (tmp_path / "gt").mkdir()
    cv2.imwrite(str(tmp_path / "im" / "a.png"), np.full((H, W, 3), 128, np.uint8))
    _exr(tmp_path / "gt" / "a.exr", matte, half=True)
    _, mask = FolderDataset(tmp_path, (H, W), flip=False)[0]
    np.testing.assert_allclose(mask[0].numpy(), matte, atol=1e-3)
    assert float(mask.max()) == pytest.approx(0.9, abs=1e-3)


def test_exr_turned_off_by_the_user_is_one_line(tmp_path):
    """OPENCV_IO_ENABLE_OPENEXR=0 set on purpose is kept: one line saying so, in a process of its own, since OpenCV
    reads the variable once."""
    for name in ("gt", "pred"):
        (tmp_path / name).mkdir()
        _exr(tmp_path / name / "0000.exr", _matte())
    env = {**os.environ, "OPENCV_IO_ENABLE_OPENEXR": "0"}
    done = subprocess.run([sys.executable, "-m", "birefvid", "eval", str(tmp_path / "pred"), str(tmp_path / "gt")],
                          env=env, capture_output=True, text=True, timeout=300)
    err = done.stderr.strip().splitlines()
    assert done.returncode != 0 and len(err) == 1 and "0000.exr" in err[0] and "OPENCV_IO_ENABLE_OPENEXR" in err[0]


def test_a_float_matte_with_faint_haze_is_not_taken_for_an_inverted_mask(tmp_path, caplog):
    """A render's matte with 2% haze everywhere (fog, a motion-blur veil) marks the subject where alpha is over 0.5,
    as the set's 8-bit masks do: its maximum of 1 made it a 0/1 mask, every pixel subject, "inverted"."""
    for stem in "abc":
        matte = np.full((H, W), 0.02, np.float32)
        matte[12:36, 20:44] = 1.0
        _pair(tmp_path, stem, matte, ".tif")
    with caplog.at_level("WARNING"):
        FolderDataset(tmp_path, (H, W), flip=False)
    assert not [r for r in caplog.records if "inverted" in r.getMessage()]
