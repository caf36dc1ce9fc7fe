"""Run a ``FileJob``: open its input and output, load the model, run the stages, and report.

Cheap checks (input readable, output writable, background present) come before the model
loads, so a typo fails in a second. The output appears at its path only when the run succeeds.
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ..compose.background import StreamBackground
from ..compose.compositor import SINK_KIND, Compositor
from ..errors import OutputKeptError, SinkError, option
from ..io import open_sink, open_source
from ..file_job_checks import check_file_job
from ..io.atomic import check_report_path as check_report_path, write_text_atomic  # re-exported: callers import it from here
from ..io.factory import exr_colour_for
from ..io.hdr import hdr_output, sdr_sources, shows_hdr_as_sdr
from ..io.scale import ScaledSource, SquarePixelSource, needs_square_pixels
from ..io.trim import TrimmedSource, starts_off_zero
from ..io.video_source import refuse_cut_off, refuse_skipped
from ..job import FileJob
from ..temporal import make_smoother
from ..urls import hide_secrets
from .backgrounds import SharedBackground, open_background
from .depth import plan_depth, say_depth_lost
from .device import pick_device
from .disk_watch import DiskWatch, watches_by_disk
from .extra_outputs import check_reading, commit_all, plan_extra_depth
from .load_failure import loading_model
from .priority import codec_threads
from .segmenter import Segmenter
from .video_job import run_video_job


def segmenter_for(job_model: Any, inference: Any, device: Optional[str] = None) -> Segmenter:
    """The Segmenter a job's model and inference parts describe."""
    return Segmenter(
        job_model.model, weights=job_model.weights, backbone=job_model.backbone,
        device=device or inference.device, precision=inference.precision,
        resolution=inference.resolution, keep_aspect=inference.keep_aspect, backend=inference.backend,
    )  # fmt: skip


def output_settings(kind: str, sink: Any, composite_bits: int) -> dict[str, Any]:
    """One output's resolved settings for the report: its kind, codec, the bits a sample its pictures keep (8 when
    composited at 8 bits, whatever the format holds) and the frames it holds (a video of a plate with a missing frame
    holds one more than were read); the caller adds the path it was written to."""
    spec = getattr(sink, "spec", None)  # a video's or animation's EncoderSpec; an image sequence has none, but its format
    settings = {"kind": kind, "codec": spec.codec if spec is not None else getattr(sink, "codec", "png"), "bit_depth": sink.sample_bits if composite_bits > 8 else 8}
    frames = sink.frames_held()
    return settings if frames is None else {**settings, "frames": frames}


def resolved_settings(seg: Segmenter, batch_size: Optional[int] = None) -> dict[str, Any]:
    """What 'auto' and the defaults turned into on this machine, for the report."""
    resolved = {
        "model": seg.name, "backbone": seg.backbone, "device": str(seg.device), "backend": seg.backend,
        "precision": seg.precision, "resolution": list(seg.resolution),
    }  # fmt: skip
    if seg.engine.export_seconds:
        resolved["export_seconds"] = round(seg.engine.export_seconds, 1)
    if batch_size is not None:
        resolved["batch_size"] = batch_size
    return resolved


@dataclass(frozen=True)
class RunControl:
    """How a caller watches and steers a run: progress per batch, the frame count at start, a stop event."""

    progress: Optional[Callable[[int], None]] = None
    on_start: Optional[Callable[[Optional[int]], None]] = None
    stop: Optional[threading.Event] = None


def _watched(progress: Optional[Callable[[int], None]], watches: list[DiskWatch]) -> Callable[[int], None]:
    """The caller's progress, after the free-space checks: a run that cannot fit stops in its first minutes, not hours in."""

    def advance(n: int) -> None:
        for watch in watches:
            watch.advance(n)
        if progress is not None:
            progress(n)

    return advance


