"""One description of a job: what to read, which model, how to run it, how to smooth, what to write.

The CLI, ``birefvid.api``, ``live`` and ``batch`` all build these frozen dataclasses, call
``validate()`` once (cheap checks, before any file is opened or model loaded), hand the job to a
runner, and write ``to_dict()`` into the run report. A job round-trips through JSON unchanged,
so a report says exactly how to repeat a run and a remote worker can receive the same object.

This module imports nothing heavy (no torch), so building a job costs nothing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import stat
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Optional, TypeVar, Union, get_args

from .colors import is_color, parse_color
from .errors import ConfigError, option, sink_named
from .file_names import name_too_long, only_an_extension
from .urls import shown_url

OutputKind = Literal["alpha", "mask", "foreground", "green", "composite", "blur", "overlay"]
OUTPUT_KINDS: tuple[str, ...] = get_args(OutputKind)
# RobustVideoMatting's names for the same pictures (its fgr and pha files), so its users' habit works
KIND_ALIASES: dict[str, str] = {"fgr": "foreground", "pha": "mask"}
SmoothKind = Literal["none", "ema", "flow", "lookahead"]
SMOOTH_KINDS: tuple[str, ...] = get_args(SmoothKind)
Decoder = Literal["pyav", "decord"]
DECODERS: tuple[str, ...] = get_args(Decoder)
INPUT_COLORS = ("auto", "bt709", "bt601")  # --input-colors: the matrix of a video that names none (io.untagged)
Precision = Literal["auto", "fp32", "fp16", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
Backend = Literal["auto", "torch", "torch-compile", "openvino", "onnxruntime"]
BACKENDS: tuple[str, ...] = get_args(Backend)

# the backbones BiRefNet is published with (birefvid.models builds them; tests check the two agree)
BACKBONE_NAMES: tuple[str, ...] = ("swin_v1_t", "swin_v1_s", "swin_v1_b", "swin_v1_l", "pvt_v2_b0", "pvt_v2_b1", "pvt_v2_b2", "pvt_v2_b5")

# BiRefNet also runs a half-resolution pass, and PVT's 8x8 spatial-reduction conv then needs
# sides of at least 64 px at the input.
MIN_SIDE = 64
SCHEMA = "birefvid.job/1"


def parse_resolution(value: Union[int, str, typing.Sequence[int], None]) -> Optional[tuple[int, int]]:
    """``1024`` / ``"1024"`` / ``"768x432"`` / ``(w, h)`` -> (width, height), multiples of 32."""
    if value is None:
        return None
    try:
        if isinstance(value, str):
            parts = [int(p) for p in value.lower().replace(",", "x").split("x")]
        elif isinstance(value, bool):
            raise ValueError
        elif isinstance(value, numbers.Integral):  # NumPy's too: np.int64(512) was "not N or WxH"
            parts = [int(value)]
        else:
            parts = [int(p) for p in value]
        width, height = (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])
        if len(parts) > 2:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"resolution {value!r} is not N or WxH (e.g. 1024 or 768x432)") from None
    if width < MIN_SIDE or height < MIN_SIDE or width % 32 or height % 32:
        raise ConfigError(f"resolution {width}x{height} must be multiples of 32 and at least {MIN_SIDE} (e.g. 512, 1024, 768x448)")
    return width, height


def _one_of(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"unknown {option(name)} {value!r}; expected one of {', '.join(allowed)}")


def check_path_given(path: object, what: str) -> None:
    """ConfigError for an empty path (an unset shell variable, ``"$IN"``): it meant the current folder, whose pictures
    were read as an image sequence, or into which the outputs were written."""
    if not str(path).strip():
        raise ConfigError(f"the {what} path is empty (an unset shell variable?); name a file or folder, or . for the current folder")


def refuse_standard_streams(inputs: Iterable[object] = (), out: object = None, *, save: str = " (ffmpeg -i - -c copy in.mkv)",
                            name: str = "a file (-o out.mkv)") -> None:
    """ConfigError for ``-`` as an input or as an output, in the same words from process and batch (``save``: how to
    keep a piped input, ``name``: an output to name instead): they said it in different ways, batch not even which one was
    wrong. ``image`` reads ``-`` and writes ``-o -`` itself (``commands.image_stdio``); it uses this for named pipes."""
    if any(str(i) == "-" for i in inputs):  # else "input not found: -"
        raise ConfigError("reading from standard input (-) is not supported: inputs are read from named files (a video more than "
                          f"once: its length, sound and subtitles); save the stream to a file first{save} and name that")  # fmt: skip
    piped = next((i for i in inputs if _is_pipe(i)), None)
    if piped is not None:  # a second open of a named pipe (or /dev/stdin) waits for a writer: the run hung without a word
        raise ConfigError(f"{piped} is a pipe, and inputs are read more than once (a video's length, sound and subtitles); "
                          f"save the stream to a file first{save} and name that")  # fmt: skip
    if out is not None and str(out) == "-":  # else taken for a folder named "-"; "(-)": it may be --also's, not -o's
        raise ConfigError("writing to standard output (-) is not supported: an output is written under a temporary "
                          f"name and renamed when complete; name {name} and read that")  # fmt: skip
    if out is not None and _is_pipe(out):  # --overwrite renamed a file over the pipe, its reader left waiting; without, 'output exists'
        raise ConfigError(f"{out} is a pipe, and an output is written under a temporary name and renamed when complete "
                          f"(it would replace the pipe, not write into it); name {name} and read that")  # fmt: skip


def refuse_piped_background(background: Optional[str]) -> None:
    """ConfigError for a named pipe as ``--background``: a background is opened more than once (a video again at each
    loop), and a pipe was said to be 'not found'."""
    if background is not None and not is_color(background) and _is_pipe(background):
        raise ConfigError(f"background {background} is a pipe, and a background is read more than once (a video again "
                          "at each loop); save it to a file first and name that")  # fmt: skip


def _is_pipe(path: object) -> bool:
    """Whether ``path`` names a pipe (``mkfifo``, ``/dev/stdin`` fed by ``|``): readable once only."""
    try:
        return stat.S_ISFIFO(os.stat(str(path)).st_mode)
    except (OSError, ValueError):  # not there (said later, as 'not found'), a URL, a glob, a NUL byte
        return False


def check_blur_sigma(sigma: float) -> None:
    """A blur strength in pixels: positive and finite (inf ended in a traceback once the model had loaded)."""
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0 < sigma < math.inf:
        raise ConfigError(f"{option('blur_sigma')} must be a positive number of pixels (e.g. 16), got {sigma!r}")


def check_key_color(color: str) -> None:
    """The green screen's key is a colour; its error names the option, as ``--overlay-color``'s does: "not a colour"
    alone left a run given a key, an overlay colour and a background to guess which was wrong."""
    try:
        parse_color(color)
    except ConfigError as e:
        raise ConfigError(f"{option('key_color')}: {e}") from None


def check_overlay(color: str, opacity: float) -> None:
    """The overlay's tint: a colour, and an opacity from 0 (the contour alone) to 1 (the subject painted over)."""
    try:
        parse_color(color)
    except ConfigError as e:
        if "has alpha" in str(e):  # #ff000080 read as "red at half strength": say which option that is
            raise ConfigError(f"{option('overlay_color')} {color!r} has an alpha; give the colour opaque and its strength as "
                              f"{option('overlay_opacity')} (0 to 1, default {OVERLAY_OPACITY:g})") from None
        raise ConfigError(f"{option('overlay_color')}: {e}") from None
    if isinstance(opacity, bool) or not isinstance(opacity, (int, float)) or not 0 <= opacity <= 1:
        raise ConfigError(f"{option('overlay_opacity')} is the tint's strength from 0 (the outline alone) to 1 (opaque), "
                          f"e.g. 0.5, got {opacity!r}")  # fmt: skip


