"""``birefvid train`` from the command line: progress lines, resumable runs, one-line data errors."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
from safetensors import safe_open

from birefvid.cli import main


pytestmark = pytest.mark.usefixtures("one_cpu_thread")  # speed: conftest says why


def test_train_on_scenes_writes_loadable_weights_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    # one step, then resumed for a second: each step of the real model is seconds on a loaded CI machine
    args = ["train", "--data", "scenes", "-o", str(out), "--size", "64", "--steps", "1", "--batch-size", "2", "--device", "cpu", "--checkpoint-every", "1"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "step 1/1 loss" in err and "ETA" in err  # plain progress lines when stderr is not a terminal
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        assert f.metadata()["backbone"] == "pvt_v2_b0" and f.metadata()["resolution"] == "64x64"
    assert main([*args[:8], "2", *args[9:], "--resume"]) == 0  # --steps 2: continues at step 2
    err = capsys.readouterr().err
    assert "step 2/2" in err and "step 1/2" not in err
    assert f"resuming {out / 'last.pt'} at step 1 of 2" in err  # not a run that looks started over
    (out / "model.safetensors").unlink()  # killed after its last checkpoint, before the weights were written
    assert main([*args[:8], "2", *args[9:], "--resume"]) == 0
    assert f"already at step 2: wrote {out / 'model.safetensors'}" in capsys.readouterr().err
    assert (out / "model.safetensors").exists()
    from birefvid.models.weights import load_pretrained

    for name in ("model.safetensors", "last.pt"):  # the model so far runs at the size it was trained at, not 1024
        _, resolution, _ = load_pretrained(weights=out / name)
        assert resolution == (64, 64), (name, resolution)


def test_quiet_prints_only_warnings_and_errors(tmp_path, capsys, monkeypatch):
    """`train -q` still printed "training ...", "wrote ..." and the best-validation line, where -q in process,
    image, live and batch leaves errors and warnings alone on stderr."""
    import types

    import birefvid.models
    import birefvid.train

    monkeypatch.setattr(birefvid.models, "BiRefNet", lambda backbone: types.SimpleNamespace(backbone_name=backbone))

    def fake_train(model, dataset, **kw):  # the CLI's lines are under test, not the trainer (seconds a step)
        return types.SimpleNamespace(losses=[0.5], step=1, weights=kw["weights_path"], best={"iou": 0.9, "mae": 0.1, "step": 1}, best_path=tmp_path / "best.pt")

    monkeypatch.setattr(birefvid.train, "train", fake_train)
    args = ["train", "--data", "scenes", "-o", str(tmp_path / "run"), "--size", "64", "--steps", "1", "--batch-size", "2", "--device", "cpu"]
    assert main([*args, "-q"]) == 0
    assert capsys.readouterr().err == ""
    assert main([*args, "-o", str(tmp_path / "run2")]) == 0
    err = capsys.readouterr().err
    assert "training " in err and "wrote " in err and "best validation IoU 0.9000" in err


def test_train_fp16_on_the_cpu_is_a_cli_warning_line(tmp_path, capsys, caplog):
    """The fallback was printed in Python's form: 'path/train.py:87: UserWarning: ...' and the source line; it is
    logged now, which the CLI prints as 'birefvid: warning: ...' (tests/test_cli_log_lines.py)."""
    args = ["train", "--data", "scenes", "-o", str(tmp_path / "r"), "--size", "64", "--steps", "1", "--batch-size", "2",
            "--device", "cpu", "--precision", "fp16", "--scenes", "2"]  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="birefvid"):
        assert main(args) == 0
    assert [r.getMessage() for r in caplog.records if r.name.startswith("birefvid.")] == [
        "fp16 training is not supported on the CPU; training in fp32 (use bf16 for mixed precision on CPU)"]
    assert "UserWarning" not in capsys.readouterr().err


def test_train_init_hints_name_the_flag_train_has(tmp_path, capsys):
    args = ["train", "--data", "scenes", "-o", str(tmp_path / "r"), "--steps", "1", "--size", "64", "--init", "no-such-model"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "unknown model 'no-such-model'" in err and "--init FILE" in err, err
    assert "--weights" not in err and "--model" not in err, err


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


def test_train_refuses_an_existing_run_before_loading_anything(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"")  # checked before the model is built or the checkpoint read
    assert main(["train", "--data", "scenes", "-o", str(run), "--steps", "1", "--size", "64", "--batch-size", "2"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "pass --resume" in lines[0] and "resume=True" not in lines[0]


def test_train_run_folder_that_cannot_be_made_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    assert main(["train", "--data", "scenes", "-o", str(blocker), "--steps", "1", "--size", "64", "--batch-size", "2"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("birefvid: error: cannot create the run folder") and "Traceback" not in "".join(lines)


def test_train_into_a_read_only_folder_is_one_line_before_any_step(tmp_path, capsys):
    """A run folder that exists but cannot be written (a read-only mount) was found out at the first checkpoint,
    after the steps before it, and then as a traceback (exit 1)."""
    from fs_fixtures import read_only_dir

    with read_only_dir(tmp_path / "ro") as folder:
        args = ["train", "--data", "scenes", "-o", str(folder), "--steps", "1", "--size", "64", "--batch-size", "2", "--device", "cpu"]
        assert main(args) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == f"birefvid: error: the run folder {folder} is not writable; choose another -o folder", err
    assert "step 1" not in err and "Traceback" not in err


def test_a_checkpoint_that_cannot_be_written_is_one_line_on_a_read_only_disk(tmp_path):
    """On a read-only file system removing the (never made) temporary file fails too (EROFS): that replaced the
    one-line SinkError with an OSError traceback."""
    from fs_fixtures import read_only_dir

    from birefvid.errors import SinkError
    from birefvid.train.checkpoints import save_checkpoint

    with read_only_dir(tmp_path / "ro") as folder:
        with pytest.raises(SinkError) as raised:
            save_checkpoint(folder / "last.pt", {"step": 1})
    assert str(raised.value) == f"cannot write {folder / 'last.pt'}: Read-only file system"


def test_train_init_names_a_missing_file_as_not_found(tmp_path, capsys):
    args = ["train", "--data", "scenes", "-o", str(tmp_path / "r"), "--steps", "1", "--size", "64", "--init", str(tmp_path / "ft.safetensors")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "weights file not found" in err and "unknown model" not in err


@pytest.mark.parametrize("flag, value", [("--scenes", "0"), ("--scenes", "-5"), ("--lr", "0"), ("--checkpoint-every", "0"), ("--warmup-steps", "-1"),
                                         ("--val-fraction", "0"), ("--val-fraction", "1"),
                                         # inf trained NaN weights; a negative seed was numpy's traceback; a negative decay went through
                                         ("--lr", "inf"), ("--seed", "-5"), ("--weight-decay", "-1"), ("--weight-decay", "nan")])
def test_train_rejects_out_of_range_numbers_naming_the_flag(tmp_path, capsys, flag, value):
    args = ["train", "--data", "scenes", "-o", str(tmp_path / "r"), "--steps", "1", "--size", "64", "--batch-size", "2", flag, value]
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"birefvid: error: {flag} must be")
    assert not (tmp_path / "r").exists()


def test_train_refuses_a_backbone_beside_init_before_loading_anything(tmp_path, capsys):
    """--backbone with --init was ignored without a word: the run trained --init's backbone."""
    args = ["train", "--data", "scenes", "-o", str(tmp_path / "r"), "--steps", "1", "--init", "tiny", "--backbone", "swin_v1_t"]
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--backbone swin_v1_t is for a model trained from scratch; --init tiny's weights set" in lines[0]
    assert not (tmp_path / "r").exists()


