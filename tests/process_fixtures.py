"""Helpers for the ``birefvid process`` acceptance tests: a test model with a known answer and clips
whose true mask is known (import from any test: ``from process_fixtures import red_key_segmenter``).

The scene is a red square (the subject) moving over a blue background. The "red-key" module
returns logits ``40 * (R - B)`` of the normalised input, so its alpha is 1.0 (exactly, in float32)
on red pixels and 0.0 on blue ones, whatever the green channel holds; only pixels near the
square's edges get in-between values (the segmenter resizes to 64x64 and back). Checks therefore
look at the ``interior`` of the subject and of the background: pixels at least ``margin`` px away
from an edge.
"""

from __future__ import annotations

import os
import threading
from fractions import Fraction
from pathlib import Path
from typing import Optional, Sequence

import av
import cv2
import numpy as np
import torch

from media import GeneratedVideo, make_video

RED = (255, 0, 0)
BLUE = (0, 0, 255)


class RedKey(torch.nn.Module):
    """Logits from colour alone: strongly positive on red, strongly negative on blue."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 40 * (x[:, 0:1] - x[:, 2:3])


class FailingRedKey(RedKey):
    """RedKey that raises on its ``fail_at``-th call (1-based), as a model crashing mid-run would."""

    def __init__(self, fail_at: int = 3) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError(f"model exploded on call {self.calls}")
        return super().forward(x)


class OverflowsInHalf(torch.nn.Module):
    """Finite in fp32, NaN in lower precision: stands in for an fp16 overflow (the Segmenter recomputes in fp32 and warns)."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        logits = x[:, :1] * self.scale
        low = x.dtype != torch.float32 or torch.is_autocast_enabled(x.device.type)
        return logits * float("nan") if low else logits


def red_key_segmenter(module: Optional[torch.nn.Module] = None):
    """A CPU fp32 Segmenter at 64x64 around ``module`` (default: a fresh RedKey)."""
    from birefvid.runtime import Segmenter

    return Segmenter(module=module or RedKey(), resolution=64, device="cpu", precision="fp32")


