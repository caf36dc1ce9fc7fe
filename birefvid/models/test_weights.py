"""Deterministic test weights: every tensor filled from its own state-dict key, so any run, machine
or implementation with the same key names gets bit-identical weights.

``birefvid bench --backbone NAME`` uses them when no checkpoint is given: unlike a fresh model
(zero offsets, so the deformable convolution degenerates to a plain one), every layer has
non-trivial values, so speed-ups and precision losses are measured on realistic work. The rule
is the parity reference's (``tests/data/reference/fill.py``); a test checks the two agree.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import torch


def deterministic_tensor(key: str, shape: tuple[int, ...]) -> np.ndarray:
    """float32 values for state-dict entry ``key``, scaled like a trained layer of that kind."""
    rng = np.random.default_rng(zlib.crc32(key.encode("utf-8")))
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "running_var":
        return rng.uniform(0.5, 1.5, size=shape).astype(np.float32)
    if leaf == "running_mean":
        return (0.1 * rng.standard_normal(shape)).astype(np.float32)
    if len(shape) <= 1:
        scale, centre = (0.1, 1.0) if leaf == "weight" else (0.02, 0.0)  # norm scales / biases
        return (centre + scale * rng.standard_normal(shape)).astype(np.float32)
    if "relative_position_bias_table" in key:
        return (0.02 * rng.standard_normal(shape)).astype(np.float32)
    return (rng.standard_normal(shape) / math.sqrt(math.prod(shape[1:]))).astype(np.float32)


def deterministic_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state_dict`` with every floating-point tensor replaced by its deterministic values."""
    return {
        key: torch.from_numpy(deterministic_tensor(key, tuple(int(s) for s in value.shape))).to(value.dtype)
        if torch.is_floating_point(value)
        else value.clone()
        for key, value in state_dict.items()
    }


def model_with_test_weights(backbone: str) -> torch.nn.Module:
    """A BiRefNet with ``backbone`` and deterministic weights, in eval mode on the CPU."""
    from .birefnet import BiRefNet

    model = BiRefNet(backbone).eval()
    model.load_state_dict(deterministic_state_dict(model.state_dict()))
    return model
