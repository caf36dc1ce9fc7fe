"""The tqdm bar class for API runs and training: a widget in Jupyter where ipywidgets can draw it, else text."""

from __future__ import annotations

import importlib.util
from typing import Any


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
