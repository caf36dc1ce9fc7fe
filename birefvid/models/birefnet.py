"""BiRefNet (Zheng et al., "Bilateral Reference for High-Resolution Dichotomous Image Segmentation").

Our own implementation; its ``state_dict`` keys and shapes equal the official ones, so every
published checkpoint loads with ``strict=True``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import backbone_channels, build_backbone
from .blocks import BasicDecBlk
from .decoder import Decoder, _resize

CONTEXT_LEVELS = 3  # shallower levels concatenated onto the deepest one ("cxt")


@dataclass
class TrainOutput:
    """Everything the training objective needs from one training-mode forward pass."""

    logits: torch.Tensor  # (B, 1, H, W) final prediction
    stage_logits: list[torch.Tensor]  # multi-stage supervision maps at 1/32, 1/16, 1/8
    gradient_logits: list[torch.Tensor]  # gradient-head predictions at 1/32, 1/16, 1/8
    gradient_labels: list[torch.Tensor]  # their targets (B, 1, H, W): image gradient inside the predicted region


class BiRefNet(nn.Module):
    """BiRefNet with a Swin v1 or PVT v2 backbone. Eval ``forward`` returns logits (B, 1, H, W)."""

    def __init__(self, backbone: str = "swin_v1_l") -> None:
        super().__init__()
        self.backbone_name = backbone
        self.bb = build_backbone(backbone)
        # Multi-scale input ("cat"): each level concatenates full- and half-resolution features.
        channels = tuple(2 * c for c in backbone_channels(backbone))
        context = sum(channels[1:][::-1][-CONTEXT_LEVELS:])
        self.squeeze_module = nn.Sequential(BasicDecBlk(channels[0] + context, channels[0]))
        self.decoder = Decoder(channels)  # type: ignore[arg-type]

    def forward_encoder(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Multi-scale backbone features x1..x4, with x1..x3 concatenated onto x4 as context."""
        h, w = x.shape[2:]
        full = self.bb(x)
        half = self.bb(F.interpolate(x, size=(h // 2, w // 2), mode="bilinear", align_corners=True))
        x1, x2, x3, x4 = (torch.cat([f, _resize(g, f.shape[2:])], dim=1) for f, g in zip(full, half))
        context = [_resize(f, x4.shape[2:]) for f in (x1, x2, x3)][-CONTEXT_LEVELS:]
        return x1, x2, x3, torch.cat((*context, x4), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | TrainOutput:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] % 32 or x.shape[3] % 32:
            raise ValueError(f"BiRefNet expects (B, 3, H, W) with H and W multiples of 32, got {tuple(x.shape)}")
        x1, x2, x3, x4 = self.forward_encoder(x)
        x4 = self.squeeze_module(x4)
        gradient = _image_gradient(x) if self.training else None
        logits, aux = self.decoder(x, (x1, x2, x3, x4), gradient)
        if not self.training:
            return logits
        return TrainOutput(logits, aux["stage"], aux["gradient_pred"], aux["gradient_label"])


def _image_gradient(x: torch.Tensor) -> torch.Tensor:
    """Laplacian of the grey image: where fine structure is, the target of the gradient heads."""
    from kornia.filters import laplacian  # imported lazily: only training needs kornia here

    return laplacian(x.mean(dim=1, keepdim=True), kernel_size=5)
