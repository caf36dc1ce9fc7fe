"""Decoder building blocks of BiRefNet: deformable ASPP, decoder/lateral blocks, input convs.

Attribute names follow the official checkpoints (``dec_att.aspp1.atrous_conv.offset_conv`` ...),
so published weights load with ``strict=True``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from birefvid.models.deform import modulated_deform_conv2d


class DeformableConv2d(nn.Module):
    """Modulated deformable convolution (DCNv2): offsets and a 0..2 modulator predicted from the input."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        k = kernel_size
        self.padding = padding
        self.offset_conv = nn.Conv2d(in_channels, 2 * k * k, k, 1, padding, bias=True)
        self.modulator_conv = nn.Conv2d(in_channels, k * k, k, 1, padding, bias=True)
        self.regular_conv = nn.Conv2d(in_channels, out_channels, k, 1, padding, bias=False)
        # Zero offsets and a modulator of 1 at initialisation: starts as a plain convolution.
        for conv in (self.offset_conv, self.modulator_conv):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Offsets and modulator come from one convolution over the concatenated weights: the input is
        # read once, and the exported graph has one Conv where it had two (same values, same gradients).
        weight = torch.cat((self.offset_conv.weight, self.modulator_conv.weight))
        bias = torch.cat((self.offset_conv.bias, self.modulator_conv.bias))
        both = F.conv2d(x, weight, bias, padding=self.padding)
        offset, modulator = both.split((self.offset_conv.out_channels, self.modulator_conv.out_channels), dim=1)
        return modulated_deform_conv2d(x, offset, self.regular_conv.weight, self.padding, 2.0 * torch.sigmoid(modulator))


def _bn_relu(channels: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]


class _DeformableBranch(nn.Module):
    """One ASPP branch: deformable conv, batch norm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.atrous_conv = DeformableConv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.atrous_conv(x)))


class ASPPDeformable(nn.Module):
    """Atrous-spatial-pyramid pooling with deformable branches of kernel 1, 3 and 7 plus global context."""

    def __init__(self, in_channels: int, out_channels: int | None = None, branch_kernels: tuple[int, ...] = (1, 3, 7)) -> None:
        super().__init__()
        out_channels = out_channels or in_channels
        mid = 256
        self.aspp1 = _DeformableBranch(in_channels, mid, 1)
        self.aspp_deforms = nn.ModuleList(_DeformableBranch(in_channels, mid, k) for k in branch_kernels)
        self.global_avg_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, mid, 1, bias=False), *_bn_relu(mid)
        )
        self.conv1 = nn.Conv2d(mid * (2 + len(branch_kernels)), out_channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.aspp1(x)
        branches = [branch(x) for branch in self.aspp_deforms]
        pooled = F.interpolate(self.global_avg_pool(x), size=first.shape[2:], mode="bilinear", align_corners=True)
        x = torch.cat((first, *branches, pooled), dim=1)
        return self.dropout(self.relu(self.bn1(self.conv1(x))))


class BasicDecBlk(nn.Module):
    """Decoder block: 3x3 conv to 64 channels, deformable ASPP, 3x3 conv out (each with BN)."""

    def __init__(self, in_channels: int, out_channels: int, inter_channels: int = 64) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, inter_channels, 3, 1, 1)
        self.relu_in = nn.ReLU(inplace=True)
        self.dec_att = ASPPDeformable(inter_channels)
        self.conv_out = nn.Conv2d(inter_channels, out_channels, 3, 1, 1)
        self.bn_in = nn.BatchNorm2d(inter_channels)
        self.bn_out = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu_in(self.bn_in(self.conv_in(x)))
        x = self.dec_att(x)
        return self.bn_out(self.conv_out(x))


class BasicLatBlk(nn.Module):
    """Lateral connection: a 1x1 conv from an encoder level into the decoder."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class SimpleConvs(nn.Module):
    """Two 3x3 convs (no activation) that embed image patches for the decoder's input reference."""

    def __init__(self, in_channels: int, out_channels: int, inter_channels: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, inter_channels, 3, 1, 1)
        self.conv_out = nn.Conv2d(inter_channels, out_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv1(x))