def check_output_options(kind: str, has_background: bool) -> None:
    """The output kind exists, and a background is given exactly when compositing over one."""
    _one_of("kind", kind, OUTPUT_KINDS)
    if kind == "composite" and not has_background:
        raise ConfigError(f"{option('kind', 'composite')} needs {option('background')} (a colour, an image or a video)")
    if kind != "composite" and has_background:
        raise ConfigError(f"{option('background')} is only used with {option('kind', 'composite')}, not {option('kind', kind)}")


@dataclass(frozen=True)
class ModelSpec:
    """Which network and weights: a registry name or HF repo, or a local checkpoint (+ backbone)."""

    model: Optional[str] = None
    weights: Optional[str] = None
    backbone: Optional[str] = None

    def validate(self) -> None:
        if self.model and self.weights:
            raise ConfigError(f"use either {option('model')} or {option('weights')}, not both")
        if self.backbone is not None:
            _one_of("backbone", self.backbone, BACKBONE_NAMES)

    def local_files(self) -> list[str]:
        """The local checkpoint files the weights are read from (``--weights``, or ``--model`` naming a file or a
        snapshot folder: the one checkpoint in it the loader picks), so a report option naming one is refused: ``bench
        --weights w.safetensors --json w.safetensors`` replaced the checkpoint with its figures and exited 0. Only what
        the loader reads: a registry name (``--model tiny`` beside a folder called tiny/) or Hugging Face repo reads
        nothing here, and a report kept beside the checkpoint in its folder (or the thousands of files of a git clone)
        is not the model's."""
        from .errors import WeightsNotFoundError
        from .models.names import WEIGHTS_FILE_SUFFIXES, local_checkpoint, weights_in_folder  # no torch: checked before any work

        path = local_checkpoint(self.model, self.weights)  # the loader's own choice of card, folder or file
        if path is None or not path.exists():
            return []
        if not path.is_dir():
            return [str(path)]
        try:
            return [str(weights_in_folder(path))]
        except WeightsNotFoundError:  # none, or several to choose from: the load refuses; a report still keeps them all
            return [entry.path for entry in os.scandir(path) if entry.name.lower().endswith(WEIGHTS_FILE_SUFFIXES) and entry.is_file()]


@dataclass(frozen=True)
class InferenceSpec:
    """How the model runs: device, precision, inference size (width, height), batch size and backend."""

    device: str = "auto"
    precision: Precision = "auto"
    resolution: Optional[tuple[int, int]] = None
    keep_aspect: bool = False
    batch_size: Optional[int] = None  # None: Segmenter.file_batch_size (4 on CUDA, 2 with OpenVINO on a CPU of 2+ cores, else 1)
    backend: Backend = "auto"  # auto: OpenVINO on x86 CPUs, PyTorch elsewhere

    def __post_init__(self) -> None:  # normalise "512" / 512 / [512, 512] to (512, 512)
        object.__setattr__(self, "resolution", parse_resolution(self.resolution))

    def validate(self) -> None:
        _one_of("precision", self.precision, PRECISIONS)
        _one_of("backend", self.backend, BACKENDS)
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"{option('batch_size')} must be at least 1, got {self.batch_size}")


# lookahead's median removes flicker, a matte wrong for a frame or two (±2 is the default; ±3 gained 1-4 points of shimmer
# for 50 % more flow work). ±12 frames is half a second each side at 24 fps: past that the masks it overrules are the
# subject moving (a hand raised briefly), not flicker, and 2 x 12 + 1 whole frames wait in memory (a 4K 16-bit frame: 75 MB)
MAX_SMOOTH_WINDOW = 12


