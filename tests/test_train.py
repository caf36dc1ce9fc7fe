"""The trainer: losses fall, resume continues exactly, weights round-trip through safetensors."""

from __future__ import annotations

import logging
import os
import shutil
import signal
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from birefvid.data import SceneDataset
from birefvid.errors import ConfigError, cli_naming
from birefvid.train import LossWeights, birefnet_loss, gradient_loss, iou_loss, lr_factor, pixel_loss, ssim_loss, train


pytestmark = pytest.mark.usefixtures("one_cpu_thread")  # speed: conftest says why


@dataclass
class FakeTrainOutput:
    """Same fields as birefvid.models.TrainOutput."""

    logits: torch.Tensor
    stage_logits: list
    gradient_logits: list
    gradient_labels: list


class FakeBiRefNet(nn.Module):
    """A tiny conv net with BiRefNet's training-mode output contract."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone_name = "fake"
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(8, 1, 1)
        self.stage_heads = nn.ModuleList(nn.Conv2d(8, 1, 1) for _ in range(3))
        self.grad_heads = nn.ModuleList(nn.Conv2d(8, 1, 1) for _ in range(3))

    def forward(self, x):
        f = self.body(x)
        logits = self.head(f)
        if not self.training:
            return logits
        coarse = [F.avg_pool2d(f, k) for k in (32, 16, 8)]
        gx = x[:, :1, :, 1:] - x[:, :1, :, :-1]
        label = F.pad(gx.abs(), (0, 1))
        return FakeTrainOutput(
            logits,
            [h(c) for h, c in zip(self.stage_heads, coarse)],
            [h(c) for h, c in zip(self.grad_heads, coarse)],
            [label] * 3,
        )


@pytest.fixture
def data():
    return SceneDataset(8, 64, seed=11)


# ------------------------------------------------------------------ losses


def test_pixel_losses_are_small_for_a_perfect_prediction():
    target = (torch.rand(2, 1, 32, 32) > 0.5).float()
    good = (target * 2 - 1) * 12
    bad = -good
    assert float(iou_loss(good, target)) < 1e-3 < 0.9 < float(iou_loss(bad, target))
    assert float(ssim_loss(good, target)) < 1e-2 < float(ssim_loss(bad, target))
    assert float(pixel_loss(good, target)) < 0.1 < float(pixel_loss(bad, target))


def test_coarse_predictions_are_upsampled_to_the_label():
    target = torch.zeros(1, 1, 64, 64)
    target[..., :, :32] = 1
    coarse = torch.full((1, 1, 8, 8), -10.0)
    coarse[..., :, :4] = 10.0
    assert float(pixel_loss(coarse, target)) < float(pixel_loss(-coarse, target))
    pred = torch.zeros(1, 1, 4, 4, requires_grad=True)
    loss = gradient_loss(pred, torch.rand(1, 1, 64, 64))
    loss.backward()
    assert pred.grad is not None and torch.isfinite(loss)


def test_full_objective_weights_the_final_output_most():
    target = (torch.rand(2, 1, 64, 64) > 0.5).float()
    good = (target * 2 - 1) * 12
    coarse = [torch.zeros(2, 1, s, s) for s in (2, 4, 8)]
    labels = [torch.zeros(2, 1, 64, 64)] * 3
    base, parts = birefnet_loss(FakeTrainOutput(good, coarse, coarse, labels), target)
    assert set(parts) == {"final", "stages", "gradient"}
    bad_final, _ = birefnet_loss(FakeTrainOutput(-good, coarse, coarse, labels), target)
    bad_stage, _ = birefnet_loss(FakeTrainOutput(good, [-20 * target] * 3, coarse, labels), target)
    assert float(bad_final) - float(base) > float(bad_stage) - float(base) > 0
    no_grad, _ = birefnet_loss(FakeTrainOutput(good, coarse, coarse, labels), target, LossWeights(gradient=0))
    assert float(no_grad) < float(base)


def test_lr_schedule_warms_up_then_decays():
    f = [lr_factor(k, 100, 10, 0.01) for k in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert f[-1] == pytest.approx(0.01, abs=1e-3)


# ------------------------------------------------------------------ trainer with a fake model


def test_loss_falls_and_weights_are_saved(tmp_path, data):
    torch.manual_seed(0)
    model = FakeBiRefNet()
    four = SceneDataset(4, 64, seed=11)
    # 10 steps: the loss is then 0.57 of the first step's, well under the 0.8 asked (15 steps cost half as much again)
    res = train(model, four, steps=10, batch_size=4, lr=3e-2, checkpoint_dir=tmp_path, seed=0,
                device="cpu", warmup_steps=2, show_progress=False)
    assert res.step == 10 and len(res.losses) == 10
    assert res.losses[-1] < 0.8 * res.losses[0]
    assert not model.training  # handed back in eval mode
    assert res.checkpoint == tmp_path / "last.pt" and res.checkpoint.exists()
    state = load_file(str(res.weights))
    assert set(state) == set(model.state_dict())
    fresh = FakeBiRefNet()
    fresh.load_state_dict(state)
    x = data[0][0][None]
    assert torch.allclose(fresh.eval()(x), model(x))
    with safe_open(str(res.weights), "pt") as f:
        meta = f.metadata()
    assert meta["backbone"] == "fake" and meta["resolution"] == "64x64" and meta["steps"] == "10"


def test_two_identical_seeded_runs_write_identical_weights_files(tmp_path, data):
    """safetensors wrote the metadata in a random order each time: the same run's files differed, so checksums did."""
    files = []
    for name in ("a", "b"):
        torch.manual_seed(0)
        res = train(FakeBiRefNet(), data, steps=1, batch_size=2, device="cpu", seed=5, show_progress=False,
                    weights_path=tmp_path / name / "model.safetensors", metadata={"note": "x", "data": "scenes"})
        files.append(res.weights.read_bytes())
    assert files[0] == files[1]
    with safe_open(str(tmp_path / "a" / "model.safetensors"), "pt") as f:
        assert f.metadata()["note"] == "x" and f.metadata()["resolution"] == "64x64"


