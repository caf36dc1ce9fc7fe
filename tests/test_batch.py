"""`birefvid batch` without Ray: chunked outputs equal `birefvid process`, resumes from the manifest, clear errors."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media import damage_packet, hide_leading_frames, make_resizing_video
from test_batch_media import LONG, MODEL, SHORT, SIZE, events, grey, keyframed_clip, manifest, max_diff, reference, video_facts

from birefvid.batch.hooks import CRASH_ENV, CRASH_EXIT_CODE, MARKER_ENV
from birefvid.batch.plan import plan_chunks, probe_video
from birefvid.cli import main

pytestmark = pytest.mark.usefixtures("one_cpu_thread")  # exact comparisons with process, and speed (conftest says why)


@pytest.fixture(scope="module")
def clips(batch_clips) -> dict:
    """Three clips with audio (one long enough for 4 chunks) and what `process` writes for each as an FFV1 mask:
    conftest's ``batch_clips``, which tests/test_batch_ray.py shares."""
    return batch_clips


def batch(*argv: str) -> int:
    return main(["batch", *argv, *MODEL])


def test_plan_splits_at_keyframes_with_the_smoothers_overlap(clips):
    probe = probe_video(clips["inputs"][0])
    assert probe.frames == LONG and probe.keyframes == [0, 6, 12, 18]
    chunks = plan_chunks(probe, 6, 2, 2)
    assert [(c.start, c.end) for c in chunks] == [(0, 6), (6, 12), (12, 18), (18, 24)]
    assert [(c.before, c.after) for c in chunks] == [(0, 2), (2, 2), (2, 2), (2, 0)]  # clipped at the ends
    assert all(c.first_pts == probe.pts[c.start - c.before] and c.last_pts == probe.pts[c.end + c.after - 1] for c in chunks)
    assert [(c.start, c.end) for c in plan_chunks(probe, 7, 0, 0)] == [(0, 12), (12, 24)]  # at least 7 frames each
    assert [(c.start_pts, c.end) for c in plan_chunks(probe, 24, 2, 2)] == [(None, 24)]  # short enough: read whole


@pytest.mark.parametrize("threads", [0, 1])
def test_a_chunk_decodes_its_range_on_the_threads_asked_for(clips, threads):
    """Chunks read like `process`: its frames and pts, and one decoder thread on a small CPU."""
    from birefvid.batch.chunk_source import ChunkSource

    probe = probe_video(clips["inputs"][0])
    chunk = plan_chunks(probe, 6, 2, 2)[1]
    with ChunkSource(clips["inputs"][0], chunk, threads=threads) as source:
        frames = list(source)
        decoder = source._container.streams.video[0].codec_context
        assert decoder.thread_count == (threads or decoder.thread_count)
    assert [f.index for f in frames] == list(range(4, 14)) and [f.pts for f in frames] == probe.pts[4:14]
    assert frames[0].image.shape == (SIZE[1], SIZE[0], 3)

def test_a_chunk_of_a_mirrored_phone_clip_reads_as_process_reads_it(tmp_path):
    """A front camera's display matrix that flips the picture: a chunk shows it flipped, as `process` does (it was turned upside down)."""
    from birefvid.batch.chunk_source import ChunkSource
    from birefvid.io import VideoFileSource

    path = keyframed_clip(tmp_path / "selfie.mp4", 12, gop=6, size=(64, 48), flip="h")
    with av.open(str(path)) as c:
        stored = [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]  # as stored: no matrix applied
    with VideoFileSource(path) as whole:
        expected = [f.image for f in whole]
    chunk = plan_chunks(probe_video(path), 6, 2, 2)[1]
    with ChunkSource(path, chunk) as source:
        frames = list(source)
    assert [f.index for f in frames] == list(range(4, 12))
    assert all(np.array_equal(f.image, expected[f.index]) for f in frames)
    assert all(np.abs(f.image - stored[f.index][:, ::-1]).mean() < 8 for f in frames)  # 3 here (colour rounding); 63 turned


def test_local_batch_equals_process_frame_for_frame_with_audio(clips, tmp_path):
    out, log = tmp_path / "out", tmp_path / "progress.jsonl"
    assert batch(*map(str, clips["inputs"]), "--output-dir", str(out), "--output", "mask", "--chunk-frames", "6", "--progress-json", str(log)) == 0
    for src in clips["inputs"]:
        got, ref = out / f"{src.stem}.mkv", clips["refs"][src.stem]
        assert max_diff(grey(got), grey(ref)) == 0  # FFV1: exact
        g, r = video_facts(got), video_facts(ref)
        assert g["pts"] == r["pts"] and len(g["pts"]) == (LONG if src.stem == "long" else SHORT)
        assert g["audio"] == r["audio"] == "aac" and g["samples"] == r["samples"] > 0
    assert manifest(out)["videos"]["long.mkv"]["chunks"] == 4
    assert sorted(os.listdir(out)) == [".birefvid-batch", "a.mkv", "b.mkv", "long.mkv"]  # no chunk files or temporaries left
    ev = events(log)
    assert ev[0]["event"] == "start" and (ev[0]["videos"], ev[0]["chunks"], ev[0]["frames"]) == (3, 6, LONG + 2 * SHORT)
    assert sorted((e["video"], e["chunk"]) for e in ev if e["event"] == "chunk_done") == [("a.mkv", 0), ("b.mkv", 0)] + [("long.mkv", i) for i in range(4)]
    assert ev[-1]["event"] == "end" and ev[-1]["frames_done"] == ev[-1]["frames_computed"] == LONG + 2 * SHORT and ev[-1]["fps"] > 0


def test_progress_counts_frames_while_a_chunk_runs(clips, tmp_path):
    log = tmp_path / "p.jsonl"
    src = clips["inputs"][0]
    assert batch(str(src), "--output-dir", str(tmp_path / "o"), "--output", "mask", "--chunk-frames", "12", "-q",
                 "--progress-json", str(log), "--progress-every", "0.001") == 0  # fmt: skip
    ev = events(log)
    running = [e for e in ev if e["event"] == "frames"]
    assert running and all(e["chunks_running"] == 1 for e in running)
    done = [e["frames_done"] for e in ev]
    assert done == sorted(done) and 0 < running[0]["frames_done"] < 12  # counted before the first chunk finished
    assert ev[-1]["frames_done"] == LONG and ev[-1]["chunks_done"] == 2


def test_alpha_prores_is_exact_and_lossy_h264_as_close_as_process(tmp_path):
    """Three chunks (a first, a middle and a last, each cut differently) join as `process` writes the video: five
    model runs of the clip, so it is 9 frames (a keyframe every 3), not the 24 of the shared one."""
    frames = 9
    src = keyframed_clip(tmp_path / "long.mp4", frames, gop=3)
    ref_alpha = reference(src, tmp_path / "ref.mov", kind="alpha")
    ref_green = reference(src, tmp_path / "ref.mp4", kind="green")
    truth = reference(src, tmp_path / "truth.mkv", kind="green", codec="ffv1")  # 4:4:4, lossless: the pictures before H.264
    assert batch(str(src), "--output-dir", str(tmp_path / "alpha"), "--output", "alpha", "--chunk-frames", "3", "-q") == 0
    assert batch(str(src), "--output-dir", str(tmp_path / "green"), "--output", "green", "--chunk-frames", "3", "-q") == 0
    alpha, green = tmp_path / "alpha" / "long.mov", tmp_path / "green" / "long.mp4"
    assert manifest(tmp_path / "alpha")["videos"]["long.mov"]["chunks"] == 3
    # exact: ProRes codes each frame alone and gave the same bytes in 600 encodes of the same pictures (x264 does not: docs/architecture.md)
    assert max_diff(grey(alpha), grey(ref_alpha)) == 0 and max_diff(grey(alpha, rgb=True), grey(ref_alpha, rgb=True)) == 0
    assert video_facts(alpha)["pts"] == video_facts(ref_alpha)["pts"] and video_facts(alpha)["audio"] == "aac"
    # H.264 is lossy and each chunk is its own encode, so pixels differ from `process`'s encode: batch's
    # pictures must be as close to the uncompressed ones as process's (frame by frame within half a grey level)
    exact = grey(truth, rgb=True)
    err_batch, err_process = (
        [float(np.abs(x.astype(np.int32) - y).mean()) for x, y in zip(grey(p, rgb=True), exact)] for p in (green, ref_green)
    )
    assert len(err_batch) == len(err_process) == frames
    assert all(b <= p + 0.5 for b, p in zip(err_batch, err_process)), (err_batch, err_process)
    assert np.mean(err_batch) <= np.mean(err_process) + 0.25
    assert video_facts(green)["pts"] == video_facts(ref_green)["pts"] and video_facts(green)["samples"] == video_facts(ref_green)["samples"]


