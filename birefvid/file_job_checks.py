"""The checks a ``FileJob`` passes before anything is opened, light (no torch, PyAV, OpenCV or numpy).

``runtime/file_job.py: run_file_job`` makes them first, in this order; ``birefvid process`` makes them (and
``refuse_missing_input``) before it imports the runtime, so its commonest mistakes (a mistyped input name) are one
line at once instead of after 1.5-3 s of imports, and with several mistakes the same one is said as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from .errors import SourceError, input_not_found, option
from .io.atomic import check_replaces_no_input, check_report_path, check_report_replaces_nothing, refuse_link_loop
from .job import FileJob
from .sequence_names import check_own_folder, is_sequence_target
from .users import unreadable_line

# what the runtime's open_source reads otherwise than as a video file (io.base.URL_SCHEMES, io.image_source.GLOB_CHARS):
# such an input is left to it whole
_NOT_A_FILE_NAME = ("://", "*", "?", "[")


def check_file_job(job: FileJob, report_path: Optional[str | Path] = None) -> None:
    """Validate ``job`` and check its outputs and ``report_path`` against its inputs, as a run does before opening them."""
    job.validate()
    check_report_path(report_path)
    src = job.source
    for each in job.outputs:
        refuse_link_loop(each.path)  # a link loop: every look at it below (resolve) raised RuntimeError
        if is_sequence_target(each.path):  # first: run beside the input, -o m.%04d.png was 'would replace clip.mp4', not why
            check_own_folder(each.path)
        check_replaces_no_input(each.path, [src.input, *(o.background for o in job.outputs)])  # --overwrite or not: the input would be lost
    check_report_replaces_nothing(report_path, option("report_path"), [src.input, *(o.background for o in job.outputs), *job.model.local_files()],
                                  [o.path for o in job.outputs])  # fmt: skip


def refuse_missing_input(job: FileJob) -> None:
    """SourceError 'input not found' for a checked ``job`` whose input video file is missing, where a run would say
    that next: after ``check_file_job`` a run picks its device (``auto`` and ``cpu`` never fail) and then opens the
    input; any other input (a URL, a glob, a folder, decord's) or device is left to the run, which says it in its turn."""
    text = str(job.source.input)
    if job.inference.device not in ("auto", "cpu") or job.source.decoder != "pyav" or any(s in text for s in _NOT_A_FILE_NAME):
        return
    path = Path(text)  # as io.video_source.open_container names it ("./clip.mp4" is said "clip.mp4")
    if unreadable_line(path) is None and not path.exists():
        raise SourceError(input_not_found(path))
