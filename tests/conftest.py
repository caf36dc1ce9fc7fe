"""Shared fixtures: the BiRefNet parity data (in ``tests/data/reference``) and small test weights.

Everything a test needs lives in this repository: a clone tests on its own, with nothing beside it.
Tests that only need *some* model use seeded random weights (``pvt_b0_state``), never the parity
data, so a problem with the reference cannot hide the CLI, safety and output tests.

ONNX exports cost 10-30 s each on CI's 2 cores, so a session makes each one once: ``BIREFVID_CACHE_DIR`` is set
here, before pytest-xdist starts its workers, which inherit it, so every worker (and every ``birefvid`` a test starts)
shares one export cache for the session, and the product's export lock makes a second worker wait for the first's
file rather than export it again. A test that needs *an* export uses the seeded pvt_v2_b0 weights at 64x64
(``b0`` in tests/test_backends.py, ``--weights pvt_b0_weights --resolution 64``), the one most tests share; a test of
a *first* export (its timing, its lines, an interrupted one) sets a ``BIREFVID_CACHE_DIR`` of its own, and where the
model is not the point exports the red-key module of process_fixtures (~7 s of CPU; a BiRefNet's costs 30-65 s at any size).
"""

from __future__ import annotations

import importlib.util
import atexit
import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

# The suite runs eager PyTorch unless a test asks for a backend: "auto" would pick OpenVINO, whose
# ONNX export costs 10-90 s per model and size. tests/test_backends.py and the CLI tests that pass
# --backend run the exported engines; exports go to a throw-away cache, never the user's.
os.environ.setdefault("BIREFVID_BACKEND", "torch")
if "BIREFVID_CACHE_DIR" not in os.environ:
    # Exports are ~125 MB a session: the session that made the cache removes it when it exits
    # (atexit, so an interrupted run cleans up too), or runs fill the disk.
    _SESSION_CACHE = tempfile.mkdtemp(prefix="birefvid-test-cache-")
    os.environ["BIREFVID_CACHE_DIR"] = _SESSION_CACHE
    atexit.register(shutil.rmtree, _SESSION_CACHE, ignore_errors=True)


def _children_get_default_signals() -> None:
    """A suite started in the background (``pytest ... &``, ``nohup pytest``) has SIGINT or SIGHUP ignored,
    and exec hands an ignored signal down: every birefvid the tests start then ignored the Ctrl-C or
    hang-up they send, and those tests failed after their timeouts. A do-nothing handler keeps the signal
    ignored by pytest itself, while exec resets a handled signal to its default in the children."""
    for name in ("SIGINT", "SIGHUP"):
        signum = getattr(signal, name, None)  # no SIGHUP on Windows
        if signum is not None and signal.getsignal(signum) is signal.SIG_IGN:
            signal.signal(signum, lambda *_: None)


_children_get_default_signals()