def test_variable_frame_rate_with_b_frames_keeps_exact_timestamps(tmp_path):
    """Chunks of a MOV start at 0 and are moved back at the join: an edit list (milliseconds) would shift 1/90000 ticks."""
    pts = [0]
    for i in range(1, 15):
        pts.append(pts[-1] + (3000 if i % 3 else 4500))  # 30 and 20 fps mixed, in 1/90000
    src = keyframed_clip(tmp_path / "vfr.mp4", 15, gop=5, fps=30, pts=pts, time_base=Fraction(1, 90000), bframes=3)  # 3 chunks
    ref = reference(src, tmp_path / "ref.mov", kind="mask")
    assert batch(str(src), "--output-dir", str(tmp_path / "o"), "--output", "mask", "--ext", ".mov", "--chunk-frames", "5", "-q") == 0
    got = tmp_path / "o" / "vfr.mov"
    assert manifest(tmp_path / "o")["videos"]["vfr.mov"]["chunks"] == 3
    g = video_facts(got)
    assert [p * g["time_base"] for p in g["pts"]] == [p * Fraction(1, 90000) for p in pts]
    assert g["pts"] == video_facts(ref)["pts"] and max_diff(grey(got), grey(ref)) == 0  # ProRes: exact, as above


@pytest.mark.parametrize("chunk_frames, chunks", [("3", 2), ("1000", 1)])  # in chunks (the first from the cut), and read whole
def test_mp4_cut_between_keyframes_counts_the_frames_it_shows(tmp_path, chunk_frames, chunks):
    """`ffmpeg -ss T -c copy` output: an edit list hides 4 frames that the header still counts (12 frames, a keyframe
    every 3: the 8 shown start mid-GOP)."""
    src = keyframed_clip(tmp_path / "src.mp4", 12, gop=3)
    cut = hide_leading_frames(src, tmp_path / "cut.mp4", 4, 25)
    out, log = tmp_path / "out", tmp_path / "p.jsonl"
    assert batch(str(cut), "--output-dir", str(out), "--output", "mask", "--chunk-frames", chunk_frames, "-q", "--progress-json", str(log)) == 0
    ev = events(log)
    assert ev[0]["frames"] == ev[-1]["frames_done"] == 8 and manifest(out)["videos"]["cut.mkv"]["chunks"] == chunks
    got, want = video_facts(out / "cut.mkv"), video_facts(cut)
    assert [p * got["time_base"] for p in got["pts"]] == [p * want["time_base"] for p in want["pts"]] == [Fraction(i, 25) for i in range(8)]


def test_mpeg_ts_is_read_whole_and_keeps_its_timestamps(tmp_path):
    """MPEG-TS seeks by byte estimate (not onto a keyframe), so it is one chunk; its ~1.4 s start is kept, audio with it."""
    src = keyframed_clip(tmp_path / "cam.ts", LONG)
    assert probe_video(src) is None
    out = tmp_path / "out"
    assert batch(str(src), "--output-dir", str(out), "--output", "mask", "--chunk-frames", "6", "-q") == 0
    assert manifest(out)["videos"]["cam.mkv"]["chunks"] == 1
    got, want = video_facts(out / "cam.mkv"), video_facts(src)
    times = [p * want["time_base"] for p in want["pts"]]
    assert len(got["pts"]) == LONG and times[0] > 0
    assert all(abs(p * got["time_base"] - t) <= Fraction(1, 1000) for p, t in zip(got["pts"], times))  # Matroska keeps ms
    assert got["audio"] == "aac" and got["samples"] > 0


