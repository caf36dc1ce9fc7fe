"""The checks a ``LiveJob`` passes before its source opens, light (no torch, PyAV, OpenCV or numpy).

``runtime/live.py: run_live_job`` makes them first, in this order; ``birefvid live`` makes them before it imports the
runtime, so a mistyped ``--source`` file is one line at once instead of after 1.5-3 s of imports, and with several
mistakes the same one is said as before.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import SourceError, input_not_found
from .io.atomic import check_replaces_no_input, refuse_link_loop
from .job import LiveJob, is_camera_spec, is_recording


def check_records_replace_no_input(job: LiveJob) -> None:
    """SinkError, before anything opens, when a recording would be renamed over the video file the run plays or its
    ``--background``: ``live --source clip.mp4 --sink clip.mp4 --overwrite`` replaced the clip with its recording,
    exit 0, where ``process`` refuses that. Parts (``--segment``) have names of their own."""
    for sink in job.sinks:
        if is_recording(sink):  # a link in a loop: its first look (resolve) below was a traceback
            refuse_link_loop(os.path.expanduser(sink))
    if job.record_segment is not None:
        return
    reads = [None if is_camera_spec(job.source.source) else job.source.source, job.effect.background]
    for sink in job.sinks:
        if is_recording(sink):
            check_replaces_no_input(os.path.expanduser(sink), reads)


def missing_source_line(text: str) -> str:
    """The error line for a ``--source`` file that does not exist, with what else a live source may be."""
    message = input_not_found(text)
    if message == f"input not found: {text}":  # not the README's sample, which says how to make it
        message += " (a live source is a camera index like 0, a device path like /dev/video0, a stream URL like rtsp://host/path, or a video file)"
    return message


def refuse_missing_source(job: LiveJob) -> None:
    """SourceError for a validated ``job`` whose ``--source`` names a video file that does not exist, where the run
    says that next (``io.live_target.parse_source_spec``, after ``check_records_replace_no_input``); a camera, a URL
    or anything else is left to the run, which says it in its turn."""
    text = job.source.source.strip()
    if not text or text.isdigit() or text.startswith("/dev/") or "://" in text:
        return
    if not Path(text).exists():
        raise SourceError(missing_source_line(text))
