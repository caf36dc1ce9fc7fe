"""``birefvid train``: train or fine-tune BiRefNet on image/mask folders or on generated scenes."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from ..job import BACKBONE_NAMES, PRECISIONS

if TYPE_CHECKING:
    import torch

WEIGHTS_SUFFIXES = (".pth", ".pt", ".safetensors", ".bin", ".ckpt")  # --init values that name a file
DEFAULT_BACKBONE = "pvt_v2_b0"
DEFAULT_SCENES = 100_000  # scenes are generated on demand from (seed, index): a large set costs nothing

HELP = "train or fine-tune BiRefNet (DIS5K/DUTS-style im/ + gt/ folders, x.jpg + x_mask.png folders, or generated scenes)"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="a folder with im/ and gt/ (matching names; or DUTS-TR's NAME-Image/ and NAME-Mask/; or x.jpg beside x_mask.png or x_matte.png), or 'scenes' for generated scenes")
    parser.add_argument("-o", "--out", required=True, help="run folder: checkpoints (last.pt, and best.pt with a validation set) and the final model.safetensors")
    val = parser.add_mutually_exclusive_group()
    val.add_argument("--val", metavar="DIR", help="a validation folder (any layout --data takes), scored after each epoch: IoU and MAE, best weights kept as best.pt")
    val.add_argument("--val-fraction", type=float, metavar="F", help="hold out this fraction of the --data folder's images (seeded by --seed) as the validation set")
    parser.add_argument("--backbone", choices=BACKBONE_NAMES, metavar="NAME",  # the choices in the usage passed 80 columns
                        help=f"backbone of a model trained from scratch: {', '.join(BACKBONE_NAMES)} (default {DEFAULT_BACKBONE}; not with --init, whose weights set it)")
    parser.add_argument("--init", help="start from a checkpoint: a registry name (e.g. general) or a .pth/.safetensors file")
    parser.add_argument("--size", type=int, default=256, help="training resolution, a multiple of 32 (default 256)")
    parser.add_argument("--steps", type=int, required=True, help="optimizer steps to train in total")
    parser.add_argument("--batch-size", type=int, default=4, help="images per step (at least 2: BatchNorm; default 4)")
    parser.add_argument("--lr", type=float, default=1e-4, help="peak AdamW learning rate (default 1e-4)")
    parser.add_argument("--weight-decay", type=float, default=1e-2, help="AdamW weight decay (default 0.01)")
    parser.add_argument("--warmup-steps", type=int, default=None, help="linear warm-up steps (default: min(100, steps/10))")
    parser.add_argument("--scenes", type=int, default=None, help="with --data scenes: how many distinct scenes (default 100000; fixed so a run can be extended with more --steps)")
    parser.add_argument("--seed", type=int, default=0, help="seeds data order, augmentation and generated scenes")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS, help="mixed precision (default: fp16 autocast on CUDA, fp32 elsewhere)")
    parser.add_argument("--checkpoint-every", type=int, default=100, help="steps between resumable checkpoints (default 100)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt at the step it reached")
    parser.add_argument("--half", action="store_true", help="store the final weights as float16 (half the size)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress or summary lines (errors and warnings still shown)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    _check_numbers(args)  # before the imports below (torch, OpenCV, PyAV: 1.5-2.5 s), so a bad number is one line at once
    from ..data import FolderDataset, SceneDataset
    from ..models import BiRefNet
    from ..runtime.device import pick_device
    from ..train import train

    _check_no_run(Path(args.out), args.resume)
    val_set = None
    if args.data == "scenes":
        dataset = SceneDataset(args.scenes or DEFAULT_SCENES, args.size, seed=args.seed)
    else:
        dataset = FolderDataset(args.data, args.size)
        if args.val_fraction is not None:
            dataset, val_set = dataset.split(args.val_fraction, seed=args.seed)
    if args.val is not None:
        val_set = _validation_folder(args.val, args.size)
        _warn_shared_images(dataset, val_set)
    import torch

    torch.manual_seed(args.seed)  # initial weights too: the same command reproduces the same model
    if args.init:
        model, name = _initial_model(args.init)
    else:
        backbone = args.backbone or DEFAULT_BACKBONE
        model, name = BiRefNet(backbone), f"BiRefNet({backbone}) from scratch"
    out = _make_run_folder(Path(args.out))
    precision = args.precision
    if precision == "auto":
        precision = "fp16" if pick_device(args.device).type == "cuda" else "fp32"
    # -q: errors and warnings only, as in process, image, live and batch (it kept these lines)
    say = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr))
    say(f"training {name} on {args.data} at {args.size}px for {args.steps} steps (batch {args.batch_size})")
    resumed = _checkpoint_step(out) if args.resume else None
    if resumed is not None:  # else said nowhere: a resumed run looked like one started over
        say(f"resuming {out / 'last.pt'} at step {resumed} of {args.steps}: its weights, optimizer and data order")
    if val_set is not None:
        images = f"{len(val_set)} image{'s' if len(val_set) != 1 else ''}"
        where = f"{args.val} ({images})" if args.val is not None else f"{images} held out of {args.data}"
        epoch = -(-len(dataset) // args.batch_size)  # the trainer's epoch: every training item (flips too) once
        say(f"validating on {where} after each epoch ({epoch} steps) and at the end")
    with _our_warnings_as_cli_lines(), _out_of_memory_said(args, precision, out):
        result = train(
            model, dataset, steps=args.steps, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
            device=args.device, precision=precision, checkpoint_dir=out, resume=args.resume, seed=args.seed,
            warmup_steps=args.warmup_steps, checkpoint_every=args.checkpoint_every, weights_path=out / "model.safetensors",
            half=args.half, metadata={"backbone": model.backbone_name, "resolution": f"{args.size}x{args.size}", "data": str(args.data), "seed": str(args.seed)},
            show_progress=False if args.quiet else None, val_dataset=val_set, val_fraction=args.val_fraction,
            progress=None if args.quiet or sys.stderr.isatty() else _print_every(10),
        )  # fmt: skip
    if result.losses:
        say(f"wrote {result.weights} (step {result.step}, final loss {result.losses[-1]:.4f})")
    else:  # "nothing to do" was said while the weights were written again (a run killed before writing them)
        say(f"already at step {result.step}: wrote {result.weights} from {out / 'last.pt'}")
    if result.best is not None and result.best_path is not None:
        say(f"best validation IoU {result.best['iou']:.4f} (MAE {result.best['mae']:.4f}) at step {int(result.best['step'])}: "
            f"{result.best_path}; run it with --weights {result.best_path}")  # fmt: skip
    return 0


@contextlib.contextmanager
def _out_of_memory_said(args: argparse.Namespace, precision: str, out: Path) -> Iterator[None]:
    """The device out of memory (the model's move to it, a step's activations) as one line with what makes training
    fit, exit 2: it was torch's traceback, exit 1, as process's and image's were before they said it."""
    from ..backends.memory import is_out_of_memory, memory_said
    from ..errors import option
    from ..runtime.device import pick_device
    from ..runtime.segmenter import DeviceOutOfMemory

    try:
        yield
    except Exception as exc:
        if isinstance(exc, DeviceOutOfMemory) or not is_out_of_memory(exc):
            raise
        device = pick_device(args.device)
        fixes = ([option("batch_size", 2)] if args.batch_size > 2 else []) + [f"a smaller {option('size')}"]
        if precision == "fp32" and device.type == "cuda":
            fixes.append(option("precision", "fp16"))
        # a resume refuses another batch size (each step's batch depends on it): said, lest the advice contradict it
        kept = (f"; {out / 'last.pt'} is kept: {option('resume', True)} goes on from it, at the same {option('batch_size')}"
                if (out / "last.pt").exists() else "")  # fmt: skip
        raise DeviceOutOfMemory(f"{device} ran out of memory training at {args.size}px, {args.batch_size} images a step "
                                f"({memory_said(exc)}); try {', '.join(fixes[:-1]) + ' or ' if len(fixes) > 1 else ''}{fixes[-1]}"
                                f"{kept}") from exc  # fmt: skip


