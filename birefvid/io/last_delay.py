"""The last frame's time in a finished APNG or animated WebP, patched in place before the file is committed.

FFmpeg cannot write it: its APNG muxer takes the last frame's delay from its ``final_delay`` option,
read only when the header is written (before the last frame's time is known; unset, the last frame
gets the one before it's delay), and libwebp_anim gives the last frame the mean of the earlier
delays. A GIF's held last frame (100/100/100/2000 ms) was so cut to 100 ms. Both files are walked
chunk by chunk (reading chunk headers only, so a file of tens of MB is not read whole) and one
field is rewritten; a file whose structure is not the expected one is left as it is, with a debug line.
"""

from __future__ import annotations

import logging
import zlib
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Optional

log = logging.getLogger(__name__)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FCTL_LENGTH = 26  # sequence, width, height, x, y (4 bytes each), delay_num, delay_den (2 each), dispose, blend
_FCTL_DELAY = 20  # where delay_num starts in the chunk's data
_APNG_MAX = 0xFFFF  # delay_num and delay_den are 16-bit
_ANMF_HEADER = 16  # X, Y, width-1, height-1, duration (3 bytes each), flags
_ANMF_DURATION = 12  # where the 24-bit duration starts in the chunk's data
_WEBP_MAX_MS = 0xFFFFFF


def _untouched(path: Path, why: str) -> bool:
    log.debug("%s: the last frame's time is left as FFmpeg wrote it: %s", path, why)
    return False


def apng_delay(seconds: Fraction) -> Optional[tuple[int, int]]:
    """``seconds`` as an APNG delay (numerator, denominator), each 16-bit: exact where it fits, else the nearest; None if over 65535 s."""
    seconds = Fraction(seconds)
    if not 0 < seconds <= _APNG_MAX:
        return None
    fraction = seconds.limit_denominator(max(1, min(_APNG_MAX, int(_APNG_MAX / seconds))))
    if not 0 < fraction.numerator <= _APNG_MAX:
        return None
    return fraction.numerator, fraction.denominator


def apng_set_last_delay(path: Path, seconds: Fraction) -> bool:
    """Give the APNG at ``path``'s last frame a delay of ``seconds`` (its last fcTL chunk, CRC updated); True if set."""
    delay = apng_delay(seconds)
    if delay is None:
        return _untouched(path, f"a delay of {float(seconds):g} s does not fit APNG's 16-bit fields")
    size = path.stat().st_size
    with open(path, "r+b") as f:
        if f.read(8) != _PNG_SIGNATURE:
            return _untouched(path, "no PNG signature")
        at, last, kind = 8, None, b""
        while at + 12 <= size:
            f.seek(at)
            head = f.read(8)
            length, kind = int.from_bytes(head[:4], "big"), head[4:]
            if at == 8 and kind != b"IHDR":
                return _untouched(path, f"the first chunk is {kind!r}, not IHDR")
            if at + 12 + length > size:
                return _untouched(path, f"the {kind!r} chunk at {at} runs past the end of the file")
            if kind == b"fcTL":
                last = (at, length)
            at += 12 + length
            if kind == b"IEND":
                break
        if kind != b"IEND":
            return _untouched(path, "no IEND chunk")
        if last is None or last[1] != _FCTL_LENGTH:
            return _untouched(path, "no fcTL chunk of 26 bytes")
        f.seek(last[0] + 4)
        body = f.read(4 + _FCTL_LENGTH + 4)  # type, data, CRC
        if zlib.crc32(body[:-4]) != int.from_bytes(body[-4:], "big"):
            return _untouched(path, "the last fcTL chunk's CRC does not match it")
        patched = body[:4 + _FCTL_DELAY] + delay[0].to_bytes(2, "big") + delay[1].to_bytes(2, "big") + body[4 + _FCTL_DELAY + 4 : -4]
        f.seek(last[0] + 4)
        f.write(patched + zlib.crc32(patched).to_bytes(4, "big"))
    return True


def _webp_frames(f: BinaryIO, path: Path, size: int) -> Optional[tuple[int, int]]:
    """The last ANMF chunk's offset and the durations of the frames before it, in ms; None (logged) if the file is not as expected."""
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WEBP":
        _untouched(path, "no RIFF WEBP header")
        return None
    end = 8 + int.from_bytes(head[4:8], "little")
    if end > size:
        _untouched(path, f"the RIFF header says {end} bytes, the file has {size}")
        return None
    at, last, before, last_ms = 12, None, 0, 0
    while at + 8 <= end:
        f.seek(at)
        chunk = f.read(8 + _ANMF_HEADER)
        fourcc, length = chunk[:4], int.from_bytes(chunk[4:8], "little")
        if at + 8 + length > end:
            _untouched(path, f"the {fourcc!r} chunk at {at} runs past the end of the file")
            return None
        if fourcc == b"ANMF":
            if length < _ANMF_HEADER:
                _untouched(path, f"the ANMF chunk at {at} is too short for a frame header")
                return None
            before += last_ms
            last, last_ms = at, int.from_bytes(chunk[8 + _ANMF_DURATION : 8 + _ANMF_DURATION + 3], "little")
        at += 8 + length + (length & 1)  # chunks are padded to an even size
    if at != end:
        _untouched(path, "the chunks do not end where the RIFF header says")
        return None
    if last is None:
        _untouched(path, "no ANMF chunk (not an animation)")
        return None
    return last, before


def webp_set_last_end(path: Path, end_ms: int) -> bool:
    """Make the animated WebP at ``path`` end ``end_ms`` after its first frame starts: its last ANMF chunk's duration; True if set.

    The end rather than the last frame's own time, since libwebp merges a frame that repeats the one before into it.
    """
    size = path.stat().st_size
    with open(path, "r+b") as f:
        found = _webp_frames(f, path, size)
        if found is None:
            return False
        last, before = found
        duration = end_ms - before
        if not 0 < duration <= _WEBP_MAX_MS:
            return _untouched(path, f"the last frame would last {duration} ms")
        f.seek(last + 8 + _ANMF_DURATION)
        f.write(duration.to_bytes(3, "little"))
    return True
