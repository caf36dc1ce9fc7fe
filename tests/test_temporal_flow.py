"""Flow-compensated smoothing: FlowSmoother and LookaheadSmoother(warp=True) on synthetic moving scenes.

Scenes are a textured disc (with a thin vertical bar attached) over a textured background at
120x160, so the flow thumbnails (160 px) are the frames themselves and DIS has texture at
every scale to lock on. The raw masks are the exact masks, plus noise where a test needs
flicker; lag is the true centroid minus the smoothed one along the motion, in frames.
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np
import pytest
import torch

from birefvid.errors import ConfigError
from birefvid.temporal import EmaSmoother, FlowAligner, FlowSmoother, LookaheadSmoother, make_smoother

H, W = 120, 160
R = 18  # disc radius
BAR = (2, 16)  # thin bar (width, length) hanging below the disc


def _texture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tex = np.zeros((h, w, 3), np.float32)
    for cell, weight in [(16, 1.0), (8, 0.7), (4, 0.5), (2, 0.3)]:
        coarse = rng.random((h // cell + 2, w // cell + 2, 3)).astype(np.float32)
        tex += weight * cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    tex -= tex.min()
    return (tex * (255 / tex.max())).astype(np.uint8)


_BG = _texture(H, W, 1)
_BG2 = (255 - _texture(H, W, 7)).copy()  # another shot: different and brighter on average
_OBJ = _texture(H, W, 2)


def _scene(x: int, y: int = 60, bg: np.ndarray = _BG) -> tuple[np.ndarray, np.ndarray]:
    """Frame (H, W, 3) uint8 and exact mask (H, W) float32 of the object centred at (x, y)."""
    yy, xx = np.mgrid[:H, :W]
    mask = ((xx - x) ** 2 + (yy - y) ** 2 < R**2).astype(np.float32)
    bx = x - BAR[0] // 2
    mask[y + R - 2 : y + R + BAR[1], max(bx, 0) : max(bx + BAR[0], 0)] = 1.0
    obj = np.roll(_OBJ, (y - 60, x - 80), axis=(0, 1))  # the texture moves with the object
    frame = np.where(mask[..., None] > 0, obj, bg)
    return frame, mask


def _clip(xs, noise: float = 0.0, seed: int = 0, bg: np.ndarray = _BG) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames (N, 3, H, W) uint8 with pixel noise and exact masks (N, 1, H, W) for the object at each x."""
    rng = np.random.default_rng(seed)
    frames, masks = [], []
    for x in xs:
        f, m = _scene(int(x), bg=bg)
        if noise:
            f = np.clip(f + rng.normal(0, noise, f.shape), 0, 255).astype(np.uint8)
        frames.append(f)
        masks.append(m)
    images = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()
    return images, torch.from_numpy(np.stack(masks))[:, None]


def _run(smoother, masks: torch.Tensor, images: Optional[torch.Tensor], step: int = 3) -> torch.Tensor:
    out = [smoother.push(masks[i : i + step], None if images is None else images[i : i + step])
           for i in range(0, len(masks), step)]
    return torch.cat(out + [smoother.flush()])


def _centroid_x(mask: torch.Tensor) -> float:
    m = (mask[0] >= 0.5).float()
    return float((m.sum(0) * torch.arange(W)).sum() / m.sum())


def _lag(out: torch.Tensor, truth: torch.Tensor, speed: float, skip: int = 2) -> float:
    """Mean (true - smoothed) centroid along x over the speed, in frames; ends skipped."""
    lags = [(_centroid_x(truth[t]) - _centroid_x(out[t])) / speed for t in range(skip, len(out) - skip)]
    return float(np.mean(lags))


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a >= 0.5, b >= 0.5
    return float((a & b).sum() / (a | b).sum())


def _flicker(masks: torch.Tensor) -> float:
    return float((masks[1:] - masks[:-1]).abs().mean())


