"""Optical-flow mask carrying (birefvid.temporal.flow) on synthetic moving-disc scenes.

Each scene is a textured disc (radius 40 px) over a textured background at 320x240; the
texture has structure at several scales, like real footage, so DIS has something to lock on
at every pyramid level. Thumbnails are 160x120, so a move of (dx, dy) full-resolution pixels
is (dx/2, dy/2) thumbnail pixels.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from birefvid.temporal.carry import MaskCarrier
from birefvid.temporal.flow import (
    estimate_flow,
    flow_confidence,
    flow_thumbnail,
    occlusion_aware_flow,
    _warp_grid_sample,
    warp_mask,
)

from flow_scenes import H, W, iou, scene, thumb_region


def test_thumbnail_is_small_gray_and_keeps_aspect():
    frame = cv2.resize(scene()[0], (640, 480))
    thumb = flow_thumbnail(frame)
    assert thumb.dtype == np.uint8 and thumb.shape == (120, 160)
    assert flow_thumbnail(np.zeros((100, 1000, 3), np.uint8)).shape == (16, 160)
    assert flow_thumbnail(frame[:90, :120]).shape == (90, 120)  # never upscaled
    # torch frames (any device) are pooled before the copy; same picture within rounding
    from_torch = flow_thumbnail(torch.from_numpy(frame).permute(2, 0, 1)[None])
    assert np.abs(from_torch.astype(int) - thumb.astype(int)).max() <= 1


@pytest.mark.parametrize("dx, dy", [(10, 6), (-8, 4), (0, -12)])
def test_estimate_flow_recovers_translation_inside_object(dx, dy):
    a, b = flow_thumbnail(scene()[0]), flow_thumbnail(scene(dx, dy)[0])
    flow = estimate_flow(a, b)
    assert flow.shape == (120, 160, 2) and flow.dtype == np.float32
    inside_a = thumb_region(scene()[1], 7)
    err = np.linalg.norm(flow[inside_a] - [dx / 2, dy / 2], axis=1)
    assert np.percentile(err, 95) < 0.5 and err.max() < 1.0, (np.percentile(err, 95), err.max())
    # DIS flow bleeds up to a patch (8 px) past an edge; beyond that the background is still
    background = thumb_region(1 - np.maximum(scene()[1], scene(dx, dy)[1]), 17)
    assert np.abs(flow[background]).max() < 0.5
    # convention: flow lives on the first frame's grid, so the reverse call lives on b's
    back = estimate_flow(b, a)
    inside_b = thumb_region(scene(dx, dy)[1], 7)
    assert np.abs(np.median(back[inside_b], axis=0) - [-dx / 2, -dy / 2]).max() < 0.2


@pytest.mark.parametrize("dx, dy", [(10, 0), (0, 10), (-10, 4)])
def test_warp_carries_mask_onto_moved_object(dx, dy):
    (frame_a, mask_a), (frame_b, mask_b) = scene(), scene(dx, dy)
    a, b = flow_thumbnail(frame_a), flow_thumbnail(frame_b)
    plain = warp_mask(mask_a, estimate_flow(b, a))
    aware = warp_mask(mask_a, occlusion_aware_flow(estimate_flow(b, a), estimate_flow(a, b)))
    stale = iou(mask_a, mask_b)
    assert stale < 0.8
    assert iou(plain, mask_b) > 0.9, (stale, iou(plain, mask_b))
    assert iou(aware, mask_b) > 0.9, (stale, iou(aware, mask_b))
    assert plain.shape == mask_a.shape and plain.dtype == np.float32
    assert plain.min() >= 0 and plain.max() <= 1


def _exact_flows(dx: float, dy: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """True thumbnail flows of the disc scene: B->A on B's grid and A->B on A's grid, and both masks."""
    mask_a, mask_b = scene()[1], scene(int(2 * dx), int(2 * dy))[1]
    small = lambda m: cv2.resize(m, (W // 2, H // 2), interpolation=cv2.INTER_AREA)  # noqa: E731
    b_to_a = small(mask_b)[..., None] * np.array([-dx, -dy], np.float32)
    a_to_b = small(mask_a)[..., None] * np.array([dx, dy], np.float32)
    return b_to_a.astype(np.float32), a_to_b.astype(np.float32), mask_a, mask_b


def test_occlusion_aware_flow_removes_the_ghost_left_behind():
    # With the exact flow, a plain backward warp copies A's disc into the background it
    # uncovered (that background did not move, so it samples where the disc was).
    b_to_a, a_to_b, mask_a, mask_b = _exact_flows(6, 0)
    plain = warp_mask(mask_a, b_to_a)
    aware = warp_mask(mask_a, occlusion_aware_flow(b_to_a, a_to_b))
    uncovered = (mask_a > 0.5) & (mask_b < 0.5)
    uncovered = cv2.erode(uncovered.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert plain[uncovered].mean() > 0.9  # the ghost
    assert aware[uncovered].max() < 0.1
    assert iou(plain, mask_b) < 0.88 < 0.95 < iou(aware, mask_b)
    # where the flow is consistent the blend changes nothing
    np.testing.assert_allclose(occlusion_aware_flow(a_to_b * 0, a_to_b * 0), 0)


def test_identical_frames_leave_mask_unchanged():
    frame, mask = scene()
    soft = cv2.GaussianBlur(mask, (0, 0), 3)
    thumb = flow_thumbnail(frame)
    flow = estimate_flow(thumb, thumb)
    assert np.abs(flow).max() < 1e-3
    assert np.abs(warp_mask(soft, flow) - soft).max() < 1e-3
    torch_mask = torch.from_numpy(soft)[None, None]
    assert (warp_mask(torch_mask, flow) - torch_mask).abs().max() < 1e-4
    carrier = MaskCarrier()
    carrier.set_reference(frame, soft)
    assert carrier.carry(frame.copy()) is soft


def test_confidence_high_where_consistent_low_where_uncovered():
    (frame_a, mask_a), (frame_b, mask_b) = scene(), scene(16, 0)
    a, b = flow_thumbnail(frame_a), flow_thumbnail(frame_b)
    conf = flow_confidence(estimate_flow(b, a), estimate_flow(a, b))  # trust in B->A, on B's grid
    assert conf.shape == (120, 160) and conf.dtype == np.float32
    assert conf.min() >= 0 and conf.max() <= 1
    uncovered = thumb_region(mask_a * (1 - mask_b), 3)
    assert uncovered.sum() > 50
    assert conf[uncovered].mean() < 0.3, conf[uncovered].mean()
    assert conf[thumb_region(mask_b, 7)].mean() > 0.95
    assert conf[thumb_region(1 - np.maximum(mask_a, mask_b), 9)].mean() > 0.95


def test_confidence_rule_on_exact_flows():
    b_to_a, a_to_b, _, _ = _exact_flows(6, 0)
    conf = flow_confidence(b_to_a, a_to_b)
    assert conf[thumb_region(scene(12, 0)[1], 3)].min() == 1.0  # disc: -6 then +6, consistent
    uniform = np.full((40, 50, 2), 3.0, np.float32)
    assert flow_confidence(uniform, -uniform)[10:30, 10:30].min() == 1.0
    assert flow_confidence(uniform, uniform)[10:30, 10:30].max() == 0.0  # +3 then +3: off by 6 px
    # the flow points out of the frame on the right: no counterpart there
    assert flow_confidence(uniform, -uniform)[:, -2:].max() == 0.0
    # tolerance grows with the motion (alpha |flow|^2): 0.9 px off is fine at 30 px, not at 0
    fast, slow = np.full((40, 50, 2), [30.0, 0.0], np.float32), np.zeros((40, 50, 2), np.float32)
    off = np.full((40, 50, 2), [0.9, 0.0], np.float32)
    assert flow_confidence(fast, off - fast)[10:30, 5:15].min() == 1.0
    assert flow_confidence(slow, off)[10:30, 10:30].max() < 0.5


@pytest.mark.parametrize("as_torch", [False, True])
def test_carrier_works_across_sizes(as_torch):
    (frame_a, mask_a), (frame_b, mask_b) = scene(), scene(10, 6)
    big_a, big_b = cv2.resize(frame_a, (640, 480)), cv2.resize(frame_b, (640, 480))
    big_mask_a = cv2.resize(mask_a, (640, 480), interpolation=cv2.INTER_NEAREST)
    big_mask_b = cv2.resize(mask_b, (640, 480), interpolation=cv2.INTER_NEAREST)
    carrier = MaskCarrier()
    assert carrier.carry(big_b) is None
    ref = torch.from_numpy(big_mask_a)[None, None] if as_torch else big_mask_a
    carrier.set_reference(big_a, ref)
    out = carrier.carry(big_b)
    if as_torch:
        assert isinstance(out, torch.Tensor) and out.shape == (1, 1, 480, 640)
        out = out[0, 0].numpy()
    assert out.shape == (480, 640)
    assert iou(big_mask_a, big_mask_b) < 0.75 and iou(out, big_mask_b) > 0.9
    # a mask at another resolution than the frames: flow is rescaled to the mask
    carrier.set_reference(big_a, mask_a)
    small_out = carrier.carry(big_b)
    assert small_out.shape == (H, W) and iou(small_out, mask_b) > 0.9
    # thumbnails do not depend on resolution: a 320x240 frame of the scene works as well
    assert iou(carrier.carry(frame_b), mask_b) > 0.9
    # the stream changed shape: no flow links the frames, the mask comes back unwarped
    assert carrier.carry(frame_b[:, :200]) is mask_a
    carrier.reset()
    assert carrier.carry(big_b) is None


def test_carrier_without_occlusion_pass_still_follows_object():
    (frame_a, mask_a), (frame_b, mask_b) = scene(), scene(-10, 4)
    carrier = MaskCarrier(occlusions=False)
    carrier.set_reference(frame_a, mask_a)
    assert iou(carrier.carry(frame_b), mask_b) > 0.9


def _smooth_random_flow(seed: int) -> np.ndarray:
    coarse = np.random.default_rng(seed).normal(0, 4, (6, 8, 2)).astype(np.float32)
    return cv2.resize(coarse, (160, 120), interpolation=cv2.INTER_CUBIC)


def test_numpy_and_torch_warps_agree():
    soft = cv2.GaussianBlur(scene()[1], (0, 0), 2)
    flows = [estimate_flow(flow_thumbnail(scene(10, 6)[0]), flow_thumbnail(scene()[0])), _smooth_random_flow(0)]
    masks = torch.stack([torch.from_numpy(soft), torch.from_numpy(soft[::-1].copy())])[:, None]  # (2, 1, H, W)
    for flow in flows:
        out = warp_mask(masks, flow)  # on the CPU: OpenCV's remap, item by item
        by_grid_sample = _warp_grid_sample(masks, flow)  # the GPU path, run here on the CPU
        assert out.shape == by_grid_sample.shape == masks.shape and out.dtype == masks.dtype
        for i in range(2):
            ref = warp_mask(masks[i, 0].numpy(), flow)
            assert np.array_equal(out[i, 0].numpy(), ref)
            diff = np.abs(by_grid_sample[i, 0].numpy() - ref)
            # cv2.remap interpolates at 1/32 px; grid_sample in float
            assert diff.max() < 0.02 and diff.mean() < 1e-3, (diff.max(), diff.mean())
    # a torch flow is accepted too, and a half-precision mask keeps its dtype
    half = warp_mask(masks.half(), torch.from_numpy(flows[1]))
    assert half.dtype == torch.float16 and (half.float() - warp_mask(masks, flows[1])).abs().max() < 2e-3


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.needs_cuda
@needs_cuda
def test_torch_warp_and_thumbnail_on_cuda_match_cpu():
    frame, mask = scene(10, 6)
    flow = _smooth_random_flow(1)
    cpu = warp_mask(torch.from_numpy(mask)[None, None], flow)
    gpu = warp_mask(torch.from_numpy(mask)[None, None].cuda(), flow)
    assert gpu.device.type == "cuda" and (gpu.cpu() - cpu).abs().max() < 1e-4
    on_gpu = torch.from_numpy(frame).permute(2, 0, 1).cuda()
    assert np.abs(flow_thumbnail(on_gpu).astype(int) - flow_thumbnail(frame).astype(int)).max() <= 1


def test_bad_inputs_raise_clear_errors():
    frame, mask = scene()
    gray = flow_thumbnail(frame)
    flow = np.zeros((120, 160, 2), np.float32)
    with pytest.raises(ValueError, match=r"uint8 \(H, W, 3\) RGB"):
        flow_thumbnail(frame.astype(np.float32))
    with pytest.raises(ValueError, match=r"uint8 \(H, W, 3\) RGB"):
        flow_thumbnail(frame[..., 0])
    with pytest.raises(ValueError, match=r"torch frame must be uint8 \(3, H, W\)"):
        flow_thumbnail(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="gray image"):
        estimate_flow(frame, frame)
    with pytest.raises(ValueError, match="same size"):
        estimate_flow(gray, gray[:-1])
    with pytest.raises(ValueError, match="at least 16 px"):
        estimate_flow(gray[:8], gray[:8])
    with pytest.raises(ValueError, match="unknown DIS preset"):
        estimate_flow(gray, gray, preset="slowest")
    with pytest.raises(ValueError, match=r"float \(h, w, 2\)"):
        warp_mask(mask, flow[..., :1])
    with pytest.raises(ValueError, match=r"numpy mask must be a float \(H, W\)"):
        warp_mask(mask[..., None], flow)
    with pytest.raises(ValueError, match=r"numpy mask must be a float \(H, W\)"):
        warp_mask((mask > 0.5).astype(np.uint8), flow)
    with pytest.raises(ValueError, match=r"torch mask must be a float \(N, 1, H, W\)"):
        warp_mask(torch.from_numpy(mask)[None], flow)
    with pytest.raises(ValueError, match="same shape"):
        flow_confidence(flow, flow[:-1])
    with pytest.raises(ValueError, match="max_side"):
        MaskCarrier(max_side=4)
    with pytest.raises(ValueError, match="finest_scale"):
        MaskCarrier(finest_scale=7)
    with pytest.raises(ValueError, match=r"torch mask must be a float \(N, 1, H, W\)"):
        MaskCarrier().set_reference(frame, torch.from_numpy(mask))
