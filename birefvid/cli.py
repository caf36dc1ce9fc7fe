"""The ``birefvid`` command: sub-commands, shared model options, and one-line errors.

Every ``BirefvidError`` becomes one line on stderr and exit code 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from .errors import BirefvidError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Options every command that runs the model shares."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=None, help="registry name (see `birefvid models`) or a Hugging Face repo owner/name (default: general)")
    group.add_argument("--weights", default=None, help="a local checkpoint (.pth or .safetensors) instead of --model")
    group.add_argument("--backbone", default=None, help="backbone of --weights (detected from the file when omitted)")
    group.add_argument("--resolution", default=None, help="inference size N or WxH, multiples of 32 (default: the model's native size)")
    group.add_argument("--keep-aspect", action="store_true", help="keep each frame's aspect ratio at inference (sides rounded to multiples of 32)")
    group.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    group.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"], help="default: fp16 on CUDA, fp32 elsewhere")


def check_model_args(args: argparse.Namespace) -> None:
    """Reject contradictory model options before any work."""
    from .errors import ConfigError

    if args.model and args.weights:
        raise ConfigError("use either --model or --weights, not both")


def segmenter_from_args(args: argparse.Namespace):
    """Build the Segmenter the shared model options describe."""
    from .runtime import Segmenter

    check_model_args(args)
    return Segmenter(
        args.model,
        weights=args.weights,
        backbone=args.backbone,
        device=args.device,
        precision=args.precision,
        resolution=args.resolution,
        keep_aspect=args.keep_aspect,
    )


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per command."""
    from .commands import COMMANDS

    parser = argparse.ArgumentParser(prog="birefvid", description="Cut subjects out of images and video with BiRefNet.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        module.register(sub.add_parser(name, help=module.HELP, description=module.HELP))
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``birefvid`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args) or 0)
    except BirefvidError as exc:
        print(f"birefvid: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("birefvid: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
