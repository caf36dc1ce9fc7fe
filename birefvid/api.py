"""One-call facades: ``process_video(input, output, **options)``, ``iter_masks(input)``, ``run_job(job)`` and ``run_live(job)``;
``watch_videos`` and ``start_watch`` (a watch folder, from ``birefvid.batch.watch_api``).

``process_video`` keeps the keyword form users know; it only builds a ``FileJob`` (the one
description every entry point shares) and runs it.
"""

from __future__ import annotations

import numbers
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional, Union

from .errors import ConfigError, option
from .job import (
    BLUR_SIGMA,
    DEFAULT_LATENCY_BUDGET_MS,
    KEY_COLOR,
    OVERLAY_COLOR,
    OVERLAY_OPACITY,
    Backend,
    EffectSpec,
    FileJob,
    InferenceSpec,
    LiveJob,
    LiveSourceSpec,
    MatteSpec,
    ModelSpec,
    OutputKind,
    OutputSpec,
    Precision,
    SmoothingSpec,
    SmoothKind,
    SourceSpec,
    output_kind,
    check_types,
    is_camera_spec,
    is_recording,
)
# the watch folder, re-exported (``as``: names of this module's API, not imports it leaves unused)
from .batch.watch_api import VideoWatch as VideoWatch, WatchResult as WatchResult, start_watch as start_watch, watch_videos as watch_videos
from .said_once import new_run, once_a_run

if TYPE_CHECKING:
    import numpy as np

    from .runtime.live_effects import EffectSwitch
    from .runtime.segmenter import Segmenter

PathLike = Union[str, Path]


def model_and_inference(
    *,
    model: Optional[str] = None,
    weights: Optional[PathLike] = None,
    backbone: Optional[str] = None,
    device: str = "auto",
    precision: Precision = "auto",
    resolution: Union[int, str, tuple[int, int], None] = None,
    keep_aspect: bool = False,
    batch_size: Optional[int] = None,
    backend: Backend = "auto",
) -> tuple[ModelSpec, InferenceSpec]:
    """The model and inference parts of a job, from the keywords every builder shares.

    ``model``: a registry name (``tiny``, ``general``, ``lite``, ...) or a Hugging Face repo;
    ``weights`` (+ ``backbone``): a local checkpoint instead; ``resolution``: N or "WxH";
    ``device``: auto, cpu, cuda, mps; ``precision``: auto, fp32, fp16, bf16; ``backend``: auto,
    torch, torch-compile, openvino, onnxruntime.
    """
    return (
        ModelSpec(model, None if weights is None else str(weights), backbone),
        InferenceSpec(_device_name(device), precision, resolution, keep_aspect, batch_size, backend),
    )


def _device_name(device: Any) -> Any:
    """``device`` as the job's name for it: a ``torch.device`` as "cuda:1", a GPU's number N as "cuda:N", as torch
    takes them (both worked until the job's keywords were type-checked, and were then refused); None, as many libraries
    take it, as "auto" (it failed once the run began)."""
    if device is None:
        return "auto"
    if isinstance(device, numbers.Integral) and not isinstance(device, bool):
        return f"cuda:{int(device)}"
    if type(device).__module__ == "torch" and type(device).__name__ == "device":
        return str(device)
    return device


def _color_text(color: Any) -> Any:
    """An (r, g, b) triple (a tuple, list or array, as ``parse_color`` takes it) as the job's "r,g,b" text; else as given."""
    if color is None or isinstance(color, (str, Path)) or not isinstance(color, Iterable):
        return color
    return ",".join(str(v) for v in color)


def _bitrate_text(bitrate: Any) -> Any:
    """A bitrate given as a number of bits per second (PyAV's ``bit_rate``) as the job's text ("5000000")."""
    return str(bitrate) if isinstance(bitrate, numbers.Real) and not isinstance(bitrate, bool) else bitrate


def _check_keywords(caller: str, given: Iterable[str], *accepting: Callable[..., Any]) -> None:
    """TypeError naming ``caller``, not the helper it forwards ``**options`` to, for a keyword none of
    ``accepting`` takes (a typo such as ``overwite=True`` read "model_and_inference() got ...")."""
    import difflib
    import inspect

    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)  # not **model_options itself
    known = sorted({p.name for f in accepting for p in inspect.signature(f).parameters.values() if p.kind in named})
    for name in given:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"{caller}() got an unexpected keyword argument {name!r}{hint}")


