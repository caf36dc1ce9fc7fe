"""Modulated deformable convolution (DCNv2) for the decoder: torchvision's op, or a sampled twin.

torchvision's ``deform_conv2d`` is right but slow on CPU: its backward runs per-element loops (74 %
of a pvt_v2_b0 training step at 128 px on our 2-core CPU) and its forward is a scalar im2col.
:func:`sampled_deform_conv2d` computes the same thing from ``grid_sample`` (bilinear taps with zero
padding, exactly torchvision's sampling rule) and one matrix product: CPU training steps run
2.5-3x faster (``scripts/bench_train_step.py``), CPU inference 1.3-1.6x (``birefvid bench``), and
the model exports to ONNX with standard operators only. The price in training is memory: the
sampled taps (B, C, K, H, W) are kept for the backward pass. CUDA keeps torchvision's kernel, in fp32.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

import torch
import torch.nn.functional as F


def _needs_fp32(x: torch.Tensor) -> bool:
    """True for half precision and bf16 on every device, CUDA included: torchvision's op computes in fp32.

    Its kernels (deform_conv2d_kernel.cu as the CPU one) add each offset to the tap's row and column
    in the input's own type (``scalar_t y = (out_y * stride_h - pad_h) + i * dilation_h + offset_h``)
    and interpolate with weights of that type: in fp16 a position past 128 px lands on a 1/8 px grid,
    past 256 on 1/4, past 512 on 1/2, and the decoder's largest maps are a quarter of the input (256
    px for 1024², 512 for HR's 2048², 640 for lite-2K), so fp16 taps read between the wrong pixels
    there (``tests/test_deform.py``). torchvision's own autocast runs the op in fp32 too; bf16 has no kernel.
    """
    return x.dtype in (torch.float16, torch.bfloat16)


_TORCHVISION_ONLY = contextvars.ContextVar("birefvid_torchvision_deform", default=False)


@contextlib.contextmanager
def torchvision_deform() -> Iterator[None]:
    """Within this block the decoder uses torchvision's op everywhere: the reference ``birefvid bench`` compares against."""
    token = _TORCHVISION_ONLY.set(True)
    try:
        yield
    finally:
        _TORCHVISION_ONLY.reset(token)


def _exporting() -> bool:
    """True while torch.export / torch.onnx trace the model: they need standard operators."""
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and hasattr(compiler, "is_exporting") and compiler.is_exporting())


def sampled_deform_conv2d(
    x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, padding: int, mask: torch.Tensor
) -> torch.Tensor:
    """DCNv2 with stride 1, dilation 1, one offset group and no bias, built from ``grid_sample``.

    Shapes follow torchvision: ``offset`` is (B, 2K, Ho, Wo) with (dy, dx) pairs per kernel tap
    in row-major tap order, ``mask`` is (B, K, Ho, Wo), ``weight`` is (O, C, kh, kw).
    """
    b, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    taps = kh * kw
    out_h, out_w = h + 2 * padding - kh + 1, w + 2 * padding - kw + 1
    dev, dt = x.device, x.dtype
    tap_y = torch.arange(kh, device=dev, dtype=dt).repeat_interleave(kw)  # (K,)
    tap_x = torch.arange(kw, device=dev, dtype=dt).repeat(kh)
    rows = torch.arange(out_h, device=dev, dtype=dt) - padding
    cols = torch.arange(out_w, device=dev, dtype=dt) - padding
    offset = offset.view(b, taps, 2, out_h, out_w)
    ys = (rows.view(1, 1, out_h, 1) + tap_y.view(1, taps, 1, 1)) + offset[:, :, 0]  # (B, K, Ho, Wo)
    xs = (cols.view(1, 1, 1, out_w) + tap_x.view(1, taps, 1, 1)) + offset[:, :, 1]
    # Pixel centres to grid_sample's [-1, 1] (align_corners=False); points outside read zeros,
    # and a tap between a border pixel and the outside blends with zero, as torchvision does.
    grid = torch.stack(((2 * xs + 1) / w - 1, (2 * ys + 1) / h - 1), dim=-1)  # (B, K, Ho, Wo, 2)
    if _exporting():
        return _banded_taps_conv(x, grid, mask.view(b, 1, taps, out_h, out_w), weight)
    sampled = F.grid_sample(
        x, grid.view(b, taps * out_h, out_w, 2), mode="bilinear", padding_mode="zeros", align_corners=False
    ).view(b, c, taps, out_h, out_w)
    sampled = sampled * mask.view(b, 1, taps, out_h, out_w)
    # One matrix product over (channel, tap): (O, C*K) x (B, C*K, Ho*Wo); no transposed copies.
    out = weight.reshape(o, c * taps) @ sampled.view(b, c * taps, out_h * out_w)
    return out.view(b, o, out_h, out_w)


BAND_ELEMENTS = 1 << 20  # sampled taps per band in the export: 4 MB in fp32, so a band stays in cache


def _banded_taps_conv(x: torch.Tensor, grid: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The export's form of the sampling and tap reduction: row bands, each sampled then reduced by a 1x1 conv.

    The whole (C*K, Ho, Wo) tap tensor of a 7x7 branch at 128² is ~200 MB: written by GridSample,
    converted, reordered and read back from memory. Bands small enough to stay in cache made that
    branch 1.5x faster in OpenVINO bf16 and 1.3x in fp32 (same results). The reduction is a 1x1
    convolution: OpenVINO runs it in bf16 (a MatMul with a constant first input stays fp32 there);
    eager PyTorch is several times slower this way, so only the export uses it.
    """
    b, c = x.shape[:2]
    taps, out_h, out_w = grid.shape[1:4]
    o = weight.shape[0]
    kernel = weight.reshape(o, c * taps, 1, 1)
    rows = max(1, min(out_h, BAND_ELEMENTS // max(1, c * taps * out_w)))
    outs = []
    for top in range(0, out_h, rows):
        n = min(rows, out_h - top)
        band = grid[:, :, top : top + n].reshape(b, taps * n, out_w, 2)
        sampled = F.grid_sample(x, band, mode="bilinear", padding_mode="zeros", align_corners=False)
        sampled = sampled.view(b, c, taps, n, out_w) * mask[:, :, :, top : top + n]
        outs.append(F.conv2d(sampled.view(b, c * taps, n, out_w), kernel))
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)


def modulated_deform_conv2d(
    x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, padding: int, mask: torch.Tensor
) -> torch.Tensor:
    """DCNv2 as BiRefNet's decoder uses it; picks the fast path for the device and mode."""
    if (x.device.type == "cpu" and not _TORCHVISION_ONLY.get()) or _exporting():
        # Faster on CPU in training and inference (see the module docstring); plain ops for export.
        return sampled_deform_conv2d(x, offset, weight, padding, mask)
    # Imported here, not at the top: torchvision.ops pulls in torch._dynamo (~1.3 s of CPU at every start),
    # and the CPU path above, which every CPU run takes, never needs it.
    from torchvision.ops import deform_conv2d

    if _needs_fp32(x):
        # fp32, cast back: see _needs_fp32 (no low-precision kernel, or CUDA's fp16 one rounds the tap positions)
        out = deform_conv2d(x.float(), offset.float(), weight.float(), None, padding=padding, mask=mask.float())
        return out.to(x.dtype)
    return deform_conv2d(x, offset, weight, None, padding=padding, mask=mask)
