"""``birefvid live --source SRC --effect EFFECT --sink SINK [--sink ...]``: webcam and stream matting in real time."""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any, Optional

from ..errors import ConfigError, SinkError, option
from ..job import BLUR_SIGMA, BUDGET_FLOOR, DEFAULT_LATENCY_BUDGET_MS, EFFECTS, INPUT_COLORS, KEY_COLOR, LIVE_SMOOTH_KINDS, OVERLAY_COLOR, OVERLAY_OPACITY, LiveJob
from .options import add_matte_options, add_model_options, matte_options, opacity_arg

HELP = "blur or replace the background of a webcam or stream live: to a window, virtual camera, RTSP, MPEG-TS, browser or file"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, help="camera index (0) or device (/dev/video0), rtsp:// rtmp:// http(s):// udp:// tcp:// URL, or a video file")
    parser.add_argument("--effect", choices=EFFECTS, default="blur", help="blur or replace the background, green(screen), none (the camera "
                        "as it is: join a call unblurred, the model ready for a switch), alpha (RGBA), mask, or overlay (the picture, the subject tinted "
                        "and outlined: a check of the matte) (default blur); blur, replace, green, none and overlay switch during the run: keys "
                        "b r g n o in the terminal or the window, buttons on the http:// preview page")  # fmt: skip
    parser.add_argument("--sink", action="append", default=[], metavar="SINK",
                        help="repeatable: window, virtualcam, rtsp://HOST:PORT/PATH, rtmp://HOST/APP/KEY (YouTube, Twitch; needs the ffmpeg program), "
                             "udp://HOST:PORT or tcp://HOST:PORT (MPEG-TS), "
                             "http://HOST:PORT (browser preview) or a file to record")  # fmt: skip
    parser.add_argument("--mirror-preview", action=argparse.BooleanOptionalAction, default=None,
                        help="show the picture flipped left-right in the window and the http:// preview page, as call apps show your "
                             "self-view; never in what is sent or recorded (virtual camera, streams, files). Default: mirrored when "
                             "--source is a camera (0, /dev/video0), not for streams and files")  # fmt: skip
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: until the source ends or Ctrl-C)")
    src = parser.add_argument_group("source")
    src.add_argument("--realtime", action="store_true", help="play a video file at its own frame rate (demos, tests)")
    src.add_argument("--loop", action="store_true", help="restart a video file at its end")
    src.add_argument("--camera-size", metavar="WxH", help="ask the camera for this picture size, e.g. 1280x720 (default: the driver's, often 640x480)")
    src.add_argument("--camera-fps", type=float, metavar="FPS", help="ask the camera for this frame rate, e.g. 30")
    src.add_argument("--max-retries", type=int, help="give up after this many failed reconnects in a row (default: retry forever)")
    src.add_argument("--open-timeout", type=float, default=5.0, help="seconds to wait when connecting (default 5)")
    src.add_argument("--read-timeout", type=float, default=5.0, help="seconds without a frame before a stream counts as lost (default 5)")
    src.add_argument("--no-deinterlace", action="store_true", help="keep an interlaced stream's or file's frames as decoded, combed "
                     "(by default frames flagged interlaced are deinterlaced with FFmpeg's bwdif)")  # fmt: skip
    src.add_argument("--video-stream", type=int, metavar="N", help="of a video file with several video streams, the N-th (#N in the "
                     "warning that names them, as ffmpeg -map 0:v:N counts) instead of the one ffmpeg would take; files only")  # fmt: skip
    src.add_argument("--input-colors", choices=INPUT_COLORS, default="auto", help="the YUV matrix of a file or stream that names none: auto "
                     "(default) reads HD (1280 wide, or taller than 576) as BT.709 and smaller as BT.601, as players show them; bt709 or "
                     "bt601 when you know (cameras give RGB)")  # fmt: skip
    eff = parser.add_argument_group("effect")
    eff.add_argument("--background", help="for --effect replace (or blur, green, none or overlay, to switch to replace with r): a colour "
                     "(#rrggbb, name, r,g,b), an image or a video (looped)")  # fmt: skip
    eff.add_argument("--key-color", help=f"for --effect green (default {KEY_COLOR})")
    eff.add_argument("--blur-sigma", type=float, help=f"for --effect blur: strength in pixels (default {BLUR_SIGMA:g})")
    eff.add_argument("--overlay-color", metavar="COLOR", help=f"for --effect overlay: the tint and outline colour (default {OVERLAY_COLOR})")
    eff.add_argument("--overlay-opacity", type=opacity_arg, metavar="O",
                     help=f"for --effect overlay: the tint's strength, 0 (the outline alone) to 1, or 50%% (default {OVERLAY_OPACITY:g})")
    eff.add_argument("--foreground", action="store_true", help="estimate foreground colours at soft edges (better hair, ~10 ms more a 640x480-720p frame on a CPU core)")
    add_matte_options(parser)
    run_group = parser.add_argument_group("run")
    run_group.add_argument("--latency-budget", type=float, metavar="MS", help=f"pick the largest inference size whose model time fits MS (default {DEFAULT_LATENCY_BUDGET_MS:g} unless "
                           f"--resolution), never under {BUDGET_FLOOR}x{BUDGET_FLOOR}: a machine too busy for it even there keeps "
                           f"{BUDGET_FLOOR}x{BUDGET_FLOOR} and says so")  # fmt: skip
    run_group.add_argument("--smooth", choices=LIVE_SMOOTH_KINDS, default="flow", help="temporal mask smoothing of the model's masks: flow (along optical flow), ema or none (default flow)")
    run_group.add_argument("--no-carry", action="store_true", help="do not carry the last mask to new frames along optical flow")
    run_group.add_argument("--model-fps", type=float, metavar="FPS", help="refresh the mask at most FPS times a second (e.g. 10), for a laptop "
                           "on battery or a shared CPU: the picture keeps the camera's rate, the frames between carry the last mask "
                           "(default: as often as the model can)")  # fmt: skip
    run_group.add_argument("--stats-every", type=float, default=5.0, help="seconds between stats lines (default 5)")
    run_group.add_argument("--stats-json", help="append stats as JSON lines to this file ('-': standard output, one object a line)")
    run_group.add_argument("--report", help="write a JSON report of the run (figures and the job); '-' prints it on standard output")
    run_group.add_argument("--overwrite", action="store_true", help="replace an existing recording")
    run_group.add_argument("--preset", help="encoder speed preset of a recording (x264/x265 default veryfast; superfast or ultrafast "
                           "cost less CPU, for 2-4x larger files); recordings use x264, never NVENC, so p1-p7 do not apply")
    run_group.add_argument("--segment", type=float, metavar="SECONDS",
                           help="record in files of SECONDS each (NAME-YYYYmmdd-HHMMSS.EXT), each kept as soon as it is complete; for runs of hours or days")
    run_group.add_argument("--no-audio", action="store_true", help="leave the source's sound out of recordings and RTSP, RTMP and MPEG-TS streams (kept by default)")
    run_group.add_argument("--audio-device", metavar="DEVICE",
                           help="record this microphone with a camera: default, or FFmpeg's FORMAT:DEVICE (alsa:hw:1,0, avfoundation:none:0, "
                                "'dshow:audio=Microphone (USB)'); a bare ALSA name (hw:1,0) on Linux")  # fmt: skip
    run_group.add_argument("--audio-delay", type=float, default=0.0, metavar="SECONDS",
                           help="move the microphone's sound this much later, to meet the camera's pictures (e.g. 0.05; default 0)")
    run_group.add_argument("-q", "--quiet", action="store_true", help="no stats lines")
    add_model_options(parser, resolution_default=f"the largest that fits --latency-budget, from {BUDGET_FLOOR} up to the model's native size")
    parser.set_defaults(run=run)


