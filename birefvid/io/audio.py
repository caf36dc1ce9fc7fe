"""Carry the input's audio into a video output: packet copy when the container accepts the codec,
otherwise a re-encode (AAC for mov/mp4/mkv, Opus for webm). Every audio track is kept, in order,
with its language and title (an OBS recording's separate microphone track, a film's languages).

Audio is interleaved as the video is written (``write_until`` the current video time), so memory
stays bounded however long the input is. Copied packets keep their timestamps. Re-encoded audio is
re-timed as one continuous run of samples (a source's audio timestamps jitter by a millisecond or so)
that starts where the source's first audio frame did, because the video keeps its own timestamps: an
MPEG-TS whose streams start at 1.4 s would otherwise have its audio play 1.4 s early. A gap in the
source's audio longer than ``GAP_S`` (a recording whose sound dropped out) is filled with silence,
else everything after it played the gap's length early; one that ends past the video's last picture is
the sound's clock jumping (a broadcast's glitch), not a dropout, and is not filled.
"""

from __future__ import annotations

import functools
import logging
import re
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import av
from av.audio.plane import AudioPlane
from av.codec.codec import Properties

from birefvid.errors import SinkError, SourceError
from birefvid.io.base import open_media
from birefvid.io.channel_order import custom_order_track, custom_order_tracks
from birefvid.io.interleave import LEAD_S, InterleavedPackets, carry_track_tags
from birefvid.urls import shown_url

if TYPE_CHECKING:
    from birefvid.io.channel_order import RawPcmTrack
    from birefvid.io.trim import TimeWindow

log = logging.getLogger(__name__)

# codecs each muxer takes by packet copy; anything else is re-encoded to REENCODE[muxer]
# (every PCM each holds: a 32-bit or float master re-encoded to AAC lost its resolution; DTS ("dca") and MP2, a
# film's and a broadcast's sound, were re-encoded too; each copies bit-exact, tests/test_io_audio.py)
_MOV_PCM = ("pcm_s8", "pcm_u8", "pcm_alaw", "pcm_mulaw", "pcm_f32be", "pcm_f64le", "pcm_f64be")
_PCM = ("pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_s16be", "pcm_s24be", "pcm_s32be", "pcm_f32le")
COPYABLE: dict[str, frozenset[str]] = {
    "mov": frozenset({"aac", "alac", "mp3", "mp2", "ac3", "eac3", "dca", *_PCM, *_MOV_PCM}),
    "mp4": frozenset({"aac", "alac", "mp3", "ac3", "eac3", "opus", "flac"}),
    "matroska": frozenset({"aac", "alac", "mp3", "mp2", "ac3", "eac3", "dca", "opus", "flac", "vorbis", *_PCM, "pcm_u8", "pcm_f64le"}),
    "webm": frozenset({"opus", "vorbis"}),
}
REENCODE: dict[str, str] = {"mov": "aac", "mp4": "aac", "matroska": "aac", "webm": "libopus"}


# a hole in the source's audio timestamps longer than this is filled with silence when re-encoding: above
# the containers' millisecond rounding, well under the ~45 ms at which sound ahead of the picture shows
GAP_S = 0.010
# silence is encoded in frames of at most this many seconds (a gap of minutes stays small in memory)
_SILENCE_CHUNK_S = 1.0

# PCM copied into MOV, which stores its samples back to back (no timestamps): the byte of silence where it is
# not 0, so a gap in the source's sound becomes silence instead of pulling what follows early
_PCM_SILENCE = {"pcm_u8": b"\x80", "pcm_alaw": b"\xd5", "pcm_mulaw": b"\xff"}

# muxers without edit lists: sound an MP4's edit list hides (the second before an `ffmpeg -ss T -c copy` cut) copied
# there would play before the picture; all but the last such packet (AAC's priming, the decoder's pre-roll) are left out
_NO_EDIT_LIST = frozenset({"matroska", "webm"})

