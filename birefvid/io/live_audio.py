"""A live source's sound, carried into live recordings in step with the pictures.

The capture thread decodes the source's first audio track and pushes each frame, stamped on the
same stream clock as the pictures (``stream_time``: seconds since the first picture) and with its
connection's ``generation``, into a ``LiveAudioFeed``. The live runner says, at the first picture
it shows of each connection, how far the output's clock is ahead of the stream clock for it (an
outage it bridged with repeated pictures moves the output on by the outage); sound of a
connection waits until that is known, then is placed on the output's clock like its pictures. Each recording subscribes to the feed and gets its own bounded queue, plus the
last few seconds already captured, so a recording that opens after the first picture still has
its sound from the start. ``LiveAudioTrack`` encodes what a recording takes (AAC, Opus for WebM)
as one continuous run of samples: a gap (a reconnect, a lost packet) becomes silence of its
length and audio from before the end of the run is dropped, so the sound never drifts from the
pictures; a source whose sample rate or layout changes after a reconnect is resampled.
"""

from __future__ import annotations

import collections
import logging
import threading
from fractions import Fraction
from typing import Deque, Optional

import av

from birefvid.io.audio import REENCODE, add_audio_encoder, channel_mixer, real_planes, silent_frame, stated_layout

log = logging.getLogger(__name__)

# how much captured sound the feed keeps for a recording that subscribes late, and the most a
# subscriber may fall behind before its oldest frames are dropped
HISTORY_S = 10.0
BACKLOG_S = 30.0
# seconds of audio muxed ahead of the pictures written so far (the file pipeline uses 0.5)
LEAD_S = 0.1  # live sound arrives as it plays: little to gain from more
# jitter absorbed into the continuous run; larger gaps become silence, larger overlaps are dropped
TOLERANCE_S = 0.1
# how far the sound may run past the last picture of a recording
TAIL_S = 0.05
# connections (generations) whose clock offsets are kept: a looped file of 2 s starts one every 2 s, so a
# day's run would keep 43,200 and scan them all for every picture; a frame this many connections old
# is not still queued: a recording takes its sound at every picture (at most BACKLOG_S, 30 s, would wait)
GENERATIONS_KEPT = 64
# FFmpeg's AAC encoder stamps its first packet this many samples before its first sample (its priming,
# ``initial_padding``, which PyAV does not show). FFmpeg's FLV writer refuses (EINVAL, "Packets are not
# in the proper order with respect to DTS") any packet stamped before the first one it wrote, so sound
# that reached an RTMP stream's muxer more than its interleave delay after the first pictures, stamped
# at them, failed the stream: its priming fell before the pictures already written
AAC_PRIMING = 1024

Stamped = tuple[float, av.AudioFrame, int]  # (stream time in seconds, frame, connection generation)


def _seconds(frame: av.AudioFrame) -> float:
    return frame.samples / frame.sample_rate if frame.sample_rate else 0.0


def _copy(frame: av.AudioFrame, start: int = 0, stop: Optional[int] = None) -> av.AudioFrame:
    """A frame of one's own with samples ``start:stop`` of ``frame`` (all by default; audio is small:
    ~8 KB a 1024-sample stereo frame)."""
    # plane by plane, not to_ndarray/from_ndarray: PyAV 18 crashes on those for 7.1 planar audio (see real_planes)
    stop = frame.samples if stop is None else stop
    step = 1 if frame.format.is_planar else len(frame.layout.channels)
    size = frame.format.bytes * step
    copy = av.AudioFrame(format=frame.format.name, layout=frame.layout.name, samples=stop - start)
    for source, target in zip(real_planes(frame), real_planes(copy)):
        data = bytes(memoryview(source)[start * size : stop * size])
        target.update(data + bytes(target.buffer_size - len(data)))  # a plane may be padded past its samples
    copy.sample_rate = frame.sample_rate
    return copy