def _check_control(caller: str, segmenter: Any, progress: Any, on_start: Any, stop: Any) -> None:
    """TypeError naming ``caller``'s keyword for a run's hooks of the wrong kind: ``stop=True`` crashed every
    pipeline thread (a traceback each on stderr), ``segmenter="tiny"`` and ``progress="yes"`` ended in an AttributeError
    or TypeError from deep inside the run."""
    if segmenter is not None and not callable(getattr(segmenter, "predict", None)):  # no torch import to ask isinstance
        hint = f"; to name a model, pass model={segmenter!r}" if isinstance(segmenter, str) else ""
        raise TypeError(f"{caller}() segmenter must be a birefvid.Segmenter or None, got {type(segmenter).__name__}{hint}")
    if progress is not None and not isinstance(progress, bool) and not callable(progress):
        raise TypeError(f"{caller}() progress must be True, False, None or a function of the frame count, got {progress!r}")
    if on_start is not None and not callable(on_start):
        raise TypeError(f"{caller}() on_start must be a function of the frame total, or None, got {on_start!r}")
    if stop is not None and not (callable(getattr(stop, "is_set", None)) and callable(getattr(stop, "set", None))):
        raise TypeError(f"{caller}() stop must be a threading.Event or None, got {stop!r}")


# the keywords a ready Segmenter has fixed (batch_size it leaves to the run)
SEGMENTER_KEYWORDS = ("model", "weights", "backbone", "device", "precision", "resolution", "keep_aspect", "backend")


def _check_segmenter_keywords(caller: str, segmenter: Any, options: dict[str, Any]) -> None:
    """ConfigError naming the model keywords given beside a ready ``segmenter``: ``model="general"`` or
    ``resolution=512`` were silently ignored (the Segmenter's own ran) while the report's job named them."""
    import inspect

    if segmenter is None:
        return
    defaults = inspect.signature(model_and_inference).parameters
    given = [name for name in SEGMENTER_KEYWORDS if name in options and not _is_default(options[name], defaults[name].default)]
    if given:
        names = ", ".join(f"{name}=" for name in given)
        raise ConfigError(f"{caller}() got segmenter= and {names}, which the Segmenter has fixed; give them to "
                          f"birefvid.Segmenter(...) instead, or leave out segmenter=")


def _is_default(value: Any, default: Any) -> bool:
    """True for None or ``default``; an array (``resolution=np.array([512, 512])``) is a value given, not the
    ValueError its elementwise ``==`` made of the refusal."""
    if value is None or value is default:
        return True
    try:
        return bool(value == default)
    except (ValueError, TypeError):
        return False


