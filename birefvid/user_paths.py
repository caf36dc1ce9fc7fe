"""Paths users give in environment variables, read as a shell would have: a light module (no torch), shared by the
model registry and the export cache."""

from __future__ import annotations

import os


def expand_home(path: str) -> str:
    """``path`` with a leading ``~`` or ``~user`` made the home folder, as ``HF_HOME`` and ``TORCH_HOME`` are read:
    a variable set where no shell expands it (a Dockerfile's ``ENV``, a systemd unit, a ``.env`` file, ``os.environ``
    in a notebook) named a folder called ``~`` in the working folder. Unchanged where there is no home to find."""
    try:
        return os.path.expanduser(path)
    except (KeyError, RuntimeError):  # no passwd entry for this uid and no HOME
        return path
