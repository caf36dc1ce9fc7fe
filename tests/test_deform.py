"""The sampled deformable convolution equals torchvision's, values and gradients, and is what the CPU runs."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import deform_conv2d

from birefvid.models import deform
from birefvid.models.deform import modulated_deform_conv2d, sampled_deform_conv2d


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
