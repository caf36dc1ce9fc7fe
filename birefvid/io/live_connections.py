"""One connection to a live input: a PyAV stream or device, an OpenCV camera, or a pass over a file.

Each decodes its first picture when made (so a connection that exists has a ``StreamInfo``),
yields upright RGB pictures with their times from ``frames()``, and hands its decoded sound to
``on_audio``. A failure worth retrying raises ``ConnectionLost`` with a few words of reason; one that
retrying cannot fix (a missing input format) raises ``SourceError``. ``LiveCapture``
(``live_source``) owns the connections and reconnects.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import stat
import time
from fractions import Fraction
from typing import Any, Callable, Iterator, Optional, Union
from urllib.parse import urlsplit

import av
import numpy as np

from birefvid.errors import SourceError
from birefvid.frames import StreamInfo
from birefvid.io._pixels import RgbConverter, display_mirrored, rotated_size, upright
from birefvid.io.pixel_shape import PixelShapes
from birefvid.io.animated_source import AnimatedWebPSource, is_animated_webp
from birefvid.io.base import Source
from birefvid.io.channel_order import custom_order_tracks
from birefvid.io.deinterlace import Deinterlacer
from birefvid.io.demuxing import demuxed
from birefvid.io.live_target import LiveTarget
from birefvid.io.ts_damage import TS_FORMATS, LossWatch, frame_interval
from birefvid.io.video_source import VideoFileSource, _int, main_video_stream, stream_matrix, video_choice_note
from birefvid.said_once import first_time, first_time_about_file

log = logging.getLogger(__name__)

# what a connection's frames() yields: an RGB picture (H, W, 3) uint8, its time in seconds (None: timed by the wall
# clock), and its own alpha (H, W) uint8, None when opaque (the bars around a picture of another shape are 0)
Picture = tuple[np.ndarray, Optional[float], Optional[np.ndarray]]


class ConnectionLost(Exception):
    """A connection failed or dropped in a way worth retrying; ``reason`` says why, in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LoginRefused(ConnectionLost):
    """The server refused the URL's login (401) or its user (403). Not worth retrying at the start:
    a wrong password never gets right, and many IP cameras lock the account after a few failed
    logins. A stream that played and is refused later may be retried (a camera rebooting)."""


# a login the server refused, over RTSP or HTTP (an MJPEG camera)
_REFUSED = (av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError)
_PERMANENT = (av.error.ProtocolNotFoundError, av.error.DemuxerNotFoundError, av.error.OptionNotFoundError)


def _reason(e: BaseException, waited: float, timeout: float, awaited: str) -> str:
    """A few words for an FFmpeg failure. A call that ran into its timeout says so: FFmpeg then
    reports the interruption, or whatever the interrupted parser made of half a message."""
    if isinstance(e, av.error.ExitError) or (timeout > 0 and waited >= 0.95 * timeout):
        return f"no {awaited} within {timeout:g} s"
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return text.rstrip(".")


class StreamNotFound(ConnectionLost):
    """The server answered 404: the URL's path names no stream there. Worth retrying, since a media
    server (MediaMTX) answers so for a path until its camera or encoder publishes there. ``reason``
    suits the first try (a typo is likely); ``lost_reason`` a stream that played before."""

    def __init__(self, target: LiveTarget) -> None:
        path = urlsplit(target.name).path or "/"
        super().__init__(f"404 Not Found: the server has no stream at {path} (a typo in the URL's path? "
                         "a media server such as MediaMTX also answers so until something publishes there)")
        self.lost_reason = f"404 Not Found: the server no longer has a stream at {path} (its publisher stopped?)"


def _info(width: int, height: int, time_base: Fraction, rate: Any, first: Optional[av.VideoFrame], sar: Any = None) -> StreamInfo:
    """StreamInfo of a live connection: size as displayed, timing, pixel shape (``sar``, when not
    square: a D1 camera's 12:11) and the first frame's colour tags."""
    return StreamInfo(
        width=width,
        height=height,
        time_base=time_base,
        average_rate=Fraction(rate) if rate else None,
        sample_aspect_ratio=Fraction(sar) if sar and sar != 1 else None,
        color_range=_int(first.color_range) if first is not None else None,
        colorspace=_int(first.colorspace) if first is not None else None,
        color_primaries=_int(first.color_primaries) if first is not None else None,
        color_trc=_int(first.color_trc) if first is not None else None,
    )


