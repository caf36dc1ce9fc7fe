"""BiRefNet models, backbones, published variants and weight loading."""

from .backbones import BACKBONES, backbone_channels
from .birefnet import BiRefNet, TrainOutput

__all__ = ["BACKBONES", "BiRefNet", "TrainOutput", "backbone_channels"]
