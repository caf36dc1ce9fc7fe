"""The child that sends an RTMP stream whose address holds a login (``rtmp://USER:PASSWORD@HOST/APP/KEY``).

Run as ``python rtmp_push.py FD TIMEOUT``: it reads the address from the inherited pipe ``FD``, the FLV stream
birefvid muxes from its standard input, and copies the stream's packets, untouched, to the address with PyAV.
FFmpeg's RTMP client takes a login only inside the address, and the ``ffmpeg`` program only on its command line,
which every user of the machine reads (``ps``, ``/proc/PID/cmdline``); here it never is on one.

It speaks as the ``ffmpeg`` child does to ``rtmp_sink``: ``progress=continue`` on standard output once the server
has taken the stream, an error line on standard error. PyAV opens the address holding Python's lock and with no
timeout option, so an alarm (its default action ends the process) stands for ffmpeg's ``-rw_timeout``: while it
connects, and around each write to the server after. A server that stalls stops this child reading, which the
parent's write timeout sees; the alarm then ends the child, which waited in that write for ever, outliving a
birefvid killed meanwhile (its own session: no signal from the terminal reaches it). Once the server reads again,
the end of its input (the parent closed it, or died) ends the child too. Not PR_SET_PDEATHSIG: it fires when the
*thread* that started the child ends, and a stream is reopened from a thread of its own that ends at once.
Imports only PyAV: it runs as a script, outside the package.
"""

from __future__ import annotations

import math
import os
import signal
import sys

import av


def main(argv: list[str]) -> int:
    """Copy FLV from standard input to the address read from ``argv[1]`` (a file descriptor) within ``argv[2]`` seconds to connect."""
    fd, timeout = int(argv[1]), float(argv[2])
    with os.fdopen(fd, "rb") as pipe:
        url = pipe.read().decode()
    try:
        # unbuffered: a buffered read waits for a whole buffer, which a small picture's stream takes seconds to fill;
        # probed as the ffmpeg child probes (no probesize limit): with 32 bytes a stream whose sound came first was opened
        # before its first picture, its video of size 0x0, which the FLV muxer refused ("Invalid argument")
        source = av.open(os.fdopen(0, "rb", buffering=0, closefd=False), "r", format="flv", options={"analyzeduration": "1"})
    except (av.FFmpegError, OSError, EOFError):
        return 1  # the parent stopped before sending anything
    with source:
        # max_interleave_delta: as publish_base.LIVE_MUX_OPTIONS (not imported: this child stays light), so
        # pictures never wait 10 s for sound that stopped (a camera gone, its held pictures going on)
        target = av.open(url, "w", format="flv", container_options={"flvflags": "no_duration_filesize", "max_interleave_delta": "500000"})
        copies = {s.index: target.add_stream_from_template(s) for s in source.streams if s.type in ("video", "audio")}
        signal.alarm(max(1, math.ceil(timeout)))  # connecting: a server that never answers ends this child
        try:
            target.start_encoding()
        except (av.FFmpegError, OSError) as e:
            print(f"{url}: {getattr(e, 'strerror', None) or e}", file=sys.stderr, flush=True)
            return 1
        finally:
            signal.alarm(0)
        print("progress=continue", flush=True)  # the server took the stream
        seconds = max(1, math.ceil(timeout))
        try:
            for packet in source.demux():
                copy = copies.get(packet.stream.index)
                if copy is None or packet.dts is None:
                    continue
                packet.stream = copy
                signal.alarm(seconds)  # a server that takes nothing for this long ends this child, as -rw_timeout does
                target.mux(packet)
                signal.alarm(0)  # not while waiting for the next packet: the parent may have nothing to send
            signal.alarm(seconds)
            target.close()
            signal.alarm(0)
        except (av.FFmpegError, OSError) as e:
            print(f"{url}: {getattr(e, 'strerror', None) or e}", file=sys.stderr, flush=True)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
