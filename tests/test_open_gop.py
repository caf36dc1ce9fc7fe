"""Phone-style HEVC: open GOPs (x265's default), 10-bit HLG, variable frame rate, rotated; in `batch` chunks and `--start`.

An open GOP's keyframe is decoded before the frames it shows ahead of itself, so a seek to just before
it lands on it: chunks with a smoother's overlap then missed their first frames and the batch failed,
and a `--start` there read the whole file up to it again.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media import pattern_frame
from test_batch_media import MODEL, grey, manifest, max_diff, reference, video_facts

from birefvid.batch.plan import probe_video
from birefvid.cli import main
from birefvid.io.trim import TrimmedSource
from birefvid.io.video_source import VideoFileSource

N, GOP = 24, 6
SIZE = (64, 48)
TB = Fraction(1, 90000)
PTS = [sum((3000 if k % 4 else 4500) for k in range(i)) for i in range(N)]  # 30 fps with slower frames, as phones record

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # exact comparisons with process (conftest says why)


def phone_hevc(path: Path) -> Path:
    """10-bit HLG HEVC with open GOPs (a keyframe every ``GOP`` frames, B-frames), VFR, a display rotation, AAC."""
    params = f"keyint={GOP}:min-keyint={GOP}:scenecut=0:open-gop=1:bframes=3:log-level=error"
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx265", rate=30, options={"x265-params": params})
        v.width, v.height, v.pix_fmt = *SIZE, "yuv420p10le"
        v.time_base = v.codec_context.time_base = TB
        cc = v.codec_context
        cc.color_primaries, cc.color_trc, cc.colorspace = 9, 18, 9
        v.set_display_rotation(-90)
        for i, t in enumerate(PTS):
            frame = av.VideoFrame.from_ndarray(pattern_frame(i, SIZE), format="rgb24").reformat(format="yuv420p10le")
            frame.pts, frame.time_base = t, TB
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    return path


def test_open_gop_hevc_splits_into_chunks_equal_to_process(tmp_path):
    src = phone_hevc(tmp_path / "phone.mp4")
    probe = probe_video(src)
    assert probe is not None and len(probe.keyframes) >= 3  # it does split
    ref = reference(src, tmp_path / "ref.mkv", kind="mask")
    assert main(["batch", str(src), "--output-dir", str(tmp_path / "o"), "--output", "mask", "--chunk-frames", str(GOP), "-q", *MODEL]) == 0
    got = tmp_path / "o" / "phone.mkv"
    assert manifest(tmp_path / "o")["videos"]["phone.mkv"]["chunks"] >= 3
    g, r = video_facts(got), video_facts(ref)
    assert len(g["pts"]) == N and g["pts"] == r["pts"]
    assert max_diff(grey(got), grey(ref)) <= 1
    assert grey(got)[0].shape == (SIZE[0], SIZE[1])  # upright: portrait
    assert np.isclose(float(g["pts"][-1] * g["time_base"]), float(PTS[-1] * TB), atol=1e-3)


def test_a_start_just_before_an_open_gop_keyframe_seeks_instead_of_reading_from_the_top(tmp_path):
    """``--start`` two frames before the third keyframe: the frames from there, found by seeking (the
    file is not opened and read again from its start, which on a long phone clip took as long as decoding it)."""
    src = phone_hevc(tmp_path / "phone.mp4")
    key = probe_video(src).keyframes[2]
    start = float(PTS[key - 2] * TB)
    with VideoFileSource(src) as video:
        opened = video._container
        times = [float(f.pts * TB) for f in TrimmedSource(video, start)]
        assert video._container is opened, "read again from the start"
    assert times == pytest.approx([float((t - PTS[key - 2]) * TB) for t in PTS[key - 2 :]])