def test_a_checkpoint_written_removes_what_a_killed_run_left_half_written(tmp_path):
    """kill -9 (or the OOM killer) while last.pt was being written left a hidden file its size, one per kill."""
    import subprocess
    import sys

    from birefvid.train.checkpoints import save_checkpoint

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = tmp_path / f".last.pt.tmp-{int(dead.stdout)}"  # its writer is gone
    writing = tmp_path / f".last.pt.tmp-{os.getppid()}"  # another run, still writing
    for f in (left, writing):
        f.write_bytes(b"half a checkpoint")
    save_checkpoint(tmp_path / "last.pt", {"step": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["last.pt", writing.name])


def test_half_weights(tmp_path, data):
    wide = SceneDataset(2, (64, 96), seed=0)
    res = train(FakeBiRefNet(), wide, steps=1, batch_size=2, device="cpu", weights_path=tmp_path / "w.safetensors",
                half=True, show_progress=False)
    assert res.checkpoint is None
    assert all(t.dtype == torch.float16 for t in load_file(str(res.weights)).values())
    from birefvid.models.weights import checkpoint_resolution

    assert checkpoint_resolution(res.weights) == (96, 64)  # the model loader reads (width, height)
    umask = os.umask(0)
    os.umask(umask)
    assert res.weights.stat().st_mode & 0o777 == 0o666 & ~umask  # not safetensors' private 0600
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temporary left beside it


class Stop(Exception):
    pass


def _stopped_and_resumed(tmp_path, data, stop_at: int, model=FakeBiRefNet, **kwargs):
    """A run stopped after step ``stop_at`` in tmp_path/b, then resumed there: the resumed run's result."""

    def stop(p):
        if p.step == stop_at:
            raise Stop

    torch.manual_seed(1)
    with pytest.raises(Stop):
        train(model(), data, checkpoint_dir=tmp_path / "b", progress=stop, **kwargs)
    return train(model(), data, checkpoint_dir=tmp_path / "b", resume=True, **kwargs)


class DropoutFakeBiRefNet(FakeBiRefNet):
    """FakeBiRefNet with dropout, as BiRefNet's decoder attention has: its masks draw from the torch RNG."""

    def __init__(self) -> None:
        super().__init__()
        self.body.append(nn.Dropout(0.5))


# The run the resume tests continue, trained once for the module (they only read its losses): 5 steps of 2 of the 8
# items cross an epoch's end (4 steps), so a resume also has to reshuffle as the whole run did. Periodic checkpoints
# are off in it: a checkpoint written must not change the numbers that follow either.
DROPOUT_RUN = dict(steps=5, batch_size=2, lr=1e-3, device="cpu", seed=3, show_progress=False)


@pytest.fixture(scope="module")
def dropout_run(tmp_path_factory):
    """The uninterrupted DROPOUT_RUN of a DropoutFakeBiRefNet seeded with 1 on the ``data`` fixture's scenes."""
    torch.manual_seed(1)
    return train(DropoutFakeBiRefNet(), SceneDataset(8, 64, seed=11), checkpoint_dir=tmp_path_factory.mktemp("whole"),
                 checkpoint_every=100, **DROPOUT_RUN)


def test_resume_continues_from_the_same_step_with_the_same_numbers(tmp_path, data, dropout_run):
    """Making the data loader's iterator drew from the torch RNG after the checkpoint's state was restored: a
    resumed BiRefNet (dropout) went on with other dropout masks than the run it continued."""
    resumed = _stopped_and_resumed(tmp_path, data, 2, model=DropoutFakeBiRefNet, checkpoint_every=1, **DROPOUT_RUN)
    assert resumed.start_step == 2 and resumed.step == 5
    assert resumed.losses == pytest.approx(dropout_run.losses[2:], rel=1e-6)


class CtrlCWithinForward(DropoutFakeBiRefNet):
    """DropoutFakeBiRefNet that presses Ctrl-C (SIGINT to this process) within its ``at``-th training forward pass,
    after its dropout drew: where a press almost always lands, the forward and backward passes being most of a step."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            self.calls += 1
            if self.calls == self.at:
                os.kill(os.getpid(), signal.SIGINT)
        return out


def test_ctrl_c_within_a_step_stops_after_it_and_resumes_exactly(tmp_path, data, caplog, dropout_run):
    """A press raised mid-step, and the checkpoint then saved held the part-way step's random state (and BatchNorm
    statistics): the resumed run went on with other numbers than the run it continued."""
    kwargs = dict(checkpoint_every=100, **DROPOUT_RUN)
    torch.manual_seed(1)
    with pytest.raises(KeyboardInterrupt):
        train(CtrlCWithinForward(at=3), data, checkpoint_dir=tmp_path / "b", **kwargs)
    assert "stopping when this step ends" in caplog.text
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Python's own handler is back
    torch.manual_seed(1)
    resumed = train(DropoutFakeBiRefNet(), data, checkpoint_dir=tmp_path / "b", resume=True, **kwargs)
    assert resumed.start_step == 3
    assert resumed.losses == pytest.approx(dropout_run.losses[3:], rel=1e-6)


def test_a_cpu_run_on_a_gpu_machine_keeps_no_gpu_state(monkeypatch):
    """Resuming must not depend on the GPUs present: a CPU run (on a machine that has GPUs) saved every
    GPU's random state, starting CUDA on each, and a checkpoint from a 2-GPU box then failed on a 1-GPU one."""
    from birefvid.train.loop import _rng_state, _set_rng_state

    def no_cuda_state(*args, **kwargs):
        raise AssertionError("a CPU run touched a GPU's random state")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a machine with GPUs; the run is on the CPU
    for name in ("get_rng_state", "get_rng_state_all", "set_rng_state", "set_rng_state_all"):
        monkeypatch.setattr(torch.cuda, name, no_cuda_state)
    cpu = torch.device("cpu")
    state = _rng_state(cpu)
    assert set(state) == {"torch"}
    torch.rand(3)  # moves the CPU generator on
    _set_rng_state({**state, "cuda": [torch.zeros(8, dtype=torch.uint8)] * 2}, cpu)  # an older checkpoint's, from 2 GPUs
    assert torch.equal(torch.get_rng_state(), state["torch"])


