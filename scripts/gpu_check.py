"""Every CUDA path of birefvid, once, on a small generated clip with the shipped ``tiny`` model.

One line per path: PASS / FAIL / SKIP, its speed, and how far it is from fp32 on the CPU (the
reference: the same model, the same frames). For a machine with an NVIDIA GPU::

    python scripts/gpu_check.py                    # cuda (and cuda:1 when there are two GPUs)
    python scripts/gpu_check.py --json gpu.json    # the figures as JSON too
    python scripts/gpu_check.py --device cpu       # the same checks on the CPU (the script's own test)

Paths: pick_device's errors; Transfer (pinned uploads on a copy stream, compute stream, events,
pinned downloads) under a one-batch-ahead stress, the compute stream waiting for the default
stream's work, and a wait for a download that sleeps rather than spins; the decoder's deformable convolution in fp16 against fp32; the Segmenter in fp32, fp16 (the CUDA default)
and bf16; torch.compile; the file pipeline for each output kind (mask, alpha ProRes, composite,
blur, green with guided upsampling, matte shaping and flow smoothing), in fp32 and at the default
precision; a 10-bit ProRes source through the 16-bit compositing path; live mode (latency budget
calibration, model thread, recording); NVENC H.264 and HEVC; ONNX Runtime's CUDA/TensorRT providers;
a few fp16 training steps (autocast, GradScaler, pinned DataLoader); device memory over 200 model
calls and two file runs (no growth); ``cuda:1``. Pass marks: |alpha - the CPU's| at the 99.9th
percentile within 0.01 (fp32), 0.05 (fp16), 0.1 (bf16), and on average a tenth of that; pictures
within 1 level on average and 8 levels at the 99.9th percentile.

The run stops starting paths after ``--budget`` seconds (default 270, so a run stays under 5
minutes on one GPU; the skipped ones say so). Exit status 1 when a path failed, else 0.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Optional

import av
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from birefvid.api import process_video  # noqa: E402
from birefvid.benchmark.clip import scene_frames, write_scene_clip  # noqa: E402
from birefvid.runtime import Segmenter  # noqa: E402

# |alpha - fp32 CPU alpha| allowed at the 99.9th percentile and on average (a few edge pixels of low precision stray further)
ALPHA_TOLERANCE = {"fp32": (0.01, 0.001), "fp16": (0.05, 0.005), "bf16": (0.1, 0.01)}
LEVELS_MEAN, LEVELS_P999 = 1.0, 8.0  # pictures: 8-bit levels (10-bit levels for the deep path)


class Skip(Exception):
    """A path that cannot run here (no second GPU, no NVENC, no onnxruntime-gpu...)."""


@dataclass
class Context:
    """What every path shares: the device, the clip and the CPU fp32 reference."""

    device: str
    work: Path
    clip: Path
    frames: torch.Tensor  # uint8 (N, 3, H, W)
    cpu_outputs: dict[str, np.ndarray] = field(default_factory=dict)

    @cached_property
    def reference(self) -> np.ndarray:
        """CPU fp32 alphas (N, H, W), made on first use: a model load and a pass on the CPU that `--only` paths
        which compare with nothing (transfer, the pipelines, against their own CPU run) do not wait for."""
        return reference_alphas(self.frames)

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")


# the GPU under test (``--device``): torch.cuda.synchronize() and memory_allocated() without a device ask about the
# current one, cuda:0, so a run with --device cuda:1 timed without waiting for its GPU and measured cuda:0's memory
DEVICE: Optional[torch.device] = None


def sync() -> None:
    """Wait for queued GPU work on the device under test, so timings count it."""
    if DEVICE is not None and DEVICE.type == "cuda" and torch.cuda.is_initialized():
        torch.cuda.synchronize(DEVICE)


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Seconds per call over ``repeat`` calls (after one warm-up), and the last result."""
    out = fn()
    sync()
    start = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    sync()
    return (time.perf_counter() - start) / repeat, out


