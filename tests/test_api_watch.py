"""The watch folder from Python (``birefvid.api.watch_videos`` / ``start_watch``), as a service embeds it: the watch on a
thread that is not the main one, real clips dropped into a temp folder while it runs, results as each video ends, and
``stop()`` from another thread, which no signal could do. The tiny model, as the batch tests run it; every wait is for
something the watch does, with a generous limit (a loaded CI machine runs the model slowly)."""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import av
import pytest
from test_batch_media import API_MODEL, keyframed_clip, manifest

from birefvid.api import WatchResult, start_watch, watch_videos
from birefvid.batch.progress import BatchProgress
from birefvid.errors import SinkError, SourceError

SETTLE = 0.5  # seconds: the test writes each file whole (or renames it into place), so no copy is in progress
WAIT = 300  # seconds for any one thing the watch does: far more than it takes, even on a loaded machine


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("api_watch_clips")
    # long: stopped after its first frames, with seconds of work to go (a stop is seen within 0.05 s), and each
    # frame of it segmented again when the next watch finishes it
    return {"short": keyframed_clip(d / "short.mp4", 5), "long": keyframed_clip(d / "long.mp4", 60)}


def frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def partials(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".partial-" in p.name)


def drop(clip: Path, folder: Path, name: str) -> None:
    """Copy ``clip`` in under a hidden name and rename it into place, as rsync does: whole when the watch sees it."""
    (folder / f".{name}").write_bytes(clip.read_bytes())
    os.replace(folder / f".{name}", folder / name)


def next_result(results, what: str) -> WatchResult:
    """The next result from the watch's iterator, read on a helper thread so that a watch that never reports fails the test."""
    got: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: got.put(next(results, None)), daemon=True).start()
    try:
        result = got.get(timeout=WAIT)
    except queue.Empty:
        pytest.fail(f"no result in {WAIT} s while waiting for {what}")
    assert result is not None, f"the watch ended before {what}"
    return result


def wait_for(what: str, found: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not found():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} in {WAIT} s")
        time.sleep(0.05)


def events(log: Path) -> list[dict]:
    return [json.loads(x) for x in log.read_text().splitlines() if x.endswith("}")] if log.exists() else []


def test_clips_dropped_while_it_runs_are_reported_as_each_ends_and_a_broken_one_fails_without_ending_it(clips, tmp_path, caplog):
    """The service's case: a watch started on an empty folder, its results read as they come: a broken file is a
    failed result naming it and why, and the watch goes on to the clips dropped after it, on the model it loaded once."""
    caplog.set_level(logging.INFO, logger="birefvid")
    in_dir, out = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    with start_watch(in_dir, out, kind="mask", settle=SETTLE, **API_MODEL) as watch:
        results = iter(watch)
        (in_dir / "broken.mp4").write_bytes(b"\0not a video" * 300)
        failed = next_result(results, "broken.mp4's result")
        assert (failed.input, failed.status, failed.output, failed.ok) == (str(in_dir / "broken.mp4"), "failed", None, False)
        assert failed.error, failed

        drop(clips["short"], in_dir, "later.mp4")
        done = next_result(results, "later.mp4's result")
        assert done == WatchResult(str(in_dir / "later.mp4"), str(out / "later.mkv"), "done")
        assert frames(out / "later.mkv") == 5 and watch.running
        drop(clips["short"], in_dir, "again.mp4")
        assert next_result(results, "again.mp4's result") == WatchResult(str(in_dir / "again.mp4"), str(out / "again.mkv"), "done")
        totals = watch.stop(timeout=WAIT)
    assert not watch.running
    assert sum("segmenter tiny on" in r.getMessage() for r in caplog.records) == 1  # two videos in two runs, one model
    assert (totals["watch_videos_done"], totals["ended_by"]) == (2, "stop")
    assert list(totals["failed"]) == [str(in_dir / "broken.mp4")]
    assert list(results) == []  # the loop ends with the watch


