"""Helpers for the batch tests (no tests here): clips with frequent keyframes and audio, reference runs, read-backs."""

from __future__ import annotations

import json
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np
import torch
from media import pattern_frame, tag_options

from birefvid.api import process_video
from birefvid.io.readback import iter_alpha

SIZE = (96, 64)
# every batch test runs the shipped tiny model at its smallest size (~0.1 s a frame on a CPU), on
# PyTorch in fp32: no export to wait for, and the same numbers in every process with the same threads
# the shared clips of conftest's ``batch_clips`` (frames): the long one has a keyframe every 6 frames -> 4 chunks of 6
LONG, SHORT = 24, 5
MODEL = ["--model", "tiny", "--resolution", "64", "--device", "cpu", "--backend", "torch", "--precision", "fp32"]
API_MODEL = {"model": "tiny", "resolution": 64, "device": "cpu", "backend": "torch", "precision": "fp32"}


def keyframed_clip(
    path: Path, n_frames: int, gop: int = 6, size: tuple[int, int] = SIZE, fps: int = 25, *, pts: list[int] | None = None, time_base: Fraction | None = None, bframes: int = 0,
    sample_aspect_ratio: Fraction | None = None, timecode: str | None = None, tags: dict[str, str] | None = None, reel_name: str | None = None,
    flip: str | None = None,
) -> Path:
    """H.264 + AAC clip with a keyframe every ``gop`` frames (so it splits into chunks) and a 440 Hz tone.

    ``pts``/``time_base`` give explicit (variable-rate) timestamps; ``bframes`` > 0 reorders frames; ``flip`` ("h" or "v"):
    a display matrix that mirrors the picture (a front camera's).
    """
    rate = 48000
    tb = time_base or Fraction(1, fps)
    stamps = pts if pts is not None else list(range(n_frames))
    options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "preset": "ultrafast", "bf": str(bframes)}
    with av.open(str(path), "w", container_options=tag_options(path, tags)) as out:
        out.metadata.update(tags or {})
        v = out.add_stream("libx264", rate=fps, options=options)
        v.width, v.height, v.pix_fmt = *size, "yuv420p"
        v.time_base = v.codec_context.time_base = tb
        if sample_aspect_ratio is not None:
            v.codec_context.sample_aspect_ratio = sample_aspect_ratio
        if flip is not None:
            v.set_display_rotation(0, hflip=flip == "h", vflip=flip == "v")
        if timecode is not None:
            v.metadata["timecode"] = timecode
        if reel_name is not None:  # a MOV/MP4 writes it into the timecode track
            v.metadata["reel_name"] = reel_name
        a = out.add_stream("aac", rate=rate)
        a.codec_context.layout = "mono"
        done = 0
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(pattern_frame(i, size), format="rgb24")
            frame.pts, frame.time_base = stamps[i], tb
            out.mux(v.encode(frame))
            stop = int((stamps[i] * tb + Fraction(1, fps)) * rate)
            while done < stop:
                k = min(1024, stop - done)
                t = np.arange(done, done + k) / rate
                af = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None], format="fltp", layout="mono")
                af.sample_rate, af.pts, af.time_base = rate, done, Fraction(1, rate)
                out.mux(a.encode(af))
                done += k
        out.mux(v.encode(None))
        out.mux(a.encode(None))
    return path


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch threads: float sums, hence the last grey level, depend on the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def reference(src: Path, out: Path, **options) -> Path:
    """What ``birefvid process`` writes for ``src`` with these options."""
    process_video(src, out, overwrite=True, **API_MODEL, **options)
    return out


def video_facts(path: Path) -> dict:
    """Frame pts (decoded), the video time base, the audio codec and its decoded sample count."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        pts = [f.pts for f in c.decode(vs)]
        facts = {"pts": pts, "time_base": Fraction(vs.time_base), "audio": None, "samples": 0}
    with av.open(str(path)) as c:
        if c.streams.audio:
            facts["audio"] = c.streams.audio[0].codec_context.name
            facts["samples"] = sum(f.samples for f in c.decode(c.streams.audio[0]))
    return facts


def grey(path: Path, rgb: bool = False) -> list[np.ndarray]:
    """Every frame as uint8: the alpha (alpha/mask outputs) or the RGB pixels (``rgb``)."""
    if not rgb:
        return list(iter_alpha(path))
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]


def max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> int:
    assert len(a) == len(b), f"{len(a)} frames against {len(b)}"
    return max(int(np.abs(x.astype(np.int32) - y).max()) for x, y in zip(a, b))


def events(path: Path) -> list[dict]:
    """The JSON progress lines of a run."""
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def manifest(out_dir: Path) -> dict:
    return json.loads((out_dir / ".birefvid-batch" / "manifest.json").read_text())