def test_an_mpeg_ts_joined_from_pieces_counts_the_frames_it_has_not_its_headers_estimate(tmp_path):
    """Two TS pieces joined by ffmpeg's concat demuxer leave a gap its duration counts: the header said 51 frames
    for 50, and the progress ended at 50/51 and the manifest recorded 51 for an output of 50. (Pieces of 6 frames
    show the same one-frame gap, 13 for 12, at a quarter of the model's work.)"""
    from system_tools import need_binary

    from birefvid.batch.plan import header_frames

    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    pieces = [keyframed_clip(tmp_path / f"{name}.ts", 6) for name in ("a", "b")]
    listing = tmp_path / "pieces.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in pieces))
    src = tmp_path / "joined.ts"
    subprocess.run([ffmpeg, "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(src)], check=True)
    assert header_frames(src) == 13  # the estimate this test is about
    out, progress = tmp_path / "out", tmp_path / "progress.jsonl"
    assert batch(str(src), "--output-dir", str(out), "--output", "mask", "--progress-json", str(progress), "-q") == 0
    assert len(video_facts(out / "joined.mkv")["pts"]) == 12
    ev = events(progress)
    assert ev[-1]["event"] == "end" and ev[-1]["frames_done"] == ev[-1]["frames"] == 12
    done = next(e for e in ev if e["event"] == "chunk_done")
    assert done["frames_done"] == done["frames"] == 12
    assert manifest(out)["videos"]["joined.mkv"]["frames"] == 12
    rerun = tmp_path / "rerun.jsonl"  # a rerun skips it, counting the frames it has
    assert batch(str(src), "--output-dir", str(out), "--output", "mask", "--progress-json", str(rerun), "-q") == 0
    assert events(rerun)[-1]["frames"] == events(rerun)[-1]["frames_done"] == 12


@pytest.mark.parametrize("ext,kind", [(".mkv", "green"), ("mov", "alpha")])  # "mov" as users type it
def test_chunks_join_into_matroska_h264_keeping_pixel_shape_timecode_and_tags(tmp_path, ext, kind):
    """H.264 chunk files in Matroska have no stored decode times (the join used to fail on them), and
    an anamorphic source's pixel shape survives the join, as do its timecode, reel name (a MOV's) and tags."""
    src = keyframed_clip(tmp_path / "dv.mov", 12, bframes=2, sample_aspect_ratio=Fraction(4, 3), timecode="10:00:00:00",
                         tags={"title": "Holiday", "com.apple.quicktime.make": "Apple"}, reel_name="A001")
    out = tmp_path / "out"
    assert batch(str(src), "--output-dir", str(out), "--output", kind, "--ext", ext, "--chunk-frames", "6", "-q") == 0
    name = "dv" + (ext if ext.startswith(".") else f".{ext}")
    assert manifest(out)["videos"][name]["chunks"] == 2  # one join is what this is about: 12 frames, not 24
    got, want = video_facts(out / name), video_facts(src)
    assert [p * got["time_base"] for p in got["pts"]] == [p * want["time_base"] for p in want["pts"]]
    with av.open(str(out / name)) as c:
        video = c.streams.video[0]
        assert video.sample_aspect_ratio == Fraction(4, 3)
        assert video.disposition & av.stream.Disposition.default  # the track players pick (Matroska flagged it not)
        assert {k.lower(): v for k, v in video.metadata.items()}.get("timecode") == "10:00:00:00"  # the start timecode too
        reels = [s.metadata.get("reel_name") for s in c.streams.data] + [{k.lower(): v for k, v in video.metadata.items()}.get("reel_name")]
        assert "A001" in reels  # and its reel name (MOV: in the tmcd track), which editors conform by
        assert c.metadata.get("title") == "Holiday"  # and the file's own tags
        assert {k.lower(): v for k, v in c.metadata.items()}.get("com.apple.quicktime.make") == "Apple"  # a phone's QuickTime keys too


def test_chunks_of_a_millisecond_source_join_on_its_exact_frame_rate(tmp_path):
    """An OBS-style Matroska at 29.97 fps counts in milliseconds; each MOV chunk puts its frames on the exact
    1001/30000 s grid, and the join moves the chunks there too (not by their rounded starts), counted from the
    first frame, as `process` does."""
    rate, n = Fraction(30000, 1001), 18  # 3 chunks: a first, a middle and a last
    pts = [1400 + round(i * 1000 / rate) for i in range(n)]  # a late start (a cut), off the grid from 0
    src = keyframed_clip(tmp_path / "obs.mkv", n, fps=rate, pts=pts, time_base=Fraction(1, 1000))
    assert video_facts(src)["time_base"] == Fraction(1, 1000)
    out = tmp_path / "out"
    assert batch(str(src), "--output-dir", str(out), "--output", "alpha", "--chunk-frames", "6", "-q") == 0
    assert manifest(out)["videos"]["obs.mov"]["chunks"] == 3
    got = video_facts(out / "obs.mov")
    assert [p * got["time_base"] for p in got["pts"]] == [Fraction(7, 5) + i / rate for i in range(n)]


def test_picture_size_change_midway_in_chunks_gives_one_size(tmp_path):
    src = tmp_path / "call.webm"  # keyframes at 0, 4 and 7, where the size changes
    make_resizing_video(src, [((64, 48), 4), ((32, 24), 3), ((64, 48), 3)])
    out = tmp_path / "out"
    assert batch(str(src), "--output-dir", str(out), "--output", "mask", "--chunk-frames", "3", "-q") == 0
    assert manifest(out)["videos"]["call.mkv"]["chunks"] == 3
    pictures = grey(out / "call.mkv")
    assert len(pictures) == 10 and all(p.shape == (48, 64) for p in pictures)


def test_recursive_smoother_is_equal_within_tolerance_across_chunks(tmp_path):
    """A first, a middle and a last chunk (12 frames, a keyframe every 4): each starts its recursion in the overlap."""
    src = keyframed_clip(tmp_path / "long.mp4", 12, gop=4)
    ref = reference(src, tmp_path / "ref.mkv", kind="mask", smooth="flow")
    assert batch(str(src), "--output-dir", str(tmp_path / "o"), "--output", "mask", "--smooth", "flow", "--chunk-frames", "4", "-q") == 0
    assert manifest(tmp_path / "o")["videos"]["long.mkv"]["chunks"] == 3
    assert max_diff(grey(tmp_path / "o" / "long.mkv"), grey(ref)) <= 2


def test_python_api_runs_the_same_batch(clips, tmp_path):
    from test_batch_media import API_MODEL

    from birefvid.batch.runner import batch_videos

    totals = batch_videos([clips["inputs"][1]], tmp_path / "o", kind="mask", chunk_frames=3, **API_MODEL)  # a.mp4: 2 chunks
    assert totals["chunks"] == 2 and totals["frames_done"] == SHORT
    assert max_diff(grey(tmp_path / "o" / "a.mkv"), grey(clips["refs"]["a"])) == 0


@pytest.mark.parametrize("ext", [".png", "PNG"])
def test_python_api_takes_ext_as_the_command_does(clips, tmp_path, ext):
    """`--ext .png` and `--ext png` both write a PNG folder; batch_videos(ext=".png") was refused as a `.png` file, and
    ext="PNG" named the output `2024.06.01 weddingPNG`, refused as a `.01 weddingpng` container."""
    from test_batch_media import API_MODEL

    from birefvid.batch.runner import batch_videos

    src = tmp_path / "2024.06.01 wedding.mp4"
    src.write_bytes(clips["inputs"][1].read_bytes())
    totals = batch_videos([src], tmp_path / "o", ext=ext, kind="mask", **API_MODEL)
    assert totals["frames_done"] == SHORT
    assert sorted(os.listdir(tmp_path / "o")) == [".birefvid-batch", "2024.06.01 wedding"]
    assert sorted(os.listdir(tmp_path / "o" / "2024.06.01 wedding")) == [f"frame_{i:06d}.png" for i in range(1, SHORT + 1)]


def test_python_api_refuses_a_missing_background_before_any_work(clips, tmp_path):
    from test_batch_media import API_MODEL

    from birefvid.batch.runner import batch_videos
    from birefvid.errors import SourceError

    with pytest.raises(SourceError, match="background not found: .*beach.jpg"):
        batch_videos([clips["inputs"][1]], tmp_path / "o", kind="composite", background=str(tmp_path / "beach.jpg"), **API_MODEL)
    assert not (tmp_path / "o").exists()


def test_a_stopped_run_removes_what_its_killed_workers_were_writing(clips, tmp_path):
    """Stopping a batch (SIGTERM, Ctrl-C) kills Ray workers mid-write: their ``.NAME.partial-*`` files,
    beside the outputs and in the chunk folder, go with the run, not stay for someone to clean up."""
    from test_batch_media import API_MODEL

    from birefvid.api import build_file_job
    from birefvid.batch.progress import BatchProgress
    from birefvid.batch.runner import output_for, run_batch

    out = tmp_path / "o"
    jobs = [build_file_job(p, output_for(p, out, ".mkv"), kind="mask", **API_MODEL) for p in clips["inputs"]]
    (out / "keep").mkdir(parents=True)
    (out / "keep" / ".x.partial-1.mkv").write_bytes(b"not this run's")

    class Killed:  # what the Ray executor leaves when the driver is stopped: each running chunk half-written
        where, workers = "test", 2

        def run(self, tasks, on_result, on_frames=None, on_failure=None, skip=None):
            on_result(tasks[0], {"frames": 6, "seconds": 0.1})  # one chunk finished before the stop
            for task in tasks[1:]:
                path = Path(task.path)
                path.parent.mkdir(parents=True, exist_ok=True)
                (path.parent / f".{path.stem}.partial-abc{path.suffix}").write_bytes(b"half")
            Path(tasks[1].path).write_bytes(b"whole")  # renamed into place as its worker was killed: never reported
            raise KeyboardInterrupt

        def close(self):
            pass

    log = tmp_path / "p.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run_batch(jobs, out, Killed, BatchProgress(quiet=True, json_path=log), chunk_frames=6)
    last = events(log)[-1]  # a log watcher sees the run end, not a last frame count
    assert last["event"] == "stopped" and last["reason"] == "interrupted" and last["chunks_done"] == 1
    assert [p.name for p in out.rglob("*") if ".partial-" in p.name] == [".x.partial-1.mkv"]
    assert manifest(out)["videos"]["long.mkv"]["chunks_done"] == {"0": 6}  # the finished chunk stays for the rerun
    # (its file is this fake's to write) but not a chunk file the manifest does not list, which the rerun redoes anyway:
    # a stop through --ray local left one, its worker killed as it renamed it, in each of two tries
    assert not list((out / ".birefvid-batch").rglob("chunk-*"))


def test_cleaning_up_after_a_video_named_with_glob_characters_touches_only_its_own_leftovers(tmp_path):
    """The leftovers of ``clip*.mkv`` were found by the pattern ``.clip*.partial-*``, which also took the
    file ``.clipB.partial-*`` another worker was writing; those of ``clip [1].mkv`` were never found."""
    from birefvid.batch.runner import remove_partials

    for stem in ("clip*", "clip [1]", "clipB", "clip1"):
        (tmp_path / f".{stem}.partial-abc.mkv").write_bytes(b"half")
    remove_partials(tmp_path / "clip*.mkv")
    remove_partials(tmp_path / "clip [1].mkv")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".clip1.partial-abc.mkv", ".clipB.partial-abc.mkv"]


def test_interrupted_run_resumes_and_skips_finished_work(clips, tmp_path, caplog):
    out, marker = tmp_path / "out", tmp_path / "crashed"
    long, a = clips["inputs"][0], clips["inputs"][1]
    argv = ["batch", str(long), str(a), "--output-dir", str(out), "--output", "mask", "--chunk-frames", "6", "-q", *MODEL]
    env = {**os.environ, CRASH_ENV: "long.mp4:2", MARKER_ENV: str(marker)}
    killed = subprocess.run([sys.executable, "-m", "birefvid.cli", *argv], env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == CRASH_EXIT_CODE and marker.exists(), killed.stderr
    entry = manifest(out)["videos"]["long.mkv"]
    assert entry["status"] == "pending" and sorted(entry["chunks_done"]) == ["0", "1"]
    assert not (out / "long.mkv").exists() and not (out / "a.mkv").exists()  # nothing that looks finished

    log = tmp_path / "rerun.jsonl"
    assert main([*argv, "--progress-json", str(log)]) == 0
    assert f"the last run was killed while cutting out {long} (chunk 2)" in caplog.text  # the OOM killer's victim is named
    assert not (out / ".birefvid-batch" / "running.json").exists()
    ev = events(log)
    assert [(e["video"], e["chunk"]) for e in ev if e["event"] == "chunk_skipped"] == [("long.mkv", 0), ("long.mkv", 1)]
    assert sorted((e["video"], e["chunk"]) for e in ev if e["event"] == "chunk_done") == [("a.mkv", 0), ("long.mkv", 2), ("long.mkv", 3)]
    assert ev[-1]["frames_computed"] == 12 + SHORT and ev[-1]["frames_done"] == LONG + SHORT
    assert max_diff(grey(out / "long.mkv"), grey(clips["refs"]["long"])) == 0
    assert video_facts(out / "long.mkv")["pts"] == video_facts(clips["refs"]["long"])["pts"]
    assert max_diff(grey(out / "a.mkv"), grey(clips["refs"]["a"])) == 0
    assert sorted(os.listdir(out)) == [".birefvid-batch", "a.mkv", "long.mkv"]

    again = tmp_path / "again.jsonl"
    assert main([*argv, "--progress-json", str(again)]) == 0
    ev = events(again)
    assert [e["video"] for e in ev if e["event"] == "video_skipped"] == ["long.mkv", "a.mkv"]
    assert ev[-1]["frames_computed"] == 0


def test_damaged_chunk_skips_that_video_and_the_rest_are_processed(clips, tmp_path, capsys):
    bad = damage_packet(clips["inputs"][0], tmp_path / "bad.mp4", 14)  # inside chunk 2 (frames 12-17)
    out, log = tmp_path / "o", tmp_path / "p.jsonl"
    code = batch(str(bad), str(clips["inputs"][1]), str(clips["inputs"][2]), "--output-dir", str(out), "--output", "mask",
                 "--chunk-frames", "6", "--progress-json", str(log))  # fmt: skip
    assert code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("birefvid:")]
    assert len(err) == 1, err
    assert err[0].startswith(f"birefvid: error: 1 of 3 inputs were skipped (1 damaged midway): {bad} (the other 2 were processed")
    # the videos after the damaged one were done; no half output of the bad one, its finished chunks kept for a rerun
    assert sorted(os.listdir(out)) == [".birefvid-batch", "a.mkv", "b.mkv"]
    assert manifest(out)["videos"]["bad.mkv"]["status"] == "pending"
    failed = [e for e in events(log) if e["event"] == "video_failed"]
    assert len(failed) == 1 and failed[0]["video"] == "bad.mkv" and "damaged" in failed[0]["error"]
    assert events(log)[-1]["videos_failed"] == 1
    assert not any(e["event"] == "chunk_done" and e["video"] == "bad.mkv" and e["chunk"] == 3 for e in events(log))


def test_a_video_damaged_in_its_first_chunk_leaves_no_empty_chunk_folder(clips, tmp_path):
    """Skipped before any of its chunks finished, a video left `.birefvid-batch/bad.mkv/` empty after the run, looking
    like work in progress; only a folder holding finished chunks (for the rerun) stays."""
    bad = damage_packet(clips["inputs"][0], tmp_path / "bad.mp4", 1)  # inside chunk 0 (frames 0-5)
    out = tmp_path / "o"
    assert batch(str(bad), str(clips["inputs"][1]), "--output-dir", str(out), "--output", "mask", "--chunk-frames", "6", "-q") == 2
    assert sorted(os.listdir(out)) == [".birefvid-batch", "a.mkv"]
    assert sorted(os.listdir(out / ".birefvid-batch")) == ["manifest.json"]
    assert manifest(out)["videos"]["bad.mkv"]["chunks_done"] == {}


def test_a_skipped_videos_unrecorded_chunk_goes_with_its_chunk_folder(clips, tmp_path):
    """A chunk file a worker renamed into place as it died, never recorded (placed here by hand), of a video then
    skipped (damaged): the run's stop removed such a file, its normal end kept it, and with it the chunk folder,
    looking like work in progress though no chunk was recorded for a rerun to resume from."""
    bad = damage_packet(clips["inputs"][0], tmp_path / "bad.mp4", 1)  # inside chunk 0 (frames 0-5)
    out = tmp_path / "o"
    stray = out / ".birefvid-batch" / "bad.mkv" / "chunk-00003.mkv"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(clips["refs"]["a"].read_bytes())  # a finished chunk file, as a dead worker left it
    assert batch(str(bad), str(clips["inputs"][1]), "--output-dir", str(out), "--output", "mask", "--chunk-frames", "6", "-q") == 2
    assert manifest(out)["videos"]["bad.mkv"]["chunks_done"] == {}
    assert sorted(os.listdir(out / ".birefvid-batch")) == ["manifest.json"]


def test_a_frame_the_decoder_concealed_is_kept_with_a_warning_as_process_keeps_it(clips, tmp_path, caplog):
    """Damage inside a frame's data (a bad block on a NAS) that the decoder patches over: `process`, and `batch` of a
    short video, keep the frame with a warning; a video in chunks was skipped as damaged ("re-encode or repair")."""
    with av.open(str(clips["inputs"][0])) as c:
        pos, size = [(p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size][14]  # in chunk 2 (frames 12-17)
    data = bytearray(clips["inputs"][0].read_bytes())
    data[pos + size // 2: pos + size // 2 + 16] = np.random.default_rng(0).integers(0, 256, 16, dtype=np.uint8).tobytes()
    (tmp_path / "nas.mp4").write_bytes(data)
    with caplog.at_level("WARNING"):
        assert batch(str(tmp_path / "nas.mp4"), "--output-dir", str(tmp_path / "o"), "--output", "mask", "--chunk-frames", "6", "-q") == 0
    assert len(grey(tmp_path / "o" / "nas.mkv")) == LONG
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) <= 1 and all("nas.mp4: frame 14 is damaged" in w and "kept" in w for w in warnings), warnings


def test_an_input_deleted_during_the_run_is_named_as_removed_not_damaged(clips, tmp_path, capsys, monkeypatch):
    from birefvid.batch.progress import BatchProgress

    folder, out = tmp_path / "in", tmp_path / "o"
    folder.mkdir()
    a, b = (folder / "a.mp4", folder / "b.mp4")
    a.write_bytes(clips["inputs"][1].read_bytes())
    b.write_bytes(clips["inputs"][2].read_bytes())
    done = BatchProgress.chunk_done
    monkeypatch.setattr(BatchProgress, "chunk_done", lambda self, *args, **kw: (b.unlink(missing_ok=True), done(self, *args, **kw)))
    assert batch(str(folder), "--output-dir", str(out), "--output", "mask", "-q") == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("birefvid:")]
    assert err == [f"birefvid: error: 1 of 2 inputs were skipped (1 removed during the run): {b} (the other one was processed; "
                   "the progress lines say why each was skipped)"]  # fmt: skip
    assert sorted(os.listdir(out)) == [".birefvid-batch", "a.mkv"]


def test_one_damaged_video_alone_is_its_own_error(clips, tmp_path, capsys):
    bad = damage_packet(clips["inputs"][0], tmp_path / "bad.mp4", 14)
    assert batch(str(bad), "--output-dir", str(tmp_path / "o"), "--output", "mask", "--chunk-frames", "6") == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("birefvid:")]
    assert len(err) == 1 and "bad.mp4" in err[0] and "damaged" in err[0] and "skipped" not in err[0], err


