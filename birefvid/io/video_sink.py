"""Encode RGBA / mask / RGB image batches into a video file with the input's exact pts and time base."""

from __future__ import annotations

import errno
import logging
import math
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Optional, Union

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from birefvid.errors import SinkError
from birefvid.frames import StreamInfo
from birefvid.io._pixels import RgbToYuv, chroma_centre_error, gain16, shift_chroma, conversion_threads, is_yuv_format, planar_deep_frame, rgb16_white_in, to_yuv
from birefvid.io.atomic import AtomicFile
from birefvid.io.audio import AudioTracks
from birefvid.io.live_audio import LiveAudioFeed, LiveAudioTrack
from birefvid.io.subtitles import SubtitleTracks, source_chapters
from birefvid.io.base import Sink
from birefvid.io.formats import NVENC_SMALL, EncoderSpec, sample_bits, tag_options
from birefvid.io.frame_grid import FrameGrid
from birefvid.io.layout import check_images
from birefvid.io.trim import TimeWindow
from birefvid.io.untagged import SWS_MATRIX

log = logging.getLogger(__name__)

_FRAME_FORMAT = {"alpha": "rgba", "mask": "gray", "rgb": "rgb24"}
# the same for uint16 pictures (a deep output: 10 bits or more kept from the source)
_DEEP_FRAME_FORMAT = {"alpha": "rgba64le", "mask": "gray16le", "rgb": "rgb48le"}


def exact_alpha(frame: av.VideoFrame, alpha: np.ndarray) -> av.VideoFrame:
    """``frame`` with its alpha plane set to ``alpha`` (uint8 or uint16 (H, W)) rounded to the plane's depth.

    swscale's RGBA -> yuva conversions put every other soft 8-bit alpha value one level high (half a level
    on average, 10-bit ProRes alike); alpha is no colour to convert, so the plane is written as it is.
    Formats without a plane of alpha alone (packed RGBA) are left as converted.
    """
    fmt = frame.format
    comp = next((c for c in fmt.components if c.is_alpha), None)
    if comp is None or not fmt.is_planar or fmt.is_big_endian or sum(c.plane == comp.plane for c in fmt.components) != 1:
        return frame
    plane = frame.planes[comp.plane]
    dtype = np.uint8 if comp.bits <= 8 else np.uint16
    top = (1 << comp.bits) - 1
    source_top = 65535 if alpha.dtype == np.uint16 else 255
    stride = plane.line_size // np.dtype(dtype).itemsize
    rows = np.frombuffer(memoryview(plane), dtype)[: plane.height * stride].reshape(plane.height, stride)
    if top == source_top:
        rows[:, : plane.width] = alpha
    else:  # round half up, as the compositor quantizes
        rows[:, : plane.width] = (alpha.astype(np.uint32) * (2 * top) + source_top) // (2 * source_top)
    return frame


def _set(obj: object, name: str, value: Optional[int]) -> None:
    """Copy one colour tag when known; a value this PyAV cannot express is skipped with a log line."""
    if value is None or value == 0 or (name != "color_range" and value == 2):
        return  # 0: unspecified range / RGB or reserved otherwise; 2: unspecified space/primaries/trc
    try:
        setattr(obj, name, value)
    except (ValueError, TypeError, AttributeError) as e:
        log.warning("could not tag output %s=%s: %s", name, value, e)


# Encoders that honour a thread count asked of the sink: x264 spends ~20-40% more CPU a frame
# on its frame threads than on one. ProRes gained 2% on one thread, and at ~40-90 ms a frame
# alone (720p-1080p 4444) could fall behind a small CPU's model: it keeps FFmpeg's threads.
ONE_THREAD_CODECS = ("libx264",)
# encoders that write the pixel aspect ratio into the bitstream itself (H.264/H.265 VUI)
BITSTREAM_SAR_CODECS = ("libx264", "libx265", "h264_nvenc", "hevc_nvenc")
# encoders whose video is limited range by definition: ProRes records no range (its MOV 'colr' atom
# neither), so players decode it as limited whatever the stream says
LIMITED_RANGE_CODECS = ("prores_ks", "prores", "prores_aw")


