"""A device the model's weights do not fit (``--model general`` on a 4 GB card): one line with advice, exit 2, in every command.

No GPU here: the model's move to its device raises torch's own ``torch.OutOfMemoryError``, as CUDA's allocator does.
Before, each command ended in torch's traceback with exit 1 (only an OOM while the model *ran* was one line).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from birefvid.cli import main
from media import make_images, make_video

MODEL = ["--model", "tiny", "--resolution", "64", "--device", "cpu", "--backend", "torch", "--precision", "fp32"]
TORCH_SAID = ("CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of 3.81 GiB of which 12.19 MiB is "
              "free. Including non-PyTorch memory, this process has 3.79 GiB memory in use. Of the allocated memory ...")  # fmt: skip


@pytest.fixture()
def weights_do_not_fit(monkeypatch):
    """``Module.to(device, ...)``, the model's move to its device as an engine opens, runs out of device memory."""
    move = torch.nn.Module.to

    def to(self, *args, **kwargs):
        if any(isinstance(a, torch.device) for a in (*args, *kwargs.values())):
            raise torch.OutOfMemoryError(TORCH_SAID)
        return move(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", to)


def _argv(command: str, tmp_path) -> list[str]:
    """A run of ``command`` on a small input, its outputs under ``tmp_path/out``."""
    video = tmp_path / "in.mp4"
    make_video(video, n_frames=2, with_audio=False)
    out = tmp_path / "out"
    return {
        "process": ["process", str(video), "-o", str(out) + ".mkv"],
        "image": ["image", str(make_images(tmp_path / "pictures", n=1)[0]), "-o", str(out) + ".png"],
        "batch": ["batch", str(video), "--output-dir", str(out), "--output", "mask"],
        "live": ["live", "--source", str(video), "--sink", str(out) + ".mp4"],
        "serve": ["serve", "--host", "127.0.0.1", "--port", "0"],
    }[command]


@pytest.mark.parametrize("command", ["process", "image", "batch", "live", "serve"])
def test_out_of_memory_loading_the_model_is_one_line_with_advice(command, tmp_path, capsys, weights_do_not_fit):
    assert main([*_argv(command, tmp_path), *MODEL, "-q"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "out of memory" in line]
    assert len(lines) == 1, err
    assert "cpu ran out of memory loading the model tiny (CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total " \
           "capacity of 3.81 GiB of which 12.19 MiB is free); try freeing the machine's memory (closing what else runs)" in lines[0]
    inputs = {tmp_path / "in.mp4", *(tmp_path / "pictures").glob("*")}
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p not in inputs and ".birefvid-batch" not in p.parts]  # batch's rerun state stays
    assert written == []  # nothing half-written


def test_a_large_model_is_told_of_a_smaller_one_and_an_api_caller_can_still_catch_torchs_error(weights_do_not_fit):
    """A Swin-L model (general, matting, HR, ...) that does not fit is pointed at lite; the error stays torch's
    OutOfMemoryError for a caller that retries elsewhere, and a ConfigError (one line) for the CLI."""
    from birefvid.errors import ConfigError
    from birefvid.runtime import Segmenter

    large = torch.nn.Conv2d(3, 1, 1)
    large.backbone_name = "swin_v1_l"
    with pytest.raises(torch.OutOfMemoryError) as raised:
        Segmenter(module=large, device="cpu", precision="fp32", backend="torch")
    assert isinstance(raised.value, ConfigError)
    assert str(raised.value).endswith("); try a smaller model (model='lite') or freeing the machine's memory (closing what else runs)")


# -- out of memory as the model runs, in each backend's own words ----------------------------------------------


class _Allocates(torch.nn.Module):
    """A model whose forward asks for far more memory than any machine has, as ``allocate`` does it: the
    failure is the library's own (torch's CPU allocator, NumPy's), on this machine, no GPU needed."""

    def __init__(self, allocate) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 1)
        self.allocate = allocate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.allocate()
        return self.conv(x)


def _openvino_outer_product(n: int) -> None:
    """OpenVINO's CPU plugin asked for an n x n float32 output (a PiB for 2**24): its own allocation failure, a
    plain RuntimeError whose last line is cpu_memory.cpp's "Failed to allocate N bytes of memory"."""
    pytest.importorskip("openvino")
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([-1], np.float32)
    column, row = (ops.reshape(x, ops.constant(np.array(shape, np.int64)), False) for shape in ([-1, 1], [1, -1]))
    ov.Core().compile_model(ov.Model([ops.multiply(column, row)], [x]), "CPU")({0: np.ones(n, np.float32)})


