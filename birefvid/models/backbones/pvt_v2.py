"""PVT v2 backbone (overlapping patch embeddings, spatial-reduction attention, conv MLP).

Names match BiRefNet's published checkpoints (``patch_embed1``, ``block1.N.attn.sr``, ``norm1``...).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn


@dataclass(frozen=True)
class PvtSpec:
    """Hyper-parameters of one PVT v2 size."""

    embed_dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    mlp_ratios: tuple[int, int, int, int]
    num_heads: tuple[int, int, int, int] = (1, 2, 5, 8)
    sr_ratios: tuple[int, int, int, int] = (8, 4, 2, 1)


PVT_SPECS: dict[str, PvtSpec] = {
    "pvt_v2_b0": PvtSpec((32, 64, 160, 256), (2, 2, 2, 2), (8, 8, 4, 4)),
    "pvt_v2_b1": PvtSpec((64, 128, 320, 512), (2, 2, 2, 2), (8, 8, 4, 4)),
    "pvt_v2_b2": PvtSpec((64, 128, 320, 512), (3, 4, 6, 3), (8, 8, 4, 4)),
    "pvt_v2_b5": PvtSpec((64, 128, 320, 512), (3, 6, 40, 3), (4, 4, 4, 4)),
}

_BlockNorm = partial(nn.LayerNorm, eps=1e-6)  # block and stage norms; embed and sr norms use 1e-5


class DWConv(nn.Module):
    """Depth-wise 3x3 conv applied to a token sequence laid back onto its (H, W) grid."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        x = self.dwconv(x.transpose(1, 2).reshape(b, c, h, w))
        return x.flatten(2).transpose(1, 2)


class ConvMlp(nn.Module):
    """fc1 -> depth-wise conv -> GELU -> fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x), h, w)))


class SRAttention(nn.Module):
    """Attention whose keys/values come from a spatially reduced (strided conv) token grid."""

    def __init__(self, dim: int, num_heads: int, sr_ratio: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, dim * 2)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        heads = self.num_heads
        q = self.q(x).reshape(b, n, heads, c // heads).permute(0, 2, 1, 3)
        if self.sr_ratio > 1:
            x = self.sr(x.permute(0, 2, 1).reshape(b, c, h, w)).reshape(b, c, -1).permute(0, 2, 1)
            x = self.norm(x)
        kv = self.kv(x).reshape(b, -1, 2, heads, c // heads).permute(2, 0, 3, 1, 4)
        attn = ((q @ kv[0].transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ kv[1]).transpose(1, 2).reshape(b, n, c))


class PvtBlock(nn.Module):
    """Pre-norm transformer block: SR attention then conv MLP, both residual."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int, sr_ratio: int) -> None:
        super().__init__()
        self.norm1 = _BlockNorm(dim)
        self.attn = SRAttention(dim, num_heads, sr_ratio)
        self.norm2 = _BlockNorm(dim)
        self.mlp = ConvMlp(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), h, w)
        return x + self.mlp(self.norm2(x), h, w)


class OverlapPatchEmbed(nn.Module):
    """Strided conv with overlapping windows, then LayerNorm over the token sequence."""

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, patch_size, stride, patch_size // 2)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        h, w = x.shape[2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class PyramidVisionTransformerV2(nn.Module):
    """PVT v2 backbone returning four feature maps at strides 4, 8, 16 and 32."""

    def __init__(self, spec: PvtSpec) -> None:
        super().__init__()
        dims = spec.embed_dims
        for i in range(4):
            in_ch = 3 if i == 0 else dims[i - 1]
            patch, stride = (7, 4) if i == 0 else (3, 2)
            self.add_module(f"patch_embed{i + 1}", OverlapPatchEmbed(in_ch, dims[i], patch, stride))
            blocks = nn.ModuleList(
                PvtBlock(dims[i], spec.num_heads[i], spec.mlp_ratios[i], spec.sr_ratios[i]) for _ in range(spec.depths[i])
            )
            self.add_module(f"block{i + 1}", blocks)
            self.add_module(f"norm{i + 1}", _BlockNorm(dims[i]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        b = x.shape[0]
        outs = []
        for i in range(1, 5):
            x, h, w = getattr(self, f"patch_embed{i}")(x)
            for block in getattr(self, f"block{i}"):
                x = block(x, h, w)
            x = getattr(self, f"norm{i}")(x)
            x = x.reshape(b, h, w, -1).permute(0, 3, 1, 2).contiguous()
            outs.append(x)
        return tuple(outs)
