"""Command-line options several commands share, and the job parts they build.

Lives apart from ``cli.py`` so that commands import it without importing the CLI (no cycle),
and imports nothing heavy, so ``birefvid --help`` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import logging
from fractions import Fraction

from ..job import BACKENDS, BLUR_SIGMA, DECODERS, INPUT_COLORS, KEY_COLOR, MAX_SMOOTH_WINDOW, OUTPUT_KINDS, OVERLAY_COLOR, OVERLAY_OPACITY, PRECISIONS, SMOOTH_KINDS, FileJob, InferenceSpec, ModelSpec, output_kind

log = logging.getLogger(__name__)


def add_model_options(parser: argparse.ArgumentParser, resolution_default: str = "the model's native size", runs: bool = True) -> None:
    """--model/--weights/--backbone and the inference options every command that runs the model shares.

    ``runs`` False (export, which runs nothing): --keep-aspect, --device, --precision and --backend are parsed, so a
    refusal can say why, but left out of --help, which offered "fp16 on CUDA" for a file that is always fp32."""
    group = parser.add_argument_group("model")
    shown = (lambda text: text) if runs else (lambda text: argparse.SUPPRESS)
    group.add_argument("--model", default=None, help="registry name (see `birefvid models`) or a Hugging Face repo owner/name (default: general)")
    group.add_argument("--weights", default=None, help="a local checkpoint (.pth or .safetensors, or a Hugging Face snapshot folder) instead of --model")
    group.add_argument("--backbone", default=None, help="backbone of --weights (detected from the file when omitted)")
    group.add_argument("--resolution", default=None, help=f"inference size N or WxH, multiples of 32 (default: {resolution_default})")
    group.add_argument("--keep-aspect", action="store_true", help=shown("keep each frame's aspect ratio at inference (sides rounded to multiples of 32)"))
    group.add_argument("--device", default="auto", help=shown("auto, cpu, cuda, cuda:N or mps (default: auto)"))
    group.add_argument("--precision", default="auto", choices=PRECISIONS, help=shown("default: fp16 on CUDA; on CPU bf16 where the CPU has bf16 instructions, else fp32"))
    group.add_argument("--backend", default="auto", choices=BACKENDS, metavar="NAME",  # the choices in the usage passed 80 columns
                       help=shown(f"inference engine: {', '.join(BACKENDS)} (default auto: openvino on x86 CPUs, torch elsewhere)"))


def add_smoothing_options(parser: argparse.ArgumentParser, default: str) -> None:
    """--smooth and --smooth-window."""
    group = parser.add_argument_group("smoothing")
    group.add_argument("--smooth", choices=SMOOTH_KINDS, default=default, help=f"temporal mask smoothing: lookahead (±window frames, aligned along optical flow), flow, ema or none (default {default})")
    group.add_argument("--smooth-window", type=int, help=f"for lookahead: frames on each side, 0 to {MAX_SMOOTH_WINDOW} (default {SMOOTH_WINDOW})")


def add_matte_options(parser: argparse.ArgumentParser) -> None:
    """--min-area, --threshold, --grow/--shrink, --feather and --invert: shaping the matte at the output's size, in that order."""
    group = parser.add_argument_group("matte (applied in this order, in the output's pixels)")
    group.add_argument("--min-area", type=float, default=0.0, metavar="PCT", help="drop separate parts of the subject smaller than "
                       "PCT percent of the picture: stray blobs the model took for subject (e.g. 1)")  # fmt: skip
    group.add_argument("--threshold", type=float, metavar="T", help="hard edge: alpha >= T becomes opaque, below it transparent (e.g. 0.5)")
    sizes = group.add_mutually_exclusive_group()
    sizes.add_argument("--grow", type=int, default=0, metavar="PX", help="move the subject's edge out by PX pixels")
    sizes.add_argument("--shrink", type=int, default=0, metavar="PX", help="move the subject's edge in by PX pixels: cuts off a rim (halo) of the old background")
    group.add_argument("--feather", type=float, default=0.0, metavar="PX", help="soften the edge over about PX pixels")
    group.add_argument("--invert", action="store_true", help="swap subject and background: keep the background, cut the subject out")
    group.add_argument("--upsample", choices=("bilinear", "guided"), default="bilinear",
                       help="how the model's matte is brought to the frame's size: bilinear (default) or guided, "
                            "its edge fitted to the picture's (sharper edges on frames larger than the inference size)")  # fmt: skip


