"""The procedural scene generator: deterministic, varied, exact soft masks, moving clips."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from birefvid.data import IMAGENET_MEAN, IMAGENET_STD, SceneDataset, make_clip, make_scene

SIZE = (64, 80)


def test_scene_types_and_ranges():
    image, mask = make_scene(0, SIZE)
    assert image.dtype == np.uint8 and image.shape == (64, 80, 3)
    assert mask.dtype == np.float32 and mask.shape == (64, 80)
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    assert 0.02 < mask.mean() < 0.9  # a subject is there, and it is not the whole frame


def test_scene_is_deterministic_per_seed():
    a_img, a_mask = make_scene(7, SIZE)
    b_img, b_mask = make_scene(np.random.default_rng(7), SIZE)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_mask, b_mask)
    c_img, c_mask = make_scene(8, SIZE)
    assert not np.array_equal(a_img, c_img)
    assert not np.array_equal(a_mask, c_mask)


def test_global_rng_untouched():
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    make_scene(1, SIZE)
    assert np.random.random() == before


def test_masks_have_fractional_edges_and_thin_parts():
    fractional, thin = [], []
    for seed in range(8):
        _, mask = make_scene(seed, (96, 96))
        fractional.append(((mask > 0.05) & (mask < 0.95)).mean())
        solid = mask > 0.5
        # thin structure: foreground pixels whose 5x5 neighbourhood is mostly background
        pad = np.pad(solid, 2)
        window = sum(pad[dy:dy + 96, dx:dx + 96] for dy in range(5) for dx in range(5))
        thin.append(int((solid & (window <= 10)).sum()))
    assert min(fractional) > 0.002  # every scene has anti-aliased edges
    assert sum(t > 0 for t in thin) >= 4  # most scenes carry 1-3 px strands or rings


def test_foreground_is_the_saturated_layer():
    # the documented cue: subject pixels are more saturated than background pixels
    sat_fg, sat_bg = [], []
    for seed in range(6):
        image, mask = make_scene(seed, (96, 96))
        rgb = image.astype(np.float32)
        sat = rgb.max(axis=2) - rgb.min(axis=2)
        sat_fg.append(sat[mask > 0.99].mean())
        sat_bg.append(sat[mask < 0.01].mean())
    assert np.mean(sat_fg) > 1.5 * np.mean(sat_bg)


def test_saturation_separates_subject_from_ground_in_every_scene():
    # the cue must hold per scene, not just on average: a dull subject (two opposite hues blended
    # to grey) or a vivid background leaves a model nothing to tell figure from ground
    for seed in range(40):
        image, mask = make_scene(seed, (96, 96))
        sat = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)[..., 1].astype(np.float32)
        fg_low = np.percentile(sat[mask > 0.95], 10)
        bg_high = np.percentile(sat[mask < 0.05], 90)
        assert fg_low > bg_high + 30, f"seed {seed}: subject p10 saturation {fg_low}, ground p90 {bg_high}"


def test_clip_moves_smoothly_and_is_deterministic():
    frames = list(make_clip(3, 6, SIZE))
    assert len(frames) == 6
    again = list(make_clip(3, 6, SIZE))
    for (a, am), (b, bm) in zip(frames, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(am, bm)
    masks = np.stack([m for _, m in frames])
    steps = np.abs(np.diff(masks, axis=0)).mean(axis=(1, 2))
    assert (steps > 0).all()  # the subject moves every frame
    assert steps.max() < 0.2  # ... but smoothly: consecutive masks mostly overlap
    ious = [((masks[i] > 0.5) & (masks[i + 1] > 0.5)).sum() / max(1, ((masks[i] > 0.5) | (masks[i + 1] > 0.5)).sum())
            for i in range(5)]
    assert min(ious) > 0.5


def test_clip_rejects_bad_sizes():
    with pytest.raises(ValueError, match="at least 16x16"):
        next(make_clip(0, 2, (8, 8)))
    assert list(make_clip(0, 0, SIZE)) == []


def test_scene_dataset_tensors():
    ds = SceneDataset(5, 64, seed=2)
    assert len(ds) == 5
    x, m = ds[3]
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    assert m.shape == (1, 64, 64) and 0 <= float(m.min()) and float(m.max()) <= 1
    # normalized with ImageNet statistics: undoing it lands in [0, 1]
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    raw = x * std + mean
    assert float(raw.min()) >= -1e-5 and float(raw.max()) <= 1 + 1e-5
    x2, m2 = SceneDataset(5, 64, seed=2)[3]  # pure function of (seed, index)
    assert torch.equal(x, x2) and torch.equal(m, m2)
    with pytest.raises(IndexError):
        ds[5]


def test_scene_dataset_flip_mirrors():
    plain = SceneDataset(16, 64, seed=4, flip=False)
    flipped = SceneDataset(16, 64, seed=4, flip=True)
    mirrored = 0
    for i in range(16):
        (_, ma), (_, mb) = plain[i], flipped[i]
        if not torch.equal(ma, mb):
            assert torch.equal(ma.flip(-1), mb)
            mirrored += 1
    assert 0 < mirrored < 16


def test_sample_module_writes_the_readmes_clip_without_the_repository(tmp_path, monkeypatch):
    """`python -m birefvid.data.sample` (what a pip install has in place of samples/): the bundled clip and masks."""
    import av

    from birefvid.data.sample import main

    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    with av.open(str(tmp_path / "samples" / "scene.mp4")) as clip:
        frames = [f.to_ndarray(format="rgb24") for f in clip.decode(video=0)]
        assert clip.streams.audio and clip.streams.audio[0].codec_context.name == "aac"
    with av.open(str(tmp_path / "samples" / "scene_mask.mkv")) as masks:
        mattes = [f.to_ndarray(format="gray") for f in masks.decode(video=0)]
    assert len(frames) == len(mattes) == 48 and frames[0].shape == (256, 256, 3)
    image, mask = next(iter(make_clip(20261121, 1, (256, 256))))
    assert np.abs(frames[0].astype(int) - image).mean() < 3  # the generator's seeded scene (H.264, crf 18)
    assert np.array_equal(mattes[0], np.round(mask * 255).astype(np.uint8))
