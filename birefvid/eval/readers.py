"""Masks to score, streamed as (H, W) arrays from image folders, globs, single images or videos, and scored.

What a file contributes, per frame:

* an image with alpha (RGBA PNG cut-outs): its alpha, unless every image of the clip is opaque (a mask
  saved as RGBA or grey+alpha), then its brightness; a grey image: its grey level (8 or 16 bit), and
  a clip whose grey levels are all 0 or 1 (masks saved as 0/1) as 0/255; a palette PNG (DAVIS
  annotations): foreground wherever the index is not 0 (all objects as one mask) unless the palette is
  all grey and covers every index used, then the grey level; a colour label map (black and at most 32 other
  flat colours: an annotation saved as RGB) as a palette PNG; any other colour image: its luminance.
  A float picture (32-bit TIFF, OpenEXR) by the same rule, as float32 alpha in [0, 1] (clipped), never a 0/1 mask.
  Index 255 of a colour palette is void (DAVIS, PASCAL VOC: unlabelled, usually along object edges):
  background in the mask, and left out of the scores where the ground truth has it.
* a video whose pixel format has alpha (ProRes 4444 .mov, FFV1 yuva .mkv, VP9 .webm, decoded with
  libvpx-vp9 so the side-channel alpha survives, a GIF with transparency): its alpha, at the depth it is
  decoded at (ProRes' 12 bits as value / 4095); any other video
  (a grey mask video or an ordinary RGB/YUV one), and one whose alpha is opaque in every frame (a mask
  GIF, which FFmpeg decodes as bgra): its luminance, expanded to full range (Y' 16-235 -> 0-255),
  16 bit for high-depth grey formats; a lossless one whose levels are all 0 or 1 (labels written as a video) as 0/255.
* an animated WebP, every frame (with Pillow, as ``process`` reads it; FFmpeg decodes the first
  only): by the same rule, its alpha unless every frame is opaque, then its brightness.

Folders are read in natural name order (f2 before f10). A DAVIS-style root (a folder of sequence
folders or videos and no images) is a set of clips: ``pair_clips`` matches each ground-truth sequence to
``PRED/<name>/`` or ``PRED/<name>.<video extension>``, or only the sequences named (DAVIS'
``ImageSets/2017/val.txt`` beside all 90 annotated ones). ``evaluate_paths`` scores it all: the
summary is over every frame (and every within-sequence pair) of every sequence, each frame counting
once (as RVM's VideoMatte tables, whose clips are equally long); ``sequence_mean`` averages the
sequences' own values, each sequence counting once (as DAVIS' J&F Mean).
"""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import av
import cv2
import numpy as np

from birefvid.errors import DataError, SourceError, input_not_found, option
from birefvid.eval.metrics import Evaluator
from birefvid.extensions import MASK_EXTENSIONS, VIDEO_EXTENSIONS
from birefvid.io.animated_source import AnimatedWebPSource, is_animated_webp
from birefvid.io.base import ffmpeg_name
from birefvid.io.formats import has_alpha
from birefvid.io.image_source import decode_picture, natural_key, is_glob, list_images, name_key
from birefvid.io.readback import decode_video_frames
from birefvid.io.video_source import (decodable_video_stream, ffmpeg_reason, main_video_stream, mp4_index_problem, mpegts_cut_off,
                                      mpegts_damaged_end, structural_damage)

log = logging.getLogger(__name__)
PathLike = Union[str, Path]
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_PALETTE = 3  # IHDR colour type of indexed-colour PNGs
VOID_INDEX = 255  # DAVIS / PASCAL VOC label of unlabelled pixels in a colour-palette annotation


def _palette_mask(data: np.ndarray, path: Path) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """An indexed PNG as (mask, void): its grey levels if the palette is grey and covers every index used
    (a label map written without a palette has a one-entry one), else 255 wherever the index is neither
    0 nor void, with the void pixels (index 255) apart, or None when there are none."""
    from PIL import Image  # Pillow comes with torchvision; cv2 would turn indices into colours

    try:
        with Image.open(io.BytesIO(data.tobytes())) as im:
            index = np.asarray(im)
            palette = np.asarray(im.getpalette() or [0, 0, 0], np.uint8).reshape(-1, 3)
    except OSError as exc:
        raise SourceError(f"{path} is not a readable image ({exc})") from exc
    if (palette == palette[:, :1]).all() and int(index.max()) < len(palette):
        lut = np.zeros(256, np.uint8)
        lut[: len(palette)] = palette[:, 0]
        return lut[index], None
    void = index == VOID_INDEX
    mask = np.where((index != 0) & ~void, np.uint8(255), np.uint8(0))
    return mask, (void if void.any() else None)


def _objects(path: Path) -> int:
    """Objects a palette annotation labels (its indices other than 0 and void; DAVIS 2017 numbers each object);
    1 for any other image."""
    data = np.fromfile(str(path), dtype=np.uint8)
    if not (data.size > 26 and data[:8].tobytes() == _PNG_SIGNATURE and data[25] == _PNG_PALETTE):
        return 1
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data.tobytes())) as im:
            index = np.asarray(im)
            palette = np.asarray(im.getpalette() or [0, 0, 0], np.uint8).reshape(-1, 3)
    except OSError:
        return 1  # scoring names the unreadable file
    if (palette == palette[:, :1]).all() and int(index.max()) < len(palette):
        return 1  # grey levels, not labels
    return len(set(np.unique(index).tolist()) - {0, VOID_INDEX})


