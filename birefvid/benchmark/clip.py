"""A generated test clip on disk: a moving subject over a panning background (``birefvid.data``), H.264."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path


def write_scene_clip(path: str | Path, n_frames: int, size: tuple[int, int] = (1280, 720), fps: int = 25) -> Path:
    """Write ``n_frames`` frames of (width, height) ``size`` to ``path`` (x264, yuv420p); returns the path."""
    import av

    from ..data.scenes import make_clip

    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "18"}
        for image, _ in make_clip(7, n_frames, (height, width)):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return Path(path)


def scene_frames(n: int, size: tuple[int, int]):
    """The first ``n`` frames of the generated clip as uint8 (N, 3, H, W): the model benchmark's input."""
    import numpy as np
    import torch

    from ..data.scenes import make_clip

    width, height = size
    images = [image for image, _ in make_clip(7, n, (height, width))]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
