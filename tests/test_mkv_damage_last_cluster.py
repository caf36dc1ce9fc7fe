"""Damage to a Matroska/WebM file's last Cluster header: the demuxer resyncs past it to the next top-level element (the
Cues, or the file's end) and loses the Cluster's frames, raising nothing; the walk took the damage for damage after the
last Cluster (its Cues, Tags), which loses none, and a live recording (no Duration to fall short of) read 84 of 88
frames without a word. Damage to what does follow the last Cluster still loses nothing and is not refused."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from system_tools import need_binary

from birefvid.errors import SourceError
from birefvid.io.mkv_damage import skipped_data
from birefvid.io.video_source import VideoFileSource, refuse_skipped

_CLUSTER = b"\x1f\x43\xb6\x75"
_LAYOUTS = {  # 3.5 s at 25 fps, a Cluster every 0.5 s
    "mkv with sound, Cues after": ["-f", "lavfi", "-i", "sine=sample_rate=48000", "-c:v", "libx264", "-c:a", "aac"],
    "webm, Cues after": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-f", "webm"],
    "mkv, last Cluster at the very end (Cues first)": ["-c:v", "libx264", "-reserve_index_space", "400"],
    "live mkv, no Duration": ["-f", "lavfi", "-i", "sine=sample_rate=48000", "-c:v", "libx264", "-c:a", "aac", "-live", "1"],
}


def make_clip(path: Path, args: list[str]) -> Path:
    """88 frames of 64x48 video in Clusters of 0.5 s, with the layout ``args`` gives."""
    subprocess.run([need_binary("ffmpeg", "ffmpeg"), "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25", *args,
                    "-t", "3.5", "-threads", "1", "-cluster_time_limit", "500", "-y", str(path)], check=True)  # fmt: skip
    return path


def frames_ffprobe_reads(path: Path) -> int:
    out = subprocess.run([need_binary("ffprobe", "ffmpeg"), "-v", "quiet", "-count_frames", "-select_streams", "v:0", "-show_entries",
                          "stream=nb_read_frames", "-of", "csv=p=0", str(path)], check=True, capture_output=True, text=True)  # fmt: skip
    return int(out.stdout.strip())


def zero_last_cluster_header(whole: Path, out: Path) -> int:
    """``whole`` copied to ``out`` with its last Cluster's ID and size zeroed; that Cluster's position."""
    data = bytearray(whole.read_bytes())
    last = [m.start() for m in re.finditer(re.escape(_CLUSTER), data)][-1]
    data[last : last + 4 + 9 - data[last + 4].bit_length()] = bytes(4 + 9 - data[last + 4].bit_length())
    out.write_bytes(bytes(data))
    return last


@pytest.mark.parametrize("layout", list(_LAYOUTS))
def test_a_lost_last_cluster_header_is_damage_with_the_part_before_it_named(tmp_path, layout):
    suffix = ".webm" if "webm" in layout else ".mkv"
    whole = make_clip(tmp_path / f"whole{suffix}", _LAYOUTS[layout])
    bad = tmp_path / f"bad{suffix}"
    last = zero_last_cluster_header(whole, bad)
    left = frames_ffprobe_reads(bad)
    assert left < frames_ffprobe_reads(whole) == 88  # the demuxer lost the Cluster's frames
    skip = skipped_data(bad)
    assert skip is not None and skip.offset == last and "the last Cluster's header" in skip.what, skip
    assert skip.frame == left and skip.resumes_at is None and 0 < skip.good_until < left / 25, skip
    with VideoFileSource(bad) as src:  # process and the API: refused before any work, --end before the damage works
        with pytest.raises(SourceError, match=rf"bad{suffix}: the file is damaged at frame {left}: FFmpeg skipped data"):
            refuse_skipped(src, None, None)
    with VideoFileSource(bad) as src, pytest.raises(SourceError, match=r"the file is damaged at frame"):
        list(src)


def _element(element: bytes, body: bytes) -> bytes:
    return element + (0x4000 | len(body)).to_bytes(2, "big") + body


def _append_to_segment(data: bytearray, tail: bytes) -> None:
    """``tail`` put after the last element of the file's Segment, whose size (where known) grows by its length."""
    at = 4 + 9 - data[4].bit_length()
    at += int.from_bytes(data[4:at], "big") & ((1 << 7 * (at - 4)) - 1)  # past the EBML header
    at += 4  # the Segment's ID
    length = 9 - data[at].bit_length()
    size = int.from_bytes(data[at : at + length], "big") & ((1 << 7 * length) - 1)
    if size != (1 << 7 * length) - 1:
        data[at : at + length] = ((1 << 7 * length) | (size + len(tail))).to_bytes(length, "big")
    data += tail


_TAGS = _element(b"\x12\x54\xc3\x67", _element(b"\x73\x73", _element(b"\x67\xc8", _element(b"\x45\xa3", b"TITLE") + _element(b"\x44\x87", b"x"))))


@pytest.mark.parametrize("after", ["Cues", "Tags", "Void"])
@pytest.mark.parametrize("damaged", [False, True])
def test_what_follows_the_last_cluster_is_no_lost_cluster(tmp_path, after, damaged):
    """A whole file whose last Cluster is followed by Cues, Tags or a Void, and one whose element there has its ID
    zeroed (the demuxer has read every frame before it), is not refused."""
    whole = make_clip(tmp_path / "whole.mkv", _LAYOUTS["mkv with sound, Cues after"])
    data = bytearray(whole.read_bytes())
    if after == "Cues":
        at = data.rfind(b"\x1c\x53\xbb\x6b")
    else:
        at = len(data)
        _append_to_segment(data, _TAGS if after == "Tags" else b"\xec" + (0x4000 | 40).to_bytes(2, "big") + bytes(40))
    assert at > data.rfind(_CLUSTER)
    if damaged:
        data[at : at + 4] = bytes(4)
    clip = tmp_path / "clip.mkv"
    clip.write_bytes(bytes(data))
    assert frames_ffprobe_reads(clip) == 88
    assert skipped_data(clip) is None
    with VideoFileSource(clip) as src:
        assert len(list(src)) == 88