def decode(path: Path, fmt: str) -> np.ndarray:
    """Every frame of a video as (N, H, W, C) or (N, H, W) arrays in ``fmt``."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format=fmt) for f in container.decode(video=0)])


def levels(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Mean, 99.9th percentile and max absolute difference in sample levels."""
    d = np.abs(a.astype(np.int64) - b.astype(np.int64))
    return {"mean": round(float(d.mean()), 3), "p999": float(np.percentile(d, 99.9)), "max": int(d.max())}


def alpha_figures(alphas: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """How far alphas are from the reference: 99.9th percentile, mean and max."""
    d = np.abs(alphas.astype(np.float64) - reference)
    return {"p999": round(float(np.percentile(d, 99.9)), 5), "mean": round(float(d.mean()), 6), "max": round(float(d.max()), 5)}


def check_alphas(alphas: np.ndarray, reference: np.ndarray, precision: str) -> dict[str, float]:
    """``alpha_figures``, raising when they are over the precision's tolerance."""
    figures = alpha_figures(alphas, reference)
    p999, mean = ALPHA_TOLERANCE[precision]
    if figures["p999"] > p999 or figures["mean"] > mean:
        raise AssertionError(f"alpha vs fp32 CPU {figures}, allowed p99.9 {p999}, mean {mean}")
    return figures


def close_pictures(d: dict[str, float]) -> bool:
    return d["mean"] <= LEVELS_MEAN and d["p999"] <= LEVELS_P999


def need_cuda(ctx: Context) -> None:
    if not ctx.cuda:
        raise Skip("CUDA only")


# --- paths -------------------------------------------------------------------------------------


def check_device_errors(ctx: Context) -> dict[str, Any]:
    """pick_device: cuda:N past the GPUs present is a ConfigError, not a CUDA traceback later."""
    from birefvid.errors import ConfigError
    from birefvid.runtime.device import pick_device

    need_cuda(ctx)
    count = torch.cuda.device_count()
    try:
        pick_device(f"cuda:{count}")
    except ConfigError:
        pass
    else:
        raise AssertionError(f"cuda:{count} was accepted with {count} GPU(s)")
    return {"gpus": count, "name": torch.cuda.get_device_name(0), "capability": "%d.%d" % torch.cuda.get_device_capability(0)}


def check_transfer(ctx: Context) -> dict[str, Any]:
    """Upload batch N+1 while N computes and downloads, dropping references as the pipeline does; every byte checked."""
    from birefvid.runtime.transfer import Transfer

    transfer = Transfer(torch.device(ctx.device))
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, 256, (4, 3, 360, 640), dtype=torch.uint8, generator=gen) for _ in range(8)]
    rounds, results, pending = 64, [], None
    start = time.perf_counter()
    for i in range(rounds + 1):
        upload = transfer.upload(batches[i % 8]) if i < rounds else None  # the next batch copies meanwhile
        if pending is not None:
            with transfer.compute():
                x = pending[0].ready()
                y = (255 - x).flip(3).contiguous()  # a kernel that reads every byte
                results.append((pending[1], transfer.download(y)))
            del x, y
        pending = None if upload is None else (upload, i % 8)
        if len(results) > 2:  # host reads lag two batches, as the encoder does
            index, host = results.pop(0)
            _check_round(host, batches[index])
    for index, host in results:
        _check_round(host, batches[index])
    seconds = time.perf_counter() - start
    megabytes = rounds * batches[0].numel() * 2 / 2**20
    figures = {"MiB_per_s": round(megabytes / seconds), "rounds": rounds}
    if ctx.cuda:
        figures["pinned"] = bool(transfer.download(torch.zeros(1, device=ctx.device)).tensor.is_pinned())
        if not figures["pinned"]:
            raise AssertionError("downloads are not in pinned memory")
    return figures


