"""Each decoded picture's pixel shape (sample aspect ratio), for sources whose pixel shape changes midway.

PyAV's frames do not carry it; the decoder's context does, updated as it reads a new sequence header, a few
frames ahead of the pictures it applies to (its reorder delay). A change is dated from the keyframe that
brought it: a broadcast's HD programme (1920x1080, square pixels) and its SD advert (720x576, 64:45) have the
same 16:9 shape, which the pixel shape alone tells.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction
from typing import Optional

import av


def context_sar(context: av.codec.CodecContext) -> Fraction:
    """A decoder's current pixel shape; square when it says none (0:1, None)."""
    sar = getattr(context, "sample_aspect_ratio", None)
    return Fraction(sar) if sar else Fraction(1)


class PixelShapes:
    """Follows a decoder's pixel shape: ``sent`` after each packet it decodes, ``of`` for each frame, in order."""

    def __init__(self, context: av.codec.CodecContext, initial: Optional[Fraction] = None) -> None:
        """``initial``: the stream's first pixel shape as its decoder said it (default: what it says now; after a
        seek it may say another part's)."""
        self._last = context_sar(context)
        self._initial = self._last if initial is None else initial
        self._key: Optional[int] = None  # pts of the latest keyframe sent: where a change starts
        self._changes: deque[tuple[Optional[int], Optional[Fraction]]] = deque()
        self._current: Optional[Fraction] = None if self._last == self._initial else self._last  # None: the stream's own

    def sent(self, packet: av.Packet, context: av.codec.CodecContext) -> None:
        """Note the decoder's pixel shape after it took ``packet``."""
        if packet.is_keyframe and packet.pts is not None:
            self._key = packet.pts
        sar = context_sar(context)
        if sar != self._last:
            self._last = sar
            self._changes.append((self._key, None if sar == self._initial else sar))

    def of(self, frame: av.VideoFrame) -> Optional[Fraction]:
        """``frame``'s pixel shape as stored (before rotation) when it differs from the stream's first, else None."""
        while self._changes and (self._changes[0][0] is None or frame.pts is not None and frame.pts >= self._changes[0][0]):
            self._current = self._changes.popleft()[1]
        return self._current
