"""Compositing ops: exact pixels where alpha is 0 or 1, shapes, errors, and halo-free blur."""

from __future__ import annotations

import pytest
import torch

from birefvid.compose import blur_background, box_mean, composite, greenscreen, smooth_blur, to_mask, to_rgba


@pytest.fixture
def frames() -> tuple[torch.Tensor, torch.Tensor]:
    """Random uint8 frames (2, 3, 48, 64) and mattes with exact 0s, exact 1s and soft values."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 48, 64), dtype=torch.uint8, generator=g)
    alphas = torch.rand((2, 1, 48, 64), generator=g)
    alphas[:, :, :16] = 0.0
    alphas[:, :, 32:] = 1.0
    return images, alphas


def _where(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)[mask[:, 0]]


def test_to_mask_rounds_without_rescaling() -> None:
    alphas = torch.tensor([0.0, 0.2, 0.5, 1 / 255, 0.499 / 255, 1.0]).view(1, 1, 1, 6)
    out = to_mask(alphas)
    assert out.dtype == torch.uint8 and out.shape == (1, 1, 1, 6)
    assert out.flatten().tolist() == [0, 51, 128, 1, 0, 255]
    dim = torch.full((1, 1, 4, 4), 0.5)  # a faint frame stays faint: no per-frame min-max stretch
    assert int(to_mask(dim).max()) == 128


def test_to_rgba_straight_alpha(frames) -> None:
    images, alphas = frames
    out = to_rgba(images, alphas)
    assert out.shape == (2, 4, 48, 64) and out.dtype == torch.uint8
    assert torch.equal(out[:, :3], images)
    assert torch.equal(out[:, 3:], to_mask(alphas))
    fg = torch.full((2, 3, 48, 64), 0.2)
    assert torch.equal(to_rgba(images, alphas, foreground=fg)[:, :3], torch.full_like(images, 51))


@pytest.mark.parametrize("kind", ["batch", "single", "single1", "tuple", "string"])
def test_composite_exact_at_zero_and_one(frames, kind: str) -> None:
    images, alphas = frames
    bg = torch.randint(0, 256, (2, 3, 48, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    flat = torch.tensor([10, 20, 30], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 48, 64)
    spec, expected_bg = {
        "batch": (bg, bg),
        "single": (bg[0], bg[:1].expand(2, -1, -1, -1)),
        "single1": (bg[:1], bg[:1].expand(2, -1, -1, -1)),
        "tuple": ((10, 20, 30), flat),
        "string": ("#0a141e", flat),
    }[kind]
    out = composite(images, alphas, spec)
    assert out.shape == images.shape and out.dtype == torch.uint8
    zero, one = alphas == 0, alphas == 1
    assert torch.equal(_where(zero, out), _where(zero, expected_bg))
    assert torch.equal(_where(one, out), _where(one, images))
    # soft pixels are the straight-alpha blend, rounded
    a = alphas[0, 0, 20, 5].item()
    blend = images[0, :, 20, 5].float() * a + expected_bg[0, :, 20, 5].float() * (1 - a)
    assert torch.allclose(out[0, :, 20, 5].float(), blend, atol=0.51)


def test_composite_accepts_float_frames(frames) -> None:
    images, alphas = frames
    bg = (0, 0, 255)
    assert torch.equal(composite(images.float() / 255, alphas, bg), composite(images, alphas, bg))


def test_composite_with_foreground_is_exact_where_opaque(frames) -> None:
    images, alphas = frames
    fg = torch.rand((2, 3, 48, 64))
    out = composite(images, alphas, (0, 0, 0), foreground=fg)
    one = alphas == 1
    assert torch.equal(_where(one, out), _where(one, (fg * 255 + 0.5).floor().to(torch.uint8)))


def test_greenscreen_exact(frames) -> None:
    images, alphas = frames
    out = greenscreen(images, alphas)
    zero, one = alphas == 0, alphas == 1
    assert (_where(zero, out) == torch.tensor([0, 255, 0], dtype=torch.uint8)).all()
    assert torch.equal(_where(one, out), _where(one, images))
    blue = greenscreen(images, alphas, key="#0000ff")
    assert (_where(zero, blue) == torch.tensor([0, 0, 255], dtype=torch.uint8)).all()


def test_shape_errors_are_readable(frames) -> None:
    images, alphas = frames
    with pytest.raises(ValueError, match=r"alphas .* do not match images"):
        composite(images, alphas[:, :, :10], (0, 0, 0))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        to_rgba(images[:, :2], alphas)
    with pytest.raises(ValueError, match="scale it to the frame size"):
        composite(images, alphas, torch.zeros((3, 10, 10), dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"float \(N, 1, H, W\)"):
        to_mask(torch.zeros((1, 1, 4, 4), dtype=torch.uint8))
    with pytest.raises(ValueError, match="not a colour"):
        greenscreen(images, alphas, key="chartreuse-ish")


def test_blur_background_has_no_halo() -> None:
    """A red subject on blue: blurred background next to the subject stays blue; naive blur bleeds red."""
    images = torch.zeros((1, 3, 48, 64), dtype=torch.uint8)
    images[:, 2] = 255
    alphas = torch.zeros((1, 1, 48, 64))
    alphas[:, :, 16:32, 24:40] = 1.0
    images[:, :, 16:32, 24:40] = torch.tensor([255, 0, 0], dtype=torch.uint8).view(1, 3, 1, 1)
    out = blur_background(images, alphas, sigma=6.0)
    ring = torch.zeros((48, 64), dtype=torch.bool)
    ring[12:36, 20:44] = True
    ring[16:32, 24:40] = False  # the 4-pixel band around the subject
    assert torch.equal(out[0, :, 16:32, 24:40], images[0, :, 16:32, 24:40])  # subject stays sharp, exact
    assert int(out[0, 0][ring].max()) == 0 and int(out[0, 2][ring].min()) == 255
    naive = smooth_blur(images.float() / 255, 6.0)
    assert float(naive[0, 0][ring].max()) > 0.2  # what the renormalized blur avoids


def test_blur_background_blurs(frames) -> None:
    images, _ = frames
    alphas = torch.zeros((2, 1, 48, 64))
    out = blur_background(images, alphas, sigma=4.0)
    assert out.float().std() < images.float().std() * 0.5
    with pytest.raises(ValueError, match="sigma"):
        blur_background(images, alphas, sigma=0)


def test_box_mean_matches_brute_force() -> None:
    x = torch.rand((2, 3, 12, 17), generator=torch.Generator().manual_seed(2))
    for r in (1, 3, 20):
        ref = torch.empty_like(x)
        for i in range(12):
            for j in range(17):
                ref[..., i, j] = x[..., max(0, i - r) : i + r + 1, max(0, j - r) : j + r + 1].mean((-1, -2))
        assert torch.allclose(box_mean(x, r), ref, atol=1e-6)


def test_smooth_blur_has_requested_spread() -> None:
    impulse = torch.zeros((1, 1, 1, 101))
    impulse[..., 50] = 1.0
    row = smooth_blur(impulse.expand(1, 1, 3, 101).contiguous(), sigma=5.0)[0, 0, 1]
    pos = torch.arange(101.0)
    mean = (row * pos).sum() / row.sum()
    std = ((row * (pos - mean) ** 2).sum() / row.sum()).sqrt()
    assert abs(float(std) - 5.0) < 0.6


@pytest.mark.needs_cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_ops_stay_on_cuda(frames) -> None:
    images, alphas = (t.cuda() for t in frames)
    for out in (to_rgba(images, alphas), greenscreen(images, alphas), blur_background(images, alphas)):
        assert out.is_cuda
    cpu = composite(frames[0], frames[1], (1, 2, 3))
    diff = (composite(images, alphas, (1, 2, 3)).cpu().int() - cpu.int()).abs()
    assert int(diff.max()) <= 1
