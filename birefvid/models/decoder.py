"""BiRefNet's decoder: coarse-to-fine with lateral links, image-patch input references at every
level (the "inward" bilateral reference) and gradient-attention gates (the "outward" reference).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import BasicDecBlk, BasicLatBlk, SimpleConvs

GRADIENT_CHANNELS = 16


def _resize(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with align_corners=True, as every BiRefNet checkpoint was trained."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def image_patches(image: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Cut ``image`` into a grid of patches the size of ``like`` and stack them on the channel axis.

    Channel order is (colour, grid row, grid column): ``b c (rows h) (cols w) -> b (c rows cols) h w``,
    the order the official checkpoints' ``ipt_blk`` convolutions expect (parity tests pin it).
    """
    b, c, h, w = image.shape
    ph, pw = like.shape[2:]
    rows, cols = h // ph, w // pw
    grid = image.reshape(b, c, rows, ph, cols, pw)
    return grid.permute(0, 1, 2, 4, 3, 5).reshape(b, c * rows * cols, ph, pw)


def _gradient_gate(in_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, GRADIENT_CHANNELS, 3, 1, 1), nn.BatchNorm2d(GRADIENT_CHANNELS), nn.ReLU(inplace=True)
    )


class Decoder(nn.Module):
    """Decodes (image, x1..x4) encoder features into logits; training also returns auxiliary maps."""

    def __init__(self, channels: tuple[int, int, int, int]) -> None:
        super().__init__()
        c0, c1, c2, c3 = channels  # deepest first
        ipt_out = (c0 // 8, c0 // 8, c1 // 8, c2 // 8, c3 // 8)
        for level, grid_log2, out in zip((5, 4, 3, 2, 1), (10, 8, 6, 4, 0), ipt_out):
            self.add_module(f"ipt_blk{level}", SimpleConvs(3 * 2**grid_log2, out, inter_channels=64))
        self.decoder_block4 = BasicDecBlk(c0 + ipt_out[0], c1)
        self.decoder_block3 = BasicDecBlk(c1 + ipt_out[1], c2)
        self.decoder_block2 = BasicDecBlk(c2 + ipt_out[2], c3)
        self.decoder_block1 = BasicDecBlk(c3 + ipt_out[3], c3 // 2)
        self.conv_out1 = nn.Sequential(nn.Conv2d(c3 // 2 + ipt_out[4], 1, 1, 1, 0))
        self.lateral_block4 = BasicLatBlk(c1, c1)
        self.lateral_block3 = BasicLatBlk(c2, c2)
        self.lateral_block2 = BasicLatBlk(c3, c3)
        # Training-only heads (multi-stage supervision and gradient prediction), kept so checkpoints load.
        for level, ch in zip((4, 3, 2), (c1, c2, c3)):
            self.add_module(f"conv_ms_spvn_{level}", nn.Conv2d(ch, 1, 1, 1, 0))
            self.add_module(f"gdt_convs_{level}", _gradient_gate(ch))
            self.add_module(f"gdt_convs_pred_{level}", nn.Sequential(nn.Conv2d(GRADIENT_CHANNELS, 1, 1, 1, 0)))
            self.add_module(f"gdt_convs_attn_{level}", nn.Sequential(nn.Conv2d(GRADIENT_CHANNELS, 1, 1, 1, 0)))

    def _with_image_reference(self, image: torch.Tensor, x: torch.Tensor, level: int) -> torch.Tensor:
        """Concatenate the embedded image patches of this level onto ``x``."""
        embed = getattr(self, f"ipt_blk{level}")(_resize(image_patches(image, x), x.shape[2:]))
        return torch.cat((x, embed), dim=1)

    def forward(
        self, image: torch.Tensor, features: tuple[torch.Tensor, ...], image_gradient: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, list[torch.Tensor]]]:
        """Return final logits and, when ``image_gradient`` is given (training), auxiliary outputs."""
        x1, x2, x3, x4 = features
        aux: dict[str, list[torch.Tensor]] = {"stage": [], "gradient_pred": [], "gradient_label": []}
        p = self._with_image_reference(image, x4, 5)
        skips = (x3, x2, x1)
        for step, level in enumerate((4, 3, 2)):
            p = getattr(self, f"decoder_block{level}")(p)
            gate = getattr(self, f"gdt_convs_{level}")(p)
            if image_gradient is not None:
                stage = getattr(self, f"conv_ms_spvn_{level}")(p)
                aux["stage"].append(stage)
                aux["gradient_label"].append(image_gradient * _resize(stage, image_gradient.shape[2:]))
                aux["gradient_pred"].append(getattr(self, f"gdt_convs_pred_{level}")(gate))
            p = p * getattr(self, f"gdt_convs_attn_{level}")(gate).sigmoid()
            skip = skips[step]
            p = _resize(p, skip.shape[2:]) + getattr(self, f"lateral_block{level}")(skip)
            p = self._with_image_reference(image, p, level)
        p = _resize(self.decoder_block1(p), image.shape[2:])
        p = self._with_image_reference(image, p, 1)
        return self.conv_out1(p), aux
