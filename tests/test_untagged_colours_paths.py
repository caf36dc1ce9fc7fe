"""Untagged video's colours (`--input-colors`) through every way in besides `process`: batch's chunks, live's files
and streams, the Python API and the decord decoder.

As in ``test_untagged_colours``, the model keeps everything (alpha 1), so an output's pixels are the source's; the
clips are a few frames of lossless 4:4:4 H.264 colour bars, untagged, 1280x720 (the smallest size players take as
HD). A lossless 4:4:4 output written with the matrix it names gives back the source's own YUV samples, within a
level of rounding, only when the source was read with that same matrix: BT.601 in and BT.709 out moved the bars'
chroma by up to 27 levels.
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from live_media import free_udp_port
from system_tools import need_module
from test_batch_media import MODEL
from test_process_colours import colour_tags, flat, keep_all  # noqa: F401 (a fixture)
from test_live_source import _send_paced
from test_untagged_colours import BT601, BT709, HD, formula_rgb, yuv444

from birefvid.cli import main

LOSSLESS = ("--codec", "libx264", "--crf", "0", "--pix-fmt", "yuv444p")


def untagged_bars(path: Path, frames: int = 2, gop: int = 2, size: tuple[int, int] = HD) -> Path:
    """``frames`` of colour bars (1280x720 by default), lossless 4:4:4 H.264 naming no matrix, a keyframe every ``gop`` frames
    (so that batch splits it into chunks there)."""
    w, h = size
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"smptehdbars=s={w}x{h}:r=25", "-frames:v", str(frames),
                    "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p", "-g", str(gop), "-keyint_min", str(gop),
                    "-sc_threshold", "0", "-bf", "0", str(path)], check=True)  # fmt: skip
    assert colour_tags(path) == (None, None, None, None)
    return path


def yuv_frames(path: Path, size: tuple[int, int] = HD) -> np.ndarray:
    """Every frame's Y, U and V samples as FFmpeg decodes them, unconverted: (N, 3, H, W) int."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "yuv444p", "-"],
                         capture_output=True, check=True).stdout  # fmt: skip
    w, h = size
    return np.frombuffer(out, np.uint8).reshape(-1, 3, h, w).astype(int)


def assert_same_colours(out: Path, src: Path, frames: int, matrix: tuple[float, float]) -> None:
    """Every frame of ``out``, decoded by ``matrix``'s formula, has the colours of ``src`` decoded by the same formula,
    within rounding: both read and written with ``matrix``. (RGB, not YUV samples, as the bars' PLUGE and -I/+Q
    chips lie outside RGB and are clipped.)"""
    got, want = yuv_frames(out), yuv_frames(src)
    assert len(got) == len(want) == frames
    worst = [round(float(np.abs(formula_rgb(g, matrix) - formula_rgb(w, matrix)).max()), 2) for g, w in zip(got, want)]
    # RGB rounded to 8 bits, then Y, U and V: up to 1.8 levels; read with the other matrix, saturated bars moved 20-40
    assert max(worst) < 2.5, f"largest difference of each frame: {worst}"


@pytest.mark.parametrize(("options", "tag", "matrix"), [((), "bt709", BT709), (("--input-colors", "bt601"), "smpte170m", BT601)],
                         ids=["auto", "bt601"])  # fmt: skip
def test_batch_chunks_of_an_untagged_hd_clip_are_read_with_one_matrix(tmp_path, keep_all, options, tag, matrix):
    """batch splits the clip into two chunks at its keyframes, each decoded apart: both are read with the matrix
    the output names (BT.709 for untagged HD, or the one ``--input-colors`` says), so the joined video's every
    frame has the source's samples and no colour jump where the chunks meet."""
    src = untagged_bars(tmp_path / "bars.mp4", frames=4, gop=2)
    out = tmp_path / "out"
    argv = ["batch", str(src), "--output-dir", str(out), "--output", "foreground", "--no-foreground", "--smooth", "none",
            "--chunk-frames", "2", "--ext", "mkv", "-q", *LOSSLESS, *options]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((out / ".birefvid-batch" / "manifest.json").read_text())["videos"]["bars.mkv"]["chunks"] == 2
    assert colour_tags(out / "bars.mkv")[0] == tag
    assert_same_colours(out / "bars.mkv", src, 4, matrix)


