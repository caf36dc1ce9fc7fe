"""`birefvid batch --ray local` on a real local Ray (2 CPUs): equal outputs, and a worker killed mid-chunk is retried."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest
from media import damage_packet
from system_tools import need_binary, need_module
from test_batch_media import LONG, MODEL, SHORT, events, grey, keyframed_clip, manifest, max_diff, reference, torch_threads, video_facts

from birefvid.batch.hooks import CRASH_ENV, MARKER_ENV
from birefvid.cli import main

# seconds for a run's first chunk: workers start a process each, import torch and load the model. Measured on 2 loaded
# cores (other test runs beside), a `--ray local` run's first chunk came 141 s after its start (2-3 s idle)
WAIT = 300


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for every test here (start-up costs seconds); workers reuse it. Its own, whatever runs beside it:
    without ``address="local"`` Ray joined a cluster a developer's ``ray start`` (or RAY_ADDRESS) names, and refused
    its ``num_cpus``."""
    need_module("ray", '"birefvid[ray]"')
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def clips(batch_clips, ray_session) -> dict:
    """Three clips with audio, one of 4 chunks; `process` references at 1 torch thread, as each 1-CPU worker runs
    (conftest's ``batch_clips``, which tests/test_batch.py shares)."""
    return batch_clips


def ray_batch(clips, out, log, *extra: str) -> int:
    inputs = [str(p) for p in clips["inputs"]]
    return main(["batch", *inputs, "--output-dir", str(out), "--output", "mask", "--chunk-frames", "6",
                 "--ray", "local", "--progress-json", str(log), "--progress-every", "0.001", "-q", *extra, *MODEL])  # fmt: skip


def check_outputs(clips, out) -> None:
    for src in clips["inputs"]:
        got, ref = out / f"{src.stem}.mkv", clips["refs"][src.stem]
        assert max_diff(grey(got), grey(ref)) == 0  # FFV1: exact
        g, r = video_facts(got), video_facts(ref)
        assert g["pts"] == r["pts"] and len(g["pts"]) == (LONG if src.stem == "long" else SHORT)
        assert g["audio"] == "aac" and g["samples"] == r["samples"] > 0
    assert sorted(os.listdir(out)) == [".birefvid-batch", "a.mkv", "b.mkv", "long.mkv"]  # no chunk files or temporaries


def test_ray_batch_equals_process_frame_for_frame(clips, tmp_path):
    out, log = tmp_path / "out", tmp_path / "p.jsonl"
    assert ray_batch(clips, out, log) == 0
    check_outputs(clips, out)
    ev = events(log)
    assert ev[0]["workers"] == 2 and ev[0]["chunks"] == 6 and manifest(out)["videos"]["long.mkv"]["chunks"] == 4
    done = [e for e in ev if e["event"] == "chunk_done"]
    assert len(done) == 6 and len({e["worker"] for e in done}) == 2  # both workers took chunks
    assert ev[-1]["frames_done"] == LONG + 2 * SHORT and ev[-1]["videos_done"] == 3
    counts = [e["frames_done"] for e in ev]
    assert counts == sorted(counts)  # running chunks' counts (from the workers) never run ahead of the finished total


def test_a_damaged_video_is_skipped_and_the_others_are_processed(clips, tmp_path, capsys, monkeypatch):
    """A worker's error (a video damaged midway) comes back as the same one line a local run gives, and skips that
    video only; and so is a video that kills its worker on every try (the OOM killer): a fresh worker takes the
    dead one's place, and one file does not stop a batch of thousands. (One Ray run for both: each costs seconds
    of worker start-up, and the two failures are the run's skipped inputs side by side.)"""
    from birefvid.batch import ray_executor

    monkeypatch.setattr(ray_executor, "MAX_RESTARTS", 0)  # every try dies here; Ray's retries are the same story, longer
    monkeypatch.setenv(CRASH_ENV, "a.mp4:0")
    monkeypatch.setenv(MARKER_ENV, str(tmp_path / "killed"))
    bad = damage_packet(clips["inputs"][0], tmp_path / "bad.mp4", 14)  # chunk 2 of 4
    out, log = tmp_path / "o", tmp_path / "p.jsonl"
    code = main(["batch", str(bad), *(str(p) for p in clips["inputs"][1:]), "--output-dir", str(out), "--output", "mask",
                 "--chunk-frames", "6", "--ray", "local", "--progress-json", str(log), "-q", *MODEL])  # fmt: skip
    assert code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("birefvid:")]
    assert len(err) == 1 and err[0].startswith("birefvid: error: 2 of 3 inputs were skipped (1 damaged midway and 1 whose Ray worker died every time)"), err
    assert str(bad) in err[0], err  # the damaged input named, as a local run names it
    assert sorted(os.listdir(out)) == [".birefvid-batch", "b.mkv"]  # nor the dead worker's half-written a.mkv
    assert max_diff(grey(out / "b.mkv"), grey(clips["refs"]["b"])) == 0
    failed = {e["video"]: e["error"] for e in events(log) if e["event"] == "video_failed"}
    assert sorted(failed) == ["a.mkv", "bad.mkv"] and "its Ray worker died 1 time (out of memory" in failed["a.mkv"]
    assert "\n" not in failed["a.mkv"]  # one progress line, not Ray's page of text
    assert "damaged" in failed["bad.mkv"] and "\n" not in failed["bad.mkv"] and "Ray" not in failed["bad.mkv"]  # the worker's own error, unwrapped
    assert not [e for e in events(log) if e["event"] == "chunk_retried"]  # a damaged input fails once: no worker was lost


def test_sigterm_stops_the_run_and_a_rerun_skips_finished_chunks(clips, tmp_path):
    """A scheduler's SIGTERM (Ctrl-C's SIGINT takes the same way out): exit 143, not the abort Ray's own
    handler gave, the workers' half-written chunk files removed, no line of Ray's about retrying the chunks
    of the workers it stopped (on standard output, `--progress-json -`'s), and the rerun does only the rest."""
    out, first, second = tmp_path / "out", tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    argv = ["batch", str(clips["inputs"][0]), "--output-dir", str(out), "--output", "mask", "--chunk-frames", "6", "-q", *MODEL]
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}  # as a user's shell has it (this process's Ray set it)
    driver = subprocess.Popen([sys.executable, "-m", "birefvid.cli", *argv, "--ray", "local", "--progress-json", str(first)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:  # stopped after its first chunk, not at a fixed time (a loaded machine starts the workers minutes late)
        deadline = time.monotonic() + WAIT
        while not (first.exists() and '"chunk_done"' in first.read_text()):
            assert driver.poll() is None, f"the run ended (exit {driver.returncode}) before its first chunk: {driver.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, f"no chunk done in {WAIT} s"
            time.sleep(0.2)
        driver.send_signal(signal.SIGTERM)
        assert driver.wait(timeout=WAIT) == 143, driver.stderr.read()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    said = driver.stderr.read()
    assert "birefvid: terminated" in said and "retried" not in said
    assert "Token authentication" not in said  # Ray's warning on every run, past -q, for the authentication it turns on anyway
    assert driver.stdout.read() == ""  # not Ray's "Task ChunkWorker.run failed ... will be retried" for the workers killed
    done_before = sorted(manifest(out)["videos"]["long.mkv"]["chunks_done"])
    assert 1 <= len(done_before) < 4 and not (out / "long.mkv").exists()
    assert not [p for p in out.rglob("*") if ".partial-" in p.name]  # the killed workers' chunk files
    assert events(first)[-1]["event"] == "stopped" and events(first)[-1]["reason"] == "terminated"

    assert main([*argv, "--ray", "local", "--workers", "1", "--progress-json", str(second)]) == 0  # on the tests' Ray; one worker to start
    ev = events(second)
    assert sorted(str(e["chunk"]) for e in ev if e["event"] == "chunk_skipped") == done_before
    assert len([e for e in ev if e["event"] == "chunk_done"]) == 4 - len(done_before)
    assert max_diff(grey(out / "long.mkv"), grey(clips["refs"]["long"])) == 0
    assert sorted(os.listdir(out)) == [".birefvid-batch", "long.mkv"]


def test_ray_init_leaves_the_sigterm_handler_as_it_found_it():
    """ray.init installs its own SIGTERM handler (sys.exit(15), under a C++ one that aborted the driver):
    the command line's must be back afterwards, and a SIGTERM while Ray starts must stop the run as one."""
    from birefvid.batch.ray_executor import _keeping_sigterm
    from birefvid.errors import Terminated

    def ours(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, ours)
    try:
        with _keeping_sigterm():
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))  # what ray.init does
        assert signal.getsignal(signal.SIGTERM) is ours
        with pytest.raises(Terminated), _keeping_sigterm():
            sys.exit(signal.SIGTERM)  # Ray's handler, run while ray.init was starting the cluster
        assert signal.getsignal(signal.SIGTERM) is ours
    finally:
        signal.signal(signal.SIGTERM, previous)