def _nvenc_hint(codec: str, width: int, height: int) -> str:
    """What an NVENC encoder that failed to start needs: a GPU and driver, and frames no smaller than its minimum."""
    if "nvenc" not in codec:
        return ""
    if width < NVENC_SMALL[0] or height < NVENC_SMALL[1]:
        return (f" (it needs an NVIDIA GPU and driver, and frames of NVENC's minimum size or more: {width}x{height} is under "
                f"{NVENC_SMALL[0]}x{NVENC_SMALL[1]}, H.264's minimum on recent GPUs; libx264 takes pictures this small)")  # fmt: skip
    return " (it needs an NVIDIA GPU and driver)"


def _short_clip_dts(packets: list[av.Packet]) -> list[av.Packet]:
    """A whole clip's packets, given at the flush, with the dts the encoder left unset made their pts.

    x265 3.5 leaves the dts of a clip shorter than its B-frame delay (one or two frames) uninitialised
    (-2.3e10, 8.6e18: any value), and the MP4/MOV muxer then failed the run at the end with "Not yet
    implemented" or "Invalid argument". Packets whose pts already rise in decode order were not
    reordered, so dts = pts is exact for them; valid dts are kept, and reordered ones left to the muxer.
    """
    pts = [p.pts for p in packets]
    valid = all(p.dts is not None and p.pts is not None and p.pts - len(packets) * (p.duration or 1) <= p.dts <= p.pts for p in packets)
    if valid or None in pts or any(b <= a for a, b in zip(pts, pts[1:])):
        return packets
    for p in packets:
        p.dts = p.pts
    return packets


