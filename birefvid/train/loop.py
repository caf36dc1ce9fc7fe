"""The training loop: AdamW, warm-up + cosine LR, mixed precision, clipping, resumable checkpoints,
and validation after each epoch (IoU and MAE by ``birefvid.eval``; the best weights kept as ``best.pt``).

Reproducibility: the batch of step ``k`` is a pure function of ``(seed, k)`` (a per-epoch
permutation of the dataset), datasets are pure functions of the index, and the torch RNG state
is saved with every checkpoint, so a resumed run continues with exactly the data and the
numbers an uninterrupted run would have produced.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Optional, Sequence, Union

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from birefvid.caller import caller_level
from birefvid.errors import ConfigError, option
from birefvid.runtime.device import pick_device
from birefvid.eval.metrics import Evaluator
from birefvid.train.checkpoints import BEST_NAME, CHECKPOINT_NAME, load_checkpoint, save_best, save_checkpoint, save_weights
from birefvid.train.losses import LossWeights, birefnet_loss, pixel_loss

log = logging.getLogger(__name__)

Precision = Literal["fp32", "fp16", "bf16"]
MAX_BAD_STEPS = 20  # consecutive non-finite losses before giving up


@dataclass(frozen=True)
class Validation:
    """The validation set's scores after an epoch, or after the run's last step when it ends mid-epoch."""

    step: int
    steps_per_epoch: int
    iou: float  # mean over the validation images, at the training size
    mae: float
    train_loss: float  # mean training loss over the steps since the previous validation: compare to spot overfitting
    best: bool  # the highest IoU so far: these weights are now best.pt

    @property
    def epoch(self) -> str:
        """Epochs completed: "3" at an epoch's end, "2.4" for a run that stopped within one."""
        whole, part = divmod(self.step, self.steps_per_epoch)
        return str(whole) if not part else f"{self.step / self.steps_per_epoch:.1f}"

    def describe(self, steps: int) -> str:
        """The epoch's line, as the command prints it."""
        best = f", best so far: saved {BEST_NAME}" if self.best else ""
        return (f"epoch {self.epoch} (step {self.step}/{steps}): train loss {self.train_loss:.4f}, "
                f"val IoU {self.iou:.4f} MAE {self.mae:.4f}{best}")  # fmt: skip


@dataclass(frozen=True)
class TrainProgress:
    """Reported to the progress callback after every step."""

    step: int  # steps completed so far (1-based)
    steps: int  # total steps of the run
    loss: float
    parts: dict[str, float]
    lr: float  # the learning rate this step was taken at
    seconds_per_step: float
    eta_seconds: float
    validation: Optional[Validation] = None  # set on the steps that ended an epoch (and the last) with a validation set


@dataclass
class TrainResult:
    """What a call to ``train`` did: where it started, its per-step losses and its outputs."""

    start_step: int
    step: int
    losses: list[float] = field(default_factory=list)  # losses[i] belongs to step start_step + i + 1
    checkpoint: Optional[Path] = None
    weights: Optional[Path] = None
    validations: list[Validation] = field(default_factory=list)  # this call's, in order
    best: Optional[dict[str, float]] = None  # {"iou", "mae", "step"} of the best validation of the run, resumes included
    best_path: Optional[Path] = None  # best.pt, when a validation set was given and a checkpoint folder


