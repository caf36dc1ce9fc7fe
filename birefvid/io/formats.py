"""Which encoder, pixel format and options write a given output kind into a given container.

This is the output table of docs/process.md ("Outputs": each kind into each container) as data, plus the checks that turn an impossible
request (alpha into H.264 .mp4, an unknown extension, ...) into a ``SinkError`` that lists what
is supported.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal, Optional

import av

from birefvid.errors import SinkError, option

log = logging.getLogger(__name__)

Kind = Literal["alpha", "mask", "rgb"]
KINDS: tuple[str, ...] = ("alpha", "mask", "rgb")

_COMMON = ("libx264", "libx265", "h264_nvenc", "hevc_nvenc")
# animated pictures for the web (io/animated_sink.py): any kind, one encoder each
_ANIMATED = {".gif": ("gif",), ".webp": ("libwebp_anim",), ".apng": ("apng",)}
# kind -> extension -> codecs accepted there; the first is the default.
SUPPORTED: dict[str, dict[str, tuple[str, ...]]] = {
    "alpha": {
        ".mov": ("prores_ks", "qtrle", "png"),
        ".mkv": ("ffv1", "prores_ks", "libvpx-vp9", "png"),
        ".webm": ("libvpx-vp9",),
        **_ANIMATED,
    },
    "mask": {
        ".mov": ("prores_ks", *_COMMON),
        ".mp4": _COMMON,
        ".m4v": _COMMON,
        ".mkv": ("ffv1", *_COMMON, "libvpx-vp9", "prores_ks"),
        ".webm": ("libvpx-vp9",),
        **_ANIMATED,
    },
    "rgb": {
        ".mov": (*_COMMON, "prores_ks"),
        ".mp4": _COMMON,
        ".m4v": _COMMON,
        ".mkv": (*_COMMON, "ffv1", "libvpx-vp9", "prores_ks"),
        ".webm": ("libvpx-vp9",),
        **_ANIMATED,
    },
}
# muxer name per extension (FFmpeg would guess the same; explicit is clearer in errors)
MUXERS: dict[str, str] = {".mov": "mov", ".mp4": "mp4", ".m4v": "mp4", ".mkv": "matroska", ".webm": "webm",
                          ".gif": "gif", ".webp": "webp", ".apng": "apng"}

# (kind, codec) -> default pixel format
_PIX_FMT: dict[tuple[str, str], str] = {
    ("alpha", "prores_ks"): "yuva444p10le",
    ("alpha", "qtrle"): "argb",
    ("alpha", "png"): "rgba",
    ("alpha", "ffv1"): "yuva444p",
    ("alpha", "libvpx-vp9"): "yuva420p",
    ("mask", "ffv1"): "gray",
    ("mask", "prores_ks"): "yuv422p10le",
    ("rgb", "prores_ks"): "yuv422p10le",
    ("rgb", "ffv1"): "yuv444p",
    # GIF: 8-bit palettes made per frame, one entry transparent for alpha (io/animated_sink.py)
    ("alpha", "gif"): "pal8",
    ("rgb", "gif"): "pal8",
    ("mask", "gif"): "gray",
    # WebP: libwebp converts to its YUV itself and keeps the alpha plane lossless
    ("alpha", "libwebp_anim"): "bgra",
    ("rgb", "libwebp_anim"): "bgra",
    ("mask", "libwebp_anim"): "bgra",
    ("alpha", "apng"): "rgba",
    ("rgb", "apng"): "rgb24",
    ("mask", "apng"): "gray",
}
# (kind, codec) -> default pixel format for a deep output (10 bits or more kept), by the bits wanted: 10, 12 or 16.
# ProRes is 10-bit already; x264 stays 8-bit (few players decode High 10 H.264: --pix-fmt yuv420p10le asks for it);
# x265's Main 10 is what HDR video is delivered in, and plays wherever HEVC does.
# FFV1 with alpha goes from 10 bits to 16: FFmpeg before 6.0 (Debian 12's 5.1, and the editors and tools built on it)
# cannot decode FFV1 yuva444p12le ("format not supported"), while 16 bits holds 12 exactly and decodes everywhere.
_DEEP_PIX_FMT: dict[tuple[str, str], dict[int, str]] = {
    ("alpha", "ffv1"): {10: "yuva444p10le", 12: "yuva444p16le", 16: "yuva444p16le"},
    ("alpha", "png"): {10: "rgba64be", 12: "rgba64be", 16: "rgba64be"},
    ("mask", "ffv1"): {10: "gray10le", 12: "gray12le", 16: "gray16le"},
    ("rgb", "ffv1"): {10: "yuv444p10le", 12: "yuv444p12le", 16: "yuv444p16le"},
    ("rgb", "libx265"): {10: "yuv420p10le", 12: "yuv420p10le", 16: "yuv420p10le"},
}


def tag_options(muxer: str, keys: Iterable[str]) -> dict[str, str]:
    """Muxer options that keep the file tags ``keys`` in a ``muxer`` file. MOV/MP4 hold reverse-DNS keys
    (a phone's com.apple.quicktime.location.ISO6709, .make, .model, .creationdate; Android's
    com.android.capture.fps) only as QuickTime metadata keys, which FFmpeg writes with
    ``use_metadata_tags`` and otherwise drops; the usual tags (title, location) stay where they were too."""
    if muxer in ("mov", "mp4") and any("." in key for key in keys):
        return {"movflags": "use_metadata_tags"}
    return {}


def is_animation_target(path: str | Path) -> bool:
    """Whether ``path`` names an animated picture (GIF, WebP, APNG): no sound, no subtitles, square pixels only."""
    return Path(path).suffix.lower() in _ANIMATED


def sample_bits(pix_fmt: str) -> int:
    """Bits a sample of ``pix_fmt`` holds (its deepest component): 8 for yuv420p, 10 for ProRes's formats, 16 for rgba64be."""
    try:
        return max((c.bits for c in av.VideoFormat(pix_fmt).components), default=8)
    except (ValueError, av.FFmpegError):
        return 8