class VideoFileSink(Sink):
    """One video stream (plus optional audio, subtitles and chapters) written to a temporary file and renamed on ``close()``.

    ``audio_from`` / ``subtitles_from`` / ``chapters_from``: the source whose audio tracks, subtitle
    tracks and chapters the output carries (None: none); ``live_audio``: a live source's sound
    (``live_audio_start``: its time at this output's 0, and ``live_audio_until`` the planned end, for
    a part of a recording split into parts: see ``end_live_audio``);
    ``window``: the part of the source's timeline the output holds (a time range, ``io.trim``).
    """

    def __init__(
        self, path: Path, spec: EncoderSpec, info: StreamInfo, *, audio_from: Optional[str] = None, threads: Optional[int] = None,
        subtitles_from: Optional[str] = None, chapters_from: Optional[str] = None, live_audio: Optional[LiveAudioFeed] = None,
        window: Optional[TimeWindow] = None, live_audio_start: float = 0.0, live_audio_until: Optional[float] = None,
        overwrite: bool = True,
    ) -> None:
        super().__init__()
        self._live_audio_start = live_audio_start  # the live sound's time at this output's 0 (a recording's later part)
        self._live_audio_until = live_audio_until
        self._live_track: Optional[LiveAudioTrack] = None
        self.threads = threads  # x264's thread count (see ONE_THREAD_CODECS) and the conversion's slice threads; None: FFmpeg's choice
        self.path = Path(path)
        self.spec = spec
        self.info = info
        self._frames = 0
        self._packets = 0  # video packets muxed so far: none before the flush in a clip shorter than the encoder's delay
        self._last_pts: Optional[int] = None  # in the source's time base
        self._last_out_pts: Optional[int] = None  # in the output's (``_grid``'s when there is one)
        self._first_pts: Optional[int] = None  # the first frame's, in the source's time base
        self._held: Optional[av.VideoFrame] = None  # a numbered plate's last frame, written again over a gap (``_missing_pts``)
        self._grid: Optional[FrameGrid] = None
        self._grid_origin: Optional[Fraction] = None  # the first frame's time: the grid counts from it
        self._out: Optional[av.container.OutputContainer] = None
        # what the output carries beside the video (audio, subtitles), muxed up to each frame's time
        self._companions: list[Union[AudioTracks, SubtitleTracks, LiveAudioTrack]] = []
        self._file = AtomicFile(self.path, overwrite=overwrite)  # False: never replaces a file another run wrote meanwhile
        # one reformatter for the whole stream: it keeps its swscale context, where each
        # frame.reformat() builds one afresh (720p RGB -> yuv420p: 1.7 -> 1.2 ms a frame on one core here)
        self._reformatter = VideoReformatter()
        self._rgb_to_yuv: Optional[RgbToYuv] = None  # RGB pictures' conversion, made at the first one
        # planar 16-bit input converts exactly as packed to 4:4:4 and RGB formats; swscale subsamples chroma
        # from the two differently, so 4:2:2 and 4:2:0 targets keep the packed path and its results
        fmt = av.VideoFormat(spec.pix_fmt)
        self._full_chroma = fmt.chroma_width(64) == 64 and fmt.chroma_height(64) == 64
        self._window = window
        try:
            self._open(audio_from, subtitles_from, chapters_from, live_audio)
        except BaseException:
            self._abort()
            raise

    # -- setup -----------------------------------------------------------------------------
    def _open(
        self, audio_from: Optional[str], subtitles_from: Optional[str], chapters_from: Optional[str], live_audio: Optional[LiveAudioFeed]
    ) -> None:
        spec, info = self.spec, self.info
        tb = Fraction(info.time_base)
        copts: dict[str, str] = {}
        if spec.muxer in ("mov", "mp4"):  # editors read a constant rate from exact, equal frame durations
            self._grid = FrameGrid.choose(tb, Fraction(info.average_rate) if info.average_rate else None)
            tb = self._grid.time_base if self._grid else tb
        if spec.muxer in ("mov", "mp4") and tb.denominator < 2**31:
            copts["video_track_timescale"] = str(tb.denominator)  # keeps pts exact instead of the muxer's pick
        if spec.muxer in ("matroska", "webm"):
            # by default Matroska shifts every stream when one starts below 0 (AAC priming, B-frame dts),
            # which would move the video pts; keep them as given
            copts["avoid_negative_ts"] = "disabled"
        copts.update(tag_options(spec.muxer, (key for key, _ in info.tags)))
        try:
            self._out = av.open(str(self._file.temp), "w", format=spec.muxer, container_options=copts)
            stream = self._out.add_stream(spec.codec, options=_with_hdr10(spec, info))
        except (av.FFmpegError, OSError, ValueError) as e:
            raise SinkError(f"cannot open {spec.codec} for {self.path}: {e}") from e
        cc = stream.codec_context
        stream.width, stream.height, stream.pix_fmt = info.width, info.height, spec.pix_fmt
        stream.disposition = av.stream.Disposition.default  # Matroska/WebM flag no track default unless told (FFmpeg's CLI does)
        stream.time_base = tb
        cc.time_base = tb
        if info.average_rate:
            cc.framerate = Fraction(info.average_rate)
        if spec.bit_rate is not None:
            cc.bit_rate = spec.bit_rate
        if spec.codec_tag is not None:
            cc.codec_tag = spec.codec_tag
        cc.thread_type = "AUTO"
        if info.sample_aspect_ratio:
            self._keep_pixel_shape(cc, info.sample_aspect_ratio)
        if info.timecode:
            stream.metadata["timecode"] = info.timecode  # MOV/MP4 write a tmcd track of it; Matroska a tag
            if info.reel_name:  # in the tmcd track: Resolve and Avid conform by reel and timecode
                stream.metadata["reel_name"] = info.reel_name
        if self.threads and spec.codec in ONE_THREAD_CODECS:
            cc.thread_count = self.threads
        self._matrix, self._range = None, None
        self._frame_tags: dict[str, int] = {}
        if spec.kind != "mask":
            self._matrix = SWS_MATRIX.get(info.colorspace or -1)
            self._range = self._output_range(info.color_range)
            for name, value in (("colorspace", info.colorspace), ("color_primaries", info.color_primaries),
                                ("color_trc", info.color_trc)):
                _set(cc, name, value)
            if self._matrix is None:
                cc.colorspace = 2  # the frames are converted with swscale's default matrix: say nothing
            # ProRes writes colour into every frame's header from the frame's own tags, not the stream's:
            # without these an HLG or BT.709 clip's ProRes said "unknown" there beside a correct MOV colr atom
            self._frame_tags = {n: int(getattr(cc, n)) for n in ("color_primaries", "color_trc") if int(getattr(cc, n)) not in (0, 2)}
        # 16-bit RGB into YUV: scaled to the white swscale writes (rgb16_white_in), else a plate's white came out at 943 of 940
        self._deep_gain = 1.0
        if spec.kind != "mask" and is_yuv_format(spec.pix_fmt):
            self._deep_gain = rgb16_white_in(sample_bits(spec.pix_fmt), self._range == 2) / 65535
        if spec.pix_fmt.startswith("gray"):
            _set(cc, "color_range", 2)  # gray samples are the mask values as is: full range
        elif not spec.pix_fmt.startswith(("rgb", "argb", "bgr", "gbr")):
            _set(cc, "color_range", self._range or 1)
        for key, value in info.tags:  # creation time, title, location...: what the file holds, as ffmpeg keeps it
            self._out.metadata[key] = value
        self._video = stream
        if audio_from is not None:
            self._companions.append(AudioTracks(audio_from, self._out, spec.muxer, self._window))
        if live_audio is not None:
            track = LiveAudioTrack(live_audio, self._out, spec.muxer, str(self.path))
            track.offset = -self._live_audio_start
            track.hold_from = self._live_audio_until
            self._live_track = track
            self._companions.append(track)
        if subtitles_from is not None:
            self._companions.append(SubtitleTracks(subtitles_from, self._out, self.path, self._window))
        if chapters_from is not None and (chapters := source_chapters(chapters_from, self._window)):
            self._out.set_chapters(chapters)
        try:
            self._out.start_encoding()  # opens every encoder now, so a bad codec fails at open time
        except (av.FFmpegError, OSError, ValueError) as e:
            hint = _nvenc_hint(spec.codec, info.width, info.height)
            raise SinkError(f"cannot start the {spec.codec} encoder for {self.path}{hint}: {e}") from e

    def _output_range(self, source_range: Optional[int]) -> Optional[int]:
        """The YUV range to convert to: the source's (a phone's or webcam's full-range video stays full range),
        but limited for an encoder that cannot say full (a full-range clip's ProRes decoded with stretched contrast)."""
        if self.spec.codec in LIMITED_RANGE_CODECS:
            return 1
        return source_range if source_range in (1, 2) else None

    def _keep_pixel_shape(self, cc: av.video.codeccontext.VideoCodecContext, sar: Fraction) -> None:
        """Tag non-square pixels (an anamorphic DV/HDV/DVD source) so players show the picture unsqueezed.

        MP4/MOV store the codec's aspect ratio, and H.264/H.265 carry it in their bitstream; Matroska
        keeps it only in a stream field PyAV cannot set, so FFV1 and VP9 there lose it: say so.
        """
        cc.sample_aspect_ratio = sar
        if self.spec.muxer in ("matroska", "webm") and self.spec.codec not in BITSTREAM_SAR_CODECS:
            # Matroska itself can (its DisplayWidth), but FFmpeg's muxer reads the stream's field, which PyAV cannot set
            log.warning("%s: the input's pixels are not square (aspect %s), which birefvid cannot record in %s in %s; "
                        "players will show it squeezed (write .mov or .mp4 to keep the shape)",
                        self.path, sar, self.spec.codec, self.path.suffix)  # fmt: skip

    @property
    def sample_bits(self) -> int:
        return sample_bits(self.spec.pix_fmt)

    # -- writing ---------------------------------------------------------------------------
    def _validate(self, images: np.ndarray) -> None:
        check_images(images, self.spec.kind, self.info.width, self.info.height, deep=True)

    def _colour_options(self) -> dict[str, object]:
        """Matrix, range and slice threads of the conversion to the encoder's format.

        Slice threads follow the sink's ``threads`` (1 while a CPU's model has the cores): on 2 cores
        two slice threads took 1.94 ms of process CPU a 720p RGB -> yuv420p picture, one 1.69 (means of
        16 alternating runs here, the same bytes; within the noise of x264 in a whole sink), and their
        CPU did not show in the encode thread's.
        """
        kwargs: dict[str, object] = {"threads": conversion_threads(self.spec.pix_fmt, self.threads)}
        if self._matrix is not None:
            kwargs["dst_colorspace"] = self._matrix
        if self._range is not None:
            kwargs["dst_color_range"] = self._range
        return kwargs

    def _to_frame(self, image: np.ndarray) -> av.VideoFrame:
        frame = self._converted(image)
        if self.spec.kind == "mask" or frame.format.name != self.spec.pix_fmt:
            return frame
        return shift_chroma(frame, chroma_centre_error(self.spec.pix_fmt, image.dtype == np.uint16, self._range == 2, self._matrix))

    def _converted(self, image: np.ndarray) -> av.VideoFrame:
        if image.dtype == np.uint16 and image.ndim == 3 and self._full_chroma:  # deep RGB(A): planar, without a transposing copy
            frame = to_yuv(self._reformatter, planar_deep_frame(image, self._deep_gain), self.spec.pix_fmt, **self._colour_options())
            return exact_alpha(frame, image[..., 3]) if image.shape[2] == 4 else frame
        fmt = (_DEEP_FRAME_FORMAT if image.dtype == np.uint16 else _FRAME_FORMAT)[self.spec.kind]
        if image.dtype == np.uint16 and image.ndim == 3 and self._deep_gain != 1:  # into 4:2:0 or 4:2:2: packed, scaled on a copy
            image = image.copy()
            image[..., :3] = gain16(np.ascontiguousarray(image[..., :3]), self._deep_gain)
        # a frame converted to the encoder's format is only read by that conversion: it may wrap the
        # caller's pixels instead of copying them (720p RGB -> yuv420p 1.06 -> 0.71 ms a frame on one
        # core here); one that goes to the encoder as it is gets its own copy, which the encoder may keep
        converted = fmt != self.spec.pix_fmt
        if converted and fmt == "rgb24":
            if self._rgb_to_yuv is None:
                self._rgb_to_yuv = RgbToYuv(self.spec.pix_fmt, **self._colour_options())
            return self._rgb_to_yuv(image)
        pixels = np.ascontiguousarray(image)
        frame = av.VideoFrame.from_numpy_buffer(pixels, format=fmt) if converted else av.VideoFrame.from_ndarray(pixels, format=fmt)
        frame = to_yuv(self._reformatter, frame, self.spec.pix_fmt, **self._colour_options())
        return exact_alpha(frame, pixels[..., 3]) if converted and pixels.ndim == 3 and pixels.shape[2] == 4 else frame

    def _next_pts(self, pts: Optional[int]) -> int:
        if pts is not None:
            return int(pts)
        if self._last_pts is None:
            return 0
        return self._last_pts + self._step()

    def _output_pts(self, source_pts: int) -> int:
        """A frame's pts in the output's time base: the source's, or on the exact frame grid (``FrameGrid``)
        unless that would not follow the frame before (live pictures a millisecond apart keep their own times)."""
        if self._grid is None:
            return source_pts
        seconds = source_pts * Fraction(self.info.time_base)
        if self._grid_origin is None:
            self._grid_origin = seconds
        pts = self._grid.ticks(seconds, self._grid_origin)
        if self._last_out_pts is not None and pts <= self._last_out_pts:
            return int(seconds / self._grid.time_base)
        return pts

    def _write(self, images: np.ndarray, pts: Sequence[Optional[int]]) -> None:
        assert self._out is not None
        images = images[..., 0] if images.ndim == 4 and self.spec.kind == "mask" else images
        for image, p in zip(images, pts):
            frame = self._to_frame(image)
            for name, value in self._frame_tags.items():
                setattr(frame, name, value)
            source_pts = self._next_pts(p)
            for missing in self._missing_pts(source_pts):
                assert self._held is not None
                self._encode(self._held, missing)
            self._encode(frame, source_pts)

    def _missing_at_end(self) -> range:
        """For a numbered plate's frames, the pts of the numbers missing after the last frame up to the stream's end
        (``--end`` inside a gap: frames 1001 to 1003 with 1003 missing end with 1002 held over it, three frames)."""
        if not self.info.numbered or self._held is None or self._last_pts is None or self._first_pts is None:
            return range(0)
        if not self.info.duration or not self.info.average_rate:
            return range(0)
        frames = math.ceil(self.info.duration * float(self.info.average_rate) - 1e-6)
        return range(self._last_pts + self._step(), self._first_pts + frames * self._step(), self._step())

    def _missing_pts(self, source_pts: int) -> range:
        """For a numbered plate's frames (``StreamInfo.numbered``), the pts of the numbers missing before ``source_pts``
        (a failed render's gap): the frame before is written again at each, so the video is constant-rate, as editors
        conform it (variable-rate MOV/MP4 is what Resolve, Premiere and Avid handle badly); none for any other source."""
        if not self.info.numbered or self._held is None or self._last_pts is None:
            return range(0)
        step = self._step()
        return range(self._last_pts + step, source_pts, step)

    def _step(self) -> int:
        """One frame's pts at the stream's rate (1 when it has none)."""
        if not self.info.average_rate:
            return 1
        return max(1, round(1 / (Fraction(self.info.average_rate) * Fraction(self.info.time_base))))

    def _encode(self, frame: av.VideoFrame, source_pts: int) -> None:
        """Encode ``frame`` at ``source_pts`` (the source's time base) and mux it, with the sound and subtitles up to it."""
        assert self._out is not None
        out_tb = self._grid.time_base if self._grid else Fraction(self.info.time_base)
        frame.pts = self._output_pts(source_pts)
        if self._last_out_pts is not None and frame.pts <= self._last_out_pts:
            raise SinkError(
                f"encoding frame {self._frames} into {self.path} failed: pts {source_pts} does not increase "
                f"(previous {self._last_pts}); frames must arrive in presentation order without duplicates"
            )
        frame.time_base = out_tb
        try:
            packets = self._video.encode(frame)
        except av.FFmpegError as e:
            raise SinkError(f"encoding frame {self._frames} (pts {frame.pts}) into {self.path} failed: {e}") from e
        try:
            for companion in self._companions:  # on the source's clock: a later part of a live recording starts later
                companion.write_until(float(frame.pts * out_tb) + self._live_audio_start)
        except av.FFmpegError as e:  # the audio's or subtitles' packets, muxed up to this frame's time
            raise self._failed(f"writing the sound or subtitles of {self.path} up to {float(frame.pts * out_tb):.3f} s", e) from e
        try:
            self._out.mux(packets)
        except av.FFmpegError as e:
            raise self._failed(f"writing frame {self._frames} (pts {frame.pts}) into {self.path}", e) from e
        self._packets += len(packets)
        self._last_pts, self._last_out_pts = source_pts, frame.pts
        self._held = frame if self.info.numbered else None
        self._frames += 1
        if self._first_pts is None:
            self._first_pts = source_pts

    def start_live_audio_at(self, at: float) -> None:
        """Put the live sound's time ``at`` at this output's 0 (before the first picture is written)."""
        self._live_audio_start = at
        if self._live_track is not None:
            self._live_track.offset = -at

    def end_live_audio(self, at: float) -> None:
        """End the live sound at live time ``at`` (the next part's start) rather than just after the last picture."""
        if self._live_track is not None:
            self._live_track.end = at

    def _failed(self, doing: str, e: av.FFmpegError) -> SinkError:
        """The error for ``doing`` failing with ``e``: a full disk in plain words (FFmpeg's named the hidden
        temporary file, already removed, and did not say that this output is not kept), else FFmpeg's own."""
        if getattr(e, "errno", None) in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
            return SinkError(f"{doing} failed: the disk is full ({e.strerror}); {self.path.name} is not kept: "
                             "free some space, or write to a disk with room")  # fmt: skip
        return SinkError(f"{doing} failed: {e}")

    # -- finishing -------------------------------------------------------------------------
    def frames_held(self) -> Optional[int]:
        return self._frames

    def bytes_written(self) -> Optional[int]:
        try:
            return os.stat(self._file.temp).st_size
        except (OSError, AttributeError):  # not open yet, or already renamed
            return None

    def _finish(self) -> None:
        assert self._out is not None
        for missing in self._missing_at_end():
            assert self._held is not None
            self._encode(self._held, missing)
        try:
            self._out.mux(_short_clip_dts(self._video.encode(None)) if self._packets == 0 else self._video.encode(None))
            for companion in self._companions:
                companion.finish()
            self._out.close()
            self._out = None
        except av.FFmpegError as e:
            raise self._failed(f"finishing {self.path}", e) from e
        finally:
            self._close_inputs()

    def output_entry(self) -> AtomicFile:
        return self._file

    def _close(self) -> None:
        if not self._finished:
            self._finish()
        if self._frames == 0:
            log.warning("no frames were written to %s", self.path)
        self._file.commit()
        log.info("wrote %d frames to %s", self._frames, self.path)

    def _close_inputs(self) -> None:
        for companion in self._companions:
            companion.close()

    def _abort(self) -> None:
        self._close_inputs()
        if self._out is not None:
            try:
                self._out.close()
            except Exception as e:  # closing a half-written container may fail; the file goes anyway
                log.debug("ignored error while closing aborted %s: %s", self.path, e)
            self._out = None
        self._file.discard()


def _with_hdr10(spec: EncoderSpec, info: StreamInfo) -> dict[str, str]:
    """``spec``'s encoder options, x265's with the source's HDR10 metadata (mastering display, MaxCLL) added: the other
    encoders PyAV drives cannot be given it."""
    options = dict(spec.options)
    if spec.codec == "libx265" and info.hdr10 and spec.kind != "mask":
        options["x265-params"] = ":".join(p for p in (options.get("x265-params"), info.hdr10) if p)
    return options
