"""The ONNX export in a process of its own, which a stop can kill (``python -m birefvid.backends.export_worker``).

Why: live mode exports on a worker thread (the warm-up), and ``torch.onnx.export`` is Python that holds the GIL
for long stretches. On a loaded machine that niced thread is preempted while holding it, so the main thread,
which Ctrl-C and SIGTERM reach, waited 4-22 s for each turn at the interpreter: the process left that long after
the signal, and a service manager's 10 s grace (``docker stop``, systemd) ended in SIGKILL. In a child the
export holds no lock the parent needs, and a stop kills it outright (``exiting.abandon``).

The protocol: the parent (``export._export_in_child``) saves the model with ``torch.save`` to a file in the
export's folder and starts this module with that file, the temporary name to write, the size and batch and its
own torch thread count. The child answers with JSON lines on its standard output: ``{"loaded": true}`` once it
has read the model (the parent removes the file), ``{"step": n, "what": ...}`` as each step of the export
begins, then ``{"done": true}`` or ``{"error": kind, "message": ...}`` (kind ``write``: the file could not be
written; ``load``: the model could not be rebuilt here, so the parent exports in its own process; ``export``:
the exporter failed). It writes only the temporary file: the parent renames it into the cache, so a child
killed at any point leaves no file a later run would load. It ends itself if its parent dies (SIGKILL).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from typing import IO, Any

PARENT_POLL_S = 0.5  # how often the child checks that its parent still runs


def _say(out: IO[str], **message: Any) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _leave_with_parent(parent: int, tmp: str) -> None:
    """End this process, removing its partial file, once the parent that started it is gone (killed outright:
    nothing else would stop this export, and its file would be left half-written beside the cache)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    try:
        os.unlink(tmp)
    except OSError:
        pass
    os._exit(1)


def main(argv: list[str]) -> int:
    """Export the model saved at ``argv[0]`` to ``argv[1]`` for input (``argv[4]``, 3, ``argv[2]``, ``argv[3]``)."""
    model_file, tmp, height, width, batch, threads, parent = argv[0], argv[1], int(argv[2]), int(argv[3]), int(argv[4]), int(argv[5]), int(argv[6])
    out = os.fdopen(os.dup(1), "w")  # the messages' own channel: native code printing to fd 1 cannot garble it
    os.dup2(2, 1)
    threading.Thread(target=_leave_with_parent, args=(parent, tmp), daemon=True).start()
    import torch

    from .export import ExportSteps, export_here

    torch.set_num_threads(threads)  # the parent's count: a container's CPU quota, not the host's cores
    try:
        model = torch.load(model_file, map_location="cpu", weights_only=False)  # written by the parent just now
    except Exception as exc:  # noqa: BLE001 - a class only the parent can import (defined in a notebook, __main__)
        _say(out, error="load", message=f"{type(exc).__name__}: {exc}")
        return 1
    _say(out, loaded=True)

    class Relayed(ExportSteps):
        def step(self, number: int, what: str) -> None:
            if number not in self.done:
                self.done.add(number)
                _say(out, step=number, what=what)

    try:
        program = export_here(model, (height, width), batch, Relayed(time.perf_counter()))
    except Exception as exc:  # noqa: BLE001 - said by the parent, as an in-process export would raise it
        _say(out, error="export", message=f"{type(exc).__name__}: {exc}", trace=traceback.format_exc())
        return 1
    try:
        program.save(tmp)  # type: ignore[attr-defined]
    except OSError as exc:  # a full disk, a quota
        _say(out, error="write", message=exc.strerror or str(exc))
        return 1
    _say(out, done=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
