"""Live mode's microphone (``--audio-device``): a camera's recording gets the sound of a separate device.

A real PulseAudio server stands in for the desktop's sound system; ALSA's ``pulse`` device (what
``default`` is on a desktop) records it through the ALSA library inside PyAV's wheel, and FFmpeg's
``lavfi`` generates sound in real time where a device without a server is enough.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from birefvid.errors import SourceError
from birefvid.io.live_audio import LiveAudioFeed, LiveAudioTrack
from birefvid.io.microphone import AudioDevice, Microphone, parse_audio_device, use_system_alsa
from live_e2e_tools import LiveRun, run_live_in_process
from live_media import make_flash_clip
from pulse_audio import PulseServer, Speaker, tone

SINE = "lavfi:sine=frequency=1000:sample_rate=48000,arealtime"  # a generated sound, delivered in real time
FAST_MODEL = ["--model", "tiny", "--device", "cpu", "--resolution", "64"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 s at 160x120 with its own 440 Hz sound throughout, which a microphone's replaces."""
    return make_flash_clip(tmp_path_factory.mktemp("mic") / "tone8s.mp4", 8.0, flash=(0.0, 8.0))


# ---------------------------------------------------------------- naming the device


@pytest.mark.parametrize(
    "spec, platform, expected",
    [
        ("default", "linux", AudioDevice("alsa", "default")),
        ("default", "darwin", AudioDevice("avfoundation", "none:default")),
        ("alsa:hw:1,0", "linux", AudioDevice("alsa", "hw:1,0")),
        ("hw:1,0", "linux", AudioDevice("alsa", "hw:1,0")),
        ("plughw:CARD=C920,DEV=0", "linux", AudioDevice("alsa", "plughw:CARD=C920,DEV=0")),
        ("lavfi:sine=frequency=440", "darwin", AudioDevice("lavfi", "sine=frequency=440")),
    ],
)
def test_audio_device_names(spec: str, platform: str, expected: AudioDevice) -> None:
    assert parse_audio_device(spec, platform) == expected


@pytest.mark.parametrize(
    "spec, platform, words",
    [
        ("default", "win32", "DirectShow has no default microphone"),
        ("usb mic", "darwin", "expected 'default' or FORMAT:DEVICE"),
        ("alsa:", "linux", "name the device after 'alsa:'"),
        ("  ", "linux", "is empty"),
    ],
)
def test_bad_audio_device_names(spec: str, platform: str, words: str) -> None:
    with pytest.raises(SourceError, match=words):
        parse_audio_device(spec, platform)


def test_the_wheels_alsa_is_pointed_at_the_systems_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """PyAV's ALSA looks under its build folder (/tmp/vendor/share/alsa), which users do not have."""
    import birefvid.io.microphone as microphone

    (tmp_path / "share").mkdir()
    (tmp_path / "share" / "alsa.conf").write_text("")
    (tmp_path / "lib" / "x86_64-linux-gnu" / "alsa-lib").mkdir(parents=True)
    monkeypatch.setattr(microphone, "_ALSA_CONFIG_DIRS", (str(tmp_path / "none"), str(tmp_path / "share")))
    monkeypatch.setattr(microphone, "_ALSA_PLUGIN_GLOBS", (str(tmp_path / "lib" / "*-linux-gnu" / "alsa-lib"),))
    environment: dict[str, str] = {}  # a stand-in for os.environ: the real one would reach this process's ALSA
    monkeypatch.setattr(microphone.os, "environ", environment)
    use_system_alsa()
    assert environment == {"ALSA_CONFIG_DIR": str(tmp_path / "share"), "ALSA_PLUGIN_DIR": str(tmp_path / "lib" / "x86_64-linux-gnu" / "alsa-lib")}
    environment.clear()
    environment.update({"ALSA_CONFIG_PATH": "/mine/asound.conf", "ALSA_PLUGIN_DIR": "/mine/plugins"})  # the user's own choice stands
    use_system_alsa()
    assert environment == {"ALSA_CONFIG_PATH": "/mine/asound.conf", "ALSA_PLUGIN_DIR": "/mine/plugins"}