class _StepBatches:
    """Index lists for steps [start, stop): batch ``k`` depends only on (seed, k)."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int, stop: int) -> None:
        self.n, self.batch_size, self.seed, self.start, self.stop = n, batch_size, seed, start, stop
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def _position(self, p: int) -> int:
        epoch = p // self.n
        if epoch != self._epoch:
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % (2**63))
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        return int(self._perm[p % self.n])

    def __iter__(self) -> Iterator[list[int]]:
        for k in range(self.start, self.stop):
            yield [self._position(k * self.batch_size + j) for j in range(self.batch_size)]

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def resolve_precision(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype for ``precision`` on ``device`` (None = fp32), warning on fallbacks."""
    if precision not in ("fp32", "fp16", "bf16"):
        raise ConfigError(f"precision must be 'fp32', 'fp16' or 'bf16', got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "fp16" and device.type == "cpu":
        warnings.warn("fp16 training is not supported on the CPU; training in fp32 (use bf16 for mixed precision on CPU)",
                      stacklevel=caller_level())
        return None
    # native bf16 starts at compute capability 8.0 (Ampere); torch.cuda.is_bf16_supported() says True on a
    # T4 or RTX 20xx too (including_emulation=True by default) and asks about the current GPU, not ``device``
    if precision == "bf16" and device.type == "cuda" and torch.cuda.get_device_capability(device)[0] < 8:
        warnings.warn("this GPU has no bf16 support; training in fp16 instead", stacklevel=caller_level())
        return torch.float16
    return torch.float16 if precision == "fp16" else torch.bfloat16


def lr_factor(step: int, steps: int, warmup: int, min_ratio: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``min_ratio`` at ``steps``."""
    if step < warmup:
        return (step + 1) / warmup
    span = max(1, steps - warmup)
    t = min(1.0, (step - warmup) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def scaler_step(scaler: torch.amp.GradScaler, optimizer: torch.optim.Optimizer) -> bool:
    """``scaler.step`` and ``scaler.update``; True when the optimizer stepped. With fp16 on CUDA the scaler skips the
    step whose scaled gradients overflowed (often the first ones, at its starting scale of 65536) and halves its
    scale, which is how a skip shows (HF Accelerate's ``step_was_skipped`` tells it so too)."""
    if not scaler.is_enabled():
        scaler.step(optimizer)
        return True
    before = scaler.get_scale()
    scaler.step(optimizer)
    scaler.update()
    return scaler.get_scale() >= before


# torch's warning for a scheduler stepped while its optimizer has not stepped yet: true of a skipped first step
_SCHEDULER_FIRST = r"Detected call of `lr_scheduler\.step\(\)` before `optimizer\.step\(\)`"


def schedule_step(scheduler: Any, updated: bool) -> None:
    """Move the learning-rate schedule on one step, whether the optimizer took it or skipped it (a non-finite loss,
    an fp16 overflow): the schedule follows the step count. A skipped first step made torch warn that
    ``lr_scheduler.step()`` came before ``optimizer.step()`` (a fp16 run on a GPU, at its first overflow), which
    named no fault of the user's; only that warning, and only then, is kept quiet."""
    if updated:
        scheduler.step()
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_SCHEDULER_FIRST, category=UserWarning)
        scheduler.step()


def _rng_state(device: torch.device) -> dict[str, Any]:
    """The random state a resumed run needs: the CPU generator's, and the training GPU's only (not every
    GPU's: a CPU run would start CUDA on them all, and a checkpoint from a 2-GPU machine failed on a 1-GPU one)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda_device"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type != "cuda":
        return
    if "cuda_device" in state:
        torch.cuda.set_rng_state(state["cuda_device"], device)
    elif state.get("cuda"):  # a checkpoint that kept every GPU's state: the one at this index if it had one, else the first
        states = state["cuda"]
        torch.cuda.set_rng_state(states[device.index or 0] if (device.index or 0) < len(states) else states[0], device)


def _compute_loss(out: Any, target: torch.Tensor, weights: LossWeights) -> tuple[torch.Tensor, dict[str, float]]:
    """BiRefNet's objective for a TrainOutput; the pixel loss alone for a model returning logits."""
    if isinstance(out, torch.Tensor):
        loss = pixel_loss(out.float(), target, weights)
        return loss, {"final": float(loss.detach())}
    return birefnet_loss(out, target, weights)


def _check_sample(sample: Any) -> tuple[int, int]:
    """Check the dataset contract on one item; returns its (H, W)."""
    ok = isinstance(sample, (tuple, list)) and len(sample) == 2 and all(isinstance(t, torch.Tensor) for t in sample)
    if ok:
        image, mask = sample
        ok = image.ndim == 3 and image.shape[0] == 3 and mask.shape == (1, *image.shape[1:])
    if not ok:
        got = [tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__ for t in sample] \
            if isinstance(sample, (tuple, list)) else type(sample).__name__
        raise ConfigError(f"dataset items must be (image (3, H, W), mask (1, H, W)) tensors, got {got}")
    return int(sample[0].shape[1]), int(sample[0].shape[2])


def _check_resumable(old: dict[str, Any], config: dict[str, Any], path: Path) -> None:
    """ConfigError when a checkpoint's run differs in what fixes the batch of each step (its data order)."""
    for key in ("seed", "batch_size"):
        if old.get(key) != config[key]:
            raise ConfigError(
                f"cannot resume {path}: it was trained with {option(key, old.get(key))}, this run has "
                f"{option(key, config[key])}; resume with {option(key, old.get(key))} or choose another checkpoint folder"
            )
    if old.get("val_fraction") != config["val_fraction"]:  # another split trains on other images
        def held(value: object) -> str:
            return f"with {option('val_fraction', value)}" if value is not None else f"without {option('val_fraction')}"

        raise ConfigError(f"cannot resume {path}: it was trained {held(old.get('val_fraction'))}, this run is "
                          f"{held(config['val_fraction'])}; resume with the same split or choose another checkpoint folder")
    if old.get("dataset_len") != config["dataset_len"]:
        raise ConfigError(
            f"cannot resume {path}: its dataset had {old.get('dataset_len')} samples, this one has "
            f"{config['dataset_len']} (images added or removed, or other data); resume on the same data or "
            f"choose another checkpoint folder"
        )


def _load_resumed_model(model: torch.nn.Module, state: dict[str, Any], path: Path) -> None:
    """Load a checkpoint's weights into ``model``; ConfigError (not torch's page of shapes) when they do not fit."""
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = (first[1] if len(first) > 1 else first[0] if first else type(exc).__name__).strip().rstrip(".")
        raise ConfigError(
            f"cannot resume {path}: its model does not fit this one ({detail[:200]}); resume with the model it was "
            f"trained with (the same {option('backbone')} and {option('init')}) or choose another checkpoint folder"
        ) from exc


def validate(
    model: torch.nn.Module, dataset: Dataset, *, batch_size: int, device: torch.device,
    autocast: Callable[[], Any] = contextlib.nullcontext,
) -> dict[str, float]:
    """Mean IoU and MAE of ``model`` on ``dataset`` (eval mode, no gradients), scored by ``birefvid.eval``.

    Items are read in order without a DataLoader: making one draws from the global torch RNG, which
    would make a run that validates differ from the same run resumed. The model is left in training mode.
    """
    evaluator = Evaluator(sod=False)  # IoU and MAE only: the shape measures cost more than the forward pass on CPU
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for first in range(0, len(dataset), batch_size):  # type: ignore[arg-type]
                images, masks = _collate([dataset[i] for i in range(first, min(first + batch_size, len(dataset)))])  # type: ignore[arg-type]
                with autocast():
                    out = model(images.to(device))
                logits = out if isinstance(out, torch.Tensor) else out.logits
                # a diverged model's NaN scores as background (a low IoU), not as an error that ends the run
                preds = torch.nan_to_num(torch.sigmoid(logits.float()), nan=0.0).cpu().numpy()
                for pred, mask in zip(preds, masks.numpy()):
                    evaluator.new_clip()  # separate pictures: no temporal pairs
                    evaluator.step(pred[0], mask[0])
    finally:
        model.train(was_training)
    scores = evaluator.results()
    return {"iou": scores["iou"], "mae": scores["mae"]}


_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class _StepBoundary:
    """Holds a Ctrl-C (or the command line's SIGTERM) that arrives within a training step until the step ends.

    Raised mid-step it left a state to save that no run has: BatchNorm statistics and the random state moved on
    by a forward pass whose update never came (or half an optimizer update), so a resumed run was not the run
    it continued. A second press while one is held stops at once (that step is then not saved). While the
    interrupt's checkpoint is written (``saving``), one more press is held too, so the save ends whole; a third
    stops at once, the last checkpoint left as it was. Only on the main thread and over Python-level handlers
    (Python's own for Ctrl-C, the CLI's for SIGTERM)."""

    def __init__(self) -> None:
        self.within = False
        self._saving: Optional[int] = None  # the step whose interrupt checkpoint is being written
        self._held: Optional[int] = None
        self._previous: dict[int, Callable[[int, Any], Any]] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in _STOP_SIGNALS:
                handler = signal.getsignal(signum)
                if callable(handler):
                    self._previous[signum] = handler
                    signal.signal(signum, self._hold)

    def _hold(self, signum: int, frame: Any) -> None:
        if self._saving is not None and self._held is None:  # a second press, while the first one's save is written
            self._held = signum
            again = "; Ctrl-C again stops at once, keeping the last checkpoint as it was" if signum == signal.SIGINT else ""
            log.warning("saving step %d first (a moment)%s", self._saving, again)
            return
        if not self.within or self._held is not None:  # between steps, or pressed again: stop now
            self._previous[signum](signum, frame)
            return
        self._held = signum
        again = "; Ctrl-C again stops at once without it" if signum == signal.SIGINT else ""
        log.warning("stopping when this step ends, to save it whole (a moment)%s", again)

    def step_done(self) -> None:
        """The step ended, its state whole: raise what was held during it."""
        self.within = False
        if self._held is not None:
            signum, self._held = self._held, None
            self._previous[signum](signum, None)

    @contextlib.contextmanager
    def saving(self, step: int) -> Iterator[None]:
        """Hold one more press while the interrupt's checkpoint of ``step`` is written: a second Ctrl-C dropped it."""
        self._saving, self._held = step, None
        try:
            yield
        finally:
            self._saving, self._held = None, None

    def close(self) -> None:
        """Put the previous handlers back."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


def _collate(batch: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]:
    images, masks = default_collate(batch)
    return images, masks


def _fmt_time(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60}:{rem % 60:02d}"


def train(
    model: torch.nn.Module,
    dataset: Dataset,
    *,
    steps: int,
    batch_size: int,
    lr: float = 1e-4,
    weight_decay: float = 1e-2,
    device: Union[str, torch.device] = "auto",
    precision: Precision = "fp32",
    checkpoint_dir: Union[str, Path, None] = None,
    resume: bool = False,
    log_every: int = 10,
    seed: int = 0,
    progress: Optional[Callable[[TrainProgress], None]] = None,
    warmup_steps: Optional[int] = None,
    min_lr_ratio: float = 0.01,
    grad_clip: Optional[float] = 1.0,
    checkpoint_every: int = 100,
    num_workers: int = 0,
    loss_weights: LossWeights = LossWeights(),
    weights_path: Union[str, Path, None] = None,
    half: bool = False,
    metadata: Optional[dict[str, str]] = None,
    show_progress: Optional[bool] = None,
    val_dataset: Optional[Dataset] = None,
    val_fraction: Optional[float] = None,
) -> TrainResult:
    """Train ``model`` on ``dataset`` for ``steps`` steps; checkpoint, resume and save .safetensors.

    ``dataset[i]`` must return (normalized image (3, H, W), mask (1, H, W)). With a
    ``checkpoint_dir`` the state goes to ``last.pt`` every ``checkpoint_every`` steps, at the end
    and on Ctrl-C; ``resume=True`` continues from it. The final weights go to ``weights_path``
    (default ``checkpoint_dir/model.safetensors``) with metadata {backbone, resolution (WxH),
    steps}. ``show_progress`` (default: stderr is a terminal) shows a tqdm bar; otherwise a log
    line every ``log_every`` steps. The global torch RNG is seeded with ``seed`` (dropout).

    With a ``val_dataset`` (same item contract, no augmentation) the model is scored after every epoch
    (``ceil(len(dataset) / batch_size)`` steps) and after the last step; the weights with the best IoU so
    far go to ``checkpoint_dir/best.pt``. ``val_fraction``: how much of the data the caller held out for
    it, recorded so that resuming with another split (other training images) is refused.
    """
    if steps < 0 or batch_size <= 0 or lr <= 0 or log_every <= 0 or checkpoint_every <= 0:
        raise ConfigError(
            f"need steps >= 0, batch_size > 0, lr > 0, log_every > 0, checkpoint_every > 0; got steps={steps}, "
            f"batch_size={batch_size}, lr={lr}, log_every={log_every}, checkpoint_every={checkpoint_every}"
        )
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise ConfigError("the training dataset is empty")
    resolution = _check_sample(dataset[0])
    if val_dataset is not None:
        if len(val_dataset) == 0:  # type: ignore[arg-type]
            raise ConfigError("the validation dataset is empty")
        if _check_sample(val_dataset[0]) != resolution:
            raise ConfigError(f"validation items are {_check_sample(val_dataset[0])} (H, W) but training items {resolution}; "
                              "validate at the training size")
    steps_per_epoch = max(1, math.ceil(n / batch_size))
    dev = pick_device(str(device))
    amp_dtype = resolve_precision(precision, dev)

    def autocast() -> Any:
        if amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(dev.type, dtype=amp_dtype)

    warmup = min(100, max(1, steps // 10)) if warmup_steps is None else max(1, warmup_steps)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    ckpt_path = ckpt_dir / CHECKPOINT_NAME if ckpt_dir is not None else None
    best_path = ckpt_dir / BEST_NAME if ckpt_dir is not None and val_dataset is not None else None
    if weights_path is None and ckpt_dir is not None:
        weights_path = ckpt_dir / "model.safetensors"

    torch.manual_seed(seed)
    model.to(dev)
    model.train()
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]  # norms and biases
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: lr_factor(k, steps, warmup, min_lr_ratio))
    scaler = torch.amp.GradScaler(dev.type, enabled=amp_dtype == torch.float16 and dev.type == "cuda")

    config = {"seed": seed, "batch_size": batch_size, "steps": steps, "dataset_len": n, "val_fraction": val_fraction}
    data_folder = None if (metadata or {}).get("data") is None else str(Path(metadata["data"]).resolve())  # type: ignore[index]
    start, best = 0, None
    unvalidated: list[float] = []  # training losses since the previous validation
    if resume and ckpt_path is not None and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        old = state.get("config", {})
        _check_resumable(old, config, ckpt_path)
        if old.get("steps") != steps:
            log.warning("resuming with %s (checkpoint had %s): the LR schedule changes", option("steps", steps), old.get("steps"))
        old_data, data = (state.get("metadata") or {}).get("data"), (metadata or {}).get("data")
        # as many pictures, other ones (``d`` and ``./d/`` are one folder, and so is ``proj/d`` given from another folder:
        # the checkpoint keeps the folder its run resolved, the metadata the words given, as the weights' metadata says them)
        old_folder = state.get("data_folder") or (None if old_data is None else str(Path(old_data).resolve()))
        if old_folder is not None and data_folder is not None and old_folder != data_folder:
            log.warning("resuming on %s; the checkpoint was trained on %s", data, old_data)
        if state.get("resolution") not in (None, f"{resolution[1]}x{resolution[0]}"):
            log.warning("resuming at %dx%d; the checkpoint was trained at %s", resolution[1], resolution[0], state["resolution"])
        _load_resumed_model(model, state["model"], ckpt_path)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        old_lr = scheduler.base_lrs[0]
        if not math.isclose(old_lr, lr, rel_tol=1e-6):  # a lower peak to go on with: the schedule scales to it
            log.warning("resuming with %s (checkpoint had %.2e): the LR schedule scales to it", option("lr", lr), old_lr)
            scheduler.base_lrs = [lr] * len(scheduler.base_lrs)
        # the next step's rate by this run's schedule, not the one the checkpoint's gave it: with another lr, steps or
        # warm-up (the default warm-up is a tenth of the steps) the first resumed step was taken off this run's schedule
        for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
            group["initial_lr"], group["lr"] = base, base * lr_factor(scheduler.last_epoch, steps, warmup, min_lr_ratio)
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"], dev)
        best = state.get("best")  # so a resumed run replaces best.pt only with better weights
        unvalidated = list(state.get("unvalidated_losses") or [])  # the epoch's losses before the interruption
        start = int(state["step"])
        log.info("resumed from %s at step %d", ckpt_path, start)
    elif resume:
        log.warning("resume requested but %s does not exist; starting from step 0", ckpt_path)
    elif ckpt_path is not None and ckpt_path.exists():
        raise ConfigError(f"{ckpt_path} exists; pass {option('resume', True)} to continue it, or choose another checkpoint folder")

    result = TrainResult(start_step=start, step=start, best=best, best_path=best_path)

    def checkpoint() -> None:
        if ckpt_path is None:
            return
        save_checkpoint(ckpt_path, {
            "step": result.step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler.is_enabled() else None,
            "rng": _rng_state(dev), "config": config, "best": result.best,
            "resolution": f"{resolution[1]}x{resolution[0]}",  # WxH: --weights last.pt then runs at the training size
            "metadata": dict(metadata or {}),  # the data it trained on: a resume on other data is said
            "data_folder": data_folder,  # that data's folder, resolved in the run's own working folder
            "unvalidated_losses": list(unvalidated),  # so a resumed run's epoch line has the epoch's mean, not its own part's
        })
        result.checkpoint = ckpt_path

    def run_validation() -> Validation:
        scores = validate(model, val_dataset, batch_size=batch_size, device=dev, autocast=autocast)  # type: ignore[arg-type]
        improved = result.best is None or scores["iou"] > result.best["iou"]
        if improved:
            result.best = {**scores, "step": float(result.step)}
            if best_path is not None:  # weights and training size only: what --weights needs, a third of last.pt
                save_best(best_path, model, step=result.step, resolution=f"{resolution[1]}x{resolution[0]}", scores=scores)
        done = Validation(result.step, steps_per_epoch, scores["iou"], scores["mae"],
                          sum(unvalidated) / len(unvalidated), improved)
        unvalidated.clear()
        result.validations.append(done)
        return done

    # its own generator: iterating a DataLoader draws a seed from the torch RNG otherwise, just after a resumed
    # run restored it, so the resumed run went on with other dropout masks than the run it continued
    loader = DataLoader(dataset, batch_sampler=_StepBatches(n, batch_size, seed, start, steps),
                        num_workers=num_workers, collate_fn=_collate, pin_memory=dev.type == "cuda",
                        generator=torch.Generator().manual_seed(seed % 2**63))
    interactive = sys.stderr.isatty() if show_progress is None else show_progress
    bar = None
    if interactive and start < steps:
        from ..progress_bar import tqdm_class

        bar = tqdm_class()(total=steps, initial=start, unit="step", desc="train", dynamic_ncols=True)
    bad, stepped = 0, False
    t0, timed_from = time.perf_counter(), start
    boundary = _StepBoundary()
    try:
        for images, masks in loader:
            boundary.within, stepped = True, False
            images = images.to(dev, non_blocking=True)
            masks = masks.to(dev, non_blocking=True)
            with autocast():
                out = model(images)
            loss, parts = _compute_loss(out, masks, loss_weights)
            optimizer.zero_grad(set_to_none=True)
            updated = False  # whether the optimizer really stepped: GradScaler skips a step whose fp16 gradients overflowed
            if torch.isfinite(loss):
                bad = 0
                scaler.scale(loss).backward()
                if grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                updated = scaler_step(scaler, optimizer)
            else:
                bad += 1
                log.warning("step %d: non-finite loss (%s); skipping the update", result.step + 1, parts)
                if bad >= MAX_BAD_STEPS:
                    raise ConfigError(
                        f"the loss was non-finite for {bad} steps in a row; lower the learning rate or train in fp32"
                    )
            step_lr = optimizer.param_groups[0]["lr"]  # the rate this step was taken at: after scheduler.step() it is the next one's
            schedule_step(scheduler, updated)
            result.step += 1
            stepped = True
            value = float(loss.detach())
            result.losses.append(value)
            if val_dataset is not None:  # losses since the previous validation: the epoch's mean training loss
                unvalidated.append(value)

            now = time.perf_counter()
            if result.step == start + 1:  # the first step is slow (allocation, warm-up): time from after it
                per_step, t0, timed_from = now - t0, now, result.step
            else:
                per_step = (now - t0) / (result.step - timed_from)
            validation = None
            if val_dataset is not None and (result.step % steps_per_epoch == 0 or result.step == steps):
                validation = run_validation()  # before the checkpoint: last.pt then knows the best so far
            report = TrainProgress(result.step, steps, value, parts, step_lr, per_step,
                                   per_step * (steps - result.step), validation)
            if result.step % checkpoint_every == 0:
                checkpoint()
            if bar is not None:
                bar.set_postfix(loss=f"{value:.4f}", lr=f"{report.lr:.2e}", refresh=False)
                bar.update(1)
                if validation is not None:
                    bar.write(validation.describe(steps), file=sys.stderr)
            else:
                if result.step % log_every == 0 or result.step == steps:
                    log.info("step %d/%d loss %.4f (%s) lr %.2e %.2fs/step ETA %s", result.step, steps, value,
                             " ".join(f"{k} {v:.3f}" for k, v in parts.items()), report.lr, per_step,
                             _fmt_time(report.eta_seconds))
                if validation is not None:
                    log.info("%s", validation.describe(steps))
            if progress is not None:
                try:
                    progress(report)
                except KeyboardInterrupt:  # the callback's own stop (a caller's Ctrl-C): the step is whole, save it
                    boundary.within = False
                    raise
            # a Ctrl-C or SIGTERM held during the step, its validation or its checkpoint is raised here: a press
            # while validating stopped the scoring half-way, and the resumed run, past that step, never scored it
            boundary.step_done()
    except KeyboardInterrupt:
        if boundary.within:  # pressed twice: its weights, optimizer, BatchNorm statistics and RNG are part-way
            log.warning("stopped %s step %d, which is not saved; %s", "while scoring or saving" if stepped else "within",
                        result.step if stepped else result.step + 1,
                        f"resume continues from {ckpt_path}" if ckpt_path is not None and ckpt_path.exists() else "nothing to resume")
        elif result.step > start:
            try:
                with boundary.saving(result.step):
                    checkpoint()
            except KeyboardInterrupt:  # a third press: the write is abandoned, the file before it intact
                log.warning("stopped while saving step %d, which is not saved; %s", result.step,
                            f"resume continues from {ckpt_path}" if ckpt_path is not None and ckpt_path.exists() else "nothing to resume")
                raise
            log.warning("interrupted at step %d; resume with the same command and %s", result.step, option("resume", True))
        raise
    finally:
        boundary.close()
        if bar is not None:
            bar.close()

    if result.step > start or (ckpt_path is not None and not ckpt_path.exists()):
        checkpoint()
    model.eval()
    if weights_path is not None:
        meta = {"backbone": str(getattr(model, "backbone_name", "")), "steps": str(result.step)}
        meta["resolution"] = f"{resolution[1]}x{resolution[0]}"  # WxH, as birefvid.models reads it
        meta.update(metadata or {})
        result.weights = save_weights(model, weights_path, half=half, metadata=meta)
    return result