def _default_codec(kind: str, ext: str, bits: int, tuned: bool = False) -> str:
    """The codec an output gets unless one is named: the first its container takes, but ProRes 422 HQ for a deep
    source's opaque pictures in .mov (an editor's container), where H.264 cut a 10-bit camera clip's foreground
    to 8-bit 4:2:0 before it was premultiplied by its matte; .mp4 stays H.264 for delivery. ``tuned``: an encoder
    option (``--crf``, ``--bitrate``, ``--preset``, ``--pix-fmt``) was given, written for the H.264 default: ProRes
    refused the preset and yuv420p, and took crf 18 as its quantiser (1 best)."""
    if kind == "rgb" and ext == ".mov" and bits > 8 and not tuned:
        return "prores_ks"
    return SUPPORTED[kind][ext][0]


def _deep_default(kind: str, codec: str, bits: int) -> Optional[str]:
    """The default pixel format of ``codec`` for ``kind`` at ``bits`` (rounded up to 10, 12 or 16); None: no deep default."""
    table = _DEEP_PIX_FMT.get((kind, codec))
    if table is None or bits <= 8:
        return None
    return table[10 if bits <= 10 else 12 if bits <= 12 else 16]


# encoder options beyond the codec's defaults: WebP at quality 90 (libwebp's 75 smears soft edges),
# APNG with the best of PNG's row filters per row (smaller files, same pixels)
_CODEC_OPTIONS: dict[str, dict[str, str]] = {"libwebp_anim": {"quality": "90"}, "apng": {"pred": "mixed"}}
# constant quality per codec: x264/x265/VP9 CRF, NVENC CQ, and ProRes's fixed quantiser (-q:v).
_DEFAULT_CRF = {"libx264": 18, "libx265": 20, "h264_nvenc": 19, "hevc_nvenc": 21, "libvpx-vp9": 24, "prores_ks": 2}
_CRF_CODECS = frozenset(_DEFAULT_CRF)
# the values each encoder takes (x264 clamps a higher CRF to 51 without a word; x265, VP9 and ProRes refuse to start)
_CRF_RANGE = {"libx264": (0, 51), "libx265": (0, 51), "libvpx-vp9": (0, 63), "prores_ks": (1, 64)}
FF_QP2LAMBDA = 118  # FFmpeg's scale between a quantiser and global_quality (what ffmpeg -q:v sets)
# Speed presets. x264/x265 default to veryfast, not FFmpeg's medium: at 720p medium costs ~52 ms of
# CPU a frame against ~19 ms (scripts/bench_pipeline.py, on 2 cores), time the model needs more;
# at crf 18 the picture is the same and the file somewhat larger. ``--preset medium`` gives it back.
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
NVENC_PRESETS = ("p1", "p2", "p3", "p4", "p5", "p6", "p7")
_PRESETS: dict[str, tuple[str, ...]] = {"libx264": X264_PRESETS, "libx265": X264_PRESETS, "h264_nvenc": NVENC_PRESETS, "hevc_nvenc": NVENC_PRESETS}
_DEFAULT_PRESET = {"libx264": "veryfast", "libx265": "veryfast"}
_ALPHA_FMT = re.compile(r"^(yuva|gbrap|ya)|rgba|argb|bgra|abgr")
# hardware encoders: NVENC's constant quality (``cq``) runs 1 (best) to 51, and 0 there means "automatic"
# (FFmpeg's nvenc options), not x264's lossless; its frames have a minimum size, 145x49 for H.264 on recent GPUs
_HW = frozenset({"h264_nvenc", "hevc_nvenc"})
NVENC_CQ_RANGE = (1, 51)
NVENC_SMALL = (145, 49)  # FFmpeg trac #9251: 144x144 refused ("Frame Dimension less than the minimum supported value"), 145x145 encoded
# HEVC in MP4/MOV: FFmpeg tags it hev1 (parameter sets in the stream); Apple's players (QuickTime,
# Safari, iOS) play only hvc1 (parameter sets in the sample entry), which every other player reads too
_HEVC = frozenset({"libx265", "hevc_nvenc"})
_HVC1_MUXERS = frozenset({"mov", "mp4"})
# x265 logs ~25 "x265 [info]" lines per file straight to stderr, past FFmpeg's log level: errors only
_X265_PARAMS = "log-level=error"