@pytest.fixture(scope="module")
def one_step_checkpoint(tmp_path_factory):
    """last.pt of one step of a FakeBiRefNet, batch 2, on the ``data`` fixture's 8 scenes: trained once for the module."""
    folder = tmp_path_factory.mktemp("one_step")
    train(FakeBiRefNet(), SceneDataset(8, 64, seed=11), steps=1, batch_size=2, device="cpu", checkpoint_dir=folder,
          show_progress=False)
    return folder / "last.pt"


@pytest.fixture
def after_one_step(tmp_path, one_step_checkpoint):
    """A run folder (tmp_path) holding a copy of ``one_step_checkpoint``: a run to resume, or to refuse to resume."""
    shutil.copy(one_step_checkpoint, tmp_path / "last.pt")
    return tmp_path


def test_resume_refuses_different_batches(after_one_step, data):
    with pytest.raises(ConfigError, match="batch_size=2"):
        train(FakeBiRefNet(), data, steps=2, batch_size=4, device="cpu", checkpoint_dir=after_one_step, resume=True,
              show_progress=False)


def test_interrupt_saves_a_checkpoint(tmp_path, data):
    def interrupt(p):
        if p.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(FakeBiRefNet(), data, steps=5, batch_size=2, device="cpu", checkpoint_dir=tmp_path, progress=interrupt,
              show_progress=False)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 2


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_again_while_the_interrupt_checkpoint_is_written(tmp_path, data, caplog, monkeypatch, presses):
    """A second Ctrl-C while the interrupt's checkpoint was written dropped that save; now it is held until the save
    ends, and a third stops at once, leaving the previous checkpoint whole and saying so."""
    import birefvid.train.loop as loop

    real_save = loop.save_checkpoint

    def pressed_while_saving(path, state):
        if state["step"] == 3:  # the interrupt's save, not the periodic one of step 2
            for _ in range(presses):
                os.kill(os.getpid(), signal.SIGINT)
        return real_save(path, state)

    def interrupt(p):
        if p.step == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", pressed_while_saving)
    with pytest.raises(KeyboardInterrupt):
        train(FakeBiRefNet(), data, steps=5, batch_size=2, device="cpu", checkpoint_dir=tmp_path, checkpoint_every=2,
              progress=interrupt, show_progress=False)
    assert "saving step 3 first" in caplog.text
    saved = torch.load(tmp_path / "last.pt", weights_only=True)["step"]
    if presses == 1:
        assert saved == 3 and "interrupted at step 3" in caplog.text
    else:
        assert saved == 2 and f"stopped while saving step 3, which is not saved; resume continues from {tmp_path / 'last.pt'}" in caplog.text
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_precision_fallbacks_and_logging(tmp_path, data, caplog):
    # the fp16 fallback on the CPU, trained, is test_precision_warnings_name_the_callers_line's: the same run's warning
    with caplog.at_level(logging.INFO, logger="birefvid.train.loop"):
        res = train(FakeBiRefNet(), data, steps=2, batch_size=2, device="cpu", precision="bf16", log_every=1,
                    show_progress=False)
    assert all(map(lambda v: v == v, res.losses))
    assert "step 2/2 loss" in caplog.text and "ETA" in caplog.text
    with pytest.raises(ConfigError, match="precision"):
        train(FakeBiRefNet(), data, steps=1, batch_size=2, device="cpu", precision="fp8", show_progress=False)