@dataclass(frozen=True)
class SmoothingSpec:
    """Temporal mask smoothing: ``lookahead`` (centred median over ±window frames aligned along optical
    flow), ``flow`` (the previous mask carried along optical flow, then blended), ``ema`` or ``none``."""

    kind: SmoothKind = "lookahead"
    window: int = 2

    def validate(self) -> None:
        if self.kind not in SMOOTH_KINDS:
            raise ConfigError(f"unknown {option('smooth')} {self.kind!r}; expected one of {', '.join(SMOOTH_KINDS)}")
        if isinstance(self.window, bool) or not isinstance(self.window, int) or not 0 <= self.window <= MAX_SMOOTH_WINDOW:
            raise ConfigError(f"{option('smooth_window')} is the frames on each side of the median, 0 to {MAX_SMOOTH_WINDOW}, got {self.window!r} "
                              f"(it holds 2 x window + 1 frames in memory; past half a second it smooths away movement, not flicker)")  # fmt: skip
        if self.kind != "lookahead" and self.window != SmoothingSpec.window:  # the API took smooth_window=5 with "flow", said so in its report, and used none
            raise ConfigError(f"{option('smooth_window')} is only used with {option('smooth')} lookahead, not {option('smooth')} {self.kind}")

    def smoother_options(self) -> dict[str, Any]:
        """Keyword options of ``make_smoother`` for this kind.

        Chosen from ``scripts/bench_temporal.py``: every smoother restarts at scene cuts (0.15, the
        flow smoother's own default), and lookahead carries its neighbours onto the centre frame
        along optical flow, without which it cost 10 IoU points on a fast subject.
        """
        if self.kind == "none":
            return {}
        options: dict[str, Any] = {"scene_cut_threshold": SCENE_CUT_THRESHOLD}
        if self.kind == "lookahead":
            options.update(window=self.window, warp=True)
        return options


@dataclass(frozen=True)
class SourceSpec:
    """The input: a video file, a folder of images or a glob; ``fps`` times an image sequence;
    ``start`` / ``end``: the part to process, in seconds from the first frame (None: from the
    beginning / to the end); ``max_size``: the longest side of the output, scaled down to it;
    ``deinterlace``: make interlaced frames progressive first (PyAV decoder; see ``io.deinterlace``);
    ``video_stream``: the N-th video stream of a file with several (None: the one ffmpeg would convert);
    ``input_colors``: the YUV matrix a video that names none is read with, ``auto`` (HD as BT.709, SD as BT.601, as
    players show them), ``bt709`` or ``bt601`` (``io.untagged``); kept in ``to_dict()`` at its default too, so a batch
    started before it redoes the videos it changes."""

    input: str
    decoder: Decoder = "pyav"
    fps: float = 25.0
    start: Optional[float] = None
    end: Optional[float] = None
    max_size: Optional[int] = None  # scale the pictures down so the longer side is at most this (px)
    deinterlace: bool = True
    video_stream: Optional[int] = None  # #N of the several-video-streams warning, as `ffmpeg -map 0:v:N` counts
    input_colors: str = "auto"

    def validate(self) -> None:
        check_path_given(self.input, "input")
        refuse_standard_streams([self.input])
        _one_of("decoder", self.decoder, DECODERS)
        _one_of("input_colors", self.input_colors, INPUT_COLORS)
        if not self.fps > 0:
            raise ConfigError(f"{option('fps')} must be positive, got {self.fps}")
        for name, value in (("start", self.start), ("end", self.end)):
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"{option(name)} must be a time of 0 s or more, got {value!r}")
        if self.max_size is not None and (isinstance(self.max_size, bool) or not isinstance(self.max_size, int) or self.max_size < 8):
            raise ConfigError(f"{option('max_size')} must be a whole number of pixels, 8 or more, got {self.max_size!r}")
        if self.end is not None and self.end <= (self.start or 0):
            raise ConfigError(f"{option('end')} ({self.end:g} s) must come after {option('start')} ({self.start or 0:g} s)")
        n = self.video_stream
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise ConfigError(f"{option('video_stream')} must be a video stream's number, 0 or more (#N in the warning "
                              f"about several video streams), got {n!r}")  # fmt: skip
        if n is not None and self.decoder != "pyav":
            raise ConfigError(f"{option('video_stream')} needs the PyAV decoder: decord reads the first video stream only")

    @property
    def trimmed(self) -> bool:
        """Whether only a part of the input is processed."""
        return bool(self.start) or self.end is not None


@dataclass(frozen=True)
class MatteSpec:
    """Shaping of the matte before it is used, at the output's size, in this order: ``min_area``
    drops separate parts of it smaller than that percentage of the picture (stray blobs), ``threshold``
    makes it hard (alpha >= t becomes 1, below it 0), ``grow`` moves its edge out by that many
    pixels (negative: in, cutting off a rim of background), ``feather`` softens the edge over about
    that many pixels (a Gaussian of sigma feather / 2), ``invert`` swaps subject and background (keep
    the background, cut the subject out). The defaults leave the model's matte as it is.

    Before all that, ``upsample`` says how the matte is brought from the inference size to the
    output's: ``bilinear``, or ``guided`` (its soft edge fitted to the picture's edges, see
    ``compose.guided``)."""

    threshold: Optional[float] = None
    grow: int = 0
    feather: float = 0.0
    invert: bool = False
    min_area: float = 0.0  # percent of the picture
    upsample: str = "bilinear"

    def validate(self) -> None:
        t = self.threshold
        if t is not None and not (isinstance(t, (int, float)) and not isinstance(t, bool) and 0 < t < 1):
            # rembg's and image editors' 0-255 levels (-af 240, 128): say the fraction they mean
            scale = f"; on the 0-255 scale {t:g} is {t / 255:.3g}" if isinstance(t, (int, float)) and 1 < t < 255 else ""
            raise ConfigError(f"{option('threshold')} must be between 0 and 1 (e.g. 0.5), got {t!r}{scale}")
        if isinstance(self.grow, bool) or not isinstance(self.grow, int) or abs(self.grow) > MAX_MATTE_PX:
            raise ConfigError(f"{option('grow')} must be a whole number of pixels from -{MAX_MATTE_PX} to {MAX_MATTE_PX} "
                              f"(negative shrinks), got {self.grow!r}")  # fmt: skip
        f = self.feather
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 <= f <= MAX_MATTE_PX:
            raise ConfigError(f"{option('feather')} must be 0 to {MAX_MATTE_PX} pixels, got {f!r}")
        a = self.min_area
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 <= a < 100:
            raise ConfigError(f"{option('min_area')} must be a percentage of the picture from 0 to under 100 (e.g. 1), got {a!r}")
        if not isinstance(self.invert, bool):
            raise ConfigError(f"{option('invert')} must be True or False, got {self.invert!r}")
        _one_of("upsample", self.upsample, UPSAMPLE_KINDS)

    @property
    def active(self) -> bool:
        """Whether the matte is changed at all."""
        return self.threshold is not None or self.grow != 0 or self.feather > 0 or bool(self.invert) or self.min_area > 0