# where a connection hands its decoded sound: (frame, its time in seconds on the source's clock)
AudioOut = Callable[[av.AudioFrame, float], None]



def track_tags(stream: Any) -> dict[str, str]:
    """The ``language`` and ``title`` of an audio track (a MOV track's name, read as ``name``, is its title), those set only."""
    meta = stream.metadata
    tags = {"language": meta.get("language"), "title": meta.get("title") or meta.get("name")}
    return {key: value for key, value in tags.items() if value and value != "und"}

def carried_audio(tracks: list[Any]) -> Optional[Any]:
    """The audio track live mode carries: the one a player plays, flagged default (a film's French track marked so after
    an English one, an HLS stream's ``DEFAULT=YES`` rendition), else the first; None for none. Files and streams alike:
    the first was taken always, the default flag unread, and a stream (a Matroska over HTTP) kept the first after the
    same file as ``--source FILE`` took its default."""
    return next((t for t in tracks if t.disposition & av.stream.Disposition.default), tracks[0] if tracks else None)


class AvConnection:
    """One PyAV connection to a stream or device, its first frame already decoded.

    With ``audio``, the first audio track is decoded too; its frames wait until the picture decoded
    before them has been published, then go to ``on_audio`` (set by the capture), so they are
    always stamped on the clock that picture set.
    """

    def __init__(self, target: LiveTarget, open_timeout: float, read_timeout: float, audio: bool = False, deinterlace: bool = True,
                 input_colors: str = "auto") -> None:  # fmt: skip
        """``input_colors``: the matrix a stream that names none is read with (``io.untagged``), which ``info`` names."""
        self._target = target
        self._read_timeout = read_timeout
        self.on_audio: Optional[AudioOut] = None
        self._audio_pending: list[av.AudioFrame] = []
        self._audio_stream: Optional[Any] = None
        self.audio_format: Optional[tuple[int, str]] = None  # (sample rate, layout) of the sound, when carried
        self.audio_tags: dict[str, str] = {}  # its language and title, which recordings and streams carry on
        t0 = time.monotonic()
        try:
            self._container = self._open(open_timeout, read_timeout)
        except _PERMANENT as e:
            hint = ""
            if isinstance(e, av.ProtocolNotFoundError) and target.name.lower().startswith("srt:"):
                hint = "; PyAV's wheels have no SRT: let a media server take it in and serve RTSP (MediaMTX does)"
            raise SourceError(f"{target.name}: this FFmpeg build cannot open it ({_reason(e, 0, 0, '')}){hint}") from e
        except _REFUSED as e:
            raise LoginRefused(_reason(e, 0, 0, "")) from e
        except av.error.HTTPNotFoundError as e:
            raise StreamNotFound(target) from e
        except (av.FFmpegError, OSError) as e:
            raise ConnectionLost(_reason(e, time.monotonic() - t0, open_timeout, "answer")) from e
        except ValueError as e:  # an input format this PyAV build lacks (FFmpeg's own errors are caught above)
            raise SourceError(f"{target.name}: this PyAV build cannot open it ({e})") from e
        try:
            chosen = main_video_stream(self._container)  # as a file's: not a cover, the default or largest of several
            if chosen is None:
                raise ConnectionLost("it carries no video stream")
            self._stream = stream = chosen
            note = video_choice_note(self._container, chosen, "process and batch")  # live takes --video-stream for files only
            if note and first_time(target.name, "video streams"):  # once a run, not at every reconnect
                log.warning("%s has %s", target.name, note)
            # an IP camera's MJPEG over HTTP (and raw H.264 over tcp://) carries no times: FFmpeg makes
            # them up at 25 fps, which played a 15 fps camera's recording 1.6x too fast; the wall clock times them
            self._timed = not self._container.format.flags & av.format.Flags.no_timestamps.value
            stream.codec_context.flags |= av.codec.context.Flags.low_delay
            if audio and self._container.streams.audio:
                self._audio_stream = carried_audio(list(self._container.streams.audio))
                cc = self._audio_stream.codec_context
                if cc.sample_rate and cc.layout.nb_channels:
                    self.audio_format = (cc.sample_rate, cc.layout.name)
                    self.audio_tags = track_tags(self._audio_stream)
                else:
                    self._audio_stream = None  # parameters unknown until decoded: not worth guessing live
            self._bad_packets = 0
            frames = self._decode()
            self._frames = Deinterlacer(target.name)(frames) if deinterlace else frames  # an interlaced broadcast (DVB, IPTV) made progressive
            first = next(self._frames, None)
            if first is None:
                raise ConnectionLost("the stream ended before its first frame")
            self._first: Optional[av.VideoFrame] = first
            self.rotation = int(first.rotation or 0)
            self.mirrored = display_mirrored(first)
            width, height = rotated_size(first.width, first.height, self.rotation)
            tb = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
            sar = stream.sample_aspect_ratio  # the container's, else the codec's (an H.264/H.265 SPS)
            if sar and self.rotation % 180:
                sar = 1 / sar  # a pixel turned on its side
            self.info = _info(width, height, tb, stream.average_rate or stream.guessed_rate, first, sar)
            assumed = stream_matrix(target.name, first, self.info.colorspace, input_colors)
            if assumed is not None:
                self.info = dataclasses.replace(self.info, colorspace=assumed, matrix_assumed=True)
        except BaseException:
            self._container.close()
            raise

    def _open(self, open_timeout: float, read_timeout: float) -> av.container.InputContainer:
        """Open the input; an RTSP camera that refuses RTP over its TCP connection (461, "Protocol not
        supported") is asked again for RTP over UDP, which some cameras offer alone."""
        target, options = self._target, dict(self._target.options)
        try:
            return av.open(target.url, "r", format=target.format, container_options=options, timeout=(open_timeout, read_timeout))
        except OSError as e:
            if options.get("rtsp_transport") != "tcp" or e.errno != errno.EPROTONOSUPPORT:
                raise
        log.info("%s refuses RTP over TCP: receiving it over UDP", target.name)
        options["rtsp_transport"] = "udp"
        return av.open(target.url, "r", format=target.format, container_options=options, timeout=(open_timeout, read_timeout))

    def _decode(self) -> Iterator[av.VideoFrame]:
        wanted = [self._stream] if self._audio_stream is None else [self._stream, self._audio_stream]
        self._shapes = PixelShapes(self._stream.codec_context)  # a pixel shape that changes midway (SD adverts in HD)
        packets = demuxed(self._container, *wanted)  # on past an MPEG-TS demuxer's EAGAIN (a run of bytes it cannot sync on), as ffmpeg
        # an MPEG-TS stream (udp://, IPTV) that loses frames with its packets: said once a run, never stopping it
        watch = LossWatch(frame_interval(self._stream), time_base=self._stream.time_base) if self._container.format.name in TS_FORMATS else None
        waited = 0.0  # seconds spent waiting on the network since the last picture's packet
        while True:
            t0 = time.monotonic()
            try:
                packet = next(packets)
            except StopIteration:
                return
            except (av.FFmpegError, OSError) as e:
                raise ConnectionLost(_reason(e, time.monotonic() - t0, self._read_timeout, "data")) from e
            waited += time.monotonic() - t0
            if waited >= self._read_timeout:
                # --read-timeout counts from the last picture: a frozen RTSP server's stale packet, handed
                # over when FFmpeg's wait ran out, restarted the wait (lost after twice the timeout), and
                # a camera whose pictures stopped while its sound went on was never lost at all
                what = "pictures (its sound goes on)" if packet.stream is self._audio_stream else "data"
                raise ConnectionLost(f"no {what} within {self._read_timeout:g} s")
            if packet.stream is self._audio_stream:
                self._decode_audio(packet)
                continue
            waited = 0.0
            loss = watch.packet(packet) if watch is not None else None
            if loss is not None and first_time(self._target.name, "lost frames"):
                tb = Fraction(self._stream.time_base)
                log.warning("%s: %d frame%s lost at %.3f s (MPEG-TS packets missing or damaged on the way); going on, "
                            "this is said once", self._target.name, loss.count, "s" if loss.count != 1 else "", float(loss.before * tb))
            try:
                frames = packet.decode()
                self._shapes.sent(packet, self._stream.codec_context)
            except (av.FFmpegError, OSError) as e:  # a damaged packet on a lossy link: skip it
                self._bad_packets += 1
                (log.warning if self._bad_packets == 1 else log.debug)(
                    "%s: skipped an undecodable packet (%s)", self._target.name, _reason(e, 0, 0, "")
                )
                continue
            yield from frames

    def _decode_audio(self, packet: av.Packet) -> None:
        try:
            self._audio_pending.extend(packet.decode())
        except (av.FFmpegError, OSError) as e:  # a damaged audio packet: the recording gets silence there
            log.debug("%s: skipped an undecodable audio packet (%s)", self._target.name, _reason(e, 0, 0, ""))
        if len(self._audio_pending) > 1000:  # pictures stopped coming but sound did: keep the newest
            del self._audio_pending[:-1000]

    def _deliver_audio(self) -> None:
        pending, self._audio_pending = self._audio_pending, []
        if self.on_audio is None:
            return
        for frame in pending:
            if frame.pts is not None and frame.time_base:
                self.on_audio(frame, float(frame.pts * frame.time_base))

    def frames(self) -> Iterator[Picture]:
        """Upright RGB pictures with their pts in seconds (None when the stream gives none of its own) and their
        own alpha (None when opaque; 0 on the bars of a picture of another shape fitted inside them)."""
        frame, self._first = self._first, None
        to_rgb = RgbConverter(name=self._target.name, sar=self._stream.sample_aspect_ratio, matrix=self.info.colorspace)
        while frame is not None:
            sar = self._shapes.of(frame)
            image, coverage = to_rgb(frame, sar), to_rgb.alpha(frame, sar)
            seconds = float(frame.time) if frame.pts is not None and self._timed else None
            yield upright(image, self.rotation, self.mirrored), seconds, None if coverage is None else upright(coverage, self.rotation, self.mirrored)
            self._deliver_audio()  # the picture before this sound is published: its clock is set
            frame = next(self._frames, None)

    def close(self) -> None:
        self._container.close()