# chunked: 12-frame chunks (5 of the 60-frame clip), not 6: each chunk also segments its smoother's overlap (2 frames)
# on each side, two thirds more model work at 6 frames (a third at 12); a stop still lands inside a chunk
@pytest.mark.parametrize("chunk_frames", [0, 12], ids=["whole", "chunked"])
def test_stop_from_another_thread_abandons_the_video_in_hand_as_ctrl_c_does(clips, tmp_path, chunk_frames):
    """``stop()`` from the thread that started the watch (the watch runs on its own): the video in hand is abandoned at
    its next batch of frames, with nothing of it that looks complete (no output, no .partial file; its finished
    chunks kept), and the next watch finishes it. Read whole (no chunks) the run is cut off inside ``process``'s
    pipeline; in chunks, between and inside them. Without the stop the watch ran the video to its end first."""
    in_dir, out, log = tmp_path / "in", tmp_path / "out", tmp_path / "events.jsonl"
    in_dir.mkdir()
    drop(clips["long"], in_dir, "clip.mp4")
    total = frames(clips["long"])
    progress = BatchProgress(quiet=True, json_path=log, every=0)  # every=0: a `frames` event at every batch
    watch = start_watch(in_dir, out, kind="mask", settle=SETTLE, chunk_frames=chunk_frames, progress=progress, **API_MODEL)
    try:
        wait_for("frames of clip.mp4", lambda: any(e["event"] == "frames" and e["frames_done"] > 0 for e in events(log)))
        totals = watch.stop(timeout=WAIT)
    finally:
        progress.close()
    ev = events(log)
    assert not [e for e in ev if e["event"] == "video_done"], "the video was finished, not abandoned"
    assert (ev[-1]["event"], ev[-1]["reason"]) == ("stopped", "stop requested"), ev[-1]  # the run's own line, as a signal's
    assert ev[-1]["frames_done"] < total
    assert totals["ended_by"] == "stop" and totals["watch_videos_done"] == 0
    assert not (out / "clip.mkv").exists() and partials(out) == []
    assert manifest(out)["videos"]["clip.mkv"]["status"] != "done"

    # the next watch (on this thread: it returns once watch_for has passed) finishes what was stopped
    totals = watch_videos(in_dir, out, kind="mask", settle=SETTLE, watch_for=SETTLE * 4, chunk_frames=chunk_frames, **API_MODEL)
    assert (totals["watch_videos_done"], totals["ended_by"]) == (1, "watch_for")
    assert frames(out / "clip.mkv") == total and partials(out) == []


def test_watch_videos_runs_on_a_worker_thread_with_a_callback_and_an_event(clips, tmp_path):
    """The blocking form, as a Celery task or a thread of a Flask app calls it: results through ``on_result`` on the
    watch's thread, ended by an ``Event`` set elsewhere; it returns its totals and leaves the process running."""
    in_dir, out = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    drop(clips["short"], in_dir, "a.mp4")
    seen: list[tuple[WatchResult, str]] = []
    stop = threading.Event()
    outcome: dict = {}

    def serve() -> None:
        try:
            outcome["totals"] = watch_videos([in_dir], out, kind="mask", settle=SETTLE, stop=stop,
                                             on_result=lambda r: seen.append((r, threading.current_thread().name)), **API_MODEL)  # fmt: skip
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome["error"] = exc

    worker = threading.Thread(target=serve, name="service-worker")
    worker.start()
    wait_for("a.mp4's result", lambda: bool(seen) or not worker.is_alive())
    stop.set()
    worker.join(WAIT)
    assert not worker.is_alive() and "error" not in outcome, outcome
    assert seen == [(WatchResult(str(in_dir / "a.mp4"), str(out / "a.mkv"), "done"), "service-worker")]
    assert outcome["totals"]["ended_by"] == "stop" and frames(out / "a.mkv") == 5


def test_mistakes_are_raised_to_the_caller_before_the_watch_thread_starts(tmp_path):
    """A missing folder, a bad keyword or an output folder another watch holds raise from ``start_watch`` itself,
    where the caller can catch them, not on a thread nobody reads; no model is loaded for any of them."""
    in_dir, out = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    with pytest.raises(SourceError, match="input not found: .*dropbx"):
        start_watch(tmp_path / "dropbx", out, **API_MODEL)
    with pytest.raises(TypeError, match="start_watch.*'overwite'.*did you mean 'overwrite'"):
        start_watch(in_dir, out, overwite=True, **API_MODEL)
    with pytest.raises(ValueError, match="settle must be a number of seconds above 0, got 0"):
        start_watch(in_dir, out, settle=0, **API_MODEL)
    assert not out.exists()
    with start_watch(in_dir, out, settle=SETTLE, **API_MODEL) as first:
        with pytest.raises(SinkError, match="lock|another"):
            start_watch(in_dir, out, settle=SETTLE, **API_MODEL)
        assert first.running
    assert first.wait(WAIT)["ended_by"] == "stop"


