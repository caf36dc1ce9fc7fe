"""Data that crosses stage boundaries: frames, batches of frames, stream facts.

Each is a small frozen dataclass that checks its own shapes on creation, so a malformed
batch fails where it is made, not three stages later.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Optional, Sequence

import numpy as np
import torch


@dataclass(frozen=True)
class StreamInfo:
    """Facts about a video source that sinks need to reproduce its timing and colour."""

    width: int
    height: int
    time_base: Fraction
    average_rate: Optional[Fraction] = None
    frame_count: Optional[int] = None
    duration: Optional[float] = None  # seconds
    color_range: Optional[int] = None  # libav AVColorRange value, as PyAV reports it
    colorspace: Optional[int] = None  # libav AVColorSpace value
    color_primaries: Optional[int] = None
    color_trc: Optional[int] = None
    sample_aspect_ratio: Optional[Fraction] = None  # width / height of one pixel when not square (DV, HDV, DVD)
    timecode: Optional[str] = None  # start timecode (HH:MM:SS:FF) from a camera or editor, for conforming
    reel_name: Optional[str] = None  # the reel (tape, card) that timecode belongs to: editors conform by both
    tags: tuple[tuple[str, str], ...] = ()  # the file's own tags (creation time, title, location) to carry over
    bit_depth: int = 8  # bits per colour sample as decoded (10 for 10-bit HEVC/ProRes/DNxHR, 12, 16): what a deep output can keep
    hdr10: Optional[str] = None  # an HDR10 source's mastering display and MaxCLL, as x265's parameters (io/hdr10.py)
    # pts count the frame numbers of a numbered image sequence from its first (plate.1001.png: 0), a gap in the numbers
    # (a failed render's) a gap in time: a PNG sequence names each frame by its number, a video writes the frame before a
    # gap again for each missing number (constant rate), an animation shows it longer
    numbered: bool = False
    # the pictures are RGB, gray or a palette (a PNG plate, a GIF, an APNG): ``colorspace`` is then no matrix of the
    # source's but the one chosen for its YUV outputs by their size (``io.untagged.rgb_matrix``), chosen again when resized
    rgb_pictures: bool = False
    # the source names no matrix and ``colorspace`` is the one it is read with by assumption (``--input-colors``): its
    # outputs keep it at the source's size, and choose by their own size when resized, as RGB pictures' do (``io.scale``)
    matrix_assumed: bool = False

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"StreamInfo needs a positive size, got {self.width}x{self.height}")


@dataclass(frozen=True)
class Frame:
    """One decoded frame: RGB pixels (H, W, 3) uint8 with its timestamp in ``time_base`` units.

    ``deep``, when the source was asked for it (a 10-bit or deeper video going to an output that keeps
    the depth), is the same picture as uint16 RGB (H, W, 3) in [0, 65535]: the model and the smoothers
    use ``image``, the compositor and the encoder ``deep``. ``seen``, when set, is what the model sees
    instead of ``image`` (uint8, the same shape): an HDR frame as SDR, the pictures it was trained on.
    ``coverage``, when the source has its own alpha (ProRes 4444, a PNG sequence, an APNG or WebP with
    transparency) and this frame is not wholly opaque, is that alpha, uint8 (H, W): the matte is
    multiplied by it, so what the source hides stays hidden, as ``birefvid image`` does for a picture.
    """

    image: np.ndarray
    pts: Optional[int]
    time_base: Fraction
    index: int
    deep: Optional[np.ndarray] = None
    seen: Optional[np.ndarray] = None
    coverage: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        img = self.image
        if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3):
            got = f"{type(img).__name__} {getattr(img, 'dtype', '')} {getattr(img, 'shape', '')}"
            raise ValueError(f"Frame.image must be a uint8 array of shape (H, W, 3), got {got}")
        deep = self.deep
        if deep is not None and not (isinstance(deep, np.ndarray) and deep.dtype == np.uint16 and deep.shape == img.shape):
            got = f"{type(deep).__name__} {getattr(deep, 'dtype', '')} {getattr(deep, 'shape', '')}"
            raise ValueError(f"Frame.deep must be a uint16 array of the image's shape {img.shape}, got {got}")
        seen = self.seen
        if seen is not None and not (isinstance(seen, np.ndarray) and seen.dtype == np.uint8 and seen.shape == img.shape):
            got = f"{type(seen).__name__} {getattr(seen, 'dtype', '')} {getattr(seen, 'shape', '')}"
            raise ValueError(f"Frame.seen must be a uint8 array of the image's shape {img.shape}, got {got}")
        cov = self.coverage
        if cov is not None and not (isinstance(cov, np.ndarray) and cov.dtype == np.uint8 and cov.shape == img.shape[:2]):
            got = f"{type(cov).__name__} {getattr(cov, 'dtype', '')} {getattr(cov, 'shape', '')}"
            raise ValueError(f"Frame.coverage must be a uint8 array of shape {img.shape[:2]}, got {got}")

    @property
    def time(self) -> Optional[float]:
        """Presentation time in seconds, or None when the source gave no pts."""
        return None if self.pts is None else float(self.pts * self.time_base)


@dataclass(frozen=True)
class FrameBatch:
    """Frames of one size stacked as a uint8 tensor (N, 3, H, W), with their pts and indices
    (and their deep pictures, uint16 (3, H, W) each, when the frames carry them: not stacked, since
    only the compositor uses them, which gathers its own batches; a 720p stack cost ~1.5 ms a frame),
    and ``seen``, what the model sees instead of ``images`` when the frames say (``Frame.seen``);
    ``coverage``, when any frame has its own alpha, each frame's (uint8 (H, W), None for an opaque one)."""

    images: torch.Tensor
    pts: tuple[Optional[int], ...]
    indices: tuple[int, ...]
    time_base: Fraction
    deep: Optional[tuple[torch.Tensor, ...]] = None
    seen: Optional[torch.Tensor] = None
    coverage: Optional[tuple[Optional[torch.Tensor], ...]] = None

    def __post_init__(self) -> None:
        x = self.images
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"FrameBatch.images must be uint8 (N, 3, H, W), got {x.dtype} {tuple(x.shape)}")
        if not (len(self.pts) == len(self.indices) == x.shape[0]):
            raise ValueError(
                f"FrameBatch has {x.shape[0]} images but {len(self.pts)} pts and {len(self.indices)} indices"
            )
        if self.deep is not None and (len(self.deep) != x.shape[0] or any(d.dtype != torch.uint16 or d.shape != x.shape[1:] for d in self.deep)):
            got = [f"{d.dtype} {tuple(d.shape)}" for d in self.deep]
            raise ValueError(f"FrameBatch.deep must be {x.shape[0]} uint16 {tuple(x.shape[1:])} pictures, got {got}")
        if self.seen is not None and (self.seen.dtype != torch.uint8 or self.seen.shape != x.shape):
            raise ValueError(f"FrameBatch.seen must be uint8 {tuple(x.shape)}, got {self.seen.dtype} {tuple(self.seen.shape)}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @classmethod
    def from_frames(cls, frames: Sequence[Frame]) -> "FrameBatch":
        """Stack same-sized frames into one batch (on the CPU)."""
        if not frames:
            raise ValueError("FrameBatch.from_frames needs at least one frame")
        arr = np.stack([f.image for f in frames])  # (N, H, W, 3)
        images = torch.from_numpy(arr).permute(0, 3, 1, 2)
        deep = None
        if all(f.deep is not None for f in frames):
            deep = tuple(torch.from_numpy(f.deep).permute(2, 0, 1) for f in frames)  # type: ignore[arg-type]
        seen = None
        if all(f.seen is not None for f in frames):
            seen = torch.from_numpy(np.stack([f.seen for f in frames])).permute(0, 3, 1, 2)  # type: ignore[misc]
        coverage = None
        if any(f.coverage is not None for f in frames):
            coverage = tuple(None if f.coverage is None else torch.from_numpy(f.coverage) for f in frames)
        return cls(
            images=images,
            pts=tuple(f.pts for f in frames),
            indices=tuple(f.index for f in frames),
            time_base=frames[0].time_base,
            deep=deep,
            seen=seen,
            coverage=coverage,
        )
