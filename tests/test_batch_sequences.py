"""`batch --ext tif` and `--ext exr` (and `batch_videos(ext=...)`): a folder of TIFF or OpenEXR frames a video, named
and numbered as `--ext png`'s folders are, each file read back as `process`'s sequences are (tests/test_sequence_formats.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from test_batch_media import API_MODEL, MODEL, events, keyframed_clip, manifest
from test_sequence_formats import exr_channels, exr_header, names, tiff_tags

from birefvid.api import WatchResult, watch_videos
from birefvid.batch.runner import batch_videos
from birefvid.cli import main

SIZE = (64, 48)
FRAMES = 3
ONE_HOUR = 90000  # 01:00:00:00 at 25 fps, as a frame number


def clips(folder: Path) -> Path:
    """`a.mp4`, and `b.mov` starting at timecode 01:00:00:00: 3 frames each, keyframes every 2 (so they would split)."""
    folder.mkdir()
    keyframed_clip(folder / "a.mp4", FRAMES, gop=2, size=SIZE)
    keyframed_clip(folder / "b.mov", FRAMES, gop=2, size=SIZE, timecode="01:00:00:00")
    return folder


def batch(*args: object) -> int:
    return main(["batch", *map(str, args), "-q", *MODEL])


def test_ext_tif_writes_a_straight_rgba_tiff_folder_a_video_and_a_rerun_skips_them(tmp_path):
    """Each video's frames in a folder of its name, `frame_000001.tif`... as `--ext png` names its PNGs (from the start
    timecode's frame where the video has one); RGBA 8-bit, alpha marked unassociated (straight), LZW. `--chunk-frames 2`
    does not split them (one piece a video, as PNG folders); a rerun skips both, done."""
    src, out, log = clips(tmp_path / "in"), tmp_path / "out", tmp_path / "p.jsonl"
    assert batch(src, "--output-dir", out, "--ext", "tif", "--chunk-frames", 2, "--progress-json", log) == 0
    assert names(out) == [".birefvid-batch", "a", "b"]
    assert names(out / "a") == [f"frame_{n:06d}.tif" for n in range(1, FRAMES + 1)]
    assert names(out / "b") == [f"frame_{n:06d}.tif" for n in range(ONE_HOUR, ONE_HOUR + FRAMES)]
    assert tiff_tags(out / "a" / "frame_000002.tif") == (8, 4, (2,), 5)
    assert sorted(manifest(out)["videos"]) == ["a", "b"]
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.tif")}
    assert batch(src, "--output-dir", out, "--ext", "tif", "--chunk-frames", 2, "--progress-json", log) == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.tif")} == stamps
    assert sorted(e["video"] for e in events(log) if e["event"] == "video_skipped") == ["a", "b"]


def test_ext_exr_writes_half_float_rgba_or_a_y_matte_and_the_format_is_in_the_fingerprint(tmp_path, capsys):
    """`--ext exr`: half-float R, G, B, A with Rec.709 chromaticities (an untagged video's), ZIP; a mask is one `Y`
    channel. The same folder asked for as TIFF after is out of date (the format is part of the job), not skipped."""
    src, out = clips(tmp_path / "in"), tmp_path / "out"
    assert batch(src, "--output-dir", out, "--ext", "exr") == 0
    assert names(out / "b") == [f"frame_{n:06d}.exr" for n in range(ONE_HOUR, ONE_HOUR + FRAMES)]
    path = out / "a" / "frame_000001.exr"
    assert exr_channels(path) == [("A", 1), ("B", 1), ("G", 1), ("R", 1)]
    assert exr_header(path)["compression"] == b"\x03" and len(exr_header(path)["chromaticities"]) == 32
    decoded = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True, timeout=60)
    assert decoded.returncode == 0 and not decoded.stderr, decoded.stderr
    capsys.readouterr()
    assert batch(src, "--output-dir", out, "--ext", "tif") == 2
    assert "made by an earlier batch with other options" in capsys.readouterr().err
    assert names(out / "a") == [f"frame_{n:06d}.exr" for n in range(1, FRAMES + 1)], "kept, not replaced unasked"
    assert batch(src, "--output-dir", tmp_path / "mask", "--ext", ".EXR", "--output", "mask") == 0
    assert exr_channels(tmp_path / "mask" / "a" / "frame_000003.exr") == [("Y", 1)]


def test_colour_of_an_hdr_video_into_exr_skips_that_video_with_one_line(tmp_path, capsys):
    """An HDR (PQ) video among others with `--ext exr`: refused before any work with one line naming it, as `process`
    refuses it; the others are written and the batch ends with exit 2, no folder of it. Alone, it is the run's error."""
    src = tmp_path / "in"
    src.mkdir()
    keyframed_clip(src / "a.mp4", FRAMES, size=SIZE)
    hdr = src / "hdr.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc=size={SIZE[0]}x{SIZE[1]}:rate=25", "-frames:v", str(FRAMES),
                    "-c:v", "ffv1", "-pix_fmt", "gbrp10le", "-color_trc", "smpte2084", "-color_primaries", "bt2020", str(hdr)],
                   check=True, timeout=60)  # fmt: skip
    out = tmp_path / "out"
    assert main(["batch", str(src), "--output-dir", str(out), "--ext", "exr", *MODEL]) == 2
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if "HDR (PQ)" in line]
    assert len(said) == 1 and str(hdr) in said[0] and ".tif" in said[0], err
    assert "1 whose output was refused" in err, err
    assert names(out / "a") == [f"frame_{n:06d}.exr" for n in range(1, FRAMES + 1)] and not (out / "hdr").exists()
    assert batch(hdr, "--output-dir", tmp_path / "alone", "--ext", "exr") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("birefvid: error:") and "HDR (PQ)" in lines[0], lines
    assert batch(hdr, "--output-dir", tmp_path / "matte", "--ext", "exr", "--output", "mask") == 0  # its matte goes to EXR