def _read_image(path: Path) -> tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
    """One image as (grey, alpha, void): its palette foreground, grey level or luminance, its alpha plane if it
    has one, and its void pixels if it is a palette annotation that has some."""
    data = np.fromfile(str(path), dtype=np.uint8)
    if data.size > 26 and data[:8].tobytes() == _PNG_SIGNATURE and data[25] == _PNG_PALETTE:
        mask, void = _palette_mask(data, path)
        return mask, None, void
    if path.suffix.lower() == ".exr":
        _enable_openexr(path)
    image = decode_picture(data, cv2.IMREAD_UNCHANGED, path)  # SourceError saying why, for a picture it cannot read
    if image.dtype.kind == "f":
        image = _float_alpha(image, path)
    if image.ndim == 2:
        return image, None, None
    alpha = image[..., 3] if image.shape[2] == 4 else None
    colour = image[..., :3] if image.shape[2] >= 3 else image[..., :1]
    if colour.shape[2] == 1 or (colour[..., :1] == colour).all():
        return np.ascontiguousarray(colour[..., 0]), alpha, None
    labels = _colour_labels(colour) if colour.dtype == np.uint8 else None
    if labels is not None:
        return labels[0], alpha, labels[1]
    return cv2.cvtColor(np.ascontiguousarray(colour), cv2.COLOR_BGR2GRAY), alpha, None


OPENEXR_ENV = "OPENCV_IO_ENABLE_OPENEXR"


def _enable_openexr(path: Path) -> None:
    """Let OpenCV decode OpenEXR, which its wheels build in but leave off (its decoder has had security fixes: see
    opencv/opencv#21326). Turned on only here, when a mask named .exr is read, so a picture sent to ``serve``
    is never decoded as EXR; OpenCV reads the variable at its first EXR decode. One a user set to 0 is kept, and
    reading ``path`` is then a SourceError saying so (OpenCV's own message is a C++ exception's)."""
    value = os.environ.setdefault(OPENEXR_ENV, "1")
    if value.strip().lower() in ("0", "false", "off", "no", "disabled"):
        raise SourceError(f"{path} is OpenEXR, which {OPENEXR_ENV}={value} turns off in OpenCV; unset it to read EXR masks")


def _float_alpha(image: np.ndarray, path: Path) -> np.ndarray:
    """A float picture (a 32-bit TIFF matte from Nuke, After Effects or a matting set) as float32 alpha in [0, 1]:
    clipped, as a compositor clips it (a premultiplied render overshoots by a hair), so soft edges stay soft; a
    DataError naming the file for NaN or infinity, which no score or loss can use (not an unreadable file: its
    content is wrong)."""
    if not np.isfinite(image).all():
        raise DataError(f"{path} holds NaN or infinite values; a float mask must hold alpha in [0, 1]")
    return np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)


def is_soft(mask: np.ndarray) -> bool:
    """True for a float mask: alpha in [0, 1] as it is, never a 0/1 mask to be expanded nor 8/16-bit levels."""
    return mask.dtype.kind == "f"


LABEL_COLOURS = 32  # at most this many flat colours, black among them: a label map, not a picture
_VOC_VOID_BGR = (192, 224, 224)  # PASCAL VOC's unlabelled colour (224, 224, 192), index 255 of its palette


def _colour_labels(bgr: np.ndarray) -> Optional[tuple[np.ndarray, Optional[np.ndarray]]]:
    """A label map saved as RGB (CVAT's and others' exports, a palette annotation converted) as (mask, void):
    foreground wherever the colour is not black, as a palette annotation's objects are (by luminance VOC's dark
    red object was 38/255, trained and scored as background); None for an image of more colours."""
    packed = (bgr[..., 0].astype(np.uint32) << 16) | (bgr[..., 1].astype(np.uint32) << 8) | bgr[..., 2]
    colours = np.unique(packed)
    if len(colours) > LABEL_COLOURS or colours[0] != 0:
        return None
    b, g, r = _VOC_VOID_BGR
    void = packed == ((b << 16) | (g << 8) | r)
    mask = np.where((packed != 0) & ~void, np.uint8(255), np.uint8(0))
    return mask, (void if void.any() else None)


def read_mask(path: Path, by_alpha: bool = True, zero_one: bool = False) -> np.ndarray:
    """One image as an (H, W) mask: its alpha (``by_alpha``, if it has one), else its grey level, palette
    foreground or luminance (uint8, uint16, or float32 in [0, 1] for a float picture); ``zero_one``: the image
    holds 0/1 masks, returned as 0/255 (a float mask is never one: its 1 is full alpha already)."""
    return read_mask_void(path, by_alpha, zero_one)[0]