class _FakeRay:
    """Ray's actors as the driver sees them, chunks ending in order: a worker running an ``8k.mkv`` chunk dies (the OOM
    killer), one that ``starts_dead`` dies as it starts; Ray restarts each ``MAX_RESTARTS`` times, then it is gone."""

    class ActorDied(Exception):
        pass

    class OutOfMemory(Exception):  # Ray's OutOfMemoryError: a RayError, not a RayActorError
        pass

    def __init__(self, restarts: int, starts_dead: bool = False, oom: bool = False) -> None:
        import itertools
        import types

        self.restarts, self.starts_dead, self.oom, self.ids, self.calls = restarts, starts_dead, oom, itertools.count(), {}
        self.exceptions = types.SimpleNamespace(RayActorError=self.ActorDied, RayTaskError=type("E", (Exception,), {}),
                                                OutOfMemoryError=self.OutOfMemory)  # fmt: skip
        self.actors_made = 0

    def wait(self, refs, num_returns, timeout):
        return refs[:1], refs[1:]

    def get(self, ref):
        actor, task = self.calls.pop(ref)
        if self.oom and task is not None and task.video == "8k.mkv":  # Ray's memory monitor kills it
            actor.deaths += 1
            raise self.OutOfMemory(OOM_KILLED)
        if self.starts_dead or (task is not None and task.video == "8k.mkv"):  # a chunk that kills it, or any call
            actor.deaths += 1 if task is not None or self.starts_dead else 0
            raise self.ActorDied("The actor died because of an error raised in its creation task, \x1b[36mray::ChunkWorker.__init__()"
                                 "\x1b[39m (pid=1)" if self.starts_dead else "The actor died unexpectedly before finishing this task.")
        if actor.deaths > self.restarts:  # restarted no more
            raise self.ActorDied("The actor is dead because it was restarted too many times.")
        return {"frames": 1} if task is not None else None

    def kill(self, actor):
        pass

    def actor(self, *_):
        import types

        fake = self
        self.actors_made += 1
        assert self.actors_made <= 20, "fresh workers one after another, without end"

        def call(task, counter=None):
            ref = next(fake.ids)
            fake.calls[ref] = (handle, task)
            return ref

        class Handle(types.SimpleNamespace):  # hashable by identity, as Ray's actor handles are
            __hash__ = object.__hash__

        handle = Handle(deaths=0, run=types.SimpleNamespace(remote=call),
                                       __ray_ready__=types.SimpleNamespace(remote=lambda: call(None)))  # fmt: skip
        return handle


def _fake_executor(ray, workers: int):
    import types

    from birefvid.batch import ray_executor

    executor = object.__new__(ray_executor.RayExecutor)
    executor.ray, executor._owns, executor._counter, executor._running, executor._dying = ray, False, None, {}, set()
    executor._starting, executor.head_lost, executor._up, executor._never_up = {}, False, set(), 0
    executor._unavailable, executor.on_retry = {}, None
    executor._actor, executor._job, executor._threads, executor._folder = types.SimpleNamespace(remote=ray.actor), {}, 1, os.getcwd()
    executor._no_telemetry = False
    executor._actors = [ray.actor() for _ in range(workers)]
    return executor


@pytest.mark.parametrize("restarts", [0, 3])
def test_one_videos_chunks_dying_side_by_side_do_not_stop_the_run(monkeypatch, restarts):
    """An 8K clip the OOM killer stops runs its first chunks on every worker at once: their deaths are one
    video's, skipped as such, not "workers dying on 3 chunks in a row" that stopped the batch of thousands
    (and every rerun, which plans that clip first again). Ray itself is faked: chunks end in order. With Ray's
    restarts, each chunk is tried again on the workers Ray restarts (the driver's retries), then the video skipped."""
    from birefvid.batch import ray_executor
    from birefvid.batch.chunk import ChunkTask

    monkeypatch.setattr(ray_executor, "MAX_RESTARTS", restarts)
    ray = _FakeRay(restarts)
    executor = _fake_executor(ray, 3)
    tasks = [ChunkTask(name, {}, {"index": i, "start_pts": 0}, f"{name}.{i}") for name, n in (("8k.mkv", 4), ("b.mkv", 1)) for i in range(n)]
    done, failed = [], []
    executor.run(tasks, lambda task, result: done.append(task.video), on_failure=lambda task, exc: failed.append(task.video),
                 skip=lambda task: task.video in failed)  # fmt: skip
    assert done == ["b.mkv"] and set(failed) == {"8k.mkv"}


# what Ray 2.60's ray.get raised for a chunk whose worker its memory monitor killed (shortened: 90 lines in all)
OOM_KILLED = ("1 worker(s) were killed due to the node running low on memory. Memory on the node (IP: 192.0.2.2, ID: 9be9d3ee) was "
              "4.50GB used / 23.54GB limit (0.191072)\nOOM kill reason: Memory usage 4654235648B exceeded threshold of 1263809536B "
              "(5.0% of 25276190720B limit)\nObject store memory usage: [- objects spillable: 0\n]\nRay killed 1 worker(s) based on "
              "the killing policy\nRefer to the documentation on how to address the out of memory issue: ...")  # fmt: skip


def test_a_chunk_whose_worker_rays_memory_monitor_kills_is_tried_again_then_its_video_skipped_in_one_line(monkeypatch):
    """Ray's memory monitor (the node over 95 % of its memory) kills a worker mid-chunk: ray.get raises OutOfMemoryError,
    a RayError but no RayActorError, which the executor let by: the whole batch stopped, "batch stopped (1 worker(s) were
    killed ...", its 90 lines on one. Now it is a worker lost mid-chunk: the chunk tried again (said), then its video
    skipped in one line, the others done. Ray faked."""
    from birefvid.batch import ray_executor
    from birefvid.batch.chunk import ChunkTask

    ray = _FakeRay(ray_executor.MAX_RESTARTS, oom=True)
    executor = _fake_executor(ray, 2)
    retried: list[str] = []
    executor.on_retry = lambda task, why: retried.append(task.video)
    tasks = [ChunkTask(name, {}, {"index": 0, "start_pts": 0}, f"{name}.0") for name in ("8k.mkv", "b.mkv")]
    done, failed = [], []
    executor.run(tasks, lambda task, result: done.append(task.video), on_failure=lambda task, exc: failed.append((task.video, str(exc))))
    assert done == ["b.mkv"] and retried == ["8k.mkv"] * ray_executor.MAX_RESTARTS
    [(video, why)] = failed
    assert video == "8k.mkv" and "\n" not in why and "died 4 times, the last killed by Ray's memory monitor" in why, why
    assert "was 4.50GB used / 23.54GB limit" in why and "RAY_memory_usage_threshold" in why


def test_a_frame_counter_rays_memory_monitor_kills_is_replaced():
    """The frame counter killed by Ray's memory monitor: its OutOfMemoryError ended the whole run as the chunk's did."""
    import types

    ray = _FakeRay(0)
    executor = _fake_executor(ray, 1)

    def killed(ref, timeout=None):
        raise ray.OutOfMemory(OOM_KILLED)

    ray.get, ray.exceptions.GetTimeoutError = killed, type("T", (Exception,), {})
    made = []
    executor._counter = types.SimpleNamespace(take=types.SimpleNamespace(remote=lambda: "ref"))
    executor._counter_class = types.SimpleNamespace(remote=lambda: made.append(1) or "fresh")
    assert executor._frame_counts() == {} and executor._counter == "fresh" and made == [1]


class _DamagedThenKilled(_FakeRay):
    """``v.mkv``'s chunk 0 is damaged (a SourceError from its worker), its chunk 1 kills its worker."""

    def get(self, ref):
        from birefvid.errors import SourceError

        actor, task = self.calls[ref]
        if task is None or task.video != "v.mkv":
            return super().get(ref)
        del self.calls[ref]
        if task.chunk["index"] == 0:
            error = self.exceptions.RayTaskError("damaged")
            error.cause = SourceError("v.mkv: invalid data at frame 3")
            raise error
        actor.deaths += 1
        raise self.ActorDied("The actor died unexpectedly before finishing this task.")


def test_a_chunk_whose_video_already_failed_is_not_tried_again_nor_said_to_be():
    """One video's chunks side by side: one finds damage (its video failed, its other chunks skipped), then the other's
    worker dies. That chunk was said to be tried again ("chunk_retried ... try 2 of 4", after the video's video_failed)
    and then silently never run. Now it is given up on as its video was, its dead worker's file removed. Ray faked."""
    from birefvid.batch import ray_executor
    from birefvid.batch.chunk import ChunkTask

    ray = _DamagedThenKilled(ray_executor.MAX_RESTARTS)
    executor = _fake_executor(ray, 2)
    story: list[tuple[str, int]] = []
    executor.on_retry = lambda task, why: story.append(("retried", task.chunk["index"]))
    failed: list[str] = []

    def on_failure(task, exc):
        story.append(("failed", task.chunk["index"]))
        failed.append(task.video)

    tasks = [ChunkTask("v.mkv", {}, {"index": i, "start_pts": 0}, f"v.{i}") for i in range(2)] + [ChunkTask("b.mkv", {}, {"index": 0, "start_pts": 0}, "b.0")]
    done: list[str] = []
    executor.run(tasks, lambda task, result: done.append(task.video), on_failure=on_failure, skip=lambda task: task.video in failed)
    assert story == [("failed", 0), ("failed", 1)] and done == ["b.mkv"]


def test_a_stop_while_close_waits_for_the_killed_workers_still_puts_rays_printers_back():
    """A second Ctrl-C (or SIGTERM) in close()'s wait for the killed workers skipped the putting back of Ray's printers:
    a notebook's or service's later Ray use had its raylet notices said as ours. Ray faked."""
    from birefvid.batch.chunk import ChunkTask

    ray = _FakeRay(0)
    executor = _fake_executor(ray, 1)
    put_back: list[bool] = []
    executor._notices_back = lambda: put_back.append(True)
    executor._running = {0: (ChunkTask("a.mkv", {}, {"index": 0, "start_pts": 0}, "a.0"), executor._actors[0])}

    def pressed(*_args, **_kwargs):
        raise KeyboardInterrupt

    ray.wait, ray.cancel = pressed, lambda ref: None
    with pytest.raises(KeyboardInterrupt):
        executor.close()
    assert put_back == [True]


