"""RRFormer-style reflection removal (after RRFormer: Zhang et al., "Benchmarking
Ultra-High-Definition Image Reflection Removal", arXiv 2308.00265), sized for UHD photos
on a CPU.

What it keeps of RRFormer: its three stages (hypercolumn embedding, transformer feature
extraction, multi-scale pyramid pooling) and its outputs (the transmission, with the
reflection as an auxiliary output). What it replaces: the released RRFormer embeds 1,475
pretrained-VGG hypercolumn channels at full resolution (about 49 GB of activations for
one 4K photo); here the hypercolumns come from a shallow encoder learned from scratch
(no VGG), and attention runs in 8x8 windows at a quarter of the resolution:

1. **Hypercolumn embedding**: a shallow learned encoder gives features at 1, 1/2 and 1/4
   resolution; at 1/4 they are stacked with the space-to-depth picture into one
   multi-scale "hypercolumn" per position and embedded by a 1x1 convolution.
2. **Self-attention feature extraction**: transformer blocks with window attention
   (8x8 windows, alternately shifted by half a window), at 1/4 resolution.
3. **Multi-scale spatial feature extraction**: pyramid pooling (1, 2, 4 and 8 bins),
   whose pooled maps may come from a *global* low-resolution pass over the whole photo
   (:meth:`RRFormer.context`) when the photo is processed in tiles, so every tile sees
   the whole picture's layout.

A decoder with skip connections from the encoder predicts the transmission T as the input
plus a correction, and the reflection R as an auxiliary output (for the training losses).
Tensors in, tensors out; tiling is models/dereflector.py's, files video/dereflect.py's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class RRConfig:
    width: int = 32  # channels at full resolution (x2 at 1/2, x4 embedding at 1/4)
    blocks: int = 4  # window-attention blocks
    heads: int = 4
    window: int = 8
    bins: tuple[int, ...] = (1, 2, 4, 8)  # pyramid pooling

    def to_json(self) -> dict:
        return asdict(self)


PYRAMID_MULTIPLE = 32  # inputs are padded to this: 1/4 resolution, then 8x8 windows


class WindowAttentionBlock(nn.Module):
    """Pre-norm transformer block with multi-head attention inside (shifted) windows."""

    def __init__(self, dim: int, heads: int, window: int, shift: bool):
        super().__init__()
        self.heads, self.window, self.shift = heads, window, window // 2 if shift else 0
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # N,C,H,W with H, W multiples of the window
        n, c, h, w = x.shape
        t = x.permute(0, 2, 3, 1)  # N,H,W,C
        a = self.norm1(t)
        if self.shift:  # cyclic shift; the wrapped windows mix far-apart borders, a small cost here
            a = torch.roll(a, (-self.shift, -self.shift), (1, 2))
        s = self.window
        a = a.reshape(n, h // s, s, w // s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, s * s, c)
        q, k, v = self.qkv(a).reshape(a.shape[0], s * s, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        # softmax(q k^T / sqrt(d)) v written out: for 64-token windows on a CPU it is faster
        # than the fused kernel (9.0 against 12.7 ms a block of a 512-px tile, bf16, 2 threads)
        a = ((q @ k.transpose(-1, -2)) * (c // self.heads) ** -0.5).softmax(-1) @ v
        a = a.transpose(1, 2).reshape(-1, s * s, c)
        a = self.proj(a).reshape(n, h // s, w // s, s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(n, h, w, c)
        if self.shift:
            a = torch.roll(a, (self.shift, self.shift), (1, 2))
        t = t + a
        t = t + self.mlp(self.norm2(t))
        return t.permute(0, 3, 1, 2)


class PyramidPooling(nn.Module):
    """Average-pool the features to each bin grid, project, and add back at full size."""

    def __init__(self, dim: int, bins: tuple[int, ...]):
        super().__init__()
        self.bins = bins
        self.project = nn.ModuleList(nn.Conv2d(dim, dim // 4, 1) for _ in bins)
        self.fuse = nn.Conv2d(dim + len(bins) * (dim // 4), dim, 1)

    def pooled(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [F.adaptive_avg_pool2d(x, b) for b in self.bins]

    def forward(self, x: torch.Tensor, pooled: list[torch.Tensor] | None = None, region=None) -> torch.Tensor:
        """``pooled``: the bin grids of the whole picture (global pass); ``region``: this
        tile's (top, left, height, width) as fractions of the picture, to cut them to."""
        pooled = pooled if pooled is not None else self.pooled(x)
        h, w = x.shape[-2:]
        maps = []
        for proj, p in zip(self.project, pooled):
            p = F.gelu(proj(p))
            if region is None:
                maps.append(F.interpolate(p, size=(h, w), mode="bilinear", align_corners=False))
            else:  # sample the global grid at this tile's positions
                top, left, rh, rw = region
                ys = top + (torch.arange(h, dtype=x.dtype, device=x.device) + 0.5) / h * rh
                xs = left + (torch.arange(w, dtype=x.dtype, device=x.device) + 0.5) / w * rw
                grid = torch.stack(torch.meshgrid(xs * 2 - 1, ys * 2 - 1, indexing="xy"), dim=-1)
                maps.append(
                    F.grid_sample(
                        p,
                        grid[None].expand(x.shape[0], h, w, 2),
                        mode="bilinear",
                        padding_mode="border",
                        align_corners=False,
                    )
                )
        return x + self.fuse(torch.cat([x, *maps], dim=1))


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GELU())