def build_file_job(
    input: PathLike,
    output: PathLike,
    *,
    kind: OutputKind = "alpha",
    background: Optional[str] = None,
    key_color: str = KEY_COLOR,
    blur_sigma: float = BLUR_SIGMA,
    overlay_color: str = OVERLAY_COLOR,
    overlay_opacity: float = OVERLAY_OPACITY,
    foreground: bool = True,
    threshold: Optional[float] = None,
    grow: int = 0,
    feather: float = 0.0,
    invert: bool = False,
    min_area: float = 0.0,
    upsample: str = "bilinear",
    smooth: SmoothKind = "lookahead",
    smooth_window: int = 2,
    codec: Optional[str] = None,
    crf: Optional[int] = None,
    bitrate: Optional[str] = None,
    pix_fmt: Optional[str] = None,
    preset: Optional[str] = None,
    audio: bool = True,
    subtitles: bool = True,
    overwrite: bool = False,
    decoder: str = "pyav",
    fps: float = 25.0,
    start: Optional[float] = None,
    end: Optional[float] = None,
    max_size: Optional[int] = None,
    deinterlace: bool = True,
    video_stream: Optional[int] = None,
    input_colors: str = "auto",
    bit_depth: Union[str, int] = "auto",
    queue_size: int = 4,
    also: Iterable[Union[str, tuple[str, PathLike], OutputSpec]] = (),
    **model_options: Any,
) -> FileJob:
    """The ``FileJob`` that ``process_video`` with these keywords runs (validated).

    ``model_options`` are ``model_and_inference``'s: model, weights, backbone, device, precision,
    resolution, keep_aspect, batch_size. ``start`` / ``end`` (seconds from the first frame) process
    a part of the input, re-timed to start at 0 with its sound, subtitles and chapters;
    ``max_size`` scales the pictures down so the longer side is at most that many pixels;
    ``deinterlace=False`` keeps interlaced frames as decoded (combed) instead of deinterlacing them.
    ``video_stream=N``: a file's N-th video stream (``#N`` of the warning about several) instead of ffmpeg's choice.
    ``input_colors``: the YUV matrix of a video that names none (most H.264 from plain ffmpeg or x264): "auto" reads HD
    (1280 wide, or taller than 576) as BT.709 and smaller as BT.601, as players show them, "bt709" or "bt601"; its video
    outputs are tagged with it. A matrix the video names is kept.
    ``bit_depth``: "auto" keeps a 10-bit or deeper source's depth where the output's format holds it,
    8 works in 8 bits (faster), 16 composites at 16 bits whatever the source.
    ``min_area`` / ``threshold`` / ``grow`` / ``feather`` / ``invert`` shape the matte (see
    ``MatteSpec``): parts under ``min_area`` percent of the picture dropped, hard edge at alpha >=
    threshold, edge moved out by ``grow`` pixels (negative: in), softened over ``feather``, subject
    and background swapped; ``upsample="guided"`` fits the matte's edge to the picture's when it
    is brought from the inference size to the frame's.
    ``overlay_color`` / ``overlay_opacity``: for ``kind="overlay"``, the picture with the subject (alpha > 0.5)
    tinted in that colour at that strength (0 to 1) and its edge outlined in it.
    ``also``: more outputs from the same model pass, as ``(kind, path)`` pairs or ``"kind=path"``
    (``[("mask", "matte.mkv"), ("green", "preview.mp4")]``); they share the matte, smoothing and
    compositing keywords (``background`` goes to the composite ones) and take their kind's default
    encoder (the encoder keywords are ``output``'s); an ``OutputSpec`` is used as it is.
    """
    _check_keywords("build_file_job", model_options, build_file_job, model_and_inference)
    kind = output_kind(kind) if isinstance(kind, str) else kind  # RVM's "fgr", as the command line and also= take it
    model_spec, inference = model_and_inference(**model_options)
    matte = MatteSpec(threshold=threshold, grow=grow, feather=feather, invert=invert, min_area=min_area, upsample=upsample)
    shared = dict(key_color=_color_text(key_color), blur_sigma=blur_sigma, overlay_color=_color_text(overlay_color),
                  overlay_opacity=overlay_opacity, foreground=foreground, audio=audio, subtitles=subtitles,
                  overwrite=overwrite, bit_depth=bit_depth, matte=matte)  # fmt: skip
    backdrop = None if background is None else str(_color_text(background))
    extras = tuple(_extra_output(extra, backdrop, shared) for extra in ([also] if isinstance(also, str) else also))
    if backdrop is not None and kind != "composite" and extras:
        if not any(e.kind == "composite" for e in extras):
            raise ConfigError(f"{option('background')} is only used with {option('kind', 'composite')} or {option('also')} composite=PATH, "
                              f"not {option('kind', kind)}")  # fmt: skip
        backdrop = None  # the composite outputs are the extra ones
    return FileJob(
        source=SourceSpec(str(input), decoder=decoder, fps=fps, start=start, end=end, max_size=max_size, deinterlace=deinterlace,  # type: ignore[arg-type]
                          video_stream=video_stream, input_colors=input_colors),
        output=OutputSpec(
            str(output), kind=kind, background=backdrop, codec=codec, crf=crf, bitrate=_bitrate_text(bitrate), pix_fmt=pix_fmt,
            preset=preset, **shared,  # type: ignore[arg-type]
        ),
        model=model_spec,
        inference=inference,
        smoothing=SmoothingSpec(smooth, smooth_window),
        queue_size=queue_size,
        also=extras,
    ).validate()  # fmt: skip