def test_a_second_watch_in_the_same_process_is_told_to_stop_the_first_not_to_remove_its_lock(tmp_path):
    """A notebook cell run twice starts a second watch on the folder the first still writes to. The refusal told it to
    remove the lock "if that run is gone", naming this very process: a user who did so had two watches writing one
    manifest (the first keeps its lock on the removed file). It says the watch is this process's and how to end it."""
    in_dir, out = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    with start_watch(in_dir, out, settle=SETTLE, **API_MODEL) as first:
        with pytest.raises(SinkError) as refused:
            start_watch(in_dir, out, settle=SETTLE, **API_MODEL)
        assert first.running
    said = str(refused.value)
    assert f"another birefvid batch is writing to {out}, in this process (pid {os.getpid()})" in said and "stop()" in said
    assert "remove" not in said
    assert first.wait(WAIT)["ended_by"] == "stop"
    with start_watch(in_dir, out, settle=SETTLE, **API_MODEL) as again:  # once stopped, the folder is free again
        assert again.running


def test_an_on_result_that_raises_ends_the_watch_and_its_error_reaches_the_reader(tmp_path):
    """The app's own bug in ``on_result`` is not lost on the watch's thread: the watch ends (its lock freed for the
    next one) and the loop over it, ``wait()`` and ``stop()`` raise it, as ``process_video`` raises its progress
    function's own exception."""
    in_dir, out = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()

    def on_result(result: WatchResult) -> None:
        raise RuntimeError(f"app bug on {Path(result.input).name}")

    watch = start_watch(in_dir, out, settle=SETTLE, on_result=on_result, **API_MODEL)
    (in_dir / "broken.mp4").write_bytes(b"\0not a video" * 300)  # a failed result, without loading the model
    seen: list[str] = []
    ended: queue.Queue = queue.Queue()

    def read() -> None:  # on a helper thread, so that a watch that never ends fails the test
        try:
            for result in watch:
                seen.append(result.status)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            ended.put(exc)
        else:
            ended.put(None)

    threading.Thread(target=read, daemon=True).start()
    error = ended.get(timeout=WAIT)
    assert isinstance(error, RuntimeError) and str(error) == "app bug on broken.mp4", error
    assert seen == ["failed"]
    with pytest.raises(RuntimeError, match="app bug on broken.mp4"):
        watch.stop(timeout=WAIT)
    start_watch(in_dir, out, settle=SETTLE, **API_MODEL).stop(timeout=WAIT)  # the output folder is free again


# A fresh interpreter, as a notebook or a service has one: its first model load imports torch and builds the model
# (seconds). The watch is stopped as that load begins. "measure": then the same model is loaded on this thread, which
# waits for what the abandoned load is still doing (Python's import locks): the time the load still needed, side by
# side. "exit": the interpreter exits at once, the abandoned load still running.
_STOP_DURING_LOAD = """
import json, sys, threading, time
from birefvid.api import start_watch
from birefvid.batch.progress import BatchProgress

in_dir, empty, out, model, then = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), sys.argv[5]
progress = BatchProgress(quiet=True)
loading = threading.Event()  # `start`: the run's plan is made, its first chunk loads the model next
progress.listeners.append(lambda event, fields: event == "start" and loading.set())
watch = start_watch(in_dir, out, kind="mask", settle=0.3, progress=progress, **model)
assert loading.wait(300), "the watch never started its run"
t0 = time.monotonic()
totals = watch.stop(timeout=300)
said = {"stop": time.monotonic() - t0, "totals": totals}
if then == "measure":
    start_watch(empty, out, settle=0.3, **model).stop(timeout=300)  # the output folder is free at once
    said["others"] = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    t0 = time.monotonic()
    from birefvid.runtime.segmenter import Segmenter
    Segmenter(model["model"], device=model["device"], backend=model["backend"], precision=model["precision"], resolution=model["resolution"])
    said["load"] = time.monotonic() - t0
print(json.dumps(said), flush=True)
"""