def test_missing_ray_is_one_clear_line(clips, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert batch(str(clips["inputs"][1]), "--output-dir", str(tmp_path / "o"), "--ray", "local") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("birefvid: error:") and 'pip install "birefvid[ray]"' in err[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "argv, words",
    [
        (["missing.mp4"], "input not found"),
        (["{a}", "--workers", "2"], "--workers, --cpus-per-worker and --gpus-per-worker need --ray"),
        (["{a}", "--chunk-frames", "-1"], "--chunk-frames must be >= 0"),
        (["{a}", "--output", "composite"], "needs --background"),
        (["--ray", "{a}", "{a}"], "is not a Ray address"),  # --ray swallowed an input
        (["{a}", "--output", "composite", "--background", "nope.png"], "background not found: nope.png"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(clips, tmp_path, capsys, argv, words):
    argv = [x.replace("{a}", str(clips["inputs"][1])) for x in argv]
    kind = [] if "--output" in argv else ["--output", "mask"]
    assert batch(*argv, "--output-dir", str(tmp_path / "o"), *kind) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("birefvid: error:") and words in err[0], err


@pytest.mark.parametrize("pattern", ["m.%04d.png", "m.####.png", "m.%04d.exr"])
def test_a_sequence_pattern_as_the_output_folder_is_one_line(clips, tmp_path, capsys, pattern):
    """`-o out/m.%04d.png`, as process takes a PNG sequence: batch made a folder named `m.%04d.png` holding a.mkv. The
    line names the `--ext` of the pattern's format (`exr` for `.exr`: batch writes OpenEXR folders too)."""
    out = tmp_path / "out" / pattern
    ext = pattern.rsplit(".", 1)[1]
    assert batch(str(clips["inputs"][1]), "-o", str(out), "--output", "mask", "-q") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"birefvid: error: --output-dir {out} is a sequence pattern, as birefvid process -o takes one; batch writes into a folder, "
                   f"and each video's frames into a folder of its name with --ext {ext} (--output-dir {out.parent} --ext {ext})"]  # fmt: skip
    assert not (tmp_path / "out").exists()
    out.mkdir(parents=True)  # a folder of that name already there is the user's to write into
    assert batch(str(clips["inputs"][1]), "-o", str(out), "--output", "mask", "-q") == 0
    assert (out / "a.mkv").exists()


def test_a_trailing_slash_makes_a_pattern_like_name_a_folder_as_in_process(clips, tmp_path):
    """`-o out/m.%04d.png/`: process writes into a folder of that name (the slash says folder), batch refused it as a
    pattern, the slash lost through Path."""
    out = tmp_path / "out" / "m.%04d.png"
    assert batch(str(clips["inputs"][1]), "-o", f"{out}/", "--output", "mask", "-q") == 0
    assert [p.name for p in out.iterdir() if not p.name.startswith(".")] == ["a.mkv"]  # beside the resume manifest
    assert len(video_facts(out / "a.mkv")["pts"]) == SHORT  # every frame of a.mp4


@pytest.mark.parametrize("extra, words", [
    ([], "--device cuda:1 with --ray: Ray gives each worker its own GPU, numbered from cuda:0 there"),
    (["--gpus-per-worker", "0.5"], "Ray gives each worker its own GPU, numbered"),  # a share of a GPU still shows one
])
def test_a_gpu_index_with_ray_is_one_line_before_ray_starts(clips, tmp_path, capsys, extra, words):
    """Ray sets each worker's CUDA_VISIBLE_DEVICES to its own GPUs: cuda:1 on a one-GPU worker would fail in
    every worker with CUDA's "invalid device ordinal"; it is refused before Ray or the model start."""
    model = [a for a in MODEL if a not in ("--device", "cpu")]
    argv = ["batch", str(clips["inputs"][1]), "--output-dir", str(tmp_path / "o"), "--output", "mask", "--ray", "local", "--device", "cuda:1"]
    assert main([*argv, *extra, *model]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("birefvid: error:") and words in err[0], err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("where", ["output", "input"])
def test_standard_streams_are_refused_not_made_a_folder(clips, tmp_path, capsys, monkeypatch, where):
    monkeypatch.chdir(tmp_path)
    inputs, out = (["-"], "o") if where == "input" else ([str(clips["inputs"][1])], "-")
    assert main(["batch", *inputs, "--output-dir", out, "--output", "mask", *MODEL]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    words = "reading from standard input (-)" if where == "input" else "writing to standard output (-)"
    assert len(err) == 1 and f"{words} is not supported" in err[0], err
    assert list(tmp_path.iterdir()) == []  # no folder named "-" (nor "o")


def test_an_unreadable_video_in_a_folder_is_skipped_and_named(clips, tmp_path, capsys):
    folder, out, log = tmp_path / "in", tmp_path / "out", tmp_path / "p.jsonl"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(clips["inputs"][1].read_bytes())
    (folder / "broken.mp4").write_text("not a video")  # e.g. a download that failed
    assert batch(str(folder), "--output-dir", str(out), "--output", "mask", "--progress-json", str(log)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("birefvid: error: 1 of 2 inputs were skipped (1 not a readable video): ")
    assert "broken.mp4" in err[-1] and "the other one was processed" in err[-1]
    assert sorted(p.name for p in out.iterdir()) == [".birefvid-batch", "a.mkv"]
    assert max_diff(grey(out / "a.mkv"), grey(clips["refs"]["a"])) == 0
    skipped = [e for e in events(log) if e["event"] == "video_unreadable"]
    assert len(skipped) == 1 and skipped[0]["input"].endswith("broken.mp4") and "not a readable video" in skipped[0]["error"]
    # the end's counts say one failed: 1/1 videos done alone read as a clean run to a script reading the JSON lines
    end = events(log)[-1]
    assert end["event"] == "end" and (end["videos_done"], end["videos"], end["videos_failed"]) == (1, 1, 1)
    assert "batch done: 1/1 videos, 1 input failed," in "\n".join(err)
    assert any(line.endswith(f"skipped: {folder / 'broken.mp4'} is not a readable video (it holds text, not a video: a web page or text file under a video's name?)") for line in err), err


def test_what_decord_cannot_read_is_skipped_before_any_work(clips, tmp_path, capsys):
    """With --decoder decord an MPEG-TS was planned, ran into decord's refusal and was counted "damaged midway"."""
    from system_tools import need_binary, need_module

    need_module("decord", '"birefvid[decord]"')
    folder, out, log = tmp_path / "in", tmp_path / "out", tmp_path / "p.jsonl"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(clips["inputs"][1].read_bytes())
    subprocess.run([need_binary("ffmpeg", "ffmpeg"), "-v", "error", "-i", str(clips["inputs"][1]), "-c", "copy", str(folder / "b.ts")], check=True)
    assert batch(str(folder), "--output-dir", str(out), "--output", "mask", "--decoder", "decord", "--progress-json", str(log)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("birefvid: error: 1 of 2 inputs were skipped (1 not a readable video): "), err[-1]
    skipped = [e for e in events(log) if e["event"] == "video_unreadable"]
    assert len(skipped) == 1 and "b.ts is MPEG-TS, a container without a frame index" in skipped[0]["error"]
    assert "--decoder pyav" in skipped[0]["error"]
    assert [e["video"] for e in events(log) if e["event"] == "chunk_done"] == ["a.mkv"]  # no work on it


def _damaged_archive(long: Path, folder: Path) -> dict[str, str]:
    """Copies of ``long`` (24 frames, audio) damaged as a NAS or an interrupted copy leaves them, and what each reason says."""
    from PIL import Image
    from process_fixtures import scene_frame
    from system_tools import need_binary

    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    data = long.read_bytes()
    moov = data.rfind(b"moov") - 4
    sound = [i - 4 for i in range(moov, len(data)) if data[i:i + 4] == b"trak"][1]
    (folder / "moov.mp4").write_bytes(data[: sound + 200])  # the index cut in the sound's track: the video without sound
    at = data.rfind(b"avc1")
    (folder / "odd.mp4").write_bytes(data[:at] + b"zzzz" + data[at + 4:])  # a damaged sample description
    made = {}
    for name, args in (("fast.mp4", ["-c", "copy", "-movflags", "+faststart"]), ("cut.mkv", ["-c", "copy"]),
                       ("short.avi", ["-c:v", "mpeg4", "-g", "6", "-c:a", "mp3"])):  # fmt: skip
        made[name] = folder.parent / name
        subprocess.run([ffmpeg, "-v", "error", "-i", str(long), *args, str(made[name])], check=True)
    (folder / "fast.mp4").write_bytes(made["fast.mp4"].read_bytes()[: made["fast.mp4"].stat().st_size * 97 // 100])
    (folder / "cut.mkv").write_bytes(made["cut.mkv"].read_bytes()[: made["cut.mkv"].stat().st_size * 95 // 100])
    (folder / "short.avi").write_bytes(made["short.avi"].read_bytes()[: made["short.avi"].stat().st_size * 8 // 10])
    pictures = [Image.fromarray(scene_frame(i, (64, 48))) for i in range(6)]
    pictures[0].save(folder.parent / "whole.gif", save_all=True, append_images=pictures[1:], duration=40, loop=0)
    gif = bytearray((folder.parent / "whole.gif").read_bytes())
    gif[len(gif) // 2: len(gif) * 6 // 10] = bytes(len(gif) * 6 // 10 - len(gif) // 2)  # a zeroed hole
    (folder / "hole.gif").write_bytes(gif)
    return {"moov.mp4": "cut off within its index", "odd.mp4": "codec is unknown", "fast.mp4": "cut off (its mdat box",
            "cut.mkv": "the file is truncated", "short.avi": "stop at frame", "hole.gif": "the GIF is damaged"}  # fmt: skip


def test_damaged_videos_are_refused_before_any_work_as_process_refuses_them(clips, tmp_path, capsys):
    """An archive's damaged copies: a Matroska file cut off near its end (and an AVI's) was planned from the packets
    left and written as if whole, its last frames and sound's end lost, exit 0; an MP4 cut in its index or media data
    or of unknown codec ran into every chunk and was called "damaged midway". All are now unreadable, before any work."""
    folder, out, log = tmp_path / "in", tmp_path / "out", tmp_path / "p.jsonl"
    folder.mkdir()
    reasons = _damaged_archive(clips["inputs"][0], folder)
    (folder / "a.mp4").write_bytes(clips["inputs"][1].read_bytes())
    code = batch(str(folder), "--output-dir", str(out), "--output", "mask", "--chunk-frames", "6", "--progress-json", str(log))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("birefvid: error: 6 of 7 inputs were skipped (6 not readable videos): "), err[-1]
    assert sorted(p.name for p in out.iterdir()) == [".birefvid-batch", "a.mkv"]
    ev = events(log)
    skipped = {Path(e["input"]).name: e["error"] for e in ev if e["event"] == "video_unreadable"}
    assert sorted(skipped) == sorted(reasons)
    for name, words in reasons.items():
        assert words in skipped[name], (name, skipped[name])
    assert [e["video"] for e in ev if e["event"] == "chunk_done"] == ["a.mkv"] and ev[0]["videos"] == 1  # no work on them
    # alone, the damage is the run's error, as in process
    assert batch(str(folder / "cut.mkv"), "--output-dir", str(tmp_path / "o2"), "--output", "mask", "--chunk-frames", "6") == 2
    assert not (tmp_path / "o2" / "cut.mkv").exists()


def test_a_matroska_cluster_ffmpeg_skips_is_refused_before_any_work(tmp_path, capsys):
    """A .mkv whose damaged Cluster FFmpeg's demuxer skips (logging it only): its packets were planned into chunks
    as if whole and the output written without the Cluster's frames, exit 0. The probe now refuses it, as process does."""
    from media import damage_cluster
    from system_tools import need_binary

    ok, out = tmp_path / "ok.mkv", tmp_path / "out"
    subprocess.run([need_binary("ffmpeg", "ffmpeg"), "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25,noise=alls=30:allf=t",
                    "-frames:v", "48", "-c:v", "libx264", "-threads", "1", "-g", "12", "-pix_fmt", "yuv420p", "-y", str(ok)], check=True)  # fmt: skip
    bad = damage_cluster(ok, tmp_path / "bad.mkv", 2)
    assert batch(str(bad), "--output-dir", str(out), "--output", "mask", "--chunk-frames", "12") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.mkv: the file is damaged at frame" in err[0] and "FFmpeg skipped data it could not read there" in err[0], err
    assert not (out / "bad.mkv").exists()
    assert len(probe_video(ok).pts) == 48  # the intact file is planned as before


def test_a_too_small_video_is_unreadable_before_any_work(clips, tmp_path, capsys):
    """A 2x2 clip in a folder was planned, its chunk ran and failed on "is 2x2 pixels", and the summary counted it
    "damaged midway"; its header says its size, so it is now refused as process refuses it, before any work."""
    folder, out, log = tmp_path / "in", tmp_path / "out", tmp_path / "p.jsonl"
    folder.mkdir()
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=s=2x2:r=10:d=0.5", "-c:v", "ffv1",
                    str(folder / "dot.mkv")], check=True)  # fmt: skip
    (folder / "a.mp4").write_bytes(clips["inputs"][1].read_bytes())
    code = batch(str(folder), "--output-dir", str(out), "--output", "mask", "--progress-json", str(log))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("birefvid: error: 1 of 2 inputs were skipped (1 not a readable video): "), err[-1]
    ev = events(log)
    assert [(Path(e["input"]).name, e["error"]) for e in ev if e["event"] == "video_unreadable"] == [
        ("dot.mkv", f"{folder / 'dot.mkv'} is 2x2 pixels; birefvid needs at least 8x8")]
    assert [e["video"] for e in ev if e["event"] == "chunk_done"] == ["a.mkv"]
    assert sorted(p.name for p in out.iterdir()) == [".birefvid-batch", "a.mkv"]


def test_a_folder_leaves_out_hidden_files_and_the_batchs_own_outputs(clips, tmp_path, capsys, caplog):
    """Outputs written beside the inputs are not inputs on the rerun (clip.mov would clash with
    clip.mp4's output), nor are macOS' ._clip.mp4 forks; subfolders are named as not searched."""
    folder = tmp_path / "in"
    (folder / "season 2").mkdir(parents=True)
    (folder / "a.mp4").write_bytes(clips["inputs"][1].read_bytes())
    (folder / "._a.mp4").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # Finder's resource fork: not a video
    for _ in range(2):
        assert batch(str(folder), "--output-dir", str(folder), "--output", "mask", "-q") == 0, capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["._a.mp4", ".birefvid-batch", "a.mkv", "a.mp4", "season 2"]
    assert manifest(folder)["videos"]["a.mkv"]["status"] == "done" and len(manifest(folder)["videos"]) == 1
    assert "1 subfolder is not searched (season 2)" in caplog.text
    assert batch(str(folder / "a.mkv"), "--output-dir", str(tmp_path / "o"), "--output", "mask", "--ext", "webm", "-q") == 0  # named: an input


def test_clashing_outputs_name_their_inputs(clips, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("clip.mp4", "clip.mov", "other.mp4", "other.mkv"):
        (folder / name).write_bytes(clips["inputs"][1].read_bytes())
    assert batch(str(folder), "--output-dir", str(tmp_path / "o"), "--output", "mask") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"birefvid: error: {folder / 'clip.mov'} and {folder / 'clip.mp4'} would both write clip.mkv "
                   "(1 other output name clashes too: other.mkv); rename one or run them apart"]  # fmt: skip


def test_outputs_alike_but_for_case_clash_on_a_disk_that_ignores_case(clips, tmp_path, capsys, monkeypatch):
    """Clip.mp4 and clip.mp4 write Clip.mkv and clip.mkv: one file on an exFAT stick or a Mac's disk, where the
    second replaced the first and the manifest counted both done (no such disk here: its probe answers yes)."""
    import birefvid.batch.runner as runner

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("Clip.mp4", "clip.mp4"):
        (folder / name).write_bytes(clips["inputs"][1].read_bytes())
    monkeypatch.setattr(runner, "folds_names", lambda folder: True, raising=False)
    assert batch(str(folder), "--output-dir", str(tmp_path / "o"), "--output", "mask") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "would both write Clip.mkv (one file on this disk, which does not tell letter case apart)" in err[0], err
    assert not (tmp_path / "o").exists()


def test_a_rerun_naming_the_folders_another_way_skips_what_is_done(clips, tmp_path, capsys, monkeypatch):
    """clips/ then /abs/clips/ (or the same from another folder) is the same work: skipped, not 'output exists'."""
    from birefvid.batch.manifest import Manifest

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.mp4").write_bytes(clips["inputs"][1].read_bytes())
    monkeypatch.chdir(tmp_path)
    log = tmp_path / "p.jsonl"
    assert batch("in", "--output-dir", "out", "--output", "mask", "-q") == 0
    monkeypatch.chdir(tmp_path / "in")
    assert batch(str(tmp_path / "in"), "--output-dir", "../out", "--output", "mask", "--progress-json", str(log)) == 0, capsys.readouterr().err
    assert [e["event"] for e in events(log)] == ["start", "video_skipped", "end"]
    # a manifest from before paths were resolved holds the fingerprint of the paths as spelled: still valid, re-keyed
    m = Manifest(tmp_path / "out")
    m.videos["a.mkv"]["fingerprint"] = "as-spelled"
    assert m.entry("a.mkv", "resolved", {}, also=("as-spelled",))["status"] == "done" and m.videos["a.mkv"]["fingerprint"] == "resolved"
    assert m.entry("a.mkv", "other-job", {}, also=("as-spelled",))["status"] == "pending"


def test_changed_options_redo_a_finished_video_only_with_overwrite(clips, tmp_path, capsys):
    out, log = tmp_path / "o", tmp_path / "p.jsonl"
    a = str(clips["inputs"][1])
    assert batch(a, "--output-dir", str(out), "--output", "mask", "-q") == 0
    assert batch(a, "--output-dir", str(out), "--output", "mask", "--smooth", "none", "-q") == 2  # another job: not "done"
    assert f"{out / 'a.mkv'} was made by an earlier batch with other options, or from an input that has changed since; --overwrite redoes it" in capsys.readouterr().err
    assert batch(a, "--output-dir", str(out), "--output", "mask", "--smooth", "none", "--overwrite", "--progress-json", str(log)) == 0
    assert [e["event"] for e in events(log)].count("chunk_done") == 1
    assert max_diff(grey(out / "a.mkv"), grey(reference(clips["inputs"][1], tmp_path / "ref.mkv", kind="mask", smooth="none"))) == 0


def test_a_second_run_on_the_same_folder_is_refused(clips, tmp_path, capsys):
    from birefvid.batch.manifest import RunLock

    out = tmp_path / "o"
    running = RunLock(out)
    running.acquire()  # a live run
    try:
        assert batch(str(clips["inputs"][1]), "--output-dir", str(out), "--output", "mask") == 2
    finally:
        running.release()
    assert "another birefvid batch is writing to" in capsys.readouterr().err and not (out / "a.mkv").exists()


def test_the_lock_of_a_killed_run_is_taken_over_even_when_its_pid_lives_on(tmp_path):
    """kill -9 leaves the lock file; on a busy machine its pid soon names another process. The rerun
    takes it over (the kernel dropped the dead run's flock), and once only when two reruns race."""
    import socket

    from birefvid.batch.manifest import RunLock

    lock = tmp_path / ".birefvid-batch" / "lock"
    lock.parent.mkdir()
    lock.write_text(f"{socket.gethostname()} {os.getppid()}\n")  # a live process, not a batch
    first, second = RunLock(tmp_path), RunLock(tmp_path)
    first.acquire()
    assert lock.read_text().split()[1] == str(os.getpid())
    with pytest.raises(Exception, match="another birefvid batch is writing"):
        second.acquire()  # once taken, the lock holds (another open of the file, as another process)
    first.release()
    assert not lock.exists()


def test_a_file_where_the_work_folder_goes_is_one_line(clips, tmp_path, capsys):
    """A file named .birefvid-batch in the output folder (a sync tool's conflict copy, a stray touch) ended the
    run in a FileExistsError traceback (exit 1), as did a folder os.access calls writable where mkdir fails."""
    out = tmp_path / "out"
    out.mkdir()
    (out / ".birefvid-batch").write_text("")
    assert batch(str(clips["inputs"][1]), "--output-dir", str(out), "--output", "mask") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"birefvid: error: {out / '.birefvid-batch'} is a file, not the batch's work folder; remove it, or write to another output folder"]
    assert sorted(os.listdir(out)) == [".birefvid-batch"]


@pytest.mark.skipif(os.name != "posix", reason="O_NOFOLLOW is POSIX's")
def test_a_link_planted_as_the_lock_is_refused_and_its_target_left_alone(tmp_path):
    """In a shared output folder another user could put a link where the lock goes: the run opened the file it
    named, wrote its host and pid into it, and left it so (an empty file of this user's, one of their choosing)."""
    from birefvid.batch.manifest import RunLock
    from birefvid.errors import SinkError

    victim = tmp_path / "victim.txt"
    victim.write_text("")
    lock = tmp_path / "out" / ".birefvid-batch" / "lock"
    lock.parent.mkdir(parents=True)
    lock.symlink_to(victim)
    with pytest.raises(SinkError, match="is a link"):
        RunLock(tmp_path / "out").acquire()
    assert victim.read_text() == ""


def test_the_lock_works_without_flock_as_on_windows_and_never_signals_its_holder(tmp_path, monkeypatch):
    """Windows has no fcntl: every batch was refused ("another birefvid batch is writing", owner "?") by the
    empty lock file its own first open made; and the holder's pid was asked with os.kill(pid, 0), which
    on Windows terminates that process. Now a run takes the lock, a live holder refuses the next and a
    dead one's lock is taken over, all without os.kill."""
    import socket
    import sys

    from birefvid.batch import manifest
    from birefvid.batch.manifest import RunLock

    monkeypatch.setitem(sys.modules, "fcntl", None)  # import fcntl fails, as on Windows
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(manifest, "_windows_pid_alive", lambda pid: pid == os.getpid(), raising=False)  # OpenProcess's answer
    monkeypatch.setattr(os, "kill", lambda *a: pytest.fail(f"os.kill{a} would terminate the process on Windows"))
    lock = tmp_path / ".birefvid-batch" / "lock"
    first = RunLock(tmp_path)
    first.acquire()
    assert lock.read_text().split() == [socket.gethostname(), str(os.getpid())]
    with pytest.raises(Exception, match="another birefvid batch is writing"):
        RunLock(tmp_path).acquire()  # the holder runs
    first.release()
    assert not lock.exists()
    lock.parent.mkdir(exist_ok=True)
    lock.write_text(f"{socket.gethostname()} 999999999\n")  # a run that died without releasing it
    again = RunLock(tmp_path)
    again.acquire()
    assert lock.read_text().split()[1] == str(os.getpid())
    again.release()


def test_existing_output_is_kept_without_overwrite(clips, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "a.mkv").write_bytes(b"mine")
    assert batch(str(clips["inputs"][1]), "--output-dir", str(out), "--output", "mask") == 2
    assert "output exists" in capsys.readouterr().err and (out / "a.mkv").read_bytes() == b"mine"


def test_help_imports_nothing_heavy():
    probe = "import sys\nfrom birefvid.cli import main\ntry:\n    main(['batch', '--help'])\nexcept SystemExit:\n    pass\n" \
            "print(sorted(m for m in ('torch', 'av', 'numpy', 'cv2', 'ray') if m in sys.modules), file=sys.stderr)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "--ray [ADDRESS]" in result.stdout and result.stderr.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("ext", [".gif", ".webp"])
def test_animated_outputs_are_written_whole_not_in_chunks(clips, tmp_path, ext):
    """GIF and WebP cannot be joined from chunks (FFmpeg cannot read animated WebP back): one piece a video."""
    from PIL import Image

    out = tmp_path / "out"
    clip = clips["inputs"][1]  # keyframes at 0 and 3: two chunks of --chunk-frames 3, were it cut
    assert batch(str(clip), "--output-dir", str(out), "--output", "alpha", "--ext", ext, "--chunk-frames", "3", "-q") == 0
    assert manifest(out)["videos"][f"a{ext}"]["chunks"] == 1
    with Image.open(out / f"a{ext}") as im:
        assert im.n_frames == SHORT


@pytest.fixture()
def short_clip(tmp_path):
    return keyframed_clip(tmp_path / "a.mp4", SHORT, gop=3)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("birefvid: error:"), err
    return err[0]


def test_an_output_folder_that_cannot_be_made_is_one_line(short_clip, tmp_path, capsys):
    (tmp_path / "afile").write_text("not a folder")
    assert batch(str(short_clip), "--output-dir", str(tmp_path / "afile" / "sub"), "--output", "mask", "-q") == 2
    assert f"cannot create the output folder {tmp_path / 'afile' / 'sub'}: Not a directory" in _one_error_line(capsys)


def test_a_read_only_output_folder_is_one_line(short_clip, tmp_path, capsys):
    from fs_fixtures import read_only_dir

    with read_only_dir(tmp_path / "ro") as ro:
        assert batch(str(short_clip), "--output-dir", str(ro), "--output", "mask", "-q") == 2
        assert f"output folder is not writable: {ro}" in _one_error_line(capsys)
        assert batch(str(short_clip), "--output-dir", str(ro / "sub"), "--output", "mask", "-q") == 2
        assert f"cannot create the output folder {ro / 'sub'}" in _one_error_line(capsys)


def test_a_progress_json_onto_an_input_video_is_one_line_before_any_work(short_clip, tmp_path, capsys):
    """`--progress-json clips/a.mp4` appended its JSON lines to the input video (exit 0), whose changed size then made a
    rerun redo it; named as a file or found in a folder given, it is refused and the video kept as it was."""
    before, out = short_clip.read_bytes(), tmp_path / "o"
    for inputs in ([str(short_clip)], [str(short_clip.parent)]):
        assert batch(*inputs, "--output-dir", str(out), "--output", "mask", "-q", "--progress-json", str(short_clip)) == 2
        assert f"--progress-json {short_clip} would write into" in _one_error_line(capsys)
    assert short_clip.read_bytes() == before and not out.exists()


def test_a_progress_json_in_a_missing_folder_is_one_line_before_any_work(short_clip, tmp_path, capsys):
    target = tmp_path / "nonexist" / "p.jsonl"
    out = tmp_path / "o"
    assert batch(str(short_clip), "--output-dir", str(out), "--output", "mask", "-q", "--progress-json", str(target)) == 2
    assert f"--progress-json folder does not exist: {target.parent}" in _one_error_line(capsys)
    assert not out.exists()  # refused before the output folder was made


@pytest.mark.parametrize("argv, words", [
    # found by the first chunk, after the folder and its manifest were made, with "a rerun of the same command resumes"
    (["--ext", ".mp4"], "cannot write alpha output to .mp4 files"),
    (["--ext", "png", "--crf", "20"], "image sequences are always lossless PNG, which takes no --crf"),
    (["--output", "green", "--crf", "99"], "libx264's constant quality (--crf) runs 0 (best) to 51, got 99"),
    # ignored without --ray; 0 with it ended in a ZeroDivisionError
    (["--cpus-per-worker", "2"], "--workers, --cpus-per-worker and --gpus-per-worker need --ray"),
    (["--ray", "local", "--cpus-per-worker", "0"], "--cpus-per-worker must be above 0"),
])
def test_options_the_output_cannot_take_are_refused_before_the_folder_is_made(short_clip, tmp_path, capsys, argv, words):
    out = tmp_path / "o"
    assert batch(str(short_clip), "--output-dir", str(out), "-q", *argv) == 2
    assert words in _one_error_line(capsys)
    assert not out.exists()


def test_fps_which_videos_ignore_is_no_part_of_the_job(short_clip, tmp_path, caplog, monkeypatch):
    """--fps was warned about as ignored, yet it changed the job's fingerprint: the rerun without it was refused as out of date."""
    seen = []
    monkeypatch.setattr("birefvid.batch.runner.run_batch", lambda jobs, *a, **k: seen.extend(jobs))
    for fps in (["--fps", "30"], []):
        assert batch(str(short_clip), "--output-dir", str(tmp_path / "o"), "--output", "mask", "-q", *fps) == 0
    assert "every video keeps its own timing" in caplog.text
    assert len(seen) == 2 and seen[0] == seen[1]


def test_a_progress_file_that_cannot_be_written_mid_run_stops_with_a_warning_not_the_batch(tmp_path, caplog):
    """A full disk under --progress-json mid-run was a traceback; the videos matter more than their progress lines."""
    from birefvid.batch.progress import BatchProgress
    from fs_fixtures import full_dir

    with full_dir(tmp_path / "small", size="16k") as folder:
        progress = BatchProgress(quiet=True, json_path=folder / "p.jsonl")
        progress.start(1, 1, 10, 1, "here")
        with contextlib.suppress(OSError), open(folder / "filler", "wb") as filler:  # the disk is full now but for the
            for _ in range(64):  # rest of the progress file's own block
                filler.write(b"\0" * 1024)
                filler.flush()
        with caplog.at_level("WARNING"):
            for _ in range(200):  # a line each, ~200 bytes: the disk fills on the way
                progress.start(1, 1, 10, 1, "here")
        progress.close()
    assert "--progress-json stopped: cannot write it" in caplog.text or "progress_json stopped: cannot write it" in caplog.text


def test_a_max_size_too_small_for_an_input_is_refused_before_the_batch_starts(clips, tmp_path, capsys):
    """As `process` refuses it: one line naming a limit that works, no progress, no manifest, no work folder."""
    out = tmp_path / "out"
    assert batch(str(clips["inputs"][1]), "--output-dir", str(out), "--max-size", "9") == 2
    err = capsys.readouterr().err
    assert "--max-size 9 would make" in err and "use --max-size" in err and "batch:" not in err
    assert list(out.rglob("*")) == []


def test_outputs_into_the_inputs_folder_under_their_own_names_are_refused(clips, tmp_path, capsys):
    """`batch clips/ --output-dir clips/ --ext .mp4 --overwrite` joined a chunked video's cut-out over the
    video itself (exit 0, the source gone): now one line before any work, every input as it was."""
    folder = tmp_path / "in"
    folder.mkdir()
    video = folder / "long.mp4"
    video.write_bytes(clips["inputs"][0].read_bytes())
    before = video.read_bytes()
    code = batch(str(folder), "--output-dir", str(folder), "--ext", ".mp4", "--output", "green", "--chunk-frames", "6", "--overwrite")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "would replace" in err[0] and "long.mp4" in err[0], err
    assert video.read_bytes() == before


def test_ext_takes_png_with_a_dot_as_image_does():
    """`--ext .png` (as `birefvid image --ext .png` spells it) was "invalid choice" while `--ext mov` was taken."""
    from birefvid.cli import build_parser

    parser = build_parser()
    for given in ("png", ".png", ".PNG"):
        assert parser.parse_args(["batch", "clips/", "--output-dir", "out/", "--ext", given]).ext == "png"
    assert parser.parse_args(["batch", "clips/", "--output-dir", "out/", "--ext", "MOV"]).ext == ".mov"


def test_o_names_the_output_folder_as_in_the_other_commands():
    """`birefvid batch clips/ -o out/`, as process and image are run, said "the following arguments are required: --output-dir"."""
    from birefvid.cli import build_parser

    assert build_parser().parse_args(["batch", "clips/", "-o", "out/"]).output_dir == "out/"


def test_a_video_the_last_runs_were_killed_on_is_skipped_once_and_the_rest_get_done(clips, tmp_path, capsys):
    """A video that needs more memory than the machine has: the OOM killer ended every rerun at the same
    chunk, and a batch of thousands never got past it. After two killed runs it is skipped (exit 2 names
    it) and the others are processed; the rerun after that tries it again."""
    import json

    a, b = clips["inputs"][1], clips["inputs"][2]
    out = tmp_path / "out"
    argv = [str(a), str(b), "--output-dir", str(out), "--output", "mask", "-q"]
    (out / ".birefvid-batch").mkdir(parents=True)
    # what the second killed run left: it was cutting out a.mkv's chunk 0, as the first one had been
    (out / ".birefvid-batch" / "running.json").write_text(json.dumps({"video": "a.mkv", "chunk": 0, "kills": 1, "pid": 1}))
    assert batch(*argv) == 2
    err = capsys.readouterr().err
    assert "1 of 2 inputs were skipped (1 that the last runs were killed on)" in err and str(a) in err, err
    assert (out / "b.mkv").exists() and not (out / "a.mkv").exists()
    assert batch(*argv) == 0  # tried again
    assert max_diff(grey(out / "a.mkv"), grey(clips["refs"]["a"])) == 0


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the answer on machines without CUDA")
def test_device_cuda_without_cuda_is_one_line_before_the_output_folder(tmp_path, capsys):
    """It planned, made the folder and its manifest, failed in the first chunk and said a rerun would resume."""
    from media import make_video

    clip = make_video(tmp_path / "in.mp4", n_frames=2, with_audio=False)
    model = [a for a in MODEL if a not in ("--device", "cpu")]
    assert main(["batch", str(clip.path), "--output-dir", str(tmp_path / "o"), "--device", "cuda", *model]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["birefvid: error: device cuda requested but CUDA is not available here; use --device cpu or auto"]
    assert not (tmp_path / "o").exists()


def test_progress_json_dash_writes_json_lines_on_standard_output(tmp_path, capsys, monkeypatch):
    """`batch --progress-json -` made a file named "-" where `--report -` prints: now one JSON event a line on stdout,
    nothing else there (the progress lines stay on stderr), and stdout left open."""
    import json
    import sys

    from birefvid.batch.progress import BatchProgress

    monkeypatch.chdir(tmp_path)
    progress = BatchProgress(json_path="-")
    progress.start(1, 1, 6, 1, "here")
    progress.chunk_done("a", 0, 6, 1.0)
    progress.video_done("a", "out/a.mkv")
    progress.close()
    assert not sys.stdout.closed and list(tmp_path.iterdir()) == []
    captured = capsys.readouterr()
    events = [json.loads(line)["event"] for line in captured.out.splitlines()]
    assert events == ["start", "chunk_done", "video_done"] and "chunks 1/1" in captured.err


def test_progress_json_dash_whose_reader_left_lets_the_batch_finish(tmp_path):
    """`batch --progress-json - | head -1`: the JSON lines are a side channel, as live's --stats-json -; a reader
    gone is one warning saying so and the batch goes on to exit 0 (not 141, not a "cannot write it" error line)."""
    import os
    import subprocess
    import sys

    child = (
        "import logging, sys\n"
        "from birefvid.batch.progress import BatchProgress\n"
        "from birefvid.cli import guarded\n"
        "logging.basicConfig(format='%(levelname)s: %(message)s')\n"
        "def work():\n"
        "    p = BatchProgress(quiet=True, json_path='-')\n"
        "    p.start(1, 2, 12, 1, 'here')\n"
        "    p.chunk_done('a', 0, 6, 1.0)\n"
        "    p.chunk_done('a', 1, 6, 1.0)\n"
        "    p.finish()\n"
        "    p.close()\n"
        "    print('the work went on', file=sys.stderr)\n"
        "sys.exit(guarded('birefvid', work))\n"
    )
    read, write = os.pipe()
    os.close(read)  # the reader has gone before the first line
    try:
        done = subprocess.run([sys.executable, "-c", child], stdout=write, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write)
    warnings = [line for line in done.stderr.splitlines() if "progress-json" in line or "progress_json" in line]
    assert done.returncode == 0 and "the work went on" in done.stderr, done.stderr
    assert len(warnings) == 1 and "standard output's reader has gone; the batch goes on without its JSON lines" in warnings[0], done.stderr


@pytest.mark.parametrize("swap, line", [
    (("--model", "nosuch"), "birefvid: error: unknown model 'nosuch'; known models: "),
    (("--model", "runs/best.pth"), "birefvid: error: weights file not found: runs/best.pth"),  # a typo'd --model FILE made the folder
    (("--precision", "bf16", "--backend", "onnxruntime"), "birefvid: error: --backend onnxruntime runs fp32 only; use --precision fp32 or another backend"),
])  # fmt: skip
def test_a_model_the_workers_would_refuse_is_one_line_before_the_output_folder(tmp_path, capsys, swap, line):
    """As process: one error line, no folder. It probed every video, made the folder and its manifest, and said
    'batch stopped (...): a rerun of the same command resumes' above the error, which a rerun only repeats."""
    from media import make_video

    clip = make_video(tmp_path / "in.mp4", n_frames=2, with_audio=False)
    model = list(MODEL)
    for i in range(0, len(swap), 2):  # the option's value replaced
        model[model.index(swap[i]) + 1] = swap[i + 1]
    assert main(["batch", str(clip.path), "--output-dir", str(tmp_path / "o"), *model]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(line), err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("counts, said", [((1, 1, 1), "batch: 1 video, 1 chunk, 1 frame on 1 worker(s) (here)"),
                                          ((2, 3, 48), "batch: 2 videos, 3 chunks, 48 frames on 1 worker(s) (here)")])  # fmt: skip
def test_the_start_line_counts_one_video_in_the_singular(counts, said):
    """A watch folder's usual run is one clip dropped in, and its start line read "batch: 1 videos, 1 chunks"."""
    import io

    from birefvid.batch.progress import BatchProgress

    stream = io.StringIO()
    BatchProgress(stream=stream).start(*counts, workers=1, where="here")
    assert stream.getvalue().strip().endswith("] " + said), stream.getvalue()


def test_a_normal_end_does_not_wait_for_a_live_writer_of_a_skipped_videos_output(clips, tmp_path, monkeypatch):
    """A `process` run writing a skipped (damaged) video's output name holds its partial: a run that ended normally
    waited KILLED_WRITER_SECONDS (5 s) for it as for a worker it had killed, though it killed none; the partial stays."""
    from birefvid.batch import runner
    from birefvid.io.atomic import AtomicFile

    bad = damage_packet(clips["inputs"][0], tmp_path / "bad.mp4", 14)
    out = tmp_path / "o"
    out.mkdir()
    live = AtomicFile(out / "bad.mkv")  # as `birefvid process other.mp4 -o o/bad.mkv` holds it while it writes
    waits: list[float] = []
    let_go = runner._let_go
    monkeypatch.setattr(runner, "_let_go", lambda path, seconds: (waits.append(seconds), let_go(path, seconds))[1])
    try:
        assert batch(str(bad), str(clips["inputs"][1]), "--output-dir", str(out), "--output", "mask", "-q") == 2
        assert live.temp.exists()  # another run's work in progress, left
        assert waits and not any(waits), waits  # looked at once, never waited for
    finally:
        live.discard()
    assert sorted(os.listdir(out)) == [".birefvid-batch", "a.mkv"]
