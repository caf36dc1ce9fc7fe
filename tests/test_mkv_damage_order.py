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
