"""``birefvid export``: BiRefNet to an ONNX file with standard operators only (no custom deformable-conv op)."""

from __future__ import annotations

import argparse
import sys

from .options import add_model_options

HELP = "export the model to ONNX (standard operators only) for ONNX Runtime, OpenVINO, TensorRT and others"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", nargs="?", help="the .onnx file to write")
    parser.add_argument("-o", "--out", dest="out", help="the .onnx file to write (as in the other commands)")
    parser.add_argument("--format", choices=["onnx"], default="onnx", help="export format (default onnx)")
    parser.add_argument("--batch-size", type=int, default=1, help="the exported model's fixed batch size (default 1)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    parser.add_argument("-q", "--quiet", action="store_true", help="no summary line (errors and warnings still shown)")
    add_model_options(parser, runs=False)  # the run options are refused (_refuse_run_options), so not offered
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from ..errors import ConfigError, SinkError, option
    from ..io.atomic import refuse_link_loop
    from ..job import parse_resolution

    if args.output is None and args.out is None:
        raise ConfigError("name the .onnx file to write: birefvid export model.onnx (or -o model.onnx)")
    if args.output is not None and args.out is not None:
        raise ConfigError(f"two outputs given ({args.output} and -o {args.out}); name the .onnx file once")
    out = Path(args.output or args.out)
    if out.suffix.lower() != ".onnx":
        raise ConfigError(f"the output must end in .onnx, got {out.name}")
    refuse_link_loop(out)  # before the export's minute, not a traceback after it
    if out.exists() and not args.overwrite:
        raise SinkError(f"output exists: {out} (use {option('overwrite', True)})")  # the words of every other command
    if not out.resolve().parent.is_dir():
        raise SinkError(f"output folder does not exist: {out.resolve().parent} (create it first)")
    if not os.access(out.resolve().parent, os.W_OK | os.X_OK):  # checked before the model loads and exports
        raise SinkError(f"output folder is not writable: {out.resolve().parent}")
    if args.batch_size < 1:
        raise ConfigError(f"{option('batch_size')} must be at least 1")
    _refuse_run_options(args)
    size = parse_resolution(args.resolution)

    from ..backends import export_file
    from ..models.weights import load_pretrained

    net, native, name = load_pretrained(args.model, weights=args.weights, backbone=args.backbone)
    width, height = size or native
    seconds = export_file(net, out, (height, width), args.batch_size, overwrite=args.overwrite)
    took = "from the export cache" if seconds is None else f"exported in {seconds:.0f} s"
    if args.quiet:  # as process -q and image -q: the file is the result
        return 0
    # a summary, on stderr as process's and image's: stdout is for what scripts read
    from ..file_names import one_line

    print(f"wrote {one_line(str(out))} ({out.stat().st_size / 1e6:.0f} MB): {name}, input 'x' float32 ({args.batch_size}, 3, {height}, {width}) "
          f"normalised with ImageNet mean/std, output 'logits' ({args.batch_size}, 1, {height}, {width}); {took}",
          file=sys.stderr)  # fmt: skip
    return 0


def _refuse_run_options(args: argparse.Namespace) -> None:
    """The model options that choose how a run computes do not shape the file: refused, not ignored
    (``--precision fp16`` wrote an fp32 model without a word, ``--device cuda`` exported on the CPU)."""
    from ..errors import ConfigError, option

    if args.precision not in ("auto", "fp32"):
        raise ConfigError(f"the export is always fp32, {option('precision', args.precision)} does not apply: the engine that "
                          "loads it picks its precision (TensorRT: trtexec --fp16)")  # fmt: skip
    if args.device not in ("auto", "cpu"):
        raise ConfigError(f"the export runs on the CPU and is the same file for every device: leave out {option('device', args.device)}")
    if args.backend != "auto":
        raise ConfigError(f"{option('backend', args.backend)} does not apply to export: it writes the ONNX file the openvino and onnxruntime backends run")
    if args.keep_aspect:
        raise ConfigError(f"an export has one fixed input size: give it as {option('resolution', 'WxH')} instead of {option('keep_aspect')}")
