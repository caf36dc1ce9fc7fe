"""The threaded stage runner: order, tails, first-error-wins with the stage named, and no hangs."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from birefvid.errors import PipelineError, SourceError
from birefvid.runtime.stages import StageQueue, run_stages


class Doubler:
    """Emits each item twice and a tail of two markers at end of stream."""

    name = "double"

    def process(self, item):
        yield item
        yield item

    def finish(self):
        return ["tail-1", "tail-2"]


class Boom:
    name = "boom"

    def __init__(self, at: int):
        self.at = at

    def process(self, item):
        if item == self.at:
            raise ZeroDivisionError("bad batch")
        return [item]

    def finish(self):
        return []


def _run_with_deadline(fn, seconds: float = 10.0):
    """Run ``fn`` in a thread; fail the test (instead of hanging CI) if it does not return in time."""
    result: dict = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001
            result["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "run_stages hung"
    if "error" in result:
        raise result["error"]
    return result.get("value")


_threads_before: set[threading.Thread] = set()


@pytest.fixture(autouse=True)
def _note_threads_before():
    """The threads the worker had before the test: a daemon thread another file's test left (a live or serve one, in
    the same xdist worker) is not this test's stage thread."""
    _threads_before.clear()
    _threads_before.update(threading.enumerate())


def _no_stage_threads_left():
    def left() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith("birefvid-") and t not in _threads_before]

    deadline = time.monotonic() + 5
    while left():
        assert time.monotonic() < deadline, left()
        time.sleep(0.05)


def test_items_flow_in_order_with_tails():
    out = []
    times = _run_with_deadline(lambda: run_stages(range(5), [Doubler()], out.append, queue_size=1))
    assert out == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, "tail-1", "tail-2"]
    assert set(times.busy) == {"decode", "double", "encode"}
    _no_stage_threads_left()


class Burner:
    """Spins the CPU ~30 ms per item: work a stage really does, as opposed to waiting."""

    name = "burn"

    def process(self, item):
        end = time.thread_time() + 0.03
        while time.thread_time() < end:
            pass
        yield item

    def finish(self):
        return []


def test_cpu_time_is_charged_to_the_stage_that_used_it():
    """Busy time is wall-clock; cpu is each stage's own thread's CPU, so a consumer that sleeps costs ~none."""
    times = _run_with_deadline(lambda: run_stages(range(4), [Burner()], lambda item: time.sleep(0.03), queue_size=1))
    assert set(times.cpu) == {"decode", "burn", "encode"}
    assert times.cpu["burn"] >= 0.12  # 4 items x 30 ms of spinning
    assert times.busy["encode"] >= 0.1  # it waited 4 x 30 ms in sleep ...
    assert times.cpu["encode"] < 0.05  # ... and used almost no CPU doing it
    _no_stage_threads_left()


def test_consumer_error_while_producer_blocks_on_full_queue():
    """supervision's first hang: the writer dies while the reader waits on a full queue."""

    def endless():
        i = 0
        while True:
            yield i
            i += 1

    def consume(item):
        if item == 3:
            raise OSError("disk full")

    with pytest.raises(PipelineError, match=r"^encode: OSError: disk full") as info:
        _run_with_deadline(lambda: run_stages(endless(), [Doubler()], consume, queue_size=1))
    assert info.value.stage == "encode" and isinstance(info.value.__cause__, OSError)
    _no_stage_threads_left()


def test_producer_error_still_ends_the_stream():
    """supervision's second hang: the reader fails and never sends end-of-stream."""

    def broken():
        yield 1
        raise SourceError("clip.mp4: decoding failed at frame 1")

    out = []
    with pytest.raises(SourceError, match="decoding failed at frame 1"):  # our own errors pass through unchanged
        _run_with_deadline(lambda: run_stages(broken(), [Doubler()], out.append))
    _no_stage_threads_left()


def test_stage_error_is_named_and_first_error_wins():
    consumed = []
    with pytest.raises(PipelineError, match=r"^boom: ZeroDivisionError: bad batch"):
        _run_with_deadline(lambda: run_stages(range(100), [Boom(at=4)], consumed.append, queue_size=2))
    assert 4 not in consumed
    _no_stage_threads_left()


def test_external_stop_returns_promptly():
    stop = threading.Event()

    def slow():
        for i in range(10_000):
            time.sleep(0.01)
            yield i

    timer = threading.Timer(0.2, stop.set)
    timer.start()
    out = []
    _run_with_deadline(lambda: run_stages(slow(), [Doubler()], out.append, stop=stop), seconds=5)
    assert 0 < len(out) < 20_000
    _no_stage_threads_left()


def test_newest_policy_drops_oldest_when_full():
    q = StageQueue(2, threading.Event(), policy="newest")
    for i in range(5):
        assert q.put(i)
    assert [q.get(), q.get()] == [3, 4] and q.dropped == 3


def test_block_policy_put_gives_up_when_stopped():
    stop = threading.Event()
    q = StageQueue(1, stop, policy="block")
    assert q.put("a")
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    assert q.put("b") is False
    # the stop comes 0.2 s in (later when a loaded machine starts the timer late); a put that missed it waits for ever
    assert time.monotonic() - started < 20


def test_queue_size_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        StageQueue(0, threading.Event())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_niced_threads_run_at_the_lowest_priority_and_the_others_do_not():
    seen: dict[str, int] = {}

    def note(name: str) -> None:
        seen[name] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def source():
        note("decode")
        yield from range(3)

    class Noting:
        name = "double"

        def process(self, item):
            note("double")
            yield item

        def finish(self):
            return iter(())

    out: list = []
    _run_with_deadline(lambda: run_stages(source(), [Noting()], lambda x: (note("encode"), out.append(x)), niced=("decode", "encode")))
    assert out == [0, 1, 2]
    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert seen == {"decode": 19, "double": base, "encode": 19}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # the caller's thread is untouched


