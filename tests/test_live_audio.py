"""Live sound into recordings: one continuous run of samples on the pictures' clock, whatever the source does."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from memory_growth import kept_by

from birefvid.frames import StreamInfo
from birefvid.io.formats import choose_encoder
from birefvid.io import live_audio
from birefvid.io.live_audio import BACKLOG_S, HISTORY_S, LiveAudioFeed
from birefvid.io.video_sink import VideoFileSink

FPS = 25


def _tone(start: float, seconds: float, rate: int, hz: float = 440.0, channels: int = 1) -> av.AudioFrame:
    """``seconds`` of a sine that starts at ``start`` s (so consecutive frames join up), as one frame."""
    t = start + np.arange(round(seconds * rate)) / rate
    samples = np.repeat((0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)[None], channels, axis=0)
    frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono" if channels == 1 else "stereo")
    frame.sample_rate = rate
    return frame


def _record(path, feed: LiveAudioFeed, pushes, seconds: float) -> None:
    """Write ``seconds`` of pictures at FPS to ``path`` while ``pushes`` ((time, frame), in order) reach the feed as the pictures pass them."""
    info = StreamInfo(32, 24, Fraction(1, 1000), average_rate=Fraction(FPS))
    feed.set_offset(0, 0.0)  # as the live runner does at the first picture it shows
    sink = VideoFileSink(path, choose_encoder(path, "rgb", 32, 24), info, live_audio=feed)
    pending = list(pushes)
    with sink:
        for i in range(round(seconds * FPS)):
            t = i / FPS
            while pending and pending[0][0] <= t + 0.05:  # the capture runs a little ahead of the display
                feed.push(*pending.pop(0))
            sink.write(np.full((1, 24, 32, 3), 100, np.uint8), [round(t * 1000)])


def _sound(path) -> tuple[float, int, np.ndarray]:
    """(first sample's time, sample rate, mono samples) of ``path``'s audio."""
    with av.open(str(path)) as c:
        frames = list(c.decode(audio=0))
        rate = c.streams.audio[0].codec_context.sample_rate
    return float(frames[0].pts * frames[0].time_base), rate, np.concatenate([f.to_ndarray().mean(axis=0) for f in frames])


def _loud(samples: np.ndarray, rate: int, start: float, a: float, b: float) -> float:
    """Mean |sample| between ``a`` and ``b`` seconds."""
    lo, hi = round((a - start) * rate), round((b - start) * rate)
    return float(np.abs(samples[lo:hi]).mean())


def test_a_gap_becomes_silence_and_a_new_rate_is_resampled_so_the_sound_stays_in_sync(tmp_path):
    feed = LiveAudioFeed(48000, "mono")
    pushes = [(i * 0.1, _tone(i * 0.1, 0.1, 48000)) for i in range(10)]  # 0-1 s
    # a reconnect: nothing from 1.0 to 1.6 s, then the camera comes back at 44.1 kHz in stereo
    pushes += [(1.6 + i * 0.1, _tone(1.6 + i * 0.1, 0.1, 44100, channels=2)) for i in range(9)]  # 1.6-2.5 s
    _record(tmp_path / "rec.mkv", feed, pushes, 2.5)
    start, rate, samples = _sound(tmp_path / "rec.mkv")
    assert rate == 48000 and abs(start) < 0.03  # AAC's priming may start it a frame early
    assert _loud(samples, rate, start, 0.1, 0.9) > 0.25  # a 0.5 sine averages 0.32
    assert _loud(samples, rate, start, 1.05, 1.55) < 0.01  # the gap is silent ...
    assert _loud(samples, rate, start, 1.7, 2.4) > 0.25  # ... and the sound after it sits where it was captured
    assert abs(start + len(samples) / rate - 2.5) < 0.1  # as long as the pictures


def _tone71(start: float, seconds: float, rate: int = 48000) -> av.AudioFrame:
    """``seconds`` of a 0.5 sine in every channel of planar 7.1 audio (AAC's and E-AC-3's decoded form), filled plane
    by plane: PyAV 18's from_ndarray refuses 8 planar channels."""
    t = start + np.arange(round(seconds * rate)) / rate
    frame = av.AudioFrame(format="fltp", layout="7.1", samples=len(t))
    for plane in frame.planes[:8]:
        data = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32).tobytes()
        plane.update(data + bytes(plane.buffer_size - len(data)))
    frame.sample_rate = rate
    return frame


