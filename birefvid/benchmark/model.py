"""Model-only speed of the chosen engine against the reference (eager fp32, torchvision's deformable
convolution) on the same normalised frames, the alpha difference between them, and GFLOP per frame."""

from __future__ import annotations

import contextlib
import copy
import statistics
import time
from typing import Any, Callable, Iterator, Optional, Sequence

import torch
import torchvision.ops  # noqa: F401  registers torch.ops.torchvision.deform_conv2d, counted below
from torch.utils.flop_counter import FlopCounterMode, register_flop_formula

from ..backends.memory import is_out_of_memory
from ..models.deform import torchvision_deform
from ..runtime.segmenter import DeviceOutOfMemory, Segmenter, batch_size_applies


@register_flop_formula(torch.ops.torchvision.deform_conv2d)
def _deform_conv_flop(input_shape: Any, weight_shape: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """Multiply-adds of a deformable convolution: like a convolution's (the bilinear taps not counted)."""
    _, in_per_group, kh, kw = weight_shape
    return 2 * int(torch.Size(out_shape).numel()) * in_per_group * kh * kw


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def alternating_medians(fns: Sequence[tuple[Callable[[], Any], int]], runs: int, device: torch.device) -> list[float]:
    """Median wall time of each ``(fn, settle)`` over ``runs`` rounds, calling them in turn each round.

    Alternating (rather than all runs of one, then all of the other) lets both see the same load
    on a shared machine, so their ratio holds when the load drifts during the benchmark. ``settle``
    untimed calls come before each timed one: a fast engine right after a seconds-long reference
    call finds its threads asleep and its data out of cache (~3% slower here), which a video,
    frame after frame, never sees.
    """
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for (fn, settle), record in zip(fns, times):
            for _ in range(settle):
                fn()
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            record.append(time.perf_counter() - start)
    return [statistics.median(record) for record in times]


def count_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward of ``model`` (as the reference runs it) on an input shaped like ``x``.

    Counted on a copy on the meta device: no arithmetic runs. Counting a real forward under
    FlopCounterMode left later OpenVINO inference in the same process ~25% slower (0.75 s against
    0.58 s for Swin-T at 512², every time), which skewed the speedup this command reports.
    """
    shadow = copy.deepcopy(model).to("meta")
    with torchvision_deform(), FlopCounterMode(display=False) as flops:
        shadow(torch.empty(x.shape, device="meta", dtype=x.dtype))
    return int(flops.get_total_flops())


@contextlib.contextmanager
def _out_of_memory_said(segmenter: Segmenter, frames: torch.Size, doing: str, precision: Optional[str] = None) -> Iterator[None]:
    """An out-of-memory error in this block as the one line with advice ``process`` gives (``DeviceOutOfMemory``):
    the timing loop calls the engine itself, outside ``Segmenter.predict``, and it was a traceback, exit 1."""
    try:
        yield
    except Exception as exc:  # torch's OutOfMemoryError (CUDA, MPS), its CPU RuntimeError, ONNX Runtime's, a MemoryError
        if isinstance(exc, DeviceOutOfMemory) or not is_out_of_memory(exc):
            raise
        with batch_size_applies():  # bench's --batch-size
            raise segmenter.out_of_memory(exc, frames, doing, precision) from exc


@torch.inference_mode()
def measure_model(segmenter: Segmenter, reference: torch.nn.Module, frames: torch.Tensor, runs: int = 3) -> dict[str, Any]:
    """Time the segmenter's engine and ``reference`` (an fp32 copy of its weights) on ``frames`` (uint8
    (N, 3, H, W)) at the segmenter's inference size; compare their alphas."""
    with _out_of_memory_said(segmenter, frames.shape, "timing the model"):
        return _measure(segmenter, reference, frames, runs)


def _measure(segmenter: Segmenter, reference: torch.nn.Module, frames: torch.Tensor, runs: int) -> dict[str, Any]:
    """``measure_model``'s work, its out-of-memory errors said by the caller."""
    device = segmenter.device
    batch = frames.shape[0]
    x = segmenter.preprocess(frames, torch.float32)
    # counted before the move: count_flops deep-copies the model, which on the device was a second fp32 copy of the
    # weights in GPU memory (a Swin-L's ~0.9 GB) beside the engine's, and an out-of-memory there named no reference
    total_flops = count_flops(reference, x)
    reference = reference.to(device, torch.float32).eval()
    export_before = segmenter.engine.export_seconds
    segmenter.prepare(*frames.shape[2:])  # export + compile, outside the timing
    model_input = x.to(segmenter.engine.input_dtype)

    def run_reference() -> torch.Tensor:  # always fp32: fp16 is no advice for it
        with torchvision_deform(), _out_of_memory_said(segmenter, frames.shape, "timing the eager fp32 reference", "fp32"):
            return reference(x)

    ref_logits = run_reference()  # the warm-ups
    logits = segmenter.engine(model_input)
    reference_s, seconds = alternating_medians([(run_reference, 0), (lambda: segmenter.engine(model_input), 1)], runs, device)
    del reference
    diff = (torch.sigmoid(logits.float()) - torch.sigmoid(ref_logits.float())).abs()
    gflop = total_flops / batch / 1e9
    fps, reference_fps = batch / seconds, batch / reference_s
    return {
        "reference_fps": round(reference_fps, 4),
        "fps": round(fps, 4),
        "speedup": round(fps / reference_fps, 3),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "gflop_per_frame": round(gflop, 3),
        "gflops_achieved": round(gflop * fps, 2),
        "reference_gflops_achieved": round(gflop * reference_fps, 2),
        "export_seconds": round(segmenter.engine.export_seconds - export_before, 1),
    }
