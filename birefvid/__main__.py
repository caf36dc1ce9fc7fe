"""``python -m birefvid``: the ``birefvid`` command, for where the console script is not on PATH."""

import sys

from birefvid.cli import main

sys.exit(main())