def test_flow_smoother_contract() -> None:
    images, masks = _clip(range(50, 80, 3), noise=6)
    noisy = (masks + 0.1 * torch.randn(masks.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    smoother = make_smoother("flow", weight=0.7)
    assert isinstance(smoother, FlowSmoother) and smoother.delay == 0
    first = smoother.push(noisy[:1], images[:1])
    assert torch.equal(first, noisy[:1])  # stream start: passes through
    rest = smoother.push(noisy[1:], images[1:])
    assert rest.shape == noisy[1:].shape  # delay 0: every frame comes straight back
    assert smoother.flush().shape == (0, 1, H, W)
    whole = torch.cat([first, rest])
    split = _run(FlowSmoother(weight=0.7), noisy, images, step=4)  # batches do not matter
    assert torch.allclose(whole, split, atol=1e-6)
    smoother.reset()
    assert torch.equal(smoother.push(noisy[5:6], images[5:6]), noisy[5:6])  # reset: the next frame passes through


def test_flow_smoother_needs_the_frames() -> None:
    images, masks = _clip([60, 62])
    with pytest.raises(ValueError, match=r"needs them: push\(alphas, images\)"):
        FlowSmoother().push(masks)
    with pytest.raises(ValueError, match="got 1 images for 2 alphas"):
        FlowSmoother().push(masks, images[:1])


@pytest.mark.parametrize("kind,options", [("flow", {}), ("lookahead", {"warp": True})])  # as birefvid process builds them
def test_frames_too_small_for_flow_are_smoothed_without_alignment(kind, options, caplog) -> None:
    # under 16 px a side DIS has no room: a still tiny clip is smoothed as if nothing moved, with a warning
    rng = np.random.default_rng(0)
    images = torch.full((6, 3, 8, 8), 90, dtype=torch.uint8)
    masks = torch.from_numpy(np.clip(0.5 + rng.normal(0, 0.2, (6, 1, 8, 8)), 0, 1).astype(np.float32))
    with caplog.at_level("WARNING"):
        out = _run(make_smoother(kind, **options), masks, images)
    assert out.shape == masks.shape
    assert float((out[2:4] - 0.5).abs().mean()) < 0.85 * float((masks[2:4] - 0.5).abs().mean())  # the noise is averaged
    assert "too small for optical flow" in caplog.text and "without motion alignment" in caplog.text


def test_a_long_strip_still_gets_flow() -> None:
    # 640x20: shrunk to a 160-px long side it would be 5 px across; its thumbnail keeps 16
    images = torch.from_numpy(np.random.default_rng(1).integers(0, 255, (4, 3, 20, 640), dtype=np.uint8))
    masks = torch.rand(4, 1, 20, 640)
    assert _run(FlowSmoother(), masks, images).shape == masks.shape


def test_flow_smoother_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="weight"):
        FlowSmoother(weight=1.0)
    with pytest.raises(ConfigError, match="motion_threshold"):
        make_smoother("flow", motion_threshold=0.0)
    with pytest.raises(ConfigError, match="unknown option"):
        make_smoother("flow", window=2)
    with pytest.raises(ConfigError, match="preset"):
        FlowAligner(preset="slowest")


def test_flow_smoother_cuts_flicker_on_a_noisy_still_subject() -> None:
    n = 16
    images, masks = _clip([80] * n, noise=12)  # nothing moves: every change is noise
    g = torch.Generator().manual_seed(1)
    raw = (masks + 0.15 * torch.randn(masks.shape, generator=g)).clamp(0, 1)
    out = _run(FlowSmoother(), raw, images)
    assert out.shape == raw.shape
    assert _flicker(out[3:]) < 0.6 * _flicker(raw[3:]), (_flicker(out[3:]), _flicker(raw[3:]))
    assert _iou(out[-1], masks[-1]) >= _iou(raw[-1], masks[-1]) - 0.005


def test_flow_smoother_does_not_lag_a_constant_speed_subject() -> None:
    speed = 4
    images, masks = _clip(range(40, 40 + 14 * speed, speed), noise=4)
    out = _run(FlowSmoother(), masks, images)
    lag = _lag(out, masks, speed)
    assert lag <= 0.5, lag  # trails by half a frame at most
    assert min(_iou(o, m) for o, m in zip(out, masks)) >= 0.95
    plain = _run(EmaSmoother(0.7, motion_threshold=None), masks, images)
    assert _lag(plain, masks, speed) > 0.5  # the measure does see the lag of an EMA without motion compensation


def test_scene_cut_takes_the_raw_mask() -> None:
    a_images, a_masks = _clip(range(50, 62, 2), noise=4)
    b_images, b_masks = _clip(range(100, 88, -2), noise=4, bg=_BG2)
    images, masks = torch.cat([a_images, b_images]), torch.cat([a_masks, b_masks])
    cut = len(a_masks)
    out = _run(FlowSmoother(), masks, images)  # detector on (0.15 by default): history dropped at the cut
    assert torch.equal(out[cut], masks[cut])
    undetected = _run(FlowSmoother(scene_cut_threshold=None), masks, images)
    # without the detector the carry across the cut is not trusted: the raw mask within 1 frame
    assert max(_iou(undetected[cut], masks[cut]), _iou(undetected[cut + 1], masks[cut + 1])) >= 0.97


@pytest.mark.parametrize("mode", ["median", "mean"])
def test_lookahead_warp_keeps_a_fast_thin_subject_without_lag(mode: str) -> None:
    speed = 6  # the 2-px bar moves three times its width each frame
    images, masks = _clip(range(40, 40 + 14 * speed, speed), noise=4)
    warped = _run(LookaheadSmoother(2, mode=mode, warp=True), masks, images)
    assert warped.shape == masks.shape
    plain = _run(LookaheadSmoother(2, mode=mode), masks, images)
    iou_warped = float(np.mean([_iou(o, m) for o, m in zip(warped, masks)]))
    iou_plain = float(np.mean([_iou(o, m) for o, m in zip(plain, masks)]))
    assert iou_warped >= 0.99, iou_warped  # the raw masks here are exact: IoU 1
    assert iou_plain < iou_warped - 0.01  # unwarped, the neighbours outvote the thin bar
    assert abs(_lag(warped, masks, speed)) <= 0.1


def test_lookahead_warp_cuts_flicker_on_a_noisy_still_subject() -> None:
    images, masks = _clip([80] * 14, noise=12)
    raw = (masks + 0.15 * torch.randn(masks.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    out = _run(LookaheadSmoother(2, warp=True), raw, images)
    assert _flicker(out[2:-2]) < 0.6 * _flicker(raw[2:-2])


def test_lookahead_warp_without_frames_filters_unwarped() -> None:
    images, masks = _clip(range(40, 70, 3))
    no_frames = _run(LookaheadSmoother(2, warp=True), masks, None)
    unwarped = _run(LookaheadSmoother(2), masks, images)
    assert torch.equal(no_frames, unwarped)


def test_lookahead_warp_holds_few_flows() -> None:
    images, masks = _clip(range(40, 80, 2))
    smoother = LookaheadSmoother(2, warp=True)
    _run(smoother, masks, images, step=5)
    assert smoother._aligner is not None and smoother._aligner._cache == {} and smoother._aligner._raw == {}  # flushed: nothing held
    smoother.push(masks[:7], images[:7])
    assert len(smoother._aligner._cache) <= 2 * 2 * 2 * 2  # pairs within the window, both directions


def test_float_frames_work_like_uint8() -> None:
    images, masks = _clip(range(50, 70, 2), noise=4)
    as_uint8 = _run(FlowSmoother(), masks, images)
    as_float = _run(FlowSmoother(), masks, images.float() / 255)
    assert torch.allclose(as_uint8, as_float, atol=1e-3)


@pytest.mark.needs_cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_smoothers_keep_masks_on_the_gpu() -> None:
    images, masks = _clip(range(50, 74, 3), noise=4)
    cpu = _run(FlowSmoother(), masks, images)
    gpu = _run(FlowSmoother(), masks.cuda(), images.cuda())
    assert gpu.device.type == "cuda"
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-3)
    look = _run(LookaheadSmoother(2, warp=True), masks.cuda(), images.cuda())
    assert look.device.type == "cuda" and look.shape == masks.shape


def test_chained_flow_adds_the_two_motions() -> None:
    from birefvid.temporal.flow import chain_flows

    h, w = 20, 30
    first = np.zeros((h, w, 2), np.float32)
    first[..., 0], first[..., 1] = 3.0, 1.0  # a -> b: 3 px right, 1 down
    second = np.zeros((h, w, 2), np.float32)
    second[..., 0] = 0.1 * np.arange(w, dtype=np.float32)[None, :]  # b -> c: faster further right
    chained = chain_flows(first, second)
    xs = np.arange(w - 4, dtype=np.float32)
    np.testing.assert_allclose(chained[2:-2, : w - 4, 0], np.broadcast_to(3.0 + 0.1 * (xs + 3.0), (h - 4, w - 4)), atol=1e-4)
    np.testing.assert_allclose(chained[..., 1], 1.0, atol=1e-6)


def test_lookahead_estimates_flow_only_between_neighbours(monkeypatch) -> None:
    """Flows two frames apart are chained through the frame between: DIS runs twice per neighbouring pair, no more."""
    import birefvid.temporal.flow_smoother as flow_smoother

    calls = []
    estimate = flow_smoother.estimate_flow

    def counted(a, b, *args):
        calls.append(1)
        return estimate(a, b, *args)

    monkeypatch.setattr(flow_smoother, "estimate_flow", counted)
    images, masks = _clip(range(40, 70, 3), noise=4)  # 10 frames, moving
    out = _run(LookaheadSmoother(2, warp=True), masks, images)
    assert out.shape == masks.shape
    assert len(calls) == 2 * (len(masks) - 1)  # unchained it was 2 * (9 + 8)
    assert float(np.mean([_iou(o, m) for o, m in zip(out, masks)])) >= 0.99
