"""``birefvid batch INPUTS... --output-dir DIR [--ray ADDRESS] [--watch]``: many videos, long ones in chunks, locally or on Ray;
with ``--watch``, a watch folder."""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError, option
from ..extensions import batch_extension
from ..job import ModelSpec, check_path_given, refuse_standard_streams
from ..batch import DEFAULT_SETTLE
from .options import add_file_job_options, add_model_options, file_job_from_args, warn_fps_for_videos

HELP = "process many videos into a folder, splitting long ones into chunks; locally, or on a Ray cluster (resumable)"

EXTENSIONS = (".mov", ".mkv", ".webm", ".mp4", ".m4v", ".gif", ".webp", ".apng", "png", "tif", "exr")


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="video files, or folders of video files")
    parser.add_argument("-r", "--recursive", action="store_true",
                        help="also take the videos in the folders' subfolders, at any depth; outputs mirror the subfolders under --output-dir")  # fmt: skip
    parser.add_argument("-o", "--output-dir", required=True, help="where the outputs go (-o as in the other commands): DIR/<input name><ext>, DIR/<subfolder>/<input name><ext> with --recursive (created when missing)")
    parser.add_argument("--ext", choices=EXTENSIONS, type=batch_extension, metavar="EXT",  # the choices are named below: listed in the usage they passed 80 columns
                        help=f"output container: {', '.join(EXTENSIONS)} (default by --output: alpha .mov, mask .mkv, others .mp4); "
                             "png, tif, exr: a folder of PNG, TIFF or OpenEXR frames each, as process -o writes them")
    run_group = add_file_job_options(parser)
    run_group.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    scale = parser.add_argument_group("scale-out")
    scale.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                       help="run on Ray: 'local' (a Ray instance on this machine; the default when ADDRESS is omitted), "
                            "'auto' (the cluster this machine belongs to) or ray://HOST:10001; without --ray, videos run here one after another")  # fmt: skip
    scale.add_argument("--workers", type=int, help="Ray workers, each with a loaded model (default: as many as the cluster's resources fit)")
    scale.add_argument("--cpus-per-worker", type=float, help="CPUs each Ray worker reserves (default 1; torch uses that many threads)")
    scale.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs each Ray worker reserves (default 0, or 1 with --device cuda; 1: one worker per GPU)")
    scale.add_argument("--chunk-frames", type=int, default=1500,
                       help="split videos longer than this into chunks of at least this many frames, at keyframes (default 1500; 0: never split)")  # fmt: skip
    scale.add_argument("--progress-json", help="append progress events (videos, chunks, frames, fps) as JSON lines to this file ('-': standard output, one object a line)")
    scale.add_argument("--progress-every", type=float, default=10.0, help="seconds between frame-count lines while chunks run (default 10)")
    watch = parser.add_argument_group("watch folder")
    watch.add_argument("--watch", action="store_true",
                       help="a watch folder: process the videos there, then keep watching the folders and process each new (or replaced) video "
                            "once it is complete; Ctrl-C stops")  # fmt: skip
    watch.add_argument("--settle", type=float, metavar="SECONDS",
                       help=f"with --watch: a file counts as complete once its size and time have not changed for this long (default {DEFAULT_SETTLE:g}; "
                            "more for network shares or exports that pause)")  # fmt: skip
    watch.add_argument("--watch-for", type=float, metavar="SECONDS", help="with --watch: stop watching after this long (for scripts; default: until stopped)")
    add_model_options(parser)
    parser.set_defaults(run=run)


def check_ray_address(address: str) -> None:
    """``local``, ``auto``, ``ray://HOST:PORT`` or ``HOST:PORT``; a file name here means ``--ray`` swallowed an input."""
    if address in ("local", "auto") or re.fullmatch(r"(ray://)?[\w.\-\[\]:]+:\d+", address):
        return
    raise ConfigError(f"--ray {address!r} is not a Ray address (local, auto, ray://HOST:10001 or HOST:6379); "
                      "to run locally on Ray write --ray local")  # fmt: skip


def check_ray_device(device: str, gpus_per_worker: float) -> None:
    """Refuse ``cuda:N`` past a Ray worker's own GPUs: Ray sets each worker's CUDA_VISIBLE_DEVICES to the
    GPUs it reserved, numbered from cuda:0 there, so cuda:1 on a one-GPU worker fails in every worker."""
    m = re.fullmatch(r"cuda:(\d+)", device.strip())
    visible = max(1, math.ceil(gpus_per_worker))  # a fraction of a GPU still shows the worker one
    if m and int(m.group(1)) >= visible:
        raise ConfigError(f"--device {device} with --ray: Ray gives each worker its own GPU{'s' if visible > 1 else ''}, "
                          f"numbered from cuda:0 there; use --device cuda (--gpus-per-worker sets how many)")  # fmt: skip