def test_71_sound_with_a_gap_is_recorded_without_crashing(tmp_path):
    # a film's 7.1 played live: PyAV 18 crashed the process (segfault) copying its frames or making its silence
    feed = LiveAudioFeed(48000, "7.1")
    pushes = [(i * 0.1, _tone71(i * 0.1, 0.1)) for i in range(5)] + [(0.8 + i * 0.1, _tone71(0.8 + i * 0.1, 0.1)) for i in range(4)]
    _record(tmp_path / "rec.mkv", feed, pushes, 1.2)
    with av.open(str(tmp_path / "rec.mkv")) as c:
        packed = av.AudioResampler(format="flt", layout="7.1", rate=48000)  # to_ndarray of planar 7.1 crashes too
        samples = np.concatenate([f.to_ndarray().reshape(-1, 8) for frame in c.decode(audio=0) for f in packed.resample(frame)])
    assert np.abs(samples[round(0.1 * 48000) : round(0.4 * 48000)]).mean() > 0.25  # every channel sounds ...
    assert np.abs(samples[round(0.55 * 48000) : round(0.75 * 48000)]).mean() < 0.01  # ... the gap is silent


def test_sound_the_run_already_covers_is_dropped(tmp_path):
    feed = LiveAudioFeed(48000, "mono")
    pushes = [(i * 0.1, _tone(i * 0.1, 0.1, 48000)) for i in range(10)]
    pushes.insert(6, (0.2, _tone(0.2, 0.1, 48000, hz=1000)))  # a source clock that stepped back 0.4 s
    _record(tmp_path / "rec.mkv", feed, pushes, 1.0)
    start, rate, samples = _sound(tmp_path / "rec.mkv")
    assert abs(start + len(samples) / rate - 1.0) < 0.1  # not 0.1 s longer
    spectrum = np.abs(np.fft.rfft(samples[round((0.55 - start) * rate) : round((0.7 - start) * rate)]))
    assert np.argmax(spectrum) * rate / (2 * (len(spectrum) - 1)) < 600  # 440 Hz goes on: the 1 kHz stretch was dropped


def test_a_late_subscriber_gets_the_recent_sound_and_a_stalled_one_stays_bounded():
    feed = LiveAudioFeed(48000, "mono")
    early = feed.subscribe()
    for i in range(round((HISTORY_S + 5) * 10)):
        feed.push(i * 0.1, _tone(0, 0.1, 48000))
    late = feed.subscribe()
    kept = late.take_until(None, {0: 0.0})
    assert len(kept) <= round(HISTORY_S * 10) + 1 and kept[-1][0] == round((HISTORY_S + 5) * 10 - 1) * 0.1
    for i in range(round(BACKLOG_S * 10)):
        feed.push(20 + i * 0.1, _tone(0, 0.1, 48000))
    stalled = early.take_until(None, {0: 0.0})
    assert sum(f.samples for _, f, _ in stalled) / 48000 <= BACKLOG_S + 0.1 and early.dropped > 0
    assert stalled[-1][0] == 20 + (round(BACKLOG_S * 10) - 1) * 0.1  # the newest are the ones kept


def test_a_connections_sound_waits_for_its_place_on_the_output_clock():
    """After an outage the runner moves the output's clock on by the time it bridged with repeated
    pictures; a new connection's sound is held until the runner says by how much, then moved with them."""
    feed = LiveAudioFeed(48000, "mono")
    queue = feed.subscribe()
    feed.set_offset(0, 0.0)
    feed.push(1.0, _tone(0, 0.1, 48000), generation=0)
    feed.push(1.1, _tone(0, 0.1, 48000), generation=1)  # the stream clock runs on; 0.4 s of outage passed
    assert [round(t, 3) for t, *_ in queue.take_until(5.0, feed.offsets)] == [1.0]  # generation 1 waits
    feed.set_offset(1, 0.4)
    feed.set_offset(1, 9.9)  # later words do not move it again
    assert [round(t, 3) for t, *_ in queue.take_until(5.0, feed.offsets)] == [1.5]