def test_bad_dataset_items_are_rejected():
    with pytest.raises(ConfigError, match="dataset items must be"):
        train(FakeBiRefNet(), [torch.zeros(3, 8, 8)], steps=1, batch_size=1, device="cpu", show_progress=False)


# ------------------------------------------------------------------ the real model, tiny


def test_real_birefnet_trains_and_round_trips(tmp_path):
    models = pytest.importorskip("birefvid.models")
    torch.manual_seed(0)
    model = models.BiRefNet(backbone="pvt_v2_b0")
    # 2 steps: a step falls from the first's loss (62.6 to 53.3 here); a third showed nothing more, at 1.2 s (CI: 10-20 s)
    res = train(model, SceneDataset(2, 64, seed=1, flip=False), steps=2, batch_size=2, lr=1e-3, warmup_steps=1,
                device="cpu", weights_path=tmp_path / "tiny.safetensors", show_progress=False)
    assert res.losses[-1] < res.losses[0]
    fresh = models.BiRefNet(backbone="pvt_v2_b0")
    fresh.load_state_dict(load_file(str(res.weights)))
    with safe_open(str(res.weights), "pt") as f:
        assert f.metadata()["backbone"] == "pvt_v2_b0"


def test_refuses_to_overwrite_a_checkpoint(after_one_step, data):
    with pytest.raises(ConfigError, match="last.pt exists; pass resume=True"):
        train(FakeBiRefNet(), data, steps=1, batch_size=2, device="cpu", checkpoint_dir=after_one_step, show_progress=False)