def test_workers_ray_says_are_unavailable_for_ever_end_the_run_after_no_room_seconds(monkeypatch):
    """A worker lost mid-chunk whose node Ray never marks dead (a network partition): Ray answers its ready call with
    ActorUnavailableError for ever. Asked again each poll, it never takes the chunk, and the run is not left waiting:
    the no-room clock runs while every worker is unavailable, and ends it (ClusterLost). Ray faked."""
    from birefvid.batch import ray_executor
    from birefvid.batch.chunk import ChunkTask
    from birefvid.batch.local import ClusterLost

    class Unavailable(_FakeRay.ActorDied):  # Ray's ActorUnavailableError is a RayActorError
        pass

    class Partitioned(_FakeRay):
        def get(self, ref):
            actor, task = self.calls.pop(ref)
            if task is None:
                raise Unavailable("The actor is unavailable: the connection was lost.")
            raise self.ActorDied("The actor died unexpectedly before finishing this task.")

    monkeypatch.setattr(ray_executor, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(ray_executor, "NO_ROOM_SECONDS", 0.3)
    ray = Partitioned(ray_executor.MAX_RESTARTS)
    ray.exceptions.ActorUnavailableError = Unavailable
    executor = _fake_executor(ray, 1)
    with pytest.raises(ClusterLost, match="no Ray worker has been up for 0.3 s"):
        executor.run([ChunkTask("a.mkv", {}, {"index": 0, "start_pts": 0}, "a.0")], lambda task, result: None, on_failure=lambda task, exc: None)
    assert ray.actors_made == 1  # asked again, never replaced


def test_workers_that_die_as_they_start_stop_the_run_after_three(monkeypatch):
    """Workers that die as they start (the OOM killer as each loads the model) never took a chunk again, so no video
    was skipped for them and fresh workers took their place one after another until ``NO_ROOM_SECONDS``; three gone
    in a row without ever being up end the run, a PipelineError (no video's fault: a watch stops too). Ray faked."""
    from birefvid.batch import ray_executor
    from birefvid.batch.chunk import ChunkTask
    from birefvid.errors import PipelineError, SourceError

    monkeypatch.setattr(ray_executor, "NO_ROOM_SECONDS", 3600.0)  # not what ends it
    ray = _FakeRay(ray_executor.MAX_RESTARTS, starts_dead=True)
    executor = _fake_executor(ray, 2)
    tasks = [ChunkTask("a.mkv", {}, {"index": 0, "start_pts": 0}, "a.0")]
    with pytest.raises(PipelineError, match="3 Ray workers in a row died as they started") as raised:
        executor.run(tasks, lambda task, result: None, on_failure=lambda task, exc: None)
    assert not isinstance(raised.value, SourceError) and ray.actors_made <= 4
    assert str(raised.value).endswith("the last: The actor died because of an error raised in its creation task, ray::ChunkWorker.__init__() (pid=1)")


class _KilledForGood(_FakeRay):
    """Ray's memory monitor kills every worker as it loads the model, each up to its restarts: from then on Ray answers
    every call to it with OutOfMemoryError at once (Ray 2.60 does so for an actor whose death was the OOM killer's), never
    RayActorError."""

    def __init__(self) -> None:
        super().__init__(0)
        self.killed: list = []

    def get(self, ref):
        self.calls.pop(ref)
        raise self.OutOfMemory(OOM_KILLED)

    def kill(self, actor):
        self.killed.append(actor)


def test_workers_rays_memory_monitor_kills_for_good_as_they_start_end_the_run_in_one_line(monkeypatch):
    """A model too big for the node's memory: Ray's memory monitor kills each worker as it loads it. Its ready call's
    OutOfMemoryError was taken for a worker not up yet, asked again every poll for ever: the run waited NO_ROOM_SECONDS
    (5 minutes) and stopped saying its workers were "lost with their nodes", a rerun resuming into the same. Now such a
    worker is gone for good (killed, so it frees its room), and three in a row end the run in one line naming the
    memory monitor. Ray faked."""
    from birefvid.batch import ray_executor
    from birefvid.batch.chunk import ChunkTask
    from birefvid.errors import PipelineError

    monkeypatch.setattr(ray_executor, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(ray_executor, "NO_ROOM_SECONDS", 0.5)  # what ended it without the fix (ClusterLost)
    ray = _KilledForGood()
    executor = _fake_executor(ray, 1)
    retried: list[str] = []
    executor.on_retry = lambda task, why: retried.append(why)
    tasks = [ChunkTask("a.mkv", {}, {"index": 0, "start_pts": 0}, "a.0")]
    with pytest.raises(PipelineError, match="3 Ray workers in a row died as they started") as raised:
        executor.run(tasks, lambda task, result: None, on_failure=lambda task, exc: None)
    line = str(raised.value)
    assert "\n" not in line and "running low on memory" in line and "RAY_memory_usage_threshold" in line, line
    assert len(retried) == 1 and ray.actors_made == 3 and len(ray.killed) == 3  # the first, two fresh ones, each killed


class _OomOnce(_FakeRay):
    """Ray's own semantics for a worker its memory monitor kills mid-chunk (Ray 2.60's actor task submitter and GCS):
    the chunk's call fails with OutOfMemoryError; a call made while Ray restarts the worker (restarts left) waits in
    its queue and is answered once it is up; only a worker with its restarts spent is dead, every call to it then
    answered with OutOfMemoryError at once. It also checks that no chunk runs on two workers at once."""

    def __init__(self, restarts: int, kills: dict[str, int]) -> None:
        super().__init__(restarts)
        self.kills, self.killed, self.running = dict(kills), [], []

    def get(self, ref):
        actor, task = self.calls.pop(ref)
        if task is not None:
            self.running.remove(task.path)
        if actor.dead:
            raise self.OutOfMemory(OOM_KILLED)
        if task is not None and self.kills.get(task.path, 0) > 0:
            self.kills[task.path] -= 1
            actor.deaths += 1
            actor.dead = actor.deaths > self.restarts
            raise self.OutOfMemory(OOM_KILLED)
        return {"frames": 1} if task is not None else None

    def kill(self, actor):
        self.killed.append(actor)

    def actor(self, *_):
        import types

        handle = super().actor()
        handle.dead, run = False, handle.run.remote

        def start(task, counter=None):
            assert task.path not in self.running, f"{task.path} running on two workers at once"
            self.running.append(task.path)
            return run(task, counter)

        handle.run = types.SimpleNamespace(remote=start)
        return handle


@pytest.mark.parametrize("restarts, kept", [(3, True), (0, False)])
def test_a_worker_rays_memory_monitor_kills_once_mid_chunk_is_kept_and_its_chunk_run_again_once(monkeypatch, restarts, kept):
    """5243103 made OutOfMemoryError on a worker's ready call mean "gone for good" (killed, replaced). Ray answers so
    only for a worker with its restarts spent: one killed once with restarts left is restarted by Ray, and its ready call
    waits for that. So a worker killed once mid-chunk is kept (no model loaded again, nothing killed), one killed for
    good is replaced; either way its chunk runs again exactly once, never on two workers at once. Ray faked."""
    from birefvid.batch.chunk import ChunkTask

    ray = _OomOnce(restarts, {"a.0": 1})
    executor = _fake_executor(ray, 1)
    first = executor._actors[0]
    retried: list[str] = []
    executor.on_retry = lambda task, why: retried.append(task.path)
    tasks = [ChunkTask(name, {}, {"index": 0, "start_pts": 0}, f"{name[0]}.0") for name in ("a.mkv", "b.mkv", "c.mkv")]
    done: list[str] = []
    executor.run(tasks, lambda task, result: done.append(task.path), on_failure=lambda task, exc: pytest.fail(str(exc)))
    assert done == ["a.0", "b.0", "c.0"] and retried == ["a.0"] and not ray.running
    assert (executor._actors == [first], ray.actors_made, ray.killed) == ((True, 1, []) if kept else (False, 2, [first]))
    assert not executor._starting and not executor._unavailable


class _Recycled(_FakeRay):
    """The first worker is up, runs a.mkv's chunk, then b.mkv's gets it killed for good by Ray's memory monitor; every
    fresh worker then dies as it starts (Ray's creation error). The second fresh worker's handle is the first worker's
    object made anew: CPython puts a new object where a freed one of its size was, the same ``id()``, and the first's
    handle was freed once it was replaced."""

    def __init__(self) -> None:
        super().__init__(0)
        self.first = None

    def get(self, ref):
        made, task = self.calls.pop(ref)
        if made == 1:
            if task is not None and task.video == "a.mkv":
                return {"frames": 1}
            raise self.OutOfMemory(OOM_KILLED)
        raise self.ActorDied("The actor died because of an error raised in its creation task, ray::ChunkWorker.__init__() (pid=1)")

    def actor(self, *_):
        import types

        self.actors_made += 1
        assert self.actors_made <= 20, "fresh workers one after another, without end"
        made = self.actors_made

        def call(task, counter=None):
            ref = next(self.ids)
            self.calls[ref] = (made, task)
            return ref

        class Handle:  # hashable by identity, as Ray's actor handles are
            pass

        handle = self.first if made == 3 else Handle()  # the third made where the first was
        handle.__dict__.clear()
        handle.__dict__.update(run=types.SimpleNamespace(remote=call), __ray_ready__=types.SimpleNamespace(remote=lambda: call(None)))
        self.first = self.first or handle
        return handle


def test_a_replaced_worker_is_forgotten_so_a_fresh_one_in_its_place_dying_as_it_starts_counts(monkeypatch):
    """A worker that was up kept its ``id()`` in the executor's table of workers seen up after it was killed for good
    and replaced. A fresh worker that CPython puts where the dead one's handle was has that ``id()``: taken for one seen
    up, its death as it started was not counted, and a fourth fresh worker was made (a model loaded again) where three
    dying in a row end the run, once more for each such reuse. Ray faked."""
    from birefvid.batch import ray_executor
    from birefvid.batch.chunk import ChunkTask
    from birefvid.errors import PipelineError

    monkeypatch.setattr(ray_executor, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(ray_executor, "NO_ROOM_SECONDS", 3600.0)  # not what ends it
    ray = _Recycled()
    executor = _fake_executor(ray, 1)
    tasks = [ChunkTask(name, {}, {"index": 0, "start_pts": 0}, f"{name[0]}.0") for name in ("a.mkv", "b.mkv")]
    with pytest.raises(PipelineError, match="3 Ray workers in a row died as they started"):
        executor.run(tasks, lambda task, result: None, on_failure=lambda task, exc: None)
    assert ray.actors_made == 4  # the one up, then three that died as they started


def test_a_ray_error_quoted_in_the_runs_error_line_keeps_no_terminal_codes():
    """Ray's error, quoted in the run's one error line, had only its colours taken out: a cursor move and line erase
    (ESC[1A ESC[2K) from a worker's error erased the terminal's line above the error line, and an OSC hyperlink or a BEL
    went out raw (a log file kept them). It is now cleaned as a raylet notice is; a first line of codes alone is no
    line. Ray faked."""
    from birefvid.batch import ray_executor
    from birefvid.batch.chunk import ChunkTask
    from birefvid.errors import PipelineError

    class Raw(_FakeRay):
        def get(self, ref):
            self.calls.pop(ref)
            raise self.ActorDied("\x1b[0m\x1b]0;title\x07\nThe actor died \x1b[1A\x1b[2Kbecause of an error raised in its creation task, "
                                 "\x1b]8;;file:///tmp/raylet.out\x1b\\ray::ChunkWorker.__init__()\x1b]8;;\x1b\\ (pid=1)\x07\nnext line")

    executor = _fake_executor(Raw(ray_executor.MAX_RESTARTS), 1)
    tasks = [ChunkTask("a.mkv", {}, {"index": 0, "start_pts": 0}, "a.0")]
    with pytest.raises(PipelineError) as raised:
        executor.run(tasks, lambda task, result: None, on_failure=lambda task, exc: None)
    line = str(raised.value)
    assert line.endswith("the last: The actor died because of an error raised in its creation task, ray::ChunkWorker.__init__() (pid=1)\\x07"), line
    assert line.isprintable(), line


def test_the_video_stream_and_a_dotted_png_folder_cross_to_the_workers_and_a_worker_killed_mid_chunk_is_retried(ray_session, tmp_path, monkeypatch):
    """The job fields that travel in each task's JSON to the workers: --video-stream 0 (a drone's proxy, not ffmpeg's
    default #1) cut in chunks at the proxy's keyframes, and --ext png's folder of a dotted name (its trailing /), both
    exact to `process` of that stream; nothing left beside the outputs. In the chunked run a worker dies inside a
    chunk: Ray restarts it (with the same job, --video-stream and all) and retries that chunk, and nothing is lost or
    done twice. (One run for both: each Ray run spends seconds starting its workers.)"""
    import numpy as np
    from PIL import Image

    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    src = tmp_path / "2024.06.01 drone.mp4"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc=size=48x32:rate=10:duration=1.2", "-f", "lavfi",
                    "-i", "testsrc2=size=96x64:rate=10:duration=0.8", "-map", "0", "-map", "1", "-c:v", "libx264", "-g", "4",
                    "-pix_fmt", "yuv420p", "-disposition:v:0", "0", "-disposition:v:1", "default", str(src)], check=True)  # fmt: skip
    with torch_threads(1):
        ref = grey(reference(src, tmp_path / "ref.mkv", kind="mask", video_stream=0))
    assert len(ref) == 12 and ref[0].shape == (32, 48)
    argv = ["batch", str(src), "--output", "mask", "--video-stream", "0", "--chunk-frames", "4", "--ray", "local", "-q", *MODEL]

    out, log, marker = tmp_path / "out", tmp_path / "p.jsonl", tmp_path / "killed"
    with monkeypatch.context() as env:
        env.setenv(CRASH_ENV, f"{src.name}:1")
        env.setenv(MARKER_ENV, str(marker))
        assert main([*argv, "--output-dir", str(out), "--progress-json", str(log)]) == 0
    assert marker.exists()  # the worker did die inside chunk 1
    assert sorted(e["chunk"] for e in events(log) if e["event"] == "chunk_done") == [0, 1, 2]  # each chunk once, none lost
    assert [e["chunk"] for e in events(log) if e["event"] == "chunk_retried"] == [1]  # and the try again said
    assert events(log)[0]["chunks"] == 3 and manifest(out)["videos"]["2024.06.01 drone.mkv"]["frames"] == 12
    assert max_diff(grey(out / "2024.06.01 drone.mkv"), ref) == 0
    assert video_facts(out / "2024.06.01 drone.mkv")["pts"] == video_facts(tmp_path / "ref.mkv")["pts"]
    assert sorted(os.listdir(out)) == [".birefvid-batch", "2024.06.01 drone.mkv"]
    assert os.listdir(out / ".birefvid-batch") == ["manifest.json"]

    pictures = tmp_path / "png"
    assert main([*argv, "--output-dir", str(pictures), "--ext", "png", "--workers", "1"]) == 0  # one chunk (frames are not joined): one worker to start
    assert sorted(os.listdir(pictures)) == [".birefvid-batch", "2024.06.01 drone"]
    frames = sorted((pictures / "2024.06.01 drone").iterdir())
    assert len(frames) == 12 and max_diff([np.asarray(Image.open(p)) for p in frames], ref) == 0


def test_a_rerun_with_nothing_left_to_do_does_not_start_ray(tmp_path):
    """Every video done (per the manifest): the rerun says so at once, where it spent seconds starting a Ray
    it had no chunk for; `RAY_TMPDIR` stays empty, as Ray makes its session folder there as it starts."""
    need_module("ray", '"birefvid[ray]"')
    src, out, log, ray_tmp = keyframed_clip(tmp_path / "a.mp4", SHORT), tmp_path / "out", tmp_path / "p.jsonl", tmp_path / "ray"
    argv = ["batch", str(src), "--output-dir", str(out), "--output", "mask", "-q", *MODEL]
    assert main(argv) == 0  # done here; the Ray rerun finds it done (the executor is no part of the job)
    ray_tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"RAY_TMPDIR": str(ray_tmp)}
    rerun = subprocess.run([sys.executable, "-m", "birefvid.cli", *argv, "--ray", "local", "--progress-json", str(log)],
                           env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    assert os.listdir(ray_tmp) == []  # no Ray session was started
    ev = events(log)
    assert (ev[0]["event"], ev[0]["workers"]) == ("start", 0)
    assert (ev[-1]["event"], ev[-1]["videos_skipped"], ev[-1]["frames_computed"]) == ("end", 1, 0)
    assert sorted(os.listdir(out)) == [".birefvid-batch", "a.mkv"]


def test_a_watch_keeps_its_ray_workers_and_their_models_between_videos(clips, tmp_path):
    """`batch --watch --ray`: a clip dropped after the first video is done runs on the same worker (a process that
    kept its model), not on a Ray started again; one worker, so a second one cannot take it by chance."""
    import json
    import threading

    in_dir, out, log = tmp_path / "in", tmp_path / "out", tmp_path / "events.jsonl"
    in_dir.mkdir()
    (in_dir / "first.mp4").write_bytes(clips["inputs"][1].read_bytes())

    def videos_done() -> int:
        return log.read_text().count('"video_done"') if log.exists() else 0

    def drop_after_first_then_stop() -> None:
        deadline = time.monotonic() + watch_for
        while time.monotonic() < deadline and videos_done() < 1:
            time.sleep(0.2)
        if videos_done() < 1:
            return  # the watch ends at --watch-for, and the test on its exit status
        (in_dir / "second.mp4").write_bytes(clips["inputs"][2].read_bytes())
        while time.monotonic() < deadline and videos_done() < 2:
            time.sleep(0.2)
        if videos_done() == 2:  # the watch is idle: a scheduler's SIGTERM ends it, as the command line's does
            os.kill(os.getpid(), signal.SIGTERM)

    # --watch-for: a bound should the stop never come (the test then fails on the exit status), far past the ~15 s the
    # two videos take idle and the minutes a loaded machine takes to start the worker (100 s, the earlier bound here
    # for both videos, was less than the 141 s a first chunk took beside other test runs); the stop after the second
    # saves the rest of it, which the test spent idle
    watch_for = 2 * WAIT
    dropper = threading.Thread(target=drop_after_first_then_stop, daemon=True)
    dropper.start()
    code = main(["batch", str(in_dir), "-o", str(out), "--watch", "--settle", "1", "--watch-for", str(watch_for), "--ray", "local", "--workers", "1",
                 "--output", "mask", "--progress-json", str(log), "-q", *MODEL])  # fmt: skip
    dropper.join(5)
    assert code == 143
    ev = [json.loads(line) for line in log.read_text().splitlines()]
    done = [e for e in ev if e["event"] == "chunk_done"]
    assert [e["video"] for e in done] == ["first.mkv", "second.mkv"]
    assert done[0]["worker"] == done[1]["worker"]  # the same worker process, its model loaded once
    assert [e["event"] for e in ev].count("start") == 2
    assert sorted(os.listdir(out)) == [".birefvid-batch", "first.mkv", "second.mkv"]


def test_relative_paths_name_the_drivers_files_on_workers_started_elsewhere(clips, tmp_path, monkeypatch, capsys):
    """A fine-tuned checkpoint, the inputs and the output folder given relative to the folder the command runs in:
    Ray workers start in the folder Ray was started from (here pytest's, on a cluster `ray start`'s), where
    `runs/ft/model.safetensors` was not found and every worker died. The chunks now equal `process`'s, and a
    checkpoint a worker cannot read is the one line a local run gives."""
    from pathlib import Path

    import shutil

    import birefvid

    weights = tmp_path / "runs" / "ft" / "model.safetensors"
    weights.parent.mkdir(parents=True)
    shutil.copy(Path(birefvid.__file__).parent / "assets" / "tiny.safetensors", weights)  # as `birefvid train` leaves it
    src = clips["inputs"][0]  # 24 frames: two chunks of 12 on one worker (each worker is a process loading the model)
    (tmp_path / "in").mkdir()
    shutil.copy(src, tmp_path / "in" / src.name)
    monkeypatch.chdir(tmp_path)
    assert os.getcwd() != ray_session_folder()  # the workers' folder is another
    model = [a for a in MODEL if a not in ("--model", "tiny")]
    assert main(["batch", "in", "--output-dir", "out", "--output", "mask", "-q", "--weights", "runs/ft/model.safetensors", "--ray", "local", "--workers", "1", "--chunk-frames", "12", *model]) == 0
    assert max_diff(grey(tmp_path / "out" / f"{src.stem}.mkv"), grey(clips["refs"][src.stem])) == 0

    (tmp_path / "runs" / "ft" / "last.pt").write_bytes(b"not a checkpoint")  # one a worker fails to read: the driver does not read it
    capsys.readouterr()
    assert main(["batch", "in", "--output-dir", "out2", "--output", "mask", "-q", "--weights", "runs/ft/last.pt", "--ray", "local", "--workers", "1", *model]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["birefvid: error: runs/ft/last.pt is not a BiRefNet checkpoint (neither a PyTorch checkpoint nor a .safetensors file)"]


def ray_session_folder() -> str:
    """The folder this test session's Ray workers run in."""
    import ray

    def folder() -> str:
        return os.getcwd()

    return str(ray.get(ray.remote(folder).remote()))


def test_a_watch_whose_workers_cannot_run_the_model_stops_at_once(ray_session, tmp_path, capsys):
    """A model the Ray workers cannot start (here ONNX Runtime at fp16, refused by every worker as it loads) is the
    watch's one error line: it was taken for a fault of each video, so the watch skipped every video dropped in,
    starting its workers anew for each, and went on watching (until --watch-for, or for ever)."""
    drop = tmp_path / "drop"
    drop.mkdir()
    for name in ("a.mp4", "b.mp4"):
        keyframed_clip(drop / name, 3)
    model = [a for a in MODEL if a not in ("--backend", "torch", "--precision", "fp32")]
    code = main(["batch", str(drop), "-o", str(tmp_path / "out"), "--watch", "--settle", "0.5", "--watch-for", "60", "--ray", "local",
                 "--workers", "1", "-q", "--backend", "onnxruntime", "--precision", "fp16", *model])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.strip().splitlines()[-1] == "birefvid: error: backend='onnxruntime' runs fp32 only; use precision='fp32' or another backend", err
    assert "skipped" not in err, err


def _parent(pid: str) -> str:
    """The parent of process ``pid`` (from /proc), or "" once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[1]  # the command (in brackets) may hold spaces
    except (OSError, IndexError):
        return ""


def _ours(pid: str) -> bool:
    """Is ``pid`` a descendant of this process (a worker of the Ray it started), not another run's on the machine?"""
    me = str(os.getpid())
    for _ in range(64):
        pid = _parent(pid)
        if pid in ("", "0", "1"):
            return False
        if pid == me:
            return True
    return False


def _kill_chunk_workers(stop) -> None:
    """SIGKILL every ChunkWorker process of this process's Ray as soon as it shows, most as they load the model (the
    OOM killer's way). Found by the command line Ray gives an actor's process (``ray::ChunkWorker``)."""
    while not stop.is_set():
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            if cmdline.startswith(b"ray::ChunkWorker") and _ours(pid):
                with contextlib.suppress(OSError):
                    os.kill(int(pid), signal.SIGKILL)
        stop.wait(0.05)


def test_a_watch_whose_workers_die_on_every_video_stops_after_three_in_a_row(ray_session, tmp_path, monkeypatch, capsys):
    """Workers that die every time (killed as they load a model too big for the node) stop a `--watch --ray` as they
    stop a batch: "died on 3 videos in a row". The count started again at each video dropped in (each its own run), so
    the watch skipped every one as that video's fault, starting workers anew for each, until --watch-for or for ever."""
    import json
    import threading

    from birefvid.batch import ray_executor

    if not os.path.isdir("/proc"):
        pytest.skip("finds the workers by their command line in /proc")
    monkeypatch.setattr(ray_executor, "MAX_RESTARTS", 0)  # each video's worker dies once; Ray's restarts are the same, longer
    drop, out, log = tmp_path / "drop", tmp_path / "out", tmp_path / "p.jsonl"
    drop.mkdir()
    clip = keyframed_clip(tmp_path / "clip.mp4", 3)

    def ended() -> int:  # videos skipped or (were the workers not ours to kill) done
        text = log.read_text() if log.exists() else ""
        return text.count('"video_failed"') + text.count('"video_done"')

    def drop_one_at_a_time() -> None:  # each its own run: dropped once the one before was skipped
        for n in range(4):
            (drop / f"{n}.mp4").write_bytes(clip.read_bytes())
            deadline = time.monotonic() + WAIT
            while ended() <= n and time.monotonic() < deadline and not done.is_set():
                time.sleep(0.1)
            if done.is_set():
                return
        os.kill(os.getpid(), signal.SIGTERM)  # four skipped and the watch goes on: end it, for the test to fail on its exit

    done = threading.Event()
    killer = threading.Thread(target=_kill_chunk_workers, args=(done,), daemon=True)
    dropper = threading.Thread(target=drop_one_at_a_time, daemon=True)
    killer.start()
    dropper.start()
    try:
        code = main(["batch", str(drop), "-o", str(out), "--watch", "--settle", "0.3", "--watch-for", str(2 * WAIT), "--ray", "local",
                     "--workers", "1", "--progress-json", str(log), "-q", *MODEL])  # fmt: skip
    finally:
        done.set()
        killer.join(5)
        dropper.join(5)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Ray workers died on 3 videos in a row" in err.strip().splitlines()[-1], err
    assert [json.loads(line)["event"] for line in log.read_text().splitlines()].count("video_failed") == 2  # the third stops the watch


def test_a_worker_whose_model_load_raises_a_torch_error_ends_the_run_in_one_line(ray_session, monkeypatch):
    """torch's own error as a worker loads the model ("CUDA out of memory" as it moves to the GPU, a MemoryError) killed
    the actor in its creation: each video was skipped as "its Ray worker died 4 times", under pages of Ray's traceback,
    and the real error was lost. The worker keeps it for its chunks, and the driver says it in one line that ends the run
    (a watch too: it is no SourceError). The actor body runs here in-process; the error crosses a real Ray task."""
    from birefvid.batch import ray_executor
    from birefvid.batch.chunk import ChunkTask
    from birefvid.runtime.load_failure import failed_loading, is_load_failure
    from birefvid.errors import PipelineError, SourceError
    from birefvid.job import FileJob, OutputSpec, SourceSpec
    from birefvid.runtime import file_job

    def out_of_memory(*_args, **_kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\n(the rest of torch's text)")

    monkeypatch.setattr(file_job, "segmenter_for", out_of_memory)
    job = FileJob(SourceSpec("a.mp4"), OutputSpec("a.mkv")).to_dict()
    worker = ray_executor.ChunkWorker(job, 1)  # raised here before: the actor died in its creation
    task = ChunkTask("a.mkv", {}, {"index": 0, "start_pts": 0}, "a.0")
    with pytest.raises(RuntimeError, match="CUDA out of memory") as raised:
        worker.run(task)
    assert is_load_failure(raised.value)

    def load_fails():
        raise failed_loading(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\n(the rest of torch's text)"))

    executor = object.__new__(ray_executor.RayExecutor)
    executor.ray = ray_session
    with pytest.raises(PipelineError) as ended:
        executor._get(ray_session.remote(load_fails).options(max_retries=0).remote(), task)
    assert not isinstance(ended.value, SourceError)  # not a video's fault: the run (and a watch) ends
    assert str(ended.value) == "worker: a Ray worker could not load the model: RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"


def test_a_pipeline_error_on_a_worker_reaches_the_driver_as_its_one_line(ray_session):
    """A chunk's PipelineError on a worker (one that wrote fewer frames than planned, a stage that failed) could not be
    unpickled by the driver (its ``__init__`` takes two arguments): the run ended in Ray's "Failed to deserialize
    exception" and a page of traceback, not the error's one line. The error crosses a real Ray task here."""
    from birefvid.batch import ray_executor
    from birefvid.batch.chunk import ChunkTask
    from birefvid.runtime.load_failure import failed_loading, is_load_failure
    from birefvid.errors import PipelineError

    def short_chunk():
        raise failed_loading(PipelineError("chunk", "chunk 3 of a.mp4 wrote 5 frames, expected 6"))

    executor = object.__new__(ray_executor.RayExecutor)
    executor.ray = ray_session
    task = ChunkTask("a.mkv", {}, {"index": 3, "start_pts": 0}, "a.3")
    with pytest.raises(PipelineError) as raised:
        executor._get(ray_session.remote(short_chunk).options(max_retries=0).remote(), task)
    assert str(raised.value) == "chunk: chunk 3 of a.mp4 wrote 5 frames, expected 6" and raised.value.stage == "chunk"
    assert is_load_failure(raised.value)  # what was set on it crosses too


def test_a_batch_refused_for_room_leaves_the_callers_ray_printing_as_it_was(ray_session, tmp_path):
    """The Python API in a process that is a Ray driver of its own: a batch refused after the executor met Ray (more
    workers than the cluster has room for) left Ray's printer replaced (its raylets' notices sent to standard error,
    first lines only) for the rest of the user's process; and a Ray it started itself, running (not here: Ray is the
    user's). Both are put back as they were, as close() does after a run."""
    import ray._private.worker as ray_worker

    from birefvid.batch.runner import batch_videos
    from birefvid.errors import ConfigError

    printer = ray_worker.print_to_stdstream
    src = keyframed_clip(tmp_path / "a.mp4", SHORT)
    with pytest.raises(ConfigError, match="100 workers of 1 CPUs"):
        batch_videos([src], tmp_path / "out", ray="local", workers=100, kind="mask", model="tiny", resolution=64, device="cpu")
    assert ray_worker.print_to_stdstream is printer
    assert ray_session.is_initialized()  # the user's Ray: not ours to end


# what Ray 2.60's driver got for one node whose raylet was killed (ray start --head + two ray start --address nodes):
# the first twice, from two processes of that node, with the raylet's last 20 log lines (two kept here)
RAYLET_TERMINATED = ("Raylet is terminated. Termination is unexpected. Possible reasons include: (1) SIGKILL by the user or system OOM "
                     "killer, (2) Invalid memory access from Raylet causing SIGSEGV or SIGBUS, (3) Other termination signals. Last 20 "
                     "lines of the Raylet logs:\n    [state-dump] \tNodeManager.GCTaskFailureReason - 1 total (1 active)\n    "
                     "[2026-12-07 13:10:22,165 I 25933 25933] (raylet) accessor.cc:475: Received address and liveness notification\n")
MARKED_DEAD = ("The node with node id: f8d11179 and address: 192.0.2.2 and node name: 192.0.2.2 has been marked dead because the "
               "detector has missed too many heartbeats from it. This can happen when a \t(1) raylet crashes unexpectedly (OOM, etc.) "
               "\n\t(2) raylet has lagging heartbeats due to slow network or busy workload.")


def test_a_lost_node_s_raylet_notices_are_one_whole_line_each_said_once_without_colours(caplog, capsys):
    """Ray's notices of a lost node, as its printer thread hands them over: each was its first line, in the terminal's
    yellow even in a log file, "Raylet is terminated ..." twice, ending on "Last 20 lines of the Raylet logs:" with no
    lines after it, and "marked dead" cut off before its second reason. Now each is a whole warning line, once."""
    need_module("ray", '"birefvid[ray]"')
    import ray
    import ray._private.worker as ray_worker

    from birefvid.batch.ray_executor import raylet_notices_to_stderr

    undo = raylet_notices_to_stderr(ray)
    try:
        for message in (RAYLET_TERMINATED, RAYLET_TERMINATED, MARKED_DEAD):
            ray_worker.print_to_stdstream({"lines": [message], "pid": "raylet", "is_err": False}, ignore_prefix=False)
    finally:
        undo()
    said = [r.getMessage() for r in caplog.records if r.name == "birefvid.batch.ray_executor"]
    assert said == [
        "Ray: Raylet is terminated. Termination is unexpected. Possible reasons include: (1) SIGKILL by the user or system OOM killer, "
        "(2) Invalid memory access from Raylet causing SIGSEGV or SIGBUS, (3) Other termination signals.",
        "Ray: The node with node id: f8d11179 and address: 192.0.2.2 and node name: 192.0.2.2 has been marked dead because the detector "
        "has missed too many heartbeats from it. This can happen when a (1) raylet crashes unexpectedly (OOM, etc.) (2) raylet has "
        "lagging heartbeats due to slow network or busy workload.",
    ]  # fmt: skip
    out, err = capsys.readouterr()
    assert "Raylet" not in out + err  # nothing printed past the log: no escape codes, no raylet log lines


def _traceback_of(exc: BaseException) -> str:
    import traceback

    try:
        raise exc
    except BaseException:  # noqa: BLE001 - its text only
        return traceback.format_exc()


def test_the_ray_a_batch_started_is_shut_down_before_its_printers_are_put_back():
    """A lost node's "... has been marked dead" came after the last chunk, between Ray's printers put back and its
    shutdown: Ray printed it on standard output, in yellow, among `--progress-json -`'s JSON lines (CI, under load).
    The Ray started here is shut down while the notices are still ours, then the printers are put back."""
    need_module("ray", '"birefvid[ray]"')
    import ray
    import ray._private.worker as ray_worker

    from birefvid.batch.ray_executor import RayExecutor, raylet_notices_to_stderr

    original, ours_at_shutdown = ray_worker.print_to_stdstream, []

    class StartedHere:  # the Ray a batch started: a late notice may come until its shutdown returns
        _private = ray._private

        def shutdown(self) -> None:
            ours_at_shutdown.append(ray_worker.print_to_stdstream is not original)

    executor = RayExecutor.__new__(RayExecutor)
    executor.ray, executor._owns, executor._notices_back = StartedHere(), True, raylet_notices_to_stderr(ray)
    executor._leave()
    assert ours_at_shutdown == [True] and ray_worker.print_to_stdstream is original


def test_a_notice_with_a_traceback_says_the_error_it_ends_on():
    """The autoscaler's, the log monitor's and the dashboard's notices end "... failed with the following error:" and a
    traceback, a worker's version mismatch is a traceback: the line was that announcement, or "Traceback (most recent
    call last):", and not the error."""
    from birefvid.batch.ray_executor import notice_line

    mismatch = RuntimeError("Version mismatch: The cluster was started with:\n    Ray: 2.60.0\n    Python: 3.11.9\nThis process on node "
                            "10.0.0.3 was started with:\n    Ray: 2.50.0\n    Python: 3.11.9\n")  # ray._private.utils.check_version_info
    assert notice_line(_traceback_of(mismatch)) == ("RuntimeError: Version mismatch: The cluster was started with: Ray: 2.60.0 Python: 3.11.9 "
                                                    "This process on node 10.0.0.3 was started with: Ray: 2.50.0 Python: 3.11.9")  # fmt: skip
    failed = f"The autoscaler failed with the following error:\n{_traceback_of(KeyError('head_node_type'))}"  # monitor.py
    assert notice_line(failed) == "The autoscaler failed with the following error: KeyError: 'head_node_type'"
    coloured = "The actor \x1b[36mray::ChunkWorker.__init__()\x1b[39m could not start."
    assert notice_line(coloured) == "The actor ray::ChunkWorker.__init__() could not start."


def test_a_notices_terminal_codes_and_control_characters_do_not_reach_the_terminal():
    """A raylet notice is said as one line, whatever it holds: only colours were taken out, so a cursor move and line
    erase (ESC[1A ESC[2K) in one erased the terminal's line above, our last warning or progress line, an OSC sequence
    set the terminal's title, and a NUL or backspace went out raw (a log file kept them all). Ray decodes its logs'
    bytes with "replace", so a non-UTF-8 byte arrives as U+FFFD, kept."""
    import logging

    from birefvid.batch.ray_executor import notice_line
    from birefvid.cli import CliLogFormatter

    assert notice_line("a worker\x1b[1A\x1b[2K died") == "a worker died"
    assert notice_line("\x1b[33m(raylet)\x1b[0m see \x1b]8;;https://docs.ray.io\x1b\\the docs\x1b]8;;\x1b\\ \x1b]0;title\x07now") == "(raylet) see the docs now"
    assert notice_line("nul\x00 bs\x08 del\x7f esc\x1b") == "nul\\x00 bs\\x08 del\\x7f esc\\x1b"
    assert notice_line("bad \ufffd byte\r\nnext\u2028line") == "bad \ufffd byte next line"
    record = logging.makeLogRecord({"name": "birefvid.batch.ray_executor", "levelname": "WARNING", "msg": "Ray: %s",
                                    "args": (notice_line("one\x1b[2K\ntwo\x1b[1A"),)})  # fmt: skip
    line = CliLogFormatter().format(record)
    assert line == "birefvid: warning: Ray: one two" and line.isprintable()


def test_a_notices_other_escape_sequences_and_c1_controls_do_not_reach_the_terminal():
    """0e0043f took out CSI and OSC sequences and the two-byte ones of ESC @ to ESC _ only: ``tput sgr0``'s ESC(B, the
    cursor's save and restore (ESC7 ESC8) and a reset (ESC c) went out as ``\\x1b(B`` and so on, their bytes after the
    ESC kept, and a C1 control (U+009B, a CSI to xterm in UTF-8; U+009D, an OSC) went to the terminal raw, the line not
    printable."""
    from birefvid.batch.ray_executor import notice_line

    assert notice_line("\x1b[31mred\x1b(B\x1b[m done \x1b7saved\x1b8 \x1bcreset \x1b#8") == "red done saved reset"
    line = notice_line("c1 \u009b2K erase \u009d0;title\u009c\u0085next line")  # U+0085: a line break to str.splitlines
    assert line == "c1 \\x9b2K erase \\x9d0;title\\x9c next line" and line.isprintable(), line


# what Ray's log monitor sent of a raylet's raylet.err as its memory monitor killed workers (Ray 2.60, a local Ray with
# RAY_memory_usage_threshold=0.05; the advice shortened)
OOM_LOG = ["[2026-12-07 14:09:38,559 E 13826 13826] (raylet) node_manager.cc:3517: 33 Workers (tasks / actors) killed due to memory "
           "pressure (OOM), 0 Workers crashed due to other reasons at node (ID: 2d705066, IP: 192.0.2.2) over the last time period. To "
           "see more information about the Workers killed on this node, use `ray logs raylet.out -ip 192.0.2.2`", "",
           "Refer to the documentation on how to address the out of memory issue: https://docs.ray.io/en/latest/ray-observability/"
           "user-guides/debug-apps/debug-memory.html. Consider provisioning more memory on this node or reducing task parallelism by "
           "requesting more CPUs per task. To adjust the kill threshold, set the environment variable `RAY_memory_usage_threshold` "
           "when starting Ray.", ""]  # fmt: skip


def test_the_oom_killers_raylet_log_lines_are_one_warning_with_its_advice_and_workers_output_is_left_as_it_was(caplog, capsys):
    """Ray's memory monitor's count of the workers it killed reaches the driver as a raylet's log lines, through Ray's log
    printer, which the notices' printer was not: a yellow "(raylet)" before each line, blank ones too, on standard
    error. Now one warning, its advice kept; a worker's own output still printed as Ray prints it, and all as it was after."""
    need_module("ray", '"birefvid[ray]"')
    import ray
    import ray._private.worker as ray_worker

    from birefvid.batch.ray_executor import raylet_notices_to_stderr

    dispatcher = ray_worker.global_worker_stdstream_dispatcher
    seen: list[dict] = []
    dispatcher.add_handler("ray_print_logs", seen.append)  # as ray.init binds Ray's printer
    try:
        undo = raylet_notices_to_stderr(ray)
        try:
            dispatcher.emit({"pid": "raylet", "is_err": True, "lines": OOM_LOG, "ip": "192.0.2.2"})
            dispatcher.emit({"pid": 4242, "is_err": False, "lines": ["a worker's own line"], "ip": "192.0.2.2"})
        finally:
            undo()
        dispatcher.emit({"pid": "raylet", "is_err": True, "lines": ["after"], "ip": "192.0.2.2"})
        assert dispatcher.handlers[-1] == ("ray_print_logs", seen.append)
    finally:
        dispatcher.remove_handler("ray_print_logs")
    assert [d["lines"] for d in seen] == [["a worker's own line"], ["after"]]
    said = [r.getMessage() for r in caplog.records if r.name == "birefvid.batch.ray_executor"]
    assert said == ["Ray: 33 Workers (tasks / actors) killed due to memory pressure (OOM), 0 Workers crashed due to other reasons at node "
                    "(ID: 2d705066, IP: 192.0.2.2) over the last time period. To see more information about the Workers killed on this "
                    "node, use `ray logs raylet.out -ip 192.0.2.2` Refer to the documentation on how to address the out of memory issue: "
                    "https://docs.ray.io/en/latest/ray-observability/user-guides/debug-apps/debug-memory.html. Consider provisioning more "
                    "memory on this node or reducing task parallelism by requesting more CPUs per task. To adjust the kill threshold, set "
                    "the environment variable `RAY_memory_usage_threshold` when starting Ray."]  # fmt: skip


def test_an_older_rays_printers_are_taken_over_without_a_traceback_and_put_back(caplog):
    """Ray before 2.38 (pyproject allows 2.10) calls ``print_to_stdstream(data)`` without ``ignore_prefix``: our printer,
    which required it, raised TypeError in Ray's error listener thread at its first notice (a traceback, and no Ray
    notice printed again in that process). A dispatcher whose handlers are not (name, handler) pairs raised out of
    RayExecutor's start, Ray's printer left ours. Now both are taken as they come, and all is put back. Ray faked."""
    import threading
    import types

    from birefvid.batch.ray_executor import raylet_notices_to_stderr

    printed: list[list[str]] = []

    def old_printer(data):  # Ray 2.10's print_to_stdstream
        printed.append(data["lines"])

    class Dispatcher:  # another Ray's: handlers that are not (name, handler) pairs
        def __init__(self) -> None:
            self.handlers, self._lock = [old_printer], threading.Lock()

    worker = types.SimpleNamespace(print_to_stdstream=old_printer, global_worker_stdstream_dispatcher=Dispatcher())
    undo = raylet_notices_to_stderr(types.SimpleNamespace(_private=types.SimpleNamespace(worker=worker)))
    try:
        worker.print_to_stdstream({"lines": [MARKED_DEAD], "pid": "raylet", "is_err": False})  # as its error listener calls it
        worker.print_to_stdstream({"lines": ["a worker's line"], "pid": 4242, "is_err": False})
    finally:
        undo()
    assert worker.print_to_stdstream is old_printer and worker.global_worker_stdstream_dispatcher.handlers == [old_printer]
    assert printed == [["a worker's line"]]
    said = [r.getMessage() for r in caplog.records if r.name == "birefvid.batch.ray_executor"]
    assert len(said) == 1 and said[0].startswith("Ray: The node with node id: f8d11179"), said


def test_a_frame_counter_lost_with_its_node_is_replaced_and_the_run_goes_on(ray_session):
    """The frame counter reserves no CPU, so Ray may place it on any node of a cluster: a node lost mid-run (its raylet
    killed) took it along, and the driver's next progress poll raised ``ActorDiedError``: the run ended in a traceback,
    exit 1, where its chunks were being retried. Here the counter dies as a lost node's actors do."""
    from birefvid.batch import ray_executor

    executor = object.__new__(ray_executor.RayExecutor)
    executor.ray = ray_session
    executor._counter_class = ray_session.remote(ray_executor.FrameCounter).options(num_cpus=0)
    lost = executor._counter_class.remote()
    ray_session.get(lost.set.remote("a.mkv", 0, 4))
    executor._counter = lost
    ray_session.kill(lost)
    deadline = time.monotonic() + 60  # ray.kill returns before the actor is gone: a call made at once may still be answered
    while time.monotonic() < deadline:
        try:
            ray_session.get(lost.set.remote("b.mkv", 0, 1))
        except ray_session.exceptions.RayActorError:
            break
        time.sleep(0.05)
    assert executor._frame_counts() == {}  # no counts this poll, not the run's end
    assert executor._counter is not lost
    ray_session.get(executor._counter.set.remote("a.mkv", 1, 7))
    assert executor._frame_counts() == {("a.mkv", 1): 7}


def test_ray_local_starts_its_own_ray_whatever_ray_address_says(tmp_path):
    """`--ray local` called ``ray.init()`` without an address, which joins the cluster `RAY_ADDRESS` names (set on a
    cluster's nodes and in KubeRay's pods) or the one a `ray start` on this machine left in /tmp/ray: "a Ray instance on
    this machine" ran on the whole cluster, or hung minutes on an address that answered no more. Here `RAY_ADDRESS`
    names no address at all, which Ray refused at once: "cannot connect to the Ray cluster at 'local'"."""
    need_module("ray", '"birefvid[ray]"')
    src, out = keyframed_clip(tmp_path / "a.mp4", SHORT), tmp_path / "out"
    env = os.environ | {"RAY_ADDRESS": "no-such-cluster"}
    run = subprocess.run([sys.executable, "-m", "birefvid.cli", "batch", str(src), "--output-dir", str(out), "--output", "mask",
                          "-q", *MODEL, "--ray", "local", "--workers", "1"], env=env, capture_output=True, text=True, timeout=WAIT)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert sorted(os.listdir(out)) == [".birefvid-batch", "a.mkv"]


# a sitecustomize for Ray's worker processes only: torch missing on the workers' node, so each dies as it starts
_NO_TORCH_ON_WORKERS = """import sys
if any(arg.endswith("default_worker.py") for arg in sys.argv):
    sys.modules["torch"] = None
"""


def test_workers_that_die_as_they_start_end_the_run_in_one_line(tmp_path):
    """Workers that cannot start (torch missing on their node here; the OOM killer as each loads the model) died before
    taking their chunk again: the driver retries a died chunk itself and waited for a worker to come up, making fresh
    ones one after another, each dying under a page of Ray's traceback, for ``NO_ROOM_SECONDS`` (5 min), then said "no
    Ray worker has been up ... a rerun resumes". Three such workers in a row now end the run, as before the retries."""
    need_module("ray", '"birefvid[ray]"')
    src, out, site = keyframed_clip(tmp_path / "a.mp4", SHORT), tmp_path / "out", tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_NO_TORCH_ON_WORKERS)
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    run = subprocess.run([sys.executable, "-m", "birefvid.cli", "batch", str(src), "--output-dir", str(out), "--output", "mask",
                          "-q", *MODEL, "--ray", "local", "--workers", "1"], env=env, capture_output=True, text=True, timeout=WAIT)  # fmt: skip
    last = run.stderr.strip().splitlines()[-1]
    assert run.returncode == 2, run.stderr[-3000:]
    assert last.startswith("birefvid: error: worker: 3 Ray workers in a row died as they started"), run.stderr[-3000:]
    assert "error raised in its creation task, ray::ChunkWorker.__init__()" in last  # Ray's first line, its colour codes left out
    assert sorted(os.listdir(out)) == [".birefvid-batch"] and os.listdir(out / ".birefvid-batch") == ["manifest.json"]


@pytest.mark.parametrize("address", ["127.0.0.1:{port}", "ray://127.0.0.1:{port}"])
def test_a_ray_address_where_nothing_listens_is_one_line_at_once(tmp_path, address):
    """`--ray 127.0.0.1:1` (a typo, a head not started) hung over 200 s in Ray's retries before any word. A process of
    its own: in this one, a Ray another test started would be used as it is."""
    need_module("ray", '"birefvid[ray]"')
    import socket

    with socket.socket() as closed:  # a port free a moment ago: nothing listens there
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    src = keyframed_clip(tmp_path / "a.mp4", SHORT)
    argv = ["batch", str(src), "--output-dir", str(tmp_path / "out"), "--output", "mask", "-q", *MODEL, "--ray", address.format(port=port)]
    run = subprocess.run([sys.executable, "-m", "birefvid.cli", *argv], capture_output=True, text=True, timeout=WAIT)
    assert run.returncode == 2, run.stderr  # at once: Ray's own retries (the test timing out, without the check) take minutes
    err = run.stderr.strip().splitlines()
    assert err[-1].startswith(f"birefvid: error: cannot connect to the Ray cluster at '{address.format(port=port)}': nothing answers at 127.0.0.1:{port}")



def _free_port() -> int:
    import socket

    with socket.socket() as closed:  # a port free a moment ago: nothing listens there
        closed.bind(("127.0.0.1", 0))
        return closed.getsockname()[1]


def test_ray_auto_with_a_ray_address_where_nothing_listens_is_one_line_at_once(tmp_path):
    """`--ray auto` joins the cluster `RAY_ADDRESS` names (a node's environment, a KubeRay pod's): a stale one (the head
    gone) hung the run for minutes in Ray's retries, past a SIGTERM, where `--ray HOST:PORT` said so at once."""
    need_module("ray", '"birefvid[ray]"')
    port = _free_port()
    src = keyframed_clip(tmp_path / "a.mp4", SHORT)
    argv = ["batch", str(src), "--output-dir", str(tmp_path / "out"), "--output", "mask", "-q", *MODEL, "--ray", "auto"]
    env = os.environ | {"RAY_ADDRESS": f"127.0.0.1:{port}"}
    run = subprocess.run([sys.executable, "-m", "birefvid.cli", *argv], env=env, capture_output=True, text=True, timeout=WAIT)
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith(
        f"birefvid: error: cannot connect to the Ray cluster at 'auto': nothing answers at 127.0.0.1:{port} (RAY_ADDRESS)")


@contextlib.contextmanager
def _server(reply: bytes):
    """A TCP server on 127.0.0.1 that answers each connection with ``reply`` (b"": none, it stays silent), and its port."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    kept: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            kept.append(conn)
            if reply:
                conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for conn in kept:
            conn.close()


@pytest.mark.parametrize("prefix", ["", "ray://"])
def test_a_ray_address_that_answers_but_not_as_ray_is_one_line_at_once(prefix, monkeypatch):
    """`--ray HEAD:8265` (the dashboard's port, which `ray job submit` takes) or any other server's port: the socket
    check passed, and Ray then retried for minutes (over 100 s for a web server's port, past a SIGTERM; 38 s and "ray
    client connection timeout" for ray://). Ray's GCS and its client server are gRPC: they answer HTTP/2's hello."""
    from birefvid.batch import ray_executor

    monkeypatch.setattr(ray_executor, "CONNECT_SECONDS", 1.0)
    with _server(b"HTTP/1.0 400 Bad request\r\nServer: SimpleHTTP/0.6\r\n\r\n") as port:
        with pytest.raises(ConnectionError) as raised:
            ray_executor._answers(f"{prefix}127.0.0.1:{port}")
    assert str(raised.value).startswith(f"127.0.0.1:{port} answers, but not as Ray does (it said 'HTTP/1.0 400 Bad request'); ")
    with _server(b"") as port:  # a server that says nothing
        with pytest.raises(ConnectionError, match=r"answers, but not as Ray does \(no answer to an HTTP/2 hello in 1 s\)"):
            ray_executor._answers(f"{prefix}127.0.0.1:{port}")


def test_the_address_check_leaves_an_http_ray_address_to_ray(monkeypatch):
    """`RAY_ADDRESS=http://HEAD:8265` (what `ray job submit` takes) with `--ray auto`: Ray's own error says what that is
    and what to set instead; the check must not say "nothing answers at http://HEAD:8265" first."""
    from birefvid.batch import ray_executor

    monkeypatch.setenv("RAY_ADDRESS", f"http://127.0.0.1:{_free_port()}")
    ray_executor._answers("auto")  # no error: left to ray.init


@pytest.mark.slow
def test_a_cluster_that_refuses_the_drivers_token_is_said_so(ray_session, tmp_path):
    """Ray 2.5x starts a cluster with token authentication; a driver without RAY_AUTH_MODE=token and the token got
    Ray's "Failed to connect to Ray cluster at HOST:PORT" after ~27 s, the why (InvalidAuthToken) only in C++ log lines
    above it. This module's Ray is such a cluster; the run here has no RAY_AUTH_MODE. (Ray's own retries: ~30 s, 3 here.)"""
    if os.environ.get("RAY_AUTH_MODE") != "token":
        pytest.skip("this Ray runs without token authentication")
    src = keyframed_clip(tmp_path / "a.mp4", SHORT)
    address = ray_session.get_runtime_context().gcs_address
    # Ray's tries to reach the GCS, a second apart, all refused alike: 3 where it makes 20 by default (its own setting,
    # RAY_gcs_server_port_wait_time_s), as the error is the same on each (the test's ~30 s were Ray's retries)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")} | {"RAY_gcs_server_port_wait_time_s": "3"}
    argv = ["batch", str(src), "--output-dir", str(tmp_path / "out"), "--output", "mask", "-q", *MODEL, "--ray", address]
    run = subprocess.run([sys.executable, "-m", "birefvid.cli", *argv], env=env, capture_output=True, text=True, timeout=WAIT)
    assert run.returncode == 2, run.stderr[-2000:]
    assert run.stderr.strip().splitlines()[-1].startswith(
        f"birefvid: error: cannot connect to the Ray cluster at '{address}': it refused this driver's token (InvalidAuthToken); ")


def test_the_address_check_lets_a_real_ray_through(ray_session):
    """What the check above refuses must not be Ray: the module's own Ray's GCS answers it as a gRPC server."""
    from birefvid.batch import ray_executor

    ray_executor._answers(ray_session.get_runtime_context().gcs_address)  # no error


_WORKER_TELEMETRY_PROBE = """
import sys
from birefvid.cli import _no_openvino_telemetry
from birefvid.batch.ray_executor import ChunkWorker, telemetry_off
from birefvid.job import FileJob, ModelSpec, OutputSpec, SourceSpec
assert not telemetry_off()
_no_openvino_telemetry()  # what the command line's driver does first
driver = telemetry_off()
del sys.modules["openvino_telemetry"]  # the worker: a process of its own, told by the driver
ChunkWorker(FileJob(SourceSpec("a.mp4"), OutputSpec("a.mkv"), model=ModelSpec("tiny")).to_dict(), 1, None, driver)
import openvino  # what a CPU worker's default backend imports
print(driver)
"""


def test_the_workers_of_a_command_line_batch_send_no_openvino_telemetry(tmp_path):
    """`birefvid batch --ray` sent OpenVINO's usage event (and wrote ~/intel/openvino_ga_cid) from every Ray worker,
    each a process of its own that imports OpenVINO, where the command line's own process sends none. The driver tells
    its workers; the actor body runs in a fresh interpreter here (a Ray worker's import of OpenVINO needs the model
    exported first: a minute)."""
    pytest.importorskip("openvino")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}  # OpenVINO sends nothing in CI
    env.update(HOME=str(home), PYTHONPATH=os.pathsep.join(sys.path))
    result = subprocess.run([sys.executable, "-c", _WORKER_TELEMETRY_PROBE], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1:] == ["True"]
    assert sorted(p.name for p in home.rglob("*")) == []  # no ~/intel/openvino_ga_cid


def test_ray_local_counts_the_cores_birefvid_threads_leaves(monkeypatch):
    """`BIREFVID_THREADS=1 birefvid batch --ray local` on 2 cores said "on 2 worker(s) (Ray local)": Ray counted every
    core of the machine, not the cap (nor `taskset`'s), so the run took both cores. GPU workers keep Ray's count."""
    from birefvid.batch import ray_executor
    from birefvid.runtime import cores

    monkeypatch.setattr(cores, "affinity_cores", lambda: 4)
    monkeypatch.setattr(cores, "quota_cores", lambda: None)
    monkeypatch.setenv("BIREFVID_THREADS", "1")
    cores.usable_cores.cache_clear()
    try:
        assert ray_executor.local_ray_cpus(0.0) == {"num_cpus": 1}
        assert ray_executor.local_ray_cpus(1.0) == {}
        monkeypatch.delenv("BIREFVID_THREADS")
        cores.usable_cores.cache_clear()
        assert ray_executor.local_ray_cpus(0.0) == {"num_cpus": 4}  # taskset's cores (the affinity) too
    finally:
        cores.usable_cores.cache_clear()