# the options of the effects a run can switch to, with their defaults (None in the parser, to tell one given from none)
_EFFECT_DEFAULTS = {"key_color": KEY_COLOR, "blur_sigma": BLUR_SIGMA, "overlay_color": OVERLAY_COLOR, "overlay_opacity": OVERLAY_OPACITY}


def effect_options(args: argparse.Namespace) -> dict[str, object]:
    """``build_live_job``'s ``key_color``, ``blur_sigma``, ``overlay_color`` and ``overlay_opacity`` (their defaults where not
    given); ConfigError for one beside ``--effect alpha`` or ``mask``, which never switch to the effect that uses it: it was
    ignored without a word, where ``process`` refuses it. A blur, replace, green, none or overlay run takes them all: the
    others are a key away."""
    given = [name for name in _EFFECT_DEFAULTS if getattr(args, name) is not None]
    if given and args.effect in ("alpha", "mask"):
        raise ConfigError(f"{option(given[0])} is not used with {option('effect', args.effect)}, which keeps its effect: "
                          "the effects that switch (blur, replace, green, none, overlay) use it")  # fmt: skip
    return {name: default if getattr(args, name) is None else getattr(args, name) for name, default in _EFFECT_DEFAULTS.items()}


def job_from_args(args: argparse.Namespace) -> LiveJob:
    """The live job these arguments describe, validated (the same builder the Python API uses)."""
    from ..api import build_live_job

    return build_live_job(
        args.source, args.sink, effect=args.effect, background=args.background, **effect_options(args), foreground=args.foreground, model=args.model, weights=args.weights,
        backbone=args.backbone, device=args.device, precision=args.precision, backend=args.backend, resolution=args.resolution,
        keep_aspect=args.keep_aspect, latency_budget_ms=args.latency_budget, smooth=args.smooth, carry=not args.no_carry, model_fps=args.model_fps, realtime=args.realtime, loop=args.loop,
        camera_size=args.camera_size, camera_fps=args.camera_fps, audio_device=args.audio_device, audio_delay=args.audio_delay,
        max_retries=args.max_retries, open_timeout=args.open_timeout, read_timeout=args.read_timeout,
        duration=args.duration, stats_every=args.stats_every, overwrite=args.overwrite, record_preset=args.preset, record_segment=args.segment,
        audio=not args.no_audio, deinterlace=not args.no_deinterlace, mirror_preview=args.mirror_preview, video_stream=args.video_stream, input_colors=args.input_colors, **matte_options(args),
    )  # fmt: skip


