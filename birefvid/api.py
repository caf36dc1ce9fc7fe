"""One-call facades over the staged pipeline: ``process_video(input, output, **options)``."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Union

from .compose.compositor import OUTPUT_KINDS, SINK_KIND, Compositor
from .errors import ConfigError, SinkError
from .runtime.segmenter import Segmenter

log = logging.getLogger(__name__)

PathLike = Union[str, Path]


def _check_options(output: str, batch_size: Optional[int], queue_size: int, smooth: str) -> None:
    if output not in OUTPUT_KINDS:
        raise ConfigError(f"unknown --output {output!r}; expected one of {', '.join(OUTPUT_KINDS)}")
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    if queue_size < 1:
        raise ConfigError(f"queue size must be at least 1, got {queue_size}")
    if smooth not in ("none", "ema", "lookahead"):
        raise ConfigError(f"unknown --smooth {smooth!r}; expected none, ema or lookahead")


def process_video(
    input: PathLike,
    output: PathLike,
    *,
    kind: Literal["alpha", "mask", "green", "composite", "blur"] = "alpha",
    model: Optional[str] = None,
    weights: Optional[PathLike] = None,
    backbone: Optional[str] = None,
    device: str = "auto",
    precision: str = "auto",
    resolution: Union[int, str, None] = None,
    keep_aspect: bool = False,
    segmenter: Optional[Segmenter] = None,
    background: Optional[str] = None,
    key_color: str = "#00ff00",
    blur_sigma: float = 16.0,
    foreground: bool = True,
    smooth: Literal["none", "ema", "lookahead"] = "lookahead",
    smooth_window: int = 2,
    batch_size: Optional[int] = None,
    codec: Optional[str] = None,
    crf: Optional[int] = None,
    bitrate: Optional[str] = None,
    pix_fmt: Optional[str] = None,
    audio: bool = True,
    overwrite: bool = False,
    decoder: Literal["pyav", "decord"] = "pyav",
    fps: float = 25.0,
    queue_size: int = 4,
    progress: Optional[Callable[[int], None]] = None,
    on_start: Optional[Callable[[Optional[int]], None]] = None,
    report_path: Optional[PathLike] = None,
    stop: Optional[threading.Event] = None,
) -> dict[str, Any]:
    """Cut the subject out of every frame of ``input`` and write ``output``; returns a run report.

    Cheap checks (input readable, output writable, background present) run before the model
    loads. The output appears at ``output`` only when the whole run succeeds.
    """
    from .io import open_sink, open_source
    from .compose import open_background, parse_color
    from .runtime.device import pick_device
    from .runtime.video_job import run_video_job
    from .temporal import make_smoother

    _check_options(kind, batch_size, queue_size, smooth)
    if kind != "composite" and background is not None:
        raise ConfigError("--background is only used with --output composite")
    if kind == "composite" and background is None:
        raise ConfigError("--output composite needs --background (a colour, an image or a video)")
    if report_path is not None and not Path(report_path).resolve().parent.is_dir():
        raise SinkError(f"report folder does not exist: {Path(report_path).resolve().parent}")
    key_color = "#%02x%02x%02x" % parse_color(key_color)  # a bad colour fails before any work
    smoother = make_smoother(smooth, **({"window": smooth_window} if smooth == "lookahead" else {}))
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(open_source(input, decoder, fps=fps))
        info = source.info
        sink = open_sink(
            output, kind=SINK_KIND[kind], info=info, codec=codec, crf=crf, bitrate=bitrate, pix_fmt=pix_fmt,
            audio_from=input if audio else None, audio=audio, overwrite=overwrite,
        )  # fmt: skip
        stack.enter_context(sink)  # exception -> abort (temp output removed), success -> commit
        target_device = segmenter.device if segmenter is not None else pick_device(device)
        bg = None
        if kind == "composite":  # opened before the model loads: a missing file fails in a second
            bg = stack.enter_context(open_background(str(background), (info.width, info.height), target_device))
        seg = segmenter or Segmenter(
            model, weights=None if weights is None else str(weights), backbone=backbone,
            device=str(target_device), precision=precision, resolution=resolution, keep_aspect=keep_aspect,
        )  # fmt: skip
        compositor = Compositor(kind, foreground=foreground, key=key_color, blur_sigma=blur_sigma, background=bg)
        batch = batch_size or (4 if seg.device.type == "cuda" else 1)
        if on_start is not None:
            on_start(info.frame_count)
        frames, times, wall = run_video_job(
            source, sink, seg, smoother, compositor, batch_size=batch, queue_size=queue_size, progress=progress, stop=stop
        )
    report = {
        "input": str(input),
        "output": str(output),
        "frames": frames,
        "wall_seconds": round(wall, 3),
        "fps": round(frames / wall, 3) if wall > 0 else None,
        "stage_seconds": {k: round(v, 3) for k, v in times.busy.items()},
        "settings": {
            "output": kind, "model": seg.name, "backbone": seg.backbone, "device": str(seg.device),
            "precision": str(seg.dtype).removeprefix("torch."), "resolution": list(seg.resolution),
            "keep_aspect": seg.keep_aspect, "batch_size": batch, "smooth": smooth,
            "smooth_window": smooth_window if smooth == "lookahead" else None, "foreground": foreground,
            "background": background, "key_color": key_color if kind == "green" else None,
            "codec": codec, "crf": crf, "bitrate": bitrate, "pix_fmt": pix_fmt, "audio": audio, "decoder": decoder,
        },  # fmt: skip
    }
    if report_path is not None:
        Path(report_path).write_text(json.dumps(report, indent=2) + "\n")
    return report
