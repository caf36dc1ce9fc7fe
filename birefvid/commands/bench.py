"""``birefvid bench``: how fast this machine runs a model, against the eager fp32 reference, and end to end."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from typing import Any

from ..job import BACKBONE_NAMES, BACKENDS, OUTPUT_KINDS, PRECISIONS, output_kind

MIN_CLIP_SIDE, MAX_CLIP_SIDE = 16, 16384  # the scene generator's least side; x264's largest

HELP = "measure model-only and end-to-end speed (and accuracy against eager fp32) on this machine"


def register(parser: argparse.ArgumentParser) -> None:
    model = parser.add_argument_group("model")
    model.add_argument("--model", help="registry name or Hugging Face repo (default: deterministic test weights for --backbone)")
    model.add_argument("--weights", help="a local checkpoint instead of --model")
    model.add_argument("--backbone", choices=BACKBONE_NAMES, metavar="NAME",  # the choices in the usage passed 80 columns
                       help=f"backbone ({', '.join(BACKBONE_NAMES)}); alone, benchmarks it with deterministic test weights")
    model.add_argument("--resolution", help="inference size N or WxH (default: the model's own, as process runs it; 512 for --backbone's test weights)")
    model.add_argument("--batch-size", type=int, help="frames per model call (default: what process picks: 4 on CUDA, 2 with OpenVINO on a CPU of 2+ cores, else 1)")
    model.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    model.add_argument("--precision", default="auto", choices=PRECISIONS, help="precision of the measured path (default auto)")
    model.add_argument("--backend", default="auto", choices=BACKENDS, metavar="NAME", help=f"engine of the measured path: {', '.join(BACKENDS)} (default auto)")
    run = parser.add_argument_group("run")
    run.add_argument("--runs", type=int, default=3, help="timed model calls per path, alternating between the paths; the median counts (default 3)")
    run.add_argument("--clip-size", default="1280x720", help="end-to-end clip size WxH (default 1280x720)")
    run.add_argument("--clip-frames", type=int, default=16, help="end-to-end clip length; 0 skips the end-to-end run (default 16)")
    run.add_argument("--output", choices=OUTPUT_KINDS, type=output_kind, default="alpha", metavar="KIND",  # the choices in the usage passed 80 columns
                     help=f"end-to-end output kind: {', '.join(OUTPUT_KINDS)} (default alpha)")
    run.add_argument("--json", dest="json_path", help="also write the figures as JSON to this file ('-': print JSON instead of the table)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress lines: the table (or JSON) alone, errors and warnings")
    parser.set_defaults(run=run_bench)


def _check(args: argparse.Namespace) -> tuple[int, int]:
    from ..errors import ConfigError, option
    from ..job import parse_resolution

    if not (args.model or args.weights or args.backbone):
        raise ConfigError(f"say what to benchmark: {option('model')} NAME, {option('weights')} FILE or {option('backbone')} NAME")
    if args.model and args.weights:
        raise ConfigError(f"use either {option('model')} or {option('weights')}, not both")
    if args.output == "composite":
        raise ConfigError(f"{option('output', 'composite')} needs a background; benchmark alpha, mask, foreground, green, blur or overlay")
    for name in ("batch_size", "runs"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ConfigError(f"{option(name)} must be at least 1")
    if args.clip_frames < 0:
        raise ConfigError(f"{option('clip_frames')} must be 0 (no end-to-end run) or more")
    try:
        width, height = (int(v) for v in args.clip_size.lower().split("x"))
    except ValueError:
        raise ConfigError(f"{option('clip_size')} must be WxH, e.g. 1280x720, got {args.clip_size!r}") from None
    if not (MIN_CLIP_SIDE <= width <= MAX_CLIP_SIDE and MIN_CLIP_SIDE <= height <= MAX_CLIP_SIDE):  # 0x0 was a traceback, after the model timing
        raise ConfigError(f"{option('clip_size')} {width}x{height}: each side must be {MIN_CLIP_SIDE} to {MAX_CLIP_SIDE} pixels (e.g. 1280x720)")
    if args.resolution is not None:
        parse_resolution(args.resolution)
    from ..runtime.device import pick_device

    pick_device(args.device)  # before the weights: a missing GPU was said only after a 900 MB download
    if args.json_path and args.json_path != "-":  # before the benchmark, not after minutes of it
        from ..file_names import leads_to_standard_output
        from ..io.atomic import check_output_file, check_report_replaces_nothing
        from ..job import ModelSpec

        if leads_to_standard_output(args.json_path):  # `--json /dev/stdout | jq`: the table, then the JSON; `> b.json`:
            # the figures renamed onto the file standard output writes, the table lost with the old one
            raise ConfigError(f"{option('json')} {args.json_path} is where standard output goes, and bench prints its table there; "
                              f"use {option('json')} - for the JSON alone, or name another file")
        check_output_file(args.json_path, option("json"))
        check_report_replaces_nothing(args.json_path, option("json"), ModelSpec(args.model, args.weights).local_files())  # the figures replaced the checkpoint
    return width, height


def _load(args: argparse.Namespace) -> tuple[Any, tuple[int, int], str]:
    """(fp32 model on the CPU, its native inference size (height, width), display name)."""
    if args.model or args.weights:
        from ..models.weights import load_pretrained

        return load_pretrained(args.model, weights=args.weights, backbone=args.backbone)
    from ..models.test_weights import model_with_test_weights

    return model_with_test_weights(args.backbone), (512, 512), f"{args.backbone} (test weights)"


def run_bench(args: argparse.Namespace) -> int:
    clip_size = _check(args)
    import copy

    import torch

    from ..benchmark import measure_model, measure_pipeline
    from ..benchmark.clip import scene_frames
    from ..benchmark.memory import peak_rss_mb
    from ..runtime.segmenter import Segmenter

    net, native, name = _load(args)
    reference = copy.deepcopy(net)  # fp32, before an engine casts or exports the model
    resolution = args.resolution or native  # the size process would run (tiny: 256, general: 1024)
    seg = Segmenter(module=net, device=args.device, precision=args.precision, backend=args.backend, resolution=resolution)
    seg.name = name
    batch = args.batch_size or seg.file_batch_size(clip_size[1], clip_size[0])  # as process runs it
    frames = scene_frames(batch, clip_size)
    figures: dict[str, Any] = {
        "model": name, "backbone": seg.backbone, "resolution": list(seg.resolution), "batch_size": batch,
        "device": str(seg.device), "backend": seg.backend, "precision": seg.precision,
    }  # fmt: skip
    # the table comes at the end, minutes later on a CPU: say what is being timed meanwhile
    say = (lambda line: None) if args.quiet else _progress
    say(f"timing {name} at {seg.resolution[0]}x{seg.resolution[1]} ({seg.backend} {seg.precision}) and the eager fp32 reference, {args.runs} run{'' if args.runs == 1 else 's'} each")
    figures.update(measure_model(seg, reference, frames, args.runs))
    del reference
    if args.clip_frames > 0:
        say(f"end to end: {args.output} of a generated {args.clip_frames}-frame {clip_size[0]}x{clip_size[1]} clip")
        pipeline = measure_pipeline(seg, args.clip_frames, clip_size, kind=args.output, batch_size=batch)
        pipeline["ratio_to_model"] = round(pipeline["fps"] / figures["fps"], 3) if pipeline["fps"] else None
        figures["pipeline"] = pipeline
    figures["peak_rss_mb"] = peak_rss_mb()  # None where the system does not say (Windows)
    if seg.device.type == "cuda":
        figures["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated(seg.device) / 2**20)
    figures["machine"] = _machine(seg.device)
    if args.json_path == "-":  # as `eval --json -`: JSON alone on standard output; it wrote a file named "-"
        print(json.dumps(figures, indent=2))
        return 0
    print(_table(figures))
    if args.json_path:
        _write_json(args.json_path, figures)
    return 0


def _progress(line: str) -> None:
    print(f"bench: {line} ...", file=sys.stderr, flush=True)


def _write_json(path: str, figures: dict[str, Any]) -> None:
    """The figures as JSON, whole or not at all; a disk that filled up meanwhile is one line, not a traceback."""
    from ..io.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(figures, indent=2) + "\n", "--json")


def _machine(device: Any) -> dict[str, Any]:
    import os

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    for module in ("openvino", "onnxruntime"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            pass
    return info


def _prepared(backend: str) -> str:
    """How the path's one-off preparation is described: an export is cached on disk, a torch.compile is not."""
    return "compiled" if backend == "torch-compile" else "exported, cached"