class WiderFakeBiRefNet(FakeBiRefNet):
    """FakeBiRefNet with another head: a different architecture, as another --backbone is."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(8, 2, 1)


def test_resume_with_a_model_that_does_not_fit_is_one_config_error(after_one_step, data):
    with pytest.raises(ConfigError, match=r"cannot resume .*last.pt: its model does not fit this one \(size mismatch for head.weight") as info:
        train(WiderFakeBiRefNet(), data, steps=2, batch_size=2, device="cpu", checkpoint_dir=after_one_step, resume=True,
              show_progress=False)
    assert "\n" not in str(info.value)


def test_checkpoint_messages_name_the_cli_flag_under_the_cli(tmp_path, data, caplog):
    def interrupt(p):
        if p.step == 1:
            raise KeyboardInterrupt

    with cli_naming():
        with caplog.at_level(logging.WARNING, logger="birefvid.train.loop"), pytest.raises(KeyboardInterrupt):
            train(FakeBiRefNet(), data, steps=3, batch_size=2, device="cpu", checkpoint_dir=tmp_path, progress=interrupt,
                  show_progress=False)
        assert "interrupted at step 1; resume with the same command and --resume" in caplog.text
        with pytest.raises(ConfigError, match="last.pt exists; pass --resume"):
            train(FakeBiRefNet(), data, steps=3, batch_size=2, device="cpu", checkpoint_dir=tmp_path, show_progress=False)


def test_resume_refusals_name_the_cli_flag_under_the_cli(after_one_step, data):
    with cli_naming(), pytest.raises(ConfigError, match=r"trained with --batch-size 2, this run has --batch-size 4; resume with --batch-size 2"):
        train(FakeBiRefNet(), data, steps=2, batch_size=4, device="cpu", checkpoint_dir=after_one_step, resume=True, show_progress=False)
    with pytest.raises(ConfigError, match=r"its dataset had 8 samples, this one has 6 \(images added or removed"):
        train(FakeBiRefNet(), SceneDataset(6, 64, seed=11), steps=2, batch_size=2, device="cpu", checkpoint_dir=after_one_step,
              resume=True, show_progress=False)


def test_each_steps_reported_lr_is_the_rate_that_step_was_taken_at(data):
    # the step line said the next step's rate: a 20-step run printed "step 1/20 ... lr 1.00e-04" though its 2-step
    # warm-up took step 1 at 5e-05, and "step 20/20 ... lr 1.00e-06", the floor, for a last step taken above it
    seen = []
    train(FakeBiRefNet(), data, steps=8, batch_size=2, lr=1e-4, warmup_steps=4, device="cpu", show_progress=False,
          progress=lambda p: seen.append(p.lr))
    assert seen == pytest.approx([1e-4 * lr_factor(k, 8, 4, 0.01) for k in range(8)])
    assert seen[0] == pytest.approx(2.5e-5) and seen[-1] > 1e-6


class FirstStepNaN(FakeBiRefNet):
    """Non-finite logits at its first training forward only: the first step's update is skipped."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            self.calls += 1
            if self.calls == 1:
                out.logits = out.logits * float("nan")
        return out


def test_a_skipped_first_step_moves_the_schedule_on_without_torchs_warning(data, recwarn):
    # a first step skipped (here a non-finite loss; on a GPU in fp16, GradScaler's skip of an overflowed step, which
    # takes the same path) then stepped the scheduler before any optimizer step, and torch warned "Detected call of
    # `lr_scheduler.step()` before `optimizer.step()`", a fault the user could not find in their command
    seen = []
    res = train(FirstStepNaN(), data, steps=4, batch_size=2, lr=1e-4, warmup_steps=2, device="cpu", show_progress=False,
                progress=lambda p: seen.append(p.lr))
    assert not torch.isfinite(torch.tensor(res.losses[0])) and all(torch.isfinite(torch.tensor(res.losses[1:])))
    assert not [w for w in recwarn if "lr_scheduler" in str(w.message)]
    assert seen == pytest.approx([1e-4 * lr_factor(k, 4, 2, 0.01) for k in range(4)])  # the schedule follows the step count


def test_scaler_step_says_whether_gradscaler_skipped_the_step():
    # GradScaler (enabled for fp16 on CUDA) skips a step whose scaled gradients overflow and halves its scale
    from birefvid.train.loop import scaler_step

    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    before = model.weight.detach().clone()
    scaler.scale((model(torch.ones(1, 2)) * 1e36).sum()).backward()  # overflows once scaled
    assert scaler_step(scaler, optimizer) is False
    assert torch.equal(model.weight, before)
    optimizer.zero_grad()
    scaler.scale(model(torch.ones(1, 2)).sum()).backward()
    assert scaler_step(scaler, optimizer) is True
    assert not torch.equal(model.weight, before)
    assert scaler_step(torch.amp.GradScaler("cpu", enabled=False), optimizer) is True  # fp32, bf16: always steps