@pytest.mark.parametrize(
    ("allocate", "said"),
    [
        (lambda: torch.empty(1 << 55, dtype=torch.uint8), "DefaultCPUAllocator: can't allocate memory: you tried to allocate 36028797018963968 bytes"),
        (lambda: np.empty(1 << 55, np.uint8), "Unable to allocate 32.0 PiB for an array with shape (36028797018963968,) and data type uint8"),
        (lambda: _openvino_outer_product(1 << 24), "Failed to allocate 1125899906842624 bytes of memory"),
    ],
    ids=["torch-cpu-allocator", "numpy-MemoryError", "openvino-cpu"],
)
def test_the_cpu_running_out_of_memory_as_the_model_runs_is_the_one_line_a_gpu_gets(allocate, said):
    """On the CPU torch's allocator raises a plain RuntimeError and NumPy a MemoryError, not torch.OutOfMemoryError:
    both ended the command in a traceback (exit 1) where CUDA's out-of-memory was one line with advice."""
    from birefvid.runtime import Segmenter
    from birefvid.runtime.segmenter import DeviceOutOfMemory

    seg = Segmenter(module=_Allocates(allocate), device="cpu", precision="fp32", backend="torch", resolution=64)
    with pytest.raises(DeviceOutOfMemory) as raised:
        seg(np.zeros((48, 80, 3), np.uint8))
    # 64 is the least resolution: no smaller one to offer
    assert str(raised.value) == (f"cpu ran out of memory running the model on 1 frame at 64x64 ({said}); "
                                 "try freeing the machine's memory (closing what else runs)")
    assert isinstance(raised.value, torch.OutOfMemoryError)  # what an API caller that retries smaller catches