BIT_DEPTHS = ("auto", 8, 16)
MAX_MATTE_PX = 200  # grow/shrink/feather beyond this is a mistake, and would cost seconds a frame
UPSAMPLE_KINDS = ("bilinear", "guided")


# the defaults of green and blur, one pair for files, pictures, live mode and the API, so they cannot drift apart
KEY_COLOR, BLUR_SIGMA = "#00ff00", 16.0
# the overlay's tint: red, rare in skin, sky and foliage, at half strength so the picture shows through it
OVERLAY_COLOR, OVERLAY_OPACITY = "#ff0000", 0.5


@dataclass(frozen=True)
class OutputSpec:
    """What to write and how: kind, compositing and matte options, encoder overrides, audio, subtitles and overwrite."""

    path: str
    kind: OutputKind = "alpha"
    background: Optional[str] = None
    key_color: str = KEY_COLOR
    blur_sigma: float = BLUR_SIGMA
    # the overlay's tint and its strength (0: the contour alone, 1: the subject painted over)
    overlay_color: str = OVERLAY_COLOR
    overlay_opacity: float = OVERLAY_OPACITY
    foreground: bool = True
    codec: Optional[str] = None
    crf: Optional[int] = None
    bitrate: Optional[str] = None
    pix_fmt: Optional[str] = None
    preset: Optional[str] = None
    audio: bool = True
    overwrite: bool = False
    subtitles: bool = True
    matte: MatteSpec = field(default_factory=MatteSpec)
    # "auto": a 10-bit or deeper source keeps its depth where the output's format holds it; 8: always
    # 8-bit pictures (the faster path); 16: composite at 16 bits whatever the source (the matte's own precision)
    bit_depth: Union[str, int] = "auto"

    def __post_init__(self) -> None:
        # RVM's names (fgr, pha) as the command line, --also and build_file_job take them: a job file or an
        # OutputSpec in also= said "unknown kind 'fgr'" of a kind the docs name
        if isinstance(self.kind, str):
            object.__setattr__(self, "kind", output_kind(self.kind))

    def validate(self) -> None:
        check_path_given(self.path, "output")
        refuse_standard_streams(out=self.path)
        too_long = name_too_long(self.path)
        if too_long:  # else OSError 'File name too long' in a traceback, from the first look at it
            raise ConfigError(f"cannot write {self.path}: {too_long}; pick a shorter name")
        bare = only_an_extension(self.path)
        if bare:
            raise ConfigError(f"cannot write {self.path}: {bare}")
        if self.bit_depth not in BIT_DEPTHS:
            raise ConfigError(f"{option('bit_depth')} must be one of auto, 8, 16, got {self.bit_depth!r}")
        check_output_options(self.kind, self.background is not None)
        refuse_piped_background(self.background)
        self.matte.validate()
        check_key_color(self.key_color)  # a bad colour fails before any work
        check_blur_sigma(self.blur_sigma)
        check_overlay(self.overlay_color, self.overlay_opacity)


J = TypeVar("J", bound="JobDescription")


class JobDescription:
    """JSON round trip for the job dataclasses: ``to_json()`` then ``from_json()`` gives an equal job."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, tagged with the schema and the job type."""
        return to_dict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls: type[J], data: dict[str, Any]) -> J:
        return from_dict(cls, data)

    @classmethod
    def from_json(cls: type[J], text: str) -> J:
        """The job a ``to_json`` text describes; ConfigError for text that is no JSON object (a job file cut off or
        edited by hand), as for wrong fields: it was json's JSONDecodeError, or a TypeError for a list."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"the job description is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"the job description must be a JSON object of its fields, got {type(data).__name__}")
        return cls.from_dict(data)


@dataclass(frozen=True)
class FileJob(JobDescription):
    """A file-to-file job, as ``birefvid process`` and ``process_video`` run it."""

    source: SourceSpec
    output: OutputSpec
    model: ModelSpec = field(default_factory=ModelSpec)
    inference: InferenceSpec = field(default_factory=InferenceSpec)
    smoothing: SmoothingSpec = field(default_factory=SmoothingSpec)
    queue_size: int = 4
    # more outputs of the same run, from the same model pass: each composited and written as ``output`` is
    also: tuple[OutputSpec, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "also", tuple(self.also))

    def validate(self) -> "FileJob":
        """Check every option that can be checked without opening files; returns self."""
        check_types(self)
        for extra in self.also:
            if not isinstance(extra, OutputSpec):
                raise ConfigError(f"{option('also')} holds OutputSpec parts (or KIND=PATH on the command line), got {extra!r}")
            check_types(extra)
        for part in (self.source, self.output, *self.also, self.model, self.inference, self.smoothing):
            part.validate()
        if self.queue_size < 1:
            raise ConfigError(f"{option('queue_size')} must be at least 1, got {self.queue_size}")
        check_distinct_outputs([self.output.path, *(extra.path for extra in self.also)])
        return self

    def to_dict(self) -> dict[str, Any]:
        """As ``JobDescription.to_dict``, less an empty ``also``, an unset ``video_stream`` and the overlay's tint at its
        defaults: a one-output job's JSON (reports, batch fingerprints) stays as it was."""
        data = to_dict(self)
        if not data["also"]:
            del data["also"]
        if data["source"]["video_stream"] is None:  # likewise: a batch started before --video-stream resumes
            del data["source"]["video_stream"]
        for output in (data["output"], *data.get("also", ())):  # likewise: a batch started before the overlay resumes
            for name, default in (("overlay_color", OVERLAY_COLOR), ("overlay_opacity", OVERLAY_OPACITY)):
                if output[name] == default:
                    del output[name]
        return data

    @property
    def outputs(self) -> tuple[OutputSpec, ...]:
        """Every output of the run: ``output``, then ``also``'s."""
        return (self.output, *self.also)