def test_resume_with_another_lr_goes_on_with_it(tmp_path, data, caplog):
    kwargs = dict(steps=4, batch_size=2, device="cpu", checkpoint_dir=tmp_path, show_progress=False, warmup_steps=1)

    def stop_at_2(p):
        if p.step == 2:
            raise Stop

    with pytest.raises(Stop):
        train(FakeBiRefNet(), data, lr=1e-3, checkpoint_every=1, progress=stop_at_2, **kwargs)
    seen = []
    with caplog.at_level(logging.WARNING, logger="birefvid.train.loop"):
        train(FakeBiRefNet(), data, lr=1e-5, resume=True, progress=lambda p: seen.append(p.lr), **kwargs)
    assert "resuming with lr=1e-05 (checkpoint had 1.00e-03)" in caplog.text
    assert seen and max(seen) <= 1e-5  # not the checkpoint's 1e-3 schedule, silently


@pytest.mark.parametrize("resumed", [dict(steps=16), dict(warmup_steps=4)])
def test_a_resumed_run_takes_every_step_on_its_own_schedule(tmp_path, data, caplog, resumed):
    """A run resumed with other steps (whose default warm-up follows them) or another warm-up: its first step was
    taken at the rate the checkpoint's schedule gave it (7.5e-05 where this run's schedule says 9.5e-05), the next
    ones at this run's, a jump the progress line showed and the weights took."""
    kwargs = dict(steps=8, batch_size=2, lr=1e-4, warmup_steps=2, device="cpu", checkpoint_dir=tmp_path, show_progress=False)

    def stop_at_4(p):
        if p.step == 4:
            raise Stop

    with pytest.raises(Stop):
        train(FakeBiRefNet(), data, checkpoint_every=1, progress=stop_at_4, **kwargs)
    seen = []
    kwargs.update(resumed)
    with caplog.at_level(logging.WARNING, logger="birefvid.train.loop"):
        train(FakeBiRefNet(), data, resume=True, progress=lambda p: seen.append((p.step, p.lr)), **kwargs)
    steps, warmup = kwargs["steps"], kwargs["warmup_steps"]
    assert seen == [(k, pytest.approx(1e-4 * lr_factor(k - 1, steps, warmup, 0.01))) for k in range(5, steps + 1)]


# ------------------------------------------------------------------ validation


def _scores_by_eval(model: nn.Module, dataset) -> tuple[float, float]:
    """Mean IoU and MAE of ``model`` on ``dataset`` computed image by image with birefvid.eval's metrics."""
    from birefvid.eval import iou, mae

    model.eval()
    ious, maes = [], []
    with torch.no_grad():
        for i in range(len(dataset)):
            x, m = dataset[i]
            pred = torch.sigmoid(model(x[None]))[0, 0].numpy()
            ious.append(iou(pred, m[0].numpy()))
            maes.append(mae(pred, m[0].numpy()))
    return sum(ious) / len(ious), sum(maes) / len(maes)


# The validated run the validation tests look into or continue, trained once for the module (they only read it):
# 8 items, batch 3, so an epoch is 3 steps, and 7 steps end part-way into the third epoch.
VALIDATED_RUN = dict(steps=7, batch_size=3, lr=3e-2, warmup_steps=1, device="cpu", seed=3, show_progress=False)


def _validation_set(cls=SceneDataset, **kwargs) -> SceneDataset:
    return cls(3, 64, seed=99, flip=False, **kwargs)


@dataclass
class ValidatedRun:
    result: object  # birefvid.train.TrainResult
    model: FakeBiRefNet
    seen: list  # each step's TrainProgress.validation
    folder: object  # its checkpoint folder (pathlib.Path)


@pytest.fixture(scope="module")
def validated_run(tmp_path_factory) -> ValidatedRun:
    """The uninterrupted VALIDATED_RUN of a FakeBiRefNet seeded with 1 on the ``data`` fixture's scenes."""
    folder, seen = tmp_path_factory.mktemp("validated"), []
    torch.manual_seed(1)
    model = FakeBiRefNet()
    res = train(model, SceneDataset(8, 64, seed=11), checkpoint_dir=folder, checkpoint_every=100, val_dataset=_validation_set(),
                progress=lambda p: seen.append(p.validation), **VALIDATED_RUN)
    return ValidatedRun(res, model, seen, folder)


