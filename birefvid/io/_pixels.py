"""Turn decoded pictures into upright RGB arrays (uint8, or uint16 for deep outputs; rotation metadata, any pixel format), and RGB into encoder frames."""

from __future__ import annotations

import functools
import logging
from fractions import Fraction
from typing import Optional

import av
import cv2
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from birefvid.io.side_data import side_data
from birefvid.io.untagged import SWS_MATRIX, untagged

log = logging.getLogger(__name__)


def upright(image: np.ndarray, rotation: int, mirrored: bool = False) -> np.ndarray:
    """Rotate ``image`` counter-clockwise by ``rotation`` degrees (the display-matrix angle) so it displays upright;
    ``mirrored`` (``display_mirrored``): the matrix also flips the picture, which players (ffmpeg's autorotate, 5.1 to 7.x,
    whose rules these are) show flipped: a mirrored picture is flipped left to right, then turned 180 degrees more
    than ``rotation`` says (a left-right flip's matrix reads as -180, a top-bottom flip's as 0)."""
    k = round(rotation / 90) % 4
    if rotation % 90:
        log.warning("display rotation %s is not a multiple of 90 degrees; using %d", rotation, k * 90)
    # OpenCV, one pass: numpy's rot90 copied through strides at 7.3 ms a 720p RGB frame, cv2.rotate 0.7 (every
    # frame of a phone's rotated clip); the same pixels (np.rot90(image[:, ::-1], k + 2) for a mirrored one)
    if mirrored:
        turn = (k + 2) % 4
        if turn == 0:
            return cv2.flip(image, 1)  # left-right
        if turn == 2:
            return cv2.flip(image, 0)  # a left-right flip turned 180 degrees: top-bottom
        return cv2.transpose(image) if turn == 1 else cv2.flip(cv2.transpose(image), -1)  # about either diagonal
    return cv2.rotate(image, _CV2_TURNS[k]) if k else image


_CV2_TURNS = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}



def display_mirrored(frame: av.VideoFrame) -> bool:
    """Whether ``frame``'s display matrix flips the picture (a negative determinant), as a front camera's clip may say:
    ``frame.rotation`` gives its angle alone, so a left-right flip read as a 180-degree turn came out upside down."""
    for data in side_data(frame):
        if data.type.name == "DISPLAYMATRIX" and data.buffer_size >= 20:
            m = np.frombuffer(bytes(data), dtype="=i4", count=5).astype(np.int64)
            return bool(m[0] * m[4] - m[1] * m[3] < 0)
    return False