class AudioQueue:
    """One subscriber's frames, oldest first, at most ``BACKLOG_S`` seconds of them."""

    def __init__(self, frames: list[Stamped]) -> None:
        self._lock = threading.Lock()
        self._frames: Deque[Stamped] = collections.deque(frames)
        self._held = sum(_seconds(f) for _, f, _ in frames)
        self.dropped = 0

    def put(self, item: Stamped) -> None:
        with self._lock:
            self._frames.append(item)
            self._held += _seconds(item[1])
            while self._held > BACKLOG_S and len(self._frames) > 1:
                _, old, _ = self._frames.popleft()
                self._held -= _seconds(old)
                self.dropped += 1

    def take_until(self, seconds: Optional[float], offsets: dict[int, float]) -> list[tuple[float, av.AudioFrame, int]]:
        """(output time, frame, generation) of the frames that start at or before output time ``seconds`` (all
        of them for None), removed from the queue; the output time is the stream time plus the
        ``offsets`` of the frame's generation, and a frame whose generation has none yet waits."""
        newest = max(offsets, default=-1)
        with self._lock:
            taken = []
            while self._frames:
                at, frame, generation = self._frames[0]
                offset = offsets.get(generation)
                if offset is None and generation < newest:  # a connection none of whose pictures was shown
                    self._frames.popleft()
                    self._held -= _seconds(frame)
                    continue
                if offset is None or (seconds is not None and at + offset > seconds):
                    break
                self._frames.popleft()
                self._held -= _seconds(frame)
                taken.append((at + offset, frame, generation))
            return taken


class LiveAudioFeed:
    """Decoded source audio stamped on the stream clock, fanned out to every subscribed recording.

    ``rate`` and ``layout`` are the first connection's, which the recordings' encoders are set up for; ``origin``
    names where the sound comes from in messages (an ``--audio-device`` microphone's label, not "the source");
    ``tags``: the source track's ``language`` and ``title``, which every recording and stream gives its track.
    """

    def __init__(self, rate: int, layout: str, origin: str = "the source", tags: Optional[dict[str, str]] = None) -> None:
        self.rate, self.layout, self.origin = rate, layout, origin
        self.tags = dict(tags or {})
        self._lock = threading.Lock()
        self._history: Deque[Stamped] = collections.deque()
        self._subscribers: list[AudioQueue] = []
        # generation -> seconds the output's clock is ahead of the stream clock (set by the live runner)
        self.offsets: dict[int, float] = {}
        self.said: set[str] = set()  # warnings given once a run: a stream reopened after an outage would repeat them

    def push(self, stream_time: float, frame: av.AudioFrame, generation: int = 0) -> None:
        """Called by the capture thread for each decoded frame, in order."""
        with self._lock:
            self._history.append((stream_time, frame, generation))
            while self._history and self._history[0][0] < stream_time - HISTORY_S:
                self._history.popleft()
            for queue in self._subscribers:
                queue.put((stream_time, frame, generation))

    def set_offset(self, generation: int, seconds: float) -> None:
        """The output's clock for ``generation``'s sound: its stream time plus ``seconds``; the first word stands."""
        if generation in self.offsets:
            return
        self.offsets[generation] = seconds
        # generations come in increasing order, so the dict's first keys are the oldest
        while len(self.offsets) > GENERATIONS_KEPT:
            del self.offsets[next(iter(self.offsets))]

    def subscribe(self) -> AudioQueue:
        """A queue of every frame from now on, starting with the last ``HISTORY_S`` seconds captured."""
        with self._lock:
            queue = AudioQueue(list(self._history))
            self._subscribers.append(queue)
            return queue

    def unsubscribe(self, queue: AudioQueue) -> None:
        """Stop filling ``queue`` (a finished recording's); a queue left behind would hold its last
        ``BACKLOG_S`` of sound and cost every push, one more for each part of a ``--segment`` run."""
        with self._lock:
            if queue in self._subscribers:
                self._subscribers.remove(queue)

    @property
    def subscribers(self) -> int:
        """How many recordings and streams take the sound now."""
        with self._lock:
            return len(self._subscribers)


