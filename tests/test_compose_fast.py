"""The CPU fast paths of compositing: OpenCV resizes and box means equal torch's, foreground
estimation at a reduced size stays exact where opaque and close to the full-size estimate at soft
edges, and the compositor takes mattes at the model's resolution."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from birefvid.compose import box_mean, estimate_foreground
from birefvid.compose.compositor import Compositor, fit_alphas
from birefvid.compose.resample import resize, resize_uint8, resize_uint8_to_float


def _channels_last(n: int, c: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Random float frames laid out (N, H, W, C) in memory, as decoded frames are."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, h, w, c), generator=g).permute(0, 3, 1, 2)


@pytest.mark.parametrize("n,c", [(1, 1), (2, 1), (1, 3), (2, 3), (1, 8)])
def test_resize_equals_interpolate(n: int, c: int) -> None:
    x = _channels_last(n, c, 90, 160)
    up = resize(x, (200, 333), "bilinear")
    assert up.shape == (n, c, 200, 333)
    assert torch.allclose(up, F.interpolate(x, size=(200, 333), mode="bilinear", align_corners=False), atol=5e-5)  # coefficient rounding
    down = resize(x, (45, 80), "area")
    assert torch.allclose(down, F.interpolate(x, size=(45, 80), mode="area"), atol=1e-5)
    assert resize(x, (90, 160), "area") is x


@pytest.mark.parametrize("radius", [1, 6, 45, 200])
def test_box_mean_opencv_equals_running_sums(radius: int) -> None:
    x = _channels_last(2, 4, 40, 70).contiguous()
    fast = box_mean(x, radius)  # float32 on the CPU: OpenCV
    slow = box_mean(x, radius, accumulate=torch.float64).float()  # the running sums
    assert fast.shape == x.shape and fast.dtype == torch.float32
    assert torch.allclose(fast, slow, atol=1e-5)


@pytest.mark.parametrize("radii", [(30, 2), (90, 6)])
def test_opencv_blur_fusion_equals_the_torch_steps(radii: tuple[int, int]) -> None:
    from birefvid.compose.foreground import _estimate

    image, alpha, _ = _soft_scene(60, 90)
    image, alpha = torch.cat([image, image.flip(-1)]), torch.cat([alpha, alpha.flip(-1)])
    crop_image, crop_alpha = image[:, :, 4:-3, 7:-5], alpha[:, :, 4:-3, 7:-5]  # strided views, as the band crop passes
    fast = _estimate(crop_image, crop_alpha, *radii)  # float32 on the CPU: OpenCV on colour planes
    slow = _estimate(crop_image.double(), crop_alpha.double(), *radii)  # torch, box sums in float64
    assert fast.shape == crop_image.shape and fast.dtype == torch.float32
    assert (fast - slow).abs().max() < 1e-5
    assert torch.equal(fast[0], _estimate(crop_image[:1], crop_alpha[:1], *radii)[0])  # frames of a batch stay apart


def _soft_scene(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A textured warm disc (true F) with a soft 8-px edge over a textured green background, I = aF + (1-a)B."""
    g = torch.Generator().manual_seed(1)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    dist = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2).sqrt() - h / 3
    alpha = (0.5 - dist / 8).clamp(0, 1).view(1, 1, h, w)
    fg = torch.stack([0.85 + 0.1 * torch.sin(xx / 7), 0.5 + 0.1 * torch.cos(yy / 9), 0.3 + 0.05 * torch.sin(yy / 5)])[None]
    bg = torch.stack([0.1 + 0.0 * xx, 0.75 + 0.1 * torch.sin(xx / 13), 0.2 + 0.0 * xx])[None]
    bg = (bg + 0.08 * torch.rand((1, 3, h, w), generator=g)).clamp(0, 1)
    return alpha * fg + (1 - alpha) * bg, alpha, fg