def test_a_missing_microphone_is_one_line_with_alsas_reason(capfd: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))  # ALSA's configuration asks PulseAudio, which left a /tmp/pulse-* folder
    with pytest.raises(SourceError) as caught:
        Microphone(parse_audio_device("hw:7,0", "linux"), open_timeout=2)
    message = str(caught.value)
    assert message.startswith("cannot open the microphone alsa:hw:7,0: ") and "\n" not in message, message
    assert "ALSA lib" not in capfd.readouterr().err  # ALSA's own lines went to the log, not the terminal


# ---------------------------------------------------------------- capturing


def test_a_live_device_is_captured_in_real_time_and_stamped_by_its_sample_count() -> None:
    """A capture thread that gets to run at uneven times (30 ms late every 4th frame here, as on a busy machine)
    reads its frames unevenly, but they were captured evenly: each is stamped where the one before
    ended (by the sample count), give or take the slow following of the device's clock, and never
    after it was heard (its arrival, less its length); the promptest frames are stamped as heard."""
    mic = Microphone(parse_audio_device(SINE), delay=0.25)
    assert mic.audio_format == (48000, "mono")
    heard: list[tuple[int, float, float]] = []  # (samples, stamp less the delay, arrival)

    def deliver(frame: av.AudioFrame, at: float) -> None:
        heard.append((frame.samples, at - 0.25, time.monotonic()))
        time.sleep(0.03 if len(heard) % 4 == 0 else 0.0)  # 7.5 ms a frame on average: it keeps up with 21 ms frames

    start = time.monotonic()
    mic.start(deliver)
    time.sleep(2.5)
    closing = time.monotonic()
    mic.close()
    assert time.monotonic() - closing < 1.6
    count = len(heard)
    time.sleep(0.2)
    assert len(heard) == count  # nothing after close
    samples = sum(n for n, _, _ in heard)
    assert 0.8 * 2.0 * 48000 <= samples <= 1.2 * 2.5 * 48000 + 4096  # real time (less the last 0.5 s, which may still wait), not read at full speed
    for (n, at, _), (_, following, _) in zip(heard, heard[1:]):
        # steady: the sample count, not the arrival (a frame after a 30 ms hold arrives 9 ms late); a frame prompter
        # than any before may refine the anchor by a fraction of a millisecond (0.1 ms seen with two busy loops)
        assert following - at == pytest.approx(n / 48000, abs=0.003)
    lateness = np.array([arrived - n / 48000 - at for n, at, arrived in heard])
    assert lateness.min() >= -1e-6  # never stamped after it was heard
    settled = lateness[[arrived > start + 1.2 for _, _, arrived in heard]]  # past the first frames' wait (0.5 s)
    assert np.percentile(settled, 20) <= 0.005, np.percentile(settled, 20)
    assert heard[0][1] >= start - 0.1
    assert mic.error is None


def test_a_slow_device_clock_is_followed() -> None:
    """A device whose clock runs 0.15% slow against the monotonic clock (arealtime's speed): its
    sample count falls behind by 1.5 ms a second; the stamps follow it, as a long run needs to stay
    in step with the pictures, rather than keep to the first second's anchor."""
    mic = Microphone(parse_audio_device("lavfi:sine=frequency=1000:sample_rate=48000,arealtime=speed=0.9985"))
    heard: list[tuple[int, float, float]] = []  # (samples, stamp, arrival)
    mic.start(lambda frame, at: heard.append((frame.samples, at, time.monotonic())))
    time.sleep(4.5)
    mic.close()
    last = heard[-1][2]
    lateness = [arrived - n / 48000 - at for n, at, arrived in heard if arrived > last - 1.0]
    assert len(lateness) > 20 and min(lateness) >= -1e-6
    # without following, the newest frames were stamped ~6 ms early; the earliest-arriving of the last second
    # is on time as the arrivals have it (a loaded machine makes a frame late, never early)
    assert min(lateness) < 0.003, min(lateness)  # the following lags by a second of drift: 1.5 ms


