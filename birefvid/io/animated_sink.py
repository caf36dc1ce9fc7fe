"""Animated pictures for the web (GIF, animated WebP, APNG), written as the frames come and renamed on success.

These are what people post cut-outs as (stickers, product spins, chat reactions): browsers and
chat apps show them with transparency where VP9-with-alpha plays only in some browsers. They carry
pictures only: no sound, subtitles or colour tags. Each frame keeps its own time (GIF counts in
hundredths of a second, WebP in milliseconds, APNG in fractions), the last one too, and the animation loops forever.

GIF has 256 colours a frame and on/off transparency: each frame gets its own palette, one entry of
it kept for "transparent" (``gif_quantize``; a whole-video palette would need every frame before the
first is written), and pixels under half opaque become transparent. Browsers show GIF delays under
2/100 s as 1/10 s, so a GIF skips frames that come sooner than 20 ms after the last one it kept, as
``ffmpeg -r 50`` would, rather than play a 60 fps clip at a sixth of its speed.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Optional

import av
import numpy as np

from birefvid.errors import SinkError
from birefvid.frames import StreamInfo
from birefvid.io.atomic import AtomicFile
from birefvid.io.base import Sink
from birefvid.io.formats import EncoderSpec
from birefvid.io.last_delay import apng_set_last_delay, webp_set_last_end
from birefvid.io.layout import check_images

log = logging.getLogger(__name__)

ANIMATED_MUXERS = frozenset({"gif", "webp", "apng"})
# muxer options that make the animation loop forever (GIF's default already; WebP and APNG play once)
_LOOP_FOREVER = {"gif": {"loop": "0"}, "webp": {"loop": "0"}, "apng": {"plays": "0"}}
_FRAME_FORMAT = {"alpha": "rgba", "mask": "gray", "rgb": "rgb24"}
GIF_MIN_DELAY = Fraction(2, 100)  # browsers replace shorter GIF delays with 1/10 s


_PALETTE_SAMPLE = 1 << 17  # pixels the palette is built from (a 720p frame has 7x that): same colours, 7x less time


def gif_quantize(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An RGB (h, w, 3) or RGBA (h, w, 4) picture as GIF pixels: palette indices (h, w) and a (256, 4) ARGB palette.

    The palette (Pillow's fast octree) is built from the opaque pixels only, a sample of them on
    a large frame; the picture is then mapped onto it with Floyd-Steinberg dithering, so gradients
    do not band. With alpha, pixels under half opaque get index 255, the palette's transparent entry.
    Written here rather than with FFmpeg's palettegen/paletteuse, which took 0.2-0.9 s a 720p
    frame of camera footage (a nearest-colour search per distinct colour) against ~20 ms for this.
    """
    from PIL import Image  # a dependency; imported here since only GIF output needs it

    rgb = np.ascontiguousarray(image[..., :3])
    opaque = image[..., 3] >= 128 if image.shape[-1] == 4 else None
    colours = 256 if opaque is None else 255
    pixels = rgb.reshape(-1, 3) if opaque is None else rgb[opaque]
    if len(pixels) == 0:
        pixels = rgb.reshape(-1, 3)[:1]
    if len(pixels) > _PALETTE_SAMPLE:
        pixels = pixels[:: -(-len(pixels) // _PALETTE_SAMPLE)]
    sample = Image.fromarray(np.ascontiguousarray(pixels[None]))
    palette_image = sample.quantize(colours, method=Image.Quantize.FASTOCTREE)
    rgb_palette = np.zeros((256, 3), np.uint8)
    found = np.asarray(palette_image.getpalette() or [], np.uint8)[: 256 * 3].reshape(-1, 3)
    rgb_palette[: len(found)] = found
    if opaque is not None:
        rgb_palette[255] = rgb_palette[0]  # so the mapping never picks the transparent entry for a colour of its own
    palette_image.putpalette(rgb_palette.tobytes())
    indices = np.array(Image.fromarray(rgb).quantize(palette=palette_image, dither=Image.Dither.FLOYDSTEINBERG))
    argb = np.full((256, 4), 255, np.uint8)
    argb[:, 1:] = rgb_palette
    if opaque is not None:
        indices[indices == 255] = 0  # the same colour as entry 255 held during the mapping
        indices[~opaque] = 255
        argb[255] = 0
    return indices, argb


def gif_clear_between_frames(path: Path) -> int:
    """Set every frame of the GIF at ``path`` to be cleared before the next is drawn (disposal
    method 2, "restore to background", which browsers show as transparent); returns the frames set.

    Written here because FFmpeg's GIF encoder picks the disposal from the frame itself: one with no
    transparent pixel keeps its pixels under the next, so a subject that fills a frame stays
    painted over the transparent background of every frame after it (checked with Pillow and
    FFmpeg's own decoder). Parses the blocks (GIF89a) and rewrites one byte a frame, in place.
    """
    offsets = []
    with open(path, "rb") as f:
        head = f.read(13)
        if len(head) < 13 or head[:3] != b"GIF":
            raise SinkError(f"{path} is not a GIF")
        if head[10] & 0x80:  # a global colour table follows the screen descriptor
            f.seek(3 << ((head[10] & 7) + 1), 1)
        while True:
            kind = f.read(1)
            if kind in (b"", b"\x3b"):  # the end, or the trailer
                break
            if kind == b"\x21":  # an extension: its label, then data sub-blocks
                label = f.read(1)
                if label == b"\xf9":  # graphic control: its first data byte holds the disposal method
                    offsets.append(f.tell() + 1)
                _skip_sub_blocks(f)
            elif kind == b"\x2c":  # an image: descriptor, optional local colour table, LZW data
                descriptor = f.read(9)
                if len(descriptor) < 9:
                    raise SinkError(f"{path}: an image block is cut short")
                if descriptor[8] & 0x80:
                    f.seek(3 << ((descriptor[8] & 7) + 1), 1)
                f.read(1)  # LZW minimum code size
                _skip_sub_blocks(f)
            else:
                raise SinkError(f"{path}: unexpected GIF block {kind.hex()}")
    with open(path, "r+b") as f:
        for at in offsets:
            f.seek(at)
            packed = f.read(1)[0]
            f.seek(at)
            f.write(bytes([(packed & ~0x1C) | (2 << 2)]))
    return len(offsets)


def _skip_sub_blocks(f: "io.BufferedReader") -> None:
    while (size := f.read(1)) and size[0]:
        f.seek(size[0], 1)


class AnimatedImageSink(Sink):
    """A GIF, animated WebP or APNG of ``kind`` pictures, in a temporary file renamed onto ``path`` on ``close()``."""

    def __init__(self, path: Path, spec: EncoderSpec, info: StreamInfo, *, overwrite: bool = True) -> None:
        super().__init__()
        if spec.muxer not in ANIMATED_MUXERS:
            raise SinkError(f"{path}: {spec.muxer} is not an animated-picture format ({', '.join(sorted(ANIMATED_MUXERS))})")
        self.path = Path(path)
        self.spec = spec
        self.info = info
        self._time_base = Fraction(info.time_base)
        self._frames = 0
        self._skipped = 0
        self._last_pts: Optional[int] = None
        self._first_pts: Optional[int] = None
        self._gap: Optional[int] = None  # between the last two frames kept
        self._held: Optional[av.Packet] = None  # GIF: the newest frame's packet, muxed once its delay is known
        self._file = AtomicFile(self.path, overwrite=overwrite)
        self._transparent_gif = spec.pix_fmt == "pal8" and spec.kind == "alpha"
        try:
            self._out = av.open(str(self._file.temp), "w", format=spec.muxer, container_options=dict(_LOOP_FOREVER[spec.muxer]))
            options = dict(spec.options)
            if self._transparent_gif:  # whole frames, each on a cleared canvas (gif_clear_between_frames)
                options["gifflags"] = "-offsetting-transdiff"
            self._stream = self._out.add_stream(spec.codec, options=options)
            self._stream.width, self._stream.height, self._stream.pix_fmt = info.width, info.height, spec.pix_fmt
            self._stream.time_base = self._time_base
            self._stream.codec_context.time_base = self._time_base
            self._out.start_encoding()
        except (av.FFmpegError, OSError, ValueError) as e:
            self._abort()
            raise SinkError(f"cannot open {spec.codec} for {self.path}: {e}") from e

    def _validate(self, images: np.ndarray) -> None:
        check_images(images, self.spec.kind, self.info.width, self.info.height)

    def _next_pts(self, pts: Optional[int]) -> int:
        if pts is not None:
            return int(pts)
        if self._last_pts is None:
            return 0
        rate = Fraction(self.info.average_rate or 25)
        return self._last_pts + max(1, round(1 / (rate * self._time_base)))

    def _too_soon(self, pts: int) -> bool:
        """GIF only: whether this frame would follow the last one kept within a browser's shortest delay."""
        return (
            self.spec.muxer == "gif" and self._last_pts is not None
            and (pts - self._last_pts) * self._time_base < GIF_MIN_DELAY
        )  # fmt: skip

    def _write(self, images: np.ndarray, pts: Sequence[Optional[int]]) -> None:
        images = images[..., 0] if images.ndim == 4 and self.spec.kind == "mask" else images
        for image, p in zip(images, pts):
            stamp = self._next_pts(p)
            if self._last_pts is not None and stamp <= self._last_pts:
                raise SinkError(f"frame {self._frames} of {self.path} has pts {stamp}, not after {self._last_pts}")
            if self._too_soon(stamp):
                self._skipped += 1
                continue
            if self.spec.pix_fmt == "pal8":
                frame = av.VideoFrame.from_ndarray(gif_quantize(image), format="pal8")
            else:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=_FRAME_FORMAT[self.spec.kind])
            frame.pts, frame.time_base = stamp, self._time_base
            self._encode(frame)
            if self._last_pts is not None:
                self._gap = stamp - self._last_pts
            self._first_pts = stamp if self._first_pts is None else self._first_pts
            self._last_pts = stamp
            self._frames += 1

    def _last_duration(self) -> int:
        """The last frame's time on screen, in time-base units: what the source has left after it (a GIF's
        held last frame), else the gap before it, else one frame at the source's rate."""
        if self._last_pts is not None and self._first_pts is not None and self.info.duration:
            left = Fraction(self.info.duration) - (self._last_pts - self._first_pts) * self._time_base
            if 0 < left <= 10:  # a container duration stretched by a longer sound track is not the picture's
                return max(1, round(left / self._time_base))
        if self._gap:
            return self._gap
        return max(1, round(1 / (Fraction(self.info.average_rate or 25) * self._time_base)))

    def _set_last_frame_time(self) -> None:
        """WebP and APNG: give the last frame ``_last_duration`` in the finished file, which FFmpeg cannot (see last_delay)."""
        assert self._last_pts is not None and self._first_pts is not None
        last = self._last_duration()
        if self.spec.muxer == "apng":
            apng_set_last_delay(self._file.temp, last * self._time_base)
        elif self.spec.muxer == "webp":
            webp_set_last_end(self._file.temp, round((self._last_pts - self._first_pts + last) * self._time_base * 1000))

    def _encode(self, frame: Optional[av.VideoFrame]) -> None:
        """Encode one frame, or with None flush the encoder."""
        try:
            if frame is not None and frame.format.name != self.spec.pix_fmt:
                frame = frame.reformat(format=self.spec.pix_fmt)
            packets = self._stream.encode(frame)
            if self.spec.muxer != "gif":
                self._out.mux(packets)
                return
            # FFmpeg's GIF muxer times a frame by the next one's pts, and the last by its packet's duration, which
            # the encoder leaves at 1/25 s: a 10 fps GIF flashed its last frame for 40 ms each loop
            for packet in packets:
                if self._held is not None:
                    self._out.mux(self._held)
                self._held = packet
            if frame is None and self._held is not None:
                self._held.duration = self._last_duration()
                self._out.mux(self._held)
                self._held = None
        except av.FFmpegError as e:
            raise SinkError(f"encoding frame {self._frames} into {self.path} failed: {e}") from e

    def frames_held(self) -> Optional[int]:
        return self._frames

    def bytes_written(self) -> Optional[int]:
        try:
            return os.stat(self._file.temp).st_size
        except (OSError, AttributeError):  # not open yet, or already renamed
            return None

    def _finish(self) -> None:
        self._encode(None)
        try:
            self._out.close()
        except av.FFmpegError as e:
            raise SinkError(f"finishing {self.path} failed: {e}") from e
        if self._transparent_gif:
            gif_clear_between_frames(self._file.temp)
        elif self._frames:
            self._set_last_frame_time()

    def output_entry(self) -> AtomicFile:
        return self._file

    def _close(self) -> None:
        if not self._finished:
            self._finish()
        if self._skipped:
            log.info("%s: left out %d frames that came within %s s of the one before (GIF's shortest delay browsers respect)",
                     self.path, self._skipped, float(GIF_MIN_DELAY))  # fmt: skip
        if self._frames == 0:
            log.warning("no frames were written to %s", self.path)
        self._file.commit()
        log.info("wrote %d frames to %s", self._frames, self.path)

    def _abort(self) -> None:
        out, self._out = getattr(self, "_out", None), None
        if out is not None:
            try:
                out.close()
            except Exception as e:  # a half-written container may fail to close; the file goes anyway
                log.debug("ignored error while closing aborted %s: %s", self.path, e)
        self._file.discard()
