"""A file job's extra outputs (``FileJob.also``): checked against the main output, whose needs chose how the input is read.

One run reads the input one way for all its outputs: square pixels for a GIF, WebP or APNG,
HDR video shown as SDR to an output that holds no HDR, 16-bit pictures for a deep output. An
extra output that would need another reading is refused before the model loads, rather than
written wrong or read a second time.
"""

from __future__ import annotations

from typing import Optional

from ..compose.compositor import SINK_KIND
from ..errors import BirefvidError, ConfigError, OutputKeptError, SinkError, finishing, option
from ..frames import StreamInfo
from ..io.base import Sink
from ..io.hdr import shows_hdr_as_sdr
from ..io.scale import needs_square_pixels
from ..job import OutputSpec
from .depth import DepthPlan, composite_bits, wanted_bits


def named(extra: OutputSpec) -> str:
    """How messages name an extra output: ``--also KIND=PATH`` (``also`` in the API)."""
    return f"{option('also')} {extra.kind}={extra.path}"


def _refuse(main: OutputSpec, extra: OutputSpec, needs: str, extra_needs: bool, swap: bool = False) -> None:
    who, other = (named(extra), f"the main output {main.path}") if extra_needs else (f"the main output {main.path}", named(extra))
    raise ConfigError(f"{who} needs {needs} and {other} does not: one run reads the input one way for all its outputs; "
                      f"write {extra.path} in a run of its own{' or as the main output (-o)' if swap else ''}")  # fmt: skip


def check_reading(main: OutputSpec, extra: OutputSpec, info: StreamInfo, *, hdr_as_sdr: bool, square: bool) -> None:
    """ConfigError when ``extra`` needs the input read otherwise than the main output (``hdr_as_sdr``, ``square``: its needs).

    ``info``: the opened source's, before any wrapper (its HDR transfer and pixel shape)."""
    if shows_hdr_as_sdr(extra.path, info) != hdr_as_sdr:
        _refuse(main, extra, "the HDR video shown as SDR (a GIF, WebP, APNG or PNG sequence holds no HDR)", not hdr_as_sdr)
    if needs_square_pixels(extra.path, info) != square:
        _refuse(main, extra, "square pixels (a GIF, WebP or APNG of a video whose pixels are not square)", not square)


def plan_extra_depth(main: OutputSpec, extra: OutputSpec, info: StreamInfo, depth: DepthPlan) -> DepthPlan:
    """``extra``'s depth plan beside the main output's ``depth``: ConfigError when it would need the source's deep
    colour, which the main output does not decode (an 8-bit main output); a deep main output's 8-bit extras
    are composited from the 8-bit rounding of its pictures."""
    from ..io.factory import holds_floats, output_sample_bits

    wanted = wanted_bits(extra.bit_depth, depth.source, extra.kind)
    holds = output_sample_bits(extra.path, SINK_KIND[extra.kind], info, codec=extra.codec, pix_fmt=extra.pix_fmt, bits=wanted)  # type: ignore[arg-type]
    bits = composite_bits(extra.bit_depth, depth.source, extra.kind, holds, holds_floats(extra.path))
    main_deep = depth.composite > 8 and depth.source > 8 and main.kind != "mask"
    if bits > 8 and depth.source > 8 and extra.kind != "mask" and not main_deep:
        _refuse(main, extra, f"the input's {depth.source}-bit colour ({option('bit_depth', 8)} writes it at 8 bits)", True, swap=True)
    return DepthPlan(depth.source, wanted, bits)


def commit_all(sinks: list[Sink]) -> tuple[list[Optional[str]], Optional[OutputKeptError]]:
    """Finish every sink, then commit them together; returns the name each was kept under when its own was taken
    meanwhile (None: its own), and the first such ``OutputKeptError``. The encoders are all flushed before any
    output is renamed into place, so a failure or Ctrl-C while finishing leaves none of them (the caller's stack
    aborts them); the renames run with Ctrl-C and SIGTERM held, and one failing takes back those already made (each
    removed, or with --overwrite the file it replaced put back), so a run's outputs appear together or not at all.
    One output's name being taken does not discard the others: it is kept beside (``NAME (2).EXT``), nothing lost."""
    for sink in sinks:
        sink.finish()
    kept: list[Optional[str]] = []
    first: Optional[OutputKeptError] = None
    entries = [entry for entry in (sink.output_entry() for sink in sinks) if entry is not None]
    for entry in entries:
        entry.hold = True  # what a commit replaces stays aside until all are in place
    with finishing("moving the finished outputs into place", "discards those not yet in place"):
        for sink in sinks:
            try:
                sink.close()
                kept.append(None)
            except OutputKeptError as e:
                kept.append(str(e.kept))
                first = first or e
            except BaseException as e:
                # those in place, this one too where Ctrl-C came between its rename and its return
                done = [s for s in sinks if (entry := s.output_entry()) is not None and entry.in_place]
                if not done:
                    raise
                said = _taken_back(e, done)
                if said is e:
                    raise
                raise said from e
        for entry in entries:
            entry.settle()
    return kept, first


def _taken_back(error: BaseException, done: list[Sink]) -> BaseException:
    """``error`` (a later output's failed commit) once the outputs ``done`` already in place are taken back, saying so."""
    problems: list[str] = []
    restored = False
    for sink in reversed(done):
        entry = sink.output_entry()
        if entry is not None:
            restored = restored or entry.replaced
            problems += entry.undo()
    if not isinstance(error, BirefvidError):
        return error
    names = ", ".join(str(getattr(s, "path", "?")) for s in done)
    if problems:
        return SinkError(f"{error}; taking back the outputs already in place failed: {'; '.join(problems)}")
    back = "; what they replaced is put back" if restored else ""
    return SinkError(f"{error}; {names} {'was' if len(done) == 1 else 'were'} taken back: none of this run's outputs is in place{back}")
