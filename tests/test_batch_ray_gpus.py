"""`--ray` on a cluster with GPUs and `--device auto`: Ray hides every GPU from a worker that reserves none."""

from __future__ import annotations

import logging

import pytest
from system_tools import need_module

from birefvid.api import build_file_job
from birefvid.batch.ray_executor import RayExecutor


@pytest.fixture
def ray_with_a_gpu():
    """A local Ray that declares one GPU (a logical one: Ray schedules by the count it is given)."""
    need_module("ray", '"birefvid[ray]"')
    import ray

    if ray.is_initialized():
        pytest.skip("another test's Ray session is running in this process")
    ray.init(num_cpus=1, num_gpus=1, include_dashboard=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def test_auto_workers_on_a_cluster_with_gpus_are_told_they_run_on_the_cpu(ray_with_a_gpu, tmp_path, caplog):
    # Ray sets CUDA_VISIBLE_DEVICES="" for an actor with num_gpus=0: `batch --ray local` with the default --device auto
    # on a GPU machine ran every worker on the CPU, silently
    job = build_file_job("samples/scene.mp4", tmp_path / "out.mkv", kind="mask", model="tiny")
    with caplog.at_level(logging.WARNING, logger="birefvid"):
        executor = RayExecutor(job, "local", workers=1, cpus_per_worker=1.0, gpus_per_worker=0.0)
        executor.close()
    said = [r.getMessage() for r in caplog.records if "GPU" in r.getMessage()]
    assert len(said) == 1 and "runs every worker on the CPU" in said[0] and "gpus_per_worker=1" in said[0]


@pytest.mark.parametrize("device, per_worker, gpus", [("auto", 1.0, 1), ("cpu", 0.0, 1), ("cuda", 1.0, 1), ("auto", 0.0, 0)])
def test_no_warning_where_the_workers_use_what_they_asked_for(device, per_worker, gpus, caplog):
    from birefvid.batch.ray_executor import say_gpus_unused

    with caplog.at_level(logging.WARNING, logger="birefvid"):
        say_gpus_unused({"CPU": 2.0, "GPU": float(gpus)}, device, per_worker)
    assert not caplog.records