def ask_camera(cap: Any, size: Optional[tuple[int, int]], fps: Optional[float]) -> None:
    """Ask an OpenCV capture for a picture size and frame rate; the driver may give something else.

    MJPEG is asked for first: USB webcams offer 720p and 1080p at 30 fps only compressed (raw YUYV
    at 720p fills USB 2 at 5-10 fps). A camera without MJPEG keeps its raw format, since the driver
    refuses what it lacks. Set before the first read: V4L2 cannot change format while streaming.
    """
    import cv2

    if size is None and fps is None:
        return
    cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
    if size is not None:
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
    if fps is not None:
        cap.set(cv2.CAP_PROP_FPS, fps)


def check_camera_mode(target: LiveTarget, info: StreamInfo) -> None:
    """Warn, naming both, when a camera delivers another size or rate than it was asked for."""
    got = []
    if target.camera_size is not None and (info.width, info.height) != tuple(target.camera_size):
        got.append(f"{info.width}x{info.height}, not {target.camera_size[0]}x{target.camera_size[1]}")
    if target.camera_fps is not None and info.average_rate and abs(float(info.average_rate) - target.camera_fps) > 0.5:
        got.append(f"{float(info.average_rate):g} fps, not {target.camera_fps:g}")
    if got:
        # what lists a camera's modes on its platform (AVFoundation prints them when asked for one it lacks)
        lists = {"dshow": f'ffmpeg -f dshow -list_options true -i "{target.url}"',
                 "avfoundation": f'ffmpeg -f avfoundation -framerate 1 -i "{target.url}"'}  # fmt: skip
        log.warning("%s delivers %s: it does not offer what was asked (%s lists what it does)",
                    target.name, " and ".join(got), lists.get(target.format or "", "v4l2-ctl --list-formats-ext"))  # fmt: skip