def test_train_names_a_missing_data_folder(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nope"), "-o", str(tmp_path / "r"), "--steps", "1", "--size", "64"]) == 2
    assert f"{tmp_path / 'nope'} is not a folder" in capsys.readouterr().err


def test_train_on_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    import collections

    import torch

    from birefvid.train import checkpoints

    real_save, calls = torch.save, []

    def save_until_full(obj, f):  # the second checkpoint fills the disk, as torch.save reports it
        calls.append(f)
        if len(calls) == 1:
            return real_save(obj, f)
        open(f, "wb").write(b"\0" * 1000)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 124559232 vs 124559124")

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(checkpoints.torch, "save", save_until_full)
    monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda p: usage(10**9, 10**9, 0))
    out = tmp_path / "run"
    args = ["train", "--data", "scenes", "-o", str(out), "--size", "64", "--steps", "2", "--batch-size", "2", "--device", "cpu", "--checkpoint-every", "1", "-q"]
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith(f"birefvid: error: cannot write {out / 'last.pt'}: no space left"), lines
    assert "last.pt there is kept" in lines[-1] and "Traceback" not in "\n".join(lines)
    assert sorted(p.name for p in out.iterdir()) == ["last.pt"]  # no partial file left behind
    monkeypatch.undo()
    assert checkpoints.load_checkpoint(out / "last.pt")["step"] == 1