class RgbConverter:
    """Converts the decoded pictures of one stream, any pixel format (10-bit, YUV, gray, palette),
    to uint8 RGB with each frame's own colour tags; called from one thread.

    It keeps one swscale context for the stream (rebuilt only when a frame's size or format
    changes), where each ``frame.to_ndarray`` builds one afresh, with a pool of ``threads`` slice
    threads (0: one per core): on 2 cores that started two threads for every decoded frame.
    720p yuv420p -> RGB took 0.84-1.0 ms of CPU a frame that way, 0.38-0.42 ms here on one thread.
    """

    def __init__(self, threads: int = 0, *, name: str = "the stream", size: Optional[tuple[int, int]] = None, first_index: int = 0,
                 sar: Optional[Fraction] = None, matrix: Optional[int] = None) -> None:  # fmt: skip
        """``matrix``: the AVColorSpace value a frame that names none is read with (``io.untagged``); None: swscale's BT.601."""
        self.threads = int(threads)
        self.matrix = matrix
        self.name = name
        self._reformatter = VideoReformatter()
        self._size = size  # the stream's (width, height) as stored, before rotation; None: the first frame's
        self._sar = Fraction(sar) if sar else Fraction(1)  # the stream's pixel shape as stored (sample aspect ratio)
        self._count = first_index  # index of the next frame, for the warning
        self._first_index = first_index
        self._warned: Optional[tuple[tuple[int, int], Fraction]] = None  # the size and pixel shape last warned about
        self._alpha_reformatter: Optional[VideoReformatter] = None  # for sources with their own alpha only

    def __call__(self, frame: av.VideoFrame, sar: Optional[Fraction] = None) -> np.ndarray:
        """``frame`` as RGB at the stream's first picture size: a stream whose size changes midway (a
        browser or WebRTC recording adapting to bandwidth, a camera reconfigured) is scaled back to
        it, as FFmpeg's own command line does, since every output has one size. A picture of another
        shape (a splice of 4:3 into 16:9) keeps its shape, fitted inside with black bars (``fit``). ``sar``: the
        frame's pixel shape when it is not the stream's (``pixel_shape.PixelShapes``), which tells its shape too."""
        return self._convert(frame, "rgb24", sar)

    def deep(self, frame: av.VideoFrame, sar: Optional[Fraction] = None) -> tuple[np.ndarray, np.ndarray]:
        """``frame`` as 16-bit RGB (H, W, 3) uint16, with its 8-bit RGB rounded from it (what the model sees).

        One swscale conversion to ``rgb48le`` keeps a 10- or 12-bit picture's every step; the 8-bit
        copy is OpenCV's rounding division by 257 (~0.6 ms a 720p frame), not a second conversion.
        """
        deep = self._convert(frame, "rgb48le", sar)
        return cv2.convertScaleAbs(deep, alpha=1 / 257.0), deep

    def alpha(self, frame: av.VideoFrame, sar: Optional[Fraction] = None) -> Optional[np.ndarray]:
        """``frame``'s own alpha (ProRes 4444, PNG, APNG, GIF, FFV1 with alpha) as uint8 (H, W) at the
        stream's first picture size, or None when its format has none or it is wholly opaque. A picture
        fitted inside with bars (``fit``) has alpha 0 on the bars: they are no part of the picture."""
        width, height = self._stream_size(frame)
        box = fit((frame.width, frame.height), (width, height), sar or self._sar, self._sar)
        if not has_alpha(frame):
            return None if box is None else bars_alpha(box, (width, height))
        inner = (width, height) if box is None else (box[2], box[3])
        alpha = deep_alpha8(frame) if (frame.width, frame.height) == inner else None
        if alpha is None:
            if self._alpha_reformatter is None:
                self._alpha_reformatter = VideoReformatter()
            rgba = self._alpha_reformatter.reformat(frame, format="rgba", width=inner[0], height=inner[1],
                                                    interpolation="AREA", threads=self.threads).to_ndarray()  # fmt: skip
            alpha = np.ascontiguousarray(rgba[..., 3])
        if box is not None:
            alpha = bars_alpha(box, (width, height), alpha)
        return None if alpha.min() == 255 else alpha

    def _stream_size(self, frame: av.VideoFrame) -> tuple[int, int]:
        """The stream's (width, height) as stored: the one given, else the first frame's."""
        if self._size is None:
            self._size = (frame.width, frame.height)
        return self._size

    def _convert(self, frame: av.VideoFrame, fmt: str, sar: Optional[Fraction] = None) -> np.ndarray:
        size = (frame.width, frame.height)
        self._count += 1
        width, height = self._stream_size(frame)
        sar = Fraction(sar) if sar else self._sar
        box = fit(size, (width, height), sar, self._sar)
        if (size, sar) != (self._size, self._sar) and self._warned != (size, sar):
            # a batch chunk that starts after the change does not see where it was: it says where it saw it
            where = f"at frame {self._count - 1}" if self._count - 1 > self._first_index else f"by frame {self._count - 1}"
            self._warned = (size, sar)
            was, now = _shown((width, height), self._sar), _shown(size, sar, self._sar)
            if box is None:
                log.warning("%s: the picture size changes from %s to %s %s; scaled back to %dx%d",
                            self.name, was, now, where, width, height)  # fmt: skip
            else:
                log.warning("%s: the picture size changes from %s to %s %s, another shape; the shape is kept, "
                            "scaled to %dx%d inside %dx%d with black bars (transparent where the output has alpha)",
                            self.name, was, now, where, box[2], box[3], width, height)  # fmt: skip
        picture = self._scaled(frame, fmt, (width, height) if box is None else (box[2], box[3]))
        if box is None:
            return picture
        canvas = np.zeros((height, width, 3), picture.dtype)  # black: RGB 0, full range
        x, y, w, h = box
        canvas[y : y + h, x : x + w] = picture
        return canvas

    def _scaled(self, frame: av.VideoFrame, fmt: str, size: tuple[int, int]) -> np.ndarray:
        """``frame`` as packed RGB (``fmt``: rgb24 or rgb48le) at ``size``."""
        width, height = size
        scale = Interpolation.AREA if (frame.width, frame.height) != size else Interpolation.BILINEAR
        src = self._source_matrix(frame)
        if fmt == "rgb48le" and _is_yuv(frame):
            # swscale puts limited-range YUV white at 65283 of 16-bit RGB (0.4% dark); planar with accurate
            # rounding is also ~5x faster than packed (720p 10-bit 4:2:0: 1.2 against 5.9 ms of CPU)
            planes = self._reformatter.reformat(frame, format="gbrp16le", width=width, height=height,
                                                interpolation=scale | Interpolation.ACCURATE_RND, threads=self.threads, **src)  # fmt: skip
            return planar_rgb(planes, 65535 / rgb16_white(picture_bits(frame), _full_range(frame)))
        if fmt == "rgb24" and _is_yuv(frame) and picture_bits(frame) > 8 and _full_range(frame):
            # swscale takes 10-bit full-range white as 255.75 of 8-bit RGB: a phone's or screen recording's
            # 10-bit full-range clip came out up to 0.8 levels bright (0.5 on average) in every 8-bit output;
            # its 16-bit path, corrected by rgb16_white, rounded to 8 bits is within rounding (~0.6 ms more a 720p frame)
            planes = self._reformatter.reformat(frame, format="gbrp16le", width=width, height=height,
                                                interpolation=scale | Interpolation.ACCURATE_RND, threads=self.threads, **src)  # fmt: skip
            gain = 65535 / rgb16_white(picture_bits(frame), True) / 257
            g, b, r = (np.frombuffer(memoryview(p), np.uint16).reshape(height, -1)[:, :width] for p in planes.planes[:3])
            return cv2.merge([cv2.convertScaleAbs(c, alpha=gain) for c in (r, g, b)])
        if fmt == "rgb24" and _is_yuv(frame):
            # swscale's packed-RGB path from 4:2:0/4:2:2 YUV is off by up to -1.7 levels (8-bit sources) and -2.9
            # (10-bit), every colour darker; its planar path with accurate rounding is within 0.42 (see planar_rgb)
            planes = self._reformatter.reformat(frame, format="gbrp", width=width, height=height,
                                                interpolation=scale | Interpolation.ACCURATE_RND, threads=self.threads, **src)  # fmt: skip
            return planar_rgb(planes)
        # a new frame each call: the arrays handed out earlier keep their own pixels
        return self._reformatter.reformat(frame, format=fmt, width=width, height=height,
                                          interpolation=scale, threads=self.threads, **src).to_ndarray()  # fmt: skip

    def _source_matrix(self, frame: av.VideoFrame) -> dict[str, str]:
        """``reformat``'s ``src_colorspace`` for a YUV frame that names no matrix, when one is assumed; else nothing:
        the frame's own tag."""
        if self.matrix is None or not _is_yuv(frame) or not untagged(int(frame.colorspace)):
            return {}
        name = SWS_MATRIX.get(self.matrix)
        return {} if name is None else {"src_colorspace": name}