_INTERRUPTED_RUN = """
import os, signal, sys, threading, time
from birefvid import exiting
from birefvid.runtime import stages
stages.STOP_JOIN_SECONDS = 0.5

class Stuck:
    name = "model"
    def process(self, item):
        time.sleep(float(sys.argv[1]))  # as a model's first export in native code: deaf to the stop event
        return [item]
    def finish(self):
        return []

threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
try:
    stages.run_stages(iter(range(100)), [Stuck()], lambda item: None)
except KeyboardInterrupt:
    print("abandoned" if exiting.must_exit_now() else "joined", flush=True)
    os._exit(130)
"""


@pytest.mark.parametrize("busy, expected", [(30.0, "abandoned"), (0.1, "joined")])
def test_an_interrupted_run_abandons_a_stage_stuck_in_native_work(busy, expected):
    """Ctrl-C while the model stage was in a first export (batch's chunks compile there): the threads were
    joined for 10 s and the run then left through the interpreter's exit under running C++ code, which
    aborts ("terminate called without an active exception", exit 134). A stage that does not finish in time
    is now handed to ``exiting``, so the CLI leaves with os._exit; one that finishes is joined as before."""
    import subprocess

    run = subprocess.run([sys.executable, "-c", _INTERRUPTED_RUN, str(busy)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 130 and run.stdout.strip() == expected, (run.stdout, run.stderr)


def test_an_abandoned_thread_that_finishes_no_longer_forces_an_immediate_exit(monkeypatch):
    """The flag outlived the thread: an API user's process, or a later ``birefvid.cli.main()`` in it (a
    test worker running the next test), left with ``os._exit`` after a stop whose export had long finished."""
    import threading

    from birefvid import exiting

    monkeypatch.setattr(exiting, "_abandoned", [])
    release = threading.Event()
    worker = threading.Thread(target=release.wait, daemon=True)
    worker.start()
    exiting.abandon(worker)
    assert exiting.must_exit_now()  # still in its native work: a normal exit would abort under it
    release.set()
    worker.join(5)
    assert not exiting.must_exit_now()


@pytest.mark.parametrize("landing", ["after", "before"])
def test_a_stop_landing_while_the_threads_start_stops_those_started(monkeypatch, landing):
    """A batch's SIGTERM, sent as a chunk finished, landed while the next chunk's threads were being started: outside
    the run's try, it left the decode thread reading as Python exited (SIGSEGV in libavformat, or SIGABRT, 1 run in
    10 under load). The threads started are now stopped and joined; one whose start() the stop preceded is not waited on."""
    real_start = threading.Thread.start
    calls = []

    def start_then_signal(thread):
        calls.append(thread.name)
        if len(calls) == 2 and landing == "before":
            raise KeyboardInterrupt  # within start(), before the thread began
        real_start(thread)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as a signal handler raises it, right after the second start

    decoding = threading.Event()

    def source():
        for i in range(10_000):
            decoding.set()
            time.sleep(0.01)
            yield i

    # another test's thread this worker still runs (a live test's abandoned warm-up sleeps on for seconds) is not this
    # run's: only the threads started here are counted
    before = set(threading.enumerate())
    monkeypatch.setattr(threading.Thread, "start", start_then_signal)
    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_stages(source(), [Doubler()], lambda item: None)
    monkeypatch.undo()
    assert decoding.wait(5)
    alive = [t.name for t in threading.enumerate() if t.name.startswith("birefvid-") and t not in before]
    assert alive == [] and time.monotonic() - began < 2, alive  # nothing left decoding, and no 10 s wait for a thread never begun


_LET_GO_AFTER_SAYING_DONE = """
import os, signal, sys, threading, time
from birefvid.runtime import stages

marker = sys.argv[1]


class SlowToClose:
    \"\"\"Freed as an open container or a sink is: work that must finish (here, a file written) when let go of.\"\"\"
    def __del__(self):
        time.sleep(0.3)
        with open(marker, "w") as f:
            f.write("closed")


class Holding:
    name = "model"
    def __init__(self):
        self.held = SlowToClose()
    def process(self, item):
        time.sleep(0.05)
        return [item]
    def finish(self):
        return []


class Descheduled(threading.Event):
    \"\"\"A stage thread descheduled right after its done flag is set, as a niced thread on a busy CPU is: for 2 s.\"\"\"
    def set(self):
        super().set()
        if threading.current_thread().name.startswith("birefvid-"):
            time.sleep(2)


stages.threading = type(sys)("threading_with_descheduling")
stages.threading.__dict__.update({k: getattr(threading, k) for k in dir(threading) if not k.startswith("__")})
stages.threading.Event = Descheduled
timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
timer.daemon = True
timer.start()
try:
    stages.run_stages(iter(range(1000)), [Holding()], lambda item: None)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_an_interrupted_run_lets_go_of_what_its_stages_held_before_it_returns(tmp_path):
    """A stage thread said it had finished before it let go of its stage, queues and source: descheduled there (a
    niced thread on a busy CPU), it dropped the last references after ``run_stages`` had raised and the script had
    ended, so their frees (an open container's, tensors') ran on a daemon thread that the interpreter's exit cuts
    off: here the object's close never ran. Now the thread lets go first, and the caller frees them itself."""
    import subprocess

    marker = tmp_path / "closed.txt"
    run = subprocess.run([sys.executable, "-c", _LET_GO_AFTER_SAYING_DONE, str(marker)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "interrupted", (run.stdout, run.stderr)
    assert marker.exists() and marker.read_text() == "closed", run.stderr