@pytest.mark.parametrize("work_scale", [2, 4])
def test_reduced_size_foreground_is_exact_where_opaque_and_close_at_edges(work_scale: int) -> None:
    image, alpha, true_fg = _soft_scene(288, 512)
    u8 = (image * 255 + 0.5).floor().to(torch.uint8)
    full = estimate_foreground(u8, alpha)
    fast = estimate_foreground(u8, alpha, work_scale=work_scale)
    assert fast.shape == full.shape and torch.isfinite(fast).all() and fast.min() >= 0 and fast.max() <= 1
    source = u8.float() / 255
    opaque = (alpha == 1).expand_as(fast)
    assert torch.equal(fast[opaque], source[opaque])  # exactly the source where alpha is 1
    band = ((alpha > 0.05) & (alpha < 0.95)).expand_as(fast)
    assert band.sum() > 3000
    assert (fast - full)[band].abs().mean() < 3 / 255  # close to the full-size estimate on soft edges
    # and as good an estimate of the true subject colour (both remove most of the spill)
    naive = (source - true_fg)[band].abs().mean()
    assert (fast - true_fg)[band].abs().mean() < 1.25 * (full - true_fg)[band].abs().mean() + 1 / 255
    assert (fast - true_fg)[band].abs().mean() < 0.4 * naive


def test_work_scale_is_checked_and_small_frames_fall_back() -> None:
    image, alpha, _ = _soft_scene(24, 32)
    with pytest.raises(ValueError, match="work_scale"):
        estimate_foreground(image, alpha, work_scale=0)
    assert torch.equal(estimate_foreground(image, alpha, work_scale=8), estimate_foreground(image, alpha))


def test_compositor_takes_mattes_at_the_model_size() -> None:
    image, alpha, _ = _soft_scene(180, 320)
    u8 = (image * 255 + 0.5).floor().to(torch.uint8).expand(2, -1, -1, -1).contiguous()
    small = F.interpolate(alpha, size=(64, 64), mode="area").expand(2, -1, -1, -1).contiguous()
    big = fit_alphas(small, (180, 320))
    assert big.shape == (2, 1, 180, 320)
    assert torch.allclose(big, F.interpolate(small, size=(180, 320), mode="bilinear", align_corners=False), atol=5e-5)  # coefficient rounding
    for kind in ("alpha", "green", "mask"):
        for foreground in (False, True):
            comp = Compositor(kind, foreground=foreground, key=(0, 177, 64))
            from_small, from_big = comp(u8, small), comp(u8, big)
            if foreground and kind != "mask":  # the foreground estimate starts from the matte as given
                assert (from_small.int() - from_big.int()).abs().max() <= 1, kind
            else:
                assert torch.equal(from_small, from_big), (kind, foreground)
    out = Compositor("green", key=(0, 177, 64), foreground_side=100)(u8, big)  # foreground at 1/4 size
    opaque, clear = (big == 1).expand_as(u8), (big == 0).expand_as(u8)
    assert opaque.any() and clear.any()
    assert torch.equal(out[opaque], u8[opaque])  # the source where alpha is 1
    key = torch.tensor([0, 177, 64], dtype=torch.uint8).view(1, 3, 1, 1).expand_as(u8)
    assert torch.equal(out[clear], key[clear])  # the key colour where alpha is 0