def _shown(size: tuple[int, int], sar: Fraction, stream_sar: Optional[Fraction] = None) -> str:
    """``size`` for a message, with its pixel shape when not square (or, for ``stream_sar``, when it is another)."""
    square = sar == 1 if stream_sar is None or stream_sar == 1 else sar == stream_sar
    return f"{size[0]}x{size[1]}" + ("" if square else f" (pixels {sar.numerator}:{sar.denominator})")


def fit(size: tuple[int, int], target: tuple[int, int], sar: Fraction = Fraction(1), target_sar: Fraction = Fraction(1)
        ) -> Optional[tuple[int, int, int, int]]:  # fmt: skip
    """Where a picture of ``size`` (width, height) goes inside ``target`` keeping its shape: (x, y, width, height),
    centred; None when it fills ``target`` to within a pixel (the same shape: 640x360 -> 1280x720, 854x480 -> 1280x720),
    which is scaled to it. Stretched, a 4:3 splice in a 16:9 recording came out a third too wide. The shapes are the
    displayed ones: ``sar`` and ``target_sar`` are the pixel shapes (SD 720x576 at 64:45 is 16:9, as 1920x1080 is)."""
    (w, h), (tw, th) = size, target
    if (w, h) == (tw, th) and sar == target_sar:
        return None
    aspect, target_aspect = Fraction(w) * sar / h, Fraction(tw) * target_sar / th
    if aspect >= target_aspect:  # wider than the target: full width, bars above and below
        fw, fh = tw, max(1, round(tw * target_sar / aspect))
    else:
        fw, fh = max(1, round(th * aspect / target_sar)), th
    if fw >= tw - 1 and fh >= th - 1:
        return None
    return (tw - fw) // 2, (th - fh) // 2, fw, fh


