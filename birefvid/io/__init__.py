"""Media input and output: sources that decode frames with their pts, sinks that encode them back.

``open_source`` and ``open_sink`` are the entry points; the classes are public for callers that
want one backend explicitly. Every source and sink is a context manager with an idempotent
``close()`` (sinks also have ``abort()``, which leaves nothing at the target path).
"""

from birefvid.io.animated_source import AnimatedWebPSource
from birefvid.io.base import Sink, Source
from birefvid.io.factory import is_sequence_target, open_sink, open_source
from birefvid.io.formats import SUPPORTED, choose_encoder
from birefvid.io.image_sink import ImageSequenceSink
from birefvid.io.image_source import ImageSequenceSource
from birefvid.io.video_sink import VideoFileSink
from birefvid.io.video_source import VideoFileSource


def __getattr__(name: str):  # DecordSource lives behind the optional extra; import it on first use
    if name == "DecordSource":
        from birefvid.io.decord_source import DecordSource

        return DecordSource
    raise AttributeError(f"module 'birefvid.io' has no attribute {name!r}")


__all__ = [
    "AnimatedWebPSource",
    "DecordSource",
    "ImageSequenceSink",
    "ImageSequenceSource",
    "SUPPORTED",
    "Sink",
    "Source",
    "VideoFileSink",
    "VideoFileSource",
    "choose_encoder",
    "is_sequence_target",
    "open_sink",
    "open_source",
]
