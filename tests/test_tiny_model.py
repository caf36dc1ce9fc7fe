"""The shipped ``tiny`` checkpoint: loads offline and still cuts out subjects it has never seen.

A guard against a broken or stale shipped file (wrong dtype, renamed keys, a retrain gone wrong):
the figures the README quotes come from ``scripts/eval_tiny.py``; this checks a few held-out frames
against a floor well below them, so it fails on a regression but not on noise.
"""

from __future__ import annotations

import pytest

from birefvid.data import make_clip
from birefvid.eval import Evaluator
from birefvid.runtime import Segmenter

HELD_OUT_SEED = 9_000_001  # the eval script's clip; training scenes use (seed, index) pairs


@pytest.fixture(scope="module")
def tiny() -> Segmenter:
    return Segmenter("tiny", device="cpu", precision="fp32")


def test_tiny_runs_at_its_card_resolution(tiny):
    assert tiny.resolution == (256, 256)


def test_tiny_segments_a_held_out_clip(tiny):
    pairs = list(make_clip(HELD_OUT_SEED, 6, (256, 256)))
    alphas = tiny([image for image, _ in pairs])
    ev = Evaluator()
    for alpha, (_, mask) in zip(alphas, pairs):
        ev.step(alpha, mask)
        assert alpha[mask > 0.99].mean() > 0.8  # inside the subject: opaque
        assert alpha[mask < 0.01].mean() < 0.1  # the background: transparent
    scores = ev.results()
    assert scores["iou"] > 0.88 and scores["mae"] < 0.03, scores
