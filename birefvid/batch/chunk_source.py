"""Read frames ``start - before`` .. ``end + after`` of a video: seek to the keyframe before, decode, keep the range."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..errors import SourceError
from ..frames import Frame, StreamInfo
from ..io.base import Source, ffmpeg_name
from ..io.deinterlace import Deinterlacer
from ..io.pixel_shape import PixelShapes, context_sar
from ..io.video_source import (SEEK_TRIES, ConcealedFrames, VideoFileSource, alpha_decoder, decode_packet, earlier_target, ffmpeg_reason,
                               video_stream_at)
from .plan import Chunk

if TYPE_CHECKING:
    from fractions import Fraction

    import av


class ChunkSource(Source):
    """Upright RGB frames of one chunk's decode range, with the stream's own pts (as ``VideoFileSource`` gives them)."""

    def __init__(self, path: str | Path, chunk: Chunk, *, threads: int = 0, deinterlace: bool = True, video_stream: Optional[int] = None,
                 input_colors: str = "auto") -> None:  # fmt: skip
        """``threads``: decoder and colour-conversion threads (0: the codec's choice), ``deinterlace``, ``video_stream`` and
        ``input_colors``, as ``VideoFileSource``'s."""
        super().__init__()
        import av

        if chunk.first_pts is None or chunk.last_pts is None:
            raise ValueError("ChunkSource needs a chunk planned with timestamps")
        self.path = Path(path)
        self.chunk = chunk
        self._threads = threads
        self._deinterlace = deinterlace
        self._video_stream = video_stream
        with VideoFileSource(self.path, video_stream=video_stream, input_colors=input_colors) as whole:  # stream facts exactly as `process` sees them
            self._info = whole.info
            self.rotation = whole.rotation
            self.mirrored = whole.mirrored
        self._container = av.open(ffmpeg_name(self.path))
        self._iterated = False
        self._deep = False

    def deliver_deep(self) -> bool:
        """Frames carry their 16-bit picture too, as ``VideoFileSource.deliver_deep`` says."""
        self._deep = True
        return True

    @property
    def info(self) -> StreamInfo:
        return self._info

    def __iter__(self) -> Iterator[Frame]:
        self._claim_iteration()
        return self._iter()

    def _iter(self) -> Iterator[Frame]:
        import av

        from ..io._pixels import RgbConverter, upright

        chunk = self.chunk
        width, height = self._info.width, self._info.height  # the stream's first picture, upright
        stored = (height, width) if self.rotation % 180 else (width, height)
        stream = video_stream_at(self._container, self._video_stream)
        assert stream is not None  # VideoFileSource found it above
        to_rgb = RgbConverter(self._threads, name=str(self.path), size=stored, first_index=chunk.start - chunk.before,
                              sar=stream.sample_aspect_ratio, matrix=self._info.colorspace)  # fmt: skip
        initial = context_sar(stream.codec_context)  # opened at the file's start: its first pixel shape
        stream.thread_type = "AUTO"
        if self._threads:
            stream.codec_context.thread_count = self._threads
        lo, hi = chunk.first_pts, chunk.last_pts
        assert lo is not None and hi is not None
        expected = chunk.before + chunk.frames + chunk.after
        index = chunk.start - chunk.before
        count = 0
        damaged = ConcealedFrames(self.path)
        try:
            decoded = self._decode_from(stream, lo, initial)
            # the frames before the chunk are decoded from its keyframe on, so the deinterlacer sees each
            # frame's neighbours as `process` does, but at a chunk that starts on a keyframe without an overlap
            # (--smooth none), whose first frame is deinterlaced from its own fields alone
            for frame in Deinterlacer(str(self.path))(decoded) if self._deinterlace else decoded:
                if frame.pts is None or frame.pts < lo:
                    continue
                if frame.pts > hi:
                    break
                if frame.is_corrupt and chunk.start <= index < chunk.end:  # kept, as `process` keeps it; its overlap is another chunk's
                    damaged.note(index)
                sar = self._shapes.of(frame)  # None: the stream's own pixel shape
                coverage = to_rgb.alpha(frame, sar)  # the source's own alpha, as VideoFileSource gives it
                coverage = None if coverage is None else upright(coverage, self.rotation, self.mirrored)
                if self._deep:
                    image, deep = (upright(a, self.rotation, self.mirrored) for a in to_rgb.deep(frame, sar))
                    yield Frame(image=image, pts=frame.pts, time_base=self._info.time_base, index=index, deep=deep, coverage=coverage)
                else:
                    yield Frame(image=upright(to_rgb(frame, sar), self.rotation, self.mirrored), pts=frame.pts, time_base=self._info.time_base,
                                index=index, coverage=coverage)  # fmt: skip
                index += 1
                count += 1
                if frame.pts == hi:
                    break
        except SourceError:
            raise
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(f"{self.path}: decoding chunk {chunk.index} failed at frame {index} ({ffmpeg_reason(exc)}); the file is damaged") from exc
        damaged.summarise()
        if count != expected:
            raise SourceError(f"{self.path}: chunk {chunk.index} decoded {count} frames, expected {expected}; the file is damaged or not seekable")

    def _decode_from(self, stream: "av.video.stream.VideoStream", pts: int, initial: "Fraction") -> Iterator["av.VideoFrame"]:
        """Decoded frames from a keyframe at or before ``pts`` on.

        A seek to two frames before an open GOP's keyframe (HEVC's, x265's default and many phones') landed
        on the keyframe, and the chunk missed its first frames ("decoded 18 frames, expected 20"): each
        overshoot seeks back further (``earlier_target``); the last try reads from the start.
        """
        target = pts
        decoder = alpha_decoder(stream, self._threads or 0)  # VP9 with alpha: its own decoder keeps it
        for attempt in range(SEEK_TRIES):
            last = attempt == SEEK_TRIES - 1
            self._container.seek((stream.start_time or 0) if last else target, stream=stream, backward=True, any_frame=False)
            if decoder is not None:
                decoder.flush_buffers()
            self._shapes = PixelShapes(decoder or stream.codec_context, initial)  # ``initial``: the file's first
            frames = (f for packet in self._container.demux(stream) for f in self._decoded(packet, decoder, stream))
            first = next(frames, None)
            if first is None or first.pts is None or first.pts <= pts or last:
                return itertools.chain([] if first is None else [first], frames)
            target = earlier_target(target, first.pts)
        raise AssertionError("unreachable")

    def _decoded(self, packet: "av.Packet", decoder: "Optional[av.codec.CodecContext]", stream: "av.video.stream.VideoStream"
                 ) -> list["av.VideoFrame"]:  # fmt: skip
        """``packet``'s frames, its decoder's pixel shape noted (``PixelShapes``)."""
        frames = decode_packet(packet, decoder)
        self._shapes.sent(packet, decoder or stream.codec_context)
        return frames

    def _close(self) -> None:
        self._container.close()
