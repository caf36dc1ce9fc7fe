"""Background blur on the CPU's byte path (``compose.blur_band``): the same picture as ``blur_background``
within 2 grey levels, the subject exact, no halo, and the compositor takes it for uint8 CPU frames."""

from __future__ import annotations

import pytest
import torch

from birefvid.compose import blur_background, estimate_foreground, smooth_blur
from birefvid.compose.blur_band import blur_background_band
from birefvid.compose.compositor import Compositor, fit_alphas
from birefvid.compose.foreground import foreground_difference


def _scene(h: int = 120, w: int = 160, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Textured channel-last uint8 frames (2) and a soft-edged disc matte on each."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    picture = torch.stack([0.5 + 0.4 * torch.sin(xx / 9), 0.5 + 0.4 * torch.cos(yy / 7), 0.5 + 0.3 * torch.sin((xx + yy) / 13)])
    frames = ((picture[None] + 0.1 * torch.rand((2, 3, h, w), generator=g)).clamp(0, 1) * 255).round().to(torch.uint8)
    frames = frames.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # channel-last, as decoded
    alphas = torch.stack([(0.5 - (((yy - h / 2) ** 2 + (xx - cx) ** 2).sqrt() - h / 4) / 4).clamp(0, 1) for cx in (w / 2, w / 3)])
    return frames, alphas[:, None]


@pytest.mark.parametrize("work_scale", [1, 4])
def test_matches_the_float_blur_within_two_grey_levels(work_scale: int) -> None:
    frames, alphas = _scene()
    want = blur_background(frames, alphas, sigma=8.0, work_scale=work_scale)
    got = blur_background_band(frames, alphas, sigma=8.0, work_scale=work_scale)
    diff = (got.int() - want.int()).abs()
    assert got.shape == want.shape and got.dtype == torch.uint8
    assert diff.max() <= 2 and diff.float().mean() <= 0.5
    opaque = (alphas >= 1.0).expand_as(frames)
    assert opaque.any() and torch.equal(got[opaque], frames[opaque])  # the subject is the source, exactly


def test_with_the_foreground_estimate_matches_the_float_blur_with_it() -> None:
    frames, alphas = _scene()
    want = blur_background(frames, alphas, sigma=8.0, foreground=estimate_foreground(frames, alphas, work_scale=2))
    diff = foreground_difference(frames, alphas, work_scale=2, band_only=True).difference
    got = blur_background_band(frames, alphas, sigma=8.0, difference=diff)
    assert ((got.int() - want.int()).abs()).max() <= 2


def test_no_halo_around_the_subject() -> None:
    """A red subject on blue: the blurred background next to the subject stays blue."""
    frames = torch.zeros((1, 48, 64, 3), dtype=torch.uint8)
    frames[..., 2] = 255
    frames[:, 16:32, 24:40] = torch.tensor([255, 0, 0], dtype=torch.uint8)
    frames = frames.permute(0, 3, 1, 2)
    alphas = torch.zeros((1, 1, 48, 64))
    alphas[:, :, 16:32, 24:40] = 1.0
    for work_scale in (1, 2):
        out = blur_background_band(frames, alphas, sigma=6.0, work_scale=work_scale)
        ring = torch.zeros((48, 64), dtype=torch.bool)
        ring[12:36, 20:44] = True
        ring[16:32, 24:40] = False
        assert torch.equal(out[0, :, 16:32, 24:40], frames[0, :, 16:32, 24:40])
        assert int(out[0, 0][ring].max()) == 0 and int(out[0, 2][ring].min()) == 255
    assert float(smooth_blur(frames.float() / 255, 6.0)[0, 0][ring].max()) > 0.2  # what a plain blur would do


def test_bad_input_is_refused() -> None:
    frames, alphas = _scene(24, 32)
    with pytest.raises(ValueError, match="sigma"):
        blur_background_band(frames, alphas, sigma=0)
    with pytest.raises(ValueError, match="uint8 CPU frames"):
        blur_background_band(frames.float() / 255, alphas)


def test_the_compositor_blurs_uint8_cpu_frames_on_the_byte_path() -> None:
    frames, alphas = _scene()
    small_mattes = torch.nn.functional.interpolate(alphas, size=(64, 64), mode="bilinear", align_corners=False)
    for foreground in (False, True):
        out = Compositor("blur", foreground=foreground, blur_sigma=8.0, blur_work_scale=2)(frames, small_mattes)
        full = fit_alphas(small_mattes, frames.shape[-2:])
        diff = foreground_difference(frames, small_mattes, band_only=True).difference if foreground else None
        assert torch.equal(out, blur_background_band(frames, full, sigma=8.0, work_scale=2, difference=diff))


def test_file_mode_blurs_at_a_scale_its_sigma_hides() -> None:
    frames, alphas = _scene(360, 640)  # steep colour ramps: the hardest case for a blur at reduced size
    default = Compositor("blur", foreground=False)  # sigma 16: blurred at 1/2 size
    assert default.blur_work_scale == 2 and Compositor("blur", blur_sigma=4.0).blur_work_scale == 1
    full_size = Compositor("blur", foreground=False, blur_work_scale=1)
    got, want = default(frames, alphas), full_size(frames, alphas)
    diff = (got.int() - want.int()).abs()
    # a blur ~4% wider (its boxes round differently at half size): a few levels at most; 1/4 size is 10 off
    assert diff.max() <= 4 and diff.float().mean() <= 1.0
    opaque = (alphas >= 1.0).expand_as(frames)
    assert torch.equal(got[opaque], frames[opaque])