SMOOTH_WINDOW = 2
# the options that apply to one --output (or --smooth) only, with their defaults: given with another they were ignored without a word
_ONLY_FOR = {"key_color": ("output", "green", KEY_COLOR), "blur_sigma": ("output", "blur", BLUR_SIGMA), "smooth_window": ("smooth", "lookahead", SMOOTH_WINDOW),
             "overlay_color": ("output", "overlay", OVERLAY_COLOR), "overlay_opacity": ("output", "overlay", OVERLAY_OPACITY)}  # fmt: skip


def only_for(args: argparse.Namespace, name: str) -> object:
    """The value of ``--key-color``, ``--blur-sigma``, ``--overlay-color``, ``--overlay-opacity`` or ``--smooth-window`` (its default when not given); ConfigError
    when it is given beside an ``--output`` or ``--smooth`` that does not use it."""
    from ..errors import ConfigError, option

    which, wanted, default = _ONLY_FOR[name]
    value = getattr(args, name)
    if value is None:
        return default
    if which == "output" and wanted in output_kinds(args):
        return value
    if getattr(args, which) != wanted:
        used = option("kind", wanted) if which == "output" else f"{option('smooth')} {wanted}"
        # process: an extra output of that kind would use it too
        also = f" or {option('also')} {wanted}=PATH" if which == "output" and hasattr(args, "also") else ""
        raise ConfigError(f"{option(name)} is only used with {used}{also}, not {option(which)} {getattr(args, which)}")
    return value


# the outputs that estimate no foreground colours, and why
_NO_ESTIMATE = {"mask": "the matte alone", "overlay": "which shows the picture's own colours"}


def foreground_wanted(args: argparse.Namespace) -> bool:
    """Whether foreground colours are estimated (not ``--no-foreground``); ConfigError for ``--no-foreground`` beside
    ``--output mask`` (the matte alone) or ``overlay`` (the picture as it is), with no colours to estimate: it was ignored without a word."""
    from ..errors import ConfigError, option

    kinds = output_kinds(args)
    if args.no_foreground and kinds <= set(_NO_ESTIMATE):
        kind = sorted(kinds)[0]
        raise ConfigError(f"{option('foreground', False)} is only used with an output in colour (the cut-out, foreground, green, composite, blur), "
                          f"not {option('kind', kind)}, {_NO_ESTIMATE[kind]}")  # fmt: skip
    return not args.no_foreground


def output_kinds(args: argparse.Namespace) -> set[str]:
    """The kinds of every output the arguments ask for: ``--output``'s and those of ``process --also KIND=PATH``."""
    from ..job import parse_also

    return {args.output, *(parse_also(text)[0] for text in getattr(args, "also", None) or ())}


def matte_options(args: argparse.Namespace) -> dict[str, object]:
    """The matte keywords of ``build_file_job`` / ``build_live_job`` (``MatteSpec``'s fields) from the options."""
    from ..errors import ConfigError

    for name in ("grow", "shrink"):
        if getattr(args, name) < 0:
            raise ConfigError(f"--{name} takes a number of pixels >= 0, got {getattr(args, name)}; "
                              f"use --{'shrink' if name == 'grow' else 'grow'} for the other way")  # fmt: skip
    return {"threshold": args.threshold, "grow": args.grow - args.shrink, "feather": args.feather, "invert": args.invert,
            "min_area": args.min_area, "upsample": args.upsample}


def model_spec(args: argparse.Namespace) -> ModelSpec:
    """The model part of a job, from the shared options."""
    return ModelSpec(args.model, args.weights, args.backbone)


def inference_spec(args: argparse.Namespace) -> InferenceSpec:
    """The inference part of a job, from the shared options (batch size where the command has one)."""
    return InferenceSpec(args.device, args.precision, args.resolution, args.keep_aspect, getattr(args, "batch_size", None), args.backend)


