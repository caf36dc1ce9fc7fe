#!/usr/bin/env python
"""Recipe: blur the background of your webcam into a virtual camera, for video calls.

Then pick the virtual camera (v4l2loopback on Linux, OBS Virtual Camera elsewhere; needs pyvirtualcam)
in Zoom, Meet or Teams. Every captured frame is shown at the camera's rate with the newest mask; the
inference size adapts to --latency-budget unless --resolution is given. Ctrl-C (or --duration) stops
it and prints the run's figures: output and model fps, capture-to-output latency.

    python pipelines/webcam_blur.py [--source 0] [--sink virtualcam] [--model lite] [--blur-sigma 16]
"""

from __future__ import annotations

import argparse
import sys

from birefvid.api import build_live_job, live_summary, run_live
from birefvid.cli import guarded


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]  # one line, like every other error here
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="0", help="camera index (default 0), device, stream URL or a video file")
    parser.add_argument("--sink", action="append", metavar="SINK",
                        help="repeatable, replaces the default virtualcam: window, virtualcam, rtsp://..., http://HOST:PORT or a file")  # fmt: skip
    parser.add_argument("--model", default="lite", help="model name (default lite; downloaded on first use)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default auto)")
    parser.add_argument("--resolution", help="fixed inference size, N or WxH (multiples of 32)")
    parser.add_argument("--latency-budget", type=float, metavar="MS", help="largest inference size whose model time fits MS (default 250 unless --resolution)")
    parser.add_argument("--blur-sigma", type=float, default=16.0, help="blur strength in pixels (default 16)")
    parser.add_argument("--camera-size", metavar="WxH", help="ask the camera for this picture size, e.g. 1280x720 (default: the driver's, often 640x480)")
    parser.add_argument("--camera-fps", type=float, metavar="FPS", help="ask the camera for this frame rate, e.g. 30")
    parser.add_argument("--audio-device", metavar="DEVICE", help="record this microphone with a file --sink: default, or FORMAT:DEVICE (alsa:hw:1,0)")
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: Ctrl-C)")
    parser.add_argument("--realtime", action="store_true", help="play a video file --source at its own frame rate")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing recording")
    args = parser.parse_args(argv)

    def work() -> int:
        job = build_live_job(
            args.source, args.sink or ["virtualcam"], effect="blur", blur_sigma=args.blur_sigma, model=args.model,
            device=args.device, resolution=args.resolution, latency_budget_ms=args.latency_budget, realtime=args.realtime,
            duration=args.duration, overwrite=args.overwrite, camera_size=args.camera_size, camera_fps=args.camera_fps,
            audio_device=args.audio_device,
        )  # fmt: skip
        report = run_live(job, printer=lambda line: print(line, file=sys.stderr, flush=True))
        print(live_summary(report))
        return 0

    return guarded(parser.prog, work)


if __name__ == "__main__":
    sys.exit(main())