class RRFormer(nn.Module):
    def __init__(self, cfg: RRConfig = RRConfig()):
        super().__init__()
        self.cfg = cfg
        c = cfg.width
        self.enc1 = nn.Sequential(_conv(3, c), _conv(c, c))
        self.enc2 = nn.Sequential(_conv(c, 2 * c, 2), _conv(2 * c, 2 * c))
        self.enc3 = nn.Sequential(_conv(2 * c, 4 * c, 2), _conv(4 * c, 4 * c))
        hyper = 3 * 16 + c + 2 * c + 4 * c  # picture, full, half and quarter features, per 1/4 position
        self.embed = nn.Conv2d(hyper, 4 * c, 1)
        self.attention = nn.Sequential(
            *(WindowAttentionBlock(4 * c, cfg.heads, cfg.window, shift=i % 2 == 1) for i in range(cfg.blocks))
        )
        self.pyramid = PyramidPooling(4 * c, cfg.bins)
        self.up2 = nn.Sequential(nn.Conv2d(4 * c, 8 * c, 1), nn.PixelShuffle(2))
        self.dec2 = nn.Sequential(_conv(4 * c, 2 * c), _conv(2 * c, 2 * c))
        self.up1 = nn.Sequential(nn.Conv2d(2 * c, 4 * c, 1), nn.PixelShuffle(2))
        self.dec1 = nn.Sequential(_conv(2 * c, c), _conv(c, c))
        self.head = nn.Conv2d(c, 6, 3, padding=1)  # T correction and R
        nn.init.zeros_(self.head.weight)  # start as the identity: T = input, R = 0
        nn.init.zeros_(self.head.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Stages 1 and 2: the attended 1/4-resolution features (before pyramid pooling)."""
        f1 = self.enc1(x)
        f2 = self.enc2(f1)
        f3 = self.enc3(f2)
        hyper = torch.cat([F.pixel_unshuffle(x, 4), F.avg_pool2d(f1, 4), F.avg_pool2d(f2, 2), f3], dim=1)
        return self.attention(self.embed(hyper)), f1, f2

    @torch.no_grad()
    def context(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The global pass: pyramid bins of a (downscaled) whole picture, for :meth:`forward`."""
        return self.pyramid.pooled(self.features(_pad(x))[0])

    def forward(self, x: torch.Tensor, context: list[torch.Tensor] | None = None, region=None):
        """x: N,3,H,W in [0, 1] (any size; padded internally). Returns (T, R)."""
        h, w = x.shape[-2:]
        xp = _pad(x)
        if region is not None:  # the padding widens the tile's share of the picture
            top, left, rh, rw = region
            region = (top, left, rh * xp.shape[-2] / h, rw * xp.shape[-1] / w)
        g, f1, f2 = self.features(xp)
        g = self.pyramid(g, context, region)
        d2 = self.dec2(torch.cat([self.up2(g), f2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), f1], dim=1))
        out = self.head(d1)
        t = xp + out[:, :3]
        r = out[:, 3:]
        return t[..., :h, :w], r[..., :h, :w]


def _pad(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % PYRAMID_MULTIPLE, 0, -h % PYRAMID_MULTIPLE), mode="replicate")