def _extra_output(extra: Any, background: Optional[str], shared: dict[str, Any]) -> OutputSpec:
    """One of ``build_file_job``'s ``also``: an ``OutputSpec`` as it is, else ``(kind, path)`` or ``"kind=path"`` with the shared options."""
    from .job import parse_also

    if isinstance(extra, OutputSpec):
        return extra
    if isinstance(extra, str):
        kind, path = parse_also(extra)
    elif isinstance(extra, (tuple, list)) and len(extra) == 2:
        kind, path = parse_also(f"{extra[0]}={extra[1]}")
    else:
        raise ConfigError(f"{option('also')} takes (kind, path) pairs or 'kind=path' texts, e.g. [('mask', 'matte.mkv')], got {extra!r}")
    if kind == "composite" and background is None:
        raise ConfigError(f"{option('also')} composite={path} needs {option('background')} (a colour, an image or a video)")
    return OutputSpec(str(path), kind=kind, background=background if kind == "composite" else None, **shared)  # type: ignore[arg-type]


@once_a_run
def process_video(
    input: PathLike,
    output: PathLike,
    *,
    segmenter: Optional["Segmenter"] = None,
    progress: Union[bool, Callable[[int], None], None] = None,
    on_start: Optional[Callable[[Optional[int]], None]] = None,
    report_path: Optional[PathLike] = None,
    stop: Optional[threading.Event] = None,
    **options: Any,
) -> dict[str, Any]:
    """Cut the subject out of every frame of ``input`` and write ``output``; returns the run report.

    ``options`` are ``build_file_job``'s keywords (kind, model, weights, resolution, smooth,
    background, codec, overwrite, ...). Cheap checks run before the model loads; the output
    appears at ``output`` only when the whole run succeeds (Ctrl-C or a notebook's interrupt
    leaves none). ``progress=True`` shows a tqdm bar (a widget in Jupyter); a function
    ``progress(n)`` is called instead after each batch of n frames, from a worker thread, and
    ``on_start(total)`` once the input is open; setting ``stop`` abandons the run (no output).
    """
    from .runtime.file_job import run_file_job

    _check_keywords("process_video", options, build_file_job, model_and_inference)
    _check_control("process_video", segmenter, progress, on_start, stop)
    _check_segmenter_keywords("process_video", segmenter, options)
    job = build_file_job(input, output, **options)
    with _ProgressBar(progress, on_start) as bar:
        return run_file_job(job, segmenter=segmenter, report_path=report_path, control=bar.control(stop))


def iter_masks(
    input: PathLike,
    *,
    segmenter: Optional["Segmenter"] = None,
    smooth: SmoothKind = "none",
    smooth_window: int = 2,
    decoder: str = "pyav",
    fps: float = 25.0,
    start: Optional[float] = None,
    end: Optional[float] = None,
    max_size: Optional[int] = None,
    deinterlace: bool = True,
    video_stream: Optional[int] = None,
    input_colors: str = "auto",
    **model_options: Any,
) -> Iterator[tuple["np.ndarray", "np.ndarray"]]:
    """Each frame of a video (or image folder, glob) with its mask, in Python, no file written:
    ``(H×W×3 uint8 RGB, H×W float32 alpha in [0, 1])``, decoded and segmented a batch at a time.

    Memory stays bounded whatever the length: only the batch (and the frames a smoother holds back)
    are in memory. ``smooth``: "none" (default: each frame's own mask, as ``Segmenter`` gives) or
    ``process_video``'s "lookahead", "flow", "ema". The other keywords are ``process_video``'s
    (start, end, max_size, ...; model, resolution, device, batch_size, ...). Arguments are checked
    now; the file is opened and the model loaded at the first frame; leaving the loop closes the file.
    """
    _check_keywords("iter_masks", model_options, iter_masks, model_and_inference)
    _check_control("iter_masks", segmenter, None, None, None)
    _check_segmenter_keywords("iter_masks", segmenter, model_options)
    source = SourceSpec(str(input), decoder=decoder, fps=fps, start=start, end=end, max_size=max_size, deinterlace=deinterlace,  # type: ignore[arg-type]
                        video_stream=video_stream, input_colors=input_colors)
    smoothing = SmoothingSpec(smooth, smooth_window)
    model_spec, inference = model_and_inference(**model_options)
    for spec in (source, smoothing, model_spec, inference):
        check_types(spec)
        spec.validate()
    return _masks(source, smoothing, model_spec, inference, segmenter)


