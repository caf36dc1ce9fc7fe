"""Interlaced input (DV, HDV, 1080i broadcast) is deinterlaced one frame per frame before anything sees it."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from birefvid.io import open_source
from birefvid.io.deinterlace import Deinterlacer

W, H, FRAMES = 128, 96, 10


def _scene(field_time: int) -> np.ndarray:
    """A box moving 6 px per field over a dark background."""
    img = np.full((H, W, 3), 40, np.uint8)
    x = 10 + 6 * field_time
    img[20:76, x : x + 24] = (230, 200, 60)
    return img


def _write_interlaced(path: Path, frames: int = FRAMES, gop: int = 250) -> Path:
    """Top field first: even rows from one instant, odd rows from half a frame later, coded as interlaced H.264
    (a keyframe every ``gop`` frames)."""
    params = f"interlaced=1:tff=1:keyint={gop}:min-keyint={gop}:scenecut=0"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"x264-params": params, "crf": "10"})
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i in range(frames):
            woven = _scene(2 * i)
            woven[1::2] = _scene(2 * i + 1)[1::2]
            out.mux(stream.encode(av.VideoFrame.from_ndarray(woven, format="rgb24")))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def interlaced(tmp_path_factory) -> Path:
    return _write_interlaced(tmp_path_factory.mktemp("interlaced") / "tff.mp4")


def comb(image: np.ndarray) -> float:
    """Mean distance of each row from the average of its neighbours: high where fields disagree (combing)."""
    g = image.astype(np.float32).mean(-1)
    return float(np.abs(g[1:-1] - (g[:-2] + g[2:]) / 2).mean())


def _decoded(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as c:
        return list(c.decode(video=0))


def test_the_fixture_is_interlaced_and_combed(interlaced):
    frames = _decoded(interlaced)
    assert len(frames) == FRAMES and all(f.interlaced_frame for f in frames)
    assert np.mean([comb(f.to_ndarray(format="rgb24")) for f in frames]) > 4


def test_deinterlacer_gives_one_progressive_frame_per_frame_with_the_same_timestamps(interlaced):
    raw = _decoded(interlaced)
    out = list(Deinterlacer()(iter(_decoded(interlaced))))
    assert [f.pts for f in out] == [f.pts for f in raw]
    assert all(f.time_base == raw[0].time_base for f in out)
    assert not any(f.interlaced_frame for f in out)
    raw_comb = np.mean([comb(f.to_ndarray(format="rgb24")) for f in raw])
    out_comb = np.mean([comb(f.to_ndarray(format="rgb24")) for f in out])
    assert out_comb < 0.35 * raw_comb


def test_progressive_frames_pass_through_untouched(tmp_path):
    from media import make_video

    clip = make_video(tmp_path / "p.mp4", n_frames=4, with_audio=False)
    frames = _decoded(clip.path)
    assert not any(f.interlaced_frame for f in frames)
    assert list(Deinterlacer()(iter(frames))) == frames  # the same objects: no filter, no delay


def test_video_source_deinterlaces_by_default_and_keeps_the_fields_when_asked(interlaced):
    with open_source(interlaced) as src:
        info, frames = src.info, list(src)
    with open_source(interlaced, deinterlace=False) as src:
        combed = list(src)
    assert [f.pts for f in frames] == [f.pts for f in combed] == [f.pts for f in _decoded(interlaced)]
    assert (info.width, info.height) == (W, H)
    assert np.mean([comb(f.image) for f in frames]) < 0.35 * np.mean([comb(f.image) for f in combed])


def test_process_writes_every_frame_deinterlaced_and_no_deinterlace_keeps_the_comb(interlaced, tmp_path):
    """End to end through the command line: same frame count and timestamps as the input, the comb gone
    from the cut-out's colours (FFV1 RGBA keeps them exactly); --no-deinterlace keeps it."""
    from birefvid.cli import main
    from media import read_video

    clean, kept = tmp_path / "clean.mkv", tmp_path / "kept.mkv"
    common = ["--output", "alpha", "--model", "tiny", "--resolution", "64", "-q"]
    assert main(["process", str(interlaced), "-o", str(clean), *common]) == 0
    assert main(["process", str(interlaced), "-o", str(kept), "--no-deinterlace", *common]) == 0
    source, a, b = read_video(interlaced), read_video(clean), read_video(kept)
    assert a.times == b.times == source.times and len(a.images) == FRAMES
    comb_clean = np.mean([comb(img[..., :3]) for img in a.images])
    comb_kept = np.mean([comb(img[..., :3]) for img in b.images])
    assert comb_clean < 0.5 * comb_kept  # (foreground estimation repaints the transparent parts a little)


def test_live_deinterlaces_a_file_unless_told_not_to(interlaced):
    """``birefvid live --source tff.mp4`` shows whole pictures; ``--no-deinterlace`` (deinterlace=False) the fields."""
    from birefvid.io.live_source import open_live_source

    def combs(**options) -> list[float]:
        with open_live_source(str(interlaced), **options) as src:
            src.start()
            seen = []
            while (captured := src.read(5.0)) is not None:
                seen.append(comb(captured.frame.image))
            assert src.state == "ended"
        return seen

    clean, kept = combs(), combs(deinterlace=False)
    assert len(clean) == len(kept) == FRAMES
    assert np.mean(clean) < 0.35 * np.mean(kept)


def test_batch_chunks_deinterlace_as_process_does(tmp_path):
    """Each chunk decodes from the keyframe before its overlap, so its frames get the neighbours they get in
    `process`: the chunked output equals process's, pixel for pixel."""
    from test_batch_media import API_MODEL, grey, max_diff, reference

    from birefvid.batch.runner import batch_videos

    clip = _write_interlaced(tmp_path / "long.mp4", frames=12, gop=4)
    totals = batch_videos([clip], tmp_path / "o", kind="mask", chunk_frames=4, **API_MODEL)
    assert totals["chunks"] == 3 and totals["frames_done"] == 12
    ref = reference(clip, tmp_path / "ref.mkv", kind="mask")
    assert max_diff(grey(tmp_path / "o" / "long.mkv"), grey(ref)) == 0