def test_validation_after_each_epoch_and_the_best_weights_kept(validated_run):
    res, model, seen, val = validated_run.result, validated_run.model, validated_run.seen, _validation_set()
    # 8 items, batch 3: an epoch is 3 steps; the run's last step is scored too
    assert [v.step for v in res.validations] == [3, 6, 7] and [v.epoch for v in res.validations] == ["1", "2", "2.3"]
    assert [v.step for v in seen if v is not None] == [3, 6, 7] and seen[0] is None
    assert res.validations[0].train_loss == pytest.approx(sum(res.losses[:3]) / 3)
    assert (res.validations[-1].iou, res.validations[-1].mae) == pytest.approx(_scores_by_eval(model, val))
    best = max(res.validations, key=lambda v: v.iou)
    assert res.best == pytest.approx({"iou": best.iou, "mae": best.mae, "step": best.step})
    tops = [max(v.iou for v in res.validations[:i]) for i in range(1, len(res.validations))]
    assert [v.best for v in res.validations] == [True] + [v.iou > top for v, top in zip(res.validations[1:], tops)]
    state = torch.load(validated_run.folder / "best.pt", weights_only=True)
    assert state["step"] == best.step and state["resolution"] == "64x64"
    kept = FakeBiRefNet()
    kept.load_state_dict(state["model"])
    assert _scores_by_eval(kept, val) == pytest.approx((best.iou, best.mae))
    assert "val IoU" in res.validations[0].describe(7) and "epoch 1 (step 3/7)" in res.validations[0].describe(7)


def test_validation_leaves_resume_exact_and_the_best_survives_it(tmp_path, data, validated_run):
    full, kwargs = validated_run.result, dict(checkpoint_every=1, val_dataset=_validation_set(), **VALIDATED_RUN)
    resumed = _stopped_and_resumed(tmp_path, data, 4, **kwargs)
    assert resumed.losses == pytest.approx(full.losses[4:], rel=1e-6)
    assert [v.step for v in resumed.validations] == [v.step for v in full.validations[1:]] == [6, 7]
    assert [v.iou for v in resumed.validations] == pytest.approx([v.iou for v in full.validations[1:]])
    # the epoch line's training loss is the epoch's mean, steps before the stop included (it was 5-6's alone, not 4-6's)
    assert [v.train_loss for v in resumed.validations] == pytest.approx([v.train_loss for v in full.validations[1:]])
    assert resumed.best == pytest.approx(full.best)
    again = train(FakeBiRefNet(), data, checkpoint_dir=tmp_path / "b", resume=True, **kwargs)  # nothing left to do
    assert again.validations == [] and again.best == pytest.approx(full.best)


def test_resume_with_another_held_out_fraction_is_refused(tmp_path, data):
    val = SceneDataset(2, 64, seed=99, flip=False)
    train(FakeBiRefNet(), data, steps=1, batch_size=2, device="cpu", checkpoint_dir=tmp_path, show_progress=False,
          val_dataset=val, val_fraction=0.25)
    with cli_naming(), pytest.raises(ConfigError, match=r"trained with --val-fraction 0.25, this run is without --val-fraction"):
        train(FakeBiRefNet(), data, steps=2, batch_size=2, device="cpu", checkpoint_dir=tmp_path, resume=True,
              show_progress=False)


def test_validation_at_another_size_is_refused(data):
    with pytest.raises(ConfigError, match="validate at the training size"):
        train(FakeBiRefNet(), data, steps=1, batch_size=2, device="cpu", show_progress=False,
              val_dataset=SceneDataset(2, 96, seed=99, flip=False))


