"""Backbones BiRefNet is published with, and the channel widths of their four outputs."""

from __future__ import annotations

from torch import nn

from ...errors import ConfigError
from .pvt_v2 import PVT_SPECS, PyramidVisionTransformerV2
from .swin import SWIN_SPECS, SwinTransformer

BACKBONES: tuple[str, ...] = tuple(SWIN_SPECS) + tuple(PVT_SPECS)


def backbone_channels(name: str) -> tuple[int, int, int, int]:
    """Channels of the backbone's outputs at strides 32, 16, 8, 4 (deepest first)."""
    if name in SWIN_SPECS:
        d = SWIN_SPECS[name].embed_dim
        return (d * 8, d * 4, d * 2, d)
    if name in PVT_SPECS:
        return tuple(reversed(PVT_SPECS[name].embed_dims))  # type: ignore[return-value]
    raise ConfigError(f"unknown backbone {name!r}; expected one of: {', '.join(BACKBONES)}")


def build_backbone(name: str) -> nn.Module:
    """Build an uninitialised backbone by name (weights come from a BiRefNet checkpoint)."""
    backbone_channels(name)  # validates the name
    if name in SWIN_SPECS:
        return SwinTransformer(SWIN_SPECS[name])
    return PyramidVisionTransformerV2(PVT_SPECS[name])