def test_sound_of_a_connection_never_shown_is_dropped_once_a_later_one_is():
    feed = LiveAudioFeed(48000, "mono")
    queue = feed.subscribe()
    feed.set_offset(0, 0.0)
    feed.push(1.0, _tone(0, 0.1, 48000), generation=1)  # a connection that lost its stream before a picture was shown
    feed.push(1.2, _tone(0, 0.1, 48000), generation=2)
    assert queue.take_until(None, feed.offsets) == []  # generation 1 might still be shown: it waits
    feed.set_offset(2, 0.5)
    assert [round(t, 3) for t, *_ in queue.take_until(None, feed.offsets)] == [1.7]


def test_frames_shared_by_recordings_are_never_stamped(tmp_path):
    """Every recording (and each part of a --segment one, finishing on its own thread) reads the same
    frames; a resampler with nothing to convert hands the frame itself back, and stamping its pts
    there raced with the other reader: FFmpeg then refused the file (EINVAL) after minutes of a run."""
    feed = LiveAudioFeed(48000, "mono")
    pushes = [(i * 0.1, _tone(i * 0.1, 0.1, 48000)) for i in range(10)]  # fltp mono 48 kHz: AAC's own format, a passthrough
    for _, frame in pushes:
        frame.pts = 777
    _record(tmp_path / "rec.mkv", feed, pushes, 1.0)
    assert [frame.pts for _, frame in pushes] == [777] * 10
    assert feed.subscribers == 0  # the finished recording left the feed
    start, rate, samples = _sound(tmp_path / "rec.mkv")
    assert _loud(samples, rate, start, 0.1, 0.9) > 0.25  # and the copies carried the sound


