"""How many bits a file job's pictures keep: 8, or a 10-bit-or-deeper source's depth where the output holds it.

A 10-bit camera or HDR clip worked on as 8-bit RGB comes out with 8-bit steps, which band in
smooth gradients (a sky, a graded log shot) however many bits the output format has. A deep run
decodes each frame to 16-bit RGB beside the 8-bit copy the model and smoothers use, and composites
the output's colour (and its alpha or mask) in float from it, to uint16 for the encoder.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from ..errors import option

if TYPE_CHECKING:
    from ..io.base import Sink, Source
    from ..job import OutputSpec

log = logging.getLogger(__name__)

# transfer characteristics of HDR video (AVColorTransferCharacteristic): PQ (SMPTE 2084) and HLG (ARIB STD-B67)
HDR_TRANSFERS = {16: "PQ", 18: "HLG"}

BitDepth = Union[str, int]


def wanted_bits(bit_depth: BitDepth, source_bits: int, kind: str) -> int:
    """Bits to ask of the output's default pixel format: 8 (the usual defaults), the source's, or 16.

    ``auto`` asks for the source's depth for pictures made from it; a mask's default stays 8-bit
    (its format is the user's choice: ``--pix-fmt gray16le`` or ``--bit-depth 16``).
    """
    if bit_depth == 8:
        return 8
    if bit_depth == 16:
        return 16
    return source_bits if source_bits > 8 and kind != "mask" else 8


def composite_bits(bit_depth: BitDepth, source_bits: int, kind: str, output_bits: int, floats: bool = False) -> int:
    """8 or 16: the compositor's output samples, given the output's own sample bits.

    16 needs an output of more than 8 bits, and either a deep source (its colour), a mask (the
    matte is float: a 10-bit ProRes mask keeps 10 bits of it), an output of ``floats`` (OpenEXR's half
    floats cost the same whatever they hold: an 8-bit source's cut-out gets its soft edge's alpha, and the
    foreground colour under it, finer than 1/255) or ``--bit-depth 16``.
    """
    if bit_depth == 8 or output_bits <= 8:
        return 8
    if bit_depth == 16 or kind == "mask" or source_bits > 8 or floats:
        return 16
    return 8


def say_depth_lost(name: str, source_bits: int, color_trc: object, kind: str, bit_depth: BitDepth, codec: str) -> None:
    """Warn when a deep HDR source goes into an 8-bit output by default: PQ and HLG band visibly at 8 bits;
    and when 16 bits were asked for (``bit_depth`` 16) of an output that holds 8."""
    keep = ("write .mov (ProRes 4444) or .mkv (FFV1)" if kind == "alpha" else "write .mkv (FFV1)" if kind == "mask"
            else f"use {option('codec', 'libx265')} (10-bit HEVC) or {option('codec', 'prores_ks')} in .mov")  # fmt: skip
    if bit_depth == 16:  # asked for by name: an output that cannot hold it is not silently 8-bit
        log.warning("%s asks for more than 8 bits, but %s writes 8 bits here; %s to keep them", option("bit_depth", 16), codec, keep)
        return
    if source_bits <= 8 or kind == "mask" or bit_depth != "auto":
        return
    hdr = HDR_TRANSFERS.get(color_trc) if isinstance(color_trc, int) else None
    if hdr is None:
        log.info("%s is %d-bit; the output keeps 8 bits (%s)", name, source_bits, codec)
        return
    log.warning("%s is %d-bit HDR (%s) and %s writes 8 bits here, which can band in smooth gradients; %s to keep the depth",
                name, source_bits, hdr, codec, keep)  # fmt: skip


@dataclass(frozen=True)
class DepthPlan:
    """A file job's bit depths: the source's, the one asked of the output's default format, and the compositor's (8 or 16)."""

    source: int
    wanted: int
    composite: int

    def bits_for(self, sink: "Sink") -> int:
        """The compositor's bits for the sink that opened: 8 unless it keeps more."""
        return self.composite if sink.sample_bits > 8 else 8


def plan_depth(out: "OutputSpec", source: "Source") -> DepthPlan:
    """Decide a job's depth from its opened, not yet wrapped or read, source; ask the source for 16-bit
    pictures when the output will keep their colour (before a time range reads its first frame).

    ``open_sink`` then takes ``bits=plan.wanted``, and the compositor ``plan.bits_for(sink)``.
    """
    from ..compose.compositor import SINK_KIND
    from ..io.factory import holds_floats, output_sample_bits

    def plan(source_bits: int) -> tuple[int, int]:
        wanted = wanted_bits(out.bit_depth, source_bits, out.kind)
        holds = output_sample_bits(out.path, SINK_KIND[out.kind], source.info, codec=out.codec, pix_fmt=out.pix_fmt, bits=wanted)  # type: ignore[arg-type]
        return wanted, composite_bits(out.bit_depth, source_bits, out.kind, holds, holds_floats(out.path))

    source_bits = source.info.bit_depth
    wanted, bits = plan(source_bits)
    if bits > 8 and source_bits > 8 and out.kind != "mask" and not source.deliver_deep():
        # a decoder that gives 8-bit pictures only (decord): planned as the 8-bit source it then is,
        # rather than 8-bit colour in a deep output whose report says the depth was kept
        log.warning("%s is %d-bit but this decoder gives 8-bit pictures: the output keeps 8 bits of colour; "
                    "use the PyAV decoder (%s) to keep the depth", getattr(source, "path", "the input"), source_bits, option("decoder", "pyav"))  # fmt: skip
        source_bits = 8
        wanted, bits = plan(source_bits)
    return DepthPlan(source_bits, wanted, bits)