def output_kind(name: str) -> str:
    """An output kind by its name or its alias (``fgr`` for ``foreground``); other text unchanged, for the caller's check."""
    return KIND_ALIASES.get(name, name)


def parse_also(text: str) -> tuple[str, str]:
    """``"KIND=PATH"`` (``--also mask=matte.mkv``) -> (kind, path); split at the first ``=``, so a path may hold
    ``=`` and a Windows drive's colon (``mask=C:\\out\\matte.mkv``)."""
    kind, sep, path = str(text).partition("=")
    kind = output_kind(kind.strip())
    if not sep or not path.strip():
        raise ConfigError(f"{option('also')} takes KIND=PATH (e.g. mask=matte.mkv, green=preview.mp4), got {text!r}")
    if kind not in OUTPUT_KINDS:
        raise ConfigError(f"{option('also')} {text}: unknown kind {kind!r}; expected KIND=PATH, KIND one of {', '.join(OUTPUT_KINDS)}")
    return kind, path


def check_distinct_outputs(paths: typing.Sequence[str]) -> None:
    """ConfigError when two outputs of one run are the same file, or one lies in another's PNG-sequence folder:
    the last one committed would replace the other."""
    from birefvid.sequence_names import sequence_folder, sequence_pattern  # a pattern (out/matte.%04d.png) fills its folder

    # where each is written: through a symbolic link (-o a.mkv --also green=b.mkv with b.mkv a link to a.mkv), as the
    # sinks write, so two names of one file clash (the last committed replaced the other, exit 0)
    full = [os.path.normcase(os.path.realpath(str(sequence_folder(p)))) for p in paths]
    for i, a in enumerate(full):
        for j, b in enumerate(full[:i]):
            if a == b and sequence_pattern(paths[i]) and sequence_pattern(paths[j]):  # not 'the same file': two names
                raise ConfigError(f"the outputs {paths[j]} and {paths[i]} are two image sequences in one folder, and a "
                                  f"sequence's folder is its own (created whole when the run succeeds); give each one, as "
                                  f"{_own_folder(paths[j], 1)} and {_own_folder(paths[i], 2)}")  # fmt: skip
            if a == b or a.startswith(b.rstrip(os.sep) + os.sep) or b.startswith(a.rstrip(os.sep) + os.sep):
                raise ConfigError(f"the outputs {paths[j]} and {paths[i]} are the same file (or one is inside the other); "
                                  f"give each output its own path")  # fmt: skip


def _own_folder(path: str, n: int) -> str:
    """A pattern ``comp/rgba.%04d.png`` in a folder of its own, named by its prefix: ``comp/rgba/rgba.%04d.png``."""
    from birefvid.sequence_names import sequence_pattern

    pattern = sequence_pattern(path)
    name = (pattern.prefix.strip("._- ") if pattern else "") or f"seq{n}"
    return os.path.join(os.path.dirname(str(path)), name, os.path.basename(str(path)))


# "none": the camera's picture as it is (a call joined unblurred), the model still running so a switch to blur is instant
EffectKind = Literal["blur", "replace", "green", "none", "alpha", "mask", "overlay"]
EFFECTS: tuple[str, ...] = get_args(EffectKind)
# the file pipeline's output kind that draws each effect ("none" draws nothing), and the picture it hands to sinks
EFFECT_OUTPUT: dict[str, str] = {"blur": "blur", "replace": "composite", "green": "green", "alpha": "alpha", "mask": "mask", "overlay": "overlay"}
EFFECT_PICTURE: dict[str, str] = {"blur": "rgb", "replace": "rgb", "green": "rgb", "none": "rgb", "alpha": "rgba", "mask": "gray", "overlay": "rgb"}
LIVE_SMOOTH_KINDS = ("none", "ema", "flow")  # lookahead waits for future frames: not for live
# without a fixed --resolution, live mode picks the largest inference size whose model time fits this
DEFAULT_LATENCY_BUDGET_MS = 250.0
# the smallest size --latency-budget picks: a busy 2-core laptop timed every size over the budget and ran at 64²,
# whose masks are a blob around the person (the tiny model's IoU on the generated scenes: 64² 0.68, 96² 0.77,
# 128² 0.84, 160² 0.89, 256² 0.95; docs/live.md). A machine too slow for the budget even here keeps this size, says so once,
# and refreshes the mask less often; only the user's own --resolution goes below it. Here, not in runtime.live, so that
# `live --help` names it without importing torch.
BUDGET_FLOOR = 128
# mean abs difference of 36x64 thumbnails above which two frames belong to different shots
SCENE_CUT_THRESHOLD = 0.15


def parse_camera_size(value: Union[str, typing.Sequence[int], None]) -> Optional[tuple[int, int]]:
    """``"1280x720"`` / ``(1280, 720)`` -> (width, height): a picture size to ask a camera for."""
    if value is None:
        return None
    try:
        parts = [int(p) for p in value.lower().split("x")] if isinstance(value, str) else [int(p) for p in value]
        if len(parts) != 2:
            raise ValueError
    except (TypeError, ValueError, AttributeError):
        raise ConfigError(f"{option('camera_size')} {value!r} is not WxH (e.g. 1280x720)") from None
    if min(parts) < 16 or max(parts) > 16384:
        raise ConfigError(f"{option('camera_size')} {parts[0]}x{parts[1]} is not a camera picture size (e.g. 1280x720)")
    return parts[0], parts[1]


def is_camera_spec(source: str) -> bool:
    """True for what ``--source`` reads as a camera: an index (0) or a device path (/dev/video0)."""
    text = str(source).strip()
    return text.isdigit() or text.startswith("/dev/")


def is_stream_spec(source: str) -> bool:
    """True for what ``--source`` reads as a live stream: a URL other than ``file://`` and an http(s) video file's."""
    from pathlib import PurePosixPath
    from urllib.parse import urlsplit

    from .extensions import URL_STREAM_EXTENSIONS, VIDEO_EXTENSIONS

    text = str(source).strip()
    if "://" not in text:
        return False
    scheme = text.split("://", 1)[0].lower()
    suffix = PurePosixPath(urlsplit(text).path).suffix.lower()
    return not (scheme == "file" or (scheme in ("http", "https") and suffix in VIDEO_EXTENSIONS - URL_STREAM_EXTENSIONS))  # as io.live_target reads them


