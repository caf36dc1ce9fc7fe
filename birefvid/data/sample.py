"""The README's sample clip, for installs that have no ``samples/`` folder (a wheel from pip).

``scene.mp4`` (H.264 + AAC tone) and its exact masks ``scene_mask.mkv`` come from birefvid's seeded
scene generator (a seed never used for training), so the true mask of every frame is known and the
README's main job can be scored against it. ``python -m birefvid.data.sample`` writes both into
``./samples``, where the README's commands read them; ``--out DIR`` elsewhere.
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path
from typing import Optional, Sequence

import av
import numpy as np

from birefvid.data.scenes import make_clip

SEED = 20261121  # held out: training uses other seeds (scripts/train_tiny.sh)
FRAMES = 48
FPS = 24
SIZE = (256, 256)  # (height, width)
AUDIO_RATE = 48000


def write_sample(folder: Path) -> tuple[Path, Path]:
    """Write the clip and its masks into ``folder``; returns their paths."""
    clip_path, mask_path = folder / "scene.mp4", folder / "scene_mask.mkv"
    with av.open(str(clip_path), "w") as clip, av.open(str(mask_path), "w") as masks:
        video = clip.add_stream("libx264", rate=FPS, options={"crf": "18", "preset": "medium"})
        video.width, video.height, video.pix_fmt = SIZE[1], SIZE[0], "yuv420p"
        audio = clip.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        mask_stream = masks.add_stream("ffv1", rate=FPS)
        mask_stream.width, mask_stream.height, mask_stream.pix_fmt = SIZE[1], SIZE[0], "gray"
        for i, (image, mask) in enumerate(make_clip(SEED, FRAMES, SIZE)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            clip.mux(video.encode(frame))
            gray = av.VideoFrame.from_ndarray(np.round(mask * 255).astype(np.uint8), format="gray")
            gray.pts, gray.time_base = i, Fraction(1, FPS)
            masks.mux(mask_stream.encode(gray))
        clip.mux(video.encode())
        masks.mux(mask_stream.encode())
        _write_tone(clip, audio, seconds=FRAMES / FPS)
    return clip_path, mask_path


def _write_tone(container: av.container.OutputContainer, stream: av.AudioStream, seconds: float) -> None:
    """A quiet two-note chime, so players and editors show that audio survived processing."""
    total = int(seconds * AUDIO_RATE)
    t = np.arange(total) / AUDIO_RATE
    tone = 0.2 * np.sin(2 * np.pi * np.where(t < seconds / 2, 440.0, 660.0) * t)
    samples = np.stack([tone, tone]).astype(np.float32)
    chunk = 1024
    for start in range(0, total, chunk):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start : start + chunk]), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = AUDIO_RATE, start
        container.mux(stream.encode(frame))
    container.mux(stream.encode())


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m birefvid.data.sample", description="write the README's sample clip and its exact masks")
    parser.add_argument("--out", type=Path, default=Path("samples"), help="folder to write scene.mp4 and scene_mask.mkv into (default: ./samples)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in write_sample(args.out):
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