def test_precision_warnings_name_the_callers_line(data, monkeypatch):
    """A fixed stacklevel=3 named the right line from train() only: called as resolve_precision(), or through any
    other path, the warning named a frame of pytest's (or birefvid's) instead of the code that asked."""
    from birefvid.train.loop import resolve_precision

    with pytest.warns(UserWarning, match="fp16 .* not supported on the CPU") as trained:
        train(FakeBiRefNet(), data, steps=1, batch_size=2, device="cpu", precision="fp16", show_progress=False)
    with pytest.warns(UserWarning, match="fp16 .* not supported on the CPU") as resolved:
        resolve_precision("fp16", torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    with pytest.warns(UserWarning, match="no bf16 support") as on_gpu:
        resolve_precision("bf16", torch.device("cuda"))
    assert [w.filename for w in (*trained, *resolved, *on_gpu)] == [__file__] * 3


def test_bf16_on_a_gpu_without_native_bf16_trains_in_fp16(monkeypatch):
    """torch.cuda.is_bf16_supported() is True on a T4 (sm_75) by emulation, so the fp16 fallback never ran
    there and training crawled in emulated bf16. No CUDA call is made: the GPU's capability is faked."""
    from birefvid.train.loop import resolve_precision

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    with pytest.warns(UserWarning, match="no bf16 support; training in fp16"):
        assert resolve_precision("bf16", torch.device("cuda")) == torch.float16
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert resolve_precision("bf16", torch.device("cuda:1")) == torch.bfloat16


class CtrlCWhileValidating(SceneDataset):
    """A validation set whose scoring is interrupted once by a real SIGINT, after the ``at``-th item read."""

    def __init__(self, *args, at: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reads, self.at = 0, at

    def __getitem__(self, index):
        self.reads += 1
        if self.reads == self.at:
            os.kill(os.getpid(), signal.SIGINT)
        return super().__getitem__(index)


def test_ctrl_c_while_validating_lets_the_validation_end_and_resume_misses_none(tmp_path, data, caplog, validated_run):
    """A press during an epoch's validation stopped it half-way; the checkpoint said the step was done, so the
    resumed run never scored that epoch (no epoch line, and best.pt could miss the best weights)."""
    full, kwargs = validated_run.result, dict(checkpoint_every=100, **VALIDATED_RUN)
    torch.manual_seed(1)
    seen = []
    with pytest.raises(KeyboardInterrupt):  # the 2nd item of the first validation (step 3) reads during a press
        train(FakeBiRefNet(), data, checkpoint_dir=tmp_path / "b", progress=lambda p: seen.append(p.validation),
              val_dataset=_validation_set(CtrlCWhileValidating, at=2), **kwargs)
    assert [v.step for v in seen if v is not None] == [3]  # scored whole, and its line shown, before stopping
    assert torch.load(tmp_path / "b" / "last.pt", weights_only=True)["step"] == 3
    torch.manual_seed(1)
    resumed = train(FakeBiRefNet(), data, checkpoint_dir=tmp_path / "b", resume=True, val_dataset=_validation_set(), **kwargs)
    assert [v.step for v in [*seen[-1:], *resumed.validations]] == [v.step for v in full.validations] == [3, 6, 7]
    assert resumed.best == pytest.approx(full.best)


def test_resume_on_other_data_of_the_same_size_is_said(tmp_path, data, caplog):
    """A resume on another folder of as many pictures went on without a word, as if it were the same data."""
    kwargs = dict(steps=2, batch_size=2, device="cpu", checkpoint_dir=tmp_path, show_progress=False)
    train(FakeBiRefNet(), data, metadata={"data": "shoes/"}, **{**kwargs, "steps": 1})
    with caplog.at_level(logging.WARNING, logger="birefvid.train.loop"):
        train(FakeBiRefNet(), data, metadata={"data": "./shoes"}, resume=True, **kwargs)  # the same folder
        assert "trained on" not in caplog.text
        train(FakeBiRefNet(), data, metadata={"data": "bags/"}, resume=True, **{**kwargs, "steps": 3})
    assert "resuming on bags/; the checkpoint was trained on ./shoes" in caplog.text


def test_resume_on_the_same_data_given_from_another_folder_is_not_said_other(tmp_path, data, caplog, monkeypatch):
    """``--data shoes`` in proj/, resumed as ``--data proj/shoes`` from its parent: one folder, which the warning
    called another (the relative name was resolved in the resuming run's working folder)."""
    (tmp_path / "proj" / "shoes").mkdir(parents=True)
    kwargs = dict(steps=2, batch_size=2, device="cpu", checkpoint_dir=tmp_path / "run", show_progress=False)
    monkeypatch.chdir(tmp_path / "proj")
    train(FakeBiRefNet(), data, metadata={"data": "shoes"}, **{**kwargs, "steps": 1})
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="birefvid.train.loop"):
        train(FakeBiRefNet(), data, metadata={"data": "proj/shoes"}, resume=True, **kwargs)
        assert "trained on" not in caplog.text
        train(FakeBiRefNet(), data, metadata={"data": "shoes"}, resume=True, **{**kwargs, "steps": 3})  # tmp_path/shoes: another
    assert "resuming on shoes; the checkpoint was trained on proj/shoes" in caplog.text
