#!/usr/bin/env python
"""Regenerate the bundled sample: ``scene.mp4`` (H.264 + AAC tone) and its exact masks ``scene_mask.mkv``.

The generator lives in the package (``birefvid.data.sample``), so an installed birefvid makes the clip too:
    python samples/make_sample.py            # writes samples/scene.mp4 and samples/scene_mask.mkv
    python -m birefvid.data.sample           # the same into ./samples, without this repository
"""

from __future__ import annotations

import sys
from pathlib import Path

from birefvid.data.sample import FPS, FRAMES, SEED, SIZE, main, write_sample  # noqa: F401  (this script's names)

if __name__ == "__main__":
    raise SystemExit(main(["--out", str(Path(__file__).parent), *sys.argv[1:]]))
