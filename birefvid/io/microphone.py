"""A microphone (any FFmpeg audio input) captured on its own thread, for live recordings of a camera.

A webcam opened as a video device has no sound of its own: ``--audio-device`` names the sound
device to record with it. ``parse_audio_device`` turns what the user wrote into an FFmpeg input:
``default`` is the system's default microphone (ALSA's ``default`` on Linux, which PulseAudio and
PipeWire serve; AVFoundation's default on macOS; DirectShow has none, so Windows needs a name),
``FORMAT:DEVICE`` is any FFmpeg input format PyAV has (``alsa:hw:1,0``, ``avfoundation:none:1``,
``dshow:audio=Microphone (USB)``, ``lavfi:...`` for a generated sound), and on Linux a bare ALSA
device name (``hw:1,0``, ``plughw:CARD=C920``) is taken as ALSA's.

Sound and pictures come from two devices with two clocks, so each sound frame is stamped with
the time it was captured on the monotonic clock that times camera pictures; the live capture maps
that onto the pictures' stream clock (see ``LiveCapture._mic_out``). The stamp comes from the
device's own sample count, not from when the frame reached us (``SoundClock``): a capture thread
scheduled late gets the device's buffered sound in a burst, and stamped by arrival that burst was
a gap (silence) followed by overlaps (sound dropped), though the device lost nothing. A USB
microphone delivers within a period (~10-20 ms) and a camera a frame or two late, so the sound
may lead the pictures by that much: ``audio_delay`` moves it later.
"""

from __future__ import annotations

import collections
import contextlib
import glob
import logging
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Callable, Deque, Generic, Iterator, Optional, TypeVar

import av

from birefvid import exiting
from birefvid.errors import SourceError, in_caller_context, option
from birefvid.io.live_interrupt import Interrupter, install_interrupter

log = logging.getLogger(__name__)

# how far a device's sound may run ahead of the wall clock (its opening buffer) before it counts as no live device
_AHEAD_S = 2.0
# where a microphone hands its sound: (frame, monotonic time of its first sample)
MicOut = Callable[[av.AudioFrame, float], None]
# how far the sample count may fall behind the arrivals before it may be a real gap: the smallest gap a
# recording renders as silence (live_audio.TOLERANCE_S); less is followed slowly, as drift
GAP_S = 0.1
# how long (in arrival time) the count must stay that far behind to be a real gap: a late burst drains in
# milliseconds, as fast as the buffered frames decode; a device that lost sound stays behind for good
GAP_HOLD_S = 0.5
# how fast (seconds a second) the anchor may rise to follow a device clock slower than the monotonic clock:
# a crystal's error is ~100 ppm; 0.2% leaves room for cheap ones
DRIFT = 0.002
# the anchor rises only to the earliest start implied by the last this many seconds of sound: counted in
# sound, not arrivals, so a thread held longer still finds the prompt frames from before it held there
DRIFT_WINDOW_S = 1.0
# the most a normal stop waits for the device to hand over the sound of the last picture (``Microphone.drain``):
# its latency (a few ms through PulseAudio and ALSA; DirectShow's default buffer hands sound over in 0.5 s blocks),
# a capture thread a busy machine held, and a gap decision SoundClock still holds (GAP_HOLD_S)
DRAIN_S = 1.0


@dataclass(frozen=True)
class AudioDevice:
    """An FFmpeg input for a sound device: ``format`` (e.g. ``alsa``) and the device ``name``."""

    format: str
    name: str

    @property
    def label(self) -> str:
        return f"the microphone {self.format}:{self.name}"


def parse_audio_device(spec: str, platform: str = sys.platform) -> AudioDevice:
    """What ``--audio-device`` names: ``default``, ``FORMAT:DEVICE``, or (Linux) an ALSA device name."""
    text = spec.strip()
    if not text:
        raise SourceError(f"{option('audio_device')} is empty; give 'default' or FORMAT:DEVICE, e.g. alsa:hw:1,0")
    if text == "default":
        if platform.startswith("linux"):
            return AudioDevice("alsa", "default")
        if platform == "darwin":
            return AudioDevice("avfoundation", "none:default")
        raise SourceError(
            f"{option('audio_device')} default: DirectShow has no default microphone; name one, e.g. "
            "'dshow:audio=Microphone (USB Audio)' (ffmpeg -list_devices true -f dshow -i dummy lists them)"
        )
    fmt, sep, name = text.partition(":")
    if sep and fmt in av.formats_available:
        if not name:
            raise SourceError(f"{option('audio_device')} {text}: name the device after '{fmt}:'")
        return AudioDevice(fmt, name)
    if platform.startswith("linux"):
        return AudioDevice("alsa", text)  # hw:1,0, plughw:CARD=C920,DEV=0, pulse, ...
    known = ", ".join(f for f in ("alsa", "avfoundation", "dshow", "pulse", "oss", "lavfi") if f in av.formats_available)
    raise SourceError(f"{option('audio_device')} {text}: expected 'default' or FORMAT:DEVICE with a format this FFmpeg has ({known})")


