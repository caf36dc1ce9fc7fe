"""``--report FILE`` of the commands that write one themselves (``image``, ``live``): the JSON, or ``-`` for stdout.

``process`` writes its own inside ``run_file_job`` (the API's ``report_path``) and prints ``-`` the same way.
"""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence

from ..errors import SinkError, option


def kept_phrase(names: Sequence[str], one: str, several: str) -> Optional[str]:
    """What a run wrote and keeps, for ``write_report``'s ``kept``: ``the recording a.mkv was`` (``one`` = "recording"),
    ``the 3 recorded files (a.mkv to c.mkv) were`` (``several`` = "recorded files"), None for nothing."""
    if not names:
        return None
    if len(names) == 1:
        return f"the {one} {names[0]} was"
    return f"the {len(names)} {several} ({names[0]} to {names[-1]}) were"


def write_report(path: Optional[str], report: dict[str, Any], kept: Optional[str] = None) -> None:
    """Write ``report`` to ``path`` (nothing when None; ``-``: standard output, for a pipe to jq), URL passwords and
    stream keys hidden (reports get shared in bug reports), whole or not at all. ``kept`` says what the run wrote
    and keeps ("the recording a.mkv was"): a report that cannot be written must not read as the work being lost."""
    from ..urls import hide_secrets

    if not path:
        return
    text = json.dumps(hide_secrets(report), indent=2)
    if path == "-":
        _print_report(text, kept)
        return
    from ..io.atomic import write_text_atomic

    try:  # a full disk, a folder gone: one line, and no half-written JSON left behind
        write_text_atomic(path, text + "\n", option("report"))
    except SinkError as e:
        if kept is None:
            raise
        raise SinkError(f"{e}; {kept} written and kept") from None


def _print_report(text: str, kept: Optional[str]) -> None:
    """``text`` on standard output, all of it out now; one that cannot be written (a full disk, a closed descriptor)
    is a SinkError saying what the run wrote and keeps. A reader that left (``| head``) stays a BrokenPipeError:
    the command line ends quietly (exit 141)."""
    from .. import standard_output

    try:
        print(text, flush=True)
    except OSError as e:
        if kept is None or isinstance(e, BrokenPipeError):
            raise
        raise SinkError(f"{option('report')} -: {standard_output.describe(e)}; {kept} written and kept") from None