def test_a_batch_begun_before_input_colors_redoes_only_its_untagged_hd_videos(tmp_path, keep_all, monkeypatch, capsys):
    """A batch folder an earlier birefvid made (its manifest's fingerprints know no ``input_colors``), rerun: an SD
    clip, read as BT.601 then and now, is done and kept; the untagged HD clip, read as BT.601 then and as BT.709
    now, is out of date: the rerun stops before any work naming it and why, and ``--overwrite`` redoes it alone.
    Every video was out of date, with a line blaming changed options or inputs, and ``--overwrite`` redid them all."""
    from birefvid.batch import manifest as manifest_module
    from birefvid.batch import runner

    jobs = {}  # input -> the job the batch fingerprints, as the runner sees it
    monkeypatch.setattr(runner, "fingerprint", lambda job, *a, **k: jobs.update({a[0]: job}) or manifest_module.fingerprint(job, *a, **k))
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    untagged_bars(folder / "hd.mp4")
    untagged_bars(folder / "sd.mp4", size=(320, 240))
    argv = ["batch", str(folder), "--output-dir", str(out), "--output", "mask", "-q"]
    assert main(argv) == 0
    path = out / ".birefvid-batch" / "manifest.json"
    data = json.loads(path.read_text())
    for name, entry in data["videos"].items():  # as a version without --input-colors recorded them
        job = json.loads(json.dumps(jobs[entry["input"]]))
        del job["source"]["input_colors"]
        entry["fingerprint"] = entry["job_fingerprint"] = manifest_module.fingerprint(job, entry["input"], {})
    path.write_text(json.dumps(data))
    made = {name: (out / name).stat().st_mtime_ns for name in ("hd.mkv", "sd.mkv")}
    capsys.readouterr()

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{out / 'hd.mkv'} was made by a birefvid that read untagged HD video as BT.601" in err, err
    assert main([*argv, "--overwrite"]) == 0
    assert (out / "hd.mkv").stat().st_mtime_ns != made["hd.mkv"]
    assert (out / "sd.mkv").stat().st_mtime_ns == made["sd.mkv"]
    assert main(argv) == 0  # both recorded as this version's now


def test_decord_reads_untagged_hd_as_bt601_with_a_warning(tmp_path, keep_all, caplog):
    """decord 0.6 reads untagged video as BT.601 whatever its size: an untagged HD clip's output keeps that reading,
    untagged as before ``--input-colors``, and a warning says its colours are not what players show."""
    need_module("decord", '"birefvid[decord]"')
    src = untagged_bars(tmp_path / "bars.mp4")
    out = tmp_path / "fg.mkv"
    with caplog.at_level("WARNING", logger="birefvid"):
        assert main(["process", str(src), "-o", str(out), "--decoder", "decord", "--output", "foreground", "--no-foreground",
                     "--smooth", "none", "-q", *LOSSLESS]) == 0  # fmt: skip
    assert "names no colour matrix, which players show as BT.709; decord 0.6 reads it as BT.601" in caplog.text
    assert colour_tags(out)[0] is None
    assert_same_colours(out, src, 2, BT601)


@pytest.mark.parametrize("command", ["process", "batch"])
def test_decord_refuses_bt709_for_untagged_video_in_one_line(tmp_path, capsys, command):
    """``--decoder decord --input-colors bt709`` on untagged video is one line naming --decoder pyav, before any
    work (without ``-q``, nothing else is said). batch refused it only in its worker: first a warning that decord
    would read the clip as BT.601 after all, then the batch's start and a 'batch stopped ... a rerun of the same
    command resumes' line, which no rerun would."""
    need_module("decord", '"birefvid[decord]"')
    src = untagged_bars(tmp_path / "bars.mp4")
    where = ["-o", str(tmp_path / "fg.mkv")] if command == "process" else ["--output-dir", str(tmp_path / "out")]
    code = main([command, str(src), *where, "--decoder", "decord", "--input-colors", "bt709", *MODEL])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err
    assert "names no colour matrix, which decord 0.6 reads as BT.601 only, not --input-colors bt709; use the PyAV decoder (--decoder pyav)" in err


def assert_read_with(image: np.ndarray, src: Path, matrix: tuple[float, float]) -> None:
    """``image`` (RGB) is ``src``'s first frame decoded by ``matrix``'s formula, within rounding."""
    diff = np.abs(image.astype(float) - formula_rgb(yuv444(src, HD), matrix))
    assert diff.max() < 0.75, f"max {diff.max():.2f}"  # rounding, and swscale's 1/65536 coefficients