def check_microphone_source(source: str, realtime: bool) -> None:
    """ConfigError unless a microphone can be timed with ``source``'s pictures: a camera, or a file played in real time."""
    text = str(source).strip()
    scheme = text.split("://", 1)[0].lower() if "://" in text else None
    if is_camera_spec(text) or (realtime and scheme in (None, "file")):
        return
    what = ("a network stream, whose pictures arrive too late to match a local microphone" if scheme not in (None, "file")
            else f"a file read faster than real time (add {option('realtime')})")  # fmt: skip
    raise ConfigError(f"{option('audio_device')} records a microphone with a camera, not with {what}")


@dataclass(frozen=True)
class LiveSourceSpec:
    """A camera index or device, a stream URL, or a file (``realtime`` paces it at its own rate).

    ``camera_size`` / ``camera_fps`` ask a camera for a picture size and frame rate (its driver
    otherwise picks, often 640x480); they apply to cameras only. ``audio_device`` names a
    microphone to record with a camera (``default``, or FFmpeg's FORMAT:DEVICE: ``birefvid.io.microphone``),
    its sound moved ``audio_delay`` seconds later to meet the camera's pictures.
    """

    source: str
    realtime: bool = False
    loop: bool = False
    open_timeout: float = 5.0
    read_timeout: float = 5.0
    max_retries: Optional[int] = None  # None: reconnect forever
    camera_size: Optional[str] = None  # "WxH"
    camera_fps: Optional[float] = None
    audio_device: Optional[str] = None
    audio_delay: float = 0.0
    deinterlace: bool = True  # interlaced frames (a broadcast, a camcorder's file) made progressive first
    video_stream: Optional[int] = None  # a file's #N video stream (--video-stream), as SourceSpec's; None: the one ffmpeg would take
    input_colors: str = "auto"  # the matrix of a file or stream that names none, as SourceSpec's (cameras' pictures come as RGB)

    def validate(self) -> None:
        _one_of("input_colors", self.input_colors, INPUT_COLORS)
        if not str(self.source).strip():
            raise ConfigError(f"{option('source')} is empty; give a camera index (0), a device, a URL or a file")
        if self.audio_device is not None:
            if not str(self.audio_device).strip():
                raise ConfigError(f"{option('audio_device')} is empty; give 'default' or FORMAT:DEVICE, e.g. alsa:hw:1,0")
            check_microphone_source(self.source, self.realtime)
        if isinstance(self.audio_delay, bool) or not isinstance(self.audio_delay, (int, float)) or not -1.0 <= self.audio_delay <= 5.0:
            raise ConfigError(f"{option('audio_delay')} is seconds between -1 and 5, got {self.audio_delay!r}")
        if self.audio_delay and self.audio_device is None:
            raise ConfigError(f"{option('audio_delay')} moves the sound of {option('audio_device')}; give a microphone too")
        for name in ("realtime", "loop"):  # a camera or stream is live already and never ends: they were ignored without a word
            if getattr(self, name) and (is_camera_spec(self.source) or is_stream_spec(self.source)):
                raise ConfigError(f"{option(name)} plays a video file {'at its own rate' if name == 'realtime' else 'again at its end'}; "
                                  f"{shown_url(str(self.source))} is a {'camera' if is_camera_spec(self.source) else 'live stream'}")
        n = self.video_stream
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise ConfigError(f"{option('video_stream')} must be a video stream's number, 0 or more (#N in the warning "
                              f"about several video streams), got {n!r}")  # fmt: skip
        if n is not None and (is_camera_spec(self.source) or is_stream_spec(self.source)):
            raise ConfigError(f"{option('video_stream')} chooses among a video file's video streams; {shown_url(str(self.source))} is a "
                              f"{'camera' if is_camera_spec(self.source) else 'live stream'}, of which live takes the one ffmpeg would")  # fmt: skip
        parse_camera_size(self.camera_size)
        if self.camera_fps is not None and not (isinstance(self.camera_fps, (int, float)) and 0 < self.camera_fps <= 1000):
            raise ConfigError(f"{option('camera_fps')} must be a frame rate above 0 (e.g. 30), got {self.camera_fps!r}")
        if (self.camera_size or self.camera_fps) and not is_camera_spec(self.source):
            given = option("camera_size") if self.camera_size else option("camera_fps")
            raise ConfigError(f"{given} applies to cameras ({option('source')} 0 or /dev/video0), not to {self.source}")
        for name in ("open_timeout", "read_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{option(name)} must be positive, got {getattr(self, name)}")
        if self.max_retries is not None and self.max_retries < 0:
            raise ConfigError(f"{option('max_retries')} must be >= 0, got {self.max_retries}")


@dataclass(frozen=True)
class EffectSpec:
    """What live mode draws: blurred or replaced background, greenscreen, the camera's picture as it is (none), RGBA, the
    matte, or the picture with the matte's subject tinted and outlined (overlay)."""

    effect: EffectKind = "blur"
    background: Optional[str] = None  # for replace (or another effect, to switch to replace): a colour, an image or a video (looped)
    key_color: str = KEY_COLOR
    blur_sigma: float = BLUR_SIGMA
    overlay_color: str = OVERLAY_COLOR
    overlay_opacity: float = OVERLAY_OPACITY
    foreground: bool = False  # colour estimation at soft edges: costs ~10 ms more a 640x480-720p frame on a CPU core
    matte: MatteSpec = field(default_factory=MatteSpec)

    def validate(self) -> None:
        _one_of("effect", self.effect, EFFECTS)
        self.matte.validate()
        if self.effect == "replace" and self.background is None:
            raise ConfigError(f"{option('effect', 'replace')} needs {option('background')} (a colour, an image or a video)")
        if self.effect in ("alpha", "mask") and self.background is not None:  # the others can switch to replace: a key away
            raise ConfigError(f"{option('background')} is not used with {option('effect', self.effect)}, which keeps its effect: "
                              f"the effects that switch (blur, replace, green, none, overlay) use it for replace")  # fmt: skip
        if self.effect == "mask" and self.foreground:  # the matte alone has no colours: it was ignored without a word
            raise ConfigError(f"{option('foreground')} estimates colours at soft edges; {option('effect', 'mask')} draws the matte alone, which has none")
        refuse_piped_background(self.background)
        check_key_color(self.key_color)
        check_blur_sigma(self.blur_sigma)
        check_overlay(self.overlay_color, self.overlay_opacity)