def test_a_device_read_faster_than_real_time_stops_with_a_reason() -> None:
    mic = Microphone(parse_audio_device("lavfi:anullsrc=r=48000:cl=mono"))
    heard: list[int] = []
    mic.start(lambda frame, at: heard.append(frame.samples))
    deadline = time.monotonic() + 5
    while mic.error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    mic.close()
    assert mic.error is not None and "faster than real time" in mic.error
    assert sum(heard) <= 2.5 * 48000  # stopped at once: no flood of sound with no place in time


def _record_microphone(device: str, path: Path, seconds: float, stall_after: int = 0) -> tuple[int, LiveAudioTrack]:
    """Record ``device`` for ``seconds`` as live mode does: its stamped frames go through a ``LiveAudioFeed``
    into a recording's ``LiveAudioTrack`` (Matroska, AAC). ``stall_after``: the capture thread is held
    0.3 s after delivering that many frames, once, as a busy machine's scheduler may hold it. Returns
    (samples the microphone delivered, the finished track)."""
    mic = Microphone(parse_audio_device(device))
    feed = LiveAudioFeed(*mic.audio_format, origin=mic.device.label)
    feed.set_offset(0, 0.0)
    delivered: list[int] = []
    first: list[float] = []

    def deliver(frame: av.AudioFrame, at: float) -> None:
        if not first:  # the recording's 0: the first sound, as a picture anchors it in live mode
            first.append(at)
        feed.push(at - first[0], frame)
        delivered.append(frame.samples)
        if len(delivered) == stall_after:
            time.sleep(0.3)  # the device keeps capturing meanwhile: its buffer hands the sound over late, in a burst

    with av.open(str(path), "w") as out:
        track = LiveAudioTrack(feed, out, "matroska")
        mic.start(deliver)
        time.sleep(seconds)
        mic.close()
        track.write_until(None)
        track.finish()
        track.close()
    assert mic.error is None
    return sum(delivered), track


def _sound(path: Path) -> np.ndarray:
    """The first audio track's samples, mono."""
    with av.open(str(path)) as container:
        return np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])


