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


def test_small_reductions_equal_numpy() -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(size=(9, 16, 2)).astype(np.float32)
    assert np.array_equal(_sq_norm(v), (v**2).sum(-1))
    d = rng.normal(size=(9, 16, 3)).astype(np.float32)
    assert np.array_equal(_max_abs(d), np.abs(d).max(-1))