def bars_alpha(box: tuple[int, int, int, int], target: tuple[int, int], inner: Optional[np.ndarray] = None) -> np.ndarray:
    """uint8 alpha (H, W) of ``target``'s size: 0 on the bars around ``box``, ``inner`` (default opaque) inside it."""
    x, y, w, h = box
    alpha = np.zeros((target[1], target[0]), np.uint8)
    alpha[y : y + h, x : x + w] = 255 if inner is None else inner
    return alpha


def _is_yuv(frame: av.VideoFrame) -> bool:
    """Whether a decoded picture is YUV (what cameras, phones and codecs store), not RGB, gray or a palette."""
    fmt = frame.format
    return not fmt.is_rgb and not fmt.has_palette and len(fmt.components) >= 3


def _full_range(frame: av.VideoFrame) -> bool:
    """Whether a YUV picture is full range (JPEG's, a phone's or webcam's ``yuvj``), not limited (video's 16-235)."""
    return frame.color_range == 2 or frame.format.name.startswith("yuvj")


def is_yuv_format(pix_fmt: str) -> bool:
    """Whether an encoder's pixel format is YUV (a matrix and a range apply), not RGB or gray."""
    fmt = av.VideoFormat(pix_fmt)
    return not fmt.is_rgb and not fmt.has_palette and len(fmt.components) >= 3


@functools.lru_cache(maxsize=16)
def rgb16_white(bits: int, full: bool) -> int:
    """The 16-bit RGB value swscale turns ``bits``-bit YUV white into, and back: 65535 by the formula.

    FFmpeg 8.1's swscale (PyAV 18.1's wheels) takes 16-bit RGB white as 65283 for limited-range YUV
    (and 64 x 1023 = 65472 for 10-bit full range), both ways: a 10-bit clip's 16-bit PNGs came out
    0.4% dark, and a 16-bit plate or ``--background white`` went into ProRes 0.4% bright, white at
    943 of 940. Asked of swscale itself (a 2x2 conversion, once), so a fixed FFmpeg gives 65535.
    """
    fmt = "yuv444p" if bits <= 8 else f"yuv444p{bits}le"
    try:
        frame = av.VideoFrame(2, 2, fmt)
    except (ValueError, av.FFmpegError):  # a depth with no planar 4:4:4 format: take swscale as right
        return 65535
    dtype, scale = (np.uint8, 1) if bits <= 8 else (np.uint16, 1 << (bits - 8))
    white = (1 << bits) - 1 if full else 235 * scale
    for plane, value in zip(frame.planes, (white, 128 * scale, 128 * scale)):
        np.frombuffer(memoryview(plane), dtype)[:] = value
    frame.color_range = 2 if full else 1
    rgb = VideoReformatter().reformat(frame, format="gbrp16le", interpolation=Interpolation.BILINEAR | Interpolation.ACCURATE_RND)
    return int(np.frombuffer(memoryview(rgb.planes[0]), np.uint16)[0]) or 65535


