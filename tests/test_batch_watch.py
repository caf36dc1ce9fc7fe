"""`birefvid batch --watch`: a watch folder. Real files written as a copy or an export writes them, the real command
in a subprocess (signals stop it), the tiny model; every wait is for an event of the watch, with a generous limit."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import av
import pytest
import torch
from test_batch_media import MODEL, keyframed_clip, manifest

from birefvid.cli import main

SETTLE = 3  # seconds: long against the few milliseconds between this test's writes, short enough for a quick test
# seconds, for tests that only ever make a file appear whole (one write of a small file, or a rename into place): no
# copy in progress to wait out, and each video waits this long, idle, before it runs
QUICK_SETTLE = 0.5
LONG = 36  # frames
WAIT = 300  # seconds for any one event: a loaded CI machine runs the tiny model slowly, and a pass takes far less


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("watch_clips")
    # long: 6 chunks of 6 frames, stopped after the first with five to go (seconds of work, against the 0.2 s the
    # test takes to see the first one done and send its SIGTERM)
    return {"short": keyframed_clip(d / "short.mp4", 5), "long": keyframed_clip(d / "long.mp4", LONG)}


class Watch:
    """``birefvid batch IN -o OUT --watch`` running in a subprocess, and its JSON progress lines."""

    def __init__(self, tmp_path: Path, *extra: str, settle: float = SETTLE) -> None:
        self.in_dir, self.out_dir, self.log = tmp_path / "in", tmp_path / "out", tmp_path / "events.jsonl"
        self.in_dir.mkdir(exist_ok=True)
        self.stderr_path = tmp_path / "stderr.txt"
        cmd = [sys.executable, "-m", "birefvid", "batch", str(self.in_dir), "-o", str(self.out_dir), "--watch", "--settle", str(settle),
               "--output", "mask", "--progress-json", str(self.log), *MODEL, *extra]  # fmt: skip
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)

    def events(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.endswith("}")]  # a line being written waits

    def wait_for(self, what: str, found: Callable[[dict], bool]) -> dict:
        """The first event ``found`` matches, waiting for it; fails with the watch's stderr if it ends or takes too long."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            hit = next((e for e in self.events() if found(e)), None)
            if hit is not None:
                return hit
            if self.proc.poll() is not None:
                pytest.fail(f"the watch ended (exit {self.proc.returncode}) before {what}:\n{self.stderr()[-3000:]}")
            time.sleep(0.2)
        pytest.fail(f"no {what} in {WAIT} s:\n{self.stderr()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(WAIT)

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def watch(tmp_path):
    made: list[Watch] = []

    def start(*extra: str, settle: float = SETTLE) -> Watch:
        made.append(Watch(tmp_path, *extra, settle=settle))
        return made[-1]

    yield start
    for w in made:
        w.close()


def frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def partials(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".partial-" in p.name)


def test_clips_dropped_later_are_processed_once_complete_and_a_broken_one_is_skipped(clips, watch):
    """The editor's case: the watch starts on an empty folder; a clip copied in slowly is not taken half written
    (an MP4 without its index would be skipped as unreadable, a Matroska cut short processed short), a broken file
    is one line and the watch goes on, on the model it loaded once, to the next clip and to a later run.

    The clip written whole under a hidden name and renamed (as rsync does) comes with the broken one and the copy's
    first half, so it settles with the broken one, a run before the copy's: two runs, as when it came last, without
    waiting out a settle of its own after the copy's run (4-5 s of CI's time)."""
    w = watch("-v")  # -v: the model's loading is logged, once for the whole watch
    w.wait_for("the watching line", lambda e: e["event"] == "watching")

    (w.in_dir / "broken.mp4").write_bytes(b"\0not a video" * 300)
    data = clips["short"].read_bytes()
    (w.in_dir / ".next.mp4").write_bytes(data)  # written under a hidden name and renamed when complete, as rsync does
    os.replace(w.in_dir / ".next.mp4", w.in_dir / "next.mp4")
    with open(w.in_dir / "slow.mp4", "wb") as f:  # a copy in progress: half now, the rest once the watch has seen it
        f.write(data[: len(data) // 2])
        f.flush()
        seen = w.wait_for("slow.mp4 seen half written", lambda e: e["event"] == "video_seen" and e.get("input", "").endswith("slow.mp4"))
        # more than a poll after the look that saw it (the watch looks at the half-written file again, unchanged), and
        # well within SETTLE of it: counted from the watch's own line, not from when this test, polling its file on a
        # loaded machine, read that line
        time.sleep(max(0.0, seen["time"] + 1.5 - time.time()))
        f.write(data[len(data) // 2 :])
    w.wait_for("next.mkv written", lambda e: e["event"] == "video_done" and e["video"] == "next.mkv")
    w.wait_for("broken.mp4 skipped", lambda e: e["event"] == "video_unreadable" and e["input"].endswith("broken.mp4"))
    w.wait_for("slow.mkv written", lambda e: e["event"] == "video_done" and e["video"] == "slow.mkv")
    w.wait_for("the watch idle again", lambda e: e["event"] == "watching" and e["watch_videos_done"] == 2)
    assert w.stop() == 143

    ev = w.events()
    assert not [e for e in ev if e["event"] in ("video_unreadable", "video_failed") and "slow" in e.get("input", "")], ev  # never taken half written
    runs = [e.get("video", e["event"]) for e in ev if e["event"] in ("start", "video_done", "end")]
    assert runs == ["start", "next.mkv", "end", "start", "slow.mkv", "end"], runs  # two runs: the model kept between them
    assert frames(w.out_dir / "slow.mkv") == frames(w.out_dir / "next.mkv") == 5
    err = w.stderr()
    assert len([line for line in err.splitlines() if "skipped" in line and "broken.mp4" in line]) == 1, err
    assert err.count("segmenter tiny on") == 1, err  # two videos in two runs, one model
    assert ev[-1]["event"] == "stopped" and ev[-1]["reason"] == "terminated"
    assert sorted(os.listdir(w.out_dir)) == [".birefvid-batch", "next.mkv", "slow.mkv"]  # nothing of broken.mp4, no temporaries


def test_a_replaced_file_is_redone_only_when_the_manifest_says_it_changed(clips, watch, tmp_path):
    """A new version dropped over a finished clip is looked at again; the manifest decides as for a rerun: the same
    size and time (a copy that kept them) is done already, a new time dates the output, which --overwrite redoes."""
    clip = tmp_path / "in" / "clip.mp4"
    clip.parent.mkdir()
    clip.write_bytes(clips["short"].read_bytes())
    w = watch("--overwrite", settle=QUICK_SETTLE)  # each version appears whole: a copy renamed into place, a new time
    w.wait_for("clip.mkv written", lambda e: e["event"] == "video_done")

    shutil.copy2(clip, tmp_path / "copy.mp4")  # another file (inode), its size and time kept
    os.replace(tmp_path / "copy.mp4", clip)
    w.wait_for("the copy found done", lambda e: e["event"] == "video_skipped")
    first = (w.out_dir / "clip.mkv").stat().st_mtime_ns

    later, touched = clip.stat().st_mtime_ns + 10**9, time.time()
    os.utime(clip, ns=(later, later))  # the same bytes, a new time: out of date as a rerun would find it
    w.wait_for("clip.mkv written again", lambda e: e["event"] == "video_done" and e["time"] >= touched)
    assert w.stop() == 143
    ev = w.events()
    assert [e["event"] for e in ev].count("video_done") == 2 and [e["event"] for e in ev].count("video_skipped") == 1
    assert [e.get("changed") for e in ev if e["event"] == "video_seen"] == [None, True, True]  # the start's line, then two changes
    assert (w.out_dir / "clip.mkv").stat().st_mtime_ns > first and frames(w.out_dir / "clip.mkv") == 5


def test_sigterm_mid_video_leaves_no_output_that_looks_complete_and_a_restart_resumes(clips, watch, tmp_path):
    long = tmp_path / "in" / "long.mp4"
    long.parent.mkdir()
    long.write_bytes(clips["long"].read_bytes())
    w = watch("--chunk-frames", "6", settle=QUICK_SETTLE)  # the clip is there whole before the watch starts
    w.wait_for("the first chunk", lambda e: e["event"] == "chunk_done")
    assert w.stop() == 143
    assert w.events()[-1]["event"] == "stopped" and w.events()[-1]["reason"] == "terminated"
    assert not (w.out_dir / "long.mkv").exists() and partials(w.out_dir) == []
    assert manifest(w.out_dir)["videos"]["long.mkv"]["status"] != "done"

    # the watch started again picks the video up where it stopped (its finished chunks are kept)
    assert main(["batch", str(w.in_dir), "-o", str(w.out_dir), "--watch", "--settle", "0.5", "--watch-for", "1", "--output", "mask",
                 "--chunk-frames", "6", "-q", *MODEL]) == 0  # fmt: skip
    assert frames(w.out_dir / "long.mkv") == LONG and partials(w.out_dir) == []


def test_watch_for_ends_a_watch_with_batchs_exit_code_and_one_line_per_skipped_input(clips, tmp_path, capsys):
    """For scripts: --watch-for SECONDS stops the watch; an input skipped on the way gives exit 2, as in a batch,
    and under -q each skipped input is still one line (a watch has no end to name them all at once)."""
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    (in_dir / "a.mp4").write_bytes(clips["short"].read_bytes())
    (in_dir / "b.mp4").write_bytes(b"not a video")
    (in_dir / "c.mp4.part").write_bytes(clips["short"].read_bytes())  # a download in progress
    log = tmp_path / "events.jsonl"
    code = main(["batch", str(in_dir), "-o", str(tmp_path / "out"), "--watch", "--settle", "0.5", "--watch-for", "2", "--output", "mask", "-q",
                 "--progress-json", str(log), *MODEL])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert sorted(os.listdir(tmp_path / "out")) == [".birefvid-batch", "a.mkv"]
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "skipped: " in lines[0] and "b.mp4" in lines[0], err
    assert lines[1].startswith("birefvid: error: 1 input was skipped during the watch: ") and "b.mp4" in lines[1], err
    ev = [json.loads(x) for x in log.read_text().splitlines()]
    assert ev[-1]["event"] == "watch_end" and (ev[-1]["watch_videos_done"], ev[-1]["watch_videos_failed"]) == (1, 1)


@pytest.mark.parametrize("folder, argv, words", [
    (False, ["--watch"], "--watch watches folders, and "),
    (True, ["--settle", "2"], "--settle and --watch-for need --watch"),
    (True, ["--watch", "--settle", "0"], "--settle must be above 0 seconds"),
    (True, ["--watch", "--watch-for", "-1"], "--watch-for must be above 0 seconds"),
])  # fmt: skip
def test_watch_options_misused_are_one_line(clips, tmp_path, capsys, folder, argv, words):
    source = clips["short"].parent if folder else clips["short"]
    code = main(["batch", str(source), "-o", str(tmp_path / "out"), *argv, *MODEL])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, err
    assert not (tmp_path / "out").exists()


def test_a_missing_watch_folder_is_named_as_missing(tmp_path, capsys):
    """A mistyped watch folder was called "not a folder: name the folder it is dropped into", which sent users looking
    for a file; it is named as missing, as a batch without --watch names a missing input."""
    code = main(["batch", str(tmp_path / "dropbx"), "-o", str(tmp_path / "out"), "--watch", *MODEL])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().splitlines() == [f"birefvid: error: input not found: {tmp_path / 'dropbx'} "
                                                      "(--watch watches folders that exist: make it first)"], err  # fmt: skip
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("watching", [True, False])
def test_a_checkpoint_that_cannot_run_is_one_line_before_any_work(tmp_path, capsys, pvt_b0_weights, watching):
    """`birefvid train`'s output named wrongly (a file that is no checkpoint, one of another backbone, or one whose
    weights were made integers) is refused
    at the start: a watch read it only when its first video came, hours later for an empty drop folder (and exited
    0 at --watch-for with nothing said); a batch made its folder and manifest, then said "a rerun resumes"."""
    drop = tmp_path / "drop"
    drop.mkdir()
    keyframed_clip(drop / "a.mp4", 3)
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"not a checkpoint")
    model = [a for a in MODEL if a not in ("--model", "tiny")]
    watch = ["--watch", "--settle", "1", "--watch-for", "30"] if watching else []  # with a video in it too: not loaded at once
    integers = tmp_path / "quantized.pth"  # names and shapes fit: torch refused it only as the model loaded, a traceback
    state = torch.load(pvt_b0_weights, weights_only=True)
    state = {k: (v.to(torch.int8) if "weight" in k and v.is_floating_point() else v) for k, v in state.items()}
    torch.save(state, integers)
    cases = [(["--weights", str(bad)], f"{bad} is not a BiRefNet checkpoint"),
             (["--weights", str(pvt_b0_weights), "--backbone", "swin_v1_t"], "does not fit backbone swin_v1_t"),
             (["--weights", str(integers)], f"{integers} holds 237 weight tensors that are not floating point (e.g. bb.patch_embed1.proj.weight: int8)")]  # fmt: skip
    for weights, words in cases:
        code = main(["batch", str(drop), "-o", str(tmp_path / "out"), *watch, *weights, *model])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, err
        assert not (tmp_path / "out").exists()


def test_a_recursive_watch_mirrors_subfolders_and_leaves_its_own_outputs_alone(clips, tmp_path):
    """--recursive watches subfolders (outputs mirror them), and an output folder inside the watched one is not
    taken for new videos: its masks would otherwise be processed as clips, and theirs in turn."""
    in_dir = tmp_path / "in"
    (in_dir / "day1").mkdir(parents=True)
    (in_dir / "day1" / "a.mp4").write_bytes(clips["short"].read_bytes())
    out = in_dir / "out"
    assert main(["batch", str(in_dir), "-o", str(out), "--recursive", "--watch", "--settle", "0.5", "--watch-for", "3", "--output", "mask", "-q", *MODEL]) == 0
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if ".birefvid-batch" not in p.parts) == ["day1", "day1/a.mkv"]


def test_an_idle_watch_does_not_reread_a_long_manifest_at_every_poll(tmp_path):
    """A watch that has done thousands of videos, now idle: a poll stays a listing of the folders. It read, parsed and
    resolved the manifest's every output at each poll (178 ms of CPU at 5,000 videos, polled every second: a fifth of
    a core, forever). Compared side by side with the cost of one read of that manifest, not with a clock: a watch of
    3 s polls every 0.05 s (--settle 0.1), so rereading it at each poll costs tens of reads, a slow machine or not."""
    from birefvid.batch.progress import BatchProgress
    from birefvid.batch.runner import _earlier_outputs
    from birefvid.batch.watch import watch_batch

    in_dir, out = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    (out / ".birefvid-batch").mkdir(parents=True)
    entry = {"fingerprint": "f" * 64, "job_fingerprint": "j" * 64, "status": "done", "chunks_done": {"0": 125}, "frames": 125}
    videos = {f"day{i // 100}/clip{i:05d}.mkv": entry for i in range(5000)}
    (out / ".birefvid-batch" / "manifest.json").write_text(json.dumps({"schema": 1, "videos": videos}))

    def never(*_: object) -> None:
        raise AssertionError("no video to process")

    def cpu_of(action: Callable[[], object]) -> float:
        start = time.process_time()
        action()
        return time.process_time() - start

    one_read = min(cpu_of(lambda: _earlier_outputs(out)) for _ in range(3))
    watching = cpu_of(lambda: watch_batch([in_dir], out, never, never, BatchProgress(quiet=True), settle=0.1, watch_for=3))
    assert watching < 5 * one_read, f"an idle 3 s watch took {watching:.2f} s of CPU; one read of its manifest takes {one_read:.3f} s"


def test_an_input_skipped_then_dropped_again_whole_counts_once_and_not_once_done(clips, watch):
    """The watch's skipped count (its `stopped` and `watch_end` lines, and --watch-for's exit 2 naming them) is of
    inputs it leaves skipped: a clip that failed half copied and then came whole was still counted skipped after its
    output was written, and a clip that failed in two versions counted twice."""
    w = watch(settle=QUICK_SETTLE)  # each version is one write of a small file
    w.wait_for("the watching line", lambda e: e["event"] == "watching")
    data = clips["short"].read_bytes()
    (w.in_dir / "fixed.mp4").write_bytes(data[: len(data) // 3])  # no index yet: unreadable
    (w.in_dir / "broken.mp4").write_bytes(b"\0not a video" * 300)
    w.wait_for("both skipped", lambda e: e["event"] == "watching" and e["watch_videos_failed"] >= 2)

    (w.in_dir / "fixed.mp4").write_bytes(data)
    (w.in_dir / "broken.mp4").write_bytes(b"\0still not a video" * 300)
    w.wait_for("fixed.mkv written", lambda e: e["event"] == "video_done" and e["video"] == "fixed.mkv")
    w.wait_for("broken.mp4 skipped again", lambda e: e["event"] == "video_seen" and e.get("changed") and "broken" in e["input"])
    w.wait_for("the watch idle again", lambda e: e["event"] == "watching" and e["watch_videos_done"] == 1)
    assert w.stop() == 143
    last = w.events()[-1]
    assert last["event"] == "stopped" and (last["watch_videos_done"], last["watch_videos_failed"]) == (1, 1), last
    assert "watch stopped (terminated): 1 video processed, 1 skipped" in w.stderr(), w.stderr()[-2000:]


def test_progress_json_moved_away_by_logrotate_is_started_afresh(clips, watch):
    """A watch runs for weeks, and logrotate moves its --progress-json file aside (or deletes it): the events went on
    into the moved file, or into a deleted one that kept its disk space, and the named file was never made again.
    They now go to a new file of that name, as live's --stats-json do."""
    w = watch(settle=QUICK_SETTLE)  # the clip is one write of a small file
    w.wait_for("the watching line", lambda e: e["event"] == "watching")
    rotated = w.log.with_name(w.log.name + ".1")
    os.replace(w.log, rotated)
    (w.in_dir / "clip.mp4").write_bytes(clips["short"].read_bytes())

    def done_in(path: Path) -> bool:
        return path.exists() and any(json.loads(x).get("event") == "video_done" for x in path.read_text().splitlines() if x.endswith("}"))

    deadline = time.monotonic() + WAIT
    while not (done_in(w.log) or done_in(rotated)) and time.monotonic() < deadline and w.proc.poll() is None:
        time.sleep(0.2)
    assert done_in(w.log) and not done_in(rotated), w.stderr()[-2000:]
    assert w.stop() == 143
    assert [e["event"] for e in w.events()][-1] == "stopped"
