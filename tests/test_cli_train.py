"""``birefvid train`` from the command line: progress lines, resumable runs, one-line data errors."""

from __future__ import annotations

import cv2
import numpy as np
from safetensors import safe_open

from birefvid.cli import main


def test_train_on_scenes_writes_loadable_weights_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--data", "scenes", "-o", str(out), "--size", "64", "--steps", "2", "--batch-size", "2", "--device", "cpu", "--checkpoint-every", "1"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "step 2/2 loss" in err and "ETA" in err  # plain progress lines when stderr is not a terminal
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        assert f.metadata()["backbone"] == "pvt_v2_b0" and f.metadata()["resolution"] == "64x64"
    assert main([*args[:8], "3", *args[9:], "--resume"]) == 0  # --steps 3: continues at step 3
    err = capsys.readouterr().err
    assert "step 3/3" in err and "step 1/3" not in err


def test_train_rejects_an_image_without_mask(tmp_path, capsys):
    root = tmp_path / "data"
    (root / "im").mkdir(parents=True)
    (root / "gt").mkdir()
    for name in ("a", "b"):
        cv2.imwrite(str(root / "im" / f"{name}.jpg"), np.zeros((64, 64, 3), np.uint8))
    cv2.imwrite(str(root / "gt" / "a.png"), np.zeros((64, 64), np.uint8))
    code = main(["train", "--data", str(root), "-o", str(tmp_path / "run"), "--steps", "1", "--size", "64"])
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("birefvid: error:") and "b.jpg" in lines[0]


def test_train_rejects_batch_of_one(tmp_path, capsys):
    assert main(["train", "--data", "scenes", "-o", str(tmp_path / "r"), "--steps", "1", "--batch-size", "1"]) == 2
    assert "at least 2" in capsys.readouterr().err
