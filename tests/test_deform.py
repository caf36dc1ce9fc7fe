"""The sampled deformable convolution equals torchvision's, values and gradients, and is what the CPU runs."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import deform_conv2d

from birefvid.models import deform
from birefvid.models.deform import modulated_deform_conv2d, sampled_deform_conv2d, torchvision_deform


def _inputs(kernel: int, h: int, w: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    taps = kernel * kernel
    x = torch.randn(2, 5, h, w, generator=g)
    # Offsets up to several pixels, so taps land between pixels and well outside the frame.
    offset = torch.randn(2, 2 * taps, h, w, generator=g) * 3
    mask = torch.rand(2, taps, h, w, generator=g) * 2
    weight = torch.randn(4, 5, kernel, kernel, generator=g)
    return [t.requires_grad_() for t in (x, offset, mask, weight)]


@pytest.mark.parametrize("kernel,h,w", [(1, 9, 7), (3, 9, 7), (7, 8, 11), (3, 1, 5)])
def test_sampled_matches_torchvision_values_and_gradients(kernel, h, w):
    x, offset, mask, weight = _inputs(kernel, h, w)
    ref = deform_conv2d(x, offset, weight, None, padding=kernel // 2, mask=mask)
    ref_grads = torch.autograd.grad(ref.square().sum(), [x, offset, mask, weight])
    out = sampled_deform_conv2d(x, offset, weight, kernel // 2, mask)
    grads = torch.autograd.grad(out.square().sum(), [x, offset, mask, weight])
    assert out.shape == ref.shape == (2, 4, h, w)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-3 * float(want.abs().max()))


def test_integer_offsets_shift_the_image():
    """A whole-pixel offset of (dy, dx) = (1, -2) on a 1x1 kernel reads x[y + 1, x - 2], zeros outside."""
    x = torch.arange(30.0).view(1, 1, 5, 6)
    offset = torch.tensor([1.0, -2.0]).view(1, 2, 1, 1).expand(1, 2, 5, 6)
    out = sampled_deform_conv2d(x, offset, torch.ones(1, 1, 1, 1), 0, torch.ones(1, 1, 5, 6))
    want = torch.zeros(5, 6)
    want[:4, 2:] = x[0, 0, 1:, :4]
    torch.testing.assert_close(out[0, 0], want, rtol=0, atol=1e-5)  # float rounding of the grid only


def test_cpu_uses_the_sampled_path_for_training_inference_and_bf16(monkeypatch):
    calls = []
    real = deform.sampled_deform_conv2d
    monkeypatch.setattr(deform, "sampled_deform_conv2d", lambda *a: calls.append(1) or real(*a))
    x, offset, mask, weight = (t.detach() for t in _inputs(3, 6, 6))
    with torch.no_grad():
        inference = modulated_deform_conv2d(x, offset, weight, 1, mask)
    training = modulated_deform_conv2d(x, offset, weight, 1, mask)
    assert calls == [1, 1]
    reference = deform_conv2d(x, offset, weight, None, padding=1, mask=mask)
    torch.testing.assert_close(inference, reference, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(training, reference, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        half = modulated_deform_conv2d(x.bfloat16(), offset.bfloat16(), weight.bfloat16(), 1, mask.bfloat16())
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), reference, rtol=0.05, atol=0.05 * float(reference.abs().max()))


def test_half_precision_runs_torchvisions_op_in_fp32_on_every_device():
    """torchvision's fp16 kernel adds the offset to the tap's column in fp16 (its CPU kernel is the
    CUDA one's arithmetic): past 512 px a tap 0.3 px right of a pixel is read at 0.5. An fp16 model
    on a GPU ran the decoder's largest maps (a quarter of the input: 512 px at 2048²) that way."""
    from types import SimpleNamespace

    width = 1100
    x = (torch.arange(width) % 2).float().view(1, 1, 1, width)  # 0, 1, 0, 1 ...: a tap at j + 0.3 reads 0.3 or 0.7
    offset = torch.zeros(1, 2, 1, width)
    offset[:, 1] = 0.3
    weight, mask = torch.ones(1, 1, 1, 1), torch.ones(1, 1, 1, width)
    exact = deform_conv2d(x, offset, weight, None, mask=mask)[0, 0, 0]
    half = deform_conv2d(x.half(), offset.half(), weight.half(), None, mask=mask.half())[0, 0, 0].float()
    assert float((half - exact)[:32].abs().max()) < 0.01  # small maps: fine
    assert float((half - exact)[600:].abs().max()) > 0.15  # why the model must not run it in fp16
    for device in ("cuda", "cpu", "mps"):
        assert deform._needs_fp32(SimpleNamespace(dtype=torch.float16, device=torch.device(device)))  # type: ignore[arg-type]
    assert not deform._needs_fp32(x)
    with torchvision_deform(), torch.no_grad():
        ours = modulated_deform_conv2d(x.half(), offset.half(), weight.half(), 0, mask.half())
    assert ours.dtype == torch.float16
    assert float((ours[0, 0, 0].float() - exact).abs().max()) < 0.01