@functools.lru_cache(maxsize=16)
def rgb16_white_in(bits: int, full: bool) -> int:
    """The 16-bit RGB value swscale turns into ``bits``-bit YUV white, the other way from ``rgb16_white``.

    The two differ for full range: FFmpeg 8.1 reads 10-bit full-range white as 65472 (64 x 1023) but writes
    65280 (255 x 256) as white, so a full-range 10-bit source's FFV1 or x265 cut-out, scaled by the read one,
    came out up to 3 levels bright in its mid-tones (gray 512 as 514). Measured as the slope of a gray ramp
    converted by swscale itself (once), so a fixed FFmpeg gives 65535. Limited range reads and writes the same
    white (65283; the ramp's fit gives it within 3), so it keeps the read one.
    """
    if not full:
        return rgb16_white(bits, full)
    fmt = "yuv444p" if bits <= 8 else f"yuv444p{bits}le"
    values = np.linspace(0, 60000, 256).round()  # below white: no clipping
    ramp = np.repeat(values.astype(np.uint16)[None, :, None], 3, axis=2).repeat(2, axis=0)
    try:
        yuv = VideoReformatter().reformat(planar_deep_frame(np.ascontiguousarray(ramp)), format=fmt, dst_color_range=2 if full else 1,
                                          interpolation=Interpolation.BILINEAR | Interpolation.ACCURATE_RND)  # fmt: skip
    except (ValueError, av.FFmpegError):  # a depth with no planar 4:4:4 format: take swscale as right
        return 65535
    dtype, scale = (np.uint8, 1) if bits <= 8 else (np.uint16, 1 << (bits - 8))
    plane = yuv.planes[0]
    stride = plane.line_size // np.dtype(dtype).itemsize
    luma = np.frombuffer(memoryview(plane), dtype)[:stride][: values.size].astype(np.float64)
    slope = np.polyfit(values, luma, 1)[0]
    span = (1 << bits) - 1 if full else 219 * scale
    return int(round(span / slope)) if slope > 0 else 65535


@functools.lru_cache(maxsize=32)
def chroma_centre_error(pix_fmt: str, deep: bool, full: bool, matrix: Optional[str] = None) -> int:
    """What to add to ``pix_fmt``'s chroma samples after swscale converts RGB (16-bit when ``deep``, else 8-bit) to it.

    FFmpeg 8.1 puts full-range 10-bit chroma's centre at 511.5 (gray at 511, not 512), and that of 8-bit from 16-bit
    RGB at 127: every colour of a full-range 10-bit source's FFV1 or x265 cut-out moved a level towards green (1.4
    10-bit levels of RGB on average). Measured on a gray picture converted as the sinks convert (``to_yuv``, which
    takes 8-bit full range through 16 bits and needs none), once per format, so a fixed FFmpeg gives 0.
    """
    if not is_yuv_format(pix_fmt):
        return 0
    if deep:
        gray = planar_deep_frame(np.full((2, 2, 3), 32768, np.uint16))
    else:
        gray = av.VideoFrame.from_ndarray(np.full((2, 2, 3), 128, np.uint8), format="rgb24")
    options: dict[str, object] = {"dst_color_range": 2 if full else 1}
    if matrix is not None:
        options["dst_colorspace"] = matrix
    out = to_yuv(VideoReformatter(), gray, pix_fmt, **options)  # as the sinks convert
    comp = av.VideoFormat(pix_fmt).components[1]
    dtype = np.uint8 if comp.bits <= 8 else np.dtype(">u2" if av.VideoFormat(pix_fmt).is_big_endian else "<u2")
    return (1 << (comp.bits - 1)) - int(np.frombuffer(memoryview(out.planes[comp.plane]), dtype)[0])


