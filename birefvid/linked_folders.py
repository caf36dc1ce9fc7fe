"""Which linked folders a recursive walk (``batch -r``, ``--watch``, ``image -r``) may follow."""

from __future__ import annotations

import os


def leads_back_up(real: str, ancestors: frozenset[str]) -> bool:
    """Whether a linked folder (``real``, its real path) is one the walk is already in, or lies above one: a link to
    ``..`` goes round, and one to the folder above the named one (``ln -s ../..``, a link to ``/`` or home) walked
    everything there, the named folder's siblings and the whole disk, where only a loop back to the walk was stopped."""
    above = real.rstrip(os.sep) + os.sep
    return any(a == real or a.startswith(above) for a in ancestors)
