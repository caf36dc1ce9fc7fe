"""Our BiRefNet is checkpoint-compatible with, and numerically equal to, the official one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from birefvid.models import BACKBONES, BiRefNet

PARITY_CASES = [
    (backbone, inp)
    for backbone in ("pvt_v2_b0", "swin_v1_t", "swin_v1_l")
    for inp in ("square256", "wide224x320")
]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_state_dict_equals_official_manifest(backbone, reference_dir):
    manifest = json.loads((reference_dir / f"manifest_{backbone}.json").read_text())
    with torch.device("meta"):  # keys, shapes and dtypes without filling the weights (swin_v1_l: 200M of them)
        ours = BiRefNet(backbone).state_dict()
    assert {k: list(v.shape) for k, v in ours.items()} == {k: v["shape"] for k, v in manifest.items()}
    assert {k: str(v.dtype).removeprefix("torch.") for k, v in ours.items()} == {
        k: v["dtype"] for k, v in manifest.items()
    }


@pytest.fixture(scope="module")
def _models():
    return {}


@pytest.mark.parametrize("backbone,inp", PARITY_CASES)
def test_output_matches_official(backbone, inp, reference_dir, deterministic_state_dict, _models):
    if backbone not in _models:
        _models.clear()  # keep at most one large model alive
        model = BiRefNet(backbone).eval()
        model.load_state_dict(deterministic_state_dict(model.state_dict()), strict=True)
        _models[backbone] = model
    x = torch.from_numpy(np.load(reference_dir / f"input_{inp}.npy"))
    expected = np.load(reference_dir / f"output_{backbone}_{inp}.npy")
    with torch.inference_mode():
        got = _models[backbone](x).numpy()
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-3


def test_encoder_features_match_official(reference_dir, deterministic_state_dict):
    model = BiRefNet("pvt_v2_b0").eval()
    model.load_state_dict(deterministic_state_dict(model.state_dict()))
    x = torch.from_numpy(np.load(reference_dir / "input_square256.npy"))
    with torch.inference_mode():
        features = model.forward_encoder(x)
    for i, feature in enumerate(features, start=1):
        expected = np.load(reference_dir / f"encoder_pvt_v2_b0_square256_x{i}.npy").astype(np.float32)
        assert np.abs(feature.numpy() - expected).max() <= 1e-2  # reference stored as float16


def test_training_mode_returns_auxiliary_outputs():
    model = BiRefNet("pvt_v2_b0").train()
    out = model(torch.randn(2, 3, 64, 64))
    assert out.logits.shape == (2, 1, 64, 64)
    assert [t.shape[-1] for t in out.stage_logits] == [2, 4, 8]
    assert [t.shape[-1] for t in out.gradient_logits] == [2, 4, 8]
    assert all(t.shape == (2, 1, 64, 64) for t in out.gradient_labels)
    out.logits.mean().backward()  # differentiable end to end


def test_rejects_sizes_not_multiple_of_32():
    with pytest.raises(ValueError, match="multiples of 32"):
        BiRefNet("pvt_v2_b0").eval()(torch.zeros(1, 3, 48, 64))
