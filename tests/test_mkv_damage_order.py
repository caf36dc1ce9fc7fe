"""The frame a damaged Matroska Cluster is said at, with B-frames: a P-frame is stored ahead of the B-frames shown before
it, so the blocks counted in file order put the damage one or two frames after the first frame missing, the one
ffprobe's frame list (display order) lacks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import pytest

from birefvid.io.mkv_damage import skipped_data


def frames_shown_before_the_damage(whole: Path, offset: int) -> int:
    """How many of ``whole``'s frames, in display order, come before the first one stored at or past ``offset``."""
    with av.open(str(whole)) as c:
        packets = [(p.pos, p.pts) for p in c.demux(c.streams.video[0]) if p.size]
    shown = sorted(pts for _, pts in packets)
    kept = {pts for pos, pts in packets if pos < offset}
    return shown.index(min(t for t in shown if t not in kept))


def damage_block(whole: Path, out: Path, index: int) -> Path:
    """``whole`` with the ``index``-th video block's SimpleBlock ID (and size) overwritten by an ID no Cluster holds: the
    demuxer skips to the next Cluster, the blocks from there to it lost."""
    with av.open(str(whole)) as c:
        pos = [p.pos for p in c.demux(c.streams.video[0]) if p.size][index]
    data = bytearray(whole.read_bytes())
    at = data.rfind(b"\xa3", pos - 12, pos)
    data[at : at + 6] = b"\x4a\xe5\x99\x99\x99\x99"
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("bframes", [0, 2])
def test_a_damaged_block_behind_b_frames_is_numbered_in_display_order(tmp_path, bframes):
    whole = tmp_path / "whole.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25", "-frames:v", "48", "-c:v", "libx264",
                    "-threads", "1", "-g", "12", "-bf", str(bframes), "-pix_fmt", "yuv420p", "-y", str(whole)], check=True)  # fmt: skip
    said, truth = [], []
    for index in (16, 17, 28):  # with -bf 2, blocks stored after a P-frame shown later than the B-frames after it
        skip = skipped_data(damage_block(whole, tmp_path / f"bad{index}.mkv", index))
        assert skip is not None
        said.append(skip.frame)
        truth.append(frames_shown_before_the_damage(whole, skip.offset))
    assert said == truth


def first_frame_ffprobe_lacks(whole: Path, damaged: Path) -> int:
    """The display-order number of ``whole``'s first frame that ffprobe's frame list of ``damaged`` lacks."""
    import json

    listed = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "frame=pts", "-of", "json", str(damaged)],
                            check=True, capture_output=True, text=True).stdout  # fmt: skip
    kept = {f.get("pts") for f in json.loads(listed)["frames"]}
    with av.open(str(whole)) as c:
        shown = sorted(p.pts for p in c.demux(c.streams.video[0]) if p.size)
    return next(i for i, t in enumerate(shown) if t not in kept)


@pytest.mark.parametrize("codec", [["libx264", "-threads", "1", "-bf", "3", "-x264-params", "b-pyramid=normal"],
                                   ["libx265", "-x265-params", "bframes=4:b-pyramid=1:log-level=error:frame-threads=1:pools=1"]])
def test_damage_in_the_first_blocks_behind_b_frames_is_numbered_as_ffprobe_shows(tmp_path, codec):
    """Damage at the 4th block (x264 b-pyramid: I0 P4 B2 | b1; x265: I0 P3 B2 | b1): every frame stored is in the
    window, none before it, yet the run of frames shown was looked for from the window's second half: 'frame 2' where
    ffprobe's frame list lacks frame 1 already."""
    whole = tmp_path / "whole.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25", "-frames:v", "24", "-c:v", *codec,
                    "-g", "24", "-pix_fmt", "yuv420p", "-y", str(whole)], check=True)  # fmt: skip
    damaged = damage_block(whole, tmp_path / "bad.mkv", 3)
    skip = skipped_data(damaged)
    assert skip is not None
    assert skip.frame == first_frame_ffprobe_lacks(whole, damaged)