# video4linux's device major number (Linux's Documentation/admin-guide/devices.txt)
_V4L_MAJOR = 81


def unopened_camera(path: str) -> str:
    """Why OpenCV could not open the camera ``path``, as far as its device node tells: no camera at all (``/dev/null``, a
    disk), no permission, else busy or no capture node. "busy, or no permission" was said for each alike."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return f"cannot open {path} (busy, or no permission to read it?)"
    if not stat.S_ISCHR(st.st_mode) or os.major(st.st_rdev) != _V4L_MAJOR:
        return f"{path} is no camera (not a video4linux device: cameras are /dev/videoN)"
    if not os.access(path, os.R_OK | os.W_OK):
        return no_camera_permission(path, st)
    return (f"cannot open {path}: busy (another program, such as a call app, holds it?) or no capture device (a camera's "
            "second /dev/videoN carries only its metadata)")


def no_camera_permission(path: str, st: os.stat_result) -> str:
    """What to do about a camera node this user may not open: join the group the node names (said as such: "the
    'video' group" was said for every node, where udev gives some to another group, or to none), or log in again
    where the user joined it after this session began (the session's groups are fixed at login)."""
    import grp
    import pwd

    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    if st.st_gid == 0 or st.st_mode & 0o060 != 0o060:  # the group cannot open it either
        return f"no permission to open {path} (mode {stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid}, group '{group}'): ask the machine's administrator for access"
    held = st.st_gid == os.getegid() or st.st_gid in os.getgroups()
    if held:  # the group is not what keeps it shut (its owner's bits, as the owner; an ACL): "join its group" misled
        return (f"no permission to open {path} (mode {stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid}, group '{group}', "
                "which this session is in already): ask the machine's administrator for access")  # fmt: skip
    try:
        entry = pwd.getpwuid(os.getuid())
        user = entry.pw_name
        # a login's primary group is no gr_mem entry: a user given the node's group as primary was told to join it
        member = entry.pw_gid == st.st_gid or user in grp.getgrgid(st.st_gid).gr_mem
    except KeyError:
        user, member = "$USER", False
    if member:
        return f"no permission to open {path}: you joined its group '{group}' after this session began: log in again (or run `newgrp {group}`)"
    return f"no permission to open {path}: join its group '{group}' (`sudo usermod -aG {group} {user}`, then log in again)"


class CvCamera:
    """A V4L2 camera through OpenCV (for PyAV builds without the v4l2 input), first frame read."""

    def __init__(self, target: LiveTarget) -> None:
        import cv2

        self._cv2 = cv2
        from birefvid.io.image_source import opencv_silenced

        with opencv_silenced():  # a busy camera gets our one error line, not OpenCV's WARN lines before it as well
            self._cap = cv2.VideoCapture(target.url, cv2.CAP_V4L2)
        try:
            if not self._cap.isOpened():
                raise ConnectionLost(unopened_camera(target.url))
            ask_camera(self._cap, target.camera_size, target.camera_fps)
            self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            ok, bgr = self._cap.read()
            if not ok:
                raise ConnectionLost("the camera delivered no frame")
            self._first: Optional[np.ndarray] = bgr
            h, w = bgr.shape[:2]
            fps = self._cap.get(cv2.CAP_PROP_FPS)
            rate = Fraction(fps).limit_denominator(1001) if fps and fps > 0 else None
            self.info = _info(w, h, Fraction(1, 1_000_000), rate, None)
        except BaseException:
            self._cap.release()
            raise

    def frames(self) -> Iterator[Picture]:
        """RGB pictures, opaque; cameras are timed by the wall clock (None pts)."""
        bgr, self._first = self._first, None
        while True:
            if bgr is None:
                ok, bgr = self._cap.read()
                if not ok:
                    raise ConnectionLost("the camera stopped delivering frames")
            yield self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB), None, None
            bgr = None

    def close(self) -> None:
        self._cap.release()


def _read_once(path: str) -> bool:
    """True for a named pipe (or another file that is not a regular one): the sound's second reader
    would wait on it for ever (its writer feeds the first), so a run from one never started."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


class FileConnection:
    """A pass over a video file through the file decoder (same rotation, colour and damage rules), or
    over an animated WebP through Pillow (FFmpeg decodes still WebP only), as ``birefvid process`` reads them.

    With ``audio``, the file's audio track flagged default (else its first) is read alongside from a second reader, up to each
    published picture's time (plus ``_AUDIO_AHEAD``), and handed to ``on_audio``.
    """

    _AUDIO_AHEAD = 0.1

    def __init__(self, path: str, audio: bool = False, deinterlace: bool = True, video_stream: Optional[int] = None,
                 input_colors: str = "auto") -> None:  # fmt: skip
        animated = is_animated_webp(path)
        self._source: Source = (AnimatedWebPSource(path) if animated else
                                VideoFileSource(path, deinterlace=deinterlace, video_stream=video_stream, input_colors=input_colors,
                                        lost_warns=True))  # fmt: skip
        self.info = self._source.info
        container = getattr(self._source, "_container", None)
        subtitles = len(container.streams.subtitles) if container is not None else 0
        if subtitles and first_time_about_file(path, "live subtitles"):  # left out of recordings without a word
            log.warning("%s has %d subtitle track%s, which recordings and streams do not carry (birefvid process keeps them)",
                        path, subtitles, "" if subtitles == 1 else "s")  # fmt: skip
        self.on_audio: Optional[AudioOut] = None
        self.audio_format: Optional[tuple[int, str]] = None
        self.audio_tags: dict[str, str] = {}
        self._audio: Optional[av.container.InputContainer] = None
        self._audio_frames: Optional[Iterator[av.AudioFrame]] = None
        self._audio_next: Optional[av.AudioFrame] = None
        if audio and not animated:  # an animated WebP holds pictures only
            if _read_once(path):
                log.warning("%s is a pipe, which can be read only once: its sound is left out of recordings and streams", path)
            else:
                self._open_audio(path)

    def _open_audio(self, path: str) -> None:
        try:
            container = av.open(path)
        except (av.FFmpegError, OSError):
            return
        tracks = list(container.streams.audio)
        carried = carried_audio(tracks)
        if carried is None:
            container.close()
            return
        if tracks.index(carried) in custom_order_tracks(path):  # PyAV would crash on it (see channel_order)
            container.close()
            log.warning("%s: its sound is left out of recordings and streams: PyAV crashes on its custom channel order", path)
            return
        if not carried.codec_context.sample_rate:
            container.close()
            return
        cc = carried.codec_context
        if len(tracks) > 1 and first_time_about_file(path, "live audio tracks"):  # a screen recording's system sound went unsaid
            meta = carried.metadata
            title = meta.get("title") or meta.get("name")  # a MOV track's name reads as "name"
            said = [w for w in (title, meta.get("language") if meta.get("language") not in (None, "und") else None) if w]
            if carried.disposition & av.stream.Disposition.default:
                said.append("default")
            named = f" ({', '.join(said)})" if said else ""
            log.warning("%s has %d audio tracks; recordings and streams carry %s%s only (birefvid process keeps them all)",
                        path, len(tracks), "the first" if carried is tracks[0] else f"#{tracks.index(carried)}", named)  # fmt: skip
        self._audio, self.audio_format = container, (cc.sample_rate, cc.layout.name)
        self.audio_tags = track_tags(carried)
        self._audio_frames = self._decode_audio(container, carried)

    @staticmethod
    def _decode_audio(container: av.container.InputContainer, track: av.audio.stream.AudioStream) -> Iterator[av.AudioFrame]:
        for packet in demuxed(container, track):  # on past an MPEG-TS demuxer's EAGAIN (stuffing after a cut), as ffmpeg
            try:
                yield from packet.decode()
            except av.FFmpegError:
                continue  # a damaged packet: the recording gets silence there

    def _audio_until(self, seconds: float) -> None:
        while self._audio_frames is not None:
            frame = self._audio_next or next(self._audio_frames, None)
            self._audio_next = None
            if frame is None:
                self._audio_frames = None
                return
            if frame.pts is None or not frame.time_base:
                continue
            at = float(frame.pts * frame.time_base)
            if at > seconds:
                self._audio_next = frame
                return
            if self.on_audio is not None:
                self.on_audio(frame, at)

    def frames(self) -> Iterator[Picture]:
        """The file's pictures with their times and own alpha, as ``process`` reads them."""
        for frame in self._source:
            yield frame.image, frame.time, frame.coverage
            if frame.time is not None:  # published: the sound up to its time goes out on its clock
                self._audio_until(frame.time + self._AUDIO_AHEAD)

    def close(self) -> None:
        self._source.close()
        if self._audio is not None:
            self._audio.close()


Connection = Union[AvConnection, CvCamera, FileConnection]