REFERENCE_DIR = Path(__file__).resolve().parent / "data" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The parity data of the official BiRefNet (see its README); part of the repository."""
    assert (REFERENCE_DIR / "index.json").is_file(), f"parity data missing from the repository: {REFERENCE_DIR}"
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def deterministic_state_dict(reference_dir: Path):
    """The reference's ``fill.deterministic_state_dict``: weights that depend only on key and shape."""
    spec = importlib.util.spec_from_file_location("birefnet_reference_fill", reference_dir / "fill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.deterministic_state_dict


@pytest.fixture(scope="session")
def pvt_b0_state():
    """Seeded random pvt_v2_b0 BiRefNet weights, as a state dict (any model will do for these tests)."""
    import torch

    from birefvid.models import BiRefNet

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        return {k: v.clone() for k, v in BiRefNet("pvt_v2_b0").state_dict().items()}
    finally:
        torch.random.set_rng_state(generator_state)


@pytest.fixture(scope="module")
def b0_segmenter(pvt_b0_state):
    """A CPU fp32 PyTorch Segmenter at 64x64 around BiRefNet pvt_v2_b0 with the seeded test weights."""
    from birefvid.models import BiRefNet
    from birefvid.runtime import Segmenter

    model = BiRefNet("pvt_v2_b0")
    model.load_state_dict(pvt_b0_state)
    return Segmenter(module=model, resolution=64, device="cpu", precision="fp32", backend="torch")


@pytest.fixture(scope="session")
def pvt_b0_weights(pvt_b0_state, tmp_path_factory) -> Path:
    """A .pth checkpoint file of the seeded pvt_v2_b0 weights, written once per session."""
    import torch

    path = tmp_path_factory.mktemp("weights") / "pvt_b0_seeded.pth"
    torch.save(pvt_b0_state, path)
    return path


@pytest.fixture(scope="session")
def batch_clips(tmp_path_factory) -> dict:
    """Three clips with audio (``long``: 24 frames, a keyframe every 6, so 4 chunks of 6; ``a`` and ``b``: 5) and what
    `process` writes for each as an FFV1 mask, at one torch thread, as each 1-CPU Ray worker and a local batch run.

    Why session-wide: tests/test_batch.py and tests/test_batch_ray.py compare their chunked outputs with the same
    references exactly, and only read them; made once per pytest-xdist worker, not once per module (5-7 s each on a
    loaded 2-core machine)."""
    from test_batch_media import LONG, SHORT, keyframed_clip, reference, torch_threads

    d = tmp_path_factory.mktemp("batch_clips")
    inputs = [keyframed_clip(d / "long.mp4", LONG), keyframed_clip(d / "a.mp4", SHORT, gop=3), keyframed_clip(d / "b.mp4", SHORT)]
    with torch_threads(1):
        refs = {p.stem: reference(p, d / f"ref_{p.stem}.mkv", kind="mask") for p in inputs}
    return {"inputs": inputs, "refs": refs}


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for a module whose tests compare batch's chunked output with `process`'s
    exactly: float sums round differently across thread counts (README, batch: a grey level on a few
    pixels), and a module run first on a fresh pytest-xdist worker ran on two where earlier tests had
    left one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def one_cpu_thread(one_torch_thread):
    """torch on one thread in this process and in every ``birefvid`` a test starts (``OMP_NUM_THREADS``).

    Why: CI runs two pytest-xdist workers on two cores, so torch's two OpenMP threads a process are oversubscribed,
    and their spin-waits then cost more than the work at the suite's 64 px sizes: on a loaded 2-core machine a
    pvt_v2_b0 training step took 5x the wall time and 8x the CPU on two threads, a ``birefvid image`` child 2-3x the
    CPU. For modules whose tests are about behaviour, not about the thread count or speed."""
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    yield
    if before is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = before


@pytest.fixture()
def red_key(monkeypatch):
    """The red-key test model (alpha 1 on red, 0 on blue), loaded in place of --model's by the commands."""
    from process_fixtures import red_key_segmenter

    seg = red_key_segmenter()
    monkeypatch.setattr("birefvid.runtime.file_job.segmenter_for", lambda *a, **k: seg)
    return seg


# modules about thread counts, priorities, real time or speed keep torch's own thread count: live mode needs its
# threads to keep up with real time (on one thread two live tests recorded 51 of 72 frames), and these measure or
# set threads themselves
_OWN_THREAD_COUNT = ("test_live_", "test_pipelines_live", "test_api_threads", "test_bench_", "test_cli_bench",
                     "test_gpu_check", "test_priority", "test_backends", "test_batch_media", "test_cli_signals",
                     "test_compose_fast", "test_process_memory", "test_process_stages", "test_stages", "test_batch_ray",
                     "test_docs_examples", "test_exiting")  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _one_cpu_thread_by_default(request):
    """``one_cpu_thread`` for every module but those in ``_OWN_THREAD_COUNT``: the suite's 64 px work on two
    workers a 2-core machine ran faster on one torch thread a process (conftest's ``one_cpu_thread`` says why)."""
    name = request.module.__name__.rpartition(".")[2]
    if not name.startswith(_OWN_THREAD_COUNT):
        request.getfixturevalue("one_cpu_thread")
    yield