def frames_ffprobe_lists(video: Path) -> list:
    import json

    listed = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "frame=pts", "-of", "json", str(video)],
                            check=True, capture_output=True, text=True).stdout  # fmt: skip
    return [f.get("pts") for f in json.loads(listed)["frames"]]


@pytest.mark.parametrize("bframes", [0, 2])
def test_damage_in_a_file_begun_between_keyframes_is_numbered_as_ffprobe_shows(tmp_path, bframes):
    """A recording begun mid-GOP (a stream copied from a camera, `ffmpeg -ss ... -c copy -copyinkf`) stores frames
    before its first keyframe, which the decoder never shows: counted, they put the damage that many frames after the
    first frame ffprobe's list lacks (7 here, at every damage in the file)."""
    long = tmp_path / "long.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25", "-frames:v", "60", "-c:v", "libx264",
                    "-threads", "1", "-g", "12", "-bf", str(bframes), "-pix_fmt", "yuv420p", "-y", str(long)], check=True)  # fmt: skip
    whole = tmp_path / "whole.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(long), "-ss", "0.2", "-c", "copy", "-copyinkf", "-y", str(whole)], check=True)
    with av.open(str(whole)) as c:
        assert not next(p for p in c.demux(c.streams.video[0]) if p.size).is_keyframe  # the file begins between keyframes
    shown = frames_ffprobe_lists(whole)
    with av.open(str(whole)) as c:
        packets = [(p.pos, p.pts, p.is_keyframe, p.time_base) for p in c.demux(c.streams.video[0]) if p.size]
    said, truth = [], []
    for index in (2, 16, 29):  # before the first keyframe, and after it
        damaged = damage_block(whole, tmp_path / f"bad{index}.mkv", index)
        skip = skipped_data(damaged)
        assert skip is not None
        kept = set(frames_ffprobe_lists(damaged))
        said.append(skip.frame)
        truth.append(next(i for i, t in enumerate(shown) if t not in kept))
        if index == 29:  # --start, in seconds from the first frame shown (process's time 0), is a keyframe's time:
            # from the first frame stored it named a time past it, leaving out the frames up to it that decode
            keys = {round(float((pts - shown[0]) * base), 3) for _, pts, key, base in packets if key}
            assert skip.resumes_at in keys, (skip.resumes_at, sorted(keys))
    assert said == truth


@pytest.mark.parametrize("codec", ["libx264", "libvpx-vp9"])
def test_a_cluster_damaged_at_its_start_right_after_a_keyframe_names_an_end_before_it(tmp_path, codec):
    """A Cluster whose header is zeroed, the block before it a keyframe (FFmpeg starts a Cluster at a keyframe): the
    error named no --end, only '--start 2.000 processes the part from the next keyframe', though the first second
    decodes whole. The --end it names now stops before every frame missing."""
    whole = tmp_path / ("whole.mkv" if codec == "libx264" else "whole.webm")
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=4", "-c:v", codec,
                    "-g", "25", "-threads", "1", "-cluster_time_limit", "500", *(["-bf", "2"] if codec == "libx264" else
                    ["-deadline", "realtime"]), str(whole)], check=True, capture_output=True)  # fmt: skip
    data = bytearray(whole.read_bytes())
    clusters = [i for i in range(len(data) - 4) if data[i : i + 4] == b"\x1f\x43\xb6\x75"]
    with av.open(str(whole)) as c:
        stream = c.streams.video[0]
        tb = stream.time_base
        packets = [(p.pos, p.pts) for p in c.demux(stream) if p.size]
    shown = sorted(pts for _, pts in packets)
    missing = min(pts for pos, pts in packets if pos >= clusters[2])  # the first frame shown of those stored past it
    data[clusters[2] : clusters[2] + 8] = bytes(8)
    bad = whole.with_name("bad" + whole.suffix)
    bad.write_bytes(bytes(data))
    found = skipped_data(bad)
    assert found is not None and found.good_until is not None, found
    assert 0.5 <= found.good_until <= float((missing - shown[0]) * tb), (found, float((missing - shown[0]) * tb))