_USUAL_LAYOUTS = {1: "mono", 2: "stereo", 4: "quad", 6: "5.1", 8: "7.1"}
# where distributions keep ALSA's configuration and plugins (the PulseAudio and PipeWire bridges
# that serve "default" on a desktop)
_ALSA_CONFIG_DIRS = ("/usr/share/alsa",)
_ALSA_PLUGIN_GLOBS = ("/usr/lib/*-linux-gnu/alsa-lib", "/usr/lib64/alsa-lib", "/usr/lib/alsa-lib")


def use_system_alsa() -> None:
    """Point the ALSA library inside PyAV's wheel at the system's configuration and plugins.

    The wheel's copy was built to look under its build folder (``/tmp/vendor/share/alsa``), which no
    user has: it then knows no ``default`` device and cannot reach PulseAudio or PipeWire. It honours
    ``ALSA_CONFIG_DIR`` and ``ALSA_PLUGIN_DIR``, so those are set here unless the user set them.
    """
    if "ALSA_CONFIG_DIR" not in os.environ and "ALSA_CONFIG_PATH" not in os.environ:
        for folder in _ALSA_CONFIG_DIRS:
            if os.path.isfile(os.path.join(folder, "alsa.conf")):
                os.environ["ALSA_CONFIG_DIR"] = folder
                break
    if "ALSA_PLUGIN_DIR" not in os.environ:
        for pattern in _ALSA_PLUGIN_GLOBS:
            found = sorted(glob.glob(pattern))
            if found:
                os.environ["ALSA_PLUGIN_DIR"] = found[0]
                break


