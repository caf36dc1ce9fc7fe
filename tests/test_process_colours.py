"""A colourist's checks of `birefvid process`: where the matte is 1, an output decoded by FFmpeg's own
command line gives the source's colours back, and it carries the source's colour tags.

The model here keeps everything (alpha 1), so every pixel of the output should be the source's; the
clips are colour bars, whose flat patches are compared away from their edges (4:2:0 chroma blends there).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from birefvid.cli import main

SIZE = (320, 180)


class KeepAll(torch.nn.Module):
    """Logits strongly positive everywhere: alpha 1 on every pixel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x[:, :1], 40.0)


@pytest.fixture()
def keep_all(monkeypatch):
    """The keep-everything model, loaded in place of --model's by the commands."""
    from birefvid.runtime import Segmenter

    seg = Segmenter(module=KeepAll(), resolution=64, device="cpu", precision="fp32")
    monkeypatch.setattr("birefvid.runtime.file_job.segmenter_for", lambda *a, **k: seg)
    return seg


def bars_clip(path: Path, pix_fmt: str, *tags: str) -> Path:
    """Two frames of HD colour bars, lossless H.264 (``-qp 0``), in ``pix_fmt`` with the given ffmpeg tag options."""
    w, h = SIZE
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"smptehdbars=s={w}x{h}:r=25", "-frames:v", "2",
                    "-c:v", "libx264", "-qp", "0", "-pix_fmt", pix_fmt, *tags, str(path)], check=True)  # fmt: skip
    return path


def yuv_samples(path: Path, pix_fmt: str) -> np.ndarray:
    """The first frame's Y, U and V planes as FFmpeg's command line decodes them, unconverted (4:4:4 upsampled)."""
    decoder = ["-c:v", "libvpx-vp9"] if path.suffix == ".webm" else []
    out = subprocess.run(["ffmpeg", "-v", "error", *decoder, "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"],
                         capture_output=True, check=True).stdout  # fmt: skip
    w, h = SIZE
    return np.frombuffer(out, np.uint8).reshape(3, h, w).astype(int)


def colour_tags(path: Path) -> tuple[str, str, str, str]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=color_space,color_range,color_primaries,color_transfer", "-of", "json", str(path)],
                         capture_output=True, check=True, text=True).stdout  # fmt: skip
    s = json.loads(out)["streams"][0]
    return s.get("color_space"), s.get("color_range"), s.get("color_primaries"), s.get("color_transfer")


def flat(plane: np.ndarray) -> np.ndarray:
    """Where ``plane`` is one value over a 9x9 neighbourhood: inside a bar, away from its edges."""
    p = plane.astype(np.uint8)
    k = np.ones((9, 9), np.uint8)
    return cv2.dilate(p, k) == cv2.erode(p, k)


@pytest.mark.parametrize("name", ["fg.mp4", "alpha.webm"])
def test_a_full_range_clip_keeps_its_chroma(tmp_path, keep_all, name):
    """A phone's or webcam's full-range clip: the cut-out's chroma is the source's, not a level low.

    FFmpeg 8.1's swscale rounds full-range 8-bit chroma down: every colour came back with U and V 0.9
    levels low on average (R and B 1.5 levels low in RGB, a green cast) in H.264 and VP9."""
    src = bars_clip(tmp_path / "phone.mp4", "yuvj420p", "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709")
    kind = "foreground" if name.startswith("fg") else "alpha"
    out = tmp_path / name
    assert main(["process", str(src), "-o", str(out), "--output", kind, "--no-foreground", "--smooth", "none", "-q"]) == 0
    assert colour_tags(out) == colour_tags(src) == ("bt709", "pc", "bt709", "bt709")
    want, got = yuv_samples(src, "yuvj444p"), yuv_samples(out, "yuvj444p")
    for plane in (1, 2):  # U, V
        where = flat(want[plane])
        diff = got[plane][where] - want[plane][where]
        assert abs(diff.mean()) < 0.2, f"plane {plane}: mean {diff.mean():.2f}"
        assert np.mean(diff == 0) > 0.8


def full_range_10_bit_clip(path: Path) -> Path:
    """Two frames of HD colour bars, lossless 10-bit 4:4:4 FFV1, full range BT.709 (a screen recording's or phone's)."""
    w, h = SIZE
    chain = "scale=out_range=pc:out_color_matrix=bt709,format=yuv444p10le,setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=pc"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"smptehdbars=s={w}x{h}:r=25", "-frames:v", "2",
                    "-vf", chain, "-color_range", "pc", "-c:v", "ffv1", str(path)], check=True)  # fmt: skip
    return path


def bt709_full_rgb(path: Path) -> np.ndarray:
    """The first frame of a full-range BT.709 4:4:4 clip as RGB on the 8-bit scale (float), by the formula:
    its samples as FFmpeg decodes them, unconverted."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "yuv444p10le", "-"],
                         capture_output=True, check=True).stdout  # fmt: skip
    w, h = SIZE
    y, u, v = np.frombuffer(out, "<u2").reshape(3, h, w).astype(float) / 1023
    u, v = u - 512 / 1023, v - 512 / 1023
    r, b = y + 1.5748 * v, y + 1.8556 * u
    g = (y - 0.2126 * r - 0.0722 * b) / 0.7152
    return np.clip(np.stack([r, g, b], -1) * 255, 0, 255)


def test_a_full_range_10_bit_clip_keeps_its_levels_at_8_bits(tmp_path, keep_all):
    """A 10-bit full-range clip into an 8-bit output: each colour is the formula's, rounded (it was up to 0.8
    levels bright, 0.5 on average: swscale takes 10-bit full-range white as 255.75)."""
    src = full_range_10_bit_clip(tmp_path / "screen.mkv")
    out = tmp_path / "cut"
    assert main(["process", str(src), "-o", str(out), "--bit-depth", "8", "--no-foreground", "--smooth", "none", "-q"]) == 0
    first = sorted(out.glob("*.png"))[0]
    got = subprocess.run(["ffmpeg", "-v", "error", "-i", str(first), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout  # fmt: skip
    got = np.frombuffer(got, np.uint8).reshape(SIZE[1], SIZE[0], 3).astype(float)
    want = bt709_full_rgb(src)
    diff = got - want
    assert np.abs(diff).max() <= 0.5 + 1e-6
    assert abs(diff.mean()) < 0.25
