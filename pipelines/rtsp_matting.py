#!/usr/bin/env python
"""Recipe: matte an RTSP (or any URL) camera for days, to a browser preview, an RTSP republish or a recording.

The stream is reconnected forever when it drops (--max-retries to give up), the last picture is held
meanwhile, and the figures (source/output/model fps, latency, dropped frames, reconnects) are printed
every --stats-every seconds and, with --stats-json, appended as JSON lines (a final summary last).
The default --effect green keys the background out; alpha keeps transparency only in a .webm, .mov or
.mkv recording (the preview shows it over a checkerboard, RTSP cannot carry it).
Open http://127.0.0.1:8080 for the default preview (its /snapshot.jpg for one picture).

    python pipelines/rtsp_matting.py --source rtsp://cam.local:554/stream [--sink rtsp://0.0.0.0:8554/matte] [--stats-json stats.jsonl]
"""

from __future__ import annotations

import argparse
import sys

from birefvid.api import build_live_job, live_summary, run_live
from birefvid.cli import guarded
from birefvid.job import EFFECTS

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]  # one line, like every other error here
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="rtsp:// rtmp:// http(s):// udp:// tcp:// URL (or a camera, or a video file)")
    parser.add_argument("--effect", choices=EFFECTS, default="green", help="green (default), blur, replace, alpha (.webm/.mov/.mkv recordings, preview) or mask")
    parser.add_argument("--sink", action="append", metavar="SINK",
                        help="repeatable, replaces the default http://127.0.0.1:8080 preview: rtsp://HOST:PORT/PATH to republish, a file to record, http://HOST:PORT")  # fmt: skip
    parser.add_argument("--background", help="for --effect replace: a colour, an image or a video (looped)")
    parser.add_argument("--key-color", default="#00ff00", help="for --effect green (default #00ff00)")
    parser.add_argument("--model", default="lite", help="model name (default lite; downloaded on first use)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default auto)")
    parser.add_argument("--resolution", help="fixed inference size, N or WxH (multiples of 32)")
    parser.add_argument("--latency-budget", type=float, metavar="MS", help="largest inference size whose model time fits MS (default 250 unless --resolution)")
    parser.add_argument("--max-retries", type=int, help="give up after this many failed reconnects in a row (default: never)")
    parser.add_argument("--stats-every", type=float, default=60.0, help="seconds between stats lines (default 60)")
    parser.add_argument("--stats-json", metavar="FILE", help="append the stats as JSON lines to FILE")
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: Ctrl-C)")
    parser.add_argument("--realtime", action="store_true", help="play a video file --source at its own frame rate")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing recording")
    parser.add_argument("--segment", type=float, metavar="SECONDS", help="record in files of SECONDS each, kept as each completes (e.g. 3600)")
    args = parser.parse_args(argv)

    def work() -> int:
        job = build_live_job(
            args.source, args.sink or ["http://127.0.0.1:8080"], effect=args.effect, background=args.background,
            key_color=args.key_color, model=args.model, device=args.device, resolution=args.resolution,
            latency_budget_ms=args.latency_budget, realtime=args.realtime, max_retries=args.max_retries,
            duration=args.duration, stats_every=args.stats_every, overwrite=args.overwrite, record_segment=args.segment,
        )  # fmt: skip
        report = run_live(job, stats_json=args.stats_json, printer=lambda line: print(line, file=sys.stderr, flush=True))
        print(live_summary(report))
        return 0

    return guarded(parser.prog, work)


if __name__ == "__main__":
    sys.exit(main())
