"""Audio tracks whose channels come in a custom order, which PyAV cannot touch without crashing.

A MOV's channel labels (as Final Cut, Premiere or ffmpeg's ``pan`` filter write them) give a track
a custom channel order. PyAV 18.1 wraps such a layout with a shallow copy of FFmpeg's struct and
frees the channel map twice: reading ``codec_context.layout``, decoding a packet, or adding a
stream from the track as a template aborts the whole process ("double free or corruption"), which
no ``except`` can catch. So which tracks are custom is asked of a child process, which exits
without tearing anything down, and such tracks are never touched here: PCM is copied packet by
packet into a stream labelled only with its channel count (the samples stay in their order), and
anything else is left out with a warning saying how to convert it.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import av

from birefvid.io import base
from birefvid.io.base import ffmpeg_name, is_url, open_media
from birefvid.io.interleave import InterleavedPackets, carry_track_tags
from birefvid.urls import shown_url

if TYPE_CHECKING:
    from birefvid.io.trim import TimeWindow

log = logging.getLogger(__name__)

# FFmpeg describes a custom order as "8 channels (FL+FR+FC+...)"; native ones by name ("7.1", "5.1(side)")
_CUSTOM = re.compile(r"^(\d+) channels \(")
# seconds the probe of a local file may take; a URL's gets URL_TIMEOUT_S and this for Python and PyAV to start
FILE_PROBE_S = 120.0
PROBE_START_S = 15.0
_PROBE = """
import os, sys
try:
    import av
    with av.open(os.fsdecode(sys.stdin.buffer.read()), timeout=float(sys.argv[1]) or None) as c:
        for i, s in enumerate(c.streams.audio):
            print(i, s.codec_context.layout.name, flush=True)
finally:
    os._exit(0)  # no teardown: PyAV would free a custom channel map twice here
"""


@functools.lru_cache(maxsize=32)
def custom_order_tracks(src: str) -> dict[int, str]:
    """{audio track index: its layout description} for the tracks of ``src`` in a custom channel order."""
    try:
        # the source on stdin, not the command line, which every user of the machine reads (ps): a URL's
        # password or signed link's token would be on show for as long as the probe waits on the server.
        # As bytes: text mode encodes in the locale's code page (cp1252 on Windows), which a name such as
        # 李.mp4 is not in (UnicodeEncodeError: every such video with sound failed)
        # a URL gets the reads' URL_TIMEOUT_S (a silent server held the run here for 120 s), plus the child's start
        timeout = base.URL_TIMEOUT_S if is_url(src) else 0.0
        run = subprocess.run([sys.executable, "-c", _PROBE, str(timeout)], input=os.fsencode(ffmpeg_name(src)), capture_output=True,
                             timeout=timeout + PROBE_START_S if timeout else FILE_PROBE_S)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as e:
        log.debug("could not probe the channel order of %s: %s", shown_url(src), e)
        return {}
    found = {}
    for line in run.stdout.decode("ascii", "replace").splitlines():
        index, _, name = line.partition(" ")
        if index.isdigit() and _CUSTOM.match(name):
            found[int(index)] = name
    return found


class RawPcmTrack(InterleavedPackets):
    """PCM audio track ``index`` of ``src`` copied packet by packet into ``out``, labelled with its
    channel count only (never reading its custom layout)."""

    def __init__(self, src: str | Path, out: av.container.OutputContainer, index: int, channels: int,
                 window: Optional["TimeWindow"] = None, muxer: str = "mov") -> None:
        super().__init__(window)
        self._muxer, self._sent = muxer, 0
        self._in = open_media(src)
        try:
            source = self._in.streams.audio[index]
            cc = source.codec_context  # its name and rate are safe to read; its layout (and channel count) are not
            self._out_stream = out.add_stream(cc.name, rate=cc.sample_rate)
            self._out_stream.codec_context.layout = f"{channels} channels"
            carry_track_tags(source, self._out_stream)
            self._out = out
            self._demux(source)
        except BaseException:
            self.close()
            raise

    def _starts_in_window(self, packet: av.Packet, t: float) -> bool:
        """Also keeps, in MOV, the packet a ``--start`` cut falls in, at a negative time the edit list hides, as
        ``AudioTrack`` does with copied PCM: the track then starts with the picture and with the file's other tracks (it
        began at the next packet, up to 21 ms after them). Matroska, without an edit list, keeps that cut."""
        if super()._starts_in_window(packet, t):
            return True
        assert self._window is not None
        return (self._muxer == "mov" and not self._sent and bool(packet.duration)
                and t + float(packet.duration * packet.time_base) > self._window.start + 1e-9)  # fmt: skip

    def _mux(self, packet: av.Packet) -> None:
        self._sent += 1
        self._in_order(packet, self._out_stream)
        packet.stream = self._out_stream
        self._out.mux(packet)

    def finish(self) -> None:
        """Mux the packets that are left."""
        self.write_until(None)


# the containers that take raw PCM with a bare channel count (MP4 writes an unreadable header for it)
PCM_MUXERS = ("mov", "matroska")


def custom_order_track(
    src: str | Path, out: av.container.OutputContainer, muxer: str, index: int, layout: str, window: Optional["TimeWindow"] = None
) -> Optional[RawPcmTrack]:
    """The copy of custom-ordered audio track ``index`` when it is PCM and ``muxer`` holds PCM, else None (with a warning)."""
    with open_media(src) as container:
        codec = container.streams.audio[index].codec_context.name
    if codec.startswith("pcm_") and muxer in PCM_MUXERS:
        log.warning("%s: audio track %d (%s) is copied with its channels in their order, unlabelled: PyAV crashes "
                    "on its custom channel order", src, index + 1, layout)  # fmt: skip
        channels = int(_CUSTOM.match(layout).group(1))  # type: ignore[union-attr]
        return RawPcmTrack(src, out, index, channels, window, muxer)
    keep = "convert it first (ffmpeg -i IN -c:v copy -c:a aac OUT)" + (", or write .mov or .mkv" if codec.startswith("pcm_") else "")
    log.warning("%s: audio track %d (%s, %s) is left out: PyAV crashes on its custom channel order; %s",
                src, index + 1, codec, layout, keep)  # fmt: skip
    return None
