"""The smoothers' hand-written fast paths give exactly what the plain library calls give."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from birefvid.temporal.flow import _sq_norm
from birefvid.temporal.flow_smoother import _max_abs
from birefvid.temporal.smoothing import median_of


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7])
def test_median_of_equals_torch_median(n: int) -> None:
    g = torch.Generator().manual_seed(n)
    for trial in range(20):  # ties (small integers) and distinct values alike
        if trial % 2:
            x = torch.randint(0, 3, (n, 1, 1, 9, 11), generator=g).float()
        else:
            x = torch.rand((n, 1, 1, 9, 11), generator=g)
        assert torch.equal(median_of(x), x.median(dim=0).values)
        assert torch.equal(median_of(list(x.unbind(0))), x.median(dim=0).values)  # a list, as the look-ahead passes


def test_small_reductions_equal_numpy() -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(size=(9, 16, 2)).astype(np.float32)
    assert np.array_equal(_sq_norm(v), (v**2).sum(-1))
    d = rng.normal(size=(9, 16, 3)).astype(np.float32)
    assert np.array_equal(_max_abs(d), np.abs(d).max(-1))


def test_lookahead_blurs_each_frame_once_with_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """FlowAligner keeps each keyed frame's blurred thumbnail while it is in the window: the look-ahead's
    masks are the ones blurring afresh for every pair gives, for one blur a frame instead of four."""
    import cv2

    from birefvid.temporal import flow_smoother
    from birefvid.temporal.smoothing import LookaheadSmoother

    g = torch.Generator().manual_seed(5)
    frames = (torch.rand((8, 3, 48, 64), generator=g) * 255).to(torch.uint8)
    frames[:, :, 10:30, 20:40] //= 3  # a dark square moving right, so the flows are not zero
    frames = torch.stack([f.roll(2 * i, dims=-1) for i, f in enumerate(frames)])
    masks = torch.rand((8, 1, 24, 32), generator=g)

    def run() -> torch.Tensor:
        smoother = LookaheadSmoother(window=2, warp=True)
        out = [smoother.push(masks[i : i + 2], frames[i : i + 2]) for i in range(0, 8, 2)]
        return torch.cat(out + [smoother.flush()])

    calls = []
    blur = cv2.GaussianBlur
    monkeypatch.setattr(flow_smoother.cv2, "GaussianBlur", lambda *a, **k: calls.append(1) or blur(*a, **k))
    cached = run()
    assert len(calls) == 8
    monkeypatch.setattr(flow_smoother.FlowAligner, "_blur", lambda self, thumb, key: blur(thumb.color, (0, 0), flow_smoother._BLUR))
    assert torch.equal(cached, run())