@contextlib.contextmanager
def _stderr_to(sink: "list[str]") -> Iterator[None]:
    """Catch what C libraries write to the process's stderr (ALSA's own "ALSA lib ..." lines) meanwhile."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (an embedding host): nothing to catch
        yield
        return
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            sink.extend(line for line in caught.read().decode(errors="replace").splitlines() if line.strip())


T = TypeVar("T")


class SoundClock(Generic[T]):
    """Stamps a device's frames by their sample count: ``anchor + samples heard before / rate``.

    A frame arriving at ``arrival`` was captured no later than ``arrival`` less the length of all the
    sound up to its end, so each frame implies a latest possible start of the device's sound, and the
    earliest of those (the frame delivered most promptly) is the anchor. A late burst implies later
    starts and so changes nothing. A device clock faster than the monotonic clock pulls the anchor
    down at once; a slower one makes every start implied by ``DRIFT_WINDOW_S`` of sound later, and the anchor
    rises to the earliest of them at up to ``DRIFT``. When frames keep implying a start over ``GAP_S``
    later for ``GAP_HOLD_S``, the device lost sound (an overrun): the anchor moves there, so the
    stamps leave a gap of the lost length. While that is undecided, and for the first ``GAP_HOLD_S``
    (a device may hand over what it buffered since it opened at once), the frames wait (``add``
    returns nothing), so each is stamped knowing which it was.
    """

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.anchor: Optional[float] = None  # monotonic time of the device's first sample, as far as known
        self.gaps = 0  # real gaps found: the device lost sound
        self._samples = 0  # samples added so far
        self._last: Optional[float] = None  # the latest arrival
        # (seconds of sound to the frame's end, implied start) of the last DRIFT_WINDOW_S of sound, kept only
        # where no later frame implies an earlier start: its first is the earliest start implied meanwhile
        self._recent: Deque[tuple[float, float]] = collections.deque()
        self._waiting: list[tuple[T, int, float, float]] = []  # (item, samples before it, implied start, arrival)

    def add(self, item: T, samples: int, arrival: float) -> list[tuple[T, float]]:
        """Take a frame of ``samples`` that arrived at monotonic ``arrival``; give the frames now stamped, in order."""
        before, self._samples = self._samples, self._samples + samples
        implied = arrival - self._samples / self.rate
        self._remember(implied)
        if self.anchor is not None and self._last is not None:
            earliest = self._recent[0][1]
            self.anchor = earliest if earliest <= self.anchor else min(earliest, self.anchor + DRIFT * max(0.0, arrival - self._last))
        self._last = arrival
        if self.anchor is not None and implied - self.anchor <= GAP_S:
            return self._stamped(self._waiting + [(item, before, implied, arrival)])  # on time, or the end of a burst
        self._waiting.append((item, before, implied, arrival))
        if arrival - self._waiting[0][3] < GAP_HOLD_S:
            return []
        return self._settle()

    def flush(self) -> list[tuple[T, float]]:
        """The frames still waiting, stamped with what is known (the device ended, or the run stops)."""
        return self._settle() if self._waiting else []

    def covers(self, moment: float) -> bool:
        """True when the sound captured up to monotonic ``moment`` has been added and stamped: none waits for a
        decision, and the sample count reaches ``moment``."""
        return not self._waiting and self.anchor is not None and self.anchor + self._samples / self.rate >= moment

    def _remember(self, implied: float) -> None:
        heard = self._samples / self.rate
        while self._recent and self._recent[-1][1] >= implied:
            self._recent.pop()
        self._recent.append((heard, implied))
        while self._recent[0][0] < heard - DRIFT_WINDOW_S:
            self._recent.popleft()

    def _settle(self) -> list[tuple[T, float]]:
        """The waiting frames stayed behind: the device's first sound, or a real gap; anchor on them."""
        start = min(implied for _, _, implied, _ in self._waiting)
        if self.anchor is None or start - self.anchor > GAP_S:
            if self.anchor is not None:
                self.gaps += 1
                log.info("the microphone lost %.3f s of sound (its buffer overran?): a gap of silence", start - self.anchor)
            self.anchor = start
            self._recent = collections.deque((heard, implied) for heard, implied in self._recent if implied >= start)
        return self._stamped(self._waiting)

    def _stamped(self, frames: list[tuple[T, int, float, float]]) -> list[tuple[T, float]]:
        assert self.anchor is not None
        self._waiting = []
        return [(item, self.anchor + before / self.rate) for item, before, _, _ in frames]