def shift_chroma(frame: av.VideoFrame, offset: int) -> av.VideoFrame:
    """``frame`` (planar YUV) with ``offset`` added to its two chroma planes, saturated (``chroma_centre_error``)."""
    if offset == 0:
        return frame
    for comp in frame.format.components[1:3]:
        plane = frame.planes[comp.plane]
        dtype = np.uint8 if comp.bits <= 8 else np.uint16
        stride = plane.line_size // np.dtype(dtype).itemsize
        rows = np.frombuffer(memoryview(plane), dtype)[: plane.height * stride].reshape(plane.height, stride)[:, : plane.width]
        if offset > 0:  # saturated in place: an int32 copy of a 1080p 4:4:4 plane and back took 2.3 times as long
            np.minimum(rows, (1 << comp.bits) - 1 - offset, out=rows)
            rows += offset
        else:
            np.maximum(rows, -offset, out=rows)
            rows -= -offset
    return frame


def gain16(pixels: np.ndarray, gain: float) -> np.ndarray:
    """``pixels`` (uint16, any shape, C-contiguous) times ``gain``, rounded and saturated (~1 ms a 720p RGB frame); as they are for 1."""
    if gain == 1:
        return pixels
    return cv2.multiply(pixels.reshape(pixels.shape[0], -1), 1.0, scale=gain, dtype=cv2.CV_16U).reshape(pixels.shape)


def planar_rgb(frame: av.VideoFrame, gain: float = 1.0) -> np.ndarray:
    """A ``gbrp`` (uint8) or ``gbrp16le`` frame as packed RGB (H, W, 3), in one OpenCV merge (~0.3 ms a 720p
    frame at 8 bits), 16-bit ones times ``gain`` (see ``rgb16_white``).

    FFmpeg 8.1's swscale (PyAV 18.1's wheels) converts 8-bit 4:2:0 BT.709 limited-range YUV to
    packed RGB with errors up to 1.7 levels, green 1.1 darker on average over six colours, and
    10-bit 4:2:0/4:2:2 up to 2.9 levels, all channels ~1.2 darker; to planar RGB with
    ``ACCURATE_RND`` it is within rounding (0.42) for both, at ~1.3 ms of CPU a 720p frame
    against ~0.35 (tests/test_io_sources.py checks flat colours against the BT.601/709 formulas).
    """
    h, w = frame.height, frame.width
    dtype = np.uint16 if frame.format.name.startswith("gbrp16") else np.uint8
    g, b, r = (np.frombuffer(memoryview(p), dtype).reshape(h, -1)[:, :w] for p in frame.planes[:3])
    return gain16(cv2.merge([r, g, b]), gain) if dtype == np.uint16 else cv2.merge([r, g, b])


def has_alpha(frame: av.VideoFrame) -> bool:
    """Whether a decoded picture's format carries alpha (yuva*, rgba, gbrap, ya8, ...; a palette's entries may)."""
    fmt = frame.format
    return fmt.has_palette or any(c.is_alpha for c in fmt.components)


