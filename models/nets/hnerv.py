"""HNeRV (Chen et al., CVPR 2023): a video as a small decoder network plus tiny per-frame
embeddings produced by a learned encoder.

- Encoder: ConvNeXt stages; stage i downsamples by ``strides[i]`` (a strided conv as in
  ConvNeXt's downsampling layers) and runs one ConvNeXt block (depthwise 7x7, LayerNorm,
  4x pointwise MLP with GELU); a last 1x1 conv gives ``embed_channels`` (16) channels.
- Decoder: a 1x1 conv lifts the embedding to ``widths[0]`` channels, then one HNeRV block
  per stride (conv k x k -> PixelShuffle(s) -> GELU), kernel sizes growing 1, 3, 5, 5, ...
  and widths shrinking by 1.2 per stage down to a floor; a 3x3 head gives RGB in [0, 1].
- The decoder's width is solved from a parameter budget (``solve_widths``), the way the
  paper balances parameters, so "0.3M parameters" means the same at every frame size.
- Any frame size: ``plan_strides`` picks strides whose product leaves the least padding;
  frames are padded by edge replication and cropped back exactly.

Only the decoder and the embeddings go into the bitstream; the encoder is used while
fitting.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

EMBED_CHANNELS = 16
_STRIDE_CHOICES = (2, 3, 4, 5)


@dataclass(frozen=True)
class HNeRVConfig:
    """Everything needed to rebuild the decoder (stored in the bitstream as JSON)."""

    height: int  # padded size the network produces
    width: int
    strides: tuple[int, ...]
    widths: tuple[int, ...]  # decoder channels after the lift and after each block
    kernels: tuple[int, ...]
    embed_channels: int = EMBED_CHANNELS

    @property
    def embed_size(self) -> tuple[int, int]:
        p = math.prod(self.strides)
        return self.height // p, self.width // p

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_json(cls, d: dict) -> "HNeRVConfig":
        return cls(
            height=int(d["height"]),
            width=int(d["width"]),
            strides=tuple(int(s) for s in d["strides"]),
            widths=tuple(int(c) for c in d["widths"]),
            kernels=tuple(int(k) for k in d["kernels"]),
            embed_channels=int(d.get("embed_channels", EMBED_CHANNELS)),
        )


def plan_strides(
    height: int, width: int, stages: int = 5, max_embed_side: int = 16
) -> tuple[tuple[int, ...], int, int]:
    """Strides (largest first) and the padded size with the least padding, such that the
    embedding grid is at most ``max_embed_side`` on its long side (the embeddings stay tiny)."""
    best = None
    for combo in itertools.combinations_with_replacement(sorted(_STRIDE_CHOICES, reverse=True), stages):
        p = math.prod(combo)
        ph, pw = math.ceil(height / p) * p, math.ceil(width / p) * p
        if max(ph, pw) // p > max_embed_side:
            continue
        key = (ph * pw, -p)  # least padding, then the smallest embedding
        if best is None or key < best[0]:
            best = (key, combo, ph, pw)
    if best is None:
        raise ValueError(f"no stride plan for {width}x{height} with {stages} stages")
    _, combo, ph, pw = best
    return tuple(combo), ph, pw


def kernel_sizes(stages: int, k_min: int = 1, k_max: int = 5) -> tuple[int, ...]:
    """1, 3, 5, 5, ... : small kernels where the feature maps are tiny, larger later."""
    return tuple(min(k_min + 2 * i, k_max) for i in range(stages))


def widths_from(first: int, stages: int, reduction: float = 1.2, floor: int = 12) -> tuple[int, ...]:
    widths = [first]
    for _ in range(stages):
        widths.append(max(int(round(widths[-1] / reduction)), floor))
    return tuple(widths)


def decoder_parameters(strides, widths, kernels, embed_channels: int = EMBED_CHANNELS) -> int:
    n = embed_channels * widths[0] + widths[0]  # 1x1 lift
    for s, k, cin, cout in zip(strides, kernels, widths[:-1], widths[1:]):
        n += cin * cout * s * s * k * k + cout * s * s
    return n + widths[-1] * 3 * 9 + 3  # 3x3 head


def solve_widths(strides: tuple[int, ...], budget: int, floor: int = 12) -> tuple[int, ...]:
    """The largest first width whose decoder stays within ``budget`` parameters."""
    kernels = kernel_sizes(len(strides))
    lo, hi = floor, 4096
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if decoder_parameters(strides, widths_from(mid, len(strides), floor=floor), kernels) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return widths_from(lo, len(strides), floor=floor)


def make_config(height: int, width: int, budget: int) -> HNeRVConfig:
    strides, ph, pw = plan_strides(height, width)
    return HNeRVConfig(ph, pw, strides, solve_widths(strides, budget), kernel_sizes(len(strides)))


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pw1 = nn.Linear(dim, 4 * dim)
        self.pw2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dw(x).permute(0, 2, 3, 1)
        h = self.pw2(F.gelu(self.pw1(self.norm(h))))
        return x + h.permute(0, 3, 1, 2)


class Encoder(nn.Module):
    """Frame (N,3,H,W in [0,1]) -> embedding (N,16,H/P,W/P)."""

    def __init__(self, strides: tuple[int, ...], dim: int = 64, embed_channels: int = EMBED_CHANNELS):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for s in strides:
            layers += [nn.Conv2d(cin, dim, s, stride=s), ConvNeXtBlock(dim)]
            cin = dim
        layers.append(nn.Conv2d(dim, embed_channels, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class HNeRVBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout * stride * stride, kernel, padding=kernel // 2)
        self.shuffle = nn.PixelShuffle(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.shuffle(self.conv(x)))


class Decoder(nn.Module):
    """Embedding (N,16,h,w) -> frame (N,3,H,W) in [0, 1]."""

    def __init__(self, cfg: HNeRVConfig):
        super().__init__()
        self.cfg = cfg
        self.lift = nn.Conv2d(cfg.embed_channels, cfg.widths[0], 1)
        self.blocks = nn.ModuleList(
            HNeRVBlock(cin, cout, s, k)
            for s, k, cin, cout in zip(cfg.strides, cfg.kernels, cfg.widths[:-1], cfg.widths[1:])
        )
        self.head = nn.Conv2d(cfg.widths[-1], 3, 3, padding=1)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        x = self.lift(embedding)
        for block in self.blocks:
            x = block(x)
        return torch.sigmoid(self.head(x))


class HNeRV(nn.Module):
    """Encoder + decoder; ``forward`` reconstructs padded frames through their embeddings."""

    def __init__(self, cfg: HNeRVConfig, encoder_dim: int = 64):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg.strides, encoder_dim, cfg.embed_channels)
        self.decoder = Decoder(cfg)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.encoder(frames)
        return self.decoder(embedding), embedding


def pad_frames(frames: torch.Tensor, cfg: HNeRVConfig) -> torch.Tensor:
    """N,3,H,W -> N,3,cfg.height,cfg.width by edge replication (bottom and right)."""
    h, w = frames.shape[-2:]
    return F.pad(frames, (0, cfg.width - w, 0, cfg.height - h), mode="replicate")