def add_overlay_options(group: "argparse._ArgumentGroup | argparse.ArgumentParser") -> None:
    """--overlay-color and --overlay-opacity: the tint of ``--output overlay`` (process, batch and image)."""
    group.add_argument("--overlay-color", metavar="COLOR", help=f"for --output overlay: the tint and outline colour (default {OVERLAY_COLOR})")
    group.add_argument("--overlay-opacity", type=opacity_arg, metavar="O", help="for --output overlay: the tint's strength, 0 (the outline "
                       f"alone) to 1, or a percentage (50%%) (default {OVERLAY_OPACITY:g})")  # fmt: skip


def opacity_arg(text: str) -> float:
    """``--overlay-opacity``: a fraction (0.5) or a percentage (50%), as editors write opacity; the range is the job's check."""
    number = text.strip()
    try:
        return float(number[:-1]) / 100 if number.endswith("%") else float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction from 0 to 1 (0.5) or a percentage (50%), got {text!r}") from None


def add_file_job_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The options of a file job (output kind, compositing, smoothing, encoding, decoding) that
    ``process`` and ``batch`` share; returns the "run" group for command-specific run options."""
    parser.add_argument("--output", choices=OUTPUT_KINDS, type=output_kind, default="alpha", metavar="KIND",  # the choices in the usage passed 80 columns
                        help=f"what to write: {', '.join(OUTPUT_KINDS)} (default: alpha; fgr: foreground; "
                             "overlay: the picture with the subject tinted and outlined, to check the matte)")  # fmt: skip
    out = parser.add_argument_group("output")
    out.add_argument("--background", help="for --output composite: a colour (#rrggbb, name, r,g,b), an image or a video (looped)")
    out.add_argument("--key-color", help=f"for --output green: the key colour (default {KEY_COLOR})")
    out.add_argument("--blur-sigma", type=float, help=f"for --output blur: background blur strength in pixels (default {BLUR_SIGMA:g})")
    add_overlay_options(out)
    out.add_argument("--no-foreground", action="store_true", help="skip foreground colour estimation at soft edges")
    add_matte_options(parser)
    add_smoothing_options(parser, default="lookahead")
    enc = parser.add_argument_group("encoding")
    enc.add_argument("--codec", help="override the container's default codec (e.g. prores_ks, libvpx-vp9, ffv1, libx264, h264_nvenc)")
    enc.add_argument("--crf", type=int, help="constant quality: x264/x265 CRF 0-51, VP9 0-63, NVENC CQ 1-51, ProRes quantiser 1-64 (1 best; default 2); not with --bitrate")
    enc.add_argument("--preset", help="x264/x265 speed preset (default veryfast; medium makes smaller files, slower), NVENC p1-p7")
    enc.add_argument("--bitrate", help="target bitrate, e.g. 8M (instead of --crf)")
    enc.add_argument("--pix-fmt", help="override the pixel format (e.g. yuva444p10le)")
    enc.add_argument("--bit-depth", type=bit_depth_arg, default="auto", metavar="{auto,8,16}",
                     help="auto (default): a 10-bit or deeper input keeps its depth where the output holds it (ProRes, "
                          "FFV1, 16-bit PNG, x265 Main 10); 8: 8-bit pictures (faster); 16: composite at 16 bits from any input")  # fmt: skip
    enc.add_argument("--no-audio", action="store_true", help="drop the audio tracks")
    enc.add_argument("--no-subtitles", action="store_true", help="drop the subtitle tracks (kept by default where the container can hold them)")
    enc.add_argument("--overwrite", action="store_true", help="replace an existing output")
    run_group = parser.add_argument_group("run")
    run_group.add_argument("--decoder", choices=DECODERS, default="pyav", help="video decoder (default pyav)")
    run_group.add_argument("--fps", type=frame_rate_arg, help="frame rate of an image-sequence input (default 25; a video keeps its own; "
                           "e.g. 24000/1001, or 23.976, 29.97, 59.94: the NTSC rates)")  # fmt: skip
    run_group.add_argument("--max-size", type=int, metavar="PX", help="scale the video down so its longer side is at most PX "
                           "(aspect kept; e.g. 480 for a GIF); the model, compositing and encoder then work at that size")  # fmt: skip
    run_group.add_argument("--no-deinterlace", action="store_true", help="keep interlaced video's frames as decoded, combed "
                           "(by default frames flagged interlaced are deinterlaced with FFmpeg's bwdif, one frame per frame)")  # fmt: skip
    run_group.add_argument("--video-stream", type=int, metavar="N", help="of a file with several video streams, the N-th "
                           "(#N in the warning that names them, as ffmpeg -map 0:v:N counts) instead of the one ffmpeg would take")  # fmt: skip
    run_group.add_argument("--input-colors", choices=INPUT_COLORS, default="auto", help="the YUV matrix of a video that names none (most H.264 from plain ffmpeg or x264): auto (default) reads HD (1280 wide, or taller than 576) "
                           "as BT.709 and smaller as BT.601, as players show them; bt709 or bt601 when you know. A matrix the video names is kept")  # fmt: skip
    run_group.add_argument("--batch-size", type=int, help="frames per model call (default 4 on CUDA; 2 with OpenVINO on a CPU of 2+ cores, run side by side on two streams; else 1)")
    return run_group


def frame_rate_arg(text: str) -> float:
    """``--fps``: a number (25, 23.976) or a fraction as FFmpeg writes rates (24000/1001)."""
    try:
        return float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a frame rate such as 25, 23.976 or 24000/1001, got {text!r}") from None


def warn_fps_for_videos(args: argparse.Namespace, what: str) -> None:
    """Say that ``--fps`` does not re-time ``what`` (videos): taken for a frame-rate change, it was ignored without a word."""
    if args.fps is not None:
        log.warning("--fps sets an image sequence's frame rate: %s keeps its own timing (change a video's rate with "
                    "ffmpeg -i IN -r RATE OUT first)", what)  # fmt: skip


def is_video_file(path: str) -> bool:
    """True when ``path`` names a video file (by its extension), not an image sequence's folder or pattern."""
    import os

    from ..extensions import VIDEO_EXTENSIONS

    return os.path.isfile(path) and os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def bit_depth_arg(text: str) -> "str | int":
    """``--bit-depth``: auto, 8 or 16."""
    if text == "auto":
        return text
    if text in ("8", "16"):
        return int(text)
    raise argparse.ArgumentTypeError(f"expected auto, 8 or 16, got {text!r}")