# muxers whose edit list trims a copied track's start to the sample: a time range's sound (``--start``) keeps the packet
# the cut falls in and, as the decoder's pre-roll, those of the ``PREROLL_S`` before it, all at negative times, which the
# muxer's edit list hides, as `ffmpeg -ss T -c copy` does. The track then plays from the output's first instant, its first
# sounds decoded whole; cut at the first packet after the cut, it began up to a packet (21 ms of AAC, 32 ms of AC-3) late,
# its first packets decoded without those before (AAC's first 21 ms faded in, MP3's first 47 ms silent: its bit
# reservoir and filter bank start empty). Matroska, which has no edit list, keeps that cut. Re-encoded sound decodes the
# same packets and drops what lies before 0 itself, in every container
_TRIMS_START = frozenset({"mov", "mp4"})
# seconds of packets before a cut kept as the decoder's pre-roll: Opus asks for 80 ms (RFC 7845), MP3's bit reservoir and
# filter bank reach back two or three frames (70 ms at 48 kHz), AAC's and AC-3's overlap one
PREROLL_S = 0.1

# the usual layout for each channel count (Vorbis/Opus order), for sources whose own layout an encoder refuses
_SURROUND = {3: "3.0", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}

# libswresample's options for mixing channels down (5.1 into stereo, stereo into mono): the mix scaled so that no sum
# passes full scale, as it is into 16-bit sound. Into float (what AAC and Opus take) it was left unscaled: a tone at 0.5
# in every channel of 5.1 came out at 1.2 in stereo, which AAC kept (players clip it) and Opus soft-clipped (distorted)
MIX_DOWN = {"rematrix_maxval": "1.0"}


def channel_mixer(fmt: str, layout: str, rate: int) -> av.AudioResampler:
    """A resampler into ``fmt``, ``layout`` and ``rate`` whose mix-down cannot clip (``MIX_DOWN``)."""
    return av.AudioResampler(format=fmt, layout=layout, rate=rate, options=MIX_DOWN)


@functools.lru_cache(maxsize=None)
def _encoder_takes(codec: str, layout: str, rate: int) -> bool:
    """Whether ``codec``'s encoder opens with ``layout`` (libopus refuses 5.1(side), AAC takes it)."""
    try:
        cc = av.CodecContext.create(codec, "w")
        cc.layout, cc.sample_rate = layout, rate
        cc.format = av.codec.Codec(codec, "w").audio_formats[0].name
        cc.open()
        return True
    except (av.FFmpegError, ValueError):
        return False


def encoder_layout(codec: str, source: av.AudioLayout, rate: int) -> str:
    """The channel layout to re-encode ``source`` audio in: its own when the encoder takes it (5.1 stays
    5.1), else the usual one for as many channels, else stereo; mono stays mono."""
    channels = source.nb_channels
    if channels <= 1:
        return "mono"
    for candidate in (source.name, _SURROUND.get(channels)):
        if candidate and _encoder_takes(codec, candidate, rate):
            return candidate
    return "stereo"


def add_audio_encoder(out: av.container.OutputContainer, codec: str, rate: int, source: av.AudioLayout, name: str) -> av.audio.stream.AudioStream:
    """An encoder stream in ``out`` for audio of ``rate`` Hz in ``source``'s layout: the nearest rate the
    encoder takes (48 kHz for Opus) and ``encoder_layout``'s layout, warning when surround is mixed down."""
    supported = av.codec.Codec(codec, "w").audio_rates
    if supported and rate not in supported:
        rate = 48000 if 48000 in supported else max(supported)
    layout = encoder_layout(codec, source, rate)
    if layout == "stereo" and source.nb_channels > 2:
        log.warning("%s: %s cannot carry its %s audio; mixed down to stereo (scaled so that it cannot clip)", name, codec, source.name)
    stream = out.add_stream(codec, rate=rate)
    stream.codec_context.layout = layout
    stream.codec_context.time_base = Fraction(1, rate)
    return stream


# ADTS's sampling frequency index -> Hz
_ADTS_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)

# the output extension of each muxer, for messages
_EXTENSION = {"mov": ".mov", "mp4": ".mp4", "matroska": ".mkv", "webm": ".webm"}


def _lossless(codec: str) -> bool:
    """Whether ``codec`` is lossless audio (PCM, FLAC, ALAC, TrueHD ...), whose re-encoding to AAC or Opus loses what it kept."""
    try:
        props = av.codec.Codec(codec, "r").properties
    except (av.FFmpegError, ValueError):
        return False
    return bool(props & Properties.LOSSLESS.value) and not props & Properties.LOSSY.value


def _keeps(codec: str) -> str:
    """For a message: the outputs that copy ``codec`` as it is (none: empty)."""
    keep = [_EXTENSION[m] for m, codecs in COPYABLE.items() if codec in codecs]
    return f"; write {' or '.join(keep)} to keep it bit-exact" if keep else ""