def read_mask_void(path: Path, by_alpha: bool = True, zero_one: bool = False) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """``read_mask`` and the image's void pixels (palette index 255; None when it has none)."""
    grey, alpha, void = _read_image(path)
    if by_alpha and alpha is not None:
        return alpha, None
    return (np.where(grey > 0, np.uint8(255), np.uint8(0)) if zero_one and not is_soft(grey) else grey), void


def image_mask_rule(files: tuple[Path, ...]) -> tuple[bool, bool]:
    """(by_alpha, zero_one) for a clip of images (or a training set's masks, ``birefvid.data.folders``),
    decided over the clip as for videos: alpha counts when some image is transparent somewhere (an opaque
    RGBA or grey+alpha PNG is a mask saved with alpha); grey levels that are all 0 or 1 are masks saved as
    0/1 (read as 1/255 they would all be background). A float picture is alpha in [0, 1] and no 0/1 mask: its
    maximum under 2 said 0/1, and every soft edge was read as full foreground. Reading stops at the first image
    that settles both, so ordinary masks cost one extra decode."""
    top, levels = 0, False  # the highest integer grey level seen; whether any integer mask was seen
    for f in files:
        grey, alpha, _ = _read_image(f)
        if alpha is not None and _transparent(alpha):
            return True, False
        if is_soft(grey):
            if alpha is None:  # a set of float mattes; 0/1 integer masks seen before it are still 0/1
                return False, levels and top <= 1
            continue
        top, levels = max(top, int(grey.max())), True
        if top > 1 and alpha is None:
            return False, False
    return False, levels and top <= 1


def _brightness(rgb: np.ndarray) -> np.ndarray:
    """An (H, W, 3) RGB picture's grey level: the channel itself when the picture is grey, else its luminance."""
    if (rgb == rgb[..., :1]).all():
        return np.ascontiguousarray(rgb[..., 0])
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def _transparent(alpha: np.ndarray) -> bool:
    """True when an alpha plane (8 or 16 bit, or float in [0, 1]) is not fully opaque somewhere."""
    opaque = 1.0 if is_soft(alpha) else np.iinfo(alpha.dtype).max
    return bool((alpha < opaque).any())


