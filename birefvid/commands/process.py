"""``birefvid process IN -o OUT --output KIND``: cut the subject out of a video file (or image sequence)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..job import FileJob
from .options import add_file_job_options, add_model_options, file_job_from_args, is_video_file, warn_fps_for_videos
from .progress import FrameProgress

HELP = "cut the subject out of a video: alpha video, mask, foreground colours, greenscreen, composite or background blur"


def register(parser: argparse.ArgumentParser) -> None:
    # nargs="+" only to answer a glob the shell expanded (frames/*.png unquoted) with advice, not argparse's
    # "unrecognized arguments"
    parser.add_argument("input", nargs="+", help="a video file, a folder of images, or a glob such as 'frames/*.png'")
    parser.add_argument("-o", "--out", required=True, help="output file (.mov .webm .mkv .mp4, or .gif .webp .apng) or a folder for a PNG sequence")
    run_group = add_file_job_options(parser)
    parser.add_argument("--also", action="append", default=[], metavar="KIND=PATH",
                        help="one more output of the same run, e.g. mask=matte.mkv or green=preview.mp4 (repeatable): the model runs "
                             "once for all; the matte, smoothing and compositing options apply to each (--background to composite ones), "
                             "the encoder options (--codec, --crf, --bitrate, --pix-fmt, --preset) to -o only, the others get their "
                             "kind's default encoder")  # fmt: skip
    run_group.add_argument("--start", type=_time, help="process from this time on: seconds (12.5), MM:SS or HH:MM:SS[.ms] "
                           "from the first frame; the output starts at 0, its sound and subtitles with it")  # fmt: skip
    run_group.add_argument("--end", type=_time, help="stop before this time (same forms, counted from the first frame, not from --start)")
    run_group.add_argument("--report", help="write a JSON report (frames, wall time, per-stage time, the job); '-' prints it on standard output")
    run_group.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    add_model_options(parser)
    parser.set_defaults(run=run)


def _time(text: str) -> float:
    from ..io.times import parse_time  # not io.trim: argparse reads it, before any run needs torch

    try:
        return parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time; expected seconds (12.5), MM:SS or HH:MM:SS[.ms]") from None


def job_from_args(args: argparse.Namespace) -> FileJob:
    """The job these arguments describe, validated (the same builder ``process_video`` uses)."""
    from ..errors import ConfigError

    if len(args.input) > 1:
        shown = " ".join(args.input[:3]) + (" ..." if len(args.input) > 3 else "")
        raise ConfigError(
            f"process takes one input, got {len(args.input)} ({shown}): for an image sequence quote the pattern "
            "('frames/*.png') or pass the folder; for several videos use birefvid batch"
        )
    _refuse_picture_to_picture(args.input[0], args.out)
    if is_video_file(args.input[0]):
        warn_fps_for_videos(args, args.input[0])
    return file_job_from_args(args, args.input[0], args.out)


def _refuse_picture_to_picture(source: str, out: str) -> None:
    """A photo to ``cut.png`` is `image`'s job: rembg's `i` users came to process and were told what video
    formats a .png output cannot be, with no word of the command that writes it."""
    from pathlib import Path

    from ..errors import ConfigError
    from ..extensions import HEIF_EXTENSIONS, IMAGE_EXTENSIONS

    from ..sequence_names import sequence_pattern

    stills = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}  # no video or animation is written to these (.webp is)
    if (Path(source).suffix.lower() in IMAGE_EXTENSIONS | HEIF_EXTENSIONS and Path(source).is_file() and Path(out).suffix.lower() in stills
            and not sequence_pattern(out)  # out/m.%04d.png is a one-frame sequence, as out/ is: `image` wrote a file named m.%04d.png
            and not _animated(source)):  # an animated WebP or PNG is process's: its error names .apng and the folder
        raise ConfigError(f"process writes videos; to cut out the picture {source} as {out} run `birefvid image {source} -o {out}`")


def _animated(path: str) -> bool:
    """True for a picture file of several frames (animated WebP, APNG), from its header: `image` cuts out only the first."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return int(getattr(im, "n_frames", 1)) > 1
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False


def run(args: argparse.Namespace) -> int:
    from ..api import run_job
    from ..errors import OutputKeptError, SourceError
    from ..file_job_checks import check_file_job, refuse_missing_input

    job = job_from_args(args)
    to_stdout = args.report == "-"  # as `eval --json -`: for a pipe (jq); it wrote a file named "-"
    check_file_job(job, None if to_stdout else args.report)  # the run's own first checks, in its order, and then its next
    refuse_missing_input(job)  # error where that is a missing input: one line before the 1.5-3 s of torch and PyAV imports
    progress = FrameProgress(quiet=args.quiet)
    try:
        report = run_job(job, progress=progress.advance, on_start=progress.start, report_path=None if to_stdout else args.report)
    except OutputKeptError as e:  # the output went beside its taken name: a script reads where (exit 2 still)
        if to_stdout and hasattr(e, "report"):
            from ..urls import hide_secrets

            print(json.dumps(hide_secrets(e.report), indent=2))
        raise
    except SourceError as e:  # a file damaged midway: no partial output, but the line names the --end/--start that process its good parts
        from ..io.video_source import salvage_hint  # here: PyAV and torch stay unimported for a bad option's one line

        hint = salvage_hint(e, job.source.start, job.source.end)
        if not hint:
            raise
        raise SourceError(f"{e}{hint}") from e
    finally:
        progress.close()
    from ..batch.leftovers import note_partials_beside

    note_partials_beside(Path(p) for p in [report["output"], *report.get("also", [])])
    if not args.quiet:
        from ..file_names import one_line

        print(f"wrote {one_line(', '.join([report['output'], *report.get('also', [])]))}: {report['frames']} frames in {report['wall_seconds']:.1f} s ({report['fps']:.2f} fps)", file=sys.stderr)
    if to_stdout:
        from .report_file import kept_phrase, write_report

        written = [report["output"], *report.get("also", [])]
        write_report("-", report, kept=kept_phrase(written, "video", "videos"))
    return 0
