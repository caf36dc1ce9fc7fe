"""The tqdm bar class for API runs and training: a widget in Jupyter where ipywidgets can draw it, else text."""

from __future__ import annotations

import importlib.util
from typing import Any

# the command line's -q for its run (set by cli.main): a model download shows no bar either
quiet_downloads = False


def tqdm_class() -> Any:
    """``tqdm.auto``'s bar where ``ipywidgets`` is installed, else the plain text bar.

    In Jupyter without ipywidgets, ``tqdm.auto`` warns "IProgress not found. Please update jupyter and
    ipywidgets", which reads as a broken install, and then shows the text bar anyway: that bar, without the warning.
    """
    if importlib.util.find_spec("ipywidgets") is None:
        from tqdm.std import tqdm

        return tqdm
    from tqdm.auto import tqdm

    return tqdm


def update_leaving_out_the_time_so_far(bar: Any, n: int) -> None:
    """``bar.update(n)`` for a run's first batch, without counting the time so far in the bar's rate and ETA: that
    time is mostly the model's warm-up, and tqdm's running average, slow to forget it, said an ETA several times the
    work left (3:19 for 56 s after 7 batches). The rate counts from here on; the elapsed time shown, from the start."""
    if bar.disable:  # TQDM_DISABLE=1: such a bar keeps no times (no start_t)
        bar.update(n)
        return
    shown, started = bar.n + n, bar.start_t
    bar.reset()  # the rate's averages emptied: they fill from the next update on
    bar.start_t = started
    bar.n = bar.last_print_n = shown
    bar.refresh()
