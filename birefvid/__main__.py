"""``python -m birefvid``: the ``birefvid`` command, for where the console script is not on PATH."""

from birefvid.cli import console

console()