class LiveAudioTrack:
    """Encodes the frames of one ``AudioQueue`` into ``out`` (added before its header is written)."""

    def __init__(
        self, feed: LiveAudioFeed, out: av.container.OutputContainer, muxer: str, name: str = "the recording", max_channels: Optional[int] = None,
    ) -> None:
        """``max_channels``: the most the output carries (RTMP: 2); surround beyond it is mixed down to stereo, with a warning."""
        codec = REENCODE.get(muxer, "aac")
        self._out = out
        layout = av.AudioLayout(feed.layout)
        if max_channels is not None and layout.nb_channels > max_channels:
            layout = av.AudioLayout("stereo" if max_channels >= 2 else "mono")
            message = f"{name}: the {feed.layout} sound of {feed.origin} is mixed down to {layout.name}, the most it carries"
            if message not in feed.said:
                feed.said.add(message)
                log.warning("%s", message)
        self._stream = add_audio_encoder(out, codec, feed.rate, layout, name)
        for key, value in feed.tags.items():  # Matroska, MP4 and MOV keep both; MPEG-TS the language; RTSP and FLV neither
            self._stream.metadata[key] = value
        self._format = av.codec.Codec(codec, "w").audio_formats[0].name
        self._rate, self._layout = self._stream.codec_context.sample_rate, self._stream.codec_context.layout.name
        self._feed = feed
        self._queue = feed.subscribe()
        self._offsets = feed.offsets  # shared: the runner fills it in as connections come
        self._resampler: Optional[av.AudioResampler] = None
        self._input: Optional[tuple[str, str, int]] = None  # the resampler's input (format, layout, rate)
        self._next: Optional[int] = None  # sample index where the continuous run goes on
        # seconds added to each sound's stream time: where the output's clock has the stream's 0
        # (a network sink's timestamps start elsewhere); set before the first write_until
        self.offset = 0.0
        self._last_picture: Optional[float] = None  # the latest time write_until was given
        self._first_picture: Optional[float] = None  # the first: where this output's sound may start
        # samples after the first picture before which no sound starts: on FLV, its priming and FLV's whole
        # milliseconds (the picture and the sound are each rounded to them) must not reach before that picture
        self._start_after = AAC_PRIMING + -(-self._rate // 1000) if muxer == "flv" else 0
        # a part of a recording in parts: sound past ``hold_from`` (live time: the part's planned end)
        # waits in ``_held`` until ``end`` (the next part's first picture) is known and is cut there,
        # and the next part's sound starts at its 0 to the sample, so joined parts neither repeat nor
        # lose sound at the joint
        self.hold_from: Optional[float] = None
        self.end: Optional[float] = None
        self._held: list[tuple[int, av.AudioFrame]] = []  # (sample index, frame) past hold_from
        self._skip = 0  # samples to drop from the front of the run: a frame that straddles the output's 0
        self._generation = 0  # the connection (or file loop) the last sound came from
        self._name = name
        self.gaps = 0  # silences put in for sound missing within a connection
        log.info("recording the audio of %s (%s Hz %s) to %s as %s", feed.origin, feed.rate, feed.layout, name, codec)

    def write_until(self, seconds: Optional[float]) -> None:
        """Encode the captured sound up to ``seconds`` (plus a short lead); None: everything captured."""
        if seconds is not None:
            self._last_picture = seconds
            if self._first_picture is None:
                self._first_picture = seconds
        for start, frame, generation in self._queue.take_until(None if seconds is None else seconds + LEAD_S, self._offsets):
            self._add(start, frame, generation)

    def _add(self, start: float, frame: av.AudioFrame, generation: int = 0) -> None:
        first = round((start + self.offset) * self._rate)
        length = round(frame.samples * self._rate / max(1, frame.sample_rate))
        tolerance = round(TOLERANCE_S * self._rate)
        new_connection, self._generation = generation != self._generation, generation
        if self._next is None:
            # sound from before the output's first picture (a stream's sound captured while the model warmed
            # up): only what plays from that picture on is kept. A recording's first picture is its 0; an
            # RTSP stream's sits at its lag, where sound from before it was sent ahead of the pictures
            # on FLV the sound starts 1024 samples and 1 ms after it (22 ms at 48 kHz, 129 ms at 8 kHz), so that no packet precedes the picture
            origin = 0 if self._first_picture is None else self._sample(self._first_picture) + self._start_after
            if first < origin:
                if first + length <= origin:
                    return
                self._skip, first = origin - first, origin
            self._next = first
        elif new_connection and first < self._next:
            # a reconnect or a file's next loop: its sound starts exactly with its first picture, so
            # the part the run already holds (a file's audio outlasting its pictures by AAC's last
            # frame) is cut, rather than pushing everything after it late, loop after loop
            if first + length <= self._next:
                return
            self._skip = self._next - first
        elif first > self._next + (0 if new_connection else tolerance):  # nothing was captured meanwhile: silence keeps the sync
            # only a gap within a connection is sound gone missing; before a new one's sound (a looping file whose
            # sound is shorter than its pictures, a camera back after an outage) the source itself had none
            self.gaps += not new_connection
            self._silence(first - self._next)
        elif first + length < self._next - tolerance:
            return  # sound the run already covers (a source clock that stepped back)
        for converted in self._resample(frame):
            self._emit(converted)

    def _resample(self, shared: av.AudioFrame) -> list[av.AudioFrame]:
        frame = stated_layout(shared, self._layout)  # "4 channels" carried one to one, not mixed as FFmpeg guesses them
        shape = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self._resampler is None or shape != self._input:
            if self._resampler is not None:
                for rest in self._resampler.resample(None):  # what the old setup still holds
                    self._emit(rest)
            self._resampler = channel_mixer(self._format, self._layout, self._rate)  # 5.1 into RTMP's stereo: no clipping
            self._input = shape
        # the frame is shared with the other subscribers: read, never changed. A resampler with nothing
        # to convert hands the frame itself back, and _encode stamps its pts: then encode a copy, or a
        # recording finishing on another thread (a part of --segment) could stamp it at the same time
        return [_copy(out) if out is shared else out for out in self._resampler.resample(frame)]

    def _silence(self, samples: int) -> None:
        while samples > 0:
            n = min(samples, self._rate)
            self._emit(silent_frame(self._format, self._layout, self._rate, n))
            samples -= n

    def _sample(self, seconds: float) -> int:
        """The output's sample index at live time ``seconds``."""
        return round((seconds + self.offset) * self._rate)

    def _emit(self, frame: av.AudioFrame) -> None:
        """Put ``frame`` at the end of the run, then encode it, hold what lies past ``hold_from``, or cut what lies past ``end``."""
        assert self._next is not None
        if self._skip:
            cut = min(self._skip, frame.samples)
            self._skip -= cut
            if cut == frame.samples:
                return
            frame = _copy(frame, cut)
        at = self._next
        self._next += frame.samples
        if self.end is not None:
            self._encode_before(frame, at, self._sample(self.end))
        elif self.hold_from is not None and at + frame.samples > (hold := self._sample(self.hold_from)):
            keep = max(0, hold - at)
            if keep:
                self._encode(_copy(frame, 0, keep), at)
                frame = _copy(frame, keep)
            self._held.append((at + keep, frame))
        else:
            self._encode(frame, at)

    def _encode_before(self, frame: av.AudioFrame, at: int, stop: int) -> None:
        """Encode the samples of ``frame`` (starting at sample ``at``) that lie before sample ``stop``."""
        if at < stop:
            self._encode(frame if at + frame.samples <= stop else _copy(frame, 0, stop - at), at)

    def _encode(self, frame: av.AudioFrame, at: int) -> None:
        frame.pts, frame.time_base = at, Fraction(1, self._rate)
        self._out.mux(self._stream.encode(frame))

    def finish(self) -> None:
        """Encode what was captured until ``end`` (by default just after the last picture) and flush the encoder."""
        if self.end is None and self._last_picture is not None:
            self.end = self._last_picture + TAIL_S
        if self.end is not None:
            stop = self._sample(self.end)
            for at, frame in self._held:
                self._encode_before(frame, at, stop)
            self._held = []
            for start, frame, generation in self._queue.take_until(self.end, self._offsets):
                self._add(start, frame, generation)
        if self._resampler is not None and self._next is not None:
            for rest in self._resampler.resample(None):
                self._emit(rest)
        self._out.mux(self._stream.encode(None))
        if self._queue.dropped or self.gaps:
            log.warning("%s: %d stretches of the source's audio were missing and became silence%s", self._name, self.gaps,
                        f"; {self._queue.dropped} frames came too late and were dropped" if self._queue.dropped else "")  # fmt: skip

    def close(self) -> None:
        """Leave the feed (the container belongs to the sink); called once the track is finished or abandoned."""
        self._feed.unsubscribe(self._queue)