def check_model_here(args: argparse.Namespace) -> None:
    """The model, device, backend and precision refusals a local worker would make in its first chunk, made
    before the folder and its manifest: `--model nosuch` or `--precision fp16` with OpenVINO got process's one
    error line only after every video was probed, and a "batch stopped ...: a rerun of the same command resumes"."""
    from ..backends import choose_backend, choose_precision
    from ..models.weights import check_checkpoint, check_model_choice
    from ..runtime.device import pick_device

    check_model_choice(args.model, args.weights)
    check_checkpoint(args.model, args.weights, getattr(args, "backbone", None))  # a watch loads it only for its first video
    device = pick_device(args.device)  # --device cuda without CUDA
    logger = logging.getLogger("birefvid")
    level = logger.level
    logger.setLevel(logging.ERROR)  # its warnings (fp16 on a CPU) are the worker's to give, once
    try:
        choose_precision(args.precision, choose_backend(args.backend, device), device)
    finally:
        logger.setLevel(level)


def refuse_missing_input(inputs: list[str], output_dir: str) -> None:
    """SourceError 'input not found' where the run would raise it first: after ``check_not_pattern`` passes (the output
    folder is none of its patterns), ``expand_inputs``' first missing input with only video files before it (a folder
    is read, and may be warned of, a URL refused: it and those after it are left to the run). Light (no torch, PyAV):
    a mistyped name answers before 1.5-2.5 s of imports. The output folder's manifest is read first, as there: a link
    in a loop among the outputs it lists is that error, not the missing input."""
    from ..batch.manifest import earlier_outputs
    from ..errors import SinkError, SourceError, input_not_found
    from ..sequence_names import sequence_pattern
    from ..users import unreadable_line

    if not Path(output_dir).is_dir():
        try:
            if sequence_pattern(output_dir):
                return
        except SinkError:
            return
    earlier_outputs(Path(output_dir))  # expand_inputs' first step: it raises where an output listed is a link in a loop
    for text in inputs:
        p = Path(text)
        if "://" in text or unreadable_line(p) is not None or p.is_dir():
            return
        if not p.is_file():
            raise SourceError(input_not_found(p))


def check_watch(args: argparse.Namespace) -> None:
    """``--watch`` watches folders, and ``--settle`` and ``--watch-for`` need it: each mistake one line, before any work."""
    if not args.watch:
        if args.settle is not None or args.watch_for is not None:
            raise ConfigError("--settle and --watch-for need --watch")
        return
    # a mistyped folder is named as missing, as a batch names it, not as "not a folder", which sent users looking for a file
    missing = [i for i in args.inputs if not os.path.exists(i)]
    if missing:
        from ..errors import input_not_found

        said = input_not_found(missing[0])
        if said.startswith("input not found"):  # not a link in a loop, which says so
            said += " (--watch watches folders that exist: make it first)"
        raise ConfigError(said)
    files = [i for i in args.inputs if not Path(i).is_dir()]
    if files:
        raise ConfigError(f"--watch watches folders, and {files[0]} is not one: name the folder it is dropped into, or leave out --watch")
    if args.settle is not None and not 0 < args.settle < math.inf:
        raise ConfigError(f"--settle must be above 0 seconds, got {args.settle:g}")
    if args.watch_for is not None and not 0 < args.watch_for < math.inf:
        raise ConfigError(f"--watch-for must be above 0 seconds, got {args.watch_for:g}")