def check_stream_order(ctx: Context) -> dict[str, Any]:
    """Work queued on the default stream (a module cast in place, a background converted) is done before
    Transfer's compute stream reads it: torch's own streams do not wait for the default one."""
    from birefvid.runtime.transfer import Transfer

    need_cuda(ctx)
    device = torch.device(ctx.device)
    transfer = Transfer(device)
    x = torch.zeros(16, 1024, 1024, device=device)
    torch.cuda.synchronize(device)
    torch.cuda._sleep(int(5e8))  # the default stream busy for a fraction of a second ...
    x.fill_(1.0)  # ... so this write is still queued behind it
    with transfer.compute():
        total = x.sum()
    torch.cuda.synchronize(device)
    if int(total.item()) != x.numel():
        raise AssertionError(f"the compute stream read the tensor before the default stream wrote it ({int(total.item())} of {x.numel()})")
    return {"elements": x.numel()}


def check_download_wait(ctx: Context) -> dict[str, Any]:
    """The encoder's wait for a download sleeps rather than spinning a core: its thread's CPU time while the GPU is
    busy stays a fraction of the wait (Transfer.download's event is blocking: cudaEventBlockingSync)."""
    from birefvid.runtime.transfer import Transfer

    need_cuda(ctx)
    transfer = Transfer(torch.device(ctx.device))
    x = torch.zeros(4, 3, 64, 64, dtype=torch.uint8, device=ctx.device)
    with transfer.compute():
        torch.cuda._sleep(int(5e8))  # the compute stream busy for a fraction of a second before the copy
        host = transfer.download(x)
    cpu, wall = time.thread_time(), time.perf_counter()
    host.numpy()
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    if wall > 0.05 and cpu > 0.5 * wall:
        raise AssertionError(f"waiting for a download spun the CPU: {cpu:.2f} s of CPU in {wall:.2f} s")
    return {"wait_s": round(wall, 3), "cpu_s": round(cpu, 3)}


def check_deform_fp16(ctx: Context) -> dict[str, Any]:
    """The decoder's deformable convolution in an fp16 model samples where fp32 does, also past 256 px
    (torchvision's fp16 kernel computes the tap positions in fp16)."""
    from birefvid.models.deform import modulated_deform_conv2d

    need_cuda(ctx)
    width = 1100
    x = (torch.arange(width, device=ctx.device) % 2).float().view(1, 1, 1, width)
    offset = torch.zeros(1, 2, 1, width, device=ctx.device)
    offset[:, 1] = 0.3
    weight, mask = torch.ones(1, 1, 1, 1, device=ctx.device), torch.ones(1, 1, 1, width, device=ctx.device)
    exact = modulated_deform_conv2d(x, offset, weight, 0, mask)
    half = modulated_deform_conv2d(x.half(), offset.half(), weight.half(), 0, mask.half()).float()
    worst = float((half - exact).abs().max())
    if worst > 0.01:
        raise AssertionError(f"fp16 deformable taps are {worst:.3f} off fp32's (positions rounded in fp16)")
    return {"max_vs_fp32": round(worst, 5)}


def _check_round(host: Any, batch: torch.Tensor) -> None:
    expected = (255 - batch).flip(3).numpy()
    if not np.array_equal(host.numpy(), expected):
        raise AssertionError("a round trip came back with other bytes (a copy raced its buffer)")


def check_precision(precision: str) -> Callable[[Context], dict[str, Any]]:
    def run(ctx: Context) -> dict[str, Any]:
        """The Segmenter in one precision: fps in batches of 4 and the largest alpha difference to fp32 on the CPU."""
        if precision == "fp16":
            need_cuda(ctx)
        if precision == "bf16" and ctx.cuda and not torch.cuda.is_bf16_supported():
            raise Skip("this GPU has no bf16")
        seg = Segmenter("tiny", device=ctx.device, precision=precision, backend="torch")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            seconds, alphas = timed(lambda: np.concatenate([seg(ctx.frames[i : i + 4]) for i in range(0, len(ctx.frames), 4)]), 3)
        figures: dict[str, Any] = {"fps": round(len(ctx.frames) / seconds, 1)}
        if any("non-finite" in str(w.message) for w in caught):
            figures["fp32_recomputed"] = True
        figures["alpha_vs_cpu"] = check_alphas(alphas, ctx.reference, precision)
        return figures

    return run