def square_box(index: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the red square in frame ``index`` of a (width, height) clip."""
    w, h = size
    side = max(12, min(w, h) // 2)
    top = (h - side) // 2
    left = 4 + (3 * index) % max(1, w - side - 8)
    return top, left, side, side


def true_mask(index: int, size: tuple[int, int]) -> np.ndarray:
    """The subject mask (H, W) uint8, 255 on the square, 0 elsewhere."""
    w, h = size
    m = np.zeros((h, w), np.uint8)
    top, left, sh, sw = square_box(index, size)
    m[top : top + sh, left : left + sw] = 255
    return m


def scene_frame(index: int, size: tuple[int, int], textured: bool = False) -> np.ndarray:
    """RGB (H, W, 3): blue background (with green stripes when ``textured``) and the red square."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = BLUE
    if textured:  # the key ignores green, so stripes stay background; a blur visibly changes them
        x = np.arange(w)
        img[:, :, 1] = np.where((x // 3) % 2 == 0, 255, 0)[None, :]
    img[true_mask(index, size) > 0] = RED
    return img


def interior(mask: np.ndarray, margin: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (subject, background) pixels at least ``margin`` px from the subject's edge."""
    kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    fg = cv2.erode((mask > 0).astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE) > 0
    bg = cv2.erode((mask == 0).astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE) > 0
    assert fg.any() and bg.any(), "clip too small for the margin"
    return fg, bg


def make_scene(
    path: str | Path,
    n_frames: int = 6,
    size: tuple[int, int] = (64, 48),
    *,
    textured: bool = False,
    lossless: bool = True,
    **kwargs,
) -> GeneratedVideo:
    """A red-square clip. ``lossless`` (default) writes PNG-in-MOV so decoded pixels equal the frames exactly."""
    frames = [scene_frame(i, size, textured) for i in range(n_frames)]
    if lossless:
        kwargs.setdefault("codec", "png")
        kwargs.setdefault("pix_fmt", "rgb24")
    return make_video(path, n_frames=n_frames, size=size, frames=frames, **kwargs)


def write_scene_images(folder: str | Path, n: int, size: tuple[int, int]) -> list[Path]:
    """The red-square scene as ``f_000.png``... (an image-sequence input)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"f_{i:03d}.png"
        assert cv2.imwrite(str(p), cv2.cvtColor(scene_frame(i, size), cv2.COLOR_RGB2BGR))
        paths.append(p)
    return paths


def write_long_clip(path: str | Path, n_frames: int, size: tuple[int, int], fps: int = 25) -> None:
    """Stream an H.264 (ultrafast) red-square clip with AAC audio to ``path`` without holding its frames."""
    w, h = size
    rate = 48000
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        a = out.add_stream("aac", rate=rate)
        a.codec_context.layout = "mono"
        done = 0
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(scene_frame(i, size), format="rgb24")
            frame.pts = i
            out.mux(v.encode(frame))
            stop = (i + 1) * rate // fps
            while done < stop:
                k = min(1024, stop - done)
                t = np.arange(done, done + k) / rate
                samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
                af = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                af.sample_rate, af.pts, af.time_base = rate, done, Fraction(1, rate)
                out.mux(a.encode(af))
                done += k
        out.mux(v.encode(None))
        out.mux(a.encode(None))


def write_audio_only(path: str | Path, seconds: float = 0.3, *, cover: bool = False) -> Path:
    """An audio-only file (codec by extension: AAC for .m4a/.mp4, PCM for .wav); ``cover`` adds a cover
    picture, a one-frame MJPEG video stream marked attached_pic (as music files carry album art)."""
    path = Path(path)
    rate = 48000
    codec = "pcm_s16le" if path.suffix == ".wav" else "aac"
    with av.open(str(path), "w") as out:
        a = out.add_stream(codec, rate=rate)
        a.codec_context.layout = "mono"
        if cover:
            art = out.add_stream("mjpeg", rate=1)
            art.width, art.height, art.pix_fmt = 32, 32, "yuvj420p"
            art.disposition = av.stream.Disposition.attached_pic
            picture = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 200, np.uint8), format="rgb24").reformat(format="yuvj420p")
            picture.pts = 0
            out.mux(art.encode(picture) + art.encode(None))
        n = int(seconds * rate)
        for s in range(0, n, 1024):
            t = np.arange(s, min(n, s + 1024)) / rate
            samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
            fmt = "s16" if codec == "pcm_s16le" else "fltp"
            data = (samples * 32767).astype(np.int16) if fmt == "s16" else samples
            af = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
            af.sample_rate, af.pts, af.time_base = rate, s, Fraction(1, rate)
            out.mux(a.encode(af))
        out.mux(a.encode(None))
    return path


def decoded_times(path: str | Path) -> list[Fraction]:
    """Exact presentation times (seconds) of every video frame of ``path``, in decode order."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        tb = Fraction(s.time_base)
        return [f.pts * tb for f in c.decode(s)]


def partial_leftovers(folder: str | Path) -> list[str]:
    """Names in ``folder`` that look like a temporary output (``.NAME.partial-...``)."""
    return [n for n in os.listdir(folder) if ".partial" in n]


def birefvid_threads() -> list[str]:
    """Names of live threads the pipeline started."""
    return [t.name for t in threading.enumerate() if t.name.startswith("birefvid-")]


def max_err(a: np.ndarray, b: np.ndarray | Sequence[int], where: np.ndarray) -> int:
    """Largest absolute difference between ``a`` and ``b`` over the pixels selected by ``where``."""
    a = np.asarray(a).astype(np.int32)
    b = np.asarray(b).astype(np.int32)
    if b.ndim == a.ndim:
        b = b[where]
    return int(np.abs(a[where] - b).max())
