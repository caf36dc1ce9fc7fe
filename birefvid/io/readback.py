"""Read outputs back: the alpha (or mask) of every frame of a video or PNG folder, streamed.

Used to check results against known masks. WebM alpha lives in a side channel that FFmpeg's
native vp9 decoder drops, so VP9 streams are decoded with ``libvpx-vp9``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Union

import av
import cv2
import numpy as np

from ..errors import SourceError
from .base import ffmpeg_name
from .demuxing import demuxed
from .video_source import main_video_stream


def decode_video_frames(path: Union[str, Path]) -> Iterator[av.VideoFrame]:
    """Every frame of the first video stream that is no cover picture, keeping alpha (libvpx-vp9 for VP9)."""
    try:
        container = av.open(ffmpeg_name(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise SourceError(f"{path} is not a readable video ({exc})") from exc
    with container:
        stream = main_video_stream(container)
        if stream is None:
            raise SourceError(f"{path} has no video stream")
        if stream.codec_context is None:  # a damaged stream description, or a codec this FFmpeg lacks
            raise SourceError(f"{path}: its video stream's codec is unknown to FFmpeg")
        if stream.codec_context.name != "vp9":  # read on past the demuxer's EAGAIN, as ffmpeg (0xFF after a TS cut off)
            yield from (frame for packet in demuxed(container, stream) for frame in packet.decode())
            return
        decoder = av.codec.CodecContext.create("libvpx-vp9", "r")
        for packet in container.demux(stream):
            for frame in decoder.decode(packet if packet.size else None):
                frame.pts = frame.pts if frame.pts is not None else packet.pts
                yield frame


def iter_alpha(path: Union[str, Path]) -> Iterator[np.ndarray]:
    """uint8 (H, W) per frame: the alpha of RGBA outputs, or the grey level of mask outputs."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.png"))
        if not files:
            raise SourceError(f"no PNG files in {p}")
        for f in files:
            data = np.fromfile(f, np.uint8)  # not cv2.imread: it opens no name outside Windows' code page
            image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
            if image is None:
                raise SourceError(f"{f} is not a readable image")
            yield image[..., 3] if image.ndim == 3 and image.shape[2] == 4 else (image if image.ndim == 2 else image[..., 0])
        return
    for frame in decode_video_frames(p):
        if frame.format.name.startswith(("yuva", "rgba", "bgra", "argb", "abgr", "gbrap", "ya")):
            yield frame.to_ndarray(format="rgba")[..., 3]
        else:
            yield frame.to_ndarray(format="gray")
