"""Read an animated WebP (stickers, cut-outs, birefvid's own ``.webp`` output) with Pillow, one frame at a time.

FFmpeg's webp decoder decodes still WebP only, so ``open_source`` sends a WebP whose header says
"animation" here. libwebp's animation decoder (through Pillow) needs the compressed file whole, so
that is held in memory; pictures are decoded one at a time, as they are read. Frame times come
from the ANMF chunks' durations, read from the chunk headers when the file opens, so the frame
count, rate and length are known before the first picture is decoded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Optional

import numpy as np

from birefvid.errors import SourceError, input_not_found
from birefvid.frames import Frame, StreamInfo
from birefvid.io.base import Source, check_picture_size
from birefvid.io.untagged import rgb_matrix

# WebP counts frame durations in milliseconds
WEBP_TIME_BASE = Fraction(1, 1000)
# The WebP spec leaves a duration of 0 (and often <= 10 ms) to the player: Chromium and Firefox show
# a frame of 10 ms or less for 100 ms (their rule for GIF, applied to every animation). Timed so here
# too, the output plays as a browser played the input, and no two frames share a timestamp.
SHORTEST_DURATION_MS = 10
PLAYER_DURATION_MS = 100

_ANIMATION_FLAG = 0x02  # in the VP8X chunk's flags byte


def is_animated_webp(path: str | Path) -> bool:
    """True when ``path`` is a file whose WebP header (VP8X chunk) says it is an animation; reads 21 bytes."""
    p = Path(path)
    try:
        if not p.is_file():  # a FIFO or device is not peeked at: that would eat the data a decoder needs
            return False
        with open(p, "rb") as f:
            head = f.read(21)
    except OSError:
        return False
    return len(head) == 21 and head[:4] == b"RIFF" and head[8:16] == b"WEBPVP8X" and bool(head[20] & _ANIMATION_FLAG)


def frame_durations(path: str | Path) -> list[int]:
    """Each frame's duration in ms as the file declares it (ANMF chunks), from the chunk headers alone."""
    p = Path(path)
    durations: list[int] = []
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WEBP":
                raise SourceError(f"{p} is not a WebP file")
            end = 8 + int.from_bytes(head[4:8], "little")
            if end > size:
                raise SourceError(f"{p} is truncated ({size} of {end} bytes); the animated WebP is damaged")
            at = 12
            while at + 8 <= end:
                f.seek(at)
                chunk = f.read(8 + 16)  # the chunk header, and an ANMF chunk's frame header
                fourcc, length = chunk[:4], int.from_bytes(chunk[4:8], "little")
                if fourcc == b"ANMF":
                    if len(chunk) < 24 or length < 16:
                        raise SourceError(f"{p}: frame {len(durations)}'s header is cut short; the animated WebP is damaged")
                    durations.append(int.from_bytes(chunk[20:23], "little"))
                at += 8 + length + (length & 1)  # chunks are padded to an even size
            if at > end:
                raise SourceError(f"{p}: a chunk runs past the end of the file; the animated WebP is damaged")
    except SourceError:
        raise
    except OSError as e:
        raise SourceError(f"cannot read {p} ({e.strerror or e})") from e
    return durations


def player_duration(ms: int) -> int:
    """How long a browser shows a frame of ``ms`` milliseconds: 100 ms for 10 ms or less (see above)."""
    return PLAYER_DURATION_MS if ms <= SHORTEST_DURATION_MS else ms


def over_black(rgba: np.ndarray) -> np.ndarray:
    """Composite RGBA (h, w, 4) uint8 over black: each colour times its alpha, rounded."""
    alpha = rgba[..., 3:].astype(np.uint16)
    return ((rgba[..., :3] * alpha + 127) // 255).astype(np.uint8)


class AnimatedWebPSource(Source):
    """Frames of an animated WebP as uint8 RGB, each at its start time in milliseconds (time base 1/1000).

    Transparent pixels are composited over black (colour times alpha): clear ones then look as they do
    when Pillow, OpenCV or FFmpeg drop the alpha (libwebp's canvas starts transparent black), so the
    model sees a cut-out as other tools show it; white would swallow the white outline many stickers have.
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        from PIL import Image  # a dependency; imported here since only animated WebP input needs it

        self.path = Path(path)
        if not self.path.exists():
            raise SourceError(input_not_found(self.path))
        declared = frame_durations(self.path)
        try:
            self._image = Image.open(self.path, formats=["WEBP"])
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise SourceError(f"{self.path} is not a readable animated WebP ({e}); the file is damaged") from e
        try:
            count = getattr(self._image, "n_frames", 1)
            if not declared or count != len(declared):
                raise SourceError(f"{self.path}: its header lists {len(declared)} frames but libwebp finds {count}; the file is damaged")
            width, height = self._image.size
            check_picture_size(width, height, self.path)
        except BaseException:
            self._image.close()
            raise
        self.durations = [player_duration(ms) for ms in declared]  # what each frame is shown for, in ms
        total = sum(self.durations)
        self._info = StreamInfo(
            width=width,
            height=height,
            time_base=WEBP_TIME_BASE,
            average_rate=Fraction(1000 * count, total).limit_denominator(1001),
            frame_count=count,
            duration=total / 1000,
            colorspace=rgb_matrix(width, height),  # RGB pictures name no YUV matrix: a video output's, by its size
            rgb_pictures=True,
        )
        self._lock = threading.Lock()  # close() from another thread waits for the frame being decoded
        self._iterated = False

    @property
    def info(self) -> StreamInfo:
        return self._info

    def __iter__(self) -> Iterator[Frame]:
        self._claim_iteration()
        return self._iter()

    def _iter(self) -> Iterator[Frame]:
        pts = 0
        for index, ms in enumerate(self.durations):
            with self._lock:
                if self.closed:
                    return
                image, coverage = self._decode(index)
            yield Frame(image=image, pts=pts, time_base=WEBP_TIME_BASE, index=index, coverage=coverage)
            pts += ms

    def _decode(self, index: int) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """Frame ``index`` (the one after the last decoded) as RGB, transparent pixels over black, and its
        alpha (None when it has none or is wholly opaque), which the matte is multiplied by."""
        pixels = self.pixels(index)
        if pixels.shape[2] != 4:
            return np.array(pixels), None
        alpha = np.ascontiguousarray(pixels[..., 3])
        return over_black(pixels), (None if alpha.min() == 255 else alpha)

    def pixels(self, index: int) -> np.ndarray:
        """Frame ``index`` as libwebp decodes it, alpha kept: (h, w, 4) RGBA or (h, w, 3) RGB. For readers
        that want the alpha itself (``birefvid eval``); not while the source is being iterated. In order is fastest."""
        try:
            self._image.seek(index)
            self._image.load()
            pixels = np.asarray(self._image)
        except (OSError, ValueError, EOFError, SyntaxError) as e:
            raise SourceError(f"{self.path}: decoding failed at frame {index} ({e}); the file is damaged") from e
        if pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
            raise SourceError(f"{self.path}: frame {index} decoded as {self._image.mode}, not RGB or RGBA")
        return pixels

    def _close(self) -> None:
        with self._lock:
            self._image.close()