def test_batch_videos_takes_tif_and_exr_as_the_command_does(tmp_path):
    """`batch_videos(ext="tiff")` and `ext=".exr"`: the same folders as `--ext tif` / `--ext exr` (`.tiff` was taken
    for a video container and refused)."""
    src = clips(tmp_path / "in")
    batch_videos([src], tmp_path / "t", ext="tiff", kind="alpha", **API_MODEL)
    assert names(tmp_path / "t" / "a") == [f"frame_{n:06d}.tif" for n in range(1, FRAMES + 1)]
    batch_videos([src / "a.mp4"], tmp_path / "e", ext=".exr", kind="mask", **API_MODEL)
    assert exr_channels(tmp_path / "e" / "a" / "frame_000001.exr") == [("Y", 1)]


def test_overwrite_of_a_png_folder_as_tif_is_one_line_naming_the_video_and_keeps_the_pngs(tmp_path, capsys):
    """`--ext png`, then `--ext tif --overwrite`: the folder holds the PNGs, which a TIFF sequence's folder does not
    replace (as `process` refuses a pattern's folder holding other files). One line naming the video, before any work,
    the PNGs kept; the worker's refusal, once its model had loaded, named the pattern only and offered the --overwrite
    already given (and among several videos stopped the batch, saying a rerun would resume)."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    keyframed_clip(src / "a.mp4", FRAMES, size=SIZE)
    assert batch(src, "--output-dir", out, "--ext", "png") == 0
    capsys.readouterr()
    assert batch(src, "--output-dir", out, "--ext", "tif", "--overwrite") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(src / "a.mp4") in lines[0] and "frame_000001.png" in lines[0] and "resumes" not in lines[0], lines
    assert names(out / "a") == [f"frame_{n:06d}.png" for n in range(1, FRAMES + 1)]


def test_watch_videos_writes_exr_folders_and_names_each_folder_in_its_result(tmp_path):
    """`watch_videos(ext="exr")`: the videos in the folder as OpenEXR folders, each result naming its folder as a PNG
    folder's is named (`out/a/`), not the pattern the worker writes by."""
    src, out = clips(tmp_path / "in"), tmp_path / "out"
    results: list[WatchResult] = []
    watch_videos(src, out, on_result=results.append, settle=0.5, watch_for=2, ext="exr", kind="mask", **API_MODEL)
    assert sorted(results, key=lambda r: r.input) == [WatchResult(str(src / f"{n}"), f"{out / Path(n).stem}{os.sep}", "done")
                                                      for n in ("a.mp4", "b.mov")]  # fmt: skip
    assert names(out / "b") == [f"frame_{n:06d}.exr" for n in range(ONE_HOUR, ONE_HOUR + FRAMES)]