def _write_report(path: Optional[str], report: dict[str, Any]) -> None:
    """Write the run's ``--report`` (when asked; ``-``: standard output), saying which recordings were kept if it cannot be."""
    from .report_file import kept_phrase, write_report

    kept = [name for files in (report.get("recorded") or {}).values() for name in files]
    write_report(path, report, kept=kept_phrase(kept, "recording", "recorded files"))


def run(args: argparse.Namespace) -> int:
    job = job_from_args(args)  # bad options answer before torch and the media stack load

    from ..io.atomic import check_report_path, check_report_replaces_nothing
    from ..file_names import json_name_left_empty
    from ..errors import BirefvidError

    check_report_path(None if args.report == "-" else args.report)
    recordings = [sink for sink in args.sink if "://" not in sink and sink not in ("window", "virtualcam")]
    for path, what in ((args.report, "--report"), (args.stats_json, "--stats-json")):
        if path is not None and json_name_left_empty(path):  # a hidden .json that no ls shows
            raise SinkError(f"cannot write {what} {path}: {json_name_left_empty(path)}")
        check_report_replaces_nothing(path, what, [args.source, args.background, *job.model.local_files()], recordings)
    if _on_standard_output(args.report) and _on_standard_output(args.stats_json):  # one reader of stdout: JSON lines,
        # then an indented report, broke it (`/dev/stdout` too; `--report log > log` renamed the report onto the lines)
        raise ConfigError(f"--stats-json {args.stats_json} and --report {args.report} both write to standard output; send one of them to a file")
    from ..live_checks import check_records_replace_no_input, refuse_missing_source

    check_records_replace_no_input(job)  # the run's first checks, in its order, then its next error where that is a
    refuse_missing_source(job)  # --source file that does not exist
    from ..runtime.live import run_live_job  # torch, PyAV, OpenCV: after the checks above, each one line at once
    from ..runtime.terminal_keys import TerminalKeys

    printer = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    quit_key = threading.Event()
    with TerminalKeys(sys.stdin, printer, on_quit=quit_key.set) as keys:  # b r g n o in this terminal switch the effect, q ends the run
        try:
            report = run_live_job(job, stats_json=args.stats_json, printer=printer, stop=quit_key, on_effects=keys.attach)
        except BirefvidError as failed:  # a source lost, a full disk: the run ends with its error line, but its report says what was kept
            if getattr(failed, "report", None) is not None:
                try:
                    _write_report(args.report, failed.report)
                except SinkError as unwritten:  # the run's own error comes first: it says why
                    print(f"birefvid: warning: {unwritten}", file=sys.stderr)
            raise
    _write_report(args.report, report)
    from ..api import NEVER_WORKED, live_hint, live_stream_problems, live_summary

    if not args.quiet:
        print(live_summary(report), file=sys.stderr)
    problems = live_stream_problems(report)
    never = [problem for problem in problems if NEVER_WORKED in problem]
    for problem in problems:
        print(f"birefvid: {'error' if problem in never else 'warning'}: {problem}", file=sys.stderr)
    hint = live_hint(report)
    if hint:
        print(f"birefvid: hint: {hint}", file=sys.stderr)
    # an output asked for that never worked (a server down all along, a refused key) is a failed run for a script or a
    # service manager (Restart=on-failure), as a publish refused at the start was: exit 2, the recordings still kept
    return 2 if never else 0


def _on_standard_output(path: Optional[str]) -> bool:
    """Whether a JSON option's ``path`` writes to standard output: ``-``, or a name for the file or pipe it goes to
    (``/dev/stdout``, ``run.log`` of ``> run.log``)."""
    from ..file_names import leads_to_standard_output

    return path is not None and (path == "-" or leads_to_standard_output(path))