@pytest.mark.parametrize("kind", ["green", "alpha", "composite"])
@pytest.mark.parametrize("foreground", [False, True])
def test_band_compositing_matches_full_frame_ops(kind: str, foreground: bool) -> None:
    """The compositor's band-only path gives the full-frame ops' pixels to within one grey level."""
    from birefvid.compose import ColorBackground, composite, greenscreen, to_rgba

    image, alpha, _ = _soft_scene(180, 320)
    u8 = (image * 255 + 0.5).floor().to(torch.uint8).expand(2, -1, -1, -1).contiguous()
    alphas = torch.cat([alpha, alpha.flip(-1) * 0.7]).contiguous()  # a second frame with no opaque part
    background = ColorBackground("#336699", (320, 180)) if kind == "composite" else None
    comp = Compositor(kind, foreground=foreground, key=(0, 177, 64), background=background, foreground_side=100)
    got = comp(u8, alphas)
    fg = estimate_foreground(u8, alphas, work_scale=4) if foreground else None
    if kind == "green":
        want = greenscreen(u8, alphas, (0, 177, 64), fg)
    elif kind == "composite":
        want = composite(u8, alphas, background.frames(2), fg)
    else:
        want = to_rgba(u8, alphas, fg)
        clear = (alphas <= 1 / 1024).expand(-1, 4, -1, -1).clone()
        clear[:, 3] = False
        if foreground:  # transparent RGB is the small estimate, close to the full-size one (not the old background)
            assert (got.float() - want.float())[clear].abs().mean() < 4  # 2.8 measured
            assert (u8.float() - want[:, :3].float())[clear[:, :3]].abs().mean() > 40  # the source is far (95)
        else:  # the source, as to_rgba gives it
            assert torch.equal(got[clear], want[clear])
        want, got = want.masked_fill(clear, 0), got.masked_fill(clear, 0)
    assert got.shape == want.shape and got.dtype == torch.uint8
    assert (got.int() - want.int()).abs().max() <= 1


def test_uint8_thumbnails_match_the_float_area_resize():
    frames = torch.randint(0, 256, (2, 72, 128, 3), dtype=torch.uint8).permute(0, 3, 1, 2)  # channel-last, as decoded
    small = resize_uint8(frames, (9, 16))
    assert small.shape == (2, 3, 9, 16) and small.dtype == torch.uint8
    expected = F.interpolate(frames.float(), size=(9, 16), mode="area")
    # three exact halvings, each rounded to the nearest byte: at most half a level each
    assert (small.float() - expected).abs().max() <= 1.5 + 1e-4
    assert (small.float() - expected).abs().mean() <= 0.5


def test_uint8_thumbnails_at_a_non_integer_ratio_stay_close_to_one_area_pass():
    # 1/3 of 1280 x 720 is not a whole number of columns: halved first, then shrunk by 1.5
    y, x = torch.meshgrid(torch.linspace(0, 6, 720), torch.linspace(0, 10, 1280), indexing="ij")
    picture = torch.stack([127 + 120 * torch.sin(x + y), 127 + 120 * torch.cos(x), 127 + 120 * torch.sin(y)])
    frames = picture.round().to(torch.uint8).permute(1, 2, 0).contiguous().permute(2, 0, 1)[None]
    small = resize_uint8(frames, (240, 426))
    expected = F.interpolate(frames.float(), size=(240, 426), mode="area")
    assert small.shape == (1, 3, 240, 426)
    assert (small.float() - expected).abs().mean() <= 0.5
    assert (small.float() - expected).abs().max() <= 2.0