def _silences(sound: np.ndarray, rate: int = 48000) -> list[float]:
    """Seconds of each silent stretch (5 ms windows with no sample above 0.02) between the ends' 50 ms
    (the encoder's start and end); the generated tone peaks at 0.125."""
    window = rate // 200
    loud = np.abs(sound[: len(sound) // window * window]).reshape(-1, window).max(axis=1) > 0.02
    loud = loud[10:-10]
    stretches, run = [], 0
    for is_loud in loud:
        if not is_loud:
            run += 1
        elif run:
            stretches.append(run * window / rate)
            run = 0
    return stretches + ([run * window / rate] if run else [])


def test_a_late_burst_from_the_microphone_is_recorded_without_a_dropout(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The capture thread held 0.3 s (seen under load): the frames the device buffered meanwhile arrived
    together. Stamped by arrival, the first opened a gap, filled with silence, and the rest overlapped
    and were dropped: a dropout and lost sound, warned as "went missing", though the device lost none."""
    with caplog.at_level(logging.INFO):
        delivered, track = _record_microphone(SINE, tmp_path / "rec.mkv", 3.0, stall_after=60)
    sound = _sound(tmp_path / "rec.mkv")
    assert track.gaps == 0 and "became silence" not in caplog.text, caplog.text
    assert _silences(sound) == []
    assert abs(len(sound) - delivered) <= 1024, (len(sound), delivered)  # all of it (AAC rounds up to its 1024-sample frames)


def test_pulseaudio_holding_a_second_of_sound_for_a_late_capture_thread_is_no_gap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The case seen under load, through the desktop's sound system: PulseAudio keeps what the microphone
    heard while the capture thread was held (1 s here) and hands it over at once. It is stamped on, each
    frame where the one before ended, with no jump of a second (which a recording made a dropout of)."""
    with PulseServer(tmp_path) as pulse:
        for key, value in pulse.env.items():
            monkeypatch.setenv(key, value)
        speaker, ended = Speaker(pulse), threading.Event()
        player = threading.Thread(target=lambda: [speaker.play(tone(0.5, 700)) for _ in iter(ended.is_set, True)], daemon=True)
        player.start()
        heard: list[tuple[int, float]] = []  # (samples, stamp)

        def deliver(frame: av.AudioFrame, at: float) -> None:
            heard.append((frame.samples, at))
            if len(heard) == 50:
                time.sleep(1.0)

        mic = Microphone(parse_audio_device("pulse"))
        try:
            mic.start(deliver)
            deadline = time.monotonic() + 30  # a loaded machine may be slow to start PulseAudio's stream
            while sum(n for n, _ in heard) < 2.5 * 48000 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            mic.close()
            ended.set()
            speaker.close()
    assert sum(n for n, _ in heard) >= 2.5 * 48000 and mic.error is None
    steps = [following - at - n / 48000 for (n, at), (_, following) in zip(heard, heard[1:])]
    # a frame prompter than any before refines the anchor by a millisecond or two (1.5 ms seen under a busy loop):
    # far from the second stamped by arrival, and from the 0.1 s a recording would fill with silence
    assert max(abs(step) for step in steps) < 0.02, max(steps, key=abs)


def test_sound_the_microphone_really_lost_becomes_silence_of_its_length(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A device that lost 0.5 s of sound (its buffer overran; here a generator missing 0.5 s, played in real
    time) goes on later than its sample count says: a steady clock must not close that gap, or the
    sound after it would be early by 0.5 s for the rest of the run."""
    device = "lavfi:sine=frequency=1000:sample_rate=48000,aselect='not(between(t\\,1.2\\,1.7))',arealtime"
    with caplog.at_level(logging.INFO):
        delivered, track = _record_microphone(device, tmp_path / "rec.mkv", 3.5)
    sound = _sound(tmp_path / "rec.mkv")
    assert track.gaps == 1 and "1 stretches of the source's audio were missing and became silence" in caplog.text, caplog.text
    silences = _silences(sound)
    assert len(silences) == 1 and silences[0] == pytest.approx(0.5, abs=0.03), silences
    assert abs(len(sound) - delivered - 0.5 * 48000) <= 0.03 * 48000, (len(sound), delivered)


def _onset(frames: list[tuple[float, av.AudioFrame, int]], level: float = 0.3) -> float:
    """Stream time of the first sample louder than ``level`` (full scale 1)."""
    for at, frame, _ in frames:
        samples = frame.to_ndarray().astype(np.float64)
        if frame.format.name.startswith("s16"):
            samples /= 32768
        channels = len(frame.layout.channels)
        mono = samples.reshape(-1)[::channels] if not frame.format.is_planar else samples[0]
        loud = np.flatnonzero(np.abs(mono) > level)
        if loud.size:
            return at + loud[0] / frame.sample_rate
    raise AssertionError("no loud sound")


def test_the_microphones_sound_lands_with_the_pictures_of_the_same_moment(
    tmp_path: Path, clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A beep played into PulseAudio at wall time W gets the stream time of a picture captured at W
    (PulseAudio's playback and capture add ~20-60 ms); the clip's own sound is not used."""
    from birefvid.io.live_source import open_live_source

    with PulseServer(tmp_path) as pulse:
        for key, value in pulse.env.items():
            monkeypatch.setenv(key, value)
        speaker = Speaker(pulse)
        source = open_live_source(str(clip), audio=True, realtime=True, audio_device="pulse")
        try:
            source.start()
            assert source.audio is not None
            queue = source.audio.subscribe()
            source.audio.set_offset(0, 0.0)
            beep_at: list[float] = []
            player = threading.Thread(target=lambda: (speaker.play(tone(1.5, 300, 0.01)), beep_at.append(speaker.play(tone(0.2, 300, 0.8))),
                                                      speaker.play(tone(0.5, 300, 0.01))))  # fmt: skip
            pictures: list[tuple[float, float]] = []  # (captured, stream time)
            player.start()
            deadline = time.monotonic() + 60  # generous: the player plays 2.2 s in real time, then ends
            while player.is_alive() and time.monotonic() < deadline:  # the pictures of the moments the sound plays
                frame = source.read(1.0)
                if frame is not None:
                    pictures.append((frame.captured, frame.stream_time))
            player.join(10)
            time.sleep(0.3)
            heard = queue.take_until(None, {0: 0.0})
        finally:
            source.close()
            speaker.close()
    assert len(pictures) > 40 and beep_at
    captured, stream = np.array(pictures).T
    nearest = int(np.argmin(np.abs(captured - beep_at[0])))
    expected = stream[nearest] + (beep_at[0] - captured[nearest])  # a picture's stream time at the moment of the beep
    got = _onset(heard)
    print(f"beep played at stream time {expected:.3f} s, heard at {got:.3f} s")
    assert -0.02 <= got - expected <= 0.15, (got, expected)


# ---------------------------------------------------------------- birefvid live --audio-device


def _dominant_frequency(path: Path) -> tuple[float, float]:
    """(frequency of the loudest tone, seconds) of the first audio track."""
    with av.open(str(path)) as container:
        frames = list(container.decode(audio=0))
    mono = np.concatenate([f.to_ndarray()[0] for f in frames])
    spectrum = np.abs(np.fft.rfft(mono))
    return float(np.argmax(spectrum[1:]) + 1) * frames[0].sample_rate / len(mono), len(mono) / frames[0].sample_rate


def test_live_records_the_microphone_instead_of_the_sources_sound(tmp_path: Path, clip: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capfd: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """The tone plays until the run has ended: a fixed 12 s of it ran out during the start-up on a
    loaded machine (python, torch and the model: 10 s and more), and the recording got silence.

    The command runs through its own ``main`` in this process (a child's start-up, 2-3 s of CI's time, showed nothing
    more): ``capfd`` takes standard error at its descriptor, where ALSA's C library writes its lines."""
    with PulseServer(tmp_path) as pulse:
        speaker = Speaker(pulse)
        ended = threading.Event()

        def play_until_ended() -> None:
            while not ended.is_set():  # whole seconds of 700 Hz: each ends where the next begins, no click
                speaker.play(tone(1.0, 700))

        try:
            player = threading.Thread(target=play_until_ended, daemon=True)
            player.start()
            args = ["--source", clip, "--realtime", "--effect", "blur", *FAST_MODEL, "--sink", "rec.mkv", "--duration", "2",
                    "--audio-device", "pulse", "--no-carry", "-q"]  # fmt: skip
            code, stderr = run_live_in_process(args, tmp_path, monkeypatch, capfd, env=pulse.env)
            assert code == 0, stderr[-3000:]
        finally:
            ended.set()
            speaker.close()
    assert "became silence" not in stderr and "ALSA lib" not in stderr, stderr
    with av.open(str(tmp_path / "rec.mkv")) as container:
        pictures = [float(p.pts * p.time_base) for p in container.demux(video=0) if p.pts is not None]
    frequency, seconds = _dominant_frequency(tmp_path / "rec.mkv")
    assert frequency == pytest.approx(700, abs=5)  # the microphone's tone, not the clip's 440 Hz
    assert seconds == pytest.approx(max(pictures), abs=0.15)  # sound for the whole recording, no gap


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--source", "rtsp://127.0.0.1:9/cam", "--audio-device", "default"], "not with a network stream"),
        (["--audio-device", "default"], "a file read faster than real time (add --realtime)"),
        (["--realtime", "--audio-device", "default", "--no-audio"], "--audio-device records a microphone, --no-audio leaves sound out"),
        (["--realtime", "--audio-delay", "0.1"], "--audio-delay moves the sound of --audio-device"),
        (["--realtime", "--audio-device", "default", "--audio-delay", "9"], "--audio-delay is seconds between -1 and 5"),
        (["--realtime", "--audio-device", "hw:7,0"], "cannot open the microphone alsa:hw:7,0: "),
    ],
)
def test_bad_microphone_options_are_one_line_before_the_model_loads(tmp_path: Path, clip: Path, extra: list[str], words: str) -> None:
    source = [] if "--source" in extra else ["--source", str(clip)]
    args = [*source, *extra, "--sink", "rec.mkv", *FAST_MODEL]
    with LiveRun(args, tmp_path) as run:
        assert run.wait(60) == 2
        lines = [line for line in run.stderr().splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], lines
    assert not (tmp_path / "rec.mkv").exists()


def test_a_microphone_needs_a_sink_that_carries_sound(tmp_path: Path, clip: Path) -> None:
    with LiveRun(["--source", clip, "--realtime", "--audio-device", "default", "--sink", "http://127.0.0.1:0", *FAST_MODEL], tmp_path) as run:
        assert run.wait(60) == 2
        assert "give such a --sink too" in run.stderr()


def test_a_stop_landing_while_the_microphone_starts_still_closes_the_device(monkeypatch) -> None:
    """Ctrl-C or SIGTERM landing in the capture thread's ``start()``, before it began: close() joined it, which
    join() refuses ("cannot join thread before it is started"), so the stop became a RuntimeError and the device
    was never closed (only the thread closes it once it runs)."""
    mic = Microphone(parse_audio_device(SINE))
    real_start = threading.Thread.start

    def signal_in_start(thread: threading.Thread) -> None:
        if thread.name != "birefvid-microphone":
            return real_start(thread)
        raise KeyboardInterrupt  # the signal handler's raise, before the thread began

    monkeypatch.setattr(threading.Thread, "start", signal_in_start)
    with pytest.raises(KeyboardInterrupt):
        mic.start(lambda frame, at: None)
    monkeypatch.undo()
    began = time.monotonic()
    mic.close()
    assert time.monotonic() - began < 1.0
    with pytest.raises(Exception, match="not open"):  # the device was closed by close()
        next(mic._container.demux(mic._stream))


CLOSE_FROM_ITS_OWN_THREAD = f"""
import threading, time
from birefvid import exiting
from birefvid.io.microphone import Microphone, parse_audio_device
exiting.begun.__defaults__ = (5.0,)  # a wait on itself would take 5 s: no loaded machine's pause looks like that
mic = Microphone(parse_audio_device({SINE!r}))
took, heard, closed = [], [], threading.Event()
def deliver(frame, at):
    heard.append(frame.samples)
    if len(heard) == 3:
        began = time.monotonic()
        mic.close()  # from the capture thread itself, as a deliver() that decides to stop would
        took.append(time.monotonic() - began)
        closed.set()
mic.start(deliver)
closed.wait(30)  # events, not a fixed sleep: a loaded machine may take longer than a second to deliver three
mic._thread.join(30)
print(len(took), round(took[0], 3), len(heard), mic._thread.is_alive(), mic.error)
"""


def test_a_microphone_closed_from_its_own_thread_stops_cleanly() -> None:
    """close() called on the capture thread (from ``deliver``): asked whether that thread began, ``exiting.begun``
    waited 0.2 s for join() to stop refusing the current thread, answered no, and close() closed the container under
    the thread's own running demux: the process died of a segmentation fault."""
    proc = subprocess.run([sys.executable, "-c", CLOSE_FROM_ITS_OWN_THREAD], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    closes, took, heard, alive, error = proc.stdout.split()
    assert closes == "1" and float(took) < 2.5  # at once: no 5 s wait on itself
    assert heard == "3" and alive == "False" and error == "None"  # nothing delivered after close(), the thread ended



def _stream_ends(path: Path) -> dict[str, float]:
    """Where each stream's last packet ends (its pts plus its duration, seconds) and the container's duration."""
    ends: dict[str, float] = {}
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.pts is None or packet.stream.type not in ("video", "audio"):
                continue
            end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            ends[packet.stream.type] = max(ends.get(packet.stream.type, 0.0), end)
        ends["container"] = (container.duration or 0) / av.time_base
    return ends


def test_a_stop_records_the_sound_of_the_last_picture_the_device_still_held(tmp_path: Path, clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Python API's stop, 0.4 s into a 0.8 s hold of the capture thread (a busy machine's scheduler does that; a
    DirectShow microphone hands its sound over in 0.5 s blocks anyway): PulseAudio keeps the sound meanwhile. The
    recording used to be finished at once, before the device handed over the sound of its last 0.4 s of pictures,
    so its sound ended that much early; now the stop waits (at most ~1 s) for the sound of the last picture."""
    from birefvid.api import build_live_job, run_live

    with PulseServer(tmp_path) as pulse:
        for key, value in pulse.env.items():
            monkeypatch.setenv(key, value)
        speaker, ended = Speaker(pulse), threading.Event()
        player = threading.Thread(target=lambda: [speaker.play(tone(1.0, 700)) for _ in iter(ended.is_set, True)], daemon=True)
        stop, hold, held = threading.Event(), threading.Event(), threading.Event()
        real_start = Microphone.start

        def held_while_stopping(mic: Microphone, deliver) -> None:  # type: ignore[no-untyped-def]
            def deliver_late(frame: av.AudioFrame, at: float) -> None:
                if hold.is_set() and not held.is_set():
                    held.set()
                    time.sleep(0.8)  # the device keeps capturing meanwhile; its buffer hands the sound over later
                deliver(frame, at)

            real_start(mic, deliver_late)

        def hold_then_stop(line: str) -> None:  # the first stats line, 1.5 s into the run
            if not hold.is_set():
                hold.set()
                threading.Timer(0.4, stop.set).start()

        monkeypatch.setattr(Microphone, "start", held_while_stopping)
        job = build_live_job(str(clip), str(tmp_path / "rec.mp4"), effect="blur", model="tiny", device="cpu", resolution=64, realtime=True,
                             audio_device="pulse", carry=False, stats_every=1.5)  # fmt: skip
        player.start()
        try:
            report = run_live(job, stop=stop, printer=hold_then_stop)
        finally:
            ended.set()
            speaker.close()
    assert held.is_set() and report["ended_by"] == "stop"
    ends = _stream_ends(tmp_path / "rec.mp4")
    assert ends["video"] > 1.5
    # the sound may run on 0.05 s past the last picture (the recording's tail); AAC's last frame is 21 ms
    assert ends["video"] - 0.1 <= ends["audio"] <= ends["video"] + 0.1, ends
    assert abs(ends["container"] - max(ends["video"], ends["audio"])) <= 0.05, ends  # what the file says agrees with its streams
    tail = _sound(tmp_path / "rec.mp4")[-round(0.3 * 48000) :]  # the microphone's tone to the end, not silence put in its place
    assert float(np.argmax(np.abs(np.fft.rfft(tail))[1:]) + 1) * 48000 / len(tail) == pytest.approx(700, abs=10)


class _StallingSoundServer:
    """An HTTP server on 127.0.0.1 answering one GET with the first second of an MPEG-TS sound, then nothing: a network
    microphone (or a USB one) that stalled. Bounded: the connection is held for ``hold`` s at most, then closed."""

    def __init__(self, tmp_path: Path, hold: float = 30.0) -> None:
        import socket

        start = tmp_path / "start.ts"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "1",
                        "-ac", "1", "-c:a", "mp2", "-f", "mpegts", str(start)], check=True, timeout=60)  # fmt: skip
        self._data, self._hold = start.read_bytes(), hold
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(hold)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/sound.ts"
        self._done = threading.Event()
        self.sent = threading.Event()  # the second of sound is on its way: nothing follows
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: video/mp2t\r\n\r\n" + self._data)
            self.sent.set()
            self._done.wait(self._hold)  # then nothing, until the test ends or the hold is over

    def close(self) -> None:
        self._done.set()
        self._listener.close()
        self._thread.join(10)


def test_a_stalled_microphones_blocked_read_is_cancelled_at_close(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A microphone that stopped sending (a stalled network or USB device) left its capture thread blocked in FFmpeg's
    read until --read-timeout: close() gave up after 1.5 s with "the capture thread is still blocked", every stop of a
    run took that long, and the thread and its device were left behind the run. Its read is now cancelled at once."""
    server = _StallingSoundServer(tmp_path)
    try:
        mic = Microphone(AudioDevice("mpegts", server.url), read_timeout=60)
        mic.start(lambda frame, at: None)
        assert server.sent.wait(30)
        time.sleep(1.0)  # the second of sound is read (in ms): the capture thread is blocked on the silent connection
        assert mic._thread is not None and mic._thread.is_alive()
        with caplog.at_level(logging.WARNING, logger="birefvid.io.microphone"):
            mic.close()
        assert not mic._thread.is_alive(), "the capture thread was left blocked"
        assert "still blocked" not in caplog.text and mic.error is None
    finally:
        server.close()