def stopped_during_load(clip: Path, tmp_path: Path, then: str) -> dict:
    in_dir, empty, out = tmp_path / then / "in", tmp_path / then / "empty", tmp_path / then / "out"
    in_dir.mkdir(parents=True)
    empty.mkdir()
    drop(clip, in_dir, "a.mp4")
    done = subprocess.run([sys.executable, "-c", _STOP_DURING_LOAD, str(in_dir), str(empty), str(out), json.dumps(API_MODEL), then],
                          capture_output=True, text=True, timeout=WAIT)  # fmt: skip
    assert done.returncode == 0, done.stderr  # -6 and "terminate called without an active exception": a load cut off at exit
    assert not done.stderr.strip(), done.stderr
    said = json.loads(done.stdout.splitlines()[-1])
    assert (said["totals"]["ended_by"], said["totals"]["watch_videos_done"]) == ("stop", 0)
    assert not (out / "a.mkv").exists() and partials(out) == []
    return said


def test_stop_while_the_model_loads_ends_the_watch_without_waiting_for_the_load(clips, tmp_path):
    """A notebook or a service shutting down stops a watch it has just started: stop() waited for the whole model load
    (2-3 s here, a first OpenVINO export a minute), the output folder locked all along, as no frame was reported to
    see the stop by. Now it returns well within the time the load itself still takes, the folder free for the next
    watch; the load finishes unseen on a daemon thread, and an interpreter that exits meanwhile waits for it and exits
    cleanly, where one cut off inside PyTorch at exit aborted."""
    said = stopped_during_load(clips["short"], tmp_path, "measure")
    assert said["stop"] < said["load"], said  # waiting for the load: 1.9 s against 0.3 s; now 0.06 s against 0.6 s
    assert said["others"] == [], said  # no thread of its own that the interpreter joins at exit
    assert stopped_during_load(clips["short"], tmp_path, "exit")["stop"] < said["load"]


def test_one_progress_for_two_watches_at_once_is_refused_as_each_would_report_the_others_videos(tmp_path):
    """A service that passed its one ``BatchProgress`` to two watches got each watch's results from both (a result is
    read from the progress's events) and totals counted from the other's runs. The second watch is refused, on the
    caller's thread, naming the watch that holds it; once that watch has ended the progress serves the next one."""
    a, b, out_a, out_b = tmp_path / "a", tmp_path / "b", tmp_path / "out_a", tmp_path / "out_b"
    a.mkdir()
    b.mkdir()
    progress = BatchProgress(quiet=True)
    try:
        with start_watch(a, out_a, settle=SETTLE, progress=progress, **API_MODEL) as first:
            with pytest.raises(ValueError, match=f"in use by the watch of {a} into {out_a}, still running: give each watch a BatchProgress of its own"):
                start_watch(b, out_b, settle=SETTLE, progress=progress, **API_MODEL)
            with pytest.raises(ValueError, match="in use by"):
                watch_videos(b, out_b, settle=SETTLE, watch_for=SETTLE, progress=progress, **API_MODEL)
            assert first.running
        assert first.wait(WAIT)["ended_by"] == "stop"
        with start_watch(b, out_b, settle=SETTLE, **API_MODEL):  # its output folder held: refused after the claim
            with pytest.raises(SinkError, match="another birefvid batch is writing"):
                start_watch(a, out_b, settle=SETTLE, progress=progress, **API_MODEL)
        assert watch_videos(b, out_b, settle=SETTLE, watch_for=SETTLE, progress=progress, **API_MODEL)["ended_by"] == "watch_for"
    finally:
        progress.close()


def test_a_batch_that_fails_midway_reports_each_video_it_finished_once_and_counts_it(clips, tmp_path):
    """Videos that settle together run as one batch; one that fails as it is written (its output folder cannot be
    made) fails that batch after the others were done, and the watch runs each again alone to skip only the culprit.
    Those finished first were run again too: found done, each was reported ``already_done`` after its ``done``, and
    neither run counted it in ``watch_videos_done``."""
    in_dir, out = tmp_path / "in", tmp_path / "out"
    for sub in ("s1", "s2"):
        (in_dir / sub).mkdir(parents=True)
        drop(clips["short"], in_dir / sub, f"{sub}.mp4")  # both there at the start: one batch
    seen: list[WatchResult] = []

    def on_result(result: WatchResult) -> None:
        if not seen:  # the other's subfolder of the output taken by a file: its output cannot be written
            other = "s2" if Path(result.input).parent.name == "s1" else "s1"
            (out / other).write_bytes(b"in the way")
        seen.append(result)

    totals = watch_videos(in_dir, out, kind="mask", settle=SETTLE, watch_for=SETTLE * 4, recursive=True, chunk_frames=0,
                          on_result=on_result, **API_MODEL)  # fmt: skip
    assert [r.status for r in seen] == ["done", "failed"], seen
    first, second = seen
    assert frames(Path(first.output)) == 5 and str(out / Path(second.input).parent.name) in second.error  # the file in its way
    assert totals["watch_videos_done"] == 1 and list(totals["failed"]) == [second.input]