@pytest.mark.parametrize(("colours", "matrix"), [("auto", BT709), ("bt601", BT601)])
def test_api_iter_masks_and_process_video_read_an_untagged_hd_clip_as_told(tmp_path, keep_all, colours, matrix):
    """``iter_masks(..., input_colors=)`` gives the pictures read with the matrix chosen, and ``process_video``'s
    PNGs are the same colours."""
    from birefvid.api import iter_masks, process_video

    src = untagged_bars(tmp_path / "bars.mp4")
    image, _ = next(iter_masks(src, segmenter=keep_all, input_colors=colours))
    assert_read_with(image, src, matrix)
    out = tmp_path / "png"
    process_video(src, out, segmenter=keep_all, kind="foreground", smooth="none", input_colors=colours)
    assert_read_with(cv2.imread(str(sorted(out.glob("*.png"))[0]))[..., ::-1], src, matrix)


@pytest.mark.parametrize(("colours", "matrix", "tag"), [("auto", BT709, 1), ("bt601", BT601, 6)])
def test_live_reads_an_untagged_hd_file_as_told(tmp_path, colours, matrix, tag):
    """live ``--source bars.mp4``: its pictures are read with the matrix chosen, and the source's info names it
    (which live's sinks are tagged by)."""
    from birefvid.io.live_source import open_live_source

    src = untagged_bars(tmp_path / "bars.mp4")
    with open_live_source(str(src), input_colors=colours) as live:
        live.start(timeout=30)
        first = live.read(30)
        assert live.info.colorspace == tag
    assert_read_with(first.frame.image, src, matrix)


@pytest.mark.parametrize(("colours", "matrix", "tag"), [("auto", BT709, 1), ("bt601", BT601, 6)])
def test_live_reads_an_untagged_hd_mpeg_ts_stream_as_told(tmp_path, colours, matrix, tag):
    """An MPEG-TS stream (UDP) of the untagged HD clip, which comes through FFmpeg's network input, not the file
    reader: its pictures are read with the matrix chosen too, and the connection's info names it."""
    from birefvid.io.live_source import open_live_source

    clip = untagged_bars(tmp_path / "bars.mp4", frames=25, gop=5)
    ts = tmp_path / "bars.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-c", "copy", "-f", "mpegts", str(ts)], check=True)
    port, stop = free_udp_port(), threading.Event()
    with open_live_source(f"udp://127.0.0.1:{port}", read_timeout=3.0, input_colors=colours) as live:
        sender = threading.Thread(target=_send_paced, args=(ts.read_bytes(), port, 2.0, stop))  # keyframes for 2 s: one lands after the socket opens
        sender.start()
        try:
            live.start(timeout=20)
            first = live.read(10)
            assert live.info.colorspace == tag
        finally:
            stop.set()
            sender.join()
    assert first is not None, "no picture came"
    assert_read_with(first.frame.image, clip, matrix)  # every frame of the clip is the same bars


@pytest.mark.parametrize(("colours", "matrix"), [("auto", BT709), ("bt601", BT601)])
def test_a_live_recording_of_an_untagged_hd_file_has_its_colours(tmp_path, keep_all, colours, matrix):
    """``live --source bars.mp4 --sink rec.mkv`` (``build_live_job`` and ``run_live``, effect none): the recording
    names its matrix, BT.709 at HD, and decoded by it has the source's colours as read with the matrix chosen, inside
    each bar (H.264 4:2:0 at live's quality: within a few levels). Recordings were BT.601 and untagged, which players
    show HD as BT.709: the bars up to 40 levels off, whatever the source."""
    from birefvid.api import build_live_job, run_live

    src = untagged_bars(tmp_path / "bars.mp4")
    rec = tmp_path / "rec.mkv"
    run_live(build_live_job(str(src), str(rec), effect="none", smooth="none", audio=False, input_colors=colours), segmenter=keep_all)
    assert colour_tags(rec)[0] == "bt709"
    want = formula_rgb(yuv444(src, HD), matrix)
    got = formula_rgb(yuv_frames(rec)[0], BT709)
    inside = flat(want[..., 0]) & flat(want[..., 1]) & flat(want[..., 2])  # away from the bars' edges and chroma blur
    diff = np.abs(got - want)[inside]
    assert diff.mean() < 1.5 and np.percentile(diff, 99) < 4, f"mean {diff.mean():.2f}, 99% {np.percentile(diff, 99):.2f}"