@pytest.mark.parametrize("size,small", [((720, 1280), (240, 426)), ((270, 480), (90, 160)), ((96, 128), (24, 32))])
def test_float_shrink_of_bytes_is_the_area_average_without_the_last_rounding(size, small):
    # the foreground estimate's small frame: halved in bytes, the non-integer rest of the shrink in float
    g = torch.Generator().manual_seed(5)
    h, w = size
    frames = (torch.rand((2, h, w, 3), generator=g) * 255).to(torch.uint8).permute(0, 3, 1, 2)  # channel-last, as decoded
    got = resize_uint8_to_float(frames, small)
    assert got.shape == (2, 3, *small) and got.dtype == torch.float32 and got.is_contiguous()  # channel-first
    assert 0.0 <= got.min() and got.max() <= 1.0
    in_bytes = resize_uint8(frames, small).float() / 255.0
    exact = F.interpolate(frames.float(), size=small, mode="area") / 255.0
    if h % small[0] == 0 and w % small[1] == 0 and (h // small[0]) & (h // small[0] - 1) == 0:
        assert torch.allclose(got, in_bytes, atol=1e-6)  # halvings only: nothing left to do in float
    else:
        assert (got - in_bytes).abs().max() * 255 <= 0.5 + 1e-3  # the byte path's last rounding, no more
        assert (got - exact).abs().mean() * 255 < (in_bytes - exact).abs().mean() * 255  # and closer to one area pass


def test_selects_split_at_their_thresholds_exactly():
    # outside the soft band the output is a byte select: background (or the transparent fill) up to
    # BAND_EPS inclusive, the source from 1 - BAND_EPS on; a pixel in the band is blended
    from birefvid.compose.band import BAND_EPS, composite_band, rgba_band

    eps = np.float32(BAND_EPS)
    values = [0.0, eps, np.nextafter(eps, np.float32(1)), 0.5, np.float32(1) - eps, 1.0]
    alphas = torch.tensor(values, dtype=torch.float32).view(1, 1, 1, -1).expand(1, 1, 2, -1).contiguous()
    images = torch.full((1, 2, len(values), 3), 200, dtype=torch.uint8).permute(0, 3, 1, 2)
    key = torch.tensor([0, 40, 0], dtype=torch.uint8).view(1, 3, 1, 1)
    green = composite_band(images, alphas, key)[0, 1, 0].tolist()
    assert green[:2] == [40, 40] and green[4:] == [200, 200]  # key colour where clear, the source where opaque
    assert green[3] == 120  # 0.5 of each: blended
    fill = torch.zeros((1, 3, 2, len(values)))
    rgba = rgba_band(images, alphas, fill=fill)[0]
    assert rgba[0, 0].tolist() == [0, 0, 200, 200, 200, 200]  # the fill up to BAND_EPS inclusive, then the source
    assert rgba[3, 0].tolist() == [0, 0, 0, 128, 255, 255]


def test_band_only_difference_is_channel_last_in_memory():
    # the band compositor's OpenCV sampling reads D as (h, w, 3): laid out so, it takes D without a copy
    from birefvid.compose.foreground import foreground_difference

    frames = torch.randint(0, 256, (1, 96, 128, 3), dtype=torch.uint8).permute(0, 3, 1, 2)
    matte = torch.zeros((1, 1, 32, 32))
    matte[..., 8:24, 8:24] = 0.5
    diff = foreground_difference(frames, matte, radius=12, refine_radius=3, work_scale=2, band_only=True).difference
    assert diff.shape == (1, 3, 48, 64) and diff.permute(0, 2, 3, 1).is_contiguous()
    assert diff.abs().sum() > 0


@pytest.mark.parametrize("small,size", [((3, 24, 43), (72, 128)), ((3, 17, 31), (50, 93)), ((3, 72, 128), (72, 128))])
def test_band_difference_equals_the_full_upsample_at_band_pixels(small, size):
    from birefvid.compose.band import _difference_at

    difference = torch.rand(small) * 2 - 1
    where = torch.randperm(size[0] * size[1])[:500]
    full = resize(difference[None], size, "bilinear")[0]  # what the band used to read from
    expected = full.reshape(3, -1)[:, where].t()
    assert torch.allclose(_difference_at(difference, where, size), expected, atol=1e-5)


@pytest.mark.parametrize("small,size", [((3, 24, 43), (72, 128)), ((3, 17, 31), (50, 93)), ((3, 90, 160), (1080, 1920))])
def test_band_difference_sampled_by_opencv_equals_the_torch_sampling(small, size):
    """On the CPU the band's D comes from OpenCV's remap at the band pixels' (x, y): same values as the torch path."""
    from birefvid.compose.band import _difference_at

    g = torch.Generator().manual_seed(3)
    coarse = torch.rand((1, 3, small[1] // 3, small[2] // 3), generator=g) * 2 - 1
    difference = resize(coarse, small[1:], "bilinear")[0]  # smooth, as blur-fusion's D is
    where = torch.randperm(size[0] * size[1], generator=g)[:40_000].sort().values  # more than one remap row of pixels
    points = torch.stack([where % size[1], where // size[1]], dim=1).to(torch.int32).numpy()
    by_torch = _difference_at(difference, where, size)
    by_opencv = _difference_at(difference, where, size, points)
    assert by_opencv.shape == by_torch.shape == (where.numel(), 3)
    # OpenCV's remap places samples on a 1/32-pixel grid: D moves by at most 1/32 of its steepest step
    steepest = max(difference.diff(dim=1).abs().max(), difference.diff(dim=2).abs().max())
    assert (by_opencv - by_torch).abs().max() <= 2 * steepest / 32 + 1e-5
    assert (by_opencv - by_torch).abs().mean() <= steepest / 64


def test_cpu_band_finds_exactly_the_soft_pixels():
    """OpenCV's band test (inclusive float32 bounds) picks the same pixels as ``soft_band``'s open interval, at its edges too."""
    from birefvid.compose import band

    eps = band.BAND_EPS
    edges = torch.tensor([0.0, eps, float(np.nextafter(np.float32(eps), np.float32(1))), 0.5,
                          float(np.nextafter(np.float32(1 - eps), np.float32(0))), 1 - eps, 1.0])  # fmt: skip
    g = torch.Generator().manual_seed(4)
    alphas = torch.rand((2, 1, 40, 64), generator=g).clamp_(0.3, 0.7).round_()  # mostly 0 or 1: the sparse path
    alphas.view(-1)[:7] = edges
    alphas[1, 0, 10:12, 5:60] = torch.rand((2, 55), generator=g)
    for i in range(2):
        found = band._find_band(alphas, i)
        expected = band.soft_band(alphas[i, 0]).reshape(-1).nonzero().squeeze(1)
        assert found.dense is None
        assert torch.equal(found.where, expected)
        assert torch.equal(found.alpha[:, 0], alphas[i, 0].reshape(-1)[expected])
        assert torch.equal(torch.from_numpy(found.points[:, 1].astype(np.int64) * 64 + found.points[:, 0]), expected)
    assert band._find_band(torch.ones(1, 1, 8, 8), 0).empty
    assert band._find_band(torch.full((1, 1, 8, 8), 0.5), 0).dense is not None


@pytest.mark.parametrize("kind", ["green", "alpha", "composite"])
def test_a_mostly_soft_matte_is_blended_whole_frame_with_the_band_paths_pixels(kind: str, monkeypatch) -> None:
    """A matte soft over most of the frame (an unsure model, hair) takes the dense path: same pixels as the band path."""
    from birefvid.compose import ColorBackground, band

    image, _, _ = _soft_scene(180, 320)
    u8 = (image * 255 + 0.5).floor().to(torch.uint8).expand(2, -1, -1, -1).contiguous()
    g = torch.Generator().manual_seed(5)
    soft = F.interpolate(torch.rand((2, 1, 9, 16), generator=g), size=(180, 320), mode="bilinear", align_corners=False)
    alphas = soft.clone()
    alphas[:, :, :40] = 1.0  # opaque and clear strips, as real mattes have
    alphas[:, :, -40:] = 0.0
    assert float(band.soft_band(alphas).float().mean()) > band.DENSE_BAND  # the dense path is taken
    background = ColorBackground("#336699", (320, 180)) if kind == "composite" else None
    comp = Compositor(kind, key=(0, 177, 64), background=background, foreground_side=100)
    dense = comp(u8, alphas)
    monkeypatch.setattr(band, "DENSE_BAND", 1.0)  # the band path, pixel by pixel
    by_band = comp(u8, alphas)
    assert dense.shape == by_band.shape and dense.dtype == torch.uint8
    assert (dense.int() - by_band.int()).abs().max() <= 1
    opaque, clear = (alphas == 1).expand(-1, 3, -1, -1), (alphas == 0).expand(-1, 3, -1, -1)
    assert torch.equal(dense[:, :3][opaque], u8[opaque])  # the source where alpha is 1
    if kind == "green":
        key = torch.tensor([0, 177, 64], dtype=torch.uint8).view(1, 3, 1, 1).expand_as(u8)
        assert torch.equal(dense[clear], key[clear])
    if kind == "alpha":
        assert torch.equal(dense[:, 3:], (alphas * 255 + 0.5).floor().to(torch.uint8))


@pytest.mark.parametrize("hard_edge", [False, True])
@pytest.mark.parametrize("frame_size", [(270, 480), (240, 640)])
def test_band_only_foreground_equals_the_whole_frame_estimate_on_the_band(hard_edge: bool, frame_size: tuple[int, int]) -> None:
    from birefvid.compose.band import _difference_at, soft_band
    from birefvid.compose.foreground import foreground_difference

    h, w = frame_size
    g = torch.Generator().manual_seed(3)
    frames = (torch.rand((2, h, w, 3), generator=g) * 255).to(torch.uint8).permute(0, 3, 1, 2)
    # mattes at a model's size, a small subject off-centre: a soft-edged disc, or a hard 0/1 one whose
    # soft pixels exist only after the upsample to the frame
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    dist = ((yy - 20) ** 2 + (xx - 44) ** 2).sqrt() - 6
    disc = (dist < 0).float() if hard_edge else (0.5 - dist / 3).clamp(0, 1)
    mattes = torch.stack([disc, disc.flip(1)])[:, None]
    kw = dict(radius=30, refine_radius=6, work_scale=3)
    whole = foreground_difference(frames, mattes, **kw)
    cropped = foreground_difference(frames, mattes, band_only=True, **kw)
    full = fit_alphas(mattes, (h, w))
    for i in range(2):
        where = soft_band(full[i, 0]).reshape(-1).nonzero().squeeze(1)
        assert where.numel() > 0
        expected = _difference_at(whole.difference[i], where, (h, w))
        assert torch.allclose(_difference_at(cropped.difference[i], where, (h, w)), expected, atol=1e-5)
        # it was a crop: far from the subject nothing was estimated
        assert (cropped.difference[i] == 0).float().mean() > 0.3
        # F inside the crop is the whole-frame estimate (written over the shrunk frame, after D was taken from it)
        inside = cropped.difference[i] != 0
        assert torch.allclose(cropped.foreground[i][inside], whole.foreground[i][inside], atol=1e-5)
    # a matte without a soft pixel, and one that is soft nearly everywhere (estimated whole)
    solid = torch.ones_like(mattes)
    assert torch.equal(foreground_difference(frames, solid, band_only=True, **kw).difference, torch.zeros_like(whole.difference))
    soft = torch.full_like(mattes, 0.5)
    assert torch.allclose(foreground_difference(frames, soft, band_only=True, **kw).difference, foreground_difference(frames, soft, **kw).difference)


_PEAK_CHILD = r"""
import json, resource, sys, numpy as np, torch
torch.set_num_threads(1)
from birefvid.compose.compositor import Compositor
from birefvid.runtime.video_job import deep_as_float
kind, bits, n, h, w = sys.argv[1], int(sys.argv[2]), 2, 2160, 3840
rng = np.random.default_rng(0)
images = torch.from_numpy(rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)).permute(0, 3, 1, 2)
deep = deep_as_float([torch.from_numpy(rng.integers(0, 65536, (3, h, w), dtype=np.uint16)) for _ in range(n)], images.device) if bits > 8 else None
yy, xx = np.mgrid[0:256, 0:256]
matte = np.clip((60 - np.hypot(yy - 128, xx - 128)) / 6, 0, 1).astype(np.float32)
alphas = torch.from_numpy(np.stack([matte] * n))[:, None]
compositor = Compositor(kind, bits=bits)
def status(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key + ":")) * 1024
try:  # the peak from here on: an earlier one (imports, pages the kernel reclaimed since under load) is not the call's
    open("/proc/self/clear_refs", "w").write("5")
    since = True
except OSError:
    since = False
rss = status("VmRSS")
out = compositor(images, alphas, deep)
peak = status("VmHWM") if since else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"rise": peak - rss, "out": out.numel() * out.element_size(), "shape": list(out.shape)}))
"""


def _peak_rises(*cases: tuple[str, int]) -> list[dict]:
    """Peak memory above its inputs of one Compositor call (kind, bits) on two 4K frames, each in a fresh process."""
    procs = [subprocess.Popen([sys.executable, "-c", _PEAK_CHILD, kind, str(bits)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}) for kind, bits in cases]  # fmt: skip
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads Linux's /proc")
def test_4k_cutouts_need_few_full_size_copies() -> None:
    # a 4K batch's RGBA cut-out (what ProRes 4444 and WebM get) held ~6 outputs' worth of memory at its peak
    # (a float copy of the matte to quantise it, a stacked fill, split planes, a merged and a stacked RGBA):
    # 381 MB for two 4K frames, ~1.5 GB for two 8K ones; the outputs' own bytes and the float matte suffice.
    # A 10-bit source's green (16-bit, composited in float over whole frames) held both frames' float
    # foregrounds and temporaries at once: 740 MB above two 4K frames' inputs, 487 one frame at a time
    alpha, deep_green = _peak_rises(("alpha", 8), ("green", 16))
    assert alpha["shape"] == [2, 4, 2160, 3840] and deep_green["shape"] == [2, 3, 2160, 3840]
    for name, result, most in (("alpha", alpha, 4.5), ("10-bit green", deep_green, 6.5)):
        assert result["rise"] <= most * result["out"], f"{name}: peak rose {result['rise'] / 2**20:.0f} MB for {result['out'] / 2**20:.0f} MB of output"


def test_a_large_photos_soft_matte_is_blended_in_strips_without_a_full_size_float_copy() -> None:
    """A photo's matte soft over most of it (an unsure model, hair) takes the dense path, which upsampled the subject
    difference D whole: 12 bytes a pixel, 1.1 GB of the 2.2 GB a 96 MP photo's cut-out took there. A frame over
    ``WHOLE_PIXELS`` goes in strips of rows: the whole pass's pixels (a tie in the last float bit a level apart)."""
    import tracemalloc

    import cv2

    from birefvid.compose import band

    h, w = 3000, 4000  # 12 MP; D at 371 x 497, a ratio that is no whole number
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (1, h, w, 3), dtype=torch.uint8, generator=g).permute(0, 3, 1, 2)
    alphas = torch.rand((1, 1, h, w), generator=g)
    difference = (torch.rand((1, 371, 497, 3), generator=g) * 0.4 - 0.2).permute(0, 3, 1, 2)
    tracemalloc.start()
    try:
        subject = band._dense_subject_uint8(images, difference, alphas, 0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20, f"{peak >> 20} MB"  # D at full size alone is 144 MB; the output 36 MB
    d = cv2.resize(np.ascontiguousarray(difference[0].permute(1, 2, 0).numpy()), (w, h), interpolation=cv2.INTER_LINEAR)
    weight = (np.float32(1.0) - alphas[0, 0].numpy()) * np.float32(255.0)
    expected = cv2.add(np.ascontiguousarray(images[0].permute(1, 2, 0).numpy()), d * weight[..., None], dtype=cv2.CV_8U)
    apart = np.abs(subject.astype(np.int16) - expected)
    assert apart.max() <= 1 and (apart > 0).mean() < 1e-4, (apart.max(), (apart > 0).mean())