# A script that leaves its loop over a watch without stop() (a `break`, an exception) and ends, the watch mid-video:
# the first batch of frames reported, the rest of the video still being decoded and segmented on the watch's threads.
_EXIT_MID_VIDEO = """
import json, sys, threading
from birefvid.api import start_watch
from birefvid.batch.progress import BatchProgress

in_dir, out, model = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
progress = BatchProgress(quiet=True, every=0)  # each batch of frames reported
working = threading.Event()
progress.listeners.append(lambda event, fields: event == "frames" and working.set())
watch = start_watch(in_dir, out, kind="mask", settle=0.3, progress=progress, **model)
assert working.wait(300), "the watch never reported a frame"
print("leaving", flush=True)
"""


def test_a_script_that_ends_with_its_watch_mid_video_stops_the_watch_and_exits_cleanly(clips, tmp_path):
    """A script that ends without ``stop()`` left the watch's daemon threads mid-video, inside PyTorch and PyAV, as the
    interpreter finalized: each was ended where it next took the GIL, which inside their C++ aborted the process
    ("terminate called without an active exception"; every exit of 20 here). The exit now stops the watch as
    ``stop()`` does and waits for it: a clean exit, the video in hand abandoned, nothing of it that looks complete."""
    in_dir, out = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    drop(clips["long"], in_dir, "a.mp4")
    for _ in range(3):  # each exit lands at another point of the video's work
        done = subprocess.run([sys.executable, "-c", _EXIT_MID_VIDEO, str(in_dir), str(out), json.dumps(API_MODEL)],
                              capture_output=True, text=True, timeout=WAIT)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split() == ["leaving"], (done.stdout, done.stderr[-2000:])
        assert not (out / "a.mkv").exists() and partials(out) == []


_EXIT_IN_AN_ON_RESULT_THAT_NEVER_RETURNS = """
import json, sys, threading
from birefvid.api import start_watch
from birefvid.batch import watch_api

in_dir, out, model = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
# the bound, not its default of 10 s, is what this run shows: a second keeps the test's wait on it short
watch_api.ON_RESULT_AT_EXIT_S = 1.0
called = threading.Event()

def on_result(result):  # hands the result on to a reader that is gone by then: never returns
    called.set()
    threading.Event().wait()

watch = start_watch(in_dir, out, kind="mask", settle=0.3, on_result=on_result, **model)
assert called.wait(300), "the watch never reported a result"
print("leaving", flush=True)
"""


def test_a_script_that_ends_while_its_on_result_never_returns_exits_with_a_warning(clips, tmp_path):
    """The exit stops a running watch and waits for its thread; an ``on_result`` that never returns (a bounded queue
    whose reader was the script's main thread) held the process open forever. One call of it running on for
    ``ON_RESULT_AT_EXIT_S`` (10 s; 1 s in the script here) is now left behind with a warning, and the process exits 0,
    the video it reported kept."""
    in_dir, out = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    drop(clips["short"], in_dir, "a.mp4")
    # the timeout is what fails without the fix (the process never ends); a pass takes ~1 s more than the video
    done = subprocess.run([sys.executable, "-c", _EXIT_IN_AN_ON_RESULT_THAT_NEVER_RETURNS, str(in_dir), str(out), json.dumps(API_MODEL)],
                          capture_output=True, text=True, timeout=WAIT)  # fmt: skip
    assert done.returncode == 0 and done.stdout.split() == ["leaving"], (done.stdout, done.stderr[-2000:])
    assert "the watch's on_result has not returned in 1 s at the exit; exiting without it" in done.stderr, done.stderr[-2000:]
    assert frames(out / "a.mkv") == frames(clips["short"]) and partials(out) == []
