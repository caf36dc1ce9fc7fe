"""An error raised while the model loads: marked as the run's (no input's fault), and said in one line when it is not
birefvid's own (torch's RuntimeError from a checkpoint it cannot take, a MemoryError, a reader's OSError)."""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator

from ..errors import BirefvidError, PipelineError

log = logging.getLogger(__name__)
# set on an error raised while the model loaded (it survives pickling, so a Ray worker's keeps it)
_MODEL_LOAD = "birefvid_model_load"


def failed_loading(exc: BaseException) -> BaseException:
    """Mark ``exc`` as raised while the model loaded: no video's fault, so the whole run's error. A watch skips a
    video whose run raised a ConfigError (an output it may not write); a Ray worker's ``--device mps`` on Linux was
    such a video-sized error, and a watch skipped every video dropped in, its workers started anew for each."""
    setattr(exc, _MODEL_LOAD, True)
    return exc


def is_load_failure(exc: BaseException) -> bool:
    """Was ``exc`` raised while the model loaded (``failed_loading``)?"""
    return bool(getattr(exc, _MODEL_LOAD, False))


def gist(exc: BaseException, limit: int = 300) -> str:
    """``exc``'s type and the start of its text on one line: the first line, and the next too when the first only
    introduces it (torch's ``Error(s) in loading state_dict for BiRefNet:``), without the pages that may follow."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    said = " ".join(lines[:2]) if len(lines) > 1 and lines[0].endswith(":") else (lines[0] if lines else "")
    said = said if len(said) <= limit else said[: limit - 3] + "..."
    return f"{type(exc).__name__}: {said}" if said else type(exc).__name__


def could_not_load(exc: BaseException, on_ray: bool = False) -> PipelineError:
    """The run's one error line for an error not birefvid's own raised as the model loaded: a traceback and exit 1
    said "a bug" where the model, not birefvid, was at fault. Marked ``failed_loading``: no video's fault, so a watch
    stops too."""
    stage, who = ("worker", "a Ray worker could not") if on_ray else ("model", "could not")
    error = PipelineError(stage, f"{who} load the model: {gist(exc)}")
    failed_loading(error)
    return error


@contextlib.contextmanager
def loading_model() -> Iterator[None]:
    """Around a model's load in a command: birefvid's own errors pass as they are, marked as the load's; any other
    ``Exception`` becomes ``could_not_load``'s one line (exit 2), its traceback logged for ``-v``. Ctrl-C and
    SIGTERM (not ``Exception``) pass untouched."""
    try:
        yield
    except BirefvidError as exc:
        raise failed_loading(exc)
    except Exception as exc:  # noqa: BLE001 - torch's, a reader's: one line, exit 2, as on a Ray worker
        log.debug("the model failed to load", exc_info=True)
        raise could_not_load(exc) from exc