def _alpha_plane(frame: av.VideoFrame) -> np.ndarray:
    """A frame's alpha at its own depth: the alpha plane itself where the format keeps one (ProRes 4444's 10
    or 12 bits as value / (2^bits - 1), 16 bits as uint16, 8 bits as uint8), else via 16-bit RGBA.
    swscale's 8-bit RGBA read soft 10/12-bit alpha half a level high (up to 1.25 levels off)."""
    fmt = frame.format
    comp = next(c for c in fmt.components if c.is_alpha)
    if not fmt.is_planar or sum(c.plane == comp.plane for c in fmt.components) != 1:
        return frame.to_ndarray(format="rgba" if comp.bits == 8 else "rgba64le")[..., 3]
    plane = frame.planes[comp.plane]
    dtype = np.dtype(np.uint8) if comp.bits <= 8 else np.dtype(">u2" if fmt.is_big_endian else "<u2")
    rows = np.frombuffer(memoryview(plane), dtype).reshape(plane.height, plane.line_size // dtype.itemsize)
    alpha = rows[:, : plane.width].astype(dtype.newbyteorder("="))
    if comp.bits in (8, 16):
        return alpha
    return alpha / float((1 << comp.bits) - 1)


def _frame_mask(frame: av.VideoFrame, by_alpha: bool = True) -> np.ndarray:
    """One decoded frame as an (H, W) mask: its alpha (``by_alpha``, for formats that have one, at its own
    depth), or its luminance (16 bit for deep grey formats)."""
    fmt = frame.format
    if has_alpha(fmt.name):
        if by_alpha:
            return _alpha_plane(frame)
        return _brightness(frame.to_ndarray(format="rgba")[..., :3])
    if fmt.name.startswith("gray") and fmt.name not in ("gray", "gray8"):
        return frame.to_ndarray(format="gray16le")
    return frame.to_ndarray(format="gray")


def _video_has_transparency(path: str) -> bool:
    """True when some frame of the video at ``path`` has alpha below opaque. False at the first frame
    for a format without alpha; a cut-out shows its transparency within the first frames, so only a
    clip that is opaque throughout (a mask saved as GIF, which PyAV decodes as bgra) is read to its end."""
    for frame in decode_video_frames(path):
        if not has_alpha(frame.format.name):
            return False
        if _transparent(frame.to_ndarray(format="rgba")[..., 3]):
            return True
    return False


LOSSLESS_CODECS = frozenset({"ffv1", "png", "rawvideo", "utvideo", "huffyuv", "ffvhuff", "qtrle", "apng", "magicyuv"})


def _video_zero_one(path: str) -> bool:
    """True for a grey mask video in a lossless codec whose levels are all 0 or 1 (labels written as a video), which
    read as 0 and 1/255 scored a perfect prediction IoU 0; as a folder of images is read. Decoding stops at the first
    level over 1, the first frame with a subject in an ordinary mask video. A lossy one is never taken for it: a
    background-only stretch of H.264 can hold only the levels 0 and 1 of its noise."""
    with av.open(ffmpeg_name(path)) as container:
        stream = main_video_stream(container)
        if stream is None or stream.codec_context is None or stream.codec_context.name not in LOSSLESS_CODECS:
            return False
    ones = False
    for frame in decode_video_frames(path):
        top = int(_frame_mask(frame, by_alpha=False).max())
        if top > 1:
            return False
        ones = ones or top == 1
    return ones


def _animated_webp_masks(path: str) -> Iterator[np.ndarray]:
    """Every frame of an animated WebP (decoded as ``process`` reads it, with Pillow): its alpha, or its
    brightness when every frame is opaque (a mask saved as WebP)."""
    with AnimatedWebPSource(path) as source:
        count = source.info.frame_count or 0
        by_alpha = any(px.shape[2] == 4 and _transparent(px[..., 3]) for px in map(source.pixels, range(count)))
        for index in range(count):
            pixels = source.pixels(index)
            yield pixels[..., 3] if by_alpha and pixels.shape[2] == 4 else _brightness(pixels[..., :3])


COLOUR_SPREAD = 48  # a pixel whose channels differ by more than this is coloured, not grey
COLOUR_SHARE = 0.05  # a picture with more coloured pixels than this share is a picture, not a mask


def _colour_picture(rgb: np.ndarray) -> bool:
    """True for an (H, W, 3) 8-bit picture with colour in it (a green-screen or composite output), not a grey mask."""
    spread = rgb.max(axis=2).astype(np.int16) - rgb.min(axis=2)
    return float(np.mean(spread > COLOUR_SPREAD)) > COLOUR_SHARE


def _colour_picture_file(path: Path) -> bool:
    """True for an image read by its luminance although it has colour in it (not a label map saved as RGB)."""
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    return image is not None and _colour_picture(image) and _colour_labels(image) is None


def _warn_colour(path: str, role: str) -> None:
    """Say that a clip of colour pictures is scored by brightness: a green-screen output scored IoU 0.0008, unexplained;
    for the ground truth (the source video given for it), that it should be masks, not how to make predictions."""
    if role == "ground truth":
        log.warning("ground truth %s holds colour pictures, scored by their brightness: give the true masks, not the "
                    "footage they were made for", path)
        return
    log.warning("%s holds colour pictures, scored by their brightness: a green-screen, composite or blur output is "
                "no mask (score an --output mask or alpha one)", path)


@dataclass(frozen=True)
class MaskClip:
    """One clip of masks: a video (``files`` is None) or images in order; iterating yields (H, W) arrays."""

    path: str
    files: Optional[tuple[Path, ...]] = None
    animated_webp: bool = False  # read with Pillow: FFmpeg (and OpenCV) decode a WebP's first frame only
    role: str = "predictions"  # or "ground truth": what a warning calls it

    @property
    def count(self) -> Optional[int]:
        """Frames in the clip when known without decoding (images), else None."""
        return None if self.files is None else len(self.files)

    def __iter__(self) -> Iterator[np.ndarray]:
        """Each frame's mask, decoded as it is needed."""
        return (mask for mask, _ in self.frames())

    def frames(self) -> Iterator[tuple[np.ndarray, Optional[np.ndarray]]]:
        """Each frame's (mask, void pixels or None), decoded as it is needed; only annotations have void."""
        if self.files is not None:
            by_alpha, zero_one = image_mask_rule(self.files)
            if self.files and not by_alpha and _colour_picture_file(self.files[0]):
                _warn_colour(self.path, self.role)
            for f in self.files:
                yield read_mask_void(f, by_alpha, zero_one)
            return
        if self.animated_webp:
            yield from ((mask, None) for mask in _animated_webp_masks(self.path))
            return
        try:
            # alpha counts where the clip has transparency; a fully opaque one (a mask GIF) by its brightness
            by_alpha = _video_has_transparency(self.path)
            zero_one = not by_alpha and _video_zero_one(self.path)
            for index, frame in enumerate(decode_video_frames(self.path)):
                if index == 0 and not by_alpha and _colour_picture(frame.to_ndarray(format="rgb24")):
                    _warn_colour(self.path, self.role)
                mask = _frame_mask(frame, by_alpha)
                yield (np.where(mask > 0, np.uint8(255), np.uint8(0)) if zero_one else mask), None
        except av.error.FFmpegError as exc:
            raise SourceError(f"{self.path} could not be decoded ({ffmpeg_reason(exc)}); the file is damaged") from exc


MATTE_FOLDER = "pha"  # VideoMatte240K / RVM: the alpha mattes, beside the foregrounds in fgr/


def matte_folder(path: PathLike) -> Path:
    """``path/pha`` when ``path`` is a folder holding one (the VideoMatte240K / RVM layout, where ``fgr/``
    beside it holds foreground colours, not mattes), else ``path``."""
    p = Path(path)
    return p / MATTE_FOLDER if (p / MATTE_FOLDER).is_dir() else p


def open_masks(path: PathLike, role: str = "masks") -> MaskClip:
    """A folder or glob of images (a clip's ``pha/`` for a matting layout), one image, or a video, as a clip;
    ``role`` names it in errors."""
    text, p = str(path), Path(path)
    if p.is_dir() and matte_folder(p) != p:
        text, p = str(matte_folder(p)), matte_folder(p)
    if not p.exists():
        if is_glob(text):
            return MaskClip(text, tuple(list_images(text, MASK_EXTENSIONS)), role=role)
        raise SourceError(input_not_found(text, role))
    if p.is_dir():
        return MaskClip(text, tuple(list_images(p, MASK_EXTENSIONS)), role=role)
    if is_animated_webp(p):
        return MaskClip(text, animated_webp=True, role=role)
    if p.suffix.lower() in MASK_EXTENSIONS:
        return MaskClip(text, (p,), role=role)
    index_problem = mp4_index_problem(p)
    try:
        container = av.open(ffmpeg_name(text))
    except (av.error.FFmpegError, OSError) as exc:
        if index_problem:
            raise SourceError(f"{role} {text} is not a readable video: {index_problem}") from exc
        raise SourceError(f"{role} {text} is neither an image nor a readable video ({ffmpeg_reason(exc)})") from exc
    with container:  # process's checks, so a video process refuses is not scored from what is left of it
        if index_problem and "cut off" in index_problem:  # the frames past the cut would be missing, unsaid
            raise SourceError(f"{role} {text} is not a whole video: {index_problem}")
        stream = decodable_video_stream(container, f"{role} {text}")  # a song's cover is no video; a damaged time scale
        damage = structural_damage(p, container.format.name)
        if damage:  # a Matroska/WebM file or GIF cut off: its last frames are missing
            raise SourceError(f"{role} {text} is not a whole video: {damage}")
        cut = mpegts_cut_off(p, container.format.name)
        if cut:  # as process: kept, but said (a truth and a prediction cut alike were scored with nothing said)
            log.warning("%s %s: %s; its frames before the cut are scored, as ffmpeg reads them", role, text, cut)
        end = None if cut else mpegts_damaged_end(p, container.format.name, stream.index)
        if end:  # as process: kept, but said (the clips were scored with nothing said though frames may be gone)
            log.warning("%s %s: %s; its frames read are scored", role, text, end)
    return MaskClip(text, role=role)


def sequence_folders(path: PathLike) -> Optional[list[Path]]:
    """The sequences of a DAVIS-style root: its folders and videos (VideoMatte240K's ``test/pha/0000.mp4``),
    with no images beside them; else None."""
    p = Path(path)
    if not p.is_dir():
        return None
    entries = [e for e in p.iterdir() if not e.name.startswith(".")]
    sequences = [e for e in entries if e.is_dir() or (e.is_file() and e.suffix.lower() in VIDEO_EXTENSIONS)]
    if not sequences or any(e.suffix.lower() in MASK_EXTENSIONS for e in entries if e.is_file()):
        return None
    return sorted(sequences, key=natural_key)


def sequence_name(path: Path) -> str:
    """A sequence's name: its folder's name, or its video's name without the extension."""
    return path.name if path.is_dir() else path.stem


def _prediction_for(root: Path, name: str) -> Optional[Path]:
    """PRED/<name>/ or the one PRED/<name>.<video extension>, if present; names compared in composed form
    (``name_key``: truth from a Mac is named decomposed), and ``[1]`` or ``*`` in them is no pattern."""
    if (root / name).is_dir():
        return root / name
    key, entries = name_key(name), sorted(root.iterdir())
    folders = [e for e in entries if e.is_dir() and name_key(e.name) == key]
    if folders:
        return folders[0]
    videos = [f for f in entries if name_key(f.name).startswith(key + ".") and f.suffix.lower() in VIDEO_EXTENSIONS and f.is_file()]
    if len(videos) > 1:
        raise DataError(f"predictions hold several videos for sequence {name!r}: {', '.join(v.name for v in videos)}")
    return videos[0] if videos else None


def _check_not_a_level_too_high(folders: list[Path], gt: PathLike) -> None:
    """DataError when the "sequences" hold only folders: DAVIS' ``Annotations/`` given for ``Annotations/480p/``
    (a matting clip's ``pha/`` + ``fgr/`` folders are one sequence, looked at through its ``pha/``)."""
    if all(sequence_folders(m) is not None and not any(_images_in(m)) for m in map(matte_folder, folders)):
        shown = ", ".join(f.name for f in folders[:3])
        raise DataError(f"ground truth {gt} holds folders of sequence folders ({shown}): give one of them, "
                        f"e.g. {Path(gt) / folders[0].name}")


def _images_in(folder: Path) -> Iterator[Path]:
    return (e for e in folder.iterdir() if e.is_file() and e.suffix.lower() in MASK_EXTENSIONS)


def sequence_names(text: str) -> list[str]:
    """Sequence names from ``--sequences``: a file of one name per line (DAVIS ImageSets), or names split by commas."""
    p = Path(text)
    if p.is_file():
        try:
            lines = p.read_text().split()
        except (OSError, UnicodeDecodeError) as exc:
            raise SourceError(f"cannot read the sequence list {text}: {exc}") from exc
    else:
        lines = text.split(",")
    names = list(dict.fromkeys(n.strip() for n in lines if n.strip()))
    if not names:  # "" (an unset shell variable) said "the sequence list  names no sequence", naming no option
        if p.is_file():
            raise DataError(f"{option('sequences')} {text}: the file names no sequence (one name a line, as DAVIS' ImageSets/2017/val.txt)")
        raise DataError(f"{option('sequences')} {text!r} names no sequence: give names separated by commas (bear,car) or a file of one name a line")
    return names


def _select(sequences: list[Path], names: list[str], gt: PathLike) -> list[Path]:
    """The ground-truth sequence folders named, in the list's order; a name GT lacks is a DataError."""
    by_name = {sequence_name(s): s for s in sequences}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise DataError(f"ground truth {gt} has no sequence {shown}")
    return [by_name[n] for n in names]


def _check_not_sequences(pred: PathLike, gt: PathLike) -> None:
    """DataError when the predictions are a folder of sequences (folders or videos, as ``eval`` takes beside a DAVIS-style
    ground truth) but the ground truth is one clip: it said "no images found in PRED", of a folder full of masks."""
    found = sequence_folders(pred)
    if found is None:
        return
    shown = ", ".join(sequence_name(f) for f in found[:3]) + (", ..." if len(found) > 3 else "")
    raise DataError(f"predictions {pred} hold sequences ({shown}) but ground truth {gt} is one clip: give a folder of "
                    f"ground-truth sequences named alike, or one prediction, e.g. {found[0]}")


def pair_clips(
    pred: PathLike, gt: PathLike, sequences: Optional[list[str]] = None
) -> list[tuple[str, MaskClip, MaskClip]]:
    """(sequence name, prediction clip, ground-truth clip) pairs: one unnamed pair, or one per DAVIS sequence
    (only the ``sequences`` named, when given). A folder holding ``pha/`` stands for that ``pha/``."""
    pred, gt = matte_folder(pred), matte_folder(gt)
    folders = sequence_folders(gt)
    if folders is None:
        if sequences is not None:
            raise DataError(f"--sequences needs a ground truth of sequence folders (DAVIS Annotations layout), not {gt}")
        _check_not_sequences(pred, gt)
        return [("", open_masks(pred, "predictions"), open_masks(gt, "ground truth"))]
    _check_not_a_level_too_high(folders, gt)
    if sequences is not None:
        folders = _select(folders, sequences, gt)
    root = Path(pred)
    if not root.is_dir():
        raise DataError(f"ground truth {gt} is a folder of sequences, so predictions must be a folder too, not {pred}")
    pairs: list[tuple[str, MaskClip, MaskClip]] = []
    missing: list[str] = []
    for seq in folders:
        name = sequence_name(seq)
        found = _prediction_for(root, name)
        if found is None:
            missing.append(name)
        else:
            pairs.append((name, open_masks(found, "predictions"), open_masks(seq, "ground truth")))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        hint = "" if sequences is not None else "; --sequences scores a subset (e.g. DAVIS' ImageSets/2017/val.txt)"
        raise DataError(f"predictions in {pred} lack {len(missing)} of {len(folders)} ground-truth sequences "
                        f"({shown}); expected a folder or a video named after each{hint}")
    return pairs


def _size(a: np.ndarray) -> str:
    """WxH of an image array."""
    return f"{a.shape[1]}x{a.shape[0]}"


def _frame_number(path: Path) -> Optional[int]:
    """The last number in a file's stem (00004 of 'frame_00004.png'), or None."""
    digits = re.findall(r"\d+", path.stem)
    return int(digits[-1]) if digits else None


def _first_gap(pred: tuple[Path, ...], gt: tuple[Path, ...]) -> str:
    """For numbered image folders of different lengths, the first frame one side has and the other lacks
    (numbers aligned on the first file, so 1-based against 0-based still lines up); '' when not numbered."""
    p_nums, g_nums = [_frame_number(f) for f in pred], [_frame_number(f) for f in gt]
    if None in p_nums or None in g_nums:
        return ""
    offset = p_nums[0] - g_nums[0]  # type: ignore[operator]
    p_set, g_set = set(p_nums), {n + offset for n in g_nums}  # type: ignore[operator]
    for f, n in zip(gt, g_nums):
        if n + offset not in p_set:  # type: ignore[operator]
            return f"; the first ground-truth frame without a prediction is {f.name}"
    sparse = any(b - a != 1 for a, b in zip(g_nums, g_nums[1:]))  # type: ignore[operator]
    if offset and sparse and len(pred) > len(gt):  # 1-based predictions of every frame, 0-based annotations
        return (f"; the predictions are numbered from {pred[0].name}, the annotations from {gt[0].name}: number "
                "them alike (frame 0 as the annotations name it) and the annotated frames are paired by number")
    for f, n in zip(pred, p_nums):
        if n not in g_set:
            return (f"; prediction {f.name} has no ground-truth frame (frames pair in order: "
                    "keep only the predictions of annotated frames)")
    return ""


def _warn_if_renumbered(pred: tuple[Path, ...], gt: tuple[Path, ...], where: str) -> None:
    """Warn when numbered folders of as many frames pair in order although their numbers do not move together
    (00000, 00002, 00004 against 00000, 00001, 00002): a frame left out on one side shifts every pair after it.
    Predictions numbered 1, 2, 3 against every fifth frame (0, 5, 10) are no such case: ``process`` numbers the
    frames of YouTube-VOS' every-fifth-frame JPEGImages so."""
    p_nums, g_nums = [_frame_number(f) for f in pred], [_frame_number(f) for f in gt]
    if None in p_nums or None in g_nums or len(pred) != len(gt):
        return
    steps = {b - a for a, b in zip(g_nums, g_nums[1:])}  # type: ignore[operator]
    if len(steps) <= 1 and all(b - a == 1 for a, b in zip(p_nums, p_nums[1:])):  # type: ignore[operator]
        return
    for i, (pn, gn) in enumerate(zip(p_nums, g_nums)):
        if pn - gn != p_nums[0] - g_nums[0]:  # type: ignore[operator]
            log.warning("%sframes pair in order, not by their numbers: prediction %s is scored against ground truth %s; "
                        "a frame missing on one side shifts every pair after it", where, pred[i].name, gt[i].name)
            return


def _drain(it: Iterator[object]) -> int:
    """Frames left in ``it`` (decoded, not scored), to state both lengths in a mismatch error."""
    return sum(1 for _ in it)


def _annotated_frames(pred: tuple[Path, ...], gt: tuple[Path, ...]) -> Optional[tuple[Path, ...]]:
    """For sparse annotations (YouTube-VOS' every fifth frame), the predictions numbered as the annotated frames
    are (00005.png for 00005.png, frame_000005.png too), in the annotations' order; None unless each annotation
    has exactly one such prediction."""
    by_number: dict[int, Path] = {}
    for f in pred:
        n = _frame_number(f)
        if n is None or n in by_number:
            return None
        by_number[n] = f
    numbers = [_frame_number(f) for f in gt]
    if any(n is None or n not in by_number for n in numbers):
        return None
    return tuple(by_number[n] for n in numbers)  # type: ignore[index]


def _clip_starts(gt: tuple[Path, ...]) -> set[int]:
    """Indices of annotated frames that do not follow the one before (a gap in the numbers): no temporal pair
    spans a gap, since flicker and dtSSD compare consecutive frames."""
    numbers = [_frame_number(f) for f in gt]
    return {i for i in range(1, len(numbers)) if numbers[i] != numbers[i - 1] + 1}  # type: ignore[operator]


ANIMATION_SUFFIXES = (".gif", ".webp")  # process merges a WebP's repeated frames and leaves out a GIF's under 20 ms apart


def _animation_hint(pred: MaskClip, gt: MaskClip) -> str:
    """For a count mismatch where a side is an animated GIF or WebP, why: ``process`` merges a WebP frame that repeats
    the one before into it and leaves out GIF frames under 20 ms apart (as browsers play them), so a still stretch or
    a 60 fps clip scored "predictions have 3, ground truth has 6" with no word why; '' otherwise."""
    clip = next((c for c in (pred, gt) if c.files is None and Path(c.path).suffix.lower() in ANIMATION_SUFFIXES), None)
    if clip is None:
        return ""
    return (f"; {clip.path} is an animated picture, which holds a frame that repeats the one before as one longer frame "
            "(WebP), or leaves out frames under 20 ms apart (GIF): score a mask video or image folder instead "
            "(--output mask -o masks.mkv)")


def _part_hint(pred: MaskClip, gt: MaskClip, pred_n: int, gt_n: int) -> str:
    """For predictions fewer than the truth's frames, the likely cause: ``process --start/--end`` cut out a part (its
    output records no trim to read back, and eval scores whole clips), so "predictions have 7, ground truth has 20"
    left the user to guess; '' when the predictions are not fewer, an animated picture explains it, or numbered
    prediction files skip a number (a frame lost from the middle, not a part), or the predictions are one still picture:
    process writes a part as a video or a folder, never one picture, so a mask of one image against a clip is not that."""
    if pred_n >= gt_n or _animation_hint(pred, gt) or Path(pred.path).is_file() and pred.files is not None:
        return ""
    numbers = [_frame_number(f) for f in pred.files or ()]
    if None not in numbers and any(b - a != 1 for a, b in zip(numbers, numbers[1:])):  # type: ignore[operator]
        return ""
    return (f"; if the predictions are a part of the video (process --start/--end), score them against the same {pred_n} "
            f"frame{'s' if pred_n != 1 else ''} of the truth: a folder or glob of just those masks, or the truth video cut to the same times")


def _scaled_hint(pred: np.ndarray, gt: np.ndarray) -> str:
    """For a prediction smaller than its truth in the same shape, the likely cause: ``process --max-size`` scaled the
    video down; '' otherwise."""
    (ph, pw), (gh, gw) = pred.shape[:2], gt.shape[:2]
    if ph >= gh or pw >= gw or abs(pw / ph - gw / gh) > 0.02 * gw / gh:
        return ""
    return " (a smaller picture of the same shape: made with --max-size? process without it to score these masks)"


def score_clip(ev: Evaluator, pred: MaskClip, gt: MaskClip, name: str = "") -> list[int]:
    """Feed one clip pair into ``ev`` frame by frame and return the frames scored (0, 1, ... in order; a sparse
    annotation's own numbers); a count or size mismatch is a one-line DataError. Image predictions of more frames
    than a sparse annotation are paired by frame number when each annotation has one."""
    where = f"sequence {name}: " if name else ""
    starts: set[int] = set()
    numbers: Optional[list[int]] = None
    if pred.files and gt.files and pred.count > len(gt.files):  # type: ignore[operator]
        picked = _annotated_frames(pred.files, gt.files)
        if picked is not None:
            pred, starts = MaskClip(pred.path, picked), _clip_starts(gt.files)
            numbers = [_frame_number(f) for f in gt.files]  # type: ignore[misc]
    if pred.count is not None and gt.count is not None and pred.count != gt.count:
        raise DataError(f"{where}frame counts differ: predictions {pred.path} have {pred.count}, "
                        f"ground truth {gt.path} has {gt.count}{_first_gap(pred.files or (), gt.files or ())}"
                        f"{_part_hint(pred, gt, pred.count, gt.count)}")
    if numbers is None and pred.files and gt.files:
        _warn_if_renumbered(pred.files, gt.files, where)
    ev.new_clip()
    it_p, it_g = iter(pred), gt.frames()
    n = 0
    for p in it_p:
        if n in starts:
            ev.new_clip()
        g, void = next(it_g, (None, None))
        if g is None:
            raise DataError(f"{where}frame counts differ: predictions {pred.path} have {n + 1 + _drain(it_p)}, "
                            f"ground truth {gt.path} has {n}{_animation_hint(pred, gt)}")
        if p.shape[:2] != g.shape[:2]:
            names = f" ({pred.files[n].name} vs {gt.files[n].name})" if pred.files and gt.files else ""
            raise DataError(f"{where}frame {n}{names}: prediction is {_size(p)} but ground truth is {_size(g)}; "
                            f"predictions must have the ground truth's size{_scaled_hint(p, g)}")
        ev.step(p, g, void)
        n += 1
    left = _drain(it_g)
    if left:
        raise DataError(f"{where}frame counts differ: predictions {pred.path} have {n}, ground truth {gt.path} has {n + left}"
                        f"{_animation_hint(pred, gt)}{_part_hint(pred, gt, n, n + left)}")
    if n == 0:
        raise DataError(f"{where}{pred.path} and {gt.path} hold no frames")
    return numbers if numbers is not None else list(range(n))


def evaluate_paths(
    pred: PathLike, gt: PathLike, *, threshold: float = 0.5, per_frame: bool = False, sequences: Optional[list[str]] = None
) -> dict:
    """Score predictions against ground truth on disk: summary, per-sequence results (DAVIS roots, only
    ``sequences`` when given) and optionally per-frame values."""
    pairs = pair_clips(pred, gt, sequences)
    # running sums: flat memory over any length, unless per_frame; 0/1 masks were found per clip as they were read
    ev = Evaluator(threshold, keep_frames=per_frame, zero_one=False)
    report: dict = {"predictions": str(pred), "ground_truth": str(gt), "threshold": threshold}
    scored: dict[str, dict[str, float]] = {}  # per sequence
    rows: list[dict] = []
    several: list[str] = []  # sequences whose annotations hold several objects, scored as their union
    for name, p_clip, g_clip in pairs:
        ev.new_part()
        numbers = score_clip(ev, p_clip, g_clip, name)
        if g_clip.files and _objects(g_clip.files[0]) > 1:
            several.append(name or g_clip.path)
        if name:
            scored[name] = _counted(ev.results(part=True))
        if per_frame:
            for number, rec in zip(numbers, ev.frames):
                rows.append({**({"sequence": name} if name else {}), "frame": number, **rec})
            ev.frames.clear()  # the rows hold them now
    report["summary"] = _counted(ev.results())
    if several:
        log.warning("%d of %d ground-truth clips (%s) annotate several objects: scored as one foreground, their union, "
                    "so J, F and J&F are not DAVIS 2017's per-object ones", len(several), len(pairs),
                    ", ".join(several[:3]) + (", ..." if len(several) > 3 else ""))
    if scored:
        report["sequences"] = scored
    if len(scored) > 1:
        report["sequence_mean"] = sequence_mean(scored)
    if per_frame:
        report["per_frame"] = rows
    return report


def sequence_mean(sequences: dict[str, dict]) -> dict:
    """The mean of each metric over the sequences, each counting once whatever its length (DAVIS' J&F Mean
    averages per-sequence means this way); ``frames`` is their total."""
    keys = dict.fromkeys(k for values in sequences.values() for k in values if k != "frames")
    out: dict = {"frames": sum(int(v["frames"]) for v in sequences.values())}
    for key in keys:
        out[key] = float(np.mean([v[key] for v in sequences.values() if key in v]))
    return out


def _counted(results: dict[str, float]) -> dict:
    """Results with the frame count as an int (JSON readers expect a count, not 24.0)."""
    return {**results, "frames": int(results["frames"])}