def background_used(args: argparse.Namespace) -> None:
    """ConfigError for ``--background`` beside outputs that do not use it, naming both ways to use it where
    ``process --also`` is one, as ``only_for`` does (it named ``--output composite`` alone); other commands' builders
    refuse it themselves."""
    from ..errors import ConfigError, option

    if args.background is None or not hasattr(args, "also") or "composite" in output_kinds(args):
        return
    raise ConfigError(f"{option('background')} is only used with {option('kind', 'composite')} or {option('also')} composite=PATH, "
                      f"not {option('kind', args.output)}")  # fmt: skip


def file_job_from_args(args: argparse.Namespace, input: str, out: str) -> FileJob:
    """The ``FileJob`` for ``input`` -> ``out`` with the shared options, validated (``build_file_job``)."""
    from ..api import build_file_job

    background_used(args)
    return build_file_job(
        input, out, kind=args.output, model=args.model, weights=args.weights, backbone=args.backbone,
        device=args.device, precision=args.precision, resolution=args.resolution, keep_aspect=args.keep_aspect,
        backend=args.backend, background=args.background, key_color=only_for(args, "key_color"),
        blur_sigma=only_for(args, "blur_sigma"), overlay_color=only_for(args, "overlay_color"),
        overlay_opacity=only_for(args, "overlay_opacity"), foreground=foreground_wanted(args), smooth=args.smooth,
        smooth_window=only_for(args, "smooth_window"),
        batch_size=args.batch_size, codec=args.codec, crf=args.crf, bitrate=args.bitrate, pix_fmt=args.pix_fmt,
        preset=args.preset, audio=not args.no_audio, subtitles=not args.no_subtitles, overwrite=args.overwrite, decoder=args.decoder, fps=25.0 if args.fps is None else args.fps,
        start=getattr(args, "start", None), end=getattr(args, "end", None), max_size=args.max_size,
        deinterlace=not args.no_deinterlace, video_stream=args.video_stream, input_colors=args.input_colors, bit_depth=args.bit_depth, also=getattr(args, "also", None) or (), **matte_options(args),
    )  # fmt: skip