def _masks(
    spec: SourceSpec, smoothing: SmoothingSpec, model: ModelSpec, inference: InferenceSpec, segmenter: Optional["Segmenter"]
) -> Iterator[tuple["np.ndarray", "np.ndarray"]]:
    """``iter_masks``' generator: the frames held until the smoother gives their masks, one batch decoded at a time."""
    import contextlib
    import sys
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import torch

    from . import exiting
    from .caller import run_handed
    from .compose.compositor import fit_alphas
    from .errors import in_caller_context
    from .frames import Frame
    from .io import open_source
    from .io.hdr import SdrForModel, hdr_transfer
    from .io.scale import ScaledSource
    from .io.trim import TrimmedSource, starts_off_zero
    from .io.video_source import refuse_cut_off, refuse_skipped
    from .runtime.file_job import segmenter_for
    from .temporal import make_smoother

    with contextlib.ExitStack() as stack:  # closed when the loop ends, breaks or raises (KeyboardInterrupt included)
        new_run()  # a loop is a run: what it warns once, a notebook's next loop warns again (not held: see new_run)
        source = stack.enter_context(open_source(spec.input, spec.decoder, fps=spec.fps, deinterlace=spec.deinterlace,
                                                       video_stream=spec.video_stream, input_colors=spec.input_colors))
        refuse_cut_off(source, spec.end)  # as process_video: before the first frame
        refuse_skipped(source, spec.start, spec.end)
        if spec.trimmed or starts_off_zero(source):  # as process_video: the same frames, from the same first one
            source = stack.enter_context(TrimmedSource(source, spec.start or 0.0, spec.end))
        if spec.max_size is not None:
            source = stack.enter_context(ScaledSource(source, spec.max_size))
        if hdr_transfer(source.info) is not None:  # the model sees HDR video as SDR (the pictures come as decoded)
            source = stack.enter_context(SdrForModel(source))
        seg = segmenter or segmenter_for(model, inference)
        # the model runs on a thread of its own, as process's does: on the caller's thread, with its own
        # OpenMP team the only one, libgomp spun ~300k times at every wait (it throttles its spinning only
        # when teams outnumber the cores), and on a busy 2-core CPU a frame took 5-10x the CPU and time
        model_threads: list[threading.Thread] = []
        model_thread = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="birefvid-segment",
                                                              initializer=lambda: model_threads.append(threading.current_thread())))
        predict = in_caller_context(seg.predict)
        batch_size = inference.batch_size or seg.file_batch_size(source.info.height, source.info.width)
        smoother = make_smoother(smoothing.kind, **smoothing.smoother_options())
        # frames whose masks the smoother still holds back, with their own alpha (None: opaque)
        waiting: deque[tuple[np.ndarray, Optional[np.ndarray]]] = deque()

        def masked(alphas: torch.Tensor) -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for alpha in alphas:
                image, coverage = waiting.popleft()
                mask = fit_alphas(alpha[None], image.shape[:2])[0, 0].cpu().numpy()
                if coverage is not None:  # what the source hides is no subject, as process's outputs have it
                    mask = mask * (coverage.astype(np.float32) / 255.0)
                yield image, mask

        def segment(frames: list[Frame]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
            seen = [f.image if f.seen is None else f.seen for f in frames]
            images = torch.from_numpy(np.stack(seen)).permute(0, 3, 1, 2)
            waiting.extend((f.image, f.coverage) for f in frames)
            # at the inference size: smoothed there, then upsampled once; handed from this frame, so that the
            # model's warnings name the loop's line, as on the caller's thread
            handed = model_thread.submit(run_handed, sys._getframe(), predict, images, frame_size=False)
            try:
                alphas = handed.result()
            except BaseException:  # Ctrl-C in the wait: leaving joins the model thread, so end a first export it waits on
                for thread in model_threads:
                    exiting.end_children_of(thread)
                raise
            return masked(smoother.push(alphas, images.to(alphas.device)))

        batch: list[Frame] = []
        for frame in source:
            batch.append(frame)
            if len(batch) == batch_size:
                yield from segment(batch)
                batch = []
        if batch:
            yield from segment(batch)
        yield from masked(smoother.flush())


@once_a_run
def run_job(job: FileJob, *, report_path: Optional[PathLike] = None, **control: Any) -> dict[str, Any]:
    """Run a prepared ``FileJob`` (from ``build_file_job``, the CLI, or ``FileJob.from_json``).

    ``control`` takes ``process_video``'s segmenter, progress (True for a bar), on_start and stop.
    """
    from .runtime.file_job import run_file_job

    segmenter = control.pop("segmenter", None)
    _check_control("run_job", segmenter, control.get("progress"), control.get("on_start"), control.get("stop"))
    with _ProgressBar(control.pop("progress", None), control.pop("on_start", None)) as bar:
        return run_file_job(job, segmenter=segmenter, report_path=report_path, control=bar.control(**control))


class _ProgressBar:
    """``progress=True``: a tqdm bar (a widget in Jupyter with ipywidgets, see ``progress_bar``) opened once the frame count is known
    and closed when the run ends, however it ends; any other ``progress`` (a function or None) is passed on."""

    def __init__(self, progress: Union[bool, Callable[[int], None], None], on_start: Optional[Callable[[Optional[int]], None]]) -> None:
        self.wanted = progress is True
        self.progress = None if isinstance(progress, bool) else progress
        self.on_start = on_start
        self._bar: Any = None
        self._first_batch = True

    def __enter__(self) -> "_ProgressBar":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def _started(self, total: Optional[int]) -> None:
        from .progress_bar import tqdm_class

        self._bar = tqdm_class()(total=total, unit="frame", dynamic_ncols=True)
        if self.on_start is not None:
            self.on_start(total)

    def control(self, stop: Optional[threading.Event] = None) -> Any:
        """The ``RunControl`` with these progress hooks and ``stop``."""
        from .runtime.file_job import RunControl

        if not self.wanted:
            return RunControl(progress=self.progress, on_start=self.on_start, stop=stop)
        return RunControl(progress=self._advance, on_start=self._started, stop=stop)

    def _advance(self, n: int) -> None:
        from .progress_bar import update_leaving_out_the_time_so_far

        if self._first_batch:  # its time, mostly the model's warm-up, left out of the rate and ETA
            self._first_batch = False
            update_leaving_out_the_time_so_far(self._bar, n)
        else:
            self._bar.update(n)


def build_live_job(
    source: Union[str, int],
    sinks: Union[PathLike, list[PathLike], tuple[PathLike, ...]],
    *,
    effect: str = "blur",
    background: Optional[str] = None,
    key_color: str = KEY_COLOR,
    blur_sigma: float = BLUR_SIGMA,
    overlay_color: str = OVERLAY_COLOR,
    overlay_opacity: float = OVERLAY_OPACITY,
    foreground: bool = False,
    threshold: Optional[float] = None,
    grow: int = 0,
    feather: float = 0.0,
    invert: bool = False,
    min_area: float = 0.0,
    upsample: str = "bilinear",
    latency_budget_ms: Optional[float] = None,
    smooth: str = "flow",
    carry: bool = True,
    model_fps: Optional[float] = None,
    realtime: bool = False,
    loop: bool = False,
    max_retries: Optional[int] = None,
    open_timeout: float = 5.0,
    read_timeout: float = 5.0,
    duration: Optional[float] = None,
    stats_every: float = 5.0,
    overwrite: bool = False,
    record_preset: Optional[str] = None,
    audio: bool = True,
    camera_size: Optional[str] = None,
    camera_fps: Optional[float] = None,
    record_segment: Optional[float] = None,
    audio_device: Optional[str] = None,
    audio_delay: float = 0.0,
    deinterlace: bool = True,
    mirror_preview: Optional[bool] = None,
    video_stream: Optional[int] = None,
    input_colors: str = "auto",
    **model_options: Any,
) -> LiveJob:
    """The ``LiveJob`` for a camera index, device, stream URL or file, and one or more sinks (validated).

    ``effect="none"`` starts with the camera's picture as it is, the model running so that a switch to
    blur, green (or replace, given a ``background``) shows at once.
    ``mirror_preview`` flips the window's and the preview page's picture left-right, as call apps show a
    self-view, never what is sent or recorded; None (default): mirrored when the source is a camera.

    ``model_options`` are ``model_and_inference``'s (model, weights, resolution, device, ...).
    ``record_preset`` is the encoder speed preset of file sinks (default x264/x265 ``veryfast``);
    ``audio=False`` leaves the source's sound out of recordings and streams.
    ``camera_size`` ("1280x720") and ``camera_fps`` ask a camera for its picture size and rate.
    ``record_segment`` (seconds) splits recordings into files that long, each kept as soon as it is complete.
    ``audio_device`` ("default", "alsa:hw:1,0", ...) records a microphone with a camera, ``audio_delay`` s later.
    ``deinterlace=False`` keeps an interlaced stream's or file's frames as decoded (combed).
    ``video_stream=N``: a file's N-th video stream (``#N`` of the warning about several) instead of ffmpeg's choice; files only.
    ``input_colors``: the YUV matrix of a file or stream that names none, as ``build_file_job``'s.
    ``min_area`` / ``threshold`` / ``grow`` / ``feather`` / ``invert`` / ``upsample`` shape the matte as in ``build_file_job``.
    Without a ``resolution`` the inference size adapts to ``latency_budget_ms`` (default 250), never under 128²
    (a machine too busy even there keeps 128² and logs one warning; the mask refreshes less often).
    ``model_fps`` caps the mask refreshes a second (a laptop on battery, a shared CPU); the frames between carry the last mask.
    """
    _check_keywords("build_live_job", model_options, build_live_job, model_and_inference)
    model_spec, inference = model_and_inference(**model_options)
    if latency_budget_ms is None and inference.resolution is None:
        latency_budget_ms = DEFAULT_LATENCY_BUDGET_MS  # a model's native size (1024² for most) is no live size on a CPU
    return LiveJob(
        source=LiveSourceSpec(str(source), realtime=realtime, loop=loop, open_timeout=open_timeout,
                              read_timeout=read_timeout, max_retries=max_retries, camera_size=camera_size, camera_fps=camera_fps,
                              audio_device=audio_device, audio_delay=audio_delay, deinterlace=deinterlace, video_stream=video_stream,
                              input_colors=input_colors),
        sinks=(str(sinks),) if isinstance(sinks, (str, Path)) else tuple(sinks),  # one Path, as process_video takes its output
        effect=EffectSpec(effect, background=_color_text(background), key_color=_color_text(key_color), blur_sigma=blur_sigma,  # type: ignore[arg-type]
                          overlay_color=_color_text(overlay_color), overlay_opacity=overlay_opacity,
                          foreground=foreground, matte=MatteSpec(threshold=threshold, grow=grow, feather=feather, invert=invert, min_area=min_area,
                                                                          upsample=upsample)),
        model=model_spec,
        inference=inference,
        smoothing=SmoothingSpec(smooth),  # type: ignore[arg-type]
        latency_budget_ms=latency_budget_ms, duration=duration, carry=carry, model_fps=model_fps, stats_every=stats_every, overwrite=overwrite,
        record_preset=record_preset, record_segment=record_segment, audio=audio, mirror_preview=mirror_preview,
    ).validate()  # fmt: skip


@once_a_run
def run_live(
    job: LiveJob,
    *,
    segmenter: Optional["Segmenter"] = None,
    stats_json: Optional[PathLike] = None,
    printer: Optional[Callable[[str], None]] = None,
    stop: Optional[threading.Event] = None,
    on_effects: Optional[Callable[["EffectSwitch"], None]] = None,
) -> dict[str, Any]:
    """Run a ``LiveJob`` until its duration passes, the source ends, ``stop`` is set or Ctrl-C; returns the report.

    ``on_effects(switch)`` is called once before the model loads: ``switch.select("none")`` (or "blur",
    "green", "replace" with a background) from any thread switches the effect while the run goes on.
    """
    from .runtime.live import run_live_job

    _check_control("run_live", segmenter, None, None, stop)  # stop=True was an AttributeError once the source was open
    for name, hook in (("printer", printer), ("on_effects", on_effects)):
        if hook is not None and not callable(hook):
            raise TypeError(f"run_live() {name} must be a function or None, got {hook!r}")
    return run_live_job(job, segmenter=segmenter, stats_json=None if stats_json is None else str(stats_json), printer=printer, stop=stop,
                        on_effects=on_effects)  # fmt: skip


# camera frames dropped beyond this share of a run earn a hint saying what costs less
DROPPED_SHARE_HINT = 0.05
# a camera picture larger than this is worth asking smaller (--camera-size) when frames are dropped
SMALL_CAMERA = (640, 480)


def live_hint(report: dict[str, Any]) -> Optional[str]:
    """Advice when a live run dropped camera frames (its machine could not keep up), else None.

    Every shown frame costs the display path the mask carry along optical flow (~8 ms of one core), and
    a recording its encoder (x264 ``veryfast`` ~17 ms a 1080p frame); on one loaded core a 720p camera
    lost 27% of its frames with the carry and 1% without it (docs/live.md, "On a weak laptop").
    """
    s = report["stats"]
    # frames dropped while a reconnect's or a file loop's first picture waited for its mask say nothing of the CPU
    dropped = (s.get("dropped") or 0) - (s.get("dropped_for_new_connections") or 0)
    shown = s.get("frames_shown") or 0
    if not dropped or dropped < DROPPED_SHARE_HINT * (dropped + shown):
        return None
    job = report["job"]
    cheaper = []
    if job.get("carry", True):
        cheaper.append(f"{option('carry', False)} (the mask is not moved along optical flow to every frame)")
    if (job.get("effect") or {}).get("foreground"):
        cheaper.append(f"leaving out {option('foreground')}")
    if not job.get("record_preset") and any(is_recording(sink) for sink in report["sinks"]):
        cheaper.append(f"{option('record_preset', 'superfast')} or ultrafast for the recording (larger files)")
    width, height = report.get("width") or 0, report.get("height") or 0
    if width * height > SMALL_CAMERA[0] * SMALL_CAMERA[1] and is_camera_spec(str(report.get("source", ""))):
        cheaper.append(f"a smaller camera picture ({option('camera_size', 'x'.join(map(str, SMALL_CAMERA)))})")
    if not cheaper:
        cheaper.append("closing other busy programs, or a smaller picture from the source")
    share = dropped / (dropped + shown)
    return f"{dropped} camera frames ({share:.0%}) were dropped: this CPU could not keep up; try " + ", or ".join(cheaper)


NEVER_WORKED = "no connection worked in the whole run"  # a stream's line in live_stream_problems: the CLI's exit 2


def live_stream_problems(report: dict[str, Any]) -> list[str]:
    """A line for each network output that never worked in the run (a refused stream key, a wrong
    address, a server down throughout), or whose end failed (an RTMP sender's non-zero exit): the run
    itself went on, so only its end says so plainly."""
    never = [
        f"{s['sink']}: {NEVER_WORKED}: nothing was streamed"
        + (f" (last error: {s['last_error']})" if s.get("last_error") else "")
        for s in report.get("streams", ())
        if not s.get("taken")
    ]
    ended = [f"{s['sink']}: {s['end_error']}" for s in report.get("streams", ()) if s.get("taken") and s.get("end_error")]
    return never + ended


def _or_dash(value: Any) -> str:
    """A figure of the summary line, ``-`` where the report has none (a report of an older version, or built by hand)."""
    return "-" if value is None else str(value)


def _recordings_said(recorded: dict[str, list[str]]) -> str:
    """``; recorded a.webm and b.mp4`` for the summary line: each sink's recording by name, a segmented sink's parts
    as their range (``3 files (gate-1.mkv to gate-3.mkv)``), so two sinks never read as a range of files; "" for none."""
    said = [kept[0] if len(kept) == 1 else f"{len(kept)} files ({kept[0]} to {kept[-1]})" for kept in recorded.values() if kept]
    if not said:
        return ""
    return "; recorded " + (said[0] if len(said) == 1 else f"{', '.join(said[:-1])} and {said[-1]}")


def live_summary(report: dict[str, Any]) -> str:
    """One line of a live run's report: ``live: showed N frames in S s (output, source and model fps,
    latency and mask age median/p95); ended: duration; recorded rec.mp4``, the files kept named, as `process` names
    its output (the line said nothing of them)."""
    from .runtime.live_stats import capped, rate

    s = report["stats"]
    recorded = _recordings_said(report.get("recorded") or {})
    if not report["frames_shown"]:  # the window closed during the warm-up: no figures to give
        return f"live: showed no picture; ended: {report['ended_by']} before the first picture{recorded}"
    return (
        f"live: showed {report['frames_shown']} frames in {s['seconds']:.1f} s ({s['output_fps']:.1f} fps, "
        f"source {s['source_fps']:.1f} fps, model {rate(s.get('model_fps'))} fps"
        f"{capped(s.get('model_fps_cap'))}, latency {s['latency_ms_median']}/"
        f"{s['latency_ms_p95']} ms median/p95, mask age {_or_dash(s.get('mask_age_ms_median'))}/"
        f"{_or_dash(s.get('mask_age_ms_p95'))} ms median/p95); ended: {report['ended_by']}{recorded}"
    )
