"""The chunk a local batch is cutting out, kept on disk while it runs, so that a rerun after the run was
killed (the OOM killer, SIGKILL, a crash in native code) knows which video did it.

Without it a video that needs more memory than the machine has killed every rerun at the same place,
and a batch of thousands never got past it. A rerun names the video; once runs were killed on it
``KILLS_TO_SKIP`` times in a row it is skipped, as a damaged one is (the others are processed, exit 2
names it), and the rerun after that tries it again. Ray's workers have their own rule (``WorkerDied``).
A run that ends any other way (done, Ctrl-C, SIGTERM, an error) removes the file.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Optional

log = logging.getLogger(__name__)

RUNNING_FILE = "running.json"
KILLS_TO_SKIP = 2  # runs killed in a row on one chunk before its video is skipped


class RunningChunk:
    """``WORK_DIR/running.json``: the video and chunk being cut out, and how many runs before were killed on it."""

    def __init__(self, work_dir: Path) -> None:
        self.path = Path(work_dir) / RUNNING_FILE
        self.carried: dict[tuple[str, int], int] = {}  # (video, chunk) -> runs killed on it before this one

    def take_left_behind(self) -> Optional[tuple[str, int, int]]:
        """(video, chunk, runs killed on it in a row) from a run that was killed, or None; the file is removed."""
        try:
            data = json.loads(self.path.read_text())
            video, chunk, kills = str(data["video"]), int(data["chunk"]), int(data.get("kills", 0)) + 1
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:  # cut short as the run died: nothing to go on
            log.debug("ignoring %s: %s", self.path, e)
            self.path.unlink(missing_ok=True)
            return None
        self.path.unlink(missing_ok=True)
        self.carried[(video, chunk)] = kills
        return video, chunk, kills

    def start(self, video: str, chunk: int) -> None:
        """Say on disk that ``chunk`` of ``video`` is being cut out now (a few bytes, once a chunk)."""
        text = json.dumps({"video": video, "chunk": chunk, "kills": self.carried.get((video, chunk), 0), "pid": os.getpid()})
        try:
            self.path.write_text(text + "\n")
        except OSError as e:  # a full disk: the chunk's own output will say so; this is only a hint
            log.debug("cannot write %s: %s", self.path, e)

    def clear(self) -> None:
        """The run ended without being killed: nothing is left for a rerun to suspect."""
        self.path.unlink(missing_ok=True)