def test_a_looping_files_sound_does_not_drift_loop_after_loop(tmp_path):
    """Each 2 s loop's sound is 94 AAC frames (2.0053 s) against 2 s of pictures: the 5.3 ms over were
    appended every loop, so a click at 1 s of each loop came ~5 ms later each time (up to 0.1 s, where
    the drift was cut back); each loop's sound now starts exactly with its first picture."""
    rate, loop_s, size = 48000, 2.0, 1024
    loop_audio = np.full(94 * size, 0.02, np.float32)  # what one loop's file holds: a quiet hum ...
    loop_audio[rate : rate + 240] = 0.8  # ... and a 5 ms click at 1.0 s
    feed = LiveAudioFeed(rate, "mono")
    pushes = []
    loops = 10
    for k in range(loops):
        feed.set_offset(k, 0.0)  # no outage: each loop's first picture follows the last one's
        for i in range(94):  # the capture's continuous stream clock: loop k starts at k * 2 s
            frame = av.AudioFrame.from_ndarray(loop_audio[i * size : (i + 1) * size][None], format="fltp", layout="mono")
            frame.sample_rate = rate
            pushes.append((k * loop_s + i * size / rate, frame, k))
    info = StreamInfo(32, 24, Fraction(1, 1000), average_rate=Fraction(FPS))
    path = tmp_path / "loop.mkv"
    with VideoFileSink(path, choose_encoder(path, "rgb", 32, 24), info, live_audio=feed) as sink:
        for i in range(round(loops * loop_s * FPS)):
            t = i / FPS
            while pushes and pushes[0][0] <= t + 0.05:  # a loop's sound comes with its pictures, in order
                feed.push(*pushes.pop(0))
            sink.write(np.full((1, 24, 32, 3), 100, np.uint8), [round(t * 1000)])
    with av.open(str(path)) as c:
        frames = list(c.decode(audio=0))
    samples = np.concatenate([f.to_ndarray()[0] for f in frames])
    start = float(frames[0].pts * frames[0].time_base)
    loud = np.flatnonzero(np.abs(samples) > 0.4)
    clicks = [start + loud[0] / rate] + [start + b / rate for a, b in zip(loud, loud[1:]) if b - a > rate // 2]
    assert len(clicks) == loops
    for k, click in enumerate(clicks):
        assert abs(click - (k * loop_s + 1.0)) < 0.006, [round(c - (j * loop_s + 1.0), 4) for j, c in enumerate(clicks)]


def test_a_looped_file_running_all_day_keeps_few_connection_offsets():
    """A looped 2 s file starts a connection every 2 s (43,200 a day): the feed must not keep every
    one's clock offset, each picture's sound lookup scanning them all, while the newest still place their sound."""
    feed = LiveAudioFeed(48000, "mono")
    queue = feed.subscribe()
    tone = _tone(0, 0.02, 48000)

    def loops(first: int, count: int) -> None:
        for generation in range(first, first + count):  # as the runner says at each loop's first picture
            feed.set_offset(generation, 0.5)  # the stream clock runs on across loops; the output's 0.5 s ahead
            feed.push(2.0 * generation, tone, generation)
            assert [round(t, 3) for t, *_ in queue.take_until(None, feed.offsets)] == [2.0 * generation + 0.5]

    loops(0, 2000)
    grown = kept_by([live_audio], lambda: loops(2000, 20000))  # 11 more hours of loops
    assert grown < 50_000, f"the feed grew by {grown} bytes over 20,000 loops"


def test_a_looping_file_whose_sound_is_shorter_is_silent_after_it_without_a_warning(tmp_path, caplog):
    """A clip of 2 s of pictures and 1 s of sound, looped: each loop's second second is silent, as in
    the file, and nothing was missing (it warned '3 stretches of the source's audio were missing')."""
    feed = LiveAudioFeed(48000, "mono")
    pushes = [(k * 2.0 + i * 0.1, _tone(i * 0.1, 0.1, 48000), k) for k in range(3) for i in range(10)]
    info = StreamInfo(32, 24, Fraction(1, 1000), average_rate=Fraction(FPS))
    path = tmp_path / "loop.mkv"
    with VideoFileSink(path, choose_encoder(path, "rgb", 32, 24), info, live_audio=feed) as sink:
        for i in range(round(6.0 * FPS)):
            t = i / FPS
            if i % (2 * FPS) == 0:
                feed.set_offset(i // (2 * FPS), 0.0)  # each loop's first picture follows the last one's
            while pushes and pushes[0][0] <= t + 0.05:
                feed.push(*pushes.pop(0))
            sink.write(np.full((1, 24, 32, 3), 100, np.uint8), [round(t * 1000)])
    start, rate, samples = _sound(path)
    for k in range(3):
        assert _loud(samples, rate, start, 2 * k + 0.1, 2 * k + 0.9) > 0.25
    for k in range(2):  # the last loop's sound ends the track, as the file's does
        assert _loud(samples, rate, start, 2 * k + 1.1, 2 * k + 1.9) < 0.01
    assert "missing" not in caplog.text


def test_the_downmix_warning_names_a_microphone_as_the_sounds_origin(caplog, tmp_path):
    """An --audio-device microphone's 5.1 sound on an RTMP stream was called 'the source's 5.1 sound'."""
    from types import SimpleNamespace

    from birefvid.io.live_audio import LiveAudioTrack
    from birefvid.io.live_source import LiveCapture
    from birefvid.io.live_target import LiveTarget
    from birefvid.io.microphone import AudioDevice
    from birefvid.io.reconnect import Backoff

    mic = SimpleNamespace(audio_format=(48000, "5.1"), device=AudioDevice("pulse", "desk"))  # as opened
    capture = LiveCapture(LiveTarget("camera", "camera 0", "/dev/video0", "v4l2"), realtime=True, loop=False, open_timeout=1, read_timeout=1,
                          policy=Backoff(), audio=True, microphone=mic)  # fmt: skip
    for feed in (LiveAudioFeed(48000, "5.1"), capture.audio):
        with av.open(str(tmp_path / "out.flv"), "w", format="flv") as out, caplog.at_level("WARNING"):
            LiveAudioTrack(feed, out, "flv", name="rtmp://h/live/***", max_channels=2)
    assert [r.getMessage() for r in caplog.records] == [
        "rtmp://h/live/***: the 5.1 sound of the source is mixed down to stereo, the most it carries",
        "rtmp://h/live/***: the 5.1 sound of the microphone pulse:desk is mixed down to stereo, the most it carries"]


def test_sound_mixed_down_for_the_encoder_does_not_clip(tmp_path):
    """A 22.2 source's 24 channels, more than AAC carries, are mixed down to stereo: a tone at half scale in every
    channel came out at 2.0 (AAC takes float samples, which FFmpeg's mix does not scale), clipped by every player."""
    rate, channels = 48000, 24
    feed = LiveAudioFeed(rate, "22.2")
    pushes = []
    for i in range(10):  # 0-1 s, packed: PyAV's planar frames of more than 8 channels are unsafe
        t = i * 0.1 + np.arange(rate // 10) / rate
        tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.repeat(tone, channels)[None], format="flt", layout="22.2")
        frame.sample_rate = rate
        pushes.append((i * 0.1, frame))
    path = tmp_path / "out.mp4"
    _record(path, feed, pushes, 1.0)
    with av.open(str(path)) as c:
        assert c.streams.audio[0].codec_context.layout.name == "stereo"
        peak = max(float(np.abs(frame.to_ndarray()).max()) for frame in c.decode(audio=0))
    assert 0.4 < peak < 0.6, peak  # the tone's own level: every channel has it in phase


def test_channels_of_no_stated_order_are_carried_one_to_one(tmp_path):
    """A source whose 4 channels have no stated order ("4 channels") was mixed as FFmpeg guesses them (4.0) into the
    quad AAC takes: the third channel's sound was folded into the front pair, at a quarter of its level."""
    rate = 48000
    feed = LiveAudioFeed(rate, "4 channels")
    pushes = []
    for i in range(10):  # 0-1 s, a tone in the third channel only
        t = i * 0.1 + np.arange(rate // 10) / rate
        samples = np.zeros((4, rate // 10), np.float32)
        samples[2] = 0.5 * np.sin(2 * np.pi * 440 * t)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="4 channels")
        frame.sample_rate = rate
        pushes.append((i * 0.1, frame))
    path = tmp_path / "out.mp4"
    _record(path, feed, pushes, 1.0)
    with av.open(str(path)) as c:
        assert c.streams.audio[0].codec_context.channels == 4
        peaks = np.max([np.abs(frame.to_ndarray()).max(axis=1) for frame in c.decode(audio=0)], axis=0).tolist()
    assert peaks[2] > 0.35, peaks  # in the third channel (AAC's overshoot allowed)
    assert max(peaks[:2] + peaks[3:]) < 0.05, peaks  # and nowhere else


def _played_live(path) -> tuple[int, list[float]]:
    """The pictures and the times of the sound's frames a live run's file connection hands on for ``path``."""
    from birefvid.io.live_connections import FileConnection

    heard: list[float] = []
    conn = FileConnection(str(path), audio=True)
    try:
        conn.on_audio = lambda frame, at: heard.append(round(at, 6))
        pictures = sum(1 for _ in conn.frames())
    finally:
        conn.close()
    return pictures, heard


def test_live_from_a_ts_cut_off_with_stuffing_after_it_plays_its_sound_to_the_cut(tmp_path):
    """``birefvid live --source stuffed.ts``: a TS cut off mid-packet with 0xFF stuffing after it (a card's erased blocks)
    made the sound's reader meet the demuxer's EAGAIN, which ffmpeg reads past: 'capture stopped (BlockingIOError: [Errno
    11] Resource temporarily unavailable); the run stopped after 45 frames', exit 2. Every picture and the sound to the cut
    are played, as for the same file cut off without stuffing."""
    from media import stuffed_ts, ts_with_sound
    from system_tools import need_binary

    need_binary("ffmpeg", "ffmpeg")
    stuffed, cut = stuffed_ts(ts_with_sound(tmp_path / "rec.ts"), tmp_path / "stuffed.ts")
    played, expected = _played_live(stuffed), _played_live(cut)
    assert played == expected and expected[0] > 40 and len(expected[1]) > 40, (played, expected)
