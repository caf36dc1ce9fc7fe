"""Blur-fusion foreground estimation: less background spill at soft edges, exact where opaque."""

from __future__ import annotations

import pytest
import torch

from birefvid.compose import composite, estimate_foreground


def _soft_disc_scene(h: int = 72, w: int = 96) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A warm textured subject (true F) with a soft 10-px edge over a textured green background."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    dist = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2).sqrt() - h / 4
    alpha = (0.5 - dist / 10).clamp(0, 1).view(1, 1, h, w)
    fg = torch.stack([0.85 + 0.1 * torch.sin(xx / 7), 0.5 + 0.1 * torch.cos(yy / 9), 0.3 + 0.0 * xx]).unsqueeze(0)
    bg = torch.stack([0.1 + 0.0 * xx, 0.8 + 0.0 * xx, 0.2 + 0.0 * xx]).unsqueeze(0)
    bg = (bg + 0.1 * torch.rand((1, 3, h, w), generator=g)).clamp(0, 1)
    image = alpha * fg + (1 - alpha) * bg
    return image, alpha, fg


def test_reduces_background_spill() -> None:
    image, alpha, true_fg = _soft_disc_scene()
    est = estimate_foreground(image, alpha, radius=90, refine_radius=6)
    band = ((alpha > 0.1) & (alpha < 0.9)).expand_as(image)
    naive_err = (image - true_fg).abs()[band].mean().item()
    est_err = (est - true_fg).abs()[band].mean().item()
    assert band.sum() > 300
    assert est_err < 0.25 * naive_err, (est_err, naive_err)
    # the green spill is what goes: the green excess over the true subject drops the most
    green = band[:, 1:2]
    assert (est - true_fg)[:, 1:2][green].mean() < 0.3 * (image - true_fg)[:, 1:2][green].mean()


def test_exact_where_opaque_and_in_range() -> None:
    image, alpha, _ = _soft_disc_scene()
    image = image.expand(2, -1, -1, -1).contiguous()
    alpha = alpha.expand(2, -1, -1, -1).contiguous()
    est = estimate_foreground(image, alpha)
    assert est.shape == image.shape and est.dtype == torch.float32
    assert est.min() >= 0 and est.max() <= 1 and torch.isfinite(est).all()
    opaque = (alpha == 1).expand_as(image)
    assert torch.allclose(est[opaque], image[opaque], atol=1e-5)


def test_composite_with_estimate_removes_fringe() -> None:
    image, alpha, true_fg = _soft_disc_scene()
    u8 = (image * 255 + 0.5).floor().to(torch.uint8)
    ideal = composite(u8, alpha, (255, 255, 255), foreground=true_fg).float()
    naive = composite(u8, alpha, (255, 255, 255)).float()
    fixed = composite(u8, alpha, (255, 255, 255), foreground=estimate_foreground(u8, alpha)).float()
    assert (fixed - ideal).abs().mean() < 0.5 * (naive - ideal).abs().mean()


def test_accepts_uint8_and_half_and_rejects_bad_shapes() -> None:
    image, alpha, _ = _soft_disc_scene(24, 32)
    u8 = (image * 255).round().to(torch.uint8)
    assert torch.allclose(estimate_foreground(u8, alpha), estimate_foreground(u8.float() / 255, alpha), atol=1e-5)
    assert torch.isfinite(estimate_foreground(image.half(), alpha.half())).all()
    with pytest.raises(ValueError, match="do not match"):
        estimate_foreground(image, alpha[..., :10])
    with pytest.raises(ValueError, match="radii"):
        estimate_foreground(image, alpha, radius=0)
