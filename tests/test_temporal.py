"""Temporal smoothers: less flicker, no lag on motion, resets, and the shared push/flush contract."""

from __future__ import annotations

import pytest
import torch

from birefvid.errors import ConfigError
from birefvid.temporal import (
    EmaSmoother,
    LookaheadSmoother,
    PassthroughSmoother,
    detect_scene_cut,
    ema,
    make_smoother,
)

H, W = 24, 32


def _noisy_static(n: int = 24, noise: float = 0.15) -> torch.Tensor:
    """A fixed soft-edged square with independent per-frame noise: pure flicker."""
    g = torch.Generator().manual_seed(0)
    base = torch.zeros((1, 1, H, W))
    base[..., 6:18, 8:24] = 1.0
    return (base + noise * torch.randn((n, 1, H, W), generator=g)).clamp(0, 1)


def _moving_square(n: int = 10, step: int = 2) -> torch.Tensor:
    """A binary 8x8 square moving right by ``step`` pixels a frame."""
    masks = torch.zeros((n, 1, H, W))
    for t in range(n):
        masks[t, :, 8:16, 2 + step * t : 10 + step * t] = 1.0
    return masks


def _flicker(masks: torch.Tensor) -> float:
    return float((masks[1:] - masks[:-1]).abs().mean())