@dataclass(frozen=True)
class EncoderSpec:
    """Everything needed to configure one video encoder and its muxer."""

    kind: str
    ext: str
    muxer: str
    codec: str
    pix_fmt: str
    options: dict[str, str] = field(default_factory=dict)
    bit_rate: Optional[int] = None
    codec_tag: Optional[str] = None  # the sample entry the muxer writes, where FFmpeg's default is not what players need


def has_alpha(pix_fmt: str) -> bool:
    """True when the pixel format carries an alpha plane."""
    return bool(_ALPHA_FMT.search(pix_fmt))


def parse_bitrate(text: str) -> int:
    """Turn '8M', '800k' or '2500000' into bits per second."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*(?:b|bps)?\s*", str(text))
    if not m:
        raise SinkError(f"bitrate {text!r} is not a bitrate; expected e.g. '8M', '800k' or '2500000'")
    scale = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def _supported_text(kind: str, folder: bool = True) -> str:
    rows = [f"{ext} ({', '.join(codecs)})" for ext, codecs in SUPPORTED[kind].items()]
    return "; ".join(rows) + ("; or a folder for a PNG sequence" if folder else "")


def _even_safe(codec: str, pix_fmt: str, width: int, height: int) -> str:
    """Swap a chroma-subsampled format for its 4:4:4 sibling when the size is odd (decoded size stays exact)."""
    fmt = av.VideoFormat(pix_fmt)
    subsampled = fmt.chroma_width(64) < 64 or fmt.chroma_height(64) < 64
    if not subsampled or (width % 2 == 0 and height % 2 == 0) or codec == "libvpx-vp9":
        return pix_fmt  # VP9 codes odd sizes in 4:2:0 natively
    full = re.sub(r"4[12][02]p", "444p", pix_fmt)
    if full != pix_fmt and full in _codec_formats(codec):
        log.info("%dx%d is odd: writing %s instead of %s so the size is kept exactly", width, height, full, pix_fmt)
        return full
    raise SinkError(
        f"{codec} cannot write {pix_fmt} at the odd size {width}x{height}; choose a 4:4:4 pix_fmt or another codec"
    )


# the longest picture side an encoder takes: past it x264 and libwebp refuse to start, and the run ended with
# FFmpeg's "Generic error in an external library" or "Invalid argument" (a 16400-px panorama, a stitched plate)
MAX_SIDE: dict[str, int] = {"libx264": 16384, "libwebp_anim": 16383}
_KEEPS_SIZE = {"libx264": "{codec} keeps its size", "libwebp_anim": ".gif, .apng or .webm keep its size"}


def check_side(codec: str, width: int, height: int, path: Path) -> None:
    """SinkError, before any work, when ``codec`` cannot encode a ``width`` x ``height`` picture, naming what can."""
    limit = MAX_SIDE.get(codec)
    if limit is None or max(width, height) <= limit:
        return
    raise SinkError(f"{codec} encodes pictures up to {limit} pixels a side, and {path.name}'s would be {width}x{height}: "
                    f"{option('max_size', limit)} scales it down; {_KEEPS_SIZE[codec].format(codec=option('codec', 'libx265'))}")  # fmt: skip


def _codec_formats(codec: str) -> list[str]:
    try:
        c = av.codec.Codec(codec, "w")
    except Exception as e:  # av raises its own UnknownCodecError
        raise SinkError(f"unknown encoder {codec!r} in this FFmpeg build ({e})") from e
    # frames in memory only: NVENC also lists "cuda" (frames already on the GPU), which these encoders are never given
    return [f.name for f in (c.video_formats or []) if f.components]


def choose_encoder(
    path: Path,
    kind: str,
    width: int,
    height: int,
    *,
    codec: Optional[str] = None,
    pix_fmt: Optional[str] = None,
    crf: Optional[int] = None,
    bitrate: Optional[str] = None,
    preset: Optional[str] = None,
    bits: int = 8,
    folder: bool = True,
    gpu: Optional[int] = None,
) -> EncoderSpec:
    """Resolve the encoder for writing ``kind`` to ``path``, or raise SinkError saying what is supported.

    ``bits`` > 8 asks for a default pixel format that keeps that many bits where the codec has one
    (FFV1, PNG, x265; ProRes is 10-bit anyway); a ``pix_fmt`` given is used as it is. ``folder``: the
    caller also writes PNG sequences to a folder (process, batch; not live), so the error offers one.
    ``gpu``: the CUDA device the model runs on (``cuda:N``), where NVENC encodes too: FFmpeg's NVENC
    otherwise takes the first GPU, so a run on ``cuda:1`` encoded on GPU 0, beside another user's job.
    """
    if kind not in SUPPORTED:
        raise SinkError(f"unknown output kind {kind!r}; expected one of {', '.join(KINDS)}")
    ext = path.suffix.lower()
    table = SUPPORTED[kind]
    if ext not in table:
        # .mp4 for an alpha output is the commonest slip (alpha is process's default): say why, not only what
        why = ""
        if kind == "alpha" and any(ext in SUPPORTED[other] for other in KINDS):
            why = f" ({ext} holds no alpha channel: write alpha to a supported format, or choose an output without alpha such as foreground (the cut-out's colours, opaque), green or mask)"
        elif ext == ".png":
            why = " (a folder path writes a PNG sequence; .apng writes one animated PNG)" if folder else " (.apng writes one animated PNG)"
        where = f"{ext} files" if ext else f"{path.name or path}, which has no extension"
        raise SinkError(f"cannot write {kind} output to {where}{why}; supported: {_supported_text(kind, folder)}")
    if codec is None:
        codec = _default_codec(kind, ext, bits, tuned=any(v is not None for v in (pix_fmt, crf, bitrate, preset)))
    elif codec not in table[ext]:
        raise SinkError(
            f"codec {codec} cannot write {kind} output into {ext}; {ext} supports {', '.join(table[ext])} "
            f"(all choices: {_supported_text(kind, folder)})"
        )
    formats = _codec_formats(codec)
    if pix_fmt is None:
        pix_fmt = _deep_default(kind, codec, bits) or _PIX_FMT.get((kind, codec), "yuv420p")
    elif pix_fmt not in formats:  # NVENC's list too: FFmpeg refuses any other, whatever the GPU
        raise SinkError(f"{codec} cannot encode pix_fmt {pix_fmt}; it supports {', '.join(formats)}")
    if kind == "alpha" and not has_alpha(pix_fmt) and not (codec == "gif" and pix_fmt == "pal8"):  # GIF: a transparent palette entry
        raise SinkError(f"alpha output needs a pixel format with alpha, got {pix_fmt} (e.g. yuva444p10le, yuva420p, rgba)")
    check_side(codec, width, height, path)
    pix_fmt = _even_safe(codec, pix_fmt, width, height)

    options: dict[str, str] = dict(_CODEC_OPTIONS.get(codec, {}))
    if codec == "prores_ks":
        options["profile"] = "4444" if has_alpha(pix_fmt) else "hq"
        if has_alpha(pix_fmt):
            options["alpha_bits"] = "16"
    if codec == "libvpx-vp9":
        options.update({"row-mt": "1", "deadline": "good", "cpu-used": "4"})
        if has_alpha(pix_fmt):
            # FFmpeg turns VP9's alt-ref frames off with alpha, so libvpx's 25-frame look-ahead (in the colour
            # and the alpha encoder) buys nothing: the same packets without it, and 8K .webm peaked at 10.2 GB
            options["lag-in-frames"] = "0"
    if codec == "libx265":
        options["x265-params"] = _X265_PARAMS
    options.update(_preset_options(codec, preset))
    bit_rate = parse_bitrate(bitrate) if bitrate is not None else None
    if crf is not None and bit_rate is not None:  # the bitrate won, and the crf was dropped without a word
        raise SinkError(f"{option('crf')} (constant quality) and {option('bitrate')} (a target rate) exclude each other; give one")
    if crf is not None and codec in _CRF_RANGE:
        _check_crf(codec, crf)
    if crf is not None and codec not in _CRF_CODECS:
        log.warning("crf is ignored by %s (it has no constant-quality mode)", codec)
    elif codec in _CRF_CODECS and bit_rate is None:
        value = crf if crf is not None else _DEFAULT_CRF[codec]
        if codec == "prores_ks":
            options.update(_prores_quantiser(value))
        elif codec in _HW:
            options.update({"rc": "vbr", "cq": str(_nvenc_cq(value))})
        else:
            options["crf"] = str(value)
        if codec == "libvpx-vp9":
            bit_rate = 0  # constant quality: VP9 needs b:v 0 together with crf
    if codec in _HW and gpu is not None:
        options["gpu"] = str(gpu)  # NVENC's device ordinal is CUDA's, which CUDA_VISIBLE_DEVICES renumbers as it does torch's
    codec_tag = "hvc1" if codec in _HEVC and MUXERS[ext] in _HVC1_MUXERS else None
    return EncoderSpec(kind, ext, MUXERS[ext], codec, pix_fmt, options, bit_rate, codec_tag)


def check_encoder(path: Path, kind: str, *, codec: Optional[str] = None, pix_fmt: Optional[str] = None, crf: Optional[int] = None,
                  bitrate: Optional[str] = None, preset: Optional[str] = None) -> None:
    """``choose_encoder``'s refusals for ``path``, without a picture size and without its warnings (they come when the
    output opens): ``batch`` asks before it makes its output folder and manifest."""
    spec = choose_encoder(path, kind, 64, 64, codec=codec, pix_fmt=pix_fmt, bitrate=bitrate, preset=preset)
    if crf is not None and bitrate is not None:
        choose_encoder(path, kind, 64, 64, codec=codec, pix_fmt=pix_fmt, crf=crf, bitrate=bitrate, preset=preset)  # says why
    if crf is not None and spec.codec in _CRF_RANGE:
        _check_crf(spec.codec, crf)
    if crf is not None and spec.codec in _HW:
        _nvenc_cq(crf)


def _preset_options(codec: str, preset: Optional[str]) -> dict[str, str]:
    """The encoder's speed preset: the one asked for (checked), else the codec's default."""
    choices = _PRESETS.get(codec)
    if preset is None:
        return {"preset": _DEFAULT_PRESET[codec]} if codec in _DEFAULT_PRESET else {}
    if choices is None:
        raise SinkError(f"{codec} has no speed presets; {option('preset')} applies to {', '.join(_PRESETS)}")
    if preset not in choices:
        raise SinkError(f"unknown preset {preset!r} for {codec}; expected one of: {', '.join(choices)}")
    return {"preset": preset}


def _check_crf(codec: str, value: int) -> None:
    """SinkError, before any work, for a constant quality ``codec`` does not take: x264 made 1000 its worst
    quality (51) silently, and ProRes ended in FFmpeg's avcodec_open2 line."""
    low, high = _CRF_RANGE[codec]
    if not low <= value <= high:
        what = "the ProRes quantiser" if codec == "prores_ks" else f"{codec}'s constant quality"
        raise SinkError(f"{what} ({option('crf')}) runs {low} (best) to {high}, got {value}")


def _nvenc_cq(value: int) -> int:
    """NVENC's constant quality, checked: 0 would silently mean its automatic quality, above 51 it cannot start."""
    low, high = NVENC_CQ_RANGE
    if not low <= value <= high:
        raise SinkError(f"NVENC's constant quality ({option('crf')}) runs {low} (best) to {high}, got {value} "
                        f"(0 means its automatic quality there, not lossless)")  # fmt: skip
    return value


def _prores_quantiser(q: int) -> dict[str, str]:
    """ProRes at a fixed quantiser (ffmpeg's ``-q:v``) instead of prores_ks's per-slice rate search.

    The search costs ~160 ms of CPU per 720p 4444 frame; quantiser 2 costs ~38 ms, writes a third
    less and stays visually lossless (mean error 0.35 of 255 on our test scenes; alpha unchanged).
    """
    return {"flags": "+qscale", "global_quality": str(q * FF_QP2LAMBDA)}