@dataclass(frozen=True)
class LiveJob(JobDescription):
    """A live job, as ``birefvid live`` and ``birefvid.api.run_live`` run it."""

    source: LiveSourceSpec
    sinks: tuple[str, ...]
    effect: EffectSpec = field(default_factory=EffectSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    inference: InferenceSpec = field(default_factory=InferenceSpec)
    smoothing: SmoothingSpec = field(default_factory=lambda: SmoothingSpec("flow"))
    latency_budget_ms: Optional[float] = None  # adapt the inference size to it (when no resolution is set)
    duration: Optional[float] = None  # seconds; None: until the source ends or Ctrl-C
    carry: bool = True  # carry the latest mask to each shown frame along optical flow
    model_fps: Optional[float] = None  # the most mask refreshes a second (battery, a shared CPU); None: as fast as the model goes
    stats_every: float = 5.0
    overwrite: bool = False
    record_preset: Optional[str] = None  # encoder speed preset of the recordings (x264 ultrafast...; recordings never use NVENC)
    record_segment: Optional[float] = None  # seconds: recordings as a series of files this long, each committed when done
    audio: bool = True  # recordings and streams carry the source's sound (a stream's or file's first audio track)
    # flip the window's and the preview page's picture left-right, as a call app shows your self-view; never what is
    # sent or recorded. None: mirrored when the source is a camera (you look at yourself), not for streams and files
    mirror_preview: Optional[bool] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "sinks", tuple(str(s) for s in self.sinks))

    def validate(self) -> "LiveJob":
        """Check every option that can be checked without opening anything; returns self."""
        check_types(self)
        for part in (self.source, self.effect, self.model, self.inference, self.smoothing):
            part.validate()
        if not self.sinks:
            raise ConfigError(f"give at least one {option('sink')}: window, virtualcam, rtsp://…, http://HOST:PORT or a file")
        if len(set(self.sinks)) != len(self.sinks):
            raise ConfigError(f"the same {option('sink')} is given twice: {', '.join(shown_sink(s) for s in self.sinks)}")
        _one_of("smooth", self.smoothing.kind, LIVE_SMOOTH_KINDS)
        if self.latency_budget_ms is not None:
            if not self.latency_budget_ms > 0:
                raise ConfigError(f"{option('latency_budget_ms')} must be positive, got {self.latency_budget_ms}")
            if self.inference.resolution is not None:
                raise ConfigError(f"use either {option('resolution')} or {option('latency_budget_ms')}, not both")
        if self.duration is not None and not self.duration > 0:
            raise ConfigError(f"{option('duration')} must be positive, got {self.duration}")
        if self.model_fps is not None and (isinstance(self.model_fps, bool) or not 0 < self.model_fps < math.inf):
            raise ConfigError(f"{option('model_fps')} is the most mask refreshes a second, a positive number; got {self.model_fps!r}")
        if not self.stats_every > 0:
            raise ConfigError(f"{option('stats_every')} must be positive, got {self.stats_every}")
        if self.record_preset is not None and not any(is_recording(s) for s in self.sinks):
            raise ConfigError(f"{option('record_preset')} sets the encoder of a recording; give a file {option('sink')} too")
        if self.record_segment is not None:
            if isinstance(self.record_segment, bool) or not isinstance(self.record_segment, (int, float)) or not 1 <= self.record_segment < math.inf:
                raise ConfigError(f"{option('record_segment')} is the length of each recording file in seconds, at least 1; got {self.record_segment!r}")
            if not any(is_recording(s) for s in self.sinks):
                raise ConfigError(f"{option('record_segment')} splits a recording into files; give a file {option('sink')} too")
        if self.mirror_preview is not None and not isinstance(self.mirror_preview, bool):
            raise ConfigError(f"{option('mirror_preview')} is True, False or None (mirrored for a camera), got {self.mirror_preview!r}")
        if self.mirror_preview and not any(is_preview(s) for s in self.sinks):
            raise ConfigError(f"{option('mirror_preview')} flips only what you look at, the window and the http:// preview page, never what is "
                              f"sent or recorded; give {sink_named('window')} or {sink_named('http://127.0.0.1:8080')} too")
        if self.source.audio_device is not None:
            if not self.audio:
                raise ConfigError(f"{option('audio_device')} records a microphone, {option('audio', False)} leaves sound out: give one of them")
            if not any(carries_sound(s) for s in self.sinks):
                raise ConfigError(f"{option('audio_device')} records a microphone into a recording or an RTSP, RTMP or MPEG-TS stream (a GIF, WebP or "
                                  f"APNG holds no sound); give such a {option('sink')} too")
        return self

    def mirrors_preview(self) -> bool:
        """Whether the window and the preview page show the picture mirrored: as asked, else for a camera only."""
        return is_camera_spec(self.source.source) if self.mirror_preview is None else self.mirror_preview


def shown_sink(sink: str) -> str:
    """How messages name a live ``--sink``: passwords and an RTMP address's stream key hidden (screens are streamed)."""
    return shown_url(sink)


def is_recording(sink: str) -> bool:
    """True when a live ``--sink`` value names a file to record (not window, virtualcam or a URL)."""
    return sink.strip().lower() not in ("window", "virtualcam") and "://" not in sink


def is_preview(sink: str) -> bool:
    """True when a live ``--sink`` is something a person looks at (the window, the http:// preview page), not sent or recorded."""
    text = sink.strip().lower()
    return text == "window" or text.startswith("http://")


