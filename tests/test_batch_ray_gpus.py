"""`--ray` on a cluster with GPUs and `--device auto`: Ray hides every GPU from a worker that reserves none."""

from __future__ import annotations

import logging

import pytest

from birefvid.batch.ray_executor import say_gpus_unused


def test_auto_workers_on_a_cluster_with_gpus_are_told_they_run_on_the_cpu(caplog):
    # Ray sets CUDA_VISIBLE_DEVICES="" for an actor with num_gpus=0: `batch --ray local` with the default --device auto
    # on a GPU machine ran every worker on the CPU, silently. RayExecutor passes ray.cluster_resources() here (a real
    # Ray declaring a GPU took 11 s to start for this one line, so the resources are given as Ray reports them)
    with caplog.at_level(logging.WARNING, logger="birefvid"):
        say_gpus_unused({"CPU": 2.0, "GPU": 1.0, "memory": 1e9}, "auto", 0.0)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "runs every worker on the CPU" in said[0] and "gpus_per_worker=1" in said[0]


@pytest.mark.parametrize("device, per_worker, gpus", [("auto", 1.0, 1), ("cpu", 0.0, 1), ("cuda", 1.0, 1), ("auto", 0.0, 0)])
def test_no_warning_where_the_workers_use_what_they_asked_for(device, per_worker, gpus, caplog):
    with caplog.at_level(logging.WARNING, logger="birefvid"):
        say_gpus_unused({"CPU": 2.0, "GPU": float(gpus)}, device, per_worker)
    assert not caplog.records
