"""Command-line options several commands share, and the job parts they build.

Lives apart from ``cli.py`` so that commands import it without importing the CLI (no cycle),
and imports nothing heavy, so ``birefvid --help`` and argument errors answer at once.
"""

from __future__ import annotations

import argparse

from ..job import PRECISIONS, SMOOTH_KINDS, InferenceSpec, ModelSpec


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--model/--weights/--backbone and the inference options every command that runs the model shares."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=None, help="registry name (see `birefvid models`) or a Hugging Face repo owner/name (default: general)")
    group.add_argument("--weights", default=None, help="a local checkpoint (.pth or .safetensors) instead of --model")
    group.add_argument("--backbone", default=None, help="backbone of --weights (detected from the file when omitted)")
    group.add_argument("--resolution", default=None, help="inference size N or WxH, multiples of 32 (default: the model's native size)")
    group.add_argument("--keep-aspect", action="store_true", help="keep each frame's aspect ratio at inference (sides rounded to multiples of 32)")
    group.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    group.add_argument("--precision", default="auto", choices=PRECISIONS, help="default: fp16 on CUDA, fp32 elsewhere")


def add_smoothing_options(parser: argparse.ArgumentParser, default: str) -> None:
    """--smooth and --smooth-window."""
    group = parser.add_argument_group("smoothing")
    group.add_argument("--smooth", choices=SMOOTH_KINDS, default=default, help=f"temporal mask smoothing: lookahead (±window frames, aligned along optical flow), flow, ema or none (default {default})")
    group.add_argument("--smooth-window", type=int, default=2, help="for lookahead: frames on each side (default 2)")


def model_spec(args: argparse.Namespace) -> ModelSpec:
    """The model part of a job, from the shared options."""
    return ModelSpec(args.model, args.weights, args.backbone)


def inference_spec(args: argparse.Namespace) -> InferenceSpec:
    """The inference part of a job, from the shared options (batch size where the command has one)."""
    return InferenceSpec(args.device, args.precision, args.resolution, args.keep_aspect, getattr(args, "batch_size", None))