def deep_alpha8(frame: av.VideoFrame) -> Optional[np.ndarray]:
    """A 9- to 16-bit alpha plane (ProRes 4444, FFV1 yuva444p10le, ...) rounded to uint8 (H, W), read from the plane
    itself; None for 8-bit alpha and alpha that shares a plane. swscale's RGBA read put half of a 10-bit matte's
    soft values a level high (0.5 on average; 12-bit 0.15), so the source's own transparency cut into the matte unevenly."""
    fmt = frame.format
    comp = next((c for c in fmt.components if c.is_alpha), None)
    if comp is None or comp.bits <= 8 or not fmt.is_planar or sum(c.plane == comp.plane for c in fmt.components) != 1:
        return None
    plane = frame.planes[comp.plane]
    dtype = np.dtype(">u2" if fmt.is_big_endian else "<u2")
    stride = plane.line_size // 2
    rows = np.frombuffer(memoryview(plane), dtype)[: plane.height * stride].reshape(plane.height, stride)[:, : plane.width]
    top = (1 << comp.bits) - 1
    return ((rows.astype(np.uint32) * 510 + top) // (2 * top)).astype(np.uint8)  # round half up


def picture_bits(frame: av.VideoFrame) -> int:
    """Bits per sample of a decoded picture's format: 8 for most video, 10 for 10-bit HEVC, ProRes, DNxHR, 12, 16."""
    return max((c.bits for c in frame.format.components), default=8)


def rotated_size(width: int, height: int, rotation: int) -> tuple[int, int]:
    """Display size after a display-matrix rotation."""
    return (height, width) if round(rotation / 90) % 2 else (width, height)


def conversion_threads(pix_fmt: str, threads: Optional[int] = None) -> int:
    """swscale slice threads for converting pictures to an encoder's ``pix_fmt`` (0: one per core).

    With slice threads, the FFmpeg 8.1 in PyAV 18.1's wheels corrupts a few samples of some
    frames when it converts to a format of more than 8 bits: 854x480 RGBA -> yuva444p10le (ProRes
    4444's format) had 8-16 samples a frame off by up to half the range, the alpha plane included,
    in every conversion; odd widths too; 720p and 1080p did not show it, nor did any 8-bit target.
    Such conversions run on one thread, which gives the exact result every time.
    """
    if max(c.bits for c in av.VideoFormat(pix_fmt).components) > 8:
        return 1
    return 0 if threads is None else int(threads)


def planar_deep_frame(picture: np.ndarray, gain: float = 1.0) -> av.VideoFrame:
    """A uint16 RGB or RGBA picture (H, W, C) as a planar ``gbrp16le`` / ``gbrap16le`` frame, written plane by plane.

    The compositor's pixels are channel-first, and the sinks see them through a transposed view:
    written a plane at a time they need no transposing copy, and swscale converts planar 16-bit RGB
    to the encoders' formats much faster than packed ``rgba64le`` (720p RGBA -> yuva444p10le, ProRes
    4444's format: 2.4 ms of CPU a frame against 7.0 on one core here, copies included; the same samples).
    The colour planes are multiplied by ``gain`` (for a YUV encoder: see ``rgb16_white``), alpha never.
    """
    h, w, c = picture.shape
    frame = av.VideoFrame(w, h, "gbrap16le" if c == 4 else "gbrp16le")
    for plane, channel in zip(frame.planes, (1, 2, 0, 3)):  # G, B, R, A
        stride = plane.line_size // 2
        rows = np.frombuffer(memoryview(plane), np.uint16)[: h * stride].reshape(h, stride)
        rows[:, :w] = picture[..., channel]
        if gain != 1 and channel < 3:
            cv2.multiply(rows[:, :w], 1.0, dst=rows[:, :w], scale=gain, dtype=cv2.CV_16U)
    return frame


# 8-bit YUV formats and the 16-bit ones with the same planes, through which full range is converted (``to_yuv``)
_SIXTEEN_BIT_TWIN = {"yuv420p": "yuv420p16le", "yuvj420p": "yuv420p16le", "yuv422p": "yuv422p16le", "yuvj422p": "yuv422p16le",
                     "yuv444p": "yuv444p16le", "yuvj444p": "yuv444p16le", "yuva420p": "yuva420p16le",
                     "yuva422p": "yuva422p16le", "yuva444p": "yuva444p16le"}  # fmt: skip


def to_yuv(reformatter: VideoReformatter, frame: av.VideoFrame, pix_fmt: str, **options: object) -> av.VideoFrame:
    """``frame`` (RGB) converted to ``pix_fmt`` by ``reformatter``; an 8-bit full-range YUV one through 16 bits.

    FFmpeg 8.1's swscale rounds full-range 8-bit chroma down (half a level on average, up to one): a phone's
    or webcam's cut-out came out 1.5 levels low in red and blue (a green cast) in H.264 and VP9. Converted to
    16 bits it is within 0.02 of the BT.601/709 formula, and rounded to 8 here (~0.4 ms more a 720p frame), on one
    swscale thread, as every conversion to more than 8 bits (``conversion_threads``).
    """
    twin = _SIXTEEN_BIT_TWIN.get(pix_fmt) if options.get("dst_color_range") == 2 else None
    if twin is None:
        return reformatter.reformat(frame, format=pix_fmt, **options)
    deep = reformatter.reformat(frame, format=twin, **{**options, "threads": 1})  # slice threads corrupt deep targets (conversion_threads)
    out = av.VideoFrame(deep.width, deep.height, pix_fmt)
    out.colorspace, out.color_range = deep.colorspace, deep.color_range
    for index, (src, dst) in enumerate(zip(deep.planes, out.planes)):
        w, h = dst.width, dst.height
        samples = np.frombuffer(memoryview(src), np.uint16)[: h * (src.line_size // 2)].reshape(h, -1)[:, :w]
        rows = np.frombuffer(memoryview(dst), np.uint8)[: h * dst.line_size].reshape(h, -1)[:, :w]
        # full range: 8-bit v is 16-bit 257 v, chroma around 128 and 32768 (no ties: 257 is odd)
        rows[:] = cv2.convertScaleAbs(samples, alpha=1 / 257, beta=128 - 32768 / 257 if index in (1, 2) else 0.0)
    return out


# swscale's RGB -> YUV conversions read 4-byte pixels faster than 3-byte ones and give the same bytes
# (yuv420p/422p/444p, 8 and 10 bits, any matrix and range: checked in tests/test_io_sinks.py)
_WIDENED_TARGETS = ("yuv",)


class RgbToYuv:
    """Converts a stream's RGB pictures (H, W, 3) uint8 to an encoder's YUV format, with one swscale context.

    The picture is first widened to RGBA in a buffer kept for the stream (OpenCV, ~0.12 ms a 720p
    frame): 720p RGB -> yuv420p then costs ~1.6 ms of CPU a frame on one core here instead of ~2.1,
    byte for byte the same. Other targets (RGB formats) convert from the RGB picture directly.
    """

    def __init__(self, pix_fmt: str, **options: object) -> None:
        self.pix_fmt = pix_fmt
        # dst_colorspace, dst_color_range, threads, as VideoReformatter.reformat takes them; threads by default
        # as conversion_threads says for this format
        self.options = {"threads": conversion_threads(pix_fmt), **options}
        self._widen = pix_fmt.startswith(_WIDENED_TARGETS)
        self._reformatter = VideoReformatter()
        self._rgba: np.ndarray | None = None

    def __call__(self, picture: np.ndarray) -> av.VideoFrame:
        """A new frame in ``pix_fmt``; ``picture`` is only read, here (the caller may reuse it afterwards)."""
        if picture.strides[1:] != (3, 1):  # OpenCV and from_numpy_buffer take row-padded pictures, not strided pixels
            picture = np.ascontiguousarray(picture)
        if self._widen:
            h, w = picture.shape[:2]
            if self._rgba is None or self._rgba.shape[:2] != (h, w):
                self._rgba = np.empty((h, w, 4), np.uint8)
            cv2.cvtColor(picture, cv2.COLOR_RGB2RGBA, dst=self._rgba)
            frame = av.VideoFrame.from_numpy_buffer(self._rgba, format="rgba")
        else:
            frame = av.VideoFrame.from_numpy_buffer(picture, format="rgb24")
        return to_yuv(self._reformatter, frame, self.pix_fmt, **self.options)