class Microphone:
    """Opens ``device`` at once (SourceError when it cannot: one line), then captures on its own thread.

    ``audio_format`` is its (sample rate, layout), known after opening, so recordings can set up
    their encoders before the first sound arrives. ``start(deliver)`` hands each decoded frame to
    ``deliver`` with the monotonic time of its first sample (by ``SoundClock``), plus ``delay``.
    """

    def __init__(self, device: AudioDevice, open_timeout: float = 5.0, read_timeout: float = 5.0, delay: float = 0.0) -> None:
        self.device = device
        self._delay = delay
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._hook: Optional[Interrupter] = None  # cancels the capture thread's blocked read at close (as the camera's)
        self.frames = 0  # frames delivered
        self.error: Optional[str] = None  # why the capture stopped early
        self._deliver_to: Optional[MicOut] = None
        # the clock and the deliveries, shared by the capture thread and a stop's drain(); notified at each frame
        self._heard = threading.Condition()
        if device.format == "alsa":
            use_system_alsa()
        said: list[str] = []  # ALSA prints its reasons itself; they go to the log, the user gets one line
        try:
            with _stderr_to(said):
                self._container = av.open(device.name, "r", format=device.format, timeout=(open_timeout, read_timeout))
        except (av.FFmpegError, OSError, ValueError) as e:
            detail = said[-1].split(") ", 1)[-1] if said else ""  # "ALSA lib pcm.c:2722:(snd_pcm_open_noupdate) Unknown PCM x"
            raise SourceError(f"cannot open {device.label}: {_reason(e)}{f' ({detail})' if detail else ''}") from None
        finally:
            for line in said:
                log.debug("%s: %s", device.label, line)
        streams = self._container.streams.audio
        cc = streams[0].codec_context if streams else None
        if cc is None or not cc.sample_rate or not cc.layout.nb_channels:
            self._container.close()
            raise SourceError(f"cannot open {device.label}: it gives no sound FFmpeg can read")
        self._stream = streams[0]
        # ALSA says "2 channels" without an order; the encoders want one: the usual order for that count
        layout = cc.layout.name if cc.layout.channels[0].name != "NONE" else _USUAL_LAYOUTS.get(cc.layout.nb_channels, cc.layout.name)
        self.audio_format = (cc.sample_rate, layout)
        self._clock: SoundClock[av.AudioFrame] = SoundClock(cc.sample_rate)
        log.info("%s: %d Hz %s", device.label, cc.sample_rate, cc.layout.name)

    def start(self, deliver: MicOut) -> None:
        """Start capturing; ``deliver`` is called on the capture thread."""
        if self._thread is not None:
            raise RuntimeError("a Microphone is started once")
        self._deliver_to = deliver
        self._hook = install_interrupter()
        self._thread = threading.Thread(target=in_caller_context(lambda: self._run(deliver)), name="birefvid-microphone", daemon=True)
        self._thread.start()

    def _run(self, deliver: MicOut) -> None:
        started, heard = time.monotonic(), 0.0
        if self._hook is not None:
            self._hook.register()
        try:
            if self._stop.is_set():  # close() came before the register above: its cancel missed this thread, which ends here
                return
            for packet in self._container.demux(self._stream):
                if self._stop.is_set():
                    break
                for frame in packet.decode():
                    now = time.monotonic()
                    heard += frame.samples / frame.sample_rate
                    if heard > now - started + _AHEAD_S:  # a file or generator read at full speed: not a live device
                        self.error = "it gives sound faster than real time, so it is no live device (lavfi: add arealtime)"
                        return
                    with self._heard:
                        self._deliver(deliver, self._clock.add(frame, frame.samples, now))
                        self._heard.notify_all()
            else:
                with self._heard:
                    self._deliver(deliver, self._clock.flush())
                self.error = "it stopped giving sound"
        except (av.FFmpegError, OSError) as e:
            if not self._stop.is_set():
                self.error = _reason(e)
        finally:
            if self._hook is not None:
                self._hook.forget()
            self._container.close()  # only this thread touches the container once it runs
            with self._heard:
                self._heard.notify_all()  # a drain() waiting for more sound waits no longer
            if self.error and not self._stop.is_set():
                log.warning("%s: %s; the recording goes on without sound", self.device.label, self.error)

    def drain(self, until: float, timeout: float = DRAIN_S) -> None:
        """Deliver the sound of monotonic time ``until`` (as delivered: ``delay`` included) before a normal stop finishes
        the recordings: wait, at most ``timeout`` s (plus a negative ``delay``), until the device has handed it over,
        then deliver the frames the clock still holds, stamped with what is known.

        Sound reaches the capture thread a device's latency after it was captured (more when a busy machine held the
        thread), and the clock holds a first or late stretch up to ``GAP_HOLD_S``: finished at once, a recording lost
        that much of its end. The capture goes on afterwards; ``close()`` ends it."""
        deliver = self._deliver_to
        if deliver is None or self._thread is None:
            return
        moment = until - self._delay  # a negative delay plays sound captured later than the picture
        deadline = time.monotonic() + timeout + max(0.0, -self._delay)
        with self._heard:
            while not self._clock.covers(moment) and self._thread.is_alive() and not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    log.info("%s: the sound of the last picture did not come within %.1f s; the recording ends without it", self.device.label, timeout)
                    break
                self._heard.wait(left)
            self._deliver(deliver, self._clock.flush())

    def _deliver(self, deliver: MicOut, stamped: list[tuple[av.AudioFrame, float]]) -> None:
        for frame, at in stamped:
            if self._stop.is_set():  # close() from a deliver(): nothing after it
                return
            deliver(frame, at + self._delay)
            self.frames += 1

    def close(self) -> None:
        """Stop capturing; returns at once, a read blocked on a stalled device or stream cancelled (within 1.5 s otherwise)."""
        self._stop.set()
        if self._thread is None or not exiting.begun(self._thread):  # never started, or a signal landed in its start()
            self._container.close()
            return
        if self._thread is not threading.current_thread():
            if self._hook is not None:
                # a read blocked on a device or stream that stalled (a stuck USB or network source) gives up now, not at
                # its read timeout: the thread then ends and closes its container instead of being left behind
                self._hook.cancel(self._thread.ident)
            self._thread.join(1.5)
            if self._thread.is_alive():
                log.warning("%s: the capture thread is still blocked; it stops when its read times out", self.device.label)


def _reason(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return text.rstrip(".") or type(e).__name__
