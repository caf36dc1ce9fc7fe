"""Media input and output: sources that decode frames with their pts, sinks that encode them back.

``open_source`` and ``open_sink`` are the entry points; the classes are public for callers that
want one backend explicitly. Every source and sink is a context manager with an idempotent
``close()`` (sinks also have ``abort()``, which leaves nothing at the target path).

The names below are imported on first use: a light module of this package (``io.atomic``, which every
command's output checks use) then imports no torch, PyAV or OpenCV, and a bad ``-o`` or ``--progress-json``
is answered in a fraction of a second instead of after 1.5-3 s of imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from birefvid.lazy_names import lazy_names

if TYPE_CHECKING:  # what type checkers see of the lazy names below (else Any: no checks; the package ships py.typed)
    from .animated_source import AnimatedWebPSource  # noqa: F401
    from .base import Sink, Source  # noqa: F401
    from .decord_source import DecordSource  # noqa: F401
    from .factory import is_sequence_target, open_sink, open_source  # noqa: F401
    from .formats import SUPPORTED, choose_encoder  # noqa: F401
    from .image_sink import ImageSequenceSink  # noqa: F401
    from .image_source import ImageSequenceSource  # noqa: F401
    from .video_sink import VideoFileSink  # noqa: F401
    from .video_source import VideoFileSource  # noqa: F401

# each public name and the module of this package it comes from
_WHERE = {
    "AnimatedWebPSource": "animated_source",
    "DecordSource": "decord_source",  # behind the optional extra
    "ImageSequenceSink": "image_sink",
    "ImageSequenceSource": "image_source",
    "SUPPORTED": "formats",
    "Sink": "base",
    "Source": "base",
    "VideoFileSink": "video_sink",
    "VideoFileSource": "video_source",
    "choose_encoder": "formats",
    "is_sequence_target": "factory",
    "open_sink": "factory",
    "open_source": "factory",
}


__getattr__, __dir__ = lazy_names(__name__, _WHERE, globals())

__all__ = sorted(_WHERE)