def check_compile(ctx: Context) -> dict[str, Any]:
    """torch.compile (Inductor, static shapes) at the default precision, batch 4; compile time apart."""
    need_cuda(ctx)
    seg = Segmenter("tiny", device=ctx.device, backend="torch-compile")
    h, w = ctx.frames.shape[2:]
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seg.prepare(h, w, 4)
        compile_s = time.perf_counter() - start
        seconds, alphas = timed(lambda: np.concatenate([seg(ctx.frames[i : i + 4]) for i in range(0, len(ctx.frames), 4)]), 3)
    if any("torch.compile failed" in str(w.message) for w in caught):
        raise AssertionError(f"fell back to eager: {[str(w.message) for w in caught][:1]}")
    return {"fps": round(len(ctx.frames) / seconds, 1), "compile_s": round(compile_s, 1), "precision": seg.precision,
            "alpha_vs_cpu": check_alphas(alphas, ctx.reference, seg.precision)}  # fmt: skip


PIPELINES: dict[str, dict[str, Any]] = {
    "mask": {"kind": "mask", "ext": ".mkv", "fmt": "gray"},
    "alpha": {"kind": "alpha", "ext": ".mov", "fmt": "rgba"},
    "composite": {"kind": "composite", "ext": ".mkv", "fmt": "rgb24", "background": "#3050a0", "codec": "ffv1"},
    "blur": {"kind": "blur", "ext": ".mkv", "fmt": "rgb24", "codec": "ffv1"},
    "green": {"kind": "green", "ext": ".mkv", "fmt": "rgb24", "codec": "ffv1", "upsample": "guided", "threshold": None,
              "grow": 2, "feather": 1.5, "min_area": 0.5, "smooth": "flow"},
}


def _pipeline_output(ctx: Context, name: str, device: str, precision: str) -> tuple[np.ndarray, float]:
    spec = dict(PIPELINES[name])
    ext, fmt = spec.pop("ext"), spec.pop("fmt")
    spec.setdefault("smooth", "lookahead")
    out = ctx.work / f"{name}-{device.replace(':', '')}-{precision}{ext}"
    report = process_video(ctx.clip, out, model="tiny", device=device, precision=precision, backend="torch", overwrite=True, **spec)
    return decode(out, fmt), report["fps"]


def check_pipeline(name: str, precision: str = "fp32") -> Callable[[Context], dict[str, Any]]:
    def run(ctx: Context) -> dict[str, Any]:
        """process_video on the device (streams, pinned memory, compositing there) against the same job on the CPU."""
        if precision != "fp32":
            need_cuda(ctx)
        if name not in ctx.cpu_outputs:
            ctx.cpu_outputs[name], _ = _pipeline_output(ctx, name, "cpu", "fp32")
        pictures, fps = _pipeline_output(ctx, name, ctx.device, precision)
        if pictures.shape != ctx.cpu_outputs[name].shape:
            raise AssertionError(f"{pictures.shape} frames against the CPU's {ctx.cpu_outputs[name].shape}")
        d = levels(pictures, ctx.cpu_outputs[name])
        if not close_pictures(d):
            raise AssertionError(f"levels from the CPU's output: {d}")
        return {"fps": fps, "levels_vs_cpu": d}

    return run


