"""CUDA-only paths (pinned uploads, copy/compute streams, fp16). Skipped on CPU machines; in GPU CI they run.

Marked ``needs_cuda`` (torchcodec's pattern): ``pytest -m needs_cuda`` selects them on a GPU box.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from birefvid.models import BiRefNet
from birefvid.runtime import Segmenter
from birefvid.runtime.transfer import Transfer

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.needs_cuda
@needs_cuda
def test_transfer_round_trip_on_streams():
    transfer = Transfer(torch.device("cuda"))
    batch = torch.randint(0, 256, (3, 3, 40, 56), dtype=torch.uint8)
    upload = transfer.upload(batch)
    with transfer.compute():
        on_device = upload.ready()
        doubled = (on_device.float() * 2).clamp(0, 255).to(torch.uint8)
        back = transfer.download(doubled)
    assert back.tensor.is_pinned()
    np.testing.assert_array_equal(back.numpy(), (batch.float() * 2).clamp(0, 255).to(torch.uint8).numpy())


@pytest.mark.needs_cuda
@needs_cuda
def test_fp16_cuda_matches_fp32_cpu(pvt_b0_state):
    frames = [np.random.default_rng(i).integers(0, 256, (72, 96, 3), dtype=np.uint8) for i in range(3)]
    cpu_model = BiRefNet("pvt_v2_b0")
    cpu_model.load_state_dict(pvt_b0_state)
    gpu_model = BiRefNet("pvt_v2_b0")
    gpu_model.load_state_dict(pvt_b0_state)
    ref = Segmenter(module=cpu_model, resolution=128, device="cpu", precision="fp32")(frames)
    out = Segmenter(module=gpu_model, resolution=128, device="cuda", precision="auto")(frames)
    assert np.isfinite(out).all()
    assert np.abs(out - ref).max() < 0.02


@pytest.mark.needs_cuda
@needs_cuda
def test_process_video_on_cuda_matches_cpu(tmp_path, pvt_b0_weights):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from media import make_video, read_video

    from birefvid.api import process_video

    clip = make_video(tmp_path / "in.mp4", n_frames=6, size=(96, 64))
    outs = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / f"{device}.mkv"
        process_video(clip.path, out, kind="mask", weights=pvt_b0_weights, resolution=64, device=device,
                      precision="fp32", batch_size=4, smooth="none")  # fmt: skip
        outs[device] = read_video(out, "gray")
    assert outs["cuda"].pts == outs["cpu"].pts
    diff = np.abs(np.stack(outs["cuda"].images).astype(int) - np.stack(outs["cpu"].images).astype(int))
    assert diff.max() <= 2


@pytest.mark.needs_cuda
@needs_cuda
def test_torch_compile_on_cuda_matches_eager(tmp_path, pvt_b0_weights):
    """--backend torch-compile on a GPU: a 6-frame video in batches of 4 (the tail of 2 padded) matches eager PyTorch."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from media import make_video, read_video

    from birefvid.api import process_video

    clip = make_video(tmp_path / "in.mp4", n_frames=6, size=(96, 64))
    outs = {}
    for backend in ("torch", "torch-compile"):
        out = tmp_path / f"{backend}.mkv"
        report = process_video(clip.path, out, kind="mask", weights=pvt_b0_weights, resolution=64, device="cuda",
                               precision="fp32", batch_size=4, smooth="none", backend=backend)  # fmt: skip
        assert report["resolved"]["backend"] == backend
        outs[backend] = read_video(out, "gray")
    assert outs["torch-compile"].pts == outs["torch"].pts
    diff = np.abs(np.stack(outs["torch-compile"].images).astype(int) - np.stack(outs["torch"].images).astype(int))
    assert diff.max() <= 2


@pytest.mark.needs_cuda
@needs_cuda
def test_deep_compositing_on_cuda_matches_the_cpu():
    """16-bit pictures go up as uint16, are converted on the GPU, and come back as uint16 (torch's copy kernels)."""
    from birefvid.compose.compositor import Compositor

    rng = np.random.default_rng(0)
    deep = torch.from_numpy(rng.integers(0, 65536, (2, 3, 40, 56), dtype=np.uint16))
    images = (deep.float() / 257).round().to(torch.uint8)
    alphas = torch.from_numpy(rng.random((2, 1, 40, 56), dtype=np.float32))
    cpu = Compositor("alpha", bits=16)(images, alphas, deep.float() / 65535)
    on_gpu = deep.to("cuda").float().div_(65535.0)
    gpu = Compositor("alpha", bits=16)(images.cuda(), alphas.cuda(), on_gpu).cpu()
    assert gpu.dtype == torch.uint16 and cpu.dtype == torch.uint16
    assert (gpu.int() - cpu.int()).abs().max() <= 2 * 64  # two 10-bit levels: GPU and CPU float differ in the last bits


@pytest.mark.needs_cuda
@needs_cuda
def test_compute_stream_waits_for_work_queued_on_the_default_stream():
    """A module cast in place or a background converted on the default stream is read on the compute
    stream; torch's own streams do not wait for the default one, Transfer.compute() must."""
    transfer = Transfer(torch.device("cuda"))
    x = torch.zeros(16, 1024, 1024, device="cuda")
    torch.cuda.synchronize()
    torch.cuda._sleep(int(5e8))  # keeps the default stream busy, so the fill below is still queued
    x.fill_(1.0)
    with transfer.compute():
        total = x.sum()
    assert int(total.item()) == x.numel()


@pytest.mark.needs_cuda
@needs_cuda
def test_waiting_for_a_download_sleeps_instead_of_spinning_a_core():
    # Transfer.download's event was made without cudaEventBlockingSync, so OnHost.numpy() (the encoder's thread)
    # busy-waited for the GPU: CPU time counted at the source, the thread's own, against the wall time it waited
    import time

    transfer = Transfer(torch.device("cuda"))
    x = torch.zeros(4, 3, 64, 64, dtype=torch.uint8, device="cuda")
    with transfer.compute():
        torch.cuda._sleep(int(5e8))  # the compute stream busy for a fraction of a second before the copy
        host = transfer.download(x)
    cpu, wall = time.thread_time(), time.perf_counter()
    host.numpy()
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    assert wall < 0.05 or cpu < 0.5 * wall, f"{cpu:.2f} s of CPU in a {wall:.2f} s wait"