def _table(f: dict[str, Any]) -> str:
    rows = [
        ("model", f"{f['model']} at {f['resolution'][0]}x{f['resolution'][1]}, batch {f['batch_size']}, {f['device']}"),
        ("path", f"{f['backend']} {f['precision']}" + (f" ({_prepared(f['backend'])} in {f['export_seconds']} s)" if f["export_seconds"] else "")),
        ("reference (eager fp32)", f"{f['reference_fps']:.3f} frames/s ({f['reference_gflops_achieved']} GFLOP/s)"),
        ("this path", f"{f['fps']:.3f} frames/s ({f['gflops_achieved']} GFLOP/s)"),
        ("speedup", f"{f['speedup']:.2f}x"),
        ("alpha vs reference", f"max {f['max_abs_diff']:.2e}, mean {f['mean_abs_diff']:.2e}"),
        ("GFLOP per frame", f"{f['gflop_per_frame']}"),
    ]
    if "pipeline" in f:
        p = f["pipeline"]
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in p["stage_seconds"].items())
        rows.append(("end to end", f"{p['fps']:.3f} frames/s on a {p['clip']} clip ({p['frames']} frames, {p['output']}): {p['ratio_to_model']}x the model"))
        rows.append(("stages (busy)", stages))
        per_frame = ", ".join(f"{k} {1000 * v / max(1, p['frames']):.1f} ms" for k, v in p["stage_cpu_seconds"].items())
        rows.append(("stages (CPU a frame)", per_frame + " (each stage's own thread)"))
    rss = "unknown RSS (not reported here)" if f["peak_rss_mb"] is None else f"{f['peak_rss_mb']} MiB RSS"
    rows.append(("peak memory", rss + (f", {f['cuda_peak_mb']} MiB CUDA" if "cuda_peak_mb" in f else "")))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