@contextlib.contextmanager
def _our_warnings_as_cli_lines() -> Iterator[None]:
    """birefvid's own warnings (fp16 asked for on the CPU) as ``birefvid: warning: ...`` lines, as its logged
    ones are: Python's form named a source file and line, and read as a bug report."""
    import logging
    import sys
    import warnings

    shown = warnings.showwarning
    package = str(Path(__file__).resolve().parents[1])

    def raised_here() -> str:
        """The file of the code that called ``warnings.warn``: the warning's own ``filename`` is the line it names,
        which for birefvid's (``caller_level``) is the caller's, outside the package."""
        frame = sys._getframe(2)
        while frame is not None and frame.f_code.co_filename == warnings.__file__:
            frame = frame.f_back
        return frame.f_code.co_filename if frame is not None else ""

    def show(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        if str(filename).startswith(package) or raised_here().startswith(package):
            logging.getLogger("birefvid.train").warning("%s", message)
        else:
            shown(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _validation_folder(folder: str, size: int) -> "torch.utils.data.Dataset":
    """The --val folder as a dataset at the training size, unflipped; its errors name --val."""
    from ..data import FolderDataset
    from ..errors import DataError

    try:
        return FolderDataset(folder, size, flip=False)
    except DataError as exc:
        raise DataError(f"--val: {exc}") from exc


def _warn_shared_images(train_set: object, val_set: object) -> None:
    """Warn when --val holds pictures the model trains on: their scores cannot show overfitting."""
    train_pairs, val_pairs = getattr(train_set, "pairs", None), getattr(val_set, "pairs", None)
    if not train_pairs or not val_pairs:  # generated scenes share no files with a folder
        return
    trained = {p.image.resolve() for p in train_pairs}
    shared = [p.image for p in val_pairs if p.image.resolve() in trained]
    if shared:
        print(f"birefvid: warning: {len(shared)} of the {len(val_pairs)} --val images are training images too (e.g. {shared[0]}): "
              "their scores cannot show overfitting; hold out other images, or use --val-fraction", file=sys.stderr)  # fmt: skip


def _check_numbers(args: argparse.Namespace) -> None:
    """ConfigError naming the flag for a number out of range, before any data is read or model built."""
    from ..errors import ConfigError

    if args.size % 32 or args.size < 64:
        raise ConfigError(f"--size {args.size} must be a multiple of 32 and at least 64")
    if args.batch_size < 2:
        raise ConfigError("--batch-size must be at least 2 (BiRefNet's BatchNorm layers need two samples in training)")
    for flag, value, least in (("--steps", args.steps, 1), ("--checkpoint-every", args.checkpoint_every, 1),
                               ("--scenes", args.scenes, 1), ("--warmup-steps", args.warmup_steps, 0)):  # fmt: skip
        if value is not None and value < least:
            raise ConfigError(f"{flag} must be at least {least}, got {value}")
    if not 0 < args.lr < math.inf:  # inf trained a step of NaN weights and wrote them as the model
        raise ConfigError(f"--lr must be above 0 and finite (e.g. 1e-4), got {args.lr}")
    if not 0 <= args.weight_decay < math.inf:
        raise ConfigError(f"--weight-decay must be 0 or more and finite (e.g. 0.01), got {args.weight_decay}")
    if not 0 <= args.seed < 2**64:  # a negative one ended in numpy's traceback, after the run folder was made
        raise ConfigError(f"--seed must be a whole number from 0 to 2**64-1, got {args.seed}")
    if args.init and args.backbone:  # it was ignored without a word
        raise ConfigError(f"--backbone {args.backbone} is for a model trained from scratch; --init {args.init}'s weights set the backbone")
    if args.val_fraction is not None:
        if not 0 < args.val_fraction < 1:
            raise ConfigError(f"--val-fraction must be between 0 and 1 (0.1 holds out a tenth), got {args.val_fraction}")
        if args.data == "scenes":
            raise ConfigError("--val-fraction holds out images of a --data folder; with --data scenes give --val DIR")


def _checkpoint_step(folder: Path) -> "int | None":
    """The step ``folder``'s last.pt reached, read without loading its tensors (mapped, not read); None when there
    is none or it cannot be read (the trainer then says why)."""
    import torch

    from ..train.checkpoints import CHECKPOINT_NAME

    path = folder / CHECKPOINT_NAME
    if not path.exists():
        return None
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["step"])
    except Exception:  # any unreadable checkpoint: train() reports it in one line
        return None


def _check_no_run(folder: Path, resume: bool) -> None:
    """ConfigError, before anything is loaded, when ``folder`` holds a run and --resume is missing."""
    from ..errors import ConfigError
    from ..train.checkpoints import CHECKPOINT_NAME

    if not resume and (folder / CHECKPOINT_NAME).exists():
        raise ConfigError(f"{folder / CHECKPOINT_NAME} exists; pass --resume to continue it, or choose another -o folder")


def _make_run_folder(folder: Path) -> Path:
    """Create the run folder; SinkError in one line when it cannot be (a file there, no permission) or cannot be
    written (read-only, a read-only mount): said now, not at the first checkpoint, after the steps before it."""
    import os

    from ..errors import SinkError

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SinkError(f"cannot create the run folder {folder} ({exc.strerror or exc}); choose another -o folder") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SinkError(f"the run folder {folder} is not writable; choose another -o folder")
    return folder


def _initial_model(init: str) -> "tuple[torch.nn.Module, str]":
    """The --init model in training mode and its display name: a checkpoint file or a registry name."""
    from ..errors import options_named
    from ..models.weights import load_pretrained

    path = Path(init)
    is_file = path.exists() or path.suffix.lower() in WEIGHTS_SUFFIXES  # a missing file is "not found", not "unknown model"
    with options_named(weights="init", model="init"):  # the loaders' hints name the flag train has
        model, _, name = load_pretrained(None if is_file else init, weights=init if is_file else None)
    return model.train(), name


def _print_every(n: int):
    """Plain progress lines for logs and CI (a terminal gets the trainer's tqdm bar instead): the run's first step
    (its s/step and ETA, not minutes of silence on a slow CPU), then every ``n`` and the last."""
    first = True

    def report(p) -> None:
        nonlocal first
        if first or p.step % n == 0 or p.step == p.steps:
            first = False
            eta = int(p.eta_seconds)
            print(f"step {p.step}/{p.steps} loss {p.loss:.4f} lr {p.lr:.2e} {p.seconds_per_step:.2f}s/step "
                  f"ETA {eta // 3600}:{eta % 3600 // 60:02d}:{eta % 60:02d}", file=sys.stderr, flush=True)  # fmt: skip
        if p.validation is not None:
            print(p.validation.describe(p.steps), file=sys.stderr, flush=True)

    return report