def real_planes(frame: av.AudioFrame) -> list:
    """The planes that hold ``frame``'s samples: one a channel when planar, else one. Made one by one rather than
    read from ``frame.planes``, which counts data pointers up to the first null: PyAV 18 listed a ninth plane for
    8-channel (7.1) planar audio, past the frame's data pointers (touching it crashed the process), and PyAV 19
    raises ``ValueError: plane index 8 out of range for 8 planes`` there (every 7.1 track's silence failed)."""
    return [AudioPlane(frame, i) for i in range(len(frame.layout.channels) if frame.format.is_planar else 1)]


def unstated(layout: av.AudioLayout) -> bool:
    """Whether ``layout`` names no channel ("4 channels": an MKV's or MOV's PCM, a WAV without a channel mask)."""
    return layout.nb_channels > 0 and all(channel.name == "NONE" for channel in layout.channels)


def stated_layout(frame: av.AudioFrame, layout: str) -> av.AudioFrame:
    """``frame``, whose channels have no stated order, as ``layout`` when it has as many channels: channel for channel, in
    a copy (its pts kept); any other frame as it is. A resampler reads such channels as FFmpeg guesses them (3: 2.1, 4:
    4.0) and mixes that guess into ``layout``: 3 channels into AAC's 3.0 lost the third (read as LFE), 4 into quad had
    the third and fourth folded into the others, at less than half their level once mixing was scaled (``MIX_DOWN``)."""
    if frame.layout.name == layout or not unstated(frame.layout) or av.AudioLayout(layout).nb_channels != frame.layout.nb_channels:
        return frame
    copy = av.AudioFrame(format=frame.format.name, layout=layout, samples=frame.samples)
    for source, target in zip(real_planes(frame), real_planes(copy)):
        size = min(source.buffer_size, target.buffer_size)
        target.update(bytes(memoryview(source)[:size]) + bytes(target.buffer_size - size))
    copy.sample_rate, copy.pts = frame.sample_rate, frame.pts
    if frame.time_base is not None:
        copy.time_base = frame.time_base
    return copy


def silent_frame(fmt: str, layout: str, rate: int, samples: int) -> av.AudioFrame:
    """A frame of ``samples`` samples of silence in format ``fmt`` and ``layout`` at ``rate`` Hz."""
    silent = av.AudioFrame(format=fmt, layout=layout, samples=samples)
    level = b"\x80" if fmt.startswith("u8") else b"\x00"  # unsigned 8-bit samples are silent at 128: 0 is full scale
    for plane in real_planes(silent):
        plane.update(level * plane.buffer_size)
    silent.sample_rate = rate
    return silent


def frame_tail(frame: av.AudioFrame, skip: int) -> av.AudioFrame:
    """``frame`` without its first ``skip`` samples (fewer than it holds), in a copy whose pts moves with them."""
    size = frame.format.bytes * (1 if frame.format.is_planar else len(frame.layout.channels))
    tail = av.AudioFrame(format=frame.format.name, layout=frame.layout, samples=frame.samples - skip)
    for source, target in zip(real_planes(frame), real_planes(tail)):
        kept = bytes(memoryview(source)[skip * size : frame.samples * size])
        target.update(kept + bytes(target.buffer_size - len(kept)))
    tail.sample_rate = frame.sample_rate
    if frame.pts is not None and frame.time_base:
        tail.time_base = frame.time_base
        tail.pts = frame.pts + round(Fraction(skip, frame.sample_rate) / frame.time_base)
    return tail


def _pcm_block(codec: str, channels: int) -> int:
    """Bytes a sample frame of PCM ``codec`` takes (all its channels); 0 for any other codec."""
    if not codec.startswith("pcm_"):
        return 0
    bits = re.search(r"\d+", codec)
    size = 1 if codec.endswith("law") else int(bits.group()) // 8 if bits else 0
    return size * max(1, channels)


def has_audio(path: str | Path) -> bool:
    """True when ``path`` can be opened and holds at least one audio stream."""
    try:
        with open_media(path) as c:
            return bool(c.streams.audio)
    except SourceError:  # a URL that stopped answering: no reason to think it has no sound
        raise
    except (av.FFmpegError, OSError):
        return False


