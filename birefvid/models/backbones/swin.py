"""Swin Transformer v1 backbone (the dense-prediction variant: pads to window multiples, any input size).

Layout and names match the checkpoints BiRefNet publishes (``layers.N.blocks.M.attn.qkv`` ...,
``norm0..norm3`` on the four outputs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SwinSpec:
    """Hyper-parameters of one Swin size."""

    embed_dim: int
    depths: tuple[int, int, int, int]
    num_heads: tuple[int, int, int, int]
    window_size: int


SWIN_SPECS: dict[str, SwinSpec] = {
    "swin_v1_t": SwinSpec(96, (2, 2, 6, 2), (3, 6, 12, 24), 7),
    "swin_v1_s": SwinSpec(96, (2, 2, 18, 2), (3, 6, 12, 24), 7),
    "swin_v1_b": SwinSpec(128, (2, 2, 18, 2), (4, 8, 16, 32), 12),
    "swin_v1_l": SwinSpec(192, (2, 2, 18, 2), (6, 12, 24, 48), 12),
}


class Mlp(nn.Module):
    """Two-layer GELU MLP of a transformer block."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * windows, ws, ws, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, ws, ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """(B * windows, ws, ws, C) -> (B, H, W, C)."""
    b = windows.shape[0] // ((h // ws) * (w // ws))
    x = windows.view(b, h // ws, w // ws, ws, ws, -1)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, -1)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window, with a learned relative position bias."""

    def __init__(self, dim: int, window_size: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        ws = window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, num_heads))
        # made on the CPU even under `with torch.device("meta")` (how --weights FILE's backbone is found): on meta,
        # stack imported torch._dynamo, 1.5 s of CPU at the start of every run given a .pth file
        coords = torch.stack(torch.meshgrid(torch.arange(ws, device="cpu"), torch.arange(ws, device="cpu"), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
        self.register_buffer("relative_position_index", rel[..., 0] * (2 * ws - 1) + rel[..., 1])
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        attn = attn + bias.permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(bw // nw, nw, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0).to(attn.dtype)
            attn = attn.view(-1, self.num_heads, n, n)
        attn = self.softmax(attn)
        return self.proj((attn @ v).transpose(1, 2).reshape(bw, n, c))


class SwinBlock(nn.Module):
    """Transformer block over (shifted) windows; pads the token grid to a window multiple."""

    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)

    def forward(self, x: torch.Tensor, h: int, w: int, attn_mask: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        ws = self.window_size
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        pad_r, pad_b = (ws - w % ws) % ws, (ws - h % ws) % ws
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))  # zeros after the norm, as the released models were trained
        hp, wp = x.shape[1], x.shape[2]
        if self.shift_size:
            x = torch.roll(x, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
        windows = window_partition(x, ws).reshape(-1, ws * ws, c)
        windows = self.attn(windows, attn_mask if self.shift_size else None)
        x = window_reverse(windows.reshape(-1, ws, ws, c), ws, hp, wp)
        if self.shift_size:
            x = torch.roll(x, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        x = x[:, :h, :w, :].reshape(b, h * w, c)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2x2 token merge that halves resolution and doubles channels (pads odd sizes)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, _, c = x.shape
        x = x.view(b, h, w, c)
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class SwinStage(nn.Module):
    """A stack of alternating regular/shifted window blocks, then an optional patch merge."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, downsample: bool) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = window_size // 2
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2) for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def _shift_mask(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        """Additive mask (-100 between tokens from different regions) for shifted windows."""
        ws, s = self.window_size, self.shift_size
        hp, wp = -(-h // ws) * ws, -(-w // ws) * ws
        regions = torch.zeros((1, hp, wp, 1), device=device)
        slices = (slice(0, -ws), slice(-ws, -s), slice(-s, None))
        label = 0
        for hs in slices:
            for wsl in slices:
                regions[:, hs, wsl, :] = label
                label += 1
        ids = window_partition(regions, ws).reshape(-1, ws * ws)
        diff = ids.unsqueeze(1) - ids.unsqueeze(2)
        return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)

    def forward(self, x: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        """Return (stage output, input of the next stage, its height, its width)."""
        mask = self._shift_mask(h, w, x.device)
        for block in self.blocks:
            x = block(x, h, w, mask)
        if self.downsample is None:
            return x, x, h, w
        return x, self.downsample(x, h, w), (h + 1) // 2, (w + 1) // 2


class PatchEmbed(nn.Module):
    """4x4 patch embedding (pads to a multiple of 4) followed by LayerNorm."""

    def __init__(self, embed_dim: int, patch_size: int = 4) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(3, embed_dim, patch_size, patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        h, w = x.shape[2:]
        if w % p or h % p:
            x = F.pad(x, (0, (p - w % p) % p, 0, (p - h % p) % p))
        x = self.proj(x)
        b, c, hh, ww = x.shape
        x = self.norm(x.flatten(2).transpose(1, 2))
        return x.transpose(1, 2).reshape(b, c, hh, ww)


class SwinTransformer(nn.Module):
    """Swin v1 backbone returning four feature maps at strides 4, 8, 16 and 32."""

    def __init__(self, spec: SwinSpec) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(spec.embed_dim)
        dims = [spec.embed_dim * 2**i for i in range(4)]
        self.num_features = dims
        self.layers = nn.ModuleList(
            SwinStage(dims[i], spec.depths[i], spec.num_heads[i], spec.window_size, downsample=i < 3) for i in range(4)
        )
        for i, dim in enumerate(dims):
            self.add_module(f"norm{i}", nn.LayerNorm(dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.patch_embed(x)
        h, w = x.shape[2:]
        x = x.flatten(2).transpose(1, 2)
        outs = []
        for i, layer in enumerate(self.layers):
            out, x, nh, nw = layer(x, h, w)
            out = getattr(self, f"norm{i}")(out)
            outs.append(out.view(-1, h, w, self.num_features[i]).permute(0, 3, 1, 2).contiguous())
            h, w = nh, nw
        return tuple(outs)