# torch's words for a GPU whose memory ran out outside its caching allocator, as plain RuntimeErrors, not
# torch.OutOfMemoryError: cuBLAS creating its handle and workspace at the first matmul (Swin's linear layers) on a card
# another program fills (TORCH_CUDABLAS_CHECK), and C10_CUDA_CHECK's cudaErrorMemoryAllocation (torch.AcceleratorError)
CUDA_SAID = [
    (RuntimeError, "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
    (getattr(torch, "AcceleratorError", RuntimeError), "CUDA error: out of memory\nCUDA kernel errors might be asynchronously "
                                                       "reported at some other API call, so the stacktrace below might be incorrect."),
    # cuDNN 9 (torch's wheels) names no ALLOC_FAILED: cudnnGetErrorString's words for its handle or workspace on a full
    # card, through AT_CUDNN_CHECK (the strings of libcudnn_graph.so.9 hold them); a conv model's first call makes the handle
    (RuntimeError, "cuDNN error: CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED"),
]


@pytest.mark.parametrize(("kind", "said"), CUDA_SAID, ids=["cublas-alloc-failed", "cuda-error-out-of-memory", "cudnn9-device-allocation-failed"])
def test_cuda_libraries_running_out_of_memory_is_the_one_line_too(kind, said):
    """These ended a GPU run in torch's traceback, exit 1, where the allocator's own out-of-memory was one line with
    advice. No GPU here: the model raises them as torch does (the same type, the same words)."""
    from birefvid.backends.memory import is_out_of_memory, memory_said
    from birefvid.runtime import Segmenter
    from birefvid.runtime.segmenter import DeviceOutOfMemory

    def allocate():
        raise kind(said)

    seg = Segmenter(module=_Allocates(allocate), device="cpu", precision="fp32", backend="torch", resolution=64)
    with pytest.raises(DeviceOutOfMemory) as raised:
        seg(np.zeros((48, 80, 3), np.uint8))
    assert f"({said.splitlines()[0]})" in str(raised.value) and "\n" not in str(raised.value)
    assert not is_out_of_memory(RuntimeError("CUDA error: CUBLAS_STATUS_NOT_SUPPORTED when calling `cublasGemmEx(...)`"))
    assert not is_out_of_memory(RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if you passed in a non-contiguous input."))
    assert memory_said(kind(said)) == said.splitlines()[0]


def _one_error(argv: list[str], capsys, out) -> list[str]:
    """Run ``argv``: exit 2, no traceback, nothing at ``out``; the lines it printed on stderr."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert not out.exists()
    return err.strip().splitlines()


# ONNX Runtime's own words, as its Python binding raises them: the first seen here on the CPU (a run under an address-space
# limit: its BFC arena, which CUDA's provider uses too), the second as ``cuda_call.cc`` formats a failed cudaMalloc
ORT_ARENA = ("[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Conv node. Name:'node_conv2d' Status "
             "Message: /onnxruntime_src/onnxruntime/core/framework/bfc_arena.cc:360 void* onnxruntime::BFCArena::AllocateRawInternal"
             "(size_t, bool, onnxruntime::Stream*) Failed to allocate memory for requested buffer of size 419430400\n")  # fmt: skip
ORT_CUDA = ("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running Conv node. Name:'node_conv2d' "
            "Status Message: CUDA error cudaErrorMemoryAllocation:out of memory ; CUDA failure 2: out of memory ; GPU=0 ; hostname=box ; "
            "file=/onnxruntime_src/onnxruntime/core/providers/cuda/cuda_allocator.cc ; line=52 ; expr=cudaMalloc((void**)&p, size);")  # fmt: skip
# cuda_call.cc's line for a cuDNN 9 call on a full card (cudnn_graph_v9.h: 4004, CUDNN_STATUS_ALLOC_FAILED is gone from its words)
ORT_CUDNN = ("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running Conv node. Name:'node_conv2d' "
             "Status Message: CUDNN failure 4004: CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED ; GPU=0 ; hostname=box ; "
             "file=/onnxruntime_src/onnxruntime/core/providers/cuda/cuda_execution_provider.cc ; line=178 ; expr=cudnnCreate(&cudnn_handle_);")  # fmt: skip


@pytest.fixture()
def onnxruntime_runs_fail(monkeypatch):
    """ONNX Runtime sessions whose run fails with ``request.param``: (its exception class's name, its message)."""
    ort = pytest.importorskip("onnxruntime")
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    failures = []

    class FailingSession(ort.InferenceSession):
        def run(self, *args, **kwargs):
            kind, said = failures[0]
            raise getattr(state, kind)(said)

    monkeypatch.setattr(ort, "InferenceSession", FailingSession)
    return failures


@pytest.mark.parametrize(
    ("kind", "said", "gist"),
    [("Fail", ORT_ARENA, "Failed to allocate memory for requested buffer of size 419430400"),
     ("RuntimeException", ORT_CUDA, "CUDA failure 2: out of memory"),
     ("RuntimeException", ORT_CUDNN, "CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED")],
    ids=["arena", "cuda", "cudnn9"],
)  # fmt: skip
def test_onnxruntime_running_out_of_memory_is_one_line_with_advice(kind, said, gist, tmp_path, capsys, pvt_b0_weights, onnxruntime_runs_fail):
    """ONNX Runtime's out-of-memory (its own exception class, the allocator's words in a status message) was a
    traceback, exit 1; now the one line torch's gets, exit 2, with the gist of what ONNX Runtime said."""
    onnxruntime_runs_fail.append((kind, said))
    picture = make_images(tmp_path / "pictures", n=1)[0]
    out = tmp_path / "out.png"
    argv = ["image", str(picture), "-o", str(out), "--weights", str(pvt_b0_weights), "--resolution", "64",
            "--device", "cpu", "--backend", "onnxruntime", "--precision", "fp32", "-q"]  # fmt: skip
    assert _one_error(argv, capsys, out) == [f"birefvid: error: cpu ran out of memory running the model on 1 frame at 64x64 ({gist}); "
                                             "try freeing the machine's memory (closing what else runs)"]  # fmt: skip


def test_onnxruntime_running_out_of_memory_as_its_session_loads_the_weights_is_the_loading_line(tmp_path, capsys, pvt_b0_weights, monkeypatch):
    """An ONNX Runtime session puts the model's weights on its device as it is made (``process`` makes it before the
    first frame, with the export): out of memory there is the model's load, said with the load's advice; it was a
    traceback, exit 1, and on CUDA 'ONNX Runtime could not start', which hid that a smaller model would fit."""
    ort = pytest.importorskip("onnxruntime")
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail

    class NoRoomForTheWeights(ort.InferenceSession):
        def __init__(self, *args, **kwargs):
            raise Fail("[ONNXRuntimeError] : 1 : FAIL : /onnxruntime_src/onnxruntime/core/framework/bfc_arena.cc:360 void* "
                       "onnxruntime::BFCArena::AllocateRawInternal(size_t, bool, onnxruntime::Stream*) Failed to allocate memory "
                       "for requested buffer of size 1048576")  # fmt: skip

    monkeypatch.setattr(ort, "InferenceSession", NoRoomForTheWeights)
    video = tmp_path / "in.mp4"
    make_video(video, n_frames=2, with_audio=False)
    out = tmp_path / "out.mkv"
    argv = ["process", str(video), "-o", str(out), "--weights", str(pvt_b0_weights), "--resolution", "64",
            "--device", "cpu", "--backend", "onnxruntime", "--precision", "fp32", "-q"]  # fmt: skip
    assert _one_error(argv, capsys, out) == ["birefvid: error: cpu ran out of memory loading the model pvt_b0_seeded.pth (Failed to "
                                             "allocate memory for requested buffer of size 1048576); try freeing the machine's memory "
                                             "(closing what else runs)"]  # fmt: skip


def test_train_out_of_memory_is_one_line_that_says_what_fits_and_that_the_checkpoint_is_kept(tmp_path, capsys, request):
    """``train`` ended in torch's traceback, exit 1, when the device was out of memory (the model's move to it, or a
    step's activations): now one line with what makes training fit, and where a checkpoint is, that it is kept."""
    out = tmp_path / "run"
    argv = ["train", "--data", "scenes", "--scenes", "2", "-o", str(out), "--size", "64", "--batch-size", "2",
            "--backbone", "pvt_v2_b0", "--device", "cpu", "--checkpoint-every", "1", "-q"]  # fmt: skip
    assert main([*argv, "--steps", "1"]) == 0  # a run that fits leaves its checkpoint
    capsys.readouterr()
    request.getfixturevalue("weights_do_not_fit")  # from now on
    assert main([*argv, "--steps", "2", "--resume", "--batch-size", "4"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        "birefvid: error: cpu ran out of memory training at 64px, 4 images a step (CUDA out of memory. Tried to allocate 20.00 MiB. "
        "GPU 0 has a total capacity of 3.81 GiB of which 12.19 MiB is free); try --batch-size 2 or a smaller --size; "
        f"{out / 'last.pt'} is kept: --resume goes on from it, at the same --batch-size"
    ]
    assert (out / "last.pt").exists()


def test_live_out_of_memory_mid_run_keeps_the_recording_and_says_where(tmp_path):
    """The model failing mid-run (the GPU's memory taken by another process) discarded a live run's recording, an
    hour of a camera lost to a clean failure; it is kept now, as a lost source's is, and the error line names it."""
    import json

    import av

    from birefvid.api import build_live_job, run_live
    from birefvid.runtime import Segmenter
    from birefvid.runtime.segmenter import DeviceOutOfMemory

    calls = []

    def tenth_frame_runs_out():
        calls.append(1)
        if len(calls) >= 10:
            torch.empty(1 << 55, dtype=torch.uint8)  # torch's own allocator failure, real

    source, recording = tmp_path / "in.mp4", tmp_path / "rec.mp4"
    make_video(source, n_frames=40, with_audio=False)
    seg = Segmenter(module=_Allocates(tenth_frame_runs_out), device="cpu", precision="fp32", backend="torch", resolution=64)
    with pytest.raises(DeviceOutOfMemory) as raised:
        run_live(build_live_job(str(source), [str(recording)], realtime=True), segmenter=seg)
    said = str(raised.value)
    assert said.startswith("cpu ran out of memory running the model on 1 frame at 64x64")
    assert re.search(rf"; the run stopped after \d+ frames and kept what was recorded before it: {re.escape(str(recording))}$", said), said
    shown = raised.value.report["frames_shown"]
    assert f"; the run stopped after {shown} frames" in said
    with av.open(str(recording)) as kept:
        # a finished file that plays, not a half-written one, and it holds every picture shown: the model's stop
        # left the sink thread's queue unsent, and the recording was one picture short of the count it was kept with
        assert sum(1 for _ in kept.decode(video=0)) == shown >= 1
    assert raised.value.report["ended_by"] == "failed" and str(recording) in json.dumps(raised.value.report)
