"""Live mode's mask carry (birefvid.temporal.carry): following motion beyond DIS's range by chaining flows."""

from __future__ import annotations

import numpy as np
import pytest

from birefvid.temporal.carry import MaskCarrier, pick_better_flow
from birefvid.temporal.flow import estimate_flow, flow_thumbnail

from flow_scenes import iou, scene

STEP = 8  # px a frame at 320x240: 4 thumbnail px, within DIS's reach frame to frame
FRAMES = 7  # frame 6 is 48 px (24 thumbnail px) from frame 0: far beyond it from scratch


def _clip(step: int = STEP, frames: int = FRAMES) -> list[tuple[np.ndarray, np.ndarray]]:
    return [scene(step * t, 0) for t in range(frames)]


def _carry_to_last(carrier: MaskCarrier, clip: list[tuple[np.ndarray, np.ndarray]], keys: bool = True) -> np.ndarray:
    """Frame 0's mask carried to the last frame, every frame shown in order (as the live runner does)."""
    frame0, mask0 = clip[0]
    carrier.observe(frame0, key=0)
    carrier.set_reference(frame0, mask0, key=0)
    out = None
    for t, (frame, _) in enumerate(clip[1:], start=1):
        out = carrier.carry(frame, key=t if keys else None)
    assert out is not None
    return out


def test_chained_carry_follows_a_subject_beyond_the_range_of_straight_flow():
    clip = _clip()
    truth = clip[-1][1]
    assert iou(clip[0][1], truth) < 0.2  # the stale mask misses most of the subject (0.17)
    straight = _carry_to_last(MaskCarrier(history=0), clip)
    chained = _carry_to_last(MaskCarrier(), clip)
    assert iou(straight, truth) < 0.3, iou(straight, truth)  # DIS from scratch loses it (0.20 here)
    assert iou(chained, truth) > 0.7, iou(chained, truth)  # 0.80 here


def test_without_keys_or_links_the_carry_is_the_straight_one():
    clip = _clip(step=4, frames=3)  # 8 px: DIS from scratch follows this
    straight = _carry_to_last(MaskCarrier(history=0), clip)
    assert iou(straight, clip[-1][1]) > 0.9
    # frames passed without keys are not chained
    np.testing.assert_array_equal(_carry_to_last(MaskCarrier(), clip, keys=False), straight)
    # a reference whose frame was never shown cannot be chained back to: straight flow again
    carrier = MaskCarrier()
    for t, (frame, _) in enumerate(clip[:2]):
        carrier.observe(frame, key=t)
    carrier.set_reference(clip[0][0], clip[0][1], key="never shown")
    np.testing.assert_array_equal(carrier.carry(clip[2][0], key=2), straight)


def test_reference_of_the_shown_frame_comes_back_as_is_and_reset_forgets():
    (frame, mask), (frame_b, _) = scene(), scene(STEP, 0)
    carrier = MaskCarrier()
    carrier.observe(frame, key=0)
    carrier.set_reference(frame, mask, key=0)
    assert carrier.carry(frame, key=0) is mask  # the same frame again: nothing to carry
    assert carrier.carry(frame_b, key=1) is not mask
    carrier.reset()
    assert carrier.carry(frame_b, key=2) is None


def test_a_guided_flow_leaves_later_unguided_flows_unchanged():
    # OpenCV's DIS keeps state from a call given an initial flow; birefvid keeps such calls on
    # their own instance, so a carry with a chain never changes the flows of one without
    a, b = flow_thumbnail(scene()[0]), flow_thumbnail(scene(10, 6)[0])
    before = estimate_flow(a, b)
    guided = estimate_flow(a, b, initial=np.full(a.shape + (2,), [5.0, 3.0], np.float32))
    np.testing.assert_array_equal(estimate_flow(a, b), before)
    inside = flow_thumbnail((scene()[1][..., None] * 255).repeat(3, 2).astype(np.uint8)) > 250
    assert np.abs(np.median(guided[inside], axis=0) - [5.0, 3.0]).max() < 0.3  # and the guided one is right


def test_pick_better_flow_takes_the_flow_that_explains_the_frame():
    source = flow_thumbnail(scene()[0])
    target = np.roll(source, 4, axis=1)  # target[p] = source[p - (4, 0)]: the true flow is (-4, 0)
    still = np.zeros(source.shape + (2,), np.float32)
    true = np.full(source.shape + (2,), [-4.0, 0.0], np.float32)
    inner = (slice(10, -10), slice(10, -10))  # away from the rolled-over border
    for first, second in ((still, true), (true, still)):
        picked = pick_better_flow(target, source, first, second)
        assert np.abs(picked[inner] - true[inner]).mean() < 0.2
    # flows that do equally well are averaged
    np.testing.assert_allclose(pick_better_flow(source, source, still, still), still)


def test_bad_arguments_are_errors():
    a = flow_thumbnail(scene()[0])
    with pytest.raises(ValueError, match="initial flow is 80x60"):
        estimate_flow(a, a, initial=np.zeros((60, 80, 2), np.float32))
    with pytest.raises(ValueError, match="history must be an int >= 0"):
        MaskCarrier(history=-1)