def _flat_dataset(root, n, seed):
    """``n`` generated scenes in the flat layout: x.jpg beside x_mask.png."""
    from birefvid.data import make_scene

    root.mkdir(parents=True)
    for i in range(n):
        image, mask = make_scene(np.random.default_rng([seed, i]), (64, 80))
        cv2.imwrite(str(root / f"s{i}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / f"s{i}_mask.png"), (mask * 255).round().astype(np.uint8))
    return root


def test_train_on_a_flat_folder_validates_each_epoch_and_keeps_the_best(tmp_path, capsys):
    from birefvid.models.weights import load_pretrained

    data, out = _flat_dataset(tmp_path / "data", 3, seed=5), tmp_path / "run"
    args = ["train", "--data", str(data), "-o", str(out), "--size", "64", "--steps", "3", "--batch-size", "2",
            "--device", "cpu", "--val-fraction", "0.3"]
    assert main(args) == 0
    err = capsys.readouterr().err
    # 2 training pairs, mirrored: 4 items, 2 steps an epoch; the held-out image is scored after each and at the end
    assert "validating on 1 image held out of" in err and "after each epoch (2 steps)" in err, err
    lines = [line for line in err.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in lines] == ["epoch 1 (step 2/3)", "epoch 1.5 (step 3/3)"], err
    assert all("val IoU" in line and "MAE" in line for line in lines) and "saved best.pt" in lines[0]
    assert f"run it with --weights {out / 'best.pt'}" in err
    _, resolution, _ = load_pretrained(weights=out / "best.pt")  # runs at the training size, like last.pt
    assert resolution == (64, 64)


@pytest.mark.parametrize("val", ["nope", "nomask", "afile"])
def test_train_names_a_bad_val_folder_in_one_line(tmp_path, capsys, val):
    data = _flat_dataset(tmp_path / "data", 2, seed=5)
    (tmp_path / "nomask").mkdir()
    cv2.imwrite(str(tmp_path / "nomask" / "a.jpg"), np.zeros((64, 64, 3), np.uint8))
    (tmp_path / "afile").write_text("not a folder")
    args = ["train", "--data", str(data), "-o", str(tmp_path / "r"), "--steps", "1", "--size", "64", "--val", str(tmp_path / val)]
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"birefvid: error: --val: {tmp_path / val} "), lines
    assert ("holds images but no masks" if val == "nomask" else "is not a folder") in lines[0]
    assert not (tmp_path / "r").exists()  # refused before the run folder or the model is made


def test_train_refuses_a_held_out_fraction_of_generated_scenes(tmp_path, capsys):
    args = ["train", "--data", "scenes", "-o", str(tmp_path / "r"), "--steps", "1", "--size", "64", "--val-fraction", "0.2"]
    assert main(args) == 2
    assert "with --data scenes give --val DIR" in capsys.readouterr().err


def test_train_warns_when_val_images_are_training_images(tmp_path, capsys):
    data = _flat_dataset(tmp_path / "data", 2, seed=5)
    # a missing --init file stops the run after the data are read, before any training
    args = ["train", "--data", str(data), "-o", str(tmp_path / "r"), "--steps", "1", "--size", "64", "--val", str(data),
            "--init", str(tmp_path / "none.safetensors")]
    assert main(args) == 2
    assert "2 of the 2 --val images are training images too" in capsys.readouterr().err


def test_train_progress_lines_start_at_the_first_step(capsys):
    """Without a terminal the first line came at step 10: minutes of silence on a slow CPU; the first step is shown too."""
    from birefvid.commands.train import _print_every
    from birefvid.train.loop import TrainProgress

    report = _print_every(10)
    for step in range(4, 13):  # a resumed run: its first step is 4
        report(TrainProgress(step=step, steps=12, loss=0.5, parts={}, lr=1e-4, seconds_per_step=30.0, eta_seconds=60.0))
    steps = [line.split()[1] for line in capsys.readouterr().err.splitlines()]
    assert steps == ["4/12", "10/12", "12/12"]
