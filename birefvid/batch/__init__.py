"""``birefvid batch``: many videos, long ones split into chunks, run locally or on a Ray cluster.

A video is planned into chunks at its keyframes (``plan``); each chunk is segmented with enough
overlap for the temporal smoother and encoded as its own file (``chunk``); the chunk files are
joined by remuxing their packets, without re-encoding, and the source audio, subtitles and chapters are muxed once
(``join``). A manifest records finished chunks and videos so a rerun skips them (``manifest``).
Executors run chunks one after another (``local``) or on Ray actors that keep a model loaded
(``ray_executor``). Ray is imported only by ``ray_executor`` and only when ``--ray`` is given; the
command imports this package only when it runs, so ``birefvid batch --help`` loads nothing heavy.
"""

# seconds a watched file's size and time must stay unchanged before it counts as complete (``batch --watch``):
# here, so the command's --help names it without importing the batch machinery
DEFAULT_SETTLE = 5.0
DEFAULT_CHUNK_FRAMES = 1500  # one minute of 25 fps video per chunk (``--chunk-frames``)
