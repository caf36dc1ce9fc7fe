"""``birefvid process IN -o OUT --output KIND``: cut the subject out of a video file (or image sequence)."""

from __future__ import annotations

import argparse
import sys

from ..job import DECODERS, OUTPUT_KINDS, FileJob
from .options import add_model_options, add_smoothing_options
from .progress import FrameProgress

HELP = "cut the subject out of a video: alpha video, mask, greenscreen, composite or background blur"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="a video file, a folder of images, or a glob such as 'frames/*.png'")
    parser.add_argument("-o", "--out", required=True, help="output file (.mov .webm .mkv .mp4) or a folder for a PNG sequence")
    parser.add_argument("--output", choices=OUTPUT_KINDS, default="alpha", help="what to write (default: alpha)")
    out = parser.add_argument_group("output")
    out.add_argument("--background", help="for --output composite: a colour (#rrggbb, name, r,g,b), an image or a video (looped)")
    out.add_argument("--key-color", default="#00ff00", help="for --output green: the key colour (default #00ff00)")
    out.add_argument("--blur-sigma", type=float, default=16.0, help="for --output blur: background blur strength in pixels (default 16)")
    out.add_argument("--no-foreground", action="store_true", help="skip foreground colour estimation at soft edges")
    add_smoothing_options(parser, default="lookahead")
    enc = parser.add_argument_group("encoding")
    enc.add_argument("--codec", help="override the container's default codec (e.g. prores_ks, libvpx-vp9, ffv1, libx264, h264_nvenc)")
    enc.add_argument("--crf", type=int, help="constant-quality value for x264/VP9")
    enc.add_argument("--bitrate", help="target bitrate, e.g. 8M (instead of --crf)")
    enc.add_argument("--pix-fmt", help="override the pixel format (e.g. yuva444p10le)")
    enc.add_argument("--no-audio", action="store_true", help="drop the audio track")
    enc.add_argument("--overwrite", action="store_true", help="replace an existing output")
    run_group = parser.add_argument_group("run")
    run_group.add_argument("--decoder", choices=DECODERS, default="pyav", help="video decoder (default pyav)")
    run_group.add_argument("--fps", type=float, default=25.0, help="frame rate of an image-sequence input (default 25)")
    run_group.add_argument("--batch-size", type=int, help="frames per model call (default 4 on CUDA, 1 elsewhere)")
    run_group.add_argument("--report", help="write a JSON report (frames, wall time, per-stage time, the job)")
    run_group.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    add_model_options(parser)
    parser.set_defaults(run=run)


def job_from_args(args: argparse.Namespace) -> FileJob:
    """The job these arguments describe, validated (the same builder ``process_video`` uses)."""
    from ..api import build_file_job

    return build_file_job(
        args.input, args.out, kind=args.output, model=args.model, weights=args.weights, backbone=args.backbone,
        device=args.device, precision=args.precision, resolution=args.resolution, keep_aspect=args.keep_aspect,
        background=args.background, key_color=args.key_color, blur_sigma=args.blur_sigma,
        foreground=not args.no_foreground, smooth=args.smooth, smooth_window=args.smooth_window,
        batch_size=args.batch_size, codec=args.codec, crf=args.crf, bitrate=args.bitrate, pix_fmt=args.pix_fmt,
        audio=not args.no_audio, overwrite=args.overwrite, decoder=args.decoder, fps=args.fps,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from ..api import run_job

    job = job_from_args(args)
    progress = FrameProgress(quiet=args.quiet)
    try:
        report = run_job(job, progress=progress.advance, on_start=progress.start, report_path=args.report)
    finally:
        progress.close()
    if not args.quiet:
        print(f"wrote {report['output']}: {report['frames']} frames in {report['wall_seconds']:.1f} s ({report['fps']:.2f} fps)", file=sys.stderr)
    return 0
