"""Engines: normalised frames (N, 3, h, w) float32 in, logits (N, 1, h, w) out, for one backend and precision.

The ONNX engines compile one static-shape model per input size (a video has one size; an image
folder may have a few) and run a batch frame by frame: on a CPU a bigger tensor buys nothing. The
OpenVINO engine runs the frames of a batch at once instead, each on its own single-threaded
stream (see ``OpenVinoEngine``), which is how the file pipeline feeds it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

import numpy as np
import torch

from ..caller import warn
from ..errors import NOTICE, ConfigError, option
from .export import cached_onnx, onnx_cached, share_blobs, weights_digest, writable_cache_dir
from .memory import is_out_of_memory
from .ov_core import openvino_core

log = logging.getLogger(__name__)

THROUGHPUT_STREAMS = 2  # OpenVINO streams a batch runs on (see OpenVinoEngine)


class Engine(Protocol):
    """What the Segmenter calls: ``engine(x)`` -> logits; ``fp32()`` -> the same engine in fp32.

    Engines may also have ``prepare(size, frames)`` (get ready for input (h, w) now) and
    ``frames_in_flight(size)`` (how many frames a call runs at once; the file pipeline's batch).
    """

    backend: str
    precision: str
    input_dtype: torch.dtype
    export_seconds: float  # time spent exporting to ONNX by this engine so far (0 for torch)

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def fp32(self) -> "Engine": ...


class TorchEngine:
    """Eager PyTorch. On CPU, bf16 runs under autocast (ops that lose accuracy stay fp32); elsewhere the weights are cast."""

    backend = "torch"
    export_seconds = 0.0

    def __init__(self, model: torch.nn.Module, device: torch.device, precision: str) -> None:
        self.device, self.precision = device, precision
        self.autocast = device.type == "cpu" and precision == "bf16"
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        self.model = model.to(device, torch.float32 if self.autocast else dtype).eval()
        self.input_dtype = torch.float32 if self.autocast else dtype

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        context = torch.autocast("cpu", dtype=torch.bfloat16) if self.autocast else contextlib.nullcontext()
        with context:
            return self.model(x)

    def fp32(self) -> "TorchEngine":
        import copy

        return TorchEngine(copy.deepcopy(self.model).float(), self.device, "fp32")


class CompiledTorchEngine(TorchEngine):
    """PyTorch through ``torch.compile`` (TorchInductor, static shapes): one compiled graph per input shape.

    For GPUs, where Inductor fuses the decoder's elementwise ops and a video keeps one shape; on
    a CPU OpenVINO is faster and compiling BiRefNet takes minutes, so ``auto`` never picks it.
    Compile time is counted in ``export_seconds`` (``prepare`` compiles outside any timing). A
    batch smaller than one already compiled for its frame size (a video's last frames) is padded
    to it, so the tail does not compile again. If compiling fails (no C++ compiler, an op Inductor
    cannot lower), the engine says so once and runs eager PyTorch from then on.
    """

    backend = "torch-compile"

    def __init__(self, model: torch.nn.Module, device: torch.device, precision: str, compiler: Any = "inductor") -> None:
        super().__init__(model, device, precision)
        if device.type == "cpu":  # Inductor's C++ toolchain probe warns "No CUDA runtime is found", which misleads on a CPU
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        self.export_seconds = 0.0
        self._compiled: Optional[Callable[[torch.Tensor], torch.Tensor]] = torch.compile(self.model, backend=compiler, dynamic=False)
        self.compiled_batches: dict[tuple[Any, ...], int] = {}  # (h, w, dtype) -> the batch compiled for it

    def prepare(self, size: tuple[int, int], frames: int = 1) -> None:
        """Compile for ``frames`` frames of input (h, w) now."""
        with torch.inference_mode():
            self(torch.zeros(frames, 3, *size, device=self.device, dtype=self.input_dtype))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._compiled is None:
            return super().__call__(x)
        x = x.contiguous()  # one memory layout: a channels-last input would fail the compiled graph's guards and compile again
        key = (int(x.shape[2]), int(x.shape[3]), x.dtype)
        n, batch = x.shape[0], self.compiled_batches.get(key, 0)
        if 0 < n < batch:  # pad to the compiled batch rather than compile the small one
            x = torch.cat([x, x.new_zeros(batch - n, *x.shape[1:])])
        start = time.perf_counter()
        try:
            context = torch.autocast("cpu", dtype=torch.bfloat16) if self.autocast else contextlib.nullcontext()
            with context:
                out = self._compiled(x)
        except Exception as exc:  # noqa: BLE001 - any compile failure; the eager run below re-raises input errors
            out = super().__call__(x)
            self._compiled = None
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            warn(f"torch.compile failed ({reason}); running eager PyTorch instead", RuntimeWarning)
            return out[:n]
        if n > batch:
            self.compiled_batches[key] = n
            self.export_seconds += time.perf_counter() - start
        return out[:n]


class _ExportedEngine:
    """Shared part of the ONNX engines: export per input shape (cached on disk), compile once, run per frame."""

    backend = ""
    input_dtype = torch.float32

    def __init__(self, model: torch.nn.Module, device: torch.device, precision: str) -> None:
        self.model = model.to("cpu", torch.float32).eval()  # the export source; stays fp32
        self.device, self.precision = device, precision
        self.export_seconds = 0.0
        self._runs: dict[tuple[int, int], Callable[[Any], Any]] = {}
        self._exports: dict[tuple[int, int], Path] = {}
        self._fresh: set[str] = set()  # exports written by this run: their first compile cannot be cached
        self._digest: Optional[str] = None  # of the weights, hashed once: the engine keeps what it exported and compiled

    def _weights(self) -> str:
        """The export key's digest of the model's weights (``weights_digest``), hashed at the first ask: live start-up
        asks about several sizes, and each hash takes 0.16 s (44M parameters) to ~0.8 s (``general``)."""
        if self._digest is None:
            self._digest = weights_digest(self.model)
        return self._digest

    def _compile(self, onnx_path: str) -> Callable[[Any], Any]:
        raise NotImplementedError

    def prepare(self, size: tuple[int, int], frames: int = 1) -> None:
        """Export and compile for input (h, w) now, so that timing and latency exclude it.

        ``frames`` is the batch the caller will send (engines that run a batch differently from
        one frame compile for it too).
        """
        if size not in self._runs:
            self._runs[size] = self._compile(str(self._onnx(size)))

    def exported(self, size: tuple[int, int]) -> bool:
        """True when input (h, w) needs no export (done in this run or cached): live mode prefers such a size."""
        return size in self._exports or onnx_cached(self.model, size, digest=self._weights())

    def _onnx(self, size: tuple[int, int]) -> Path:
        """The export for input (h, w), from the cache or exported now (its time added to ``export_seconds``)."""
        if size not in self._exports:
            path, seconds = cached_onnx(self.model, size, digest=self._weights())
            self.export_seconds += seconds or 0.0
            if seconds is not None:
                self._fresh.add(str(path))
            self._exports[size] = path
        return self._exports[size]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        size = (int(x.shape[2]), int(x.shape[3]))
        self.prepare(size)
        run = self._runs[size]
        frames = x.detach().to("cpu", torch.float32).contiguous().numpy()
        out = [torch.from_numpy(run(frames[i : i + 1])) for i in range(frames.shape[0])]
        return torch.cat(out).to(x.device)

    def fp32(self) -> "_ExportedEngine":
        return type(self)(self.model, self.device, "fp32")


class OpenVinoEngine(_ExportedEngine):
    """OpenVINO on the CPU, fp32 or bf16 (``INFERENCE_PRECISION_HINT``); compiled blobs are cached too.

    One frame runs under the LATENCY hint: all cores on that frame (live mode, images). A batch
    runs under the THROUGHPUT hint: OpenVINO splits the cores into two streams (single-threaded
    on a 2-core CPU) and each frame of the batch runs on one (the file pipeline sends batches of 2
    for models where that pays, see ``Segmenter.file_batch_size``). A frame on several threads
    spends part of its time waiting for the slowest one; measured here (bf16, 2 cores, model
    alone) with ``tiny`` at 256²: one frame on 2 threads 90-119 ms and 180-236 ms of CPU, two
    frames on two streams 83-88 ms and 163-174 ms of CPU a frame; Swin-T at 512²: 0.54-0.55 s a
    frame on two streams, 0.58-0.72 s one at a time.
    """

    backend = "openvino"

    def __init__(self, model: torch.nn.Module, device: torch.device, precision: str) -> None:
        super().__init__(model, device, precision)
        self._queues: dict[tuple[int, int], Any] = {}  # size -> (AsyncInferQueue, its length)

    def _compiled(self, onnx_path: str, hint: str) -> Any:
        blobs = writable_cache_dir("openvino")
        # the cache folder goes with each compile, not on the process's one Core (ov_core): it is this run's
        config: dict[str, Any] = {"CACHE_DIR": str(blobs), "INFERENCE_PRECISION_HINT": "bf16" if self.precision == "bf16" else "f32",
                                  "PERFORMANCE_HINT": hint}
        from ..runtime.cores import affinity_cores, usable_cores  # here: runtime imports this package

        cores = usable_cores()
        if cores < affinity_cores():  # a container's CPU quota: OpenVINO would start a thread per host core
            config["INFERENCE_NUM_THREADS"] = cores
        if hint == "THROUGHPUT":
            # two streams at most, each with half the cores: each stream holds a frame's activations
            # (~200 MB for Swin-T at 512², ~4x that at 1024²), and OpenVINO's own choice grows with
            # the core count
            config["NUM_STREAMS"] = THROUGHPUT_STREAMS
        size = next((f"{w}x{h}" for (h, w), path in self._exports.items() if str(path) == onnx_path), "its size")
        with CompileNotice(size, blobs, first=onnx_path in self._fresh) as notice:
            compiled = openvino_core().compile_model(onnx_path, "CPU", config)
            notice.loaded_from_cache = _loaded_from_cache(compiled)
        share_blobs(blobs)  # the blob it may just have written
        return compiled

    def _compile(self, onnx_path: str) -> Callable[[Any], Any]:
        request = self._compiled(onnx_path, "LATENCY").create_infer_request()

        def run(frame: Any) -> Any:
            return request.infer({0: frame})[0].copy()  # the request reuses its output buffer

        return run

    def frames_in_flight(self, size: tuple[int, int]) -> int:
        """How many frames of input (h, w) a call runs at once: the throughput streams (compiled now), or 1 on a 1-core CPU."""
        from ..runtime.cores import usable_cores

        if usable_cores() < THROUGHPUT_STREAMS:
            return 1
        return self._queue(size)[1]

    def _queue(self, size: tuple[int, int]) -> tuple[Any, int]:
        """The throughput-compiled model's request queue for input (h, w), and how many requests it has."""
        if size not in self._queues:
            import openvino as ov

            compiled = self._compiled(str(self._onnx(size)), "THROUGHPUT")
            jobs = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
            self._queues[size] = (ov.AsyncInferQueue(compiled, jobs), jobs)
        return self._queues[size]

    def prepare(self, size: tuple[int, int], frames: int = 1) -> None:
        if frames > 1:
            self._queue(size)
        else:
            super().prepare(size)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        size = (int(x.shape[2]), int(x.shape[3]))
        if x.shape[0] == 1 and size not in self._queues:  # a lone frame, unless batches run already (a video's last frame)
            return super().__call__(x)
        queue, _ = self._queue(size)
        frames = x.detach().to("cpu", torch.float32).contiguous().numpy()
        out: list[Any] = [None] * frames.shape[0]

        def done(request: Any, index: int) -> None:
            out[index] = request.get_output_tensor(0).data.copy()  # the request is reused for the next frame

        queue.set_callback(done)
        for i in range(frames.shape[0]):
            queue.start_async({0: frames[i : i + 1]}, i)
        queue.wait_all()
        if any(o is None for o in out):
            raise RuntimeError("OpenVINO returned no output for a frame of the batch")
        return torch.from_numpy(np.concatenate(out)).to(x.device)


class OnnxRuntimeEngine(_ExportedEngine):
    """ONNX Runtime in fp32: CPU, or CUDA (TensorRT first when its provider is installed)."""

    backend = "onnxruntime"

    def _compile(self, onnx_path: str) -> Callable[[Any], Any]:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = torch.get_num_threads()
        session = self._session(ort, onnx_path, options)
        name = session.get_inputs()[0].name
        quiet = ort.RunOptions()
        # a failed run is raised, and said once by whoever catches it: ONNX Runtime's own log printed it first in
        # red (an out-of-memory was that line, then birefvid's)
        quiet.log_severity_level = 4

        def run(frame: Any) -> Any:
            return session.run(None, {name: frame}, quiet)[0]

        return run

    def _session(self, ort: Any, onnx_path: str, options: Any) -> Any:
        """The session; on CUDA one that really runs there, else a ConfigError.

        ONNX Runtime drops a GPU provider it cannot start (onnxruntime-gpu without the CUDA or cuDNN
        libraries it was built for, no driver) with a line in its log and runs the model on the CPU
        (``session.get_providers()`` says ``['CPUExecutionProvider']``; microsoft/onnxruntime#13414,
        #23372), and a TensorRT provider that fails makes its own fallback print to stdout and retry
        on the CPU (#27006): a --device cuda run went on at CPU speed, reported as cuda.
        """
        providers = self._providers(ort)
        if self.device.type != "cuda":
            return ort.InferenceSession(onnx_path, options, providers=providers)
        names = [p if isinstance(p, str) else p[0] for p in providers]
        try:
            session = ort.InferenceSession(onnx_path, options, providers=providers, enable_fallback=0)
        except Exception as exc:  # noqa: BLE001 - ORT's own exception classes derive from Exception only
            if is_out_of_memory(exc):  # the weights do not fit the GPU: the Segmenter says so, with what makes them fit
                raise
            if "TensorrtExecutionProvider" not in names:
                raise ConfigError(f"ONNX Runtime could not start on {self.device}: {_first_line(exc)}") from exc
            warn(f"ONNX Runtime's TensorRT provider failed ({_first_line(exc)}); using its CUDA provider", RuntimeWarning)
            providers = [p for p, n in zip(providers, names) if n != "TensorrtExecutionProvider"]
            session = ort.InferenceSession(onnx_path, options, providers=providers, enable_fallback=0)
        active = session.get_providers()
        if not {"TensorrtExecutionProvider", "CUDAExecutionProvider"} & set(active):
            raise ConfigError(
                f"ONNX Runtime could not start its CUDA provider on {self.device} and would run on the CPU "
                "(its log above says why: usually a CUDA or cuDNN library onnxruntime-gpu needs is missing); "
                f"install them, or use {option('backend', 'torch')}"
            )
        return session

    def _providers(self, ort: Any) -> list[Any]:
        if self.device.type != "cuda":
            return ["CPUExecutionProvider"]
        available = ort.get_available_providers()
        providers: list[Any] = []
        gpu = self.device.index or 0
        if "TensorrtExecutionProvider" in available:  # written against ORT's documented options; untested here (no GPU)
            trt_cache = str(writable_cache_dir("tensorrt"))
            # device_id defaults to 0 for TensorRT too: without it, --device cuda:1 would build and run its engines on GPU 0
            providers.append(("TensorrtExecutionProvider", {"device_id": gpu, "trt_engine_cache_enable": True, "trt_engine_cache_path": trt_cache}))
        if "CUDAExecutionProvider" in available:
            providers.append(("CUDAExecutionProvider", {"device_id": gpu}))
        return providers + ["CPUExecutionProvider"]


class CompileNotice:
    """Says that OpenVINO compiles a model exported by this run, a wait of 3-10 s on 2 cores (tiny at 256x256; more
    for bigger models) that said nothing between the export's lines and the first frame; it ends with its time.
    Only such a compile is said: no compiled blob can exist for a file just written, while for a cached export
    nothing tells beforehand whether OpenVINO's blob is there (a notice after a delay also named cached loads,
    which take over 2 s on a loaded machine, as first compiles). A blob missing beside a cached export (a new
    precision, another command's batch mode, a cleared cache) is compiled without a line, as before."""

    def __init__(self, size: str, blobs: Path, first: bool) -> None:
        self.size, self.blobs, self.first = size, blobs, first
        self.loaded_from_cache = False  # set by the caller from the compiled model
        self._start = 0.0

    def __enter__(self) -> "CompileNotice":
        self._start = time.perf_counter()
        if self.first:
            log.warning("compiling the model for OpenVINO at %s (once per size; cached in %s)", self.size, self.blobs,
                        extra=NOTICE)  # fmt: skip
        return self

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        if self.first and kind is None and not self.loaded_from_cache:
            log.warning("compiled in %.1f s", time.perf_counter() - self._start, extra=NOTICE)


def _loaded_from_cache(compiled: Any) -> bool:
    """Whether OpenVINO loaded ``compiled`` from a cached blob rather than compiling it (False where it cannot say)."""
    try:
        return bool(compiled.get_property("LOADED_FROM_CACHE"))
    except Exception:  # noqa: BLE001 - an older OpenVINO or a plugin without the property
        return False


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


ENGINES: dict[str, type] = {"torch": TorchEngine, "torch-compile": CompiledTorchEngine, "openvino": OpenVinoEngine, "onnxruntime": OnnxRuntimeEngine}


def open_engine(model: torch.nn.Module, backend: str, precision: str, device: torch.device) -> Engine:
    """The engine for an already resolved backend and precision (see ``choice``)."""
    engine: Engine = ENGINES[backend](model, device, precision)
    log.info("engine %s %s on %s", backend, precision, device)
    return engine
