"""scripts/bench_pipeline.py's model-only figure is timed on a worker thread, as ``process`` runs the model.

torch's OpenMP threads spin differently when the main thread calls the model (docs/api.md, the GOMP_SPINCOUNT
note): a model-only figure from the main thread set against the pipeline's worker-thread figure compared unlike
with like, and on a loaded machine the main thread's was several times slower.
"""

from __future__ import annotations

import importlib.util
import threading
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from birefvid.frames import Frame
from process_fixtures import RedKey, red_key_segmenter, scene_frame

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_pipeline.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_pipeline", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ThreadNoting(RedKey):
    """RedKey that notes the thread each call runs on."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[str] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.threads.append(threading.current_thread().name)
        return super().forward(x)


def test_the_model_only_figure_runs_the_model_on_a_worker_thread(bench):
    module = ThreadNoting()
    frames = [Frame(scene_frame(i, (96, 64)), i, Fraction(1, 24), i) for i in range(3)]
    seconds = bench.model_only_seconds(red_key_segmenter(module), frames, batch_size=1, repeats=2)
    assert seconds > 0
    assert module.threads == [bench.MODEL_ONLY_THREAD] * 6, module.threads
    assert threading.current_thread() is threading.main_thread()


def test_an_error_on_the_worker_thread_reaches_the_caller(bench):
    def fail() -> None:
        raise ValueError("the model failed")

    with pytest.raises(ValueError, match="the model failed"):
        bench.on_worker_thread(fail)
