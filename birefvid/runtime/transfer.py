"""Host <-> device transfers. On CUDA: pinned buffers, a copy stream and events, so the upload of
batch N+1 overlaps the compute of batch N; elsewhere plain synchronous copies.

All CUDA-only calls live here and run only when ``device.type == "cuda"``; they follow the
documented torch.cuda API (Stream, Event.record/wait_event/synchronize, Tensor.record_stream,
pin_memory, non_blocking copies).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, ContextManager, Iterator, Optional

import numpy as np
import torch


@dataclass
class OnDevice:
    """A tensor being copied to the device; ``ready()`` makes the current stream wait for it."""

    tensor: torch.Tensor
    event: Optional[Any] = None  # torch.cuda.Event on CUDA
    _host: Optional[torch.Tensor] = None  # keeps the pinned source alive until the copy is awaited

    def ready(self) -> torch.Tensor:
        if self.event is not None:
            stream = torch.cuda.current_stream(self.tensor.device)
            stream.wait_event(self.event)
            self.tensor.record_stream(stream)  # the allocator must not reuse it while this stream uses it
            self._host = None
        return self.tensor


@dataclass
class OnHost:
    """A tensor being copied back to the host; ``numpy()`` waits for the copy, then shares its memory."""

    tensor: torch.Tensor
    event: Optional[Any] = None

    def numpy(self) -> np.ndarray:
        if self.event is not None:
            self.event.synchronize()
        return self.tensor.numpy()


class Transfer:
    """Moves uint8 frame batches to the device and results back, overlapping copies on CUDA."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.copy_stream = torch.cuda.Stream(device=device) if self.cuda else None
        self.compute_stream = torch.cuda.Stream(device=device) if self.cuda else None

    def upload(self, images: torch.Tensor) -> OnDevice:
        """Start copying a CPU batch to the device (asynchronously on CUDA)."""
        if not self.cuda:
            return OnDevice(images.to(self.device))
        host = images if images.is_pinned() else images.pin_memory()
        with torch.cuda.stream(self.copy_stream):
            tensor = host.to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self.copy_stream)
        return OnDevice(tensor, event, host)

    def compute(self) -> ContextManager[Any]:
        """Context in which model and compositing kernels run (the compute stream on CUDA)."""
        if not self.cuda:
            return contextlib.nullcontext()
        return self._on_compute_stream()

    @contextlib.contextmanager
    def _on_compute_stream(self) -> Iterator[None]:
        # Work the caller queued on its own stream (the default one) must be done before the compute
        # stream reads what it wrote: a module cast in place on the GPU (``Segmenter(module=...)``, an
        # fp16 ``.to(dtype)``), a 16-bit ``--background`` converted when opened. Streams from
        # torch.cuda.Stream() do not wait for the default stream (PyTorch's CUDA semantics: "sum() may
        # start execution before normal_() finishes!"; "it is the user's responsibility to ensure proper
        # synchronization"). Only the GPU waits; ``scripts/gpu_check.py``'s "stream-order" path checks it.
        caller = torch.cuda.current_stream(self.device)
        self.compute_stream.wait_stream(caller)
        with torch.cuda.stream(self.compute_stream):
            yield
        caller.wait_stream(self.compute_stream)  # and the caller's later work waits for this (an fp32 engine made here)

    def download(self, tensor: torch.Tensor) -> OnHost:
        """Start copying a result to (pinned) host memory; call inside ``compute()``."""
        if not self.cuda:
            return OnHost(tensor.cpu())
        host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        host.copy_(tensor, non_blocking=True)
        # blocking: the encoder's thread sleeps in OnHost.numpy() until the copy is done. Without the flag
        # cudaEventSynchronize busy-waits ("If the cudaEventBlockingSync flag has not been set, then the CPU thread
        # will busy-wait until the event has been completed by the device", CUDA runtime API), a core spun for as
        # long as the GPU is behind, taken from the decoder and a CPU encoder (x264) beside it
        event = torch.cuda.Event(blocking=True)
        event.record(torch.cuda.current_stream(self.device))
        return OnHost(host, event)
