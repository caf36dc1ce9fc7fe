"""Shared fixtures: the BiRefNet parity reference folder and deterministic-weight helpers."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = REPO_ROOT.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """``../shared/reference`` beside the repository; missing is a failure in CI, a skip elsewhere."""
    if not (REFERENCE_DIR / "index.json").is_file():
        message = f"BiRefNet parity reference not found at {REFERENCE_DIR}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def deterministic_state_dict(reference_dir: Path):
    """The reference's ``fill.deterministic_state_dict``: weights that depend only on key and shape."""
    spec = importlib.util.spec_from_file_location("birefnet_reference_fill", reference_dir / "fill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.deterministic_state_dict


@pytest.fixture(scope="session")
def pvt_b0_state(deterministic_state_dict):
    """Deterministic pvt_v2_b0 BiRefNet weights (reference fill), as a state dict."""
    from birefvid.models import BiRefNet

    return deterministic_state_dict(BiRefNet("pvt_v2_b0").state_dict())


@pytest.fixture(scope="session")
def pvt_b0_weights(pvt_b0_state, tmp_path_factory) -> Path:
    """A .pth checkpoint file of deterministic pvt_v2_b0 weights, written once per session."""
    import torch

    path = tmp_path_factory.mktemp("weights") / "pvt_b0_fill.pth"
    torch.save(pvt_b0_state, path)
    return path