class AudioTrack(InterleavedPackets):
    """Audio stream ``index`` (0: the first) of ``src`` added to ``out`` (before its header is written)."""

    def __init__(
        self, src: str | Path, out: av.container.OutputContainer, muxer: str, index: int = 0, window: Optional["TimeWindow"] = None
    ) -> None:
        super().__init__(window)
        self._encoder = None
        self._next_sample: Optional[int] = None  # re-encoding: pts (in samples) of the next decoded frame
        self._shape: Optional[tuple[str, str, int]] = None  # re-encoding: (format, layout, rate) of the first frame
        self._target: Optional[tuple[str, str, int]] = None  # re-encoding: the same with the encoder's layout: what is encoded
        self._input: Optional[tuple[str, str, int]] = None  # re-encoding: the same of the last frame decoded
        self._converter: Optional[av.AudioResampler] = None  # frames of another shape into ``_target``
        self._changes = 0  # changes of the sound's layout or rate met
        self._damaged = 0  # audio packets that could not be decoded
        self._gaps: list[float] = []  # seconds of each gap in the source's sound filled with silence
        self._pictures_to: Optional[float] = None  # the latest video time write_until was given
        self._jumped = False  # a jump of the sound's clock past the pictures was warned of
        self._src_name = shown_url(str(src))  # a URL's password or token stays out of messages
        self._preroll: Optional[av.Packet] = None  # copied into Matroska: the last packet an edit list hides, held
        self._lead: list[av.Packet] = []  # copied into MOV/MP4 with a window: the packets of PREROLL_S before it, held
        self._number, self._muxer, self._sent = index + 1, muxer, 0  # packets (copied) or frames (re-encoded) given out
        try:
            self._in = open_media(src)
        except (av.FFmpegError, OSError) as e:
            raise SinkError(f"cannot read audio from {self._src_name}: {str(e).replace(str(src), self._src_name)}") from e
        try:
            self._src_stream = self._in.streams.audio[index]
            self._out = out
            name = self._src_stream.codec_context.codec.canonical_name  # the codec's, not its decoder's name (mp3, not mp3float)
            self.copy = name in COPYABLE.get(muxer, frozenset())
            if self.copy:
                self._out_stream = out.add_stream_from_template(self._src_stream)
                log.info("copying %s audio from %s", name, self._src_name)
            else:
                self._out_stream = self._add_encoder(REENCODE.get(muxer, "aac"))
                # lossless sound made lossy without a word was a master's quality lost; other codecs are re-encoded as documented
                (log.warning if _lossless(name) else log.info)(
                    "%s: audio track %d (%s) is re-encoded to %s for %s, which is lossy%s", self._src_name, self._number, name,
                    self._out_stream.codec_context.name, _EXTENSION.get(muxer, muxer), _keeps(name))  # fmt: skip
            carry_track_tags(self._src_stream, self._out_stream)
            self._pcm_block = _pcm_block(name, self._src_stream.codec_context.channels) if self.copy and muxer == "mov" else 0
            self._pcm_end: Optional[float] = None  # copied PCM: where the last packet's samples end, in seconds
            # copied AAC: the first ADTS header's (rate, channels); False: not ADTS, or not copied AAC
            self._adts: Optional[tuple[int, int]] | bool = None if self.copy and name == "aac" else False
            self._said_adts = False
            self._demux(self._src_stream)
        except Exception:
            self.close()
            raise

    def _add_encoder(self, codec: str) -> av.audio.stream.AudioStream:
        src = self._src_stream.codec_context
        self._encoder = add_audio_encoder(self._out, codec, src.sample_rate or 48000, src.layout, self._src_name)
        return self._encoder

    def _starts_in_window(self, packet: av.Packet, t: float) -> bool:
        """Also keeps, re-encoded or copied into MOV/MP4 (``_TRIMS_START``), the packet the window's start falls in; the one
        before it is held as the pre-roll with those of ``PREROLL_S`` before it (copied PCM needs none), muxed (or decoded)
        before the first packet kept."""
        if super()._starts_in_window(packet, t):
            return True
        if not ((not self.copy or self._muxer in _TRIMS_START) and self._sent == 0 and packet.duration):
            return False
        assert self._window is not None
        if t + float(packet.duration * packet.time_base) > self._window.start + 1e-9:
            return True  # the cut falls in it: the edit list hides its part before 0
        if not self._pcm_block:
            self._lead.append(packet)
            while len(self._lead) > 1 and self._time(self._lead[1]) <= t - PREROLL_S + 1e-9:
                del self._lead[0]
        return False

    def _mux(self, packet: av.Packet) -> None:
        lead, self._lead = self._lead, []
        for held in lead:
            assert self._window is not None
            self._move(held, self._window.ticks(held.time_base))
            self._mux_shown(held)
        if self.copy and packet.is_discard and self._muxer in _NO_EDIT_LIST:
            self._preroll = packet  # hidden by the source's edit list: only the last one is kept, as the decoder's pre-roll
            return
        if self._preroll is not None:
            preroll, self._preroll = self._preroll, None
            self._mux_shown(preroll)
        self._mux_shown(packet)

    def _mux_shown(self, packet: av.Packet) -> None:
        self._sent += 1
        if self.copy:
            if self._pcm_block:
                self._fill_pcm_gap(packet)
            if self._adts is not False:
                self._check_adts(packet)
            self._in_order(packet, self._out_stream)
            packet.stream = self._out_stream
            self._out.mux(packet)
            return
        try:
            frames = packet.decode()
        except av.FFmpegError as exc:
            self._silence_for(packet, exc)
            return
        for frame in frames:
            known = frame.pts is not None and frame.time_base
            if known and self._window is not None and frame.pts < 0:  # the pre-roll, and the cut packet's part before 0
                skip = round(-frame.pts * frame.time_base * frame.sample_rate)
                if skip >= frame.samples:
                    continue
                frame = frame_tail(frame, skip)
            if self._next_sample is None:  # start where the source's audio starts
                self._next_sample = round((frame.pts * frame.time_base if known else 0) * frame.sample_rate)
                assert self._encoder is not None
                self._target = (frame.format.name, self._encoder.codec_context.layout.name, frame.sample_rate)
            assert self._target is not None
            frame = stated_layout(frame, self._target[1])  # "4 channels" carried one to one, not mixed as FFmpeg guesses them
            if self._shape is None:
                self._shape = (frame.format.name, frame.layout.name, frame.sample_rate)
            rate = self._shape[2]
            if known:
                self._fill_gap(round(frame.pts * frame.time_base * rate), rate)
            for steady in self._steady(frame):
                self._encode(steady)

    def _steady(self, frame: av.AudioFrame) -> list[av.AudioFrame]:
        """``frame`` in the track's first format and rate and the encoder's layout: the encoder's resampler refused any
        other ("Frame does not match AudioResampler setup"), and a broadcast's sound goes from mono to stereo, or 48 to
        44.1 kHz, at an ad. Channels are mixed here, not by the encoder's resampler, whose mix-down clipped (``MIX_DOWN``)."""
        assert self._shape is not None and self._target is not None
        shape = (frame.format.name, frame.layout.name, frame.sample_rate)
        if shape == self._input and self._converter is None:
            return [frame]
        out: list[av.AudioFrame] = []
        if shape != self._input:  # a change: what the old converter still holds goes first, so no sound is lost
            out = self._flush_converter()
            self._input = shape
            if shape != self._shape:
                self._say_change(frame, shape)
            if shape != self._target:
                self._converter = channel_mixer(*self._target)
        if self._converter is None:
            return out + [frame]
        return out + list(self._converter.resample(frame))

    def _flush_converter(self) -> list[av.AudioFrame]:
        """The samples a converter of a changed layout or rate still holds (its filter's delay), and the converter dropped."""
        converter, self._converter = self._converter, None
        return [] if converter is None else list(converter.resample(None))

    def _say_change(self, frame: av.AudioFrame, shape: tuple[str, str, int]) -> None:
        """Warn of the first change of the sound's layout or rate (the others only in the debug log: an hour of ads has dozens)."""
        assert self._shape is not None and self._target is not None
        self._changes += 1
        at = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else float("nan")
        (log.warning if self._changes == 1 else log.debug)(
            "%s: audio track %d changes from %s %d Hz to %s %d Hz at %.3f s; resampled to %s %d Hz, as the rest of the track",
            self._src_name, self._number, self._shape[1], self._shape[2], shape[1], shape[2], at, self._target[1], self._target[2])  # fmt: skip

    def _check_adts(self, packet: av.Packet) -> None:
        """Copied AAC from an MPEG-TS (ADTS, whose every frame says its rate and channels): warn once when they change.
        MP4, MOV and MKV hold one rate a track, so sound going from 48 to 44.1 kHz at an ad break played 9% fast."""
        data = bytes(packet)[:4]
        if len(data) < 4 or data[0] != 0xFF or data[1] & 0xF6 != 0xF0:
            self._adts = self._adts or False  # not ADTS (an MP4's AAC): nothing to read
            return
        rate = _ADTS_RATES[(data[2] >> 2) & 0xF] if (data[2] >> 2) & 0xF < len(_ADTS_RATES) else 0
        shape = (rate, ((data[2] & 1) << 2) | (data[3] >> 6))
        if self._adts is None:
            self._adts = shape
        elif shape != self._adts and not self._said_adts:
            self._said_adts = True
            effect = (f"players play the rest at {self._adts[0]} Hz, out of step with the pictures" if shape[0] != self._adts[0]
                      else "some players keep to the first channel layout")  # fmt: skip
            log.warning("%s: audio track %d changes from %d Hz, %d channel(s) to %d Hz, %d channel(s) at %.3f s; it is copied as "
                        "it is, and %s holds one rate and layout a track: %s. Write .webm to have it resampled to the first",
                        self._src_name, self._number, *self._adts, *shape, self._time(packet), _EXTENSION.get(self._muxer, self._muxer),
                        effect)  # fmt: skip

    def _fill_pcm_gap(self, packet: av.Packet) -> None:
        """Copied PCM into MOV: a packet of silence before ``packet`` when the source's sound leaves a hole longer than
        ``GAP_S`` before it (MOV plays its PCM samples back to back, whatever their timestamps say)."""
        rate = self._src_stream.codec_context.sample_rate
        if not rate or (packet.pts is None and packet.dts is None) or not packet.time_base:
            return
        start = self._time(packet)
        end, self._pcm_end = self._pcm_end, start + packet.size // self._pcm_block / rate
        if end is None or start - end <= GAP_S or self._past_pictures(end, start):
            return
        self._say_gap(end, start)
        level = _PCM_SILENCE.get(self._src_stream.codec_context.name, b"\x00")
        done, samples = 0, round((start - end) * rate)
        while done < samples:  # in packets of a second at most: a gap of minutes stays small in memory
            n = min(samples - done, max(1, round(_SILENCE_CHUNK_S * rate)))
            silence = av.Packet(level * (n * self._pcm_block))
            silence.time_base = packet.time_base
            silence.pts = silence.dts = round((end + done / rate) / packet.time_base)
            silence.duration = round(n / rate / packet.time_base)
            silence.stream = self._out_stream
            self._out.mux(silence)
            done += n

    def write_until(self, seconds: Optional[float]) -> None:
        """Mux packets up to ``seconds`` (plus a short lead); ``None`` means everything that is left."""
        if seconds is not None:
            self._pictures_to = seconds if self._pictures_to is None else max(self._pictures_to, seconds)
        super().write_until(seconds)

    def _past_pictures(self, start: float, end: float) -> bool:
        """Whether a hole in the sound from ``start`` to ``end`` s ends past the video's last picture (and the lead muxed
        ahead of it): the sound's clock jumped, not dropped out, and filling it wrote half an hour of silence (hundreds of
        MB, one packet in memory) after a video of seconds. Such a jump is warned of once, and the sound kept in step."""
        if self._pictures_to is None or end <= self._pictures_to + LEAD_S + 1e-6:
            return False
        if not self._jumped:
            log.warning("%s: audio track %d's timestamps jump %.3f s forward at %.3f s, past the video's end (%.3f s); the "
                        "sound after the jump is kept right after the sound before it, not put after that much silence",
                        self._src_name, self._number, end - start, start, self._pictures_to)  # fmt: skip
        self._jumped = True
        return True

    def _say_gap(self, start: float, end: float) -> None:
        """Warn of the first gap filled with silence (the others at the end, counted: a flaky recording has hundreds)."""
        self._gaps.append(end - start)
        (log.warning if len(self._gaps) == 1 else log.debug)(
            "%s: audio track %d has no sound from %.3f s to %.3f s; silence in its place", self._src_name, self._number, start, end)

    def _fill_gap(self, at: int, rate: int) -> None:
        """Silence up to sample ``at`` when the source's audio leaves a hole longer than ``GAP_S`` before it,
        so what follows stays where the source has it (as the pictures do)."""
        assert self._next_sample is not None
        gap = at - self._next_sample
        if gap <= GAP_S * rate or self._past_pictures(self._next_sample / rate, at / rate):
            return
        self._say_gap(self._next_sample / rate, at / rate)
        while gap > 0:
            samples = min(gap, max(1, round(_SILENCE_CHUNK_S * rate)))
            self._encode(self._silent(samples))
            gap -= samples

    def _encode(self, frame: av.AudioFrame) -> None:
        """Re-time ``frame`` as the next samples of the run and mux what the encoder gives back."""
        assert self._next_sample is not None
        frame.pts, frame.time_base = self._next_sample, Fraction(1, frame.sample_rate)
        self._next_sample += frame.samples
        self._out.mux(self._out_stream.encode(frame))

    def _silence_for(self, packet: av.Packet, exc: Exception) -> None:
        """A damaged audio packet: silence of its length in its place, so what follows stays in sync and
        the video goes on (FFmpeg's command line also skips it)."""
        self._damaged += 1
        at = self._time(packet) if packet.pts is not None or packet.dts is not None else float("nan")
        (log.warning if self._damaged == 1 else log.debug)(
            "%s: an audio packet at %.3f s cannot be decoded (%s); silence in its place", self._src_name, at, exc)
        if self._shape is None or self._next_sample is None or not packet.duration or not packet.time_base:
            return  # before the first good frame: the start is taken from that frame anyway
        self._encode(self._silent(max(1, round(packet.duration * packet.time_base * self._shape[2]))))

    def _silent(self, samples: int) -> av.AudioFrame:
        """A frame of ``samples`` samples of silence in the shape the encoder is given."""
        assert self._target is not None
        fmt, layout, rate = self._target
        return silent_frame(fmt, layout, rate, samples)

    def finish(self) -> None:
        """Mux the rest of the audio and flush the encoder."""
        self.write_until(None)
        if self._encoder is not None and not self._closed:
            for rest in self._flush_converter():
                self._encode(rest)
            self._out.mux(self._encoder.encode(None))
        if not self._sent and not self._closed:
            self._say_empty()
        if len(self._gaps) > 1:
            log.warning("%s: audio track %d had %d gaps in its sound, %.3f s in all, each filled with silence",
                        self._src_name, self._number, len(self._gaps), sum(self._gaps))  # fmt: skip

    def _say_empty(self) -> None:
        """A track with no sound in the part kept (a microphone track that ends before ``--start``): MOV and MP4
        leave an empty track out, so the output's tracks no longer match the source's without a word."""
        meta = self._src_stream.metadata
        about = ", ".join(v for v in (meta.get("title") or meta.get("name"), meta.get("language")) if v)
        track = f"audio track {self._number}" + (f" ({about})" if about else "")
        where = " in the part kept" if self._window is not None else ""
        if self._muxer in ("mov", "mp4"):
            log.warning("%s: %s has no sound%s and is left out (MOV/MP4 hold no empty track)", self._src_name, track, where)
        else:
            log.warning("%s: %s has no sound%s; it is kept, empty", self._src_name, track, where)

    def __enter__(self) -> "AudioTrack":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AudioTracks:
    """Every audio stream of ``src`` carried into ``out``, in the source's order (none: an empty list);
    ``window``: only the part of a time range (``io.trim``)."""

    def __init__(self, src: str | Path, out: av.container.OutputContainer, muxer: str, window: Optional["TimeWindow"] = None) -> None:
        try:
            with open_media(src) as container:
                count = len(container.streams.audio)
        except (av.FFmpegError, OSError) as e:
            shown = shown_url(str(src))  # PyAV's message names the URL too
            raise SinkError(f"cannot read audio from {shown}: {str(e).replace(str(src), shown)}") from e
        self.tracks: list[AudioTrack | RawPcmTrack] = []
        custom = custom_order_tracks(str(src)) if count else {}  # tracks PyAV must not touch (see channel_order)
        try:
            for index in range(count):
                if index in custom:
                    kept = custom_order_track(src, out, muxer, index, custom[index], window)
                    if kept is not None:
                        self.tracks.append(kept)
                    continue
                self.tracks.append(AudioTrack(src, out, muxer, index, window))
        except Exception:
            self.close()
            raise

    def write_until(self, seconds: Optional[float]) -> None:
        """Mux each track up to ``seconds`` (plus a short lead); ``None`` means everything that is left."""
        for track in self.tracks:
            track.write_until(seconds)

    def finish(self) -> None:
        """Mux the rest of every track and flush the encoders."""
        for track in self.tracks:
            track.finish()

    def close(self) -> None:
        """Close every track's input (idempotent)."""
        for track in self.tracks:
            track.close()

    def __enter__(self) -> "AudioTracks":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