def run_file_job(
    job: FileJob, *, segmenter: Optional[Segmenter] = None, report_path: Optional[str | Path] = None, control: RunControl = RunControl()
) -> dict[str, Any]:
    """Process every frame of ``job.source`` into ``job.output``; returns the run report.

    ``segmenter`` replaces the one the job describes (tests, callers that keep a model loaded).
    Setting ``control.stop`` ends the run early with a ``PipelineError`` and no output.
    """
    progress, on_start, stop = control.progress, control.on_start, control.stop
    check_file_job(job, report_path)  # light, and first: `process` makes the same checks before it imports this module
    src, out = job.source, job.output
    smoother = make_smoother(job.smoothing.kind, **job.smoothing.smoother_options())
    kept = _KeptOutput()
    kept_names: list[Optional[str]] = [None] * len(job.outputs)  # where an output went when its name was taken meanwhile
    with kept, contextlib.ExitStack() as stack:
        device = segmenter.device if segmenter is not None else pick_device(job.inference.device)
        threads = codec_threads(device.type)  # one each on a small CPU: the model has the cores
        source = stack.enter_context(open_source(src.input, src.decoder, fps=src.fps, threads=threads, deinterlace=src.deinterlace,
                                                     video_stream=src.video_stream, input_colors=src.input_colors))
        refuse_cut_off(source, src.end)  # now, not after decoding it all; --end before the cut still works
        refuse_skipped(source, src.start, src.end)  # a damaged Matroska Cluster: before any work, unless the part asked for avoids it
        sdr = shows_hdr_as_sdr(out.path, source.info)  # a GIF/WebP/APNG/PNG of HDR video: shown as SDR
        for each in job.outputs:  # now, with what the input is: HDR is shown as SDR to a sequence, which would hide it
            exr_colour_for(each.path, SINK_KIND[each.kind], source.info)
        if sdr:
            source.deliver_deep()  # converted from its 16-bit pictures where the source has them
        depth = plan_depth(out, source)
        extra_depths = [plan_extra_depth(out, extra, source.info, depth) for extra in job.also]
        window = None
        # only a part, or a timeline no output can hold as it is: the pictures from its first frame, re-timed, and the sound etc. with them
        if src.trimmed or starts_off_zero(source):
            source = stack.enter_context(TrimmedSource(source, src.start or 0.0, src.end))
            window = source.window
        square = needs_square_pixels(out.path, source.info)
        for extra in job.also:  # the main output chose how the input is read; an extra one needing otherwise is refused
            check_reading(out, extra, source.info, hdr_as_sdr=sdr, square=square)
        if square:  # a GIF/WebP/APNG shows pixels square: make them so
            source = stack.enter_context(SquarePixelSource(source))
        if src.max_size is not None:
            source = stack.enter_context(ScaledSource(source, src.max_size))
        # HDR video: the model sees it as SDR, and so does an output that cannot say it holds HDR
        source = sdr_sources(source, str(out.path), keep_deep=depth.composite > 8, name=str(src.input), stack=stack)
        info = source.info
        sinks, compositors = [], []
        backgrounds: dict[tuple[str, bool], SharedBackground] = {}  # a video background by (spec, deep), for each output showing it
        for spec, plan in ((out, depth), *zip(job.also, extra_depths)):  # every output opened and checked before the model loads
            sink = open_sink(
                spec.path, kind=SINK_KIND[spec.kind], info=info, codec=spec.codec, crf=spec.crf, bitrate=spec.bitrate,
                pix_fmt=spec.pix_fmt, preset=spec.preset, audio_from=src.input if spec.audio else None, audio=spec.audio,
                overwrite=spec.overwrite, threads=threads, subtitles_from=src.input if spec.subtitles else None,
                chapters_from=src.input, window=window, bits=plan.wanted, gpu=device.index if device.type == "cuda" else None,
            )  # fmt: skip
            stack.enter_context(sink)  # exception -> abort (temp output removed), success -> commit
            bits = plan.bits_for(sink)
            if bits == 8:
                say_depth_lost(str(src.input), plan.source, info.color_trc, spec.kind, spec.bit_depth, getattr(getattr(sink, "spec", None), "codec", "it"))
            background = None
            if spec.kind == "composite" and (str(spec.background), bits > 8) in backgrounds:  # another output's: decoded once
                background = backgrounds[str(spec.background), bits > 8].view()
            elif spec.kind == "composite":  # opened before the model loads: a missing file fails in a second
                background = stack.enter_context(open_background(str(spec.background), (info.width, info.height), device, info.sample_aspect_ratio,
                                                                 deep=bits > 8, hdr=hdr_output(info)))  # fmt: skip
                if isinstance(background, StreamBackground):  # a video: its frames made once for every output that shows it
                    background = backgrounds.setdefault((str(spec.background), bits > 8), SharedBackground(background))
            sinks.append(sink)
            compositors.append(Compositor.for_output(spec, background=background, bits=bits))
        sink, compositor = sinks[0], compositors[0]
        with loading_model():  # torch's own error as it loads is one line, exit 2, not a traceback
            seg = segmenter or segmenter_for(job.model, job.inference, str(device))
        batch = job.inference.batch_size or seg.file_batch_size(info.height, info.width)
        seg.prepare(info.height, info.width, batch)  # a first-run ONNX export happens here, not inside the progress bar's ETA
        if on_start is not None:
            on_start(info.frame_count)
        frames, times, wall = run_video_job(
            source, sink, seg, smoother, compositor, batch_size=batch, queue_size=job.queue_size,
            progress=_watched(progress, watches_by_disk([(spec.path, s.bytes_written) for spec, s in zip(job.outputs, sinks)], info.frame_count)),
            stop=stop,
            also=list(zip(compositors[1:], sinks[1:])),
        )  # fmt: skip
        kept.finished = True  # from here on an OutputKeptError is an output's commit
        kept_names, kept.error = commit_all(sinks)  # all frames written: commit each (the stack aborts the rest on a failure)
    written = [name or spec.path for name, spec in zip(kept_names, job.outputs)]
    # each output's own: the top-level bit_depth is -o's alone, and an --also output can differ (an 8-bit GIF beside ProRes)
    outputs = [{"path": str(path), **output_settings(spec.kind, s, c.bits)} for path, spec, s, c in zip(written, job.outputs, sinks, compositors)]
    report = {
        "input": src.input,
        "output": written[0],
        "frames": frames,
        "wall_seconds": round(wall, 3),
        "fps": round(frames / wall, 3) if wall > 0 else None,
        "stage_seconds": {k: round(v, 3) for k, v in times.busy.items()},
        "stage_cpu_seconds": {k: round(v, 3) for k, v in times.cpu.items()},
        "job": job.to_dict(),
        "resolved": {**resolved_settings(seg, batch), "bit_depth": outputs[0]["bit_depth"], "outputs": outputs},
    }
    if job.also:
        report["also"] = written[1:]
    if kept.error is not None:  # a finished output whose name was taken: the run fails, its report says where it went
        report["error"] = str(kept.error)
        kept.error.report = report  # type: ignore[attr-defined]
    if report_path is not None:
        # reports get shared: no passwords or tokens; written whole or not at all (scripts read it)
        try:
            write_text_atomic(report_path, json.dumps(hide_secrets(report), indent=2) + "\n", option("report_path"))
        except SinkError as e:  # the video is whole and in place: a script seeing exit 2 must not redo or delete it
            raise SinkError(f"{e}; {'the output ' if len(written) == 1 else 'the outputs '}{', '.join(written)} "
                            f"{'was' if len(written) == 1 else 'were'} written and {'is' if len(written) == 1 else 'are'} kept") from None
    if kept.error is not None:
        raise kept.error
    return report


class _KeptOutput:
    """Holds the ``OutputKeptError`` of a commit (``error``) so the run's report is still made, naming the kept file;
    one raised before the work finished (a caller's ``progress``) is no commit's and goes on as raised."""

    error: Optional[OutputKeptError] = None
    finished = False  # the frames are done: what fails now is the commit

    def __enter__(self) -> "_KeptOutput":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        if self.finished and isinstance(exc, OutputKeptError):
            self.error = exc
            return True
        return False
