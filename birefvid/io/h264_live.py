"""The H.264 stream every network sink sends: tuned for latency, not size, and tagged with its matrix.

libx264 ultrafast/zerolatency, no B-frames, a keyframe about every second (a player joining late
waits at most that long); odd sizes padded to even for yuv420p by repeating the edge. H.264 has no
alpha, so only rgb and gray pictures are taken. Shared by the RTSP and MPEG-TS publishers.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Optional

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from birefvid.io._pixels import RgbToYuv
from birefvid.io.untagged import SWS_MATRIX, rgb_matrix

ALPHA_HINT = "H.264 carries no alpha; to keep alpha record to a .webm, .mov or .mkv file sink instead"
ACCEPTS = frozenset({"rgb", "gray"})


class LiveH264:
    """Adds a low-latency H.264 stream for ``width`` x ``height`` pictures at ``fps`` to ``out`` and
    turns pictures into the frames it takes (the caller checks their kind and size)."""

    def __init__(
        self, out: av.container.OutputContainer, *, width: int, height: int, fps: float, time_base: Fraction, max_kbps: Optional[int] = None,
        sample_aspect_ratio: Optional[Fraction] = None,
    ) -> None:
        """``max_kbps`` caps the bitrate (x264's VBV, a one-second buffer): streaming services
        refuse or cut streams above their limit (Twitch: 6000 kbit/s). ``sample_aspect_ratio``: the
        source's pixel shape when not square (a D1 camera's 12:11), written into the H.264 stream's
        VUI, which players read whatever carries the stream (RTSP, MPEG-TS, FLV)."""
        self.width, self.height = width, height
        self.enc_width, self.enc_height = width + width % 2, height + height % 2
        self._reformatter = VideoReformatter()  # keeps its swscale context from frame to frame
        # BT.709 for HD, BT.601 below, limited range, and said so in the stream: a player that ignores the tag
        # takes the same matrix by the size, as it does of untagged video
        self._matrix = rgb_matrix(width, height)
        self._colour: dict[str, object] = {"dst_colorspace": SWS_MATRIX[self._matrix], "dst_color_range": 1}
        self._rgb_to_yuv = RgbToYuv("yuv420p", **self._colour)
        options = {"preset": "ultrafast", "tune": "zerolatency", "bf": "0"}
        if max_kbps is not None:
            options.update(maxrate=f"{max_kbps}k", bufsize=f"{max_kbps}k")
        stream = out.add_stream("libx264", options=options)
        cc = stream.codec_context
        stream.width, stream.height, stream.pix_fmt = self.enc_width, self.enc_height, "yuv420p"
        stream.time_base = cc.time_base = time_base
        cc.framerate = Fraction(fps).limit_denominator(1001)
        cc.gop_size = max(1, round(fps))
        cc.max_b_frames = 0
        # the primaries and transfer are the sRGB / BT.709 ones the pictures have, whichever the matrix
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = self._matrix, 1, 1, 1
        if sample_aspect_ratio and sample_aspect_ratio != 1:
            cc.sample_aspect_ratio = sample_aspect_ratio
        self.stream = stream

    def frame(self, picture: np.ndarray) -> av.VideoFrame:
        """``picture`` ((H, W, 3) RGB or (H, W) gray uint8) as a yuv420p frame of the encoder's size."""
        if (self.enc_width, self.enc_height) != (self.width, self.height):
            pad = ((0, self.enc_height - self.height), (0, self.enc_width - self.width)) + ((0, 0),) * (picture.ndim - 2)
            picture = np.pad(picture, pad, mode="edge")
        if picture.ndim == 3:
            return self._rgb_to_yuv(picture)
        # only the conversion below reads this frame: it wraps the pixels rather than copying them
        frame = av.VideoFrame.from_numpy_buffer(np.ascontiguousarray(picture), format="gray")
        return self._reformatter.reformat(frame, format="yuv420p", **self._colour)
