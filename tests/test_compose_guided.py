"""``--upsample guided``: the matte's edge follows the picture's when it is brought to the frame's size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from birefvid.cli import main
from birefvid.compose.guided import EPS, RADIUS, _upsample_torch, guided_upsample
from birefvid.io.readback import iter_alpha
from process_fixtures import make_scene, red_key_segmenter, true_mask

SIDE, SMALL = 256, 64


def _edge_scene(textured_background: bool = False) -> tuple[torch.Tensor, np.ndarray]:
    """A 256² frame (1, 3, H, W) uint8: a bright disc (the subject) on a dark ground, and its exact matte."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    truth = (((yy - 120) ** 2 + (xx - 131) ** 2) < 70**2).astype(np.float32)
    rgb = np.where(truth[..., None] > 0, np.uint8(200), np.uint8(40)).repeat(3, axis=2).astype(np.uint8)
    if textured_background:  # strong stripes far from the subject: nothing of them may reach the matte
        stripes = ((xx // 4) % 2 == 0) & (xx > 215)
        rgb[stripes] = 255
    return torch.from_numpy(rgb).permute(2, 0, 1)[None], truth


def _small_matte(truth: np.ndarray) -> torch.Tensor:
    """What a model at 64² gives: the exact matte averaged down (soft over one small pixel at the edge)."""
    return torch.from_numpy(cv2.resize(truth, (SMALL, SMALL), interpolation=cv2.INTER_AREA))[None, None]


def _bilinear(matte: torch.Tensor) -> np.ndarray:
    return np.clip(cv2.resize(matte[0, 0].numpy(), (SIDE, SIDE), interpolation=cv2.INTER_LINEAR), 0, 1)


def test_the_edge_lands_where_the_pictures_edge_is():
    frame, truth = _edge_scene()
    small = _small_matte(truth)
    guided = guided_upsample(frame, small)[0, 0].numpy()
    plain = _bilinear(small)
    err_guided, err_plain = np.abs(guided - truth).mean(), np.abs(plain - truth).mean()
    assert err_guided < 0.3 * err_plain, (err_guided, err_plain)  # bilinear smears the edge over ~4 frame pixels
    assert ((guided > 0.5) == (truth > 0.5)).mean() > 0.999


def test_away_from_the_soft_edge_it_is_the_bilinear_matte_exactly():
    frame, truth = _edge_scene(textured_background=True)
    small = _small_matte(truth)
    guided = guided_upsample(frame, small)[0, 0].numpy()
    plain = _bilinear(small)
    far = cv2.dilate(((plain > 0.001) & (plain < 0.999)).astype(np.uint8), np.ones((25, 25), np.uint8)) == 0
    assert far.mean() > 0.5 and np.array_equal(guided[far], plain[far])  # the stripes left no trace
    assert guided[:, 216:].max() == 0.0


def test_matching_sizes_are_left_alone_and_torch_agrees_with_opencv():
    frame, truth = _edge_scene()
    full = torch.from_numpy(truth)[None, None]
    assert guided_upsample(frame, full) is full
    small = _small_matte(truth)
    on_cpu = guided_upsample(frame, small)
    in_torch = _upsample_torch(frame, small, RADIUS, EPS)  # the GPU path, run here on the CPU
    diff = (on_cpu - in_torch).abs()
    assert diff.max() < 1e-5  # the fit runs in float64 on both


@pytest.mark.parametrize("upsample", ["bilinear", "guided"])
def test_process_with_guided_upsampling_writes_the_sharper_mask(tmp_path, monkeypatch, upsample):
    """A 64² model on 192x144 frames: the red square's edge is off by a few pixels bilinear, about none guided."""
    size = (192, 144)
    clip = make_scene(tmp_path / "in.mov", n_frames=3, size=size)
    monkeypatch.setattr("birefvid.runtime.file_job.segmenter_for", lambda *a, **k: red_key_segmenter())
    out = tmp_path / f"{upsample}.mkv"
    argv = ["process", str(clip.path), "-o", str(out), "--output", "mask", "--smooth", "none", "--upsample", upsample, "-q"]
    assert main(argv) == 0
    masks = list(iter_alpha(out))
    errors = [np.abs(m.astype(float) - true_mask(i, size)).mean() / 255 for i, m in enumerate(masks)]
    assert len(masks) == 3
    if upsample == "guided":
        assert max(errors) < 0.004, errors
    else:
        assert min(errors) > 0.008, errors  # what guided improves on