def _run(smoother, masks: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    out, start = [], 0
    for size in sizes:
        out.append(smoother.push(masks[start : start + size]))
        start += size
    out.append(smoother.flush())
    return torch.cat(out)


def test_ema_function() -> None:
    cur, prev = torch.full((1, 1, 2, 2), 0.8), torch.full((1, 1, 2, 2), 0.4)
    assert torch.equal(ema(None, cur, 0.6), cur)
    assert torch.equal(ema(prev, cur, 0.0), cur)
    assert torch.allclose(ema(prev, cur, 0.5), torch.full_like(cur, 0.6))
    assert torch.allclose(ema(prev, cur, 0.5, motion_threshold=1.0), torch.full_like(cur, 0.6))  # d=0.4 <= t/2
    assert torch.equal(ema(prev, cur, 0.5, motion_threshold=0.4), cur)  # d >= t: motion, trust current


@pytest.mark.parametrize("smoother", [EmaSmoother(0.6), LookaheadSmoother(2)], ids=["ema", "lookahead"])
def test_smoothers_reduce_flicker_on_static_mask(smoother) -> None:
    masks = _noisy_static()
    out = _run(smoother, masks, [5, 7, 12])
    assert out.shape == masks.shape
    assert _flicker(out[3:]) < 0.6 * _flicker(masks[3:]), (_flicker(out[3:]), _flicker(masks[3:]))


def test_motion_aware_ema_follows_moving_square() -> None:
    masks = _moving_square()
    aware = EmaSmoother(0.6, motion_threshold=0.5).push(masks)
    assert torch.equal(aware > 0.5, masks > 0.5)  # no lag at all on a moving hard edge
    plain = EmaSmoother(0.6, motion_threshold=None).push(masks)
    assert not torch.equal(plain > 0.5, masks > 0.5)  # a plain EMA drags the leading edge behind


def test_lookahead_median_keeps_moving_edges() -> None:
    masks = _moving_square()
    out = _run(LookaheadSmoother(2), masks, [3, 3, 4])
    assert torch.equal(out, masks)


def test_ema_continues_across_batches() -> None:
    masks = _noisy_static(10)
    whole = EmaSmoother(0.6).push(masks)
    split = _run(EmaSmoother(0.6), masks, [3, 3, 4])
    assert torch.allclose(whole, split)


def test_reset_forgets() -> None:
    smoother = EmaSmoother(0.9, motion_threshold=None)
    smoother.push(torch.ones((3, 1, H, W)))
    fresh = torch.full((1, 1, H, W), 0.2)
    assert not torch.allclose(smoother(fresh), fresh)
    smoother.reset()
    assert torch.equal(smoother(fresh), fresh)


def test_scene_cut_detection() -> None:
    g = torch.Generator().manual_seed(3)
    dark = torch.randint(0, 60, (3, 48, 64), dtype=torch.uint8, generator=g)
    noisy = (dark.int() + torch.randint(-8, 9, dark.shape, generator=g)).clamp(0, 255).to(torch.uint8)
    bright = torch.randint(160, 256, (3, 48, 64), dtype=torch.uint8, generator=g)
    assert not detect_scene_cut(dark, dark)
    assert not detect_scene_cut(dark, noisy)
    assert detect_scene_cut(dark, bright)
    assert detect_scene_cut(dark.float() / 255, bright.float() / 255)


@pytest.mark.parametrize("kind", ["ema", "lookahead"])
def test_smoothers_reset_at_scene_cuts(kind: str) -> None:
    images = torch.cat([torch.full((4, 3, 48, 64), 20, dtype=torch.uint8), torch.full((4, 3, 48, 64), 220, dtype=torch.uint8)])
    masks = torch.cat([torch.zeros((4, 1, H, W)), torch.ones((4, 1, H, W))])
    masks[:4, ..., :4] = 1.0  # not constant within shot A
    opts = {"weight": 0.9, "motion_threshold": None} if kind == "ema" else {"window": 2, "mode": "mean"}
    smoother = make_smoother(kind, scene_cut_threshold=0.2, **opts)
    out = torch.cat([smoother.push(masks[:3], images[:3]), smoother.push(masks[3:], images[3:]), smoother.flush()])
    assert out.shape == masks.shape
    assert torch.equal(out[4:], masks[4:])  # the new shot starts clean: nothing from shot A leaks in
    plain = make_smoother(kind, **opts)
    leaked = torch.cat([plain.push(masks, images), plain.flush()])
    assert not torch.equal(leaked[4:], masks[4:])


def test_cut_thumbnails_from_flow_thumbnails_match_the_frames_own() -> None:
    """Smoothers that make flow thumbnails shrink those for the cut detector, not the frames again."""
    from birefvid.temporal.flow_smoother import batch_thumbnails
    from birefvid.temporal.smoothing import _small, _small_from_thumbs

    g = torch.Generator().manual_seed(3)
    yy, xx = torch.meshgrid(torch.arange(360.0), torch.arange(640.0), indexing="ij")
    scene = torch.stack([128 + 100 * torch.sin(xx / 23), 128 + 100 * torch.cos(yy / 17), 128 + 90 * torch.sin((xx + yy) / 41)])
    frames = (scene + torch.randint(-20, 21, (2, 3, 360, 640), generator=g)).clamp(0, 255).to(torch.uint8)
    direct, via_thumbs = _small(frames), _small_from_thumbs(batch_thumbnails(frames))
    assert via_thumbs.shape == direct.shape
    diff = (via_thumbs - direct).abs()
    # two area averages over slightly different footprints and roundings, far below a cut (0.15)
    assert diff.mean() < 2 / 255 and diff.max() < 8 / 255, (diff.mean() * 255, diff.max() * 255)


@pytest.mark.parametrize("kind", ["lookahead", "flow"])
def test_flow_smoothers_find_cuts_on_their_flow_thumbnails(kind: str, monkeypatch) -> None:
    import birefvid.temporal.smoothing as smoothing

    images = torch.cat([torch.full((4, 3, 48, 64), 20, dtype=torch.uint8), torch.full((4, 3, 48, 64), 220, dtype=torch.uint8)])
    images[:, :, 10:30, 20:40] = 128  # some texture for the flow
    smoother = make_smoother(kind, scene_cut_threshold=0.2, **({"window": 2, "warp": True} if kind == "lookahead" else {}))
    seen: list[list[bool]] = []
    real_flags = smoother._cuts.flags
    monkeypatch.setattr(smoother._cuts, "flags", lambda *a: seen.append(real_flags(*a)) or seen[-1])
    monkeypatch.setattr(smoothing, "_small", lambda images: pytest.fail("the frames were shrunk again for the cut detector"))
    smoother.push(torch.zeros((8, 1, H, W)), images)
    assert seen == [[False, False, False, False, True, False, False, False]]


def test_lookahead_emits_every_frame_in_order() -> None:
    masks = torch.arange(11, dtype=torch.float32).view(11, 1, 1, 1).expand(11, 1, H, W) / 20
    smoother = LookaheadSmoother(window=2)
    assert smoother.delay == 2
    assert smoother.push(masks[:1]).shape == (0, 1, H, W)  # waiting for future neighbours
    out = [smoother.push(masks[1:4]), smoother.push(masks[4:6]), smoother.push(masks[6:11])]
    assert len(smoother._buf) <= 5  # bounded: at most 2k+1 masks held
    out.append(smoother.flush())
    assert [len(o) for o in out] == [2, 2, 5, 2]
    assert torch.equal(torch.cat(out), masks)  # monotone input: median is the frame itself, in order
    assert smoother.flush().shape == (0, 1, H, W)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_lookahead_short_streams(n: int) -> None:
    masks = torch.rand((n, 1, H, W), generator=torch.Generator().manual_seed(n))
    out = _run(LookaheadSmoother(window=3, mode="mean"), masks, [n])
    assert out.shape == masks.shape


def test_lookahead_window_zero_passes_through() -> None:
    masks = _noisy_static(5)
    assert torch.equal(_run(LookaheadSmoother(window=0), masks, [2, 3]), masks)


def test_uniform_interface_and_factory() -> None:
    masks = _noisy_static(4)
    for kind in ("none", "ema", "lookahead"):
        smoother = make_smoother(kind)
        assert torch.cat([smoother.push(masks), smoother.flush()]).shape == masks.shape
    assert isinstance(make_smoother("none"), PassthroughSmoother)
    assert EmaSmoother().flush().shape[0] == 0
    assert torch.equal(make_smoother("none").push(masks), masks)


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="expected one of: none, ema, lookahead"):
        make_smoother("kalman")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="accepted: weight, motion_threshold, scene_cut_threshold"):
        make_smoother("ema", window=3)
    with pytest.raises(ConfigError, match="weight"):
        EmaSmoother(weight=1.5)
    with pytest.raises(ConfigError, match="window"):
        LookaheadSmoother(window=-1)
    with pytest.raises(ConfigError, match="scene_cut_threshold"):
        EmaSmoother(scene_cut_threshold=2.0)
    with pytest.raises(ValueError, match=r"float tensor \(N, 1, H, W\)"):
        EmaSmoother().push(torch.zeros((2, 3, H, W)))