def check_deep(ctx: Context) -> dict[str, Any]:
    """A 10-bit ProRes source into ProRes 4444: uint16 pictures go up, are composited in float there and come back uint16."""
    source = ctx.work / "deep.mov"
    if not source.exists():
        with av.open(str(source), "w") as container:
            stream = container.add_stream("prores_ks", rate=25)
            n, _, h, w = ctx.frames.shape
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv422p10le"
            for image in ctx.frames[:16].permute(0, 2, 3, 1).numpy():
                deep = (image.astype(np.uint16) * 257) ^ np.uint16(0x25)  # low bits an 8-bit path would lose
                for packet in stream.encode(av.VideoFrame.from_ndarray(deep, format="rgb48le")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    outputs = {}
    for device in ("cpu", ctx.device):
        out = ctx.work / f"deep-{device.replace(':', '')}.mov"
        report = process_video(source, out, model="tiny", device=device, precision="fp32", backend="torch", smooth="none", overwrite=True)
        if report["resolved"]["bit_depth"] <= 8:
            raise AssertionError(f"ran at {report['resolved']['bit_depth']} bits")
        outputs[device] = (decode(out, "rgba64le") >> 6, report["fps"])  # 10-bit levels
    d = levels(outputs[ctx.device][0], outputs["cpu"][0])
    if not close_pictures(d):
        raise AssertionError(f"10-bit levels from the CPU's output: {d}")
    return {"fps": outputs[ctx.device][1], "levels10_vs_cpu": d}


def check_live(ctx: Context) -> dict[str, Any]:
    """birefvid live on the clip: latency-budget calibration, the model thread on the device, a recording."""
    out, report = ctx.work / "live.mkv", ctx.work / "live.json"
    argv = [sys.executable, "-m", "birefvid.cli", "live", "--source", str(ctx.clip), "--sink", str(out), "--effect", "blur",
            "--model", "tiny", "--device", ctx.device, "--backend", "torch", "--realtime", "--loop", "--duration", "8", "--overwrite",
            "--report", str(report), "-q"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT)
    if done.returncode != 0:
        raise AssertionError(f"exit {done.returncode}: {done.stderr.strip()[-400:]}")
    stats = json.loads(report.read_text()).get("stats", {})
    frames = len(decode(out, "rgb24"))
    if frames == 0 or not stats.get("model_fps"):
        raise AssertionError(f"{frames} frames recorded, model at {stats.get('model_fps')} fps")
    return {"model_fps": stats.get("model_fps"), "frames_recorded": frames, "model_ms_median": stats.get("model_ms_median")}


def check_nvenc(codec: str) -> Callable[[Context], dict[str, Any]]:
    def run(ctx: Context) -> dict[str, Any]:
        """--codec h264_nvenc / hevc_nvenc: every frame encoded and decodable."""
        need_cuda(ctx)
        if codec not in av.codecs_available:
            raise Skip(f"this FFmpeg has no {codec}")
        out = ctx.work / f"{codec}.mp4"
        report = process_video(ctx.clip, out, kind="green", codec=codec, model="tiny", device=ctx.device, backend="torch", overwrite=True)
        frames = len(decode(out, "rgb24"))
        if frames != len(ctx.frames):
            raise AssertionError(f"{frames} frames decoded of {len(ctx.frames)}")
        return {"fps": report["fps"], "bytes": out.stat().st_size}

    return run


def check_onnxruntime(ctx: Context) -> dict[str, Any]:
    """ONNX Runtime on the device: which providers really run (TensorRT, CUDA), fps and the alpha difference."""
    need_cuda(ctx)
    try:
        import onnxruntime as ort
    except ImportError:
        raise Skip("onnxruntime is not installed") from None
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise Skip("this onnxruntime has no CUDA provider (pip install onnxruntime-gpu)")
    seg = Segmenter("tiny", device=ctx.device, backend="onnxruntime")
    h, w = ctx.frames.shape[2:]
    start = time.perf_counter()
    seg.prepare(h, w)
    build_s = time.perf_counter() - start
    size = seg.inference_size(h, w)
    session = ort.InferenceSession(str(seg.engine._onnx(size)), providers=seg.engine._providers(ort))
    active = session.get_providers()
    if active == ["CPUExecutionProvider"]:
        raise AssertionError("ONNX Runtime fell back to the CPU")
    seconds, alphas = timed(lambda: seg(ctx.frames), 2)
    tolerance = "fp32" if "TensorrtExecutionProvider" not in active else "fp16"  # TensorRT may pick fp16 kernels (TF32 too)
    return {"fps": round(len(ctx.frames) / seconds, 1), "providers": active[0], "export_and_build_s": round(build_s, 1),
            "alpha_vs_cpu": check_alphas(alphas, ctx.reference, tolerance)}  # fmt: skip


def check_train(ctx: Context) -> dict[str, Any]:
    """Training steps at the device's mixed precision (fp16 + GradScaler on CUDA), pinned DataLoader batches."""
    from birefvid.data.scenes import SceneDataset
    from birefvid.models.weights import load_pretrained
    from birefvid.train.loop import train

    model, _, _ = load_pretrained("tiny")
    steps = 4
    start = time.perf_counter()
    result = train(model, SceneDataset(8, size=128), steps=steps, batch_size=2, device=ctx.device,
                   precision="fp16" if ctx.cuda else "fp32", show_progress=False, log_every=1)  # fmt: skip
    seconds = time.perf_counter() - start
    if len(result.losses) != steps or not np.isfinite(result.losses).all():
        raise AssertionError(f"losses {result.losses}")
    return {"steps_per_s": round(steps / seconds, 2), "last_loss": round(float(result.losses[-1]), 4)}


def check_memory(ctx: Context) -> dict[str, Any]:
    """Device memory stays flat over 200 model calls and over a second file run (nothing kept per batch or per run)."""
    need_cuda(ctx)
    seg = Segmenter("tiny", device=ctx.device)
    batch = ctx.frames[:4]
    for _ in range(10):
        seg(batch)
    sync()
    early = torch.cuda.memory_allocated(seg.device)
    for _ in range(190):
        seg(batch)
    sync()
    calls_growth = torch.cuda.memory_allocated(seg.device) - early
    runs = []
    for i in range(2):
        process_video(ctx.clip, ctx.work / f"mem{i}.mkv", kind="mask", segmenter=seg, smooth="flow", overwrite=True)
        sync()
        runs.append(torch.cuda.memory_allocated(seg.device))
    figures = {"growth_200_calls_MiB": round(calls_growth / 2**20, 2), "growth_second_run_MiB": round((runs[1] - runs[0]) / 2**20, 2),
               "peak_MiB": round(torch.cuda.max_memory_allocated(seg.device) / 2**20)}  # fmt: skip
    if calls_growth > 2**20 or runs[1] - runs[0] > 2**20:
        raise AssertionError(f"device memory grew: {figures}")
    return figures


def check_second_gpu(ctx: Context) -> dict[str, Any]:
    """--device cuda:1: the model, streams and pinned copies on the second GPU, nothing left on the first."""
    need_cuda(ctx)
    if torch.cuda.device_count() < 2:
        raise Skip("one GPU")
    sync()
    before = torch.cuda.memory_allocated(0)
    seg = Segmenter("tiny", device="cuda:1", precision="fp32")
    alphas = seg(ctx.frames[:4])
    out = ctx.work / "gpu1.mkv"
    report = process_video(ctx.clip, out, kind="mask", segmenter=seg, smooth="none", overwrite=True)
    torch.cuda.synchronize(seg.device)  # its own GPU's work, whichever --device the run checks
    if torch.cuda.memory_allocated(0) != before:
        raise AssertionError(f"{(torch.cuda.memory_allocated(0) - before) / 2**20:.1f} MiB landed on cuda:0")
    return {"fps": report["fps"], "alpha_vs_cpu": check_alphas(alphas, ctx.reference[:4], "fp32")}


PATHS: list[tuple[str, Callable[[Context], dict[str, Any]], float]] = [  # (name, check, seconds it may take on a GPU)
    ("device-errors", check_device_errors, 2),
    ("transfer", check_transfer, 10),
    ("stream-order", check_stream_order, 3),
    ("download-wait", check_download_wait, 2),
    ("deform-fp16", check_deform_fp16, 2),
    ("fp32", check_precision("fp32"), 10),
    ("fp16", check_precision("fp16"), 10),
    ("bf16", check_precision("bf16"), 10),
    ("pipeline-mask", check_pipeline("mask"), 15),
    ("pipeline-mask-fp16", check_pipeline("mask", "auto"), 10),
    ("pipeline-alpha", check_pipeline("alpha"), 15),
    ("pipeline-composite", check_pipeline("composite"), 15),
    ("pipeline-blur", check_pipeline("blur"), 15),
    ("pipeline-green", check_pipeline("green"), 15),
    ("deep-10bit", check_deep, 20),
    ("nvenc-h264", check_nvenc("h264_nvenc"), 10),
    ("nvenc-hevc", check_nvenc("hevc_nvenc"), 10),
    ("memory", check_memory, 20),
    ("cuda:1", check_second_gpu, 15),
    ("train-fp16", check_train, 20),
    ("live", check_live, 40),
    ("torch-compile", check_compile, 90),
    ("onnxruntime", check_onnxruntime, 90),
]


def reference_alphas(frames: torch.Tensor) -> np.ndarray:
    """fp32 on the CPU, the yardstick of every path."""
    return Segmenter("tiny", device="cpu", precision="fp32", backend="torch")(frames)


def run_paths(ctx: Context, names: Optional[set[str]], budget: float) -> list[dict[str, Any]]:
    """Run each selected path in order while the budget lasts; one printed line each."""
    deadline, results = time.perf_counter() + budget, []
    for name, check, cost in PATHS:
        if names is not None and name not in names:
            continue
        row: dict[str, Any] = {"path": name}
        start = time.perf_counter()
        if start + cost > deadline:
            row.update(status="SKIP", note=f"over the {budget:g} s budget")
        else:
            try:
                row.update(status="PASS", figures=check(ctx))
            except Skip as why:
                row.update(status="SKIP", note=str(why))
            except Exception as exc:  # noqa: BLE001 - every failure is reported, the next path still runs
                row.update(status="FAIL", note=f"{type(exc).__name__}: {exc}", trace=traceback.format_exc(limit=4))
        row["seconds"] = round(time.perf_counter() - start, 1)
        results.append(row)
        detail = json.dumps(row["figures"]) if "figures" in row else row.get("note", "")
        print(f"{row['status']:4}  {name:<20} {row['seconds']:6.1f} s  {detail}", flush=True)
    return results


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu for the script's own test (default cuda)")
    parser.add_argument("--only", help="comma-separated paths to run (default all): " + ", ".join(n for n, _, _ in PATHS))
    parser.add_argument("--frames", type=int, default=48, help="frames of the generated 320x180 clip (default 48)")
    parser.add_argument("--budget", type=float, default=270.0, help="seconds after which no path starts (default 270)")
    parser.add_argument("--json", help="write every path's status and figures here")
    args = parser.parse_args(argv)
    global DEVICE
    DEVICE = torch.device(args.device)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here: every path needs one (--device cpu runs the checks on the CPU)", file=sys.stderr)
        return 2
    names = None if args.only is None else {n.strip() for n in args.only.split(",")}
    unknown = (names or set()) - {n for n, _, _ in PATHS}
    if unknown:
        parser.error(f"unknown path(s): {', '.join(sorted(unknown))}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="birefvid-gpu-check-") as tmp:
        work = Path(tmp)
        clip = write_scene_clip(work / "clip.mp4", args.frames, (320, 180))
        frames = scene_frames(args.frames, (320, 180))
        ctx = Context(args.device, work, clip, frames)
        print(f"birefvid GPU check on {args.device} ({torch.cuda.get_device_name(torch.device(args.device)) if ctx.cuda else 'CPU'}), "
              f"torch {torch.__version__}, PyAV {av.__version__}", flush=True)  # fmt: skip
        results = run_paths(ctx, names, args.budget - (time.perf_counter() - start))
    failed = [r["path"] for r in results if r["status"] == "FAIL"]
    print(f"{len(results) - len(failed)} of {len(results)} paths passed or skipped in {time.perf_counter() - start:.0f} s"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"device": args.device, "torch": torch.__version__, "paths": results}, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
