"""Lines C libraries print straight to standard error, kept off it: OpenCV's bundled libpng writes
``libpng error: IDAT: incorrect data check`` (a damaged PNG) and ``libpng warning: iCCP: ...`` (a
harmless profile quirk) with fprintf, past OpenCV's log level, beside birefvid's own one error line."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

# what OpenCV's libpng prints; other lines written meanwhile (another thread's) are put back
DROPPED_PREFIXES = (b"libpng error: ", b"libpng warning: ")

_lock = threading.Lock()  # one redirection at a time: file descriptor 2 is the process's


@contextlib.contextmanager
def native_lines_dropped(prefixes: tuple[bytes, ...] = DROPPED_PREFIXES) -> Iterator[None]:
    """Within the block, file descriptor 2 goes to a temporary file; afterwards the lines starting with
    ``prefixes`` are dropped and the rest written to the real standard error, in order."""
    with _lock:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no usable descriptor 2 (a closed or replaced stderr)
            yield
            return
        try:
            caught = tempfile.TemporaryFile()
        except OSError:  # no room for even that: let the lines through
            os.close(saved)
            yield
            return
        with caught:
            os.dup2(caught.fileno(), 2)
            try:
                yield
            finally:
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                caught.seek(0)
                kept = b"".join(line for line in caught.read().splitlines(keepends=True) if not line.startswith(prefixes))
                if kept:
                    with contextlib.suppress(OSError):
                        os.write(2, kept)