def run(args: argparse.Namespace) -> int:
    from ..io.atomic import check_output_file, check_report_replaces_nothing  # light: no torch or PyAV

    if args.chunk_frames < 0:
        raise ConfigError(f"--chunk-frames must be >= 0, got {args.chunk_frames}")
    if not args.progress_every > 0:
        raise ConfigError(f"--progress-every must be positive, got {args.progress_every}")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    if args.ray is not None:
        check_ray_address(args.ray)
        check_ray_device(args.device, args.gpus_per_worker)
    if args.ray is None and (args.workers is not None or args.cpus_per_worker is not None or args.gpus_per_worker):
        raise ConfigError("--workers, --cpus-per-worker and --gpus-per-worker need --ray")  # without it they were ignored
    if args.cpus_per_worker is not None and not 0 < args.cpus_per_worker < math.inf:  # 0 ended in a ZeroDivisionError
        raise ConfigError(f"--cpus-per-worker must be above 0 (e.g. 1 or 0.5), got {args.cpus_per_worker:g}")
    if not 0 <= args.gpus_per_worker < math.inf:
        raise ConfigError(f"--gpus-per-worker must be 0 or more (1: one worker per GPU), got {args.gpus_per_worker:g}")
    check_watch(args)
    if args.progress_json and args.progress_json != "-":  # "-": standard output
        check_output_file(args.progress_json, option("progress_json"))
        check_report_replaces_nothing(args.progress_json, option("progress_json"), [*args.inputs, args.background, *ModelSpec(args.model, args.weights).local_files()])  # its lines went onto a video
    for path, what in [(args.output_dir, "output"), *((i, "input") for i in args.inputs)]:
        check_path_given(path, what)  # "" meant the current folder
    refuse_standard_streams(args.inputs, args.output_dir, name="a folder (-o out/)")
    warn_fps_for_videos(args, "every video")  # batch takes videos only
    args.fps = None  # and so it is no part of the jobs: it dated a finished video, so a rerun without it was refused
    refuse_missing_input(args.inputs, args.output_dir)  # expand_inputs' first error, where it is a missing video
    # the batch machinery imports torch, PyAV and OpenCV (1.5-2.5 s): only now, so each mistyped option above (a bad
    # --ray address, --chunk-frames -1) is one line at once
    from ..batch.progress import BatchProgress
    from ..batch.runner import DEFAULT_EXT, check_background, check_not_pattern, check_output_format, check_distinct_outputs, check_name_lengths, executor_for, expand_inputs, output_for, prepare_output_dir, run_batch

    out_dir = Path(args.output_dir)
    check_not_pattern(args.output_dir)
    ext = args.ext or DEFAULT_EXT[args.output]
    inputs = expand_inputs(args.inputs, out_dir, recursive=args.recursive, allow_empty=args.watch)  # a watch may start on an empty folder
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--output-dir {out_dir} is a file, not a folder")
    outputs = [str(output_for(f.path, out_dir, ext, f.sub)) for f in inputs]
    check_name_lengths(outputs, [f.path for f in inputs])  # naming the input, before its job's own check names the output only
    jobs = [file_job_from_args(args, str(f.path), out) for f, out in zip(inputs, outputs)]  # every job checked before any work
    check_distinct_outputs([j.output.path for j in jobs], [j.source.input for j in jobs], out_dir)  # before the folder is made
    check_background(args.background)
    # every job writes the same container with the same options: checked before the folder is made, on a job of
    # an input to come when a watch starts on an empty folder
    template = jobs[0] if jobs else file_job_from_args(args, str(Path(args.inputs[0]) / "clip.mp4"), output_for(Path("clip.mp4"), out_dir, ext))
    check_output_format(template)
    if args.ray is not None:
        from ..batch.ray_executor import import_ray

        import_ray()  # a missing extra answers before anything is created
    else:
        check_model_here(args)
    prepare_output_dir(out_dir)
    if args.ray is not None and args.device.startswith("cuda") and not args.gpus_per_worker:
        args.gpus_per_worker = 1.0  # a worker told to use CUDA needs a GPU reserved, or Ray hides every GPU from it
    executor = executor_for(template, args.ray, workers=args.workers, cpus_per_worker=args.cpus_per_worker or 1.0, gpus_per_worker=args.gpus_per_worker)
    progress = BatchProgress(quiet=args.quiet, json_path=args.progress_json, every=args.progress_every, say_failures=args.watch)
    try:
        if args.watch:
            _watch(args, out_dir, ext, executor, progress)
        else:
            run_batch(jobs, out_dir, executor, progress, chunk_frames=args.chunk_frames or None)
    finally:
        progress.close()
    return 0


def _watch(args: argparse.Namespace, out_dir: Path, ext: str, executor: Callable[[], Any], progress: Any) -> None:
    """``--watch``: the videos in the folders, then each new one, with one executor (one model loaded) throughout."""
    from ..batch.runner import Found, check_name_lengths, output_for
    from ..batch.watch import watch_batch
    from ..job import FileJob

    def make_job(found: Found) -> FileJob:
        out = str(output_for(found.path, out_dir, ext, found.sub))
        check_name_lengths([out], [found.path])
        return file_job_from_args(args, str(found.path), out)

    watch_batch([Path(i) for i in args.inputs], out_dir, make_job, executor, progress, recursive=args.recursive,
                chunk_frames=args.chunk_frames or None, settle=DEFAULT_SETTLE if args.settle is None else args.settle, watch_for=args.watch_for)  # fmt: skip