SOUND_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "udp", "tcp", "srt")  # the network sinks that send the source's sound too


# recordings that hold pictures only (animated GIF, WebP, APNG)
SILENT_RECORDINGS = (".gif", ".webp", ".apng")


def carries_sound(sink: str) -> bool:
    """True when a live ``--sink`` carries the source's sound: a recording (not a GIF, WebP or APNG, which hold none),
    an RTSP, RTMP or MPEG-TS stream; else a microphone was opened and its sound went nowhere, without a word."""
    if is_recording(sink):
        return not sink.strip().lower().endswith(SILENT_RECORDINGS)
    return sink.strip().lower().split("://", 1)[0] in SOUND_SCHEMES


def to_dict(job: Any) -> dict[str, Any]:
    """A job as plain JSON-ready data, tagged with its schema and type."""
    return {"schema": SCHEMA, "type": type(job).__name__, **dataclasses.asdict(job)}


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a job dataclass from ``to_dict`` data (lists become tuples again); unknown keys fail."""
    data = dict(data)
    schema = data.pop("schema", SCHEMA)
    if schema != SCHEMA:
        raise ConfigError(f"job schema {schema!r} is not {SCHEMA!r}")
    kind = data.pop("type", cls.__name__)
    if kind != cls.__name__:
        raise ConfigError(f"this is a {kind} description, not a {cls.__name__}")
    return _build(cls, data)


def _build(cls: type, data: dict[str, Any], where: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown field(s) {', '.join(unknown)} in a {cls.__name__} description")
    values = {}
    for name, value in data.items():
        hint = hints[name]
        expected = _expected(hint, value)
        if expected is not None:  # "crf": "20" or "overwrite": "yes" went through, or ended in a TypeError mid-run
            raise ConfigError(f"the job description's {where}{name} must be {expected}, got {value!r}")
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = _build(hint, value, f"{where}{name}.")
        elif isinstance(value, list) and _is_tuple(hint):
            value = tuple(_build(_tuple_item(hint), v) if isinstance(v, dict) else v for v in value)
        values[name] = value
    return cls(**values)


_JSON_TYPES = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
_PY_TYPES = {bool: "True or False", int: "a whole number", float: "a number", str: "a string"}
# a part's field -> the keyword (and CLI option) that sets it, where the two differ
_KEYWORDS = {"path": "output", "window": "smooth_window"}


def check_types(spec: Any) -> None:
    """ConfigError naming the keyword for a plain field of ``spec`` (or of its parts) that holds another type:
    ``overwrite="no"`` from a web form read as true and replaced a file, ``crf="20"`` ended in a bare TypeError.

    A value that fits is stored as the plain Python value (NumPy's numbers and bools, a Fraction, a Path): the
    range checks then take ``grow=np.int64(2)``, and the report's JSON is written, where it failed after the work."""
    hints = typing.get_type_hints(type(spec))
    for f in dataclasses.fields(spec):
        value = getattr(spec, f.name)
        if dataclasses.is_dataclass(value):
            check_types(value)
        elif _expected(hints[f.name], value) is not None:
            expected = _expected(hints[f.name], value, _PY_TYPES)
            raise ConfigError(f"{option(_KEYWORDS.get(f.name, f.name))} must be {expected}, got {value!r}")
        else:
            plain = _plain(hints[f.name], value)
            if plain is not value:
                object.__setattr__(spec, f.name, plain)  # frozen: set once, before anything reads it


def _is_numpy_bool(value: Any) -> bool:
    """True for NumPy's bool scalar (``np.bool_``), told by name: this module imports no NumPy."""
    return type(value).__module__ == "numpy" and type(value).__name__ in ("bool_", "bool")


def _plain(hint: Any, value: Any) -> Any:
    """``value`` (which fits ``hint``) as the plain Python type JSON and the ``isinstance`` range checks take."""
    inner = [a for a in get_args(hint) if a is not type(None)] if typing.get_origin(hint) in (Union, types.UnionType) else [hint]
    if len(inner) != 1:  # bit_depth's str or int
        return int(value) if isinstance(value, numbers.Integral) and not isinstance(value, int) else value
    if value is None:
        return value
    hint = inner[0]
    if hint is bool and not isinstance(value, bool):
        return bool(value)
    if hint is int and type(value) is not int:
        return int(value)
    if hint is float and not isinstance(value, (int, float)):
        return float(value)
    if hint is str and not isinstance(value, str) and isinstance(os.fspath(value), str):
        return os.fspath(value)
    return value


def _expected(hint: Any, value: Any, names: dict[type, str] = _JSON_TYPES) -> Optional[str]:
    """What a job description's field of type ``hint`` must hold when ``value`` does not fit it, else None.

    Only the plain types are checked here (and that a part is an object); choices, ranges, sizes and the
    str-or-int ``bit_depth`` are ``validate()``'s. ``names``: how the types are spelt (JSON's or Python's)."""
    if dataclasses.is_dataclass(hint):
        return None if isinstance(value, (dict, hint)) else "an object of its fields"
    optional = False
    if typing.get_origin(hint) in (Union, types.UnionType):
        inner = [a for a in get_args(hint) if a is not type(None)]
        if value is None and len(inner) < len(get_args(hint)):
            return None
        if len(inner) != 1:
            return None
        hint, optional = inner[0], True
    if hint not in _JSON_TYPES:
        return None
    if hint is bool:
        fits = isinstance(value, bool) or _is_numpy_bool(value)
    elif hint is int:
        fits = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    elif hint is float:
        fits = isinstance(value, numbers.Real) and not isinstance(value, bool)
    else:
        fits = isinstance(value, (str, os.PathLike))
    return None if fits else names[hint] + ((" or null" if names is _JSON_TYPES else " or None") if optional else "")


def _is_tuple(hint: Any) -> bool:
    return typing.get_origin(hint) is tuple or any(typing.get_origin(a) is tuple for a in get_args(hint))


def _tuple_item(hint: Any) -> Any:
    for h in (hint, *get_args(hint)):
        if typing.get_origin(h) is tuple:
            return get_args(h)[0]
    return None
