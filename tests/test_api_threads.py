"""One Segmenter called from two threads (a notebook's worker pool, a web handler): the calls take turns,
so OpenVINO's single infer request is never asked twice at once ("Infer Request is busy")."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from birefvid.runtime import Segmenter
from system_tools import need_module

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class CountsOverlap(torch.nn.Module):
    """A stand-in model that notes how many calls run inside it at once (each holds on for a moment)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.inside = 0
        self.most_inside = 0
        self._count = threading.Lock()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self._count:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        time.sleep(0.02)  # long enough for the other thread to arrive
        with self._count:
            self.inside -= 1
        return x[:, :1] * self.scale


def _hammer(call, times: int = 6, threads: int = 2) -> list[BaseException]:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(times):
                call()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return errors


def test_calls_from_two_threads_take_turns():
    model = CountsOverlap()
    seg = Segmenter(module=model, resolution=64, device="cpu", precision="fp32", backend="torch")
    frame = np.zeros((32, 32, 3), np.uint8)
    assert _hammer(lambda: seg(frame)) == []
    assert model.most_inside == 1


def test_openvino_segmenter_shared_by_two_threads():
    need_module("openvino", "openvino")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 3, padding=1))  # exports in a moment
    seg = Segmenter(module=model, resolution=64, device="cpu", precision="fp32", backend="openvino")
    frame = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    want = seg(frame)  # exported and compiled here, before the threads start
    got: list[np.ndarray] = []
    assert _hammer(lambda: got.append(seg(frame)), times=20) == []  # was RuntimeError: Infer Request is busy
    assert len(got) == 40 and all(np.array_equal(g, want) for g in got)


def test_an_output_written_meanwhile_is_not_replaced_without_overwrite(tmp_path):
    """Two requests of a service writing one name at once, neither with overwrite=True: the one that
    finished second replaced the first's file and both reported success; it now fails, leaving the
    other file, its own result beside it as `cut (2).webm`, and no temporary one."""
    from birefvid import SinkError
    from birefvid.api import process_video
    from process_fixtures import make_scene, red_key_segmenter

    src = make_scene(tmp_path / "in.mov", 3, with_audio=False).path
    out = tmp_path / "cut.webm"

    def other_request_finishes(n: int) -> None:
        if not out.exists():
            out.write_bytes(b"the other request's cut-out")

    with pytest.raises(SinkError, match="output exists"):
        process_video(src, out, segmenter=red_key_segmenter(), progress=other_request_finishes)
    assert out.read_bytes() == b"the other request's cut-out"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut (2).webm", "cut.webm", "in.mov"]
